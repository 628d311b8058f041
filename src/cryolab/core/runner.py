"""The process a run executes in: ``python -m cryolab.core.runner PROJECT RUN_ID``.

It records its pid, waits while an input run is not finished (status ``scheduled``), marks the
run ``running``, plans the steps once (stored in the database), executes the steps not yet
done with the run's executor, closes the outputs and marks the run ``finished`` (or ``failed``
/ ``aborted``). Relaunched after a crash, it discards the batches of unfinished steps and
resumes from the first step not done: finished steps are never recomputed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import sqlite3
import sys
import time
import traceback
from functools import partial
from pathlib import Path
from typing import Any

from cryolab.core import database, provenance

log = logging.getLogger("cryolab.runner")
POLL_SECONDS = 0.25


class Aborted(BaseException):
    """Raised in the run process when it receives SIGTERM (``run.abort()``)."""


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of a process (to tell a pid from a reused one), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    if fields[0] == "Z":  # a zombie has finished
        return None
    return fields[19]


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Aborted()


def main(argv: list[str] | None = None) -> int:
    """Run one run of a project to its end; returns the process exit code."""
    args = sys.argv[1:] if argv is None else argv
    folder, run_id = Path(args[0]), int(args[1])
    signal.signal(signal.SIGTERM, _on_sigterm)
    connection = database.connect(folder)
    connection.execute(
        "UPDATE runs SET pid = ?, pid_start = ?, host = ? WHERE id = ?",
        (os.getpid(), process_start_time(os.getpid()), socket.gethostname(), run_id),
    )
    recorder: provenance.Recorder | None = None
    try:
        if not _wait_for_inputs(connection, run_id):
            return 1
        started = time.time()
        database.set_status(connection, run_id, "running", started=started, error=None)
        _setup_logging(folder, connection, run_id)
        recorder = provenance.start(folder, connection, run_id, started)
        _execute(folder, connection, run_id)
    except Aborted:
        log.warning("run %d aborted", run_id)
        _end(connection, run_id, recorder, "aborted", error="aborted by the user")
        return 2
    except Exception as exc:
        log.error("run %d failed: %s\n%s", run_id, exc, traceback.format_exc())
        error = f"{type(exc).__name__}: {exc}" if str(exc) else repr(exc)
        _end(connection, run_id, recorder, "failed", error=error)
        return 1
    _end(connection, run_id, recorder, "finished")
    log.info("run %d finished", run_id)
    return 0


def _end(
    connection: sqlite3.Connection,
    run_id: int,
    recorder: provenance.Recorder | None,
    status: str,
    **fields: Any,
) -> None:
    """Mark the run ended with ``status`` and complete its provenance (end time, memory).

    The provenance is completed first, so a reader that sees the run ended finds it whole;
    an abort records its status first instead: ``run.abort()`` is waiting for it, and the
    SIGTERM that ended the run also reached its step workers.
    """
    finished = time.time()
    if status == "aborted":
        database.set_status(connection, run_id, status, finished=finished, **fields)
        _finish(recorder, status, finished)
        return
    _finish(recorder, status, finished)
    database.set_status(connection, run_id, status, finished=finished, **fields)


def _finish(recorder: provenance.Recorder | None, status: str, finished: float) -> None:
    """Complete the provenance record; a failure is logged, never raised."""
    if recorder is None:
        return
    try:
        recorder.finish(status, finished)
    except Exception as exc:  # provenance must never change how a run ends
        log.warning("could not complete the provenance: %s", exc)


def _wait_for_inputs(connection: sqlite3.Connection, run_id: int) -> bool:
    """Wait until every input run has finished; False if one of them failed."""
    announced = False
    while True:
        rows = connection.execute(
            "SELECT DISTINCT r.id, r.protocol, r.status FROM edges e JOIN runs r "
            "ON r.id = e.src_run WHERE e.dst_run = ?",
            (run_id,),
        ).fetchall()
        broken = [r for r in rows if r["status"] in ("failed", "aborted")]
        if broken:
            names = ", ".join(f"run {r['id']} ({r['protocol']}) {r['status']}" for r in broken)
            database.set_status(
                connection,
                run_id,
                "failed",
                finished=time.time(),
                error=f"an input run did not finish: {names}",
            )
            return False
        if all(r["status"] == "finished" for r in rows):
            return True
        if not announced:
            database.set_status(connection, run_id, "scheduled")
            announced = True
        time.sleep(POLL_SECONDS)


def _setup_logging(folder: Path, connection: sqlite3.Connection, run_id: int) -> None:
    run_folder = (
        folder / connection.execute("SELECT folder FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
    )
    handler = logging.FileHandler(run_folder / "run.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def _execute(folder: Path, connection: sqlite3.Connection, run_id: int) -> None:
    from cryolab.core.execution import load_run, output_writer
    from cryolab.core.executors import make_executor
    from cryolab.core.protocol import Step

    loaded = load_run(folder, run_id)
    stored = connection.execute(
        "SELECT spec, status FROM steps WHERE run_id = ? ORDER BY position", (run_id,)
    ).fetchall()
    if stored:
        steps = [Step.from_json(json.loads(r["spec"])) for r in stored]
        done = {s.id for s, r in zip(steps, stored, strict=True) if r["status"] == "done"}
        log.info("resuming run %d: %d of %d steps already done", run_id, len(done), len(steps))
    else:
        steps = list(loaded.protocol.plan())
        done = set()
        with database.transaction(connection):
            connection.executemany(
                "INSERT INTO steps(run_id, position, step_id, spec) VALUES (?, ?, ?, ?)",
                [(run_id, i, s.id, json.dumps(s.to_json())) for i, s in enumerate(steps)],
            )
            database.add_event(connection, run_id, "planned", steps=len(steps))
        log.info("run %d planned %d steps", run_id, len(steps))
    unfinished = [s.id for s in steps if s.id not in done]
    for name in loaded.outputs:
        writer = output_writer(loaded, name)
        writer.discard_steps(unfinished)
        writer.reopen()
    scratch = loaded.run_dir / "steps"
    if scratch.exists():
        for step_id in unfinished:
            shutil.rmtree(scratch / step_id, ignore_errors=True)

    def started(step: Step) -> None:
        connection.execute(
            "UPDATE steps SET status = 'running', started = ? WHERE run_id = ? AND step_id = ?",
            (time.time(), run_id, step.id),
        )

    def finished(step: Step, error: str | None) -> None:
        # a step's success is recorded by the process that ran it (see _work); failures here
        if error is not None:
            connection.execute(
                "UPDATE steps SET status = 'failed', finished = ?, error = ? "
                "WHERE run_id = ? AND step_id = ?",
                (time.time(), error, run_id, step.id),
            )

    executor = make_executor(loaded.executor.get("name", "local"), loaded.executor.get("cores"))
    executor.execute(
        steps, partial(_work, str(folder), run_id), done=done, on_start=started, on_done=finished
    )
    # in plan order, so a closed output's rows do not depend on which parallel step ended first
    order = [s.id for s in steps]
    for name in loaded.outputs:
        output_writer(loaded, name).close(step_order=order)


def _work(folder: str, run_id: int, step: Any) -> None:
    from cryolab.core.execution import execute_step, record_step_done

    execute_step(Path(folder), run_id, step)
    record_step_done(Path(folder), run_id, step.id)


if __name__ == "__main__":
    sys.exit(main())
