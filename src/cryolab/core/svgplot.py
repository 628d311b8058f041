"""Small static plots as SVG: axes with round ticks, labels, lines, points and guide lines.

For reports that must render offline and without a plotting library (bokeh is optional and
lives in the UI layer). One function, :func:`plot`, draws one panel; values that are NaN or
infinite are left out.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape

import numpy as np
from numpy.typing import ArrayLike, NDArray

COLOURS = ("#1f5fa8", "#e07b00", "#2e8b57", "#c0392b", "#7b3fa0", "#616161")
FONT = "Helvetica, Arial, sans-serif"


@dataclass(frozen=True)
class Series:
    """One data series of a plot.

    Parameters
    ----------
    x, y
        The values (equal lengths).
    label
        Legend text (a legend is drawn when several series have labels).
    kind
        ``"line"`` or ``"points"``.
    """

    x: ArrayLike
    y: ArrayLike
    label: str = ""
    kind: str = "line"


@dataclass(frozen=True)
class Guide:
    """A horizontal (``axis="y"``) or vertical (``axis="x"``) dashed line with a label."""

    value: float
    axis: str = "y"
    label: str = ""


@dataclass
class _Frame:
    width: float
    height: float
    left: float = 64.0
    right: float = 16.0
    top: float = 34.0
    bottom: float = 46.0
    x_range: tuple[float, float] = (0.0, 1.0)
    y_range: tuple[float, float] = (0.0, 1.0)
    parts: list[str] = field(default_factory=list)

    def px(self, x: float) -> float:
        lo, hi = self.x_range
        return self.left + (x - lo) / (hi - lo) * (self.width - self.left - self.right)

    def py(self, y: float) -> float:
        lo, hi = self.y_range
        return (
            self.height
            - self.bottom
            - (y - lo) / (hi - lo) * (self.height - self.top - self.bottom)
        )


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 times a power of ten) covering ``[low, high]``."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low]
    raw = (high - low) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


def _label(value: float) -> str:
    return f"{value:,.6g}".replace(",", "\u2009") if abs(value) >= 1e4 else f"{value:.6g}"


def _limits(values: list[NDArray[np.float64]], pad: float) -> tuple[float, float]:
    finite = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.array([])
    if finite.size == 0:
        return (0.0, 1.0)
    low, high = float(finite.min()), float(finite.max())
    if high == low:
        return (
            (low - 1.0, high + 1.0) if low == 0 else (low - abs(low) * 0.1, high + abs(high) * 0.1)
        )
    margin = (high - low) * pad
    return (low - margin, high + margin)


def plot(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    width: int = 560,
    height: int = 300,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    guides: Sequence[Guide] = (),
    x_format: Callable[[float], str] | None = None,
    x_integer: bool = False,
) -> str:
    """One plot panel as an ``<svg>`` element.

    Parameters
    ----------
    series
        The data; each gets the next colour of :data:`COLOURS`.
    title, x_label, y_label
        Text above the panel and along its axes.
    width, height
        Size in CSS pixels (the drawing scales with its ``viewBox``).
    x_range, y_range
        Axis limits; by default the data's extent plus 5 %.
    guides
        Dashed reference lines (e.g. an FSC threshold).
    x_format
        Tick label of an x value (e.g. a frequency shown as a resolution).
    x_integer
        Ticks only at whole numbers (an axis counting items).
    """
    xs = [np.asarray(s.x, dtype=np.float64) for s in series]
    ys = [np.asarray(s.y, dtype=np.float64) for s in series]
    frame = _Frame(float(width), float(height))
    frame.x_range = x_range or _limits(xs, 0.03)
    frame.y_range = y_range or _limits(ys, 0.06)
    out = frame.parts
    out.append(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="cryolab-plot" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" font-family="{FONT}" role="img" '
        f'aria-label="{escape(title)}">'
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>'
        f'<text x="{frame.left}" y="20" font-size="13.5" font-weight="600" fill="#263238">'
        f"{escape(title)}</text>"
    )
    _axes(frame, x_label, y_label, x_format or _label, x_integer)
    for guide in guides:
        _guide(frame, guide)
    digest = hashlib.sha1(title.encode())
    for values in (*xs, *ys):
        digest.update(values.tobytes())
    clip = f"cryolab-clip-{digest.hexdigest()[:12]}"  # unique per plot within a page
    out.append(
        f'<clipPath id="{clip}"><rect x="{frame.left}" y="{frame.top}" '
        f'width="{width - frame.left - frame.right}" '
        f'height="{height - frame.top - frame.bottom}"/></clipPath><g clip-path="url(#{clip})">'
    )
    for index, (x, y, item) in enumerate(zip(xs, ys, series, strict=True)):
        _series(frame, x, y, item.kind, COLOURS[index % len(COLOURS)])
    out.append("</g>")
    labelled = [(s.label, COLOURS[i % len(COLOURS)]) for i, s in enumerate(series) if s.label]
    if len(labelled) > 1:
        _legend(frame, labelled)
    out.append("</svg>")
    return "".join(out)


def _axes(
    frame: _Frame,
    x_label: str,
    y_label: str,
    x_format: Callable[[float], str],
    x_integer: bool,
) -> None:
    left, right = frame.left, frame.width - frame.right
    top, bottom = frame.top, frame.height - frame.bottom
    out = frame.parts
    for tick in nice_ticks(*frame.y_range, count=5):
        y = frame.py(tick)
        out.append(
            f'<line x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eceff1"/>'
            f'<line x1="{left - 4}" x2="{left}" y1="{y:.1f}" y2="{y:.1f}" stroke="#455a64"/>'
            f'<text x="{left - 7}" y="{y + 4:.1f}" font-size="11" text-anchor="end" '
            f'fill="#37474f">{escape(_label(tick))}</text>'
        )
    x_ticks = nice_ticks(*frame.x_range, count=6)
    if x_integer:
        x_ticks = [t for t in x_ticks if float(t).is_integer()]
    for tick in x_ticks:
        x = frame.px(tick)
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{bottom}" stroke="#eceff1"/>'
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{bottom}" y2="{bottom + 4}" stroke="#455a64"/>'
            f'<text x="{x:.1f}" y="{bottom + 17}" font-size="11" text-anchor="middle" '
            f'fill="#37474f">{escape(x_format(tick))}</text>'
        )
    out.append(
        f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" '
        'fill="none" stroke="#455a64"/>'
        f'<text x="{(left + right) / 2:.1f}" y="{frame.height - 8}" font-size="12" '
        f'text-anchor="middle" fill="#263238">{escape(x_label)}</text>'
        f'<text transform="translate(15 {(top + bottom) / 2:.1f}) rotate(-90)" font-size="12" '
        f'text-anchor="middle" fill="#263238">{escape(y_label)}</text>'
    )


def _guide(frame: _Frame, guide: Guide) -> None:
    if not math.isfinite(guide.value):
        return
    if guide.axis == "y":
        if not frame.y_range[0] <= guide.value <= frame.y_range[1]:
            return
        y = frame.py(guide.value)
        x2 = frame.width - frame.right
        frame.parts.append(
            f'<line x1="{frame.left}" x2="{x2}" y1="{y:.1f}" y2="{y:.1f}" stroke="#8d6e63" '
            f'stroke-dasharray="5 4"/><text x="{x2 - 4}" y="{y - 4:.1f}" font-size="10.5" '
            f'text-anchor="end" fill="#6d4c41">{escape(guide.label)}</text>'
        )
        return
    if not frame.x_range[0] <= guide.value <= frame.x_range[1]:
        return
    x = frame.px(guide.value)
    frame.parts.append(
        f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{frame.top}" y2="{frame.height - frame.bottom}" '
        f'stroke="#8d6e63" stroke-dasharray="5 4"/><text x="{x + 4:.1f}" '
        f'y="{frame.top + 13}" font-size="10.5" fill="#6d4c41">{escape(guide.label)}</text>'
    )


def _series(
    frame: _Frame, x: NDArray[np.float64], y: NDArray[np.float64], kind: str, colour: str
) -> None:
    keep = np.isfinite(x) & np.isfinite(y)
    points = [(frame.px(a), frame.py(b)) for a, b in zip(x[keep], y[keep], strict=True)]
    if kind == "points":
        frame.parts.extend(
            f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3.2" fill="{colour}" fill-opacity="0.85"/>'
            for px, py in points
        )
        return
    if points:
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
        frame.parts.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2" '
            'stroke-linejoin="round"/>'
        )


def _legend(frame: _Frame, entries: list[tuple[str, str]]) -> None:
    x = frame.width - frame.right - 150
    y = frame.top + 8
    for index, (label, colour) in enumerate(entries):
        row = y + index * 16
        frame.parts.append(
            f'<line x1="{x}" x2="{x + 18}" y1="{row + 4}" y2="{row + 4}" stroke="{colour}" '
            f'stroke-width="2.5"/><text x="{x + 24}" y="{row + 8}" font-size="11" '
            f'fill="#263238">{escape(label)}</text>'
        )
