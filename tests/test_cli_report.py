"""``cryolab report PATH -o DIR``: the report files, the formats option, its errors, and the
report of projects whose runs cannot be exported as a workflow (then without an RO-Crate)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rocrate_profile import violations

from cryolab.cli import main
from cryolab.core.plugins import registry
from cryolab.core.project import open_project

TIMEOUT = 60


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


def test_unknown_format_and_unusable_folders_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the format is checked before the project is even opened
    assert main(["report", str(tmp_path / "nowhere"), "-o", str(tmp_path), "--format", "x"]) == 2
    assert "unknown report format(s) ['x']" in capsys.readouterr().err
    open_project(tmp_path / "p").close()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["report", str(tmp_path / "p"), "-o", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert f"cannot create the report folder {blocker / 'sub'}: Not a directory" in err
    assert "[Errno" not in err


def test_an_empty_project_gets_a_report_without_a_crate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    open_project(tmp_path / "p").close()
    out = tmp_path / "report"
    assert main(["report", str(tmp_path / "p"), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert "wrote" in captured.out and "ro-crate" not in captured.out
    assert "warning: No RO-Crate was written" in captured.err
    assert "there are no runs to export" in captured.err
    assert sorted(p.name for p in out.iterdir()) == ["figures", "report.html", "report.md"]
    assert "No RO-Crate was written" in (out / "report.md").read_text()


def test_a_run_whose_plugin_is_gone_is_reported_without_a_crate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project = open_project(tmp_path / "p")
    count = project.run("test.count", steps=1).wait(TIMEOUT)
    project.run("sets.subset", source=count.out.numbers, where="value < 3").wait(TIMEOUT)
    project.close()
    out = tmp_path / "report"
    assert main(["report", str(tmp_path / "p"), "-o", str(out)]) == 0
    assert (out / "ro-crate-metadata.json").is_file()  # while the plugin is installed
    monkeypatch.setenv("CRYOLAB_PLUGINS", "")
    registry.refresh()
    capsys.readouterr()
    assert main(["report", str(tmp_path / "p"), "-o", str(out)]) == 0
    assert "unknown protocol 'test.count'" in capsys.readouterr().err
    # the crate of the first write would describe the project wrongly: it is gone
    assert not (out / "ro-crate-metadata.json").exists() and not (out / "workflow.json").exists()
    markdown = (out / "report.md").read_text()
    assert (
        "### Run 1 · test.count" in markdown and "Run 1 used the protocol test.count." in markdown
    )
    assert "The protocol test.count is not available in this installation" in markdown
    assert "Items were selected where value < 3." in markdown
