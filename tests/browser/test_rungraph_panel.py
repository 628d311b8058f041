"""The run-graph side panel of the cryolab lab extension in a real JupyterLab: the graph of a
project with finished, failed and saved runs, a run launched from Python appearing and turning
finished live, and the details of a clicked run."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from score_table import write_scores

from cryolab.core.project import Project, open_project
from cryolab.server.registry import project_id

from .conftest import TOKEN, Lab, screenshot

TIMEOUT = 60


def _panel_installed(lab: Lab) -> bool:
    extensions = lab.api("/lab/api/extensions")
    return any(e["name"] == "cryolab" and e["enabled"] for e in extensions)


@pytest.fixture
def graph_project(lab: Lab) -> Any:
    """A project in the lab's folder (so the API serves it): import → subset (finished),
    a sum of a column the table lacks (failed) and a saved subset."""
    table = write_scores(lab.root, "scores.csv")
    project = open_project(lab.root / "rungraph-project")
    rows = project.run("sets.import_table", files=str(table), label="scores").wait(TIMEOUT)
    subset = project.run("sets.subset", source=rows.out.rows, where="score > 0.45")
    subset.wait(TIMEOUT)
    failing = project.run("test.sum", source=rows.out.rows)  # no 'value' column: it fails
    failing.wait(TIMEOUT, check=False)
    project.save("sets.subset", source=subset.out.subset, where="score > 0.8", label="later")
    yield project
    for run in project.runs():
        run.abort(grace=1)
    project.close()


def _status(page: Any, run: int) -> str | None:
    node = page.locator(f".cryolab-RunGraphPanel g.cryolab-node[data-run='{run}']")
    return node.get_attribute("data-status") if node.count() else None


def _open_panel(page: Any, lab: Lab, project: Project, workspace: str) -> Any:
    """The run-graph panel, opened in a fresh workspace (after the workspace is restored,
    which would otherwise collapse the sidebar again), showing ``project``."""
    from playwright.sync_api import expect

    if not _panel_installed(lab):
        pytest.fail("the cryolab lab extension is not installed: `make extension` builds it")
    page.goto(f"{lab.url}/lab/workspaces/{workspace}?reset&token={TOKEN}")
    page.wait_for_function(
        "() => window.jupyterapp && window.jupyterapp.commands"
        " && window.jupyterapp.commands.hasCommand('cryolab:open-run-graph')",
        timeout=60_000,
    )
    page.evaluate(
        "async () => { await window.jupyterapp.restored;"
        " await window.jupyterapp.commands.execute('cryolab:open-run-graph'); }"
    )
    panel = page.locator(".cryolab-RunGraphPanel")
    expect(panel).to_be_visible(timeout=30_000)
    identifier = project_id(Path(project.path).resolve())
    selector = panel.locator("select.cryolab-project-select")
    expect(selector.locator(f"option[value='{identifier}']")).to_have_count(1, timeout=30_000)
    selector.select_option(identifier)
    return panel


def test_panel_draws_the_run_graph_and_follows_a_new_run(
    page: Any, lab: Lab, graph_project: Project
) -> None:
    from playwright.sync_api import expect

    panel = _open_panel(page, lab, graph_project, "rungraph")
    assert (
        page.evaluate("window.jupyterapp.commands.label('cryolab:open-run-graph')")
        == "cryolab: Open Run Graph"
    )

    nodes = panel.locator("g.cryolab-node")
    expect(nodes).to_have_count(4, timeout=30_000)
    expected = {1: "finished", 2: "finished", 3: "failed", 4: "saved"}
    for run, status in expected.items():
        expect(panel.locator(f"g.cryolab-node[data-run='{run}']")).to_have_attribute(
            "data-status", status
        )
    expect(panel.locator("path.cryolab-edge")).to_have_count(3)
    # ELK laid the graph out top-down: the import above the subsets that read it
    boxes = {run: panel.locator(f"g[data-run='{run}']").bounding_box() for run in (1, 2, 4)}
    assert boxes[1]["y"] < boxes[2]["y"] < boxes[4]["y"], boxes

    # a run launched from Python appears and turns finished without a reload
    rows = graph_project.get_run(1)
    launched = graph_project.run("sets.subset", source=rows.out.rows, where="score > 0.15")
    started = time.monotonic()
    new_node = panel.locator(f"g.cryolab-node[data-run='{launched.id}']")
    expect(new_node).to_have_count(1, timeout=10_000)
    launched.wait(TIMEOUT)
    finished = time.monotonic()
    expect(new_node).to_have_attribute("data-status", "finished", timeout=5_000)
    assert time.monotonic() - finished < 3.0, "the status did not follow within 2 s"
    assert time.monotonic() - started < 20
    expect(panel.locator("path.cryolab-edge")).to_have_count(4)

    # run 2 as if made in a notebook (the recording itself: tests/ui/test_notebook_link.py)
    link = {"path": "analysis/subsets.ipynb", "cell_id": "c-7", "cell_index": 2}
    graph_project.db.execute(
        "UPDATE runs SET origin = ? WHERE id = 2", (json.dumps({"notebook": link}),)
    )
    # a click shows the run's details: parameters, inputs and outputs with counts, log
    panel.locator("g.cryolab-node[data-run='2']").click()
    details = panel.locator(".cryolab-details")
    expect(details).to_have_attribute("data-run", "2", timeout=10_000)
    expect(details.locator("h2")).to_have_text("Run 2: sets.subset")
    expect(details.locator(".cryolab-notebook")).to_have_text("From analysis/subsets.ipynb, cell 3")
    expect(details).to_contain_text("score > 0.45")
    expect(details).to_contain_text("Inputs (1)")
    expect(details).to_contain_text("source ← 1.rows (10)")
    expect(details.locator("li[data-output='subset']")).to_contain_text("5 items")
    # how it ran: the versions, the machine and its input's digest (run.provenance)
    provenance = details.locator("table.cryolab-provenance")
    expect(provenance).to_contain_text("cryolab")
    expect(provenance).to_contain_text(graph_project.get_run(2).provenance["host"])
    expect(provenance).to_contain_text("input source")
    expect(provenance).to_contain_text("sha256:")
    expect(details.locator("button[data-action='abort']")).to_be_disabled()
    expect(panel.locator("g.cryolab-node[data-run='2']")).to_have_class(
        "cryolab-node cryolab-selected"
    )
    screenshot(page, "rungraph-panel")

    # "Copy…" runs the run's form in a notebook (a new one: none is open)
    details.locator("button[data-action='copy']").click()
    cell = page.locator(".jp-Notebook .jp-Cell").first
    expect(cell).to_contain_text(".get_run(2).form()", timeout=60_000)
    expect(page.locator(".cryolab-form")).to_be_visible(timeout=120_000)


def test_panel_aborts_a_running_run_and_opens_an_output_in_a_gallery(
    page: Any, lab: Lab, tmp_path: Path
) -> None:
    import numpy as np
    from playwright.sync_api import expect

    from cryolab.em.imageio import write_stack
    from cryolab.em.objects import SetOfParticles

    project = open_project(lab.root / "actions-project")
    try:
        images = np.random.default_rng(2).normal(size=(12, 16, 16)).astype(np.float32)
        stack = write_stack(lab.root / "actions.mrcs", images, 2.0)
        project.add_imported_run(
            "external.job",
            {
                "program": "test",
                "job": "particles",
                "output_names": ["particles"],
                "output_types": ["SetOfParticles"],
            },
            {
                "particles": SetOfParticles(
                    {"image.path": [str(stack)] * 12, "image.index": np.arange(1, 13)}
                )
            },
        )
        slow = project.run("test.count", steps=4, delay=30.0)  # a run to abort
        panel = _open_panel(page, lab, project, "actions")
        node = panel.locator(f"g.cryolab-node[data-run='{slow.id}']")
        expect(node).to_have_attribute("data-status", "running", timeout=60_000)
        node.click()
        details = panel.locator(".cryolab-details")
        abort = details.locator("button[data-action='abort']")
        expect(abort).to_be_enabled(timeout=10_000)
        abort.click()
        expect(node).to_have_attribute("data-status", "aborted", timeout=30_000)
        assert project.get_run(slow.id).status == "aborted"

        panel.locator("g.cryolab-node[data-run='1']").click()
        expect(details.locator("h2")).to_have_text("Run 1: external.job")
        details.locator("li[data-output='particles'] button[data-action='gallery']").click()
        expect(page.locator(".jp-Notebook .jp-Cell").first).to_contain_text(
            ".get_run(1).out.particles.gallery()", timeout=60_000
        )
        expect(page.locator(".cryolab-gallery .cg-status")).to_contain_text(
            "12 items", timeout=120_000
        )
        screenshot(page, "rungraph-panel-actions")
    finally:
        for run in project.runs():
            run.abort(grace=1)
        project.close()
