"""STAR text: the error type, value tokens and the readers of a loop body (private).

The public functions are in :mod:`cryolab.em.star`. A loop body is read by the fastest reader
that fits it, and the result is checked:

- single spaces between values (as :func:`~cryolab.em.star.write_star` and ``starfile``
  write them): Arrow's multithreaded CSV reader, with a space delimiter;
- aligned values (as RELION writes them), over 64 KiB: Arrow reads the lines, splits them on
  whitespace and takes the columns, one chunk per thread;
- anything else (quoted values, comments, small bodies), and any body a fast reader misread: the
  line-by-line reader, which also reports errors precisely.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from cryolab.core.errors import CryolabError

_T = TypeVar("_T")
_R = TypeVar("_R")

_INT = re.compile(r"[+-]?\d+")


_FLOAT = re.compile(r"[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|nan|inf|infinity)", re.I)


_TOKEN = re.compile(r"""'(.*?)'(?=\s|$)|"(.*?)"(?=\s|$)|(\S+)""")


class StarError(CryolabError):
    """A STAR file cannot be read or written as asked.

    The message names the file, and where known the block, column, data row (1-based) and
    line; the same values are attributes.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | os.PathLike[str] | None = None,
        block: str | None = None,
        column: str | None = None,
        row: int | None = None,
        line: int | None = None,
    ) -> None:
        self.file = None if file is None else str(file)
        self.block = block
        self.column = column
        self.row = row
        self.line = line
        where = [self.file or "<STAR data>"]
        if block is not None:
            where.append(f"block data_{block}")
        if column is not None:
            where.append(f"column {column}")
        if row is not None:
            where.append(f"row {row}")
        if line is not None:
            where.append(f"line {line}")
        super().__init__(", ".join(where) + ": " + message)


def _tokens(text: bytes, block: str, line: int, source: str | None) -> list[str]:
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError:
        raise StarError(
            "the line is not valid UTF-8", file=source, block=block, line=line
        ) from None
    values = []
    for match in _TOKEN.finditer(decoded):
        bare = match.group(3)
        if bare is not None and bare.startswith("#"):
            break  # a comment runs to the end of the line
        values.append(bare if bare is not None else match.group(1) or match.group(2) or "")
    return values


def _show(text: bytes) -> str:
    shown = text.decode("utf-8", "replace")
    return repr(shown if len(shown) <= 60 else shown[:57] + "...")


def _parse_loop(
    raw: bytes,
    start: int,
    end: int,
    line: int,
    labels: list[str],
    block: str,
    source: str | None,
) -> pa.Table:
    """The rows of a loop from ``start`` (the first row, on ``line``) to ``end``.

    The fast readers check their result instead of scanning the text first: a quoted value,
    a comment or a stray label shows up as a wrong number of values in a row, as a text value
    with a quote or blank in it, or as a first value starting with ``#`` or ``_``; then the
    line-by-line reader reads the body again (and reports any error precisely).
    """
    end = _trim_tail(raw, start, end)
    first_end = raw.find(b"\n", start, end)
    first = raw[start : end if first_end < 0 else first_end].rstrip(b"\r")
    table = None
    if first and first[:1] not in b" \t" and first[-1:] not in b" \t" and b"  " not in first:
        table = _read_single_spaced(raw, start, end, labels, first)
    if table is None and end - start > 1 << 16:
        table = _read_aligned(raw, start, end, labels)
    if table is not None and _plausible(table):
        return table
    return _read_lines(raw, start, end, line, labels, block, source)


def _plausible(table: pa.Table) -> bool:
    """No sign of quotes, comments or labels that a fast reader would have misread."""
    for index, column in enumerate(table.columns):
        if not pa.types.is_string(column.type):
            continue
        for chunk in column.chunks:
            if len(chunk) == 0:
                continue
            offsets = np.frombuffer(chunk.buffers()[1], np.int32)[
                chunk.offset : chunk.offset + len(chunk) + 1
            ]
            if np.any(offsets[1:] == offsets[:-1]):
                return False  # an empty value: two blanks in a row
            data = chunk.buffers()[2].to_pybytes()[offsets[0] : offsets[-1]]
            if any(c in data for c in (b" ", b"\t", b"\r", b"'", b'"', b"\x01")):
                return False
            if index == 0 and pc.any(pc.match_substring_regex(chunk, "^(#|_|loop_)")).as_py():
                return False
    return True


def _trim_tail(raw: bytes, start: int, end: int) -> int:
    """Drop blank and comment lines at the end of a loop body (e.g. ``# version 30001``)."""
    while end > start:
        line_start = raw.rfind(b"\n", start, end - 1) + 1
        line_start = max(line_start, start)
        text = raw[line_start:end].strip()
        if text and not text.startswith(b"#"):
            break
        end = line_start
    return end


def _read_single_spaced(
    raw: bytes, start: int, end: int, labels: list[str], first_line: bytes
) -> pa.Table | None:
    """Arrow's CSV reader with a space delimiter; None when the body does not fit."""
    first = first_line.decode("utf-8", "replace").split(" ")
    if len(first) != len(labels):
        return None
    types = {label: _guess_type([value]) for label, value in zip(labels, first, strict=True)}
    buffer = pa.py_buffer(raw)[start:end]
    for column_types in (types, {label: pa.string() for label in labels}):
        try:
            table = pcsv.read_csv(
                pa.BufferReader(buffer),
                read_options=pcsv.ReadOptions(column_names=labels, block_size=1 << 23),
                parse_options=pcsv.ParseOptions(
                    delimiter=" ", quote_char=False, double_quote=False, escape_char=False
                ),
                convert_options=pcsv.ConvertOptions(
                    column_types=column_types,
                    null_values=[],
                    strings_can_be_null=False,
                    true_values=[],
                    false_values=[],
                ),
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            continue
        columns = [table.column(i) for i in range(table.num_columns)]
        if column_types is not types:
            columns = _map(_infer_column, columns)
        return pa.Table.from_arrays(columns, names=labels)
    return None


def _read_aligned(raw: bytes, start: int, end: int, labels: list[str]) -> pa.Table | None:
    """Whitespace-aligned rows: Arrow reads lines, splits them and takes the columns."""
    buffer = pa.py_buffer(raw)[start:end]
    if raw.find(b"\t", start, end) >= 0:
        buffer = pa.py_buffer(raw[start:end].replace(b"\t", b" "))
    try:
        lines = pcsv.read_csv(
            pa.BufferReader(buffer),
            read_options=pcsv.ReadOptions(column_names=["line"], block_size=1 << 23),
            parse_options=pcsv.ParseOptions(
                delimiter="\x01", quote_char=False, double_quote=False, escape_char=False
            ),
            convert_options=pcsv.ConvertOptions(
                column_types={"line": pa.string()}, strings_can_be_null=False, null_values=[]
            ),
        ).column(0)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    count = len(labels)

    def split(chunk: pa.Array) -> list[pa.Array] | None:
        tokens = pc.ascii_split_whitespace(chunk)
        offsets = tokens.offsets.to_numpy()
        lead = pc.starts_with(chunk, " ").to_numpy(zero_copy_only=False)
        trail = pc.ends_with(chunk, " ").to_numpy(zero_copy_only=False)
        sizes = offsets[1:] - offsets[:-1] - lead - trail
        rows = sizes > 0
        if not np.all(sizes[rows] == count):
            return None
        first = (offsets[:-1] + lead)[rows]
        values = tokens.values
        return [values.take(pa.array(first + i)) for i in range(count)]

    parts = _map(split, lines.chunks)
    if any(part is None for part in parts):
        return None
    columns = [
        pa.chunked_array([part[i] for part in parts if part is not None], pa.string())
        for i in range(count)
    ]
    return pa.Table.from_arrays(_map(_infer_column, columns), names=labels)


def _read_lines(
    raw: bytes,
    start: int,
    end: int,
    line: int,
    labels: list[str],
    block: str,
    source: str | None,
) -> pa.Table:
    """The reference parser: line by line, quotes and comments allowed, precise errors."""
    rows: list[list[str]] = []
    position = start
    while position < end:
        stop = raw.find(b"\n", position, end)
        stop = end if stop < 0 else stop
        text = raw[position:stop].strip()
        if text and not text.startswith(b"#"):
            if text.startswith(b"_") or text == b"loop_" or text.startswith(b"loop_ "):
                raise StarError(
                    "a label or loop_ after the rows of a loop (one loop per block is supported)",
                    file=source,
                    block=block,
                    line=line,
                )
            values = _tokens(text, block, line, source)
            if len(values) != len(labels):
                raise StarError(
                    f"expected {len(labels)} values, found {len(values)}"
                    + (" (the file may be truncated)" if stop == end else ""),
                    file=source,
                    block=block,
                    row=len(rows) + 1,
                    line=line,
                )
            rows.append(values)
        position = stop + 1
        line += 1
    columns = [pa.array([row[i] for row in rows], pa.string()) for i in range(len(labels))]
    return pa.Table.from_arrays([_infer_column(c) for c in columns], names=labels)


def _guess_type(samples: list[str]) -> pa.DataType:
    if samples and all(_INT.fullmatch(s) for s in samples):
        return pa.int64()
    if samples and all(_FLOAT.fullmatch(s) for s in samples):
        return pa.float64()
    return pa.string()


def _infer_column(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Cast a string column to int64 or float64 when every value allows it."""
    size = len(column)
    if size == 0:
        return column
    picks = sorted({0, size // 4, size // 2, (3 * size) // 4, size - 1})
    samples = [str(column[i].as_py()) for i in picks]
    guess = _guess_type(samples)
    candidates = [pa.int64(), pa.float64()] if guess == pa.int64() else [pa.float64()]
    if guess == pa.string():
        return column
    for target in candidates:
        try:
            return column.cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    return column


def _map(function: Callable[[_T], _R], items: list[_T]) -> list[_R]:
    """Apply ``function`` to ``items`` on a few threads (Arrow releases the GIL)."""
    workers = min(len(items), os.cpu_count() or 1)
    if workers <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(function, items))
