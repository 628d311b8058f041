"""``sets.subset`` with ``mode="list"``: the items whose uids are listed (gallery selections)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cryolab.core.errors import ParameterError
from cryolab.core.project import Project
from cryolab.core.runs import OutputRef
from cryolab.core.sets import Set


def rows_output(project: Project) -> tuple[Set, OutputRef]:
    rows = Set({"score": [0.1, 0.5, 0.9, 0.3]})
    run = project.add_imported_run(
        "external.job",
        {"program": "test", "job": "rows", "output_names": ["rows"], "output_types": ["Set"]},
        {"rows": rows},
    )
    return rows, run.out.rows


def test_the_listed_uids_are_kept_or_dropped(project: Project) -> None:
    rows, source = rows_output(project)
    listed = [int(rows.uids[2]), int(rows.uids[0])]
    kept = project.run("sets.subset", source=source, mode="list", uid_list=listed).wait(60)
    assert sorted(kept.out.subset.load().uids.tolist()) == sorted(listed)
    assert kept.summary().startswith(f"Subset of {source} by a list of 2 uids")
    dropped = project.run(
        "sets.subset", source=source, mode="list", uid_list=listed, exclude=True
    ).wait(60)
    assert dropped.out.subset.load().uids.tolist() == rows.uids[[1, 3]].tolist()


def test_the_list_is_required_and_holds_uids(project: Project) -> None:
    _, source = rows_output(project)
    with pytest.raises(ParameterError, match="uid_list"):
        project.run("sets.subset", source=source, mode="list")
    with pytest.raises(ParameterError, match="uid_list"):
        project.run("sets.subset", source=source, mode="list", uid_list=[-4])


def test_a_condition_on_a_missing_column_is_refused_before_launch(
    project: Project, tmp_path: Path
) -> None:
    table = tmp_path / "scores.csv"
    table.write_text("score\n0.1\n0.9\n")
    rows = project.run("sets.import_table", files=str(table)).wait(60)
    runs_before = len(project.runs())
    with pytest.raises(ParameterError, match=r"unknown column 'scroe'; did you mean 'score'\?"):
        project.run("sets.subset", source=rows.out.rows, where="scroe > 0.5")
    assert len(project.runs()) == runs_before  # nothing was stored
    # an input that does not exist yet is checked when the run reads it
    later = project.save("sets.import_table", files=str(table))
    saved = project.save("sets.subset", source=later.out.rows, where="scroe > 0.5")
    assert saved.status == "saved"
