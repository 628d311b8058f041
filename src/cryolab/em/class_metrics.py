"""Evaluation of 2-D classification on simulations: a known map and particles held in memory.

:func:`classify` runs the whole classification on images in memory (the ``spa.classify_2d``
protocol streams them from their stacks instead); :func:`class_agreement` scores averages.

The metric, :func:`class_agreement`, gives each class average its best normalised
cross-correlation (NCC) with a noiseless projection of the true map, searching

- projection directions on a Fibonacci grid over the whole sphere (no mirror search is needed:
  the opposite direction gives the mirror image), ``angular_step`` apart;
- in-plane rotations of the average every ``angular_step / 2`` degrees;
- shifts up to ``max_shift`` Å, by FFT cross-correlation.

Both images are Fourier-cropped to a pixel of ``resolution / 2.5`` Å, low-passed to
``resolution`` with a raised-cosine edge, stripped of their rotational average (the mean over
each ring about the centre), put under one soft circular mask and scaled to unit norm. The NCC
thus measures the anisotropic shape of a view. Without removing the rotational average a
globular particle's round envelope dominates at 20 Å: averages of randomly grouped, randomly
rotated particles (round blobs) then scored 0.98, as high as correct classes. Comparing at low
resolution (20 Å by default) asks what 2-D classification must deliver on noisy data: the
right views, well aligned, not smeared by wrong rotations or mixed classes.

Pass threshold: ``median >= 0.8``. Measured on the phantom (SNR 0.05, CTF, 1500 particles,
box 64 at 2 Å/px, 10 views): correct classes 0.86-0.93 (median 0.89); averages of random
groups at random angles 0.60-0.75 (median 0.69); pure noise 0.42-0.55 (median 0.50, the
maximum of a wide search over noise). The test-suite re-measures the three on smaller data
and checks they stay apart (``tests/em/test_classify2d.py``).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cryolab.em.classify2d import (
    Assignment,
    PartialSums,
    References,
    Settings,
    Templates,
    align,
    ctf_grid,
    merge_sums,
    rotate,
    schedule,
    soft_disc,
)
from cryolab.em.simulate import project

Array = NDArray[np.float64]


def fourier_crop(data: ArrayLike, size: int, dims: int) -> Array:
    """The last ``dims`` axes cropped in Fourier space to ``size`` (values keep their scale)."""
    array = np.asarray(data, dtype=np.float64)
    n = array.shape[-1]
    axes = tuple(range(array.ndim - dims, array.ndim))
    spectrum = np.fft.fftshift(np.fft.fftn(array, axes=axes), axes=axes)
    start = n // 2 - size // 2
    index = tuple(
        slice(start, start + size) if axis in axes else slice(None) for axis in range(array.ndim)
    )
    ratio = (size / n) ** len(axes)
    cropped = np.fft.ifftn(np.fft.ifftshift(spectrum[index], axes=axes), axes=axes)
    return np.asarray(cropped.real * ratio)


def _standardise(images: Array, mask: Array, cutoff: float) -> Array:
    """Low-pass to ``cutoff`` (cycles/px), remove the rotational average, mask, unit norm."""
    size = images.shape[-1]
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size)))
    edge = np.clip((k - cutoff) / (0.25 * cutoff) + 1, 0.0, 1.0)
    low = np.fft.ifft2(np.fft.fft2(images) * (0.5 * (1 + np.cos(np.pi * edge)))).real
    grid = np.arange(size) - size // 2
    ring = np.rint(np.hypot(grid[None, :], grid[:, None])).astype(np.int64).ravel()
    flat = low.reshape(-1, size * size)
    sums = np.stack([np.bincount(ring, row) for row in flat]) / np.bincount(ring)
    low = (low - sums[:, ring].reshape(low.shape)) * mask
    norm = np.sqrt((low**2).sum(axis=(-2, -1)))[..., None, None]
    return np.asarray(low / np.maximum(norm, 1e-12))


def sphere_directions(angular_step: float) -> tuple[Array, Array]:
    """``(rot, tilt)`` in degrees on a Fibonacci grid about ``angular_step`` apart."""
    count = max(int(4 * np.pi / np.deg2rad(angular_step) ** 2), 2)
    index = np.arange(count) + 0.5
    tilt = np.degrees(np.arccos(1 - 2 * index / count))
    rot = np.degrees(np.pi * (1 + 5**0.5) * index) % 360
    return rot, tilt


def class_agreement(
    averages: ArrayLike,
    volume: ArrayLike,
    pixel_size: float,
    *,
    resolution: float = 20.0,
    angular_step: float = 8.0,
    mask_diameter: float | None = None,
    max_shift: float = 8.0,
) -> Array:
    """The best NCC of each class average with a projection of ``volume`` (module notes).

    Parameters
    ----------
    averages
        ``[K, N, N]`` class averages (protein bright), pixel ``pixel_size`` Å.
    volume
        ``[N, N, N]`` true map, same pixel.
    resolution
        Both are compared low-passed to this (Å).
    angular_step
        Spacing of the projection directions (deg); in-plane angles are twice as dense.
    mask_diameter
        Diameter (Å) of the soft circular mask; default 90 % of the box.
    max_shift
        Largest shift searched (Å).

    Returns
    -------
    numpy.ndarray
        ``[K]`` values in ``[-1, 1]``.
    """
    stack = np.asarray(averages, dtype=np.float64)
    size = stack.shape[-1]
    small = min(size, 2 * int(np.ceil(1.25 * size * pixel_size / resolution)))
    crop_pixel = pixel_size * size / small
    cropped = fourier_crop(volume, small, 3)
    diameter = (
        mask_diameter if mask_diameter is not None else 0.9 * size * pixel_size
    ) / crop_pixel
    mask = np.asarray(soft_disc(small, min(diameter, small), edge=2.0), dtype=np.float64)
    cutoff = crop_pixel / resolution
    rot, tilt = sphere_directions(angular_step)
    projections = np.stack(
        [np.asarray(project(cropped, r, t, 0.0)) for r, t in zip(rot, tilt, strict=True)]
    )
    references = np.fft.fft2(_standardise(projections, mask, cutoff))
    angles = np.arange(0.0, 360.0, angular_step / 2)
    classes = fourier_crop(stack, small, 2)
    turned = rotate(np.repeat(classes, len(angles), axis=0), np.tile(angles, len(classes)))
    candidates = np.fft.fft2(_standardise(np.asarray(turned, dtype=np.float64), mask, cutoff))
    grid = np.fft.fftfreq(small) * small
    near = np.hypot(grid[None, :], grid[:, None]) <= max_shift / crop_pixel
    best = np.full(len(classes), -1.0)
    for reference in references:
        scores: Any = np.fft.ifft2(candidates * np.conj(reference)).real[:, near].max(axis=1)
        best = np.maximum(best, scores.reshape(len(classes), len(angles)).max(axis=1))
    return best


def classify(
    images: NDArray[Any],
    ctf: dict[str, NDArray[Any]],
    settings: Settings,
    *,
    iterations: int = 12,
    seed: int = 0,
    batch_size: int = 256,
    resolution: float = 8.0,
    xp: ModuleType = np,
) -> tuple[References, Assignment]:
    """The whole classification on images held in memory (the protocol streams them instead).

    Parameters
    ----------
    images
        ``[n, N, N]`` particle images (protein bright when ``settings.inverted``).
    ctf
        ``defocus_u``, ``defocus_v``, ``defocus_angle``, ``phase_shift`` per particle.
    settings, iterations, seed, batch_size, resolution
        The search (:class:`Settings`), the alignment passes after the random start, the random
        seed, particles per batch and the final resolution limit (Å, :func:`schedule`).

    Returns
    -------
    References, Assignment
        The final class averages and the per-particle assignment of the last pass.
    """
    rng = np.random.default_rng(seed)
    halves = rng.permutation(len(images)) % 2 + 1
    limits = schedule(iterations, settings, resolution)
    references: References | None = None
    found: list[Assignment] = []
    for number in range(iterations + 1):
        templates = None
        if references is not None:
            templates = Templates(references.averages, settings, limits[number - 1], xp)
        sums = PartialSums(settings, xp)
        found = []
        for start in range(0, len(images), batch_size):
            part = slice(start, start + batch_size)
            grids = ctf_grid(settings, {k: v[part] for k, v in ctf.items()}, xp)
            assignment, spectra = align(
                xp.asarray(images[part]), grids, templates, settings, rng, xp
            )
            sums.add(spectra, grids, assignment, halves[part])
            found.append(assignment)
        final = number == iterations
        references = merge_sums(*sums.finish(), settings, final=final)
    assert references is not None
    fields = ("classes", "psi", "shift_x", "shift_y", "score")
    joined = Assignment(*(np.concatenate([getattr(a, f) for a in found]) for f in fields))
    return references, joined
