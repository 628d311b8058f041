"""The inline run graph: its layout, the details of a run, and live updates."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from score_table import write_scores

from cryolab.core.project import Project
from cryolab.ui.graph import RunGraph, layout

TIMEOUT = 60


def edges(*pairs: tuple[int, int]) -> list[dict[str, object]]:
    return [{"source": a, "output": "out", "target": b, "param": "x"} for a, b in pairs]


def test_layout_puts_a_run_below_its_inputs_next_to_its_siblings() -> None:
    graph = {
        "nodes": [{"id": i} for i in range(1, 7)],
        "edges": edges((1, 2), (1, 3), (2, 4), (3, 4), (5, 6)),
    }
    place = layout(graph)
    assert place[1] == (0, 0) and place[5] == (0, 1)
    assert {place[2][0], place[3][0], place[6][0]} == {1}
    assert place[4] == (2, 0)
    # run 6 reads from run 5 (position 1): it comes after runs 2 and 3 (from run 1, position 0)
    assert place[6][1] == 2


def test_layout_of_an_empty_project() -> None:
    assert layout({"nodes": [], "edges": []}) == {}


def table(tmp_path: Path) -> str:
    return str(write_scores(tmp_path))


def wait_until(check, timeout: float = TIMEOUT) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.05)


def test_graph_widget_shows_runs_statuses_and_details(project: Project, tmp_path: Path) -> None:
    rows = project.run("sets.import_table", files=table(tmp_path), label="table")
    subset = project.run("sets.subset", source=rows.out.rows, where="score > 0.45").wait(TIMEOUT)
    widget = project.graph(follow=False)
    assert isinstance(widget, RunGraph)
    nodes = {n["id"]: n for n in widget.graph["nodes"]}
    assert nodes[rows.id]["status"] == nodes[subset.id]["status"] == "finished"
    assert (nodes[rows.id]["layer"], nodes[subset.id]["layer"]) == (0, 1)
    assert widget.graph["edges"][0]["source"] == rows.id
    widget.selected = subset.id  # what a click in the browser sets
    assert widget.details["params"]["where"] == "score > 0.45"
    subset_out = widget.details["outputs"]["subset"]
    assert (subset_out["count"], subset_out["state"], subset_out["ref"]) == (
        5,
        "closed",
        f"{subset.id}.subset",
    )
    assert widget.details["inputs"][0]["ref"] == f"{rows.id}.rows"  # the panel's document
    assert widget.details["status"] == "finished" and widget.details["summary"]
    assert "export default" in widget.get_state()["_esm"]


def test_graph_widget_follows_new_runs(project: Project, tmp_path: Path) -> None:
    rows = project.run("sets.import_table", files=table(tmp_path)).wait(TIMEOUT)
    widget = project.graph()
    try:
        later = project.run("sets.subset", source=rows.out.rows, where="score < 0.2")

        def shown_finished() -> bool:
            nodes = {n["id"]: n for n in widget.graph["nodes"]}
            return later.id in nodes and nodes[later.id]["status"] == "finished"

        wait_until(shown_finished)
    finally:
        widget.close()


def test_details_of_a_run_that_is_gone(project: Project, tmp_path: Path) -> None:
    widget = project.graph(follow=False)
    widget.selected = 42
    assert "42" in widget.details["error"]
    with pytest.raises(KeyError):
        widget.details["params"]
