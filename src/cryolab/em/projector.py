"""Fourier-space projection of a map: central slices of its padded 3-D transform.

By the projection-slice theorem the 2-D transform of a projection at orientation ``A`` is the
3-D transform of the map on the plane ``A.T @ (kx, ky, 0)`` (``A`` from
:func:`cryolab.em.geometry.euler_to_matrix`; the real-space counterpart is
:func:`cryolab.em.simulate.project`, the inverse is :mod:`cryolab.em.reconstruct`). The map is
zero-padded (``pad`` times), divided by the Fourier transform of the trilinear kernel (so that
trilinear interpolation of its transform is unbiased), and transformed once; every slice is then
a trilinear interpolation of that grid, cheap enough to make thousands of references.

Image coefficients are taken on a fixed list of frequencies (:class:`FourierPoints`): one half
plane (the other half is their complex conjugate), the origin left out (particle images are
normalised to a zero-mean background), up to a radius. Particle coefficients on the same points
come from :func:`image_coefficients`, so references and particles compare point by point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cryolab.em.ctf import chi
from cryolab.em.xp import array_module

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class FourierPoints:
    """Frequencies ``(kx, ky)`` (cycles per box) of the half plane within ``radius`` of a box.

    ``rows, cols`` index the centred (``fftshift``-ed) 2-D transform of a ``box``-sized image.
    """

    box: int
    radius: float
    kx: FloatArray
    ky: FloatArray
    rows: NDArray[np.int64]
    cols: NDArray[np.int64]

    @classmethod
    def make(cls, box: int, radius: float) -> FourierPoints:
        """The points with ``0 < |k| <= radius`` (at most Nyquist) in one half plane."""
        radius = float(min(radius, box // 2 - 1))
        k = np.arange(box, dtype=np.float64) - box // 2
        ky, kx = np.meshgrid(k, k, indexing="ij")
        half = (ky > 0) | ((ky == 0) & (kx > 0))
        inside = half & (kx**2 + ky**2 <= radius**2)
        rows, cols = np.nonzero(inside)
        return cls(
            box, radius, kx[inside], ky[inside], rows.astype(np.int64), cols.astype(np.int64)
        )

    def __len__(self) -> int:
        return int(self.kx.size)

    def shift_factors(self, shifts: ArrayLike, xp: Any = np) -> Any:
        """``exp(-2 pi i k.d / box)`` for shifts ``d`` (px, ``(..., 2)`` as x, y): the factors that
        translate an image's content by ``+d``; shape ``(..., points)``."""
        d = xp.asarray(shifts, dtype=xp.float64)
        phase = d[..., 0:1] * xp.asarray(self.kx) + d[..., 1:2] * xp.asarray(self.ky)
        return xp.exp((-2j * np.pi / self.box) * phase)


def image_coefficients(images: Any, points: FourierPoints, xp: Any = np) -> Any:
    """Centred 2-D transforms of ``(n, box, box)`` images on ``points``: ``(n, points)``."""
    stack = xp.asarray(images, dtype=xp.float32)
    spectrum = xp.fft.fftshift(xp.fft.fft2(xp.fft.ifftshift(stack, axes=(1, 2))), axes=(1, 2))
    return spectrum[:, xp.asarray(points.rows), xp.asarray(points.cols)].astype(xp.complex64)


class Projector:
    """Central slices of a map's padded Fourier transform.

    Parameters
    ----------
    volume
        ``[z, y, x]`` cubic map, centred on voxel ``N // 2``.
    pad
        Padding factor (2 keeps trilinear interpolation accurate).
    device
        ``"auto"``, ``"cpu"`` or ``"gpu"`` (:mod:`cryolab.em.xp`).
    """

    def __init__(self, volume: ArrayLike, *, pad: int = 2, device: str = "auto") -> None:
        xp = self.xp = array_module(device)
        vol = xp.asarray(volume, dtype=xp.float64)
        size = vol.shape[0]
        if vol.ndim != 3 or vol.shape != (size, size, size):
            raise ValueError(f"a projector needs a cubic map, not shape {vol.shape}")
        self.size = size
        self.pad = int(pad)
        m = self.padded = self.pad * size
        r = (xp.arange(m, dtype=xp.float64) - m // 2) / m
        correction = xp.sinc(r) ** 2
        grid = xp.zeros((m, m, m), dtype=xp.float64)
        start = m // 2 - size // 2
        grid[start : start + size, start : start + size, start : start + size] = vol
        grid /= correction[:, None, None] * correction[None, :, None] * correction[None, None, :]
        spectrum = xp.fft.fftshift(xp.fft.fftn(xp.fft.ifftshift(grid)))
        self.grid: Any = spectrum.astype(xp.complex64).reshape(-1)

    def slices(self, matrices: ArrayLike, points: FourierPoints) -> Any:
        """Slices at orientations ``(..., 3, 3)`` on ``points``: shape ``(..., points)``.

        The values are those of the transform of a ``size``-pixel projection (the padding does
        not change their scale).
        """
        xp = self.xp
        a = xp.asarray(matrices, dtype=xp.float64)
        lead = a.shape[:-2]
        a = a.reshape(-1, 3, 3)
        kx = xp.asarray(points.kx) * self.pad
        ky = xp.asarray(points.ky) * self.pad
        # (orientations, points, 3): x, y, z of A.T @ (kx, ky, 0)
        coords = kx[None, :, None] * a[:, None, 0, :] + ky[None, :, None] * a[:, None, 1, :]
        values = self._interpolate(coords.reshape(-1, 3))
        return values.reshape(*lead, len(points))

    def _interpolate(self, coords: Any) -> Any:
        """Trilinear interpolation of the grid at ``(x, y, z)`` coordinates around its centre."""
        xp = self.xp
        m = self.padded
        base = xp.floor(coords)
        frac = (coords - base).astype(xp.float32)
        index = base.astype(xp.int64) + m // 2
        out = xp.zeros(coords.shape[0], dtype=xp.complex64)
        for cx in (0, 1):
            wx = frac[:, 0] if cx else 1 - frac[:, 0]
            for cy in (0, 1):
                wy = frac[:, 1] if cy else 1 - frac[:, 1]
                for cz in (0, 1):
                    wz = frac[:, 2] if cz else 1 - frac[:, 2]
                    ix, iy, iz = index[:, 0] + cx, index[:, 1] + cy, index[:, 2] + cz
                    flat = xp.clip((iz * m + iy) * m + ix, 0, m**3 - 1)
                    out += self.grid[flat] * (wx * wy * wz)
        return out


def ctf_values(
    points: FourierPoints,
    pixel_size: float,
    defocus_u: ArrayLike,
    defocus_v: ArrayLike,
    defocus_angle: ArrayLike,
    phase_shift: ArrayLike = 0.0,
    *,
    voltage: float = 300.0,
    spherical_aberration: float = 2.7,
    amplitude_contrast: float = 0.1,
    inverted: bool = True,
) -> FloatArray:
    """The CTF of ``n`` particles on ``points``: ``(n, points)`` (numpy).

    ``+sin(chi)`` for inverted particles (protein bright, the default), else ``-sin(chi)``.
    """
    scale = 1.0 / (points.box * pixel_size)
    frequency = np.hypot(points.kx, points.ky)[None] * scale
    direction = np.degrees(np.arctan2(points.ky, points.kx))[None]

    def column(value: ArrayLike) -> FloatArray:
        return np.atleast_1d(np.asarray(value, dtype=np.float64))[:, None]

    phase = chi(
        frequency,
        direction,
        column(defocus_u),
        column(defocus_v),
        column(defocus_angle),
        voltage=voltage,
        spherical_aberration=spherical_aberration,
        amplitude_contrast=amplitude_contrast,
        phase_shift=column(phase_shift),
    )
    values: FloatArray = np.sin(phase) if inverted else -np.sin(phase)
    return values
