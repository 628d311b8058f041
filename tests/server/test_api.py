"""The REST API of the Jupyter server extension, against a real Jupyter server and real runs."""

from __future__ import annotations

import asyncio
import json
import os
import time
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import JupyterServerAuthWarning
from tornado.httpclient import HTTPResponse
from traitlets.config import Config

from cryolab.core.runner import process_start_time
from cryolab.server.registry import project_id

from .conftest import TIMEOUT, Lab

pytest_plugins = ["pytest_jupyter.jupyter_server"]

Fetch = Callable[..., Any]


def wait_for(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


async def api(jp_fetch: Fetch, *parts: str, **kwargs: Any) -> HTTPResponse:
    """A request to ``/cryolab/api/...`` that returns error answers instead of raising."""
    response: HTTPResponse = await jp_fetch("cryolab", "api", *parts, raise_error=False, **kwargs)
    return response


def body(response: HTTPResponse) -> Any:
    return json.loads(response.body)


async def action(jp_fetch: Fetch, pid: str, run: str, name: str, data: str) -> HTTPResponse:
    """``POST .../projects/<pid>/runs/<run>/<name>`` with the JSON text ``data``."""
    return await api(jp_fetch, "projects", pid, "runs", run, name, method="POST", body=data)


# -- reading ----------------------------------------------------------------------------------
async def test_projects_lists_the_projects_of_registered_folders(jp_fetch: Fetch, lab: Lab) -> None:
    response = await api(jp_fetch, "projects")
    assert response.code == 200
    info = lab.project.info()
    assert body(response) == {
        "projects": [
            {
                "id": project_id(lab.project.path),
                "name": "alpha",
                "path": str(lab.project.path),
                "runs": 3,
                "status": info["status"],
                "schema_version": info["schema_version"],
            }
        ]
    }
    assert info["status"] == {"finished": 2, "saved": 1}


async def test_registration_is_read_at_request_time_and_ids_are_stable(
    jp_fetch: Fetch, lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = [p["id"] for p in body(await api(jp_fetch, "projects"))["projects"]]
    # the project registered a second time, directly, and the outside one through the env
    monkeypatch.setenv(
        "CRYOLAB_PROJECTS", os.pathsep.join([str(lab.project.path), str(lab.outside.path)])
    )
    listed = body(await api(jp_fetch, "projects"))["projects"]
    assert [p["id"] for p in listed] == [*first, project_id(lab.outside.path)]
    assert listed[1]["name"] == "secret" and listed[1]["runs"] == 1
    graph = await api(jp_fetch, "projects", project_id(lab.outside.path), "graph")
    assert graph.code == 200
    monkeypatch.delenv("CRYOLAB_PROJECTS")
    gone = await api(jp_fetch, "projects", project_id(lab.outside.path), "graph")
    assert gone.code == 404


async def test_graph_is_the_engines_run_graph(jp_fetch: Fetch, lab: Lab) -> None:
    pid = project_id(lab.project.path)
    response = await api(jp_fetch, "projects", pid, "graph")
    assert response.code == 200
    graph = body(response)
    assert graph == {"id": pid, **lab.project.run_graph()}
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert [nodes[i]["status"] for i in (1, 2, 3)] == ["finished", "finished", "saved"]
    assert nodes[1]["outputs"] == [{"name": "rows", "type": "Set", "count": 10, "state": "closed"}]
    assert nodes[2]["outputs"][0]["count"] == 5  # scores 0.5 ... 0.9
    assert graph["edges"] == [{"source": 1, "output": "rows", "target": 2, "param": "source"}]


async def test_run_details(jp_fetch: Fetch, lab: Lab) -> None:
    pid = project_id(lab.project.path)
    response = await api(jp_fetch, "projects", pid, "runs", "2")
    assert response.code == 200
    run = lab.project.get_run(2)
    details = body(response)
    assert details["id"] == 2 and details["protocol"] == "sets.subset"
    assert details["status"] == "finished" and details["error"] is None
    assert details["params"] == run.params
    assert details["inputs"] == [
        {
            "param": "source",
            "position": 0,
            "run": 1,
            "output": "rows",
            "ref": "1.rows",
            "type": "Set",
            "types": ["Set"],
            "count": 10,
            "state": "closed",
        }
    ]
    assert details["outputs"] == {
        "subset": {
            "ref": "2.subset",
            "type": "Set",
            "types": ["Set"],
            "count": 5,
            "state": "closed",
        }
    }
    assert details["summary"] == lab.project.summary(2)
    assert details["log"] == run.log(tail=100) and details["log"]
    assert details["created"] <= details["started"] <= details["finished"]
    assert details["steps"]["done"] == len(run.steps()) > 0
    assert details["folder"] == str(run.folder.relative_to(lab.project.path))
    tail = body(await api(jp_fetch, "projects", pid, "runs", "2", params={"tail": 1}))
    assert tail["log"] == run.log(tail=1) and tail["log"].count("\n") == 1
    saved = body(await api(jp_fetch, "projects", pid, "runs", "3"))
    assert saved["status"] == "saved" and saved["started"] is None and saved["log"] == ""


async def test_unknown_things_are_json_404s(jp_fetch: Fetch, lab: Lab) -> None:
    pid = project_id(lab.project.path)
    for parts in [
        ("projects", pid, "runs", "99"),
        ("projects", "0123456789ab", "graph"),
        ("projects", pid, "runs", "two"),
        ("projects", pid, "nothing"),
        ("nothing",),
    ]:
        response = await api(jp_fetch, *parts)
        assert response.code == 404, parts
        assert response.headers["Content-Type"].startswith("application/json")
        assert body(response)["message"]
    missing = body(await api(jp_fetch, "projects", pid, "runs", "99"))
    assert missing["message"] == f"no run 99 in project {lab.project.path}"
    bad = await api(jp_fetch, "projects", pid, "runs", "2", params={"tail": "lots"})
    assert bad.code == 400 and "tail='lots'" in body(bad)["message"]


# -- actions ----------------------------------------------------------------------------------
async def test_abort_stops_a_running_run(jp_fetch: Fetch, lab: Lab) -> None:
    run = lab.project.run("test.count", steps=1, delay=60)
    wait_for(lambda: run.status == "running")
    pid = lab.project._run_row(run.id)["pid"]
    response = await action(jp_fetch, project_id(lab.project.path), str(run.id), "abort", "")
    assert response.code == 200
    assert body(response)["status"] == "aborted"
    assert run.status == "aborted" and run.error == "aborted by the user"
    wait_for(lambda: process_start_time(pid) is None)


async def test_copy_makes_a_new_run(jp_fetch: Fetch, lab: Lab) -> None:
    pid = project_id(lab.project.path)
    response = await action(
        jp_fetch, pid, "2", "copy", json.dumps({"params": {"where": "score > 0.75"}})
    )
    assert response.code == 201
    copy = body(response)
    assert copy["id"] == 4 and copy["status"] == "saved"
    assert copy["origin"] == {"copy_of": 2}
    original = lab.project.get_run(2).params
    assert lab.project.get_run(4).params == {**original, "where": "score > 0.75"}
    assert copy["inputs"][0]["ref"] == "1.rows"
    launched = await action(jp_fetch, pid, "4", "copy", json.dumps({"launch": True}))
    assert launched.code == 201
    again = lab.project.get_run(body(launched)["id"]).wait(TIMEOUT)
    assert again.params["where"] == "score > 0.75"
    assert again.out.subset.count == 2  # 0.8 and 0.9


async def test_a_refused_copy_changes_nothing(jp_fetch: Fetch, lab: Lab) -> None:
    pid = project_id(lab.project.path)
    before = len(lab.project.runs())
    response = await action(
        jp_fetch, pid, "2", "copy", json.dumps({"params": {"source": "9.nothing"}})
    )
    assert response.code == 400
    assert body(response)["issues"] == [
        {"param": "source", "message": "copy of run 2: run 9 does not exist"}
    ]
    malformed = await action(jp_fetch, pid, "2", "copy", '{"launch": "yes"}')
    assert malformed.code == 400
    assert len(lab.project.runs()) == before


async def test_events_since_and_long_polling(jp_fetch: Fetch, lab: Lab) -> None:
    pid = project_id(lab.project.path)
    everything = body(await api(jp_fetch, "projects", pid, "events"))
    assert everything["events"] == lab.project.events(0)
    last = everything["last"]
    assert last == everything["events"][-1]["id"]
    later = body(await api(jp_fetch, "projects", pid, "events", params={"since": last - 2}))
    assert later["events"] == everything["events"][-2:]
    quiet = body(await api(jp_fetch, "projects", pid, "events", params={"since": last}))
    assert quiet == {"id": pid, "events": [], "last": last}

    start = time.monotonic()
    waiting = asyncio.ensure_future(
        api(jp_fetch, "projects", pid, "events", params={"since": last, "wait": 20})
    )
    await asyncio.sleep(0.5)
    assert not waiting.done()
    lab.project.set_label(1, "movies")
    news = body(await waiting)
    assert time.monotonic() - start < 2.0
    assert [(e["run"], e["kind"], e["value"]) for e in news["events"]] == [(1, "label", "movies")]
    assert news["last"] == news["events"][0]["id"]
    for since in ("-1", "1.5", "x"):
        bad = await api(jp_fetch, "projects", pid, "events", params={"since": since})
        assert bad.code == 400 and f"since={since!r}" in body(bad)["message"]


# -- security ---------------------------------------------------------------------------------
ENDPOINTS = [
    ("GET", ("projects",)),
    ("GET", ("projects", "{pid}", "graph")),
    ("GET", ("projects", "{pid}", "events")),
    ("GET", ("projects", "{pid}", "runs", "1")),
    ("POST", ("projects", "{pid}", "runs", "1", "copy")),
    ("POST", ("projects", "{pid}", "runs", "1", "abort")),
    ("GET", ("nothing",)),
]


@pytest.mark.parametrize(("method", "parts"), ENDPOINTS)
async def test_unauthenticated_requests_are_refused(
    jp_fetch: Fetch, lab: Lab, method: str, parts: tuple[str, ...]
) -> None:
    pid = project_id(lab.project.path)
    path = [part.format(pid=pid) for part in parts]
    kwargs: dict[str, Any] = {"method": method, "headers": {"Authorization": ""}}
    if method == "POST":
        kwargs["body"] = "{}"
    response = await api(jp_fetch, *path, **kwargs)
    assert response.code == 403
    assert len(lab.project.runs()) == 3


async def test_posts_need_the_token_or_the_xsrf_check(jp_fetch: Fetch, lab: Lab) -> None:
    pid = project_id(lab.project.path)
    # a token request leaves a login cookie, as a browser session would have
    login = await api(jp_fetch, "projects")
    cookie = login.headers["Set-Cookie"].split(";", 1)[0]
    cookie_only = {"Authorization": "", "Cookie": cookie}
    listed = await api(jp_fetch, "projects", headers=cookie_only)
    assert listed.code == 200  # the cookie authenticates
    copy = ("projects", pid, "runs", "1", "copy")
    refused = await api(jp_fetch, *copy, method="POST", body="{}", headers=cookie_only)
    assert refused.code == 403
    assert "_xsrf" in body(refused)["message"]
    assert len(lab.project.runs()) == 3
    with_xsrf = {**cookie_only, "Cookie": f"{cookie}; _xsrf=abc123", "X-XSRFToken": "abc123"}
    accepted = await api(jp_fetch, *copy, method="POST", body="{}", headers=with_xsrf)
    assert accepted.code == 201
    assert len(lab.project.runs()) == 4


TRAVERSALS = [
    "projects/../../../../etc/passwd",
    "projects/%2e%2e/graph",
    "projects/%2e%2e%2f%2e%2e%2fetc/graph",
    "projects/%2Fetc%2Fpasswd/graph",
    "projects//etc/graph",
    "projects/{pid}/runs/..%2f..%2f1",
    "projects/{pid}/runs/%2e%2e",
    "projects/{pid}/runs/-1",
    "projects/{pid}/runs/1%2f..%2f..",
    "projects/{pid}%2f..%2f{outside}/graph",
    "projects/{outside}/graph",
    "projects/{outside}/runs/1",
    "projects/{outside}/events",
]


@pytest.mark.parametrize("path", TRAVERSALS)
async def test_paths_outside_the_registered_projects_are_refused(
    http_server_client: Any, jp_auth_header: dict[str, str], jp_base_url: str, lab: Lab, path: str
) -> None:
    url = (
        jp_base_url
        + "cryolab/api/"
        + path.format(pid=project_id(lab.project.path), outside=project_id(lab.outside.path))
    )
    response = await http_server_client.fetch(url, headers=jp_auth_header, raise_error=False)
    assert response.code in (403, 404), url
    assert b"secret" not in response.body


async def test_a_symlink_out_of_a_registered_folder_is_not_served(
    jp_fetch: Fetch, lab: Lab
) -> None:
    listed = body(await api(jp_fetch, "projects"))["projects"]
    assert lab.linked.is_symlink() and (lab.linked / "project.sqlite").is_file()
    assert [p["path"] for p in listed] == [str(lab.project.path)]
    for outside_id in (project_id(lab.outside.path), project_id(lab.linked)):
        response = await api(jp_fetch, "projects", outside_id, "graph")
        assert response.code == 404


async def test_a_log_that_leads_out_of_the_project_is_not_read(jp_fetch: Fetch, lab: Lab) -> None:
    run = lab.project.get_run(1)
    secret = lab.outside.path / "secret.txt"
    secret.write_text("do not serve me\n")
    (run.folder / "run.log").unlink()
    (run.folder / "run.log").symlink_to(secret)
    details = body(await api(jp_fetch, "projects", project_id(lab.project.path), "runs", "1"))
    assert details["log"] is None


def test_every_endpoint_requires_authentication(
    jp_configurable_serverapp: Callable[..., Any], jp_server_config: Config
) -> None:
    """As the extension template's check_auth.py: no JupyterServerAuthWarning is raised
    while cryolab.server registers its handlers with unauthenticated access refused."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", JupyterServerAuthWarning)
        app = jp_configurable_serverapp(config=jp_server_config)
    assert app.allow_unauthenticated_access is False
    assert "cryolab.server" in app.extension_manager.extensions

    class Unguarded(APIHandler):
        def get(self) -> None:
            self.finish("{}")

    # the check is live: an undecorated handler would have been reported
    with pytest.warns(JupyterServerAuthWarning, match="GET of Unguarded"):
        app.web_app.add_handlers(".*$", [("/unguarded", Unguarded)])


async def test_recent_projects_inside_the_server_root_are_served(
    jp_fetch: Fetch, lab: Lab, jp_root_dir: Any, tmp_path: Any
) -> None:
    from cryolab.core.project import open_project

    inside = open_project(jp_root_dir / "notebook-project")  # opened in a notebook, say
    outside = open_project(tmp_path / "elsewhere-project")
    try:
        listed = body(await api(jp_fetch, "projects"))["projects"]
        paths = {entry["path"] for entry in listed}
        assert str(inside.path.resolve()) in paths
        assert str(outside.path.resolve()) not in paths
        graph = await api(jp_fetch, "projects", project_id(outside.path.resolve()), "graph")
        assert graph.code == 404
    finally:
        inside.close()
        outside.close()
