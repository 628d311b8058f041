"""Handles on runs and their outputs, as returned by :meth:`Project.run`.

A :class:`Run` is a light handle: every property reads the project database, so it always
shows the current state written by the run's own process.
"""

from __future__ import annotations

import contextlib
import html
import importlib
import json
import os
import signal
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryolab.core import database
from cryolab.core.errors import RunFailedError, SetError
from cryolab.core.sets import Set

if TYPE_CHECKING:
    from cryolab.core.project import Project

ACTIVE = ("launched", "scheduled", "running")
ENDED = ("finished", "failed", "aborted")


class OutputRef:
    """One output of a run: usable as another run's input before it exists, and loadable.

    ``str(ref)`` is the reference ``"RUNID.name"``; :meth:`load` reads the set's committed rows.
    Indexing, ``len`` and display go to the loaded set.
    """

    def __init__(
        self, project: Project, run_id: int, name: str, path: Path, types: list[str]
    ) -> None:
        self.project = project
        self.run_id = run_id
        self.name = name
        self.path = path
        self.types = types

    def __str__(self) -> str:
        return f"{self.run_id}.{self.name}"

    def __repr__(self) -> str:
        return f"<output {self} ({self.types[0]}): {self.count} items, {self.state}>"

    @property
    def exists(self) -> bool:
        """Whether the run has started writing this output."""
        return (self.path / "manifest.json").exists()

    @property
    def state(self) -> str:
        """``"open"``, ``"closed"``, or ``"absent"`` before the run writes it."""
        from cryolab.core.setstore import read_manifest

        return str(read_manifest(self.path)["state"]) if self.exists else "absent"

    @property
    def count(self) -> int:
        """Number of committed items (0 before the run writes the output)."""
        from cryolab.core.setstore import read_manifest

        return int(read_manifest(self.path)["rows"]) if self.exists else 0

    def load(self) -> Set:
        """Read the output's committed rows."""
        if not self.exists:
            raise SetError(
                f"output {self} does not exist yet (run {self.run_id} is "
                f"{self.project.get_run(self.run_id).status})"
            )
        return Set.open(self.path)

    def gallery(self, **options: Any) -> Any:
        """A lazy gallery widget of the output's images, with "make subset" into this project.

        ``options`` go to ``cryolab.ui.gallery.Gallery`` (``labels``, ``sort``, ``where``, ...).
        The UI layer is optional and the engine never imports it (import-linter contract), so
        it is loaded here by name, on demand.
        """
        return importlib.import_module("cryolab.ui.gallery").gallery(self, **options)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, key: Any) -> Any:
        return self.load()[key]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.load(), name)

    def _repr_html_(self) -> str:
        if not self.exists:
            return f"<p>output {html.escape(str(self))}: not written yet</p>"
        return self.load()._repr_html_()


class RunOutputs(Mapping[str, OutputRef]):
    """The read-only mapping of a run's declared outputs: ``out.particles``, ``out["x"]``."""

    def __init__(self, refs: dict[str, OutputRef]) -> None:
        self._refs = refs

    def __getitem__(self, name: str) -> OutputRef:
        try:
            return self._refs[name]
        except KeyError:
            raise KeyError(f"no output {name!r}; outputs: {sorted(self._refs)}") from None

    def __getattr__(self, name: str) -> OutputRef:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._refs[name]
        except KeyError:
            raise AttributeError(f"no output {name!r}; outputs: {sorted(self._refs)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._refs)

    def __len__(self) -> int:
        return len(self._refs)

    def __repr__(self) -> str:
        return f"RunOutputs({', '.join(map(str, self._refs.values()))})"


class Run:
    """A handle on one run of a project."""

    def __init__(self, project: Project, run_id: int) -> None:
        self.project = project
        self.id = run_id

    def _row(self) -> Any:
        return self.project._run_row(self.id)

    @property
    def status(self) -> str:
        """saved, launched, scheduled, running, finished, failed or aborted (read now)."""
        return self.project._refresh_status(self.id)

    @property
    def protocol(self) -> str:
        """The protocol name."""
        return str(self._row()["protocol"])

    @property
    def params(self) -> dict[str, Any]:
        """The parameter values (inputs as ``"RUNID.output"``)."""
        params: dict[str, Any] = json.loads(self._row()["params"])
        return params

    @property
    def label(self) -> str:
        """The user's label for the run."""
        return str(self._row()["label"])

    @property
    def comment(self) -> str:
        """The user's comment on the run."""
        return str(self._row()["comment"])

    @property
    def error(self) -> str | None:
        """Why the run failed, if it did."""
        error = self._row()["error"]
        return None if error is None else str(error)

    @property
    def origin(self) -> dict[str, Any]:
        """Where the run came from: ``copy_of``, ``template_key``, ``imported``, ``notebook``..."""
        origin: dict[str, Any] = json.loads(self._row()["origin"])
        return origin

    @property
    def notebook(self) -> dict[str, Any] | None:
        """The notebook the run was created from (``path``, ``abs_path``, ``cell_id``,
        ``execution_count``; see :mod:`cryolab.ui.notebook_context`), or ``None``."""
        notebook: dict[str, Any] | None = self.origin.get("notebook")
        return notebook

    @property
    def folder(self) -> Path:
        """The run's folder in the project."""
        return self.project.path / str(self._row()["folder"])

    @property
    def provenance(self) -> dict[str, Any]:
        """What the run ran on and with: parameters, input digests, versions, host, times, memory.

        Written by the run's process (see :mod:`cryolab.core.provenance`); empty before the run
        starts and for imported runs.
        """
        from cryolab.core.provenance import read

        return read(self.folder)

    @property
    def out(self) -> RunOutputs:
        """The run's declared outputs."""
        return RunOutputs(self.project._output_refs(self.id))

    def steps(self) -> list[dict[str, Any]]:
        """The planned steps with their status (empty before the run plans)."""
        return self.project._steps(self.id)

    def log(self, tail: int | None = None) -> str:
        """The run's log text (the last ``tail`` lines if given)."""
        path = self.folder / "run.log"
        text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
        return "".join(text.splitlines(keepends=True)[-tail:]) if tail else text

    def wait(self, timeout: float | None = None, *, check: bool = True) -> Run:
        """Block until the run ends.

        Parameters
        ----------
        timeout
            Seconds to wait at most (``TimeoutError`` after that).
        check
            Raise :class:`RunFailedError` if the run failed or was aborted.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.02
        while (status := self.status) not in ENDED:
            if status == "saved":
                raise RunFailedError(f"run {self.id} is saved, not launched: launch it first")
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {self.id} still {status} after {timeout} s")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
        if check and status != "finished":
            raise RunFailedError(f"run {self.id} ({self.protocol}) {status}: {self.error}")
        return self

    def abort(self, grace: float = 5.0) -> None:
        """Stop the run's process (its step workers too) and mark the run aborted."""
        row = self._row()
        if row["status"] not in ACTIVE:
            return
        pid = row["pid"]
        if pid and self.project._alive(row):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while self.project._alive(self._row()) and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.project._alive(self._row()):
                os.killpg(pid, signal.SIGKILL)
        database.set_status(
            self.project.db,
            self.id,
            "aborted",
            only_from=tuple(ACTIVE),
            error="aborted by the user",
            finished=time.time(),
        )

    def launch(self) -> Run:
        """Launch a saved run, or relaunch a failed/aborted one (finished steps are kept)."""
        return self.project.launch(self.id)

    def summary(self) -> str:
        """What the run does and produced, from its protocol."""
        return self.project.summary(self.id)

    def form(self) -> Any:
        """A notebook form pre-filled with this run's parameters; launching it makes a new run.

        The form lives in :mod:`cryolab.ui.form`, which the engine must never import (the
        import-linter contracts in ``pyproject.toml`` keep ipywidgets out of ``cryolab.core``).
        It is looked up by module name at call time instead, so only notebooks load the UI.
        """
        ui = importlib.import_module("cryolab.ui.form")
        return ui.form(self.protocol, self.project, self.params, label=self.label)

    def __repr__(self) -> str:
        return f"<Run {self.id} {self.protocol} [{self.status}]>"

    def _repr_html_(self) -> str:
        return (
            f"<div class='cryolab-run'><b>Run {self.id}</b> {html.escape(self.protocol)} "
            f"<code>{html.escape(self.status)}</code> → "
            + ", ".join(html.escape(str(o)) for o in self.out.values())
            + "</div>"
        )
