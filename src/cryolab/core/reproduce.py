"""Re-execute a project, a workflow or a notebook into a new project and compare the results.

:func:`reproduce` (``cryolab reproduce SOURCE --into NEWPATH``) takes

- a **project** folder: its finished runs are exported as a workflow (seeds included),
  imported into the new project, launched and compared run by run with their source runs
  (an imported run's ``origin`` names its template key, ``"r<source run id>"``);
- a **workflow** JSON file: imported and launched; compared with the runs of ``against``
  (template key ``"r12"`` → run 12) when given, else only run and reported;
- a **notebook** (``.ipynb``): executed with papermill into ``NEWPATH/notebooks/`` with the
  parameter ``project_path=NEWPATH``; the new project's runs, in creation order, pair with the
  run ids listed in the notebook's ``metadata["cryolab"]`` (``against`` overrides the project).

Every reproduced run then gets a verdict from :mod:`cryolab.core.reproduce_compare`, and the
:class:`~cryolab.core.reproduce_report.ReproductionReport` is written to
``NEWPATH/reproduction.json`` and ``reproduction.txt``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cryolab.core import database
from cryolab.core.errors import CryolabError, PluginError, ProtocolNotFoundError
from cryolab.core.params import InputParam
from cryolab.core.plugins import registry
from cryolab.core.project import Project, open_project
from cryolab.core.reproduce_compare import (
    DIFFERS,
    NOT_COMPARED,
    VERDICTS,
    CompareContext,
    Tolerances,
    compare_outputs,
    worst,
)
from cryolab.core.reproduce_report import FORMAT, VERSION, ReproductionReport
from cryolab.core.runs import ACTIVE, Run

__all__ = ["ReproductionError", "ReproductionReport", "Tolerances", "compare_projects", "reproduce"]

KEY = re.compile(r"r(\d+)")
WORKFLOW_NAME = "workflow.json"


class ReproductionError(CryolabError):
    """A reproduction cannot start: a missing or unknown source, an existing target, ..."""


def reproduce(
    source: str | os.PathLike[str],
    into: str | os.PathLike[str],
    *,
    against: str | os.PathLike[str] | None = None,
    tolerances: Tolerances | None = None,
    timeout: float | None = None,
    values: Mapping[str, Any] | None = None,
    kernel_name: str | None = None,
    start_timeout: float = 60.0,
) -> ReproductionReport:
    """Re-execute ``source`` into the new project ``into`` and compare with the original.

    Parameters
    ----------
    source
        A project folder, a workflow JSON file or a notebook (``.ipynb``).
    into
        The folder of the new project; it must not hold a project already.
    against
        The project to compare with: required for a workflow to be compared, and overriding
        the project named in a notebook's metadata.
    tolerances
        See :class:`Tolerances` (defaults when not given).
    timeout
        Seconds to wait for the runs to end (they are aborted after that); for a notebook
        also papermill's per-cell execution timeout. None: no limit.
    values
        Dynamic parameter values of a workflow template.
    kernel_name, start_timeout
        The notebook's kernel (default: its own kernelspec) and the seconds its start may take.

    Raises
    ------
    ReproductionError
        If the source is missing or of an unknown kind, ``into`` holds a project, or a
        notebook names no source project and ``against`` is not given.
    """
    source_path = Path(source).expanduser().resolve()
    target_path = Path(into).expanduser().resolve()
    kind = _source_kind(source_path)
    if (target_path / database.DB_NAME).exists():
        raise ReproductionError(f"{target_path} is a project already; reproduce into a new folder")
    if kind == "project" and target_path == source_path:
        raise ReproductionError("the new project cannot be the source project itself")
    deadline = None if timeout is None else time.monotonic() + timeout
    reference = open_project(against, create=False) if against is not None else None
    notes: list[str] = []
    notebook: dict[str, Any] | None = None
    created = not target_path.exists()
    if kind == "notebook":
        document = _notebook(source_path, reference)
        target = Project.create(target_path)
        notebook = _run_notebook(source_path, target, kernel_name, start_timeout, timeout)
        if reference is None:
            reference = open_project(document["project"], create=False)
        pairs = _notebook_pairs(target, document["runs"], notes)
    else:
        target = Project.create(target_path)
        try:
            template: dict[str, Any] | Path = source_path
            if kind == "project":
                reference = open_project(source_path, create=False)
                template = _export_finished(reference, notes)
            runs = target.import_workflow(template, values, launch=True)
        except BaseException:
            target.close()
            if created:
                shutil.rmtree(target_path, ignore_errors=True)
            raise
        if kind == "project":
            (target_path / WORKFLOW_NAME).write_text(json.dumps(template, indent=2), "utf-8")
        pairs = [(_source_id(r), r) for r in runs]
    _wait(target, [run for _, run in pairs], deadline, timeout)
    report = compare_projects(
        reference,
        target,
        pairs,
        tolerances or Tolerances(),
        header={
            "source": {"kind": kind, "path": str(source_path)},
            "against": str(reference.path) if against is not None and reference else None,
            "notebook": notebook,
            "notes": notes,
        },
    )
    report.write(target_path)
    for opened in (target, reference):
        if opened is not None:
            opened.close()
    return report


def _source_kind(path: Path) -> str:
    if not path.exists():
        raise ReproductionError(f"no such file or folder: {path}")
    if path.is_dir():
        if (path / database.DB_NAME).exists():
            return "project"
        raise ReproductionError(f"{path} is a folder but not a cryolab project (no project.sqlite)")
    if path.suffix == ".ipynb":
        return "notebook"
    if path.suffix == ".json":
        return "workflow"
    raise ReproductionError(
        f"cannot reproduce {path}: give a project folder, a workflow .json or a notebook .ipynb"
    )


def _export_finished(project: Project, notes: list[str]) -> dict[str, Any]:
    """The project's finished runs as a workflow template (unfinished ones are noted)."""
    finished = [r.id for r in project.runs() if r.status == "finished"]
    skipped = [f"{r.id} ({r.status})" for r in project.runs() if r.status != "finished"]
    if skipped:
        notes.append(f"source runs not finished, not reproduced: {', '.join(skipped)}")
    if not finished:
        raise ReproductionError(f"project {project.path} has no finished run to reproduce")
    return project.export_workflow(None, finished)


def _source_id(run: Run) -> int | None:
    origin = json.loads(run.project._run_row(run.id)["origin"] or "{}")
    match = KEY.fullmatch(str(origin.get("template_key", "")))
    return int(match.group(1)) if match else None


def _notebook(path: Path, against: Project | None) -> dict[str, Any]:
    """The notebook's cryolab metadata (project, run ids), checked before anything runs."""
    from cryolab.core import reproduce_notebook

    document = reproduce_notebook.read_notebook(path)
    if reproduce_notebook.parameters_cell(document) is None:
        raise ReproductionError(
            f"{path} has no cell tagged 'parameters' defining {reproduce_notebook.PARAMETER}; "
            "papermill could not point it at the new project"
        )
    metadata = reproduce_notebook.cryolab_metadata(document)
    if metadata is None and against is None:
        raise ReproductionError(
            f"{path} does not name its source project (metadata 'cryolab': "
            "{'project': ..., 'runs': [...]}, written by 'cryolab export-notebook'); "
            "give the project to compare with as against= (--against)"
        )
    runs = metadata["runs"] if metadata else [r.id for r in against.runs()]  # type: ignore[union-attr]
    return {"project": metadata["project"] if metadata else None, "runs": runs}


def _run_notebook(
    source: Path,
    target: Project,
    kernel_name: str | None,
    start_timeout: float,
    timeout: float | None,
) -> dict[str, Any]:
    from cryolab.core import reproduce_notebook

    folder = target.path / "notebooks"
    folder.mkdir(exist_ok=True)
    return reproduce_notebook.execute(
        source,
        folder / source.name,
        {reproduce_notebook.PARAMETER: str(target.path)},
        kernel_name=kernel_name,
        start_timeout=start_timeout,
        execution_timeout=timeout,
        cwd=source.parent,
    )


def _notebook_pairs(
    target: Project, source_ids: Sequence[int], notes: list[str]
) -> list[tuple[int | None, Run]]:
    """The new project's runs (by id) paired with the notebook's source runs, in order."""
    runs = target.runs()
    if len(runs) != len(source_ids):
        notes.append(f"the notebook created {len(runs)} runs; the source lists {len(source_ids)}")
    pairs: list[tuple[int | None, Run]] = [
        (source_ids[i] if i < len(source_ids) else None, run) for i, run in enumerate(runs)
    ]
    missing = [str(i) for i in source_ids[len(runs) :]]
    if missing:
        notes.append(f"source runs without a reproduction: {', '.join(missing)}")
    return pairs


def _wait(
    project: Project, runs: Sequence[Run], deadline: float | None, timeout: float | None
) -> None:
    """Wait until every run ends; abort those still going at the deadline."""
    for run in runs:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            run.wait(remaining, check=False)
        except TimeoutError:
            break
        except CryolabError:  # saved, never launched: reported with its status
            continue
    for run in runs:
        if run.status in ACTIVE:
            run.abort()
            project._mark(run.id, "aborted", f"did not finish within {timeout} s (aborted)")


def compare_projects(
    source: Project | None,
    reproduced: Project,
    pairs: Sequence[tuple[int | None, Run]],
    tolerances: Tolerances | None = None,
    *,
    header: Mapping[str, Any] | None = None,
) -> ReproductionReport:
    """Compare reproduced runs with their source runs and build the report.

    Parameters
    ----------
    source
        The project holding the source runs (None: nothing is compared, statuses only).
    reproduced
        The project holding the reproduced runs.
    pairs
        ``(source run id or None, reproduced run)`` per reproduced run.
    """
    tolerances = tolerances or Tolerances()
    entries = [_compare_run(source, reproduced, sid, run, tolerances) for sid, run in pairs]
    _explain_input_order(entries, {run.id: run for _, run in pairs})
    counts = {v: n for v in VERDICTS if (n := sum(e["verdict"] == v for e in entries))}
    info = dict(header or {})
    notebook = info.get("notebook")
    verdicts = [e["verdict"] for e in entries]
    if notebook and notebook["status"] != "completed":
        verdicts.append(DIFFERS)
    data = {
        "format": FORMAT,
        "version": VERSION,
        "source": info.get(
            "source", {"kind": "project", "path": str(source.path) if source else None}
        ),
        "against": info.get("against"),
        "into": str(reproduced.path),
        "tolerances": tolerances.to_dict(),
        "verdict": worst(verdicts),
        "counts": counts,
        "notebook": notebook,
        "notes": list(info.get("notes", [])),
        "runs": entries,
    }
    return ReproductionReport(data)


def reproduction_pairs(reproduced: Project) -> list[tuple[int | None, Run]]:
    """The runs of a reproduced project paired with their source runs by template key."""
    return [(_source_id(run), run) for run in reproduced.runs()]


def _compare_run(
    source: Project | None,
    reproduced: Project,
    source_id: int | None,
    run: Run,
    tolerances: Tolerances,
) -> dict[str, Any]:
    deterministic = _deterministic(run.protocol)
    entry: dict[str, Any] = {
        "source_run": source_id,
        "run": run.id,
        "protocol": run.protocol,
        "deterministic": deterministic,
        "status": run.status,
        "error": run.error,
        "verdict": NOT_COMPARED,
        "details": "",
        "params_changed": [],
        "outputs": {},
    }
    if entry["status"] != "finished":
        entry.update(
            verdict=DIFFERS, details=f"{entry['status']}: {run.error or 'no error recorded'}"
        )
        return entry
    if source is None or source_id is None:
        entry["details"] = "finished; no source run to compare with"
        return entry
    try:
        original = source.get_run(source_id)
    except CryolabError:
        entry["details"] = f"source run {source_id} is not in {source.path}"
        return entry
    if original.protocol != run.protocol:
        entry.update(verdict=DIFFERS, details=f"source run {source_id} is {original.protocol}")
        return entry
    if original.status != "finished":
        entry["details"] = f"source run {source_id} is {original.status}"
        return entry
    entry["params_changed"] = _changed_params(original, run)
    context = CompareContext(tolerances, deterministic, source.path, reproduced.path)
    outs_a, outs_b = original.out, run.out
    names = list(outs_a) + [n for n in outs_b if n not in outs_a]
    entry["outputs"] = {n: compare_outputs(outs_a.get(n), outs_b.get(n), context) for n in names}
    entry["verdict"] = worst(o["verdict"] for o in entry["outputs"].values())
    entry["details"] = _details(entry)
    return entry


def _explain_input_order(entries: Sequence[dict[str, Any]], runs: Mapping[int, Run]) -> None:
    """Note the inputs that came in another row order than the source run's inputs.

    Outputs of parallel steps are stored in the order the steps finish, so a reproduced set
    can hold the same rows in another order; a protocol whose results depend on the order of
    its input rows then differs although it is deterministic for a given input.
    """
    reordered = {
        f"{entry['run']}.{name}"
        for entry in entries
        for name, output in entry["outputs"].items()
        if output.get("row_order") == "different"
    }
    for entry in entries:
        run = runs[entry["run"]]
        try:
            inputs = registry.get(run.protocol).inputs()
        except (PluginError, ProtocolNotFoundError):
            continue
        refs = []
        for name in inputs:
            value = run.params.get(name)
            refs += value if isinstance(value, list) else [value] if value else []
        moved = [ref for ref in refs if ref in reordered]
        if moved:
            entry["inputs_reordered"] = moved
            if entry["verdict"] == DIFFERS:
                entry["details"] += f"; input {', '.join(moved)} came in another row order"


def _deterministic(protocol: str) -> bool:
    try:
        return bool(registry.get(protocol).deterministic)
    except (PluginError, ProtocolNotFoundError):
        return False


def _changed_params(original: Run, run: Run) -> list[str]:
    """Non-input parameters whose values differ (inputs name other runs, so always differ)."""
    try:
        inputs = {
            n for n, p in registry.get(run.protocol).params().items() if isinstance(p, InputParam)
        }
    except (PluginError, ProtocolNotFoundError):
        inputs = set()
    a, b = original.params, run.params
    return [n for n in sorted(set(a) | set(b)) if n not in inputs and a.get(n) != b.get(n)]


def _details(entry: Mapping[str, Any]) -> str:
    outputs = entry["outputs"]
    parts = [
        f"{name}: {out['summary']}"
        for name, out in outputs.items()
        if out["verdict"] != "identical"
    ]
    if not parts:
        parts = [f"{len(outputs)} output{'s' if len(outputs) != 1 else ''} identical"]
    if entry["params_changed"]:
        parts.append(f"parameters changed: {', '.join(entry['params_changed'])}")
    return "; ".join(parts)
