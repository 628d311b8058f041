"""Executing one step of a run inside a run or worker process.

:func:`load_run` reads a run's record once per process (protocol instance, parameter values,
input and output set folders) and :func:`execute_step` calls the step's protocol method with a
:class:`~cryolab.core.protocol.StepContext`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryolab.core import database
from cryolab.core.params import split_reference
from cryolab.core.plugins import registry
from cryolab.core.protocol import Protocol, Step, StepContext
from cryolab.core.sets import Set
from cryolab.core.setstore import SetWriter, read_set


@dataclass
class LoadedRun:
    """A run's record as a run or worker process needs it."""

    folder: Path
    run_id: int
    protocol: Protocol
    run_dir: Path
    seed: int
    executor: dict[str, Any]
    outputs: dict[str, tuple[Path, list[str]]]
    input_paths: dict[int, dict[str, Path]]


_loaded: dict[tuple[str, int], LoadedRun] = {}


def load_run(folder: Path, run_id: int) -> LoadedRun:
    """Read a run from the project database (cached per process)."""
    key = (str(folder), run_id)
    if key in _loaded:
        return _loaded[key]
    connection = database.connect(folder)
    try:
        row = connection.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        outputs = {
            r["name"]: (folder / r["path"], json.loads(r["types"]))
            for r in connection.execute("SELECT * FROM outputs WHERE run_id = ?", (run_id,))
        }
        sources = connection.execute(
            "SELECT o.run_id, o.name, o.path FROM outputs o JOIN edges e ON "
            "e.src_run = o.run_id AND e.src_output = o.name WHERE e.dst_run = ?",
            (run_id,),
        ).fetchall()
    finally:
        connection.close()
    input_paths: dict[int, dict[str, Path]] = {}
    for source in sources:
        input_paths.setdefault(source["run_id"], {})[source["name"]] = folder / source["path"]
    protocol = registry.get(row["protocol"])(json.loads(row["params"]))
    loaded = LoadedRun(
        folder,
        run_id,
        protocol,
        folder / row["folder"],
        row["seed"],
        json.loads(row["executor"]),
        outputs,
        input_paths,
    )
    _loaded[key] = loaded
    return loaded


def output_writer(loaded: LoadedRun, name: str) -> SetWriter:
    """The writer of a declared output, creating its (open) set folder on first use."""
    try:
        path, types = loaded.outputs[name]
    except KeyError:
        raise KeyError(
            f"{loaded.protocol.name} declares no output {name!r}; it has {sorted(loaded.outputs)}"
        ) from None
    return SetWriter.create(path, types, exist_ok=True)


def _load_input(loaded: LoadedRun, param: str) -> Set | list[Set]:
    value = loaded.protocol.values.get(param)
    if not value:
        raise KeyError(f"input {param!r} of {loaded.protocol.name} was given no value")
    refs: list[str] = value if isinstance(value, list) else [value]
    sets = []
    for ref in refs:
        run_id, output = split_reference(ref)
        sets.append(read_set(loaded.input_paths[run_id][output]))
    return sets if isinstance(value, list) else sets[0]


def execute_step(folder: Path, run_id: int, step: Step) -> None:
    """Run one step of a run in this process."""
    loaded = load_run(folder, run_id)
    context = StepContext(
        step,
        loaded.protocol.values,
        load_input=lambda name: _load_input(loaded, name),
        open_output=lambda name: output_writer(loaded, name),
        run_dir=loaded.run_dir,
        seed=loaded.seed,
    )
    method = getattr(loaded.protocol, step.func, None)
    if method is None or step.func.startswith("_"):
        raise AttributeError(f"{loaded.protocol.name} has no step method {step.func!r}")
    method(context, **step.args)


_connections: dict[tuple[int, str], sqlite3.Connection] = {}


def record_step_done(folder: Path, run_id: int, step_id: str) -> None:
    """Persist that a step finished, from the process that ran it (one connection per process)."""
    key = (os.getpid(), str(folder))
    connection = _connections.get(key)
    if connection is None:
        connection = _connections[key] = database.connect(folder)
    connection.execute(
        "UPDATE steps SET status = 'done', finished = ?, error = NULL "
        "WHERE run_id = ? AND step_id = ?",
        (time.time(), run_id, step_id),
    )
