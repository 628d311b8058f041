"""The widgets in Notebook 7 (not only JupyterLab): a form launched to finished, a run graph."""

from __future__ import annotations

from typing import Any

from .conftest import Lab, open_notebook, screenshot


def test_form_and_graph_work_in_notebook_7(page: Any, lab: Lab) -> None:
    (lab.root / "nb7.csv").write_text("value\n" + "\n".join(str(i) for i in range(1, 11)) + "\n")
    cells = [
        "import cryolab\n"
        "project = cryolab.open_project('nb7-project')\n"
        "rows = project.run('sets.import_table', files='nb7.csv').wait(60)\n"
        "form = cryolab.form('sets.subset', project, {'source': str(rows.out.rows), "
        "'where': 'value > 7'})\n"
        "form",
        "project.graph()",
    ]
    open_notebook(page, lab, "nb7.ipynb", cells, front="notebook")
    run_button = page.locator("button.cl-run")
    run_button.wait_for(timeout=60_000)
    page.locator(".cryolab-graph g.run[data-run='1'][data-status='finished']").wait_for(
        timeout=60_000
    )
    page.wait_for_function(
        "() => !document.querySelector('button.cl-run').disabled", timeout=30_000
    )
    run_button.click()
    page.locator(".cl-run-panel .cl-status-finished").wait_for(timeout=60_000)
    page.get_by_text("3 items").first.wait_for(timeout=10_000)
    # the graph in the other cell follows: run 2 appears, finished
    page.locator(".cryolab-graph g.run[data-run='2'][data-status='finished']").wait_for(
        timeout=30_000
    )
    screenshot(page, "notebook7-form-and-graph")
