"""The report of the small demo project opened from file:// in headless Chromium."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryolab.core.project import open_project

from .conftest import screenshot


def test_the_report_renders_graph_plots_methods_and_pictures(
    small_demo: Path, tmp_path: Path, page: Any
) -> None:
    written = open_project(small_demo, create=False).report().write(tmp_path, ["html"])
    page.goto(written["html"].as_uri())
    page.wait_for_selector(".cryolab-run-graph")
    assert page.locator(".cryolab-run-graph .cryolab-node").count() == 11
    assert page.locator("figure svg.cryolab-plot").count() >= 3  # CTF (2) and FSC plots
    methods = page.locator("#methods + p.methods").inner_text()
    assert methods.startswith("Data were processed with cryolab") and "[1]" in methods
    references = page.locator("ol.refs li")
    assert references.count() >= 8
    # every picture decoded (a broken data URI has naturalWidth 0)
    widths = page.eval_on_selector_all("figure img", "els => els.map(e => e.naturalWidth)")
    assert len(widths) >= 3 and all(w > 0 for w in widths)
    box = page.locator(".cryolab-run-graph").bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 300
    # a citation links to its reference
    page.locator('#methods + p.methods a[href="#ref-2"]').first.click()
    assert page.evaluate("location.hash") == "#ref-2"
    page.goto(written["html"].as_uri())
    page.set_viewport_size({"width": 1280, "height": 1400})
    screenshot(page, "report")
    page.locator("#figures").scroll_into_view_if_needed()
    screenshot(page, "report-figures")
