"""The comparison widget: run pickers, the comparison of the picked runs, swapping, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from score_table import write_scores

from cryolab.core.errors import CryolabError
from cryolab.core.project import Project
from cryolab.ui.compare import CompareWidget

TIMEOUT = 60


def _runs(project: Project, tmp_path: Path) -> tuple[int, int, int]:
    rows = project.run("sets.import_table", files=str(write_scores(tmp_path))).wait(TIMEOUT)
    loose = project.run("sets.subset", source=rows.out.rows, where="score > 0.15")
    strict = project.run("sets.subset", source=rows.out.rows, where="score > 0.65")
    loose.wait(TIMEOUT)
    strict.wait(TIMEOUT)
    return rows.id, loose.id, strict.id


def test_widget_compares_the_newest_run_with_an_earlier_one_of_its_protocol(
    project: Project, tmp_path: Path
) -> None:
    rows, loose, strict = _runs(project, tmp_path)
    widget = project.compare_widget()
    assert isinstance(widget, CompareWidget)
    assert (widget.run_a.value, widget.run_b.value) == (loose, strict)
    assert [value for _, value in widget.run_a.options] == [rows, loose, strict]
    assert "sets.subset, finished" in widget.run_b.label
    data = widget.comparison.to_dict()
    assert {"name": "where", "a": "score > 0.15", "b": "score > 0.65"} in data["params"]["changed"]
    assert "score &gt; 0.65" in widget.output.value
    assert data["outputs"]["subset"]["a"]["count"] == 8
    assert data["outputs"]["subset"]["b"]["count"] == 3


def test_picking_and_swapping_runs_redraws_the_comparison(project: Project, tmp_path: Path) -> None:
    rows, loose, strict = _runs(project, tmp_path)
    widget = project.compare_widget(loose, strict)
    widget.swap.click()
    assert (widget.run_a.value, widget.run_b.value) == (strict, loose)
    assert widget.comparison.to_dict()["a"]["id"] == strict
    widget.run_b.value = strict  # the same run twice: nothing to compare
    assert widget.comparison is None
    assert "two different runs" in widget.output.value
    widget.run_b.value = rows  # other protocols: the outputs have other names
    assert widget.comparison.to_dict()["b"]["protocol"] == "sets.import_table"


def test_widget_refuses_a_project_with_one_run_and_an_unknown_run(
    project: Project, tmp_path: Path
) -> None:
    (tmp_path / "t.csv").write_text("score\n0.5\n")
    project.run("sets.import_table", files=str(tmp_path / "t.csv")).wait(TIMEOUT)
    with pytest.raises(CryolabError, match="comparing needs two runs"):
        project.compare_widget()
    project.run("sets.import_table", files=str(tmp_path / "t.csv")).wait(TIMEOUT)
    with pytest.raises(CryolabError, match="no run 9"):
        project.compare_widget(9)


def test_refresh_offers_runs_made_since_and_keeps_the_picks(
    project: Project, tmp_path: Path
) -> None:
    rows, loose, strict = _runs(project, tmp_path)
    widget = project.compare_widget(rows, loose)
    newer = project.run("sets.subset", source=f"{rows}.rows", where="score > 0.85").wait(TIMEOUT)
    assert newer.id not in [value for _, value in widget.run_b.options]  # read once, at start
    widget.refresh_button.click()
    assert [value for _, value in widget.run_b.options] == [rows, loose, strict, newer.id]
    assert (widget.run_a.value, widget.run_b.value) == (rows, loose)
    assert widget.comparison.to_dict()["b"]["id"] == loose
    widget.run_b.value = newer.id
    assert widget.comparison.to_dict()["b"]["id"] == newer.id
    assert "score &gt; 0.85" in widget.output.value
    project.delete_run(newer.id)  # a picked run that is gone: the newest other run instead
    widget.refresh()
    assert (widget.run_a.value, widget.run_b.value) == (rows, strict)
    assert widget.comparison.to_dict()["b"]["id"] == strict


def test_an_unexpected_error_is_shown_in_the_widget_and_logged(
    project: Project,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rows, loose, strict = _runs(project, tmp_path)
    widget = project.compare_widget(loose, strict)

    def unreadable(*_args: object) -> None:
        raise OSError("segment 0 of run 3 cannot be read")

    monkeypatch.setattr("cryolab.ui.compare.compare_runs", unreadable)
    with caplog.at_level("ERROR", logger="cryolab.ui.compare"):
        widget.run_b.value = rows
    assert widget.comparison is None
    assert "OSError: segment 0 of run 3 cannot be read" in widget.output.value
    assert "comparing runs" in caplog.text and "OSError" in caplog.text
