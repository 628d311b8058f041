"""MotionCor2 standard output logs: run parameters and full-frame (global) shifts per frame.

MotionCor2 prints its options (``-InMrc ...``, ``-PixSize 0.73``, ``-kV 300`` ...) once at the
start, then for each movie a block::

    Full-frame alignment shift
    ...... Frame (  1) shift:     2.460      8.510
    ...... Frame (  2) shift:     1.670      5.800

or, in version 1.6 logs, a table::

    Full-frame alignment
      Frame   x Shift   y Shift
        1      0.000      0.000
        2     -0.610     -2.320

The shifts are kept as printed: pixels of the input frames, relative to the reference frame
MotionCor2 chose (the middle frame in the 1.5.0 log, the first frame in the 1.6.4 log). The
logs of versions 1.5.0 and 1.6.4 carry no version line; :attr:`MotionCorLog.version` is then
``None``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from cryolab.em.formats import FormatError
from cryolab.em.formats._text import integer, number, read_lines
from cryolab.em.objects import Acquisition

__all__ = ["MotionCorLog", "read_motioncor_log"]

_PARAMETER = re.compile(r"^-([A-Za-z][A-Za-z0-9]*)(?:\s+(.*?))?\s*$")
_FRAME = re.compile(r"^\.+\s*Frame\s*\(\s*(\S+?)\s*\)\s*shift:\s*(\S+)\s+(\S+)\s*$")
_FRAME_START = re.compile(r"^\.+\s*Frame\s*\(")
_BLOCK = "Full-frame alignment shift"
_TABLE_HEADER = re.compile(r"^Frame\s+x\s*Shift\s+y\s*Shift$", re.IGNORECASE)
_VERSION = re.compile(r"\bMotionCor\s*2?\b[^0-9\n]*?v?(\d+\.\d+(?:\.\d+)*)", re.IGNORECASE)
_CUDA = re.compile(r"^CUDA Version\s+(\S+)", re.IGNORECASE)


@dataclass
class MotionCorLog:
    """What a MotionCor2 log says.

    Attributes
    ----------
    path
        The log file.
    version
        MotionCor2's version if the log names it, else ``None``.
    cuda_version
        The CUDA version the container banner names, if any.
    parameters
        Option name (without ``-``) to its text as printed (``"5  5  0"`` for ``-Patch``;
        ``""`` for an option left empty).
    repeated
        Options printed more than once with different texts: every text, in order
        (``parameters`` holds the first).
    shifts
        One row per frame of each movie: ``movie`` (1-based block number in the log),
        ``frame`` (1-based, as printed), ``shift_x``, ``shift_y`` (pixels).
    """

    path: str
    version: str | None
    cuda_version: str | None
    parameters: dict[str, str]
    shifts: pa.Table
    repeated: dict[str, list[str]] = field(default_factory=dict)

    @property
    def input_file(self) -> str | None:
        """The movie read (``-InMrc``, ``-InTiff`` or ``-InEer``), if any."""
        for key in ("InMrc", "InTiff", "InEer"):
            if self.parameters.get(key):
                return self.parameters[key]
        return None

    @property
    def output_file(self) -> str | None:
        """The corrected sum written (``-OutMrc``), if any."""
        return self.parameters.get("OutMrc") or None

    def acquisition(self) -> Acquisition:
        """The acquisition the options describe (``-kV``, ``-PixSize``, ``-FmDose``, ``-Gain``).

        Spherical aberration and amplitude contrast are not MotionCor2 options: they keep
        :class:`~cryolab.em.objects.Acquisition`'s defaults. ``-FtBin`` is recorded in
        ``extra`` (the corrected sums have ``PixSize * FtBin`` Å/px).
        """
        values: dict[str, float] = {}
        for key in ("kV", "PixSize", "FmDose", "FtBin"):
            text = self.parameters.get(key, "").split()
            if text:
                try:
                    values[key] = float(text[0])
                except ValueError:
                    continue
        extra: dict[str, object] = {"source": "MotionCor2 log", "log": self.path}
        if "FtBin" in values:
            extra["ft_bin"] = values["FtBin"]
        return Acquisition(
            voltage=values.get("kV", 300.0),
            sampling_rate=values.get("PixSize", 1.0),
            dose_per_frame=values.get("FmDose") or None,
            gain=self.parameters.get("Gain") or None,
            defects=self.parameters.get("DefectFile") or self.parameters.get("DefectMap") or None,
            extra=extra,
        )


def read_motioncor_log(path: str | Path) -> MotionCorLog:
    """Read a MotionCor2 standard output log.

    Raises
    ------
    FormatError
        A frame shift line is malformed (the message names the line), or the file has
        neither MotionCor2 options nor frame shifts.
    """
    lines, _ = read_lines(path)
    parameters: dict[str, str] = {}
    repeated: dict[str, list[str]] = {}
    version: str | None = None
    cuda: str | None = None
    movies: list[int] = []
    frames: list[int] = []
    xs: list[float] = []
    ys: list[float] = []
    movie = 0
    in_table = False
    for number_line, raw in enumerate(lines, start=1):
        line = raw.strip()
        if in_table:
            tokens = line.split()
            if len(tokens) == 3 and tokens[0].isdigit():
                movies.append(movie)
                frames.append(int(tokens[0]))
                xs.append(number(tokens[1], path, line=number_line, field="shift_x"))
                ys.append(number(tokens[2], path, line=number_line, field="shift_y"))
                continue
            in_table = False
        if not line:
            continue
        if _TABLE_HEADER.match(line):
            movie += 1
            in_table = True
            continue
        cuda_match = _CUDA.match(line)
        if cuda_match:
            cuda = cuda or cuda_match.group(1)
            continue
        if version is None and "motioncor" in line.lower():
            version_match = _VERSION.search(line)
            if version_match:
                version = version_match.group(1)
        if line.startswith(_BLOCK):
            movie += 1
            continue
        if _FRAME_START.match(line):
            frame_match = _FRAME.match(line)
            if not frame_match:
                raise FormatError(path, f"malformed frame shift line {line!r}", line=number_line)
            movies.append(max(movie, 1))
            frames.append(integer(frame_match.group(1), path, line=number_line, field="frame"))
            xs.append(number(frame_match.group(2), path, line=number_line, field="shift_x"))
            ys.append(number(frame_match.group(3), path, line=number_line, field="shift_y"))
            continue
        parameter_match = _PARAMETER.match(raw.rstrip())
        if parameter_match and raw.startswith("-"):
            key, value = parameter_match.group(1), (parameter_match.group(2) or "").strip()
            if key not in parameters:
                parameters[key] = value
            elif parameters[key] != value or key in repeated:
                repeated.setdefault(key, [parameters[key]]).append(value)
    if not parameters and not frames:
        raise FormatError(path, "not a MotionCor2 log: no options and no frame shifts found")
    shifts = pa.table(
        {
            "movie": pa.array(np.asarray(movies, dtype=np.int64)),
            "frame": pa.array(np.asarray(frames, dtype=np.int64)),
            "shift_x": pa.array(np.asarray(xs, dtype=np.float64)),
            "shift_y": pa.array(np.asarray(ys, dtype=np.float64)),
        }
    )
    return MotionCorLog(
        path=str(path),
        version=version,
        cuda_version=cuda,
        parameters=parameters,
        shifts=shifts,
        repeated=repeated,
    )
