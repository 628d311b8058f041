"""The record of recently opened projects."""

from __future__ import annotations

from pathlib import Path

import pytest

from cryolab.core import recent
from cryolab.core.project import open_project


@pytest.fixture(autouse=True)
def own_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CRYOLAB_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


def test_opening_a_project_records_it_first(tmp_path: Path) -> None:
    first = open_project(tmp_path / "a")
    second = open_project(tmp_path / "b")
    open_project(tmp_path / "a").close()
    assert recent.recent() == [first.path.resolve(), second.path.resolve()]
    first.close()
    second.close()


def test_the_record_keeps_the_latest_few(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recent, "KEEP", 3)
    for name in "abcde":
        recent.remember(tmp_path / name)
    assert [p.name for p in recent.recent()] == ["e", "d", "c"]


def test_a_damaged_record_reads_as_empty_and_is_rewritten(own_record: Path, tmp_path: Path) -> None:
    own_record.mkdir()
    (own_record / recent.FILE_NAME).write_text("{not json")
    assert recent.recent() == []
    recent.remember(tmp_path / "x")
    assert recent.recent() == [(tmp_path / "x").resolve()]


def test_an_unwritable_record_does_not_stop_an_open(
    own_record: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    own_record.write_text("a file where the folder should be")
    project = open_project(tmp_path / "p")
    assert project.path.exists()
    assert "could not record" in caplog.text
    project.close()
