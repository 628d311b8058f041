"""Particle picking: template-free (difference of Gaussians) and template matching.

Sign convention: raw micrographs show protein *dark* (lower values than the surrounding ice).
Both pickers take ``dark_particles=True`` (the default) for such images and look for dark
blobs; pass ``False`` for contrast-inverted micrographs in which particles are bright.

Coordinates are returned as ``(x, y)`` pixel centres of the micrograph (``img[y, x]``), with a
score per pick (the filter response in robust-sigma units for :func:`pick_dog`, the normalised
cross-correlation for :func:`pick_template`). The kernels use :func:`cryolab.em.xp.array_module`
so they run on numpy or CuPy; peak finding and suppression run on the CPU (few candidates).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage, optimize, spatial

from cryolab.em.xp import array_module, to_numpy

log = logging.getLogger(__name__)

Coordinates = NDArray[np.float64]


def _gaussian(xp: Any, spectrum: Any, shape: tuple[int, int], sigma: float) -> Any:
    """Gaussian blur (std ``sigma`` px) of an image given by its ``rfft2`` spectrum."""
    fy = xp.fft.fftfreq(shape[0])[:, None]
    fx = xp.fft.rfftfreq(shape[1])[None, :]
    kernel = xp.exp(-2.0 * math.pi**2 * sigma**2 * (fx**2 + fy**2))
    return xp.fft.irfft2(spectrum * kernel, s=shape)


def _robust_sigma(values: NDArray[Any]) -> float:
    """1.4826 times the median absolute deviation (1 when that is 0)."""
    mad = float(np.median(np.abs(values - np.median(values)))) * 1.4826
    return mad if mad > 0 else 1.0


def _bin(image: NDArray[Any], factor: int) -> NDArray[np.float64]:
    if factor <= 1:
        return np.asarray(image, dtype=np.float64)
    ny, nx = image.shape[0] // factor, image.shape[1] // factor
    blocks = image[: ny * factor, : nx * factor].reshape(ny, factor, nx, factor)
    return np.asarray(blocks.mean(axis=(1, 3)), dtype=np.float64)


def _dog_score(
    xp: Any,
    data: Any,
    shape: tuple[int, int],
    radius: float,
    valid: NDArray[np.bool_] | None = None,
) -> tuple[Any, NDArray[np.float64]]:
    """The spectrum of ``data`` and its DoG response in units of the response's noise level.

    The noise level is the robust sigma of the response in the quietest quarter of the image
    (lowest local power) among the ``valid`` pixels, so contamination and crowded particles
    do not inflate it.
    """
    spectrum = xp.fft.rfft2(data)
    fine = _gaussian(xp, spectrum, shape, radius / 2)
    response = to_numpy(fine - _gaussian(xp, spectrum, shape, 2 * radius))
    power = to_numpy(_gaussian(xp, xp.fft.rfft2(xp.asarray(response**2)), shape, 2 * radius))
    if valid is not None and valid.any():
        power = np.where(valid, power, np.inf)
        quiet = response[power <= np.quantile(power[valid], 0.25)]
    else:
        quiet = response[power <= np.quantile(power, 0.25)]
    score = (response - np.median(quiet)) / _robust_sigma(quiet)
    return spectrum, np.asarray(score, dtype=np.float64)


def find_peaks(
    response: NDArray[Any],
    min_distance: float,
    threshold: float,
    *,
    count: int | None = None,
    edge: float = 0.0,
    allowed: NDArray[np.bool_] | None = None,
) -> tuple[Coordinates, NDArray[np.float64]]:
    """Local maxima of a 2-D response above ``threshold``, at least ``min_distance`` apart.

    Parameters
    ----------
    response
        The score map ``[y, x]``.
    min_distance
        Non-maximum suppression radius in pixels: of two maxima closer than this, the lower goes.
    threshold
        Lowest score kept.
    count
        Keep at most this many (the best).
    edge
        Drop maxima closer than this to the border.
    allowed
        Boolean map; maxima where it is false are dropped.

    Returns
    -------
    tuple
        ``(xy, scores)``: an ``(n, 2)`` array of ``(x, y)`` and the scores, best first.
    """
    size = max(3, int(2 * math.floor(min_distance / 2) + 1))
    local = ndimage.maximum_filter(response, size=min(size, 2 * max(response.shape) + 1))
    mask = (response >= local) & (response >= threshold)
    if edge > 0:
        e = math.ceil(edge)
        mask[:e, :] = mask[-e:, :] = False
        mask[:, :e] = mask[:, -e:] = False
    if allowed is not None:
        mask &= allowed
    ys, xs = np.nonzero(mask)
    scores = response[ys, xs].astype(np.float64)
    order = np.argsort(-scores, kind="stable")
    points = np.column_stack([xs, ys]).astype(np.float64)[order]
    scores = scores[order]
    keep = np.ones(len(points), dtype=bool)
    if len(points) > 1:
        tree = spatial.cKDTree(points)
        for i in range(len(points)):
            if keep[i]:
                for j in tree.query_ball_point(points[i], min_distance):
                    if j > i:
                        keep[j] = False
    points, scores = points[keep], scores[keep]
    if count is not None:
        points, scores = points[:count], scores[:count]
    return points, scores


def pick_dog(
    micrograph: ArrayLike,
    particle_diameter_px: float,
    threshold: float = 4.0,
    min_distance: float | None = None,
    *,
    count: int | None = None,
    dark_particles: bool = True,
    contamination: float = 4.0,
    elongation: float = 0.2,
    device: str = "auto",
) -> tuple[Coordinates, NDArray[np.float64]]:
    """Template-free picking with a difference of Gaussians matched to the particle size.

    The micrograph is binned so a particle spans 16 to 32 pixels, then band-passed by
    ``G(r/2) - G(2r)`` (``r`` the particle radius): blobs of the particle's size stand out and
    slow background variations vanish. The response is expressed in units of its noise level:
    the robust sigma (1.4826 MAD) over the quietest quarter of the micrograph (lowest local
    power), so crowded particles and contamination do not inflate it. Maxima at least
    ``min_distance`` apart above ``threshold`` are kept, except

    - within a particle radius of the edge;
    - on contamination: where the image smoothed at the particle radius departs from its median
      by more than ``contamination`` times the value a typical candidate has there (large very
      dark or bright objects), the region grown by a particle radius. That region is then set
      to the background level and the band-pass is computed again, so the halo the filter
      puts around a strong object does not hide the particles next to it;
    - on lines and edges: where the Hessian of the smoothed image is elongated, its smaller
      eigenvalue (in magnitude) below ``elongation`` times the larger one.

    Parameters
    ----------
    micrograph
        2-D image ``[y, x]``.
    particle_diameter_px
        Particle diameter in micrograph pixels.
    threshold
        Lowest response in robust sigmas.
    min_distance
        Closest two picks may be, pixels (default: the diameter).
    count
        Keep at most this many picks (the best).
    dark_particles
        True for raw micrographs (protein dark), False for inverted ones.
    contamination, elongation
        Rejection limits described above (``contamination=inf`` or ``elongation=0`` turns a
        test off).
    device
        ``"auto"``, ``"cpu"`` or ``"gpu"``.

    Returns
    -------
    tuple
        ``(xy, scores)``: ``(n, 2)`` ``(x, y)`` positions in micrograph pixels, best first.
    """
    image = np.asarray(micrograph, dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"a micrograph must be 2-D, not shape {image.shape}")
    if not particle_diameter_px > 0:
        raise ValueError(f"particle diameter must be positive, not {particle_diameter_px}")
    if particle_diameter_px >= min(image.shape):
        raise ValueError(
            f"particle diameter {particle_diameter_px:g} px does not fit the micrograph "
            f"({image.shape[1]} x {image.shape[0]} px)"
        )
    xp = array_module(device)
    factor = max(1, int(particle_diameter_px // 16))
    binned = _bin(image, factor)
    if dark_particles:
        binned = -binned
    radius = particle_diameter_px / 2 / factor
    shape = (binned.shape[0], binned.shape[1])
    data = xp.asarray(binned - np.median(binned))
    spectrum, score = _dog_score(xp, data, shape, radius)
    allowed = np.ones(shape, dtype=bool)
    distance = (min_distance if min_distance is not None else particle_diameter_px) / factor
    if math.isfinite(contamination):
        # density at the particle scale; a typical pick's value sets the scale of "extreme"
        medium = to_numpy(_gaussian(xp, spectrum, shape, radius))
        medium -= np.median(medium)
        first, _ = find_peaks(score, distance, threshold, edge=radius)
        if len(first):
            typical = float(np.median(medium[first[:, 1].astype(int), first[:, 0].astype(int)]))
            bad = np.abs(medium) > contamination * max(typical, 1e-12)
            if bad.any():
                grow = math.ceil(radius)
                disk = np.hypot(*np.mgrid[-grow : grow + 1, -grow : grow + 1]) <= grow
                bad = ndimage.binary_dilation(bad, structure=disk)
                allowed &= ~bad
                # flatten the contamination and filter again: no halo around it hides particles
                data = xp.where(xp.asarray(bad), 0.0, data)
                spectrum, score = _dog_score(xp, data, shape, radius, ~bad)
    if elongation > 0:
        smooth = _gaussian(xp, spectrum, shape, radius / math.sqrt(2))
        hxx = to_numpy(xp.gradient(xp.gradient(smooth, axis=1), axis=1))
        hyy = to_numpy(xp.gradient(xp.gradient(smooth, axis=0), axis=0))
        hxy = to_numpy(xp.gradient(xp.gradient(smooth, axis=0), axis=1))
        half = np.sqrt(((hxx - hyy) / 2) ** 2 + hxy**2)
        mean = (hxx + hyy) / 2
        small = np.minimum(np.abs(mean + half), np.abs(mean - half))
        big = np.maximum(np.abs(mean + half), np.abs(mean - half))
        allowed &= small >= elongation * big
    points, scores = find_peaks(
        score, distance, threshold, count=count, edge=radius, allowed=allowed
    )
    points = points * factor + (factor - 1) / 2
    log.debug("DoG picking: %d picks (bin %d)", len(points), factor)
    return points, scores


def _rotated(template: NDArray[np.float64], angle: float, mask: NDArray[np.bool_]) -> Any:
    turned = ndimage.rotate(template, angle, reshape=False, order=1, mode="nearest")
    values = turned[mask]
    turned = np.where(mask, turned - values.mean(), 0.0)
    norm = float(np.sqrt((turned**2).sum()))
    return turned / (norm if norm > 0 else 1.0)


def pick_template(
    micrograph: ArrayLike,
    templates: ArrayLike,
    angles: Sequence[float] = tuple(range(0, 360, 15)),
    threshold: float = 0.1,
    min_distance: float | None = None,
    *,
    count: int | None = None,
    dark_particles: bool = True,
    device: str = "auto",
) -> tuple[Coordinates, NDArray[np.float64], NDArray[np.float64]]:
    """Template matching by normalised cross-correlation over in-plane rotations.

    Each template (as bright particles; ``dark_particles`` says whether the micrograph must be
    inverted first) is rotated by every angle, masked to its inscribed circle, and correlated
    with the micrograph in Fourier space; the correlation is divided by the local standard
    deviation of the micrograph under the mask, so scores are Pearson correlations in [-1, 1].

    Parameters
    ----------
    micrograph
        2-D image ``[y, x]``.
    templates
        One 2-D template ``(b, b)`` or a stack ``(n, b, b)``, same pixel size as the micrograph.
    angles
        In-plane rotations tried, degrees.
    threshold
        Lowest correlation kept.
    min_distance
        Closest two picks may be, pixels (default: 0.7 of the template size).
    count
        Keep at most this many.
    dark_particles
        True for raw micrographs (protein dark).
    device
        ``"auto"``, ``"cpu"`` or ``"gpu"``.

    Returns
    -------
    tuple
        ``(xy, scores, angles)`` with the best angle of each pick.
    """
    image = np.asarray(micrograph, dtype=np.float64)
    stack = np.asarray(templates, dtype=np.float64)
    if stack.ndim == 2:
        stack = stack[None]
    if image.ndim != 2 or stack.ndim != 3 or len(stack) == 0:
        raise ValueError("pick_template needs a 2-D micrograph and 2-D templates")
    box = stack.shape[1]
    if box > min(image.shape) or stack.shape[2] != box:
        raise ValueError(
            f"templates of {stack.shape[2]} x {box} px must be square and fit the micrograph "
            f"({image.shape[1]} x {image.shape[0]} px)"
        )
    xp = array_module(device)
    if dark_particles:
        image = -image
    ny, nx = image.shape
    yy, xx = np.mgrid[:box, :box] - box // 2
    mask = np.hypot(xx, yy) <= box / 2 - 1
    n = float(mask.sum())
    data = xp.asarray(image - image.mean())

    def padded(kernel: NDArray[np.float64]) -> Any:
        # kernel centre (box // 2) moved to pixel 0: correlation peaks at particle centres
        full = np.zeros((ny, nx))
        full[:box, :box] = kernel
        centred = np.roll(full, (-(box // 2), -(box // 2)), axis=(0, 1))
        return xp.conj(xp.fft.rfft2(xp.asarray(centred)))

    image_ft = xp.fft.rfft2(data)
    mask_ft = padded(mask.astype(np.float64))
    local_sum = xp.fft.irfft2(image_ft * mask_ft, s=(ny, nx))
    local_sq = xp.fft.irfft2(xp.fft.rfft2(data**2) * mask_ft, s=(ny, nx))
    local_std = xp.sqrt(xp.maximum(local_sq - local_sum**2 / n, 1e-12))
    best = xp.full((ny, nx), -xp.inf)
    best_angle = xp.zeros((ny, nx))
    for template in stack:
        for angle in angles:
            kernel = padded(_rotated(template, float(angle), mask))
            ncc = xp.fft.irfft2(image_ft * kernel, s=(ny, nx)) / local_std
            better = ncc > best
            best = xp.where(better, ncc, best)
            best_angle = xp.where(better, float(angle), best_angle)
    scores_map = to_numpy(best)
    distance = min_distance if min_distance is not None else 0.7 * box
    points, scores = find_peaks(scores_map, distance, threshold, count=count, edge=box / 2)
    found_angles = to_numpy(best_angle)[points[:, 1].astype(int), points[:, 0].astype(int)]
    return points, scores, np.asarray(found_angles, dtype=np.float64)


def match_picks(picked: ArrayLike, truth: ArrayLike, radius: float) -> tuple[float, float, float]:
    """Precision, recall and F1 of picks against true positions (one-to-one matching).

    A pick and a true position match when they are at most ``radius`` pixels apart; the
    pairing maximises the number of matches (Hungarian assignment).
    """
    a = np.asarray(picked, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(truth, dtype=np.float64).reshape(-1, 2)
    if len(a) == 0 or len(b) == 0:
        return (0.0, 0.0, 0.0) if len(a) or len(b) else (1.0, 1.0, 1.0)
    distance = np.hypot(a[:, None, 0] - b[None, :, 0], a[:, None, 1] - b[None, :, 1])
    close = distance <= radius
    rows, cols = optimize.linear_sum_assignment(np.where(close, 0.0, 1.0))
    matched = int(close[rows, cols].sum())
    precision, recall = matched / len(a), matched / len(b)
    f1 = 2 * precision * recall / (precision + recall) if matched else 0.0
    return precision, recall, f1
