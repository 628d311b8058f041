"""Particle extraction: boxes at coordinates, phase flip, inversion, downsampling, normalisation.

Geometry: a coordinate ``(x, y)`` (micrograph pixels, rounded to the nearest pixel) lands on the
box pixel ``(N // 2, N // 2)``, the image origin of ``docs/conventions.md``. Boxes that leave
the micrograph are skipped (``edge="skip"``, the default, as RELION does) or filled with the
micrograph mean outside it (``edge="pad"``).

Order of operations per box: cut, phase flip (multiply the spectrum by the sign of the CTF
``-sin(chi)``, so it is flipped where ``-sin(chi) < 0``), contrast inversion, Fourier cropping to
the new box, normalisation (background outside a circle of 75% of the box radius to mean 0 and
standard deviation 1). The phase flip multiplies the full ``fft2`` of the box and keeps the
real part; on the Nyquist row and column of an even box, whose frequencies have no mirror pair
on the grid, that is an average of the two signs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cryolab.em.ctf import chi
from cryolab.em.xp import array_module, to_numpy

BACKGROUND_RADIUS = 0.75  # of the box radius: pixels outside are the background ring


@dataclass(frozen=True)
class CtfParams:
    """The CTF of a micrograph for phase flipping (Å, degrees, kV, mm, Å/px)."""

    defocus_u: float
    defocus_v: float
    defocus_angle: float
    sampling_rate: float
    voltage: float = 300.0
    spherical_aberration: float = 2.7
    amplitude_contrast: float = 0.1
    phase_shift: float = 0.0


def ctf_sign(box: int, ctf: CtfParams) -> NDArray[np.float64]:
    """The sign (+1/-1) of the CTF ``-sin(chi)`` on a box's ``fft2`` frequency grid."""
    fy = np.fft.fftfreq(box)[:, None] / ctf.sampling_rate
    fx = np.fft.fftfreq(box)[None, :] / ctf.sampling_rate
    frequency = np.hypot(fx, fy)
    direction = np.degrees(np.arctan2(fy, fx))
    phase = chi(
        frequency,
        direction,
        ctf.defocus_u,
        ctf.defocus_v,
        ctf.defocus_angle,
        voltage=ctf.voltage,
        spherical_aberration=ctf.spherical_aberration,
        amplitude_contrast=ctf.amplitude_contrast,
        phase_shift=ctf.phase_shift,
    )
    return np.where(-np.sin(phase) < 0, -1.0, 1.0)


def fourier_crop(images: Any, size: int, xp: Any = np) -> Any:
    """Downsample images ``(..., n, n)`` to ``(..., size, size)`` by cropping their spectrum.

    Values keep their scale (the mean of an image is unchanged).
    """
    n = images.shape[-1]
    if size == n:
        return images
    if size > n:
        raise ValueError(f"cannot Fourier-crop a box of {n} px to a larger one of {size} px")
    spectrum = xp.fft.fftshift(xp.fft.fft2(images), axes=(-2, -1))
    start = n // 2 - size // 2
    cropped = spectrum[..., start : start + size, start : start + size]
    result = xp.fft.ifft2(xp.fft.ifftshift(cropped, axes=(-2, -1))).real
    return result * (size * size) / (n * n)


def normalise(images: Any, xp: Any = np) -> Any:
    """Background outside 75% of the box radius to mean 0 and standard deviation 1."""
    n = images.shape[-1]
    yy, xx = np.mgrid[:n, :n] - n // 2
    ring = xp.asarray(np.hypot(xx, yy) > BACKGROUND_RADIUS * n / 2)
    values = images[..., ring]
    mean = values.mean(axis=-1)[..., None, None]
    std = values.std(axis=-1)[..., None, None]
    return (images - mean) / xp.where(std > 0, std, 1.0)


def extract_boxes(
    micrograph: ArrayLike,
    coords: ArrayLike,
    box: int,
    *,
    invert: bool = False,
    normalise_background: bool = True,
    ctf: CtfParams | None = None,
    downsample_to: int | None = None,
    edge: Literal["skip", "pad"] = "skip",
    device: str = "auto",
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Cut boxes centred on coordinates out of a micrograph.

    Parameters
    ----------
    micrograph
        2-D image ``[y, x]``.
    coords
        ``(n, 2)`` centres ``(x, y)`` in micrograph pixels.
    box
        Box size in micrograph pixels.
    invert
        Multiply by -1 (raw micrographs have dark protein; inverted particles are bright).
    normalise_background
        Background ring to mean 0, standard deviation 1 (see :func:`normalise`).
    ctf
        When given, phase-flip each box with this CTF (pixel size of the micrograph).
    downsample_to
        New box size (px) by Fourier cropping; the pixel size grows by ``box / downsample_to``.
    edge
        ``"skip"`` boxes not wholly inside the micrograph, or ``"pad"`` them with its mean.
    device
        ``"auto"``, ``"cpu"`` or ``"gpu"``.

    Returns
    -------
    tuple
        ``(stack, kept)``: float32 images ``(k, m, m)`` and the indices of the coordinates
        they come from.

    Raises
    ------
    ValueError
        If the box does not fit the micrograph or the sizes make no sense.
    """
    image = np.asarray(micrograph)
    if image.ndim != 2:
        raise ValueError(f"a micrograph must be 2-D, not shape {image.shape}")
    box = int(box)
    ny, nx = image.shape
    if box < 2:
        raise ValueError(f"box size must be at least 2 px, not {box}")
    if box > min(nx, ny):
        raise ValueError(f"box of {box} px is larger than the micrograph ({nx} x {ny} px)")
    size = box if downsample_to is None else int(downsample_to)
    if not 2 <= size <= box:
        raise ValueError(f"downsample_to must be between 2 and the box ({box} px), not {size}")
    points = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    x0 = np.rint(points[:, 0]).astype(np.int64) - box // 2
    y0 = np.rint(points[:, 1]).astype(np.int64) - box // 2
    inside = (x0 >= 0) & (y0 >= 0) & (x0 + box <= nx) & (y0 + box <= ny)
    kept = np.arange(len(points)) if edge == "pad" else np.flatnonzero(inside)
    xp = array_module(device)
    if len(kept) == 0:
        return np.zeros((0, size, size), dtype=np.float32), kept.astype(np.int64)
    offsets = np.arange(box)
    if edge == "pad":
        margin = box
        source = np.pad(image.astype(np.float32), margin, constant_values=float(image.mean()))
        rows = y0[kept, None] + margin + offsets[None, :]
        cols = x0[kept, None] + margin + offsets[None, :]
    else:
        source = image
        rows = y0[kept, None] + offsets[None, :]
        cols = x0[kept, None] + offsets[None, :]
    stack = xp.asarray(source[rows[:, :, None], cols[:, None, :]].astype(np.float64))
    if ctf is not None:
        sign = xp.asarray(ctf_sign(box, ctf))
        stack = xp.fft.ifft2(xp.fft.fft2(stack) * sign).real
    if invert:
        stack = -stack
    stack = fourier_crop(stack, size, xp)
    if normalise_background:
        stack = normalise(stack, xp)
    return to_numpy(stack).astype(np.float32), kept.astype(np.int64)


def downsampled_sampling_rate(sampling_rate: float, box: int, downsample_to: int | None) -> float:
    """The pixel size (Å/px) after Fourier cropping ``box`` to ``downsample_to``."""
    if downsample_to is None or downsample_to == box:
        return float(sampling_rate)
    return float(sampling_rate) * box / downsample_to


__all__ = [
    "BACKGROUND_RADIUS",
    "CtfParams",
    "ctf_sign",
    "downsampled_sampling_rate",
    "extract_boxes",
    "fourier_crop",
    "normalise",
]
