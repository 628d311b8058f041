"""cryolab: a Jupyter-native workflow engine for cryo-EM image processing.

Start with :func:`open_project`::

    import cryolab as cl
    project = cl.open_project("~/cryolab/betagal")
    run = project.run("sets.subset", source="1.items", where="score > 0.5")

In a notebook, ``cl.form("sets.subset", project)`` shows the protocol's form
(:mod:`cryolab.ui.form`; imported on first use, so ``import cryolab`` needs no ipywidgets).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cryolab._labextension import _jupyter_labextension_paths as _jupyter_labextension_paths
from cryolab._version import __version__

if TYPE_CHECKING:
    from cryolab.core.project import Project, open_project
    from cryolab.core.reproduce import reproduce as reproduce
    from cryolab.core.sets import Set
    from cryolab.ui.form import form as form

__all__ = ["Project", "Set", "__version__", "open_project"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so `python -m cryolab.core.runner` starts without numpy/pyarrow.
    if name in ("open_project", "Project"):
        from cryolab.core import project

        return getattr(project, name)
    if name == "Set":
        from cryolab.core.sets import Set

        return Set
    if name == "form":
        from cryolab.ui.form import form

        return form
    if name == "reproduce":
        from cryolab.core.reproduce import reproduce

        return reproduce
    raise AttributeError(f"module 'cryolab' has no attribute {name!r}")
