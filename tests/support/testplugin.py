"""Protocols used by the engine tests, found by run processes through ``CRYOLAB_PLUGINS``."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import numpy as np

from cryolab.core.params import FloatParam, InputParam, IntParam
from cryolab.core.plugins import Plugin
from cryolab.core.protocol import Output, Protocol, Step, StepContext
from cryolab.core.sets import Set, new_uids

EXECUTIONS = "executions.log"


class Count(Protocol):
    """Writes ``steps`` batches of 10 numbers, one per step, recording each execution."""

    name = "test.count"
    steps = IntParam(default=5, min=1)
    delay = FloatParam(default=0.0, min=0)
    fail_at = IntParam(default=-1, help="Index of a step that raises (-1: none).")
    threads = IntParam(default=1, min=1)
    outputs = {"numbers": Output(Set)}

    def plan(self) -> Iterator[Step]:
        for index in range(self.values["steps"]):
            yield Step(
                f"count-{index:04d}", "count", {"index": index}, threads=self.values["threads"]
            )

    def count(self, ctx: StepContext, index: int) -> None:
        with open(ctx.run_dir / EXECUTIONS, "a") as log:
            log.write(f"{ctx.step.id} {os.getpid()} {os.environ.get('CRYOLAB_STEP_THREADS')}\n")
        time.sleep(self.values["delay"])
        if index == self.values["fail_at"]:
            raise RuntimeError(f"step {index} fails on purpose")
        values = index * 10 + np.arange(10)
        ctx.append("numbers", {"value": values, "uid": new_uids(10, ctx.rng)})


class Trivial(Protocol):
    """``steps`` steps that do nothing (engine overhead)."""

    name = "test.trivial"
    steps = IntParam(default=100, min=1)

    def plan(self) -> Iterator[Step]:
        for index in range(self.values["steps"]):
            yield Step(f"s{index}", "nothing")

    def nothing(self, ctx: StepContext) -> None:
        return None


class Sum(Protocol):
    """Adds up the ``value`` column of a set (an input-consuming protocol)."""

    name = "test.sum"
    source = InputParam(Set)
    outputs = {"total": Output(Set)}

    def plan(self) -> Iterator[Step]:
        yield Step("sum", "total")

    def total(self, ctx: StepContext) -> None:
        source: Set = ctx.input("source")
        ctx.append("total", {"value": [int(source["value"].sum())]})


plugin = Plugin(
    name="testplugin",
    version="0.0",
    protocols={
        "test.count": "testplugin:Count",
        "test.trivial": "testplugin:Trivial",
        "test.sum": "testplugin:Sum",
        "test.missing": "testplugin:DoesNotExist",
    },
)
