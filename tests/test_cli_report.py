"""``cryolab report PATH -o DIR``: the report files, the formats option and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rocrate_profile import violations

from cryolab.cli import main


def test_report_writes_html_markdown_and_crate(
    small_demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    assert main(["report", str(small_demo), "-o", str(out), "--title", "Demo"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out / 'report.html'}" in printed and "ro-crate-metadata.json" in printed
    assert "<h1>Demo</h1>" in (out / "report.html").read_text()
    assert (out / "report.md").read_text().startswith("# Demo\n")
    crate = json.loads((out / "ro-crate-metadata.json").read_text())
    assert violations(crate, out) == []


def test_report_writes_only_the_formats_asked_for(small_demo: Path, tmp_path: Path) -> None:
    out = tmp_path / "html-only"
    assert main(["report", str(small_demo), "-o", str(out), "--format", "html"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["report.html"]


def test_report_errors_exit_2(
    small_demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    taken = tmp_path / "file"
    taken.write_text("x")
    assert main(["report", str(small_demo), "-o", str(taken)]) == 2
    assert "cryolab report: error: cannot write the report into" in capsys.readouterr().err
    assert main(["report", str(small_demo), "-o", str(tmp_path / "x"), "--format", "pdf"]) == 2
    assert "unknown report format(s) ['pdf']" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nowhere"), "-o", str(tmp_path / "y")]) == 2
    assert "no cryolab project" in capsys.readouterr().err
