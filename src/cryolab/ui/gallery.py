"""The lazy gallery widget: virtual scrolling over an image set of any size.

The widget is a thin client of :class:`cryolab.em.gallery.ImagePages`, which does all the
filtering, sorting and paging. The browser (``static/gallery.js``) keeps only the visible tiles
in the page and asks for pages of thumbnails with ``anywidget``'s command channel
(``_page``, binary buffers); the selection lives here, in Python, as a sorted array of uids, so
selecting millions of items sends nothing but positions and counts. "Make subset" creates a
traced ``sets.subset`` run of the selected uids in the project.

Open one with ``some_set.gallery()`` or ``run.out.particles.gallery()``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets
from anywidget.experimental import command
from numpy.typing import NDArray

from cryolab.core.errors import CryolabError
from cryolab.core.project import Project, project_id
from cryolab.core.runs import OutputRef, Run
from cryolab.core.sets import Set
from cryolab.em.gallery import MAX_COUNT, ImagePages, Query

__all__ = ["Gallery", "gallery"]

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
Reply = tuple[dict[str, Any], list[bytes]]


def _answering(handler: Callable[[Gallery, dict[str, Any]], Reply]) -> Any:
    """Turn a handler into a command that always answers: errors become ``{"error": ...}``.

    anywidget sends no response when a command raises, so the browser would only see a
    timeout; a user's mistake (an unknown column, say) is reported instead.
    """

    def run(self: Gallery, msg: dict[str, Any], buffers: list[bytes]) -> Reply:
        try:
            return handler(self, msg)
        except (CryolabError, ValueError, KeyError) as exc:
            log.info("gallery: %s", exc)
            return {"error": str(exc)}, []

    run.__name__ = handler.__name__
    run.__doc__ = handler.__doc__
    return command(run)


class Gallery(anywidget.AnyWidget):  # type: ignore[misc]
    """A gallery of an image set: sort, filter, label, select, make a subset.

    Parameters
    ----------
    images
        The image set (micrographs, particles, class averages, volumes).
    source
        The output the set was loaded from (``run.out.particles``): enables "make subset".
    project
        The project to create subset runs in (default: the source's project).
    labels
        Columns shown under each thumbnail.
    sort, descending, where
        The initial order and filter (see :class:`cryolab.em.gallery.Query`).
    size
        Thumbnail side in pixels.
    """

    _esm = STATIC / "gallery.js"
    _css = STATIC / "gallery.css"

    title = traitlets.Unicode("").tag(sync=True)
    columns = traitlets.List(traitlets.Unicode()).tag(sync=True)
    total = traitlets.Int(0).tag(sync=True)
    sort = traitlets.Unicode("").tag(sync=True)
    descending = traitlets.Bool(False).tag(sync=True)
    where = traitlets.Unicode("").tag(sync=True)
    labels = traitlets.List(traitlets.Unicode()).tag(sync=True)
    size = traitlets.Int(64).tag(sync=True)
    version = traitlets.Int(0).tag(sync=True)
    n_selected = traitlets.Int(0).tag(sync=True)
    can_subset = traitlets.Bool(False).tag(sync=True)
    subset_run = traitlets.Int(0).tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    server_page = traitlets.Unicode("").tag(sync=True)

    def __init__(
        self,
        images: Set,
        *,
        source: OutputRef | None = None,
        project: Project | None = None,
        labels: Sequence[str] = (),
        sort: str = "",
        descending: bool = False,
        where: str = "",
        size: int = 64,
    ) -> None:
        self.pages = ImagePages(images)
        for name in labels:
            self.pages._check_column(name, "label with")
        self.source = source
        self.project = project if project is not None else getattr(source, "project", None)
        self._query = Query()
        self._selected: NDArray[np.uint64] = np.zeros(0, dtype=np.uint64)
        self._all_filtered = False  # the selection is "every item the filter keeps"
        super().__init__(
            title=f"{images.type_name} {source}" if source is not None else images.type_name,
            columns=self.pages.columns,
            total=len(images),
            labels=list(labels),
            size=size,
            can_subset=source is not None and self.project is not None,
            server_page=_server_page(source),
        )
        self.sort, self.descending, self.where = sort, descending, where
        if self.error:
            raise CryolabError(self.error)

    # -- the query ---------------------------------------------------------------------------
    @traitlets.observe("sort", "descending", "where")
    def _query_changed(self, change: dict[str, Any]) -> None:
        query = Query(self.sort, self.descending, self.where)
        try:
            total = self.pages.total(query)
        except CryolabError as exc:
            self.error = str(exc)  # the last valid query stays in force
            return
        self.error = ""
        if query != self._query:
            self._query = query
            self._all_filtered = False
            self.total = total
            self.version += 1

    @property
    def query(self) -> Query:
        """The order and filter in force."""
        return self._query

    # -- selection ---------------------------------------------------------------------------
    @property
    def selected(self) -> NDArray[np.uint64]:
        """The selected uids (sorted)."""
        return self._selected.copy()

    def select(self, uids: Sequence[int] | NDArray[Any], *, add: bool = True) -> None:
        """Add uids to the selection (or remove them with ``add=False``)."""
        values = np.asarray(uids, dtype=np.uint64)
        combine = np.union1d if add else np.setdiff1d
        chosen = combine(self._selected, values)
        self._set_selection(chosen.astype(np.uint64), all_filtered=False)

    def select_all(self) -> None:
        """Select every item the filter keeps."""
        self._set_selection(np.unique(self.pages.uids(self._query)), all_filtered=True)

    def clear_selection(self) -> None:
        """Select nothing."""
        self._set_selection(np.zeros(0, dtype=np.uint64), all_filtered=False)

    def _set_selection(self, uids: NDArray[np.uint64], *, all_filtered: bool) -> None:
        self._selected = uids
        self._all_filtered = all_filtered
        self.n_selected = int(uids.size)

    def _flags(self, uids: NDArray[np.uint64]) -> list[bool]:
        where = np.searchsorted(self._selected, uids)
        inside = where < self._selected.size
        found = np.zeros(uids.size, dtype=bool)
        found[inside] = self._selected[where[inside]] == uids[inside]
        return [bool(flag) for flag in found]

    # -- subset runs -------------------------------------------------------------------------
    def make_subset(self, label: str = "") -> Run:
        """Create (and launch) a ``sets.subset`` run of the selected items; return it.

        When the selection is "every item the filter keeps", the run selects by the filter
        (a short, readable parameter); otherwise it lists the selected uids.
        """
        if self.source is None or self.project is None:
            raise CryolabError(
                "this gallery shows a set that is no run's output: open it with "
                "run.out.NAME.gallery() to make subsets"
            )
        if self._selected.size == 0:
            raise CryolabError("select items first: the subset would be empty")
        if self._all_filtered and self._query.where:
            params: dict[str, Any] = {"mode": "condition", "where": self._query.where}
        else:
            params = {"mode": "list", "uid_list": [int(u) for u in self._selected]}
        run = self.project.run(
            "sets.subset",
            source=str(self.source),
            label=label or f"{self._selected.size} selected in a gallery",
            **params,
        )
        self.subset_run = run.id
        log.info("gallery: subset run %d of %d items", run.id, self._selected.size)
        return run

    # -- commands from the browser -----------------------------------------------------------
    @_answering
    def _page(self, msg: dict[str, Any]) -> Reply:
        """``{start, count}`` → the page's metadata and its thumbnails as one buffer."""
        start, count = int(msg["start"]), min(int(msg["count"]), MAX_COUNT)
        page = self.pages.page(start, count, query=self._query, size=self.size, labels=self.labels)
        meta = {
            "version": self.version,
            "start": page.start,
            "count": len(page),
            "total": page.total,
            "size": self.size,
            "uids": [str(u) for u in page.uids],  # 64-bit: beyond JavaScript's exact integers
            "labels": page.json_labels(),
            "selected": self._flags(page.uids),
            "errors": list(page.errors),
        }
        return meta, [page.thumbnails.tobytes()]

    @_answering
    def _select(self, msg: dict[str, Any]) -> Reply:
        """``{action, position, anchor}``: toggle, range (shift-click), all or none."""
        action = msg["action"]
        order = self.pages.order(self._query)
        if action == "all":
            self.select_all()
        elif action == "none":
            self.clear_selection()
        elif action in ("toggle", "range"):
            position = int(msg["position"])
            if not 0 <= position < order.size:
                raise CryolabError(f"no item at position {position} of {order.size}")
            if action == "toggle":
                uid = self.pages.uids_at(order[position : position + 1])
                self.select(uid, add=not self._flags(uid)[0])
            else:
                anchor = min(max(int(msg.get("anchor", position)), 0), order.size - 1)
                low, high = sorted((anchor, position))
                self.select(self.pages.uids_at(order[low : high + 1]))
        else:
            raise CryolabError(f"unknown selection action {action!r}")
        return {"n_selected": self.n_selected}, []

    @_answering
    def _flags_at(self, msg: dict[str, Any]) -> Reply:
        """``{start, stop}`` → whether each item in that range is selected."""
        order = self.pages.order(self._query)
        rows = order[max(0, int(msg["start"])) : max(0, int(msg["stop"]))]
        return {"version": self.version, "selected": self._flags(self.pages.uids_at(rows))}, []

    @_answering
    def _subset(self, msg: dict[str, Any]) -> Reply:
        """Create the subset run; ``{run}`` is its id."""
        return {"run": self.make_subset(str(msg.get("label", ""))).id}, []


def _server_page(source: OutputRef | None) -> str:
    """The server extension's page route of a run output (``cryolab.server.thumbnails``),
    relative to the Jupyter base URL; ``""`` for a set that is not a run's output."""
    if source is None:
        return ""
    return (
        f"cryolab/api/projects/{project_id(source.project.path)}/runs/{source.run_id}"
        f"/outputs/{source.name}/page"
    )


def gallery(images: Set | OutputRef, **options: Any) -> Gallery:
    """A gallery of a set or of a run's output (``options``: see :class:`Gallery`).

    This is the hook behind :meth:`Set.gallery` and :meth:`OutputRef.gallery`, which import
    this module by name because the engine never imports the UI layer.
    """
    if isinstance(images, OutputRef):
        return Gallery(images.load(), source=images, **options)
    return Gallery(images, **options)
