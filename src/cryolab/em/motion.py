"""Global motion correction of movies: frame alignment, dose weighting and summing.

Shifts are in pixels, ``(shift_x, shift_y)`` per frame, with x the fast axis (columns) and y
the rows (``docs/conventions.md``). A frame with shift ``s`` holds the reference image moved
by ``+s``: ``frame(r) = reference(r - s)``; :func:`apply_shifts` moves it back by ``-s``.
Shifts are returned relative to their mean, so the aligned sum sits where the movie's
average position is.

Every kernel takes ``device="auto" | "cpu" | "gpu"`` and runs on numpy or CuPy through
:func:`cryolab.em.xp.array_module`; results come back as numpy arrays.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cryolab.em.xp import array_module, to_numpy

__all__ = [
    "align_frames",
    "apply_shifts",
    "critical_exposure",
    "dose_weight",
    "dose_weights",
    "sum_frames",
]

log = logging.getLogger(__name__)

# Grant & Grigorieff (2015), eLife 4:e06980: critical exposure Ne(k) = a k^b + c (e/Å², k in
# 1/Å), fitted at 300 kV; at 200 kV the damage per electron is larger by 1 / 0.8.
CRITICAL_A = 0.245
CRITICAL_B = -1.665
CRITICAL_C = 2.81


def _frequencies(xp: Any, ny: int, nx: int) -> tuple[Any, Any]:
    """Frequency grids (cycles per pixel) of a full 2-D FFT: ``(ky, kx)`` broadcastable."""
    ky = xp.fft.fftfreq(ny).astype(xp.float32)[:, None]
    kx = xp.fft.fftfreq(nx).astype(xp.float32)[None, :]
    return ky, kx


def _phase_ramp(xp: Any, shifts: Any, ny: int, nx: int) -> Any:
    """``exp(-2 pi i k.s)`` for each shift: multiplying an FFT by it moves the image by +s."""
    ky, kx = _frequencies(xp, ny, nx)
    sx = shifts[:, 0][:, None, None]
    sy = shifts[:, 1][:, None, None]
    along_x = xp.exp(-2j * np.pi * kx[None] * sx).astype(xp.complex64)  # (n, 1, nx)
    along_y = xp.exp(-2j * np.pi * ky[None] * sy).astype(xp.complex64)  # (n, ny, 1)
    return along_y * along_x


def _as_frames(frames: ArrayLike, xp: Any) -> Any:
    array = xp.asarray(frames, dtype=xp.float32)
    if array.ndim != 3 or array.shape[0] < 2:
        raise ValueError(f"need a stack of 2 or more frames (n, ny, nx), got {array.shape}")
    return array


def _peaks(cc: Any, xp: Any, max_shift: float) -> NDArray[np.float64]:
    """Sub-pixel peak positions ``(x, y)`` of cyclic cross-correlations ``(n, ny, nx)``.

    The search is limited to ``|shift| <= max_shift`` along each axis; the peak is refined
    by a parabola through it and its neighbours along x and along y.
    """
    n, ny, nx = cc.shape
    dy = xp.fft.fftfreq(ny, 1.0 / ny)[:, None]
    dx = xp.fft.fftfreq(nx, 1.0 / nx)[None, :]
    outside = (xp.abs(dy) > max_shift) | (xp.abs(dx) > max_shift)
    masked = xp.where(outside[None], -xp.inf, cc)
    flat = to_numpy(xp.argmax(masked.reshape(n, -1), axis=1))
    iy, ix = np.divmod(flat, nx)
    frames = np.arange(n)
    host = to_numpy(cc[:, :, :]) if n * ny * nx <= 1 << 22 else None

    def value(i: NDArray[Any], y: NDArray[Any], x: NDArray[Any]) -> NDArray[np.float64]:
        y, x = y % ny, x % nx
        if host is not None:
            found: NDArray[np.float64] = host[i, y, x].astype(np.float64)
            return found
        return to_numpy(cc[xp.asarray(i), xp.asarray(y), xp.asarray(x)]).astype(np.float64)

    centre = value(frames, iy, ix)

    def refine(minus: NDArray[np.float64], plus: NDArray[np.float64]) -> NDArray[np.float64]:
        curvature = minus - 2 * centre + plus
        with np.errstate(divide="ignore", invalid="ignore"):
            offset = np.where(curvature < 0, 0.5 * (minus - plus) / curvature, 0.0)
        return np.clip(offset, -0.5, 0.5)

    ox = refine(value(frames, iy, ix - 1), value(frames, iy, ix + 1))
    oy = refine(value(frames, iy - 1, ix), value(frames, iy + 1, ix))
    px = np.where(ix > nx // 2, ix - nx, ix) + ox
    py = np.where(iy > ny // 2, iy - ny, iy) + oy
    return np.stack([px, py], axis=1)


def _cropped_size(size: int, bfactor: float, pixel_size: float) -> int:
    """Even number of Fourier samples (of ``size``) kept under a B-factor filter."""
    if bfactor <= 0:
        return size
    cutoff = pixel_size * np.sqrt(4 * np.log(1e3) / bfactor)  # cycles per pixel
    wanted = 2 * int(np.ceil(cutoff * size)) + 16
    return min(size, wanted + wanted % 2)


def _crop(xp: Any, spectra: Any, my: int, mx: int) -> Any:
    """The low-frequency ``(my, mx)`` block of unshifted 2-D FFTs (last two axes)."""
    ny, nx = spectra.shape[-2:]
    if (my, mx) == (ny, nx):
        return spectra
    rows = xp.concatenate([xp.arange(my // 2), xp.arange(ny - my // 2, ny)])
    cols = xp.concatenate([xp.arange(mx // 2), xp.arange(nx - mx // 2, nx)])
    return spectra[:, rows][:, :, cols]


def smooth_trajectory(shifts: ArrayLike, sigma: float) -> NDArray[np.float64]:
    """Gaussian smoothing of a trajectory ``(n, 2)`` along the frames (``sigma`` in frames)."""
    path = np.asarray(shifts, dtype=np.float64)
    if sigma <= 0 or len(path) < 3:
        return path
    index = np.arange(len(path))
    weights = np.exp(-0.5 * ((index[:, None] - index[None, :]) / sigma) ** 2)
    weights /= weights.sum(axis=1, keepdims=True)
    smoothed: NDArray[np.float64] = weights @ path
    return smoothed


def align_frames(
    frames: ArrayLike,
    *,
    iterations: int = 10,
    bfactor: float = 500.0,
    max_shift: float = 40.0,
    pixel_size: float = 1.0,
    smooth: float = 0.0,
    tolerance: float = 0.01,
    device: str = "auto",
) -> NDArray[np.float64]:
    """Global shifts of the frames of a movie by iterative leave-one-out cross-correlation.

    Each iteration moves every frame by its current shift, and cross-correlates each frame
    with the sum of all the other frames (so a frame's own noise does not bias its peak),
    low-pass filtered by a B-factor. The sub-pixel peak is added to the frame's shift. The
    iterations stop when no shift changes by more than ``tolerance`` px.

    Parameters
    ----------
    frames
        ``(n, ny, nx)`` frames.
    iterations
        Most alignment rounds.
    bfactor
        B-factor (Å²) of the filter ``exp(-B k² / 4)`` applied to the cross-correlation.
    max_shift
        Largest shift (px) searched along each axis per round.
    pixel_size
        Å/px, for the B-factor.
    smooth
        Gaussian smoothing of the final trajectory, in frames (0: none).
    tolerance
        Convergence threshold, px.
    device
        ``"auto"``, ``"cpu"`` or ``"gpu"``.

    Returns
    -------
    numpy.ndarray
        ``(n, 2)`` shifts ``(x, y)`` in px relative to their mean.
    """
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, not {iterations}")
    xp = array_module(device)
    stack = _as_frames(frames, xp)
    n, ny, nx = stack.shape
    # the B-factor filter leaves nothing beyond exp(-B k^2 / 4) = 1e-3: crop the spectra there
    # (the cross-correlation is then computed on a coarser grid of my x mx samples)
    my, mx = _cropped_size(ny, bfactor, pixel_size), _cropped_size(nx, bfactor, pixel_size)
    spectra = xp.concatenate(
        [_crop(xp, xp.fft.fft2(frame - frame.mean())[None], my, mx) for frame in stack]
    )
    scale = np.array([nx / mx, ny / my])
    ky, kx = _frequencies(xp, my, mx)
    k2 = (kx**2 * (mx / nx) ** 2 + ky**2 * (my / ny) ** 2) / pixel_size**2
    filt = xp.exp(-bfactor * k2 / 4).astype(xp.float32)
    search = max_shift / float(scale.max())
    shifts = np.zeros((n, 2))
    for round_ in range(iterations):
        grid_shifts = xp.asarray(-shifts / scale, dtype=xp.float32)
        moved = spectra * _phase_ramp(xp, grid_shifts, my, mx)
        total = moved.sum(axis=0)
        others = total[None] - moved
        cc = xp.fft.ifft2(moved * xp.conj(others) * filt[None]).real
        residual = _peaks(cc, xp, search) * scale
        shifts += residual
        shifts -= shifts.mean(axis=0)
        change = float(np.abs(residual).max())
        log.debug("alignment round %d: largest change %.3f px", round_ + 1, change)
        if change < tolerance:
            break
    result = smooth_trajectory(shifts, smooth)
    result -= result.mean(axis=0)
    return result


def apply_shifts(frames: ArrayLike, shifts: ArrayLike, device: str = "auto") -> NDArray[Any]:
    """The frames moved back by their shifts (Fourier, sub-pixel): ``out(r) = frame(r + s)``."""
    xp = array_module(device)
    stack = _as_frames(frames, xp)
    _, ny, nx = stack.shape
    ramp = _phase_ramp(xp, -xp.asarray(shifts, dtype=xp.float32), ny, nx)
    return to_numpy(xp.fft.ifft2(xp.fft.fft2(stack) * ramp).real.astype(xp.float32))


def critical_exposure(frequency: ArrayLike, voltage: float = 300.0) -> NDArray[np.float64]:
    """Grant & Grigorieff's critical exposure Ne(k) = a k^b + c in e/Å² (k in 1/Å).

    The fit is for 300 kV; other voltages scale it linearly between 0.8 at 200 kV and 1 at
    300 kV (clipped to that interval). Zero frequency has an infinite critical exposure.
    """
    k = np.asarray(frequency, dtype=np.float64)
    scale = float(np.clip(0.8 + 0.2 * (voltage - 200.0) / 100.0, 0.8, 1.0))
    with np.errstate(divide="ignore"):
        ne = np.where(k > 0, CRITICAL_A * np.abs(k) ** CRITICAL_B + CRITICAL_C, np.inf)
    result: NDArray[np.float64] = scale * ne
    return result


def dose_weights(
    n_frames: int,
    shape: tuple[int, int],
    dose_per_frame: float,
    pixel_size: float,
    voltage: float = 300.0,
    pre_exposure: float = 0.0,
) -> NDArray[np.float64]:
    """Per-frame Fourier weights ``exp(-N / (2 Ne(k)))`` of shape ``(n, ny, nx // 2 + 1)``.

    ``N`` is the exposure at the middle of each frame (e/Å²), ``Ne`` :func:`critical_exposure`
    on the ``rfft2`` frequency grid of images of ``shape`` with ``pixel_size`` Å/px.
    """
    if dose_per_frame < 0 or pixel_size <= 0:
        raise ValueError("dose_per_frame must be >= 0 and pixel_size > 0")
    ny, nx = shape
    ky = np.fft.fftfreq(ny)[:, None]
    kx = np.fft.rfftfreq(nx)[None, :]
    k = np.sqrt(kx**2 + ky**2) / pixel_size
    ne = critical_exposure(k, voltage)
    exposure = pre_exposure + dose_per_frame * (np.arange(n_frames) + 0.5)
    weights: NDArray[np.float64] = np.exp(-exposure[:, None, None] / (2 * ne[None]))
    return weights


def _rfft_ramp(xp: Any, shift: Any, ny: int, nx: int) -> Any:
    """``exp(+2 pi i k.s)`` on the ``rfft2`` grid: moves an image back by ``s``."""
    ky = xp.fft.fftfreq(ny).astype(xp.float32)[:, None]
    kx = xp.fft.rfftfreq(nx).astype(xp.float32)[None, :]
    along_y = xp.exp(2j * np.pi * ky * float(shift[1])).astype(xp.complex64)
    along_x = xp.exp(2j * np.pi * kx * float(shift[0])).astype(xp.complex64)
    return along_y * along_x


def dose_weight(
    frames: ArrayLike,
    dose_per_frame: float,
    pixel_size: float,
    voltage: float = 300.0,
    *,
    shifts: ArrayLike | None = None,
    pre_exposure: float = 0.0,
    device: str = "auto",
) -> NDArray[np.float32]:
    """The dose-weighted sum of the frames, each first moved back by its shift if given.

    Each frame's Fourier transform is weighted by :func:`dose_weights`; the sum is divided
    by ``sqrt(sum of squared weights / n)`` per frequency, which keeps the noise power of a
    plain sum of ``n`` frames at every frequency (Grant & Grigorieff 2015). Frames are
    transformed one at a time, so memory stays at a few frames.
    """
    xp = array_module(device)
    stack = _as_frames(frames, xp)
    n, ny, nx = stack.shape
    weights = dose_weights(n, (ny, nx), dose_per_frame, pixel_size, voltage, pre_exposure)
    moves = None if shifts is None else np.asarray(shifts, dtype=np.float64)
    total = xp.zeros((ny, nx // 2 + 1), dtype=xp.complex64)
    for number in range(n):
        spectrum = xp.fft.rfft2(stack[number]) * xp.asarray(weights[number], dtype=xp.float32)
        if moves is not None:
            spectrum *= _rfft_ramp(xp, moves[number], ny, nx)
        total += spectrum
    norm = np.sqrt((weights**2).sum(axis=0) / n)
    total /= xp.asarray(norm, dtype=xp.float32)
    return to_numpy(xp.fft.irfft2(total, s=(ny, nx)).astype(xp.float32))


def sum_frames(
    frames: ArrayLike, shifts: ArrayLike | None = None, device: str = "auto"
) -> NDArray[np.float32]:
    """The sum of the frames, each first moved back by its shift when shifts are given."""
    xp = array_module(device)
    stack = _as_frames(frames, xp)
    n, ny, nx = stack.shape
    if shifts is None:
        return to_numpy(stack.sum(axis=0).astype(xp.float32))
    moves = np.asarray(shifts, dtype=np.float64)
    total = xp.zeros((ny, nx // 2 + 1), dtype=xp.complex64)
    for number in range(n):
        total += xp.fft.rfft2(stack[number]) * _rfft_ramp(xp, moves[number], ny, nx)
    return to_numpy(xp.fft.irfft2(total, s=(ny, nx)).astype(xp.float32))
