"""Projects and runs: creation, launching in a process, handles, statuses, resume, bad input."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import database_dump
from cryolab.core import database
from cryolab.core.errors import (
    GraphError,
    ParameterError,
    ProjectError,
    ProtocolNotFoundError,
    RunFailedError,
    RunNotFoundError,
)
from cryolab.core.project import Project, open_project
from cryolab.core.runner import process_start_time
from cryolab.core.sets import Set

EXECUTIONS = "executions.log"


def wait_for(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def test_open_project_creates_the_layout(tmp_path: Path) -> None:
    project = open_project(tmp_path / "p")
    assert (tmp_path / "p" / "project.sqlite").exists()
    assert (tmp_path / "p" / "Runs").is_dir()
    assert project.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert project.info()["schema_version"] == database.SCHEMA_VERSION
    assert oct((tmp_path / "p").stat().st_mode & 0o007) == "0o0"  # not world-accessible
    with pytest.raises(ProjectError, match="no cryolab project"):
        open_project(tmp_path / "absent", create=False)
    with pytest.raises(ProjectError, match="already exists"):
        Project.create(tmp_path / "p")


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    project = open_project(tmp_path / "p")
    project.db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    project.close()
    with pytest.raises(ProjectError, match="newer than this cryolab"):
        open_project(tmp_path / "p")


def test_a_corrupt_database_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "project.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ProjectError, match=r"project\.sqlite"):
        open_project(tmp_path / "p")


def test_run_returns_at_once_and_executes_in_another_process(project: Project) -> None:
    start = time.perf_counter()
    run = project.run("test.count", steps=3, delay=0.3)
    assert time.perf_counter() - start < 0.5
    assert run.status in ("launched", "running")
    wait_for(lambda: run.status == "running")
    pid = project._run_row(run.id)["pid"]
    assert pid != os.getpid()
    run.wait(30)
    assert run.status == "finished"
    assert len(run.out.numbers) == 30
    assert sorted(run.out.numbers["value"]) == list(range(30))
    assert [s["status"] for s in run.steps()] == ["done"] * 3
    assert "planned 3 steps" in run.log()
    assert run.folder.name == f"{run.id:06d}_test_count"


def test_run_outputs_are_a_read_only_mapping(project: Project) -> None:
    run = project.run("test.count", steps=2).wait(30)
    assert dict(run.out).keys() == {"numbers"}
    assert run.out.numbers is not None and str(run.out["numbers"]) == f"{run.id}.numbers"
    assert run.out["numbers"].types == ["Set"]
    with pytest.raises(KeyError, match="no output 'nope'"):
        run.out["nope"]
    with pytest.raises(AttributeError, match="no output"):
        _ = run.out.nope
    with pytest.raises(TypeError):
        run.out["numbers"] = None  # type: ignore[index]
    loaded = run.out.numbers.load()
    assert isinstance(loaded, Set) and loaded.state == "closed"
    assert "20" in run.out.numbers._repr_html_()


def test_an_output_can_be_an_input_before_it_exists(project: Project) -> None:
    first = project.run("test.count", steps=3, delay=0.3)
    second = project.run("test.sum", source=first.out.numbers)
    wait_for(lambda: second.status == "scheduled")
    second.wait(30)
    assert first.status == "finished"
    assert second.out.total["value"].tolist() == [sum(range(30))]


def test_a_failed_input_fails_the_scheduled_run(project: Project) -> None:
    first = project.run("test.count", steps=3, fail_at=1)
    second = project.run("test.sum", source=first.out.numbers)
    with pytest.raises(RunFailedError, match="fails on purpose"):
        first.wait(30)
    with pytest.raises(RunFailedError, match=f"input run did not finish: run {first.id}"):
        second.wait(30)


def test_failure_is_recorded_with_the_step(project: Project) -> None:
    run = project.run("test.count", steps=4, fail_at=2, executor="sync").wait(30, check=False)
    assert run.status == "failed"
    assert "count-0002" in str(run.error) and "fails on purpose" in str(run.error)
    statuses = {s["id"]: s["status"] for s in run.steps()}
    assert statuses["count-0001"] == "done" and statuses["count-0002"] == "failed"
    assert "Traceback" in run.log()


def test_abort_stops_the_process_and_its_workers(project: Project) -> None:
    run = project.run("test.count", steps=40, delay=0.5, cores=2)
    wait_for(lambda: any(s["status"] == "running" for s in run.steps()))
    pid = project._run_row(run.id)["pid"]
    run.abort()
    assert run.status == "aborted"
    wait_for(lambda: process_start_time(pid) is None, timeout=10)
    with pytest.raises(RunFailedError, match="aborted"):
        run.wait(5)


def test_a_status_change_only_from_active_leaves_a_finished_run_alone(project: Project) -> None:
    run = project.run("test.count", steps=1, delay=0.0).wait(60)
    events = len(project.events())
    changed = database.set_status(
        project.db, run.id, "aborted", only_from=("launched", "scheduled", "running"), error="x"
    )
    assert not changed
    assert (run.status, run.error) == ("finished", None)
    assert len(project.events()) == events  # no status event for a change not made
    run.abort()  # what an abort racing with the run's end does
    assert run.status == "finished"


def _kill_midway(project: Project, steps: int) -> tuple[int, set[str]]:
    run = project.run("test.count", steps=steps, delay=0.15, cores=2, seed=1234)
    wait_for(lambda: sum(s["status"] == "done" for s in run.steps()) >= 4)
    row = project._run_row(run.id)
    os.killpg(row["pid"], signal.SIGKILL)
    wait_for(lambda: process_start_time(row["pid"]) is None, timeout=10)
    done = {s["id"] for s in run.steps() if s["status"] == "done"}
    return run.id, done


def test_a_killed_run_resumes_without_redoing_finished_steps(project: Project) -> None:
    steps = 16
    run_id, done_before = _kill_midway(project, steps)
    run = project.get_run(run_id)
    assert run.status == "failed" and "killed" in str(run.error)
    assert 4 <= len(done_before) < steps
    executed_before = (run.folder / EXECUTIONS).read_text().split("\n")
    project.launch(run_id).wait(60)
    assert run.status == "finished"
    executions = [line.split()[0] for line in (run.folder / EXECUTIONS).read_text().splitlines()]
    for step_id in done_before:
        assert executions.count(step_id) == 1, f"{step_id} was recomputed"
    assert len(executed_before) <= len(executions)
    assert "resuming run" in run.log()

    reference = project.run("test.count", steps=steps, delay=0.0, seed=1234).wait(60)
    resumed = run.out.numbers.load().to_pandas().sort_values("uid").reset_index(drop=True)
    expected = reference.out.numbers.load().to_pandas().sort_values("uid").reset_index(drop=True)
    assert len(resumed) == steps * 10
    assert resumed.equals(expected)


def test_relaunching_a_finished_or_running_run_is_refused(project: Project) -> None:
    run = project.run("test.count", steps=1).wait(30)
    with pytest.raises(ProjectError, match="has finished"):
        project.launch(run.id)
    slow = project.run("test.count", steps=3, delay=0.5)
    with pytest.raises(ProjectError, match="already"):
        project.launch(slow.id)


def test_saved_runs_wait_for_launch(project: Project) -> None:
    saved = project.save("test.count", steps=2)
    assert saved.status == "saved"
    with pytest.raises(RunFailedError, match="saved, not launched"):
        saved.wait(1)
    saved.launch().wait(30)
    assert saved.status == "finished"


@pytest.mark.parametrize(
    ("protocol", "params", "error", "message"),
    [
        ("test.cuont", {}, ProtocolNotFoundError, "did you mean test.count"),
        ("test.count", {"steps": "many"}, ParameterError, "'steps': expected int"),
        ("test.count", {"steps": 0}, ParameterError, "'steps': 0 is below the minimum 1"),
        ("test.count", {"stpes": 2}, ParameterError, "'stpes': test.count has no such"),
        ("test.sum", {}, ParameterError, "'source': a value is required"),
        ("test.sum", {"source": "99.numbers"}, ParameterError, "run 99 does not exist"),
        ("test.sum", {"source": "nonsense"}, ParameterError, "expected an output such as"),
        (
            "sets.subset",
            {"source": "1.numbers", "where": "value >"},
            ParameterError,
            "malformed condition",
        ),
        ("test.count", {"steps": object()}, ParameterError, "JSON"),
    ],
)
def test_bad_input_is_one_clear_error_and_changes_nothing(
    project: Project, protocol: str, params: dict, error: type, message: str
) -> None:
    project.run("test.count", steps=1).wait(30)
    before = database_dump(project)
    with pytest.raises(error, match=message):
        project.run(protocol, **params)
    assert database_dump(project) == before
    assert len(list((project.path / "Runs").iterdir())) == 1


def test_input_of_the_wrong_type_or_output_name(project: Project) -> None:
    counted = project.run("test.count", steps=1).wait(30)
    before = database_dump(project)
    with pytest.raises(ParameterError, match="has no output 'particles'; it has \\['numbers'\\]"):
        project.run("test.sum", source=f"{counted.id}.particles")
    with pytest.raises(ParameterError, match="pick one"):
        project.run("sets.merge", sets=[project.run("sets.split", source=counted.out.numbers)])
    assert len(database_dump(project)) > len(before)  # the split run itself was created


def test_a_cycle_is_refused(project: Project) -> None:
    first = project.save("test.count", steps=1)
    second = project.save("sets.subset", source=first.out.numbers, where="value > 1")
    third = project.save("sets.subset", source=second.out.subset, where="value > 2")
    before = database_dump(project)
    with pytest.raises(GraphError, match="cycle"):
        project.update_params(second.id, source=third.out.subset)
    assert database_dump(project) == before


def test_run_graph_is_json_with_statuses_and_counts(project: Project) -> None:
    first = project.run("test.count", steps=2).wait(30)
    second = project.run("sets.split", source=first.out.numbers, parts=2, label="halves")
    second.wait(30)
    graph = json.loads(json.dumps(project.run_graph()))
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert nodes[first.id]["status"] == "finished"
    assert nodes[second.id]["label"] == "halves"
    assert [(o["name"], o["count"]) for o in nodes[second.id]["outputs"]] == [
        ("part1", 10),
        ("part2", 10),
    ]
    assert graph["edges"] == [
        {"source": first.id, "output": "numbers", "target": second.id, "param": "source"}
    ]


def test_events_record_the_life_of_a_run(project: Project) -> None:
    run = project.run("test.count", steps=1).wait(30)
    kinds = [(e["kind"], e.get("status")) for e in project.events() if e["run"] == run.id]
    assert kinds[0] == ("created", None)
    assert ("status", "running") in kinds and kinds[-1] == ("status", "finished")
    last = project.events()[-1]["id"]
    project.set_label(run.id, "first")
    assert [e["kind"] for e in project.events(since=last)] == ["label"]


def test_get_run_errors_and_handles(project: Project) -> None:
    with pytest.raises(RunNotFoundError, match="no run 5"):
        project.get_run(5)
    run = project.run("test.count", steps=1).wait(30)
    assert project[run.id].protocol == "test.count"
    assert repr(run) == f"<Run {run.id} test.count [finished]>"
    assert "test.count" in run._repr_html_()
    assert run.summary() == "test.count: numbers: 10 items"


def test_a_project_folder_can_be_moved(tmp_path: Path) -> None:
    project = open_project(tmp_path / "a")
    run = project.run("test.count", steps=2).wait(30)
    project.close()
    (tmp_path / "a").rename(tmp_path / "b")
    moved = open_project(tmp_path / "b", create=False)
    assert np.array_equal(np.sort(moved.get_run(run.id).out.numbers["value"]), np.arange(20))


def test_database_migrates_an_empty_file(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    sqlite3.connect(folder / "project.sqlite").close()
    project = Project(folder)
    assert database.schema_version(project.db) == database.SCHEMA_VERSION


def test_relative_paths_are_taken_from_the_callers_folder(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "table.csv").write_text("score\n0.1\n0.7\n")
    monkeypatch.chdir(tmp_path)
    run = project.run("sets.import_table", files="data/*.csv").wait(30)
    assert run.params["files"] == str(data / "*.csv")
    assert run.out.rows["score"].tolist() == [0.1, 0.7]


def test_a_pattern_that_no_longer_matches_fails_the_run(project: Project, tmp_path: Path) -> None:
    (tmp_path / "gone.csv").write_text("score\n1\n")
    saved = project.save("sets.import_table", files=str(tmp_path / "gone*.csv"))
    (tmp_path / "gone.csv").unlink()
    run = saved.launch().wait(30, check=False)
    assert run.status == "failed" and "no file matches" in str(run.error)
