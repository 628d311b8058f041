"""Re-executing an exported notebook with papermill, recording the outcome ourselves.

An exported notebook (``cryolab export-notebook``) has a code cell tagged ``parameters``
defining ``project_path``, and ``metadata["cryolab"] = {"project": SOURCE_PROJECT,
"runs": [source run ids in the order the notebook creates them]}``.

papermill is optional (the ``jupyter`` extra) and imported on use. Its output notebook does
not tell reliably what went wrong (a timed-out cell is marked completed, a dead kernel leaves
no error; ``docs/reproducibility.md``), so the outcome is taken from papermill's exception and
from the index of the cell that last started, which papermill's ``on_cell_execute`` hook
reports.

The notebook is given its own paths as parameters (``PAPERMILL_INPUT_PATH`` and
``PAPERMILL_OUTPUT_PATH``, as ``papermill --inject-paths`` does), so the runs it creates record
the executed notebook in ``origin["notebook"]``
(:mod:`cryolab.ui.notebook_context`). A deadline bounds the whole execution: each cell may take
the time left until it (nbclient's ``timeout_func``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from cryolab.core.errors import CryolabError

PARAMETER = "project_path"


class NotebookError(CryolabError):
    """A notebook cannot be read or executed as a reproduction source."""


def read_notebook(path: Path) -> dict[str, Any]:
    """The notebook as JSON data (nbformat 4)."""
    try:
        document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotebookError(f"cannot read the notebook {path}: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("cells"), list):
        raise NotebookError(f"{path} is not a Jupyter notebook (no cells)")
    return document


def cryolab_metadata(document: dict[str, Any]) -> dict[str, Any] | None:
    """``metadata["cryolab"]`` when it names a project and a list of run ids, else None."""
    found = document.get("metadata", {}).get("cryolab")
    if (
        isinstance(found, dict)
        and isinstance(found.get("project"), str)
        and isinstance(found.get("runs"), list)
        and all(isinstance(r, int) for r in found["runs"])
    ):
        return found
    return None


def parameters_cell(document: dict[str, Any]) -> int | None:
    """The index of the code cell tagged ``parameters`` (papermill injects values after it)."""
    for index, cell in enumerate(document["cells"]):
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.get("cell_type") == "code" and "parameters" in tags:
            return index
    return None


def execute(
    source: Path,
    output: Path,
    parameters: dict[str, Any],
    *,
    kernel_name: str | None,
    start_timeout: float,
    deadline: float | None,
    timeout: float | None,
    cwd: Path,
) -> dict[str, Any]:
    """Execute ``source`` into ``output`` with papermill; return what happened.

    Parameters
    ----------
    deadline, timeout
        The :func:`time.monotonic` time by which every cell must have finished (None: no
        limit), and the timeout it stems from (for the error message).

    Returns
    -------
    dict
        ``input``, ``output``, ``parameters``, ``kernel``, ``status`` (``"completed"`` or
        ``"failed"``), ``duration`` (s), and on failure ``exception`` (its type), ``error``
        (one line naming the cell), ``cell_number`` (1-based, in the source notebook; None
        when no cell had started, 0 for papermill's injected-parameters cell) and
        ``cell_source`` (its first line).

    Raises
    ------
    NotebookError
        If papermill is not installed.
    """
    try:
        import papermill  # type: ignore[import-untyped]
    except ImportError:
        raise NotebookError(
            "re-executing a notebook needs papermill: pip install 'cryolab[jupyter]'"
        ) from None
    injected_after = parameters_cell(read_notebook(source))
    started: list[tuple[int, str]] = []

    def on_cell_execute(cell: Any, cell_index: int) -> None:
        started.append((cell_index, str(cell.get("source", ""))))

    outcome: dict[str, Any] = {
        "input": str(source),
        "output": str(output),
        "parameters": parameters,
        "kernel": kernel_name,
        "status": "completed",
    }

    def time_left(cell: Any) -> float | None:
        if deadline is None:
            return None
        return max(deadline - time.monotonic(), 1e-3)  # 0 would mean no limit to nbclient

    begin = time.monotonic()
    try:
        papermill.execute_notebook(
            str(source),
            str(output),
            parameters={
                **parameters,
                "PAPERMILL_INPUT_PATH": str(source),
                "PAPERMILL_OUTPUT_PATH": str(output),
            },
            kernel_name=kernel_name,
            start_timeout=start_timeout,
            request_save_on_cell_execute=True,
            progress_bar=False,
            cwd=str(cwd),
            on_cell_execute=on_cell_execute,
            timeout_func=time_left,
        )
    except Exception as exc:  # papermill, nbclient and jupyter_client raise many kinds
        outcome.update(_failure(exc, started, injected_after, timeout))
    outcome["duration"] = time.monotonic() - begin
    return outcome


def _failure(
    exc: Exception,
    started: list[tuple[int, str]],
    injected_after: int | None,
    timeout: float | None,
) -> dict[str, Any]:
    """The failure fields of the outcome: the exception and the cell it happened in."""
    kind = type(exc).__name__
    index, text = started[-1] if started else (None, "")
    number = None
    if index is not None:  # back to the source notebook, without papermill's injected cell
        after = -1 if injected_after is None else injected_after
        if index == after + 1 and injected_after is not None:
            number = 0
        else:
            number = index + 1 - int(index > after >= 0)
    first = next((line for line in str(text or "").splitlines() if line.strip()), "")
    if kind == "PapermillExecutionError":
        what = f"raised {exc.ename}: {exc.evalue}"  # type: ignore[attr-defined]
    elif kind == "CellTimeoutError":
        what = f"did not finish within the timeout of {timeout} s (the notebook and its runs)"
    elif kind == "DeadKernelError":
        what = "killed the kernel (crash, out of memory or os._exit)"
    else:
        what = f"failed: {kind}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    if number is None:
        where = "the kernel, before any cell,"
    elif number == 0:
        where = "papermill's injected-parameters cell"
    else:
        where = f"cell {number} ({first!r})"
    return {
        "status": "failed",
        "exception": kind,
        "error": f"{where} {what}",
        "cell_number": number,
        "cell_source": first,
    }
