"""binder/: the repository opens on mybinder.org or a JupyterHub with both extensions enabled.

repo2docker itself is not run here (it needs Docker); instead the pieces it relies on are
checked: its files are well formed, postBuild installs what the lockfile pins, and the
non-editable package postBuild installs carries the lab extension and the server-extension
configuration where Jupyter finds them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from jupyter_core.paths import ENV_CONFIG_PATH, ENV_JUPYTER_PATH
from jupyter_server.extension.config import ExtensionConfigManager

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
LABEXTENSION = ROOT / "src" / "cryolab" / "labextension"
JUPYTER = Path(sys.executable).parent / "jupyter"


def post_build_commands() -> list[str]:
    """The shell lines of postBuild, without comments and blank lines."""
    text = (BINDER / "postBuild").read_text()
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def test_environment_gives_python_node_and_pip() -> None:
    environment = yaml.safe_load((BINDER / "environment.yml").read_text())
    assert environment["channels"] == ["conda-forge"]
    wanted = {re.split(r"[=<>]", item)[0]: item for item in environment["dependencies"]}
    assert set(wanted) == {"python", "nodejs", "pip"}
    python = tuple(int(part) for part in wanted["python"].split("=")[1].split("."))
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert python >= tuple(int(part) for part in requires.removeprefix(">=").split("."))
    # the Makefile builds the extension with node >= 18
    assert int(wanted["nodejs"].split(">=")[1]) >= 18


def test_post_build_is_an_executable_bash_script() -> None:
    script = BINDER / "postBuild"
    assert os.access(script, os.X_OK)
    assert script.read_text().startswith("#!/bin/bash\n")
    subprocess.run(["bash", "-n", str(script)], check=True)
    assert "set -euo pipefail" in post_build_commands()


def test_post_build_installs_the_locked_versions_of_existing_extras() -> None:
    commands = post_build_commands()
    helper = next(line for line in commands if line.startswith("pip_install()"))
    assert "--constraint requirements/dev.lock" in helper
    assert (ROOT / "requirements" / "dev.lock").is_file()
    installs = [line.split(None, 1)[1] for line in commands if line.startswith("pip_install ")]
    assert installs == ["jupyter-builder", '".[jupyter]"']
    lock = (ROOT / "requirements" / "dev.lock").read_text()
    assert re.search(r"^jupyter-builder==", lock, re.MULTILINE)
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "jupyter" in extras["optional-dependencies"]
    # not editable: an editable install would leave out the extensions' data files
    assert not any(" -e " in line or "--editable" in line for line in commands)
    # the extension is built before the package that carries it is installed
    build = next(i for i, line in enumerate(commands) if "npm run build" in line)
    install = next(i for i, line in enumerate(commands) if line == 'pip_install ".[jupyter]"')
    assert build < install
    assert (ROOT / "extension" / "package-lock.json").is_file()  # npm ci needs it


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cryolab's wheel, built (as postBuild's ``pip install .`` does) from a copy of the tree."""
    if not (LABEXTENSION / "package.json").is_file():
        if os.environ.get("CI"):
            pytest.fail("the lab extension is not built: run `make extension`")
        pytest.skip("the lab extension is not built (make extension)")
    source = tmp_path_factory.mktemp("tree")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "jupyter-config", source / "jupyter-config")
    (source / "extension").mkdir()
    shutil.copy2(ROOT / "extension" / "install.json", source / "extension" / "install.json")
    shutil.copytree(
        ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", str(source), "-w", str(out)],
        check=True,
        timeout=300,
    )
    (built,) = out.glob("cryolab-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prefix holding the wheel's data files where an install puts them (``<prefix>/share``,
    ``<prefix>/etc``); unpacked by hand, since ``pip install --prefix`` would first uninstall
    the development copy of cryolab from this environment."""
    prefix = tmp_path_factory.mktemp("prefix")
    with zipfile.ZipFile(wheel) as archive:
        data = f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.data/data/"
        members = [name for name in archive.namelist() if name.startswith(data)]
        assert members, f"{wheel.name} has no data files"
        for name in members:
            target = prefix / name.removeprefix(data)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(name))
    return prefix


def test_the_wheel_carries_the_lab_extension_and_the_server_config(installed: Path) -> None:
    extension = installed / "share" / "jupyter" / "labextensions" / "cryolab"
    package = json.loads((extension / "package.json").read_text())
    assert package["name"] == "cryolab"
    entry = package["jupyterlab"]["_build"]["load"]
    assert (extension / entry).is_file()  # static/remoteEntry.<hash>.js
    assert json.loads((extension / "install.json").read_text())["packageName"] == "cryolab"
    config = installed / "etc" / "jupyter" / "jupyter_server_config.d" / "cryolab.json"
    enabled = json.loads(config.read_text())["ServerApp"]["jpserver_extensions"]
    assert enabled == {"cryolab.server": True}


def jupyter_listing(*args: str, **environment: str) -> str:
    """What ``jupyter ARGS`` prints (both streams, without colours)."""
    done = subprocess.run(
        [str(JUPYTER), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**os.environ, **environment},
    )
    return re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)


def section(listing: str, folder: Path) -> str:
    """The part of a listing under the header naming ``folder`` (up to the next blank line)."""
    start = listing.index(str(folder))
    end = listing.find("\n\n", start)
    return listing[start : None if end < 0 else end]


def test_jupyter_finds_both_extensions_of_the_installed_wheel(installed: Path) -> None:
    # the folders of an environment (sys.prefix) that Jupyter reads, relative to it
    assert Path(ENV_JUPYTER_PATH[0]).relative_to(sys.prefix) == Path("share/jupyter")
    assert Path(ENV_CONFIG_PATH[0]).relative_to(sys.prefix) == Path("etc/jupyter")
    labextensions = installed / "share" / "jupyter" / "labextensions"
    listing = jupyter_listing("labextension", "list", JUPYTER_PATH=str(installed / "share/jupyter"))
    assert re.search(
        r"cryolab v\S+ enabled OK \(python, cryolab\)", section(listing, labextensions)
    )
    # what ServerApp.find_server_extensions reads from each configuration folder
    config = ExtensionConfigManager(read_config_path=[str(installed / "etc" / "jupyter")])
    assert config.get_jpserver_extensions() == {"cryolab.server": True}


def test_the_development_environment_has_both_extensions_enabled() -> None:
    if not (LABEXTENSION / "package.json").is_file():
        pytest.skip("the lab extension is not built (make extension)")
    assert re.search(r"cryolab v\S+ enabled OK", jupyter_listing("labextension", "list"))
    listing = jupyter_listing("server", "extension", "list")
    assert re.search(r"cryolab\.server enabled", listing)
    assert re.search(r"cryolab\.server\s+OK", listing)
