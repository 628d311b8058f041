"""``project.compare_widget()``: pick two runs of a project and see how they differ.

Two run pickers (with swap and refresh buttons) above the comparison of
:mod:`cryolab.core.compare`, redrawn whenever a picker changes: the parameter diff, and per
output the counts, the shared and one-sided columns, numeric distributions with their
Kolmogorov-Smirnov statistic, and the uid overlap. The comparison is computed in the kernel
(column by column from the memory-mapped sets), so picking runs with millions of rows takes
seconds, not minutes.

The pickers offer the runs the project had when the widget was made; *Refresh* reads them
again (runs made since, new statuses), keeping the picks. ipywidgets tells nothing when a
picker is opened, hence the button.
"""

from __future__ import annotations

import html
import logging
from typing import Any

import ipywidgets as widgets

from cryolab.core.compare import Comparison, compare_runs
from cryolab.core.errors import CryolabError
from cryolab.core.project import Project
from cryolab.core.runs import Run

__all__ = ["CompareWidget", "compare_widget"]

log = logging.getLogger(__name__)


class CompareWidget(widgets.VBox):  # type: ignore[misc]
    """Two run pickers and the comparison of the picked runs.

    Parameters
    ----------
    project
        The project whose runs are offered.
    a, b
        The runs shown first (default: the newest run and the newest earlier run of the same
        protocol, else the run before it).

    Attributes
    ----------
    comparison : Comparison or None
        The comparison shown, ``None`` while the same run is picked twice or it failed.
    """

    def __init__(self, project: Project, a: int | None = None, b: int | None = None) -> None:
        runs = project.runs()
        if len(runs) < 2:
            raise CryolabError(f"comparing needs two runs; project {project.path} has {len(runs)}")
        first, second = _default_pair(runs, a, b)
        options = [(_label(run), run.id) for run in runs]
        self.project = project
        self.comparison: Comparison | None = None
        self._quiet = False  # set while the pickers are changed by code, not by the user
        picker = {
            "options": options,
            "layout": widgets.Layout(width="40%"),
            "style": {"description_width": "initial"},
        }
        self.run_a = widgets.Dropdown(value=first, description="Run A", **picker)
        self.run_b = widgets.Dropdown(value=second, description="Run B", **picker)
        self.swap = widgets.Button(description="Swap", tooltip="Swap runs A and B")
        self.refresh_button = widgets.Button(
            description="Refresh", tooltip="Read the project's runs again (new runs, statuses)"
        )
        self.output = widgets.HTML()
        self.run_a.observe(self._changed, names="value")
        self.run_b.observe(self._changed, names="value")
        self.swap.on_click(self._swap)
        self.refresh_button.on_click(lambda _button: self.refresh())
        super().__init__(
            [
                widgets.HBox([self.run_a, self.run_b, self.swap, self.refresh_button]),
                self.output,
            ],
        )
        self.add_class("cryolab-compare-widget")
        self.update()

    def update(self) -> None:
        """Compare the picked runs again and show the result."""
        a, b = self.run_a.value, self.run_b.value
        self.comparison = None
        if a is None or b is None:
            self.output.value = "<p>Comparing needs two runs; the project has fewer now.</p>"
            return
        if a == b:
            self.output.value = "<p>Pick two different runs to compare.</p>"
            return
        try:
            self.comparison = compare_runs(self.project, a, b)
        except CryolabError as exc:
            message = str(exc)
        except Exception as exc:  # a widget callback's error would vanish: show it
            log.exception("comparing runs %s and %s failed", a, b)
            message = f"{type(exc).__name__}: {exc}"
        else:
            self.output.value = self.comparison._repr_html_()
            return
        self.output.value = f"<p class='cryolab-error'>{html.escape(message)}</p>"

    def refresh(self) -> None:
        """Offer the project's runs as they are now, keeping the picked runs that still exist,
        and compare again."""
        runs = self.project.runs()
        ids = [run.id for run in runs]
        picks = [v if v in ids else None for v in (self.run_a.value, self.run_b.value)]
        a: int | None = None
        b: int | None = None  # none while fewer than two runs are left (runs were deleted)
        if len(runs) >= 2:
            a, b = _default_pair(runs, picks[0], picks[1])
        options = [(_label(run), run.id) for run in runs]
        self._quiet = True
        try:
            for picker, value in ((self.run_a, a), (self.run_b, b)):
                picker.options = options
                picker.value = value
        finally:
            self._quiet = False
        self.update()

    def _changed(self, _change: dict[str, Any]) -> None:
        if not self._quiet:
            self.update()

    def _swap(self, _button: Any) -> None:
        a, b = self.run_a.value, self.run_b.value
        self.run_a.unobserve(self._changed, names="value")
        self.run_a.value = b
        self.run_a.observe(self._changed, names="value")
        self.run_b.value = a  # one update, with both values swapped


def compare_widget(project: Project, a: int | None = None, b: int | None = None) -> CompareWidget:
    """The comparison widget of ``project`` (see :class:`CompareWidget`)."""
    return CompareWidget(project, a, b)


def _label(run: Run) -> str:
    name = run.label or run.protocol
    return f"#{run.id} {name} ({run.protocol}, {run.status})"


def _default_pair(runs: list[Run], a: int | None, b: int | None) -> tuple[int, int]:
    ids = [run.id for run in runs]
    for given in (a, b):
        if given is not None and given not in ids:
            raise CryolabError(f"no run {given} in this project; it has runs {ids}")
    if b is None:
        b = next(run.id for run in reversed(runs) if run.id != a)
    if a is None:
        newest = next(run for run in runs if run.id == b)
        others = [run for run in runs if run.id != b]
        earlier = [run for run in others if run.id < b] or others
        same = [run for run in earlier if run.protocol == newest.protocol]
        a = (same or earlier)[-1].id
    return a, b
