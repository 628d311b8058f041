"""Executors run the steps of a plan, honouring dependencies, behind one interface.

``SynchronousExecutor`` runs steps one after the other in the calling process (tests,
debugging). ``LocalExecutor`` runs independent steps at once in worker processes, giving each
step its declared number of threads out of ``cores``. Both pass the same contract test suite
(``tests/core/test_executors.py``); Dask and Slurm backends implement the same interface.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

from cryolab.core.errors import StepError
from cryolab.core.protocol import Step

StepWork = Callable[[Step], None]
StepHook = Callable[[Step], None]
StepDoneHook = Callable[[Step, "str | None"], None]

_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "CRYOLAB_STEP_THREADS",
)


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
    def execute(
        self,
        steps: Sequence[Step],
        work: StepWork,
        *,
        done: Collection[str] = (),
        on_start: StepHook = _noop,
        on_done: StepDoneHook = _noop,
    ) -> None:
        """Run the steps; ``on_done(step, error)`` gets ``None`` or the error text."""


class SynchronousExecutor(Executor):
    """Runs steps one by one in the calling process, in dependency order."""

    name = "sync"

    def execute(
        self,
        steps: Sequence[Step],
        work: StepWork,
        *,
        done: Collection[str] = (),
        on_start: StepHook = _noop,
        on_done: StepDoneHook = _noop,
    ) -> None:
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


def _run_batch(work: StepWork, steps: Sequence[Step]) -> list[tuple[str, str | None, float]]:
    """Run steps one after the other in a worker; stop at the first failure.

    Returns ``(step id, error or None, seconds)`` for each step that ran.
    """
    threads = str(max(1, max(step.threads for step in steps)))
    for variable in _THREAD_VARIABLES:
        os.environ[variable] = threads
    results: list[tuple[str, str | None, float]] = []
    for step in steps:
        start = time.perf_counter()
        try:
            work(step)
        except Exception as exc:
            results.append((step.id, f"{type(exc).__name__}: {exc}", time.perf_counter() - start))
            break
        results.append((step.id, None, time.perf_counter() - start))
    return results


class LocalExecutor(Executor):
    """Runs independent steps in parallel worker processes on this machine.

    Parameters
    ----------
    cores
        Cores the run may use; a step declaring ``threads=t`` takes ``t`` of them (a step
        asking for more than ``cores`` runs alone).
    batch_seconds
        Steps shorter than this are sent to workers in batches taking about this long, so that
        thousands of tiny steps do not each pay an inter-process round trip. A step's work
        function records its own completion, so batching does not delay what a resumed run
        knows to be done.
    """

    name = "local"

    def __init__(self, cores: int | None = None, batch_seconds: float = 0.05) -> None:
        self.cores = max(1, cores or os.cpu_count() or 1)
        self.batch_seconds = batch_seconds

    def execute(
        self,
        steps: Sequence[Step],
        work: StepWork,
        *,
        done: Collection[str] = (),
        on_start: StepHook = _noop,
        on_done: StepDoneHook = _noop,
    ) -> None:
        check_plan(steps, done)
        by_id = {s.id: s for s in steps}
        waiting = {s.id: len(set(s.deps) - set(done)) for s in steps if s.id not in done}
        dependents: dict[str, list[str]] = {}
        for step in steps:
            for dep in set(step.deps) - set(done):
                dependents.setdefault(dep, []).append(step.id)
        ready = deque(by_id[i] for i in by_id if waiting.get(i) == 0)
        if not waiting:
            return
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        running: dict[Future[list[tuple[str, str | None, float]]], tuple[list[Step], int]] = {}
        used = 0
        failure: tuple[Step, str] | None = None
        timing = [0.0, 0]  # seconds and count of finished steps, to size batches
        with ProcessPoolExecutor(max_workers=self.cores, mp_context=context) as pool:
            try:
                while ready or running:
                    while failure is None and ready:
                        need = min(max(1, ready[0].threads), self.cores)
                        if running and used + need > self.cores:
                            break
                        batch = self._take_batch(ready, timing)
                        for step in batch:
                            on_start(step)
                        running[pool.submit(_run_batch, work, batch)] = (batch, need)
                        used += need
                    if not running:
                        break
                    completed, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in completed:
                        batch, need = running.pop(future)
                        used -= need
                        error = future.exception()
                        results = (
                            future.result()
                            if error is None
                            else [(batch[0].id, f"{type(error).__name__}: {error}", 0.0)]
                        )
                        reported = {step_id for step_id, _, _ in results}
                        for step_id, message, seconds in results:
                            on_done(by_id[step_id], message)
                            timing[0] += seconds
                            timing[1] += 1
                            if message is not None:
                                failure = failure or (by_id[step_id], message)
                                continue
                            for follower in dependents.get(step_id, []):
                                waiting[follower] -= 1
                                if waiting[follower] == 0:
                                    ready.append(by_id[follower])
                        ready.extendleft(reversed([s for s in batch if s.id not in reported]))
            except BaseException:
                for future in running:
                    future.cancel()
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        if failure is not None:
            raise StepError(failure[0].id, failure[1])

    def _take_batch(self, ready: deque[Step], timing: list[float]) -> list[Step]:
        """The next steps to send to one worker: one, or many when steps are short."""
        size = 1
        if timing[1] >= self.cores:
            mean = timing[0] / timing[1]
            size = int(self.batch_seconds / mean) if mean > 0 else 256
            size = max(1, min(size, 256, -(-len(ready) // self.cores)))
        threads = ready[0].threads
        batch = [ready.popleft()]
        while ready and len(batch) < size and ready[0].threads == threads:
            batch.append(ready.popleft())
        return batch


def make_executor(name: str, cores: int | None = None) -> Executor:
    """Return the executor called ``name`` (``"sync"`` or ``"local"``)."""
    if name == "sync":
        return SynchronousExecutor()
    if name == "local":
        return LocalExecutor(cores)
    raise ValueError(f"unknown executor {name!r}; choose 'sync' or 'local'")
