"""Executors run the steps of a plan, honouring dependencies, behind one interface.

``SynchronousExecutor`` runs steps one after the other in the calling process (tests,
debugging). ``LocalExecutor`` runs independent steps at once in worker processes, giving each
step its declared number of threads out of ``cores``. Both pass the same contract test suite
(``tests/core/test_executors.py``); Dask and Slurm backends implement the same interface.
"""

from __future__ import annotations

import multiprocessing
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

from cryolab.core.errors import StepError
from cryolab.core.protocol import Step

StepWork = Callable[[Step], None]
StepHook = Callable[[Step], None]
StepDoneHook = Callable[[Step, "str | None"], None]

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                     "NUMEXPR_NUM_THREADS", "CRYOLAB_STEP_THREADS")


def _noop(*_: object) -> None:
    return None


def check_plan(steps: Sequence[Step], done: Collection[str] = ()) -> None:
    """Refuse duplicate step ids, unknown dependencies and dependency cycles."""
    ids = [s.id for s in steps]
    if len(set(ids)) != len(ids):
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        raise StepError(duplicated[0], f"duplicate step id(s) {duplicated}")
    known = set(ids) | set(done)
    for step in steps:
        missing = [d for d in step.deps if d not in known]
        if missing:
            raise StepError(step.id, f"depends on unknown step(s) {missing}")
    remaining = {s.id: set(s.deps) - set(done) for s in steps if s.id not in done}
    while remaining:
        ready = [k for k, deps in remaining.items() if not deps]
        if not ready:
            raise StepError(sorted(remaining)[0], "the steps' dependencies form a cycle")
        for key in ready:
            del remaining[key]
        for deps in remaining.values():
            deps.difference_update(ready)


class Executor(ABC):
    """Runs the steps of one run.

    Implementations call ``work(step)`` for every step not in ``done`` once all its
    dependencies are done, call ``on_start``/``on_done`` in the calling process, and after a
    failure start nothing new, wait for what is running, and raise :class:`StepError`.
    """

    name = "executor"

    @abstractmethod
    def execute(self, steps: Sequence[Step], work: StepWork, *, done: Collection[str] = (),
                on_start: StepHook = _noop, on_done: StepDoneHook = _noop) -> None:
        """Run the steps; ``on_done(step, error)`` gets ``None`` or the error text."""


class SynchronousExecutor(Executor):
    """Runs steps one by one in the calling process, in dependency order."""

    name = "sync"

    def execute(self, steps: Sequence[Step], work: StepWork, *, done: Collection[str] = (),
                on_start: StepHook = _noop, on_done: StepDoneHook = _noop) -> None:
        check_plan(steps, done)
        finished = set(done)
        pending = [s for s in steps if s.id not in finished]
        while pending:
            step = next(s for s in pending if finished.issuperset(s.deps))
            pending.remove(step)
            on_start(step)
            try:
                work(step)
            except Exception as exc:
                message = f"{type(exc).__name__}: {exc}"
                on_done(step, message)
                raise StepError(step.id, message) from exc
            on_done(step, None)
            finished.add(step.id)


def _run_in_worker(work: StepWork, step: Step) -> None:
    threads = str(max(1, step.threads))
    for variable in _THREAD_VARIABLES:
        os.environ[variable] = threads
    work(step)


class LocalExecutor(Executor):
    """Runs independent steps in parallel worker processes on this machine.

    Parameters
    ----------
    cores
        Cores the run may use; a step declaring ``threads=t`` takes ``t`` of them (a step
        asking for more than ``cores`` runs alone).
    """

    name = "local"

    def __init__(self, cores: int | None = None) -> None:
        self.cores = max(1, cores or os.cpu_count() or 1)

    def execute(self, steps: Sequence[Step], work: StepWork, *, done: Collection[str] = (),
                on_start: StepHook = _noop, on_done: StepDoneHook = _noop) -> None:
        check_plan(steps, done)
        finished = set(done)
        pending = [s for s in steps if s.id not in finished]
        if not pending:
            return
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        running: dict[Future[None], Step] = {}
        used = 0
        failure: tuple[Step, str] | None = None
        with ProcessPoolExecutor(max_workers=self.cores, mp_context=context) as pool:
            try:
                while pending or running:
                    if failure is None:
                        for step in list(pending):
                            if not finished.issuperset(step.deps):
                                continue
                            need = min(max(1, step.threads), self.cores)
                            if running and used + need > self.cores:
                                continue
                            pending.remove(step)
                            on_start(step)
                            running[pool.submit(_run_in_worker, work, step)] = step
                            used += need
                    if not running:
                        break
                    completed, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in completed:
                        step = running.pop(future)
                        used -= min(max(1, step.threads), self.cores)
                        error = future.exception()
                        if error is None:
                            finished.add(step.id)
                            on_done(step, None)
                        else:
                            message = f"{type(error).__name__}: {error}"
                            on_done(step, message)
                            failure = failure or (step, message)
            except BaseException:
                for future in running:
                    future.cancel()
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        if failure is not None:
            raise StepError(failure[0].id, failure[1])


def make_executor(name: str, cores: int | None = None) -> Executor:
    """Return the executor called ``name`` (``"sync"`` or ``"local"``)."""
    if name == "sync":
        return SynchronousExecutor()
    if name == "local":
        return LocalExecutor(cores)
    raise ValueError(f"unknown executor {name!r}; choose 'sync' or 'local'")
