"""Thumbnail pages of image sets, for galleries: filtered, sorted, paged and read lazily.

A gallery shows a set of images (micrographs, particles, class averages, volumes) page by
page. :class:`ImagePages` answers one question, independent of any user interface: *which
items are at positions ``start`` to ``start + count`` of the set, filtered by a condition and
sorted by a column, and what do they look like?* The widget of :mod:`cryolab.ui.gallery` and
the server's REST API are thin clients of it.

Cost. The filtered, sorted row order of each (sort, filter) query is computed once (Arrow's
stable sort, nulls last; the engine's condition evaluator for the filter) and cached, so paging
costs only the page: the page's rows are taken from the cached order, its ``image.path`` and
``image.index`` values taken from the Arrow columns, and exactly the page's images read with
:func:`cryolab.em.imageio.read_images` (positional reads, one call per file). Nothing is read
for the items that are not shown, so a page costs the same for 10 k and 1 M images.

Images are located as everywhere in cryolab: ``image.path`` (relative to the set's ``root``
property when relative) and ``image.index`` (1-based; 1 when the column is absent). A volume
is shown as its central Z slice.
"""

from __future__ import annotations

import difflib
import logging
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from cryolab.core import expressions
from cryolab.core.errors import SetError
from cryolab.core.sets import UID, Set
from cryolab.em import imageio

__all__ = ["MAX_COUNT", "MAX_SIZE", "ImagePages", "Page", "Query"]

log = logging.getLogger(__name__)

PATH = "image.path"
INDEX = "image.index"
MAX_COUNT = 1000  # items per page at most
MAX_SIZE = 512  # thumbnail side in pixels at most
EXACT_IN_JAVASCRIPT = 2**53 - 1  # larger integers lose digits as JavaScript numbers
CACHED_ORDERS = 8  # (sort, filter) queries whose row order is kept


@dataclass(frozen=True)
class Query:
    """Which items a gallery shows, in which order.

    Attributes
    ----------
    sort
        The column to sort by (``""``: the set's own order).
    descending
        Sort from the largest value down (ties keep the set's order; nulls come last).
    where
        A condition over columns (:mod:`cryolab.core.expressions`); ``""`` keeps every item.
    """

    sort: str = ""
    descending: bool = False
    where: str = ""


@dataclass(frozen=True)
class Page:
    """One page of a gallery.

    Attributes
    ----------
    start
        Position of the first item in the filtered, sorted order.
    total
        How many items the query selects (all pages together).
    rows
        The items' row numbers in the set.
    uids
        The items' uids (``uint64``).
    labels
        Column name to the items' values (Python scalars, ``None`` for nulls).
    thumbnails
        ``uint8`` array ``(n, size, size)``: each image binned to fit, centred, black around.
    errors
        One message per image that could not be read (its tile stays black).
    """

    start: int
    total: int
    rows: NDArray[np.int64]
    uids: NDArray[np.uint64]
    labels: dict[str, list[Any]]
    thumbnails: NDArray[np.uint8]
    errors: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.rows.size)

    def json_labels(self) -> dict[str, list[Any]]:
        """The labels for JSON: integers beyond JavaScript's exact range (uids) become text."""
        return {
            name: [
                str(v)
                if isinstance(v, (int, np.integer))
                and not isinstance(v, bool)
                and abs(int(v)) > EXACT_IN_JAVASCRIPT
                else v
                for v in values
            ]
            for name, values in self.labels.items()
        }


class ImagePages:
    """Pages of thumbnails of an image set, with a cache of sorted, filtered row orders.

    Parameters
    ----------
    images
        A set whose rows locate images by ``image.path`` (and ``image.index``).

    Examples
    --------
    >>> pages = ImagePages(particles)  # doctest: +SKIP
    >>> page = pages.page(0, 100, query=Query(sort="ctf.defocus_u", where="class_id == 3"))
    ... # doctest: +SKIP
    >>> page.thumbnails.shape  # doctest: +SKIP
    (100, 64, 64)
    """

    def __init__(self, images: Set) -> None:
        if PATH not in images:
            raise SetError(
                f"a gallery needs images located by an {PATH!r} column; "
                f"{images.type_name} has columns {images.columns}"
            )
        self.images = images
        self._table: pa.Table = images.to_arrow()
        self._arrays: dict[str, pa.Array] = {}
        self._orders: OrderedDict[Query, NDArray[np.int64]] = OrderedDict()
        root = images.properties.get("root")
        self._root = Path(str(root)) if root else None
        self._permissive = bool(images.properties.get("permissive", False))

    @property
    def columns(self) -> list[str]:
        """The columns a gallery can sort, filter and label by."""
        return self.images.columns

    def order(self, query: Query = Query()) -> NDArray[np.int64]:
        """The row numbers the query selects, in its order (computed once, then cached).

        Raises
        ------
        ExpressionError
            If the filter is malformed or names an unknown column.
        SetError
            If the sort column does not exist.
        """
        query = Query(query.sort.strip(), query.descending, query.where.strip())
        cached = self._orders.get(query)
        if cached is not None:
            self._orders.move_to_end(query)
            return cached
        count = len(self.images)
        rows: NDArray[np.int64] = np.arange(count, dtype=np.int64)
        if query.where:
            mask = expressions.evaluate(query.where, _Columns(self.images))
            rows = np.flatnonzero(mask).astype(np.int64)
        if query.sort:
            values = self._array(query.sort)
            if rows.size != count:
                values = values.take(pa.array(rows))
            ranks = pc.array_sort_indices(
                values, order="descending" if query.descending else "ascending"
            )
            rows = rows[np.asarray(ranks, dtype=np.int64)]
        rows.flags.writeable = False
        self._orders[query] = rows
        if len(self._orders) > CACHED_ORDERS:
            self._orders.popitem(last=False)
        log.debug("gallery order %s: %d of %d items", query, rows.size, count)
        return rows

    def total(self, query: Query = Query()) -> int:
        """How many items the query selects."""
        return int(self.order(query).size)

    def uids(self, query: Query = Query()) -> NDArray[np.uint64]:
        """The uids of every item the query selects, in its order (e.g. to select them all)."""
        return self.uids_at(self.order(query))

    def uids_at(self, rows: NDArray[np.int64]) -> NDArray[np.uint64]:
        """The uids of the given rows."""
        taken = self._array(UID).take(pa.array(rows, pa.int64()))
        return np.asarray(taken, dtype=np.uint64)

    def page(
        self,
        start: int,
        count: int,
        *,
        query: Query = Query(),
        size: int = 64,
        labels: Sequence[str] = (),
    ) -> Page:
        """The items at positions ``start`` to ``start + count`` of the query's order.

        Parameters
        ----------
        start
            Position of the first item (0-based); at or beyond the end gives an empty page.
        count
            How many items (at most :data:`MAX_COUNT`).
        query
            Filter and sort.
        size
            Side of the square thumbnails in pixels (at most :data:`MAX_SIZE`).
        labels
            Columns whose values label the items.

        Raises
        ------
        SetError
            For a negative start, a count or size out of range, or an unknown label column.
        ExpressionError
            If the filter is malformed or names an unknown column.
        """
        if start < 0:
            raise SetError(f"a page cannot start at {start}: positions start at 0")
        if not 0 <= count <= MAX_COUNT:
            raise SetError(f"a page holds 0 to {MAX_COUNT} items, not {count}")
        if not 1 <= size <= MAX_SIZE:
            raise SetError(f"thumbnails are 1 to {MAX_SIZE} pixels wide, not {size}")
        for name in labels:
            self._check_column(name, "label with")
        order = self.order(query)
        rows = np.asarray(order[start : start + count], dtype=np.int64)
        taken = pa.array(rows, pa.int64())
        thumbnails, errors = self._thumbnails(taken, size)
        return Page(
            start=start,
            total=int(order.size),
            rows=rows,
            uids=self.uids_at(rows),
            labels={name: self._array(name).take(taken).to_pylist() for name in labels},
            thumbnails=thumbnails,
            errors=tuple(errors),
        )

    # -- internals ---------------------------------------------------------------------------
    def _check_column(self, name: str, action: str) -> None:
        if name in self.images:
            return
        known = self.images.columns
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        listed = known if len(known) <= 30 else [*known[:30], "..."]
        raise SetError(
            f"cannot {action} {name!r}: {self.images.type_name} has no such column{hint} "
            f"Columns: {listed}"
        )

    def _array(self, name: str) -> pa.Array:
        """One column as a single Arrow array (chunks combined once), for O(page) takes."""
        array = self._arrays.get(name)
        if array is None:
            self._check_column(name, "sort by")
            chunked = self._table.column(name)
            array = chunked.chunk(0) if chunked.num_chunks == 1 else chunked.combine_chunks()
            self._arrays[name] = array
        return array

    def _thumbnails(self, rows: pa.Array, size: int) -> tuple[NDArray[np.uint8], list[str]]:
        """Read the rows' images, one :func:`imageio.read_images` call per file."""
        tiles = np.zeros((len(rows), size, size), dtype=np.uint8)
        paths = self._array(PATH).take(rows).to_pylist()
        if INDEX in self.images:
            indices = self._array(INDEX).take(rows).fill_null(1).to_numpy(zero_copy_only=False)
        else:
            indices = np.ones(len(rows), dtype=np.int64)
        by_file: dict[str, list[int]] = {}
        for position, path in enumerate(paths):
            if path is not None:
                by_file.setdefault(str(path), []).append(position)
        errors = []
        for path, positions in by_file.items():
            try:
                images = imageio.read_images(
                    self._resolve(path),
                    np.asarray(indices[positions], dtype=np.int64),
                    permissive=self._permissive,
                )
            except imageio.ImageError as exc:
                log.warning("gallery: %s", exc)
                errors.append(str(exc))
                continue
            for position, image in zip(positions, images, strict=True):
                tiles[position] = _tile(image, size)
        return tiles, errors

    def _resolve(self, path: str) -> Path:
        location = Path(path)
        if self._root is not None and not location.is_absolute():
            return self._root / location
        return location


def _tile(image: NDArray[Any], size: int) -> NDArray[np.uint8]:
    """A ``size`` x ``size`` tile: the image (a volume's central Z slice) fitted and centred."""
    if image.ndim == 3:
        image = image[image.shape[0] // 2]
    small = imageio.thumbnail(image, size)
    factor = max(1, size // max(small.shape))
    if factor > 1:  # small images are enlarged by pixel repetition, never blurred
        small = np.repeat(np.repeat(small, factor, axis=0), factor, axis=1)
    tile = np.zeros((size, size), dtype=np.uint8)
    top, left = (size - small.shape[0]) // 2, (size - small.shape[1]) // 2
    tile[top : top + small.shape[0], left : left + small.shape[1]] = small
    return tile


class _Columns(Mapping[str, NDArray[Any]]):
    """A set's columns as a mapping, for the condition evaluator."""

    def __init__(self, source: Set) -> None:
        self._set = source
        self.columns = source.columns  # listed in the evaluator's unknown-column message

    def __getitem__(self, name: str) -> NDArray[Any]:
        return self._set.column(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)
