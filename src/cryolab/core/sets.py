"""Columnar sets: typed tables of items with a stable ``uid`` column.

A :class:`Set` wraps an immutable :class:`pyarrow.Table`. Columns have dotted names
(``ctf.defocus_u``, ``transform.rot``); every row has a 64-bit ``uid`` that stays the same
through subsets, merges, splits and joins, so items can be traced across a whole project.
Operations are vectorised and return new sets; an item (``s[i]``) is a light view of one row.
"""

from __future__ import annotations

import html
import importlib
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from cryolab.core import expressions
from cryolab.core.errors import SetError

if TYPE_CHECKING:
    import pandas as pd

    from cryolab.core.figures import Figure

UID = "uid"
StreamState = Literal["open", "closed"]

_SET_TYPES: dict[str, type[Set]] = {}
_PLUGIN_TYPES_LOADED: list[bool] = []


def set_type(name: str) -> type[Set]:
    """Return the set class registered under ``name`` (the base :class:`Set` if unknown).

    A name not seen yet makes the plugins' set-type modules load once (lazily).
    """
    if name not in _SET_TYPES and name != "Set" and not _PLUGIN_TYPES_LOADED:
        from cryolab.core.plugins import registry

        _PLUGIN_TYPES_LOADED.append(True)
        registry.import_set_types()
    return _SET_TYPES.get(name, Set)


def new_uids(count: int, rng: np.random.Generator | None = None) -> NDArray[Any]:
    """Draw ``count`` random 63-bit uids (collisions between sets are astronomically rare)."""
    rng = rng if rng is not None else np.random.default_rng()
    return rng.integers(1, np.iinfo(np.int64).max, size=count, dtype=np.int64).astype(np.uint64)


def as_table(
    data: Set | pa.Table | Mapping[str, Any], rng: np.random.Generator | None = None
) -> pa.Table:
    """Turn a set, an Arrow table or a mapping of columns into a table with a ``uid`` column."""
    if isinstance(data, Set):
        return data.to_arrow()
    if isinstance(data, pa.Table):
        table = data
    elif isinstance(data, Mapping):
        arrays = {}
        for name, values in data.items():
            arrays[name] = (
                values
                if isinstance(values, (pa.Array, pa.ChunkedArray))
                else pa.array(np.asarray(values) if not isinstance(values, list) else values)
            )
        table = pa.table(arrays) if arrays else pa.table({UID: pa.array([], pa.uint64())})
    else:
        raise SetError(f"cannot make a set from {type(data).__name__}")
    if UID not in table.column_names:
        table = table.append_column(UID, pa.array(new_uids(table.num_rows, rng)))
    elif table.schema.field(UID).type != pa.uint64():
        try:
            table = table.set_column(
                table.column_names.index(UID), UID, table.column(UID).cast(pa.uint64())
            )
        except pa.ArrowInvalid as exc:
            raise SetError(f"the uid column must hold non-negative integers: {exc}") from None
    return table


class Set:
    """A typed, columnar set of items.

    Parameters
    ----------
    data
        An Arrow table, a mapping of column name to values, or another set. A ``uid`` column
        is added when missing.
    properties
        Set-wide values (e.g. the sampling rate), JSON-serialisable.
    state
        ``"open"`` while items may still be appended (streaming), ``"closed"`` otherwise.

    Examples
    --------
    >>> s = Set({"defocus": [1.2e4, 2.5e4, 3.1e4]})
    >>> len(s.where("defocus > 2e4"))
    2
    """

    type_name: ClassVar[str] = "Set"
    item_label: ClassVar[str] = "item"
    item_class: ClassVar[type[Item]]  # set below the Item class; subclasses may specialise

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "type_name" not in cls.__dict__:
            cls.type_name = cls.__name__
        _SET_TYPES[cls.type_name] = cls

    def __init__(
        self,
        data: Set | pa.Table | Mapping[str, Any] | None = None,
        *,
        properties: Mapping[str, Any] | None = None,
        state: StreamState = "closed",
    ) -> None:
        self._table = as_table(data if data is not None else {})
        base = dict(data.properties) if isinstance(data, Set) else {}
        base.update(properties or {})
        try:  # properties must be JSON-serialisable: fail here, not at save time
            json.dumps(base)
        except (TypeError, ValueError) as exc:
            raise SetError(f"set properties must be JSON data: {exc}") from None
        self.properties: dict[str, Any] = base
        self.state: StreamState = state
        self._numpy: dict[str, NDArray[Any]] = {}

    # -- type information ------------------------------------------------------------------
    @classmethod
    def type_chain(cls) -> list[str]:
        """The registered type names of this class and its set base classes, most specific first."""
        return [k.type_name for k in cls.__mro__ if isinstance(k, type) and issubclass(k, Set)]

    def _like(self, table: pa.Table) -> Set:
        """A set of the same type and properties over another table."""
        out = type(self).__new__(type(self))
        out._table = table
        out.properties = dict(self.properties)
        out.state = "closed"
        out._numpy = {}
        return out

    # -- size and columns ------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._table.num_rows)

    @property
    def columns(self) -> list[str]:
        """The column names, ``uid`` first."""
        names = list(self._table.column_names)
        names.remove(UID)
        return [UID, *names]

    @property
    def schema(self) -> dict[str, str]:
        """Column name to Arrow type name."""
        return {f.name: str(f.type) for f in self._table.schema}

    @property
    def uids(self) -> NDArray[Any]:
        """The uids as a ``uint64`` numpy array."""
        return self.column(UID)

    def column(self, name: str) -> NDArray[Any]:
        """Return one column as a numpy array (zero-copy for numeric columns without nulls)."""
        cached = self._numpy.get(name)
        if cached is not None:
            return cached
        if name not in self._table.column_names:
            raise KeyError(f"{self.type_name} has no column {name!r}; columns: {self.columns}")
        chunked = self._table.column(name)
        if pa.types.is_dictionary(chunked.type) and chunked.null_count == 0:
            decoded = _decode_dictionary(chunked)
            decoded.flags.writeable = False
            self._numpy[name] = decoded
            return decoded
        if pa.types.is_dictionary(chunked.type):
            chunked = chunked.cast(chunked.type.value_type)
        array: NDArray[Any] = chunked.to_numpy()
        is_text = pa.types.is_string(chunked.type) or pa.types.is_large_string(chunked.type)
        if array.dtype == object and is_text and chunked.null_count == 0:
            array = array.astype(str)  # a fixed-width str array; with nulls it stays object/None
        array.flags.writeable = False
        self._numpy[name] = array
        return array

    def __contains__(self, name: object) -> bool:
        return name in self._table.column_names

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return self.column(key)
        if isinstance(key, (int, np.integer)):
            index = int(key) + (len(self) if key < 0 else 0)
            if not 0 <= index < len(self):
                raise IndexError(f"item {key} out of range for a set of {len(self)}")
            return self.item_class(self, index)
        if isinstance(key, slice):
            return self.take(np.arange(len(self))[key])
        array = np.asarray(key)
        if array.dtype == np.bool_:
            return self.where(array)
        return self.take(array)

    def __iter__(self) -> Iterator[Item]:
        for index in range(len(self)):
            yield self.item_class(self, index)

    # -- conversions -----------------------------------------------------------------------
    def to_arrow(self) -> pa.Table:
        """The set as an Arrow table (no copy)."""
        return self._table

    def to_pandas(self) -> pd.DataFrame:
        """The set as a pandas DataFrame (copies)."""
        frame: pd.DataFrame = self._table.to_pandas()
        return frame

    def to_dict(self) -> dict[str, NDArray[Any]]:
        """Column name to numpy array."""
        return {name: self.column(name) for name in self.columns}

    # -- vectorised operations -------------------------------------------------------------
    def where(self, condition: str | NDArray[Any] | Sequence[bool]) -> Set:
        """Keep the rows where ``condition`` holds.

        Parameters
        ----------
        condition
            A condition string over columns (see :mod:`cryolab.core.expressions`), or a
            boolean mask with one value per row.
        """
        if isinstance(condition, str):
            mask = expressions.evaluate(condition, _ColumnView(self))
        else:
            mask = np.asarray(condition, dtype=bool)
        if mask.shape != (len(self),):
            raise SetError(f"a mask of {mask.shape} does not fit a set of {len(self)} rows")
        return self._like(self._table.filter(pa.array(mask)))

    def take(self, indices: Sequence[int] | NDArray[Any]) -> Set:
        """Keep the rows at ``indices`` (in that order)."""
        return self._like(self._table.take(pa.array(np.asarray(indices, dtype=np.int64))))

    def subset(self, uids: Sequence[int] | NDArray[Any] | Set, *, exclude: bool = False) -> Set:
        """Keep (or with ``exclude=True`` drop) the rows whose uid is in ``uids``."""
        wanted = uids.uids if isinstance(uids, Set) else np.asarray(uids, dtype=np.uint64)
        mask = pc.is_in(self._table.column(UID), value_set=pa.array(wanted, pa.uint64()))
        if exclude:
            mask = pc.invert(mask)
        return self._like(self._table.filter(mask))

    def union(self, *others: Set, duplicates: Literal["error", "first"] = "error") -> Set:
        """Concatenate sets; columns missing from one set are null there.

        Parameters
        ----------
        others
            The sets to append after this one.
        duplicates
            ``"error"`` refuses uids present twice; ``"first"`` keeps the first occurrence.
        """
        tables = [self._table, *(o.to_arrow() for o in others)]
        try:
            merged = pa.concat_tables(tables, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise SetError(f"cannot merge sets with incompatible columns: {exc}") from None
        uids = merged.column(UID).to_numpy()
        unique, first = np.unique(uids, return_index=True)
        if unique.size != uids.size:
            if duplicates == "error":
                raise SetError(
                    f"{uids.size - unique.size} uid(s) appear in more than one input; "
                    "use duplicates='first' to keep the first occurrence"
                )
            merged = merged.take(pa.array(np.sort(first)))
        out = self._like(merged)
        for other in others:
            for key, value in other.properties.items():
                out.properties.setdefault(key, value)
        return out

    def join(
        self,
        other: Set,
        *,
        columns: Sequence[str] | None = None,
        how: Literal["inner", "left"] = "inner",
        prefix: str = "",
    ) -> Set:
        """Add columns of ``other`` to the rows with the same uid.

        Parameters
        ----------
        other
            The set holding the metadata to add.
        columns
            Which of its columns to take (default: all but ``uid``).
        how
            ``"inner"`` keeps only uids in both sets; ``"left"`` keeps all rows of this set.
        prefix
            Put before each added column name (e.g. ``"ctf."``). Without a prefix, an added
            column replaces a column of the same name.
        """
        taken = [c for c in (other.columns if columns is None else columns) if c != UID]
        missing = [c for c in taken if c not in other]
        if missing:
            raise SetError(f"cannot join: {other.type_name} has no column(s) {missing}")
        # hash lookup of each row's uid in the other set: keeps this set's order, no sort
        position = pc.index_in(self._table.column(UID), value_set=other.to_arrow().column(UID))
        left = self._table.drop_columns(
            [prefix + c for c in taken if prefix + c in self._table.column_names]
        )
        if how == "inner":
            keep = pc.is_valid(position)
            left = left.filter(keep)
            position = position.filter(keep)
        right = other.to_arrow().select(taken).take(position)
        matched = pc.is_valid(position)
        for name in taken:
            column = right.column(name)
            replaced = prefix + name
            if how == "left" and replaced in self._table.column_names:
                # rows without a match keep their own value instead of becoming null
                own = self._table.column(replaced)
                column = pc.if_else(matched, column, own.cast(column.type, safe=False))
            left = left.append_column(replaced, column)
        return self._like(left)

    def split(
        self,
        parts: int,
        *,
        randomize: bool = False,
        seed: int | None = None,
        by: str | None = None,
        groups: str | None = None,
    ) -> list[Set]:
        """Split into ``parts`` sets.

        Parameters
        ----------
        parts
            How many sets to make (≥ 2). With ``by``, the number of distinct values decides
            instead and ``parts`` is ignored.
        randomize
            Shuffle rows before cutting (reproducible with ``seed``), e.g. for gold-standard halves.
        by
            A column: one set per distinct value, in sorted order of the values.
        groups
            A column (e.g. ``micrograph_uid``) whose groups are never cut: each group goes
            whole to the part with the fewest rows so far (groups in random order with
            ``randomize``, else in order of first appearance).
        """
        if by is not None:
            values = self.column(by)
            return [self.where(values == value) for value in np.unique(values)]
        if parts < 2:
            raise SetError(f"split needs at least 2 parts, got {parts}")
        if groups is not None:
            return self._split_groups(parts, groups, randomize, seed)
        order: NDArray[np.int64] = np.arange(len(self), dtype=np.int64)
        if randomize:
            order = np.random.default_rng(seed).permutation(len(self))
        return [
            self.take(np.sort(chunk) if randomize else chunk)
            for chunk in np.array_split(order, parts)
        ]

    def _split_groups(
        self, parts: int, column: str, randomize: bool, seed: int | None
    ) -> list[Set]:
        keys, first, inverse, sizes = np.unique(
            self.column(column), return_index=True, return_inverse=True, return_counts=True
        )
        order = np.argsort(first, kind="stable")
        if randomize:
            order = np.random.default_rng(seed).permutation(len(keys))
        filled = np.zeros(parts, dtype=np.int64)
        part_of_group = np.empty(len(keys), dtype=np.int64)
        for group in order:
            target = int(np.argmin(filled))
            part_of_group[group] = target
            filled[target] += sizes[group]
        part_of_row = part_of_group[inverse.reshape(-1)]
        return [self.where(part_of_row == index) for index in range(parts)]

    def with_columns(self, **columns: Any) -> Set:
        """Return a copy with columns added or replaced (``**{"ctf.defocus_u": values}``)."""
        table = self._table
        for name, values in columns.items():
            array = (
                values
                if isinstance(values, (pa.Array, pa.ChunkedArray))
                else pa.array(np.asarray(values))
            )
            if len(array) != len(self):
                raise SetError(f"column {name!r} has {len(array)} values for {len(self)} rows")
            if name in table.column_names:
                table = table.set_column(table.column_names.index(name), name, array)
            else:
                table = table.append_column(name, array)
        return self._like(table)

    def drop(self, *columns: str) -> Set:
        """Return a copy without the given columns (``uid`` cannot be dropped)."""
        if UID in columns:
            raise SetError("the uid column cannot be dropped")
        missing = [c for c in columns if c not in self]
        if missing:
            raise SetError(f"cannot drop missing column(s) {missing}")
        return self._like(self._table.drop_columns(list(columns)))

    # -- persistence -----------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the set to a set folder (closed) and return its path."""
        from cryolab.core.setstore import SetWriter

        writer = SetWriter.create(path, type(self).type_chain(), properties=self.properties)
        writer.append(self._table)
        writer.close()
        return Path(path)

    @staticmethod
    def open(path: str | Path) -> Set:
        """Read a set folder written by :meth:`save` or a run (its committed batches)."""
        from cryolab.core.setstore import read_set

        return read_set(path)

    # -- display ---------------------------------------------------------------------------
    def gallery(self, **options: Any) -> Any:
        """A lazy gallery widget of the set's images (``cryolab.ui.gallery.Gallery``).

        ``options`` go to the widget: ``labels``, ``sort``, ``descending``, ``where``, ``size``.
        The set's rows must locate images (``image.path``, ``image.index``). Making subsets
        needs the run output the set came from: use ``run.out.NAME.gallery()`` for that.

        The UI layer is optional (it needs anywidget) and the engine never imports it, so it
        is loaded here by name, on demand (the import-linter contracts forbid any import of
        ``cryolab.ui`` from ``cryolab.core``).
        """
        return importlib.import_module("cryolab.ui.gallery").gallery(self, **options)

    def report_figures(self) -> list[Figure]:
        """Figures of this set for a project report (:mod:`cryolab.core.report`).

        The base set has none; set types override it (CTFs plot defocus per micrograph, an
        FSC its curve, 2-D classes their averages). Reports call it only on outputs whose
        type overrides it, so sets without figures are never read.
        """
        return []

    def __repr__(self) -> str:
        return (
            f"<{self.type_name} of {len(self)} {self.item_label}s, {self.state}, "
            f"columns={self.columns}>"
        )

    def _repr_html_(self) -> str:
        head = self._table.slice(0, 5).to_pylist()
        names = self.columns
        rows = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_short(row[n]))}</td>" for n in names) + "</tr>"
            for row in head
        )
        more = f"<p>… {len(self) - 5} more</p>" if len(self) > 5 else ""
        return (
            f"<div class='cryolab-set'><b>{html.escape(self.type_name)}</b>: {len(self)} "
            f"{self.item_label}s ({self.state})<table><thead><tr>"
            + "".join(f"<th>{html.escape(n)}</th>" for n in names)
            + f"</tr></thead><tbody>{rows}</tbody></table>{more}</div>"
        )


def _decode_dictionary(chunked: pa.ChunkedArray) -> NDArray[Any]:
    """Decode a dictionary column through its (small) dictionary: fast, no per-row strings."""
    parts = []
    for chunk in chunked.chunks:
        values = chunk.dictionary.to_numpy(zero_copy_only=False)
        if values.dtype == object:
            values = values.astype(str)
        parts.append(values[chunk.indices.to_numpy(zero_copy_only=False)])
    if not parts:
        return np.asarray([], dtype=str)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _short(value: Any) -> str:
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    return text if len(text) <= 40 else text[:37] + "…"


class _ColumnView(Mapping[str, NDArray[Any]]):
    """A set's columns as a mapping, for the expression evaluator."""

    def __init__(self, source: Set) -> None:
        self._set = source

    def __getitem__(self, name: str) -> NDArray[Any]:
        return self._set.column(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._set.columns)

    def __len__(self) -> int:
        return len(self._set.columns)


class Item:
    """A light view of one row of a set: ``item.ctf.defocus_u`` or ``item["ctf.defocus_u"]``."""

    __slots__ = ("_index", "_prefix", "_set")

    def __init__(self, source: Set, index: int, prefix: str = "") -> None:
        self._set = source
        self._index = index
        self._prefix = prefix

    def __getitem__(self, name: str) -> Any:
        full = self._prefix + name
        if full not in self._set:
            raise KeyError(f"{self._set.type_name} items have no field {full!r}")
        return self._set.to_arrow().column(full)[self._index].as_py()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        full = self._prefix + name
        if full in self._set:
            return self[name]
        if any(c.startswith(full + ".") for c in self._set.columns):
            return Item(self._set, self._index, full + ".")
        raise AttributeError(f"{self._set.type_name} items have no field {full!r}")

    def as_dict(self) -> dict[str, Any]:
        """All fields of the item (under this prefix) as a flat dict."""
        return {
            c[len(self._prefix) :]: self._set.to_arrow().column(c)[self._index].as_py()
            for c in self._set.columns
            if c.startswith(self._prefix)
        }

    def __repr__(self) -> str:
        return f"<{self._set.item_label} {self.as_dict()}>"


Set.item_class = Item
