"""RELION micrographs, CTFs and coordinates as EM sets.

A micrograph's uid is :func:`~cryolab.em.relion.micrograph_uid` of its name, so micrographs,
their CTFs, the coordinates picked on them and the particles extracted from them match however
they were imported. Import these from :mod:`cryolab.em.relion`; the rules are in its docstring
and in ``docs/formats.md``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow as pa

from cryolab.core.sets import UID
from cryolab.em.objects import SetOfCoordinates, SetOfCTFs, SetOfMicrographs
from cryolab.em.relion import (
    RELION30_OPTICS,
    RELION30_PIXEL,
    Source,
    _blocks,
    _data_table,
    _groups_from_rows,
    _guess_root,
    _make_set,
    _optics_groups,
    _optics_properties,
    import_columns,
    micrograph_uid,
)
from cryolab.em.star import StarError, block, read_star


def star_to_micrographs(
    source: Source, *, root: str | os.PathLike[str] | None = None
) -> SetOfMicrographs:
    """Read a RELION micrographs STAR file (``data_optics`` + ``data_micrographs``, or 3.0).

    A micrograph's uid is :func:`micrograph_uid` of its name; ``image.path`` and
    ``micrograph.name`` both hold ``rlnMicrographName``. CTF labels, if any, become ``ctf.*``
    and ``relion.rlnCtf*`` columns (see :func:`star_to_ctfs` to split them off).
    """
    blocks, file = _blocks(source)
    table = _data_table(blocks, ("micrographs", ""), file)
    properties: dict[str, Any] = {}
    if "optics" in blocks:
        optics = block(blocks, "optics", file)
        groups = _optics_groups(optics, "rlnMicrographPixelSize")
        properties.update(_optics_properties(groups, optics.column_names))
        properties["relion.version"] = "3.1"
        columns = import_columns(table)
    else:
        groups, numbers = _groups_from_rows(table)
        kept = table.drop_columns(
            [c for c in (*RELION30_OPTICS, *RELION30_PIXEL) if c in table.column_names]
        )
        columns = import_columns(kept)
        if groups:
            columns["optics_group"] = pa.array(numbers)
            properties.update(_optics_properties(groups, []))
        properties["relion.version"] = "3.0"
    if "micrograph.name" not in columns:
        raise StarError("no rlnMicrographName column", file=file)
    columns = {"image.path": columns["micrograph.name"], **columns}
    uids = columns.pop("micrograph_uid").to_numpy(zero_copy_only=False)
    if root is not None or (found := _guess_root(file, columns["image.path"])):
        properties["root"] = str(root if root is not None else found)
    result = _make_set(SetOfMicrographs, columns, properties, None, uids=uids)
    assert isinstance(result, SetOfMicrographs)
    return result


def _is_ctf_column(name: str) -> bool:
    return name.startswith("ctf.") or name.startswith("relion.rlnCtf")


def star_to_ctfs(
    source: Source, *, root: str | os.PathLike[str] | None = None, seed: int | None = None
) -> tuple[SetOfCTFs, SetOfMicrographs]:
    """Read a RELION CTF STAR file (micrographs with CTF labels) as CTFs and micrographs.

    The CTF set has ``micrograph_uid`` (the micrographs' uids), the ``ctf.*`` columns and the
    other ``rlnCtf*`` labels as ``relion.*``; the micrographs keep everything else. Both get
    the optics properties.
    """
    micrographs = star_to_micrographs(source, root=root)
    table = micrographs.to_arrow()
    ctf_names = [c for c in table.column_names if _is_ctf_column(c)]
    if not ctf_names:
        raise StarError("no CTF labels (rlnDefocusU, ...) in the micrographs table")
    ctf_columns = {"micrograph_uid": table.column(UID), **{c: table.column(c) for c in ctf_names}}
    properties = {k: v for k, v in micrographs.properties.items() if k != "root"}
    ctfs = _make_set(SetOfCTFs, ctf_columns, properties, seed)
    rest = SetOfMicrographs(table.drop_columns(ctf_names), properties=micrographs.properties)
    assert isinstance(ctfs, SetOfCTFs)
    return ctfs, rest


def star_to_coordinates(
    path: str | os.PathLike[str],
    *,
    micrograph_name: str | None = None,
    root: str | os.PathLike[str] | None = None,
    seed: int | None = None,
) -> SetOfCoordinates:
    """Read RELION particle coordinates.

    Parameters
    ----------
    path
        A coordinate file (``rlnCoordinateX/Y`` per row, e.g. ``mic001_autopick.star``), or
        RELION 3.1+'s list of them (``autopick.star``/``coordinate_files.star``: a table with
        ``rlnMicrographName`` and ``rlnMicrographCoordinates``).
    micrograph_name
        For a single coordinate file without ``rlnMicrographName``: the micrograph it belongs
        to (default: the file name without ``.star``). ``micrograph_uid`` is
        :func:`~cryolab.em.relion.micrograph_uid` of it, which matches the micrographs' uids.
    root
        The folder the listed coordinate files are relative to (RELION: the project folder;
        default: the list's folder or the nearest parent where the first file exists).
    seed
        Seed of the random uids.
    """
    blocks = read_star(path)
    listing = next(
        (
            t
            for t in blocks.values()
            if isinstance(t, pa.Table) and "rlnMicrographCoordinates" in t.column_names
        ),
        None,
    )
    if listing is None:
        table = _coordinate_table(blocks, str(path))
        columns = _coordinate_columns(table, micrograph_name or Path(path).stem)
        return _coordinates_set(columns, seed)
    names = listing.column("rlnMicrographName").to_pylist()
    files = listing.column("rlnMicrographCoordinates").to_pylist()
    base = Path(root) if root is not None else _find_root(Path(path), files)
    pieces = []
    for name, file in zip(names, files, strict=True):
        target = Path(file) if Path(file).is_absolute() else base / file
        table = _coordinate_table(read_star(target), str(target))
        pieces.append(pa.table(_coordinate_columns(table, name)))
    merged = pa.concat_tables(pieces, promote_options="permissive") if pieces else pa.table({})
    return _coordinates_set({n: merged.column(n) for n in merged.column_names}, seed)


def _find_root(listing: Path, files: list[str]) -> Path:
    folder = listing.resolve().parent
    if files and not Path(files[0]).is_absolute():
        for candidate in (folder, *folder.parents):
            if (candidate / files[0]).exists():
                return candidate
    return folder


def _coordinate_table(blocks: dict[str, Any], file: str) -> pa.Table:
    for content in blocks.values():
        if isinstance(content, pa.Table) and "rlnCoordinateX" in content.column_names:
            return content
    raise StarError("no table with rlnCoordinateX and rlnCoordinateY", file=file)


def _coordinate_columns(table: pa.Table, micrograph: str) -> dict[str, Any]:
    columns = import_columns(table)
    if "micrograph.name" not in columns:
        names = pa.array([micrograph] * table.num_rows, pa.string())
        columns = {
            "micrograph.name": names.dictionary_encode(),
            "micrograph_uid": pa.array(micrograph_uid(names)),
            **columns,
        }
    return columns


def _coordinates_set(columns: dict[str, Any], seed: int | None) -> SetOfCoordinates:
    result = _make_set(SetOfCoordinates, columns, {}, seed)
    assert isinstance(result, SetOfCoordinates)
    return result
