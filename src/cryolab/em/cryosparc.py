"""cryoSPARC ``.cs`` files: lossless reading and writing, and particle sets to and from them.

A ``.cs`` file is a numpy ``.npy`` file holding one structured array: one record per item, one
field per value (``uid``, ``blob/path``, ``ctf/df1_A``, ``alignments3D/pose`` ...). Fields are
numbers, booleans or fixed-width byte strings, some with a shape (``alignments3D/pose`` has 3
values per row).

:func:`read_cs` returns the file as an Arrow table that keeps everything:

- field names are kept as cryoSPARC spells them (``blob/path``, with its slash);
- a field with a shape is split into one column per value, ``<field>.0``, ``<field>.1``, ...
  (in C order for shapes of more than one axis);
- byte strings are decoded from UTF-8 to text; nothing else is changed, so a ``blob/path``
  starting with ``>`` keeps it (see below);
- each column's Arrow field metadata records the numpy dtype (``cs.dtype``), and for split
  fields the field name and shape (``cs.field``, ``cs.shape``), so that :func:`write_cs` writes
  the same dtypes back and ``np.load`` of the copy equals ``np.load`` of the original.

The ``>`` marker: when a cryoSPARC job or result group is *exported*, cryoSPARC puts ``>`` in
front of every path to say "relative to the folder of this .cs file" (instead of relative to the
project folder); cryoSPARC removes it again on import. :func:`read_cs` keeps the marker (the
table is the file); :func:`cs_to_particles` removes it from ``image.path``, records it (set
property ``cryosparc["exported_paths"]``, or a ``cs.exported`` boolean column when only some rows
have it) and points the set's ``root`` at the file's folder; :func:`particles_to_cs` puts it
back.

:func:`cs_to_particles` maps the fields cryolab knows to its own columns (``docs/formats.md``)
and carries every other field as a ``cs.<field>`` column, so that :func:`particles_to_cs` writes
them back unchanged. Columns of the set that cryoSPARC has no field for are written as
``cryolab/<column>`` fields and come back under their own name.

Files in cryoSPARC's newer compressed stream format (``\\x95CSDAT``) are refused with a
:class:`~cryolab.em.formats.FormatError` (re-save them with cryosparc-tools' default format).
"""

from __future__ import annotations

import ast
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from cryolab.core.sets import UID, Set, as_table
from cryolab.em.formats import FormatError
from cryolab.em.objects import Acquisition, SetOfParticles

__all__ = [
    "CARRY_PREFIX",
    "EXPORT_MARKER",
    "OWN_PREFIX",
    "cs_to_particles",
    "particles_to_cs",
    "particles_to_cs_table",
    "read_cs",
    "write_cs",
]

CARRY_PREFIX = "cs."
"""Prefix of the set columns that carry cryoSPARC fields cryolab does not map."""
OWN_PREFIX = "cryolab/"
"""Prefix of the .cs fields that hold cryolab columns cryoSPARC has no field for."""
EXPORT_MARKER = ">"
"""cryoSPARC's mark, before a path, of a path relative to the .cs file's folder."""
EXPORTED_COLUMN = "cs.exported"
"""Boolean column recording the marker per row when only some rows have it."""

_NUMPY_MAGIC = b"\x93NUMPY"
_CSDAT_MAGIC = b"\x95CSDAT"
_META_DTYPE = b"cs.dtype"
_META_FIELD = b"cs.field"
_META_SHAPE = b"cs.shape"
_SUPPORTED_KINDS = "biufSU"

# dtypes of the fields particles_to_cs may create (when the set did not come from a .cs file)
_KNOWN_DTYPES: dict[str, str] = {
    "blob/path": "|S1",
    "blob/idx": "<u4",
    "blob/psize_A": "<f4",
    "ctf/accel_kv": "<f4",
    "ctf/cs_mm": "<f4",
    "ctf/amp_contrast": "<f4",
    "ctf/df1_A": "<f4",
    "ctf/df2_A": "<f4",
    "ctf/df_angle_rad": "<f4",
    "ctf/phase_shift_rad": "<f4",
    "location/micrograph_uid": "<u8",
    "location/micrograph_shape": "<u4",
    "location/center_x_frac": "<f4",
    "location/center_y_frac": "<f4",
    "alignments2D/class": "<u4",
    "alignments3D/class": "<u4",
    "alignments3D/pose": "<f4",
    "alignments3D/shift": "<f4",
    "alignments3D/psize_A": "<f4",
}
_CTF_FIELDS = (  # (cryoSPARC field, cryolab column, radians in the file)
    ("ctf/df1_A", "ctf.defocus_u", False),
    ("ctf/df2_A", "ctf.defocus_v", False),
    ("ctf/df_angle_rad", "ctf.defocus_angle", True),
    ("ctf/phase_shift_rad", "ctf.phase_shift", True),
)
_ACQUISITION_FIELDS = (  # (cryoSPARC field, Acquisition attribute)
    ("ctf/accel_kv", "voltage"),
    ("ctf/cs_mm", "spherical_aberration"),
    ("ctf/amp_contrast", "amplitude_contrast"),
)
_TRANSFORM = ("transform.rot", "transform.tilt", "transform.psi")
_SHIFTS = ("transform.shift_x", "transform.shift_y")


# -- reading --------------------------------------------------------------------------------------
def read_cs(path: str | Path) -> pa.Table:
    """Read a cryoSPARC ``.cs`` file into an Arrow table with every field.

    Parameters
    ----------
    path
        The ``.cs`` file (numpy format, as cryoSPARC and cryosparc-tools write by default).

    Returns
    -------
    pyarrow.Table
        One row per record; one column per field, fields with a shape split into
        ``<field>.<i>`` columns; byte strings decoded to text (``>`` markers kept).

    Raises
    ------
    FormatError
        The file is not a numpy structured array, is truncated, has a field of a dtype cryolab
        cannot hold (object, complex, nested records, dates) or a string that is not UTF-8;
        the message names the file, the field and the row.
    """
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as stream:
        dtype, rows, offset = _read_header(path, stream)
        _check_dtype(path, dtype, rows)
        expected = rows * dtype.itemsize
        available = size - offset
        if available < expected:
            complete = available // dtype.itemsize if dtype.itemsize else rows
            raise FormatError(
                path,
                f"the file is truncated: its header announces {rows} rows but only "
                f"{complete} are complete",
                row=int(complete),
            )
        if available > expected:
            raise FormatError(
                path,
                f"{available - expected} bytes follow the last of the {rows} rows the header "
                "announces; the file is damaged or not a .cs file",
            )
        data = np.fromfile(stream, dtype=dtype, count=rows) if rows else np.empty(0, dtype)
    return _to_arrow(path, data)


def _read_header(path: Path, stream: BinaryIO) -> tuple[np.dtype[Any], int, int]:
    """The dtype, the row count and the data offset from the numpy header of a .cs file."""
    magic = stream.read(6)
    if magic == _CSDAT_MAGIC:
        raise FormatError(
            path,
            "the file is in cryoSPARC's compressed stream format (CSDAT), which cryolab does "
            "not read; save it in the numpy format (cryosparc-tools: Dataset.save(path))",
        )
    if magic != _NUMPY_MAGIC:
        raise FormatError(path, "not a cryoSPARC .cs file (no numpy array header)")
    version = stream.read(2)
    if len(version) < 2 or version[0] not in (1, 2, 3):
        raise FormatError(path, f"unknown numpy file version {tuple(version)}")
    width = 2 if version[0] == 1 else 4
    raw = stream.read(width)
    if len(raw) < width:
        raise FormatError(path, "the file is truncated inside its header")
    length = struct.unpack("<H" if width == 2 else "<I", raw)[0]
    header = stream.read(length)
    if len(header) < length:
        raise FormatError(path, "the file is truncated inside its header")
    try:
        info = ast.literal_eval(header.decode("utf-8" if version[0] == 3 else "latin-1"))
        descr, fortran, shape = info["descr"], info["fortran_order"], info["shape"]
    except (SyntaxError, ValueError, TypeError, KeyError, UnicodeDecodeError):
        raise FormatError(path, "the numpy header is malformed") from None
    try:
        dtype: np.dtype[Any] = np.lib.format.descr_to_dtype(descr)  # type: ignore[no-untyped-call]
    except (TypeError, ValueError) as exc:
        raise FormatError(path, f"the numpy header has an unreadable dtype: {exc}") from None
    if not isinstance(shape, tuple) or len(shape) != 1 or not isinstance(shape[0], int):
        raise FormatError(path, f"holds an array of shape {shape}; a .cs file holds one row list")
    del fortran  # irrelevant for one axis
    return dtype, int(shape[0]), stream.tell()


def _check_dtype(path: Path, dtype: np.dtype[Any], rows: int) -> None:
    if dtype.names is None:
        raise FormatError(path, f"holds a plain {dtype} array, not records with named fields")
    for name in dtype.names:
        ftype = dtype.fields[name][0] if dtype.fields else dtype
        base = ftype.base
        if base.kind not in _SUPPORTED_KINDS or base.names is not None:
            what = "nested records" if base.names is not None else str(base)
            raise FormatError(
                path,
                f"the field has dtype {what}, which cryolab cannot read (a .cs field holds "
                "numbers, booleans or fixed-width strings); every row is affected",
                field=name,
                row=0 if rows else None,
            )


def _to_arrow(path: Path, data: NDArray[Any]) -> pa.Table:
    arrays: list[pa.Array] = []
    fields: list[pa.Field] = []
    assert data.dtype.names is not None and data.dtype.fields is not None
    for name in data.dtype.names:
        ftype = data.dtype.fields[name][0]
        base = ftype.base
        values = data[name]
        meta = {_META_DTYPE: base.str.encode()}
        if ftype.shape:
            meta[_META_FIELD] = name.encode()
            meta[_META_SHAPE] = ",".join(str(s) for s in ftype.shape).encode()
            flat = values.reshape(len(values), int(np.prod(ftype.shape)))
            for i in range(flat.shape[1]):
                array = _arrow_column(path, name, flat[:, i])
                arrays.append(array)
                fields.append(pa.field(f"{name}.{i}", array.type, metadata=meta))
        else:
            array = _arrow_column(path, name, values)
            arrays.append(array)
            fields.append(pa.field(name, array.type, metadata=meta))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _arrow_column(path: Path, name: str, values: NDArray[Any]) -> pa.Array:
    kind = values.dtype.kind
    if kind == "S":
        binary = pa.array(np.ascontiguousarray(values), pa.binary())
        try:
            return binary.cast(pa.string())
        except pa.ArrowInvalid:
            for row, item in enumerate(values.tolist()):
                try:
                    item.decode("utf-8")
                except UnicodeDecodeError:
                    raise FormatError(
                        path, f"the string {item!r} is not UTF-8 text", field=name, row=row
                    ) from None
            raise
    if kind == "U":
        return pa.array(values.tolist(), pa.string())
    native = values.astype(values.dtype.newbyteorder("="), copy=False)
    return pa.array(np.ascontiguousarray(native))


# -- writing --------------------------------------------------------------------------------------
@dataclass
class _Field:
    """A .cs field and the table columns holding it."""

    name: str
    columns: list[str]
    shape: tuple[int, ...]
    dtype: str | None  # numpy dtype string of one value, when recorded


def _group_columns(table: pa.Table, path: str | Path | None) -> list[_Field]:
    """Group table columns into .cs fields (``<field>.<i>`` columns make one vector field).

    A column with ``cs.field`` metadata belongs to that field; one with only ``cs.dtype`` is a
    field of its own; a column without metadata named ``<name>.<digits>`` is part of the vector
    field ``<name>`` unless a column ``<name>`` exists.
    """
    names = set(table.column_names)
    order: list[str] = []
    parts: dict[str, list[tuple[int | None, str]]] = {}
    meta_of: dict[str, dict[bytes, bytes]] = {}
    for field in table.schema:
        meta = dict(field.metadata or {})
        base: str
        index: int | None
        if _META_FIELD in meta:
            base = meta[_META_FIELD].decode()
            if field.name == base:
                index = None
            else:
                suffix = field.name[len(base) + 1 :]
                if not field.name.startswith(base + ".") or not suffix.isdigit():
                    raise FormatError(
                        path, f"column {field.name!r} is recorded as a part of {base!r}"
                    )
                index = int(suffix)
        elif _META_DTYPE in meta:
            base, index = field.name, None
        else:
            head, dot, tail = field.name.rpartition(".")
            if dot and head and tail.isdigit() and head not in names:
                base, index = head, int(tail)
            else:
                base, index = field.name, None
        if base not in parts:
            parts[base] = []
            order.append(base)
            meta_of[base] = meta
        parts[base].append((index, field.name))
    out: list[_Field] = []
    for base in order:
        members = parts[base]
        meta = meta_of[base]
        dtype = meta[_META_DTYPE].decode() if _META_DTYPE in meta else None
        if len(members) == 1 and members[0][0] is None:
            out.append(_Field(base, [members[0][1]], (), dtype))
            continue
        indices = sorted(i if i is not None else -1 for i, _ in members)
        if indices != list(range(len(members))):
            raise FormatError(
                path,
                f"the columns of vector field {base!r} are numbered {indices}; "
                f"expected 0 to {len(members) - 1}",
                field=base,
            )
        columns = [name for _, name in sorted(members, key=lambda m: m[0] or 0)]
        shape: tuple[int, ...] = (len(columns),)
        if _META_SHAPE in meta:
            recorded = tuple(int(s) for s in meta[_META_SHAPE].decode().split(","))
            if int(np.prod(recorded)) == len(columns):
                shape = recorded
        out.append(_Field(base, columns, shape, dtype))
    return out


def write_cs(
    path: str | Path,
    data: Set | pa.Table,
    *,
    dtypes: Mapping[str, str] | None = None,
) -> Path:
    """Write a table (or set) of cryoSPARC fields as a ``.cs`` file that ``np.load`` reads.

    Parameters
    ----------
    path
        The file to write (no suffix is added).
    data
        Columns named as :func:`read_cs` names them: a table read by :func:`read_cs` is
        written back with the same fields, order and dtypes. Columns ``<field>.<i>`` make a
        vector field. A ``uid`` column (uint64) is added first when missing.
    dtypes
        Numpy dtype strings (``"<f4"``) for fields whose columns record none; otherwise the
        dtype follows the Arrow type (strings: the narrowest fixed width that fits).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    FormatError
        A column has missing values, a type a .cs file cannot hold, or values that do not
        fit the field's dtype (the message names the field and the row).
    """
    path = Path(path)
    table = data.to_arrow() if isinstance(data, Set) else data
    if UID not in table.column_names:
        table = as_table(table)
        table = table.select([UID, *[c for c in table.column_names if c != UID]])
    groups = _group_columns(table, path)
    hints = dict(dtypes or {})
    spec: list[tuple[str, np.dtype[Any], tuple[int, ...]]] = []
    values: dict[str, NDArray[Any]] = {}
    for group in groups:
        parts = [
            _numpy_column(path, table, column, group.dtype or hints.get(group.name))
            for column in group.columns
        ]
        dtype = _common_dtype(parts)
        if group.shape:
            stacked = np.stack([p.astype(dtype, copy=False) for p in parts], axis=1)
            stacked = stacked.reshape((table.num_rows, *group.shape))
        else:
            stacked = parts[0]
        spec.append((group.name, dtype, group.shape))
        values[group.name] = stacked
    names = [name for name, _, _ in spec]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise FormatError(path, f"two column groups make the same field(s) {duplicates}")
    records = np.empty(
        table.num_rows, dtype=np.dtype([(name, dt, shape) for name, dt, shape in spec])
    )
    for name, array in values.items():
        records[name] = array
    with path.open("wb") as stream:
        np.save(stream, records, allow_pickle=False)
    return path


def _common_dtype(parts: Sequence[NDArray[Any]]) -> np.dtype[Any]:
    dtype = parts[0].dtype
    for part in parts[1:]:
        if part.dtype != dtype:
            if dtype.kind in "SU" and part.dtype.kind == dtype.kind:
                dtype = max(dtype, part.dtype, key=lambda d: d.itemsize)
            else:
                dtype = np.result_type(dtype, part.dtype)
    return dtype


def _numpy_column(path: Path, table: pa.Table, column: str, hint: str | None) -> NDArray[Any]:
    """One column as a numpy array of its .cs dtype (``hint`` when given)."""
    chunked = table.column(column)
    if chunked.null_count:
        first = int(np.flatnonzero(chunked.is_null().to_numpy(zero_copy_only=False))[0])
        raise FormatError(path, "a .cs file cannot hold a missing value", field=column, row=first)
    kind = chunked.type
    if pa.types.is_dictionary(kind):
        chunked = chunked.cast(kind.value_type)
        kind = chunked.type
    target = np.dtype(hint) if hint else None
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        if target is not None and target.kind == "U":
            texts = np.asarray(chunked.to_numpy(zero_copy_only=False)).astype(str)
            width = max(target.itemsize // 4, 1, texts.dtype.itemsize // 4)
            order = ">" if target.byteorder == ">" else "<"
            return texts.astype(f"{order}U{width}")
        binary = chunked.cast(pa.binary())
        longest = pc.max(pc.binary_length(binary)).as_py() if len(binary) else 0
        width = max(1, longest or 0)
        if target is not None and target.kind == "S":
            width = max(width, target.itemsize)
        return np.asarray(binary.to_numpy(zero_copy_only=False)).astype(f"S{width}")
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
        raise FormatError(path, f"a .cs field cannot hold values of type {kind}", field=column)
    array = chunked.to_numpy()
    if target is None or target.kind in "SU":
        return np.asarray(array)
    converted = array.astype(target)
    if target.kind in "iub":
        back = converted.astype(array.dtype)
        bad = np.flatnonzero(back != array)
        if bad.size:
            row = int(bad[0])
            raise FormatError(
                path, f"the value {array[row]!r} does not fit dtype {target}", field=column, row=row
            )
    return np.asarray(converted)


# -- particles ------------------------------------------------------------------------------------
def _common_value(values: NDArray[Any]) -> tuple[float, bool]:
    """The most common value (as the shortest float that reads back the same) and uniformity."""
    unique, counts = np.unique(values, return_counts=True)
    value = unique[int(np.argmax(counts))]
    return _short_float(value, values.dtype), unique.size == 1


def _short_float(value: Any, dtype: np.dtype[Any]) -> float:
    """``value`` as the shortest Python float that converts back to the same ``dtype`` value."""
    if dtype.kind == "f" and dtype.itemsize < 8:
        return float(str(dtype.type(value)))
    return float(value)


def cs_to_particles(
    source: str | Path | pa.Table, *, root: str | Path | None = None
) -> SetOfParticles:
    """Make a particle set from a cryoSPARC particles ``.cs`` file (or its :func:`read_cs` table).

    Parameters
    ----------
    source
        The file, or a table read by :func:`read_cs`.
    root
        Folder that relative image paths start from (set property ``root``). By default the
        file's folder when the paths carry the ``>`` export marker, else none (cryoSPARC's
        unmarked paths are relative to the cryoSPARC project folder).

    Returns
    -------
    SetOfParticles
        The mapped columns (``docs/formats.md``), ``cs.<field>`` columns for every other field,
        set properties ``sampling_rate``, ``acquisition`` and ``cryosparc`` (the file's dtypes,
        the export marker, the field ``class_id`` came from).

    Notes
    -----
    ``uid`` is cryoSPARC's own uid. Values the same in every row (``blob/psize_A``,
    ``ctf/accel_kv``, ``ctf/cs_mm``, ``ctf/amp_contrast``) become set properties; when they
    differ between rows the property holds the most common value and the column is carried.
    ``alignments3D/pose`` and ``alignments3D/shift`` (pixels of ``alignments3D/psize_A``) are
    converted with :func:`cryolab.em.geometry.from_cryosparc`. Coordinates are
    ``center_x_frac * width`` and ``center_y_frac * height`` with ``location/micrograph_shape``
    = (height, width), which stays carried.
    """
    path: Path | None = None
    if isinstance(source, pa.Table):
        table = source
    else:
        path = Path(source)
        table = read_cs(path)
    groups = {g.name: g for g in _group_columns(table, path)}
    rows = table.num_rows
    consumed: set[str] = set()
    out: dict[str, pa.Array | pa.ChunkedArray] = {}
    props: dict[str, Any] = {}
    info: dict[str, Any] = {
        "dtype": [_describe(table, g) for g in groups.values()],
        "exported_paths": False,
    }

    def values(name: str) -> NDArray[Any]:
        return _field_values(table, groups[name])

    if UID in groups:
        out[UID] = table.column(UID).cast(pa.uint64())
        consumed.add(UID)
    if "blob/path" in groups:
        paths = table.column("blob/path")
        marks = pc.starts_with(paths, EXPORT_MARKER)
        stripped = pc.utf8_slice_codeunits(paths, len(EXPORT_MARKER))
        out["image.path"] = pc.if_else(marks, stripped, paths)
        marked = int(pc.sum(marks).as_py() or 0)
        consumed.add("blob/path")
        if rows and marked == rows:
            info["exported_paths"] = True
        elif marked:
            out[EXPORTED_COLUMN] = marks
        if root is None and path is not None and marked:
            root = path.resolve().parent
    if root is not None:
        props["root"] = str(root)
    if "blob/idx" in groups:
        out["image.index"] = pa.array(values("blob/idx").astype(np.int64) + 1)
        consumed.add("blob/idx")
    if "blob/psize_A" in groups and rows:
        value, uniform = _common_value(values("blob/psize_A"))
        props["sampling_rate"] = value
        if uniform:
            consumed.add("blob/psize_A")
    acquisition: dict[str, Any] = {}
    for field, attribute in _ACQUISITION_FIELDS:
        if field in groups and rows:
            value, uniform = _common_value(values(field))
            acquisition[attribute] = value
            if uniform:
                consumed.add(field)
    if acquisition:
        if "sampling_rate" in props:
            acquisition["sampling_rate"] = props["sampling_rate"]
        props["acquisition"] = Acquisition(**acquisition).to_dict()
    for field, column, radians in _CTF_FIELDS:
        if field in groups:
            data = values(field).astype(np.float64)
            out[column] = pa.array(np.rad2deg(data) if radians else data)
            consumed.add(field)
    if "location/micrograph_uid" in groups:
        out["micrograph_uid"] = pa.array(values("location/micrograph_uid").astype(np.uint64))
        consumed.add("location/micrograph_uid")
    fracs = ("location/center_x_frac", "location/center_y_frac")
    if all(f in groups for f in fracs) and "location/micrograph_shape" in groups:
        shape = values("location/micrograph_shape").astype(np.float64)
        out["coordinate.x"] = pa.array(values(fracs[0]).astype(np.float64) * shape[:, 1])
        out["coordinate.y"] = pa.array(values(fracs[1]).astype(np.float64) * shape[:, 0])
        consumed.update(fracs)
    for field in ("alignments2D/class", "alignments3D/class"):
        if field in groups:
            out["class_id"] = pa.array(values(field).astype(np.int64))
            info["class_field"] = field
            consumed.add(field)
            break
    if "alignments3D/pose" in groups and "alignments3D/shift" in groups:
        pose = values("alignments3D/pose").astype(np.float64).reshape(rows, 3)
        shift = values("alignments3D/shift").astype(np.float64).reshape(rows, 2)
        if "alignments3D/psize_A" in groups:
            pixel_size: Any = values("alignments3D/psize_A").astype(np.float64)
        elif "blob/psize_A" in groups:
            pixel_size = values("blob/psize_A").astype(np.float64)
        else:
            raise FormatError(
                path,
                "alignments3D/shift is in pixels but the file has no alignments3D/psize_A or "
                "blob/psize_A to convert it",
                field="alignments3D/shift",
            )
        try:
            euler = _from_cryosparc(pose, shift, pixel_size)
        except ValueError as exc:
            raise FormatError(
                path, f"cannot convert the poses: {exc}", field="alignments3D/pose"
            ) from None
        for column, data in zip((*_TRANSFORM, *_SHIFTS), euler, strict=True):
            out[column] = pa.array(np.asarray(data, dtype=np.float64).reshape(rows))
        consumed.update(("alignments3D/pose", "alignments3D/shift"))
    arrays: list[pa.Array | pa.ChunkedArray] = list(out.values())
    fields = [pa.field(name, array.type) for name, array in out.items()]
    for name, group in groups.items():
        if name in consumed:
            continue
        own = name.startswith(OWN_PREFIX)
        for column in group.columns:
            field = table.schema.field(column)
            if own:  # a cryolab column stored by particles_to_cs: back under its own name
                fields.append(pa.field(column[len(OWN_PREFIX) :], field.type))
            else:
                fields.append(field.with_name(CARRY_PREFIX + column))
            arrays.append(table.column(column))
    props["cryosparc"] = info
    result = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    return SetOfParticles(result, properties=props)


def _describe(table: pa.Table, group: _Field) -> list[Any]:
    """``[name, dtype, shape]`` of a field, as JSON."""
    dtype = group.dtype
    if dtype is None:
        arrow = table.schema.field(group.columns[0]).type
        dtype = "|S1" if pa.types.is_string(arrow) else np.dtype(arrow.to_pandas_dtype()).str
    return [group.name, dtype, list(group.shape)]


def _field_values(table: pa.Table, group: _Field) -> NDArray[Any]:
    """A field's values: shape (rows,) for a scalar field, (rows, k) for a vector field."""
    columns = [table.column(c).to_numpy() for c in group.columns]
    if not group.shape:
        return np.asarray(columns[0])
    return np.stack(columns, axis=1)


def _from_cryosparc(pose: NDArray[Any], shift: NDArray[Any], pixel_size: Any) -> tuple[Any, ...]:
    if pose.shape[0] == 0:
        empty = np.zeros(0)
        return (empty, empty, empty, empty, empty)
    from cryolab.em import geometry

    return tuple(geometry.from_cryosparc(pose, shift, _scalar_if_uniform(pixel_size)))


def _scalar_if_uniform(pixel_size: Any) -> Any:
    array = np.asarray(pixel_size, dtype=np.float64)
    if array.ndim and array.size and np.all(array == array.flat[0]):
        return float(array.flat[0])
    return array


def particles_to_cs_table(
    particles: Set, *, micrograph_shape: tuple[int, int] | None = None
) -> pa.Table:
    """The table of cryoSPARC fields :func:`particles_to_cs` writes (see there)."""
    table = particles.to_arrow()
    rows = table.num_rows
    props = particles.properties
    info: Mapping[str, Any] = props.get("cryosparc") or {}
    recorded: dict[str, tuple[str, tuple[int, ...]]] = {
        str(name): (str(dtype), tuple(int(s) for s in shape))
        for name, dtype, shape in info.get("dtype", [])
    }
    columns = set(table.column_names)
    made: dict[str, Any] = {}  # field -> values: numpy (rows,) or (rows, k), or Arrow text
    used = {UID, EXPORTED_COLUMN}

    def wanted(field: str) -> bool:
        """Whether to write a field made from set properties: if the source had it."""
        return not recorded or field in recorded

    made[UID] = table.column(UID).to_numpy()
    if "image.path" in columns:
        paths = _texts(particles, "image.path")
        if EXPORTED_COLUMN in columns:
            marks = pc.fill_null(table.column(EXPORTED_COLUMN), False)
        else:
            marks = pa.array(np.full(rows, bool(info.get("exported_paths"))))
        made["blob/path"] = pc.if_else(
            marks, pc.binary_join_element_wise(EXPORT_MARKER, paths, ""), paths
        )
        used.add("image.path")
    if "image.index" in columns:
        index = _column(particles, "image.index").astype(np.int64)
        _check_positive(index, "image.index")
        made["blob/idx"] = index - 1
        used.add("image.index")
    sampling_rate = props.get("sampling_rate")
    if sampling_rate is not None and "cs.blob/psize_A" not in columns and wanted("blob/psize_A"):
        made["blob/psize_A"] = np.full(rows, float(sampling_rate))
    acquisition = props.get("acquisition")
    has_ctf = any(c in columns for _, c, _ in _CTF_FIELDS)
    if acquisition and (has_ctf or recorded):
        for field, attribute in _ACQUISITION_FIELDS:
            if CARRY_PREFIX + field not in columns and wanted(field) and attribute in acquisition:
                made[field] = np.full(rows, float(acquisition[attribute]))
    for field, column, radians in _CTF_FIELDS:
        if column in columns:
            data = _column(particles, column).astype(np.float64)
            made[field] = np.deg2rad(data) if radians else data
            used.add(column)
    if "micrograph_uid" in columns:
        made["location/micrograph_uid"] = _column(particles, "micrograph_uid")
        used.add("micrograph_uid")
    if "coordinate.x" in columns and "coordinate.y" in columns:
        shape_columns = [f"{CARRY_PREFIX}location/micrograph_shape.{i}" for i in (0, 1)]
        if all(c in columns for c in shape_columns):
            shape = np.stack([_column(particles, c) for c in shape_columns], axis=1)
        elif micrograph_shape is not None:
            shape = np.tile(np.asarray(micrograph_shape, dtype=np.int64), (rows, 1))
            made["location/micrograph_shape"] = shape
        else:
            raise FormatError(
                None,
                "the coordinates need the micrograph size: the set has no "
                "cs.location/micrograph_shape columns; pass micrograph_shape=(height, width)",
                field="coordinate.x",
            )
        shape = shape.astype(np.float64)
        made["location/center_x_frac"] = _column(particles, "coordinate.x") / shape[:, 1]
        made["location/center_y_frac"] = _column(particles, "coordinate.y") / shape[:, 0]
        used.update(("coordinate.x", "coordinate.y"))
    if "class_id" in columns:
        default = "alignments3D/class" if "transform.rot" in columns else "alignments2D/class"
        made[str(info.get("class_field") or default)] = _column(particles, "class_id")
        used.add("class_id")
    if all(c in columns for c in (*_TRANSFORM, *_SHIFTS)):
        if "cs.alignments3D/psize_A" in columns:
            pixel_size: Any = _column(particles, "cs.alignments3D/psize_A").astype(np.float64)
        elif sampling_rate is not None:
            pixel_size = float(sampling_rate)
            made["alignments3D/psize_A"] = np.full(rows, pixel_size)
        else:
            raise FormatError(
                None,
                "the shifts need a pixel size: the set has no sampling_rate property and no "
                "cs.alignments3D/psize_A column",
                field="transform.shift_x",
            )
        try:
            pose, shift = _to_cryosparc(
                [_column(particles, c).astype(np.float64) for c in (*_TRANSFORM, *_SHIFTS)],
                pixel_size,
            )
        except ValueError as exc:
            raise FormatError(
                None, f"cannot convert the poses: {exc}", field="transform.rot"
            ) from None
        made["alignments3D/pose"] = np.asarray(pose, dtype=np.float64).reshape(rows, 3)
        made["alignments3D/shift"] = np.asarray(shift, dtype=np.float64).reshape(rows, 2)
        used.update((*_TRANSFORM, *_SHIFTS))

    pieces: list[tuple[str, list[tuple[pa.Field, pa.Array | pa.ChunkedArray]]]] = []
    for field, data in made.items():
        dtype, dims = recorded.get(field, (_KNOWN_DTYPES.get(field, ""), ()))
        pieces.append((field, _made_columns(field, data, dtype or None, dims)))
    for column in table.column_names:
        if column in used:
            continue
        arrow_field = table.schema.field(column)
        chunked = table.column(column)
        if column.startswith(CARRY_PREFIX):
            name = column[len(CARRY_PREFIX) :]
            field = _field_name(arrow_field, name)
            meta = dict(arrow_field.metadata or {})
            if field in recorded and _META_DTYPE not in meta:
                meta[_META_DTYPE] = recorded[field][0].encode()
                if recorded[field][1]:
                    meta[_META_FIELD] = field.encode()
                    meta[_META_SHAPE] = ",".join(map(str, recorded[field][1])).encode()
            entry = (pa.field(name, chunked.type, metadata=meta or None), chunked)
        else:
            name = OWN_PREFIX + column
            field = name
            meta = {_META_FIELD: name.encode()}
            if name in recorded:
                meta[_META_DTYPE] = recorded[name][0].encode()
            entry = (pa.field(name, chunked.type, metadata=meta), chunked)
        if pieces and pieces[-1][0] == field:
            pieces[-1][1].append(entry)
        else:
            pieces.append((field, [entry]))
    rank = {name: i for i, name in enumerate(recorded)}
    pieces.sort(key=lambda piece: rank.get(piece[0], len(rank)))
    fields = [f for _, entries in pieces for f, _ in entries]
    arrays = [a for _, entries in pieces for _, a in entries]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _field_name(arrow_field: pa.Field, name: str) -> str:
    meta = arrow_field.metadata or {}
    if _META_FIELD in meta:
        return str(meta[_META_FIELD].decode())
    head, dot, tail = name.rpartition(".")
    return head if dot and tail.isdigit() and _META_DTYPE not in meta else name


def _column(particles: Set, name: str) -> NDArray[Any]:
    chunked = particles.to_arrow().column(name)
    if chunked.null_count:
        first = int(np.flatnonzero(chunked.is_null().to_numpy(zero_copy_only=False))[0])
        raise FormatError(None, "a .cs file cannot hold a missing value", field=name, row=first)
    return np.asarray(particles.column(name))


def _texts(particles: Set, name: str) -> pa.ChunkedArray:
    chunked = particles.to_arrow().column(name)
    if chunked.null_count:
        first = int(np.flatnonzero(chunked.is_null().to_numpy(zero_copy_only=False))[0])
        raise FormatError(None, "a .cs file cannot hold a missing value", field=name, row=first)
    if pa.types.is_dictionary(chunked.type):
        chunked = chunked.cast(chunked.type.value_type)
    return chunked.cast(pa.string())


def _check_positive(index: NDArray[Any], name: str) -> None:
    bad = np.flatnonzero(index < 1)
    if bad.size:
        row = int(bad[0])
        raise FormatError(None, f"image index {index[row]} is not 1-based", field=name, row=row)


def _made_columns(
    field: str, data: Any, dtype: str | None, shape: tuple[int, ...]
) -> list[tuple[pa.Field, pa.Array]]:
    meta: dict[bytes, bytes] = {_META_FIELD: field.encode()}
    if dtype:
        meta[_META_DTYPE] = dtype.encode()
    if isinstance(data, (pa.Array, pa.ChunkedArray)):
        return [(pa.field(field, data.type, metadata=meta), data)]
    array = np.asarray(data)
    if array.ndim == 1:
        return [(pa.field(field, pa.from_numpy_dtype(array.dtype), metadata=meta), pa.array(array))]
    flat = array.reshape(array.shape[0], int(np.prod(array.shape[1:])))
    meta[_META_SHAPE] = ",".join(map(str, shape or (flat.shape[1],))).encode()
    return [
        (
            pa.field(f"{field}.{i}", pa.from_numpy_dtype(flat.dtype), metadata=meta),
            pa.array(np.ascontiguousarray(flat[:, i])),
        )
        for i in range(flat.shape[1])
    ]


def _to_cryosparc(euler: Sequence[NDArray[Any]], pixel_size: Any) -> tuple[Any, Any]:
    if euler[0].shape[0] == 0:
        return np.zeros((0, 3)), np.zeros((0, 2))
    from cryolab.em import geometry

    rot, tilt, psi, shift_x, shift_y = euler
    pose, shift = geometry.to_cryosparc(
        rot, tilt, psi, shift_x, shift_y, _scalar_if_uniform(pixel_size)
    )
    return pose, shift


def particles_to_cs(
    particles: Set, path: str | Path, *, micrograph_shape: tuple[int, int] | None = None
) -> Path:
    """Write a particle set as a cryoSPARC ``.cs`` file.

    The inverse of :func:`cs_to_particles`: mapped columns become their cryoSPARC fields again
    (``image.index`` - 1, degrees to radians, coordinates to fractions, Euler angles to
    ``alignments3D/pose`` via :func:`cryolab.em.geometry.to_cryosparc`), ``cs.<field>`` columns
    are written back under their field names, the file's field order and dtypes (set property
    ``cryosparc``) are restored and the ``>`` marker is put back. Other columns are written as
    ``cryolab/<column>`` fields.

    Parameters
    ----------
    particles
        The set.
    path
        The ``.cs`` file to write.
    micrograph_shape
        ``(height, width)`` in pixels of the micrographs, needed for coordinates when the set
        has no ``cs.location/micrograph_shape`` columns.

    Returns
    -------
    Path
        ``path``.
    """
    return write_cs(path, particles_to_cs_table(particles, micrograph_shape=micrograph_shape))
