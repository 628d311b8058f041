"""The provenance of a run: what ran, on what inputs, in which environment, and what it cost.

The run process (:mod:`cryolab.core.runner`) calls :func:`start` once it marks the run
running and :meth:`Recorder.finish` when the run ends; both write ``provenance.json`` in the
run folder (replaced atomically), which :func:`read` returns for ``run.provenance``,
``cryolab status --json`` and the run-graph panel. The record holds:

- ``params``, ``seed``, ``executor``, ``protocol`` and the ``plugin`` providing it;
- ``inputs``: for each input set, the parameter, reference, row count and :func:`set_digest`;
- ``versions``: cryolab (and its ``git`` commit when run from a checkout), the plugins, the
  programs the protocol wraps (:meth:`~cryolab.core.protocol.Protocol.program_versions`),
  Python, numpy, and CuPy / CUDA when CuPy is installed;
- ``gpu`` (the model CuPy sees, else ``None``), ``host``, ``platform``, ``pid``;
- ``started``, ``finished`` (Unix times), ``status`` and ``peak_memory`` (bytes, from
  ``getrusage``: the run process and, separately, its largest reaped child process);
- ``errors``: what could not be collected and why. Collecting never fails a run.

Environment facts are collected once per process; nothing here runs a subprocess except
``git rev-parse`` (with a timeout), and only when a ``.git`` lies above the package.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import json
import logging
import os
import platform
import resource
import socket
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryolab._version import __version__

FILE = "provenance.json"
GIT_TIMEOUT = 2.0  # seconds
log = logging.getLogger(__name__)


def set_digest(path: str | Path) -> str:
    """A digest of a set folder's content, from its manifest alone (no row data is read).

    It covers the type chain, the Arrow schema, the properties, the row count and the ordered
    list of segment files with their row counts. Segments are immutable and named uniquely
    when written, so any append, discard or rewrite of the set changes the digest, while
    reading the same set again gives the same digest. Two sets with equal rows written
    separately have different digests: it identifies a set's state, not equal values.

    Returns
    -------
    str
        ``"sha256:"`` followed by the hexadecimal digest.
    """
    from cryolab.core.setstore import read_manifest

    manifest = read_manifest(path)
    covered = {
        "types": manifest["types"],
        "schema": manifest["schema_fields"],
        "properties": manifest["properties"],
        "rows": manifest["rows"],
        "segments": [[s["file"], s["rows"]] for s in manifest["segments"]],
    }
    text = json.dumps(covered, sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _git_commit() -> str | None:
    """The commit of the git checkout cryolab runs from, or ``None`` if it is not one."""
    package = Path(__file__).resolve().parents[1]  # the cryolab package
    checkout = next((p for p in package.parents if (p / ".git").exists()), None)
    if checkout is None:
        return None
    done = subprocess.run(
        ["git", "rev-parse", "HEAD"],
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=GIT_TIMEOUT,
        check=True,
    )
    return done.stdout.strip() or None


def _cupy_facts() -> dict[str, Any]:
    """CuPy, CUDA runtime and driver versions and the first GPU's model (CuPy must exist)."""
    cupy = importlib.import_module("cupy")
    runtime = cupy.cuda.runtime
    facts: dict[str, Any] = {"cupy": str(cupy.__version__)}
    facts["cuda_runtime"] = str(runtime.runtimeGetVersion())
    facts["cuda_driver"] = str(runtime.driverGetVersion())
    if runtime.getDeviceCount() > 0:
        name = runtime.getDeviceProperties(0)["name"]
        facts["gpu"] = name.decode() if isinstance(name, bytes) else str(name)
    return facts


def _attempt(errors: dict[str, str], part: str, collect: Callable[[], Any]) -> Any:
    """``collect()``, or ``None`` with the failure logged and recorded under ``part``."""
    try:
        return collect()
    except Exception as exc:  # provenance must never fail a run
        errors[part] = f"{type(exc).__name__}: {exc}"
        log.warning("provenance: cannot collect %s: %s", part, errors[part])
        return None


@functools.cache
def environment() -> dict[str, Any]:
    """Facts about this process's environment, collected once per process.

    Returns
    -------
    dict
        ``versions`` (cryolab, git, python, numpy, cupy, cuda_runtime, cuda_driver),
        ``gpu``, ``host``, ``platform`` and ``errors`` (part to message).
    """
    errors: dict[str, str] = {}
    versions: dict[str, Any] = {
        "cryolab": __version__,
        "git": _attempt(errors, "git", _git_commit),
        "python": platform.python_version(),
        "numpy": _attempt(errors, "numpy", lambda: importlib.import_module("numpy").__version__),
    }
    gpu = None
    if importlib.util.find_spec("cupy") is not None:
        facts = _attempt(errors, "cupy", _cupy_facts) or {}
        gpu = facts.pop("gpu", None)
        versions.update(facts)
    uname = os.uname()
    return {
        "versions": versions,
        "gpu": gpu,
        "host": socket.gethostname(),
        "platform": f"{uname.sysname} {uname.release} {uname.machine}",
        "errors": errors,
    }


def peak_memory() -> dict[str, int]:
    """Peak resident memory in bytes of this process and of its largest reaped child."""
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB elsewhere
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale
    return {"process": own, "children": children, "peak": max(own, children)}


def _inputs(connection: sqlite3.Connection, folder: Path, run_id: int) -> list[dict[str, Any]]:
    """Parameter, reference, row count and digest of each input set of the run."""
    from cryolab.core.setstore import read_manifest

    inputs = []
    for edge in connection.execute(
        "SELECT e.dst_param, e.position, o.run_id, o.name, o.path FROM edges e JOIN outputs o "
        "ON o.run_id = e.src_run AND o.name = e.src_output WHERE e.dst_run = ? "
        "ORDER BY e.dst_param, e.position",
        (run_id,),
    ):
        path = folder / edge["path"]
        inputs.append(
            {
                "param": edge["dst_param"],
                "ref": f"{edge['run_id']}.{edge['name']}",
                "rows": int(read_manifest(path)["rows"]),
                "digest": set_digest(path),
            }
        )
    return inputs


def _protocol_facts(folder: Path, run_id: int, protocol: str) -> dict[str, Any]:
    """The plugin providing the protocol, the plugins' versions and the wrapped programs'."""
    from cryolab.core.execution import load_run
    from cryolab.core.plugins import registry

    plugins = {
        name: entry.plugin.version if entry.plugin else None
        for name, entry in registry.plugins().items()
    }
    entry = registry.protocols().get(protocol)
    return {
        "plugin": entry.plugin if entry else None,
        "plugins": plugins,
        "programs": dict(load_run(folder, run_id).protocol.program_versions()),
    }


class Recorder:
    """Writes the provenance record of one run to its folder."""

    def __init__(self, path: Path, record: dict[str, Any]) -> None:
        self.path = path
        self.record = record

    def write(self) -> None:
        """Replace the run's ``provenance.json`` atomically; log (never raise) on failure."""
        temporary = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}.tmp")
        try:
            temporary.write_text(json.dumps(self.record, indent=1, default=str), "utf-8")
            os.replace(temporary, self.path)
        except OSError as exc:
            log.warning("provenance: cannot write %s: %s", self.path, exc)
            temporary.unlink(missing_ok=True)

    def finish(self, status: str, finished: float) -> None:
        """Record the run's end: its status, end time and peak memory."""
        errors: dict[str, str] = self.record["errors"]
        self.record.update(
            status=status,
            finished=finished,
            peak_memory=_attempt(errors, "peak_memory", peak_memory),
        )
        self.write()


def start(
    folder: Path, connection: sqlite3.Connection, run_id: int, started: float
) -> Recorder | None:
    """Collect a starting run's provenance and write it to the run folder.

    Never raises: a failure is logged and gives ``None`` (the run goes on without a record).

    Parameters
    ----------
    folder
        The project folder.
    connection
        The run process's connection to the project database.
    run_id
        The run.
    started
        When the run started (Unix time), as stored in the database.
    """
    try:
        return _start(folder, connection, run_id, started)
    except Exception as exc:  # provenance must never fail a run
        log.warning("provenance: cannot record run %d: %s", run_id, exc, exc_info=True)
        return None


def _start(folder: Path, connection: sqlite3.Connection, run_id: int, started: float) -> Recorder:
    row = connection.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
    env = environment()
    errors = dict(env["errors"])
    record: dict[str, Any] = {
        "run": run_id,
        "protocol": row["protocol"],
        "params": json.loads(row["params"]),
        "seed": row["seed"],
        "executor": json.loads(row["executor"]),
        "plugin": None,
        "inputs": _attempt(errors, "inputs", lambda: _inputs(connection, folder, run_id)),
        "versions": dict(env["versions"]),
        "gpu": env["gpu"],
        "host": env["host"],
        "platform": env["platform"],
        "pid": os.getpid(),
        "started": started,
        "finished": None,
        "status": "running",
        "peak_memory": None,
        "errors": errors,
    }
    facts = _attempt(errors, "plugins", lambda: _protocol_facts(folder, run_id, row["protocol"]))
    if facts:
        record["plugin"] = facts["plugin"]
        record["versions"].update(plugins=facts["plugins"], programs=facts["programs"])
    recorder = Recorder(folder / row["folder"] / FILE, record)
    recorder.write()
    return recorder


def read(run_dir: Path) -> dict[str, Any]:
    """The provenance recorded in a run folder; empty if the run never started (or is imported).

    An unreadable record is logged and reported as ``{"error": message}``.
    """
    path = run_dir / FILE
    try:
        with open(path, encoding="utf-8") as handle:
            record: dict[str, Any] = json.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as exc:
        log.warning("cannot read the provenance %s: %s", path, exc)
        return {"error": f"cannot read {path}: {exc}"}
    return record
