"""Simulated data with ground truth: phantom, projector, CTF, drift, SNR, contamination."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize

from cryolab.core.errors import ParameterError
from cryolab.core.project import Project
from cryolab.em import xp
from cryolab.em.ctf import wavelength
from cryolab.em.ctffit import fit_ctf, power_spectrum
from cryolab.em.geometry import euler_to_matrix
from cryolab.em.imageio import read_image, read_images
from cryolab.em.phantom import ice_texture, make_phantom
from cryolab.em.simulate import (
    Settings,
    apply_filter,
    ctf_image,
    fourier_shift,
    project,
    simulate_dataset,
    simulate_micrograph,
)

SMALL = Settings(size=256, particles=8, frames=8, box=64)


def gaussian_volume(n: int, sigma: float, centre: tuple[float, float, float] = (0, 0, 0)):  # type: ignore[no-untyped-def]
    """An isotropic Gaussian ``[z, y, x]`` at ``centre = (x, y, z)`` px from voxel n // 2."""
    axis = np.arange(n) - n // 2
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    cx, cy, cz = centre
    return np.exp(-((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) / (2 * sigma**2))


def particle_mask(truth, settings: Settings) -> np.ndarray:  # type: ignore[no-untyped-def]
    mask = np.zeros((settings.size, settings.size), dtype=bool)
    half = settings.box // 2
    for x, y in zip(truth.particles["x"], truth.particles["y"], strict=True):
        ix, iy = math.floor(x), math.floor(y)
        mask[iy - half : iy + half, ix - half : ix + half] = True
    return mask


def test_phantom_fits_its_box_and_has_a_hand() -> None:
    volume = make_phantom(64, 2.0)
    assert volume.shape == (64, 64, 64) and volume.dtype == np.float32
    assert volume.max() == pytest.approx(1.0)
    assert np.abs(volume[[0, -1]]).max() == 0 and np.abs(volume[:, :, [0, -1]]).max() == 0
    np.testing.assert_array_equal(volume, make_phantom(64, 2.0))
    mirrored = volume[:, :, ::-1]
    correlation = np.corrcoef(volume.ravel(), mirrored.ravel())[0, 1]
    assert correlation < 0.8  # not its own mirror image: the hand is determinable
    with pytest.raises(ValueError, match="does not fit"):
        make_phantom(32, 1.0)
    with pytest.raises(ValueError, match="unknown phantom shape 'round'"):
        make_phantom(64, 2.0, shape="round")


def test_projection_of_a_centred_gaussian_is_the_2d_gaussian() -> None:
    n, sigma = 48, 3.0
    volume = gaussian_volume(n, sigma)
    axis = np.arange(n) - n // 2
    y, x = np.meshgrid(axis, axis, indexing="ij")
    expected = math.sqrt(2 * math.pi) * sigma * np.exp(-(x**2 + y**2) / (2 * sigma**2))
    peak = expected.max()
    np.testing.assert_allclose(project(volume, 0, 0, 0), expected, atol=1e-4 * peak)
    for angles in [(30, 50, -70), (-120, 135, 10), (90, 90, 90)]:
        image = project(volume, *angles)
        assert image.shape == (n, n)
        np.testing.assert_allclose(image, expected, atol=0.03 * peak)


def test_projection_convention_matches_docs() -> None:
    n = 32
    rng = np.random.default_rng(0)
    volume = rng.normal(size=(n, n, n))
    # tilt = 90, rot = 0: A = [[0, 0, -1], [0, 1, 0], [1, 0, 0]], so the beam runs along the
    # reference x axis and the image x axis is the reference -z: img[y, x] = sum_x' V[-x, y, x']
    image = project(volume, 0, 90, 0)
    summed = volume.sum(axis=2)  # [z, y]
    np.testing.assert_allclose(image[:, 1:], summed[::-1][:-1].T, atol=1e-3)
    # docs: with rot = 90 (tilt = 0), a feature on the reference's +x axis appears on -y
    blob = gaussian_volume(n, 1.5, (8, 0, 0))
    image = project(blob, 90, 0, 0)
    row, column = np.unravel_index(np.argmax(image), image.shape)
    assert (column - n // 2, row - n // 2) == (0, -8)
    # in general a point r of the reference lands at (A @ r)[:2]
    r = np.array([6.0, -4.0, 3.0])
    blob = gaussian_volume(n, 1.5, tuple(r))  # type: ignore[arg-type]
    for angles in [(30, 60, -45), (-100, 20, 170)]:
        image = project(blob, *angles)
        axis = np.arange(n) - n // 2
        centroid = (
            np.array([(image.sum(0) * axis).sum(), (image.sum(1) * axis).sum()]) / image.sum()
        )
        np.testing.assert_allclose(centroid, (euler_to_matrix(*angles) @ r)[:2], atol=0.05)


def test_ctf_zeros_are_where_minus_sin_chi_vanishes() -> None:
    n, pixel, du, dv = 512, 1.0, 20000.0, 14000.0
    lam = wavelength(300)
    # Cs = 0 and no amplitude contrast: first zero at s = 1 / sqrt(lambda * defocus), with
    # defocus_u along x (defocus_angle = 0) and defocus_v along y
    ctf = ctf_image((n, n), pixel, du, dv, 0.0, spherical_aberration=0, amplitude_contrast=0)
    frequency = np.fft.fftfreq(n, d=pixel)[: n // 2]
    for profile, defocus in ((ctf[0, : n // 2], du), (ctf[: n // 2, 0], dv)):
        first = int(np.flatnonzero(np.diff(np.sign(profile[1:])) != 0)[0]) + 1
        zero = 1 / math.sqrt(lam * defocus)
        assert frequency[first] <= zero <= frequency[first + 1]
        assert profile[1] < 0  # particles are dark at low frequency
    # applied to an image, the spectrum is multiplied by the CTF: zeros where sin(chi) is 0
    full = ctf_image((n, n), pixel, du, dv, 35.0, bfactor=20)
    image = np.random.default_rng(1).normal(size=(n, n))
    filtered = apply_filter(image, full)
    ratio = np.fft.fft2(filtered) / np.fft.fft2(image)
    inside = np.ones((n, n), dtype=bool)
    inside[n // 2] = inside[:, n // 2] = False  # Nyquist: a real image cannot keep asymmetry
    np.testing.assert_allclose(ratio.real[inside], full[inside], atol=1e-9)
    zeros = (np.abs(full) < 1e-3) & inside
    assert zeros.sum() > 100
    assert np.abs(np.fft.fft2(filtered))[zeros].max() < 1e-3 * np.abs(np.fft.fft2(image)).max()


def test_true_coordinates_and_angles_describe_the_micrograph() -> None:
    settings = Settings(size=256, particles=3, frames=1, contamination=False, ice=0.0)
    volume = make_phantom()
    result = simulate_micrograph(volume, settings, np.random.default_rng(8), keep_expected=True)
    assert result.expected is not None
    truth, n = result.truth, settings.size
    # rebuild independently: each projection centred in a full-size image, moved to its
    # coordinate by a Fourier shift, then the true CTF
    model = np.zeros((n, n))
    start = n // 2 - settings.box // 2
    for x, y, rot, tilt, psi in zip(
        *(truth.particles[k] for k in ("x", "y", "rot", "tilt", "psi")), strict=True
    ):
        image = np.zeros((n, n))
        image[start : start + settings.box, start : start + settings.box] = project(
            volume, rot, tilt, psi
        )
        model += fourier_shift(image, x - n // 2, y - n // 2)
    ctf = ctf_image(
        (n, n),
        settings.pixel_size,
        truth.defocus_u,
        truth.defocus_v,
        truth.defocus_angle,
        bfactor=settings.bfactor,
    )
    model = apply_filter(model, ctf)
    inner = (slice(40, -40), slice(40, -40))
    correlation = np.corrcoef(model[inner].ravel(), result.expected[0][inner].ravel())[0, 1]
    assert correlation > 0.999, correlation
    moved = np.corrcoef(
        np.roll(model, 1, axis=1)[inner].ravel(), result.expected[0][inner].ravel()
    )[0, 1]
    assert moved < correlation - 0.01, moved


def test_fourier_shift_moves_content_by_plus_shift() -> None:
    image = np.zeros((32, 32))
    image[10, 5] = 1
    moved = fourier_shift(image, 3, -2)
    assert np.unravel_index(np.argmax(moved), moved.shape) == (8, 8)


def measure_shift(reference: np.ndarray, frame: np.ndarray, margin: int = 24) -> np.ndarray:
    """Shift of frame relative to reference: cross-correlation peak, refined to sub-pixel."""
    spectrum = np.fft.fft2(frame - frame.mean()) * np.conj(
        np.fft.fft2(reference - reference.mean())
    )
    correlation = np.fft.ifft2(spectrum).real
    row, column = np.unravel_index(np.argmax(correlation), correlation.shape)
    n = frame.shape[0]
    start = np.array([(column + n // 2) % n - n // 2, (row + n // 2) % n - n // 2], float)
    inner = (slice(margin, -margin), slice(margin, -margin))

    def loss(shift: np.ndarray) -> float:
        return float(((fourier_shift(reference, *shift)[inner] - frame[inner]) ** 2).sum())

    return np.asarray(minimize(loss, start, method="Nelder-Mead", options={"xatol": 1e-4}).x)


def test_drift_is_recovered_from_noiseless_frames() -> None:
    result = simulate_micrograph(
        make_phantom(), SMALL, np.random.default_rng(5), keep_expected=True
    )
    expected, drift = result.expected, result.truth.drift
    assert expected is not None and drift.shape == (8, 2)
    np.testing.assert_array_equal(drift[0], [0, 0])
    assert np.hypot(*drift[-1]) > 2  # a real drift, several pixels
    for f in (1, 4, 7):
        np.testing.assert_allclose(measure_shift(expected[0], expected[f]), drift[f], atol=0.05)


@pytest.mark.parametrize("noise", ["poisson", "gaussian"])
def test_frame_snr_is_the_requested_one(noise: str) -> None:
    settings = Settings(
        size=256, particles=10, frames=2, contamination=False, noise=noise, snr=0.01, ice=0.0
    )
    result = simulate_micrograph(
        make_phantom(), settings, np.random.default_rng(2), keep_expected=True
    )
    assert result.expected is not None
    mask = particle_mask(result.truth, settings)
    signal = result.expected[0][mask].var()
    noise_variance = (result.frames[0] - result.expected[0]).var()
    assert signal / noise_variance == pytest.approx(0.01, rel=0.05)
    electrons = settings.dose_per_frame * settings.pixel_size**2
    assert result.frames[0].mean() == pytest.approx(electrons, rel=0.02)
    if noise == "poisson":
        np.testing.assert_array_equal(result.frames, np.round(result.frames))


def test_dose_dependent_bfactor_fades_the_signal() -> None:
    settings = Settings(size=128, particles=1, frames=6, contamination=False, drift=0)
    volume = make_phantom()
    plain = simulate_micrograph(volume, settings, np.random.default_rng(4), keep_expected=True)
    damaged = simulate_micrograph(
        volume,
        replace(settings, dose_bfactor=20.0),
        np.random.default_rng(4),
        keep_expected=True,
    )
    assert plain.expected is not None and damaged.expected is not None
    variance = [frame.var() for frame in damaged.expected]
    assert np.all(np.diff(variance) < 0)
    assert variance[-1] < 0.95 * plain.expected[-1].var()
    np.testing.assert_allclose(plain.expected[0].var(), plain.expected[-1].var(), rtol=1e-6)


def test_ctf_of_the_simulator_is_the_one_ctffit_fits() -> None:
    # white noise through the simulator's CTF: the fitter gets the defocus back exactly, so
    # simulate.py and ctffit.py agree on pixel size, grid, wavelength, defocus and angle
    rng = np.random.default_rng(5)
    ctf = ctf_image((768, 768), 2.0, 13300.0, 12700.0, 30.0, bfactor=40.0)
    image = apply_filter(rng.standard_normal((768, 768)), ctf)[128:640, 128:640]
    fit = fit_ctf(power_spectrum(image, 256, device="cpu"), 2.0, device="cpu")
    assert abs((fit.defocus_u + fit.defocus_v) / 2 - 13000.0) < 20
    assert abs(fit.defocus_u - fit.defocus_v - 600.0) < 40
    assert abs(fit.defocus_angle - 30.0) < 2


def test_ice_texture_has_unit_variance_and_the_asked_spectrum() -> None:
    s = np.hypot(*np.meshgrid(np.fft.fftfreq(256, 2.0), np.fft.fftfreq(256, 2.0)))
    low, high = (s > 0.004) & (s < 0.008), (s > 0.1) & (s < 0.2)
    for corner, ratio in ((0.0, (0.7, 1.4)), (50.0, (10.0, np.inf))):
        field = ice_texture(np.random.default_rng(0), (256, 256), 2.0, corner)
        assert abs(field.mean()) < 1e-9 and field.std() == pytest.approx(1.0)
        power = np.abs(np.fft.fft2(field)) ** 2
        assert ratio[0] < power[low].mean() / power[high].mean() < ratio[1]


def test_ice_makes_thon_rings_that_give_the_true_defocus() -> None:
    # with the default ice the summed movie's spectrum fits to the true defocus (the particles
    # alone gave errors of several hundred A in the chained pipeline)
    settings = Settings(drift=0)
    volume = make_phantom()
    errors = []
    for seed in range(3):
        result = simulate_micrograph(volume, settings, np.random.default_rng([1, seed]))
        spectrum = power_spectrum(result.frames.sum(axis=0), 512, device="cpu")
        fit = fit_ctf(spectrum, settings.pixel_size, defocus_range=(5000, 30000), device="cpu")
        truth = result.truth
        errors.append(abs(fit.defocus_u + fit.defocus_v - truth.defocus_u - truth.defocus_v) / 2)
    assert np.median(errors) < 100, errors


def test_ice_is_off_at_zero_and_leaves_the_truth_alone() -> None:
    volume = make_phantom()
    plain = Settings(size=256, particles=4, frames=1, contamination=False, ice=0.0)
    a = simulate_micrograph(volume, plain, np.random.default_rng(6), keep_expected=True)
    b = simulate_micrograph(
        volume, replace(plain, ice=1.0), np.random.default_rng(6), keep_expected=True
    )
    assert a.expected is not None and b.expected is not None
    assert a.truth.defocus_u == b.truth.defocus_u
    np.testing.assert_array_equal(a.truth.particles["x"], b.truth.particles["x"])
    assert b.expected.var() > 1.5 * a.expected.var()
    with pytest.raises(ValueError, match="ice"):
        simulate_micrograph(volume, replace(plain, ice=-1.0), np.random.default_rng(6))


def test_contamination_is_present_and_apart_from_particles() -> None:
    result = simulate_micrograph(
        make_phantom(), SMALL, np.random.default_rng(3), keep_expected=True
    )
    table, particles = result.truth.contamination, result.truth.particles
    kinds = list(table["kind"])
    assert 1 <= kinds.count("large") <= 2 and kinds.count("small") >= 3
    points = np.stack([particles["x"], particles["y"]], axis=1)
    assert len(points) == SMALL.particles
    distances = np.hypot(*(points[:, None] - points[None]).transpose(2, 0, 1))
    assert distances[~np.eye(len(points), dtype=bool)].min() >= 0.8 * SMALL.box
    for x, y, kind in zip(table["x"], table["y"], kinds, strict=True):
        nearest = np.hypot(points[:, 0] - x, points[:, 1] - y).min()
        assert nearest >= (0.75 if kind == "small" else 0.5) * SMALL.box
    # a large blob is dark: far below the particle signal
    assert result.expected is not None
    frame = result.expected[0]
    large = kinds.index("large")
    x, y = int(table["x"][large]), int(table["y"][large])
    mask = particle_mask(result.truth, SMALL)
    assert frame[y, x] < frame[mask].mean() - 4 * frame[mask].std()
    clean = simulate_micrograph(
        make_phantom(),
        Settings(size=256, particles=4, frames=2, contamination=False),
        np.random.default_rng(3),
    )
    assert len(clean.truth.contamination["x"]) == 0


def test_simulate_dataset_writes_movies_map_and_consistent_truth(tmp_path: Path) -> None:
    truth = simulate_dataset(
        tmp_path, micrographs=2, size=256, particles_per_micrograph=6, frames=4, seed=3
    )
    assert read_image(truth.volume_path).shape == (64, 64, 64)
    assert len(truth.movies) == 2
    movie = read_images(truth.movies[1], [1, 2, 3, 4])
    assert movie.shape == (4, 256, 256)
    tables = json.loads((tmp_path / "ground_truth.json").read_text())["tables"]
    assert tables == json.loads(json.dumps(truth.tables()))
    assert tables["ctfs"]["micrograph"] == [0, 1]
    assert len(tables["particles"]["x"]) == 12 and set(tables["particles"]["micrograph"]) == {0, 1}
    assert tables["drift"]["frame"] == [1, 2, 3, 4] * 2
    u, v = np.array(tables["ctfs"]["defocus_u"]), np.array(tables["ctfs"]["defocus_v"])
    assert np.all(u >= v) and np.all((u - v) <= 800) and np.all((u + v) / 2 >= 10000)
    again = simulate_dataset(
        tmp_path / "again", micrographs=2, size=256, particles_per_micrograph=6, frames=4, seed=3
    )
    assert again.tables() == truth.tables()


def test_protocol_produces_every_output(project: Project) -> None:
    run = project.run(
        "simulate.spa",
        micrographs=2,
        size=256,
        particles_per_micrograph=6,
        frames=8,
        seed=7,
    ).wait(120)
    movies = run.out.movies.load()
    assert len(movies) == 2 and movies.sampling_rate == 2.0
    assert movies.acquisition is not None and movies.acquisition.dose_per_frame == 2.5
    assert movies[0].read().shape == (256, 256)
    assert read_images(movies[1].path, range(1, 9)).shape == (8, 256, 256)
    movie_uids = set(movies["uid"].tolist())
    volume = run.out.true_volume.load()
    assert len(volume) == 1 and volume[0].read().shape == (64, 64, 64)
    np.testing.assert_allclose(volume[0].read(), make_phantom(64, 2.0), atol=1e-6)
    ctfs = run.out.true_ctfs.load()
    assert set(ctfs["micrograph_uid"].tolist()) == movie_uids and len(ctfs) == 2
    coordinates = run.out.true_coordinates.load()
    particles = run.out.true_particles.load()
    assert len(coordinates) == len(particles) == 12
    assert set(particles["micrograph_uid"].tolist()) == movie_uids
    np.testing.assert_array_equal(particles["coordinate.x"], coordinates["coordinate.x"])
    for uid, defocus in zip(ctfs["micrograph_uid"], ctfs["ctf.defocus_u"], strict=True):
        chosen = particles["micrograph_uid"] == uid
        np.testing.assert_array_equal(particles["ctf.defocus_u"][chosen], defocus)
    drift = run.out.true_drift.load()
    assert len(drift) == 16 and set(drift["movie_uid"].tolist()) == movie_uids
    assert sorted(drift["frame"].tolist()) == sorted(list(range(1, 9)) * 2)
    contamination = run.out.true_contamination.load()
    assert set(contamination["micrograph_uid"].tolist()) <= movie_uids and len(contamination) > 2


def test_protocol_projects_the_chosen_phantom_shape(project: Project) -> None:
    run = project.run(
        "simulate.spa",
        micrographs=1,
        size=128,
        particles_per_micrograph=1,
        frames=2,
        box=32,
        pixel_size=4.0,
        shape="globular",
        seed=2,
    ).wait(120)
    volume = run.out.true_volume.load()[0].read()
    np.testing.assert_allclose(volume, make_phantom(32, 4.0, shape="globular"), atol=1e-6)
    with pytest.raises(ParameterError, match="'round' is not one of"):
        project.run("simulate.spa", micrographs=1, shape="round")


@pytest.mark.gpu
def test_gpu_projection_matches_cpu() -> None:
    if not xp.gpu_available():
        pytest.skip("no CUDA GPU and CuPy here")
    volume = make_phantom()
    cpu = project(volume, 30, 60, -45, "cpu")
    gpu = xp.to_numpy(project(volume, 30, 60, -45, "gpu"))
    np.testing.assert_allclose(gpu, cpu, atol=1e-4 * np.abs(cpu).max())
    settings = Settings(size=128, particles=2, frames=2, box=64, device="gpu")
    result = simulate_micrograph(volume, settings, np.random.default_rng(0))
    assert result.frames.shape == (2, 128, 128)
