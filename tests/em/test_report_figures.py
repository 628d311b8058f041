"""Report figures of EM sets, and the report of the small demo project."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from rocrate_profile import violations

from cryolab.core.plugins import registry
from cryolab.core.project import open_project
from cryolab.core.report import Report
from cryolab.em.imageio import write_stack
from cryolab.em.objects import FSC, SetOfClasses2D, SetOfCTFs


@pytest.fixture(scope="module")
def demo_report(small_demo: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Report, Path]:
    project = open_project(small_demo, create=False)
    out = tmp_path_factory.mktemp("demo-report")
    report = project.report()
    report.write(out)
    return report, out


def test_ctf_figures_plot_defocus_and_fit_resolution() -> None:
    ctfs = SetOfCTFs(
        {
            "ctf.defocus_u": [15000.0, 21000.0],
            "ctf.defocus_v": [14000.0, 20000.0],
            "ctf.resolution": [4.5, np.nan],
        }
    )
    defocus, resolution = ctfs.report_figures()
    assert defocus.format == "svg" and "median 1.75 µm" in defocus.caption
    assert "astigmatism 1000 Å" in defocus.caption
    assert resolution.caption.startswith("Resolution to which") and "4.5 Å" in resolution.caption
    assert SetOfCTFs({"ctf.defocus_u": []}).report_figures() == []


def test_fsc_figure_marks_the_threshold_and_the_resolution() -> None:
    frequency = np.linspace(0, 0.25, 26)
    curve = FSC(
        {"fsc.frequency": frequency, "fsc.value": np.clip(1.2 - frequency * 8, -0.1, 1)},
        properties={"sampling_rate": 2.0},
    )
    (figure,) = curve.report_figures()
    expected = curve.resolution()
    assert f"{expected:.2f} Å" in figure.caption
    svg = figure.data.decode()
    assert "FSC = 0.143" in svg and f"{expected:.1f} Å" in svg and "resolution (Å)" in svg


def test_class_averages_are_a_grid_largest_first(tmp_path: Path) -> None:
    images = np.zeros((3, 16, 16), np.float32)
    for k in range(3):
        images[k, 4 + k : 8 + k, 4:8] = 1
    stack = tmp_path / "classes.mrcs"
    write_stack(stack, images, voxel_size=2.0)
    classes = SetOfClasses2D(
        {
            "image.path": [str(stack)] * 3,
            "image.index": [1, 2, 3],
            "class_id": [1, 2, 3],
            "class.size": [5, 50, 20],
        }
    )
    (figure,) = classes.report_figures()
    assert figure.format == "png" and figure.data.startswith(b"\x89PNG")
    assert "2 (50), 3 (20), 1 (5)" in figure.caption
    missing = SetOfClasses2D({"image.path": [str(tmp_path / "gone.mrcs")], "image.index": [1]})
    assert missing.report_figures() == []  # an unreadable picture is left out, not fatal


def test_the_demo_methods_cite_every_protocol_used(demo_report: tuple[Report, Path]) -> None:
    report, _ = demo_report
    numbers = {entry.key: n for n, entry in enumerate(report.references, start=1)}
    used = {run.protocol for run in report.runs if run.status == "finished"}
    assert used >= {"spa.ctf_estimate", "spa.classify_2d", "spa.refine_3d", "spa.postprocess"}
    for run in report.runs:
        protocol = registry.get(run.protocol)(run.params)
        assert run.methods, run.protocol
        cited = {
            int(n) for group in re.findall(r"\[([\d, ]+)\]", run.methods) for n in group.split(",")
        }
        for key in protocol.cited():
            if key != "cryolab":  # cited once, in the software sentence
                assert numbers[key] in cited, (run.protocol, key, run.methods)
    assert report.methods_text.startswith("Data were processed with cryolab")
    assert "[1]" in report.methods[0].text
    for key in ("rohou2015ctffind4", "grant2015dose", "scheres2012relion", "rosenthal2003optimal"):
        assert key in numbers
    assert all(
        f"[{n}" in report.methods_text or f", {n}]" in report.methods_text for n in numbers.values()
    )


def test_the_demo_report_has_ctf_fsc_and_class_figures(demo_report: tuple[Report, Path]) -> None:
    report, out = demo_report
    names = {(run.protocol, figure.name) for run in report.runs for _o, figure in run.figures}
    assert ("spa.ctf_estimate", "ctf-defocus") in names
    assert ("spa.refine_3d", "fsc") in names and ("spa.postprocess", "fsc") in names
    assert ("spa.classify_2d", "class-averages") in names
    assert ("spa.refine_3d", "slices") in names
    files = sorted(p.name for p in (out / "figures").iterdir())
    assert len(files) == sum(len(run.figures) for run in report.runs)
    markdown = (out / "report.md").read_text()
    assert all(f"(figures/{name})" in markdown for name in files)
    html = (out / "report.html").read_text()
    assert "figures/" not in html and html.count("data:image/png;base64,") >= 3  # self-contained


def test_the_demo_crate_meets_the_workflow_run_crate_profile(
    demo_report: tuple[Report, Path],
) -> None:
    report, out = demo_report
    crate = json.loads((out / "ro-crate-metadata.json").read_text())
    assert violations(crate, out) == []
    entities = {e["@id"]: e for e in crate["@graph"]}
    root = entities["./"]
    assert root["mainEntity"] == {"@id": "workflow.json"}
    assert {"@id": "https://w3id.org/ro/wfrun/workflow/0.5"} in root["conformsTo"]
    runs = [
        e for e in crate["@graph"] if e["@type"] == "CreateAction" and e["@id"] != "#workflow-run"
    ]
    assert len(runs) == len(report.runs)
    assert all(e["actionStatus"]["@id"].endswith("CompletedActionStatus") for e in runs)
    fsc_figure = next(i for i in entities if i.startswith("figures/") and i.endswith("-fsc.svg"))
    assert entities[fsc_figure]["encodingFormat"] == "image/svg+xml"
