"""Motion correction: alignment accuracy on synthetic movies, dose weighting, the protocol."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import ndimage

from cryolab.core.project import Project
from cryolab.em import motion, xp
from cryolab.em.imageio import read_image, write_stack
from cryolab.em.objects import Acquisition, SetOfMicrographs, SetOfMovies


def textured(rng: np.random.Generator, size: int) -> NDArray[np.float64]:
    """Smoothed noise with unit variance: a texture to align on."""
    image = ndimage.gaussian_filter(rng.standard_normal((size, size)), 3.0, mode="wrap")
    return image / image.std()


def drift(rng: np.random.Generator, frames: int) -> NDArray[np.float64]:
    """A beam-induced-like trajectory (fast start, slowing down, jitter), mean zero, px."""
    t = np.arange(frames) + 1.0
    path = np.stack([3.0 * np.sqrt(t), -2.0 * np.sqrt(t) + 0.1 * t], axis=1)
    path += 0.3 * rng.standard_normal(path.shape)
    return path - path.mean(axis=0)


def make_movie(
    rng: np.random.Generator, frames: int, size: int, snr: float
) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
    """Frames of one texture moved by a known trajectory (Fourier shifts) plus noise."""
    image = np.fft.fft2(textured(rng, size).astype(np.float32))
    truth = drift(rng, frames)
    k = np.fft.fftfreq(size).astype(np.float32)
    stack = np.empty((frames, size, size), dtype=np.float32)
    for number, (x, y) in enumerate(truth):
        ramp = np.exp(-2j * np.pi * k[:, None] * y) * np.exp(-2j * np.pi * k[None, :] * x)
        stack[number] = np.fft.ifft2(image * ramp.astype(np.complex64)).real
        stack[number] += rng.standard_normal((size, size), dtype=np.float32) / np.sqrt(snr)
    return stack, truth


def rms_error(found: NDArray[np.float64], truth: NDArray[np.float64]) -> float:
    """RMS of the per-frame shift error (px), both trajectories taken relative to their mean."""
    found = found - found.mean(axis=0)
    truth = truth - truth.mean(axis=0)
    return float(np.sqrt(((found - truth) ** 2).sum(axis=1).mean()))


def test_alignment_recovers_the_drift_at_snr_one_in_a_hundred() -> None:
    rng = np.random.default_rng(1)
    errors = []
    for _ in range(2):
        frames, truth = make_movie(rng, 20, 256, 0.01)
        shifts = motion.align_frames(frames, device="cpu")
        assert shifts.shape == (20, 2)
        errors.append(rms_error(shifts, truth))
    assert max(errors) <= 0.5, f"RMS shift errors {errors} px exceed 0.5 px"
    print(f"RMS shift error at SNR 1/100, 20 frames of 256^2: {errors} px")


def test_alignment_at_snr_one_in_a_thousand_with_more_frames_and_pixels() -> None:
    rng = np.random.default_rng(7)
    frames, truth = make_movie(rng, 40, 1024, 0.001)
    error = rms_error(motion.align_frames(frames, device="cpu"), truth)
    assert error <= 0.5, f"RMS shift error {error:.3f} px at SNR 1/1000"
    print(f"RMS shift error at SNR 1/1000, 40 frames of 1024^2: {error:.3f} px")


def test_noise_free_alignment_is_exact_and_smoothing_keeps_a_smooth_path() -> None:
    rng = np.random.default_rng(2)
    frames, truth = make_movie(rng, 8, 128, 1e6)
    assert rms_error(motion.align_frames(frames, device="cpu"), truth) < 0.02
    smooth = motion.align_frames(frames, device="cpu", smooth=1.0)
    assert rms_error(smooth, truth) < 0.5
    # without motion, nothing moves
    still = np.repeat(textured(rng, 64)[None], 4, axis=0)
    assert np.abs(motion.align_frames(still, device="cpu")).max() < 1e-3


def test_apply_shifts_undoes_the_motion_and_sum_frames_adds_the_aligned_frames() -> None:
    rng = np.random.default_rng(3)
    frames, truth = make_movie(rng, 5, 64, 1e9)
    aligned = motion.apply_shifts(frames, truth, device="cpu")
    assert np.allclose(aligned, aligned[0], atol=1e-3)
    total = motion.sum_frames(frames, truth, device="cpu")
    assert np.allclose(total, aligned.sum(axis=0), atol=1e-3)
    assert np.allclose(motion.sum_frames(frames, device="cpu"), frames.sum(axis=0), atol=1e-3)
    weighted = motion.dose_weight(frames, 2.0, 1.0, shifts=truth, device="cpu")
    assert np.allclose(weighted, motion.dose_weight(aligned, 2.0, 1.0, device="cpu"), atol=1e-3)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="2 or more frames"):
        motion.align_frames(np.zeros((1, 8, 8)), device="cpu")
    with pytest.raises(ValueError, match="iterations"):
        motion.align_frames(np.zeros((3, 8, 8)), iterations=0, device="cpu")


def test_critical_exposure_follows_grant_and_grigorieff() -> None:
    # Ne(k) = 0.245 k^-1.665 + 2.81 at 300 kV
    assert motion.critical_exposure(0.1) == pytest.approx(0.245 * 0.1**-1.665 + 2.81)
    assert motion.critical_exposure(0.25) == pytest.approx(0.245 * 0.25**-1.665 + 2.81)
    assert motion.critical_exposure(0.1, voltage=200) == pytest.approx(
        0.8 * motion.critical_exposure(0.1)
    )
    assert np.isinf(motion.critical_exposure(0.0))


def test_dose_weights_are_at_most_one_and_fall_with_dose_and_frequency() -> None:
    weights = motion.dose_weights(10, (64, 64), dose_per_frame=2.0, pixel_size=1.0)
    assert weights.shape == (10, 64, 33)
    assert (weights <= 1.0).all() and (weights > 0).all()
    assert np.allclose(weights[:, 0, 0], 1.0)  # zero frequency is never weighted down
    assert (np.diff(weights, axis=0) <= 0).all()  # later frames (more dose) weigh less
    assert (np.diff(weights[:, 0, 1:], axis=1) < 0).all()  # higher frequency weighs less
    # exp(-N / (2 Ne)) at the middle of the first frame and k = 1/4 1/A (column 16 of 64)
    expected = np.exp(-1.0 / (2 * motion.critical_exposure(0.25)))
    assert weights[0, 0, 16] == pytest.approx(expected)


def test_dose_weighted_sum_damps_late_high_frequencies_and_keeps_the_noise_power() -> None:
    rng = np.random.default_rng(4)
    signal = np.repeat(rng.standard_normal((1, 64, 64)), 20, axis=0).astype(np.float32)
    plain = np.abs(np.fft.rfft2(signal.sum(axis=0)))
    weighted = np.abs(np.fft.rfft2(motion.dose_weight(signal, 3.0, 1.0, 300.0, device="cpu")))
    assert weighted[0, 0] == pytest.approx(plain[0, 0], rel=1e-3)
    assert weighted[0, 2] / plain[0, 2] > weighted[20, 20] / plain[20, 20]
    assert weighted[20, 20] / plain[20, 20] < 0.9
    # independent noise: the normalisation keeps its power at every frequency
    noise = rng.standard_normal((20, 64, 64)).astype(np.float32)
    power = (np.abs(np.fft.rfft2(noise.sum(axis=0))) ** 2)[16:48, 16:].mean()
    kept = (np.abs(np.fft.rfft2(motion.dose_weight(noise, 3.0, 1.0, device="cpu"))) ** 2)[
        16:48, 16:
    ].mean()
    assert kept / power == pytest.approx(1.0, abs=0.1)


@pytest.mark.gpu
def test_gpu_alignment_matches_cpu() -> None:
    if not xp.gpu_available():
        pytest.skip("no GPU")
    rng = np.random.default_rng(5)
    frames, _ = make_movie(rng, 10, 128, 0.05)
    cpu = motion.align_frames(frames, device="cpu")
    gpu = motion.align_frames(frames, device="gpu")
    assert np.abs(cpu - gpu).max() < 0.05


def movies_in(project: Project, tmp_path: Path, movies: list[NDArray[np.float32]], dose: float):  # type: ignore[no-untyped-def]
    paths = []
    for number, frames in enumerate(movies):
        paths.append(str(write_stack(tmp_path / f"movie_{number}.mrcs", frames, 1.0)))
    acquisition = Acquisition(sampling_rate=1.0, dose_per_frame=dose).to_dict()
    movie_set = SetOfMovies(
        {"image.path": paths, "movie.frames": [len(m) for m in movies]},
        properties={"sampling_rate": 1.0, "acquisition": acquisition},
    )
    run = project.add_imported_run(
        "external.job",
        {
            "program": "test",
            "job": "x",
            "output_names": ["movies"],
            "output_types": ["SetOfMovies"],
        },
        {"movies": movie_set},
    )
    return run.out.movies, movie_set


def test_protocol_writes_aligned_sums_and_shifts(project: Project, tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    made = [make_movie(rng, 10, 128, 0.1) for _ in range(3)]
    source, movie_set = movies_in(project, tmp_path, [m for m, _ in made], dose=1.5)
    run = project.run(
        "spa.motion_correct", movies=source, device="cpu", parallel=2, binning=2
    ).wait(120)
    micrographs = run.out.micrographs.load()
    assert isinstance(micrographs, SetOfMicrographs) and len(micrographs) == 3
    assert micrographs.properties["sampling_rate"] == pytest.approx(2.0)
    assert micrographs.properties["acquisition"]["dose_per_frame"] == pytest.approx(1.5)
    order = {int(uid): n for n, uid in enumerate(movie_set.uids)}
    assert sorted(order[int(u)] for u in micrographs["movie_uid"]) == [0, 1, 2]
    for item in micrographs:
        path = Path(str(item["image.path"]))
        assert path.parent == run.folder / "micrographs" and path.exists()
        assert read_image(path).shape == (64, 64)
        assert str(item["micrograph.name"]).startswith("movie_")
    shifts = run.out.shifts.load()
    assert len(shifts) == 30
    for uid, number in order.items():
        rows = shifts.where(shifts["movie_uid"] == uid)
        found = np.stack([rows["shift_x"], rows["shift_y"]], axis=1)[np.argsort(rows["frame"])]
        error = rms_error(found, made[number][1])
        assert error <= 0.5, f"movie {number}: RMS shift error {error:.3f} px"


def test_protocol_without_dose_cannot_dose_weight(project: Project, tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    frames, _ = make_movie(rng, 4, 32, 1.0)
    source, _ = movies_in(project, tmp_path, [frames], dose=0.0)
    run = project.run("spa.motion_correct", movies=source, device="cpu", parallel=1)
    run = run.wait(60, check=False)
    assert run.status == "failed" and "dose_per_frame" in str(run.error)
    plain = project.run(
        "spa.motion_correct", movies=source, device="cpu", parallel=1, dose_weighting=False
    ).wait(60)
    assert len(plain.out.micrographs.load()) == 1
