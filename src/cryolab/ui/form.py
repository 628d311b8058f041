"""Protocol forms in the notebook: ``cryolab.form("sets.subset", project)`` and ``run.form()``.

:class:`ProtocolForm` is an anywidget whose browser side (``static/form.js``) only draws the
state computed here by :class:`~cryolab.ui.form_model.FormModel` and sends edits and clicks
back as custom messages ``{"action": ...}``:

``edit``
    ``name`` and ``value`` (text as typed, a choice index, a picked output); the fields,
    conditions, input options, issues and buttons are recomputed.
``run`` / ``schedule``
    Launch a new run (see :mod:`cryolab.ui.form_model` for the difference).
``refresh``
    List the project's outputs again (new runs, new item counts).
``copy``
    Leave the launched run's view to edit and launch another run with the same values.

After a launch, a daemon thread with its own database connection polls the run every
:data:`POLL_SECONDS` and pushes its status, progress and log tail until it ends, so the kernel
is never blocked and the view updates while other cells execute.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from cryolab.core.errors import ParameterError, ProjectError
from cryolab.core.project import Project, open_project
from cryolab.core.protocol import Protocol
from cryolab.core.runs import Run
from cryolab.ui.form_model import FormModel, run_state

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
POLL_SECONDS = 0.5


class ProtocolForm(anywidget.AnyWidget):  # type: ignore[misc]
    """A form generated from a protocol's parameters that launches and then follows a run.

    Create it with :func:`form` or :meth:`cryolab.core.runs.Run.form`. The synced traits are
    read by the browser; only ``expert`` and ``run_label`` are also set from it.
    """

    _esm = STATIC / "form.js"
    _css = STATIC / "form.css"

    spec = traitlets.Dict().tag(sync=True)
    fields: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    values = traitlets.Dict().tag(sync=True)
    issues: traitlets.List[dict[str, str]] = traitlets.List().tag(sync=True)
    actions = traitlets.Dict().tag(sync=True)
    expert = traitlets.Bool(False).tag(sync=True)
    run_label = traitlets.Unicode("").tag(sync=True)
    #: Why the last launch was refused, or what it did (shown under the buttons).
    message = traitlets.Unicode("").tag(sync=True)
    run_state = traitlets.Dict().tag(sync=True)

    def __init__(self, model: FormModel, *, label: str = "") -> None:
        super().__init__(run_label=label)
        self.model = model
        self._lock = threading.RLock()  # the run watcher sets traits from its own thread
        self._closed = threading.Event()
        self._watched: int | None = None
        cls = model.protocol
        doc = (cls.__doc__ or "").strip()
        self.spec = {
            "name": cls.name,
            "label": cls.label or cls.name,
            "help": doc,
            "summary": " ".join(doc.split("\n\n")[0].split()),
            "project": str(model.project.path),
            "sections": model.sections(),
        }
        self.on_msg(self._on_browser_message)
        self._update()

    # -- state --------------------------------------------------------------------------------
    def _update(self) -> None:
        issues = self.model.issues()
        labels = {name: p.label for name, p in self.model.params.items()}
        with self._lock, self.hold_sync():
            self.values = dict(self.model.values)
            self.fields = self.model.fields(issues)
            self.issues = [{**i.to_json(), "label": labels.get(i.param, "")} for i in issues]
            self.actions = self.model.actions(issues)

    @traitlets.observe("expert")
    def _expert_changed(self, change: Mapping[str, Any]) -> None:
        self.model.expert = bool(change["new"])
        self._update()

    def edit(self, name: str, raw: Any) -> None:
        """Apply an edit as the browser sends it (see :meth:`FormModel.edit`)."""
        self.model.edit(name, raw)
        self._update()

    def set(self, **values: Any) -> None:
        """Set parameters to Python values (output handles allowed for inputs)."""
        for name, value in values.items():
            self.model.set(name, value)
        self._update()

    def refresh(self) -> None:
        """Re-read the project (input options, issues) and the launched run's state."""
        self.model.reload()
        self._update()
        with self._lock:
            if self._watched is not None:
                self.run_state = run_state(self.model.project.get_run(self._watched))

    @property
    def current_run(self) -> Run | None:
        """The run this form launched and now shows, if any."""
        return None if self._watched is None else self.model.project.get_run(self._watched)

    # -- launching ----------------------------------------------------------------------------
    def launch(self, *, schedule: bool = False) -> Run | None:
        """Launch a new run from the form's values (the Run or Schedule button).

        Returns the run, or ``None`` when it is refused; then :attr:`message` says why and
        nothing is created.
        """
        if self._watched is not None:
            self.message = f"this form shows run {self._watched}; copy it to launch another"
            return None
        try:
            run = self.model.launch(schedule=schedule, label=self.run_label)
        except (ParameterError, ProjectError) as exc:
            self.message = f"not launched: {exc}"
            self._update()
            return None
        log.info("form launched run %d (%s)", run.id, self.model.protocol.name)
        with self._lock:
            self.message = f"run {run.id} {'scheduled' if schedule else 'launched'}"
            self._watched = run.id
            self.run_state = run_state(run)
        threading.Thread(
            target=self._watch, args=(run.id,), daemon=True, name=f"cryolab-form-{run.id}"
        ).start()
        return run

    def schedule(self) -> Run | None:
        """Launch a run that starts when its inputs have finished (the Schedule button)."""
        return self.launch(schedule=True)

    def copy(self) -> None:
        """Leave the launched run's view: the form edits a new run with the same values."""
        with self._lock:
            self._watched = None
            self.run_state = {}
            self.message = ""
        self.model.reload()
        self._update()

    def close(self) -> None:
        """Stop following the run and close the widget."""
        self._closed.set()
        super().close()

    def _watch(self, run_id: int) -> None:
        """Push the run's state until it ends (own connection: this is another thread)."""
        project = Project(self.model.project.path)
        try:
            while True:
                state = run_state(project.get_run(run_id))
                with self._lock:
                    if self._watched != run_id:
                        return
                    self.run_state = state
                if state["ended"] or state["status"] == "saved" or self._closed.is_set():
                    return
                self._closed.wait(POLL_SECONDS)
        except Exception:
            log.exception("stopped following run %d", run_id)
        finally:
            project.close()

    # -- browser messages ---------------------------------------------------------------------
    def _on_browser_message(self, widget: Any, content: Any, buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        action = content.get("action")
        if action == "edit":
            self.edit(str(content.get("name")), content.get("value"))
        elif action in ("run", "schedule"):
            self.launch(schedule=action == "schedule")
        elif action == "refresh":
            self.refresh()
        elif action == "copy":
            self.copy()
        else:
            log.warning("protocol form: unknown message %r", content)


def form(
    protocol: str | type[Protocol],
    project: Project | str | os.PathLike[str],
    values: Mapping[str, Any] | None = None,
    *,
    label: str = "",
) -> ProtocolForm:
    """A notebook form for a protocol in a project.

    Parameters
    ----------
    protocol
        A registered protocol name, e.g. ``"sets.subset"``, or its class.
    project
        The project (or its folder) the run is created in.
    values
        Initial values (output handles allowed); the others show their defaults.
    label
        Initial label of the run.

    Returns
    -------
    ProtocolForm
        The widget; display it as a cell's result.
    """
    opened = project if isinstance(project, Project) else open_project(project, create=False)
    return ProtocolForm(FormModel(protocol, opened, values), label=label)
