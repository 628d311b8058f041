"""Import a RELION project's pipeline (``default_pipeline.star``) as a graph of imported runs.

RELION records its jobs in ``default_pipeline.star`` at the top of the project folder:

- ``pipeline_processes``: each job's name (``Refine3D/job019/``), alias
  (``Refine3D/first3dref/`` or ``None``), type and status;
- ``pipeline_nodes``: each file a job wrote or read (``Refine3D/job019/run_data.star``) and its
  type;
- ``pipeline_input_edges`` (node -> job reading it) and ``pipeline_output_edges`` (job -> node
  it wrote).

RELION 3.0 and 3.1 write the types and statuses as numbers (``_rlnPipeLineProcessType 10``);
RELION 4 and 5 as labels (``_rlnPipeLineProcessTypeLabel relion.refine3d``,
``_rlnPipeLineNodeTypeLabel ParticleGroupMetadata.star.relion``); both are read, numbers being
turned into RELION 4 labels (:data:`PROCESS_TYPES`). Each job folder may hold a ``job.star``
(RELION 3.1 and later: ``joboptions_values``) or a ``run.job`` (RELION 3.0: ``label == value``
lines) with the job's settings. STAR files are read with :func:`cryolab.em.star.read_star`.

Each job becomes a finished, read-only ``external.job`` run (``Project.add_imported_run``):
``program "relion"``, ``job`` its type label, ``source`` its folder, ``settings`` its job
options as JSON, ``label`` its name (the alias, the status when not succeeded, go to the
comment), ``inputs_from`` the outputs of the runs that wrote its input nodes, and one output
per node it wrote: named after the file (``run_data.star`` -> ``run_data_star``), typed from
the node type (:func:`node_set_type`). An output's set is the file's content where cryolab can
read it (particles, micrographs, coordinates STAR files and the postprocess FSC through
:mod:`cryolab.em.relion`; a map as a one-volume set), else an empty set of that type; its
``relion_file`` property names the file (and ``relion_error`` says why a STAR file that is
there did not convert).
An input node that no job of the pipeline wrote (a file imported by hand, a deleted job) is
listed in the run's ``origin["relion"]["unresolved_inputs"]``.

Everything is read and converted before the first run is written, so an unreadable pipeline
or ``job.star`` leaves the project unchanged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from cryolab.core.errors import CryolabError
from cryolab.core.runs import Run
from cryolab.core.sets import Set, set_type
from cryolab.em import relion, relion_results
from cryolab.em.formats import FormatError
from cryolab.em.relion_micrographs import star_to_coordinates
from cryolab.em.star import read_star

if TYPE_CHECKING:
    from cryolab.core.project import Project

__all__ = [
    "NODE_TYPES",
    "PROCESS_TYPES",
    "Pipeline",
    "import_relion",
    "import_relion_pipeline",
    "import_relion_star",
    "node_set_type",
    "read_relion_pipeline",
]

log = logging.getLogger(__name__)

PIPELINE_NAME = "default_pipeline.star"
RESERVED_OUTPUT_NAMES = frozenset({"items", "keys", "values", "get"})

# RELION 3.0/3.1 process type numbers -> RELION 4 type labels (numbers not listed, used by
# RELION 2 only, become "relion.type N")
PROCESS_TYPES: dict[int, str] = {
    0: "relion.import",
    1: "relion.motioncorr",
    2: "relion.ctffind",
    3: "relion.manualpick",
    4: "relion.autopick",
    5: "relion.extract",
    7: "relion.select",
    8: "relion.class2d",
    9: "relion.class3d",
    10: "relion.refine3d",
    12: "relion.maskcreate",
    13: "relion.joinstar",
    14: "relion.subtract",
    15: "relion.postprocess",
    16: "relion.localres",
    18: "relion.initialmodel",
    19: "relion.multibody",
    20: "relion.polish",
    21: "relion.ctfrefine",
    99: "relion.external",
}
# RELION 3.0/3.1 status numbers -> RELION 4 status labels
STATUSES: dict[int, str] = {
    0: "Running",
    1: "Scheduled",
    2: "Succeeded",
    3: "Failed",
    4: "Aborted",
}
# RELION 3.0/3.1 node type numbers -> (what the node is, cryolab set type)
NODE_TYPES: dict[int, tuple[str, str]] = {
    0: ("movies", "SetOfMovies"),
    1: ("micrographs", "SetOfMicrographs"),
    2: ("coordinates", "SetOfCoordinates"),
    3: ("particles", "SetOfParticles"),
    4: ("movie particles", "SetOfParticles"),
    5: ("2D references", "SetOfImages"),
    6: ("3D reference", "SetOfVolumes"),
    7: ("mask", "SetOfVolumes"),
    8: ("model", "Set"),
    9: ("optimiser", "Set"),
    10: ("half map", "SetOfVolumes"),
    11: ("final map", "SetOfVolumes"),
    12: ("local resolution map", "SetOfVolumes"),
    13: ("PDF log file", "Set"),
    14: ("postprocess STAR file", "FSC"),
    15: ("polishing parameters", "Set"),
}
# RELION 4/5 node type label (lower case) fragment -> cryolab set type, first match wins
_NODE_LABELS: tuple[tuple[str, str], ...] = (
    ("logfile", "Set"),
    ("movie", "SetOfMovies"),
    ("coords", "SetOfCoordinates"),
    ("micrograph", "SetOfMicrographs"),
    ("particle", "SetOfParticles"),
    ("tomogram", "SetOfTomograms"),
    ("tiltseries", "SetOfTiltSeries"),
    ("densitymap", "SetOfVolumes"),
    ("mask3d", "SetOfVolumes"),
    ("image3d", "SetOfVolumes"),
    ("image2d", "SetOfImages"),
)
_MAP_SUFFIXES = (".mrc", ".map", ".mrcs")


@dataclass
class _Process:
    name: str
    alias: str
    type: str
    status: str
    inputs: list[str] = field(default_factory=list)  # node names
    outputs: list[str] = field(default_factory=list)


@dataclass
class Pipeline:
    """A RELION pipeline as read: jobs in file order, node types, the job counter."""

    path: Path
    processes: dict[str, _Process]
    node_types: dict[str, str]  # node name -> cryolab set type
    node_labels: dict[str, str]  # node name -> RELION's node type (label or number as text)
    job_counter: int | None
    _producers: dict[str, str] | None = field(default=None, repr=False)

    @property
    def folder(self) -> Path:
        """The RELION project folder (where the pipeline file is)."""
        return self.path.parent

    def producer(self, node: str) -> str | None:
        """The job that wrote ``node``, if the pipeline has one."""
        if self._producers is None:
            self._producers = {}
            for process in self.processes.values():
                for output in process.outputs:
                    self._producers.setdefault(output, process.name)
        return self._producers.get(node)


# -- public API ------------------------------------------------------------------------------
def node_set_type(node_type: str | int) -> str:
    """The cryolab set type of a RELION node type (number of RELION 3, label of RELION 4+)."""
    text = str(node_type).strip()
    if text.lstrip("-").isdigit():
        return NODE_TYPES.get(int(text), ("", "Set"))[1]
    lowered = text.lower()
    if lowered.startswith("processdata") and "postprocess" in lowered:
        return "FSC"  # postprocess.star: the FSC curve
    for fragment, type_name in _NODE_LABELS:
        if fragment in lowered:
            return type_name
    return "Set"


def read_relion_pipeline(path: str | os.PathLike[str]) -> Pipeline:
    """Read a ``default_pipeline.star`` (or the RELION project folder holding it).

    Raises
    ------
    FormatError
        If the file is not a pipeline, or an edge names a job it does not list.
    StarError
        If the file is missing or not STAR (:mod:`cryolab.em.star`).
    """
    file = Path(path)
    if file.is_dir():
        file = file / PIPELINE_NAME
    blocks = read_star(file)
    if "pipeline_processes" not in blocks:
        raise FormatError(
            file, f"not a RELION pipeline: no data_pipeline_processes block (has {sorted(blocks)})"
        )
    counter = _pairs(blocks, "pipeline_general").get("rlnPipeLineJobCounter")
    processes: dict[str, _Process] = {}
    for row, values in enumerate(_records(blocks, "pipeline_processes", file)):
        name = values.get("rlnPipeLineProcessName")
        if not name:
            raise FormatError(file, "a job has no name", field="rlnPipeLineProcessName", row=row)
        kind = values.get("rlnPipeLineProcessTypeLabel") or _label(
            values.get("rlnPipeLineProcessType"), PROCESS_TYPES, "relion.type"
        )
        status = values.get("rlnPipeLineProcessStatusLabel") or _label(
            values.get("rlnPipeLineProcessStatus"), STATUSES, "status"
        )
        alias = values.get("rlnPipeLineProcessAlias") or ""
        processes[name] = _Process(name, "" if alias == "None" else alias, kind, status)
    node_labels: dict[str, str] = {}
    for values in _records(blocks, "pipeline_nodes", file):
        label = values.get("rlnPipeLineNodeTypeLabel") or values.get("rlnPipeLineNodeType") or ""
        node_labels[values.get("rlnPipeLineNodeName", "")] = label
    edges = (
        ("pipeline_input_edges", "rlnPipeLineEdgeProcess", "rlnPipeLineEdgeFromNode", "inputs"),
        ("pipeline_output_edges", "rlnPipeLineEdgeProcess", "rlnPipeLineEdgeToNode", "outputs"),
    )
    for block, process_key, node_key, side in edges:
        for row, values in enumerate(_records(blocks, block, file)):
            process = processes.get(values.get(process_key, ""))
            if process is None:
                raise FormatError(
                    file,
                    f"{block} names job {values.get(process_key)!r}, which "
                    "pipeline_processes does not list",
                    row=row,
                )
            listed: list[str] = getattr(process, side)
            node = values.get(node_key, "")
            if node and node not in listed:
                listed.append(node)
                node_labels.setdefault(node, "")
    return Pipeline(
        path=file,
        processes=processes,
        node_types={n: node_set_type(label) for n, label in node_labels.items()},
        node_labels=node_labels,
        job_counter=int(counter) if counter and counter.isdigit() else None,
    )


def import_relion_pipeline(project: Project, path: str | os.PathLike[str]) -> list[Run]:
    """Import every job of a RELION pipeline as a finished, read-only run of ``project``.

    Parameters
    ----------
    project
        The project the runs are added to.
    path
        The ``default_pipeline.star`` file, or the RELION project folder holding it.

    Returns
    -------
    list of Run
        The new runs, upstream jobs first.

    Raises
    ------
    FormatError, StarError
        If the pipeline or a ``job.star`` cannot be read, or jobs take inputs from each other
        in a cycle; nothing is imported then. (An output file that does not convert gives an
        empty set, see the module help.)
    """
    pipeline = read_relion_pipeline(path)
    order = _order(pipeline)
    names = {p: _output_names(pipeline, pipeline.processes[p]) for p in order}
    # read and convert everything first: a bad file must not leave half a pipeline behind
    prepared = []
    for name in order:
        process = pipeline.processes[name]
        folder = pipeline.folder / name
        options, job_type = _job_options(folder)
        outputs = {names[name][node]: _node_set(pipeline, node) for node in process.outputs}
        prepared.append((process, folder, options, job_type, outputs))
    created: dict[str, Run] = {}
    with project.importing():  # all jobs or none, their folders included
        for entry in prepared:
            _insert_job(project, pipeline, names, created, *entry)
    return [created[name] for name in order]


def _insert_job(
    project: Project,
    pipeline: Any,
    names: Mapping[str, Mapping[str, str]],
    created: dict[str, Run],
    process: Any,
    folder: Path,
    options: Any,
    job_type: str | None,
    outputs: Mapping[str, Set],
) -> None:
    """Insert one RELION job as a finished run, inside the import's transaction."""
    inputs_from: list[str] = []
    unresolved: list[str] = []
    for node in process.inputs:
        producer = pipeline.producer(node)
        if producer is None or producer == process.name or producer not in created:
            unresolved.append(node)
            continue
        ref = f"{created[producer].id}.{names[producer][node]}"
        if ref not in inputs_from:
            inputs_from.append(ref)
    origin: dict[str, Any] = {
        "pipeline": str(pipeline.path.resolve()),
        "process": process.name,
        "alias": process.alias,
        "status": process.status,
        "type": process.type,
        "nodes": {names[process.name][n]: n for n in process.outputs},
    }
    if job_type and job_type != process.type:
        origin["job_star_type"] = job_type
    if unresolved:
        origin["unresolved_inputs"] = unresolved
    comment = " ".join(
        part
        for part in (
            f"alias: {process.alias}" if process.alias else "",
            f"(RELION status: {process.status})" if process.status != "Succeeded" else "",
        )
        if part
    )
    created[process.name] = project.insert_imported_run(
        "external.job",
        {
            "program": "relion",
            "job": process.type,
            "source": str(folder.resolve()),
            "settings": json.dumps(options),
            "inputs_from": inputs_from,
            "output_names": list(outputs),
            "output_types": [outputs[n].type_name for n in outputs],
        },
        outputs,
        label=process.name,
        comment=comment,
        origin={"relion": origin},
    )


def import_relion(project: Project, path: str | os.PathLike[str]) -> list[Run]:
    """Import a RELION pipeline (file or project folder) or one STAR file of items.

    A folder, or a STAR file with a ``pipeline_processes`` block, is imported with
    :func:`import_relion_pipeline`; any other STAR file with :func:`import_relion_star`.
    """
    file = Path(path)
    if file.is_dir() or _is_pipeline(file):
        return import_relion_pipeline(project, file)
    return [import_relion_star(project, file)]


def import_relion_star(project: Project, path: str | os.PathLike[str]) -> Run:
    """Import one RELION particles / micrographs / movies / coordinates STAR file as a run.

    The run is a finished ``external.job`` with one output, the converted set.

    Raises
    ------
    FormatError, StarError
        If the file cannot be read or holds no particles, micrographs or coordinates.
    """
    file = Path(path)
    guess = _star_kind(file)
    if guess is None:
        raise FormatError(
            file,
            "not a RELION particles, micrographs or coordinates STAR file (no rlnImageName, "
            "rlnMicrographName or rlnCoordinateX label)",
        )
    converted = _convert_star(file, guess, None)
    assert converted is not None  # every kind _star_kind names has a converter
    name = _identifier(guess.removeprefix("SetOf").lower())
    return project.add_imported_run(
        "external.job",
        {
            "program": "relion",
            "job": "relion.star",
            "source": str(file.resolve()),
            "output_names": [name],
            "output_types": [converted.type_name],
        },
        {name: converted},
        label=file.name,
        origin={"relion": {"file": str(file.resolve())}},
    )


# -- pipeline helpers ------------------------------------------------------------------------
def _records(blocks: Mapping[str, Any], name: str, file: Path) -> list[dict[str, str]]:
    """The rows of a loop block as dicts of text (an absent block has none)."""
    table = blocks.get(name)
    if table is None:
        return []
    if isinstance(table, dict):
        if not table:
            return []
        raise FormatError(file, f"data_{name} is not a loop_ block")
    return [{k: "" if v is None else str(v) for k, v in row.items()} for row in table.to_pylist()]


def _pairs(blocks: Mapping[str, Any], name: str) -> dict[str, str]:
    """The key-value pairs of a block (none when absent or a loop)."""
    found = blocks.get(name)
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def _is_pipeline(file: Path) -> bool:
    """Whether a STAR file is a pipeline (its first megabyte has data_pipeline_processes)."""
    try:
        with open(file, "rb") as handle:
            return b"data_pipeline_processes" in handle.read(1 << 20)
    except OSError as exc:
        raise FormatError(file, f"cannot read it: {exc}") from None


def _label(value: str | None, table: Mapping[int, str], what: str) -> str:
    if value is None or not value.strip().lstrip("-").isdigit():
        return value or ""
    return table.get(int(value), f"{what} {value}")


def _order(pipeline: Pipeline) -> list[str]:
    """Job names with every job after the jobs it takes inputs from (file order otherwise)."""
    needs: dict[str, set[str]] = {}
    for name, process in pipeline.processes.items():
        producers = {pipeline.producer(n) for n in process.inputs}
        needs[name] = {p for p in producers if p is not None and p != name}
    order: list[str] = []
    done: set[str] = set()
    while len(order) < len(needs):
        # the first job (in file order) whose inputs are all there: file order is kept
        # wherever it is already a dependency order
        ready = next((n for n in needs if n not in done and needs[n] <= done), None)
        if ready is None:
            stuck = sorted(n for n in needs if n not in done)
            raise FormatError(pipeline.path, f"jobs {stuck} take inputs from each other")
        order.append(ready)
        done.add(ready)
    return order


def _output_names(pipeline: Pipeline, process: _Process) -> dict[str, str]:
    """Node name -> output name, an identifier unique within the job."""
    names: dict[str, str] = {}
    for node in process.outputs:
        text = node[len(process.name) :] if node.startswith(process.name) else node
        base = _identifier(text)
        name = base
        count = 1
        while name in names.values():
            count += 1
            name = f"{base}_{count}"
        names[node] = name
    return names


def _identifier(text: str) -> str:
    name = re.sub(r"\W+", "_", text).strip("_") or "output"
    if name[0].isdigit() or name in RESERVED_OUTPUT_NAMES:
        name = f"out_{name}"
    return name


def _job_options(folder: Path) -> tuple[dict[str, str], str]:
    """The job's options (``job.star``, else ``run.job``) and the type it names, if any."""
    star = folder / "job.star"
    if star.is_file():
        blocks = read_star(star)
        job = _pairs(blocks, "job")
        kind = job.get("rlnJobTypeLabel") or _label(
            job.get("rlnJobType"), PROCESS_TYPES, "relion.type"
        )
        options = {
            values.get("rlnJobOptionVariable", ""): values.get("rlnJobOptionValue", "")
            for values in _records(blocks, "joboptions_values", star)
        }
        return options, kind
    legacy = folder / "run.job"
    if legacy.is_file():
        options = {}
        for line in legacy.read_text(encoding="utf-8", errors="replace").splitlines():
            key, sep, value = line.partition("==")
            if sep:
                options[key.strip()] = value.strip()
        kind = _label(options.get("job_type"), PROCESS_TYPES, "relion.type")
        return options, kind
    return {}, ""


def _node_set(pipeline: Pipeline, node: str) -> Set:
    """The set of an output node: the file's content where readable, else empty.

    A STAR file that does not convert (a RELION 3 ``coords_suffix`` file, a damaged file) gives
    an empty set too, its ``relion_error`` property saying why, and a logged warning.
    """
    type_name = pipeline.node_types.get(node, "Set")
    file = (pipeline.folder / node).resolve()
    properties = {"relion_file": str(file), "relion_node_type": pipeline.node_labels.get(node)}
    content: Set | None = None
    if file.is_file() and file.suffix == ".star":
        try:
            found = _star_kind(file) if type_name in _ITEM_KINDS else type_name
            if found != type_name:
                raise FormatError(file, f"holds no {_ITEM_KINDS[type_name]} (found {found})")
            content = _convert_star(file, type_name, pipeline.folder.resolve())
        except CryolabError as exc:
            log.warning("%s: not converted to a %s: %s", file, type_name, exc)
            properties["relion_error"] = str(exc)
    elif file.is_file() and type_name == "SetOfVolumes" and file.suffix in _MAP_SUFFIXES:
        content = set_type(type_name)(
            {
                "uid": pa.array(np.asarray([_seed(file) or 1], dtype=np.uint64)),
                "image.path": pa.array([str(file)]),
                "image.index": pa.array([1], pa.int64()),
            }
        )
    if content is None:
        return set_type(type_name)(properties=properties)
    content.properties.update(properties)
    return content


def _seed(file: Path) -> int:
    """A seed (and uid) of a file: its uids are reproducible and differ from other files'."""
    digest = hashlib.blake2b(str(file.resolve()).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFFFFFFFFFFFFFF


def _convert_star(file: Path, type_name: str, root: Path | None) -> Set | None:
    """A STAR file's content through :mod:`cryolab.em.relion`, for the types it converts.

    ``root`` is the folder image paths are relative to (the RELION project); ``None`` lets
    the converter look for it from the file's folder up.
    """
    seed = _seed(file)
    converted: Set | None = None
    if type_name == "SetOfParticles":
        converted = relion.star_to_particles(file, root=root, seed=seed)
    elif type_name == "SetOfMicrographs":
        converted = relion.star_to_micrographs(file, root=root)
    elif type_name == "SetOfCoordinates":
        converted = star_to_coordinates(file, root=root, seed=seed)
    elif type_name == "FSC":
        converted = relion_results.read_postprocess_fsc(file, seed=seed)
    return converted


_ITEM_KINDS = {
    "SetOfParticles": "particles (rlnImageName)",
    "SetOfMicrographs": "micrographs (rlnMicrographName)",
    "SetOfCoordinates": "coordinates (rlnCoordinateX or rlnMicrographCoordinates)",
}


def _star_kind(file: Path) -> str | None:
    """What a STAR file holds, from the labels in its first megabyte."""
    try:
        with open(file, "rb") as handle:
            head = handle.read(1 << 20)
    except OSError as exc:
        raise FormatError(file, f"cannot read it: {exc}") from None
    for label, kind in (
        (b"_rlnImageName", "SetOfParticles"),
        (b"_rlnCoordinateX", "SetOfCoordinates"),
        (b"_rlnMicrographCoordinates", "SetOfCoordinates"),
        (b"_rlnMicrographName", "SetOfMicrographs"),
    ):
        if label in head:
            return kind
    return None
