"""``project.graph()``: the run graph drawn in a notebook cell, with live statuses.

The graph is the engine's :meth:`Project.run_graph`, laid out here in layers (a run sits one
layer below the lowest of its inputs; within a layer runs are ordered by the mean position of
their inputs, which keeps edges short and mostly uncrossed), and drawn as SVG by
``static/graph.js``. A background thread with its own database connection watches the
project's event log and redraws when a run is created or changes status, so the cell keeps
up while the kernel is free. Click a run for its parameters, outputs (with counts), summary and
log tail. The JupyterLab side panel (``extension/``) shows the same graph outside notebooks.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from cryolab.core.details import run_details
from cryolab.core.errors import CryolabError
from cryolab.core.project import Project, open_project
from cryolab.core.rungraph import layout

log = logging.getLogger(__name__)
__all__ = ["RunGraph", "graph", "layout"]

STATIC = Path(__file__).parent / "static"
POLL_SECONDS = 1.0
LOG_LINES = 20


class RunGraph(anywidget.AnyWidget):  # type: ignore[misc]
    """The run graph of a project in a notebook (see the module's docstring)."""

    _esm = STATIC / "graph.js"
    _css = STATIC / "graph.css"
    graph = traitlets.Dict().tag(sync=True)
    selected = traitlets.Int(0).tag(sync=True)
    details = traitlets.Dict().tag(sync=True)

    def __init__(self, project: Project, *, follow: bool = True) -> None:
        super().__init__()
        self.path = project.path
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._last_event = 0
        self.refresh(project)
        if follow:
            threading.Thread(target=self._follow, daemon=True, name="cryolab-graph").start()

    def refresh(self, project: Project | None = None) -> None:
        """Read the graph (and the selected run's details) again from the project."""
        opened = project or Project(self.path)
        try:
            events = opened.events(self._last_event)
            graph = opened.run_graph()
            places = layout(graph)
            for node in graph["nodes"]:
                node["layer"], node["position"] = places[int(node["id"])]
            details = run_details(opened, self.selected, LOG_LINES) if self.selected else {}
        finally:
            if project is None:
                opened.close()
        with self._lock, self.hold_sync():
            self._last_event = max([self._last_event, *(e["id"] for e in events)])
            self.graph = graph
            self.details = details

    @traitlets.observe("selected")
    def _selected(self, change: Any) -> None:
        try:
            self.refresh()
        except CryolabError as exc:
            self.details = {"error": str(exc)}

    def close(self) -> None:
        """Stop following the project and close the widget."""
        self._closed.set()
        super().close()

    def _follow(self) -> None:
        """Redraw whenever the project's event log grows (own connection: another thread)."""
        project = Project(self.path)
        try:
            while not self._closed.wait(POLL_SECONDS):
                if project.events(self._last_event):
                    self.refresh(project)
        except Exception:
            log.exception("stopped following the run graph of %s", self.path)
        finally:
            project.close()


def graph(project: Project | str | Path, *, follow: bool = True) -> RunGraph:
    """The run graph widget of ``project`` (a project or its folder), following it live."""
    opened = project if isinstance(project, Project) else open_project(project, create=False)
    return RunGraph(opened, follow=follow)
