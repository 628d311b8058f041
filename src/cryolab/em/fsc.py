"""Fourier shell correlation, resolution, masks, B-factor estimation and sharpening.

- :func:`fsc`: the correlation of two maps in shells of spatial frequency (1/Å), one shell per
  Fourier voxel of radius, from 0 to Nyquist.
- :func:`resolution`: where a curve first falls below a threshold (0.143 for half maps, 0.5
  against a reference), linearly interpolated between shells.
- :func:`soft_mask`: a sphere with a raised-cosine edge.
- :func:`fsc_to_reference`: the FSC of a map against a reference, optionally masked.
- :func:`masked_fsc`: the FSC of masked maps corrected for the correlation the mask itself adds,
  by randomising the phases of the maps beyond the frequency where the unmasked FSC falls below
  0.8 (Chen et al. 2013): ``(FSC_masked - FSC_random) / (1 - FSC_random)`` beyond it.
- :func:`estimate_bfactor` fits the Guinier plot (log of the shell amplitude against ``s**2``)
  between a low-resolution limit (10 Å) and the resolution (Rosenthal and Henderson 2003);
  amplitudes fall as ``exp(-B s**2 / 4)`` and the estimate is the (negative) B to apply.
- :func:`sharpen` multiplies the spectrum by ``exp(-B s**2 / 4)`` (negative B sharpens) and
  :func:`low_pass` cuts at a resolution with a raised-cosine edge.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


def _radius(shape: tuple[int, ...]) -> FloatArray:
    """Fourier radius (voxels) of each coefficient of an ``fftn`` of ``shape`` (cubic)."""
    axes = np.meshgrid(*(np.fft.fftfreq(n) * n for n in shape), indexing="ij")
    radius: FloatArray = np.sqrt(sum(a**2 for a in axes))
    return radius


def _shells(shape: tuple[int, ...]) -> NDArray[np.int64]:
    return np.rint(_radius(shape)).astype(np.int64)


def fsc(
    volume_a: ArrayLike, volume_b: ArrayLike, pixel_size: float
) -> tuple[FloatArray, FloatArray]:
    """Fourier shell correlation of two maps of one cubic shape.

    Returns
    -------
    frequency, values
        Shell frequencies in 1/Å (``0`` to Nyquist, ``1 / (2 * pixel_size)``) and correlations.
    """
    a = np.asarray(volume_a, dtype=np.float64)
    b = np.asarray(volume_b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"maps differ in shape: {a.shape} and {b.shape}")
    fa, fb = np.fft.fftn(a), np.fft.fftn(b)
    shells = _shells(a.shape).ravel()
    count = a.shape[0] // 2 + 1
    cross = np.bincount(shells, (fa * np.conj(fb)).real.ravel(), minlength=count)[:count]
    power_a = np.bincount(shells, (np.abs(fa) ** 2).ravel(), minlength=count)[:count]
    power_b = np.bincount(shells, (np.abs(fb) ** 2).ravel(), minlength=count)[:count]
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.where(power_a * power_b > 0, cross / np.sqrt(power_a * power_b), 0.0)
    frequency = np.arange(count) / (a.shape[0] * pixel_size)
    return frequency, values


def resolution(frequency: ArrayLike, values: ArrayLike, threshold: float = 0.143) -> float:
    """The resolution (Å) where the curve first falls below ``threshold``, interpolated.

    A curve that never falls below gives the resolution of its last shell.
    """
    f = np.asarray(frequency, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    below = np.flatnonzero((v < threshold) & (f > 0))
    if below.size == 0:
        return float(1 / f[-1])
    i = int(below[0])
    if i == 0:
        return float(1 / f[i])
    f0, f1, v0, v1 = f[i - 1], f[i], v[i - 1], v[i]
    crossing = f0 + (v0 - threshold) * (f1 - f0) / (v0 - v1) if v0 != v1 else f1
    return float(1 / crossing) if crossing > 0 else float("inf")


def soft_mask(size: int, radius: float, edge: float = 3.0) -> NDArray[np.float32]:
    """A sphere of ``radius`` px about voxel ``size // 2`` with a raised-cosine ``edge`` (px)."""
    grid = np.arange(size) - size // 2
    z, y, x = np.meshgrid(grid, grid, grid, indexing="ij")
    r = np.sqrt(x**2 + y**2 + z**2)
    t = np.clip((r - radius) / max(edge, 1e-9), 0.0, 1.0)
    mask: NDArray[np.float32] = (0.5 * (1 + np.cos(np.pi * t))).astype(np.float32)
    return mask


def _randomise_phases(volume: FloatArray, beyond: float, rng: np.random.Generator) -> FloatArray:
    """The map with random phases in shells at and beyond radius ``beyond`` (voxels)."""
    spectrum = np.fft.rfftn(volume)
    shape = volume.shape
    axes = [np.fft.fftfreq(n) * n for n in shape[:-1]] + [np.fft.rfftfreq(shape[-1]) * shape[-1]]
    grids = np.meshgrid(*axes, indexing="ij")
    radius = np.sqrt(sum(g**2 for g in grids))
    outer = radius >= beyond
    phases = rng.uniform(0, 2 * np.pi, size=int(outer.sum()))
    spectrum[outer] = np.abs(spectrum[outer]) * np.exp(1j * phases)
    randomised: FloatArray = np.fft.irfftn(spectrum, s=shape, axes=tuple(range(len(shape))))
    return randomised


def masked_fsc(
    volume_a: ArrayLike,
    volume_b: ArrayLike,
    mask: ArrayLike,
    pixel_size: float,
    seed: int = 0,
) -> dict[str, FloatArray]:
    """The FSC of masked maps corrected by phase randomisation.

    Returns
    -------
    dict
        ``frequency``, ``unmasked``, ``masked``, ``random`` (masked FSC of phase-randomised
        maps) and ``corrected`` curves.
    """
    a = np.asarray(volume_a, dtype=np.float64)
    b = np.asarray(volume_b, dtype=np.float64)
    m = np.asarray(mask, dtype=np.float64)
    frequency, unmasked = fsc(a, b, pixel_size)
    _, masked = fsc(a * m, b * m, pixel_size)
    low = np.flatnonzero((unmasked < 0.8) & (np.arange(len(unmasked)) > 0))
    start = int(low[0]) if low.size else len(unmasked)
    rng = np.random.default_rng(seed)
    if start < len(unmasked):
        ra = _randomise_phases(a, start, rng)
        rb = _randomise_phases(b, start, rng)
        _, randomised = fsc(ra * m, rb * m, pixel_size)
    else:
        randomised = np.zeros_like(masked)
    corrected = masked.copy()
    outer = np.arange(len(masked)) >= start
    with np.errstate(invalid="ignore", divide="ignore"):
        fixed = (masked - randomised) / (1 - randomised)
    corrected[outer] = np.nan_to_num(fixed[outer])
    return {
        "frequency": frequency,
        "unmasked": unmasked,
        "masked": masked,
        "random": randomised,
        "corrected": corrected,
    }


def _spectral_grid(shape: tuple[int, ...], pixel_size: float) -> FloatArray:
    """Spatial frequency (1/Å) of each ``rfftn`` coefficient of a map of ``shape``."""
    axes = [np.fft.fftfreq(n) for n in shape[:-1]] + [np.fft.rfftfreq(shape[-1])]
    grids = np.meshgrid(*axes, indexing="ij")
    s: FloatArray = np.sqrt(sum(g**2 for g in grids)) / pixel_size
    return s


def guinier(volume: ArrayLike, pixel_size: float) -> tuple[FloatArray, FloatArray]:
    """The Guinier plot: ``s**2`` (1/Å²) and the log of the mean amplitude in each shell."""
    v = np.asarray(volume, dtype=np.float64)
    amplitude = np.abs(np.fft.fftn(v)).ravel()
    shells = _shells(v.shape).ravel()
    count = v.shape[0] // 2 + 1
    total = np.bincount(shells, amplitude, minlength=count)[:count]
    number = np.bincount(shells, minlength=count)[:count]
    mean = total / np.maximum(number, 1)
    s = np.arange(count) / (v.shape[0] * pixel_size)
    with np.errstate(divide="ignore"):
        return s**2, np.log(np.maximum(mean, 1e-300))


def estimate_bfactor(
    volume: ArrayLike,
    pixel_size: float,
    resolution_limit: float,
    low_resolution: float = 10.0,
) -> float:
    """The B-factor (Å², negative to sharpen) that flattens the Guinier plot.

    The line is fitted to the shells between ``low_resolution`` and ``resolution_limit`` Å;
    amplitudes falling as ``exp(-B0 s**2 / 4)`` give ``-B0``. Fewer than 3 shells in the range
    give 0.
    """
    s2, log_amplitude = guinier(volume, pixel_size)
    chosen = (s2 >= 1 / low_resolution**2) & (s2 <= 1 / resolution_limit**2)
    if chosen.sum() < 3:
        return 0.0
    slope = float(np.polyfit(s2[chosen], log_amplitude[chosen], 1)[0])
    return 4.0 * slope  # log A = -B0 s^2 / 4 + c: the applied B is -B0 = 4 * slope


def _filtered(volume: ArrayLike, pixel_size: float, factor: Any) -> NDArray[np.float32]:
    v = np.asarray(volume, dtype=np.float64)
    result = np.fft.irfftn(np.fft.rfftn(v) * factor, s=v.shape, axes=tuple(range(v.ndim)))
    return result.astype(np.float32)


def sharpen(volume: ArrayLike, pixel_size: float, bfactor: float) -> NDArray[np.float32]:
    """Multiply the map's spectrum by ``exp(-bfactor * s**2 / 4)`` (negative B sharpens)."""
    v = np.asarray(volume, dtype=np.float64)
    s = _spectral_grid(v.shape, pixel_size)
    return _filtered(v, pixel_size, np.exp(-bfactor * s**2 / 4))


def low_pass(
    volume: ArrayLike, pixel_size: float, cutoff: float, edge: float = 0.05
) -> NDArray[np.float32]:
    """Remove frequencies beyond ``1 / cutoff`` (Å) with a raised-cosine edge.

    ``edge`` is the width of the fall-off as a fraction of Nyquist, centred on the cutoff.
    """
    v = np.asarray(volume, dtype=np.float64)
    s = _spectral_grid(v.shape, pixel_size)
    width = max(edge / (2 * pixel_size), 1e-12)
    t = np.clip((s - 1 / cutoff) / width + 0.5, 0.0, 1.0)
    return _filtered(v, pixel_size, 0.5 * (1 + np.cos(np.pi * t)))


def fsc_to_reference(
    volume: ArrayLike,
    reference: ArrayLike,
    pixel_size: float,
    mask_diameter: float | None = None,
) -> tuple[FloatArray, FloatArray]:
    """The FSC of a map against a reference, optionally under a soft spherical mask.

    Parameters
    ----------
    volume, reference
        Maps of one cubic shape, centred on voxel ``N // 2``.
    pixel_size
        Å per voxel.
    mask_diameter
        Diameter (Å) of a :func:`soft_mask` (3 px edge) applied to both maps; ``None``: no mask.
        Read the result with :func:`resolution` (threshold 0.5 against a reference).

    Returns
    -------
    frequency, values
        As :func:`fsc`.
    """
    a = np.asarray(volume, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    if mask_diameter is not None:
        if a.shape != b.shape:
            raise ValueError(f"maps differ in shape: {a.shape} and {b.shape}")
        mask = soft_mask(a.shape[0], 0.5 * mask_diameter / pixel_size)
        a, b = a * mask, b * mask
    return fsc(a, b, pixel_size)
