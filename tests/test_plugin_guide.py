"""The example plugin of docs/plugins.md works as the page says.

Its files are taken from the page's captioned code blocks, installed as a package (found
through the ``cryolab.plugins`` entry point) or named in ``CRYOLAB_PLUGINS``, and its protocol
runs in a project.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cryolab.core.errors import ParameterError
from cryolab.core.plugins import registry
from cryolab.core.project import Project

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
# a file of the example: a code block captioned with its path, `cryolab_rescale/protocols.py`
BLOCK = re.compile(
    r"^```\{code-block\} \w+\n:caption: `(\S+)`\n\n(.*?)^```$", re.MULTILINE | re.DOTALL
)


def write_example(folder: Path) -> Path:
    """Write the guide's example package into ``folder``; return the package's folder."""
    package = folder / "cryolab-rescale"
    files = BLOCK.findall(GUIDE.read_text())
    assert sorted(name for name, _ in files) == [
        "cryolab_rescale/__init__.py",
        "cryolab_rescale/protocols.py",
        "pyproject.toml",
    ]
    for name, text in files:
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    return package


def use_path(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Make ``folder`` importable here and in run processes."""
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(folder), os.environ["PYTHONPATH"]]))
    registry.refresh()


def check_rescale(project: Project) -> None:
    """Run the example protocol on the test plugin's numbers, as the guide describes."""
    numbers = project.run("test.count", steps=3).wait().out.numbers
    with pytest.raises(ParameterError, match="no column 'score'"):
        project.run("rescale.column", source=numbers, column="score", factor=2.5)
    with pytest.raises(ParameterError, match="erase"):
        project.run("rescale.column", source=numbers, column="value", factor=0.0)
    run = project.run("rescale.column", source=numbers, column="value", factor=2.5, parts=2)
    run.wait(timeout=120)
    source, result = numbers.load(), run.out.rescaled.load()
    assert [step["id"] for step in run.steps()] == ["part-00", "part-01"]
    assert sorted(result.uids) == sorted(source.uids)
    original = dict(zip(source.uids.tolist(), source["value"].tolist(), strict=True))
    expected = [2.5 * original[uid] for uid in result.uids.tolist()]
    np.testing.assert_array_equal(result["value"], expected)
    assert type(result) is type(source)  # Output(like="source")
    record = run.provenance
    assert record["plugin"] == "rescale"
    assert record["versions"]["plugins"]["rescale"] == "0.1.0"


def test_the_installed_example_is_found_through_its_entry_point(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = write_example(tmp_path)
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    subprocess.run([*pip, "--target", str(site), str(package)], check=True, timeout=300)
    assert (site / "cryolab_rescale" / "protocols.py").is_file()
    use_path(monkeypatch, site)
    assert "rescale" not in os.environ["CRYOLAB_PLUGINS"]
    entry = registry.plugins()["rescale"]
    assert entry.error is None and entry.target == "cryolab_rescale:plugin"
    assert registry.protocols()["rescale.column"].plugin == "rescale"
    check_rescale(project)


def test_the_example_works_from_its_folder_through_cryolab_plugins(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = write_example(tmp_path)
    monkeypatch.setenv(
        "CRYOLAB_PLUGINS", os.environ["CRYOLAB_PLUGINS"] + ",rescale=cryolab_rescale:plugin"
    )
    use_path(monkeypatch, package)
    listing = subprocess.run(
        [str(Path(sys.executable).parent / "cryolab"), "protocols"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert re.search(r"^rescale\.column +Multiply a numeric column", listing.stdout, re.M), listing
    check_rescale(project)
