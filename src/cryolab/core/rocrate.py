"""An RO-Crate of a project report, following the Workflow Run Crate profile 0.5.

The crate's root is the report folder. Its main entity is ``workflow.json``, the project's runs
exported as a cryolab workflow template (a ``File``, ``SoftwareSourceCode`` and
``ComputationalWorkflow`` in the *cryolab workflow* language). One ``CreateAction`` records the
execution of the whole workflow (its ``instrument`` is the workflow) and one ``CreateAction``
per run records that run (its ``instrument`` the protocol as a ``SoftwareApplication`` whose
parameters are ``FormalParameter`` entities); the run's parameter values are ``PropertyValue``
entities among its ``object``, as in the Provenance Run Crate profile.

Run outputs stay in the project: the crate does not copy set data. They are contextual entities
(``CreativeWork``, ids ``#run-N-output-NAME``) whose ``identifier`` is the set folder relative
to the project, so the crate describes them without claiming to carry them. The report files
and figures written beside the metadata are the crate's data entities.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from cryolab._version import __version__
from cryolab.core.errors import CryolabError
from cryolab.core.params import BoolParam, FloatParam, InputParam, IntParam, ListParam, RangeParam
from cryolab.core.plugins import registry
from cryolab.core.runs import ACTIVE as RUN_ACTIVE

if TYPE_CHECKING:
    from cryolab.core.report import Report, RunEntry

METADATA_FILE = "ro-crate-metadata.json"
WORKFLOW_FILE = "workflow.json"
RO_CRATE = "https://w3id.org/ro/crate/1.1"
PROFILES = {
    "https://w3id.org/ro/wfrun/process/0.5": ("Process Run Crate", "0.5"),
    "https://w3id.org/ro/wfrun/workflow/0.5": ("Workflow Run Crate", "0.5"),
    "https://w3id.org/workflowhub/workflow-ro-crate/1.0": ("Workflow RO-Crate", "1.0"),
}
CONTEXT = [
    "https://w3id.org/ro/crate/1.1/context",
    "https://w3id.org/ro/terms/workflow-run/context",
]
LANGUAGE = "#cryolab-workflow"
COMPLETED = "http://schema.org/CompletedActionStatus"
FAILED = "http://schema.org/FailedActionStatus"
ACTIVE = "http://schema.org/ActiveActionStatus"
MEDIA = {".html": "text/html", ".md": "text/markdown", ".svg": "image/svg+xml", ".png": "image/png"}


def _ref(identifier: str) -> dict[str, str]:
    return {"@id": identifier}


def _iso(timestamp: float | None) -> str | None:
    from datetime import datetime, timezone

    if not timestamp:
        return None
    return (
        datetime.fromtimestamp(timestamp, timezone.utc).astimezone().isoformat(timespec="seconds")
    )


def _status(status: str) -> str:
    """The schema.org action status of a run status."""
    if status == "finished":
        return COMPLETED
    return ACTIVE if status in RUN_ACTIVE else FAILED


def _tool_id(protocol: str) -> str:
    return f"#protocol-{protocol}"


def _output_id(run_id: int, name: str) -> str:
    return f"#run-{run_id}-output-{name}"


def _additional_type(param: Any) -> str:
    """The schema.org type a parameter's values have (``FormalParameter.additionalType``)."""
    if isinstance(param, InputParam):
        return "Dataset"
    if isinstance(param, BoolParam):
        return "Boolean"
    if isinstance(param, IntParam):
        return "Integer"
    if isinstance(param, FloatParam):
        return "Float"
    if isinstance(param, (ListParam, RangeParam)):
        return "ItemList"
    return "Text"


def _value(value: Any) -> Any:
    """A ``PropertyValue.value``: numbers, booleans and text as they are, others as JSON."""
    if isinstance(value, (str, int, float, bool)):
        return value
    return json.dumps(value)


def build(report: Report, documents: list[str], figures: list[str]) -> dict[str, Any]:
    """The ``ro-crate-metadata.json`` document of a written report.

    Parameters
    ----------
    report
        The report.
    documents
        The report files written in the crate folder (``report.html``, ``report.md``).
    figures
        The figure files written there (paths relative to the folder).
    """
    graph: list[dict[str, Any]] = []
    workflow_run = "#workflow-run"
    run_actions = [f"#run-{run.id}" for run in report.runs if run.status != "saved"]
    graph.append(
        {
            "@id": METADATA_FILE,
            "@type": "CreativeWork",
            "conformsTo": [
                _ref(RO_CRATE),
                _ref("https://w3id.org/workflowhub/workflow-ro-crate/1.0"),
            ],
            "about": _ref("./"),
        }
    )
    graph.append(
        {
            "@id": "./",
            "@type": "Dataset",
            "name": report.title,
            "description": (
                f"Report of the cryolab project {report.path.name}: run graph, methods, "
                "parameters, figures and provenance of its runs, with the runs as a workflow."
            ),
            "datePublished": report.created.isoformat(timespec="seconds"),
            "license": _ref(report.license),
            "conformsTo": [_ref(url) for url in PROFILES],
            "mainEntity": _ref(WORKFLOW_FILE),
            "hasPart": [_ref(p) for p in (WORKFLOW_FILE, *documents, *figures)],
            "mentions": [_ref(workflow_run), *(_ref(a) for a in run_actions)],
        }
    )
    graph.extend(
        {"@id": url, "@type": "CreativeWork", "name": name, "version": version}
        for url, (name, version) in PROFILES.items()
    )
    graph.append({"@id": report.license, "@type": "CreativeWork", "name": report.license})
    graph.append(
        {
            "@id": WORKFLOW_FILE,
            "@type": ["File", "SoftwareSourceCode", "ComputationalWorkflow"],
            "name": f"cryolab workflow of {report.path.name}",
            "description": "The project's runs as a cryolab workflow template (format "
            "cryolab.workflow, version 1), importable with `cryolab import`.",
            "encodingFormat": "application/json",
            "programmingLanguage": _ref(LANGUAGE),
            "hasPart": [_ref(t) for t in dict.fromkeys(_tool_id(r.protocol) for r in report.runs)],
        }
    )
    graph.append(
        {
            "@id": LANGUAGE,
            "@type": "ComputerLanguage",
            "name": "cryolab workflow",
            "alternateName": "cryolab.workflow",
            "version": "1",
            "description": "JSON workflow templates of the cryolab engine "
            "(docs/workflow.schema.json of cryolab).",
        }
    )
    graph.append(
        {
            "@id": "#cryolab",
            "@type": "SoftwareApplication",
            "name": "cryolab",
            "softwareVersion": (report.versions.get("cryolab") or [__version__])[0],
            "description": "A Jupyter-native workflow engine for cryo-electron microscopy.",
        }
    )
    graph.append(_workflow_action(report, workflow_run))
    done: set[str] = set()
    for run in report.runs:
        if run.protocol not in done:
            done.add(run.protocol)
            graph.extend(_tool(run.protocol))
        if run.status != "saved":
            graph.extend(_run_action(run))
    for document in documents:
        graph.append(
            {
                "@id": document,
                "@type": "File",
                "name": f"Project report ({document.rsplit('.', 1)[1].upper()})",
                "encodingFormat": MEDIA["." + document.rsplit(".", 1)[1]],
                "about": _ref(workflow_run),
            }
        )
    captions = {
        report.figure_file(run, output, figure): (run, figure)
        for run in report.runs
        for output, figure in run.figures
    }
    for path in figures:
        run, figure = captions[path]
        graph.append(
            {
                "@id": path,
                "@type": "File",
                "name": f"{figure.title} (run {run.id})",
                "description": figure.caption,
                "encodingFormat": figure.media_type,
                "about": _ref(f"#run-{run.id}"),
            }
        )
    return {"@context": CONTEXT, "@graph": graph}


def _workflow_action(report: Report, identifier: str) -> dict[str, Any]:
    ran = [r for r in report.runs if r.status != "saved"]
    starts = [r.started for r in ran if r.started]
    ends = [r.finished for r in ran if r.finished]
    failed = [r.id for r in ran if r.status != "finished"]
    action: dict[str, Any] = {
        "@id": identifier,
        "@type": "CreateAction",
        "name": f"Execution of the cryolab workflow of {report.path.name}",
        "instrument": _ref(WORKFLOW_FILE),
        "result": [
            _ref(_output_id(r.id, o["name"]))
            for r in ran
            for o in r.outputs
            if r.status == "finished"
        ],
        "actionStatus": _ref(FAILED if failed else COMPLETED),
    }
    if starts:
        action["startTime"] = _iso(min(starts))
    if ends:
        action["endTime"] = _iso(max(ends))
    if failed:
        action["error"] = f"runs {failed} did not finish"
    return action


def _tool(protocol: str) -> list[dict[str, Any]]:
    """The protocol as a ``SoftwareApplication`` and its parameters as ``FormalParameter``s."""
    tool: dict[str, Any] = {
        "@id": _tool_id(protocol),
        "@type": "SoftwareApplication",
        "name": protocol,
        "isPartOf": _ref("#cryolab"),
    }
    try:
        cls = registry.get(protocol)
    except CryolabError:
        return [tool]
    tool["description"] = (cls.__doc__ or cls.label or protocol).strip().split("\n\n")[0]
    params: list[dict[str, Any]] = []
    for name, param in cls.params().items():
        entity: dict[str, Any] = {
            "@id": f"{_tool_id(protocol)}-param-{name}",
            "@type": "FormalParameter",
            "name": name,
            "additionalType": _additional_type(param),
            "valueRequired": bool(param.required),
        }
        if param.help:
            entity["description"] = param.help
        params.append(entity)
    outputs = [
        {
            "@id": f"{_tool_id(protocol)}-output-{name}",
            "@type": "FormalParameter",
            "name": name,
            "additionalType": "Dataset",
            "description": output.help or f"output {name}",
        }
        for name, output in cls.outputs.items()
    ]
    tool["input"] = [_ref(p["@id"]) for p in params]
    tool["output"] = [_ref(p["@id"]) for p in outputs]
    return [tool, *params, *outputs]


def _run_action(run: RunEntry) -> list[dict[str, Any]]:
    """A run's ``CreateAction``, its parameter values and its outputs."""
    identifier = f"#run-{run.id}"
    tool = _tool_id(run.protocol)
    values = [
        {
            "@id": f"{identifier}-param-{name}",
            "@type": "PropertyValue",
            "name": name,
            "value": _value(value),
            "exampleOfWork": _ref(f"{tool}-param-{name}"),
        }
        for name, value in run.params.items()
        if value is not None
    ]
    inputs = [_ref(_output_id(int(i["run"]), str(i["output"]))) for i in run.inputs]
    outputs = [
        {
            "@id": _output_id(run.id, o["name"]),
            "@type": "CreativeWork",
            "name": f"{o['name']} of run {run.id}",
            "description": f"{o['type']}: {o['count']} items ({o['state']}), a cryolab set "
            "folder in the project (not copied into this crate)",
            "identifier": o["path"] + "/",
            "exampleOfWork": _ref(f"{tool}-output-{o['name']}"),
        }
        for o in run.outputs
    ]
    action: dict[str, Any] = {
        "@id": identifier,
        "@type": "CreateAction",
        "name": f"Run {run.id}: {run.label or run.protocol}",
        "description": run.methods or f"Run {run.id} of {run.protocol} ({run.status})",
        "instrument": _ref(tool),
        "object": [*inputs, *(_ref(v["@id"]) for v in values)],
        "result": [_ref(o["@id"]) for o in outputs] if run.status == "finished" else [],
        "actionStatus": _ref(_status(run.status)),
    }
    for key, stamp in (("startTime", run.started), ("endTime", run.finished)):
        if stamp:
            action[key] = _iso(stamp)
    if _status(run.status) == FAILED:
        action["error"] = f"the run is {run.status}"
    return [action, *values, *outputs]
