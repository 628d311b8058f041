"""The generic project report: graph, parameters, methods with references, files, RO-Crate."""

from __future__ import annotations

import copy
import json
import zlib
from pathlib import Path

import numpy as np
import pytest
from rocrate_profile import violations

from cryolab.core.bibliography import Bibliography, parse
from cryolab.core.errors import ProjectError
from cryolab.core.figures import Figure, png
from cryolab.core.plugins import registry
from cryolab.core.project import Project
from cryolab.core.protocol import CRYOLAB_BIBTEX
from cryolab.core.report import Report
from cryolab.core.svgplot import Guide, Series, nice_ticks, plot


def _source(cls: type) -> str:
    """The source of a class and its bases up to Protocol (methods may be inherited)."""
    import inspect

    return "".join(
        inspect.getsource(k) for k in cls.__mro__ if k.__module__.startswith("cryolab.protocols")
    )


TIMEOUT = 60


@pytest.fixture
def two_runs(project: Project, tmp_path: Path) -> Project:
    table = tmp_path / "table.csv"
    table.write_text("x,y\n" + "".join(f"{i},{i % 3}\n" for i in range(9)), encoding="utf-8")
    project.run("sets.import_table", files=str(table), label="rows").wait(TIMEOUT)
    project.run("sets.subset", source="1.rows", where="x < 6").wait(TIMEOUT)
    project.save("sets.subset", source="2.subset", where="y == 1")  # never launched
    return project


def test_the_report_lists_runs_params_methods_and_references(two_runs: Project) -> None:
    report = two_runs.report()
    assert [r.id for r in report.runs] == [1, 2, 3]
    assert report.runs[1].params["where"] == "x < 6"
    # finished runs are described; the saved run is listed but not in the methods
    assert [s.runs for s in report.methods] == [[], [1], [2]]
    assert "Items were selected where x < 6." in report.methods_text
    assert report.methods_text.startswith("Data were processed with cryolab")
    assert "[1]" in report.methods_text
    assert [e.key for e in report.references] == ["cryolab"]
    assert report.runs[1].cited == ["cryolab"]
    html = report.to_html()
    assert 'class="cryolab-run-graph"' in html and html.count('class="cryolab-node"') == 3
    assert "x &lt; 6" in html and 'id="ref-1"' in html and 'href="#ref-1"' in html
    assert report._repr_html_().startswith("<style>")


def test_write_makes_html_markdown_and_a_valid_crate(two_runs: Project, tmp_path: Path) -> None:
    out = tmp_path / "report"
    assert two_runs.report(out).path == two_runs.path  # report(out_dir) writes too
    written = Report(two_runs).write(out)
    assert {p.name for p in out.iterdir()} >= {
        "report.html",
        "report.md",
        "ro-crate-metadata.json",
        "workflow.json",
    }
    assert written["html"].read_text().startswith("<!DOCTYPE html>")
    markdown = written["md"].read_text()
    assert "| where | x < 6 |" in markdown and "## References" in markdown
    assert "1. cryolab developers (2026)." in markdown
    workflow = json.loads((out / "workflow.json").read_text())
    assert workflow["format"] == "cryolab.workflow" and len(workflow["runs"]) == 3
    crate = json.loads(written["crate"].read_text())
    assert violations(crate, out) == []
    actions = {e["@id"]: e for e in crate["@graph"] if e["@type"] == "CreateAction"}
    assert set(actions) == {"#workflow-run", "#run-1", "#run-2"}  # the saved run never ran
    assert actions["#run-2"]["instrument"] == {"@id": "#protocol-sets.subset"}
    assert {"@id": "#run-1-output-rows"} in actions["#run-2"]["object"]
    values = {e["@id"]: e for e in crate["@graph"] if e["@type"] == "PropertyValue"}
    assert values["#run-2-param-where"]["value"] == "x < 6"


def test_a_crate_without_main_entity_or_profile_fails_the_checker(
    two_runs: Project, tmp_path: Path
) -> None:
    crate = json.loads(Report(two_runs).write(tmp_path / "r", ["crate"])["crate"].read_text())
    assert violations(crate, tmp_path / "r") == []
    broken = copy.deepcopy(crate)
    root = next(e for e in broken["@graph"] if e["@id"] == "./")
    del root["mainEntity"]
    assert any("mainEntity" in v for v in violations(broken))
    broken = copy.deepcopy(crate)
    root = next(e for e in broken["@graph"] if e["@id"] == "./")
    root["conformsTo"] = [{"@id": "https://w3id.org/ro/wfrun/process/0.5"}]
    assert any("workflow profile" in v for v in violations(broken))
    (tmp_path / "r" / "workflow.json").unlink()
    assert any("payload" in v for v in violations(crate, tmp_path / "r"))


def test_write_refuses_a_file_and_unknown_formats(two_runs: Project, tmp_path: Path) -> None:
    report = Report(two_runs)
    target = tmp_path / "taken"
    target.write_text("x")
    with pytest.raises(ProjectError, match="it is a file"):
        report.write(target)
    with pytest.raises(ProjectError, match="unknown report format"):
        report.write(tmp_path / "new", ["pdf"])
    assert not (tmp_path / "new").exists()


def test_an_empty_project_reports_without_runs(project: Project) -> None:
    report = project.report()
    assert report.runs == [] and "in 0 runs" in report.methods_text
    assert "No run has outputs with figures yet." in report.to_html()


def test_a_run_whose_protocol_is_not_installed_is_listed_with_a_note(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    count = project.run("test.count", steps=1).wait(TIMEOUT)
    project.run("sets.subset", source=count.out.numbers, where="value < 3").wait(TIMEOUT)
    monkeypatch.setenv("CRYOLAB_PLUGINS", "")  # the test plugin is uninstalled
    registry.refresh()
    report = Report(project)
    assert [r.protocol for r in report.runs] == ["test.count", "sets.subset"]
    assert "test.count is not available in this installation" in report.runs[0].note
    assert report.runs[1].note == ""
    assert "Run 1 used the protocol test.count." in report.methods_text
    assert "Items were selected where value < 3." in report.methods_text
    written = report.write(tmp_path / "r", ["html", "crate"])
    assert set(written) == {"html"}  # no workflow, so no crate
    assert report.crate_note is not None and "unknown protocol 'test.count'" in report.crate_note
    html = written["html"].read_text()
    assert html.count('class="note"') == 2 and "No RO-Crate was written" in html
    report.write(tmp_path / "r", ["html"])  # no crate asked for: nothing to note
    assert report.crate_note is None
    assert "No RO-Crate" not in (tmp_path / "r" / "report.html").read_text()


def test_bibtex_entries_are_read_numbered_and_formatted() -> None:
    entry = parse(CRYOLAB_BIBTEX)
    assert entry.key == "cryolab" and entry.fields["year"] == "2026"
    bib = Bibliography()
    bib.add(CRYOLAB_BIBTEX)
    bib.add(
        '@article{a2020,\n  title = {On {\\AA}ngstr{\\"o}ms},\n'
        "  author = {Doe, Jane and Roe, R.},\n"
        "  journal = {J}, pages = {1--2}, year = {2020}, doi = {10.1/x}\n}"
    )
    text, cited = bib.resolve("First [a2020], then [cryolab, a2020] and [unknown].")
    assert text == "First [1], then [1, 2] and [unknown]."
    assert cited == ["a2020", "cryolab"]
    assert (
        bib.cited()[0].text() == "Doe, J. & Roe, R. (2020). On Ångströms. J, 1\u20132. doi:10.1/x"
    )
    with pytest.raises(ValueError, match="not a BibTeX entry"):
        parse("@article{broken, title = {x}")


def test_every_builtin_protocol_has_methods_citing_known_entries() -> None:
    builtin = [n for n, e in registry.protocols().items() if e.plugin == "builtin"]
    assert len(builtin) > 20
    for name in builtin:
        cls = registry.get(name)
        keys = cls.citation_keys()
        assert keys[0] == "cryolab", name
        assert len(keys) == len(set(keys)), name
        cls.bibtex()  # every citation is a well-formed entry
        assert "def methods" in _source(cls), f"{name} has no methods text of its own"


def test_svg_plots_have_axes_ticks_labels_and_guides() -> None:
    assert nice_ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(3.2, 17.9, 5) == [5, 10, 15]
    svg = plot(
        [Series([0, 1, 2], [1.0, 0.5, np.nan], "curve")],
        title="T <x>",
        x_label="frequency",
        y_label="FSC",
        y_range=(-0.1, 1.05),
        guides=[Guide(0.143, "y", "0.143"), Guide(5.0, "x", "outside")],
    )
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "T &lt;x&gt;" in svg and ">frequency<" in svg and ">FSC<" in svg and "0.143" in svg
    assert svg.count("<polyline") == 1 and "outside" not in svg  # guides off the axes


def test_png_pictures_decode_to_their_pixels() -> None:
    image = (np.arange(12, dtype=np.uint8) * 20).reshape(3, 4)
    data = png(image)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    idat = data.index(b"IDAT")
    length = int.from_bytes(data[idat - 4 : idat], "big")
    raw = zlib.decompress(data[idat + 4 : idat + 4 + length])
    rows = np.frombuffer(raw, np.uint8).reshape(3, 5)
    assert (rows[:, 0] == 0).all() and (rows[:, 1:] == image).all()
    figure = Figure("x", "X", "caption", "png", data)
    assert figure.html().startswith('<img src="data:image/png;base64,')
    with pytest.raises(ValueError):
        Figure("x", "X", "", "gif", b"")
