"""The notebook a run is created from, recorded in the run's ``origin["notebook"]``.

Registered as a launch context provider (:mod:`cryolab.core.launch_context`) the first time a
run is created inside an IPython kernel. What the kernel can know:

- **The notebook's path.** ``$CRYOLAB_NOTEBOOK`` when set (for clients that start kernels
  without a Jupyter session: ``CRYOLAB_NOTEBOOK=out.ipynb papermill in.ipynb out.ipynb``); else
  the notebook papermill writes or reads when it is told to pass its paths
  (``papermill --inject-paths`` defines ``PAPERMILL_OUTPUT_PATH`` and ``PAPERMILL_INPUT_PATH``);
  else ``__session__`` in the user namespace, which ipykernel sets from ``$JPY_SESSION_NAME``,
  the notebook path jupyter_server gives the kernels of its sessions.
  ``path`` is relative to the root of the Jupyter server that started the kernel (its parent
  process, found by its ``jpserver-PID.json`` runtime file) when there is one, else the path as
  given; ``abs_path`` is the absolute path when the file exists.
- **The cell.** JupyterLab and Notebook 7 send the cell's id in the metadata of the
  ``execute_request`` (``cellId``). Other clients (nbclient, hence papermill) send none; the
  cell is then found in the notebook file by its source, when exactly one code cell has the
  source being executed (``cell_id`` and ``cell_index``). The index of a cell known by its id
  is read from the notebook as last saved (absent for a cell not saved yet).
- **The execution count** of the executing request.

A run created from a widget callback (a form's button) records the notebook without a cell.
Outside a notebook (no path and no cell id) nothing is recorded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from IPython.core.getipython import get_ipython

from cryolab.core import launch_context

NAME = "notebook"
ENVIRONMENT = "CRYOLAB_NOTEBOOK"


def register() -> None:
    """Record the notebook in the origin of the runs this kernel creates."""
    launch_context.register(NAME, notebook_origin)


def notebook_origin() -> dict[str, Any]:
    """``{"notebook": {...}}`` for a run created now, or ``{}`` outside a notebook kernel."""
    shell: Any = get_ipython()  # type: ignore[no-untyped-call]
    kernel = getattr(shell, "kernel", None)
    if shell is None or kernel is None:
        return {}
    entry: dict[str, Any] = {}
    given = given_path(shell.user_ns)
    if given:
        entry.update(notebook_paths(given))
    parent = kernel.get_parent() or {}
    if parent.get("header", {}).get("msg_type") == "execute_request":
        entry["execution_count"] = shell.execution_count
        cell_id = (parent.get("metadata") or {}).get("cellId")
        if cell_id:
            entry["cell_id"] = str(cell_id)
        if entry.get("abs_path"):
            code = (parent.get("content") or {}).get("code", "")
            entry.update(find_cell(Path(entry["abs_path"]), code, entry.get("cell_id")))
    if "path" not in entry and "cell_id" not in entry:
        return {}
    return {NAME: entry}


def given_path(user_ns: dict[str, Any]) -> str | None:
    """The notebook path the kernel was given, by the first source that has one."""
    candidates = [
        os.environ.get(ENVIRONMENT),
        user_ns.get("PAPERMILL_OUTPUT_PATH"),
        user_ns.get("PAPERMILL_INPUT_PATH"),
        user_ns.get("__session__"),
    ]
    return next((c for c in candidates if isinstance(c, str) and c and c != "-"), None)


def notebook_paths(given: str) -> dict[str, Any]:
    """``path`` (relative to the Jupyter server's root when known) and ``abs_path``."""
    found = Path(given).expanduser()
    if not found.is_absolute():
        candidates = [Path.cwd() / found, Path.cwd() / found.name]  # the kernel runs in its folder
        found = next((c for c in candidates if c.is_file()), found)
    absolute = found.resolve() if found.is_absolute() else None
    entry: dict[str, Any] = {"path": given, "abs_path": None if absolute is None else str(absolute)}
    root = server_root()
    if absolute is not None and root is not None and absolute.is_relative_to(root):
        entry["path"] = absolute.relative_to(root).as_posix()
    return entry


def server_root() -> Path | None:
    """The root folder of the Jupyter server that started this kernel (its parent), if any."""
    from jupyter_core.paths import jupyter_runtime_dir

    info = Path(jupyter_runtime_dir()) / f"jpserver-{os.getppid()}.json"
    try:
        root = json.loads(info.read_text(encoding="utf-8"))["root_dir"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return Path(root).expanduser().resolve()


def find_cell(notebook: Path, code: str, cell_id: str | None = None) -> dict[str, Any]:
    """The id and index of the cell of ``notebook`` with id ``cell_id`` (as last saved), else
    of the only code cell whose source is ``code``; ``{}`` when there is no such cell."""
    try:
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    cells = [cell if isinstance(cell, dict) else {} for cell in cells]
    if cell_id is not None:
        matches = [(i, cell) for i, cell in enumerate(cells) if cell.get("id") == cell_id]
    else:
        matches = [
            (index, cell)
            for index, cell in enumerate(cells)
            if cell.get("cell_type") == "code" and _source(cell.get("source", "")) == code
        ]
    if len(matches) != 1:
        return {}
    index, cell = matches[0]
    found: dict[str, Any] = {"cell_index": index}
    if isinstance(cell.get("id"), str):
        found["cell_id"] = cell["id"]
    return found


def _source(source: Any) -> str:
    return "".join(source) if isinstance(source, list) else str(source)
