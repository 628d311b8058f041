"""The run graph's layered layout, and a static SVG drawing of it for reports.

:func:`layout` places each run of :meth:`Project.run_graph` in a layer one below the lowest
of its inputs; the notebook widget (``cryolab.ui.graph``) draws that layout live in the
browser, :func:`to_svg` draws it once, as a self-contained SVG, for :mod:`cryolab.core.report`.
"""

from __future__ import annotations

from collections import defaultdict
from html import escape
from typing import Any

NODE_WIDTH = 190
NODE_HEIGHT = 52
GAP_X = 28
GAP_Y = 46
MARGIN = 12
STATUS_COLOURS = {
    "finished": "#2e7d32",
    "running": "#1565c0",
    "launched": "#1565c0",
    "scheduled": "#6a1b9a",
    "failed": "#c62828",
    "aborted": "#ef6c00",
    "saved": "#757575",
}


def layout(graph: dict[str, Any]) -> dict[int, tuple[int, int]]:
    """``run id -> (layer, position in layer)`` of a run graph.

    A run's layer is one more than the largest layer of the runs it reads from (0 without
    inputs); within a layer, runs are sorted by the mean position of their inputs, then by id.
    """
    parents: dict[int, set[int]] = defaultdict(set)
    for edge in graph["edges"]:
        parents[int(edge["target"])].add(int(edge["source"]))
    ids = sorted(int(node["id"]) for node in graph["nodes"])
    layer: dict[int, int] = {}
    for run in ids:  # a run's inputs come from runs created before it: ids are increasing
        known = [layer[p] for p in parents[run] if p in layer]
        layer[run] = 1 + max(known) if known else 0
    place: dict[int, tuple[int, int]] = {}
    for depth in range(max(layer.values(), default=-1) + 1):
        members = [run for run in ids if layer[run] == depth]

        def key(run: int) -> tuple[float, int]:
            above = [place[p][1] for p in parents[run] if p in place]
            return (sum(above) / len(above) if above else float(run), run)

        for position, run in enumerate(sorted(members, key=key)):
            place[run] = (depth, position)
    return place


def to_svg(graph: dict[str, Any]) -> str:
    """The run graph as one ``<svg>`` element: a box per run (id, label or protocol, status
    colour), an arrow per input edge from the producing run to the consuming one."""
    places = layout(graph)
    widths: dict[int, int] = defaultdict(int)
    for layer, _position in places.values():
        widths[layer] += 1
    columns = max(widths.values(), default=1)
    layers = max(widths, default=0) + 1
    width = 2 * MARGIN + columns * NODE_WIDTH + (columns - 1) * GAP_X
    height = 2 * MARGIN + layers * NODE_HEIGHT + (layers - 1) * GAP_Y

    def box(run: int) -> tuple[float, float]:
        layer, position = places[run]
        offset = (columns - widths[layer]) * (NODE_WIDTH + GAP_X) / 2  # centre each layer
        return (
            MARGIN + offset + position * (NODE_WIDTH + GAP_X),
            MARGIN + layer * (NODE_HEIGHT + GAP_Y),
        )

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="cryolab-run-graph" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, '
        'sans-serif" role="img" aria-label="run graph">',
        '<defs><marker id="cryolab-arrow" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" fill="#607d8b"/></marker></defs>',
    ]
    drawn: set[tuple[int, int]] = set()
    for edge in graph["edges"]:
        source, target = int(edge["source"]), int(edge["target"])
        if (source, target) in drawn or source not in places or target not in places:
            continue
        drawn.add((source, target))
        (sx, sy), (tx, ty) = box(source), box(target)
        x1, y1 = sx + NODE_WIDTH / 2, sy + NODE_HEIGHT
        x2, y2 = tx + NODE_WIDTH / 2, ty
        middle = (y1 + y2) / 2
        parts.append(
            f'<path d="M{x1:.1f},{y1:.1f} C{x1:.1f},{middle:.1f} {x2:.1f},{middle:.1f} '
            f'{x2:.1f},{y2:.1f}" fill="none" stroke="#90a4ae" stroke-width="1.4" '
            'marker-end="url(#cryolab-arrow)"/>'
        )
    for node in graph["nodes"]:
        run = int(node["id"])
        x, y = box(run)
        colour = STATUS_COLOURS.get(str(node.get("status")), "#757575")
        title = _fit(str(node.get("label") or node["protocol"]), 26)
        parts.append(
            f'<g class="cryolab-node" data-run="{run}" data-status="{escape(str(node["status"]))}">'
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="6" '
            f'fill="#ffffff" stroke="{colour}" stroke-width="1.6"/>'
            f'<rect x="{x:.1f}" y="{y:.1f}" width="6" height="{NODE_HEIGHT}" rx="3" '
            f'fill="{colour}"/>'
            f'<text x="{x + 14:.1f}" y="{y + 20:.1f}" font-size="12.5" font-weight="600" '
            f'fill="#263238">{run} · {escape(title)}</text>'
            f'<text x="{x + 14:.1f}" y="{y + 38:.1f}" font-size="11" fill="#546e7a">'
            f"{escape(_fit(str(node['protocol']), 20))} · {escape(str(node['status']))}</text>"
            f"<title>run {run}: {escape(str(node['protocol']))} ({escape(str(node['status']))})"
            "</title></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _fit(text: str, length: int) -> str:
    """``text`` shortened with an ellipsis to at most ``length`` characters."""
    return text if len(text) <= length else text[: length - 1] + "…"
