"""Layered configuration, read at call time: defaults, then the user file, then the environment.

The user file is ``$CRYOLAB_CONFIG`` or ``~/.config/cryolab/config.toml``::

    executor = "local"   # "local" or "sync"
    cores = 8            # cores a run may use by default (empty: all)
    projects = ["~/cryo/projects"]   # folders the Jupyter server extension may serve

Environment variables ``CRYOLAB_EXECUTOR``, ``CRYOLAB_CORES`` and ``CRYOLAB_PROJECTS`` (folders
separated by ``os.pathsep``) override the file, and values given in code
(``project.run(..., cores=4)``) override both.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from cryolab.core.errors import CryolabError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DEFAULTS: dict[str, Any] = {"executor": "local", "cores": None, "projects": []}


def _folders(text: str) -> list[str]:
    """A list of folders from ``CRYOLAB_PROJECTS`` (``os.pathsep``-separated)."""
    return [part for part in text.split(os.pathsep) if part]


_PARSERS: dict[str, Any] = {"executor": str, "cores": int, "projects": _folders}


def config_path() -> Path:
    """Where the user configuration file is looked for."""
    explicit = os.environ.get("CRYOLAB_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))
    return base / "cryolab" / "config.toml"


def _read_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise CryolabError(f"configuration file {path} is malformed: {exc}") from None
    unknown = sorted(set(data) - set(DEFAULTS))
    if unknown:
        raise CryolabError(
            f"configuration file {path}: unknown key(s) {unknown}; known: {sorted(DEFAULTS)}"
        )
    return data


def settings(**overrides: Any) -> dict[str, Any]:
    """The effective settings; ``overrides`` that are not ``None`` win over everything."""
    merged = dict(DEFAULTS)
    merged.update(_read_file(config_path()))
    for key, parse in _PARSERS.items():
        text = os.environ.get(f"CRYOLAB_{key.upper()}")
        if text:
            try:
                merged[key] = parse(text)
            except ValueError:
                raise CryolabError(f"CRYOLAB_{key.upper()}={text!r} is not a valid {key}") from None
    merged.update({k: v for k, v in overrides.items() if v is not None})
    return merged
