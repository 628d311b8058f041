"""The Jupyter server extension: the authenticated REST API under ``/cryolab/api/`` that the
JupyterLab extension reads.

Enable it with ``jupyter server extension enable cryolab.server`` and register the project
folders it may serve (see :mod:`cryolab.server.registry`); the endpoints are described in
:mod:`cryolab.server.handlers` and in ``docs/architecture.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cryolab.server.handlers import setup_handlers
from cryolab.server.registry import CryolabServer, ProjectRegistry

if TYPE_CHECKING:
    from jupyter_server.serverapp import ServerApp


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The extension points Jupyter finds in this package (this module)."""
    return [{"module": "cryolab.server"}]


def _load_jupyter_server_extension(server_app: ServerApp) -> None:
    """Add the cryolab API to a starting Jupyter server.

    Parameters
    ----------
    server_app
        The starting server; its configuration may hold ``c.CryolabServer.projects``.
    """
    options = CryolabServer(parent=server_app)
    registry = ProjectRegistry(options.projects, root=server_app.root_dir)
    setup_handlers(server_app.web_app, registry)
    server_app.log.info(
        "cryolab API at %scryolab/api/ (projects configured in Jupyter: %s)",
        server_app.base_url,
        options.projects or "none; see CRYOLAB_PROJECTS",
    )
