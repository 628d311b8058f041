"""Writing STAR files: the body of :func:`cryolab.em.star.write_star` (private).

Columns become text column by column on a few threads (Arrow casts floats to their shortest
round-trip text), and Arrow's CSV writer joins them with single spaces; values that need quotes
make the rows be joined with Arrow string kernels instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from cryolab.em._star_text import StarError, _map

_NEEDS_QUOTES = re.compile(r"""^$|\s|^['"_#]|^(data_|loop_|save_|global_|stop_)""")


_RESERVED = ("data_", "loop_", "save_", "global_", "stop_")


def write_blocks(
    path: str | os.PathLike[str],
    blocks: Any,
    *,
    version: int | None = None,
    aligned: bool = False,
) -> Path:
    """Write ``blocks`` to ``path``: see :func:`cryolab.em.star.write_star`."""
    if isinstance(blocks, pa.Table) or not isinstance(blocks, Mapping):
        blocks = {"": blocks}
    target = Path(path)
    temporary = target.with_name(target.name + ".part")
    try:
        with open(temporary, "wb") as handle:
            for name, content in blocks.items():
                if version is not None:
                    handle.write(f"\n# version {int(version)}\n".encode())
                handle.write(f"\ndata_{name}\n\n".encode())
                if isinstance(content, Mapping):
                    handle.write(_format_pairs(content, name, str(target)))
                else:
                    _write_loop(handle, _as_table(content), aligned, name, str(target))
                handle.write(b"\n")
        os.replace(temporary, target)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise StarError(f"cannot write the file ({exc.strerror or exc})", file=target) from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target


def _as_table(content: Any) -> pa.Table:
    if isinstance(content, pa.Table):
        return content
    if hasattr(content, "to_arrow"):  # a cryolab Set
        table: pa.Table = content.to_arrow()
        return table
    return pa.Table.from_pandas(content, preserve_index=False)


def _format_pairs(pairs: Mapping[str, Any], block: str, source: str) -> bytes:
    width = max((len(str(key)) for key in pairs), default=0) + 2
    lines = []
    for key, value in pairs.items():
        if isinstance(value, (bool, np.bool_)):
            text = str(int(value))
        elif isinstance(value, (float, np.floating)):
            text = repr(float(value))
        elif isinstance(value, (int, np.integer)):
            text = str(int(value))
        elif value is None:
            raise StarError("a missing value cannot be written", file=source, block=block)
        else:
            text = _quote(str(value))
        lines.append(f"_{key}".ljust(width) + text)
    return ("\n".join(lines) + "\n").encode()


def _quote(text: str) -> str:
    if not _NEEDS_QUOTES.search(text):
        return text
    return f"'{text}'" if '"' in text else f'"{text}"'


def _write_loop(handle: Any, table: pa.Table, aligned: bool, block: str, source: str) -> None:
    names = table.column_names
    handle.write(b"loop_\n")
    handle.write("".join(f"_{n} #{i}\n" for i, n in enumerate(names, 1)).encode())
    if table.num_rows == 0 or not names:
        return
    columns = _map(
        lambda name: _format_column(table.column(name), name, block, source, aligned), names
    )
    text = pa.Table.from_arrays(columns, names=[f"c{i}" for i in range(len(columns))])
    if not aligned:
        handle.flush()
        position = handle.tell()
        try:  # Arrow's CSV writer: fast, but refuses values with blanks or quotes
            pcsv.write_csv(
                text,
                handle,
                pcsv.WriteOptions(include_header=False, delimiter=" ", quoting_style="none"),
            )
            return
        except pa.ArrowInvalid:
            handle.seek(position)
            handle.truncate()
    step = 1 << 18  # rows per piece: bounded memory, one join per piece
    for offset in range(0, table.num_rows, step):
        piece = [c.slice(offset, step) for c in columns]
        rows = pc.binary_join_element_wise(*piece, " ")
        lines = pc.binary_join_element_wise(rows, pa.scalar("", pa.string()), "\n")
        for chunk in lines.chunks if isinstance(lines, pa.ChunkedArray) else [lines]:
            offsets = np.frombuffer(chunk.buffers()[1], np.int32)
            first, last = offsets[chunk.offset], offsets[chunk.offset + len(chunk)]
            handle.write(memoryview(chunk.buffers()[2])[int(first) : int(last)])


def _format_column(
    column: pa.ChunkedArray, name: str, block: str, source: str, aligned: bool
) -> pa.Array:
    """One column as STAR text values (a single string array)."""
    data = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    kind = data.type
    if pa.types.is_dictionary(kind):
        data = data.cast(kind.value_type)
        kind = data.type
    numeric = False
    if pa.types.is_floating(kind):
        text = _format_floats(data)
        numeric = True
    elif pa.types.is_boolean(kind) or pa.types.is_integer(kind):
        _no_nulls(data, name, block, source)
        text = (data.cast(pa.int8()) if pa.types.is_boolean(kind) else data).cast(pa.string())
        numeric = True
    else:
        _no_nulls(data, name, block, source)
        text = data.cast(pa.string())
        text = _quote_where_needed(text)
    if aligned:
        width = pc.max(pc.utf8_length(text)).as_py() or 0
        text = pc.utf8_lpad(text, width) if numeric else pc.utf8_rpad(text, width)
    result: pa.Array = text
    return result


def _format_floats(data: pa.Array) -> pa.Array:
    """Shortest round-trip text; whole numbers get ``.0`` so they read back as floats.

    Arrow writes a whole number below 1e10 without a decimal point (``300``) and larger ones
    with an exponent (``1e+10``); only the former need the suffix.
    """
    values = data.cast(pa.float64()).to_numpy(zero_copy_only=False)
    text = data.cast(pa.string())
    if data.null_count:
        text = pc.fill_null(text, "nan")
        values = np.nan_to_num(values, nan=0.5)  # nulls are written "nan", not whole numbers
    with np.errstate(invalid="ignore"):
        whole = (values == np.floor(values)) & (np.abs(values) < 1e10)
    if whole.any():
        mask = pa.array(whole)
        suffixed = pc.binary_join_element_wise(text.filter(mask), ".0", "")
        text = pc.replace_with_mask(text, mask, suffixed)
    return text


def _quote_where_needed(text: pa.Array) -> pa.Array:
    """Quote the values that would not read back as one value (blanks, empty, ``_x``...)."""
    if len(text) == 0:
        return text
    offsets = np.frombuffer(text.buffers()[1], np.int32)[text.offset : text.offset + len(text) + 1]
    buffer = text.buffers()[2]
    raw = b"" if buffer is None else buffer.to_pybytes()[offsets[0] : offsets[-1]]
    suspicious = np.any(offsets[1:] == offsets[:-1]) or any(
        c in raw for c in (b" ", b"\t", b"\n", b"\r", b"'", b'"')
    )
    if not suspicious:
        firsts = np.frombuffer(raw, np.uint8)[offsets[:-1] - offsets[0]]
        suspicious = bool(np.isin(firsts, np.frombuffer(b"_#dlsg", np.uint8)).any())
    if not suspicious:
        return text
    mask = pc.match_substring_regex(text, _NEEDS_QUOTES.pattern)
    if not pc.any(mask).as_py():
        return text
    double = pc.binary_join_element_wise('"', text, '"', "")
    single = pc.binary_join_element_wise("'", text, "'", "")
    quoted = pc.if_else(pc.match_substring(text, '"'), single, double)
    result: pa.Array = pc.if_else(mask, quoted, text)
    return result


def _no_nulls(data: pa.Array, name: str, block: str, source: str) -> None:
    if data.null_count:
        row = int(np.flatnonzero(data.is_null().to_numpy(zero_copy_only=False))[0]) + 1
        raise StarError(
            "a missing value cannot be written in STAR",
            file=source,
            block=block,
            column=name,
            row=row,
        )
