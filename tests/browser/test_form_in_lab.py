"""The protocol form in a real JupyterLab: pick an input, fix a bad condition, run, see finished."""

from __future__ import annotations

from typing import Any

from cryolab.core.project import open_project

from .conftest import Lab, open_notebook, screenshot

ROWS = 20


def test_form_launches_a_subset_run_and_follows_it_to_finished(page: Any, lab: Lab) -> None:
    from playwright.sync_api import expect

    table = lab.root / "values.csv"
    table.write_text("value,name\n" + "".join(f"{i},item {i}\n" for i in range(1, ROWS + 1)))
    folder = lab.root / "form-project"
    setup = (
        "import cryolab\n"
        "from cryolab.core.project import open_project\n"
        f"project = open_project({str(folder)!r})\n"
        f"rows = project.run('sets.import_table', files={str(table)!r}).wait(120)\n"
        "assert rows.status == 'finished', rows.status"
    )
    open_notebook(page, lab, "form.ipynb", [setup, "cryolab.form('sets.subset', project)"])

    form = page.locator(".cryolab-form")
    form.wait_for(timeout=120_000)
    expect(form.locator(".cl-title code")).to_have_text("sets.subset")
    run_button = form.locator("button.cl-run")
    expect(run_button).to_be_disabled()  # no input picked, no condition yet

    # the picker lists the import's output with its item count; pick it
    source = form.locator(".cl-field[data-name='source'] select")
    option = source.locator("option[value='1.rows']")
    expect(option).to_contain_text(f"{ROWS} items")
    source.select_option("1.rows")
    expect(form.locator(".cl-field[data-name='source'] .cl-issue")).to_have_text("")

    # a malformed condition is reported before launch and Run stays disabled
    where = form.locator(".cl-field[data-name='where'] input")
    where.fill("value >")
    where.press("Tab")  # the browser sends the text on "change"
    where_issue = form.locator(".cl-field[data-name='where'] .cl-issue")
    expect(where_issue).to_contain_text("malformed condition 'value >'")
    expect(form.locator(".cl-field[data-name='where']")).to_have_class("cl-field cl-invalid")
    expect(form.locator(".cl-issues li")).to_contain_text(["Where: malformed condition"])
    expect(run_button).to_be_disabled()
    expect(form.locator(".cl-reason")).to_have_text("fix 1 problem first")
    screenshot(page, "form-invalid-condition")

    where.fill("value > 15")
    where.press("Tab")
    expect(where_issue).to_have_text("")
    expect(form.locator(".cl-issues li")).to_have_count(0)
    label = form.locator("input.cl-run-label")
    label.fill("from the browser")
    label.press("Tab")
    expect(run_button).to_be_enabled()
    run_button.click()

    # the same widget now follows the run: status, steps, outputs, log
    panel = form.locator(".cl-run-panel")
    expect(panel).to_be_visible()
    expect(panel.locator(".cl-run-title b")).to_have_text("Run 2")
    expect(panel.locator(".cl-status")).to_have_text("finished", timeout=120_000)
    expect(panel.locator(".cl-outputs li")).to_have_text(["2.subset · Set · 5 items (closed)"])
    expect(panel.locator(".cl-log")).to_contain_text("kept 5 of 20 items")
    expect(panel.locator("progress")).to_have_attribute("value", "1")
    expect(form.locator(".cl-actions")).to_be_hidden()
    panel.scroll_into_view_if_needed()
    screenshot(page, "form-run-finished")

    project = open_project(folder, create=False)
    try:
        runs = project.runs()
        assert [r.protocol for r in runs] == ["sets.import_table", "sets.subset"]
        run = runs[1]
        assert run.status == "finished" and run.label == "from the browser"
        assert run.params["source"] == "1.rows" and run.params["where"] == "value > 15"
        subset = run.out.subset.load()
        assert sorted(subset["value"].tolist()) == [16, 17, 18, 19, 20]
    finally:
        project.close()
