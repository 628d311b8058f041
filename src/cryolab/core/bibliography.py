"""Citations for reports: BibTeX entries read, numbered in order of first citation, formatted.

Protocols cite with ``[key]`` markers in their methods text (several keys: ``[a, b]``) and list
the BibTeX entries in ``citations``. :class:`Bibliography` turns markers into numbers
(``[1]``, ``[2, 3]``) and lists the cited entries as short references.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

ACCENTS = {'"': "\u0308", "'": "\u0301", "`": "\u0300", "^": "\u0302", "~": "\u0303"}
ACCENT = re.compile(r"\\([\"'`^~])\{?([A-Za-z])\}?")
MARKER = re.compile(r"\[([A-Za-z][\w:.\-]*(?:\s*,\s*[A-Za-z][\w:.\-]*)*)\]")
_LATEX = (
    ("{\\AA}", "Å"),
    ("\\AA", "Å"),
    ("\\&", "&"),
    ("---", "\u2014"),  # em dash
    ("--", "\u2013"),  # en dash
    ("~", "\u00a0"),
)


@dataclass(frozen=True)
class Entry:
    """One BibTeX entry: its type (``article``), key and fields, braces and LaTeX removed."""

    kind: str
    key: str
    fields: dict[str, str]
    source: str

    def text(self) -> str:
        """A one-line reference: authors (year). Title. Journal volume, pages. doi."""
        fields = self.fields
        authors = _authors(fields.get("author", ""))
        year = fields.get("year", "n.d.")
        parts = [f"{authors} ({year}).", _sentence(fields.get("title", self.key))]
        venue = fields.get("journal") or fields.get("booktitle") or fields.get("publisher")
        if venue:
            detail = venue
            if fields.get("volume"):
                detail += f" {fields['volume']}"
            if fields.get("pages"):
                detail += f", {fields['pages']}"
            parts.append(detail + ".")
        if fields.get("note"):
            parts.append(_sentence(fields["note"]))
        if fields.get("doi"):
            parts.append(f"doi:{fields['doi']}")
        elif fields.get("url"):
            parts.append(fields["url"])
        return " ".join(parts)

    @property
    def link(self) -> str | None:
        """A URL for the entry (its DOI or url field), if any."""
        if self.fields.get("doi"):
            return f"https://doi.org/{self.fields['doi']}"
        return self.fields.get("url") or None


def parse(source: str) -> Entry:
    """Read one BibTeX entry (``@kind{key, name = {value}, ...}``).

    Raises
    ------
    ValueError
        If the text is not one well-formed entry.
    """
    match = re.match(r"\s*@(\w+)\s*\{\s*([^,\s]+)\s*,", source)
    if not match or source.count("{") != source.count("}"):
        raise ValueError(f"not a BibTeX entry: {source[:60]!r}")
    kind, key = match.group(1).lower(), match.group(2)
    body = source[match.end() : source.rstrip().rfind("}")]
    fields: dict[str, str] = {}
    position = 0
    while True:
        found = re.compile(r"\s*(\w+)\s*=\s*").match(body, position)
        if not found:
            break
        name, position = found.group(1).lower(), found.end()
        value, position = _value(body, position)
        fields[name] = _clean(value)
        comma = re.compile(r"\s*,?").match(body, position)
        position = comma.end() if comma else position
    return Entry(kind, key, fields, source.strip())


def _value(body: str, start: int) -> tuple[str, int]:
    """A field value at ``start``: ``{...}`` (nested braces), ``"..."`` or a bare word."""
    if start < len(body) and body[start] == "{":
        depth = 0
        for index in range(start, len(body)):
            depth += {"{": 1, "}": -1}.get(body[index], 0)
            if depth == 0:
                return body[start + 1 : index], index + 1
        raise ValueError(f"unbalanced braces in BibTeX field: {body[start : start + 40]!r}")
    if start < len(body) and body[start] == '"':
        end = body.index('"', start + 1)
        return body[start + 1 : end], end + 1
    word = re.compile(r"[^,\s}]+").match(body, start)
    if not word:
        return "", start
    return word.group(0), word.end()


def _clean(value: str) -> str:
    value = ACCENT.sub(lambda m: m.group(2) + ACCENTS[m.group(1)], value)
    value = unicodedata.normalize("NFC", value)
    for latex, text in _LATEX:
        value = value.replace(latex, text)
    return " ".join(value.replace("{", "").replace("}", "").split())


def _sentence(text: str) -> str:
    return text if text.endswith((".", "?", "!")) else text + "."


def _authors(field: str) -> str:
    """``Last, F. M., Last, F. & Last, F.``; more than six: the first three et al."""
    names = [n.strip() for n in field.split(" and ") if n.strip()]
    shown = []
    for name in names:
        if name == "others":
            continue
        if "," in name:
            last, first = (part.strip() for part in name.split(",", 1))
        elif " " in name and not name.startswith("cryolab"):
            first, last = name.rsplit(" ", 1)
        else:
            last, first = name, ""
        initials = " ".join(f"{w[0]}." for w in re.split(r"[\s.]+", first) if w and w[0].isalpha())
        shown.append(f"{last}, {initials}" if initials else last)
    more = "others" in names or len(shown) > 6
    if len(shown) > 6:
        shown = shown[:3]
    if more:
        return ", ".join(shown) + " et al."
    if len(shown) > 1:
        return ", ".join(shown[:-1]) + " & " + shown[-1]
    return shown[0] if shown else "Anonymous"


class Bibliography:
    """Numbered citations: keys get numbers in the order they are first cited."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self.order: list[str] = []

    def add(self, bibtex: str) -> str:
        """Make an entry known (the first text of a key wins); returns its key."""
        entry = parse(bibtex)
        self.entries.setdefault(entry.key, entry)
        return entry.key

    def number(self, key: str) -> int:
        """The number of ``key``, given on its first citation."""
        if key not in self.entries:
            raise KeyError(f"no bibliography entry {key!r}")
        if key not in self.order:
            self.order.append(key)
        return self.order.index(key) + 1

    def cite(self, keys: list[str]) -> str:
        """``[n, m]`` for ``keys`` (numbers sorted)."""
        return "[" + ", ".join(str(n) for n in sorted({self.number(k) for k in keys})) + "]"

    def resolve(self, text: str) -> tuple[str, list[str]]:
        """``text`` with its ``[key]`` markers numbered; also returns the keys it cites.

        Markers naming no known entry are left as they are.
        """
        cited: list[str] = []

        def replace(match: re.Match[str]) -> str:
            keys = [k.strip() for k in match.group(1).split(",")]
            if not all(k in self.entries for k in keys):
                return match.group(0)
            cited.extend(k for k in keys if k not in cited)
            return self.cite(keys)

        return MARKER.sub(replace, text), cited

    def cited(self) -> list[Entry]:
        """The cited entries in the order of their numbers."""
        return [self.entries[key] for key in self.order]
