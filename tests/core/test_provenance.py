"""Provenance of runs: parameters, input digests, versions, host, seed, times and memory."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest

import cryolab
from cryolab.core import provenance
from cryolab.core.details import run_details
from cryolab.core.project import Project
from cryolab.core.protocol import Protocol
from cryolab.core.setstore import SetWriter

TIMEOUT = 60


@pytest.fixture
def table(tmp_path: Path) -> Path:
    csv = tmp_path / "table.csv"
    csv.write_text("x,y\n" + "".join(f"{i},{i % 3}\n" for i in range(9)), encoding="utf-8")
    return csv


def test_a_run_records_its_provenance(project: Project, table: Path) -> None:
    imported = project.run("sets.import_table", files=str(table), seed=7).wait(TIMEOUT)
    subset = project.run("sets.subset", source="1.rows", where="x < 6", seed=11).wait(TIMEOUT)

    record = subset.provenance
    assert record["params"] == subset.params
    assert record["params"]["where"] == "x < 6"
    assert record["protocol"] == "sets.subset"
    assert record["plugin"] is not None
    assert record["seed"] == 11
    assert record["status"] == "finished"
    assert record["host"] == socket.gethostname()
    versions = record["versions"]
    assert versions["cryolab"] == cryolab.__version__
    assert versions["numpy"] == np.__version__
    assert versions["python"]
    assert versions["programs"] == {}
    assert record["plugin"] in versions["plugins"]
    assert record["gpu"] is None or isinstance(record["gpu"], str)
    assert record["started"] <= record["finished"]
    assert record["peak_memory"]["peak"] > 0
    assert record["peak_memory"]["process"] > 0
    assert record["errors"] == {}
    (source,) = record["inputs"]
    assert source["param"] == "source"
    assert source["ref"] == "1.rows"
    assert source["rows"] == 9
    assert source["digest"] == provenance.set_digest(imported.out.rows.path)
    assert source["digest"].startswith("sha256:")

    first = imported.provenance
    assert first["inputs"] == []
    assert first["seed"] == 7
    assert first["params"]["files"] == str(table)


def test_the_input_digest_follows_the_input_content(project: Project, table: Path) -> None:
    project.run("sets.import_table", files=str(table)).wait(TIMEOUT)
    first = project.run("sets.subset", source="1.rows", where="x < 6").wait(TIMEOUT)
    again = project.run("sets.subset", source="1.rows", where="x < 3").wait(TIMEOUT)
    digest = first.provenance["inputs"][0]["digest"]
    assert again.provenance["inputs"][0]["digest"] == digest

    writer = SetWriter.open(project.get_run(1).out.rows.path)
    writer.reopen()
    writer.append(project.get_run(1).out.rows.load().to_arrow().slice(0, 2))
    writer.close()
    changed = project.run("sets.subset", source="1.rows", where="x < 6").wait(TIMEOUT)
    assert changed.provenance["inputs"][0]["rows"] == 11
    assert changed.provenance["inputs"][0]["digest"] != digest


def test_protocols_wrap_no_programs_by_default() -> None:
    assert Protocol().program_versions() == {}


def test_peak_memory_counts_step_workers(project: Project) -> None:
    run = project.run("test.count", steps=3, executor="local").wait(TIMEOUT)
    record = run.provenance
    assert record["executor"]["name"] == "local"
    assert record["peak_memory"]["peak"] >= record["peak_memory"]["process"] > 0
    assert record["peak_memory"]["peak"] >= record["peak_memory"]["children"]


def test_a_failed_run_records_its_end(project: Project) -> None:
    run = project.run("test.count", steps=2, fail_at=1, executor="sync")
    run.wait(TIMEOUT, check=False)
    record = run.provenance
    assert record["status"] == "failed"
    assert record["started"] <= record["finished"]


def test_a_saved_run_has_no_provenance(project: Project) -> None:
    assert project.save("test.count", steps=1).provenance == {}


def test_collection_failures_are_recorded_not_raised(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> str:
        raise RuntimeError("no git here")

    monkeypatch.setattr(provenance, "_git_commit", broken)
    provenance.environment.cache_clear()
    try:
        env = provenance.environment()
    finally:
        provenance.environment.cache_clear()
    assert env["versions"]["git"] is None
    assert env["errors"] == {"git": "RuntimeError: no git here"}


def test_an_unreadable_record_is_reported(tmp_path: Path) -> None:
    (tmp_path / provenance.FILE).write_text("{broken", encoding="utf-8")
    assert "cannot read" in provenance.read(tmp_path)["error"]
    assert provenance.read(tmp_path / "absent") == {}


def test_run_details_include_the_provenance(project: Project) -> None:
    run = project.run("test.count", steps=1).wait(TIMEOUT)
    details = run_details(project, run.id, lines=5)
    assert details["provenance"] == run.provenance
    assert details["provenance"]["status"] == "finished"
    written = json.loads((run.folder / provenance.FILE).read_text(encoding="utf-8"))
    assert written == details["provenance"]
