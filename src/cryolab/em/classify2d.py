"""Reference-free 2-D alignment and classification of particle images.

Method (hard assignment, in the spirit of RELION's and cryoSPARC's 2-D classification):

- A particle ``X`` (Fourier transform of the image under a soft disc) is modelled as
  ``X = CTF * T_{k,r,s} + noise``, with ``T`` the class average ``k`` rotated by the in-plane
  angle ``r`` (grid of ``angular_step``) and moved by the shift ``s`` (integer pixels within a
  disc of ``max_shift``). Only the Fourier coefficients below the current resolution limit
  take part in the search.
- Every candidate is scored with the normalised cross-correlation
  ``Re<CTF X, T> / sqrt(<CTF^2, |T|^2>)`` (the particle norm is constant per particle). Over a
  batch of particles this is two matrix products: the CTF-weighted coefficients against all
  rotated and shifted averages, and ``CTF^2`` against all ``|T|^2`` (shifts do not change it).
- Each particle goes to its best candidate; ``CTF * X`` moved back by ``-s`` is summed per
  (half set, class, angle) and rotated back by ``-r`` into the class frame, and the class
  average is ``sum(CTF X) / (sum(CTF^2) + eps)`` (Wiener-type), centred (centre of mass) and
  under a soft disc. Empty classes take half of the largest class. The first pass assigns
  classes and angles at random; the search limit is annealed (:func:`schedule`).
- ``class.resolution`` is the 0.143 crossing of the Fourier ring correlation of the two
  half-set averages of a class (particles split at random). The halves share the alignment
  against one reference, so the figure is optimistic; it ranks classes, nothing more.

Pose convention (RELION): a particle shows ``average(A^T (q + s))``, ``A`` the in-plane block
of ``euler_to_matrix(0, 0, psi)``, ``s = (shift_x, shift_y)`` px: moving the image by ``+s``
and rotating it by ``psi`` gives the class average. Kernels use ``xp`` (numpy or CuPy).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cryolab.em.ctf import chi
from cryolab.em.fsc import fsc
from cryolab.em.fsc import resolution as crossing
from cryolab.em.xp import to_numpy

Array = NDArray[Any]
WIENER = 0.1  # eps = WIENER * mean(sum CTF^2) over the low frequencies


def soft_disc(size: int, diameter: float, xp: ModuleType = np, edge: float = 3.0) -> Any:
    """A disc of ``diameter`` px about pixel ``size // 2`` with a raised-cosine ``edge`` (px)."""
    grid = xp.arange(size, dtype=xp.float32) - size // 2
    r = xp.sqrt(grid[None, :] ** 2 + grid[:, None] ** 2)
    t = xp.clip((r - diameter / 2 + edge) / edge, 0.0, 1.0)
    return 0.5 * (1 + xp.cos(np.pi * t))


def rotation_taps(size: int, angles: Any, xp: ModuleType = np) -> tuple[Any, Any]:
    """Bilinear taps of in-plane rotations about ``N // 2``: flat indices and weights.

    For each angle ``psi``, ``out(p) = img(A^T p)`` with ``A = [[c, s], [-s, c]]`` the
    in-plane block of ``euler_to_matrix(0, 0, psi)``; zero outside. Returns two arrays
    ``[n, 4, N * N]`` (int64 indices into one flattened image, float32 weights).
    """
    grid = np.arange(size, dtype=np.float64) - size // 2
    radians = np.deg2rad(np.asarray(angles, dtype=np.float64))[:, None, None]
    c, s = np.cos(radians), np.sin(radians)
    x, y = grid[None, None, :], grid[None, :, None]
    fx, fy = c * x - s * y + size // 2, s * x + c * y + size // 2
    x0, y0 = np.floor(fx), np.floor(fy)
    indices, weights = [], []
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        ix, iy = (x0 + dx).astype(np.int64), (y0 + dy).astype(np.int64)
        inside = (ix >= 0) & (ix < size) & (iy >= 0) & (iy < size)
        wx, wy = (fx - x0 if dx else 1 - fx + x0), (fy - y0 if dy else 1 - fy + y0)
        weights.append((wx * wy * inside).reshape(len(radians), -1))
        flat = np.clip(iy, 0, size - 1) * size + np.clip(ix, 0, size - 1)
        indices.append(flat.reshape(len(radians), -1))
    return xp.asarray(np.stack(indices, 1)), xp.asarray(np.stack(weights, 1), dtype=xp.float32)


def rotate(images: Any, angles: Any, xp: ModuleType = np) -> Any:
    """Each image of ``[n, N, N]`` rotated by its angle (deg; :func:`rotation_taps`)."""
    n, size = images.shape[0], images.shape[-1]
    index, weight = rotation_taps(size, to_numpy(angles), xp)
    flat = xp.asarray(images).reshape(n, -1)
    rows = xp.arange(n)[:, None]
    out = sum(weight[:, t] * flat[rows, index[:, t]] for t in range(4))
    return out.reshape(n, size, size)


@dataclass(frozen=True)
class Settings:
    """What the classification searches and how the CTF is modelled."""

    size: int  # px, square boxes
    pixel_size: float  # Å/px
    classes: int
    angular_step: float = 6.0  # deg
    max_shift: int = 3  # px
    mask_diameter: float | None = None  # Å; None: 90 % of the box
    ctf: bool = True
    inverted: bool = True  # protein bright: the images are +sin(chi) times the projection
    voltage: float = 300.0
    spherical_aberration: float = 2.7
    amplitude_contrast: float = 0.1

    @property
    def angles(self) -> NDArray[np.float64]:
        """The in-plane angle grid (deg)."""
        grid: NDArray[np.float64] = np.arange(0.0, 360.0, self.angular_step, dtype=np.float64)
        return grid

    @property
    def shifts(self) -> NDArray[np.float64]:
        """The shift grid ``(S, 2)`` (x, y px): integers within a disc of ``max_shift``."""
        r = np.arange(-self.max_shift, self.max_shift + 1)
        x, y = np.meshgrid(r, r)
        keep = x**2 + y**2 <= self.max_shift**2 + 1e-9
        return np.column_stack([x[keep], y[keep]]).astype(np.float64)

    @property
    def mask_px(self) -> float:
        """The mask diameter in pixels."""
        diameter = self.mask_diameter or 0.9 * self.size * self.pixel_size
        return min(float(diameter) / self.pixel_size, float(self.size))


@dataclass
class Assignment:
    """Per-particle result of an alignment pass: class (0-based), psi (deg), shift (px), score."""

    classes: NDArray[np.int64]
    psi: NDArray[np.float64]
    shift_x: NDArray[np.float64]
    shift_y: NDArray[np.float64]
    score: NDArray[np.float64]


def ctf_grid(settings: Settings, ctf: dict[str, Array], xp: ModuleType = np) -> Any:
    """The CTFs on the ``rfft2`` grid, ``[n, N, N // 2 + 1]``, from ``defocus_u/v/angle`` and
    ``phase_shift`` arrays: ``+sin(chi)`` if ``inverted`` (protein bright), else ``-sin(chi)``.
    """
    if not settings.ctf:
        return xp.ones((len(ctf["defocus_u"]), settings.size, settings.size // 2 + 1), xp.float32)
    ky = np.fft.fftfreq(settings.size, d=settings.pixel_size)[None, :, None]
    kx = np.fft.rfftfreq(settings.size, d=settings.pixel_size)[None, None, :]
    column = {name: np.asarray(v, dtype=np.float64)[:, None, None] for name, v in ctf.items()}
    phase = chi(
        np.hypot(kx, ky),
        np.degrees(np.arctan2(ky, kx)),
        column["defocus_u"],
        column["defocus_v"],
        column["defocus_angle"],
        voltage=settings.voltage,
        spherical_aberration=settings.spherical_aberration,
        amplitude_contrast=settings.amplitude_contrast,
        phase_shift=column["phase_shift"],
    )
    sign = 1.0 if settings.inverted else -1.0
    return xp.asarray(sign * np.sin(phase), dtype=xp.float32)


def _band(settings: Settings, limit: float) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """Flat indices into the ``rfft2`` grid below ``limit`` Å (DC excluded) and their weights."""
    size, radius = settings.size, rings(settings.size, rounded=False)
    inside = (radius <= size * settings.pixel_size / limit) & (radius > 0)
    kx = np.arange(size // 2 + 1)
    weight = np.broadcast_to(np.where((kx == 0) | (kx == size / 2), 1.0, 2.0), radius.shape)
    flat = np.flatnonzero(inside)
    return flat, weight.ravel()[flat]


def prepare(images: Any, settings: Settings, xp: ModuleType = np) -> Any:
    """``rfft2`` of the images under a soft disc of the mask diameter plus the largest shift."""
    disc = soft_disc(settings.size, settings.mask_px + 2 * settings.max_shift, xp)
    return xp.fft.rfft2(xp.asarray(images, dtype=xp.float32) * disc).astype(xp.complex64)


class Templates:
    """Rotated, shifted and band-limited class averages, ready for batched scoring."""

    def __init__(self, averages: Any, settings: Settings, limit: float, xp: ModuleType = np):
        self.settings, self.xp = settings, xp
        angles, shifts = settings.angles, settings.shifts
        classes = averages.shape[0]
        self.flat, weight = _band(settings, limit)
        root = xp.asarray(np.sqrt(weight), dtype=xp.float32)
        size = settings.size
        index, taps = rotation_taps(size, angles, xp)
        flat = xp.asarray(averages, dtype=xp.float32).reshape(classes, -1)
        rotated = sum(taps[None, :, t] * flat[:, index[:, t]] for t in range(4))
        spectra = xp.fft.rfft2(rotated.reshape(-1, size, size)).reshape(classes * len(angles), -1)
        spectra = spectra[:, xp.asarray(self.flat)] * root
        self.power = (xp.abs(spectra) ** 2).astype(xp.float32)  # [K R, F]
        kyf, kxf = np.unravel_index(self.flat, (size, size // 2 + 1))
        kyf = np.where(kyf > size // 2, kyf - size, kyf)  # fftfreq order
        phase = np.exp(-2j * np.pi * (shifts[:, :1] * kxf + shifts[:, 1:] * kyf) / size)
        moved = spectra[:, None, :] * xp.asarray(phase, dtype=xp.complex64)[None]
        self.count, self.root = (classes, len(angles), len(shifts)), root
        self.matrix = xp.concatenate([moved.real, moved.imag], -1).reshape(-1, 2 * len(self.flat))

    def align(self, spectra: Any, ctf: Any) -> tuple[Any, Any]:
        """Best candidate index ``(class, angle, shift)`` flattened, and its normalised score."""
        xp = self.xp
        flat = xp.asarray(self.flat)
        x = spectra.reshape(len(spectra), -1)[:, flat] * self.root
        c = ctf.reshape(len(ctf), -1)[:, flat]
        weighted = x * c
        corr = xp.concatenate([weighted.real, weighted.imag], axis=-1) @ self.matrix.T
        norm = xp.maximum((c * c) @ self.power.T, 1e-12)  # [B, K R]
        classes, angles, shifts = self.count
        score = corr.reshape(len(x), classes * angles, shifts) / xp.sqrt(norm)[:, :, None]
        best = xp.argmax(score.reshape(len(x), -1), axis=1)
        top = xp.take_along_axis(score.reshape(len(x), -1), best[:, None], axis=1)[:, 0]
        particle = xp.sqrt(xp.maximum((xp.abs(x) ** 2).sum(axis=1), 1e-12))
        return best, top / particle


def align(
    images: Any, ctf: Any, templates: Templates | None, settings: Settings, rng: Any, xp: Any = np
) -> tuple[Assignment, Any]:
    """Align a batch (images ``[B, N, N]``, :func:`ctf_grid`) to the templates; ``rng``: numpy.

    Without templates (the first pass) the class and angle are drawn at random, shift 0.
    Returns the assignment and the prepared spectra (for :meth:`PartialSums.add`).
    """
    spectra, count = prepare(images, settings, xp), len(images)
    angles, shifts = settings.angles, settings.shifts
    if templates is None:
        best = rng.integers(0, settings.classes, count) * len(angles) * len(shifts)
        best += rng.integers(0, len(angles), count) * len(shifts)
        best += int(np.flatnonzero((shifts == 0).all(axis=1))[0])
        score = np.zeros(count)
    else:
        found, top = templates.align(spectra, ctf)
        best, score = to_numpy(found), to_numpy(top).astype(np.float64)
    klass, rest = np.divmod(best, len(angles) * len(shifts))
    angle, shift = np.divmod(rest, len(shifts))
    moved = -shifts[shift]
    found = Assignment(klass.astype(np.int64), angles[angle], moved[:, 0], moved[:, 1], score)
    return found, spectra


def _segment_sums(xp: ModuleType, keys: Any, values: Any) -> tuple[Any, Any]:
    """The distinct ``keys`` (sorted) and the sums of the rows of ``values`` sharing each."""
    order = xp.argsort(keys)
    ordered = keys[order]
    last = xp.flatnonzero(xp.concatenate([ordered[1:] != ordered[:-1], xp.asarray([True])]))
    running = xp.cumsum(values[order], axis=0)[last]
    running[1:] -= running[:-1].copy()
    return ordered[last], running


class PartialSums:
    """Sums of ``CTF X`` per half set, class and angle, for one block of particles.

    ``CTF^2`` is summed per half set and class as a radial profile (particles come at all
    angles, so its class-frame sum is nearly isotropic). :meth:`finish` rotates numerators back.
    """

    def __init__(self, settings: Settings, xp: ModuleType = np):
        self.settings, self.xp = settings, xp
        size, cells = settings.size, 2 * settings.classes * len(settings.angles)
        self._spectra = xp.zeros((cells, size * (size // 2 + 1) * 2), dtype=xp.float32)
        self.rings = rings(size)
        self.weight = np.zeros((2, settings.classes, int(self.rings.max()) + 1))
        onehot = np.eye(int(self.rings.max()) + 1)[self.rings.ravel()]
        self._average = xp.asarray(onehot / onehot.sum(axis=0), dtype=xp.float32)
        self.counts = np.zeros((2, settings.classes), dtype=np.int64)

    def add(self, spectra: Any, ctf: Any, assignment: Assignment, halves: Array) -> None:
        """Add a batch: prepared spectra, CTF grids, its assignment and halves (1 or 2)."""
        xp, settings, size = self.xp, self.settings, self.settings.size
        angles = len(settings.angles)
        angle = np.rint(assignment.psi / settings.angular_step).astype(np.int64) % angles
        halves = np.asarray(halves, dtype=np.int64)
        cell = ((halves - 1) * settings.classes + assignment.classes) * angles + angle
        ky = xp.asarray(np.fft.fftfreq(size)[None, :, None], dtype=xp.float32)
        kx = xp.asarray(np.arange(size // 2 + 1)[None, None, :] / size, dtype=xp.float32)
        sx = xp.asarray(-assignment.shift_x, dtype=xp.float32)[:, None, None]
        sy = xp.asarray(-assignment.shift_y, dtype=xp.float32)[:, None, None]
        back = xp.exp(2j * np.pi * kx * sx) * xp.exp(2j * np.pi * ky * sy)  # move by -s
        term = (spectra * ctf * back).reshape(len(cell), -1)
        values = xp.concatenate([term.real, term.imag], axis=1)
        cells, sums = _segment_sums(xp, xp.asarray(cell), values)
        self._spectra[cells] += sums
        profile = to_numpy((ctf * ctf).reshape(len(cell), -1) @ self._average).astype(np.float64)
        np.add.at(self.weight, (halves - 1, assignment.classes), profile)
        np.add.at(self.counts, (halves - 1, assignment.classes), 1)

    def finish(self) -> tuple[Array, Array, Array]:
        """``numerator`` ``[2, K, N, N]``, radial ``weight`` ``[2, K, rings]``, ``counts``."""
        xp, settings, size = self.xp, self.settings, self.settings.size
        cells, half = len(self._spectra), size * (size // 2 + 1)
        spectra = self._spectra[:, :half] + 1j * self._spectra[:, half:]
        images = xp.fft.irfft2(spectra.reshape(cells, size, -1), s=(size, size))
        count = len(settings.angles)
        flat = images.reshape(2 * settings.classes, count, -1).astype(xp.float32)
        index, taps = rotation_taps(size, -settings.angles, xp)
        rows = xp.arange(count)[:, None]
        numerator = sum(taps[None, :, t] * flat[:, rows, index[:, t]] for t in range(4))
        numerator = numerator.sum(axis=1).reshape(2, settings.classes, size, size)
        return to_numpy(numerator), self.weight, self.counts

    def save(self, path: Path) -> None:
        """Write the block's rotated-back sums as ``.npz``."""
        numerator, weight, counts = self.finish()
        np.savez(path, numerator=numerator, weight=weight, counts=counts)


def rings(size: int, rounded: bool = True) -> Array:
    """The Fourier radius (px; rounded to int64: the ring) of each ``rfft2`` coefficient."""
    ky = np.fft.fftfreq(size) * size
    radius = np.hypot(np.arange(size // 2 + 1)[None, :], ky[:, None])
    result: Array = np.rint(radius).astype(np.int64) if rounded else radius
    return result


def load_sums(paths: list[Path]) -> tuple[Array, Array, Array]:
    """Add up the sums saved by :meth:`PartialSums.save`."""
    total: list[Array] = []
    for path in paths:
        with np.load(path) as data:
            parts = [data["numerator"], data["weight"], data["counts"]]
        total = parts if not total else [a + b for a, b in zip(total, parts, strict=True)]
    return total[0], total[1], total[2]


def wiener_average(numerator: Array, weight: Array) -> NDArray[np.float64]:
    """``sum(CTF X) / (sum(CTF^2) + eps)``: images ``[..., N, N]``, radial weights ``[..., R]``.

    ``eps`` is ``WIENER`` times the mean of the weights up to a quarter of the box.
    """
    size = numerator.shape[-1]
    ring = rings(size)
    eps = WIENER * weight[..., : size // 4].mean(axis=-1)[..., None, None] + 1e-6
    spectrum = np.fft.rfft2(numerator) / (weight[..., ring] + eps)
    average: NDArray[np.float64] = np.fft.irfft2(spectrum, s=(size, size))
    return average


def centre(averages: Array, mask: Array) -> NDArray[np.float64]:
    """Averages ``[K, N, N]`` moved so the centre of mass of their positive part is at ``N//2``."""
    size = averages.shape[-1]
    grid = np.arange(size) - size // 2
    positive = np.clip(averages * mask, 0.0, None)
    total = np.maximum(positive.sum(axis=(-2, -1)), 1e-12)
    cx = (positive * grid[None, None, :]).sum(axis=(-2, -1)) / total
    cy = (positive * grid[None, :, None]).sum(axis=(-2, -1)) / total
    k = np.fft.fftfreq(size)
    phase = np.exp(
        2j * np.pi * (k[None, None, :] * cx[:, None, None] + k[None, :, None] * cy[:, None, None])
    )
    moved: NDArray[np.float64] = np.fft.ifft2(np.fft.fft2(averages) * phase).real
    return moved


@dataclass
class References:
    """The result of a merge: averages ``[K, N, N]``, half averages, counts and resolutions."""

    averages: NDArray[np.float64]
    halves: NDArray[np.float64]
    counts: NDArray[np.int64]
    resolutions: NDArray[np.float64]


def merge_sums(
    numerator: Array, weight: Array, counts: Array, settings: Settings, *, final: bool
) -> References:
    """Class averages (masked) from summed partials; unless ``final``, centred and re-seeded.

    ``resolutions``: 0.143 crossing of the FRC of the half averages (inf for a missing half).
    A class under 2 % of the mean class size takes the second half average of the largest.
    """
    mask = to_numpy(soft_disc(settings.size, settings.mask_px)).astype(np.float64)
    halves = wiener_average(numerator, weight) * mask
    averages = wiener_average(numerator.sum(axis=0), weight.sum(axis=0)) * mask
    sizes = counts.sum(axis=0)
    frc = [fsc(halves[0, k], halves[1, k], settings.pixel_size) for k in range(len(sizes))]
    resolutions = np.array([crossing(*curve, 0.143) for curve in frc])
    resolutions[counts.min(axis=0) == 0] = np.inf
    if not final:
        averages = centre(averages, mask) * mask
        small = np.flatnonzero(sizes < max(1.0, 0.02 * sizes.sum() / settings.classes))
        for k in small:
            largest = int(np.argmax(sizes))
            averages[largest], averages[k] = halves[0, largest], halves[1, largest]
            sizes[k] = sizes[largest] = sizes[largest] // 2
    return References(averages, halves, sizes.astype(np.int64), resolutions)


def schedule(iterations: int, settings: Settings, resolution: float = 8.0) -> list[float]:
    """Resolution limits (Å) of the alignment passes: from 25 Å (or coarser) to ``resolution``.

    The limit is at least 2.5 px (60 % of Nyquist) and the first at least 25 Å, so the first
    passes see only the low-resolution shape, which is robust at low SNR.
    """
    end = max(float(resolution), 2.5 * settings.pixel_size)
    start = max(end, min(25.0, settings.size * settings.pixel_size / 3))
    return [float(v) for v in 1 / np.linspace(1 / start, 1 / end, max(iterations, 1))]
