"""``cryolab export-notebook``: runs written as a runnable notebook that rebuilds them.

The notebook (nbformat 4.5 JSON, written here without nbformat) has

1. a title (project, runs, cryolab version, date);
2. a cell tagged ``parameters`` for papermill: ``project_path`` (the new project to build), then
   the data paths (path parameters) and the acquisition values (parameters of a form section
   named ``Acquisition...``) of the runs, with their current values, units and runs as comments;
3. ``project = cryolab.open_project(project_path)``;
4. one cell per run, in dependency order: ``r5 = project.run("spa.extract", micrographs=
   r2.out.micrographs, ..., seed=...)`` with every recorded value (or the parameter variable it
   came from), the recorded seed, label and comment; each cell's metadata names its source
   run (``{"cryolab": {"source_run": 5}}``);
5. a last cell that waits for every run (failing if one failed) and shows the run graph.

Runs are launched without waiting for their inputs: the engine schedules a run until its
inputs have finished, so independent branches run side by side. The upstream runs of the
chosen runs are exported with them, so the notebook runs on its own. Runs imported as finished
results (``origin["imported"]``) cannot be recomputed and are refused. The notebook's metadata
``cryolab`` holds the source project and the source run ids in the order the notebook creates
them: ``cryolab reproduce`` relies on both, and on the ``project_path`` parameter.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryolab._version import __version__
from cryolab.core.editing import topological_order
from cryolab.core.errors import ProjectError
from cryolab.core.params import InputParam, ListParam, Param, is_reference, split_reference
from cryolab.core.plugins import registry

if TYPE_CHECKING:
    from cryolab.core.project import Project

WIDTH = 100
"""Longest line of the generated code (the project's ruff setting)."""

RESERVED = frozenset({"project_path", "project", "cryolab", "runs", "run"})
GROUPS = {"data": "Data: the files the runs read", "acquisition": "Acquisition"}


@dataclass
class Variable:
    """A parameter of the notebook: one value used by one or more runs."""

    name: str
    group: str
    value: Any
    param: Param
    uses: list[tuple[int, str]]  # (run id, protocol)


def export_notebook(
    project: Project, path: str | os.PathLike[str], runs: Sequence[int] | None = None
) -> dict[str, Any]:
    """Write runs (default: all; with their upstream runs) as a notebook; returns it.

    An existing file at ``path`` is replaced.

    Raises
    ------
    RunNotFoundError
        If a run does not exist.
    ProjectError
        If there is nothing to export, a run was imported, or the file cannot be written
        (e.g. its folder does not exist).
    """
    chosen = [r.id for r in project.runs()] if runs is None else _with_upstream(project, runs)
    ids = topological_order(project, chosen)
    if not ids:
        raise ProjectError(f"project {project.path} has no runs to export")
    imported = [i for i in ids if project.get_run(i).origin.get("imported")]
    if imported:
        raise ProjectError(
            f"runs {imported} were imported as finished results; a notebook cannot recompute "
            "them (export the runs that do not depend on them)"
        )
    variables = _variables(project, ids)
    by_use = {use: v for v in variables for use in ((r, v.param.name) for r, _ in v.uses)}
    cells = [
        _markdown("title", _title(project, ids)),
        _code("parameters", _parameters_source(project, variables), tags=["parameters"]),
        _code("open-project", OPEN_SOURCE),
        *(
            _code(f"run-{i}", _run_source(project, i, by_use), cryolab={"source_run": i})
            for i in ids
        ),
        _code("result", _result_source(ids)),
    ]
    notebook = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "cryolab": {"project": str(project.path), "runs": ids},
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python", "version": platform.python_version()},
        },
        "cells": cells,
    }
    _write(notebook, Path(path))
    return notebook


OPEN_SOURCE = """import cryolab

project = cryolab.open_project(project_path)
if project.runs():
    raise RuntimeError(f"{project_path} already has runs: give a new project_path")"""


def _with_upstream(project: Project, run_ids: Sequence[int]) -> list[int]:
    """The runs and every run they take inputs from, directly or not."""
    found: set[int] = set()
    frontier = [int(r) for r in run_ids]
    while frontier:
        current = frontier.pop()
        if current in found:
            continue
        project._run_row(current)  # RunNotFoundError for an unknown id
        found.add(current)
        frontier.extend(
            int(src)
            for (src,) in project.db.execute(
                "SELECT DISTINCT src_run FROM edges WHERE dst_run = ?", (current,)
            )
        )
    return sorted(found)


def _group(param: Param) -> str | None:
    """``"data"`` for paths, ``"acquisition"`` for acquisition values, else ``None``."""
    if param.kind == "path" or (isinstance(param, ListParam) and param.item.kind == "path"):
        return "data"
    if param.section.lower().startswith("acquisition"):
        return "acquisition"
    return None


def _variables(project: Project, ids: Sequence[int]) -> list[Variable]:
    """The notebook's parameters: one per name and value (``name_rID`` when values differ)."""
    found: list[tuple[int, str, Param, Any]] = []
    for run_id in ids:
        run = project.get_run(run_id)
        declared = registry.get(run.protocol).params()
        for name, value in run.params.items():
            param = declared.get(name)
            if param is not None and value not in (None, "", []) and _group(param):
                found.append((run_id, run.protocol, param, value))
    names = {p.name for _, _, p, _ in found}
    values: dict[str, set[str]] = {n: set() for n in names}
    for _, _, param, value in found:
        values[param.name].add(json.dumps(value, sort_keys=True))
    taken = set(RESERVED)
    variables: dict[tuple[str, str], Variable] = {}
    for run_id, protocol, param, value in found:
        shared = len(values[param.name]) == 1
        key = (param.name, "" if shared else str(run_id))
        if key not in variables:
            name = _free_name(param.name if shared else f"{param.name}_r{run_id}", taken)
            group = _group(param) or ""
            variables[key] = Variable(name, group, value, param, [])
        variables[key].uses.append((run_id, protocol))
    return sorted(variables.values(), key=lambda v: list(GROUPS).index(v.group))


def _free_name(wanted: str, taken: set[str]) -> str:
    name = f"p_{wanted}" if wanted in RESERVED or re.fullmatch(r"r\d+", wanted) else wanted
    base, number = name, 2
    while name in taken:
        name, number = f"{base}_{number}", number + 1
    taken.add(name)
    return name


def _title(project: Project, ids: Sequence[int]) -> str:
    today = datetime.date.today().isoformat()
    return (
        f"# Rebuild of the cryolab project {project.path.name}\n\n"
        f"Runs {', '.join(map(str, ids))} of `{project.path}`, exported by cryolab "
        f"{__version__} on {today}.\n\n"
        "Each run is created again with the same protocol, parameters and seed. The cell tagged "
        "`parameters` holds the new project's folder, the data paths and the acquisition "
        "values; run the notebook with a new `project_path`, e.g.\n"
        "`papermill this.ipynb out.ipynb -p project_path ~/cryolab/rebuilt`."
    )


def _parameters_source(project: Project, variables: Sequence[Variable]) -> str:
    default = project.path.parent / f"{project.path.name}-rebuilt"
    lines = [
        "# Parameters: papermill -p NAME VALUE replaces any of them.",
        "",
        "# The project the notebook builds (a new folder).",
        f"project_path = {_literal(str(default), len('project_path = '), 0)}",
    ]
    group = ""
    for variable in variables:
        if variable.group != group:
            group = variable.group
            lines += ["", f"# {GROUPS[group]}"]
        runs = ", ".join(f"{p} (run {r})" for r, p in variable.uses)
        note = "; ".join(filter(None, [variable.param.unit, runs]))
        start = len(variable.name) + 3
        assignment = f"{variable.name} = {_literal(variable.value, start, 0)}"
        inline = f"{assignment}  # {note}"
        if "\n" not in assignment and len(inline) <= WIDTH:
            lines.append(inline)
        else:
            lines += [_comment(note), assignment]
    return "\n".join(lines)


def _comment(text: str) -> str:
    """A comment line, shortened to fit the width."""
    line = f"# {text}"
    return line if len(line) <= WIDTH else line[: WIDTH - 3] + "..."


def _run_source(project: Project, run_id: int, by_use: dict[tuple[int, str], Variable]) -> str:
    run = project.get_run(run_id)
    row = project._run_row(run_id)
    declared = registry.get(run.protocol).params()
    header = f"Run {run_id}: {run.protocol}" + (f" ({run.label})" if run.label else "")
    lines = [_comment(header), f"r{run_id} = project.run(", f"    {_literal(run.protocol, 4, 4)},"]
    for name, value in run.params.items():
        variable = by_use.get((run_id, name))
        if variable is not None:
            text = variable.name
        elif isinstance(declared.get(name), InputParam):
            text = _input(value, len(name) + 5)
        else:
            text = _literal(value, len(name) + 5, 4)
        lines.append(f"    {name}={text},")
    lines.append(f"    seed={int(row['seed'])},")
    if json.loads(row["executor"]).get("name") == "sync":
        lines.append('    executor="sync",')
    for name in ("label", "comment"):
        text = str(row[name])
        if text:
            lines.append(f"    {name}={_literal(text, len(name) + 5, 4)},")
    lines.append(")")
    return "\n".join(lines)


def _input(value: Any, start: int) -> str:
    """An input's source: ``r2.out.micrographs`` (or a list of them)."""
    if isinstance(value, str) and is_reference(value):
        run_id, output = split_reference(value)
        return f"r{run_id}.out.{output}"
    if isinstance(value, list) and all(isinstance(v, str) and is_reference(v) for v in value):
        items = [_input(v, 0) for v in value]
        flat = f"[{', '.join(items)}]"
        if start + len(flat) + 1 <= WIDTH:
            return flat
        return "[\n" + "".join(f"        {item},\n" for item in items) + "    ]"
    return _literal(value, start, 4)


def _result_source(ids: Sequence[int]) -> str:
    names = [f"r{i}" for i in ids]
    flat = f"runs = [{', '.join(names)}]"
    listing = (
        flat if len(flat) <= WIDTH else "runs = [\n" + "".join(f"    {n},\n" for n in names) + "]"
    )
    return (
        f"{listing}\n"
        "for run in runs:\n"
        "    run.wait()  # raises if a run failed\n"
        "project.graph(follow=False)"
    )


def _literal(value: Any, start: int, indent: int) -> str:
    """Python source of a JSON value starting at column ``start``, lines within :data:`WIDTH`.

    Lists and objects too long for one line are written one item per line, indented from
    ``indent``; long text is cut into adjacent string literals (at ``/`` where possible).
    """
    flat = _flat(value)
    if start + len(flat) + 1 <= WIDTH:
        return flat
    inner = " " * (indent + 4)
    if isinstance(value, list) and value:
        items = "".join(f"{inner}{_literal(v, indent + 4, indent + 4)},\n" for v in value)
        return f"[\n{items}{' ' * indent}]"
    if isinstance(value, dict) and value:
        items = "".join(
            f"{inner}{_flat(k)}: {_literal(v, indent + 6 + len(_flat(k)), indent + 4)},\n"
            for k, v in value.items()
        )
        return f"{{\n{items}{' ' * indent}}}"
    if isinstance(value, str) and len(value) > 1:
        pieces = "".join(f"{inner}{_flat(p)}\n" for p in _cut(value, WIDTH - indent - 8))
        return f"(\n{pieces}{' ' * indent})"
    return flat


def _flat(value: Any) -> str:
    """One-line Python source of a JSON value."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON string escapes are Python's too
    if isinstance(value, float) and not math.isfinite(value):
        return f'float("{value}")'
    if isinstance(value, list):
        return "[" + ", ".join(_flat(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_flat(k)}: {_flat(v)}" for k, v in value.items()) + "}"
    return repr(value)  # int, float, bool, None


def _cut(text: str, room: int) -> list[str]:
    """Pieces of ``text`` whose literals fit in ``room`` columns, cut after ``/`` if possible."""
    room = max(room, 20)
    pieces: list[str] = []
    current = ""
    for part in re.split(r"(?<=/)", text):
        while len(_flat(part)) > room:  # a part too long alone is cut anywhere
            if current:
                pieces.append(current)
                current = ""
            cut = room - 2
            while len(_flat(part[:cut])) > room:
                cut -= 1
            pieces.append(part[:cut])
            part = part[cut:]
        if current and len(_flat(current + part)) > room:
            pieces.append(current)
            current = ""
        current += part
    if current:
        pieces.append(current)
    return pieces


def _lines(source: str) -> list[str]:
    """Notebook source as a list of lines (the on-disk convention)."""
    return source.splitlines(keepends=True)


def _markdown(cell_id: str, source: str) -> dict[str, Any]:
    return {"cell_type": "markdown", "id": cell_id, "metadata": {}, "source": _lines(source)}


def _code(
    cell_id: str, source: str, *, tags: list[str] | None = None, **metadata: Any
) -> dict[str, Any]:
    return {
        "cell_type": "code",
        "execution_count": None,
        "id": cell_id,
        "metadata": {**({"tags": tags} if tags else {}), **metadata},
        "outputs": [],
        "source": _lines(source),
    }


def _write(notebook: dict[str, Any], path: Path) -> None:
    folder = path.expanduser().parent
    if not folder.is_dir():
        raise ProjectError(f"cannot write the notebook {path}: folder {folder} does not exist")
    text = json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    try:
        path.expanduser().write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ProjectError(f"cannot write the notebook {path}: {exc}") from None
