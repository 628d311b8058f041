"""Shared fixtures: the test plugin is made visible to this process and to run processes."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

SUPPORT = Path(__file__).parent / "support"
sys.path.insert(0, str(SUPPORT))
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(SUPPORT), *filter(None, [os.environ.get("PYTHONPATH")])]
)
os.environ["CRYOLAB_PLUGINS"] = "testplugin=testplugin:plugin"
# the record of recent projects (cryolab.core.recent) of the tests, not the user's
os.environ["CRYOLAB_DATA"] = tempfile.mkdtemp(prefix="cryolab-data-")


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    """Each test discovers plugins afresh (tests may change CRYOLAB_PLUGINS)."""
    from cryolab.core.plugins import registry

    registry.refresh()
    yield
    registry.refresh()


@pytest.fixture
def project(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A new, empty project in a temporary folder."""
    from cryolab.core.project import open_project

    created = open_project(tmp_path / "project")
    yield created
    for run in created.runs():
        run.abort(grace=1)
    created.close()


def database_dump(project) -> list[str]:  # type: ignore[no-untyped-def]
    """Every row of the project database, to show that a refused operation changed nothing."""
    return list(project.db.iterdump())


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished small demo project (``small_demo.SMALL``), built once per test session.

    Shared by every test that asks for it: read it, export or reproduce it, but never change
    it (copy it with ``shutil.copytree`` first).
    """
    from small_demo import SMALL

    from cryolab.demo import main

    folder = tmp_path_factory.mktemp("small-demo") / "demo-project"
    cwd = Path.cwd()
    os.chdir(folder.parent)
    try:
        code = main(str(folder), SMALL)
    finally:
        os.chdir(cwd)
    assert code in (0, 1), "the small demo did not finish"  # 1: a threshold missed
    return folder
