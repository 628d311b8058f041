"""Simulated single-particle data with ground truth: projections, CTF, micrographs and movies.

Conventions are those of ``docs/conventions.md``; the choices specific to the simulation are:

- **Projection** (:func:`project`) is done in real space, deliberately unlike a Fourier-space
  reconstruction (no "inverse crime"): the image-frame grid ``p = (x, y, z)`` (px from the box
  centre ``N // 2``) is turned into the reference, ``r = A.T @ p``, the map is sampled there
  by trilinear interpolation and summed along z. So ``img(x, y) = sum_z V(A.T @ (x, y, z))``.
- **CTF** (:func:`ctf_image`) is ``-sin(chi)`` of :func:`cryolab.em.ctf.chi` (amplitude
  contrast included), times an optional envelope ``exp(-B s^2 / 4)``. Projected density is
  positive, so particles come out dark at low frequency, as in real micrographs.
- **Particle positions** ``coordinate.x/y`` are the pixel (column, row) of the micrograph where
  the particle centre (map voxel ``N // 2``) lands; they are sub-pixel, so ``transform.shift_x/y``
  are 0. Particles are at least ``0.8 * box`` apart and ``box / 2`` from the edges.
- **Drift**: frame ``f`` (1-based) shows the micrograph translated by ``(shift_x, shift_y)`` px:
  a feature at ``(x, y)`` in the micrograph is at ``(x + shift_x, y + shift_y)`` in the frame.
  Frame 1 has no shift, so aligning every frame onto frame 1 gives the micrograph on which the
  ground-truth coordinates are defined. Shifts are sub-pixel (Fourier shift) on a padded canvas.
- **Noise and SNR**: a frame is ``e * (1 + c * M)`` electrons per pixel plus Poisson (or
  Gaussian) noise, where ``e = dose_per_frame * pixel_size**2``, ``M`` is the CTF-modulated
  signal normalised to unit variance over the particle boxes, and ``c = sqrt(snr / e)``. Thus the
  per-frame SNR, the variance of the noiseless particle signal within the particle boxes over
  the noise variance, is ``snr``.
- **Contamination**: one or two large, dark, irregular blobs (ice or ethane contamination)
  that particles avoid, and several small dense blobs (false-positive bait for pickers), both
  imaged with the same CTF.
- **Ice**: the particles sit in amorphous ice, a weak random phase-object texture
  (:func:`cryolab.em.phantom.ice_texture`, a flat spectrum) imaged with the same CTF (envelope
  included), so the micrographs' power spectra show Thon rings over the whole band as real ones
  do. Its contrast ``ice`` is the standard deviation of the CTF-modulated texture in units of the
  (unit-variance) particle signal ``M``: the per-frame SNR of the ice alone is ``ice**2 * snr``.
  ``ice = 0`` turns it off.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cryolab.em.ctf import chi
from cryolab.em.geometry import euler_to_matrix
from cryolab.em.imageio import read_image, write_mrc, write_stack
from cryolab.em.phantom import (
    PHANTOM_DIAMETER,
    ice_texture,
    large_contamination,
    make_phantom,
    place_points,
    small_blobs,
)
from cryolab.em.xp import array_module, to_numpy

log = logging.getLogger(__name__)
Array = NDArray[Any]


def _ndimage(xp: ModuleType) -> ModuleType:
    """``scipy.ndimage`` or ``cupyx.scipy.ndimage``, matching the array module."""
    name = "scipy.ndimage" if xp is np else "cupyx.scipy.ndimage"
    return importlib.import_module(name)


def project(volume: ArrayLike, rot: float, tilt: float, psi: float, device: str = "cpu") -> Array:
    """Projection of a cubic map at one orientation, in real space.

    Parameters
    ----------
    volume
        ``[z, y, x]`` map of shape ``(N, N, N)``, centred on voxel ``N // 2``.
    rot, tilt, psi
        Euler angles in degrees (RELION convention).
    device
        ``"cpu"``, ``"gpu"`` or ``"auto"`` (:func:`cryolab.em.xp.array_module`).

    Returns
    -------
    array
        ``float32`` image ``[y, x]`` of shape ``(N, N)`` (numpy or CuPy as ``device`` says):
        ``img(x, y) = sum_z V(A.T @ (x, y, z))`` with trilinear interpolation.
    """
    xp = array_module(device)
    vol = xp.asarray(volume, dtype=xp.float32)
    n = vol.shape[0]
    if vol.shape != (n, n, n):
        raise ValueError(f"project needs a cubic map, not shape {vol.shape}")
    a = euler_to_matrix(rot, tilt, psi)
    axis = xp.arange(n, dtype=xp.float32) - n // 2
    px, py, pz = axis[None, None, :], axis[None, :, None], axis[:, None, None]
    # r_k = sum_j A[j, k] p_j, as volume indices (z, y, x); grid axes are (z, y, x) of p
    coords = xp.stack(
        [
            float(a[0, k]) * px + float(a[1, k]) * py + float(a[2, k]) * pz + n // 2
            for k in (2, 1, 0)
        ]
    )
    sampled = _ndimage(xp).map_coordinates(vol, coords, order=1, mode="constant", cval=0.0)
    return sampled.sum(axis=0)  # type: ignore[no-any-return]


def frequencies(shape: tuple[int, int], pixel_size: float = 1.0) -> tuple[Array, Array]:
    """``(kx, ky)`` on the FFT grid of an image of ``shape`` (cycles/Å; cycles/px if 1)."""
    ky = np.fft.fftfreq(shape[0], d=pixel_size)[:, None]
    kx = np.fft.fftfreq(shape[1], d=pixel_size)[None, :]
    return kx, ky


def ctf_image(
    shape: tuple[int, int],
    pixel_size: float,
    defocus_u: float,
    defocus_v: float,
    defocus_angle: float,
    *,
    voltage: float = 300.0,
    spherical_aberration: float = 2.7,
    amplitude_contrast: float = 0.1,
    bfactor: float = 0.0,
) -> NDArray[np.float64]:
    """The CTF ``-sin(chi) * exp(-bfactor s^2 / 4)`` on the (unshifted) FFT grid of an image.

    The frequency direction is measured from +x (columns) towards +y (rows), as in
    ``docs/conventions.md``.
    """
    kx, ky = frequencies(shape, pixel_size)
    s = np.hypot(kx, ky)
    acquisition = {"voltage": voltage, "spherical_aberration": spherical_aberration}
    direction = np.degrees(np.arctan2(ky, kx))
    phase = chi(
        s,
        direction,
        defocus_u,
        defocus_v,
        defocus_angle,
        **acquisition,
        amplitude_contrast=amplitude_contrast,
    )
    ctf: NDArray[np.float64] = -np.sin(phase)
    if bfactor:
        ctf = ctf * np.exp(-bfactor * s**2 / 4)
    return ctf


def apply_filter(image: Any, transfer: ArrayLike, xp: ModuleType = np) -> Any:
    """Real part of ``ifft2(fft2(image) * transfer)`` (last two axes)."""
    spectrum = xp.fft.fft2(xp.asarray(image)) * xp.asarray(transfer)
    return xp.fft.ifft2(spectrum).real


def shift_phase(shape: tuple[int, int], shift_x: float, shift_y: float) -> NDArray[np.complex128]:
    """Fourier factor that moves an image's content by ``(+shift_x, +shift_y)`` pixels."""
    kx, ky = frequencies(shape)
    factor: NDArray[np.complex128] = np.exp(-2j * np.pi * (kx * shift_x + ky * shift_y))
    return factor


def fourier_shift(image: Any, shift_x: float, shift_y: float, xp: ModuleType = np) -> Any:
    """The image with its content moved by ``(shift_x, shift_y)`` px (periodic, sub-pixel)."""
    return apply_filter(image, shift_phase(image.shape[-2:], shift_x, shift_y), xp)


def drift_trajectory(frames: int, length: float, rng: np.random.Generator) -> Array:
    """A smooth drift, ``(frames, 2)`` shifts ``(x, y)`` in px, zero for the first frame.

    The specimen moves fast at first and then settles (exponential approach) along a random
    direction, with a gentle sideways bend; the total path is about ``length`` px.
    """
    t = np.arange(frames) / max(frames - 1, 1)
    tau = rng.uniform(0.15, 0.4)
    g = (1 - np.exp(-t / tau)) / (1 - np.exp(-1 / tau))
    theta = rng.uniform(0, 2 * np.pi)
    total = length * rng.uniform(0.5, 1.0)
    along = total * g
    across = rng.uniform(-0.3, 0.3) * total * 4 * g * (1 - g)
    c, s = math.cos(theta), math.sin(theta)
    return np.stack([along * c - across * s, along * s + across * c], axis=1)


@dataclass(frozen=True)
class Settings:
    """What a simulated micrograph looks like (see the module notes for the conventions)."""

    size: int = 512  # px, square micrographs
    particles: int = 40  # per micrograph (fewer if they do not fit; a warning is logged)
    box: int = 64  # px, edge of the map and of the particle boxes
    diameter: float = PHANTOM_DIAMETER  # Å, of the phantom (when no map is given)
    shape: str = "elongated"  # of the phantom (cryolab.em.phantom.SHAPES)
    frames: int = 16
    pixel_size: float = 2.0  # Å/px
    voltage: float = 300.0  # kV
    spherical_aberration: float = 2.7  # mm
    amplitude_contrast: float = 0.1
    dose_per_frame: float = 2.5  # e/Å², 40 e/Å² over 16 frames
    snr: float = 0.0025  # per frame, over the particle boxes
    defocus_range: tuple[float, float] = (10000.0, 25000.0)  # Å, mean defocus
    astigmatism: tuple[float, float] = (0.0, 800.0)  # Å, defocus_u - defocus_v
    drift: float = 20.0  # Å, about the total path of the drift
    bfactor: float = 40.0  # Å², envelope of the CTF
    dose_bfactor: float = 0.0  # Å² per e/Å² of accumulated dose (radiation damage), 0: off
    contamination: bool = True
    ice: float = 1.0  # std of the CTF-modulated ice over that of the particle signal, 0: off
    noise: str = "poisson"  # or "gaussian"
    device: str = "cpu"


@dataclass
class MicrographTruth:
    """Ground truth of one micrograph: CTF, drift, particles and contamination."""

    defocus_u: float
    defocus_v: float
    defocus_angle: float
    drift: Array  # (frames, 2), px
    particles: dict[str, Array]  # x, y (px), rot, tilt, psi (deg)
    contamination: dict[str, Array]  # x, y, radius (px), kind ("large" / "small")


@dataclass
class SimulatedMicrograph:
    """A simulated movie: noisy frames, optionally the noiseless ones, and its ground truth."""

    frames: NDArray[np.float32]
    truth: MicrographTruth
    expected: NDArray[np.float32] | None = None


def simulate_micrograph(
    volume: ArrayLike,
    settings: Settings,
    rng: np.random.Generator,
    *,
    keep_expected: bool = False,
) -> SimulatedMicrograph:
    """Simulate one movie and its ground truth.

    Parameters
    ----------
    volume
        ``[z, y, x]`` map of edge ``settings.box``, voxel size ``settings.pixel_size``.
    settings
        The simulation settings.
    rng
        The random generator (every random choice comes from it, on the CPU).
    keep_expected
        Also return the noiseless frames (the expected electron counts).
    """
    xp = array_module(settings.device)
    vol = np.asarray(volume, dtype=np.float32)
    box, size, pixel = settings.box, settings.size, settings.pixel_size
    if vol.shape != (box, box, box):
        raise ValueError(f"the map has shape {vol.shape}, expected a {box}^3 box")
    if settings.ice < 0:
        raise ValueError(f"ice must be 0 or more, not {settings.ice}")
    if settings.noise not in ("poisson", "gaussian"):
        raise ValueError(f"noise must be 'poisson' or 'gaussian', not {settings.noise!r}")
    # CTF and drift
    mean = rng.uniform(*settings.defocus_range)
    astigmatism = rng.uniform(*settings.astigmatism)
    angle = rng.uniform(0.0, 180.0)
    du, dv = mean + astigmatism / 2, mean - astigmatism / 2
    drift = drift_trajectory(settings.frames, settings.drift / pixel, rng)
    pad = math.ceil(float(np.abs(drift).max(initial=0.0))) + box
    shape = (size + 2 * pad, size + 2 * pad)
    # contamination, then particles around it, then small blobs around both
    contamination, table, avoid = large_contamination(
        rng, shape, pad, box, int(rng.integers(1, 3)) if settings.contamination else 0
    )
    points = place_points(rng, settings.particles, box / 2, size - box / 2, 0.8 * box, avoid)
    if len(points) < settings.particles:
        log.warning("placed %d of %d particles (no room left)", len(points), settings.particles)
    count = len(points)
    rot = rng.uniform(-180, 180, count)
    tilt = np.degrees(np.arccos(rng.uniform(-1, 1, count)))
    psi = rng.uniform(-180, 180, count)
    particles = xp.zeros(shape, dtype=xp.float32)
    half = box // 2
    peak = 0.0
    for i, (x, y) in enumerate(points):
        image = project(vol, rot[i], tilt[i], psi[i], settings.device)
        ix, iy = math.floor(x), math.floor(y)
        image = fourier_shift(image, x - ix, y - iy, xp)
        peak = max(peak, float(image.max()))
        top, left = iy + pad - half, ix + pad - half
        particles[top : top + box, left : left + box] += image
    if settings.contamination:
        near = [(x, y, 0.75 * box) for x, y in points] + [(a, b, r / 1.25) for a, b, r in avoid]
        spots = place_points(rng, int(rng.integers(5, 11)), 8, size - 8, 10, near)
        radii = small_blobs(rng, contamination, spots, pad)
        table = {
            "x": np.concatenate([table["x"], spots[:, 0]]),
            "y": np.concatenate([table["y"], spots[:, 1]]),
            "radius": np.concatenate([table["radius"], radii]),
            "kind": np.array([*table["kind"], *["small"] * len(spots)], dtype=object),
        }
    optics = ("voltage", "spherical_aberration", "amplitude_contrast", "bfactor")
    ctf = ctf_image(shape, pixel, du, dv, angle, **{k: getattr(settings, k) for k in optics})
    signal = apply_filter(particles, ctf, xp)
    inner = (slice(pad, pad + size), slice(pad, pad + size))
    mask = np.zeros((size, size), dtype=bool)
    for x, y in points:
        ix, iy = math.floor(x), math.floor(y)
        mask[iy - half : iy - half + box, ix - half : ix - half + box] = True
    visible = to_numpy(signal[inner])
    scale = float(visible[mask].std()) if count else 1.0
    if settings.contamination:
        # contamination densities are relative to the brightest particle projection
        signal = signal + apply_filter(xp.asarray(contamination * (peak or 1.0)), ctf, xp)
    signal = signal / (scale or 1.0)
    if settings.ice:
        # amorphous ice, drawn after the truth so that the truth does not depend on it
        ice = apply_filter(xp.asarray(ice_texture(rng, shape, pixel)), ctf, xp)
        signal = signal + ice * (settings.ice / (float(ice[inner].std()) or 1.0))
    spectrum = xp.fft.fft2(signal)
    electrons = settings.dose_per_frame * pixel**2
    contrast = math.sqrt(settings.snr / electrons)
    kx, ky = frequencies(shape, pixel)
    s2 = kx**2 + ky**2
    frames = np.empty((settings.frames, size, size), dtype=np.float32)
    expected = np.empty_like(frames) if keep_expected else None
    for f in range(settings.frames):
        transfer = shift_phase(shape, drift[f, 0], drift[f, 1])
        if settings.dose_bfactor:
            dose = settings.dose_per_frame * (f + 0.5)
            transfer = transfer * np.exp(-settings.dose_bfactor * dose * s2 / 4)
        frame = xp.fft.ifft2(spectrum * xp.asarray(transfer)).real[inner]
        mean_counts = np.clip(electrons * (1 + contrast * to_numpy(frame)), 0, None)
        if expected is not None:
            expected[f] = mean_counts
        if settings.noise == "poisson":
            frames[f] = rng.poisson(mean_counts)
        else:
            frames[f] = mean_counts + math.sqrt(electrons) * rng.standard_normal(mean_counts.shape)
    truth = MicrographTruth(
        defocus_u=du,
        defocus_v=dv,
        defocus_angle=angle,
        drift=drift,
        particles={"x": points[:, 0], "y": points[:, 1], "rot": rot, "tilt": tilt, "psi": psi},
        contamination=table,
    )
    return SimulatedMicrograph(frames=frames, truth=truth, expected=expected)


def load_volume(volume: ArrayLike | str | Path | None, settings: Settings) -> NDArray[np.float32]:
    """The map to project: the phantom (``None``), a file, or an array; checked to fit."""
    if volume is None:
        return make_phantom(
            settings.box, settings.pixel_size, diameter=settings.diameter, shape=settings.shape
        )
    data = read_image(volume) if isinstance(volume, (str, Path)) else volume
    array = np.asarray(data, dtype=np.float32)
    if array.ndim != 3 or len(set(array.shape)) != 1:
        raise ValueError(f"the volume must be a cubic 3-D map, not shape {array.shape}")
    return array


@dataclass
class GroundTruth:
    """What :func:`simulate_dataset` made: files, settings and the true values per micrograph."""

    volume_path: str
    settings: Settings
    movies: list[str] = field(default_factory=list)
    micrographs: list[MicrographTruth] = field(default_factory=list)

    def tables(self) -> dict[str, dict[str, list[Any]]]:
        """Columns of the ground-truth tables ``ctfs``, ``particles``, ``drift``, ``contamination``.

        Every table has a 0-based ``micrograph`` column; drift frames are 1-based (as
        ``image.index`` of the movie stack) and in px; coordinates and radii in px; defocus in Å
        and angles in degrees.
        """
        out: dict[str, dict[str, list[Any]]] = {}
        for index, truth in enumerate(self.micrographs):
            frame = np.arange(1, len(truth.drift) + 1)
            parts: dict[str, dict[str, Any]] = {
                "ctfs": {
                    "defocus_u": [truth.defocus_u],
                    "defocus_v": [truth.defocus_v],
                    "defocus_angle": [truth.defocus_angle],
                },
                "particles": truth.particles,
                "drift": {
                    "frame": frame,
                    "shift_x": truth.drift[:, 0],
                    "shift_y": truth.drift[:, 1],
                },
                "contamination": truth.contamination,
            }
            for name, columns in parts.items():
                table = out.setdefault(name, {})
                rows = len(next(iter(columns.values())))
                table.setdefault("micrograph", []).extend([index] * rows)
                for key, values in columns.items():
                    table.setdefault(key, []).extend(np.asarray(values).tolist())
        return out

    def save(self, path: str | Path) -> Path:
        """Write the ground truth as JSON (files, settings and :meth:`tables`)."""
        data = {
            "volume_path": self.volume_path,
            "movies": self.movies,
            "settings": asdict(self.settings),
            "tables": self.tables(),
        }
        target = Path(path)
        target.write_text(json.dumps(data, indent=1))
        return target


def simulate_dataset(
    folder: str | Path,
    *,
    micrographs: int = 8,
    size: int = 512,
    particles_per_micrograph: int = 40,
    box: int = 64,
    frames: int = 16,
    pixel_size: float = 2.0,
    snr: float = 0.0025,
    defocus_range: tuple[float, float] = (10000.0, 25000.0),
    astigmatism: tuple[float, float] = (0.0, 800.0),
    seed: int = 0,
    volume: ArrayLike | str | Path | None = None,
    **options: Any,
) -> GroundTruth:
    """Simulate a small single-particle data set with its ground truth.

    Writes ``volume.mrc`` (the true map), ``movie_NNN.mrcs`` (frame stacks) and
    ``ground_truth.json`` into ``folder``.

    Parameters
    ----------
    folder
        Where to write (created if needed).
    micrographs, size, particles_per_micrograph, box, frames, pixel_size, snr
        See :class:`Settings` (``particles_per_micrograph`` is ``Settings.particles``).
    defocus_range, astigmatism
        Ranges (Å) of the mean defocus and of ``defocus_u - defocus_v``, drawn uniformly.
    seed
        Micrograph ``i`` uses ``numpy.random.default_rng([seed, i])``.
    volume
        The map (array or file, ``box`` taken from it); default the phantom of
        :func:`cryolab.em.phantom.make_phantom`.
    **options
        Other :class:`Settings` fields (``voltage``, ``dose_per_frame``, ``noise``, ...).
    """
    settings = Settings(
        size=size,
        particles=particles_per_micrograph,
        box=box,
        frames=frames,
        pixel_size=pixel_size,
        snr=snr,
        defocus_range=(float(defocus_range[0]), float(defocus_range[1])),
        astigmatism=(float(astigmatism[0]), float(astigmatism[1])),
        **options,
    )
    vol = load_volume(volume, settings)
    settings = replace(settings, box=vol.shape[0])
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    truth = GroundTruth(str(write_mrc(target / "volume.mrc", vol, pixel_size).resolve()), settings)
    for index in range(micrographs):
        result = simulate_micrograph(vol, settings, np.random.default_rng([seed, index]))
        path = write_stack(target / f"movie_{index:03d}.mrcs", result.frames, pixel_size)
        truth.movies.append(str(path.resolve()))
        truth.micrographs.append(result.truth)
        log.info("simulated movie %d of %d", index + 1, micrographs)
    truth.save(target / "ground_truth.json")
    return truth
