"""Gallery pages from the server extension: the same pages as the kernel's, without it."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from traitlets.config import Config

from cryolab.core.project import Project, open_project
from cryolab.em.gallery import ImagePages, Query
from cryolab.em.imageio import write_stack
from cryolab.em.objects import SetOfParticles
from cryolab.server.registry import project_id

pytest_plugins = ["pytest_jupyter.jupyter_server"]

Fetch = Callable[..., Any]
COUNT = 30


@pytest.fixture
def gallery_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    """A registered folder holding a project with 30 particles (an imported run's output)."""
    monkeypatch.setenv("CRYOLAB_CONFIG", str(tmp_path / "cryolab.toml"))
    monkeypatch.delenv("CRYOLAB_PROJECTS", raising=False)
    project = open_project(tmp_path / "served" / "beta")
    images = np.random.default_rng(3).normal(size=(COUNT, 16, 16)).astype(np.float32)
    images += np.arange(COUNT, dtype=np.float32)[:, None, None]  # each image its own level
    stack = write_stack(tmp_path / "particles.mrcs", images, 2.0)
    particles = SetOfParticles(
        {
            "image.path": [str(stack)] * COUNT,
            "image.index": np.arange(1, COUNT + 1),
            "ctf.defocus_u": np.linspace(20000, 10000, COUNT),
        },
        properties={"sampling_rate": 2.0},
    )
    project.add_imported_run(
        "external.job",
        {
            "program": "test",
            "job": "p",
            "output_names": ["out"],
            "output_types": ["SetOfParticles"],
        },
        {"out": particles},
    )
    return project


@pytest.fixture
def jp_server_config(gallery_project: Project) -> Config:
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {"cryolab.server": True, "jupyter_server_terminals": False},
                "allow_unauthenticated_access": False,
            },
            "CryolabServer": {"projects": [str(gallery_project.path.parent)]},
        }
    )


async def page(jp_fetch: Fetch, project: Project, *parts: str, **params: Any) -> Any:
    pid = project_id(project.path)
    return await jp_fetch(
        "cryolab",
        "api",
        "projects",
        pid,
        "runs",
        "1",
        *parts,
        params=params,
        raise_error=False,
    )


async def test_a_page_is_the_kernels_page(jp_fetch: Fetch, gallery_project: Project) -> None:
    response = await page(
        jp_fetch,
        gallery_project,
        "outputs",
        "out",
        "page",
        start=5,
        count=10,
        size=32,
        sort="ctf.defocus_u",
        where="ctf.defocus_u > 12000",
        labels="ctf.defocus_u",
    )
    assert response.code == 200
    answer = json.loads(response.body)
    query = Query(sort="ctf.defocus_u", where="ctf.defocus_u > 12000")
    expected = ImagePages(gallery_project.get_run(1).out.out.load()).page(
        5, 10, query=query, size=32, labels=["ctf.defocus_u"]
    )
    assert answer["total"] == expected.total and answer["count"] == 10
    assert answer["uids"] == [str(u) for u in expected.uids]
    assert answer["labels"] == expected.json_labels()
    tiles = np.frombuffer(base64.b64decode(answer["thumbnails"]), dtype=np.uint8)
    np.testing.assert_array_equal(tiles.reshape(10, 32, 32), expected.thumbnails)


async def test_bad_requests_are_named(jp_fetch: Fetch, gallery_project: Project) -> None:
    missing = await page(jp_fetch, gallery_project, "outputs", "nope", "page")
    assert missing.code == 404 and "has no output 'nope'" in json.loads(missing.body)["message"]
    odd = await page(jp_fetch, gallery_project, "outputs", "..%2f..", "page")
    assert odd.code == 404
    column = await page(jp_fetch, gallery_project, "outputs", "out", "page", sort="defocus")
    assert column.code == 400 and "defocus" in json.loads(column.body)["message"]
    big = await page(jp_fetch, gallery_project, "outputs", "out", "page", count=10**6)
    assert big.code == 400 and "count" in json.loads(big.body)["message"]
    anonymous = await jp_fetch(
        "cryolab",
        "api",
        "projects",
        project_id(gallery_project.path),
        "runs",
        "1",
        "outputs",
        "out",
        "page",
        headers={"Authorization": ""},
        raise_error=False,
    )
    assert anonymous.code == 403
