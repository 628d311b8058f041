"""RELION pipelines imported as graphs of finished, read-only runs (RELION 3.0 and 4/5 styles)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import starfile

from conftest import database_dump
from cryolab.cli import main as cli
from cryolab.core.errors import CryolabError, ProjectError
from cryolab.core.project import Project
from cryolab.em.formats import FormatError
from cryolab.em.relion_pipeline import (
    import_relion,
    import_relion_pipeline,
    import_relion_star,
    node_set_type,
    read_relion_pipeline,
)

RELION30 = "starfile_teamtomo/default_pipeline_relion3.0.star"
JOBSTARS = "himena-relion_jobstars/spa"


def origin(project: Project, run_id: int) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(project._run_row(run_id)["origin"])
    return loaded


def output_name(node: str, process: str) -> str:
    """What the import names an output: the file name within the job folder, as identifier."""
    text = node[len(process) :] if node.startswith(process) else node
    return "".join(c if c.isalnum() else "_" for c in text).strip("_")


def test_relion30_pipeline(project: Project, real: Callable[[str], Path]) -> None:
    path = real(RELION30)
    star = starfile.read(path, always_dict=True)
    processes = star["pipeline_processes"]
    names = processes["rlnPipeLineProcessName"].tolist()
    assert read_relion_pipeline(path).job_counter == 32

    runs = import_relion_pipeline(project, path)

    assert len(runs) == len(names) == 31
    assert [r.label for r in runs] == names  # RELION's job order is a dependency order here
    assert all(r.status == "finished" for r in runs)
    assert all(r.protocol == "external.job" and r.params["program"] == "relion" for r in runs)
    run_of = {r.label: r for r in runs}
    assert run_of["Refine3D/job019/"].params["job"] == "relion.refine3d"
    assert run_of["Polish/job028/"].params["job"] == "relion.polish"
    assert run_of["Refine3D/job019/"].comment == "alias: Refine3D/first3dref/"
    assert run_of["Refine3D/job019/"].params["source"] == str(
        (path.parent / "Refine3D/job019").resolve()
    )
    # outputs: the job's output nodes, typed by node type, empty (the files are not there)
    producer = dict(
        zip(
            star["pipeline_output_edges"]["rlnPipeLineEdgeToNode"],
            star["pipeline_output_edges"]["rlnPipeLineEdgeProcess"],
            strict=True,
        )
    )
    assert sum(len(r.out) for r in runs) == len(producer) == 72
    refine = run_of["Refine3D/job019/"].out
    assert {k: v.types[0] for k, v in refine.items()} == {
        "run_data_star": "SetOfParticles",
        "run_half1_class001_unfil_mrc": "SetOfVolumes",
        "run_class001_mrc": "SetOfVolumes",
    }
    data = refine.run_data_star.load()
    assert len(data) == 0
    assert data.properties["relion_file"] == str(
        (path.parent / "Refine3D/job019/run_data.star").resolve()
    )
    assert run_of["Import/job001/"].out.movies_star.types[0] == "SetOfMovies"
    assert run_of["AutoPick/job006/"].out.coords_suffix_autopick_star.types[0] == "SetOfCoordinates"
    assert run_of["PostProcess/job021/"].out.logfile_pdf.types[0] == "Set"
    assert run_of["PostProcess/job021/"].out.postprocess_star.types[0] == "FSC"
    # edges: every input edge whose node a job of the pipeline wrote
    expected = set()
    unresolved = set()
    for node, consumer in zip(
        star["pipeline_input_edges"]["rlnPipeLineEdgeFromNode"],
        star["pipeline_input_edges"]["rlnPipeLineEdgeProcess"],
        strict=True,
    ):
        if node in producer:
            source = producer[node]
            expected.add((run_of[source].id, output_name(node, source), run_of[consumer].id))
        else:
            unresolved.add((node, consumer))
    edges = {(e["source"], e["output"], e["target"]) for e in project.run_graph()["edges"]}
    assert edges == expected and len(edges) == 46
    assert unresolved == {
        ("MotionCorr/job003/corrected_micrographs.star", "CtfFind/job003/"),
        ("Extract/job008/particles.star", "Class2D/job008/"),
    }
    assert origin(project, run_of["CtfFind/job003/"].id)["relion"]["unresolved_inputs"] == [
        "MotionCorr/job003/corrected_micrographs.star"
    ]
    assert origin(project, runs[0].id)["imported"] is True
    # read-only: an imported job is finished and cannot be launched
    with pytest.raises(ProjectError, match="has finished"):
        project.launch(runs[0].id)


PIPELINE5 = """
# version 50001

data_pipeline_general

_rlnPipeLineJobCounter                       5


# version 50001

data_pipeline_processes

loop_
_rlnPipeLineProcessName #1
_rlnPipeLineProcessAlias #2
_rlnPipeLineProcessTypeLabel #3
_rlnPipeLineProcessStatusLabel #4
PostProcess/job004/       None relion.postprocess     Failed
Refine3D/job003/       None relion.refine3d  Succeeded
Class3D/job002/ Class3D/three_classes/ relion.class3d  Succeeded
InitialModel/job001/       None relion.initialmodel  Succeeded


# version 50001

data_pipeline_nodes

loop_
_rlnPipeLineNodeName #1
_rlnPipeLineNodeTypeLabel #2
_rlnPipeLineNodeTypeLabelDepth #3
Extract/job000/particles.star ParticleGroupMetadata.star.relion            1
InitialModel/job001/initial_model.mrc DensityMap.mrc.relion.initialmodel            1
InitialModel/job001/run_it100_optimiser.star ProcessData.star.relion.optimiser.initialmodel  1
Class3D/job002/run_it025_data.star ParticleGroupMetadata.star.relion.class3d            1
Class3D/job002/run_it025_class001.mrc DensityMap.mrc.relion.class3d            1
Refine3D/job003/run_data.star ParticleGroupMetadata.star.relion.refine3d            1
Refine3D/job003/run_half1_class001_unfil.mrc DensityMap.mrc.relion.halfmap.refine3d  1
Refine3D/job003/run_class001.mrc DensityMap.mrc.relion.refine3d            1
PostProcess/job004/postprocess.star ProcessData.star.relion.postprocess            1
PostProcess/job004/logfile.pdf LogFile.pdf.relion.postprocess            1


# version 50001

data_pipeline_input_edges

loop_
_rlnPipeLineEdgeFromNode #1
_rlnPipeLineEdgeProcess #2
Extract/job000/particles.star InitialModel/job001/
Extract/job000/particles.star Class3D/job002/
InitialModel/job001/initial_model.mrc Class3D/job002/
Class3D/job002/run_it025_data.star Refine3D/job003/
Class3D/job002/run_it025_class001.mrc Refine3D/job003/
Refine3D/job003/run_half1_class001_unfil.mrc PostProcess/job004/


# version 50001

data_pipeline_output_edges

loop_
_rlnPipeLineEdgeProcess #1
_rlnPipeLineEdgeToNode #2
InitialModel/job001/ InitialModel/job001/initial_model.mrc
InitialModel/job001/ InitialModel/job001/run_it100_optimiser.star
Class3D/job002/ Class3D/job002/run_it025_data.star
Class3D/job002/ Class3D/job002/run_it025_class001.mrc
Refine3D/job003/ Refine3D/job003/run_data.star
Refine3D/job003/ Refine3D/job003/run_half1_class001_unfil.mrc
Refine3D/job003/ Refine3D/job003/run_class001.mrc
PostProcess/job004/ PostProcess/job004/postprocess.star
PostProcess/job004/ PostProcess/job004/logfile.pdf
"""
JOBS = {
    "InitialModel/job001": "InitialModel",
    "Class3D/job002": "Class3D",
    "Refine3D/job003": "Refine3D",
    "PostProcess/job004": "PostProcess",
}


PARTICLES = "cryodrgn/relion31.star"
POSTPROCESS = "starfile_teamtomo/postprocess_relion3.0.8.star"


@pytest.fixture
def relion5(tmp_path: Path, real: Callable[[str], Path]) -> Path:
    """A RELION 5-style project: the pipeline above, with real job.star files in its jobs and
    real output files for some nodes (particles, a postprocess FSC, a map, a bad STAR file)."""
    folder = tmp_path / "relion"
    for job, kind in JOBS.items():
        (folder / job).mkdir(parents=True)
        shutil.copy(real(f"{JOBSTARS}/{kind}/job001/job.star"), folder / job / "job.star")
    (folder / "InitialModel/job001/initial_model.mrc").write_bytes(b"")  # a map that exists
    shutil.copy(real(PARTICLES), folder / "Refine3D/job003/run_data.star")
    shutil.copy(real(POSTPROCESS), folder / "PostProcess/job004/postprocess.star")
    shutil.copy(
        real(f"{JOBSTARS}/Class3D/job001/job.star"), folder / "Class3D/job002/run_it025_data.star"
    )
    (folder / "default_pipeline.star").write_text(PIPELINE5, encoding="utf-8")
    return folder


def joboptions(path: Path) -> dict[str, str]:
    table = starfile.read(path, always_dict=True)["joboptions_values"]
    return {
        str(k): "" if v is None or v != v else str(v)
        for k, v in zip(table["rlnJobOptionVariable"], table["rlnJobOptionValue"], strict=True)
    }


def test_relion5_pipeline_with_job_stars(project: Project, relion5: Path) -> None:
    runs = import_relion_pipeline(project, relion5)  # the project folder is enough
    assert [r.label for r in runs] == [
        "InitialModel/job001/",
        "Class3D/job002/",
        "Refine3D/job003/",
        "PostProcess/job004/",
    ]
    initial, class3d, refine, post = runs
    assert [r.params["job"] for r in runs] == [
        "relion.initialmodel",
        "relion.class3d",
        "relion.refine3d",
        "relion.postprocess",
    ]
    # settings: the job.star options, as written (quotes removed)
    for run, job in zip(runs, JOBS, strict=True):
        settings = json.loads(run.params["settings"])
        expected = joboptions(relion5 / job / "job.star")
        assert settings.keys() == expected.keys()
        assert all(settings[k] == v or float(settings[k]) == float(v) for k, v in expected.items())
    refine_settings = json.loads(refine.params["settings"])
    assert len(refine_settings) == 56
    assert refine_settings["auto_local_sampling"] == "1.8 degrees"
    assert refine_settings["fn_cont"] == ""
    assert refine_settings["sym_name"] == "C1"
    # graph and outputs
    edges = {(e["source"], e["output"], e["target"]) for e in project.run_graph()["edges"]}
    assert edges == {
        (initial.id, "initial_model_mrc", class3d.id),
        (class3d.id, "run_it025_data_star", refine.id),
        (class3d.id, "run_it025_class001_mrc", refine.id),
        (refine.id, "run_half1_class001_unfil_mrc", post.id),
    }
    assert {k: v.types[0] for k, v in refine.out.items()} == {
        "run_data_star": "SetOfParticles",
        "run_half1_class001_unfil_mrc": "SetOfVolumes",
        "run_class001_mrc": "SetOfVolumes",
    }
    assert initial.out.run_it100_optimiser_star.types[0] == "Set"
    assert post.out.logfile_pdf.types[0] == "Set"
    model = initial.out.initial_model_mrc.load()  # the map file exists: one volume
    assert (
        len(model) == 1
        and model[0].path == (relion5 / "InitialModel/job001/initial_model.mrc").resolve()
    )
    assert model.properties["relion_node_type"] == "DensityMap.mrc.relion.initialmodel"
    assert len(refine.out.run_class001_mrc.load()) == 0  # absent: an empty set naming the file
    # STAR files cryolab converts hold their content (cryolab.em.relion)
    particles = refine.out.run_data_star.load()
    expected = starfile.read(relion5 / "Refine3D/job003/run_data.star", always_dict=True)
    assert particles.type_name == "SetOfParticles"
    assert len(particles) == len(expected["particles"]) > 0
    assert particles["ctf.defocus_u"].tolist() == expected["particles"]["rlnDefocusU"].tolist()
    assert particles.properties["relion_file"].endswith("Refine3D/job003/run_data.star")
    assert particles.properties["root"] == str(relion5.resolve())
    fsc = post.out.postprocess_star.load()
    assert fsc.type_name == "FSC" and fsc.properties["resolution"] == pytest.approx(16.363636)
    # a STAR file that does not convert: empty, saying why
    bad = class3d.out.run_it025_data_star.load()
    assert len(bad) == 0 and "holds no particles" in bad.properties["relion_error"]
    # statuses and aliases
    assert all(r.status == "finished" for r in runs)
    assert post.comment == "(RELION status: Failed)"
    assert class3d.comment == "alias: Class3D/three_classes/"
    relion = origin(project, class3d.id)["relion"]
    assert relion["status"] == "Succeeded" and relion["alias"] == "Class3D/three_classes/"
    assert relion["unresolved_inputs"] == ["Extract/job000/particles.star"]
    assert relion["nodes"]["run_it025_data_star"] == "Class3D/job002/run_it025_data.star"


def test_node_types() -> None:
    assert node_set_type(3) == node_set_type("3") == "SetOfParticles"
    assert node_set_type(0) == "SetOfMovies" and node_set_type(2) == "SetOfCoordinates"
    assert node_set_type(13) == node_set_type(99) == "Set"
    assert node_set_type("MicrographMovieGroupMetadata.star.relion") == "SetOfMovies"
    assert node_set_type("MicrographGroupMetadata.star.relion.motioncorr") == "SetOfMicrographs"
    assert node_set_type("MicrographsCoords.star.relion.autopick") == "SetOfCoordinates"
    assert node_set_type("Mask3D.mrc.relion") == "SetOfVolumes"
    assert node_set_type("LogFile.pdf.relion.ctffind") == "Set"


def test_bad_pipelines_change_nothing(
    project: Project, relion5: Path, real: Callable[[str], Path]
) -> None:
    before = database_dump(project)
    job_star = real(f"{JOBSTARS}/Refine3D/job001/job.star")
    with pytest.raises(FormatError, match="not a RELION pipeline: no data_pipeline_processes"):
        import_relion_pipeline(project, job_star)
    with pytest.raises(CryolabError, match="absent"):
        import_relion_pipeline(project, relion5 / "absent.star")
    pipeline = relion5 / "default_pipeline.star"
    text = pipeline.read_text(encoding="utf-8")
    pipeline.write_text(
        text.replace(
            "Refine3D/job003/ Refine3D/job003/run_data.star",
            "Refine3D/job009/ Refine3D/job003/run_data.star",
        ),
        encoding="utf-8",
    )
    with pytest.raises(FormatError, match="names job 'Refine3D/job009/', which"):
        import_relion_pipeline(project, pipeline)
    cycle = text.replace(
        "Class3D/job002/run_it025_data.star Refine3D/job003/",
        "Class3D/job002/run_it025_data.star Refine3D/job003/\n"
        "Refine3D/job003/run_data.star Class3D/job002/",
    )
    pipeline.write_text(cycle, encoding="utf-8")
    with pytest.raises(FormatError, match="take inputs from each other"):
        import_relion_pipeline(project, pipeline)
    pipeline.write_text(text, encoding="utf-8")
    (relion5 / "Refine3D/job003/job.star").write_text("data_job\n\nnot star at all\n")
    with pytest.raises(CryolabError, match=r"job\.star"):
        import_relion_pipeline(project, pipeline)
    assert database_dump(project) == before


def test_one_star_file(project: Project, real: Callable[[str], Path]) -> None:
    path = real(PARTICLES)
    (run,) = import_relion(project, path)
    rows = len(starfile.read(path, always_dict=True)["particles"])
    assert run.status == "finished" and run.label == "relion31.star"
    assert run.out.particles.types[0] == "SetOfParticles" and run.out.particles.count == rows
    assert run.params["source"] == str(path.resolve())
    before = database_dump(project)
    with pytest.raises(FormatError, match="not a RELION particles, micrographs or coordinates"):
        import_relion_star(project, real(f"{JOBSTARS}/Refine3D/job001/job.star"))
    assert database_dump(project) == before


def test_cli_import_relion(
    project: Project, relion5: Path, real: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["import-relion", str(project.path), str(real(RELION30))]) == 0
    out = capsys.readouterr().out
    assert "imported 31 RELION job(s) as finished runs" in out
    assert "Refine3D/job019/: run_data_star (0 SetOfParticles)" in out
    assert cli(["import-relion", str(project.path), str(relion5)]) == 0
    assert "imported 4 RELION job(s)" in capsys.readouterr().out
    assert cli(["import-relion", str(project.path), str(real(PARTICLES))]) == 0
    assert "relion31.star: particles (" in capsys.readouterr().out
    assert len(project.runs()) == 36
    before = database_dump(project)
    assert cli(["import-relion", str(project.path), str(relion5 / "absent.star")]) == 2
    assert "absent.star" in capsys.readouterr().err
    assert database_dump(project) == before


def test_a_failure_midway_leaves_the_project_unchanged(project, real, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from conftest import database_dump
    from cryolab.core.project import Project

    pipeline = real("starfile_teamtomo/default_pipeline_relion3.0.star")
    before = database_dump(project)
    folders_before = sorted((project.path / "Runs").iterdir())
    calls = {"n": 0}
    original = Project.insert_imported_run

    def failing(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("disk full")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Project, "insert_imported_run", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        import_relion_pipeline(project, pipeline)
    assert calls["n"] == 5
    assert database_dump(project) == before
    assert sorted((project.path / "Runs").iterdir()) == folders_before
