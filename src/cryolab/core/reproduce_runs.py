"""Comparing reproduced runs with their source runs: one verdict per run, and the report.

:func:`compare_projects` takes ``(source run id, reproduced run)`` pairs, compares each pair's
outputs with :func:`cryolab.core.reproduce_compare.compare_outputs` and builds the
:class:`~cryolab.core.reproduce_report.ReproductionReport`. A reproduced run imported from a
workflow names its source run in its template key (``origin["template_key"] == "r12"``), a
copied imported run in ``origin["copied_from"]``; :func:`reproduction_pairs` pairs the runs of
an existing reproduction that way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from cryolab.core.compare import param_diff
from cryolab.core.errors import CryolabError, PluginError, ProtocolNotFoundError
from cryolab.core.params import InputParam
from cryolab.core.plugins import registry
from cryolab.core.project import Project
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
from cryolab.core.runs import Run

KEY = re.compile(r"r(\d+)")


def source_id(run: Run) -> int | None:
    """The source run a reproduced run stands for: its template key, or the run it copies."""
    origin = run.origin
    if isinstance(origin.get("copied_from"), int):
        return int(origin["copied_from"])
    match = KEY.fullmatch(str(origin.get("template_key", "")))
    return int(match.group(1)) if match else None


def reproduction_pairs(reproduced: Project) -> list[tuple[int | None, Run]]:
    """The runs of a reproduced project paired with their source runs by template key."""
    return [(source_id(run), run) for run in reproduced.runs()]


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
    tolerances
        See :class:`Tolerances` (defaults when not given).
    header
        ``source``, ``against``, ``notebook`` and ``notes`` of the report.
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
        "compared_with": str(source.path) if source is not None else None,
        "into": str(reproduced.path),
        "tolerances": tolerances.to_dict(),
        "verdict": worst(verdicts),
        "counts": counts,
        "notebook": notebook,
        "notes": list(info.get("notes", [])),
        "runs": entries,
    }
    return ReproductionReport(data)


def _compare_run(
    source: Project | None,
    reproduced: Project,
    source_run: int | None,
    run: Run,
    tolerances: Tolerances,
) -> dict[str, Any]:
    deterministic = _deterministic(run.protocol)
    entry: dict[str, Any] = {
        "source_run": source_run,
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
    if source is None or source_run is None:
        entry["details"] = "finished; no source run to compare with"
        return entry
    try:
        original = source.get_run(source_run)
    except CryolabError:
        entry["details"] = f"source run {source_run} is not in {source.path}"
        return entry
    if original.protocol != run.protocol:
        entry.update(verdict=DIFFERS, details=f"source run {source_run} is {original.protocol}")
        return entry
    if original.status != "finished":
        entry["details"] = f"source run {source_run} is {original.status}"
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
        described = registry.get(run.protocol).params()
        inputs = {n for n, p in described.items() if isinstance(p, InputParam)}
    except (PluginError, ProtocolNotFoundError):
        inputs = set()
    diff = param_diff(original, run)
    names = {c["name"] for c in diff["changed"]} | set(diff["only_a"]) | set(diff["only_b"])
    return sorted(names - inputs)


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
