"""CTF estimation: averaged power spectrum, background subtraction and an astigmatic fit.

The spectrum is the average periodogram of overlapping tiles (:func:`power_spectrum`), kept
as a centred ``(box, box)`` array whose pixel ``(box // 2, box // 2)`` is zero frequency, with
rows along ky and columns along kx (``docs/conventions.md``). :func:`fit_ctf` fits the
background-subtracted, locally normalised amplitude spectrum with ``sin²(chi)``
(:func:`cryolab.em.ctf.chi`): an exhaustive 1-D defocus search on the rotational average
(which also picks the band with signal), then, for its best peaks, a coarse grid of
astigmatism and a Nelder-Mead refinement of ``(defocus_u, defocus_v, defocus_angle)`` on the
2-D spectrum; the peaks are compared on a common band. A cubic trend in frequency is
projected out of data and models, so leftover background does not pass for rings. The score
is the correlation of model and spectrum in the fitted band, and the fit resolution is the
highest frequency up to which the equiphase average keeps correlating with the model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage, optimize

from cryolab.em.ctf import chi, wavelength
from cryolab.em.xp import array_module, to_numpy

__all__ = ["CtfFit", "fit_ctf", "power_spectrum", "subtract_background"]

log = logging.getLogger(__name__)

Array = NDArray[np.float64]
MIN_RING_PIXELS = 3.0  # a defocus whose rings are closer than this (px) at the limit aliases
RESOLUTION_THRESHOLD = 0.3  # per-ring correlation below which the rings no longer fit
DEFOCUS_STEP = 50.0  # Å, the 1-D search grid
MIN_RINGS = 2.0  # a model with fewer rings in the band is hard to tell from the background
PEAKS = 3  # 1-D search peaks refined in 2-D
PEAK_SEPARATION = 1000.0  # Å between two peaks
TREND_DEGREE = 3  # smooth background left after subtraction: a polynomial in frequency


@dataclass(frozen=True)
class CtfFit:
    """The result of :func:`fit_ctf`; defocus in Å (``U >= V``), angle in degrees [0, 180)."""

    defocus_u: float
    defocus_v: float
    defocus_angle: float
    score: float
    resolution: float


@dataclass(frozen=True)
class _Optics:
    """Voltage (kV), Cs (mm) and amplitude contrast: what the CTF phase needs."""

    voltage: float
    cs: float
    amplitude_contrast: float

    def chi(self, s: Any, phi: Any, du: Any, dv: Any, angle: Any, contrast: bool = True) -> Array:
        """:func:`cryolab.em.ctf.chi` for these optics (without the amplitude contrast)."""
        return chi(
            s,
            phi,
            du,
            dv,
            angle,
            voltage=self.voltage,
            spherical_aberration=self.cs,
            amplitude_contrast=self.amplitude_contrast if contrast else 0.0,
        )


def power_spectrum(
    image: ArrayLike, box: int = 512, overlap: float = 0.5, device: str = "auto"
) -> Array:
    """The average periodogram of overlapping ``box``-sized tiles, centred.

    Each tile has its mean removed before its FFT. Raises ``ValueError`` when the image is
    smaller than one tile.
    """
    xp = array_module(device)
    data = xp.asarray(image, dtype=xp.float32)
    if data.ndim != 2:
        raise ValueError(f"need a 2-D image, got shape {tuple(data.shape)}")
    ny, nx = data.shape
    if box < 16 or ny < box or nx < box:
        raise ValueError(
            f"the image ({nx} x {ny} px) is smaller than the spectrum box ({box} px); "
            f"use a box of at most {min(nx, ny)} px"
        )
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), not {overlap}")
    step = max(1, round(box * (1 - overlap)))
    starts_y = list(range(0, ny - box + 1, step))
    starts_x = list(range(0, nx - box + 1, step))
    total = xp.zeros((box, box), dtype=xp.float64)
    for y in starts_y:
        tiles = xp.stack([data[y : y + box, x : x + box] for x in starts_x])
        tiles = tiles - tiles.mean(axis=(1, 2), keepdims=True)
        total += (xp.abs(xp.fft.fft2(tiles)) ** 2).sum(axis=0)
    spectrum = xp.fft.fftshift(total / (len(starts_y) * len(starts_x) * box * box))
    result: Array = to_numpy(spectrum).astype(np.float64)
    return result


def subtract_background(spectrum: ArrayLike, width: int | None = None) -> Array:
    """The amplitude spectrum minus its local mean (a box filter ``width`` px wide).

    The amplitude (square root of the power) is used; the centre cross of zero frequency is
    replaced by its neighbours' values first so that it does not spread into the background.
    """
    power = np.asarray(spectrum, dtype=np.float64)
    box = power.shape[0]
    amplitude = np.sqrt(np.maximum(power, 0.0))
    c = box // 2
    amplitude[c, :] = 0.5 * (amplitude[c - 1, :] + amplitude[c + 1, :])
    amplitude[:, c] = 0.5 * (amplitude[:, c - 1] + amplitude[:, c + 1])
    size = width or max(5, box // 16)
    background = ndimage.uniform_filter(amplitude, size=size, mode="wrap")
    result: Array = amplitude - background
    return result


def _grid(box: int, pixel_size: float) -> tuple[Array, Array]:
    """Frequency (1/Å) and direction (degrees from +x) of each pixel of a centred spectrum."""
    k = (np.arange(box) - box // 2) / (box * pixel_size)
    ky, kx = np.meshgrid(k, k, indexing="ij")
    return np.hypot(kx, ky), np.degrees(np.arctan2(ky, kx))


def _trend_basis(frequency: Array, degree: int = TREND_DEGREE) -> Array:
    """Orthonormal columns spanning polynomials in frequency up to ``degree`` (a smooth trend)."""
    low, high = float(frequency.min()), float(frequency.max())
    x = (frequency - low) / max(high - low, 1e-30) * 2 - 1
    vandermonde = np.stack([x**power for power in range(degree + 1)], axis=1)
    basis: Array = np.linalg.qr(vandermonde)[0]
    return basis


def _ring_period(defocus: Array, frequency: Array | float, lam: float, cs_a: float) -> Array:
    """Distance (1/Å) between CTF zeros at ``frequency`` for each defocus."""
    slope = 2 * lam * defocus * frequency - 2 * cs_a * lam**3 * frequency**3
    result: Array = 1.0 / np.maximum(np.abs(slope), 1e-30)
    return result


def fit_ctf(
    spectrum: ArrayLike,
    pixel_size: float,
    voltage: float = 300.0,
    cs: float = 2.7,
    amplitude_contrast: float = 0.1,
    defocus_range: tuple[float, float] = (5000.0, 50000.0),
    resolution_range: tuple[float, float] = (30.0, 5.0),
    device: str = "auto",
) -> CtfFit:
    """Fit an astigmatic CTF to a centred power spectrum from :func:`power_spectrum`.

    Parameters
    ----------
    spectrum
        ``(box, box)`` power spectrum, zero frequency at ``box // 2``.
    pixel_size
        Å/px of the micrograph.
    voltage, cs, amplitude_contrast
        kV, mm and fraction.
    defocus_range
        Lowest and highest defocus searched, Å (underfocus positive).
    resolution_range
        Lowest and highest resolution fitted, Å (e.g. 30 to 5); the high limit is clipped to
        2.2 px.
    device
        ``"auto"``, ``"cpu"`` or ``"gpu"`` for the defocus search.

    Returns
    -------
    CtfFit
        Defocus ``U >= V`` and angle, the correlation score in the fitted band and the fit
        resolution in Å.

    Raises
    ------
    ValueError
        When the defocus range holds no defocus that can be fitted at this sampling, or the
        resolution range is empty.
    """
    xp = array_module(device)
    data = subtract_background(spectrum)
    box = data.shape[0]
    if data.shape != (box, box):
        raise ValueError(f"the spectrum must be square, not {data.shape}")
    low_res, high_res = max(resolution_range), min(resolution_range)
    high_res = max(high_res, 2.2 * pixel_size)
    s_low, s_high = 1.0 / low_res, 1.0 / high_res
    if s_high - s_low < 4.0 / (box * pixel_size):
        raise ValueError(
            f"the resolution range {low_res:g} to {high_res:g} A holds too few frequencies"
        )
    low_df, high_df = min(defocus_range), max(defocus_range)
    candidates: Array = np.arange(
        max(low_df, DEFOCUS_STEP), high_df + DEFOCUS_STEP / 2, DEFOCUS_STEP, dtype=np.float64
    )
    optics = _Optics(voltage, cs, amplitude_contrast)
    frequency, direction = _grid(box, pixel_size)
    data = data / np.sqrt(np.maximum(ndimage.uniform_filter(data * data, max(5, box // 16)), 1e-30))
    half_plane = (direction >= -90) & (direction < 90)
    found = _search_1d(
        xp,
        data[half_plane],
        frequency[half_plane],
        candidates,
        (s_low, s_high),
        box * pixel_size,
        optics,
    )
    if not found:
        raise ValueError(
            f"the defocus range {low_df:g} to {high_df:g} A leaves no defocus to search: "
            f"it must hold underfocus values whose CTF rings are at least "
            f"{MIN_RING_PIXELS:g} px apart beyond {low_res:g} A in a {box} px box at "
            f"{pixel_size:g} A/px (lower the range, or use a larger box)"
        )
    fits = []
    for mean_defocus, s_fit in found:  # the best peaks of the 1-D search, refined in 2-D
        log.debug("1-D search: %.0f A, fitted to %.2f A", mean_defocus, 1 / s_fit)
        model = (mean_defocus, mean_defocus, 0.0)
        for _ in range(2):  # refine; once more when the rings fit beyond the band used
            band = half_plane & (frequency >= s_low) & (frequency <= s_fit)
            model, best = _refine_2d(
                data[band],
                frequency[band],
                direction[band],
                model,
                optics,
                (low_df, high_df),
            )
            fit_res = _fit_resolution(data, frequency, direction, model, pixel_size, s_low, optics)
            reach = min(1.0 / fit_res, s_high)
            if reach <= 1.1 * s_fit:
                break
            s_fit = reach
        fits.append((model, best, fit_res, s_fit))
    # the peaks are compared on one band, the widest any of them fits
    common = half_plane & (frequency >= s_low) & (frequency <= max(f[3] for f in fits))
    judge = _scorer(data[common], frequency[common], direction[common], optics)
    (du, dv, angle), best, fit_res, _ = max(
        fits,
        key=lambda f: judge(
            np.array([0.5 * (f[0][0] + f[0][1]), 0.5 * (f[0][0] - f[0][1]), f[0][2]])
        ),
    )
    return CtfFit(du, dv, angle, best, fit_res)


def _search_1d(
    xp: Any,
    values: Array,
    frequency: Array,
    candidates: Array,
    limits: tuple[float, float],
    size: float,
    optics: _Optics,
) -> list[tuple[float, float]]:
    """The best mean defoci and upper frequencies of their fits on the rotational average.

    Every defocus is scored on bands ``[s_low, s]`` of growing ``s``: the significance
    ``r sqrt(n)`` of the correlation ``r`` over ``n`` shells, so bands beyond the signal, or
    where a defocus's rings come closer than :data:`MIN_RING_PIXELS` (set aside), do not
    count. A smooth trend (:func:`_trend_basis`) is projected out of profile and models.
    """
    s_low, s_high = limits
    inside = (frequency >= s_low) & (frequency <= s_high)
    shells = np.rint(frequency[inside] * size).astype(int)
    counts = np.bincount(shells)
    used = counts > 0
    profile = np.bincount(shells, values[inside])[used] / counts[used]
    radii = np.arange(counts.size)[used] / size
    lam = wavelength(optics.voltage)
    period_px = _ring_period(candidates[:, None], radii[None, :], lam, optics.cs * 1e7) * size
    phase = optics.chi(radii[None, :], 0.0, candidates[:, None], candidates[:, None], 0.0)
    m = xp.sin(xp.asarray(phase)) ** 2
    d = xp.asarray(profile)
    first = min(12, radii.size - 1)
    ends = np.unique(np.linspace(first, radii.size, 16).astype(int))
    significance = np.full((candidates.size, ends.size), -np.inf)
    for column, end in enumerate(ends):
        basis = xp.asarray(_trend_basis(radii[:end]))
        data = d[:end] - basis @ (basis.T @ d[:end])
        model = m[:, :end] - (m[:, :end] @ basis) @ basis.T
        norm = xp.sqrt((model * model).sum(axis=1) * (data * data).sum())
        r = to_numpy((model @ data) / xp.maximum(norm, 1e-30))
        rings = (phase[:, end - 1] - phase[:, 0]) / np.pi
        ok = (period_px[:, end - 1] >= MIN_RING_PIXELS) & (rings >= MIN_RINGS)
        significance[ok, column] = r[ok] * np.sqrt(end - basis.shape[1])
    per_defocus = significance.max(axis=1)
    peaks: list[tuple[float, float]] = []
    for index in np.argsort(per_defocus)[::-1]:
        if not np.isfinite(per_defocus[index]) or len(peaks) == PEAKS:
            break
        if any(abs(candidates[index] - known) < PEAK_SEPARATION for known, _ in peaks):
            continue
        end = ends[int(np.argmax(significance[index]))]
        peaks.append((float(candidates[index]), float(radii[end - 1])))
    return peaks


def _scorer(
    values: Array,
    s: Array,
    phi: Array,
    optics: _Optics,
    bounds: tuple[float, float] = (0.0, np.inf),
) -> Callable[[Array], float]:
    """Correlation of ``sin²(chi)`` for ``(mean, half astigmatism, angle)`` with the data.

    A smooth trend in frequency (:func:`_trend_basis`) is projected out of both. Defoci
    outside ``bounds`` score -1.
    """
    basis = _trend_basis(s)
    data = values - basis @ (basis.T @ values)
    data /= max(float(np.linalg.norm(data)), 1e-30)

    def score(params: Array) -> float:
        mean, half, angle = (float(p) for p in params)
        if not bounds[0] <= mean - abs(half) <= mean + abs(half) <= bounds[1]:
            return -1.0
        model = np.sin(optics.chi(s, phi, mean + half, mean - half, angle)) ** 2
        model -= basis @ (basis.T @ model)
        return float(model @ data) / max(float(np.linalg.norm(model)), 1e-30)

    return score


def _refine_2d(
    values: Array,
    s: Array,
    phi: Array,
    start_model: tuple[float, float, float],
    optics: _Optics,
    bounds: tuple[float, float],
) -> tuple[tuple[float, float, float], float]:
    """Nelder-Mead refinement of ``(U, V, angle)`` from the best of a grid of astigmatisms."""
    score = _scorer(values, s, phi, optics, bounds)
    du0, dv0, angle0 = start_model
    centre = 0.5 * (du0 + dv0)
    starts = [np.array([centre, 0.5 * (du0 - dv0), angle0])]
    for size in (250.0, 500.0, 1000.0, 2000.0):
        for direction in np.arange(0.0, 180.0, 22.5):
            for level in (centre - size / 2, centre, centre + size / 2):
                starts.append(np.array([level, size, direction]))
    start = max(starts, key=score)
    simplex = np.vstack([start, start + np.diag([200.0, 200.0, 20.0])])
    result = optimize.minimize(
        lambda p: -score(p),
        start,
        method="Nelder-Mead",
        options={"initial_simplex": simplex, "xatol": 1.0, "fatol": 1e-6, "maxiter": 600},
    )
    mean, half, angle = (float(v) for v in result.x)
    du, dv = mean + abs(half), mean - abs(half)
    if half < 0:
        angle += 90.0
    return (du, dv, float(angle % 180.0)), -float(result.fun)


def _fit_resolution(
    data: Array,
    frequency: Array,
    direction: Array,
    defocus: tuple[float, float, float],
    pixel_size: float,
    s_low: float,
    optics: _Optics,
) -> float:
    """Highest resolution (Å) up to which the equiphase average follows the model.

    Each pixel is given the frequency at which the CTF with the mean defocus has the same
    phase (equiphase averaging); the 1-D profile in those frequencies is correlated with the
    model over sliding windows of two CTF periods (a linear trend removed from both), and the
    fit resolution is the highest frequency that fits before the correlation stays below
    :data:`RESOLUTION_THRESHOLD` for a whole period.
    """
    du, dv, angle = defocus
    box = data.shape[0]
    mean = 0.5 * (du + dv)
    lam = wavelength(optics.voltage)
    phase = optics.chi(frequency, direction, du, dv, angle, contrast=False)
    a = 0.5 * np.pi * optics.cs * 1e7 * lam**3
    b = np.pi * lam * mean
    if a > 0:
        disc = b * b - 4 * a * np.maximum(phase, 0.0)
        u = np.where(disc >= 0, (b - np.sqrt(np.maximum(disc, 0.0))) / (2 * a), np.nan)
    else:
        u = np.maximum(phase, 0.0) / b
    equivalent = np.sqrt(u)
    nyquist = 0.5 / pixel_size
    keep = np.isfinite(equivalent) & (equivalent <= nyquist) & (direction >= -90) & (direction < 90)
    scale = 2 * box * pixel_size  # half-pixel shells
    shells = np.rint(equivalent[keep] * scale).astype(int)
    counts = np.bincount(shells)
    used = counts > 0
    profile = np.bincount(shells, data[keep])[used] / counts[used]
    radii = np.arange(counts.size)[used] / scale
    model = np.sin(optics.chi(radii, 0.0, mean, mean, 0.0)) ** 2
    periods = np.maximum(radii, s_low)
    periods = _ring_period(np.full(radii.size, mean), periods, lam, optics.cs * 1e7)
    fits = np.zeros(radii.size, dtype=bool)
    for index, s in enumerate(radii):
        near = np.abs(radii - s) <= periods[index]
        if s < s_low or near.sum() < 6:
            continue
        basis = _trend_basis(radii[near], 1)  # a local linear trend is not a ring
        m = model[near] - basis @ (basis.T @ model[near])
        d = profile[near] - basis @ (basis.T @ profile[near])
        norm = float(np.linalg.norm(m) * np.linalg.norm(d))
        fits[index] = norm > 0 and float(m @ d) / norm >= RESOLUTION_THRESHOLD
    limit = s_low
    if fits.any():
        start = int(np.argmax(fits))
        for index in range(start, radii.size):
            lost = (radii >= radii[index]) & (radii <= radii[index] + periods[index])
            if not fits[index] and not fits[lost].any():
                break  # no ring fits over a whole period from here on
            if fits[index]:
                limit = float(radii[index])
    return float(1.0 / max(limit, 1e-12))
