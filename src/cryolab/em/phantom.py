"""Synthetic specimens generated in code: a chiral "protein-like" test map and contamination.

The phantom is a fixed object about :data:`PHANTOM_DIAMETER` Å across, sampled on a cubic grid
of any size and pixel size. It is the sum of Gaussian blobs, in one of two shapes:

- ``"elongated"`` (the default, the demo's specimen): five globular "domains" of decreasing
  size and density strung head to tail along a bent axis, one of them off to the side, so the
  low-resolution envelope alone tells the orientation, as that of most real proteins does;
- ``"globular"``: three domains inside a ball of small blobs, nearly round at 40 Å;

and in both a right-handed helix of small blobs (it makes the hand of the map, and so the sign
convention of every orientation, determinable) and a few dozen smaller blobs at seeded random
positions (around the domains, or anywhere in the ball), so no rotation other than the
identity maps the object onto itself.

Why two: the globular shape is also nearly its own mirror image at low resolution (three
centres are always coplanar). Ab-initio reconstruction from its particles converged to a
self-consistent wrong map (FSC 0.86 against the truth at 40 Å; projection matching started
from the truth low-passed to 40 Å drifted to the same state), as did a head-to-tail symmetric
elongated shape (to a mix of the molecule and its end-to-end flip; ``docs/validation.md``).
Those are real limits of ab-initio methods on small, round or pseudo-symmetric particles; the
demo's specimen shows the pipeline working, and the globular one stays for the tests whose
views or classes it was chosen for.

The array is indexed ``[z, y, x]`` and centred on voxel ``size // 2`` (``docs/conventions.md``).

Contamination for simulated micrographs (:func:`large_contamination`, :func:`small_blobs`), the
amorphous ice background (:func:`ice_texture`) and the random placement of particles
(:func:`place_points`) are here too.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

Array = NDArray[Any]

PHANTOM_DIAMETER = 76.8
"""Approximate diameter of the phantom in Å (60 % of a 64 px box at 2 Å/px)."""

# (x, y, z) centre in units of the radius, Gaussian sigma in units of the radius, peak density
_DOMAINS = {
    # head to tail along x, the last one off the axis (it makes the envelope chiral)
    "elongated": (
        ((-0.55, -0.05, -0.10), 0.26, 1.0),
        ((-0.15, 0.18, 0.08), 0.21, 0.9),
        ((0.25, -0.08, 0.15), 0.17, 0.8),
        ((0.58, 0.12, -0.08), 0.12, 0.7),
        ((0.00, -0.38, -0.18), 0.14, 0.7),
    ),
    "globular": (
        ((-0.35, -0.20, 0.10), 0.30, 1.0),
        ((0.40, -0.05, -0.15), 0.22, 0.8),
        ((0.05, 0.45, 0.25), 0.17, 0.9),
    ),
}
SHAPES = tuple(_DOMAINS)
"""The phantom's shapes (:func:`make_phantom`)."""
_HELIX_TURNS = 1.5
_HELIX_BLOBS = 10
_SCATTERED_BLOBS = 30


def _blobs(
    seed: int, shape: str
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Centres ``(n, 3)`` (x, y, z, units of the radius), sigmas and peak densities."""
    domains = _DOMAINS[shape]
    centres = [np.array(c) for c, _, _ in domains]
    sigmas = [s for _, s, _ in domains]
    peaks = [p for _, _, p in domains]
    # right-handed helix along +z: x = r cos t, y = r sin t
    t = np.linspace(0.0, 2 * np.pi * _HELIX_TURNS, _HELIX_BLOBS)
    helix = np.stack(
        [0.40 + 0.18 * np.cos(t), -0.05 + 0.18 * np.sin(t), -0.55 + 0.11 * t / np.pi], axis=1
    )
    centres.extend(helix)
    sigmas.extend([0.07] * _HELIX_BLOBS)
    peaks.extend([0.7] * _HELIX_BLOBS)
    rng = np.random.default_rng(seed)
    found = 0
    while found < _SCATTERED_BLOBS:
        if shape == "globular":  # anywhere in the ball
            point, limit = rng.uniform(-0.75, 0.75, size=3), 0.75
        else:  # near a domain, so the envelope keeps the domains' shape
            centre, sigma, _ = domains[int(rng.integers(len(domains)))]
            point, limit = np.array(centre) + rng.normal(0.0, sigma, size=3), 0.8
        if np.linalg.norm(point) <= limit:
            centres.append(point)
            sigmas.append(float(rng.uniform(0.06, 0.12)))
            peaks.append(float(rng.uniform(0.3, 0.8)))
            found += 1
    return np.array(centres), np.array(sigmas), np.array(peaks)


def make_phantom(
    size: int = 64,
    pixel_size: float = 2.0,
    seed: int = 0,
    diameter: float = PHANTOM_DIAMETER,
    shape: str = "elongated",
) -> NDArray[np.float32]:
    """The synthetic test map.

    Parameters
    ----------
    size
        Edge of the cubic grid in voxels.
    pixel_size
        Voxel size in Å; the object keeps its size in Å, so a smaller pixel size makes it span
        more voxels.
    seed
        Seed of the scattered blobs (0: the standard phantom; the domains and the helix do not
        depend on it).
    diameter
        Diameter of the object in Å.
    shape
        ``"elongated"`` or ``"globular"`` (:data:`SHAPES`; the module's docstring says why).

    Returns
    -------
    numpy.ndarray
        ``float32`` array ``[z, y, x]`` of shape ``(size, size, size)``, maximum 1, centred on
        voxel ``size // 2``, smoothly zero towards the edges.

    Raises
    ------
    ValueError
        If the object does not fit in 90 % of the box, or the shape is unknown.
    """
    if shape not in _DOMAINS:
        raise ValueError(f"unknown phantom shape {shape!r}: choose one of {', '.join(SHAPES)}")
    radius = 0.5 * diameter / pixel_size  # px
    if size < 8 or 2 * radius > 0.9 * size:
        raise ValueError(
            f"a {diameter:g} A phantom at {pixel_size:g} A/px ({2 * radius:.1f} px) does not "
            f"fit in a box of {size} px (at most 90 % of the box)"
        )
    centres, sigmas, peaks = _blobs(seed, shape)
    axis = np.arange(size, dtype=np.float64) - size // 2
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    volume = np.zeros((size, size, size), dtype=np.float64)
    for (cx, cy, cz), sigma, peak in zip(centres * radius, sigmas * radius, peaks, strict=True):
        # separable Gaussian: three 1-D factors, one outer product
        gx = np.exp(-0.5 * ((axis - cx) / sigma) ** 2)
        gy = np.exp(-0.5 * ((axis - cy) / sigma) ** 2)
        gz = np.exp(-0.5 * ((axis - cz) / sigma) ** 2)
        volume += peak * gz[:, None, None] * gy[None, :, None] * gx[None, None, :]
    # soft spherical envelope: nothing reaches the box edges
    distance = np.sqrt(x**2 + y**2 + z**2)
    edge = 0.45 * size
    volume *= np.clip((edge - distance) / (0.05 * size), 0.0, 1.0)
    result: NDArray[np.float32] = (volume / volume.max()).astype(np.float32)
    return result


# ---------------------------------------------------------------- specimen contamination


def place_points(
    rng: np.random.Generator,
    count: int,
    low: float,
    high: float,
    spacing: float,
    avoid: list[tuple[float, float, float]],
) -> Array:
    """Up to ``count`` random points in ``[low, high)^2``, ``spacing`` apart, outside ``avoid``."""
    points: list[tuple[float, float]] = []
    for _ in range(200 * count + 100):
        if len(points) == count or high <= low:
            break
        x, y = rng.uniform(low, high, size=2)
        if all(math.hypot(x - ax, y - ay) >= r for ax, ay, r in avoid) and all(
            math.hypot(x - px, y - py) >= spacing for px, py in points
        ):
            points.append((float(x), float(y)))
    return np.array(points, dtype=np.float64).reshape(-1, 2)


def large_contamination(
    rng: np.random.Generator, shape: tuple[int, int], pad: int, box: int, count: int
) -> tuple[Array, dict[str, Array], list[tuple[float, float, float]]]:
    """Large, dense, irregular blobs (ice or ethane contamination) on a padded canvas.

    Parameters
    ----------
    rng
        The random generator.
    shape
        Shape of the canvas: the micrograph plus ``pad`` px on every side.
    pad, box
        Canvas padding and particle box (px); radii are 0.4 to 0.8 box.
    count
        How many blobs.

    Returns
    -------
    tuple
        The canvas (density 3 to 6 inside the blobs, smooth 3 px edges), the table (``x``,
        ``y``, ``radius`` in micrograph px, ``kind = "large"``), and discs ``(x, y, r)`` that
        particle centres must avoid (``1.25 radius + box / 2``).
    """
    canvas = np.zeros(shape, dtype=np.float64)
    rows: dict[str, list[Any]] = {"x": [], "y": [], "radius": [], "kind": []}
    avoid: list[tuple[float, float, float]] = []
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    for _ in range(count):
        radius = rng.uniform(0.4, 0.8) * box
        x, y = rng.uniform(0, shape[1] - 2 * pad), rng.uniform(0, shape[0] - 2 * pad)
        dx, dy = xx - (x + pad), yy - (y + pad)
        angle = np.arctan2(dy, dx)
        phases = rng.uniform(0, 2 * np.pi, size=2)
        edge = radius * (
            1 + 0.15 * np.sin(3 * angle + phases[0]) + 0.08 * np.sin(5 * angle + phases[1])
        )
        canvas += rng.uniform(3, 6) * np.clip((edge - np.hypot(dx, dy)) / 3 + 0.5, 0, 1)
        for key, value in (("x", x), ("y", y), ("radius", radius), ("kind", "large")):
            rows[key].append(value)
        avoid.append((x, y, 1.25 * radius + box / 2))
    table = {k: np.array(v, dtype=object if k == "kind" else np.float64) for k, v in rows.items()}
    return canvas, table, avoid


def small_blobs(rng: np.random.Generator, canvas: Array, points: Array, pad: int) -> Array:
    """Add small, dense, elongated Gaussian blobs (density 1 to 3) at ``points`` (micrograph px)
    to the padded canvas; returns their radii (px, twice the long sigma)."""
    radii = []
    yy, xx = np.mgrid[0 : canvas.shape[0], 0 : canvas.shape[1]].astype(np.float64)
    for x, y in points:
        s1 = rng.uniform(1.5, 4.0)
        s2 = s1 * rng.uniform(1.0, 2.5)
        angle = rng.uniform(0, np.pi)
        dx, dy = xx - (x + pad), yy - (y + pad)
        u = dx * math.cos(angle) + dy * math.sin(angle)
        v = -dx * math.sin(angle) + dy * math.cos(angle)
        canvas += rng.uniform(1, 3) * np.exp(-0.5 * ((u / s2) ** 2 + (v / s1) ** 2))
        radii.append(2 * s2)
    return np.array(radii, dtype=np.float64)


def ice_texture(
    rng: np.random.Generator, shape: tuple[int, int], pixel_size: float, corner: float = 0.0
) -> NDArray[np.float64]:
    """Amorphous ice: a Gaussian random phase-object texture of zero mean and unit variance.

    Gaussian white noise filtered to the amplitude spectrum ``1 / sqrt(1 + (s * corner)^2)``
    (``s`` in 1/Å, ``corner`` in Å): flat below ``1 / corner`` and 1/f-like beyond. The default
    ``corner = 0`` is a flat spectrum: the projected potential of a thin layer of amorphous ice
    is close to white at the frequencies of these micrographs (its structure peak at 3.7 Å lies
    beyond them), the fall-off of real spectra coming from the CTF envelope, which the
    simulator applies. Imaged through the CTF, it gives Thon rings over the whole band. The
    field is periodic (filtered in Fourier space).
    """
    ky = np.fft.fftfreq(shape[0], d=pixel_size)[:, None]
    kx = np.fft.fftfreq(shape[1], d=pixel_size)[None, :]
    amplitude = 1.0 / np.sqrt(1.0 + (np.hypot(kx, ky) * corner) ** 2)
    amplitude[0, 0] = 0.0
    field = np.fft.ifft2(np.fft.fft2(rng.standard_normal(shape)) * amplitude).real
    std = float(field.std())
    result: NDArray[np.float64] = field / (std or 1.0)
    return result
