"""Where a run is created from: context merged into the ``origin`` of every new run.

Each run records an ``origin`` JSON object (``{"copy_of": 3}``, ``{"template_key": "r3"}``,
``{"relion": {...}}``). Front ends add what only they know through *launch context
providers*: functions of no argument returning a small JSON object, merged into the origin of
every run the process creates while they are registered. The notebook front end
(:mod:`cryolab.ui.notebook_context`) provides ``{"notebook": {"path": ..., "cell_id": ...}}``.

The engine never imports IPython (the import-linter contracts in ``pyproject.toml``), yet a
run created in a notebook must record it whichever module ``open_project`` came from
(``cryolab.open_project`` or ``cryolab.core.project``). So :func:`current`, the first time it
is called in a process where ``ipykernel`` has been imported (seen in ``sys.modules``, without
importing anything), loads the notebook provider by module name, as ``project.graph()`` loads
its widget. Elsewhere (scripts, run processes, the server) nothing is loaded.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

Provider = Callable[[], Mapping[str, Any]]

KERNEL_PROVIDER = "cryolab.ui.notebook_context"
"""The module whose ``register()`` adds the provider of IPython kernels."""

_providers: dict[str, Provider] = {}
_kernel_checked = False


def register(name: str, provider: Provider) -> None:
    """Add (or replace) the provider called ``name``."""
    _providers[name] = provider


def unregister(name: str) -> None:
    """Remove the provider called ``name`` (nothing happens if there is none)."""
    _providers.pop(name, None)


def registered() -> list[str]:
    """The names of the registered providers, in registration order."""
    return list(_providers)


def current() -> dict[str, Any]:
    """The merged context of every provider, for the origin of a run created now.

    A provider that fails, or returns something that is not JSON data, is logged and left out:
    recording where a run came from never stops the run from being created.
    """
    _load_kernel_provider()
    merged: dict[str, Any] = {}
    for name, provider in list(_providers.items()):
        try:
            context = dict(provider())
            json.dumps(context)
        except Exception as exc:
            log.warning("launch context provider %r failed: %s", name, exc)
            continue
        merged.update(context)
    return merged


def _load_kernel_provider() -> None:
    """Register the notebook provider once, in processes that run an IPython kernel."""
    global _kernel_checked
    if _kernel_checked or "ipykernel" not in sys.modules:
        return
    _kernel_checked = True
    try:
        importlib.import_module(KERNEL_PROVIDER).register()
    except Exception as exc:  # the optional UI layer may be missing or broken here
        log.warning("cannot record the notebook of new runs: %s", exc)
