"""One contract suite that every executor passes, plus executor-specific behaviour."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from cryolab.core.errors import StepError
from cryolab.core.executors import (
    Executor,
    LocalExecutor,
    SynchronousExecutor,
    check_plan,
    make_executor,
)
from cryolab.core.protocol import Step


def record(step: Step) -> None:
    """Work function: append start/end times to a log; sleep or fail when asked."""
    log = Path(step.args["log"])
    with open(log, "a") as handle:
        handle.write(
            json.dumps(
                {
                    "id": step.id,
                    "event": "start",
                    "t": time.time(),
                    "pid": os.getpid(),
                    "threads": os.environ.get("CRYOLAB_STEP_THREADS"),
                }
            )
            + "\n"
        )
    time.sleep(step.args.get("sleep", 0))
    if step.args.get("fail"):
        raise ValueError(f"{step.id} was told to fail")
    with open(log, "a") as handle:
        handle.write(json.dumps({"id": step.id, "event": "end", "t": time.time()}) + "\n")


def events(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def chain(log: Path, ids: Sequence[str], **args) -> list[Step]:  # type: ignore[no-untyped-def]
    steps = []
    for index, step_id in enumerate(ids):
        deps = (ids[index - 1],) if index else ()
        steps.append(Step(step_id, "record", {"log": str(log), **args}, deps))
    return steps


class ExecutorContract:
    """The behaviour every executor must have; subclasses provide ``make``."""

    def make(self) -> Executor:
        raise NotImplementedError

    def test_runs_every_step_once(self, tmp_path: Path) -> None:
        log = tmp_path / "log"
        steps = [Step(f"s{i}", "record", {"log": str(log)}) for i in range(12)]
        self.make().execute(steps, record)
        ends = [e["id"] for e in events(log) if e["event"] == "end"]
        assert sorted(ends) == sorted(s.id for s in steps)

    def test_dependencies_finish_before_dependents_start(self, tmp_path: Path) -> None:
        log = tmp_path / "log"
        # a diamond: a -> (b, c) -> d
        steps = [
            Step("a", "record", {"log": str(log), "sleep": 0.05}),
            Step("b", "record", {"log": str(log), "sleep": 0.05}, ("a",)),
            Step("c", "record", {"log": str(log)}, ("a",)),
            Step("d", "record", {"log": str(log)}, ("b", "c")),
        ]
        self.make().execute(steps, record)
        seen = events(log)
        end = {e["id"]: e["t"] for e in seen if e["event"] == "end"}
        start = {e["id"]: e["t"] for e in seen if e["event"] == "start"}
        assert start["b"] >= end["a"] and start["c"] >= end["a"]
        assert start["d"] >= max(end["b"], end["c"])

    def test_skips_steps_already_done(self, tmp_path: Path) -> None:
        log = tmp_path / "log"
        steps = chain(log, ["a", "b", "c"])
        self.make().execute(steps, record, done={"a", "b"})
        assert [e["id"] for e in events(log) if e["event"] == "end"] == ["c"]

    def test_hooks_are_called_for_each_step(self, tmp_path: Path) -> None:
        log = tmp_path / "log"
        started: list[str] = []
        finished: list[tuple[str, str | None]] = []
        self.make().execute(
            chain(log, ["a", "b"]),
            record,
            on_start=lambda s: started.append(s.id),
            on_done=lambda s, e: finished.append((s.id, e)),
        )
        assert started == ["a", "b"]
        assert finished == [("a", None), ("b", None)]

    def test_failure_stops_dependents_and_names_the_step(self, tmp_path: Path) -> None:
        log = tmp_path / "log"
        steps = [
            Step("a", "record", {"log": str(log)}),
            Step("bad", "record", {"log": str(log), "fail": True}, ("a",)),
            Step("after", "record", {"log": str(log)}, ("bad",)),
        ]
        errors: dict[str, str | None] = {}
        with pytest.raises(StepError, match="bad") as caught:
            self.make().execute(steps, record, on_done=lambda s, e: errors.update({s.id: e}))
        assert caught.value.step_id == "bad"
        assert "was told to fail" in str(caught.value)
        assert errors["a"] is None and "was told to fail" in str(errors["bad"])
        assert "after" not in {e["id"] for e in events(log)}

    def test_refuses_bad_plans_before_running_anything(self, tmp_path: Path) -> None:
        log = tmp_path / "log"
        unknown = [Step("a", "record", {"log": str(log)}, ("ghost",))]
        cycle = [
            Step("a", "record", {"log": str(log)}, ("b",)),
            Step("b", "record", {"log": str(log)}, ("a",)),
        ]
        twice = [Step("a", "record", {"log": str(log)}), Step("a", "record", {"log": str(log)})]
        with pytest.raises(StepError, match="unknown step"):
            self.make().execute(unknown, record)
        with pytest.raises(StepError, match="cycle"):
            self.make().execute(cycle, record)
        with pytest.raises(StepError, match="duplicate"):
            self.make().execute(twice, record)
        assert not log.exists()

    def test_nothing_to_do(self, tmp_path: Path) -> None:
        log = tmp_path / "log"
        self.make().execute(chain(log, ["a"]), record, done={"a"})
        self.make().execute([], record)
        assert not log.exists()


class TestSynchronous(ExecutorContract):
    def make(self) -> Executor:
        return SynchronousExecutor()

    def test_runs_in_the_calling_process(self, tmp_path: Path) -> None:
        log = tmp_path / "log"
        self.make().execute(chain(log, ["a", "b"]), record)
        assert {e["pid"] for e in events(log) if e["event"] == "start"} == {os.getpid()}


class TestLocal(ExecutorContract):
    def make(self) -> Executor:
        return LocalExecutor(cores=2)

    def test_runs_independent_steps_at_once_in_workers(self, tmp_path: Path) -> None:
        log = tmp_path / "log"
        steps = [Step(f"s{i}", "record", {"log": str(log), "sleep": 0.4}) for i in range(2)]
        self.make().execute(steps, record)
        seen = events(log)
        starts = sorted(e["t"] for e in seen if e["event"] == "start")
        ends = sorted(e["t"] for e in seen if e["event"] == "end")
        assert starts[1] < ends[0], "the two steps should overlap in time"
        assert os.getpid() not in {e["pid"] for e in seen if e["event"] == "start"}

    def test_a_step_taking_all_cores_runs_alone(self, tmp_path: Path) -> None:
        log = tmp_path / "log"
        steps = [
            Step("wide", "record", {"log": str(log), "sleep": 0.3}, threads=2),
            Step("narrow", "record", {"log": str(log), "sleep": 0.3}, threads=1),
        ]
        self.make().execute(steps, record)
        seen = {(e["id"], e["event"]): e for e in events(log)}
        assert seen[("wide", "start")]["threads"] == "2"
        assert seen[("narrow", "start")]["threads"] == "1"
        assert (
            seen[("narrow", "start")]["t"] >= seen[("wide", "end")]["t"]
            or seen[("wide", "start")]["t"] >= seen[("narrow", "end")]["t"]
        )

    def test_many_short_steps_are_batched_but_all_reported(self, tmp_path: Path) -> None:
        log = tmp_path / "log"
        steps = [Step(f"s{i}", "record", {"log": str(log)}) for i in range(400)]
        reported: list[str] = []
        self.make().execute(steps, record, on_done=lambda s, e: reported.append(s.id))
        assert sorted(reported) == sorted(s.id for s in steps)
        assert len({e["id"] for e in events(log) if e["event"] == "end"}) == 400


def test_check_plan_accepts_dependencies_on_done_steps() -> None:
    check_plan([Step("b", "f", deps=("a",))], done={"a"})


def test_make_executor_names() -> None:
    assert isinstance(make_executor("sync"), SynchronousExecutor)
    assert make_executor("local", cores=3).cores == 3  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="unknown executor"):
        make_executor("slurm-typo")
