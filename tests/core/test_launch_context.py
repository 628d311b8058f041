"""Launch context providers: what they return is recorded in the origin of new runs."""

from __future__ import annotations

import json
import logging
import sys
import types
from pathlib import Path

import pytest

from cryolab.cli import main
from cryolab.core import launch_context
from cryolab.core.details import run_details
from cryolab.core.project import Project

NOTEBOOK = {"path": "work/ctf.ipynb", "abs_path": "/home/u/work/ctf.ipynb", "cell_id": "c-1"}


@pytest.fixture(autouse=True)
def no_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without providers and without looking for a kernel."""
    monkeypatch.setattr(launch_context, "_providers", {})
    monkeypatch.setattr(launch_context, "_kernel_checked", True)


def test_a_provider_is_recorded_in_the_origin_of_new_runs(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = project.save("test.count")
    assert plain.origin == {} and plain.notebook is None
    launch_context.register("notebook", lambda: {"notebook": dict(NOTEBOOK)})
    assert launch_context.registered() == ["notebook"]
    run = project.save("test.count", steps=2)
    assert run.origin == {"notebook": NOTEBOOK}
    assert run.notebook == NOTEBOOK
    assert run_details(project, run.id, lines=5)["notebook"] == NOTEBOOK
    # copies and template imports go through create_run too; their own origin keys stay
    copy = project.copy_run(run.id, steps=3)
    assert copy.origin == {"copy_of": run.id, "notebook": NOTEBOOK}

    assert main(["status", str(project.path), str(run.id), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["origin"] == {"notebook": NOTEBOOK}
    assert main(["status", str(project.path), str(run.id)]) == 0
    assert "notebook: work/ctf.ipynb, cell c-1" in capsys.readouterr().out

    launch_context.unregister("notebook")
    assert project.save("test.count").origin == {}


def test_a_failing_provider_never_stops_a_run(
    project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> dict[str, object]:
        raise RuntimeError("no kernel here")

    launch_context.register("broken", broken)
    launch_context.register("not-json", lambda: {"when": object()})
    launch_context.register("fine", lambda: {"fine": 1})
    with caplog.at_level(logging.WARNING, logger="cryolab.core.launch_context"):
        run = project.save("test.count")
    assert run.origin == {"fine": 1}
    assert "'broken' failed: no kernel here" in caplog.text
    assert "'not-json' failed" in caplog.text


def test_the_notebook_provider_loads_only_in_a_kernel_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(launch_context, "_kernel_checked", False)
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    assert launch_context.current() == {}
    assert launch_context.registered() == []  # no kernel: nothing of the UI is imported

    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    # a process that imported ipykernel but runs no kernel (a server) records nothing
    assert launch_context.current() == {}
    assert launch_context.registered() == ["notebook"]
