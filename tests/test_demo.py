"""The demonstration that `make demo` runs: the whole SPA pipeline on simulated movies.

The full-size demo takes minutes (its figures are in docs/validation.md); here it runs on a
small dataset, which must still go through every step and validate the early ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from small_demo import DEMO_PROTOCOLS, SMALL

from cryolab.core.project import open_project
from cryolab.demo import checks, main


def test_demo_runs_the_whole_pipeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code = main("demo-project", SMALL)
    out = capsys.readouterr().out
    assert code in (0, 1), out  # 1: a check failed, as it may on so little data
    project = open_project(tmp_path / "demo-project", create=False)
    protocols = [run.protocol for run in project.runs()]
    assert protocols == DEMO_PROTOCOLS
    assert {r.status for r in project.runs()} == {"finished"}
    for label, *_ in checks(SMALL):
        assert label in out
    results = json.loads((tmp_path / "demo-project" / "validation.json").read_text())
    assert results["motion_rms_px"] <= 0.5
    # two 256 px micrographs give one CTF tile each: a looser bound than the 100 A threshold,
    # which test_ctffit.py (eight 1024 px micrographs) and the full-size demo assert
    assert results["ctf_median_error_A"] <= 200
    assert results["particles"] > 20
    assert "import cryolab; project = cryolab.open_project(" in out


def test_demo_refuses_a_folder_that_is_not_a_project(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    assert main(str(tmp_path), SMALL) == 2
    assert "is not a cryolab project" in capsys.readouterr().out
    assert (tmp_path / "notes.txt").read_text() == "mine"
