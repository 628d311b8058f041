"""3-D reconstruction by direct Fourier inversion with trilinear gridding and CTF weighting.

Each particle image is zero-padded (``pad`` times the box), Fourier transformed, centred by
its shift (a phase ramp), optionally multiplied by its CTF, and its central section is put into
a 3-D Fourier grid of the padded volume at the reference frequencies ``A.T @ (kx, ky, 0)``
(one half of each plane is inserted; the Friedel mates are added by symmetry at the end)
(``A`` from :func:`cryolab.em.geometry.euler_to_matrix`; ``docs/conventions.md``). Every
sample is spread over its 8 neighbouring voxels with trilinear weights; the grid (single
precision, 12 bytes per voxel of the padded box) keeps the sum
of ``F * CTF`` (``data``) and of ``CTF**2`` (``weight``, ``1`` per sample without CTF). The
map is ``data / (weight + wiener_constant)``, transformed back, divided by the Fourier
transform of the trilinear kernel (``sinc**2`` per axis, the gridding correction) and cropped to
the original box.

Partial sums are additive: reconstructors that saw disjoint particles :meth:`~Reconstructor.merge`
into the one that saw them all, so the work is split over particles and combined at the end.
The kernels are written against :func:`cryolab.em.xp.array_module` (numpy or CuPy).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cryolab.em.ctf import wavelength
from cryolab.em.geometry import euler_to_matrix
from cryolab.em.xp import array_module, to_numpy

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]

MAX_SAMPLES = 1 << 22
"""Fourier samples inserted at once (each costs about 300 bytes of temporary memory)."""


class Reconstructor:
    """Accumulates Fourier slices of particle images into a padded 3-D Fourier grid.

    Parameters
    ----------
    size
        Box size ``N`` of the images (square) and of the map (cubic).
    pixel_size
        Å/px of the images.
    pad
        Padding factor of the Fourier grid (2 is recommended; 1 is faster and rougher).
    device
        ``"auto"``, ``"cpu"`` or ``"gpu"`` (see :mod:`cryolab.em.xp`).
    voltage, spherical_aberration, amplitude_contrast
        Acquisition (kV, mm, fraction), used when CTF parameters are given to :meth:`add`.
    inverted
        The images have inverted contrast (protein bright, as RELION and cryoSPARC store
        particles): their CTF is ``+sin(chi)``; raw contrast (protein dark) is ``-sin(chi)``.
    max_radius
        Insert frequencies up to this radius only (Fourier pixels of the image box; ``None``:
        up to Nyquist). Refinement at low resolution uses it to skip work it would filter away.
    """

    def __init__(
        self,
        size: int,
        pixel_size: float,
        *,
        pad: int = 2,
        device: str = "auto",
        voltage: float = 300.0,
        spherical_aberration: float = 2.7,
        amplitude_contrast: float = 0.1,
        inverted: bool = False,
        max_radius: float | None = None,
    ) -> None:
        self.size = int(size)
        self.inverted = bool(inverted)
        self.max_radius = size / 2 if max_radius is None else min(float(max_radius), size / 2)
        self.pixel_size = float(pixel_size)
        self.pad = int(pad)
        self.device = device
        self.voltage = float(voltage)
        self.spherical_aberration = float(spherical_aberration)
        self.amplitude_contrast = float(amplitude_contrast)
        self.xp = array_module(device)
        m = self.padded
        self.data: Any = self.xp.zeros((m, m, m), dtype=self.xp.complex64)
        self.weight: Any = self.xp.zeros((m, m, m), dtype=self.xp.float32)
        self.count = 0

    @property
    def padded(self) -> int:
        """Size of the padded grid, ``pad * size``."""
        return self.pad * self.size

    def add(
        self,
        images: ArrayLike,
        rot: ArrayLike,
        tilt: ArrayLike,
        psi: ArrayLike,
        shift_x: ArrayLike = 0.0,
        shift_y: ArrayLike = 0.0,
        *,
        defocus_u: ArrayLike | None = None,
        defocus_v: ArrayLike | None = None,
        defocus_angle: ArrayLike = 0.0,
        phase_shift: ArrayLike = 0.0,
    ) -> None:
        """Insert a batch of images ``(n, N, N)`` with their poses (degrees, Å) and CTFs.

        Without ``defocus_u`` the images are inserted as they are (weight 1 per sample);
        with it each image is multiplied by its CTF once and the CTF squared is the weight.
        """
        xp = self.xp
        stack = np.asarray(images, dtype=np.float64)
        if stack.ndim == 2:
            stack = stack[np.newaxis]
        n = stack.shape[0]
        if n == 0:
            return
        if stack.shape[1:] != (self.size, self.size):
            raise ValueError(f"images are {stack.shape[1:]}, the box is {self.size}")

        def per_image(value: ArrayLike) -> FloatArray:
            return np.broadcast_to(np.asarray(value, dtype=np.float64), (n,)).copy()

        # bound the memory: at most MAX_SAMPLES Fourier samples are inserted at once
        step = max(1, MAX_SAMPLES // self.padded**2)
        if n > step:
            columns = {
                "rot": per_image(rot),
                "tilt": per_image(tilt),
                "psi": per_image(psi),
                "shift_x": per_image(shift_x),
                "shift_y": per_image(shift_y),
            }
            ctf = {
                "defocus_angle": per_image(defocus_angle),
                "phase_shift": per_image(phase_shift),
            }
            if defocus_u is not None:
                ctf["defocus_u"] = per_image(defocus_u)
                ctf["defocus_v"] = per_image(defocus_u if defocus_v is None else defocus_v)
            for first in range(0, n, step):
                part = slice(first, first + step)
                self.add(
                    stack[part],
                    **{k: v[part] for k, v in columns.items()},
                    **{k: v[part] for k, v in ctf.items()},
                )
            return
        matrices = euler_to_matrix(per_image(rot), per_image(tilt), per_image(psi))
        m, size = self.padded, self.size
        start = m // 2 - size // 2
        padded = xp.zeros((n, m, m), dtype=xp.float64)
        padded[:, start : start + size, start : start + size] = xp.asarray(stack)
        spectrum = xp.fft.fftshift(xp.fft.fft2(xp.fft.ifftshift(padded, axes=(1, 2))), axes=(1, 2))
        k = xp.arange(m, dtype=xp.float64) - m // 2
        ky, kx = xp.meshgrid(k, k, indexing="ij")
        # one half of the plane: the other half (Friedel mates) is added by symmetry in finish
        half = (ky > 0) | ((ky == 0) & (kx >= 0))
        limit = min(m / 2, self.pad * self.max_radius + 1)
        inside = ((kx**2 + ky**2) < limit**2) & half
        kx, ky = kx[inside], ky[inside]
        values = spectrum[:, inside]  # (n, points)
        values[:, (kx == 0) & (ky == 0)] *= 0.5  # the origin is its own mate: count it once
        # centre each particle: translate by +shift / pixel_size (phase ramp)
        dx = per_image(shift_x) / self.pixel_size
        dy = per_image(shift_y) / self.pixel_size
        if dx.any() or dy.any():
            ramp = kx[None] * xp.asarray(dx)[:, None] + ky[None] * xp.asarray(dy)[:, None]
            values = values * xp.exp(-2j * np.pi * ramp / m)
        if defocus_u is not None:
            ctf = self._ctf(
                kx,
                ky,
                per_image(defocus_u),
                per_image(defocus_u if defocus_v is None else defocus_v),
                per_image(defocus_angle),
                per_image(phase_shift),
            )
            values = values * ctf
            weights = ctf**2
        else:
            weights = xp.ones(values.shape, dtype=xp.float64)
        weights[:, (kx == 0) & (ky == 0)] *= 0.5
        a = xp.asarray(matrices)  # (n, 3, 3); rows: image axes in reference coordinates
        coords = kx[None, :, None] * a[:, None, 0, :] + ky[None, :, None] * a[:, None, 1, :]
        self._insert(coords.reshape(-1, 3), values.reshape(-1), weights.reshape(-1))
        self.count += n

    def _ctf(
        self,
        kx: Any,
        ky: Any,
        defocus_u: FloatArray,
        defocus_v: FloatArray,
        defocus_angle: FloatArray,
        phase_shift: FloatArray,
    ) -> Any:
        """The CTF on the padded image grid, shape ``(n, points)`` (``cryolab.em.ctf``):
        ``-sin(chi)``, or ``+sin(chi)`` for inverted images."""
        xp = self.xp
        scale = 1.0 / (self.padded * self.pixel_size)
        s2 = (kx**2 + ky**2)[None] * scale**2
        direction = xp.arctan2(ky, kx)[None]
        lam = wavelength(self.voltage)
        cs = self.spherical_aberration * 1e7
        du = xp.asarray(defocus_u)[:, None]
        dv = xp.asarray(defocus_v)[:, None]
        angle = xp.asarray(np.deg2rad(defocus_angle))[:, None]
        z = 0.5 * (du + dv) + 0.5 * (du - dv) * xp.cos(2 * (direction - angle))
        w = np.arcsin(np.clip(self.amplitude_contrast, 0.0, 0.999999))
        extra = xp.asarray(np.deg2rad(phase_shift))[:, None]
        chi = np.pi * lam * z * s2 - 0.5 * np.pi * cs * lam**3 * s2**2 + extra + w
        return xp.sin(chi) if self.inverted else -xp.sin(chi)

    def _insert(self, coords: Any, values: Any, weights: Any) -> None:
        """Spread samples at fractional grid coordinates ``(x, y, z)`` over 8 voxels."""
        xp = self.xp
        m = self.padded
        base = xp.floor(coords)
        frac = coords - base
        index = base.astype(xp.int64) + m // 2
        flat_parts, w_parts = [], []
        for cx in (0, 1):
            wx = frac[:, 0] if cx else 1 - frac[:, 0]
            for cy in (0, 1):
                wy = frac[:, 1] if cy else 1 - frac[:, 1]
                for cz in (0, 1):
                    wz = frac[:, 2] if cz else 1 - frac[:, 2]
                    ix, iy, iz = index[:, 0] + cx, index[:, 1] + cy, index[:, 2] + cz
                    ok = (ix >= 0) & (ix < m) & (iy >= 0) & (iy < m) & (iz >= 0) & (iz < m)
                    flat = xp.where(ok, (iz * m + iy) * m + ix, 0)
                    flat_parts.append(flat)
                    w_parts.append(xp.where(ok, wx * wy * wz, 0.0))
        flat = xp.concatenate(flat_parts)
        kernel = xp.concatenate(w_parts)
        total = m**3
        vals = xp.concatenate([values] * 8) * kernel
        wts = xp.concatenate([weights] * 8) * kernel
        real = xp.bincount(flat, weights=vals.real, minlength=total)
        imag = xp.bincount(flat, weights=vals.imag, minlength=total)
        self.data += (real + 1j * imag).astype(xp.complex64).reshape(self.data.shape)
        self.weight += xp.bincount(flat, weights=wts, minlength=total).reshape(self.weight.shape)

    def merge(self, other: Reconstructor) -> None:
        """Add the partial sums of another reconstructor of the same geometry."""
        if (other.size, other.pad) != (self.size, self.pad):
            raise ValueError("cannot merge reconstructors of different box or padding")
        self.data += self.xp.asarray(other.data, dtype=self.xp.complex64)
        self.weight += self.xp.asarray(other.weight, dtype=self.xp.float32)
        self.count += other.count

    def save_partial(self, path: str | Path) -> Path:
        """Write the partial sums (and geometry) to an ``.npz`` file."""
        target = Path(path)
        with target.open("wb") as handle:
            np.savez(
                handle,
                data=to_numpy(self.data),
                weight=to_numpy(self.weight),
                meta=np.array(
                    [
                        self.size,
                        self.pixel_size,
                        self.pad,
                        self.count,
                        self.voltage,
                        self.spherical_aberration,
                        self.amplitude_contrast,
                        float(self.inverted),
                        self.max_radius,
                    ]
                ),
            )
        return target

    @classmethod
    def load_partial(cls, path: str | Path, device: str = "auto") -> Reconstructor:
        """Read partial sums written by :meth:`save_partial`."""
        with np.load(path) as stored:
            meta = stored["meta"]
            made = cls(
                int(meta[0]),
                float(meta[1]),
                pad=int(meta[2]),
                device=device,
                voltage=float(meta[4]),
                spherical_aberration=float(meta[5]),
                amplitude_contrast=float(meta[6]),
                inverted=bool(meta[7]) if meta.size > 7 else False,
                max_radius=float(meta[8]) if meta.size > 8 else None,
            )
            made.data = made.xp.asarray(stored["data"])
            made.weight = made.xp.asarray(stored["weight"])
            made.count = int(meta[3])
        return made

    def finish(self, wiener_constant: float = 0.0) -> NDArray[np.float32]:
        """The real-space map ``(N, N, N)`` (float32, numpy) from the sums so far.

        Parameters
        ----------
        wiener_constant
            Added to the weights before dividing (``1 / SNR`` of a Wiener filter, in units of
            the summed CTF squared); 0 divides by the weights alone where they are non-zero.
        """
        xp = self.xp
        m, size = self.padded, self.size
        data = self.data.astype(xp.complex128)
        weight = self.weight.astype(xp.float64)
        data += xp.conj(_mirror(xp, data))  # Friedel mates of the inserted half planes
        weight += _mirror(xp, weight)
        floor = 1e-6 * float(xp.max(weight)) if self.count else 1.0
        denominator = weight + wiener_constant
        spectrum = xp.where(denominator > floor, data / xp.maximum(denominator, floor), 0)
        volume = xp.fft.fftshift(xp.fft.ifftn(xp.fft.ifftshift(spectrum))).real
        r = (xp.arange(m, dtype=xp.float64) - m // 2) / m
        correction = xp.sinc(r) ** 2  # Fourier transform of the trilinear kernel, per axis
        volume /= correction[:, None, None] * correction[None, :, None] * correction[None, None, :]
        start = m // 2 - size // 2
        cropped = volume[start : start + size, start : start + size, start : start + size]
        log.debug("finished a reconstruction of %d images", self.count)
        return to_numpy(cropped).astype(np.float32)


def _mirror(xp: Any, grid: Any) -> Any:
    """The grid at ``-k`` (index ``m - i`` for index ``i``; zero where ``-k`` is off the grid)."""
    mirrored = xp.roll(grid[::-1, ::-1, ::-1], 1, axis=(0, 1, 2))
    mirrored[0, :, :] = 0
    mirrored[:, 0, :] = 0
    mirrored[:, :, 0] = 0
    return mirrored
