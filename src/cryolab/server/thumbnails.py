"""``GET .../runs/<run_id>/outputs/<name>/page``: gallery pages served without the kernel.

A notebook's gallery asks the kernel for thumbnails over the widget's comm; while the kernel
runs a cell, those requests wait. The server extension serves the same pages
(:class:`cryolab.em.gallery.ImagePages`, so both paths show the same thumbnails in the same
order) from the Jupyter server's process, which a busy kernel does not block.

Query arguments: ``start``, ``count`` (≤ :data:`cryolab.em.gallery.MAX_COUNT`), ``size``
(thumbnail side, px), ``sort``, ``descending`` (``0``/``1``), ``where`` (a condition) and
``labels`` (comma-separated columns). The answer is JSON: ``start``, ``count``, ``total``,
``size``, ``uids`` (strings: 64-bit), ``labels``, ``errors`` and ``thumbnails``, the
``(count, size, size)`` uint8 tiles, base64-encoded in row-major order.
"""

from __future__ import annotations

import base64
import re
from collections import OrderedDict
from pathlib import Path

from jupyter_server.auth.decorator import authorized
from tornado import web

from cryolab.core.errors import CryolabError
from cryolab.core.sets import Set
from cryolab.core.setstore import read_manifest
from cryolab.em.gallery import MAX_COUNT, MAX_SIZE, ImagePages, Query
from cryolab.server.handlers import ApiError, CryolabHandler

OUTPUT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
CACHED_SETS = 8
"""Outputs whose pages (and their sorted orders) the server keeps in memory."""

_pages: OrderedDict[tuple[Path, int], ImagePages] = OrderedDict()


def pages_of(folder: Path) -> ImagePages:
    """The pages of the set in ``folder``, cached while its row count stays the same.

    A streaming output that grew is read again; the least recently used sets are dropped.
    """
    key = (folder, int(read_manifest(folder)["rows"]))
    if key in _pages:
        _pages.move_to_end(key)
        return _pages[key]
    made = ImagePages(Set.open(folder))
    _pages[key] = made
    while len(_pages) > CACHED_SETS:
        _pages.popitem(last=False)
    return made


class PageHandler(CryolabHandler):
    """A page of thumbnails of one output of a run (see the module's docstring)."""

    @web.authenticated
    @authorized
    async def get(self, project_id: str, run_id: str, name: str) -> None:
        number = self.run_id(run_id)
        if not OUTPUT_NAME.fullmatch(name):
            raise ApiError(404, f"no output {name!r}: an output name is a Python identifier")
        with self.project(project_id) as project:
            outputs = project.get_run(number).out
            if name not in outputs:
                raise ApiError(404, f"run {number} has no output {name!r}")
            reference = outputs[name]
            if not reference.exists:
                raise ApiError(404, f"output {reference} is not written yet")
            folder = reference.path
        start = int(self.argument("start", 0, 0, 2**62, int))
        count = int(self.argument("count", 100, 0, MAX_COUNT, int))
        size = int(self.argument("size", 64, 8, MAX_SIZE, int))
        query = Query(
            sort=self.get_query_argument("sort", ""),
            descending=self.get_query_argument("descending", "0") == "1",
            where=self.get_query_argument("where", ""),
        )
        labels = [c for c in self.get_query_argument("labels", "").split(",") if c]
        try:
            page = pages_of(folder).page(start, count, query=query, size=size, labels=labels)
        except CryolabError as exc:
            raise ApiError(400, str(exc)) from None
        self.finish(
            {
                "start": page.start,
                "count": len(page),
                "total": page.total,
                "size": size,
                "uids": [str(u) for u in page.uids],
                "labels": page.json_labels(),
                "errors": list(page.errors),
                "thumbnails": base64.b64encode(page.thumbnails.tobytes()).decode("ascii"),
            }
        )
