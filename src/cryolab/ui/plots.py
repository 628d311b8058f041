"""Bokeh plots of cryo-EM sets: CTF per micrograph, FSC curves, angular distribution, counts.

Each ``*_plot`` function takes a set (or an output of a run, ``run.out.ctfs``) and returns a
bokeh layout whose data live in named ``ColumnDataSource`` objects, so a plot can be refreshed
in place. :func:`show` displays one with BokehJS inlined (no CDN: compute nodes and air-gapped
browsers cannot reach one). :class:`LivePlot` wraps a plot of a run's output in a
``jupyter_bokeh`` widget that re-reads the output every few seconds while it is open (a
streaming run still appending) and stops when it closes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
from bokeh.layouts import column
from bokeh.models import (
    ColumnDataSource,
    CustomJSTickFormatter,
    HoverTool,
    LayoutDOM,
    Range1d,
)
from bokeh.models.annotations import Span
from bokeh.plotting import figure

from cryolab.core.sets import Set
from cryolab.core.setstore import count_history

log = logging.getLogger(__name__)

WIDTH = 640
ANGULAR_BINS = (36, 18)
"""Bins of the angular distribution: rot (360°) by cos(tilt) (an equal-area map of the sphere)."""


def _loaded(data: Any) -> Set:
    """A set from a set or a run output (``OutputRef``), which loads its committed rows."""
    return data if isinstance(data, Set) else data.load()


def _require(data: Set, columns: tuple[str, ...], what: str) -> None:
    missing = [name for name in columns if name not in data]
    if missing:
        raise ValueError(f"a {what} needs the column(s) {', '.join(missing)}")


# ---------------------------------------------------------------------------- CTF


def ctf_columns(data: Any) -> dict[str, Any]:
    """The plotted columns of a set of CTFs, one row per micrograph in set order."""
    ctfs = _loaded(data)
    _require(ctfs, ("ctf.defocus_u", "ctf.defocus_v"), "CTF plot")
    count = len(ctfs)
    resolution = ctfs["ctf.resolution"] if "ctf.resolution" in ctfs else np.full(count, np.nan)
    return {
        "index": np.arange(1, count + 1),
        "uid": [str(u) for u in ctfs.uids],
        "defocus": (np.asarray(ctfs["ctf.defocus_u"]) + np.asarray(ctfs["ctf.defocus_v"])) / 2,
        "astigmatism": np.abs(np.asarray(ctfs["ctf.defocus_u"]) - ctfs["ctf.defocus_v"]),
        "resolution": np.asarray(resolution, dtype=np.float64),
    }


def ctf_plot(data: Any) -> LayoutDOM:
    """Mean defocus and fit resolution per micrograph (two linked panels, hover shows the uid)."""
    source = ColumnDataSource(ctf_columns(data), name="ctf")
    tips = [
        ("micrograph", "@index (uid @uid)"),
        ("defocus", "@defocus{0,0} Å"),
        ("astigmatism", "@astigmatism{0,0} Å"),
        ("fit resolution", "@resolution{0.0} Å"),
    ]
    top = figure(height=220, width=WIDTH, title="CTF: mean defocus", y_axis_label="defocus (Å)")
    top.scatter("index", "defocus", source=source, size=6)
    bottom = figure(
        height=220,
        width=WIDTH,
        x_range=top.x_range,
        title="CTF: fit resolution",
        x_axis_label="micrograph",
        y_axis_label="resolution (Å)",
    )
    bottom.scatter("index", "resolution", source=source, size=6, color="darkorange")
    for panel in (top, bottom):
        panel.add_tools(HoverTool(tooltips=tips))
    return column(top, bottom)


# ---------------------------------------------------------------------------- FSC


def fsc_plot(curves: Any, labels: list[str] | None = None) -> LayoutDOM:
    """FSC curves against spatial frequency (ticks in Å), with the 0.143 and 0.5 thresholds.

    Parameters
    ----------
    curves
        One FSC set (or run output) or a list of them.
    labels
        Legend labels, one per curve (default "FSC 1", "FSC 2", ...).
    """
    sets = [_loaded(c) for c in (curves if isinstance(curves, list) else [curves])]
    names = labels or [f"FSC {i + 1}" for i in range(len(sets))]
    if len(names) != len(sets):
        raise ValueError(f"{len(sets)} curves but {len(names)} labels")
    plot = figure(
        height=320,
        width=WIDTH,
        title="Fourier shell correlation",
        x_axis_label="resolution (Å)",
        y_axis_label="FSC",
        y_range=Range1d(start=-0.1, end=1.05),
    )
    plot.xaxis.formatter = CustomJSTickFormatter(
        code="return tick > 0 ? (1 / tick).toFixed(1) : '∞'"
    )
    colours = ("navy", "darkorange", "seagreen", "crimson", "purple", "gray")
    for index, (curve, name) in enumerate(zip(sets, names, strict=True)):
        _require(curve, ("fsc.frequency", "fsc.value"), "FSC plot")
        source = ColumnDataSource(
            {
                "frequency": np.asarray(curve["fsc.frequency"], dtype=np.float64),
                "fsc": np.asarray(curve["fsc.value"], dtype=np.float64),
            },
            name=f"fsc-{index}",
        )
        plot.line(
            "frequency",
            "fsc",
            source=source,
            legend_label=name,
            line_width=2,
            color=colours[index % len(colours)],
        )
    for threshold in (0.143, 0.5):
        plot.add_layout(Span(location=threshold, dimension="width", line_dash="dashed"))
    plot.legend.location = "top_right"
    return plot


# ---------------------------------------------------------------- angular distribution


def angular_histogram(data: Any) -> dict[str, Any]:
    """Counts of particle views on an equal-area grid of rot x cos(tilt)."""
    particles = _loaded(data)
    _require(particles, ("transform.rot", "transform.tilt"), "angular distribution")
    rot = np.mod(np.asarray(particles["transform.rot"], dtype=np.float64), 360.0)
    height = np.cos(np.radians(np.asarray(particles["transform.tilt"], dtype=np.float64)))
    bins_rot, bins_height = ANGULAR_BINS
    counts, rot_edges, height_edges = np.histogram2d(
        rot, height, bins=(bins_rot, bins_height), range=((0, 360), (-1, 1))
    )
    rot_centres = (rot_edges[:-1] + rot_edges[1:]) / 2
    height_centres = (height_edges[:-1] + height_edges[1:]) / 2
    grid_rot, grid_height = np.meshgrid(rot_centres, height_centres, indexing="ij")
    return {
        "rot": grid_rot.ravel(),
        "height": grid_height.ravel(),
        "tilt": np.degrees(np.arccos(grid_height.ravel())),
        "count": counts.ravel(),
        "alpha": counts.ravel() / max(1.0, float(counts.max())),
    }


def angular_plot(data: Any) -> LayoutDOM:
    """Where the particles look from: counts per direction on an equal-area map."""
    source = ColumnDataSource(angular_histogram(data), name="angles")
    width_rot = 360 / ANGULAR_BINS[0]
    width_height = 2 / ANGULAR_BINS[1]
    plot = figure(
        height=320,
        width=WIDTH,
        title="Angular distribution (equal-area: rot x cos tilt)",
        x_axis_label="rot (°)",
        y_axis_label="cos(tilt)",
        x_range=Range1d(start=0, end=360),
        y_range=Range1d(start=-1, end=1),
    )
    plot.rect(
        "rot",
        "height",
        width_rot,
        width_height,
        source=source,
        fill_alpha="alpha",
        line_alpha=0,
        color="navy",
    )
    plot.add_tools(
        HoverTool(tooltips=[("rot", "@rot{0}°"), ("tilt", "@tilt{0}°"), ("particles", "@count{0}")])
    )
    return plot


# ---------------------------------------------------------------- counts over time


def count_columns(output: Any) -> dict[str, Any]:
    """Item count of a run's output after each batch, against seconds since the first batch."""
    history = count_history(output.path)
    times = np.array([t for t, _ in history], dtype=np.float64)
    return {
        "seconds": times - times[0] if times.size else times,
        "count": np.array([n for _, n in history], dtype=np.int64),
    }


def counts_plot(output: Any) -> LayoutDOM:
    """How a run's output grew (items against time): the progress of a streaming run."""
    source = ColumnDataSource(count_columns(output), name="counts")
    plot = figure(
        height=260,
        width=WIDTH,
        title=f"Items of {output} over time",
        x_axis_label="seconds since the first batch",
        y_axis_label="items",
    )
    plot.step("seconds", "count", source=source, mode="after", line_width=2)
    plot.scatter("seconds", "count", source=source, size=4)
    return plot


# ---------------------------------------------------------------- display and live updates


def show(layout: LayoutDOM) -> None:
    """Display a plot in the notebook with BokehJS inlined (works offline)."""
    from bokeh.io import output_notebook
    from bokeh.io import show as bokeh_show
    from bokeh.resources import INLINE

    output_notebook(INLINE, hide_banner=True)
    bokeh_show(layout)


REFRESHERS: dict[Callable[..., LayoutDOM], Callable[[Any], dict[str, dict[str, Any]]]] = {
    ctf_plot: lambda output: {"ctf": ctf_columns(output)},
    angular_plot: lambda output: {"angles": angular_histogram(output)},
    counts_plot: lambda output: {"counts": count_columns(output)},
}
"""Per plot function: how to recompute the data of its named sources from a run output."""


class LivePlot:
    """A plot of a run's output that follows it while the output is open.

    Parameters
    ----------
    make
        One of :func:`ctf_plot`, :func:`angular_plot`, :func:`counts_plot`.
    output
        The run output (``run.out.ctfs``), read again at each refresh.
    interval
        Seconds between refreshes.

    Notes
    -----
    The :attr:`widget` (a ``jupyter_bokeh`` ``BokehModel``) is what a notebook displays;
    :meth:`start` refreshes it from a background thread until the output is closed or
    :meth:`stop` is called, so the kernel stays free.
    """

    def __init__(self, make: Callable[[Any], LayoutDOM], output: Any, interval: float = 2.0):
        if make not in REFRESHERS:
            raise ValueError(f"{make.__name__} cannot follow a run output")
        self.output = output
        self.interval = float(interval)
        self._columns = REFRESHERS[make]
        self.layout = make(output)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._widget: Any = None

    @property
    def widget(self) -> Any:
        """The ``BokehModel`` widget showing the plot (created on first use)."""
        if self._widget is None:
            from jupyter_bokeh.widgets import BokehModel

            self._widget = BokehModel(self.layout)
        return self._widget

    def refresh(self) -> bool:
        """Re-read the output into the plot's sources; ``False`` once the output is closed."""
        for name, data in self._columns(self.output).items():
            source = self.layout.select_one({"name": name})
            assert isinstance(source, ColumnDataSource), name
            source.data = data
        return str(self.output.state) != "closed"

    def start(self) -> LivePlot:
        """Refresh every ``interval`` seconds in a background thread; returns ``self``."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._follow, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop following the output."""
        self._stop.set()

    def _follow(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not self.refresh():
                    break
            except Exception:  # a half-written output: try again at the next tick
                log.debug("refresh of %s failed", self.output, exc_info=True)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def live(make: Callable[[Any], LayoutDOM], output: Any, interval: float = 2.0) -> LivePlot:
    """A :class:`LivePlot` of ``output``, already following it (display it in a cell)."""
    return LivePlot(make, output, interval).start()
