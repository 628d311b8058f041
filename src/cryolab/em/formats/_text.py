"""Shared helpers of the text format readers and writers (private)."""

from __future__ import annotations

import math
from pathlib import Path

from cryolab.em.formats import FormatError


def read_lines(path: str | Path) -> tuple[list[str], str]:
    """The lines of a text file (no line ends) and its line end (``"\\r\\n"`` or ``"\\n"``).

    UTF-8 is tried first, then Latin-1 (files written on Windows); CR, LF and CRLF line ends
    are all accepted. Only CR, LF and CRLF end a line (not the other characters
    :meth:`str.splitlines` splits at).
    """
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    newline = "\r\n" if b"\r\n" in raw else "\n"
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines, newline


def number(text: str, path: str | Path, *, line: int, field: str | None = None) -> float:
    """``text`` as a float, or a :class:`FormatError` naming the line and field."""
    try:
        return float(text)
    except ValueError:
        raise FormatError(path, f"{text!r} is not a number", line=line, field=field) from None


def integer(text: str, path: str | Path, *, line: int, field: str | None = None) -> int:
    """``text`` as an integer (``"3"`` or ``"3.000000"``), or a :class:`FormatError`."""
    value = number(text, path, line=line, field=field)
    if not math.isfinite(value) or value != int(value):
        raise FormatError(path, f"{text!r} is not a whole number", line=line, field=field)
    return int(value)


def short(value: float) -> str:
    """The shortest text that reads back as ``value`` (``"300"`` for 300.0)."""
    value = float(value)
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


def fixed(value: float, decimals: int) -> str:
    """``value`` with ``decimals`` decimals when that reads back exactly, else :func:`short`."""
    text = f"{float(value):.{decimals}f}"
    return text if float(text) == float(value) else short(value)
