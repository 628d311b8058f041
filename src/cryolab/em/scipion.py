"""Read Scipion set files (one sqlite file per set, the "flat" layout) as cryolab sets.

A Scipion set file holds three tables (``scipion-internals.md`` section 2.2):

- ``Properties`` (key, value): the set's own attributes as text, ``self`` being its class name
  (``SetOfParticles``), ``_samplingRate``, ``_acquisition._voltage``, ...;
- ``Classes`` (label_property, column_name, class_name): which ``cNN`` column holds which item
  attribute (``_ctfModel._defocusU`` in ``c05``, a ``Float``); ``self`` names the item class;
- ``Objects``: one row per item, ``id`` (the item's id within the set) and the ``cNN`` columns.

A set of classes keeps the members of class ``N`` in ``ClassNNN_Classes`` / ``ClassNNN_Objects``
of the same file: :func:`read_scipion_set` reads the classes, :func:`read_scipion_class_members`
the members (particles with ``class_id``).

Column mapping (cryolab conventions, :mod:`cryolab.em.objects`):

- ``_filename`` / ``_index`` -> ``image.path`` / ``image.index``; Scipion's index 0 means "the
  whole file" and becomes 1 (our index is 1-based like RELION's, stacks agree);
- ``_ctfModel._defocusU/_defocusV/_defocusAngle/_phaseShift/_resolution/_fitQuality`` (or the
  same without the prefix in a set of CTFs) -> ``ctf.defocus_u/defocus_v/defocus_angle/
  phase_shift/resolution/score`` (both in Å and degrees, EMX conventions);
- ``_x``/``_y`` of coordinates and ``_coordinate._x/_y`` of particles -> ``coordinate.x/y`` (px);
- ``_micId`` (or ``_coordinate._micId``) -> ``micrograph_uid``; ``_classId`` -> ``class_id``;
  ``_micName`` of micrographs and movies -> ``micrograph.name``;
- ``_halfMapFilenames`` of volumes -> ``volume.half1`` / ``volume.half2``;
- classes: ``_representative._filename/_index`` -> ``image.path/index``, the id -> ``class_id``,
  ``_size`` -> ``class.size``;
- ``_transform._matrix`` (a 4x4 matrix as JSON, shifts in pixels) -> ``transform.rot/tilt/psi/
  shift_x/shift_y`` (degrees, Å) through :mod:`cryolab.em.geometry` for the set's
  ``_alignment`` ``Projection`` or ``2D``; for other alignments (``3D``, ``None``) the 16
  matrix elements are kept as ``scipion._transform._matrix.mRC`` columns;
- every other attribute is kept as a ``scipion.<attribute>`` column, and so is the item id
  (``scipion.id``), the selection flag (``scipion.enabled``) and ``_micId`` (ids are not
  recoverable from uids). Per-item ``_samplingRate`` and ``_acquisition.*`` columns are dropped
  when they repeat the set's values (Scipion copies them into every item), kept otherwise.

Properties: ``_samplingRate`` -> ``sampling_rate``; ``_acquisition.*`` -> ``acquisition``
(:class:`~cryolab.em.objects.Acquisition` as a dict, ``_gainFile`` as its gain); the raw
Properties (class, size, stream state, ...) under ``scipion``; ``root`` (the Scipion project
folder) when image paths are relative to it.

**uids.** Scipion ids are small integers per set, kept across subsets. A uid is derived from
(``namespace``, kind, id) by a fixed hash, so reading two sets of one Scipion project gives
linked uids: particle ``_micId`` 7 and micrograph 7 meet in ``micrograph_uid``, a subset keeps
its parent's uids. Movies and micrographs share a kind (motion correction keeps the movie's id),
CTFs have their own uid and link to their micrograph (same id in Scipion) by
``micrograph_uid``. Give different ``namespace`` values to sets of unrelated Scipion projects
whose items must never be taken for the same.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from cryolab.core.sets import UID, Set, StreamState, set_type
from cryolab.em import geometry
from cryolab.em.formats import FormatError
from cryolab.em.objects import Acquisition

__all__ = [
    "read_scipion_class_members",
    "read_scipion_set",
    "scipion_uids",
]

PREFIX = "scipion."

# Scipion set class -> cryolab set type
SET_TYPES: dict[str, str] = {
    "SetOfMovies": "SetOfMovies",
    "SetOfMicrographs": "SetOfMicrographs",
    "SetOfCTF": "SetOfCTFs",
    "SetOfCoordinates": "SetOfCoordinates",
    "SetOfParticles": "SetOfParticles",
    "SetOfAverages": "SetOfParticles",
    "SetOfImages": "SetOfImages",
    "SetOfVolumes": "SetOfVolumes",
    "SetOfClasses2D": "SetOfClasses2D",
    "SetOfClasses3D": "SetOfClasses3D",
    "SetOfTiltSeries": "SetOfTiltSeries",
    "SetOfTomograms": "SetOfTomograms",
}
# Scipion item class -> cryolab set type, when the set class is unknown
ITEM_SET_TYPES: dict[str, str] = {
    "Movie": "SetOfMovies",
    "Micrograph": "SetOfMicrographs",
    "CTFModel": "SetOfCTFs",
    "Coordinate": "SetOfCoordinates",
    "Particle": "SetOfParticles",
    "Volume": "SetOfVolumes",
    "Class2D": "SetOfClasses2D",
    "Class3D": "SetOfClasses3D",
    "Tomogram": "SetOfTomograms",
}
# items that share ids in Scipion share a uid kind
_KINDS = {"Movie": "micrograph", "Micrograph": "micrograph"}

_CTF_COLUMNS = {
    "_defocusU": "ctf.defocus_u",
    "_defocusV": "ctf.defocus_v",
    "_defocusAngle": "ctf.defocus_angle",
    "_phaseShift": "ctf.phase_shift",
    "_resolution": "ctf.resolution",
    "_fitQuality": "ctf.score",
}
_ACQUISITION_KEYS = {
    "_magnification": "magnification",
    "_voltage": "voltage",
    "_sphericalAberration": "spherical_aberration",
    "_amplitudeContrast": "amplitude_contrast",
    "_dosePerFrame": "dose_per_frame",
}
_ACQUISITION_EXTRA = {"_doseInitial": "dose_initial", "opticsGroupInfo": "optics_group_info"}
_MATRIX = "_transform._matrix"


# -- public API ------------------------------------------------------------------------------
def read_scipion_set(
    path: str | os.PathLike[str], *, namespace: str = "", root: str | os.PathLike[str] | None = None
) -> Set:
    """Read a Scipion set sqlite file as a cryolab set of the matching EM type.

    Parameters
    ----------
    path
        The set file, e.g. ``Runs/000123_ProtRelionExtractParticles/particles.sqlite``.
    namespace
        Mixed into the derived uids (see the module help); keep the default for sets of one
        Scipion project so that their items link up.
    root
        The folder relative image paths start from (Scipion's project folder). By default the
        folder holding the ``Runs`` folder the file is in, else the file's folder.

    Returns
    -------
    Set
        A :class:`~cryolab.em.objects.SetOfParticles`, ``SetOfMicrographs``, ``SetOfCTFs``, ...
        (a plain :class:`~cryolab.core.sets.Set` for a set class cryolab does not model).

    Raises
    ------
    FormatError
        If the file is missing, not sqlite, or lacks the Scipion tables; the message names it.
    """
    file = Path(path)
    with _open(file) as connection:
        properties = _properties(connection, file)
        table = _read_table(connection, "", file)
    scipion_class = properties.get("self") or ""
    type_name = SET_TYPES.get(scipion_class) or ITEM_SET_TYPES.get(table.item_class, "Set")
    return _build(table, type_name, properties, file, namespace, root)


def read_scipion_class_members(
    path: str | os.PathLike[str], *, namespace: str = "", root: str | os.PathLike[str] | None = None
) -> Set:
    """Read the members of every class of a Scipion set of classes as one set.

    Members keep their Scipion ids (so their uids match the particles they came from); the
    column ``class_id`` says which class each belongs to (the class ids of
    :func:`read_scipion_set`). Parameters as for :func:`read_scipion_set`.
    """
    file = Path(path)
    parts = []
    with _open(file) as connection:
        properties = _properties(connection, file)
        classes = _read_table(connection, "", file)
        for class_id in classes.ids.tolist():
            prefix = f"Class{int(class_id):03d}_"
            if not _has_tables(connection, prefix):
                continue
            members = _read_table(connection, prefix, file)
            members.values["_classId"] = [int(class_id)] * len(members.ids)
            members.classes["_classId"] = "Integer"
            parts.append(members)
    if not parts:
        raise FormatError(file, "no class member tables (ClassNNN_Objects); not a set of classes")
    member_class = parts[0].item_class
    type_name = ITEM_SET_TYPES.get(member_class, "Set")
    sets = [_build(p, type_name, properties, file, namespace, root) for p in parts]
    merged = sets[0].union(*sets[1:]) if len(sets) > 1 else sets[0]
    merged.properties["scipion"] = {
        **merged.properties["scipion"],
        "class": None,
        "members_of": properties.get("self"),
    }
    return merged


def scipion_uids(ids: Sequence[int] | NDArray[Any], kind: str, namespace: str = "") -> NDArray[Any]:
    """The uids of Scipion items: a fixed hash of (namespace, kind, id), 63-bit, never 0.

    ``kind`` is ``"micrograph"`` for movies and micrographs, else the Scipion item class in
    lower case (``"particle"``, ``"coordinate"``, ``"ctfmodel"``, ``"class2d"``, ...).
    """
    digest = hashlib.blake2b(f"cryolab/scipion\0{namespace}\0{kind}".encode(), digest_size=8)
    key = np.uint64(int.from_bytes(digest.digest(), "little"))
    x = np.asarray(ids, dtype=np.int64).astype(np.uint64) + key
    # splitmix64 finaliser: a bijection of 64-bit words, vectorised (uint64 arrays wrap)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    x = x & np.uint64(0x7FFFFFFFFFFFFFFF)
    return np.where(x == 0, np.uint64(1), x).astype(np.uint64)


# -- reading the tables ----------------------------------------------------------------------
@dataclass
class _Table:
    """The items of one Objects table: ids and raw values by attribute."""

    item_class: str
    ids: NDArray[np.int64]
    enabled: list[Any]
    values: dict[str, list[Any]] = field(default_factory=dict)
    classes: dict[str, str] = field(default_factory=dict)  # attribute -> Scipion class name
    extra: dict[str, list[Any]] = field(default_factory=dict)  # label, comment


def _open(file: Path) -> sqlite3.Connection:
    if not file.is_file():
        raise FormatError(file, "no such Scipion set file")
    try:
        connection = sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True)
        connection.execute("SELECT name FROM sqlite_master LIMIT 1").fetchall()
    except sqlite3.DatabaseError as exc:
        raise FormatError(file, f"not a Scipion set file (sqlite): {exc}") from None
    return connection


def _has_tables(connection: sqlite3.Connection, prefix: str) -> bool:
    names = {r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    return {f"{prefix}Classes", f"{prefix}Objects"} <= names


def _properties(connection: sqlite3.Connection, file: Path) -> dict[str, str | None]:
    names = {r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    missing = [n for n in ("Properties", "Classes", "Objects") if n not in names]
    if missing:
        raise FormatError(
            file, f"not a Scipion set file: no table(s) {missing} (it has {sorted(names)})"
        )
    try:
        rows = connection.execute("SELECT key, value FROM Properties").fetchall()
    except sqlite3.DatabaseError as exc:
        raise FormatError(file, f"unreadable Properties table: {exc}") from None
    return {str(k): (None if v is None else str(v)) for k, v in rows}


def _read_table(connection: sqlite3.Connection, prefix: str, file: Path) -> _Table:
    try:
        mapping = connection.execute(
            f"SELECT label_property, column_name, class_name FROM {prefix}Classes ORDER BY id"
        ).fetchall()
        columns = {r[1] for r in connection.execute(f"PRAGMA table_info({prefix}Objects)")}
    except sqlite3.DatabaseError as exc:
        raise FormatError(file, f"unreadable {prefix}Classes table: {exc}") from None
    item_class = next((str(c) for label, _, c in mapping if label == "self"), "")
    attributes = [
        (str(label), str(column), str(cls or ""))
        for label, column, cls in mapping
        if label != "self" and column in columns
    ]
    if "id" not in columns:
        raise FormatError(file, f"the {prefix}Objects table has no id column")
    wanted = ["id", "enabled", "label", "comment", *(column for _, column, _ in attributes)]
    present = [c if c in columns else "NULL" for c in wanted]
    try:
        rows = connection.execute(
            f"SELECT {', '.join(present)} FROM {prefix}Objects ORDER BY id"
        ).fetchall()
    except sqlite3.DatabaseError as exc:
        raise FormatError(file, f"unreadable {prefix}Objects table: {exc}") from None
    data: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [() for _ in wanted]
    table = _Table(
        item_class=item_class,
        ids=np.asarray(data[0], dtype=np.int64),
        enabled=list(data[1]),
        extra={"label": list(data[2]), "comment": list(data[3])},
    )
    for (label, _, cls), values in zip(attributes, data[4:], strict=True):
        table.values[label] = list(values)
        table.classes[label] = cls
    return table


# -- conversion ------------------------------------------------------------------------------
def _build(
    table: _Table,
    type_name: str,
    properties: Mapping[str, str | None],
    file: Path,
    namespace: str,
    root: str | os.PathLike[str] | None,
) -> Set:
    """Map a table's attributes to cryolab columns and the Properties to set properties."""
    item = table.item_class
    values = dict(table.values)
    classes = table.classes
    count = len(table.ids)
    columns: dict[str, pa.Array] = {}

    def take(attribute: str) -> list[Any] | None:
        return values.pop(attribute, None)

    def put(name: str, raw: list[Any] | None, kind: str) -> None:
        if raw is not None and name not in columns:
            columns[name] = _arrow(raw, kind, file, name)

    kind = _KINDS.get(item, item.lower() or "item")
    columns[UID] = pa.array(scipion_uids(table.ids, kind, namespace))
    columns[PREFIX + "id"] = pa.array(table.ids)
    columns[PREFIX + "enabled"] = _arrow(table.enabled, "Boolean", file, "enabled")

    # image location (the representative's for classes)
    for base in ("", "_representative."):
        path = take(base + "_filename")
        index = take(base + "_index")
        put("image.path", path, "String")
        if index is not None and "image.index" not in columns:
            numbers = _numbers(index, pa.int64(), file, base + "_index")
            columns["image.index"] = pc.if_else(pc.equal(numbers, 0), 1, numbers)
    if item in ("Class2D", "Class3D"):
        columns["class_id"] = pa.array(table.ids)
        put("class.size", take("_size"), "Integer")

    # CTF
    ctf_prefix = "" if item == "CTFModel" else "_ctfModel."
    for attribute, name in _CTF_COLUMNS.items():
        put(name, take(ctf_prefix + attribute), "Float")
    if item == "CTFModel":
        columns["micrograph_uid"] = pa.array(scipion_uids(table.ids, "micrograph", namespace))

    # coordinates and links
    coordinate = "" if item == "Coordinate" else "_coordinate."
    put("coordinate.x", take(coordinate + "_x"), "Float")
    put("coordinate.y", take(coordinate + "_y"), "Float")
    mic_ids = values.get("_micId")
    if mic_ids is None:
        mic_ids = values.get("_coordinate._micId")
    if mic_ids is not None and "micrograph_uid" not in columns:
        numbers = _numbers(mic_ids, pa.int64(), file, "_micId")
        uids = scipion_uids(numbers.fill_null(0).to_numpy(), "micrograph", namespace)
        missing = numbers.is_null().to_numpy(zero_copy_only=False)
        columns["micrograph_uid"] = pa.array(uids, pa.uint64(), mask=missing)
    if item in ("Micrograph", "Movie"):
        put("micrograph.name", take("_micName"), "String")
    if item not in ("Class2D", "Class3D"):
        put("class_id", take("_classId"), "Integer")

    # volumes: the half maps ("half1,half2")
    halves = take("_halfMapFilenames") if item == "Volume" else None
    if halves is not None:
        split = [None if not v else str(v).split(",") for v in halves]
        columns["volume.half1"] = pa.array(
            [s[0].strip() if s else None for s in split], pa.string()
        )
        columns["volume.half2"] = pa.array(
            [s[1].strip() if s and len(s) > 1 else None for s in split], pa.string()
        )

    # set-wide values repeated per item
    set_properties = _set_properties(properties, values, classes, file)
    alignment = properties.get("_alignment") or ""
    matrices = take(_MATRIX)
    if matrices is not None:
        columns.update(
            _transform(matrices, set_properties.get("sampling_rate"), alignment, file, count)
        )

    # every other attribute, verbatim
    for attribute, raw in values.items():
        if classes.get(attribute) in ("Integer", "Float", "Boolean", "String", "CsvList") or any(
            v is not None for v in raw
        ):
            put(PREFIX + attribute, raw, classes.get(attribute, ""))
    for name, raw in table.extra.items():
        if any(v not in (None, "") for v in raw):
            put(PREFIX + name, raw, "String")

    set_properties["scipion"] = {
        "file": str(file.resolve()),
        "class": properties.get("self"),
        "item_class": item,
        "properties": {k: v for k, v in properties.items() if k != "self"},
    }
    paths = columns.get("image.path")
    if paths is not None and any(v and not Path(v).is_absolute() for v in paths.to_pylist()):
        set_properties["root"] = str(Path(root) if root is not None else _project_root(file))
    state: StreamState = "open" if properties.get("_streamState") == "1" else "closed"
    cls = set_type(type_name)
    return cls(pa.table(columns), properties=set_properties, state=state)


def _set_properties(
    properties: Mapping[str, str | None],
    values: dict[str, list[Any]],
    classes: Mapping[str, str],
    file: Path,
) -> dict[str, Any]:
    """Sampling rate and acquisition of the set; drops per-item copies that agree with them."""
    result: dict[str, Any] = {}
    rate = _float(properties.get("_samplingRate"))
    rate = _fold(values, "_samplingRate", rate, file)
    if rate is not None:
        result["sampling_rate"] = rate
    acquisition: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for attribute, key in {**_ACQUISITION_KEYS, **_ACQUISITION_EXTRA}.items():
        full = "_acquisition." + attribute
        if attribute != "opticsGroupInfo":
            value: Any = _fold(values, full, _float(properties.get(full)), file)
        else:
            value = _fold_text(values, full, properties.get(full))
        if value is None or value == "":
            continue
        (acquisition if key in Acquisition.__dataclass_fields__ else extra)[key] = value
    values.pop("_acquisition", None)
    gain = properties.get("_gainFile")
    if gain:
        acquisition["gain"] = gain
    if "voltage" in acquisition:
        if rate is not None:
            acquisition["sampling_rate"] = rate
        if extra:
            acquisition["extra"] = extra
        result["acquisition"] = Acquisition.from_dict(acquisition).to_dict()
    return result


def _fold(values: dict[str, list[Any]], attribute: str, value: float | None, file: Path) -> Any:
    """The set's value of a per-item number, dropping the column when every item agrees."""
    raw = values.get(attribute)
    if raw is None:
        return value
    numbers = _numbers(raw, pa.float64(), file, attribute)
    if numbers.null_count == len(numbers):
        values.pop(attribute)
        return value
    if numbers.null_count:
        return value
    extremes = pc.min_max(numbers)
    low, high = extremes["min"].as_py(), extremes["max"].as_py()
    if low == high and (value is None or abs(low - value) <= 1e-9 * max(1.0, abs(value))):
        values.pop(attribute)
        return low
    return value


def _fold_text(values: dict[str, list[Any]], attribute: str, value: str | None) -> Any:
    raw = values.get(attribute)
    if raw is None:
        return value
    distinct = {v for v in raw}
    if len(distinct) == 1 and (value in (None, "") or distinct == {value}):
        values.pop(attribute)
        (only,) = distinct
        return only if only is not None else value
    return value


def _transform(
    matrices: list[Any], sampling_rate: float | None, alignment: str, file: Path, count: int
) -> dict[str, pa.Array]:
    """Transform columns from Scipion's 4x4 matrices (JSON text, shifts in pixels).

    Projection alignments become ``transform.rot/tilt/psi/shift_x/shift_y`` with
    :func:`~cryolab.em.geometry.from_scipion_matrix`, 2-D alignments (no mirror) with
    :func:`~cryolab.em.geometry.from_scipion_matrix_2d`. Other alignments (3-D, none), mirrored
    2-D matrices, or a set without a sampling rate keep the matrix elements as columns.
    """
    text = pa.array(matrices, pa.string())
    present = pc.fill_null(pc.not_equal(text, ""), False).to_numpy(zero_copy_only=False)
    stack = np.full((count, 4, 4), np.nan)
    if present.any():
        # "[[1.0, 0.0, ...], ...]" -> 16 numbers, in Arrow's C++ kernels
        kept = text.filter(pa.array(present))
        for character in "[] ":
            kept = pc.replace_substring(kept, character, "")
        parts = pc.split_pattern(kept, ",")
        try:
            if not pc.all(pc.equal(pc.list_value_length(parts), 16)).as_py():
                raise ValueError("not 16 numbers")
            numbers = pc.list_flatten(parts).cast(pa.float64()).to_numpy()
            stack[present] = numbers.reshape(-1, 4, 4)
        except (ValueError, pa.ArrowInvalid):
            example = next(m for m in matrices if m)
            raise FormatError(
                file, f"values are not 4x4 matrices, e.g. {example!r}", field=_MATRIX
            ) from None
    convert = {
        "Projection": geometry.from_scipion_matrix,
        "2D": geometry.from_scipion_matrix_2d,
    }.get(alignment)
    if alignment == "2D" and bool((np.linalg.det(stack[present, :3, :3]) < 0).any()):
        convert = None  # mirrored 2-D alignments have no internal pose
    if convert is not None and sampling_rate is not None:
        pose = convert(stack[present], sampling_rate)
        columns = {}
        for name, values in pose._asdict().items():
            full = np.full(count, np.nan)
            full[present] = values
            columns[f"transform.{name}"] = pa.array(full, mask=~present)
        return columns
    return {
        f"{PREFIX}{_MATRIX}.m{r}{c}": pa.array(stack[:, r, c], mask=~present)
        for r in range(4)
        for c in range(4)
    }


# -- values ----------------------------------------------------------------------------------
def _arrow(raw: list[Any], kind: str, file: Path, name: str) -> pa.Array:
    """A column of raw sqlite values as an Arrow array typed by the Scipion class name."""
    if kind == "Integer":
        return _numbers(raw, pa.int64(), file, name)
    if kind == "Float":
        return _numbers(raw, pa.float64(), file, name)
    if kind == "Boolean":
        try:  # sqlite gives the 0/1 of an INTEGER column as int
            return pc.not_equal(pa.array(raw, pa.int64()), 0)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
            return pa.array(
                [None if v is None else str(v).strip().lower() in ("1", "true") for v in raw],
                pa.bool_(),
            )
    if all(v is None or isinstance(v, str) for v in raw):
        return pa.array(raw, pa.string())
    try:
        return pa.array(raw)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in raw], pa.string())


def _numbers(raw: list[Any], kind: pa.DataType, file: Path, attribute: str) -> pa.Array:
    """A column of numbers (int64 or float64); empty text is missing, as NULL is."""
    try:  # sqlite gives numbers for INTEGER/REAL columns: converted in C
        return pa.array(raw, kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        pass
    out: list[Any] = []
    for value in raw:
        if value is None or value == "":
            out.append(None)
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise FormatError(file, f"{value!r} is not a number", field=attribute) from None
        if pa.types.is_integer(kind) and not number.is_integer():
            raise FormatError(file, f"{value!r} is not an integer", field=attribute)
        out.append(int(number) if pa.types.is_integer(kind) else number)
    return pa.array(out, kind)


def _float(text: str | None) -> float | None:
    if text is None or text.strip() in ("", "None"):
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _project_root(file: Path) -> Path:
    """The Scipion project folder of a set file (the parent of its ``Runs`` folder)."""
    resolved = file.resolve()
    for parent in resolved.parents:
        if parent.name == "Runs":
            return parent.parent
    return resolved.parent
