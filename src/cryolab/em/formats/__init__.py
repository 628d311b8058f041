"""Readers and writers of other programs' small metadata files, one module per format.

==============  ======================================================  ==========================
module          reads                                                   writes
==============  ======================================================  ==========================
``ctffind``     CTFFIND ``_ctf.txt`` (SetOfCTFs), ``_avrot.txt``        ``_ctf.txt``
``motioncor``   MotionCor2 stdout logs (frame shifts, parameters)       (none: a log)
``eman``        EMAN ``.box`` and EMAN2 ``info/*.json`` boxes           both
``imod``        IMOD ``.xf`` (Set) and ``.tlt``/``.rawtlt``/``.xtilt``  both
``serialem``    SerialEM ``.mdoc`` (globals + one row per section)      ``.mdoc``
``epu``         EPU micrograph XML (Acquisition)                        (none)
==============  ======================================================  ==========================

cryoSPARC ``.cs`` files are in :mod:`cryolab.em.cryosparc`. Every reader raises
:class:`FormatError` for a file it cannot read, naming the file and, where they apply, the line,
field and row at fault. ``docs/formats.md`` maps each format's fields to cryolab's columns.

The readers are importable from here (``from cryolab.em.formats import read_mdoc``); the format
modules are imported on first use.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Any

from cryolab.core.errors import CryolabError


class FormatError(CryolabError, ValueError):
    """A file of another program cannot be read or written as asked.

    Parameters
    ----------
    path
        The file at fault (``None`` for data not from a file).
    message
        What is wrong.
    field
        The field (column, key) at fault, if one is.
    row
        The 0-based row (record, section) at fault, if one is.
    line
        The 1-based line of a text file at fault, if one is.
    """

    def __init__(
        self,
        path: str | Path | None,
        message: str,
        *,
        field: str | None = None,
        row: int | None = None,
        line: int | None = None,
    ) -> None:
        self.path = None if path is None else str(path)
        self.field = field
        self.row = row
        self.line = line
        where = [self.path if self.path is not None else "<data>"]
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field {field!r}")
        if row is not None:
            where.append(f"row {row} (0-based)")
        self.message = message
        super().__init__(f"{', '.join(where)}: {message}")


_LAZY = {
    "read_ctffind": "cryolab.em.formats.ctffind",
    "write_ctffind": "cryolab.em.formats.ctffind",
    "read_avrot": "cryolab.em.formats.ctffind",
    "read_motioncor_log": "cryolab.em.formats.motioncor",
    "read_box": "cryolab.em.formats.eman",
    "write_box": "cryolab.em.formats.eman",
    "read_eman_json": "cryolab.em.formats.eman",
    "write_eman_json": "cryolab.em.formats.eman",
    "read_xf": "cryolab.em.formats.imod",
    "write_xf": "cryolab.em.formats.imod",
    "read_tlt": "cryolab.em.formats.imod",
    "write_tlt": "cryolab.em.formats.imod",
    "read_mdoc": "cryolab.em.formats.serialem",
    "write_mdoc": "cryolab.em.formats.serialem",
    "read_epu_xml": "cryolab.em.formats.epu",
}

__all__ = ["FormatError", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cryolab.em.formats' has no attribute {name!r}")
