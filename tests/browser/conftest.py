"""A real JupyterLab started by the tests and driven by Debian's Chromium through Playwright.

Chromium comes from the distribution (``make browser`` installs it; ``.ci/run`` calls that), never
from a Playwright download. Without it the browser tests skip, except under CI, where they fail.
Screenshots go to ``tests/browser/screenshots/`` (gitignored).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("CRYOLAB_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(__file__).parent / "screenshots"
TOKEN = "cryolab-browser-tests"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Lab:
    """A running JupyterLab: its URL, token and folder."""

    def __init__(self, url: str, root: Path) -> None:
        self.url = url
        self.root = root

    def api(self, path: str, method: str = "GET") -> Any:
        """A JSON response of the server's REST API (authenticated with the token)."""
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {TOKEN}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def page_url(self, path: str, front: str = "lab") -> str:
        """The page of a notebook in JupyterLab (``front="lab"``) or Notebook 7 (``"notebook"``)."""
        if front == "notebook":
            return f"{self.url}/notebooks/{path}?token={TOKEN}"
        # a workspace of its own, reset: a page never reopens the notebooks of an earlier test
        workspace = Path(path).stem
        return f"{self.url}/lab/workspaces/{workspace}/tree/{path}?reset&token={TOKEN}"


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing (make browser installs it)")
    return CHROMIUM


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory, chromium: Path) -> Iterator[Lab]:
    """JupyterLab on a free local port, its root a temporary folder, the news toast off; the
    cryolab REST API serves the projects made directly in that folder."""
    root = tmp_path_factory.mktemp("lab")
    settings = root / ".settings"
    settings.mkdir()
    (settings / "overrides.json").write_text(
        json.dumps({"@jupyterlab/apputils-extension:notification": {"fetchNews": "false"}})
    )
    port = _free_port()
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(settings / "user")}
    command = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        "--allow-root",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--ServerApp.token={TOKEN}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True",
        "--JupyterNotebookApp.expose_app_in_browser=True",
        f"--LabServerApp.app_settings_dir={settings}",
        # the cryolab REST API (the run-graph panel) serves the projects made in the lab's folder
        f"--CryolabServer.projects={root}",
    ]
    log = (root / "lab.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    started = Lab(url, root)
    deadline = time.monotonic() + 60
    while True:
        try:
            started.api("/api/status")
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError((root / "lab.log").read_text()[-3000:]) from None
            time.sleep(0.3)
    yield started
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Any]:
    """Chromium driven by Playwright's sync API, per test module: the API keeps an event loop
    running in this thread while it is open, which the asyncio tests of later modules (the
    server extension's) must not find."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=str(chromium), headless=True, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    opened = context.new_page()
    yield opened
    context.close()


def screenshot(page: Any, name: str) -> Path:
    """Save a screenshot of the page under ``screenshots/`` and return its path."""
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


def open_notebook(page: Any, lab: Lab, name: str, cells: list[str], front: str = "lab") -> None:
    """Write a notebook of ``cells`` into the lab's folder, open it (in JupyterLab, or in
    Notebook 7 with ``front="notebook"``) and run all its cells."""
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(notebook, lab.root / name)
    page.goto(lab.page_url(name, front))
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    # "Run All" before the kernel is ready is silently ignored: wait for it to be idle
    page.wait_for_function(
        "() => { const w = window.jupyterapp.shell.currentWidget;"
        " return w && w.sessionContext && w.sessionContext.session"
        " && w.sessionContext.session.kernel"
        " && w.sessionContext.session.kernel.status === 'idle'; }",
        timeout=60_000,
    )
    # started, not awaited: the command's promise settles only when every cell has run
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
