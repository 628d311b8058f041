"""The demonstration workflow that `make demo` runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from cryolab.core.project import open_project
from cryolab.demo import main


def test_demo_runs_the_workflow_from_a_relative_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main("demo-project", rows=3000) == 0
    out = capsys.readouterr().out
    assert "6 runs, each in its own process" in out
    assert "check: the merged halves hold exactly" in out
    project = open_project(tmp_path / "demo-project", create=False)
    assert {r.status for r in project.runs()} == {"finished"}
    assert project.get_run(1).out.rows.count == 3000
    # running it again recreates the project instead of failing
    assert main("demo-project", rows=1000) == 0
    assert open_project(tmp_path / "demo-project").get_run(1).out.rows.count == 1000


def test_demo_refuses_a_folder_that_is_not_a_project(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    assert main(str(tmp_path), rows=100) == 2
    assert "is not a cryolab project" in capsys.readouterr().out
    assert (tmp_path / "notes.txt").read_text() == "mine"
