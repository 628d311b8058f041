"""Import a Scipion workflow (exported JSON or ``*.json.template``) as a graph of saved runs.

A Scipion workflow is a JSON list with one object per protocol (``scipion-internals.md``
section 5): ``object.className``, ``object.id`` (a string), ``object.label``,
``object.comment``, and the protocol's form parameters. A parameter pointing at another
protocol's output is the text ``"<id>.<outputName>"`` (``"2.outputMicrographs"``, possibly
with more parts: ``"1234.outputVol.4"``), alone or in a list; ``"<id>."`` and bare ids in a
list (``["2", "56"]``) point at a protocol itself, and ``_prerequisites`` lists the ids a
protocol waits for.

A template (``*.json.template``) may start with free-text description lines, takes
``%(NAME)s`` from the environment (``%%`` for a literal ``%``) and holds markers
``~Title|default|type|alias~`` whose values are asked for at import: ``values`` keyed by alias
(or, failing that, by title); a marker without a value uses its default, and a marker without
either is an error naming it. Types (Scipion's ``VarTypes``): 0 text, 1 boolean, 2 path,
3 integer, 4 decimal, 5 file name, 6 folder.

Each protocol becomes one saved run (the user launches them), all created in one database
transaction: any error leaves the project unchanged.

- A Scipion class with a cryolab equivalent (:data:`PROTOCOL_MAP`) becomes a run of that
  protocol, with the parameters of :data:`PARAM_MAP` translated and its inputs wired by type,
  **if that protocol is registered and the translated run validates**. Otherwise, and for
  every other class, the protocol becomes an ``external.job`` placeholder (``program
  "scipion"``, ``job`` the class name, ``settings`` its parameters as JSON, ``inputs_from`` the
  re-wired pointers, outputs named as downstream protocols refer to them). The ``import.*`` and
  ``spa.*`` protocols are not all written yet: importing the same workflow once they are
  registered gives real runs instead of placeholders, with nothing to change here.
- Pointers become inputs ``"RUNID.output"`` of the new runs; a pointer at a protocol itself
  (and a prerequisite) becomes inputs from every output of that run, so the runs still wait
  for it. The Scipion id, class, per-parameter wiring and why a class was not mapped are kept
  in the run's ``origin`` (``origin["scipion"]``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryolab.core import config, database
from cryolab.core.errors import CryolabError, TemplateError
from cryolab.core.plugins import registry
from cryolab.core.runs import Run

if TYPE_CHECKING:
    from cryolab.core.project import Project

__all__ = [
    "PARAM_MAP",
    "PROTOCOL_MAP",
    "Marker",
    "import_scipion_workflow",
    "output_type",
    "read_scipion_workflow",
    "template_markers",
]

PLACEHOLDER = "external.job"

# Scipion protocol class -> cryolab protocol with the same purpose
PROTOCOL_MAP: dict[str, str] = {
    "ProtImportMovies": "import.movies",
    "ProtImportMicrographs": "import.micrographs",
    "ProtImportParticles": "import.particles",
    "ProtImportCoordinates": "import.coordinates",
    "ProtImportVolumes": "import.volumes",
    "ProtImportCTF": "import.ctfs",
    "ProtMotionCorr": "spa.motion_correct",
    "ProtRelionMotioncor": "spa.motion_correct",
    "CistemProtCTFFind": "spa.ctf_estimate",
    "ProtGctf": "spa.ctf_estimate",
    "XmippProtCTFMicrographs": "spa.ctf_estimate",
    "SphireProtCRYOLOPicking": "spa.pick",
    "ProtRelionAutopickLoG": "spa.pick",
    "ProtRelion2Autopick": "spa.pick",
    "ProtRelionExtractParticles": "spa.extract",
    "XmippProtExtractParticles": "spa.extract",
    "ProtRelionClassify2D": "spa.classify_2d",
    "ProtCryo2D": "spa.classify_2d",
    "ProtRelionInitialModel": "spa.initial_model",
    "ProtRelionClassify3D": "spa.classify_3d",
    "ProtRelionRefine3D": "spa.refine_3d",
    "ProtRelionReconstruct": "spa.reconstruct",
    "XmippProtReconstructFourier": "spa.reconstruct",
    "ProtRelionPostprocess": "spa.postprocess",
}

# Scipion parameter -> cryolab parameter, used when the mapped protocol has that parameter
# (filesPath + filesPattern -> files is handled apart)
PARAM_MAP: dict[str, str] = {
    "samplingRate": "sampling_rate",
    "voltage": "voltage",
    "sphericalAberration": "spherical_aberration",
    "amplitudeContrast": "amplitude_contrast",
    "dosePerFrame": "dose_per_frame",
    "magnification": "magnification",
    "gainFile": "gain",
}

# output name (lower case) fragment -> cryolab set type, first match wins
_OUTPUT_TYPES: tuple[tuple[str, str], ...] = (
    ("coordinates", "SetOfCoordinates"),
    ("coords", "SetOfCoordinates"),
    ("ctf", "SetOfCTFs"),
    ("movies", "SetOfMovies"),
    ("micrograph", "SetOfMicrographs"),
    ("particles", "SetOfParticles"),
    ("classes3d", "SetOfClasses3D"),
    ("classes2d", "SetOfClasses2D"),
    ("averages", "SetOfImages"),
    ("representatives", "SetOfImages"),
    ("mask", "SetOfVolumes"),
    ("vol", "SetOfVolumes"),
    ("fsc", "FSC"),
    ("tiltseries", "SetOfTiltSeries"),
    ("tomogram", "SetOfTomograms"),
)
_RESERVED = frozenset({"items", "keys", "values", "get"})  # see Project; never Scipion names
_VAR_TYPES = {
    "0": "text",
    "1": "boolean",
    "2": "path",
    "3": "integer",
    "4": "decimal",
    "5": "file name",
    "6": "folder",
}
_MARKER = re.compile(r"~([^~|\n]*)\|([^~|\n]*)\|([^~|\n]*)\|([^~|\n]*)~")
_ENVIRONMENT = re.compile(r"%%|%\((\w+)\)s")
_POINTER = re.compile(r"(\d+)\.(?:([A-Za-z_]\w*)((?:\.\w+)*))?")


@dataclass(frozen=True)
class Marker:
    """A template marker ``~title|default|type|alias~``; ``name`` is the alias or the title."""

    title: str
    default: str
    type: str
    alias: str

    @property
    def name(self) -> str:
        """The key its value is given under (the alias, else the title)."""
        return self.alias or self.title

    @property
    def kind(self) -> str:
        """Scipion's type in words: text, boolean, path, integer, decimal, file name, folder."""
        return _VAR_TYPES.get(self.type.strip(), "text")


@dataclass
class _Protocol:
    """One protocol of the workflow, with its references to others."""

    sid: str
    class_name: str
    label: str
    comment: str
    params: dict[str, Any]
    # parameter -> [(protocol id, output name, further parts)]
    pointers: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)
    # parameter -> [protocol id] (pointers at a protocol, prerequisites)
    protocols: dict[str, list[str]] = field(default_factory=dict)

    def needs(self) -> set[str]:
        found = {p[0] for refs in self.pointers.values() for p in refs}
        return found | {i for ids in self.protocols.values() for i in ids}


# -- public API ------------------------------------------------------------------------------
def template_markers(source: str | os.PathLike[str]) -> list[Marker]:
    """The markers of a Scipion template, in order, once per name (what an import asks for)."""
    text = _read_text(source)
    seen: dict[str, Marker] = {}
    for match in _MARKER.finditer(text[_json_start(text) :]):
        marker = Marker(*(part.strip() for part in match.groups()))
        seen.setdefault(marker.name, marker)
    return list(seen.values())


def read_scipion_workflow(
    source: str | os.PathLike[str] | Sequence[Mapping[str, Any]],
    values: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The protocols of a Scipion workflow or template, with markers and ``%(NAME)s`` filled.

    Parameters
    ----------
    source
        A ``.json`` / ``.json.template`` file, or the list of protocol dicts itself.
    values
        Marker values by alias (or title); text is converted by the marker's type.
    environ
        Where ``%(NAME)s`` is looked up (default: the process environment).

    Raises
    ------
    TemplateError
        If the file is unreadable or not a workflow, a marker lacks a value, a value does not
        fit its marker's type, or ``values`` names no marker.
    """
    given = dict(values or {})
    if not isinstance(source, (str, os.PathLike)):
        if given:
            raise TemplateError(f"the workflow has no markers; got values for {sorted(given)}")
        return _check_document(list(source), "the workflow")
    where = str(source)
    text = _read_text(source)
    start = _json_start(text)
    body = text[start:]
    is_template = where.endswith(".template") or start > 0 or bool(_MARKER.search(body))
    if is_template:
        body = _fill(body, given, os.environ if environ is None else environ, where)
    elif given:
        raise TemplateError(f"{where} has no markers; got values for {sorted(given)}")
    try:
        document = json.loads(body)
    except json.JSONDecodeError as exc:
        raise TemplateError(f"{where} is not a Scipion workflow (JSON): {exc}") from None
    return _check_document(document, where)


def import_scipion_workflow(
    project: Project,
    source: str | os.PathLike[str] | Sequence[Mapping[str, Any]],
    values: Mapping[str, Any] | None = None,
    *,
    launch: bool = False,
    environ: Mapping[str, str] | None = None,
) -> list[Run]:
    """Create a Scipion workflow's protocols in ``project`` as saved runs (a scheduled graph).

    Parameters
    ----------
    project
        The project to add the runs to.
    source, values, environ
        As for :func:`read_scipion_workflow`.
    launch
        Launch the runs that can run here: those of registered cryolab protocols with no
        placeholder upstream. Placeholders (``external.job``) are never launched.

    Returns
    -------
    list of Run
        The new runs, in dependency order.

    Raises
    ------
    TemplateError
        For a malformed workflow, a missing marker value, a pointer at a protocol the workflow
        lacks, or protocols waiting for each other in a cycle; the project is then unchanged.

    Notes
    -----
    A class of :data:`PROTOCOL_MAP` whose cryolab protocol is not registered (the ``import.*``
    and ``spa.*`` protocols are being written), or whose translated run does not validate, is
    imported as an ``external.job`` placeholder like any other class, with the reason in
    ``origin["scipion"]["not_mapped"]``: the same import gives real runs once the protocol is
    available.
    """
    document = read_scipion_workflow(source, values, environ=environ)
    where = str(source) if isinstance(source, (str, os.PathLike)) else "the workflow"
    source_text = str(Path(source).resolve()) if isinstance(source, (str, os.PathLike)) else ""
    protocols = [_parse_protocol(entry) for entry in document]
    known = {p.sid: p for p in protocols}
    for protocol in protocols:
        _find_references(protocol, known, where)
    ordered = _order(protocols, where)
    referenced = _referenced_outputs(protocols)
    chosen = config.settings()
    executor = {"name": chosen["executor"], "cores": chosen["cores"]}

    run_ids: dict[str, int] = {}
    outputs: dict[str, dict[str, str]] = {}  # Scipion id -> Scipion output -> our output
    placeholders: set[str] = set()
    with database.transaction(project.db):
        for protocol in ordered:
            wiring = _wiring(protocol, run_ids, outputs, project)
            origin: dict[str, Any] = {
                "id": protocol.sid,
                "class": protocol.class_name,
                "workflow": source_text,
                "inputs": {k: [r for r, _ in v] for k, v in wiring.items()},
            }
            if protocol.protocols:
                origin["protocols"] = {
                    k: [run_ids[i] for i in v] for k, v in protocol.protocols.items()
                }
            extended = {
                k: [f"{s}.{o}{e}" for s, o, e in v if e] for k, v in protocol.pointers.items()
            }
            if any(extended.values()):
                origin["extended"] = {k: v for k, v in extended.items() if v}
            target = PROTOCOL_MAP.get(protocol.class_name)
            mapped = None
            if target is not None:
                origin["maps_to"] = target
                mapped = _create_mapped(
                    project, target, protocol, wiring, referenced[protocol.sid], executor, origin
                )
            if mapped is None:
                placeholders.add(protocol.sid)
                run_id = _create_placeholder(
                    project, protocol, wiring, referenced[protocol.sid], executor, origin
                )
                outputs[protocol.sid] = {n: _output_name(n) for n in referenced[protocol.sid]}
            else:
                run_id, outputs[protocol.sid] = mapped
            run_ids[protocol.sid] = run_id
    created = [run_ids[p.sid] for p in ordered]
    project.make_folders(created)
    runs = [Run(project, run_id) for run_id in created]
    if launch:
        blocked = set(placeholders)
        for protocol in ordered:
            if protocol.needs() & blocked:
                blocked.add(protocol.sid)
            if protocol.sid not in blocked:
                project.launch(run_ids[protocol.sid])
    return runs


# -- reading ---------------------------------------------------------------------------------
def _read_text(source: str | os.PathLike[str]) -> str:
    try:
        return Path(source).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TemplateError(f"no Scipion workflow file {source}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(f"cannot read the Scipion workflow {source}: {exc}") from None


def _json_start(text: str) -> int:
    """Where the JSON list starts, after a template's description lines."""
    offset = 0
    for line in text.splitlines(keepends=True):
        if line.lstrip().startswith("["):
            return offset
        offset += len(line)
    return 0


def _fill(text: str, values: dict[str, Any], environ: Mapping[str, str], where: str) -> str:
    """Replace markers by values (or defaults) and ``%(NAME)s`` by the environment."""
    markers = [(m, Marker(*(p.strip() for p in m.groups()))) for m in _MARKER.finditer(text)]
    names = {marker.name for _, marker in markers} | {marker.title for _, marker in markers}
    unknown = sorted(set(values) - names)
    if unknown:
        available = sorted({marker.name for _, marker in markers})
        raise TemplateError(f"{where} has no marker(s) {unknown}; it has {available}")
    pieces: list[str] = []
    position = 0
    for match, marker in markers:
        start, end = match.span()
        line_start = text.rfind("\n", 0, start) + 1
        inside = _inside_string(text[line_start:start])
        whole = inside and text[start - 1 : start] == '"' and text[end : end + 1] == '"'
        pieces.append(_environment(text[position : start - 1 if whole else start], environ, where))
        value = _marker_value(marker, values, environ, where)
        if whole or not inside:
            pieces.append(json.dumps(value))
        else:
            pieces.append(json.dumps(_as_text(value))[1:-1])
        position = end + 1 if whole else end
    pieces.append(_environment(text[position:], environ, where))
    return "".join(pieces)


def _inside_string(prefix: str) -> bool:
    """Whether a line position after ``prefix`` is inside a JSON string."""
    return len(re.findall(r'(?<!\\)(?:\\\\)*"', prefix)) % 2 == 1


def _environment(text: str, environ: Mapping[str, str], where: str, marker: str = "") -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "%"
        if name not in environ:
            context = f"the default of marker {marker!r}" if marker else where
            hint = f"; give a value for {marker}" if marker else ""
            raise TemplateError(
                f"{context} uses %({name})s, but {name} is not set in the environment{hint}"
            )
        return json.dumps(environ[name])[1:-1] if not marker else environ[name]

    return _ENVIRONMENT.sub(replace, text)


def _marker_value(
    marker: Marker, values: Mapping[str, Any], environ: Mapping[str, str], where: str
) -> Any:
    label = f"marker {marker.title!r}" + (f" ({marker.alias})" if marker.alias else "")
    if marker.alias and marker.alias in values:
        given = values[marker.alias]
    elif marker.title in values:
        given = values[marker.title]
    elif marker.default != "":
        given = _environment(marker.default, environ, where, marker.name)
    else:
        raise TemplateError(
            f"{where}: {label} has no default and needs a value: "
            f"give values={{{marker.name!r}: ...}} or --set {marker.name}=..."
        )
    try:
        return _typed(given, marker.kind)
    except ValueError:
        raise TemplateError(f"{where}: {label} takes {marker.kind}, got {given!r}") from None


def _typed(value: Any, kind: str) -> Any:
    if kind == "integer":
        if isinstance(value, bool):
            raise ValueError(value)
        if isinstance(value, int):
            return value
        number = float(value)
        if not number.is_integer():
            raise ValueError(value)
        return int(number)
    if kind == "decimal":
        if isinstance(value, bool):
            raise ValueError(value)
        return float(value)
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "yes", "1", "on"):
            return True
        if text in ("false", "no", "0", "off"):
            return False
        raise ValueError(value)
    return value if isinstance(value, str) else json.dumps(value)


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _check_document(document: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(document, list) or not document:
        raise TemplateError(f"{where} is not a Scipion workflow: expected a list of protocols")
    ids: set[str] = set()
    for position, entry in enumerate(document):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("object.className"), str):
            raise TemplateError(f"{where}: protocol {position + 1} has no object.className")
        sid = entry.get("object.id")
        if not isinstance(sid, (str, int)) or not str(sid).isdigit():
            raise TemplateError(
                f"{where}: protocol {position + 1} ({entry['object.className']}) has no "
                f"numeric object.id (got {sid!r})"
            )
        if str(sid) in ids:
            raise TemplateError(f"{where}: two protocols have the id {sid}")
        ids.add(str(sid))
    return [dict(entry) for entry in document]


def _parse_protocol(entry: Mapping[str, Any]) -> _Protocol:
    return _Protocol(
        sid=str(entry["object.id"]),
        class_name=str(entry["object.className"]),
        label=str(entry.get("object.label") or ""),
        comment=str(entry.get("object.comment") or ""),
        params={k: v for k, v in entry.items() if not k.startswith("object.")},
    )


def _find_references(protocol: _Protocol, known: Mapping[str, _Protocol], where: str) -> None:
    """Fill the protocol's pointers and protocol references; unknown ids are errors."""

    def check(sid: str, name: str, text: str) -> str:
        at = f"{where}: protocol {protocol.sid} ({protocol.class_name}) parameter {name}"
        if sid not in known:
            raise TemplateError(f"{at} points to {text!r}, but the workflow has no protocol {sid}")
        if sid == protocol.sid:
            raise TemplateError(f"{at} points to the protocol itself ({text!r})")
        return sid

    for name, value in protocol.params.items():
        if name == "_prerequisites":
            items = value if isinstance(value, list) else str(value or "").split(",")
            ids = [check(str(i).strip(), name, str(i)) for i in items if str(i).strip()]
            if ids:
                protocol.protocols[name] = ids
            continue
        elements = value if isinstance(value, list) else [value]
        texts = [v for v in elements if isinstance(v, str)]
        bare = isinstance(value, list) and texts and len(texts) == len(value)
        if bare and all(t.isdigit() and t in known for t in texts):
            protocol.protocols[name] = list(texts)
            continue
        for text in texts:
            match = _POINTER.fullmatch(text)
            if match is None:
                continue
            sid = check(match.group(1), name, text)
            if match.group(2) is None:
                protocol.protocols.setdefault(name, []).append(sid)
            else:
                pointer = (sid, match.group(2), match.group(3) or "")
                protocol.pointers.setdefault(name, []).append(pointer)


def _order(protocols: Sequence[_Protocol], where: str) -> list[_Protocol]:
    """Protocols in dependency order (file order among independent ones)."""
    waiting = {p.sid: p.needs() for p in protocols}
    ordered: list[_Protocol] = []
    done: set[str] = set()
    while len(ordered) < len(protocols):
        ready = next((p for p in protocols if p.sid not in done and waiting[p.sid] <= done), None)
        if ready is None:
            stuck = sorted((p.sid for p in protocols if p.sid not in done), key=int)
            raise TemplateError(f"{where}: protocols {stuck} point to each other in a cycle")
        ordered.append(ready)
        done.add(ready.sid)
    return ordered


def _referenced_outputs(protocols: Sequence[_Protocol]) -> dict[str, list[str]]:
    """Scipion id -> the output names other protocols point to, in order of first use."""
    found: dict[str, list[str]] = {p.sid: [] for p in protocols}
    for protocol in protocols:
        for refs in protocol.pointers.values():
            for sid, output, _ in refs:
                if output not in found[sid]:
                    found[sid].append(output)
    return found


def output_type(name: str, class_name: str = "") -> str:
    """A cryolab set type for a Scipion output name (``outputMicrographs`` -> micrographs)."""
    lowered = name.lower()
    if "classes" in lowered and "2d" not in lowered and "3d" not in lowered:
        return "SetOfClasses3D" if "3D" in class_name else "SetOfClasses2D"
    for fragment, type_name in _OUTPUT_TYPES:
        if fragment in lowered:
            return type_name
    return "Set"


def _output_name(name: str) -> str:
    return f"{name}_output" if name in _RESERVED else name


# -- creating runs ---------------------------------------------------------------------------
def _wiring(
    protocol: _Protocol,
    run_ids: Mapping[str, int],
    outputs: Mapping[str, Mapping[str, str]],
    project: Project,
) -> dict[str, list[tuple[str, list[str]]]]:
    """Parameter -> [("RUNID.output", its type chain)] for the protocol's references."""
    wiring: dict[str, list[tuple[str, list[str]]]] = {}
    for name, refs in protocol.pointers.items():
        for sid, output, _ in refs:
            ours = outputs[sid][output]
            wiring.setdefault(name, []).append(
                (f"{run_ids[sid]}.{ours}", _chain(project, run_ids[sid], ours))
            )
    for name, ids in protocol.protocols.items():
        for sid in ids:
            for ours in _run_outputs(project, run_ids[sid]):
                wiring.setdefault(name, []).append(
                    (f"{run_ids[sid]}.{ours}", _chain(project, run_ids[sid], ours))
                )
    return wiring


def _run_outputs(project: Project, run_id: int) -> list[str]:
    return [
        str(r[0])
        for r in project.db.execute(
            "SELECT name FROM outputs WHERE run_id = ? ORDER BY rowid", (run_id,)
        )
    ]


def _chain(project: Project, run_id: int, name: str) -> list[str]:
    row = project.db.execute(
        "SELECT types FROM outputs WHERE run_id = ? AND name = ?", (run_id, name)
    ).fetchone()
    chain: list[str] = json.loads(row[0]) if row else ["Set"]
    return chain


def _create_placeholder(
    project: Project,
    protocol: _Protocol,
    wiring: Mapping[str, list[tuple[str, list[str]]]],
    referenced: Sequence[str],
    executor: Mapping[str, Any],
    origin: Mapping[str, Any],
) -> int:
    refs: list[str] = []
    for pairs in wiring.values():
        refs.extend(ref for ref, _ in pairs if ref not in refs)
    params = {
        "program": "scipion",
        "job": protocol.class_name,
        "source": str(origin.get("workflow", "")),
        "settings": json.dumps(protocol.params),
        "inputs_from": refs,
        "output_names": [_output_name(n) for n in referenced],
        "output_types": [output_type(n, protocol.class_name) for n in referenced],
    }
    try:
        return project.create_run(
            PLACEHOLDER,
            params,
            label=protocol.label,
            comment=protocol.comment,
            executor=executor,
            origin={"scipion": dict(origin)},
        )
    except CryolabError as exc:
        raise TemplateError(f"protocol {protocol.sid} ({protocol.class_name}): {exc}") from None


def _create_mapped(
    project: Project,
    target: str,
    protocol: _Protocol,
    wiring: Mapping[str, list[tuple[str, list[str]]]],
    referenced: Sequence[str],
    executor: Mapping[str, Any],
    origin: dict[str, Any],
) -> tuple[int, dict[str, str]] | None:
    """Create the run of a mapped protocol, or return None (reason in ``origin``).

    The run is created inside a savepoint, so a run that turns out not to fit (its outputs
    cannot stand for the Scipion outputs used downstream) is undone without a trace.
    """
    try:
        cls = registry.get(target)
    except CryolabError as exc:
        origin["not_mapped"] = str(exc)
        return None
    declared = cls.params()
    inputs = cls.inputs()
    values: dict[str, Any] = {}
    for scipion_name, ours in PARAM_MAP.items():
        if ours in declared and protocol.params.get(scipion_name) not in (None, ""):
            values[ours] = protocol.params[scipion_name]
    if "files" in declared and protocol.params.get("filesPath"):
        pattern = str(protocol.params.get("filesPattern") or "")
        folder = str(protocol.params["filesPath"])
        values["files"] = str(Path(folder, pattern)) if pattern else folder
    for name, pairs in wiring.items():
        if name not in protocol.pointers:
            continue  # a protocol reference: no input of a cryolab protocol takes a protocol
        for ref, chain in pairs:
            exact = [n for n, p in inputs.items() if chain[0] in p.types]
            fitting = exact or [n for n, p in inputs.items() if p.accepts(chain)]
            free = [n for n in fitting if inputs[n].multiple or n not in values]
            if len(free) != 1:
                origin["not_mapped"] = (
                    f"{target} has {len(free) or 'no'} free input(s) for {name} ({chain[0]})"
                )
                return None
            if inputs[free[0]].multiple:
                values.setdefault(free[0], []).append(ref)
            else:
                values[free[0]] = ref
    origin_done = {**origin, "mapped": True, "settings": protocol.params}
    project.db.execute("SAVEPOINT scipion_mapped")
    try:
        run_id = project.create_run(
            target,
            values,
            label=protocol.label,
            comment=protocol.comment,
            executor=executor,
            origin={"scipion": origin_done},
        )
    except CryolabError as exc:
        project.db.execute("ROLLBACK TO scipion_mapped")
        project.db.execute("RELEASE scipion_mapped")
        origin["not_mapped"] = f"{target} refused the translated parameters: {exc}"
        return None
    produced = {n: _chain(project, run_id, n) for n in _run_outputs(project, run_id)}
    names: dict[str, str] = {}
    for scipion_output in referenced:
        wanted = output_type(scipion_output, protocol.class_name)
        fitting = [n for n, chain in produced.items() if wanted in chain]
        if len(fitting) != 1:
            project.db.execute("ROLLBACK TO scipion_mapped")
            project.db.execute("RELEASE scipion_mapped")
            origin["not_mapped"] = (
                f"{target} has {len(fitting) or 'no'} output(s) of type {wanted} for "
                f"{scipion_output}, used downstream"
            )
            return None
        names[scipion_output] = fitting[0]
    project.db.execute("RELEASE scipion_mapped")
    return run_id, names
