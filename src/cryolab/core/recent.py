"""The projects this user opened lately, so front ends can offer them without configuration.

:func:`cryolab.core.project.open_project` records each project it opens (most recent first, at
most :data:`KEEP`) in ``recent-projects.json`` under ``$CRYOLAB_DATA`` or
``$XDG_DATA_HOME/cryolab`` (``~/.local/share/cryolab``). The Jupyter server extension serves
the recorded projects that lie inside its own root folder (files it exposes anyway), so a
project made in a notebook shows in the run-graph panel and its galleries load thumbnails
from the server. Recording never fails an open: a problem with the file is logged.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

KEEP = 50
FILE_NAME = "recent-projects.json"


def data_folder() -> Path:
    """Where cryolab keeps per-user data (read at call time)."""
    explicit = os.environ.get("CRYOLAB_DATA")
    if explicit:
        return Path(explicit).expanduser()
    base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return base / "cryolab"


def recent() -> list[Path]:
    """The recorded project folders, most recent first (an unreadable record reads as none)."""
    path = data_folder() / FILE_NAME
    try:
        names = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        log.warning("the record of recent projects %s cannot be read: %s", path, exc)
        return []
    if not isinstance(names, list):
        log.warning("the record of recent projects %s is not a list; ignored", path)
        return []
    return [Path(name) for name in names if isinstance(name, str)]


def remember(folder: Path) -> None:
    """Put ``folder`` (resolved) first in the record, keeping at most :data:`KEEP` entries."""
    resolved = folder.resolve()
    names = [str(resolved)] + [str(p) for p in recent() if p != resolved]
    target = data_folder() / FILE_NAME
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{FILE_NAME}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(names[:KEEP], indent=1), encoding="utf-8")
        os.replace(temporary, target)
    except OSError as exc:
        log.warning("could not record %s among the recent projects: %s", resolved, exc)
