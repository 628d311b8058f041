"""EM sets to RELION STAR files: particles and micrographs (with their CTFs).

The inverse of :mod:`cryolab.em.relion` (see its docstring for the rules). Import these from
:mod:`cryolab.em.relion`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from cryolab.core.sets import UID
from cryolab.em.objects import EMSet, SetOfCTFs
from cryolab.em.relion import (
    COLUMNS,
    OPTICS_FIELDS,
    RELION30_PIXEL,
    VERSION_COMMENT,
    Version,
)
from cryolab.em.star import StarError, write_star

Unmapped = Literal["write", "drop"]


def particles_to_star(
    particles: EMSet,
    path: str | os.PathLike[str],
    *,
    version: Version = "3.1",
    write_uids: bool = False,
    unmapped: Unmapped = "write",
    aligned: bool = False,
) -> Path:
    """Write particles as a RELION STAR file.

    Parameters
    ----------
    particles
        The set (a :class:`~cryolab.em.objects.SetOfParticles` or any set with its columns).
    path
        The STAR file to write.
    version
        ``"3.1"``, ``"4"`` or ``"5"``: ``data_optics`` + ``data_particles``, shifts in Å (the
        optics table from the property ``optics_groups``, else from ``acquisition`` and
        ``sampling_rate``). ``"3.0"``: one table ``data_images`` with the optics labels on every
        row and ``rlnOriginX/Y`` in pixels.
    write_uids
        Also write the uids (as ``cryolab.uid``, read back as the uids).
    unmapped
        Columns without a RELION label: ``"write"`` them as ``cryolab.<column>`` (RELION keeps
        unknown labels), or ``"drop"`` them.
    aligned
        Pad the columns like RELION does (slower).
    """
    return _write(particles, path, "particles", version, write_uids, unmapped, aligned, None)


def micrographs_to_star(
    micrographs: EMSet,
    path: str | os.PathLike[str],
    *,
    ctfs: SetOfCTFs | None = None,
    version: Version = "3.1",
    write_uids: bool = False,
    unmapped: Unmapped = "write",
    aligned: bool = False,
) -> Path:
    """Write micrographs (and, joined on ``micrograph_uid``, their CTFs) as a RELION STAR file.

    The layout is ``data_optics`` + ``data_micrographs`` (``rlnMicrographPixelSize``), or one
    table for ``version="3.0"``. Other parameters as :func:`particles_to_star`.
    """
    return _write(micrographs, path, "micrographs", version, write_uids, unmapped, aligned, ctfs)


def _write(
    items: EMSet,
    path: str | os.PathLike[str],
    kind: Literal["particles", "micrographs"],
    version: Version,
    write_uids: bool,
    unmapped: Unmapped,
    aligned: bool,
    ctfs: SetOfCTFs | None,
) -> Path:
    if version not in VERSION_COMMENT:
        raise StarError(f"unknown RELION version {version!r}; use one of {list(VERSION_COMMENT)}")
    table = items.to_arrow()
    if ctfs is not None:
        table = _join_ctfs(table, ctfs)
    pixel_label = "rlnImagePixelSize" if kind == "particles" else "rlnMicrographPixelSize"
    groups = _groups(items, table, str(path))
    digits = int(items.properties.get("relion.image_index_digits", 6))
    numbers = _group_positions(table, groups, str(path))
    if version == "3.0":
        rates = np.array([g.get("sampling_rate") or np.nan for g in groups], dtype=np.float64)
        rows = export_columns(
            table,
            kind=kind,
            write_uids=write_uids,
            unmapped=unmapped,
            pixel_size=rates[numbers] if rates.size else None,
            path=str(path),
            digits=digits,
        )
        rows.update(_relion30_optics(groups, numbers))
        blocks: dict[str, Any] = {"images" if kind == "particles" else "micrographs": rows}
    else:
        rows = export_columns(
            table,
            kind=kind,
            write_uids=write_uids,
            unmapped=unmapped,
            path=str(path),
            digits=digits,
        )
        if "rlnOpticsGroup" not in rows:
            rows["rlnOpticsGroup"] = pa.array(np.ones(table.num_rows, np.int64))
        labels = items.properties.get("relion.optics_labels") or []
        blocks = {"optics": _optics_table(groups, labels, pixel_label), kind: rows}
    tables = {
        name: pa.table(content) if isinstance(content, dict) else content
        for name, content in blocks.items()
    }
    return write_star(path, tables, version=VERSION_COMMENT[version], aligned=aligned)


def export_columns(
    table: pa.Table,
    *,
    kind: Literal["particles", "micrographs", "coordinates"] = "particles",
    write_uids: bool = False,
    unmapped: Unmapped = "write",
    pixel_size: NDArray[np.float64] | None = None,
    path: str | None = None,
    digits: int = 6,
) -> dict[str, pa.Array | pa.ChunkedArray]:
    """RELION label to column, in the set's column order (the inverse of ``import_columns``).

    ``pixel_size`` (per row) writes shifts as RELION 3.0's ``rlnOriginX/Y`` in pixels;
    ``digits`` pads image indices (``000012@stack.mrcs``).
    """
    names = table.column_names
    out: dict[str, pa.Array | pa.ChunkedArray] = {}

    def put(label: str, values: pa.Array | pa.ChunkedArray, column: str) -> None:
        if label in out:
            raise StarError(
                f"two columns would be written as _{label} (the second is {column!r}); "
                "drop one of them",
                file=path,
            )
        out[label] = values

    micrograph_files = kind == "micrographs"
    for name in names:
        column = table.column(name)
        if name == UID:
            if write_uids:
                put("cryolab.uid", column, name)
        elif name == "image.path" and micrograph_files:
            if "micrograph.name" not in names:
                put("rlnMicrographName", column, name)
            elif not _same_text(column, table.column("micrograph.name")):
                put("cryolab.image.path", column, name)
        elif name == "image.path":
            index = table.column("image.index") if "image.index" in names else None
            put("rlnImageName", _image_names(column, index, digits), name)
        elif name == "image.index" and ("image.path" in names and not micrograph_files):
            continue
        elif name == "micrograph.name":
            put("rlnMicrographName", column, name)
        elif name == "micrograph_uid" and "micrograph.name" in names:
            continue  # derived from the name on import
        elif name in ("transform.shift_x", "transform.shift_y") and pixel_size is not None:
            label = "rlnOriginX" if name.endswith("x") else "rlnOriginY"
            put(label, pa.array(_to_pixels(column, pixel_size, name, path)), name)
        elif name == "optics_group" and pixel_size is not None:
            continue  # RELION 3.0: the optics labels are written on every row instead
        elif name in COLUMNS:
            put(COLUMNS[name], column, name)
        elif name.startswith("relion."):
            put(name[len("relion.") :], column, name)
        elif unmapped == "write":
            put("cryolab." + name, column, name)
    return out


def _same_text(a: pa.ChunkedArray, b: pa.ChunkedArray) -> bool:
    return bool(a.cast(pa.string()).equals(b.cast(pa.string())))


def _image_names(path: pa.ChunkedArray, index: pa.ChunkedArray | None, digits: int = 6) -> pa.Array:
    """``000012@stack.mrcs`` (index padded to ``digits``); just the path without an index."""
    text = path.cast(pa.string()).combine_chunks()
    if index is None:
        return text
    numbers = pc.utf8_lpad(index.cast(pa.string()).combine_chunks(), digits, "0")
    joined = pc.binary_join_element_wise(numbers, text, "@")
    if index.null_count:
        joined = pc.if_else(pc.is_null(index.combine_chunks()), text, joined)
    result: pa.Array = joined
    return result


def _to_pixels(
    shifts: pa.ChunkedArray, pixel_size: NDArray[np.float64], name: str, path: str | None
) -> NDArray[np.float64]:
    """Å to pixels, choosing among neighbouring floats the one that reads back exactly."""
    if np.isnan(pixel_size).any():
        raise StarError(
            "RELION 3.0 shifts are in pixels but the pixel size is unknown (no sampling_rate)",
            file=path,
            column=name,
        )
    angstrom = shifts.to_numpy().astype(np.float64)
    pixels = angstrom / pixel_size
    for direction in (np.inf, -np.inf):
        wrong = pixels * pixel_size != angstrom
        if not wrong.any():
            break
        nudged = np.nextafter(pixels, direction)
        better = wrong & (nudged * pixel_size == angstrom)
        pixels = np.where(better, nudged, pixels)
    result: NDArray[np.float64] = pixels
    return result


def _groups(items: EMSet, table: pa.Table, path: str) -> list[dict[str, Any]]:
    """The optics groups of a set: ``optics_groups``, else one from the acquisition."""
    groups = items.properties.get("optics_groups")
    if groups:
        return [dict(g) for g in groups]
    acquisition = dict(items.properties.get("acquisition") or {})
    rate = items.properties.get("sampling_rate") or acquisition.get("sampling_rate")
    if not acquisition and rate is None:
        raise StarError(
            "the set has no optics_groups, acquisition or sampling_rate property; RELION needs "
            "at least the pixel size",
            file=path,
        )
    acquisition.update(sampling_rate=rate, name="opticsGroup1", number=1)
    return [acquisition]


def _group_positions(table: pa.Table, groups: list[dict[str, Any]], path: str) -> NDArray[Any]:
    """Each row's position in ``groups`` (0-based), from its ``optics_group`` number."""
    numbers = [g.get("number") or i for i, g in enumerate(groups, 1)]
    if "optics_group" not in table.column_names:
        if len(groups) > 1:
            raise StarError(
                f"{len(groups)} optics groups but no optics_group column says whose", file=path
            )
        return np.zeros(table.num_rows, np.int64)
    rows = table.column("optics_group").to_numpy()
    lookup = {number: position for position, number in enumerate(numbers)}
    positions = np.array([lookup.get(int(n), -1) for n in np.unique(rows)], dtype=np.int64)
    result: NDArray[Any] = positions[np.searchsorted(np.unique(rows), rows)]
    if (result < 0).any():
        missing = sorted({int(n) for n in np.unique(rows) if int(n) not in lookup})
        raise StarError(f"optics_group values {missing} are not in optics_groups", file=path)
    return result


def _optics_table(groups: list[dict[str, Any]], order: list[str], pixel_label: str) -> pa.Table:
    rows = []
    for position, group in enumerate(groups, 1):
        number = group.get("number") or position
        row: dict[str, Any] = {
            "rlnOpticsGroup": number,
            "rlnOpticsGroupName": group.get("name") or f"opticsGroup{number}",
        }
        for label, field in OPTICS_FIELDS.items():
            if group.get(field) is not None:
                row[label] = group[field]
        if group.get("sampling_rate") is not None:
            row[pixel_label] = group["sampling_rate"]
        for key, value in (group.get("extra") or {}).items():
            if key not in RELION30_PIXEL:
                row[key] = value
        rows.append(row)
    labels = [label for label in order if any(label in row for row in rows)]
    labels += [label for row in rows for label in row if label not in labels]
    labels = list(dict.fromkeys(labels))
    return pa.table({label: _values([row.get(label) for row in rows]) for label in labels})


def _values(values: list[Any]) -> pa.Array:
    """An Arrow array of Python values; ints and floats mixed become floats."""
    if any(isinstance(v, float) for v in values) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
    ):
        return pa.array([float(v) for v in values], pa.float64())
    return pa.array(values)


def _relion30_optics(groups: list[dict[str, Any]], positions: NDArray[Any]) -> dict[str, pa.Array]:
    """RELION 3.0's per-row optics labels, from each row's optics group."""
    if not groups:
        return {}
    per_group: dict[str, list[Any]] = {}
    for label, field in OPTICS_FIELDS.items():
        per_group[label] = [g.get(field) for g in groups]
    magnification = [g.get("magnification") or 10000.0 for g in groups]
    detector = [
        (g.get("extra") or {}).get("rlnDetectorPixelSize")
        or (g.get("sampling_rate") or 0) * m / 1e4
        for g, m in zip(groups, magnification, strict=True)
    ]
    per_group["rlnMagnification"] = magnification
    per_group["rlnDetectorPixelSize"] = detector
    out = {}
    for label, values in per_group.items():
        if all(v is not None for v in values):
            out[label] = _values(values).take(pa.array(positions))
    return out


def _join_ctfs(table: pa.Table, ctfs: SetOfCTFs) -> pa.Table:
    """Add the CTF columns to the micrographs whose uid is their ``micrograph_uid``."""
    other = ctfs.to_arrow()
    position = pc.index_in(table.column(UID), value_set=other.column("micrograph_uid"))
    for name in other.column_names:
        if name in (UID, "micrograph_uid") or name in table.column_names:
            continue
        table = table.append_column(name, other.column(name).take(position))
    return table
