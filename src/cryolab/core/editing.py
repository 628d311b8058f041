"""Editing the run graph: copy a run or a subgraph, change a saved run, delete runs.

Every operation validates first and writes in one transaction, so a refused edit leaves the
project database exactly as it was.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cryolab.core import database
from cryolab.core.errors import GraphError, ParameterError
from cryolab.core.params import Issue, is_reference, split_reference
from cryolab.core.plugins import registry
from cryolab.core.runs import ACTIVE, Run

if TYPE_CHECKING:
    from cryolab.core.project import Project


def copy_run(project: Project, run_id: int, *, launch: bool = False, **changes: Any) -> Run:
    """Copy a run as a new saved run with some parameters changed.

    Parameters
    ----------
    project
        The project holding the run.
    run_id
        The run to copy; its label, comment, seed and executor are kept.
    launch
        Launch the copy at once.
    **changes
        Parameter values that differ from the original.
    """
    return copy_runs(project, [run_id], {run_id: changes}, launch=launch)[run_id]


def copy_runs(
    project: Project,
    run_ids: Sequence[int],
    changes: Mapping[int, Mapping[str, Any]],
    *,
    launch: bool = False,
) -> dict[int, Run]:
    """Copy a subgraph: inputs between copied runs point to the copies, others stay.

    Returns
    -------
    dict
        Original run id to the handle of its copy.
    """
    order = topological_order(project, list(run_ids))
    created: dict[int, int] = {}
    with database.transaction(project.db):
        for run_id in order:
            row = project._run_row(run_id)
            params = json.loads(row["params"])
            inputs = registry.get(row["protocol"]).inputs()
            params = {k: _rewire(v, created) if k in inputs else v for k, v in params.items()}
            params.update(changes.get(run_id, {}))
            try:
                created[run_id] = project.create_run(
                    row["protocol"],
                    params,
                    label=row["label"],
                    comment=row["comment"],
                    seed=row["seed"],
                    executor=json.loads(row["executor"]),
                    origin={"copy_of": run_id},
                )
            except ParameterError as exc:
                raise ParameterError(
                    [Issue(i.param, f"copy of run {run_id}: {i.message}") for i in exc.issues]
                ) from None
    project.make_folders(list(created.values()))
    copies = {old: Run(project, new) for old, new in created.items()}
    if launch:
        for old in order:
            project.launch(copies[old].id)
    return copies


def _rewire(value: Any, created: Mapping[int, int]) -> Any:
    if isinstance(value, list):
        return [_rewire(v, created) for v in value]
    if isinstance(value, str) and is_reference(value):
        run_id, output = split_reference(value)
        if run_id in created:
            return f"{created[run_id]}.{output}"
    return value


def topological_order(project: Project, run_ids: list[int]) -> list[int]:
    """Order runs so that every run comes after the runs of the list it takes inputs from."""
    chosen = set(run_ids)
    for run_id in run_ids:
        project._run_row(run_id)
    needs = {
        r: {
            src
            for (src,) in project.db.execute("SELECT src_run FROM edges WHERE dst_run = ?", (r,))
            if src in chosen
        }
        for r in chosen
    }
    order: list[int] = []
    while needs:
        ready = sorted(r for r, deps in needs.items() if not deps)
        if not ready:
            raise GraphError(f"runs {sorted(needs)} depend on each other in a cycle")
        for run_id in ready:
            del needs[run_id]
            order.append(run_id)
        for deps in needs.values():
            deps.difference_update(ready)
    return order


def update_params(project: Project, run_id: int, **changes: Any) -> Run:
    """Change parameters of a saved run, re-wiring its inputs; a cycle is refused."""
    from cryolab.core.project import as_reference

    row = project._run_row(run_id)
    if row["status"] != "saved":
        raise GraphError(
            f"run {run_id} is {row['status']}; only saved runs can be edited (copy it instead)"
        )
    params = json.loads(row["params"])
    params.update({k: as_reference(v) for k, v in changes.items()})
    below = set(project.downstream(run_id)) | {run_id}
    for value in params.values():
        for ref in value if isinstance(value, list) else [value]:
            if isinstance(ref, str) and is_reference(ref) and split_reference(ref)[0] in below:
                raise GraphError(
                    f"run {run_id} cannot take {ref} as input: run "
                    f"{split_reference(ref)[0]} depends on run {run_id} (a cycle)"
                )
    cls = registry.get(row["protocol"])
    with database.transaction(project.db):
        instance = project.validate(cls, params)
        outputs = project._resolve_outputs(instance)
        project.db.execute(
            "UPDATE runs SET params = ? WHERE id = ?", (json.dumps(instance.values), run_id)
        )
        project.db.execute("DELETE FROM edges WHERE dst_run = ?", (run_id,))
        for name in cls.inputs():
            value = instance.values.get(name)
            for position, ref in enumerate(
                value if isinstance(value, list) else ([value] if value else [])
            ):
                src_run, src_output = split_reference(ref)
                project.db.execute(
                    "INSERT INTO edges(src_run, src_output, dst_run, dst_param, position) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (src_run, src_output, run_id, name, position),
                )
        used = [
            r[0]
            for r in project.db.execute(
                "SELECT DISTINCT src_output FROM edges WHERE src_run = ?", (run_id,)
            )
        ]
        gone = [u for u in used if u not in outputs]
        if gone:
            raise GraphError(f"run {run_id} would lose output(s) {gone} used downstream")
        project.db.execute("DELETE FROM outputs WHERE run_id = ?", (run_id,))
        for name, chain in outputs.items():
            project.db.execute(
                "INSERT INTO outputs(run_id, name, types, path) VALUES (?, ?, ?, ?)",
                (run_id, name, json.dumps(chain), f"{row['folder']}/outputs/{name}"),
            )
        database.add_event(project.db, run_id, "edited", params=sorted(changes))
    return Run(project, run_id)


def delete_run(project: Project, run_id: int, *, cascade: bool = False) -> list[int]:
    """Delete a run and its folder; refused while other runs use it, unless ``cascade``.

    Returns
    -------
    list of int
        The ids of the deleted runs.
    """
    project._run_row(run_id)
    downstream = project.downstream(run_id)
    if downstream and not cascade:
        raise GraphError(
            f"run {run_id} is used by run(s) {downstream}; delete those first or pass cascade=True"
        )
    targets = [run_id, *downstream]
    active = [t for t in targets if project._refresh_status(t) in ACTIVE]
    if active:
        raise GraphError(f"run(s) {active} are still active; abort them before deleting")
    folders = [project.path / project._run_row(t)["folder"] for t in targets]
    marks = ",".join("?" * len(targets))
    with database.transaction(project.db):
        project.db.execute(
            f"DELETE FROM edges WHERE src_run IN ({marks}) OR dst_run IN ({marks})",
            (*targets, *targets),
        )
        for table in ("outputs", "steps"):
            project.db.execute(f"DELETE FROM {table} WHERE run_id IN ({marks})", targets)
        project.db.execute(f"DELETE FROM runs WHERE id IN ({marks})", targets)
        for target in targets:
            database.add_event(project.db, target, "deleted")
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    return targets
