"""Which project folders the server extension may serve, and their stable ids.

A folder is *registered* by any of

* the Jupyter configuration ``c.CryolabServer.projects = ["/data/cryo", ...]`` (or
  ``--CryolabServer.projects=...`` on the ``jupyter lab`` command line), read at start;
* the ``projects`` list of the cryolab configuration file (``~/.config/cryolab/config.toml``
  or ``$CRYOLAB_CONFIG``) and the ``CRYOLAB_PROJECTS`` environment variable (folders separated
  by ``os.pathsep``), read again on every request (see :mod:`cryolab.core.config`).

* having been opened lately by this user (:mod:`cryolab.core.recent`) *and* lying inside the
  Jupyter server's root folder, whose files the server exposes anyway: a project made in a
  notebook is served with no configuration, and nothing outside the root is reached that way.

A registered folder is served if it is a project itself (it holds ``project.sqlite``);
otherwise its direct subfolders that are projects are served, provided they resolve inside the
registered folder (a symlink that leads out of it is ignored). Nothing else is ever opened.

The id of a project is the first 12 hexadecimal digits of the SHA-256 of its resolved path: it
does not depend on the order of registration and stays the same across server restarts.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path

from traitlets import List, Unicode
from traitlets.config import Configurable

from cryolab.core import config, database, recent
from cryolab.core.details import inside
from cryolab.core.errors import CryolabError
from cryolab.core.project import project_id

log = logging.getLogger(__name__)

PROJECT_ID = re.compile(r"[0-9a-f]{12}")


def _is_project(folder: Path) -> bool:
    return (folder / database.DB_NAME).is_file()


class CryolabServer(Configurable):
    """The Jupyter configuration of the cryolab server extension."""

    projects = List(
        Unicode(),
        default_value=[],
        help="Folders the cryolab REST API may serve: project folders, or folders whose "
        "direct subfolders are projects. Added to the 'projects' of the cryolab "
        "configuration file and CRYOLAB_PROJECTS.",
    ).tag(config=True)


class ProjectRegistry:
    """The registered folders and the projects found in them.

    Parameters
    ----------
    folders
        Folders registered through the Jupyter configuration; the cryolab configuration
        (file and environment) is added to them each time the registry is read.
    root
        The Jupyter server's root folder: recently opened projects inside it are served too.
    """

    def __init__(self, folders: Iterable[str] = (), root: str | Path | None = None) -> None:
        self.folders = list(folders)
        self.root = Path(root).expanduser().resolve() if root is not None else None

    def registered(self) -> list[Path]:
        """Every registered folder, resolved, without duplicates (missing ones skipped)."""
        extra = config.settings()["projects"]
        if not isinstance(extra, list) or not all(isinstance(f, str) for f in extra):
            raise CryolabError(
                f"configuration 'projects' must be a list of folder names, got {extra!r}"
            )
        found: list[Path] = []
        for name in [*self.folders, *extra]:
            folder = Path(name).expanduser().resolve()
            if folder not in found and folder.is_dir():
                found.append(folder)
        return found

    def projects(self) -> dict[str, Path]:
        """The served projects: id to resolved project folder, in registration order."""
        served: dict[str, Path] = {}
        for folder in self.registered():
            if _is_project(folder):
                candidates = [folder]
            else:
                try:
                    children = sorted(folder.iterdir())
                except OSError as exc:
                    log.warning("cannot list the registered folder %s: %s", folder, exc)
                    continue
                candidates = [
                    child.resolve()
                    for child in children
                    if child.is_dir() and _is_project(child) and inside(child, folder)
                ]
            for path in candidates:
                served.setdefault(project_id(path), path)
        if self.root is not None:
            for folder in recent.recent():
                if folder.is_dir() and _is_project(folder) and inside(folder, self.root):
                    served.setdefault(project_id(folder.resolve()), folder.resolve())
        return served

    def find(self, identifier: str) -> Path | None:
        """The folder of the served project ``identifier``, or ``None``.

        Anything that is not a well-formed id (a path, ``..``) is never looked up.
        """
        if not PROJECT_ID.fullmatch(identifier):
            return None
        return self.projects().get(identifier)
