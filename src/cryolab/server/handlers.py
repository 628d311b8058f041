"""The REST handlers under ``<base_url>/cryolab/api/``.

Every verb requires an authenticated Jupyter request (``@web.authenticated``) and is authorized
on the resource ``"cryolab"`` (``read`` for GET, ``write`` for POST), so a custom Jupyter
authorizer can restrict it; POSTs pass Jupyter's XSRF check (a token in the ``Authorization``
header, or the ``_xsrf`` cookie echoed in ``X-XSRFToken``). Path components are matched as
single segments and validated before use: a project id must be one of the served ids (see
:mod:`cryolab.server.registry`), a run id a number; anything else is a JSON 404.

Project databases are SQLite in WAL mode: the reads are done in the handler. Aborting a run may
wait seconds for its process to stop, so it runs in a worker thread with its own connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from cryolab.core import details
from cryolab.core.errors import (
    CryolabError,
    GraphError,
    ParameterError,
    ProjectError,
    RunNotFoundError,
)
from cryolab.core.project import Project
from cryolab.server.registry import ProjectRegistry

log = logging.getLogger(__name__)

RUN_ID = re.compile(r"[0-9]{1,12}")
LOG_LINES = 100  # lines of the log tail by default
MAX_LOG_LINES = 10_000
MAX_WAIT = 30.0  # seconds an events request may wait for news
POLL_INTERVAL = 0.2  # seconds between database reads while an events request waits
SEGMENT = r"(?P<{}>[^/]+)"


class ApiError(web.HTTPError):
    """An error answered as JSON ``{"message": ..., "reason": null, **extra}``.

    Parameters
    ----------
    status
        The HTTP status.
    message
        What went wrong, for the user.
    **extra
        More JSON fields (e.g. ``issues`` of invalid parameters).
    """

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(status, "%s", message)
        self.message = message
        self.extra = extra


@contextlib.contextmanager
def engine_errors() -> Iterator[None]:
    """Turn the engine's errors into HTTP answers naming what is at fault."""
    try:
        yield
    except RunNotFoundError as exc:
        raise ApiError(404, str(exc)) from None
    except ParameterError as exc:
        issues = [{"param": i.param, "message": i.message} for i in exc.issues]
        raise ApiError(400, str(exc), issues=issues) from None
    except (GraphError, ProjectError) as exc:
        raise ApiError(409, str(exc)) from None
    except CryolabError as exc:
        raise ApiError(400, str(exc)) from None


class CryolabHandler(APIHandler):
    """Shared lookups of the cryolab handlers: registry, projects, arguments, errors."""

    auth_resource = "cryolab"

    @property
    def registry(self) -> ProjectRegistry:
        """The registry of served projects, set up by the extension."""
        registry: ProjectRegistry = self.settings["cryolab_registry"]
        return registry

    def project_folder(self, identifier: str) -> Path:
        """The folder of served project ``identifier`` (404 if it is not served)."""
        try:
            folder = self.registry.find(identifier)
        except CryolabError as exc:
            raise ApiError(500, f"the project registry cannot be read: {exc}") from None
        if folder is None:
            raise ApiError(404, f"no registered project with id {identifier!r}")
        return folder

    @contextlib.contextmanager
    def project(self, identifier: str) -> Iterator[Project]:
        """Open served project ``identifier`` for the duration of the block."""
        folder = self.project_folder(identifier)
        try:
            project = Project(folder)
        except CryolabError as exc:
            raise ApiError(500, f"project {identifier} cannot be opened: {exc}") from None
        try:
            with engine_errors():
                yield project
        finally:
            project.close()

    def run_id(self, text: str) -> int:
        """A run id from the URL (404 unless it is a number)."""
        if not RUN_ID.fullmatch(text):
            raise ApiError(404, f"no run {text!r}: a run id is a number")
        return int(text)

    def argument(
        self, name: str, default: float, low: float, high: float, parse: type[float] = float
    ) -> float:
        """A query argument read by ``parse`` (``int`` or ``float``), within ``[low, high]``.

        A malformed or out-of-range value is a 400 naming the argument.
        """
        text = self.get_query_argument(name, None)
        if text is None:
            return default
        try:
            value = parse(text)
        except ValueError:
            raise ApiError(400, f"{name}={text!r} is not a {parse.__name__}") from None
        if not low <= value <= high:
            raise ApiError(400, f"{name}={text!r} is not between {low:g} and {high:g}")
        return value

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Answer :class:`ApiError` with its JSON fields, other errors as Jupyter does."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"message": exc.message, "reason": None, **exc.extra}))
            return
        super().write_error(status_code, **kwargs)


class ProjectsHandler(CryolabHandler):
    """``GET /cryolab/api/projects``: the served projects with their run counts."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        try:
            served = self.registry.projects()
        except CryolabError as exc:
            raise ApiError(500, f"the project registry cannot be read: {exc}") from None
        entries = []
        for identifier, folder in served.items():
            try:
                project = Project(folder)
            except CryolabError as exc:
                entries.append(
                    {"id": identifier, "name": folder.name, "path": str(folder), "error": str(exc)}
                )
                continue
            try:
                entries.append(details.project_entry(identifier, project))
            finally:
                project.close()
        self.finish({"projects": entries})


class GraphHandler(CryolabHandler):
    """``GET .../projects/<id>/graph``: :meth:`Project.run_graph` and the project id."""

    @web.authenticated
    @authorized
    async def get(self, project_id: str) -> None:
        with self.project(project_id) as project:
            self.finish({"id": project_id, **project.run_graph()})


class RunHandler(CryolabHandler):
    """``GET .../runs/<run_id>?tail=N``: a run's details and the last N lines of its log."""

    @web.authenticated
    @authorized
    async def get(self, project_id: str, run_id: str) -> None:
        number = self.run_id(run_id)
        lines = int(self.argument("tail", LOG_LINES, 0, MAX_LOG_LINES, int))
        with self.project(project_id) as project:
            self.finish(details.run_details(project, number, lines))


def _abort(folder: Path, run_id: int) -> None:
    """Abort a run as ``cryolab abort`` does, with a connection of this worker thread."""
    project = Project(folder)
    try:
        project.get_run(run_id).abort()
    finally:
        project.close()


class AbortHandler(CryolabHandler):
    """``POST .../runs/<run_id>/abort``: stop the run (as ``cryolab abort``); its details."""

    @web.authenticated
    @authorized
    async def post(self, project_id: str, run_id: str) -> None:
        number = self.run_id(run_id)
        with self.project(project_id) as project:
            project.get_run(number)  # 404 before anything is done
            folder = project.path
        with engine_errors():
            await asyncio.get_running_loop().run_in_executor(None, _abort, folder, number)
        log.info("aborted run %d of %s", number, folder)
        with self.project(project_id) as project:
            self.finish(details.run_details(project, number, LOG_LINES))


class CopyHandler(CryolabHandler):
    """``POST .../runs/<run_id>/copy``: copy the run (:meth:`Project.copy_run`); its details.

    The optional JSON body is ``{"params": {name: value}, "launch": false}``: parameters that
    differ from the original, and whether to launch the copy at once.
    """

    @web.authenticated
    @authorized
    async def post(self, project_id: str, run_id: str) -> None:
        number = self.run_id(run_id)
        body = self.get_json_body() or {}
        if not isinstance(body, dict) or set(body) - {"params", "launch"}:
            raise ApiError(400, 'the body must be {"params": {...}, "launch": false}')
        changes = body.get("params") or {}
        launch = body.get("launch", False)
        if not isinstance(changes, dict) or not isinstance(launch, bool):
            raise ApiError(400, '"params" must be an object and "launch" true or false')
        with self.project(project_id) as project:
            # copy_runs, not copy_run: a parameter may be named like copy_run's own arguments
            copy = project.copy_runs([number], {number: changes}, launch=launch)[number]
            log.info("copied run %d of %s as run %d", number, project.path, copy.id)
            self.set_status(201)
            self.finish(details.run_details(project, copy.id, LOG_LINES))


class EventsHandler(CryolabHandler):
    """``GET .../events?since=N&wait=S``: :meth:`Project.events` after event id N.

    With ``wait`` (seconds, at most 30) the answer waits until an event exists (long
    polling); it comes within :data:`POLL_INTERVAL` of the event. ``last`` is the id to pass
    as ``since`` next time.
    """

    @web.authenticated
    @authorized
    async def get(self, project_id: str) -> None:
        since = int(self.argument("since", 0, 0, 2**62, int))
        wait = self.argument("wait", 0.0, 0.0, MAX_WAIT)
        with self.project(project_id) as project:
            deadline = time.monotonic() + wait
            events = project.events(since)
            while not events and time.monotonic() < deadline:
                await asyncio.sleep(POLL_INTERVAL)
                events = project.events(since)
            last = events[-1]["id"] if events else since
            self.finish({"id": project_id, "events": events, "last": last})


class NotFoundHandler(CryolabHandler):
    """Any other path under ``/cryolab/api/``: a JSON 404 (after authentication)."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        raise ApiError(404, f"no such cryolab API endpoint: {self.request.path}")

    @web.authenticated
    @authorized
    async def post(self) -> None:
        raise ApiError(404, f"no such cryolab API endpoint: {self.request.path}")


def setup_handlers(web_app: web.Application, registry: ProjectRegistry) -> None:
    """Register the API handlers on the Jupyter server's application."""
    from cryolab.server.thumbnails import PageHandler  # it builds on CryolabHandler

    web_app.settings["cryolab_registry"] = registry
    api = url_path_join(web_app.settings["base_url"], "cryolab", "api")
    project = f"{api}/projects/{SEGMENT.format('project_id')}"
    run = f"{project}/runs/{SEGMENT.format('run_id')}"
    web_app.add_handlers(
        ".*$",
        [
            (f"{api}/projects", ProjectsHandler),
            (f"{project}/graph", GraphHandler),
            (f"{project}/events", EventsHandler),
            (run, RunHandler),
            (f"{run}/abort", AbortHandler),
            (f"{run}/copy", CopyHandler),
            (f"{run}/outputs/{SEGMENT.format('name')}/page", PageHandler),
            (f"{api}(?:/.*)?", NotFoundHandler),
        ],
    )
