"""Where JupyterLab finds cryolab's prebuilt lab extension (the run-graph panel).

``make install`` builds it from ``extension/`` into ``cryolab/labextension/``; a wheel carries
it as ``share/jupyter/labextensions/cryolab/``. ``jupyter labextension develop --overwrite .``
links the build folder instead, for development (``npm run watch`` in ``extension/``).
"""

from __future__ import annotations


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The lab extension of this package: its build folder and its name in JupyterLab."""
    return [{"src": "labextension", "dest": "cryolab"}]
