"""Read and write STAR files (RELION's metadata format) as Arrow tables, fast.

:func:`read_star` returns the blocks of a file in file order: a ``loop_`` block becomes a
:class:`pyarrow.Table` with typed columns (``int64`` when every value is an integer, ``float64``
when every value is a number, ``string`` otherwise) and a key-value block a ``dict`` of strings
(exactly as written; converters turn them into numbers). Column and key names are the labels
without the leading underscore (``rlnDefocusU``), like ``starfile``. :func:`write_star` writes
such blocks back; floats are written in their shortest round-trip form, so a read-write-read
cycle gives identical tables.

Speed: the body of a big loop is never split line by line in Python. A body with single spaces
between values (as :func:`write_star` and ``starfile`` write it) goes straight to Arrow's
multithreaded CSV reader; an aligned body (as RELION writes it) is read as lines, split on
whitespace by Arrow and cut into columns, one chunk per thread. Bodies with quoted values or
comment lines use a line-by-line parser, which is also the one that reports errors precisely.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import pyarrow as pa

from cryolab.em._star_text import _FLOAT, _INT, StarError, _parse_loop, _show, _tokens

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "StarError",
    "block",
    "column_as",
    "parse_star",
    "read_star",
    "star_source",
    "write_star",
]

StarError.__module__ = __name__  # raised by the private modules too; documented here

Block: TypeAlias = "pa.Table | dict[str, str]"
_META_FILE = b"star.file"  # schema metadata of a table read from a file: where it came from
_META_BLOCK = b"star.block"


# -- reading ---------------------------------------------------------------------------------
def read_star(path: str | os.PathLike[str]) -> dict[str, Block]:
    """Read every block of a STAR file.

    Parameters
    ----------
    path
        The STAR file.

    Returns
    -------
    dict
        Block name (``"particles"`` for ``data_particles``, ``""`` for ``data_``) to an Arrow
        table (a ``loop_``) or a dict of strings (key-value pairs), in file order.

    Raises
    ------
    StarError
        The file cannot be read, or is malformed (a row with the wrong number of values, a
        label without a value, two blocks of the same name); the message says where.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise StarError(f"cannot read the file ({exc.strerror or exc})", file=path) from None
    return parse_star(data, source=str(path))


def parse_star(data: bytes | str, source: str | None = None) -> dict[str, Block]:
    """Parse STAR text (see :func:`read_star`); ``source`` names it in error messages."""
    raw = data.encode() if isinstance(data, str) else data
    blocks: dict[str, Block] = {}
    starts = _block_starts(raw)
    first = _first_content_line(raw[: starts[0][3]] if starts else raw)
    if first is not None:
        raise StarError("text before the first data_ block", file=source, line=first)
    for index, (name, content, line, _) in enumerate(starts):
        end = starts[index + 1][3] if index + 1 < len(starts) else len(raw)
        if name in blocks:
            raise StarError("a second block with this name", file=source, block=name, line=line)
        blocks[name] = _parse_block(raw, content, end, line, name, source)
    return blocks


def _block_starts(raw: bytes) -> list[tuple[str, int, int, int]]:
    """(name, content start, line number, header start) of each ``data_`` header."""
    found = []
    position = raw.find(b"data_")
    while position >= 0:
        if position == 0 or raw[position - 1] in b" \t\r\n":
            line_start = raw.rfind(b"\n", 0, position) + 1
            if line_start == position or not raw[line_start:position].strip():
                stop = position + 5
                while stop < len(raw) and raw[stop] not in b" \t\r\n":
                    stop += 1
                name = raw[position + 5 : stop].decode("utf-8", "replace")
                line = raw.count(b"\n", 0, position) + 1
                found.append((name, stop, line, line_start))
        position = raw.find(b"data_", position + 5)
    return found


def _first_content_line(raw: bytes) -> int | None:
    for number, text in enumerate(raw.split(b"\n"), 1):
        stripped = text.strip()
        if stripped and not stripped.startswith(b"#"):
            return number
    return None


def _parse_block(
    raw: bytes, start: int, end: int, line: int, name: str, source: str | None
) -> Block:
    """Parse one block: its header lines in Python, its loop body (if any) in bulk."""
    pairs: dict[str, str] = {}
    labels: list[str] = []
    in_loop = False
    position = start
    while position < end:
        stop = raw.find(b"\n", position, end)
        stop = end if stop < 0 else stop
        text = raw[position:stop].strip()
        if text and not text.startswith(b"#"):
            if text == b"loop_" or text.startswith(b"loop_ "):
                if in_loop or pairs:
                    raise StarError(
                        "a second loop_ or a loop_ after key-value pairs in one block "
                        "(not supported)",
                        file=source,
                        block=name,
                        line=line,
                    )
                in_loop = True
            elif text.startswith(b"_"):
                if in_loop:
                    label = text.split()[0][1:].decode("utf-8", "replace")
                    if label in labels:
                        raise StarError(
                            f"the label _{label} appears twice", file=source, block=name, line=line
                        )
                    labels.append(label)
                else:
                    key, value = _pair(text, name, line, source)
                    pairs[key] = value
            elif in_loop and labels:
                body = _parse_loop(raw, position, end, line, labels, name, source)
                return body.replace_schema_metadata(
                    {_META_FILE: (source or "").encode(), _META_BLOCK: name.encode()}
                )
            else:
                raise StarError(
                    f"unexpected text {_show(text)} (not a label, value row or comment)",
                    file=source,
                    block=name,
                    line=line,
                )
        position = stop + 1
        line += 1
    if in_loop:  # a loop without rows
        if not labels:
            raise StarError("loop_ without labels", file=source, block=name, line=line)
        table = pa.table({label: pa.array([], pa.string()) for label in labels})
        return table.replace_schema_metadata(
            {_META_FILE: (source or "").encode(), _META_BLOCK: name.encode()}
        )
    return pairs


def _pair(text: bytes, block: str, line: int, source: str | None) -> tuple[str, str]:
    tokens = _tokens(text, block, line, source)
    key = tokens[0][1:]
    if len(tokens) < 2 or tokens[1].startswith("#"):
        raise StarError(f"the label _{key} has no value", file=source, block=block, line=line)
    if len(tokens) > 2 and not tokens[2].startswith("#"):
        raise StarError(
            f"the label _{key} has more than one value", file=source, block=block, line=line
        )
    return key, tokens[1]


# -- typed access with precise errors ---------------------------------------------------------
def star_source(table: pa.Table) -> tuple[str | None, str | None]:
    """The file and block a table was read from (None when unknown)."""
    metadata = table.schema.metadata or {}
    file = metadata.get(_META_FILE)
    block = metadata.get(_META_BLOCK)
    return (
        file.decode() if file else None,
        block.decode() if block is not None else None,
    )


def column_as(table: pa.Table, name: str, dtype: pa.DataType) -> pa.ChunkedArray:
    """Column ``name`` of a table read by :func:`read_star`, as ``dtype`` (int64 or float64).

    Raises
    ------
    StarError
        Naming the file, block, column, row and line of the first value that is not a number
        (or not an integer).
    """
    column = table.column(name)
    if column.type == dtype:
        return column
    try:
        if pa.types.is_integer(dtype) and pa.types.is_floating(column.type):
            values = column.to_numpy()
            if np.all(np.isfinite(values)) and np.all(values == np.round(values)):
                return column.cast(dtype, safe=False)
            raise pa.ArrowInvalid("not integral")
        return column.cast(dtype)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    kind = "an integer" if pa.types.is_integer(dtype) else "a number"
    check = _INT if pa.types.is_integer(dtype) else _FLOAT
    for index, value in enumerate(column.to_pylist()):
        text = value if isinstance(value, str) else repr(value)
        if value is None or not check.fullmatch(text.strip()):
            file, block = star_source(table)
            raise StarError(
                f"{text!r} is not {kind}",
                file=file,
                block=block,
                column=name,
                row=index + 1,
                line=row_line(file, block, index + 1),
            )
    raise StarError(f"cannot read the values as {dtype}", column=name)


def row_line(file: str | None, block: str | None, row: int) -> int | None:
    """The line number of data row ``row`` (1-based) of a loop block, by rescanning the file."""
    if not file or block is None:
        return None
    try:
        raw = Path(file).read_bytes()
    except OSError:
        return None
    for name, content, line, _ in _block_starts(raw):
        if name != block:
            continue
        seen_rows = 0
        in_body = False
        for number, text in enumerate(raw[content:].split(b"\n"), line):
            stripped = text.strip()
            if stripped.startswith(b"data_"):
                return None
            if not stripped or stripped.startswith(b"#"):
                continue
            if stripped.startswith(b"_") or stripped.startswith(b"loop_"):
                if in_body:
                    return None
                continue
            in_body = True
            seen_rows += 1
            if seen_rows == row:
                return number
    return None


def block(blocks: Mapping[str, Any], name: str | tuple[str, ...], source: str | None = None) -> Any:
    """``blocks[name]`` (the first present of several names), or a :class:`StarError`."""
    names = (name,) if isinstance(name, str) else name
    for candidate in names:
        if candidate in blocks:
            return blocks[candidate]
    wanted = " or ".join(f"data_{n}" for n in names)
    present = ", ".join(f"data_{n}" for n in blocks) or "none"
    raise StarError(f"no block {wanted} (blocks: {present})", file=source)


# -- writing ---------------------------------------------------------------------------------
def write_star(
    path: str | os.PathLike[str],
    blocks: Mapping[str, Any] | pa.Table | pd.DataFrame,
    *,
    version: int | None = None,
    aligned: bool = False,
) -> Path:
    """Write blocks to a STAR file that RELION reads.

    Parameters
    ----------
    path
        The file to write (replaced if present).
    blocks
        Block name to an Arrow table or pandas DataFrame (written as a ``loop_``) or a mapping
        of key to value (written as key-value pairs); a single table is written as ``data_``.
    version
        Written before each block as ``# version <version>`` (RELION 3.1 and 4 write 30001,
        RELION 5 writes 50001); nothing when None.
    aligned
        Pad the values of each column to a common width, as RELION does (easier to read,
        slower to write); otherwise values are separated by single spaces.

    Notes
    -----
    Floats are written in their shortest round-trip form (a whole number as ``300.0``), so
    reading the file gives the same values and types. Missing float values are written as
    ``nan``; a missing integer or text value is an error.
    """
    from cryolab.em._star_write import write_blocks

    return write_blocks(path, blocks, version=version, aligned=aligned)
