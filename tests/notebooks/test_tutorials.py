"""The tutorial notebooks of ``notebooks/`` run from top to bottom with papermill, as in class.

Every ``notebooks/*.ipynb`` is executed in a temporary folder with small parameters (its own
defaults are already small; a notebook needing more is listed in ``PARAMETERS``), by this
environment's Python (a kernel spec written for the test, nothing registered globally). The
notebooks assert their own results, so a wrong result fails like an error. A failure names the
cell as ``cryolab reproduce`` does (``cryolab.core.reproduce_notebook``): its number in the
committed notebook, counting from 1 over all cells, markdown included, papermill's injected
parameters cell left out; its first line; and the exception.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient.exceptions import CellTimeoutError, DeadKernelError

papermill = pytest.importorskip("papermill")

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
NOTEBOOKS_BY_NAME = {n.stem: n for n in NOTEBOOKS}
REAL = REPO.parent / "shared" / "data" / "real"  # CI clones the repository beside shared/
KERNEL = "cryolab-tutorial-tests"
CELL_TIMEOUT = 300  # seconds per cell
START_TIMEOUT = 120  # seconds for the kernel to start on a loaded machine

PARAMETERS: dict[str, dict[str, Any]] = {
    "02-spa-pipeline": {"viewer_backend": "web"},  # no napari window, even with a display
    "03-interoperability": {"data_dir": str(REAL)},  # absent: the notebook writes stand-ins
}


class NotebookError(AssertionError):
    """A notebook cell failed: the message names the notebook, the cell and the error."""


@pytest.fixture
def kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernel spec running this interpreter (the project's venv), found first via JUPYTER_PATH."""
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "cryolab tutorial tests",
                "language": "python",
            }
        ),
        encoding="utf-8",
    )
    monkeypatch.setenv("JUPYTER_PATH", str(spec.parents[1]))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "jupyter" / "runtime"))
    return KERNEL


def cell_name(source: nbformat.NotebookNode, cell: nbformat.NotebookNode | None) -> str:
    """``cell 7 ('run = project.run(')``: the cell's number in ``source`` and its first line.

    Numbered as ``cryolab reproduce`` numbers them: from 1, over all cells of the committed
    notebook (markdown too), without the cell papermill injects.
    """
    if cell is None:
        return "an unknown cell"
    first = next((line for line in cell.source.splitlines() if line.strip()), "")
    index = next(
        (
            i
            for i, c in enumerate(source.cells)
            if c.get("id") == cell.get("id") or c.source == cell.source
        ),
        None,
    )
    if index is None:  # the cell papermill inserts with the parameters it was given
        return "papermill's injected-parameters cell"
    return f"cell {index + 1} ({first!r})"


def last_started(output: Path) -> nbformat.NotebookNode | None:
    """The code cell that was running when the kernel died or timed out.

    After a ``DeadKernelError`` or ``CellTimeoutError`` papermill marks that cell (and the
    ones after it) ``completed``, so the status is no guide; but only cells that started have
    a start time, so the running one is the last of them.
    """
    if not output.exists():
        return None
    executed = nbformat.read(output, as_version=4)
    started = [
        c
        for c in executed.cells
        if c.cell_type == "code" and c.metadata.get("papermill", {}).get("start_time")
    ]
    return started[-1] if started else None


def failed_cell(output: Path) -> nbformat.NotebookNode | None:
    """The cell papermill recorded as failed (after a ``PapermillExecutionError``)."""
    if not output.exists():
        return None
    executed = nbformat.read(output, as_version=4)
    return next(
        (c for c in executed.cells if c.metadata.get("papermill", {}).get("status") == "failed"),
        None,
    )


def execute(
    notebook: Path,
    folder: Path,
    kernel: str,
    parameters: dict[str, Any] | None = None,
    timeout: int = CELL_TIMEOUT,
) -> nbformat.NotebookNode:
    """Run ``notebook`` with papermill in ``folder``; raise :class:`NotebookError` naming the cell.

    The executed notebook is kept as ``folder / "<name>.out.ipynb"``.
    """
    source = nbformat.read(notebook, as_version=4)
    output = folder / f"{notebook.stem}.out.ipynb"
    try:
        return papermill.execute_notebook(
            str(notebook),
            str(output),
            parameters=parameters or {},
            kernel_name=kernel,
            cwd=str(folder),
            execution_timeout=timeout,
            start_timeout=START_TIMEOUT,
            progress_bar=False,
            log_output=False,
        )
    except papermill.PapermillExecutionError as error:
        where = cell_name(source, failed_cell(output))
        message = f"{error.ename}: {error.evalue}"
    except CellTimeoutError:
        where = cell_name(source, last_started(output))
        message = f"timed out after {timeout} s"
    except DeadKernelError:
        where = cell_name(source, last_started(output))
        message = "the kernel died (killed, out of memory, or crashed)"
    raise NotebookError(f"{notebook.name}: {where} failed: {message} (output: {output})")


@pytest.mark.timeout(900)
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_tutorial_runs(notebook: Path, tmp_path: Path, kernel: str) -> None:
    start = time.perf_counter()
    parameters = {"project_path": str(tmp_path / "project"), **PARAMETERS.get(notebook.stem, {})}
    executed = execute(notebook, tmp_path, kernel, parameters)
    assert executed.metadata.papermill["exception"] is None
    print(f"{notebook.name}: {time.perf_counter() - start:.1f} s")


def test_interoperability_without_the_real_files(tmp_path: Path, kernel: str) -> None:
    """Away from the course's data, the notebook writes stand-in files and runs all the same."""
    parameters = {"project_path": str(tmp_path / "project"), "data_dir": str(tmp_path / "absent")}
    executed = execute(NOTEBOOKS_BY_NAME["03-interoperability"], tmp_path, kernel, parameters)
    outputs = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert "not found at" in outputs and "stand-ins" in outputs
    assert (tmp_path / "project" / "standins" / "particles_31.star").is_file()


def test_there_are_tutorials() -> None:
    assert [n.stem for n in NOTEBOOKS][:4] == [
        "01-getting-started",
        "02-spa-pipeline",
        "03-interoperability",
        "04-reproducibility",
    ]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_tutorial_is_clean_and_parameterised(notebook: Path) -> None:
    """Committed notebooks carry no outputs, open with their goal and have a parameters cell."""
    source = nbformat.read(notebook, as_version=4)
    nbformat.validate(source)
    assert (source.nbformat, source.nbformat_minor) >= (4, 5)  # cell ids
    assert source.cells[0].cell_type == "markdown" and source.cells[0].source.startswith("# ")
    code = [c for c in source.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code), "clear the outputs"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "project_path = " in tagged[0].source
    parameters = papermill.inspect_notebook(str(notebook))
    assert set(PARAMETERS.get(notebook.stem, {})) <= set(parameters)


def write_notebook(path: Path, *sources: str) -> Path:
    cells = [nbformat.v4.new_markdown_cell("# a notebook that fails")]
    cells.append(nbformat.v4.new_code_cell("project_path = 'x'", metadata={"tags": ["parameters"]}))
    cells += [nbformat.v4.new_code_cell(s) for s in sources]
    kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": kernelspec}), path)
    return path


def test_a_failing_cell_is_named(tmp_path: Path, kernel: str) -> None:
    notebook = write_notebook(
        tmp_path / "broken.ipynb",
        "total = 1 + 1",
        "# the check\nassert total == 3, f'total is {total}'",
        "print('never reached')",
    )
    with pytest.raises(NotebookError) as failure:
        execute(notebook, tmp_path, kernel, {"project_path": "y"})
    assert str(failure.value).startswith(
        "broken.ipynb: cell 4 ('# the check') failed: AssertionError: total is 2"
    )


def test_a_dead_kernel_names_the_running_cell(tmp_path: Path, kernel: str) -> None:
    notebook = write_notebook(
        tmp_path / "dies.ipynb", "x = 1", "import os\nos._exit(1)", "print('never reached')"
    )
    with pytest.raises(NotebookError, match=r"cell 4 \('import os'\) failed: the kernel died"):
        execute(notebook, tmp_path, kernel)


def test_a_cell_that_times_out_is_named(tmp_path: Path, kernel: str) -> None:
    notebook = write_notebook(
        tmp_path / "slow.ipynb",
        f"import sys\nassert sys.executable == {sys.executable!r}, sys.executable",
        "import time\ntime.sleep(60)",
        "print('never reached')",
    )
    with pytest.raises(
        NotebookError, match=r"cell 4 \('import time'\) failed: timed out after 3 s"
    ):
        execute(notebook, tmp_path, kernel, timeout=3)
