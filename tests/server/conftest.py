"""Fixtures of the server extension tests: a registered folder with a project that has real runs,
a project outside it, and a Jupyter server (pytest-jupyter) with ``cryolab.server`` enabled."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from score_table import write_scores
from traitlets.config import Config

from cryolab.core.project import Project, open_project

TIMEOUT = 60


@dataclass
class Lab:
    """The folders of a test: what is registered, the served project and an outside one."""

    registered: Path
    project: Project
    outside: Project
    linked: Path  # a symlink in the registered folder to the outside project


@pytest.fixture(autouse=True)
def own_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither the user's cryolab configuration nor CRYOLAB_PROJECTS leak into the tests."""
    monkeypatch.setenv("CRYOLAB_CONFIG", str(tmp_path / "cryolab.toml"))
    monkeypatch.delenv("CRYOLAB_PROJECTS", raising=False)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Made once per module (runs take seconds): ``registered/alpha`` with import → subset
    (finished) and a saved run, and ``elsewhere/secret`` with one finished run."""
    base = tmp_path_factory.mktemp("made")
    data = base / "data"
    data.mkdir()
    write_scores(data, "table.csv")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CRYOLAB_CONFIG", str(base / "cryolab.toml"))
        project = open_project(base / "registered" / "alpha")
        table = project.run("sets.import_table", files=str(data / "*.csv"), label="table")
        project.run("sets.subset", source=table.out.rows, where="score > 0.45").wait(TIMEOUT)
        project.save("test.count", steps=2, label="later")
        project.close()
        outside = open_project(base / "elsewhere" / "secret")
        outside.run("test.count", steps=1).wait(TIMEOUT)
        outside.close()
    return base


@pytest.fixture
def lab(made: Path, tmp_path: Path) -> Iterator[Lab]:
    """A fresh copy of the made folders, and a symlink in the registered folder that leads to
    the outside project."""
    base = tmp_path / "cryolab"
    shutil.copytree(made, base)
    project = open_project(base / "registered" / "alpha", create=False)
    outside = open_project(base / "elsewhere" / "secret", create=False)
    linked = base / "registered" / "linked"
    linked.symlink_to(outside.path)
    yield Lab(base / "registered", project, outside, linked)
    for handle in (project, outside):
        for run in handle.runs():
            run.abort(grace=1)
        handle.close()


@pytest.fixture
def jp_server_config(lab: Lab) -> Config:
    """cryolab.server enabled, unauthenticated access refused, the lab's folder registered."""
    config: dict[str, Any] = {
        "ServerApp": {
            "jpserver_extensions": {"cryolab.server": True, "jupyter_server_terminals": False},
            "allow_unauthenticated_access": False,
            "reraise_server_extension_failures": True,
        },
        "CryolabServer": {"projects": [str(lab.registered)]},
    }
    return Config(config)
