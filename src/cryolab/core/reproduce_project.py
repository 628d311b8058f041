"""A project as the source of a reproduction: its finished runs re-made in the new project.

Computed runs are exported as a workflow (seeds included), imported into the new project and
launched; each names its source run in its template key (``"r12"`` → run 12). Runs imported
as finished results (``origin["imported"]``: RELION or Scipion jobs) cannot be recomputed:
they are copied as imported results, with the same sets, and record their source run in
``origin["copied_from"]``; the workflow's inputs from them are wired to the copies.
"""

from __future__ import annotations

from typing import Any

from cryolab.core.editing import topological_order
from cryolab.core.errors import CryolabError
from cryolab.core.params import InputParam, split_reference
from cryolab.core.plugins import registry
from cryolab.core.project import Project
from cryolab.core.runs import Run
from cryolab.core.templates import MARKER


class ReproductionError(CryolabError):
    """A reproduction cannot start: a missing or unknown source, an existing target, ..."""


def finished_runs(project: Project, notes: list[str]) -> tuple[list[Run], list[Run]]:
    """The project's finished runs: ``(imported, computed)``; unfinished ones are noted."""
    runs = project.runs()
    skipped = [f"{r.id} ({r.status})" for r in runs if r.status != "finished"]
    if skipped:
        notes.append(f"source runs not finished, not reproduced: {', '.join(skipped)}")
    finished = [r for r in runs if r.status == "finished"]
    if not finished:
        raise ReproductionError(f"project {project.path} has no finished run to reproduce")
    imported = [r for r in finished if r.origin.get("imported")]
    if imported:
        notes.append(
            "runs imported as finished results, copied as they are: "
            + ", ".join(str(r.id) for r in imported)
        )
    return imported, [r for r in finished if not r.origin.get("imported")]


def copy_imported(source: Project, target: Project, runs: list[Run]) -> dict[int, Run]:
    """Copy imported runs into ``target`` as imported runs (all or nothing); source id → copy."""
    copies: dict[int, Run] = {}
    order = topological_order(source, [r.id for r in runs])
    with target.importing():
        for run_id in order:
            run = source.get_run(run_id)
            copies[run_id] = target.insert_imported_run(
                run.protocol,
                _rewired(run, run.params, copies),
                {name: ref.load() for name, ref in run.out.items()},
                label=run.label,
                comment=run.comment,
                origin={**run.origin, "copied_from": run_id},
            )
    return copies


def wiring(source: Project, template: dict[str, Any], copies: dict[int, Run]) -> dict[str, Any]:
    """Values of the template's dynamic inputs (inputs from runs outside it): the copies."""
    values: dict[str, Any] = {}
    for entry in template["runs"]:
        run = source.get_run(int(entry["key"][1:]))
        for name, value in entry["inputs"].items():
            if isinstance(value, dict) and MARKER in value:
                values[value[MARKER]] = _rewired(run, {name: run.params[name]}, copies)[name]
    return values


def _rewired(run: Run, params: dict[str, Any], copies: dict[int, Run]) -> dict[str, Any]:
    """``params`` with the inputs naming copied runs renamed to the copies."""
    described = registry.get(run.protocol).params()
    inputs = {n for n, p in described.items() if isinstance(p, InputParam)}
    rewired = dict(params)
    for name, value in params.items():
        if name not in inputs or not value:
            continue
        refs = value if isinstance(value, list) else [value]
        renamed = []
        for ref in refs:
            upstream, output = split_reference(str(ref))
            if upstream not in copies:
                raise ReproductionError(
                    f"run {run.id} ({run.protocol}): its input {name!r} names run {upstream}, "
                    "which is not a finished imported run; the reproduction cannot wire it"
                )
            renamed.append(f"{copies[upstream].id}.{output}")
        rewired[name] = renamed if isinstance(value, list) else renamed[0]
    return rewired
