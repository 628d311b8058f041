"""EMAN particle coordinates: ``.box`` files and EMAN2 ``info/<micrograph>_info.json`` files.

A ``.box`` line is ``x y width height`` (tab or space separated), ``x y`` being the box corner
with the smallest coordinates (EMAN calls it the lower left corner); the centre is
``x + width / 2, y + height / 2``. Pixel rows are those of the MRC file (no y flip; EMAN2 flips
y for TIFF images only, which this module does not do). Values after the fourth are kept as
``eman.column_<n>`` columns (EMAN1 used a fifth for helix ends).

An EMAN2 info file is JSON; its ``"boxes"`` list holds ``[x, y, "type", score?, ...]`` per
particle with ``x y`` the box *centre*. Every other key of the file (``"ctf"``,
``"quality"``, ...) is kept as the set property ``eman``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from cryolab.core.sets import Set
from cryolab.em.formats import FormatError
from cryolab.em.formats._text import number, read_lines, short
from cryolab.em.objects import SetOfCoordinates

__all__ = ["read_box", "read_eman_json", "write_box", "write_eman_json"]


def read_box(path: str | Path, *, micrograph_uid: int | None = None) -> SetOfCoordinates:
    """Read an EMAN ``.box`` file into a set of coordinates (box centres, pixels).

    Parameters
    ----------
    path
        The ``.box`` file.
    micrograph_uid
        uid of the micrograph the boxes are on, written into a ``micrograph_uid`` column.

    Returns
    -------
    SetOfCoordinates
        ``coordinate.x``, ``coordinate.y`` (centres); the box size as the set property
        ``box_size`` when every box is the same square, else columns ``eman.box_width`` and
        ``eman.box_height``; ``eman.column_<n>`` for values past the fourth.

    Raises
    ------
    FormatError
        A line has fewer than 4 values, another count than the lines before, or a value that
        is not a number.
    """
    lines, _ = read_lines(path)
    rows: list[list[float]] = []
    width: int | None = None
    for number_line, line in enumerate(lines, start=1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) < 4:
            raise FormatError(
                path,
                f"a box line has x y width height; this one has {len(tokens)} values",
                line=number_line,
            )
        if width is not None and len(tokens) != width:
            raise FormatError(
                path,
                f"this line has {len(tokens)} values; the lines before have {width}",
                line=number_line,
            )
        width = len(tokens)
        names = ("x", "y", "width", "height")
        rows.append(
            [
                number(t, path, line=number_line, field=names[i] if i < 4 else f"column {i + 1}")
                for i, t in enumerate(tokens)
            ]
        )
    data = np.asarray(rows, dtype=np.float64).reshape(len(rows), width or 4)
    box_w, box_h = data[:, 2], data[:, 3]
    columns: dict[str, Any] = {
        "coordinate.x": data[:, 0] + box_w / 2,
        "coordinate.y": data[:, 1] + box_h / 2,
    }
    properties: dict[str, Any] = {}
    sizes = np.unique(np.concatenate([box_w, box_h]))
    if len(rows) and sizes.size == 1:
        properties["box_size"] = int(sizes[0]) if sizes[0] == int(sizes[0]) else float(sizes[0])
    else:
        columns["eman.box_width"] = box_w
        columns["eman.box_height"] = box_h
    for i in range(4, data.shape[1]):
        columns[f"eman.column_{i + 1}"] = data[:, i]
    if micrograph_uid is not None:
        columns["micrograph_uid"] = np.full(len(rows), micrograph_uid, dtype=np.uint64)
    return SetOfCoordinates({k: pa.array(v) for k, v in columns.items()}, properties=properties)


def write_box(coordinates: Set, path: str | Path, *, box_size: float | None = None) -> Path:
    """Write coordinates as an EMAN ``.box`` file (tab separated, corner = centre - size / 2).

    The box size is ``box_size``, else the set property ``box_size``, else the columns
    ``eman.box_width`` and ``eman.box_height``. Columns ``eman.column_<n>`` are written after
    the fourth value. Whole numbers are written without decimals.

    Raises
    ------
    FormatError
        No box size is known, or a value is missing.
    """
    path = Path(path)
    table = coordinates.to_arrow()
    rows = table.num_rows
    size = box_size if box_size is not None else coordinates.properties.get("box_size")
    if size is not None:
        box_w = box_h = np.full(rows, float(size))
    elif "eman.box_width" in table.column_names and "eman.box_height" in table.column_names:
        box_w = _numbers(path, table, "eman.box_width")
        box_h = _numbers(path, table, "eman.box_height")
    else:
        raise FormatError(
            path,
            "a .box file needs the box size: pass box_size=, or set the property box_size",
            field="box_size",
        )
    corner_x = _numbers(path, table, "coordinate.x") - box_w / 2
    corner_y = _numbers(path, table, "coordinate.y") - box_h / 2
    extra = sorted(
        (c for c in table.column_names if c.startswith("eman.column_")),
        key=lambda c: int(c.rsplit("_", 1)[1]) if c.rsplit("_", 1)[1].isdigit() else 1 << 30,
    )
    columns = [corner_x, corner_y, box_w, box_h, *(_numbers(path, table, c) for c in extra)]
    with path.open("w") as stream:
        for row in range(rows):
            stream.write("\t".join(short(float(c[row])) for c in columns) + "\n")
    return path


def read_eman_json(path: str | Path, *, micrograph_uid: int | None = None) -> SetOfCoordinates:
    """Read the boxes of an EMAN2 info file (``info/<micrograph>_info.json``).

    Returns
    -------
    SetOfCoordinates
        ``coordinate.x``, ``coordinate.y`` (box centres), ``eman.box_type`` (the third
        element, e.g. ``"manual"``), ``coordinate.score`` (the fourth when it is a number) and
        ``eman.box_extra`` (the further elements, as JSON text) when any box has them. The
        file's other keys are the set property ``eman``.

    Raises
    ------
    FormatError
        The file is not JSON, has no ``"boxes"`` list, or a box is not ``[x, y, ...]`` with
        numbers (the message names the box's row).
    """
    text = Path(path).read_text(encoding="utf-8")
    try:
        info = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormatError(path, f"not JSON: {exc.msg}", line=exc.lineno) from None
    if not isinstance(info, dict) or not isinstance(info.get("boxes", []), list):
        raise FormatError(path, 'an EMAN2 info file is a JSON object with a "boxes" list')
    boxes: list[Any] = info.get("boxes", [])
    xs: list[float] = []
    ys: list[float] = []
    kinds: list[str | None] = []
    scores: list[float | None] = []
    extras: list[str | None] = []
    for row, box in enumerate(boxes):
        if not isinstance(box, list) or len(box) < 2 or not all(_is_number(v) for v in box[:2]):
            raise FormatError(
                path, f"a box is [x, y, ...] with numbers, not {box!r}", field="boxes", row=row
            )
        xs.append(float(box[0]))
        ys.append(float(box[1]))
        rest = list(box[2:])
        kind = rest.pop(0) if rest and isinstance(rest[0], str) else None
        score = float(rest.pop(0)) if kind is not None and rest and _is_number(rest[0]) else None
        kinds.append(kind)
        scores.append(score)
        extras.append(json.dumps(rest) if rest else None)
    columns: dict[str, Any] = {
        "coordinate.x": pa.array(np.asarray(xs, dtype=np.float64)),
        "coordinate.y": pa.array(np.asarray(ys, dtype=np.float64)),
    }
    if any(k is not None for k in kinds):
        columns["eman.box_type"] = pa.array(kinds, pa.string())
    if any(s is not None for s in scores):
        columns["coordinate.score"] = pa.array(scores, pa.float64())
    if any(e is not None for e in extras):
        columns["eman.box_extra"] = pa.array(extras, pa.string())
    if micrograph_uid is not None:
        columns["micrograph_uid"] = pa.array(np.full(len(xs), micrograph_uid, dtype=np.uint64))
    others = {k: v for k, v in info.items() if k != "boxes"}
    return SetOfCoordinates(columns, properties={"eman": others} if others else {})


def write_eman_json(coordinates: Set, path: str | Path) -> Path:
    """Write coordinates as an EMAN2 info file: ``{"boxes": [[x, y, type, score?, ...]]}``.

    The set property ``eman`` (the other keys of a file read by :func:`read_eman_json`) is
    written too. Without an ``eman.box_type`` (nor ``eman.box_extra``) column, boxes are
    ``"manual"``.

    Raises
    ------
    FormatError
        A coordinate is missing.
    """
    path = Path(path)
    table = coordinates.to_arrow()
    xs = _numbers(path, table, "coordinate.x")
    ys = _numbers(path, table, "coordinate.y")
    names = table.column_names
    kinds = table.column("eman.box_type").to_pylist() if "eman.box_type" in names else None
    scores = table.column("coordinate.score").to_pylist() if "coordinate.score" in names else None
    extras = table.column("eman.box_extra").to_pylist() if "eman.box_extra" in names else None
    boxes: list[list[Any]] = []
    for row in range(table.num_rows):
        box: list[Any] = [_plain(xs[row]), _plain(ys[row])]
        kind = kinds[row] if kinds is not None else None if extras is not None else "manual"
        if kind is not None:
            box.append(kind)
        if scores is not None and scores[row] is not None:
            box.append(scores[row])
        if extras is not None and extras[row]:
            box.extend(json.loads(extras[row]))
        boxes.append(box)
    info = dict(coordinates.properties.get("eman") or {})
    info["boxes"] = boxes
    path.write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    return path


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _plain(value: float) -> int | float:
    return int(value) if float(value).is_integer() else float(value)


def _numbers(path: Path, table: pa.Table, column: str) -> NDArray[np.float64]:
    if column not in table.column_names:
        raise FormatError(path, f"the set has no column {column!r}", field=column)
    chunked = table.column(column)
    if chunked.null_count:
        first = int(np.flatnonzero(chunked.is_null().to_numpy(zero_copy_only=False))[0])
        raise FormatError(path, "the file cannot hold a missing value", field=column, row=first)
    return np.asarray(chunked.to_numpy(), dtype=np.float64)
