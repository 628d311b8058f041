"""Layered configuration: defaults, user file, environment, code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cryolab.core import config
from cryolab.core.errors import CryolabError
from cryolab.core.project import Project


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config.toml"
    monkeypatch.setenv("CRYOLAB_CONFIG", str(path))
    monkeypatch.delenv("CRYOLAB_EXECUTOR", raising=False)
    monkeypatch.delenv("CRYOLAB_CORES", raising=False)
    monkeypatch.delenv("CRYOLAB_PROJECTS", raising=False)
    return path


def test_defaults_without_file(config_file: Path) -> None:
    assert config.settings() == {"executor": "local", "cores": None, "projects": []}


def test_file_then_environment_then_code(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_file.write_text('executor = "sync"\ncores = 3\n')
    assert config.settings() == {"executor": "sync", "cores": 3, "projects": []}
    monkeypatch.setenv("CRYOLAB_CORES", "5")
    assert config.settings()["cores"] == 5
    assert config.settings(cores=7, executor=None) == {
        "executor": "sync",
        "cores": 7,
        "projects": [],
    }


def test_registered_project_folders(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config_file.write_text('projects = ["/data/a", "~/b"]\n')
    assert config.settings()["projects"] == ["/data/a", "~/b"]
    monkeypatch.setenv("CRYOLAB_PROJECTS", os.pathsep.join(["/x", "", "/y/z"]))
    assert config.settings()["projects"] == ["/x", "/y/z"]


def test_bad_configuration_is_named(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config_file.write_text("cores = [")
    with pytest.raises(CryolabError, match=r"config\.toml is malformed"):
        config.settings()
    config_file.write_text("cpus = 4\n")
    with pytest.raises(CryolabError, match=r"unknown key\(s\) \['cpus'\]"):
        config.settings()
    config_file.unlink()
    monkeypatch.setenv("CRYOLAB_CORES", "lots")
    with pytest.raises(CryolabError, match="CRYOLAB_CORES='lots'"):
        config.settings()


def test_runs_take_the_configured_executor(
    config_file: Path, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRYOLAB_EXECUTOR", "sync")
    run = project.save("test.count", steps=1)
    assert project._run_row(run.id)["executor"] == '{"name": "sync", "cores": null}'
    explicit = project.save("test.count", steps=1, executor="local", cores=2)
    assert project._run_row(explicit.id)["executor"] == '{"name": "local", "cores": 2}'
