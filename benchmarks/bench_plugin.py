"""Protocols used by ``bench_engine.py`` to measure the engine's own overhead.

Loaded without installing anything, through the ``CRYOLAB_PLUGINS`` environment variable::

    CRYOLAB_PLUGINS=bench=bench_plugin:plugin PYTHONPATH=benchmarks python ...

Run processes inherit both variables, so they import this module the same way.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from cryolab.core.params import FloatParam, IntParam
from cryolab.core.plugins import Plugin
from cryolab.core.protocol import Protocol, Step, StepContext

plugin = Plugin(
    name="bench",
    version="0",
    protocols={
        "bench.trivial": "bench_plugin:Trivial",
        "bench.hold": "bench_plugin:Hold",
    },
)


class Trivial(Protocol):
    """Plans ``steps`` independent steps whose method does nothing (pure engine overhead)."""

    name = "bench.trivial"
    label = "Trivial steps"
    steps = IntParam(default=10_000, min=1, max=10_000_000, help="How many steps to plan.")
    outputs = {}

    def plan(self) -> Iterator[Step]:
        for index in range(self.values["steps"]):
            yield Step(f"s{index:07d}", "nothing")

    def nothing(self, ctx: StepContext) -> None:
        """Do nothing at all."""
        return None


class Hold(Protocol):
    """One step that sleeps ``seconds``, so that the ``running`` status can be observed."""

    name = "bench.hold"
    label = "Hold"
    seconds = FloatParam(default=0.3, min=0.0, max=3600.0, help="How long the step sleeps.")
    outputs = {}

    def plan(self) -> Iterator[Step]:
        yield Step("hold", "hold")

    def hold(self, ctx: StepContext) -> None:
        """Sleep, then return."""
        time.sleep(self.values["seconds"])
