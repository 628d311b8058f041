"""Report figures: an SVG drawing or a PNG picture with a title and a caption.

Set types make them (:meth:`cryolab.core.sets.Set.report_figures`), reports embed them
(:mod:`cryolab.core.report`): inline in HTML, as files beside the Markdown. PNG pictures are
written here with :mod:`zlib` (8-bit greyscale or RGB), so reports need no imaging library.
"""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

import numpy as np
from numpy.typing import NDArray

MEDIA_TYPES = {"svg": "image/svg+xml", "png": "image/png"}


@dataclass(frozen=True)
class Figure:
    """A figure of a report.

    Parameters
    ----------
    name
        A short file-name stem, unique among the figures of one set (e.g. ``"fsc"``).
    title
        Shown above the figure.
    caption
        One or two sentences on what it shows.
    format
        ``"svg"`` (``data`` is the SVG text, UTF-8) or ``"png"``.
    data
        The file's content.
    """

    name: str
    title: str
    caption: str
    format: str
    data: bytes

    def __post_init__(self) -> None:
        if self.format not in MEDIA_TYPES:
            raise ValueError(f"a figure is svg or png, not {self.format!r}")

    @property
    def media_type(self) -> str:
        """The IANA media type of :attr:`data`."""
        return MEDIA_TYPES[self.format]

    def data_uri(self) -> str:
        """The figure as a ``data:`` URI (for an ``<img>`` in a self-contained page)."""
        return f"data:{self.media_type};base64,{base64.b64encode(self.data).decode('ascii')}"

    def html(self) -> str:
        """An HTML fragment: inline SVG markup, or an ``<img>`` with a data URI."""
        if self.format == "svg":
            return self.data.decode("utf-8")
        return f'<img src="{self.data_uri()}" alt="{escape(self.title)}">'


def png(image: NDArray[Any]) -> bytes:
    """Encode an 8-bit image, ``(height, width)`` greyscale or ``(height, width, 3)`` RGB."""
    pixels = np.ascontiguousarray(image, dtype=np.uint8)
    if pixels.ndim == 2:
        colour_type = 0
    elif pixels.ndim == 3 and pixels.shape[2] == 3:
        colour_type = 2
    else:
        raise ValueError(f"a PNG picture is (h, w) or (h, w, 3), got shape {pixels.shape}")
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()  # filter 0

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


def to_uint8(image: NDArray[Any], low: float = 1.0, high: float = 99.5) -> NDArray[np.uint8]:
    """Scale an image to 0..255 between two percentiles of its finite values."""
    values = np.asarray(image, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.zeros(values.shape, np.uint8)
    lo, hi = np.percentile(finite, [low, high])
    if hi <= lo:
        return np.full(values.shape, 128, np.uint8)
    scaled = (np.nan_to_num(values, nan=lo) - lo) / (hi - lo) * 255
    clipped: NDArray[np.uint8] = np.clip(scaled, 0, 255).astype(np.uint8)
    return clipped


def tile(
    images: Sequence[NDArray[Any]], columns: int, size: int, gap: int = 4
) -> NDArray[np.uint8]:
    """Images (each scaled to 8 bits on its own) in a grid of ``size`` px squares on white.

    Each image is enlarged by pixel repetition (or reduced by striding) to fit ``size``.
    """
    count = len(images)
    rows = max(1, -(-count // columns))
    canvas = np.full(
        (rows * size + (rows + 1) * gap, columns * size + (columns + 1) * gap), 255, np.uint8
    )
    for index, image in enumerate(images):
        scaled = _fit(to_uint8(image), size)
        row, column = divmod(index, columns)
        y = gap + row * (size + gap) + (size - scaled.shape[0]) // 2
        x = gap + column * (size + gap) + (size - scaled.shape[1]) // 2
        canvas[y : y + scaled.shape[0], x : x + scaled.shape[1]] = scaled
    return canvas


def _fit(image: NDArray[np.uint8], size: int) -> NDArray[np.uint8]:
    longest = max(image.shape)
    if longest <= size:
        factor = max(1, size // longest)
        return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)
    step = -(-longest // size)
    return image[::step, ::step]
