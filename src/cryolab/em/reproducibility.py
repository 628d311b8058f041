"""Comparing the images and volumes that reproduced sets point to (``cryolab reproduce``).

Image columns (``image.path``, and for maps ``volume.half1``, ``volume.half2``,
``volume.mask``) name files inside each project's own run folders, so their text differs
between a project and its reproduction. :class:`ImageComparator` reads both sides' pixels
instead and reports, over all paired items:

- how many are bit-identical (or the very same file), the largest absolute difference and the
  largest difference relative to the item's largest value;
- the least Pearson correlation of an item's pixels with the original's;
- for volumes, the Fourier shell correlation (:func:`cryolab.em.fsc.fsc`) of each map with the
  original: its least value up to ``fsc_up_to`` times Nyquist and up to Nyquist, and the
  resolution (Å) where it falls below 0.5.

The built-in plugin registers :data:`IMAGES` for every image set and :data:`MOVIES`, which
compares whole movie files rather than their first frames: byte-identical files at once, else
frame by frame (one frame of each side in memory), with the same figures as for the whole
arrays.
"""

from __future__ import annotations

import filecmp
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cryolab.core.reproduce_compare import (
    DIFFERS,
    IDENTICAL,
    WITHIN,
    CompareContext,
    Tolerances,
)
from cryolab.core.sets import Set
from cryolab.em import fsc, imageio

IMAGE_COLUMN = "image.path"
MAP_COLUMNS = ("volume.half1", "volume.half2", "volume.mask")


class ImageComparator:
    """Compares the pixel data of the images (or volumes, movies) two sets point to.

    Parameters
    ----------
    whole_file
        Compare whole files (movies: every frame) instead of the item at ``image.index``.
    """

    def __init__(self, whole_file: bool = False) -> None:
        self.whole_file = whole_file

    def columns(self, names: Sequence[str]) -> list[str]:
        """The image-location columns among ``names``."""
        return [c for c in (IMAGE_COLUMN, *MAP_COLUMNS) if c in names]

    def compare(self, source: Set, reproduced: Set, context: CompareContext) -> dict[str, Any]:
        """Compare the images of row ``i`` of ``source`` and ``reproduced`` for every ``i``."""
        figures = _Figures()
        for column in self.columns(source.columns):
            if column not in reproduced.columns:
                continue
            pairs = zip(
                self._locations(source, column, context.source_root),
                self._locations(reproduced, column, context.reproduced_root),
                strict=True,
            )
            pixel_size = float(source.properties.get("sampling_rate") or 1.0)
            for location_a, location_b in pairs:
                figures.add(column, location_a, location_b, pixel_size, context.tolerances)
        return figures.result(context)

    def _locations(
        self, images: Set, column: str, project: Path
    ) -> list[tuple[Path, int | None] | None]:
        """``(file, 1-based index or None for the whole file)`` per row; None where empty."""
        root = images.properties.get("root")
        base = Path(root) if root else project
        paths = images.column(column)
        indices = (
            images.column("image.index")
            if column == IMAGE_COLUMN and "image.index" in images.columns
            else None
        )
        found: list[tuple[Path, int | None] | None] = []
        for row, text in enumerate(paths):
            if text is None or str(text) == "":
                found.append(None)
                continue
            index: int | None
            if column == IMAGE_COLUMN:
                name = str(text)
                value = indices[row] if indices is not None else 1
                index = 1 if value is None or value != value else int(value)
            else:
                try:
                    index, name = imageio.parse_location(str(text))
                except imageio.ImageError:
                    index, name = 1, str(text)  # reading it reports the problem
            path = Path(name)
            located = path if path.is_absolute() else base / path
            found.append((located, None if self.whole_file else index))
        return found


class _Figures:
    """Running figures over all compared items."""

    def __init__(self) -> None:
        self.items = 0
        self.identical = 0
        self.same_file = 0
        self.max_abs_diff = 0.0
        self.max_rel_diff = 0.0
        self.min_correlation = 1.0
        self.min_fsc: float | None = None
        self.min_fsc_nyquist: float | None = None
        self.worst_resolution: float | None = None
        self.beyond_tolerance = 0
        self.problems: list[str] = []

    def add(
        self,
        column: str,
        location_a: tuple[Path, int | None] | None,
        location_b: tuple[Path, int | None] | None,
        pixel_size: float,
        tol: Tolerances,
    ) -> None:
        """Compare one pair of items (file and index on each side)."""
        self.items += 1
        if location_a is None or location_b is None:
            if location_a != location_b:
                self.problems.append(f"{column}: an image is named on one side only")
            else:
                self.identical += 1
            return
        if location_a == location_b:  # the very same file, e.g. imported raw data
            self.same_file += 1
            self.identical += 1
            return
        try:
            if location_a[1] is None and location_b[1] is None:
                self._add_files(column, location_a[0], location_b[0], pixel_size, tol)
                return
            a = _read(*location_a)
            b = _read(*location_b)
        except (imageio.ImageError, OSError) as exc:
            self.problems.append(f"{column}: {exc}")
            return
        self._add_pair(column, a, b, pixel_size, tol)

    def _add_files(
        self, column: str, path_a: Path, path_b: Path, pixel_size: float, tol: Tolerances
    ) -> None:
        """Compare whole files: equal bytes at once, a stack frame by frame."""
        header_a = imageio.read_header(path_a, permissive=True)
        header_b = imageio.read_header(path_b, permissive=True)
        if filecmp.cmp(path_a, path_b, shallow=False):
            self.identical += 1
            return
        shape_a = (header_a.n_images, *header_a.item_shape)
        shape_b = (header_b.n_images, *header_b.item_shape)
        if shape_a != shape_b:
            self.problems.append(f"{column}: shapes {shape_a} and {shape_b} differ")
            return
        if header_a.kind != "stack" or header_a.compression or header_b.compression:
            self._add_pair(column, _read(path_a, None), _read(path_b, None), pixel_size, tol)
            return
        sums = _Sums()
        for index in range(1, header_a.n_images + 1):
            sums.add(_read(path_a, index), _read(path_b, index))
        if sums.equal:
            self.identical += 1
            return
        self._add_difference(sums.max_abs_diff, sums.scale, sums.correlation(), tol)

    def _add_pair(
        self, column: str, a: NDArray[Any], b: NDArray[Any], pixel_size: float, tol: Tolerances
    ) -> None:
        if a.shape != b.shape:
            self.problems.append(f"{column}: shapes {a.shape} and {b.shape} differ")
            return
        fa, fb = a.astype(np.float64), b.astype(np.float64)
        if fa.ndim == 3 and len(set(fa.shape)) == 1:  # maps: FSC figures, even when identical
            self._add_fsc(fa, fb, pixel_size, tol)
        if np.array_equal(a, b, equal_nan=a.dtype.kind == "f"):
            self.identical += 1
            return
        diff = float(np.max(np.abs(fa - fb)))
        self._add_difference(diff, float(np.max(np.abs(fb))), _correlation(fa, fb), tol)

    def _add_difference(
        self, diff: float, scale: float, correlation: float, tol: Tolerances
    ) -> None:
        """Count an item that differs: its largest difference, the largest value, ..."""
        self.max_abs_diff = max(self.max_abs_diff, diff)
        self.max_rel_diff = max(self.max_rel_diff, diff / scale if scale > 0 else math.inf)
        if diff > tol.atol + tol.rtol * scale:
            self.beyond_tolerance += 1
        self.min_correlation = min(self.min_correlation, correlation)

    def _add_fsc(
        self, a: NDArray[np.float64], b: NDArray[np.float64], pixel_size: float, tol: Tolerances
    ) -> None:
        frequency, values = fsc.fsc(a, b, pixel_size)
        band = values[: math.floor(tol.fsc_up_to * (len(values) - 1)) + 1]
        low = float(band.min())
        whole = float(values.min())
        resolution = fsc.resolution(frequency, values, 0.5)
        self.min_fsc = low if self.min_fsc is None else min(self.min_fsc, low)
        self.min_fsc_nyquist = (
            whole if self.min_fsc_nyquist is None else min(self.min_fsc_nyquist, whole)
        )
        self.worst_resolution = (
            resolution if self.worst_resolution is None else max(self.worst_resolution, resolution)
        )

    def result(self, context: CompareContext) -> dict[str, Any]:
        tol = context.tolerances
        differing = self.items - self.identical - len(self.problems)
        if self.problems:
            verdict = DIFFERS
        elif differing == 0:
            verdict = IDENTICAL
        elif context.deterministic:
            verdict = DIFFERS if self.beyond_tolerance else WITHIN
        else:
            passed = self.min_correlation >= tol.min_correlation and (
                self.min_fsc is None or self.min_fsc >= tol.min_fsc
            )
            verdict = WITHIN if passed else DIFFERS
        return {
            "verdict": verdict,
            "summary": self._summary(verdict, differing),
            "items": self.items,
            "identical": self.identical,
            "same_file": self.same_file,
            "max_abs_diff": self.max_abs_diff,
            "max_rel_diff": self.max_rel_diff if math.isfinite(self.max_rel_diff) else None,
            "min_correlation": self.min_correlation if differing else 1.0,
            "min_fsc": self.min_fsc,
            "min_fsc_nyquist": self.min_fsc_nyquist,
            "resolution_fsc_0.5": self.worst_resolution,
            "problems": self.problems[:10],
        }

    def _summary(self, verdict: str, differing: int) -> str:
        if self.problems:
            return f"images: {self.problems[0]}"
        if verdict == IDENTICAL:
            return f"images: {self.items} identical"
        text = (
            f"images: {differing} of {self.items} differ, max |diff| {self.max_abs_diff:.3g} "
            f"({self.max_rel_diff:.3g} of the maximum), correlation ≥ {self.min_correlation:.4f}"
        )
        if self.min_fsc is not None:
            text += f", FSC ≥ {self.min_fsc:.3f}"
        return text


def _read(path: Path, index: int | None) -> NDArray[Any]:
    return np.asarray(imageio.read_image(path, index, permissive=True))


class _Sums:
    """Running sums over the frames of two stacks: equality, largest values, correlation.

    The sums are taken around the first frames' means, so that the correlation computed from
    them loses no precision to large offsets.
    """

    def __init__(self) -> None:
        self.equal = True
        self.max_abs_diff = 0.0
        self.scale = 0.0
        self.shift: tuple[float, float] | None = None
        self.n = 0
        self.sums = np.zeros(5)  # x, y, x², y², xy

    def add(self, a: NDArray[Any], b: NDArray[Any]) -> None:
        """Add one frame of each stack."""
        self.equal = self.equal and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
        fa, fb = a.astype(np.float64), b.astype(np.float64)
        self.max_abs_diff = max(self.max_abs_diff, float(np.max(np.abs(fa - fb))))
        self.scale = max(self.scale, float(np.max(np.abs(fb))))
        if self.shift is None:
            self.shift = (float(fa.mean()), float(fb.mean()))
        x, y = fa - self.shift[0], fb - self.shift[1]
        self.n += x.size
        self.sums += [x.sum(), y.sum(), (x * x).sum(), (y * y).sum(), (x * y).sum()]

    def correlation(self) -> float:
        """Pearson correlation of all frames' values (0 when one stack is constant)."""
        sx, sy, sxx, syy, sxy = (float(v) for v in self.sums)
        var_x, var_y = sxx - sx * sx / self.n, syy - sy * sy / self.n
        norm = math.sqrt(max(var_x, 0.0) * max(var_y, 0.0))
        return (sxy - sx * sy / self.n) / norm if norm > 0 else 0.0


def _correlation(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    """Pearson correlation of two arrays' values (0 when one is constant)."""
    da, db = a - a.mean(), b - b.mean()
    norm = math.sqrt(float(np.sum(da * da)) * float(np.sum(db * db)))
    return float(np.sum(da * db)) / norm if norm > 0 else 0.0


IMAGES = ImageComparator()
MOVIES = ImageComparator(whole_file=True)
