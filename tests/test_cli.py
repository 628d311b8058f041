"""The ``cryolab`` command line, driven in-process (and once through the console script)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import cryolab
from conftest import database_dump
from cryolab.cli import main
from cryolab.core.project import Project

TIMEOUT = 60


class Cli:
    """Runs ``cryolab`` commands in-process and returns (exit code, stdout, stderr)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(list(argv))
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *argv: str) -> Any:
        code, out, err = self(*argv, "--json")
        assert code == 0, err
        return json.loads(out)

    def error(self, *argv: str) -> str:
        """Run a command that must fail as a usage error; return its one stderr line."""
        code, out, err = self(*argv)
        assert code == 2, (out, err)
        assert out == ""
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith(f"cryolab {argv[0]}: error: ")
        return lines[0]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(capsys)


@pytest.fixture
def path(project: Project) -> str:
    return str(project.path)


@pytest.fixture
def table(tmp_path: Path) -> Path:
    csv = tmp_path / "table.csv"
    csv.write_text("x,y\n" + "".join(f"{i},{i % 3}\n" for i in range(9)), encoding="utf-8")
    return csv


def wait_for(project: Project, run_id: int, status: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while project.get_run(run_id).status != status and time.monotonic() < deadline:
        time.sleep(0.05)
    assert project.get_run(run_id).status == status


# -- new, info ----------------------------------------------------------------------------
def test_new_creates_a_project(cli: Cli, tmp_path: Path) -> None:
    code, out, err = cli("new", str(tmp_path / "p"))
    assert code == 0, err
    assert out.strip() == f"created project {tmp_path / 'p'}"
    assert (tmp_path / "p" / "project.sqlite").is_file()
    assert (tmp_path / "p" / "Runs").is_dir()
    # a second time is an error
    line = cli.error("new", str(tmp_path / "p"))
    assert "a project already exists" in line


def test_info_text_and_json(cli: Cli, project: Project, path: str) -> None:
    code, out, _ = cli("info", path)
    assert code == 0
    assert out.strip() == f"{project.path}: 0 runs (no runs), schema 1"
    project.save("test.count", steps=1)
    project.save("test.count", steps=2)
    code, out, _ = cli("info", path)
    assert out.strip() == f"{project.path}: 2 runs (2 saved), schema 1"
    info = cli.json("info", path)
    assert info == {
        "path": str(project.path),
        "schema_version": 1,
        "runs": 2,
        "status": {"saved": 2},
    }


def test_info_of_a_folder_that_is_not_a_project(cli: Cli, tmp_path: Path) -> None:
    line = cli.error("info", str(tmp_path / "nothing"))
    assert "no cryolab project" in line
    assert not (tmp_path / "nothing").exists()


# -- protocols ------------------------------------------------------------------------------
def test_protocols_lists_protocols_and_unavailable_ones(cli: Cli) -> None:
    code, out, err = cli("protocols")
    assert code == 0, err
    lines = {line.split()[0]: line for line in out.splitlines()}
    for name in (
        "sets.import_table",
        "sets.subset",
        "sets.split",
        "sets.merge",
        "sets.join",
        "test.count",
    ):
        assert name in lines
        assert "UNAVAILABLE" not in lines[name]
    assert "Keep the items of a set" in lines["sets.subset"]
    missing = lines["test.missing"]
    assert "UNAVAILABLE (testplugin)" in missing
    assert "AttributeError" in missing
    assert "DoesNotExist" in missing


def test_protocols_json(cli: Cli) -> None:
    listed = cli.json("protocols")
    assert listed["sets.subset"] == {"plugin": "builtin", "available": True, "error": None}
    assert listed["test.missing"]["available"] is False
    assert "DoesNotExist" in listed["test.missing"]["error"]


def test_protocols_shows_a_broken_plugin(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from cryolab.core.plugins import registry

    monkeypatch.setenv(
        "CRYOLAB_PLUGINS", "testplugin=testplugin:plugin,broken=no_such_module:plugin"
    )
    registry.refresh()
    code, out, _ = cli("protocols")
    assert code == 0
    assert "plugin broken (no_such_module:plugin) UNAVAILABLE: ModuleNotFoundError" in out
    assert "sets.subset" in out
    assert "test.count" in out


# -- run, status, log, graph ----------------------------------------------------------------------
def test_run_wait_json_with_inputs_and_typed_values(
    cli: Cli, project: Project, path: str, table: Path
) -> None:
    first = cli.json(
        "run",
        path,
        "sets.import_table",
        f"files={table}",
        "--wait",
        "--executor",
        "sync",
        "--label",
        "imported",
    )
    assert first["id"] == 1
    assert first["status"] == "finished"
    assert first["label"] == "imported"
    assert first["outputs"]["rows"] == {
        "ref": "1.rows",
        "type": "Set",
        "count": 9,
        "state": "closed",
    }
    assert first["steps"] == {"pending": 0, "running": 0, "done": 1, "failed": 0}
    second = cli.json(
        "run",
        path,
        "sets.split",
        "source=1.rows",
        "parts=3",
        "order=sequential",
        "--wait",
        "--seed",
        "7",
    )
    assert second["status"] == "finished"
    assert second["params"]["parts"] == 3  # an int, not "3"
    assert second["params"]["source"] == "1.rows"
    assert {k: v["count"] for k, v in second["outputs"].items()} == {
        "part1": 3,
        "part2": 3,
        "part3": 3,
    }
    run = project.get_run(second["id"])
    assert run.params["parts"] == 3
    assert isinstance(run.params["parts"], int)
    assert project._run_row(run.id)["seed"] == 7
    third = cli.json(
        "run", path, "sets.subset", "source=1.rows", "where=y == 0", "exclude=yes", "--wait"
    )
    assert third["params"]["exclude"] is True
    assert third["outputs"]["subset"]["count"] == 6


def test_run_text_output_and_failure_exit_code(cli: Cli, path: str) -> None:
    code, out, _ = cli("run", path, "test.count", "steps=2", "--wait")
    assert code == 0
    assert out.strip() == "run 1 test.count: finished"
    code, out, _ = cli("run", path, "test.count", "steps=2", "fail_at=1", "--wait")
    assert code == 1
    assert out.startswith("run 2 test.count: failed (")
    assert "step 1 fails on purpose" in out


def test_run_without_wait_returns_at_once(cli: Cli, project: Project, path: str) -> None:
    code, out, _ = cli("run", path, "test.count", "steps=1")
    assert code == 0
    assert out.startswith("run 1 test.count: ")
    assert project.get_run(1).wait(TIMEOUT).status == "finished"


def test_status_log_and_graph(cli: Cli, project: Project, path: str) -> None:
    cli("run", path, "test.count", "steps=3", "--wait", "--label", "numbers")
    cli("run", path, "test.sum", "source=1.numbers", "--wait")
    code, out, _ = cli("status", path, "1")
    assert code == 0
    assert out.splitlines() == [
        "run 1 test.count: finished",
        "  steps: 3 done, 0 failed, 0 running, 0 pending",
        "  outputs: numbers (30 Set, closed)",
    ]
    status = cli.json("status", path, "2")
    assert status["status"] == "finished"
    assert status["outputs"]["total"]["count"] == 1
    assert status["params"] == {"source": "1.numbers"}
    assert status["folder"] == str(project.get_run(2).folder)

    code, out, _ = cli("log", path, "1")
    assert code == 0
    assert "run 1 planned 3 steps" in out
    assert "run 1 finished" in out
    code, tail, _ = cli("log", path, "1", "--tail", "1")
    assert tail.strip() == out.strip().splitlines()[-1]

    graph = cli.json("graph", path)
    assert [(n["id"], n["protocol"], n["status"]) for n in graph["nodes"]] == [
        (1, "test.count", "finished"),
        (2, "test.sum", "finished"),
    ]
    assert graph["nodes"][0]["label"] == "numbers"
    assert graph["edges"] == [{"source": 1, "output": "numbers", "target": 2, "param": "source"}]
    code, out, _ = cli("graph", path)
    lines = out.splitlines()
    assert len(lines) == 2
    assert "test.count" in lines[0]
    assert "<- -" in lines[0]
    assert "numbers (30)" in lines[0]
    assert lines[0].endswith("numbers")
    assert "<- 1.numbers" in lines[1]
    assert "total (1)" in lines[1]


def test_status_json_shows_the_provenance(
    cli: Cli, project: Project, path: str, table: Path
) -> None:
    make_chain(cli, path, table)
    wait_for(project, 2, "finished")
    status = cli.json("status", path, "2")
    record = status["provenance"]
    assert record == project.get_run(2).provenance
    assert record["params"] == status["params"]
    assert record["versions"]["cryolab"] == cryolab.__version__
    assert [(i["param"], i["ref"], i["rows"]) for i in record["inputs"]] == [
        ("source", "1.rows", 9)
    ]
    assert record["started"] <= record["finished"]
    assert record["peak_memory"]["peak"] > 0
    assert cli.json("status", path, "1")["provenance"]["inputs"] == []


def test_status_of_a_missing_run(cli: Cli, path: str) -> None:
    assert "no run 5" in cli.error("status", path, "5")
    assert "no run 5" in cli.error("log", path, "5")


def test_a_run_id_that_is_not_a_number(cli: Cli, path: str) -> None:
    """Bug fixed: ``int('abc')`` escaped as a traceback."""
    for command in ("status", "log", "abort", "restart"):
        line = cli.error(command, path, "abc")
        assert "a run id is a number, got 'abc'" in line


# -- abort, restart ----------------------------------------------------------------------------
def test_abort_a_long_run(cli: Cli, project: Project, path: str) -> None:
    code, _, _ = cli("run", path, "test.count", "steps=50", "delay=0.2")
    assert code == 0
    wait_for(project, 1, "running")
    started = time.monotonic()
    code, out, _ = cli("abort", path, "1")
    assert code == 0
    assert out.strip() == "run 1: aborted"
    assert time.monotonic() - started < 10
    status = cli.json("status", path, "1")
    assert status["status"] == "aborted"
    assert status["steps"]["done"] < 50
    assert "aborted" in (status["error"] or "")
    code, out, _ = cli("status", path, "1")
    assert out.startswith("run 1 test.count: aborted (")


def test_restart_launches_a_saved_run(cli: Cli, project: Project, path: str) -> None:
    project.save("test.count", steps=2)
    code, out, _ = cli("restart", path, "1", "--wait")
    assert code == 0
    assert out.strip() == "run 1 test.count: finished"
    assert project.get_run(1).out.numbers.count == 20
    line = cli.error("restart", path, "1")
    assert "has finished; copy it to run it again" in line


# -- export, import -------------------------------------------------------------------------------
def make_chain(cli: Cli, path: str, table: Path) -> None:
    assert cli("run", path, "sets.import_table", f"files={table}", "--executor", "sync")[0] == 0
    assert cli("run", path, "sets.subset", "source=1.rows", "where=x < 6")[0] == 0
    assert cli("run", path, "sets.split", "source=2.subset", "parts=3", "--wait")[0] == 0


def test_export_and_import_with_dynamic_values(
    cli: Cli, project: Project, path: str, table: Path, tmp_path: Path
) -> None:
    make_chain(cli, path, table)
    output = tmp_path / "w.json"
    code, out, err = cli(
        "export",
        path,
        "-o",
        str(output),
        "--dynamic",
        "2.where=cut",
        "--dynamic",
        "3.parts=n_parts",
    )
    assert code == 0, err
    assert out.strip() == f"exported 3 runs to {output}"
    document = json.loads(output.read_text(encoding="utf-8"))
    assert [r["key"] for r in document["runs"]] == ["r1", "r2", "r3"]
    assert {p["name"]: p["default"] for p in document["parameters"]} == {
        "cut": "x < 6",
        "n_parts": 3,
    }

    other = tmp_path / "other"
    assert cli("new", str(other))[0] == 0
    code, out, err = cli(
        "import", str(other), str(output), "--set", "cut=x < 3", "--set", "n_parts=2"
    )
    assert code == 0, err
    assert out.strip() == "imported 3 runs: 1, 2, 3 (saved; launch with 'cryolab restart')"
    imported = Project(other)
    try:
        assert imported.get_run(2).params["where"] == "x < 3"
        assert imported.get_run(3).params["parts"] == 2  # text parsed as an int
        assert [r.status for r in imported.runs()] == ["saved"] * 3
        for run_id in ("1", "2", "3"):
            assert cli("restart", str(other), run_id)[0] == 0
        imported.get_run(3).wait(TIMEOUT)
        assert imported.get_run(2).out.subset.count == 3
    finally:
        imported.close()


def test_export_selected_runs_and_import_with_launch(
    cli: Cli, project: Project, path: str, table: Path, tmp_path: Path
) -> None:
    make_chain(cli, path, table)
    output = tmp_path / "part.json"
    code, out, _ = cli("export", path, "-o", str(output), "--runs", "2,3")
    assert code == 0
    assert out.strip() == f"exported 2 runs to {output}"
    document = json.loads(output.read_text(encoding="utf-8"))
    assert [p["name"] for p in document["parameters"]] == ["r2_source"]
    before = database_dump(project)
    line = cli.error("import", path, str(output))
    assert "'r2_source'" in line
    assert database_dump(project) == before
    code, out, err = cli("import", path, str(output), "--set", "r2_source=1.rows", "--launch")
    assert code == 0, err
    assert out.strip() == "imported 2 runs: 4, 5 (launched)"
    project.get_run(5).wait(TIMEOUT)
    assert project.get_run(4).params["source"] == "1.rows"
    assert project.get_run(5).params["source"] == "4.subset"
    assert project.get_run(5).status == "finished"
    assert {k: v.count for k, v in project.get_run(5).out.items()} == {
        k: v.count for k, v in project.get_run(3).out.items()
    }


def test_import_errors(cli: Cli, project: Project, path: str, table: Path, tmp_path: Path) -> None:
    make_chain(cli, path, table)
    output = tmp_path / "w.json"
    assert cli("export", path, "-o", str(output), "--dynamic", "3.parts=n_parts")[0] == 0
    before = database_dump(project)
    assert "no parameter(s) ['bogus']" in cli.error("import", path, str(output), "--set", "bogus=1")
    assert "--set needs name=value" in cli.error("import", path, str(output), "--set", "n")
    assert "'n_parts'" in cli.error("import", path, str(output), "--set", "n_parts=x")
    assert "no template file" in cli.error("import", path, str(tmp_path / "none.json"))
    assert database_dump(project) == before


def test_export_errors(cli: Cli, project: Project, path: str, tmp_path: Path) -> None:
    """Bugs fixed: malformed --dynamic/--runs and unwritable files gave tracebacks."""
    assert "no runs to export" in cli.error("export", path, "-o", str(tmp_path / "a.json"))
    cli("run", path, "test.count", "steps=1", "--wait")
    assert "--dynamic needs RUN.param=name, got 'foo'" in cli.error(
        "export", path, "-o", str(tmp_path / "a.json"), "--dynamic", "foo"
    )
    assert "a run id is a number, got 'x'" in cli.error(
        "export", path, "-o", str(tmp_path / "a.json"), "--runs", "1,x"
    )
    assert "no run 9" in cli.error("export", path, "-o", str(tmp_path / "a.json"), "--runs", "9")
    assert "cannot write" in cli.error("export", path, "-o", str(tmp_path / "no" / "a.json"))
    assert "['1.nope']" in cli.error(
        "export", path, "-o", str(tmp_path / "a.json"), "--dynamic", "1.nope=n"
    )
    assert not (tmp_path / "a.json").exists()


# -- errors of run leave the project unchanged -------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["sets.subst", "source=1.rows"],
            "unknown protocol 'sets.subst'; did you mean sets.subset",
        ),
        (
            ["sets.subset", "source=1.rows", "bogus=1"],
            "parameter 'bogus': sets.subset has no such parameter",
        ),
        (
            ["sets.split", "source=1.rows", "parts=three"],
            "parameter 'parts': 'three' is not an integer",
        ),
        (
            ["sets.split", "source=1.rows", "parts=2.5"],
            "parameter 'parts': '2.5' is not an integer",
        ),
        (["sets.split", "source=1.rows", "parts=1"], "parameter 'parts': 1 is below the minimum 2"),
        (
            ["sets.subset", "source=1.rows", "exclude=maybe"],
            "parameter 'exclude': 'maybe' is not true/false",
        ),
        (["sets.split", "source=7.rows"], "parameter 'source': run 7 does not exist"),
        (["sets.split", "source=1.nothing"], "parameter 'source': run 1 has no output 'nothing'"),
        (["sets.split", "parts"], "parameter 'parts': expected name=value, got 'parts'"),
        (["sets.subset", "source=1.rows", "where=x <"], "parameter 'where'"),
        (["test.missing"], "protocol 'test.missing' of plugin 'testplugin' is unavailable"),
    ],
)
def test_run_errors_exit_2_with_one_line_and_change_nothing(
    cli: Cli, project: Project, path: str, table: Path, argv: list[str], expected: str
) -> None:
    project.save("sets.import_table", files=str(table))
    before = database_dump(project)
    folders = sorted((project.path / "Runs").iterdir())
    line = cli.error("run", path, *argv)
    assert expected in line
    assert database_dump(project) == before
    assert sorted((project.path / "Runs").iterdir()) == folders


def test_a_list_value_that_does_not_parse_keeps_its_whole_message(cli: Cli, path: str) -> None:
    """Bug fixed: the message was cut at its first ': ' ('line 1 column 2 (char 1)')."""
    line = cli.error("run", path, "sets.join", "source=1.a", "other=1.b", "columns=[bad")
    assert "parameter 'columns': '[bad' is not valid: Expecting value" in line


# -- the installed console script ------------------------------------------------------------------
def test_console_script(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("cryolab")
    assert script.is_file()
    env = dict(os.environ)
    folder = tmp_path / "scripted"
    done = subprocess.run(
        [str(script), "new", str(folder)],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"created project {folder}"
    done = subprocess.run(
        [str(script), "run", str(folder), "test.count", "steps=2", "--wait", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["outputs"]["numbers"]["count"] == 20
    done = subprocess.run(
        [str(script), "run", str(folder), "sets.subst"],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "cryolab run: error: unknown protocol 'sets.subst'; did you mean sets.subset, sets.split?"
    ]


# -- compare -----------------------------------------------------------------------------------
def test_compare_text_and_json(cli: Cli, path: str, table: Path) -> None:
    assert cli("run", path, "sets.import_table", f"files={table}", "--executor", "sync")[0] == 0
    assert cli("run", path, "sets.subset", "source=1.rows", "where=x > 5", "--wait")[0] == 0
    assert cli("run", path, "sets.subset", "source=1.rows", "where=x > 2", "--wait")[0] == 0
    code, out, err = cli("compare", path, "2", "3")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "compare run 2 (sets.subset, finished) with run 3 (sets.subset, finished)"
    assert any(line.split() == ["where", "x", ">", "5", "x", ">", "2"] for line in lines)
    assert any(line.split() == ["count", "3", "6"] for line in lines)
    assert "  uids: 3 shared, 0 only in 2, 3 only in 3 (2 is contained in 3)" in lines

    data = cli.json("compare", path, "2", "3")
    assert set(data) == {"a", "b", "params", "outputs"}
    assert data["params"]["changed"] == [{"name": "where", "a": "x > 5", "b": "x > 2"}]
    out = data["outputs"]["subset"]
    assert set(out) == {"a", "b", "uids", "columns", "distributions"}
    assert (out["a"]["count"], out["b"]["count"]) == (3, 6)
    assert out["uids"]["relation"] == "a_in_b"
    assert set(out["distributions"]) == {"x", "y"}
    assert set(out["distributions"]["x"]) == {"a", "b", "ks"}


def test_compare_errors(cli: Cli, path: str, table: Path) -> None:
    assert cli("run", path, "sets.import_table", f"files={table}", "--executor", "sync")[0] == 0
    assert "no run 7" in cli.error("compare", path, "1", "7")
    assert "a run id is a number, got 'x'" in cli.error("compare", path, "x", "1")
