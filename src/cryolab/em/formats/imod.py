"""IMOD tilt-series alignment files: ``.xf`` transforms and ``.tlt`` tilt angles.

An ``.xf`` file has one line per image of the stack, ``A11 A12 A21 A22 DX DY``: the image is
mapped by ``x' = A11 x + A12 y + DX``, ``y' = A21 x + A22 y + DY`` (pixels, about the image
centre). IMOD writes them as ``4f12.7, 2f12.3``.

A ``.tlt`` file (and ``.rawtlt``, ``.xtilt``) has one angle in degrees per line.

The writers use IMOD's layout whenever it holds the values exactly (as it does for values read
from IMOD files, so those are written back byte for byte) and the shortest exact text
otherwise; IMOD reads both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from cryolab.core.sets import Set
from cryolab.em.formats import FormatError
from cryolab.em.formats._text import number, read_lines, short

__all__ = ["XF_COLUMNS", "read_tlt", "read_xf", "write_tlt", "write_xf", "xf_matrices"]

XF_COLUMNS = ("xf.a11", "xf.a12", "xf.a21", "xf.a22", "xf.dx", "xf.dy")
"""Columns of the set :func:`read_xf` returns, in file order."""


def read_xf(path: str | Path) -> Set:
    """Read an IMOD ``.xf`` file: one row per image, columns :data:`XF_COLUMNS`.

    Raises
    ------
    FormatError
        A line does not have 6 numbers (the message names the line and the value).
    """
    lines, _ = read_lines(path)
    rows: list[list[float]] = []
    for number_line, line in enumerate(lines, start=1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) != len(XF_COLUMNS):
            raise FormatError(
                path,
                f"an .xf line has 6 values (A11 A12 A21 A22 DX DY); this one has {len(tokens)}",
                line=number_line,
            )
        rows.append(
            [
                number(t, path, line=number_line, field=name)
                for t, name in zip(tokens, XF_COLUMNS, strict=True)
            ]
        )
    data = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(XF_COLUMNS))
    return Set({name: pa.array(data[:, i]) for i, name in enumerate(XF_COLUMNS)})


def xf_matrices(transforms: Set) -> NDArray[np.float64]:
    """The transforms of a set read by :func:`read_xf` as an ``(n, 2, 3)`` array."""
    data = _matrix(None, transforms.to_arrow(), XF_COLUMNS)
    return data[:, [0, 1, 4, 2, 3, 5]].reshape(-1, 2, 3)


def write_xf(transforms: Set | NDArray[Any], path: str | Path) -> Path:
    """Write an ``.xf`` file from a set with :data:`XF_COLUMNS` or an ``(n, 6)`` array.

    Raises
    ------
    FormatError
        A column is missing or holds a missing value, or the array is not ``(n, 6)``.
    """
    path = Path(path)
    if isinstance(transforms, Set):
        data = _matrix(path, transforms.to_arrow(), XF_COLUMNS)
    else:
        data = np.asarray(transforms, dtype=np.float64)
        if data.ndim != 2 or data.shape[1] != len(XF_COLUMNS):
            raise FormatError(path, f"an .xf file needs (n, 6) values, not {data.shape}")
    with path.open("w") as stream:
        for row in data:
            stream.write(
                "".join(_imod(v, 7) for v in row[:4]) + "".join(_imod(v, 3) for v in row[4:]) + "\n"
            )
    return path


def read_tlt(path: str | Path) -> NDArray[np.float64]:
    """Read a ``.tlt``, ``.rawtlt`` or ``.xtilt`` file: the angles in degrees, in file order.

    Raises
    ------
    FormatError
        A line is not one number.
    """
    lines, _ = read_lines(path)
    angles: list[float] = []
    for number_line, line in enumerate(lines, start=1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) != 1:
            raise FormatError(
                path,
                f"a tilt angle line has one value; this one has {len(tokens)}",
                line=number_line,
            )
        angles.append(number(tokens[0], path, line=number_line, field="angle"))
    return np.asarray(angles, dtype=np.float64)


def write_tlt(angles: Any, path: str | Path) -> Path:
    """Write tilt angles (degrees), one per line, as IMOD does (``f7.2``) when exact."""
    path = Path(path)
    values = np.asarray(angles, dtype=np.float64).reshape(-1)
    with path.open("w") as stream:
        for value in values:
            stream.write(_imod(value, 2, width=7) + "\n")
    return path


def _imod(value: float, decimals: int, *, width: int = 12) -> str:
    """IMOD's fixed layout when it holds ``value`` exactly, else a space and the exact text."""
    text = f"{float(value):{width}.{decimals}f}"
    if float(text) == float(value) and len(text) == width:
        return text
    return " " + short(value)


def _matrix(path: Path | None, table: pa.Table, columns: tuple[str, ...]) -> NDArray[np.float64]:
    out = []
    for column in columns:
        if column not in table.column_names:
            raise FormatError(path, f"the set has no column {column!r}", field=column)
        chunked = table.column(column)
        if chunked.null_count:
            first = int(np.flatnonzero(chunked.is_null().to_numpy(zero_copy_only=False))[0])
            raise FormatError(path, "the file cannot hold a missing value", field=column, row=first)
        out.append(np.asarray(chunked.to_numpy(), dtype=np.float64))
    return np.stack(out, axis=1) if out else np.zeros((0, 0))
