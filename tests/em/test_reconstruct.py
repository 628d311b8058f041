"""Direct Fourier reconstruction, FSC, masks and sharpening, and the spa protocols end to end.

The test map is a sum of Gaussian blobs. Its projections are computed analytically in real space
(the projection of a 3-D Gaussian along z is a 2-D Gaussian at the projected centre), so they
share no code and no interpolation with the Fourier-space reconstruction.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from cryolab.core.project import Project
from cryolab.em.ctf import chi
from cryolab.em.fsc import (
    estimate_bfactor,
    fsc,
    low_pass,
    masked_fsc,
    resolution,
    sharpen,
    soft_mask,
)
from cryolab.em.geometry import euler_to_matrix
from cryolab.em.imageio import read_image, write_mrc, write_stack
from cryolab.em.objects import Acquisition, SetOfParticles, SetOfVolumes
from cryolab.em.reconstruct import Reconstructor

from .conftest import imported

Array = NDArray[np.float64]
BOX = 32
PIXEL = 2.0
ACQUISITION = Acquisition(
    voltage=300, spherical_aberration=2.7, amplitude_contrast=0.1, sampling_rate=PIXEL
)


@dataclass
class Blobs:
    """Gaussian blobs: centres (px from the box centre, x y z), widths (px) and heights."""

    centres: Array
    sigmas: Array
    heights: Array

    def volume(self, size: int = BOX) -> Array:
        grid = np.arange(size) - size // 2
        z, y, x = np.meshgrid(grid, grid, grid, indexing="ij")
        volume = np.zeros((size, size, size))
        for (cx, cy, cz), sigma, height in zip(
            self.centres, self.sigmas, self.heights, strict=True
        ):
            r2 = (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2
            volume += height * np.exp(-r2 / (2 * sigma**2))
        return volume

    def project(self, poses: dict[str, Array], size: int = BOX) -> Array:
        """Images ``img(x, y) = integral of V(A.T @ (x, y, z)) dz``, shifted by ``-shift``."""
        a = euler_to_matrix(poses["rot"], poses["tilt"], poses["psi"])  # (n, 3, 3)
        sx, sy = poses["shift_x"], poses["shift_y"]
        moved = np.einsum("nij,bj->nbi", a, self.centres)  # A @ r for every blob
        px = moved[..., 0] - (sx / PIXEL)[:, None]
        py = moved[..., 1] - (sy / PIXEL)[:, None]
        grid = np.arange(size) - size // 2
        s = self.sigmas[None, :, None]
        gx = np.exp(-((grid[None, None] - px[..., None]) ** 2) / (2 * s**2))
        gy = np.exp(-((grid[None, None] - py[..., None]) ** 2) / (2 * s**2))
        weight = self.heights * self.sigmas * np.sqrt(2 * np.pi)
        images: Array = np.einsum("b,nby,nbx->nyx", weight, gy, gx)
        return images


def make_blobs(seed: int = 1, count: int = 40, radius: float = 9.0) -> Blobs:
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=(count, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    centres = direction * radius * rng.uniform(0, 1, (count, 1)) ** (1 / 3)
    return Blobs(centres, rng.uniform(1.0, 1.8, count), rng.uniform(0.5, 1.5, count))


def random_poses(count: int, seed: int = 2, shift: float = 0.0) -> dict[str, Array]:
    """Orientations uniform on the sphere with a uniform in-plane angle, and shifts (Å)."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(count, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return {
        "rot": np.degrees(np.arctan2(v[:, 1], v[:, 0])),
        "tilt": np.degrees(np.arccos(v[:, 2])),
        "psi": rng.uniform(-180, 180, count),
        "shift_x": rng.uniform(-shift, shift, count),
        "shift_y": rng.uniform(-shift, shift, count),
    }


def project_all(blobs: Blobs, poses: dict[str, Array], size: int = BOX) -> Array:
    return np.concatenate(
        [
            blobs.project({k: v[s : s + 250] for k, v in poses.items()}, size=size)
            for s in range(0, len(poses["rot"]), 250)
        ]
    )


def fsc_at(volume: Array, truth: Array, fraction: float) -> float:
    """The FSC against the truth at ``fraction`` of Nyquist (interpolated between shells)."""
    frequency, values = fsc(volume, truth, PIXEL)
    return float(np.interp(fraction / (2 * PIXEL), frequency, values))


def lowest_fsc_up_to(volume: Array, truth: Array, fraction: float) -> float:
    frequency, values = fsc(volume, truth, PIXEL)
    return min(
        float(values[frequency <= fraction / (2 * PIXEL) + 1e-12].min()),
        fsc_at(volume, truth, fraction),
    )


@pytest.fixture(scope="module")
def blobs() -> Blobs:
    return make_blobs()


@pytest.fixture(scope="module")
def truth(blobs: Blobs) -> Array:
    return blobs.volume()


def reconstruct(images: Array, poses: dict[str, Array], **ctf: Array) -> Array:
    maker = Reconstructor(BOX, PIXEL, device="cpu")
    for start in range(0, len(images), 500):
        part = slice(start, start + 500)
        maker.add(
            images[part], *(poses[k][part] for k in poses), **{k: v[part] for k, v in ctf.items()}
        )
    return np.asarray(maker.finish(), dtype=np.float64)


@pytest.mark.parametrize("shift", [0.0, 6.0])
def test_reconstruction_from_true_angles(blobs: Blobs, truth: Array, shift: float) -> None:
    poses = random_poses(2000, shift=shift)
    volume = reconstruct(project_all(blobs, poses), poses)
    lowest = lowest_fsc_up_to(volume, truth, 2 / 3)
    assert lowest >= 0.5, f"FSC against the truth falls to {lowest:.3f} before 2/3 Nyquist"
    # the blobs are chiral: the mirror image does not match (the hand is right)
    assert fsc_at(volume[::-1], truth, 1 / 3) < 0.5
    # the scale of the map is the scale of the truth (no normalisation lost)
    scale = float((volume * truth).sum() / (truth**2).sum())
    assert scale == pytest.approx(1.0, abs=0.05)


def ctf_images(blobs: Blobs, poses: dict[str, Array], defocus: Array) -> Array:
    """Projections in a twice larger box, multiplied by their CTF, cropped to the box."""
    big = project_all(blobs, poses, size=2 * BOX)
    k = np.fft.fftfreq(2 * BOX) / PIXEL
    ky, kx = np.meshgrid(k, k, indexing="ij")
    ctf = -np.sin(
        chi(
            np.hypot(kx, ky)[None],
            np.degrees(np.arctan2(ky, kx))[None],
            defocus[:, None, None],
            0.95 * defocus[:, None, None],
            30.0,
            voltage=300,
            spherical_aberration=2.7,
            amplitude_contrast=0.1,
        )
    )
    spectrum = np.fft.fft2(np.fft.ifftshift(big, axes=(1, 2))) * ctf
    images = np.fft.fftshift(np.fft.ifft2(spectrum).real, axes=(1, 2))
    return images[:, BOX // 2 : BOX // 2 + BOX, BOX // 2 : BOX // 2 + BOX]


def test_ctf_weighted_reconstruction(blobs: Blobs, truth: Array) -> None:
    poses = random_poses(2000, seed=3, shift=4.0)
    defocus = np.random.default_rng(4).uniform(6000, 15000, 2000)
    images = ctf_images(blobs, {**poses, "shift_x": 0 * defocus, "shift_y": 0 * defocus}, defocus)
    # the CTF acts on the unshifted projection here, so the shift is applied afterwards
    shifted = np.fft.ifft2(
        np.fft.fft2(images)
        * np.exp(
            2j
            * np.pi
            * (
                np.fft.fftfreq(BOX)[None, None, :] * poses["shift_x"][:, None, None]
                + np.fft.fftfreq(BOX)[None, :, None] * poses["shift_y"][:, None, None]
            )
            / PIXEL
        )
    ).real
    volume = reconstruct(
        shifted, poses, defocus_u=defocus, defocus_v=0.95 * defocus, defocus_angle=30 + 0 * defocus
    )
    lowest = lowest_fsc_up_to(volume, truth, 2 / 3)
    assert lowest >= 0.5, (
        f"CTF-weighted FSC against the truth falls to {lowest:.3f} before 2/3 Nyquist"
    )


def test_partial_sums_merge_like_one_pass(blobs: Blobs) -> None:
    poses = random_poses(300, seed=5, shift=3.0)
    images = project_all(blobs, poses)
    defocus = np.full(300, 12000.0)
    whole = Reconstructor(BOX, PIXEL, device="cpu")
    whole.add(images, *poses.values(), defocus_u=defocus)
    first = Reconstructor(BOX, PIXEL, device="cpu")
    second = Reconstructor(BOX, PIXEL, device="cpu")
    first.add(images[:120], *(v[:120] for v in poses.values()), defocus_u=defocus[:120])
    second.add(images[120:], *(v[120:] for v in poses.values()), defocus_u=defocus[120:])
    first.merge(second)
    assert first.count == whole.count == 300
    np.testing.assert_allclose(first.finish(), whole.finish(), rtol=1e-4, atol=1e-4)


def test_large_batches_are_inserted_in_pieces(
    blobs: Blobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cryolab.em.reconstruct as module

    poses = random_poses(40, seed=12, shift=3.0)
    images = project_all(blobs, poses)
    defocus = np.linspace(8000, 12000, 40)
    whole = Reconstructor(BOX, PIXEL, device="cpu")
    whole.add(images, *poses.values(), defocus_u=defocus, phase_shift=10.0)
    monkeypatch.setattr(module, "MAX_SAMPLES", 7 * (2 * BOX) ** 2)  # 7 images at a time
    pieces = Reconstructor(BOX, PIXEL, device="cpu")
    pieces.add(images, *poses.values(), defocus_u=defocus, phase_shift=10.0)
    assert pieces.count == 40
    np.testing.assert_allclose(pieces.finish(), whole.finish(), rtol=1e-4, atol=1e-4)


def test_partials_round_trip_through_files(blobs: Blobs, tmp_path: Path) -> None:
    poses = random_poses(50, seed=6)
    maker = Reconstructor(BOX, PIXEL, device="cpu", voltage=200)
    maker.add(project_all(blobs, poses), *poses.values())
    loaded = Reconstructor.load_partial(maker.save_partial(tmp_path / "part.npz"), device="cpu")
    assert (loaded.count, loaded.voltage, loaded.pad) == (50, 200.0, 2)
    np.testing.assert_array_equal(loaded.finish(), maker.finish())


def test_fsc_of_a_map_with_itself_is_one(truth: Array) -> None:
    frequency, values = fsc(truth, truth, PIXEL)
    assert len(frequency) == BOX // 2 + 1
    assert frequency[-1] == pytest.approx(1 / (2 * PIXEL))
    np.testing.assert_allclose(values, 1.0, atol=1e-12)
    assert resolution(frequency, values) == pytest.approx(2 * PIXEL)
    noise = np.random.default_rng(0).normal(size=truth.shape)
    other = np.random.default_rng(1).normal(size=truth.shape)
    assert np.abs(fsc(noise, other, PIXEL)[1][2:]).max() < 0.2


def test_resolution_interpolates_the_crossing() -> None:
    frequency = np.linspace(0, 0.25, 26)
    values = np.clip(1 - frequency / 0.2, 0, 1)  # crosses 0.5 at 0.1 and 0.143 at 0.1714
    assert resolution(frequency, values, 0.5) == pytest.approx(10.0)
    assert resolution(frequency, values, 0.143) == pytest.approx(1 / 0.1714, rel=1e-9)
    assert resolution(frequency, np.ones(26)) == pytest.approx(4.0)


def test_sharpening_and_bfactor_estimate() -> None:
    noise = np.random.default_rng(7).normal(size=(48, 48, 48))
    np.testing.assert_allclose(sharpen(noise, 1.5, 0.0), noise, atol=1e-5)
    blurred = sharpen(noise, 1.5, 120.0)  # amplitudes fall as exp(-120 s^2 / 4)
    estimate = estimate_bfactor(blurred, 1.5, resolution_limit=3.5, low_resolution=10.0)
    assert estimate == pytest.approx(-120.0, abs=10.0)
    np.testing.assert_allclose(sharpen(blurred, 1.5, estimate), noise, atol=0.1 * noise.std())
    filtered = low_pass(noise, 1.5, 6.0)
    frequency, values = fsc(filtered, noise, 1.5)
    assert values[frequency < 1 / 7].min() > 0.99
    spectrum = np.abs(np.fft.fftn(filtered))
    s = np.sqrt(sum(g**2 for g in np.meshgrid(*[np.fft.fftfreq(48) / 1.5] * 3, indexing="ij")))
    assert spectrum[s > 1 / 5.5].max() < 1e-5 * spectrum.max()


def test_soft_mask_and_masked_fsc_correction() -> None:
    mask = soft_mask(32, 10, 4)
    assert mask[16, 16, 16] == 1.0 and mask[16, 16, 30] == 0.0
    assert 0 < mask[16, 16, 28] < 1
    rng = np.random.default_rng(8)
    signal = low_pass(rng.normal(size=(32, 32, 32)), 1.0, 4.0)
    a = signal + 0.5 * rng.normal(size=signal.shape)
    b = signal + 0.5 * rng.normal(size=signal.shape)
    curves = masked_fsc(a, b, mask, 1.0)
    high = curves["frequency"] > 0.3  # no signal beyond 1/4: only the mask correlates
    assert np.abs(curves["corrected"][high]).max() < 0.25


def test_protocols_through_a_project(
    project: Project, blobs: Blobs, truth: Array, tmp_path: Path
) -> None:
    count = 600
    poses = random_poses(count, seed=9)
    rng = np.random.default_rng(10)
    defocus = rng.uniform(6000, 15000, count)
    images = ctf_images(blobs, poses, defocus)
    images += rng.normal(scale=0.5 * images.std(), size=images.shape)  # SNR 4 per pixel
    stack = write_stack(tmp_path / "particles.mrcs", images.astype(np.float32), PIXEL)
    particles = SetOfParticles(
        {
            "image.path": [str(stack)] * count,
            "image.index": np.arange(1, count + 1),
            **{f"transform.{k}": v for k, v in poses.items()},
            "ctf.defocus_u": defocus,
            "ctf.defocus_v": 0.95 * defocus,
            "ctf.defocus_angle": np.full(count, 30.0),
            "half": np.arange(count) % 2 + 1,
        },
        properties={
            "sampling_rate": PIXEL,
            "acquisition": ACQUISITION.to_dict(),
            "inverted": False,  # raw contrast: protein dark, CTF -sin(chi)
        },
    )
    source = imported(project, "particles", particles)
    run = project.run(
        "spa.reconstruct", particles=source, ctf_correction=True, parts=3, batch_size=128
    ).wait(120)
    volumes = run.out.volume.load()
    assert len(volumes) == 1 and volumes.properties["sampling_rate"] == PIXEL
    volume = read_image(volumes["image.path"][0], 1).astype(np.float64)
    measured = fsc_at(volume, truth, 0.5)
    assert measured >= 0.8, f"FSC against the truth at 1/2 Nyquist is {measured:.3f}"
    half1 = read_image(volumes["volume.half1"][0], 1).astype(np.float64)
    assert fsc_at(half1, truth, 0.5) >= 0.5

    curve = project.run("spa.fsc", volume=run.out.volume, mask_radius=28.0).wait(60).out.fsc
    resolution_05 = curve.load().properties["resolution_0.5"]
    assert curve.load().properties["resolution"] <= resolution_05 < 3 * 2 * PIXEL

    same = project.run("spa.fsc", volume=run.out.volume, other=run.out.volume).wait(60)
    assert same.out.fsc.load().properties["resolution"] == pytest.approx(2 * PIXEL)

    mask_file = write_mrc(tmp_path / "mask.mrc", soft_mask(BOX, 14, 3), PIXEL)
    mask = SetOfVolumes({"image.path": [str(mask_file)]}, properties={"sampling_rate": PIXEL})
    post = project.run(
        "spa.postprocess", volume=run.out.volume, mask=imported(project, "mask", mask)
    ).wait(60)
    sharpened = post.out.volume.load()
    assert Path(sharpened["image.path"][0]).exists()
    assert np.isfinite(post.out.fsc.load().properties["bfactor"])
