"""A cryolab project: a folder with ``project.sqlite`` and one folder per run.

The :class:`Project` creates runs (validated before anything is stored, all in one
transaction), launches each run in its own process, and answers questions about the run
graph. Editing operations (copy, delete, label) live in :mod:`cryolab.core.editing`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryolab.core import config, database, launch_context, recent, setstore
from cryolab.core.compare import Comparison, compare_runs
from cryolab.core.errors import ParameterError, ProjectError, RunNotFoundError
from cryolab.core.params import InputParam, Issue, is_reference, split_reference
from cryolab.core.plugins import registry
from cryolab.core.protocol import Output, Protocol
from cryolab.core.runner import process_start_time
from cryolab.core.runs import ACTIVE, OutputRef, Run
from cryolab.core.sets import Set, set_type

if TYPE_CHECKING:
    from cryolab.core.report import Report

# run.out is a Mapping: an output with one of these names would hide a Mapping method
RESERVED_OUTPUT_NAMES = frozenset({"items", "keys", "values", "get"})


def project_id(path: Path) -> str:
    """The stable id of the project at ``path``: 12 hex digits of the SHA-256 of the resolved
    path (the server extension's URLs name projects by it)."""
    return hashlib.sha256(str(Path(path).resolve()).encode("utf-8")).hexdigest()[:12]


def open_project(path: str | os.PathLike[str], create: bool = True) -> Project:
    """Open the project at ``path``, creating it when absent and ``create`` is true.

    The project is recorded among the user's recent projects (:mod:`cryolab.core.recent`).
    """
    folder = Path(path).expanduser()
    if (folder / database.DB_NAME).exists():
        opened = Project(folder)
    elif not create:
        raise ProjectError(f"no cryolab project at {folder}")
    else:
        opened = Project.create(folder)
    recent.remember(opened.path)
    return opened


def as_reference(value: Any) -> Any:
    """Turn output handles (and lists of them) into ``"RUNID.output"`` strings."""
    if isinstance(value, OutputRef):
        return str(value)
    if isinstance(value, Run):
        outputs = list(value.out.values())
        if len(outputs) != 1:
            raise ParameterError(
                [
                    Issue(
                        "",
                        f"run {value.id} has {len(outputs)} outputs; "
                        "pick one, e.g. run.out.particles",
                    )
                ]
            )
        return str(outputs[0])
    if isinstance(value, Set):
        raise ParameterError(
            [
                Issue(
                    "",
                    "an in-memory set is not traced; give the output of "
                    "a run (run.out.name) as input",
                )
            ]
        )
    if isinstance(value, (list, tuple)):
        return [as_reference(v) for v in value]
    return value


class Project:
    """A project folder and its database.

    Parameters
    ----------
    path
        The project folder (must hold ``project.sqlite``; see :func:`open_project`).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser().resolve()
        self.db = database.connect(self.path)
        self._new_folders: list[Path] = []  # written inside an open transaction

    @classmethod
    def create(cls, path: str | os.PathLike[str]) -> Project:
        """Create a new project folder (group-private) with an empty database."""
        folder = Path(path).expanduser()
        if (folder / database.DB_NAME).exists():
            raise ProjectError(f"a project already exists at {folder}")
        folder.mkdir(parents=True, exist_ok=True, mode=0o770)
        (folder / "Runs").mkdir(exist_ok=True, mode=0o770)
        database.create(folder).close()
        return cls(folder)

    def __repr__(self) -> str:
        return f"<Project {self.path} ({len(self.runs())} runs)>"

    # -- creating and launching runs ----------------------------------------------------------
    def run(
        self,
        protocol: str,
        *,
        label: str = "",
        comment: str = "",
        seed: int | None = None,
        executor: str | None = None,
        cores: int | None = None,
        **params: Any,
    ) -> Run:
        """Create a run and launch it in its own process; returns at once.

        Parameters
        ----------
        protocol
            A registered protocol name, e.g. ``"sets.subset"``.
        label, comment
            Shown in the run graph.
        seed
            Seed of the run's random generators (drawn when not given, and recorded).
        executor
            ``"local"`` (parallel worker processes) or ``"sync"`` (steps one by one); the
            default comes from the configuration (:mod:`cryolab.core.config`), else local.
        cores
            Cores the run may use (default: configuration, else all).
        **params
            Parameter values; inputs as ``other_run.out.name`` or ``"RUNID.name"``.

        Raises
        ------
        ParameterError
            Listing every invalid parameter; nothing is stored then.
        """
        run = self.save(
            protocol,
            label=label,
            comment=comment,
            seed=seed,
            executor=executor,
            cores=cores,
            **params,
        )
        return self.launch(run.id)

    def save(
        self,
        protocol: str,
        *,
        label: str = "",
        comment: str = "",
        seed: int | None = None,
        executor: str | None = None,
        cores: int | None = None,
        **params: Any,
    ) -> Run:
        """Create a run without launching it (status ``saved``); see :meth:`run`."""
        chosen = config.settings(executor=executor, cores=cores)
        with database.transaction(self.db):
            run_id = self.create_run(
                protocol,
                params,
                label=label,
                comment=comment,
                seed=seed,
                executor={"name": chosen["executor"], "cores": chosen["cores"]},
            )
        self.make_folders([run_id])
        return Run(self, run_id)

    def create_run(
        self,
        protocol: str,
        params: Mapping[str, Any],
        *,
        label: str = "",
        comment: str = "",
        seed: int | None = None,
        executor: Mapping[str, Any] | None = None,
        origin: Mapping[str, Any] | None = None,
    ) -> int:
        """Validate and insert a saved run; call inside :func:`database.transaction`.

        Several calls in one transaction create several runs all-or-nothing (copies of a
        subgraph, template imports); the caller then calls :meth:`make_folders`. The
        ``origin`` recorded is ``origin`` over the launch context (e.g. the notebook and cell
        the run is created from; :mod:`cryolab.core.launch_context`).
        """
        cls = registry.get(protocol)
        values = {k: as_reference(v) for k, v in params.items()}
        instance = self.validate(cls, values)
        executor = dict(executor or {"name": "local", "cores": None})
        if executor.get("name") not in ("local", "sync"):
            raise ParameterError(
                [Issue("executor", f"{executor.get('name')!r} is not 'local' or 'sync'")]
            )
        run_seed = int(seed if seed is not None else int.from_bytes(os.urandom(4), "little"))
        outputs = self._resolve_outputs(instance)
        origin = {**launch_context.current(), **(origin or {})}
        return self._insert_run(
            instance, label, comment, run_seed, executor, outputs, origin=origin
        )

    def add_imported_run(
        self,
        protocol: str,
        params: Mapping[str, Any],
        outputs: Mapping[str, Set],
        *,
        label: str = "",
        comment: str = "",
        origin: Mapping[str, Any] | None = None,
    ) -> Run:
        """Record work done elsewhere as a finished run whose outputs are the given sets.

        The run is validated like any other (its declared outputs must be the given ones), its
        sets are written into its folder, and it is finished at once, never launched: imported
        RELION jobs appear in the graph this way, read-only. To import several runs
        all-or-nothing, call :meth:`insert_imported_run` inside one :meth:`importing` block.
        """
        with self.importing():
            return self.insert_imported_run(
                protocol, params, outputs, label=label, comment=comment, origin=origin
            )

    def insert_imported_run(
        self,
        protocol: str,
        params: Mapping[str, Any],
        outputs: Mapping[str, Set],
        *,
        label: str = "",
        comment: str = "",
        origin: Mapping[str, Any] | None = None,
    ) -> Run:
        """:meth:`add_imported_run` without its own transaction (call inside one)."""
        run_id = self.create_run(
            protocol,
            params,
            label=label,
            comment=comment,
            seed=0,
            origin={"imported": True, **(origin or {})},
        )
        declared = {
            r["name"]: r["path"]
            for r in self.db.execute("SELECT name, path FROM outputs WHERE run_id = ?", (run_id,))
        }
        if set(declared) != set(outputs):
            raise ParameterError(
                [
                    Issue(
                        "",
                        f"{protocol} declares outputs {sorted(declared)}, got sets for "
                        f"{sorted(outputs)}",
                    )
                ]
            )
        self.db.execute(
            "UPDATE runs SET status = 'finished', started = created, finished = created "
            "WHERE id = ?",
            (run_id,),
        )
        database.add_event(self.db, run_id, "status", status="finished")
        folder = self.path / str(self._run_row(run_id)["folder"])
        self._new_folders.append(folder)
        for name, data in outputs.items():
            data.save(self.path / declared[name])
        return Run(self, run_id)

    @contextlib.contextmanager
    def importing(self) -> Iterator[None]:
        """One transaction for several :meth:`insert_imported_run` calls: all or nothing.

        On an error the database is rolled back and the folders the runs wrote are removed.
        """
        try:
            with database.transaction(self.db):
                yield
        except BaseException:
            for folder in self._new_folders:
                shutil.rmtree(folder, ignore_errors=True)
            raise
        finally:
            self._new_folders.clear()

    def make_folders(self, run_ids: Sequence[int]) -> None:
        """Create the folders of newly committed runs."""
        for run_id in run_ids:
            (self.path / self._run_row(run_id)["folder"]).mkdir(parents=True, exist_ok=True)

    def validate(self, cls: type[Protocol], values: Mapping[str, Any]) -> Protocol:
        """Instantiate and validate a protocol against this project; raise on any issue."""
        try:
            json.dumps(dict(values))
        except TypeError as exc:
            raise ParameterError(
                [Issue("", f"parameter values must be JSON data: {exc}")]
            ) from None
        instance = cls(values)
        for name, param in cls.params().items():
            instance.values[name] = param.normalise(instance.values[name])
        issues = instance.validate()
        applicable = instance.applicable()
        for name, param in cls.inputs().items():
            value = instance.values.get(name)
            if name not in applicable or not value or any(i.param == name for i in issues):
                continue
            for ref in value if isinstance(value, list) else [value]:
                issues.extend(self._check_input(name, param, ref))
        if not issues:
            issues = instance.check_inputs(self._input_columns(instance))
        if issues:
            raise ParameterError(issues)
        return instance

    def _input_columns(self, instance: Protocol) -> dict[str, list[str]]:
        """Column names of the single-set inputs whose sets exist (see ``check_inputs``)."""
        found: dict[str, list[str]] = {}
        applicable = instance.applicable()
        for name in instance.inputs():
            value = instance.values.get(name)
            if name not in applicable or not isinstance(value, str) or not value:
                continue
            run_id, output = split_reference(value)
            row = self.db.execute(
                "SELECT path FROM outputs WHERE run_id = ? AND name = ?", (run_id, output)
            ).fetchone()
            folder = self.path / row["path"] if row is not None else None
            if folder is not None and (folder / setstore.MANIFEST).exists():
                names = setstore.column_names(folder)
                if names is not None:
                    found[name] = names
        return found

    def _check_input(self, name: str, param: InputParam, ref: str) -> list[Issue]:
        run_id, output = split_reference(ref)
        row = self.db.execute(
            "SELECT types FROM outputs WHERE run_id = ? AND name = ?", (run_id, output)
        ).fetchone()
        if row is None:
            if self.db.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                return [Issue(name, f"run {run_id} does not exist")]
            names = [
                r[0]
                for r in self.db.execute("SELECT name FROM outputs WHERE run_id = ?", (run_id,))
            ]
            return [Issue(name, f"run {run_id} has no output {output!r}; it has {names}")]
        chain = json.loads(row["types"])
        if not param.accepts(chain):
            return [Issue(name, f"{ref} is a {chain[0]}; this input takes {param.types}")]
        return []

    def _resolve_outputs(self, instance: Protocol) -> dict[str, list[str]]:
        resolved: dict[str, list[str]] = {}
        for name, output in instance.declared_outputs().items():
            if not name.isidentifier() or name in RESERVED_OUTPUT_NAMES:
                raise ProjectError(
                    f"protocol {instance.name} declares an output named {name!r}; "
                    "output names must be identifiers other than "
                    f"{sorted(RESERVED_OUTPUT_NAMES)}"
                )
            resolved[name] = self._output_chain(instance, output)
        return resolved

    def _output_chain(self, instance: Protocol, output: Output) -> list[str]:
        if output.like is not None:
            value = instance.values.get(output.like)
            ref = value[0] if isinstance(value, list) else value
            if isinstance(ref, str) and is_reference(ref):
                run_id, name = split_reference(ref)
                row = self.db.execute(
                    "SELECT types FROM outputs WHERE run_id = ? AND name = ?", (run_id, name)
                ).fetchone()
                if row is not None:
                    chain: list[str] = json.loads(row["types"])
                    return chain
            return ["Set"]
        name = output.type_name() or "Set"
        cls = set_type(name)
        return cls.type_chain() if cls.type_name == name else [name, "Set"]

    def _insert_run(
        self,
        instance: Protocol,
        label: str,
        comment: str,
        seed: int,
        executor: Mapping[str, Any],
        outputs: Mapping[str, list[str]],
        status: str = "saved",
        origin: Mapping[str, Any] | None = None,
    ) -> int:
        """Insert a run, its edges and outputs; call inside a transaction."""
        cursor = self.db.execute(
            "INSERT INTO runs(protocol, label, comment, status, params, folder, seed, executor, "
            "created, origin) VALUES (?, ?, ?, ?, ?, '', ?, ?, ?, ?)",
            (
                instance.name,
                label,
                comment,
                status,
                json.dumps(instance.values),
                seed,
                json.dumps(dict(executor)),
                time.time(),
                json.dumps(dict(origin or {})),
            ),
        )
        run_id = int(cursor.lastrowid or 0)
        folder = f"Runs/{run_id:06d}_{instance.name.replace('.', '_')}"
        self.db.execute("UPDATE runs SET folder = ? WHERE id = ?", (folder, run_id))
        for name in instance.inputs():
            value = instance.values.get(name)
            if not value:
                continue
            for position, ref in enumerate(value if isinstance(value, list) else [value]):
                src_run, src_output = split_reference(ref)
                self.db.execute(
                    "INSERT INTO edges(src_run, src_output, dst_run, dst_param, position) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (src_run, src_output, run_id, name, position),
                )
        for name, chain in outputs.items():
            self.db.execute(
                "INSERT INTO outputs(run_id, name, types, path) VALUES (?, ?, ?, ?)",
                (run_id, name, json.dumps(chain), f"{folder}/outputs/{name}"),
            )
        database.add_event(self.db, run_id, "created", protocol=instance.name)
        return run_id

    def launch(self, run_id: int) -> Run:
        """Start a saved (or failed/aborted) run in its own process and return its handle."""
        row = self._run_row(run_id)
        status = self._refresh_status(run_id)
        if status in ACTIVE:
            raise ProjectError(f"run {run_id} is already {status}")
        if status == "finished":
            raise ProjectError(f"run {run_id} has finished; copy it to run it again")
        database.set_status(
            self.db, run_id, "launched", pid=None, pid_start=None, error=None, finished=None
        )
        folder = self.path / row["folder"]
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "run.log", "ab") as log_file:
            try:
                process = subprocess.Popen(
                    [sys.executable, "-m", "cryolab.core.runner", str(self.path), str(run_id)],
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    cwd=self.path,
                )
            except OSError as exc:
                self._mark(run_id, "failed", f"cannot start the run process: {exc}")
                raise ProjectError(f"cannot start run {run_id}: {exc}") from None
        self.db.execute(
            "UPDATE runs SET pid = ?, pid_start = ?, host = ? WHERE id = ? AND pid IS NULL",
            (process.pid, process_start_time(process.pid), socket.gethostname(), run_id),
        )
        _reap_later(process)
        return Run(self, run_id)

    # -- reading runs ------------------------------------------------------------------------
    def _run_row(self, run_id: int) -> Any:
        row = self.db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise RunNotFoundError(f"no run {run_id} in project {self.path}")
        return row

    def get_run(self, run_id: int | str) -> Run:
        """The handle of run ``run_id``."""
        self._run_row(int(run_id))
        return Run(self, int(run_id))

    __getitem__ = get_run

    def runs(self) -> list[Run]:
        """All runs, oldest first."""
        return [Run(self, r[0]) for r in self.db.execute("SELECT id FROM runs ORDER BY id")]

    def _alive(self, row: Any) -> bool:
        if row["pid"] is None:
            return True  # launched a moment ago; the process has not registered yet
        if row["host"] and row["host"] != socket.gethostname():
            return True  # we cannot see another host's processes
        start = process_start_time(row["pid"])
        return start is not None and (row["pid_start"] is None or start == row["pid_start"])

    def _refresh_status(self, run_id: int) -> str:
        row = self._run_row(run_id)
        status = str(row["status"])
        if status in ACTIVE and not self._alive(row):
            self._mark(
                run_id,
                "failed",
                "the run's process ended without recording a result "
                "(killed?); launch the run again to resume it",
            )
            return "failed"
        return status

    def _mark(self, run_id: int, status: str, error: str) -> None:
        database.set_status(self.db, run_id, status, error=error, finished=time.time())

    def _output_refs(self, run_id: int) -> dict[str, OutputRef]:
        return {
            r["name"]: OutputRef(
                self, run_id, r["name"], self.path / r["path"], json.loads(r["types"])
            )
            for r in self.db.execute(
                "SELECT * FROM outputs WHERE run_id = ? ORDER BY rowid", (run_id,)
            )
        }

    def _steps(self, run_id: int) -> list[dict[str, Any]]:
        return [
            {
                "id": r["step_id"],
                "status": r["status"],
                "started": r["started"],
                "finished": r["finished"],
                "error": r["error"],
            }
            for r in self.db.execute(
                "SELECT * FROM steps WHERE run_id = ? ORDER BY position", (run_id,)
            )
        ]

    def summary(self, run_id: int) -> str:
        """The protocol's summary of a run, with its output sizes."""
        run = self.get_run(run_id)
        protocol = registry.get(run.protocol)(run.params)
        return protocol.summary({k: v.count for k, v in run.out.items()})

    def compare(self, a: int | str, b: int | str) -> Comparison:
        """Compare runs ``a`` and ``b``: parameter and output differences.

        See :mod:`cryolab.core.compare`; the result prints as text, shows as an HTML table in
        notebooks and gives its data with ``to_dict()``.
        """
        return compare_runs(self, a, b)

    def compare_widget(self, a: int | None = None, b: int | None = None) -> Any:
        """Two run pickers and their comparison, redrawn as the picks change (notebooks).

        The widget is :mod:`cryolab.ui.compare`, looked up by name at call time like
        :meth:`graph`; ``a`` and ``b`` are the runs shown first (default: the newest run and an
        earlier run of the same protocol).
        """
        return importlib.import_module("cryolab.ui.compare").compare_widget(self, a, b)

    def events(self, since: int = 0) -> list[dict[str, Any]]:
        """Events after id ``since`` (status changes, creations, ...), for observers."""
        return [
            {
                "id": r["id"],
                "time": r["time"],
                "run": r["run_id"],
                "kind": r["kind"],
                **json.loads(r["data"]),
            }
            for r in self.db.execute("SELECT * FROM events WHERE id > ? ORDER BY id", (since,))
        ]

    def run_graph(self) -> dict[str, Any]:
        """The run graph as JSON-serialisable nodes and edges, with statuses and counts."""
        nodes = []
        for run in self.runs():
            row = self._run_row(run.id)
            nodes.append(
                {
                    "id": run.id,
                    "protocol": row["protocol"],
                    "label": row["label"],
                    "status": run.status,
                    "comment": row["comment"],
                    "outputs": [
                        {"name": name, "type": ref.types[0], "count": ref.count, "state": ref.state}
                        for name, ref in run.out.items()
                    ],
                }
            )
        edges = [
            {
                "source": r["src_run"],
                "output": r["src_output"],
                "target": r["dst_run"],
                "param": r["dst_param"],
            }
            for r in self.db.execute("SELECT * FROM edges ORDER BY dst_run, position")
        ]
        return {"project": str(self.path), "nodes": nodes, "edges": edges}

    def graph(self, *, follow: bool = True) -> Any:
        """The run graph drawn in a notebook cell, following the project live.

        The widget is :mod:`cryolab.ui.graph`, looked up by name at call time: the engine never
        imports the optional UI layer (the import-linter contracts in ``pyproject.toml``).
        """
        return importlib.import_module("cryolab.ui.graph").graph(self, follow=follow)

    def report(self, out_dir: str | os.PathLike[str] | None = None, **options: Any) -> Report:
        """The project's report: run graph, methods with references, parameters, figures.

        Returns a :class:`cryolab.core.report.Report`, shown inline in notebooks; with
        ``out_dir`` it is also written there (``report.html``, ``report.md``, an RO-Crate).
        ``options`` go to the report (``title``, ``license``).
        """
        from cryolab.core.report import build_report

        return build_report(self, out_dir, **options)

    def info(self) -> dict[str, Any]:
        """Project facts: path, schema version, run counts by status."""
        counts: dict[str, int] = {}
        for run in self.runs():
            counts[run.status] = counts.get(run.status, 0) + 1
        return {
            "path": str(self.path),
            "schema_version": database.schema_version(self.db),
            "runs": sum(counts.values()),
            "status": counts,
        }

    def downstream(self, run_id: int) -> list[int]:
        """The runs that use outputs of ``run_id``, directly or not, in creation order."""
        found: set[int] = set()
        frontier = [run_id]
        while frontier:
            current = frontier.pop()
            for (target,) in self.db.execute(
                "SELECT DISTINCT dst_run FROM edges WHERE src_run = ?", (current,)
            ):
                if target not in found:
                    found.add(target)
                    frontier.append(target)
        return sorted(found)

    def close(self) -> None:
        """Close the database connection."""
        self.db.close()

    # -- editing, templates (implemented in their own modules) --------------------------------
    def copy_run(self, run_id: int, *, launch: bool = False, **changes: Any) -> Run:
        """Copy a run with some parameters changed; see :func:`cryolab.core.editing.copy_run`."""
        from cryolab.core import editing

        return editing.copy_run(self, run_id, launch=launch, **changes)

    def copy_runs(
        self,
        run_ids: Sequence[int],
        changes: Mapping[int, Mapping[str, Any]] | None = None,
        *,
        launch: bool = False,
    ) -> dict[int, Run]:
        """Copy a subgraph, re-wiring the copies to each other; returns old id → new run."""
        from cryolab.core import editing

        return editing.copy_runs(self, run_ids, changes or {}, launch=launch)

    def update_params(self, run_id: int, **changes: Any) -> Run:
        """Change parameters of a saved run (inputs re-wired, cycles refused)."""
        from cryolab.core import editing

        return editing.update_params(self, run_id, **changes)

    def delete_run(self, run_id: int, *, cascade: bool = False) -> list[int]:
        """Delete a run (and with ``cascade`` the runs using it); returns the deleted ids."""
        from cryolab.core import editing

        return editing.delete_run(self, run_id, cascade=cascade)

    def set_label(self, run_id: int, label: str) -> None:
        """Set a run's label."""
        self._set_text(run_id, "label", label)

    def set_comment(self, run_id: int, comment: str) -> None:
        """Set a run's comment."""
        self._set_text(run_id, "comment", comment)

    def _set_text(self, run_id: int, column: str, text: str) -> None:
        self._run_row(run_id)
        with database.transaction(self.db):
            self.db.execute(f"UPDATE runs SET {column} = ? WHERE id = ?", (text, run_id))
            database.add_event(self.db, run_id, column, value=text)

    def export_workflow(
        self,
        path: str | os.PathLike[str] | None = None,
        runs: Sequence[int] | None = None,
        dynamic: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Export runs as a workflow template; see :mod:`cryolab.core.templates`."""
        from cryolab.core import templates

        return templates.export_workflow(self, path, runs, dynamic or {})

    def export_notebook(
        self, path: str | os.PathLike[str], runs: Sequence[int] | None = None
    ) -> dict[str, Any]:
        """Write runs (default: all; their upstream runs too) as a runnable notebook with a
        papermill ``parameters`` cell; see :mod:`cryolab.core.notebook_export`."""
        from cryolab.core import notebook_export

        return notebook_export.export_notebook(self, path, runs)

    def import_workflow(
        self,
        source: str | os.PathLike[str] | Mapping[str, Any],
        values: Mapping[str, Any] | None = None,
        *,
        launch: bool = False,
    ) -> list[Run]:
        """Import a workflow template as new runs; see :mod:`cryolab.core.templates`."""
        from cryolab.core import templates

        return templates.import_workflow(self, source, values or {}, launch=launch)


def _reap_later(process: subprocess.Popen[bytes]) -> None:
    """Collect the run process's exit status when it ends, so it never lingers as a zombie."""
    import threading

    threading.Thread(target=process.wait, daemon=True, name=f"reap-{process.pid}").start()
