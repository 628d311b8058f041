"""Runs imported from other programs: finished at once with given outputs, or placeholders."""

from __future__ import annotations

import pytest

from conftest import database_dump
from cryolab.core.errors import ParameterError, ProjectError, RunFailedError
from cryolab.core.project import Project
from cryolab.core.sets import Set


def test_an_imported_run_is_finished_with_its_outputs(project: Project) -> None:
    rows = Set({"score": [0.1, 0.9]})
    run = project.add_imported_run(
        "external.job",
        {
            "program": "relion",
            "job": "relion.select",
            "output_names": ["rows"],
            "output_types": ["Set"],
            "settings": '{"--min_score": 0.5}',
        },
        {"rows": rows},
        label="Select/job005",
        origin={"relion_job": "Select/job005/"},
    )
    assert run.status == "finished" and run.label == "Select/job005"
    assert run.out.rows.load().uids.tolist() == rows.uids.tolist()
    assert run.summary() == "relion relion.select: rows: 2 items"
    with pytest.raises(ProjectError, match="has finished"):
        project.launch(run.id)
    # later runs use it like any other output
    subset = project.run("sets.subset", source=run.out.rows, where="score > 0.5").wait(30)
    assert len(subset.out.subset) == 1


def test_outputs_must_match_the_declaration(project: Project) -> None:
    before = database_dump(project)
    with pytest.raises(ParameterError, match=r"declares outputs \['rows'\], got sets for"):
        project.add_imported_run(
            "external.job",
            {"program": "relion", "job": "x", "output_names": ["rows"], "output_types": ["Set"]},
            {"other": Set({"a": [1]})},
        )
    assert database_dump(project) == before


def test_a_placeholder_cannot_run_and_says_why(project: Project) -> None:
    saved = project.save(
        "external.job",
        program="scipion",
        job="ProtGctfRefine",
        output_names=["outputCTF"],
        output_types=["SetOfCTFs"],
    )
    assert saved.out.outputCTF.types[0] == "SetOfCTFs"
    run = saved.launch()
    with pytest.raises(RunFailedError, match="ProtGctfRefine' has no cryolab protocol"):
        run.wait(30)


def test_settings_must_be_json(project: Project) -> None:
    with pytest.raises(ParameterError, match="'settings': not JSON"):
        project.save("external.job", program="x", job="y", settings="{oops")
