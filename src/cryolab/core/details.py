"""JSON documents about a project and its runs, built from the engine's own calls.

They hold the same data as ``cryolab info --json``, ``cryolab status --json`` and
``cryolab log``, plus what a run graph shows next to a run (inputs, times, summary,
provenance); the server extension's REST API and the notebook's ``project.graph()`` both show
:func:`run_details`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from cryolab.core.errors import CryolabError, RunNotFoundError
from cryolab.core.project import Project
from cryolab.core.runs import OutputRef, Run

log = logging.getLogger(__name__)


def inside(path: Path, root: Path) -> bool:
    """Whether ``path``, with every symlink resolved, lies in the resolved ``root``."""
    return path.resolve().is_relative_to(root.resolve())


STEP_STATES = ("pending", "running", "done", "failed")


def project_entry(identifier: str, project: Project) -> dict[str, Any]:
    """One entry of the project list: id, name, path, run count and runs per status."""
    info = project.info()
    return {
        "id": identifier,
        "name": project.path.name,
        "path": info["path"],
        "runs": info["runs"],
        "status": info["status"],
        "schema_version": info["schema_version"],
    }


def _describe(ref: OutputRef) -> dict[str, Any]:
    """The reference, type, item count and state of an output."""
    return {
        "ref": str(ref),
        "type": ref.types[0],
        "types": ref.types,
        "count": ref.count,
        "state": ref.state,
    }


def _inputs(project: Project, run: Run) -> list[dict[str, Any]]:
    """The outputs of other runs this run reads, from the edges of the run graph."""
    inputs = []
    for edge in project.db.execute(
        "SELECT src_run, src_output, dst_param, position FROM edges WHERE dst_run = ? "
        "ORDER BY dst_param, position",
        (run.id,),
    ):
        entry: dict[str, Any] = {
            "param": edge["dst_param"],
            "position": edge["position"],
            "run": edge["src_run"],
            "output": edge["src_output"],
        }
        try:
            entry.update(_describe(project.get_run(edge["src_run"]).out[edge["src_output"]]))
        except (RunNotFoundError, KeyError):
            entry.update(ref=f"{edge['src_run']}.{edge['src_output']}", count=None)
        inputs.append(entry)
    return inputs


def _summary(project: Project, run: Run) -> str | None:
    """The protocol's summary, or ``None`` where its protocol cannot be loaded here."""
    try:
        return project.summary(run.id)
    except CryolabError as exc:
        log.info("no summary for run %d of %s: %s", run.id, project.path, exc)
        return None


def log_tail(project: Project, run: Run, lines: int) -> str | None:
    """The last ``lines`` of the run's log; ``None`` if the log file leads out of the project."""
    path = run.folder / "run.log"
    if not inside(path, project.path):
        log.warning("refusing to read %s: it is outside the project %s", path, project.path)
        return None
    return run.log(tail=lines)


def run_details(project: Project, run_id: int, lines: int) -> dict[str, Any]:
    """Everything the run-graph panel shows about one run.

    Parameters
    ----------
    project
        The open project.
    run_id
        The run.
    lines
        How many lines of the log's end to include.

    Raises
    ------
    RunNotFoundError
        If the project has no run ``run_id``.
    """
    run = project.get_run(run_id)
    row = project._run_row(run_id)
    steps = run.steps()
    return {
        "id": run.id,
        "protocol": run.protocol,
        "label": run.label,
        "comment": run.comment,
        "status": run.status,
        "error": run.error,
        "params": run.params,
        "inputs": _inputs(project, run),
        "outputs": {name: _describe(ref) for name, ref in run.out.items()},
        "steps": {state: sum(1 for s in steps if s["status"] == state) for state in STEP_STATES},
        "summary": _summary(project, run),
        "created": row["created"],
        "started": row["started"],
        "finished": row["finished"],
        "origin": json.loads(row["origin"]),
        "notebook": run.notebook,
        "folder": str(row["folder"]),
        "log": log_tail(project, run, lines),
        "provenance": run.provenance,
    }
