"""Projection matching: orientations and shifts of particles against reference maps.

Particles and references are compared on the Fourier points of :mod:`cryolab.em.projector`.
A shift ``d`` (px) is the translation that centres a particle (the particle sits at ``-d`` from
the box centre; ``transform.shift_x/y`` are ``d`` times the pixel size, as
:class:`cryolab.em.reconstruct.Reconstructor` reads them), so a particle is modelled as
``X ~ CTF * R(A) * exp(2 pi i k.d)`` and the score of an orientation ``A``, shift ``d`` and
reference ``R`` is the normalised correlation

    ``Re sum_k conj(X_k e^{-2 pi i k.d}) CTF_k R_k(A) / sqrt(sum_k CTF_k^2 |R_k(A)|^2)``

(the particle's own norm is the same for every candidate and left out). Both sums over ``k``
are matrix products, so a global search over thousands of orientations (:func:`global_search`)
is one real matrix product per block of particles, and a local search (:func:`local_search`)
is a batched one over each particle's own candidates around its previous pose.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cryolab.em.geometry import rotvec_to_matrix
from cryolab.em.projector import FourierPoints, Projector

FloatArray = NDArray[np.float64]

SCORES_AT_ONCE = 1 << 24
"""Scores (particles x shifts x orientations) computed in one block: bounds the memory."""


def shift_grid(max_shift: float, step: float) -> FloatArray:
    """Shifts ``(s, 2)`` on a square grid of ``step`` px within a disc of ``max_shift`` px."""
    count = math.floor(max_shift / step + 1e-9)
    values = np.arange(-count, count + 1) * step
    x, y = np.meshgrid(values, values, indexing="xy")
    grid: FloatArray = np.stack([x.ravel(), y.ravel()], axis=1)
    inside: FloatArray = grid[np.hypot(grid[:, 0], grid[:, 1]) <= max_shift + 1e-9]
    return inside


def local_rotations(step: float, reach: float = 1.0) -> FloatArray:
    """Small rotations ``(c, 3, 3)``: rotation vectors on a cubic grid of ``step`` degrees within
    ``reach * step * sqrt(3)`` of the identity (the identity included)."""
    span = max(1, math.ceil(reach))
    axis = np.arange(-span, span + 1, dtype=np.float64)
    vectors = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    vectors = vectors[np.linalg.norm(vectors, axis=1) <= reach * math.sqrt(3) + 1e-9]
    return rotvec_to_matrix(np.radians(step) * vectors)


def _real_pair(values: Any, xp: Any) -> Any:
    """``[Re, Im]`` along the last axis, so ``Re(a conj(b))`` is a real dot product."""
    return xp.concatenate([values.real, values.imag], axis=-1)


def global_search(
    coefficients: Any,
    ctf: Any,
    references: Any,
    points: FourierPoints,
    shifts: ArrayLike,
    *,
    keep: int = 1,
    xp: Any = np,
) -> tuple[Any, Any, Any]:
    """Best ``keep`` (reference slice, shift) pairs per particle over one shared list of slices.

    Parameters
    ----------
    coefficients, ctf
        ``(n, points)`` particle coefficients and CTF values on ``points``.
    references
        ``(m, points)`` reference slices (orientations of one or more maps, flattened).
    shifts
        ``(s, 2)`` candidate shifts in px.

    keep
        How many of the best candidates to return per particle (best first).

    Returns
    -------
    tuple
        Indices of the slices ``(n, keep)``, of the shifts ``(n, keep)``, and the scores
        ``(n, keep)``.
    """
    n, m = coefficients.shape[0], references.shape[0]
    factors = points.shift_factors(shifts, xp).astype(xp.complex64)  # (s, points)
    s = factors.shape[0]
    refs = _real_pair(references.astype(xp.complex64), xp).T  # (2 points, m)
    power = (xp.abs(references) ** 2).astype(xp.float32).T  # (points, m)
    keep = min(keep, s * m)
    best_slice = xp.zeros((n, keep), dtype=xp.int64)
    best_shift = xp.zeros((n, keep), dtype=xp.int64)
    best_score = xp.zeros((n, keep), dtype=xp.float32)
    block = max(1, SCORES_AT_ONCE // max(1, s * m))
    for first in range(0, n, block):
        x = coefficients[first : first + block]
        c = ctf[first : first + block].astype(xp.float32)
        count = x.shape[0]
        centred = x[:, None, :] * factors[None] * c[:, None, :]  # (b, s, points)
        numerator = _real_pair(centred, xp).reshape(count * s, -1) @ refs  # (b s, m)
        norm = xp.sqrt(xp.maximum((c * c) @ power, 1e-30))  # (b, m)
        score = (numerator.reshape(count, s, m) / norm[:, None, :]).reshape(count, -1)
        if keep == 1:
            flat = score.argmax(axis=1)[:, None]
        else:
            flat = xp.argpartition(-score, keep - 1, axis=1)[:, :keep]
        values = xp.take_along_axis(score, flat, axis=1)
        order = xp.argsort(-values, axis=1)
        flat, values = xp.take_along_axis(flat, order, 1), xp.take_along_axis(values, order, 1)
        best_shift[first : first + count] = flat // m
        best_slice[first : first + count] = flat % m
        best_score[first : first + count] = values
    return best_slice, best_shift, best_score


def local_search(
    coefficients: Any,
    ctf: Any,
    projector: Projector,
    points: FourierPoints,
    matrices: ArrayLike,
    centres: ArrayLike,
    perturbations: ArrayLike,
    shifts: ArrayLike,
) -> tuple[Any, Any, Any]:
    """Best orientation and shift per particle near its previous pose, against one map.

    Parameters
    ----------
    matrices, centres
        Previous orientations ``(n, 3, 3)`` and shifts ``(n, 2)`` px.
    perturbations
        Small rotations ``(c, 3, 3)`` applied as ``P @ A`` (see :func:`local_rotations`).
    shifts
        ``(s, 2)`` offsets in px added to each particle's previous shift.

    Returns
    -------
    tuple
        Orientations ``(n, 3, 3)``, shifts ``(n, 2)`` and scores ``(n,)`` (numpy/CuPy
        as the projector's device).
    """
    xp = projector.xp
    a = xp.asarray(matrices, dtype=xp.float64)
    p = xp.asarray(perturbations, dtype=xp.float64)
    offsets = xp.asarray(shifts, dtype=xp.float64)
    centre = xp.asarray(centres, dtype=xp.float64)
    n, c = a.shape[0], p.shape[0]
    out_matrix = xp.zeros((n, 3, 3))
    out_shift = xp.zeros((n, 2))
    out_score = xp.zeros(n)
    block = max(1, SCORES_AT_ONCE // max(1, c * len(points) * 4))
    for first in range(0, n, block):
        rows = slice(first, first + block)
        count = a[rows].shape[0]
        candidates = p[None] @ a[rows, None]  # (b, c, 3, 3)
        slices = projector.slices(candidates, points)  # (b, c, points)
        moved = centre[rows, None, :] + offsets[None]  # (b, s, 2)
        factors = points.shift_factors(moved, xp).astype(xp.complex64)  # (b, s, points)
        cf = ctf[rows].astype(xp.float32)
        centred = coefficients[rows, None, :] * factors * cf[:, None, :]
        numerator = _real_pair(centred, xp) @ xp.swapaxes(_real_pair(slices, xp), 1, 2)
        power = (xp.abs(slices) ** 2).astype(xp.float32)
        norm = xp.sqrt(xp.maximum(xp.einsum("bk,bck->bc", cf * cf, power), 1e-30))
        score = (numerator / norm[:, None, :]).reshape(count, -1)  # (b, s c)
        flat = score.argmax(axis=1)
        pick = xp.arange(count)
        out_matrix[rows] = candidates[pick, flat % c]
        out_shift[rows] = moved[pick, flat // c]
        out_score[rows] = score[pick, flat]
    return out_matrix, out_shift, out_score
