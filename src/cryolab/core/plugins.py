"""Plugin discovery through the ``cryolab.plugins`` entry-point group.

A plugin package declares, in its ``pyproject.toml``::

    [project.entry-points."cryolab.plugins"]
    myplugin = "myplugin:plugin"

where ``plugin`` is a :class:`Plugin` naming its protocols as ``"module:Class"`` strings, so
listing protocols imports no protocol code. Built-in protocols register the same way.
Discovery never raises: a plugin or protocol that fails to load is listed as unavailable,
with its error.

A plugin under development can be used without installing it by naming it in the environment
variable ``CRYOLAB_PLUGINS`` (``name=module:attribute``, comma-separated); run processes
inherit the variable, so they find the same protocols.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any

from cryolab.core.errors import PluginError, ProtocolNotFoundError

if TYPE_CHECKING:
    from cryolab.core.protocol import Protocol

GROUP = "cryolab.plugins"
ENVIRONMENT_VARIABLE = "CRYOLAB_PLUGINS"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plugin:
    """What a plugin provides.

    Parameters
    ----------
    name
        The plugin's name.
    version
        Its version (shown in provenance).
    protocols
        Protocol name to ``"module:Class"``.
    programs
        Names of wrapped external programs, for provenance and update checks.
    """

    name: str
    version: str = ""
    protocols: Mapping[str, str] = field(default_factory=dict)
    programs: tuple[str, ...] = ()
    set_types: tuple[str, ...] = ()  # modules defining Set subclasses, imported on demand
    # set type name -> "module:attribute" of an item comparator (cryolab.core.reproduce_compare)
    comparators: Mapping[str, str] = field(default_factory=dict)


@dataclass
class ProtocolEntry:
    """A protocol as discovered: where it comes from and whether it can be loaded."""

    name: str
    plugin: str
    target: str
    error: str | None = None

    @property
    def available(self) -> bool:
        """Whether the protocol class could be (or has not yet failed to be) loaded."""
        return self.error is None


@dataclass
class PluginEntry:
    """A discovered plugin, loaded or not."""

    name: str
    target: str
    plugin: Plugin | None = None
    error: str | None = None


class Registry:
    """The protocols of all installed plugins, discovered lazily on first use."""

    def __init__(self) -> None:
        self._plugins: dict[str, PluginEntry] | None = None
        self._protocols: dict[str, ProtocolEntry] = {}
        self._classes: dict[str, type[Protocol]] = {}

    def refresh(self) -> None:
        """Forget what was discovered; the next query looks at the entry points again."""
        self._plugins = None
        self._protocols = {}
        self._classes = {}

    def plugins(self) -> dict[str, PluginEntry]:
        """All plugins of the entry-point group, with their load errors."""
        if self._plugins is None:
            self._discover()
        assert self._plugins is not None
        return self._plugins

    def _discover(self) -> None:
        self._plugins = {}
        points = list(metadata.entry_points(group=GROUP))
        for text in os.environ.get(ENVIRONMENT_VARIABLE, "").split(","):
            name, _, value = text.strip().partition("=")
            if name and value:
                points.append(metadata.EntryPoint(name=name, value=value, group=GROUP))
        for point in points:
            entry = PluginEntry(point.name, point.value)
            try:
                loaded = point.load()
                if not isinstance(loaded, Plugin):
                    raise PluginError(f"{point.value} is a {type(loaded).__name__}, not a Plugin")
                _check_plugin(loaded)
                entry.plugin = loaded
            except Exception as exc:  # a broken plugin must not break discovery
                entry.error = f"{type(exc).__name__}: {exc}"
                log.warning("plugin %s (%s) is unavailable: %s", point.name, point.value, exc)
            self._plugins[point.name] = entry
            if entry.plugin is None:
                continue
            for name, target in entry.plugin.protocols.items():
                if name in self._protocols:
                    log.warning(
                        "protocol %s of plugin %s hides the one of plugin %s",
                        name,
                        point.name,
                        self._protocols[name].plugin,
                    )
                self._protocols[name] = ProtocolEntry(name, point.name, target)

    def protocols(self) -> dict[str, ProtocolEntry]:
        """Protocol name to entry, for every protocol of every loadable plugin."""
        self.plugins()
        return dict(sorted(self._protocols.items()))

    def get(self, name: str) -> type[Protocol]:
        """Return the protocol class registered as ``name``.

        Raises
        ------
        ProtocolNotFoundError
            If no plugin provides ``name`` (the message suggests close names).
        PluginError
            If the protocol is known but its code fails to import.
        """
        if name in self._classes:
            return self._classes[name]
        entries = self.protocols()
        entry = entries.get(name)
        if entry is None:
            import difflib

            close = difflib.get_close_matches(name, list(entries), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ProtocolNotFoundError(f"unknown protocol {name!r}{hint}")
        if entry.error is None:
            try:
                self._classes[name] = _load_class(entry.target)
            except Exception as exc:
                entry.error = f"{type(exc).__name__}: {exc}"
                log.debug("protocol %s failed to load:\n%s", name, traceback.format_exc())
        if entry.error is not None:
            raise PluginError(
                f"protocol {name!r} of plugin {entry.plugin!r} is unavailable: {entry.error}"
            )
        return self._classes[name]

    def import_set_types(self) -> None:
        """Import every plugin's set-type modules (so sets read from disk get their class)."""
        for entry in self.plugins().values():
            for module in entry.plugin.set_types if entry.plugin else ():
                try:
                    importlib.import_module(module)
                except Exception as exc:  # a broken plugin must not break reading sets
                    log.warning(
                        "set types of plugin %s (%s) unavailable: %s", entry.name, module, exc
                    )

    def comparator(self, types: Sequence[str]) -> Any:
        """The item comparator of the most specific type of ``types`` that has one, or None.

        Comparators read what columns only point to (image files, ...): see
        :class:`cryolab.core.reproduce_compare.ItemComparator`. They are named by plugins
        (``Plugin.comparators``) and imported on first use; one that fails to import is
        logged and treated as absent.
        """
        for type_name in types:
            for entry in self.plugins().values():
                target = entry.plugin.comparators.get(type_name) if entry.plugin else None
                if target is None:
                    continue
                module_name, _, attribute = target.partition(":")
                try:
                    return getattr(importlib.import_module(module_name), attribute)
                except Exception as exc:  # a broken plugin must not break comparisons
                    log.warning(
                        "comparator %s of plugin %s unavailable: %s", target, entry.name, exc
                    )
        return None

    def check_all(self) -> dict[str, ProtocolEntry]:
        """Try to load every protocol, recording errors; for ``cryolab protocols``."""
        for name in self.protocols():
            with contextlib.suppress(PluginError):
                self.get(name)
        return self.protocols()


def _check_plugin(plugin: Plugin) -> None:
    """Refuse a Plugin whose ``protocols`` is not a mapping of names to ``"module:Class"``."""
    if not isinstance(plugin.protocols, Mapping):
        raise PluginError(
            f"plugin {plugin.name!r}: protocols must map names to "
            f"'module:Class' strings, not be a {type(plugin.protocols).__name__}"
        )
    bad = [
        name
        for name, target in plugin.protocols.items()
        if not (isinstance(name, str) and isinstance(target, str) and ":" in target)
    ]
    if bad:
        raise PluginError(
            f"plugin {plugin.name!r}: protocol(s) {bad} must name their class "
            "as a 'module:Class' string"
        )


def _load_class(target: str) -> type[Protocol]:
    from cryolab.core.protocol import Protocol

    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, Protocol)):
        raise PluginError(f"{target} is not a Protocol subclass")
    return cls


registry = Registry()
