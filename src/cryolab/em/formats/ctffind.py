"""CTFFIND 4/5 output: the ``_ctf.txt`` fit results and the ``_avrot.txt`` rotational averages.

``_ctf.txt`` has ``#`` header lines (program version, input file, pixel size, acceleration
voltage, Cs, amplitude contrast, search settings, column descriptions) and one line of numbers
per micrograph (per image of the input stack)::

    #1 micrograph number   #2 defocus 1 (Å)        #3 defocus 2 (Å)
    #4 astigmatism azimuth (deg)                   #5 additional phase shift (rad)
    #6 cross correlation   #7 spacing up to which CTF rings were fit (Å)

CTFFIND 5 adds columns (tilt axis angle, tilt angle, sample thickness); columns past the 7th
are kept as ``ctffind.<description>`` columns.

``_avrot.txt`` has the same kind of header and six lines per micrograph: spatial frequency,
rotational average without and with astigmatism, CTF fit, cross-correlation between spectrum
and fit, and twice the expected noise cross-correlation.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from cryolab.core.sets import Set
from cryolab.em.formats import FormatError
from cryolab.em.formats._text import number, read_lines
from cryolab.em.objects import Acquisition, SetOfCTFs

__all__ = ["AVROT_CURVES", "read_avrot", "read_ctffind", "write_ctffind"]

_COLUMNS = (  # (cryolab column, radians in the file), for columns #2 to #7
    ("ctf.defocus_u", False),
    ("ctf.defocus_v", False),
    ("ctf.defocus_angle", False),
    ("ctf.phase_shift", True),
    ("ctf.score", False),
    ("ctf.resolution", False),
)
_STANDARD_DESCRIPTIONS = (
    "micrograph number",
    "defocus 1 [Angstroms]",
    "defocus 2",
    "azimuth of astigmatism",
    "additional phase shift [radians]",
    "cross correlation",
    "spacing (in Angstroms) up to which CTF rings were fit successfully",
)
_ACQUISITION_KEYS = {  # header key (lower case) -> Acquisition attribute
    "pixel size": "sampling_rate",
    "acceleration voltage": "voltage",
    "spherical aberration": "spherical_aberration",
    "amplitude contrast": "amplitude_contrast",
}
AVROT_CURVES = (
    "frequency",
    "average_no_astigmatism",
    "average",
    "ctf_fit",
    "cross_correlation",
    "noise_2sigma",
)
"""Names of the six curves of each micrograph in an ``_avrot.txt`` file, in file order."""

_VERSION = re.compile(r"Output from CTFFind version\s+(\S+?),?\s+run on\s+(.*)$", re.IGNORECASE)
_COLUMN_TEXT = re.compile(r"#(\d+)\s*-\s*([^;#]+)")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_VALUE = re.compile(rf"^({_NUMBER})(?:\s+(.*))?$")
_LOOSE = re.compile(rf"^(.*?)\s+({_NUMBER})(?:\s+(\S+))?$")


def _parse_header(lines: list[str]) -> dict[str, Any]:
    """Version, run date, ``key: value`` settings and column descriptions of ``#`` lines."""
    info: dict[str, Any] = {"header": [], "settings": {}, "units": {}, "columns": {}}
    for raw in lines:
        text = raw.lstrip("#").strip()
        info["header"].append(raw)
        match = _VERSION.search(text)
        if match:
            info["version"], info["run_on"] = match.group(1), match.group(2).strip()
            continue
        if "#1" in text and " - " in text:  # "Columns: #1 - ...;" or "6 lines per micrograph:"
            for number_text, description in _COLUMN_TEXT.findall(text):
                info["columns"][int(number_text)] = description.strip()
            continue
        for part in text.split(";"):
            part = part.strip()
            if not part:
                continue
            if ":" in part:
                key, _, rest = part.partition(":")
                value_match = _VALUE.match(rest.strip())
                if value_match:
                    value: Any = float(value_match.group(1))
                    unit = (value_match.group(2) or "").strip()
                else:
                    value, unit = rest.strip(), ""
            else:  # CTFFIND writes "max. def. 50000.0 um" without a colon
                loose = _LOOSE.match(part)
                if not loose:
                    continue
                key, value, unit = loose.group(1), float(loose.group(2)), loose.group(3) or ""
            key = key.strip()
            info["settings"][key] = value
            if unit:
                info["units"][key] = unit
    return info


def _slug(text: str) -> str:
    words = re.findall(r"[a-z0-9]+", text.lower().split("(")[0].split("[")[0])
    return "_".join(words) or "column"


def read_ctffind(path: str | Path) -> SetOfCTFs:
    """Read a CTFFIND ``_ctf.txt`` output file into a set of CTFs (one row per micrograph).

    Parameters
    ----------
    path
        The ``_ctf.txt`` file (the text output next to CTFFIND's diagnostic image).

    Returns
    -------
    SetOfCTFs
        Columns ``ctffind.micrograph`` (the 1-based number of the image in the input stack),
        ``ctf.defocus_u``, ``ctf.defocus_v`` (Å), ``ctf.defocus_angle`` (deg),
        ``ctf.phase_shift`` (deg; radians in the file), ``ctf.score`` (cross correlation),
        ``ctf.resolution`` (Å) and one ``ctffind.<description>`` column per further column.
        Set properties: ``sampling_rate`` and ``acquisition`` from the header, and
        ``ctffind`` (version, run date, input file, all header settings with their units, the
        header lines). No ``micrograph_uid``: CTFFIND does not know it; join on the input file.

    Raises
    ------
    FormatError
        A data line has a wrong number of values or a value that is not a number (the message
        names the line and the column).
    """
    lines, _ = read_lines(path)
    header = [line for line in lines if line.lstrip().startswith("#")]
    info = _parse_header(header)
    rows: list[list[float]] = []
    width: int | None = None
    for number_line, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        tokens = text.split()
        if width is None:
            width = len(tokens)
            if width < 7:
                raise FormatError(
                    path,
                    f"a CTFFIND result line has at least 7 values; this one has {width}",
                    line=number_line,
                )
        elif len(tokens) != width:
            raise FormatError(
                path,
                f"this line has {len(tokens)} values; the lines before have {width}",
                line=number_line,
            )
        descriptions = info["columns"]
        rows.append(
            [
                number(tok, path, line=number_line, field=descriptions.get(i + 1, f"#{i + 1}"))
                for i, tok in enumerate(tokens)
            ]
        )
    data = np.asarray(rows, dtype=np.float64).reshape(len(rows), width or 7)
    first = data[:, 0]
    whole = bool(np.all(np.isfinite(first) & (first == np.round(first))))
    columns: dict[str, Any] = {"ctffind.micrograph": first.astype(np.int64) if whole else first}
    for i, (column, radians) in enumerate(_COLUMNS, start=1):
        columns[column] = np.rad2deg(data[:, i]) if radians else data[:, i]
    for i in range(7, data.shape[1]):
        description = info["columns"].get(i + 1, f"column {i + 1}")
        name = f"ctffind.{_slug(description)}"
        while name in columns:
            name += "_"
        columns[name] = data[:, i]
    properties = _properties(path, info)
    return SetOfCTFs(
        {k: pa.array(v) for k, v in columns.items()},
        properties=properties,
    )


def _properties(path: str | Path, info: dict[str, Any]) -> dict[str, Any]:
    settings: dict[str, Any] = info["settings"]
    acquisition: dict[str, Any] = {}
    for key, value in settings.items():
        attribute = _ACQUISITION_KEYS.get(key.lower())
        if attribute and isinstance(value, float):
            acquisition[attribute] = value
    properties: dict[str, Any] = {}
    if "sampling_rate" in acquisition:
        properties["sampling_rate"] = acquisition["sampling_rate"]
    if len(acquisition) == len(_ACQUISITION_KEYS):
        properties["acquisition"] = Acquisition(**acquisition).to_dict()
    properties["ctffind"] = {
        "file": str(path),
        "version": info.get("version"),
        "run_on": info.get("run_on"),
        "settings": settings,
        "units": info["units"],
        "columns": {str(k): v for k, v in info["columns"].items()},
        "header": info["header"],
    }
    return properties


def write_ctffind(ctfs: Set, path: str | Path) -> Path:
    """Write a set of CTFs as a CTFFIND ``_ctf.txt`` file (values with 6 decimals, as CTFFIND).

    The header lines of a set read by :func:`read_ctffind` are written back (the column line
    is made anew); otherwise a header is made from the set's ``acquisition``. Columns
    ``ctffind.*`` past the standard ones are written after them. Rows are numbered from
    ``ctffind.micrograph``, or 1, 2, ... when the set has no such column.

    Raises
    ------
    FormatError
        A standard column is missing or holds a missing value.
    """
    path = Path(path)
    table = ctfs.to_arrow()
    rows = table.num_rows
    missing = [c for c, _ in _COLUMNS if c not in table.column_names]
    if missing:
        raise FormatError(path, f"the set has no column(s) {missing}", field=missing[0])
    values: list[NDArray[Any]] = []
    if "ctffind.micrograph" in table.column_names:
        values.append(_numbers(path, table, "ctffind.micrograph"))
    else:
        values.append(np.arange(1, rows + 1, dtype=np.float64))
    for column, radians in _COLUMNS:
        data = _numbers(path, table, column)
        values.append(np.deg2rad(data) if radians else data)
    extra = [
        c for c in table.column_names if c.startswith("ctffind.") and c != "ctffind.micrograph"
    ]
    values.extend(_numbers(path, table, c) for c in extra)
    info: dict[str, Any] = ctfs.properties.get("ctffind") or {}
    descriptions = list(_STANDARD_DESCRIPTIONS)
    stored = info.get("columns") or {}
    for i, column in enumerate(extra, start=8):
        descriptions.append(str(stored.get(str(i), column[len("ctffind.") :])))
    column_line = "# Columns: " + "; ".join(
        f"#{i} - {text}" for i, text in enumerate(descriptions, start=1)
    )
    header = [
        line for line in info.get("header") or [] if not line.lstrip("# ").startswith("Columns:")
    ]
    if not header:
        header = _made_header(ctfs, rows)
    lines = [*header, column_line]
    matrix = np.stack(values, axis=1) if values else np.zeros((0, 7))
    for row in matrix:
        lines.append(" ".join(f"{v:.6f}" for v in row))
    path.write_text("\n".join(lines) + "\n")
    return path


def _made_header(ctfs: Set, rows: int) -> list[str]:
    acquisition = ctfs.properties.get("acquisition") or {}
    lines = [f"# Output from cryolab (CTFFIND format); Number of micrographs: {rows}"]
    if acquisition:
        lines.append(
            f"# Pixel size: {acquisition.get('sampling_rate', 1.0):.3f} Angstroms ; "
            f"acceleration voltage: {acquisition.get('voltage', 300.0):.1f} keV ; "
            f"spherical aberration: {acquisition.get('spherical_aberration', 2.7):.2f} mm ; "
            f"amplitude contrast: {acquisition.get('amplitude_contrast', 0.1):.2f}"
        )
    return lines


def _numbers(path: Path, table: pa.Table, column: str) -> NDArray[Any]:
    chunked = table.column(column)
    if chunked.null_count:
        first = int(np.flatnonzero(chunked.is_null().to_numpy(zero_copy_only=False))[0])
        raise FormatError(
            path, "a CTFFIND file cannot hold a missing value", field=column, row=first
        )
    return np.asarray(chunked.to_numpy(), dtype=np.float64)


def read_avrot(path: str | Path) -> list[dict[str, NDArray[np.float64]]]:
    """Read a CTFFIND ``_avrot.txt`` file: the rotational averages of each micrograph.

    Returns
    -------
    list of dict
        One dict per micrograph, in file order, with the six curves of :data:`AVROT_CURVES`
        as float arrays of equal length. ``frequency`` is in the unit the header names
        (1/Å for CTFFIND 4.1 and later).

    Raises
    ------
    FormatError
        The number of data lines is not a multiple of 6, the six lines of a micrograph differ
        in length, or a value is not a number.
    """
    lines, _ = read_lines(path)
    data: list[tuple[int, list[str]]] = [
        (i, line.split())
        for i, line in enumerate(lines, start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if len(data) % len(AVROT_CURVES):
        raise FormatError(
            path,
            f"has {len(data)} data lines; an _avrot.txt file has 6 per micrograph",
            line=data[-1][0] if data else None,
        )
    out: list[dict[str, NDArray[np.float64]]] = []
    for start in range(0, len(data), len(AVROT_CURVES)):
        group = data[start : start + len(AVROT_CURVES)]
        length = len(group[0][1])
        curves: dict[str, NDArray[np.float64]] = {}
        for name, (line_number, tokens) in zip(AVROT_CURVES, group, strict=True):
            if len(tokens) != length:
                raise FormatError(
                    path,
                    f"this line has {len(tokens)} values; the micrograph's first line has {length}",
                    line=line_number,
                    field=name,
                    row=len(out),
                )
            curves[name] = np.asarray(
                [number(tok, path, line=line_number, field=name) for tok in tokens],
                dtype=np.float64,
            )
        out.append(curves)
    return out
