"""Plugin discovery: entry points, laziness, and broken plugins that must not break the rest."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

import cryolab.protocols
from cryolab.core.errors import CryolabError, PluginError, ProtocolNotFoundError
from cryolab.core.plugins import GROUP, Plugin, Registry, registry
from cryolab.core.protocol import Protocol

BUILTIN = {"sets.import_table", "sets.subset", "sets.merge", "sets.split", "sets.join"}
BROKEN = "testplugin=testplugin:plugin,broken=no_such_module:plugin"


@pytest.fixture
def module_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path for throw-away plugin modules (removed from sys.modules after)."""
    folder = tmp_path / "mods"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    before = set(sys.modules)
    yield folder
    for name in set(sys.modules) - before:
        if name.startswith(("fakeplug", "notaplugin", "badprotocols", "notaprotocol")):
            del sys.modules[name]


def write_module(folder: Path, name: str, text: str) -> None:
    (folder / f"{name}.py").write_text(textwrap.dedent(text), encoding="utf-8")


# -- the built-in protocols come through the real entry point ---------------------------------
def test_builtin_protocols_are_declared_as_an_entry_point() -> None:
    points = {p.name: p.value for p in metadata.entry_points(group=GROUP)}
    assert points.get("builtin") == "cryolab.protocols:plugin"


def test_builtin_protocols_are_discovered_without_the_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CRYOLAB_PLUGINS", raising=False)
    registry.refresh()
    plugins = registry.plugins()
    assert set(plugins) >= {"builtin"}
    assert "testplugin" not in plugins
    assert plugins["builtin"].plugin is cryolab.protocols.plugin
    assert plugins["builtin"].error is None
    protocols = registry.protocols()
    assert set(protocols) >= BUILTIN
    assert not any(name.startswith("test.") for name in protocols)
    assert all(protocols[name].plugin == "builtin" for name in BUILTIN)
    assert protocols["sets.subset"].target == "cryolab.protocols.sets.subset:Subset"


def test_get_loads_the_protocol_class() -> None:
    from cryolab.protocols.sets.subset import Subset

    cls = registry.get("sets.subset")
    assert cls is Subset
    assert issubclass(cls, Protocol)
    assert cls.name == "sets.subset"
    assert registry.get("sets.subset") is cls  # cached


def test_the_environment_variable_adds_the_test_plugin() -> None:
    plugins = registry.plugins()
    assert plugins["testplugin"].target == "testplugin:plugin"
    assert plugins["testplugin"].plugin is not None
    assert plugins["testplugin"].plugin.version == "0.0"
    assert {"test.count", "test.sum", "test.trivial", "test.missing"} <= set(registry.protocols())
    assert registry.get("test.count").name == "test.count"


def test_protocols_are_listed_sorted() -> None:
    names = list(registry.protocols())
    assert names == sorted(names)


def test_listing_protocols_imports_no_protocol_code() -> None:
    script = textwrap.dedent("""
        import json, sys
        from cryolab.core.plugins import registry
        names = sorted(registry.protocols())
        before = sorted(m for m in sys.modules if m.startswith("cryolab.protocols.sets."))
        registry.get("sets.subset")
        after = "cryolab.protocols.sets.subset" in sys.modules
        print(json.dumps({"names": names, "before": before, "after": after}))
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    import json

    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(result["names"]) >= BUILTIN
    assert result["before"] == []  # listing imported none of the protocol modules
    assert result["after"] is True  # and get() does import the one asked for


def test_refresh_forgets_what_was_discovered(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "test.count" in registry.protocols()
    monkeypatch.delenv("CRYOLAB_PLUGINS")
    assert "test.count" in registry.protocols()  # still cached
    registry.refresh()
    assert "test.count" not in registry.protocols()


# -- broken plugins and protocols ---------------------------------------------------------------
def test_a_plugin_that_cannot_be_imported_is_listed_with_its_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRYOLAB_PLUGINS", BROKEN)
    registry.refresh()
    plugins = registry.plugins()
    assert plugins["broken"].plugin is None
    assert plugins["broken"].target == "no_such_module:plugin"
    assert "ModuleNotFoundError" in (plugins["broken"].error or "")
    assert "no_such_module" in (plugins["broken"].error or "")
    # the others are found all the same
    assert plugins["testplugin"].error is None
    protocols = registry.protocols()
    assert set(protocols) >= BUILTIN
    assert "test.count" in protocols
    assert registry.get("sets.split").name == "sets.split"
    assert registry.get("test.count").name == "test.count"


def test_an_entry_point_that_is_not_a_plugin(
    monkeypatch: pytest.MonkeyPatch, module_dir: Path
) -> None:
    write_module(module_dir, "notaplugin", "plugin = {'name': 'x', 'protocols': {}}\n")
    monkeypatch.setenv("CRYOLAB_PLUGINS", "testplugin=testplugin:plugin,odd=notaplugin:plugin")
    registry.refresh()
    entry = registry.plugins()["odd"]
    assert entry.plugin is None
    assert "PluginError" in (entry.error or "")
    assert "is a dict, not a Plugin" in (entry.error or "")
    assert "test.count" in registry.protocols()
    assert set(registry.protocols()) >= BUILTIN


def test_a_plugin_whose_protocols_are_not_a_mapping_does_not_break_discovery(
    monkeypatch: pytest.MonkeyPatch, module_dir: Path
) -> None:
    """Bug fixed: ``protocols=[...]`` made discovery itself raise AttributeError."""
    write_module(
        module_dir,
        "badprotocols",
        """
        from cryolab.core.plugins import Plugin
        plugin = Plugin(name="bad", protocols=["bad.thing"])
        objects = Plugin(name="objects", protocols={"bad.object": object})
    """,
    )
    monkeypatch.setenv(
        "CRYOLAB_PLUGINS",
        "testplugin=testplugin:plugin,bad=badprotocols:plugin,objects=badprotocols:objects",
    )
    registry.refresh()
    plugins = registry.plugins()
    assert plugins["bad"].plugin is None
    assert "protocols must map names" in (plugins["bad"].error or "")
    assert plugins["objects"].plugin is None
    assert "bad.object" in (plugins["objects"].error or "")
    protocols = registry.protocols()
    assert "bad.thing" not in protocols
    assert "bad.object" not in protocols
    assert set(protocols) >= BUILTIN
    assert "test.count" in protocols


def test_a_missing_protocol_class_raises_plugin_error_on_get() -> None:
    assert "test.missing" in registry.protocols()
    assert registry.protocols()["test.missing"].available  # not tried yet: lazy
    with pytest.raises(PluginError) as info:
        registry.get("test.missing")
    message = str(info.value)
    assert "test.missing" in message
    assert "testplugin" in message
    assert "DoesNotExist" in message
    entry = registry.protocols()["test.missing"]
    assert not entry.available
    assert "AttributeError" in (entry.error or "")
    with pytest.raises(PluginError):  # the error is remembered
        registry.get("test.missing")


def test_check_all_lists_unavailable_protocols_and_loads_the_rest() -> None:
    entries = registry.check_all()
    assert entries["test.missing"].available is False
    assert "DoesNotExist" in (entries["test.missing"].error or "")
    assert entries["test.missing"].plugin == "testplugin"
    for name in [*BUILTIN, "test.count", "test.sum", "test.trivial"]:
        assert entries[name].available, (name, entries[name].error)
        assert entries[name].error is None


def test_a_target_that_is_not_a_protocol_class(
    monkeypatch: pytest.MonkeyPatch, module_dir: Path
) -> None:
    write_module(
        module_dir,
        "notaprotocol",
        """
        from cryolab.core.plugins import Plugin
        class NotAProtocol:
            pass
        plugin = Plugin(name="np", protocols={"np.thing": "notaprotocol:NotAProtocol"})
    """,
    )
    monkeypatch.setenv("CRYOLAB_PLUGINS", "np=notaprotocol:plugin")
    registry.refresh()
    with pytest.raises(PluginError, match="not a Protocol subclass"):
        registry.get("np.thing")
    assert registry.check_all()["np.thing"].available is False


def test_unknown_protocol_suggests_close_names() -> None:
    with pytest.raises(ProtocolNotFoundError) as info:
        registry.get("sets.subst")
    message = str(info.value)
    assert "unknown protocol 'sets.subst'" in message
    assert "did you mean" in message
    assert "sets.subset" in message
    assert isinstance(info.value, CryolabError)
    assert isinstance(info.value, KeyError)


def test_unknown_protocol_far_from_every_name_has_no_suggestion() -> None:
    with pytest.raises(ProtocolNotFoundError) as info:
        registry.get("zzzzzzzz")
    assert str(info.value) == "unknown protocol 'zzzzzzzz'"


def test_a_new_registry_is_independent() -> None:
    other = Registry()
    assert set(other.protocols()) >= BUILTIN
    assert other.get("sets.merge") is registry.get("sets.merge")


# -- an installed distribution --------------------------------------------------------------------
def test_an_installed_distribution_is_found_through_its_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    info = site / "fakeplug-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fakeplug\nVersion: 1.0\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        "[cryolab.plugins]\nfake = fakeplug:plugin\n", encoding="utf-8"
    )
    write_module(
        site,
        "fakeplug",
        """
        from cryolab.core.params import IntParam
        from cryolab.core.plugins import Plugin
        from cryolab.core.protocol import Protocol, Step

        class Hello(Protocol):
            \"\"\"Says hello.\"\"\"
            name = "fake.hello"
            times = IntParam(default=1)

            def plan(self):
                yield Step("hello", "hello")

        plugin = Plugin(name="fakeplug", version="1.0", protocols={"fake.hello": "fakeplug:Hello"})
    """,
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "fakeplug", raising=False)
    try:
        assert "fake" in {p.name for p in metadata.entry_points(group=GROUP)}
        registry.refresh()
        plugins = registry.plugins()
        assert plugins["fake"].target == "fakeplug:plugin"
        assert plugins["fake"].plugin is not None
        assert plugins["fake"].plugin.version == "1.0"
        assert registry.protocols()["fake.hello"].plugin == "fake"
        cls = registry.get("fake.hello")
        assert cls.name == "fake.hello"
        assert cls.params()["times"].default == 1
        assert set(registry.protocols()) >= BUILTIN
    finally:
        sys.modules.pop("fakeplug", None)


def test_plugin_defaults() -> None:
    plugin = Plugin(name="p")
    assert plugin.protocols == {}
    assert plugin.version == ""
    assert plugin.programs == ()
