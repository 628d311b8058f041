"""Volume viewer and bokeh plots in a real JupyterLab, in headless Chromium."""

from __future__ import annotations

from typing import Any

from score_table import write_scores

from .conftest import Lab, open_notebook, screenshot

SETUP = """
import numpy as np
from cryolab.em.objects import FSC, SetOfCTFs
from cryolab.ui import plots
from cryolab.ui.volume import VolumeViewer
z, y, x = np.meshgrid(*(np.arange(32) - 16,) * 3, indexing="ij")
blob = np.exp(-((x - 4) ** 2 + y**2 + (z + 3) ** 2) / 30.0)
blob += 0.5 * np.exp(-(x**2 + (y - 6) ** 2 + z**2) / 10.0)
viewer = VolumeViewer(blob, pixel_size=2.0, title="two blobs")
"""


def test_volume_viewer_draws_slices_and_follows_a_click(page: Any, lab: Lab) -> None:
    open_notebook(page, lab, "volume.ipynb", [SETUP, "viewer", "viewer.position"])
    canvas = page.locator(".cryolab-volume canvas[data-axis='z']")
    canvas.wait_for(timeout=60_000)
    page.wait_for_function(
        "() => document.querySelector(\".cryolab-volume canvas[data-axis='z']\").width === 256"
    )
    # the z view (8 screen px per voxel) shows the brighter blob: bright at voxel (y 16, x 20)
    # (off the crosshair), dark in a corner
    values = page.evaluate(
        """() => { const c = document.querySelector(".cryolab-volume canvas[data-axis='z']");
        const at = (y, x) => c.getContext('2d').getImageData(8 * x + 4, 8 * y + 4, 1, 1).data[0];
        return [at(17, 20), at(1, 1)]; }"""
    )
    assert values[0] > 100 and values[1] < 20, values
    box = canvas.bounding_box()
    canvas.click(position={"x": box["width"] * 0.25, "y": box["height"] * 0.75})
    page.get_by_text("z 16, y 24, x 8").wait_for(timeout=10_000)
    screenshot(page, "volume-viewer")


def test_bokeh_plot_renders_offline(page: Any, lab: Lab) -> None:
    cells = [
        SETUP,
        "f = np.linspace(0, 0.25, 20)\n"
        "plots.show(plots.fsc_plot(FSC({'fsc.frequency': f, 'fsc.value': np.cos(6 * f)})))",
    ]
    open_notebook(page, lab, "plot.ipynb", cells)
    # BokehJS comes inlined with the output (no CDN here): its document holds the curve
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=60_000)
    points = page.evaluate("() => Bokeh.documents[0].get_model_by_name('fsc-0').data.fsc.length")
    assert points == 20
    page.locator(".bk-Canvas").first.wait_for(timeout=30_000)
    screenshot(page, "bokeh-fsc")


def test_run_graph_widget_shows_statuses_live_and_details(page: Any, lab: Lab) -> None:
    write_scores(lab.root)
    cells = [
        "import cryolab\n"
        "project = cryolab.open_project('graph-project')\n"
        "rows = project.run('sets.import_table', files='t.csv').wait(60)\n"
        "project.graph()",
        "project.run('sets.subset', source=rows.out.rows, where='score > 0.45').wait(60)",
    ]
    open_notebook(page, lab, "graph.ipynb", cells)
    # the second run appears and turns finished without re-running the cell that drew the graph
    page.locator(".cryolab-graph g.run[data-run='2'][data-status='finished']").wait_for(
        timeout=60_000
    )
    assert page.locator(".cryolab-graph g.run[data-run='1']").get_attribute("data-status") == (
        "finished"
    )
    assert page.locator(".cryolab-graph path.edge").count() == 1
    page.locator(".cryolab-graph g.run[data-run='2']").click()
    page.get_by_text("Run 2: sets.subset (finished)").wait_for(timeout=10_000)
    page.get_by_text("subset (5, closed)").wait_for(timeout=10_000)
    # made by the notebook's second cell, as JupyterLab told the kernel (origin.notebook)
    page.get_by_text("From graph.ipynb, cell 2").wait_for(timeout=10_000)
    screenshot(page, "run-graph-widget")


def test_compare_widget_redraws_when_a_run_is_picked(page: Any, lab: Lab) -> None:
    write_scores(lab.root)
    cells = [
        "import cryolab\n"
        "project = cryolab.open_project('compare-project')\n"
        "rows = project.run('sets.import_table', files='t.csv').wait(60)\n"
        "a = project.run('sets.subset', source=rows.out.rows, where='score > 0.15').wait(60)\n"
        "b = project.run('sets.subset', source=rows.out.rows, where='score > 0.65').wait(60)\n"
        "project.compare_widget()",
    ]
    open_notebook(page, lab, "compare.ipynb", cells)
    widget = page.locator(".cryolab-compare-widget")
    widget.get_by_text("score > 0.65").wait_for(timeout=60_000)
    assert widget.locator("table").count() >= 2  # the parameters and the subset output
    # pick the import as run B: the comparison is redrawn by the kernel
    widget.locator("select").nth(1).select_option(
        label="#1 sets.import_table (sets.import_table, finished)"
    )
    widget.get_by_text("Run 1").first.wait_for(timeout=30_000)
    screenshot(page, "compare-widget")
