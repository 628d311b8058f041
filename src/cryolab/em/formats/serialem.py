"""SerialEM ``.mdoc`` autodoc files: global ``key = value`` lines and ``[Section = n]`` blocks.

A file starts with global ``key = value`` lines (``PixelSpacing``, ``Voltage``, ``ImageFile``
...), may hold title lines ``[T = text]``, then one section per image (``[ZValue = n]``), frame
set (``[FrameSet = n]``) or montage (``[MontSection = n]``), each with ``key = value`` lines.
Line ends may be LF or CRLF (files written on Windows); both are read, and written back as
read.

:func:`read_mdoc` gives the globals as a dict of texts and the sections as one table, one row
per section in file order, with columns ``section.type`` (``"ZValue"`` ...), ``section.index``
(the number ``n``) and one column per key, typed from its values:

- every value a whole number: int64; every value a number: float64;
- every value the same count (2 or more) of numbers: one column per number, ``<Key>.0``,
  ``<Key>.1``, ... (``StagePosition.0``, ``StagePosition.1``);
- otherwise text, as written.

A key missing from a section is null there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from cryolab.em.formats import FormatError
from cryolab.em.formats._text import read_lines

__all__ = ["Mdoc", "read_mdoc", "write_mdoc"]

_SECTION = re.compile(r"^\[\s*([A-Za-z][A-Za-z0-9_]*)\s*=\s*(.*?)\s*\]$")
_KEY_VALUE = re.compile(r"^([A-Za-z][A-Za-z0-9_.\[\]]*)\s*=\s?(.*)$")
_INT = re.compile(r"^[-+]?\d+$")
SECTION_TYPE = "section.type"
SECTION_INDEX = "section.index"


@dataclass
class Mdoc:
    """The content of an ``.mdoc`` file.

    Attributes
    ----------
    globals
        The global ``key = value`` lines, in file order, values as written.
    titles
        The texts of the ``[T = text]`` lines.
    sections
        One row per section (see the module documentation for the columns).
    newline
        The line end of the file (``"\\r\\n"`` or ``"\\n"``), used again when writing.
    """

    globals: dict[str, str]
    titles: list[str]
    sections: pa.Table
    newline: str = "\n"
    path: str | None = field(default=None)


def read_mdoc(path: str | Path) -> Mdoc:
    """Read a SerialEM ``.mdoc`` file (single images, tilt series, frame sets, montages).

    Raises
    ------
    FormatError
        A line is neither ``key = value``, a ``[Section = n]`` header nor blank, a section
        number is not a whole number, or a key appears twice with different values in one
        section (the message names the line and the key).
    """
    lines, newline = read_lines(path)
    global_values: dict[str, str] = {}
    titles: list[str] = []
    sections: list[tuple[str, int, dict[str, str]]] = []
    current: dict[str, str] = global_values
    for number_line, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        section = _SECTION.match(line)
        if section:
            name, value = section.group(1), section.group(2)
            if name == "T":
                titles.append(value)
                continue
            if not _INT.match(value):
                raise FormatError(
                    path,
                    f"the section number {value!r} is not a whole number",
                    line=number_line,
                    field=name,
                )
            current = {}
            sections.append((name, int(value), current))
            continue
        pair = _KEY_VALUE.match(line)
        if not pair:
            raise FormatError(
                path, f"expected 'key = value' or '[Section = n]', not {line!r}", line=number_line
            )
        key, value = pair.group(1), pair.group(2).strip()
        if key in current and current[key] != value:
            raise FormatError(
                path,
                f"the key appears twice with different values ({current[key]!r}, {value!r})",
                line=number_line,
                field=key,
                row=len(sections) - 1 if sections else None,
            )
        current[key] = value
    return Mdoc(
        globals=global_values,
        titles=titles,
        sections=_table(sections),
        newline=newline,
        path=str(path),
    )


def _table(sections: list[tuple[str, int, dict[str, str]]]) -> pa.Table:
    keys: list[str] = []
    for _, _, values in sections:
        keys.extend(k for k in values if k not in keys)
    columns: dict[str, pa.Array] = {
        SECTION_TYPE: pa.array([s[0] for s in sections], pa.string()),
        SECTION_INDEX: pa.array([s[1] for s in sections], pa.int64()),
    }
    for key in keys:
        texts = [values.get(key) for _, _, values in sections]
        columns.update(_typed(key, texts))
    return pa.table(columns)


def _typed(key: str, texts: list[str | None]) -> dict[str, pa.Array]:
    present = [t for t in texts if t is not None]
    split = [t.split() for t in present]
    counts = {len(parts) for parts in split}
    if len(counts) == 1 and counts != {0}:
        count = counts.pop()
        try:
            numbers = [[float(p) for p in parts] for parts in split]
        except ValueError:
            numbers = None
        if numbers is not None:
            whole = all(_INT.match(p) for parts in split for p in parts)
            kind = pa.int64() if whole else pa.float64()
            rows: list[list[float] | None] = []
            values = iter(numbers)
            for text in texts:
                rows.append(None if text is None else next(values))
            convert: Any = int if whole else float
            if count == 1:
                return {key: pa.array([None if r is None else convert(r[0]) for r in rows], kind)}
            return {
                f"{key}.{i}": pa.array([None if r is None else convert(r[i]) for r in rows], kind)
                for i in range(count)
            }
    return {key: pa.array(texts, pa.string())}


def write_mdoc(mdoc: Mdoc, path: str | Path, *, newline: str | None = None) -> Path:
    """Write an :class:`Mdoc` as a SerialEM ``.mdoc`` file.

    Globals come first, then the titles, then one block per section with its non-null keys
    in column order (split columns joined again). Numbers are written in their shortest
    exact form (``repr``: a float column keeps a decimal point, so it reads back as float).

    Parameters
    ----------
    mdoc
        What to write.
    path
        The file.
    newline
        Line end; by default the one of the file the :class:`Mdoc` was read from.
    """
    path = Path(path)
    table = mdoc.sections
    for required in (SECTION_TYPE, SECTION_INDEX):
        if required not in table.column_names:
            raise FormatError(path, f"the sections table has no column {required!r}")
    groups: list[tuple[str, list[str]]] = []
    for name in table.column_names:
        if name in (SECTION_TYPE, SECTION_INDEX):
            continue
        head, dot, tail = name.rpartition(".")
        if dot and tail.isdigit() and groups and groups[-1][0] == head:
            groups[-1][1].append(name)
        elif dot and tail == "0" and head not in table.column_names:
            groups.append((head, [name]))
        else:
            groups.append((name, [name]))
    data = {name: table.column(name).to_pylist() for name in table.column_names}
    out = [f"{key} = {value}" for key, value in mdoc.globals.items()]
    for title in mdoc.titles:
        out.extend(["", f"[T = {title}]"])
    for row in range(table.num_rows):
        out.extend(["", f"[{data[SECTION_TYPE][row]} = {data[SECTION_INDEX][row]}]"])
        for key, columns in groups:
            parts = [data[c][row] for c in columns]
            if any(p is None for p in parts):
                continue
            out.append(f"{key} = {' '.join(_text(p) for p in parts)}")
    end = newline if newline is not None else mdoc.newline
    with path.open("w", newline="") as stream:
        stream.write(end.join(out) + end)
    return path


def _text(value: Any) -> str:
    # repr keeps a float a float when read again ("1.0", not "1")
    return repr(value) if isinstance(value, float) else str(value)
