"""Re-execute a project, a workflow or a notebook into a new project and compare the results.

:func:`reproduce` (``cryolab reproduce SOURCE --into NEWPATH``) takes

- a **project** folder: its finished runs are re-made in the new project
  (:mod:`cryolab.core.reproduce_project`: exported as a workflow with their seeds, imported
  and launched; runs imported as finished results are copied) and compared run by run with
  their source runs;
- a **workflow** JSON file: imported and launched; compared with the runs of ``against``
  (template key ``"r12"`` → run 12) when given, else only run and reported;
- a **notebook** (``.ipynb``): executed with papermill into ``NEWPATH/notebooks/`` with the
  parameter ``project_path=NEWPATH``; the new project's runs, in creation order, pair with the
  run ids listed in the notebook's ``metadata["cryolab"]`` (``against`` overrides the project).

Everything is checked before ``NEWPATH`` is created; an error or an interruption before the
report is written aborts the runs this call launched and removes what it created. Every
reproduced run then gets a verdict (:mod:`cryolab.core.reproduce_runs`), and the
:class:`~cryolab.core.reproduce_report.ReproductionReport` is written to
``NEWPATH/reproduction.json`` and ``reproduction.txt``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cryolab.core import database, reproduce_project
from cryolab.core.errors import CryolabError
from cryolab.core.project import Project
from cryolab.core.reproduce_compare import Tolerances
from cryolab.core.reproduce_project import ReproductionError
from cryolab.core.reproduce_report import ReproductionReport
from cryolab.core.reproduce_runs import compare_projects, reproduction_pairs, source_id
from cryolab.core.runs import ACTIVE, Run

__all__ = [
    "ReproductionError",
    "ReproductionReport",
    "Tolerances",
    "compare_projects",
    "reproduce",
    "reproduction_pairs",
]

WORKFLOW_NAME = "workflow.json"


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
        The folder of the new project: absent, or an empty folder.
    against
        The project to compare with: required for a workflow to be compared, and overriding
        the project named in a notebook's metadata (a project source is compared with itself).
    tolerances
        See :class:`Tolerances` (defaults when not given).
    timeout
        Seconds the whole re-execution may take, counted from the call: the notebook's
        execution (each cell may take the time left) and the runs, which are aborted when it
        runs out. None: no limit.
    values
        Dynamic parameter values of a workflow template.
    kernel_name, start_timeout
        The notebook's kernel (default: its own kernelspec) and the seconds its start may take.

    Raises
    ------
    ReproductionError
        If the source is missing or of an unknown kind, ``into`` cannot be a new project,
        ``against`` is given with a project source, or the project to compare with is not a
        cryolab project (a notebook naming none needs ``against``).
    """
    source_path = Path(source).expanduser().resolve()
    target_path = Path(into).expanduser().resolve()
    kind = _source_kind(source_path)
    if kind == "project" and against is not None:
        raise ReproductionError(
            "--against applies to a workflow or a notebook source; a project is compared "
            "with itself"
        )
    if kind == "project" and target_path == source_path:
        raise ReproductionError("the new project cannot be the source project itself")
    _check_target(target_path)
    deadline = None if timeout is None else time.monotonic() + timeout
    with contextlib.ExitStack() as stack:
        reference = None
        if against is not None:
            reference = _open(stack, Path(against).expanduser(), "--against")
        elif kind == "project":
            reference = _open(stack, source_path, "the source")
        document = None
        if kind == "notebook":
            document = _notebook(source_path, reference)
            if reference is None:
                named = Path(document["project"]).expanduser()
                reference = _open(stack, named, f"the project named in {source_path.name}")
        created = not target_path.exists()
        target = Project.create(target_path)
        stack.callback(target.close)
        notes: list[str] = []
        notebook: dict[str, Any] | None = None
        try:
            if document is not None:
                notebook = _run_notebook(
                    source_path, target, kernel_name, start_timeout, deadline, timeout
                )
                pairs = _notebook_pairs(target, document["runs"], notes)
            elif kind == "project":
                assert reference is not None
                pairs = _remake(reference, target, values, notes)
            else:
                runs = target.import_workflow(source_path, values, launch=True)
                pairs = [(source_id(r), r) for r in runs]
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
        except BaseException:
            _undo(target, target_path, created)
            raise
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


def _check_target(path: Path) -> None:
    """Refuse a ``NEWPATH`` that cannot become a new project, naming the reason."""
    if (path / database.DB_NAME).exists():
        raise ReproductionError(f"{path} is a project already; reproduce into a new folder")
    if path.exists() and not path.is_dir():
        raise ReproductionError(f"{path} is a file; reproduce into a new folder")
    if path.is_dir() and any(path.iterdir()):
        raise ReproductionError(f"{path} is a folder that is not empty; reproduce into a new one")
    existing = path if path.exists() else next(p for p in path.parents if p.exists())
    if not existing.is_dir():
        raise ReproductionError(f"cannot create {path}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ReproductionError(f"cannot create {path}: {existing} is not writable")


def _open(stack: contextlib.ExitStack, path: Path, what: str) -> Project:
    """Open a project to compare with (closed when ``stack`` closes), refusing anything else."""
    if not (path / database.DB_NAME).exists():
        raise ReproductionError(f"{what}, {path}, is not a cryolab project (no project.sqlite)")
    project = Project(path)
    stack.callback(project.close)
    return project


def _undo(target: Project, path: Path, created: bool) -> None:
    """Abort the runs this call launched and remove the new project (the folder was empty)."""
    with contextlib.suppress(Exception):
        for run in target.runs():
            if run.status in ACTIVE:
                run.abort()
    target.close()
    if created:
        shutil.rmtree(path, ignore_errors=True)
    else:
        for child in path.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)


def _remake(
    source: Project,
    target: Project,
    values: Mapping[str, Any] | None,
    notes: list[str],
) -> list[tuple[int | None, Run]]:
    """Copy the imported runs, re-make the computed ones (launched); pair them by source id."""
    imported, computed = reproduce_project.finished_runs(source, notes)
    copies = reproduce_project.copy_imported(source, target, imported)
    pairs: list[tuple[int | None, Run]] = [(i, run) for i, run in copies.items()]
    if computed:
        template = source.export_workflow(None, [r.id for r in computed])
        wired = {**(values or {}), **reproduce_project.wiring(source, template, copies)}
        runs = target.import_workflow(template, wired, launch=True)
        (target.path / WORKFLOW_NAME).write_text(json.dumps(template, indent=2), "utf-8")
        pairs += [(source_id(r), r) for r in runs]
    return sorted(pairs, key=lambda pair: pair[0] or 0)


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
    deadline: float | None,
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
        deadline=deadline,
        timeout=timeout,
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
    """Wait until every run ends; abort those still going at the deadline.

    A run that ends on its own while being aborted keeps its status: only a run the abort
    ended is given the timeout as its error.
    """
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
            with database.transaction(project.db):
                project.db.execute(
                    "UPDATE runs SET error = ? WHERE id = ? AND status = 'aborted'",
                    (f"did not finish within {timeout} s (aborted)", run.id),
                )
