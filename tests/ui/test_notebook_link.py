"""A run created in a real IPython kernel records its notebook and cell (``origin["notebook"]``).

Two clients: one that speaks like JupyterLab (a session's ``JPY_SESSION_NAME``, the cell id in
the request's metadata, a Jupyter server as the kernel's parent), and papermill, which sends
no cell id (the cell is then found by its source in the notebook named by
``$CRYOLAB_NOTEBOOK``).
"""

from __future__ import annotations

import json
import os
import queue
from pathlib import Path
from typing import Any

import nbformat
import papermill
import pytest
from jupyter_client.manager import start_new_kernel

from cryolab.core.project import open_project

OPEN_AND_SAVE = (
    "import cryolab\n"
    "project = cryolab.open_project({path!r})\n"
    "run = project.save('test.count', steps=2)"
)
CORE_IMPORT = (
    "from cryolab.core.project import open_project\n"
    "open_project({path!r}).save('test.count', steps=3)"
)


def execute(client: Any, code: str, cell_id: str) -> None:
    """Run ``code`` as JupyterLab runs a cell: ``cellId`` in the request's metadata."""
    content = {
        "code": code,
        "silent": False,
        "store_history": True,
        "user_expressions": {},
        "allow_stdin": False,
        "stop_on_error": True,
    }
    message = client.session.msg("execute_request", content, metadata={"cellId": cell_id})
    client.shell_channel.send(message)
    while True:
        reply = client.get_shell_msg(timeout=120)
        if reply["parent_header"].get("msg_id") == message["header"]["msg_id"]:
            break
    errors = []
    while True:  # drain iopub to report a traceback
        try:
            published = client.get_iopub_msg(timeout=0.2)
        except queue.Empty:
            break
        if published["msg_type"] == "error":
            errors.append("\n".join(published["content"]["traceback"]))
    assert reply["content"]["status"] == "ok", "\n".join(errors)


def test_a_jupyterlab_cell_is_recorded(tmp_path: Path) -> None:
    root = tmp_path / "root"
    notebook = root / "analysis" / "ctf.ipynb"
    notebook.parent.mkdir(parents=True)
    saved = nbformat.v4.new_notebook()
    # as last saved: the cells with the ids JupyterLab sends (cell-b not saved yet)
    saved.cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("open")]
    saved.cells[0].id, saved.cells[1].id = "first-cell", "cell-a"
    nbformat.write(saved, notebook)
    # the Jupyter server that "started" the kernel is its parent process: this test
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    (runtime / f"jpserver-{os.getpid()}.json").write_text(json.dumps({"root_dir": str(root)}))
    project_path = str(tmp_path / "project")
    env = {**os.environ, "JPY_SESSION_NAME": str(notebook), "JUPYTER_RUNTIME_DIR": str(runtime)}
    env.pop("CRYOLAB_NOTEBOOK", None)
    manager, client = start_new_kernel(kernel_name="python3", env=env, cwd=str(notebook.parent))
    try:
        execute(client, "x = 1", "first-cell")
        execute(client, OPEN_AND_SAVE.format(path=project_path), "cell-a")
        execute(client, CORE_IMPORT.format(path=project_path), "cell-b")
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    first, second = open_project(project_path, create=False).runs()
    assert first.notebook == {
        "path": "analysis/ctf.ipynb",
        "abs_path": str(notebook.resolve()),
        "execution_count": 2,
        "cell_id": "cell-a",
        "cell_index": 1,
    }
    assert second.notebook is not None
    assert (second.notebook["cell_id"], second.notebook["execution_count"]) == ("cell-b", 3)
    assert "cell_index" not in second.notebook


@pytest.mark.parametrize("named_by", ["environment", "papermill"])
def test_a_papermill_cell_is_found_by_its_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, named_by: str
) -> None:
    """``$CRYOLAB_NOTEBOOK`` names the input here; ``--inject-paths`` names the output, which
    has papermill's injected cell too."""
    project_path = str(tmp_path / "project")
    source = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell("project_path = ''")
    parameters.metadata["tags"] = ["parameters"]
    cells = [
        nbformat.v4.new_markdown_cell("# A run from papermill"),
        parameters,
        nbformat.v4.new_code_cell(OPEN_AND_SAVE.format(path="PLACEHOLDER")),
    ]
    cells[2].source = cells[2].source.replace("'PLACEHOLDER'", "project_path")
    source.cells = cells
    source.metadata["kernelspec"] = {"name": "python3", "language": "python"}
    notebook, output = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(source, notebook)
    values = {"project_path": project_path}
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.delenv("CRYOLAB_NOTEBOOK", raising=False)
    if named_by == "environment":
        monkeypatch.setenv("CRYOLAB_NOTEBOOK", str(notebook))
    else:  # what `papermill --inject-paths` passes
        values.update(PAPERMILL_INPUT_PATH=str(notebook), PAPERMILL_OUTPUT_PATH=str(output))
    papermill.execute_notebook(
        str(notebook), str(output), parameters=values, kernel_name="python3", progress_bar=False
    )
    (run,) = open_project(project_path, create=False).runs()
    named = notebook if named_by == "environment" else output
    assert run.notebook == {
        "path": str(named),
        "abs_path": str(named.resolve()),
        "execution_count": 3,  # after the parameters cell and the one papermill injects
        "cell_id": cells[2].id,
        "cell_index": 2 if named_by == "environment" else 3,
    }
