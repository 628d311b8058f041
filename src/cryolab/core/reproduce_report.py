"""The report of a reproduction: JSON data, an aligned text table and an HTML table.

The JSON structure (``ReproductionReport.to_dict()``, ``cryolab reproduce --json``,
``NEWPATH/reproduction.json``)::

    {"format": "cryolab.reproduction", "version": 1,
     "source": {"kind": "project" | "workflow" | "notebook", "path": ...},
     "against": PATH | null, "compared_with": PATH | null, "into": PATH, "tolerances": {...},
     "verdict": "identical" | "within tolerance" | "not compared" | "differs",
     "counts": {verdict: runs}, "notebook": {papermill outcome} | null, "notes": [...],
     "runs": [{"source_run", "run", "protocol", "deterministic", "status", "error",
               "verdict", "details", "params_changed": [...],
               "outputs": {name: {"verdict", "summary", "count": {"source", "reproduced"},
                                  "matched_by", "uids", "columns", "properties", "items",
                                  "notes"}}}]}
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from cryolab.core.reproduce_compare import DIFFERS, IDENTICAL, NOT_COMPARED, VERDICTS

FORMAT = "cryolab.reproduction"
VERSION = 1
JSON_NAME = "reproduction.json"
TEXT_NAME = "reproduction.txt"


class ReproductionReport:
    """What ``cryolab reproduce`` found: a verdict per run and overall, with the figures.

    Parameters
    ----------
    data
        The report as JSON data (see the module docstring).
    """

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    @property
    def verdict(self) -> str:
        """The overall verdict: the worst of the runs' verdicts."""
        return str(self._data["verdict"])

    @property
    def compared(self) -> int:
        """How many runs were compared with a source run (or differ, e.g. failed)."""
        return sum(run["verdict"] != NOT_COMPARED for run in self.runs)

    @property
    def ok(self) -> bool:
        """Whether the reproduction succeeded: no run differs and, when there was a project
        to compare with (``compared_with``), at least one run was compared with it.

        Runs that could not be compared are not counted as differing: a workflow reproduced
        without a project to compare with is ok when its runs finished.
        """
        nothing = bool(self.runs) and self.compared == 0
        return self.verdict != DIFFERS and not (self._data.get("compared_with") and nothing)

    @property
    def runs(self) -> list[dict[str, Any]]:
        """One entry per reproduced run (see the module docstring)."""
        runs: list[dict[str, Any]] = self._data["runs"]
        return runs

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON data."""
        return self._data

    def write(self, folder: Path) -> None:
        """Write ``reproduction.json`` and ``reproduction.txt`` into ``folder``."""
        (folder / JSON_NAME).write_text(json.dumps(self._data, indent=2), encoding="utf-8")
        (folder / TEXT_NAME).write_text(str(self) + "\n", encoding="utf-8")

    def __repr__(self) -> str:
        return f"<ReproductionReport {self._data['into']}: {self.verdict}>"

    def __str__(self) -> str:
        return _text(self._data)

    def _repr_html_(self) -> str:
        return _html(self._data)


def _heading(data: dict[str, Any]) -> list[str]:
    source = data["source"]
    against = f" against {data['against']}" if data.get("against") else ""
    counts = ", ".join(f"{n} {v}" for v in VERDICTS if (n := data["counts"].get(v)))
    lines = [
        f"reproduction of {source['kind']} {source['path']} into {data['into']}{against}",
        f"verdict: {data['verdict']} ({counts or 'no runs'})",
        "tolerances: " + " ".join(f"{k}={v:g}" for k, v in data["tolerances"].items()),
    ]
    notebook = data.get("notebook")
    if notebook:
        lines.append(
            f"notebook: {notebook['status']} in {notebook['duration']:.1f} s -> "
            f"{notebook['output']}" + (f"; {notebook['error']}" if notebook.get("error") else "")
        )
    lines += [f"note: {note}" for note in data.get("notes", [])]
    if data["runs"] and all(run["verdict"] == NOT_COMPARED for run in data["runs"]):
        if data.get("compared_with"):
            lines.append(f"no run could be compared with {data['compared_with']}")
        else:
            lines.append("not compared: no project to compare with (give --against)")
    return lines


def _rows(data: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for run in data["runs"]:
        source = "-" if run["source_run"] is None else str(run["source_run"])
        mode = "deterministic" if run["deterministic"] else "statistical"
        rows.append(
            (f"{source} -> {run['run']}", run["protocol"], mode, run["verdict"], run["details"])
        )
    return rows


def _text(data: dict[str, Any]) -> str:
    lines = _heading(data)
    header = ("run", "protocol", "comparison", "verdict", "details")
    rows = _rows(data)
    if rows:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            lines.append(
                "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            )
    for run in data["runs"]:
        if run["verdict"] == IDENTICAL or not run["outputs"]:
            continue
        lines.append(f"run {run['run']} ({run['protocol']}): {run['verdict']}")
        for name, output in run["outputs"].items():
            count = output["count"]
            lines.append(
                f"  {name}: {output['verdict']}; {count['source']} -> {count['reproduced']} "
                f"items; {output['summary']}"
            )
    return "\n".join(lines)


_COLOURS = {"identical": "#2e7d32", "within tolerance": "#558b2f", "differs": "#c62828"}


def _html(data: dict[str, Any]) -> str:
    head = "<br>".join(html.escape(line) for line in _heading(data))
    cells = []
    for row in _rows(data):
        colour = _COLOURS.get(row[3], "#616161")
        cells.append(
            "<tr>"
            + "".join(
                f"<td style='color:{colour}'><b>{html.escape(c)}</b></td>"
                if i == 3
                else f"<td>{html.escape(c)}</td>"
                for i, c in enumerate(row)
            )
            + "</tr>"
        )
    table = (
        "<table><thead><tr>"
        + "".join(f"<th>{h}</th>" for h in ("run", "protocol", "comparison", "verdict", "details"))
        + "</tr></thead><tbody>"
        + "".join(cells)
        + "</tbody></table>"
    )
    return f"<div class='cryolab-reproduction'><p>{head}</p>{table}</div>"
