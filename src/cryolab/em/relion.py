"""RELION STAR files to and from EM sets.

The names users call are all here (add, never rename): :func:`star_to_particles`,
``particles_to_star``, ``star_to_micrographs``, ``micrographs_to_star``, ``star_to_ctfs``,
``star_to_coordinates``, ``read_postprocess_fsc``, ``read_model_star`` and
:func:`micrograph_uid`. This module holds the label map and the particle import; the others
live in ``relion_export``, ``relion_micrographs`` and ``relion_results`` and load on first use.

Layouts: RELION 3.0 (one table; ``rlnOriginX/Y`` in pixels; the pixel size from
``rlnDetectorPixelSize`` x 10000 / ``rlnMagnification``) and RELION 3.1, 4 and 5 (``data_optics``
plus ``data_particles`` or ``data_micrographs``; ``rlnOriginX/YAngst`` in Å). The label to column
map is in ``docs/formats.md``. Rules that make a round trip lossless:

- every label without a column of its own is carried as ``relion.<label>`` (for example
  ``relion.rlnRandomSubset``) and written back under its label;
- the optics table becomes the set property ``optics_groups`` (one dict per group: the
  :class:`~cryolab.em.objects.Acquisition` fields, ``name``, ``number`` and the other labels in
  ``extra``); RELION 3.0's per-particle optics columns become groups the same way;
- a set column with no RELION label is written as ``cryolab.<column>`` (RELION keeps unknown
  labels) and read back under its name; ``uid`` only when asked (``write_uids=True``).

uids: an import is a run with a seed, so rows get random uids drawn from ``seed``; only a
``cryolab.uid`` label (written with ``write_uids=True``) is read back as the uids. A micrograph's
uid, and a particle's ``micrograph_uid``, is :func:`micrograph_uid` of the micrograph name (a
63-bit hash), so particles and micrographs imported separately still match.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from importlib import import_module
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from cryolab.core.errors import SetError
from cryolab.core.sets import UID, as_table
from cryolab.em.objects import EMSet, SetOfParticles
from cryolab.em.star import StarError, block, column_as, read_star, star_source

Source = str | os.PathLike[str] | Mapping[str, Any]
Version = Literal["3.0", "3.1", "4", "5"]

# RELION label -> set column, for labels whose value is stored unchanged (same unit).
LABELS: dict[str, str] = {
    "rlnCoordinateX": "coordinate.x",
    "rlnCoordinateY": "coordinate.y",
    "rlnDefocusU": "ctf.defocus_u",
    "rlnDefocusV": "ctf.defocus_v",
    "rlnDefocusAngle": "ctf.defocus_angle",
    "rlnPhaseShift": "ctf.phase_shift",
    "rlnCtfMaxResolution": "ctf.resolution",
    "rlnCtfFigureOfMerit": "ctf.score",
    "rlnAngleRot": "transform.rot",
    "rlnAngleTilt": "transform.tilt",
    "rlnAnglePsi": "transform.psi",
    "rlnOriginXAngst": "transform.shift_x",
    "rlnOriginYAngst": "transform.shift_y",
    "rlnAutopickFigureOfMerit": "coordinate.score",
    "rlnClassNumber": "class_id",
    "rlnOpticsGroup": "optics_group",
}
INTEGER_COLUMNS = frozenset({"class_id", "optics_group"})
COLUMNS = {column: label for label, column in LABELS.items()}
# Optics labels that are Acquisition fields (the pixel size label depends on the table).
OPTICS_FIELDS = {
    "rlnVoltage": "voltage",
    "rlnSphericalAberration": "spherical_aberration",
    "rlnAmplitudeContrast": "amplitude_contrast",
}
RELION30_OPTICS = ("rlnVoltage", "rlnSphericalAberration", "rlnAmplitudeContrast")
RELION30_PIXEL = ("rlnMagnification", "rlnDetectorPixelSize")
VERSION_COMMENT = {"3.0": None, "3.1": 30001, "4": 30001, "5": 50001}


def micrograph_uid(names: Any) -> NDArray[np.uint64]:
    """Stable uids of micrographs from their names: BLAKE2b-64 of the UTF-8 name, top bit cleared.

    The same name always gives the same uid (0 is replaced by 1), in any process.
    """
    array = (
        names if isinstance(names, (pa.Array, pa.ChunkedArray)) else pa.array(names, pa.string())
    )
    encoded = pc.dictionary_encode(array)
    chunks = encoded.chunks if isinstance(encoded, pa.ChunkedArray) else [encoded]
    parts = []
    for chunk in chunks:
        hashes = np.array(
            [_hash63(name) for name in chunk.dictionary.to_pylist()] or [0], dtype=np.uint64
        )
        parts.append(hashes[chunk.indices.to_numpy(zero_copy_only=False)])
    return np.concatenate(parts) if parts else np.zeros(0, np.uint64)


def _hash63(name: str | None) -> int:
    digest = hashlib.blake2b((name or "").encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1 or 1


# -- reading ----------------------------------------------------------------------------------
def _blocks(source: Source) -> tuple[dict[str, Any], str | None]:
    if isinstance(source, Mapping):
        return {
            name: content if isinstance(content, (pa.Table, Mapping)) else _from_pandas(content)
            for name, content in source.items()
        }, None
    return dict(read_star(source)), str(source)


def _from_pandas(frame: Any) -> pa.Table:
    return pa.Table.from_pandas(frame, preserve_index=False)


def _data_table(blocks: Mapping[str, Any], names: tuple[str, ...], file: str | None) -> pa.Table:
    """The main table: one of ``names``, else the only table of a single-table file."""
    if "optics" in blocks or any(n in blocks for n in names):
        table = block(blocks, names, file)
    else:
        tables = [content for content in blocks.values() if isinstance(content, pa.Table)]
        # with no single table, block() raises naming the blocks found
        table = tables[0] if len(tables) == 1 else block(blocks, names, file)
    if not isinstance(table, pa.Table):
        raise StarError("expected a loop_ table, found key-value pairs", file=file)
    return table


def _image_names(table: pa.Table, label: str) -> dict[str, Any]:
    """``index@path`` -> ``image.path`` (dictionary-encoded) and ``image.index`` (1-based).

    Rows without ``@`` get a null index (written back without one); without any ``@`` there
    is no ``image.index`` column. ``digits``: how the indices were written (6: zero-padded
    like RELION; 0: not padded), to write them back the same way.
    """
    names = table.column(label)
    if not pa.types.is_string(names.type):
        names = names.cast(pa.string())
    parts = pc.split_pattern(names.combine_chunks(), "@", max_splits=1)
    offsets = parts.offsets.to_numpy()
    values = parts.values
    path = values.take(pa.array(offsets[1:] - 1))
    has_index = (offsets[1:] - offsets[:-1]) == 2
    out: dict[str, Any] = {"image.path": pc.dictionary_encode(path)}
    if has_index.any():
        index_text = values.take(pa.array(offsets[:-1]))
        index_text = pc.if_else(pa.array(has_index), index_text, pa.nulls(len(path), pa.string()))
        try:
            out["image.index"] = index_text.cast(pa.int64())
            padded = pc.any(pc.starts_with(index_text, "0")).as_py()
            out["digits"] = pc.min(pc.utf8_length(index_text)).as_py() if padded else 0
        except pa.ArrowInvalid:
            text = index_text.to_pylist()
            row = next(i for i, t in enumerate(text) if t is not None and not t.strip().isdigit())
            file, name = star_source(table)
            raise StarError(
                f"{names[row].as_py()!r} is not index@path",
                file=file,
                block=name,
                column=label,
                row=row + 1,
            ) from None
    return out


def import_columns(
    table: pa.Table,
    pixel_size: NDArray[np.float64] | None = None,
    properties: dict[str, Any] | None = None,
) -> dict[str, pa.Array | pa.ChunkedArray]:
    """Set columns from a RELION table, in label order (see the module docstring).

    ``pixel_size`` (Å/px per row) converts RELION 3.0's ``rlnOriginX/Y`` (pixels) to Å.
    ``properties`` receives ``relion.image_index_digits`` when image indices are not written
    with 6 digits (``3@stack.mrcs``), so an export writes them the same way.
    """
    columns: dict[str, pa.Array | pa.ChunkedArray] = {}
    file, name = star_source(table)
    for label in table.column_names:
        if label == "rlnImageName":
            parts = _image_names(table, label)
            digits = parts.pop("digits", 6)
            if digits != 6 and properties is not None:
                properties["relion.image_index_digits"] = digits
            columns.update(parts)
        elif label == "rlnMicrographName":
            names = table.column(label).cast(pa.string()).combine_chunks()
            columns["micrograph.name"] = pc.dictionary_encode(names)
            columns["micrograph_uid"] = pa.array(micrograph_uid(names))
        elif label in LABELS:
            column = LABELS[label]
            dtype = pa.int64() if column in INTEGER_COLUMNS else pa.float64()
            columns[column] = column_as(table, label, dtype)
        elif label in ("rlnOriginX", "rlnOriginY") and pixel_size is not None:
            pixels = column_as(table, label, pa.float64()).to_numpy()
            columns["transform.shift_" + label[-1].lower()] = pa.array(pixels * pixel_size)
        elif label in ("rlnOriginX", "rlnOriginY") and "rlnOriginXAngst" not in table.column_names:
            raise StarError(
                "shifts in pixels but no pixel size (no rlnMagnification and "
                "rlnDetectorPixelSize); pass sampling_rate=",
                file=file,
                block=name,
                column=label,
            )
        elif label == "cryolab.uid":
            columns[UID] = column_as(table, label, pa.int64()).cast(pa.uint64())
        elif label.startswith("cryolab."):
            columns[label[len("cryolab.") :]] = table.column(label)
        else:
            columns["relion." + label] = table.column(label)
    return columns


def _optics_groups(optics: pa.Table, pixel_label: str) -> list[dict[str, Any]]:
    """One dict per row of an optics table (Acquisition fields, name, number, extra)."""
    groups: list[dict[str, Any]] = []
    for row in optics.to_pylist():
        group: dict[str, Any] = {
            "voltage": row.get("rlnVoltage"),
            "spherical_aberration": row.get("rlnSphericalAberration"),
            "amplitude_contrast": row.get("rlnAmplitudeContrast"),
            "sampling_rate": row.get(pixel_label),
            "dose_per_frame": None,
            "magnification": row.get("rlnMagnification"),
            "gain": None,
            "defects": None,
            "extra": {},
            "name": row.get("rlnOpticsGroupName"),
            "number": row.get("rlnOpticsGroup", len(groups) + 1),
        }
        known = {*OPTICS_FIELDS, pixel_label, "rlnMagnification", "rlnOpticsGroupName"}
        group["extra"] = {k: v for k, v in row.items() if k not in known | {"rlnOpticsGroup"}}
        groups.append(group)
    return groups


def _groups_from_rows(table: pa.Table) -> tuple[list[dict[str, Any]], NDArray[np.int64]]:
    """RELION 3.0: one optics group per distinct voltage, Cs, Q0 and pixel size."""
    labels = [label for label in (*RELION30_OPTICS, *RELION30_PIXEL) if label in table.column_names]
    if not labels:
        return [], np.zeros(table.num_rows, np.int64)
    values = np.stack([column_as(table, n, pa.float64()).to_numpy() for n in labels], axis=1)
    _, first, inverse = np.unique(values, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    groups: list[dict[str, Any]] = []
    for number, row_index in enumerate(first[order], 1):
        row = {label: table.column(label)[int(row_index)].as_py() for label in labels}
        group = _optics_groups(pa.Table.from_pylist([row]), "rlnImagePixelSize")[0]
        group.update(name=f"opticsGroup{number}", number=number)
        if "rlnDetectorPixelSize" in row and row.get("rlnMagnification"):
            group["sampling_rate"] = row["rlnDetectorPixelSize"] * 1e4 / row["rlnMagnification"]
        groups.append(group)
    return groups, rank[inverse.reshape(-1)].astype(np.int64) + 1


def _optics_properties(groups: list[dict[str, Any]], labels: list[str]) -> dict[str, Any]:
    if not groups:
        return {}
    first = {k: v for k, v in groups[0].items() if k not in ("name", "number")}
    properties: dict[str, Any] = {"acquisition": first, "optics_groups": groups}
    if labels:
        properties["relion.optics_labels"] = labels
    rates = {g["sampling_rate"] for g in groups}
    if len(rates) == 1 and None not in rates:
        properties["sampling_rate"] = rates.pop()
    return properties


def _guess_root(file: str | None, paths: pa.Array | pa.ChunkedArray | None) -> str | None:
    """The folder the first image path is relative to: the STAR file's folder or a parent."""
    if file is None or paths is None or len(paths) == 0:
        return None
    first = paths[0].as_py()
    if not first or Path(first).is_absolute():
        return None
    folder = Path(file).resolve().parent
    for candidate in (folder, *folder.parents):
        if (candidate / first).exists():
            return str(candidate)
    return None


def _make_set(
    kind: type[EMSet],
    columns: Mapping[str, Any],
    properties: dict[str, Any],
    seed: int | None,
    uids: NDArray[np.uint64] | None = None,
) -> EMSet:
    data = dict(columns)
    if uids is not None:
        data[UID] = pa.array(uids)
    if UID in data and len(np.unique(np.asarray(data[UID]))) != len(np.asarray(data[UID])):
        del data[UID]  # duplicated uids (a table concatenated with itself): draw new ones
    table = as_table(pa.table(data), np.random.default_rng(seed))
    try:
        return kind(table, properties=properties)
    except SetError as exc:
        raise StarError(f"cannot build the set: {exc}") from None


def star_to_particles(
    source: Source,
    *,
    root: str | os.PathLike[str] | None = None,
    seed: int | None = None,
    sampling_rate: float | None = None,
) -> SetOfParticles:
    """Read a RELION particles STAR file (3.0, or 3.1/4/5 with ``data_optics``).

    Parameters
    ----------
    source
        The STAR file, or its blocks (from :func:`~cryolab.em.star.read_star`, or the dict of
        DataFrames that ``starfile.read`` returns).
    root
        The folder image paths are relative to (RELION: the project folder), stored as the
        property ``root``. By default, the STAR file's folder or the nearest parent where the
        first image exists.
    seed
        Seed of the random uids (an import is reproducible with the same seed).
    sampling_rate
        Pixel size (Å/px) for a RELION 3.0 file that does not give it.
    """
    blocks, file = _blocks(source)
    table = _data_table(blocks, ("particles", "images", ""), file)
    properties: dict[str, Any] = {}
    pixel_size = None
    if "optics" in blocks:
        optics = block(blocks, "optics", file)
        groups = _optics_groups(optics, "rlnImagePixelSize")
        properties.update(_optics_properties(groups, optics.column_names))
        properties["relion.version"] = "3.1"
        columns = import_columns(table, None, properties)
    else:
        groups, numbers = _groups_from_rows(table)
        if sampling_rate is not None and not any(g.get("sampling_rate") for g in groups):
            groups = groups or [_group_from_rate(sampling_rate)]
            for group in groups:
                group["sampling_rate"] = sampling_rate
        if groups and all(g.get("sampling_rate") for g in groups):
            rates = np.array([g["sampling_rate"] for g in groups], dtype=np.float64)
            pixel_size = rates[numbers - 1] if numbers.size else rates[:0]
        kept = table.drop_columns(
            [c for c in (*RELION30_OPTICS, *RELION30_PIXEL) if c in table.column_names]
        )
        columns = import_columns(kept, pixel_size, properties)
        if groups:
            columns["optics_group"] = pa.array(numbers)
            properties.update(_optics_properties(groups, []))
        properties["relion.version"] = "3.0"
    if root is not None or (found := _guess_root(file, columns.get("image.path"))):
        properties["root"] = str(root if root is not None else found)
    result = _make_set(SetOfParticles, columns, properties, seed)
    assert isinstance(result, SetOfParticles)
    return result


def _group_from_rate(sampling_rate: float) -> dict[str, Any]:
    group = _optics_groups(pa.table({"rlnOpticsGroup": [1]}), "rlnImagePixelSize")[0]
    group.update(name="opticsGroup1", sampling_rate=sampling_rate)
    return group


_ELSEWHERE = {
    "particles_to_star": "cryolab.em.relion_export",
    "micrographs_to_star": "cryolab.em.relion_export",
    "star_to_micrographs": "cryolab.em.relion_micrographs",
    "star_to_ctfs": "cryolab.em.relion_micrographs",
    "star_to_coordinates": "cryolab.em.relion_micrographs",
    "read_postprocess_fsc": "cryolab.em.relion_results",
    "read_model_star": "cryolab.em.relion_results",
}

__all__ = [
    "LABELS",
    "import_columns",
    "micrograph_uid",
    "star_to_particles",
    *_ELSEWHERE,
]


def __getattr__(name: str) -> Any:
    """The converters of the sibling modules, loaded on first use."""
    if name in _ELSEWHERE:
        return getattr(import_module(_ELSEWHERE[name]), name)
    raise AttributeError(f"module 'cryolab.em.relion' has no attribute {name!r}")
