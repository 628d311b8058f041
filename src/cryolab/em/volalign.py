"""Align a map to a reference: global rotation search, mirror (hand) test, local refinement.

An ab-initio map comes out in an arbitrary orientation and position and possibly with the wrong
hand. :func:`align_volume` finds the rotation ``R``, the shift ``t`` (voxels) and, optionally,
the mirror ``S = diag(-1, 1, 1)`` (a flip of x about the centre) that put it onto a reference.

Coordinates are ``(x, y, z)`` in voxels from the centre voxel ``N // 2`` of ``[z, y, x]``
arrays (``docs/conventions.md``). The aligned map is ``aligned(r) = moving(S @ R.T @ (r - t))``
(``S`` the identity when not mirrored): the point ``p`` of the moving map lands on
``R @ S @ p + t``. If the moving map is the reference turned by ``Q`` (``moving(Q @ r) =
reference(r)``), ``R`` is ``Q.T``.

The search, on maps low-passed to ``resolution``:

1. both maps are Fourier-cropped to :data:`COARSE_SIZE` voxels and blurred to three coarse
   pixels; every rotation of a grid :data:`COARSE_STEP` degrees apart (Fibonacci directions
   times in-plane angles, uniform over SO(3)) is scored, for each hand, by the peak of the FFT
   cross-correlation over all translations, divided by the norm of the turned map;
2. the best :data:`CANDIDATES` distinct solutions are refined (Nelder-Mead over a rotation
   vector and the shift, maximising the masked correlation) on the coarse grid, and the best of
   them again on a grid whose Nyquist frequency matches ``resolution``;
3. the full-size moving map is resampled once (cubic spline) with the result.
"""

from __future__ import annotations

import importlib
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage, optimize

from cryolab.em.fsc import low_pass, soft_mask
from cryolab.em.geometry import euler_to_matrix, matrix_angular_distance, rotvec_to_matrix
from cryolab.em.xp import array_module, to_numpy

FloatArray = NDArray[np.float64]

COARSE_SIZE = 24  # edge (voxels) of the maps of the global search
COARSE_STEP = 15.0  # spacing (degrees) of the rotation grid of the global search
CANDIDATES = 4  # distinct global solutions refined locally
_MIRROR = np.diag([-1.0, 1.0, 1.0])
_BATCH = 256  # rotations scored per FFT batch


@dataclass(frozen=True)
class VolumeAlignment:
    """The result of :func:`align_volume`.

    Attributes
    ----------
    volume
        The moving map resampled into the reference frame, ``float32``, the reference's shape.
    matrix
        The rotation ``R`` (3x3, determinant +1) acting on ``(x, y, z)``.
    shift
        The shift ``t`` in voxels, ``(x, y, z)``.
    mirrored
        Whether the moving map was mirrored (x flipped about the centre) before ``R``.
    correlation
        Normalised cross-correlation of ``volume`` and the reference under a soft sphere of
        radius ``0.4 N`` voxels.
    """

    volume: NDArray[np.float32]
    matrix: FloatArray
    shift: FloatArray
    mirrored: bool
    correlation: float


def rotation_grid(step: float) -> FloatArray:
    """Rotation matrices about ``step`` degrees apart, uniform over SO(3).

    Directions ``(rot, tilt)`` lie on a Fibonacci sphere of ``4 pi / step**2`` points and each
    takes in-plane angles ``psi`` every ``360 / round(360 / step)`` degrees.

    Returns
    -------
    numpy.ndarray
        ``(K, 3, 3)`` matrices of :func:`cryolab.em.geometry.euler_to_matrix`.
    """
    count = max(2, round(4 * math.pi / math.radians(step) ** 2))
    index = np.arange(count) + 0.5
    tilt = np.degrees(np.arccos(1 - 2 * index / count))
    rot = np.degrees(np.pi * (1 + 5**0.5) * index) % 360
    psi = np.arange(max(1, round(360 / step))) * 360 / max(1, round(360 / step))
    return euler_to_matrix(rot[:, None], tilt[:, None], psi[None, :]).reshape(-1, 3, 3)


def _fourier_crop(volume: ArrayLike, size: int) -> FloatArray:
    """The map (as float64) resampled to ``size`` voxels per edge by cropping its spectrum."""
    v = np.asarray(volume, dtype=np.float64)
    n = v.shape[0]
    if size >= n:
        return v
    spectrum = np.fft.fftshift(np.fft.fftn(v))
    lo = n // 2 - size // 2
    block = spectrum[lo : lo + size, lo : lo + size, lo : lo + size]
    cropped: FloatArray = np.fft.ifftn(np.fft.ifftshift(block)).real * (size / n) ** 3
    return cropped


def _index_affine(
    rotation: FloatArray, mirrored: bool, shift: FloatArray, centre: float
) -> tuple[FloatArray, FloatArray]:
    """Matrix and offset on ``(z, y, x)`` indices of ``aligned(r) = moving(S R.T (r - t))``."""
    linear = _MIRROR @ rotation.T if mirrored else rotation.T
    matrix = np.ascontiguousarray(linear[::-1, ::-1])
    offset: FloatArray = centre - matrix @ (centre + shift[::-1])
    return matrix, offset


def _points(size: int, radius: float) -> tuple[FloatArray, NDArray[np.intp]]:
    """``(z, y, x)`` offsets ``(3, K)`` of the voxels within ``radius`` of the centre; indices."""
    offsets = np.indices((size,) * 3).reshape(3, -1) - size // 2
    inside = np.flatnonzero(np.sum(offsets**2, axis=0) <= radius**2)
    return offsets[:, inside].astype(np.float64), inside


def _support_radius(volume: FloatArray, fraction: float = 0.99) -> float:
    """Radius (voxels, plus two) holding ``fraction`` of the energy above the corners' mean."""
    n = volume.shape[0]
    radius = np.sqrt(np.sum(_points(n, n)[0] ** 2, axis=0))
    order = np.argsort(radius)
    background = volume.ravel()[radius > n / 2 - 1].mean()
    energy = np.cumsum(((volume.ravel() - background) ** 2)[order])
    inner = int(np.searchsorted(energy, fraction * energy[-1]))
    return min(n / 2 - 1, float(radius[order[min(inner, n**3 - 1)]]) + 2)


def _global_search(
    moving: FloatArray, reference: FloatArray, allow_mirror: bool, xp: Any
) -> list[tuple[float, FloatArray, bool, FloatArray]]:
    """Score every grid rotation and hand; the best distinct ``(score, R, mirrored, t)``.

    The mirror hand is scored against the mirrored reference ``reference(S @ r)``: a grid
    rotation ``G`` and shift ``s`` found there give ``R = S @ G @ S`` and ``t = S @ s``.
    """
    n = moving.shape[0]
    gpu = xp is not np
    ndi = importlib.import_module("cupyx.scipy.ndimage" if gpu else "scipy.ndimage")
    fft = importlib.import_module("cupyx.scipy.fft" if gpu else "scipy.fft")
    workers: dict[str, int] = {} if gpu else {"workers": os.cpu_count() or 1}
    points, inside = _points(n, _support_radius(moving))
    pts = xp.asarray(points, dtype=xp.float32)
    ref = reference - reference.mean()
    refs = [ref, ref[:, :, (2 * (n // 2) - np.arange(n)) % n]] if allow_mirror else [ref]
    ref_ft = xp.conj(fft.rfftn(xp.asarray(np.stack(refs), dtype=xp.float32), axes=(1, 2, 3)))
    grid = rotation_grid(COARSE_STEP)
    linear = np.swapaxes(grid, 1, 2)[:, ::-1, ::-1].astype(np.float32)  # G.T on (z, y, x)
    vol = xp.asarray(moving, dtype=xp.float32)
    scores, peaks = [], []
    for start in range(0, len(grid), _BATCH):
        m = xp.asarray(linear[start : start + _BATCH])[:, :, :, None]
        coords = xp.stack([sum(m[:, i, j] * pts[j] for j in range(3)) for i in range(3)])
        flat = coords.reshape(3, -1) + n // 2
        values = ndi.map_coordinates(vol, flat, order=1).reshape(len(m), -1)
        values -= values.mean(axis=1, keepdims=True)
        cube = xp.zeros((len(m), n**3), dtype=xp.float32)
        cube[:, xp.asarray(inside)] = values
        spectrum = fft.rfftn(cube.reshape(-1, n, n, n), axes=(1, 2, 3), **workers)
        product = spectrum[:, None] * ref_ft[None]
        corr = fft.irfftn(product, s=(n, n, n), axes=(2, 3, 4), **workers)
        corr = corr.reshape(len(m), len(refs), -1)
        peak = xp.argmax(corr, axis=2)
        best = xp.take_along_axis(corr, peak[:, :, None], axis=2)[:, :, 0]
        scores.append(to_numpy(best / xp.linalg.norm(values, axis=1)[:, None]))
        peaks.append(to_numpy(peak))
    score, peak = np.concatenate(scores).ravel(), np.concatenate(peaks).ravel()
    chosen: list[tuple[float, FloatArray, bool, FloatArray]] = []
    for k in np.argsort(score)[::-1]:
        mirrored = bool(k % len(refs))
        rotation = grid[k // len(refs)]
        zyx = (np.array(np.unravel_index(int(peak[k]), (n, n, n))) + n // 2) % n - n // 2
        shift = zyx[::-1].astype(np.float64)
        if mirrored:
            rotation, shift = _MIRROR @ rotation @ _MIRROR, _MIRROR @ shift
        if not any(
            m == mirrored and matrix_angular_distance(r, rotation) < 2 * COARSE_STEP
            for _, r, m, _ in chosen
        ):
            chosen.append((float(score[k]), rotation, mirrored, shift))
        if len(chosen) == CANDIDATES:
            break
    return chosen


class _Scorer:
    """Masked correlation of the turned, shifted moving map with the reference at one size."""

    def __init__(self, moving: FloatArray, reference: FloatArray, full: int) -> None:
        n = moving.shape[0]
        self.moving, self.scale, self.centre = moving, n / full, n // 2
        points, inside = _points(n, n / 2)
        self.points = points + n // 2
        weight = soft_mask(n, 0.4 * n, 0.05 * n).ravel()[inside].astype(np.float64)
        self.weight = weight / weight.sum()
        ref = reference.ravel()[inside]
        ref = ref - np.sum(self.weight * ref)
        self.reference = self.weight * ref / np.sqrt(np.sum(self.weight * ref**2))

    def __call__(self, rotation: FloatArray, mirrored: bool, shift: FloatArray) -> float:
        """The correlation for ``R``, the hand and ``t`` (full-size voxels, ``(x, y, z)``)."""
        matrix, offset = _index_affine(rotation, mirrored, shift * self.scale, self.centre)
        # elementwise rather than BLAS: small products, no thread start-up on a busy machine
        coords = sum(matrix[:, j, None] * self.points[j] for j in range(3)) + offset[:, None]
        values = ndimage.map_coordinates(self.moving, coords, order=1, mode="constant")
        values -= np.sum(self.weight * values)
        norm = math.sqrt(float(np.sum(self.weight * values**2)))
        return float(np.sum(self.reference * values)) / norm if norm > 0 else 0.0

    def refine(
        self, rotation: FloatArray, mirrored: bool, shift: FloatArray, step: float, iterations: int
    ) -> tuple[float, FloatArray, FloatArray]:
        """Nelder-Mead from ``(R, t)`` with a first simplex of ``step`` degrees and voxels."""

        def cost(x: FloatArray) -> float:
            turn = rotvec_to_matrix(np.radians(x[:3]))
            return -self(turn @ rotation, mirrored, shift + x[3:])

        simplex = np.vstack([np.zeros(6), step * np.eye(6)])
        options = {"initial_simplex": simplex, "xatol": 0.02, "fatol": 1e-7, "maxiter": iterations}
        result = optimize.minimize(cost, np.zeros(6), method="Nelder-Mead", options=options)
        x = result.x
        return -float(result.fun), rotvec_to_matrix(np.radians(x[:3])) @ rotation, shift + x[3:]


def align_volume(
    moving: ArrayLike,
    reference: ArrayLike,
    *,
    pixel_size: float,
    resolution: float | None = None,
    allow_mirror: bool = True,
    device: str = "cpu",
) -> VolumeAlignment:
    """Align ``moving`` to ``reference`` (rotation, shift and, optionally, hand).

    Parameters
    ----------
    moving, reference
        Cubic ``[z, y, x]`` maps of one shape, centred on voxel ``N // 2``.
    pixel_size
        Å per voxel of both maps.
    resolution
        Low-pass (Å) applied to both maps for the search; default four pixels.
    allow_mirror
        Also try the mirror image of ``moving`` (the other hand).
    device
        Where the global search runs: ``"cpu"``, ``"gpu"`` or ``"auto"``
        (:func:`cryolab.em.xp.array_module`); the refinement runs on the CPU.

    Returns
    -------
    VolumeAlignment
        The aligned map, ``R``, ``t``, the hand and the masked correlation.

    Raises
    ------
    ValueError
        If the maps are not cubic, differ in shape or ``pixel_size`` is not positive.
    """
    mov = np.asarray(moving, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    if mov.ndim != 3 or len(set(mov.shape)) != 1 or mov.shape != ref.shape:
        raise ValueError(
            f"align_volume needs two cubic maps of one shape, got {mov.shape} and {ref.shape}"
        )
    if pixel_size <= 0:
        raise ValueError(f"pixel_size must be positive, got {pixel_size}")
    n = mov.shape[0]
    cutoff = resolution if resolution is not None else 4 * pixel_size
    low = [low_pass(v, pixel_size, cutoff) for v in (mov, ref)]
    size = min(n, COARSE_SIZE)
    coarse_pixel = pixel_size * n / size
    blur = max(cutoff, 3 * coarse_pixel)
    coarse = [
        np.asarray(low_pass(_fourier_crop(v, size), coarse_pixel, blur, 0.3), dtype=np.float64)
        for v in low
    ]
    found = _global_search(coarse[0], coarse[1], allow_mirror, array_module(device))
    scorer = _Scorer(coarse[0], coarse[1], n)
    refined = [
        (*scorer.refine(r, m, t * n / size, COARSE_STEP / 3, 200), m) for _, r, m, t in found
    ]
    _, rotation, shift, mirrored = max(refined, key=lambda c: c[0])
    fine_size = min(n, 2 * math.ceil(n * pixel_size / cutoff))
    fine = _Scorer(_fourier_crop(low[0], fine_size), _fourier_crop(low[1], fine_size), n)
    _, rotation, shift = fine.refine(rotation, mirrored, shift, 1.0, 300)
    matrix, offset = _index_affine(rotation, mirrored, shift, n // 2)
    volume = ndimage.affine_transform(mov, matrix, offset, order=3, mode="constant")
    mask = soft_mask(n, 0.4 * n, 0.05 * n).astype(np.float64)
    a, b = (v - np.average(v, weights=mask) for v in (volume, ref))
    correlation = float(np.sum(mask * a * b) / np.sqrt(np.sum(mask * a**2) * np.sum(mask * b**2)))
    return VolumeAlignment(volume.astype(np.float32), rotation, shift, mirrored, correlation)
