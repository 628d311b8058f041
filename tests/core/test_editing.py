"""Editing the run graph: copies, parameter changes of saved runs, deletion, labels."""

from __future__ import annotations

import json
import time

import pytest

from conftest import database_dump
from cryolab.core.errors import GraphError, ParameterError, RunNotFoundError
from cryolab.core.project import Project
from cryolab.core.runs import Run

TIMEOUT = 60


def edges(project: Project) -> set[tuple[int, str, int, str]]:
    return {
        (r["src_run"], r["src_output"], r["dst_run"], r["dst_param"])
        for r in project.db.execute("SELECT * FROM edges")
    }


def row(project: Project, run_id: int) -> dict[str, object]:
    return dict(project._run_row(run_id))


@pytest.fixture
def chain(project: Project) -> list[Run]:
    """Saved runs 1 count -> 2 subset -> 3 split -> 4 merge(3.part1, 2.subset)."""
    count = project.save("test.count", steps=3, label="numbers", seed=11)
    subset = project.save(
        "sets.subset",
        source=count.out.numbers,
        where="value < 20",
        label="low",
        comment="keep low values",
        seed=12,
    )
    split = project.save("sets.split", source=subset.out.subset, parts=3, order="sequential")
    merge = project.save(
        "sets.merge", sets=[split.out.part1, subset.out.subset], duplicates="first"
    )
    return [count, subset, split, merge]


# -- copy_run -----------------------------------------------------------------------------
def test_copy_run_makes_a_new_saved_run_with_the_changes(
    project: Project, chain: list[Run]
) -> None:
    _, subset, *_ = chain
    before = row(project, subset.id)
    copy = project.copy_run(subset.id, where="value >= 5", exclude=True)
    assert copy.id not in {r.id for r in chain}
    assert copy.status == "saved"
    assert copy.protocol == "sets.subset"
    assert copy.params == {**subset.params, "where": "value >= 5", "exclude": True}
    assert copy.params["source"] == "1.numbers"  # the input is kept
    assert copy.folder.is_dir()
    assert copy.folder != subset.folder
    # kept from the original
    assert copy.label == "low"
    assert copy.comment == "keep low values"
    copied = row(project, copy.id)
    assert copied["seed"] == 12
    assert json.loads(str(copied["executor"])) == json.loads(str(before["executor"]))
    assert json.loads(str(copied["origin"])) == {"copy_of": subset.id}
    # the original is untouched
    assert row(project, subset.id) == before
    assert (1, "numbers", copy.id, "source") in edges(project)
    assert list(copy.out) == ["subset"]


def test_copy_run_with_an_invalid_change_is_refused_and_stores_nothing(
    project: Project, chain: list[Run]
) -> None:
    before = database_dump(project)
    runs_before = sorted(p.name for p in (project.path / "Runs").iterdir())
    with pytest.raises(ParameterError) as info:
        project.copy_run(chain[2].id, parts=1)
    assert "parts" in str(info.value)
    assert f"copy of run {chain[2].id}" in str(info.value)
    with pytest.raises(ParameterError, match="no such parameter"):
        project.copy_run(chain[2].id, bogus=3)
    assert database_dump(project) == before
    assert sorted(p.name for p in (project.path / "Runs").iterdir()) == runs_before


def test_copy_run_of_a_finished_run_with_launch_runs_the_copy(project: Project) -> None:
    original = project.run("test.count", steps=2, executor="sync", seed=5)
    original.wait(TIMEOUT)
    assert original.out.numbers.count == 20
    copy = project.copy_run(original.id, launch=True, steps=4)
    assert copy.wait(TIMEOUT).status == "finished"
    assert copy.out.numbers.count == 40
    assert copy.params["steps"] == 4
    assert row(project, copy.id)["seed"] == 5
    assert original.params["steps"] == 2
    assert original.out.numbers.count == 20
    assert original.status == "finished"


def test_copy_of_a_missing_run(project: Project) -> None:
    before = database_dump(project)
    with pytest.raises(RunNotFoundError):
        project.copy_run(42)
    assert database_dump(project) == before


# -- copy_runs ----------------------------------------------------------------------------
def test_copy_runs_rewires_internal_inputs_and_keeps_external_ones(
    project: Project, chain: list[Run]
) -> None:
    count, subset, split, merge = chain
    before = {r.id: row(project, r.id) for r in chain}
    # given in an arbitrary order: the copies are made in dependency order
    copies = project.copy_runs([merge.id, subset.id, split.id], {split.id: {"parts": 2}})
    assert set(copies) == {subset.id, split.id, merge.id}
    new_subset, new_split, new_merge = copies[subset.id], copies[split.id], copies[merge.id]
    assert new_subset.id < new_split.id < new_merge.id
    assert min(c.id for c in copies.values()) > merge.id
    # the external input still points to the original run 1
    assert new_subset.params["source"] == f"{count.id}.numbers"
    # internal inputs point to the copies, also inside lists
    assert new_split.params["source"] == f"{new_subset.id}.subset"
    assert new_split.params["parts"] == 2
    assert new_merge.params["sets"] == [f"{new_split.id}.part1", f"{new_subset.id}.subset"]
    assert list(new_split.out) == ["part1", "part2"]
    graph = edges(project)
    assert (count.id, "numbers", new_subset.id, "source") in graph
    assert (new_subset.id, "subset", new_split.id, "source") in graph
    assert (new_split.id, "part1", new_merge.id, "sets") in graph
    assert (new_subset.id, "subset", new_merge.id, "sets") in graph
    assert (
        not {
            (subset.id, "subset", new_split.id, "source"),
            (split.id, "part1", new_merge.id, "sets"),
        }
        & graph
    )
    # originals untouched
    assert {r.id: row(project, r.id) for r in chain} == before
    assert all(c.status == "saved" for c in copies.values())


def test_copy_runs_is_all_or_nothing(project: Project, chain: list[Run]) -> None:
    before = database_dump(project)
    with pytest.raises(ParameterError, match="parts"):
        project.copy_runs([chain[1].id, chain[2].id], {chain[2].id: {"parts": 0}})
    assert database_dump(project) == before


# -- update_params --------------------------------------------------------------------------
def test_update_params_changes_a_saved_run_and_rewires_its_edges(
    project: Project, chain: list[Run]
) -> None:
    count, subset, split, merge = chain
    other = project.save("test.count", steps=1)
    updated = project.update_params(split.id, source=other.out.numbers, parts=4)
    assert updated.id == split.id
    assert split.params["source"] == f"{other.id}.numbers"
    assert split.params["parts"] == 4
    graph = edges(project)
    assert (other.id, "numbers", split.id, "source") in graph
    assert (subset.id, "subset", split.id, "source") not in graph
    assert list(split.out) == ["part1", "part2", "part3", "part4"]
    kinds = [e["kind"] for e in project.events() if e["run"] == split.id]
    assert "edited" in kinds
    # the runs below are unchanged
    assert merge.params["sets"] == [f"{split.id}.part1", f"{subset.id}.subset"]
    assert project.downstream(other.id) == [split.id, merge.id]
    assert count.id not in project.downstream(count.id)


def test_update_params_refuses_a_cycle(project: Project, chain: list[Run]) -> None:
    _, subset, split, merge = chain
    before = database_dump(project)
    with pytest.raises(GraphError, match="cycle"):
        project.update_params(subset.id, source=split.out.part1)
    with pytest.raises(GraphError, match="cycle"):
        project.update_params(subset.id, source=f"{merge.id}.merged")
    with pytest.raises(GraphError, match="cycle"):
        project.update_params(subset.id, source=f"{subset.id}.subset")
    assert database_dump(project) == before


def test_update_params_refuses_to_drop_an_output_used_downstream(
    project: Project, chain: list[Run]
) -> None:
    _, _, split, merge = chain
    project.update_params(merge.id, sets=[split.out.part3])
    before = database_dump(project)
    with pytest.raises(GraphError, match=r"part3"):
        project.update_params(split.id, parts=2)
    assert database_dump(project) == before
    assert list(split.out) == ["part1", "part2", "part3"]


def test_update_params_refuses_invalid_values(project: Project, chain: list[Run]) -> None:
    before = database_dump(project)
    with pytest.raises(ParameterError, match="parts"):
        project.update_params(chain[2].id, parts="many")
    with pytest.raises(ParameterError, match="does not exist"):
        project.update_params(chain[2].id, source="99.rows")
    with pytest.raises(ParameterError, match="no such parameter"):
        project.update_params(chain[2].id, bogus=1)
    assert database_dump(project) == before


def test_update_params_refuses_runs_that_are_not_saved(project: Project) -> None:
    run = project.run("test.count", steps=1, executor="sync")
    run.wait(TIMEOUT)
    before = database_dump(project)
    with pytest.raises(GraphError, match="finished; only saved runs"):
        project.update_params(run.id, steps=3)
    assert database_dump(project) == before
    assert run.params["steps"] == 1


# -- delete_run -------------------------------------------------------------------------------
def test_delete_is_refused_while_the_run_is_used(project: Project, chain: list[Run]) -> None:
    _, subset, split, merge = chain
    before = database_dump(project)
    with pytest.raises(GraphError) as info:
        project.delete_run(subset.id)
    assert f"run {subset.id} is used by run(s) [{split.id}, {merge.id}]" in str(info.value)
    assert database_dump(project) == before
    assert subset.folder.is_dir()


def test_delete_of_a_leaf_run(project: Project, chain: list[Run]) -> None:
    *_, split, merge = chain
    folder = merge.folder
    assert project.delete_run(merge.id) == [merge.id]
    assert not folder.exists()
    assert [r.id for r in project.runs()] == [c.id for c in chain[:3]]
    assert not [e for e in edges(project) if merge.id in (e[0], e[2])]
    assert (
        project.db.execute("SELECT COUNT(*) FROM outputs WHERE run_id = ?", (merge.id,)).fetchone()[
            0
        ]
        == 0
    )
    assert project.downstream(split.id) == []
    with pytest.raises(RunNotFoundError):
        project.get_run(merge.id)


def test_cascade_deletes_descendants_and_their_folders(project: Project, chain: list[Run]) -> None:
    count, subset, split, merge = chain
    folders = [r.folder for r in chain]
    assert all(f.is_dir() for f in folders)
    deleted = project.delete_run(subset.id, cascade=True)
    assert sorted(deleted) == [subset.id, split.id, merge.id]
    assert [r.id for r in project.runs()] == [count.id]
    assert folders[0].is_dir()
    assert not any(f.exists() for f in folders[1:])
    assert edges(project) == set()
    assert [r[0] for r in project.db.execute("SELECT DISTINCT run_id FROM outputs")] == [count.id]
    kinds = {(e["run"], e["kind"]) for e in project.events()}
    assert {(subset.id, "deleted"), (split.id, "deleted"), (merge.id, "deleted")} <= kinds


def wait_for(run: Run, status: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while run.status != status and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run.status == status


def graph_rows(project: Project) -> list[str]:
    """The dump lines of runs' graph (edges, outputs), which a run process never writes."""
    return [
        line
        for line in database_dump(project)
        if line.startswith(('INSERT INTO "edges"', 'INSERT INTO "outputs"'))
    ]


def test_delete_is_refused_for_an_active_run(project: Project) -> None:
    run = project.run("test.count", steps=50, delay=0.2)
    wait_for(run, "running")
    folder = run.folder
    before = graph_rows(project)
    for cascade in (False, True):
        with pytest.raises(GraphError, match=rf"run\(s\) \[{run.id}\] are still active"):
            project.delete_run(run.id, cascade=cascade)
    assert graph_rows(project) == before
    assert run.folder.is_dir()
    assert [r.id for r in project.runs()] == [run.id]
    run.abort()
    assert run.status == "aborted"
    assert project.delete_run(run.id) == [run.id]
    assert not folder.exists()
    assert project.runs() == []


def test_cascade_is_refused_when_a_descendant_is_active(project: Project) -> None:
    first = project.run("test.count", steps=1, executor="sync")
    first.wait(TIMEOUT)
    slow = project.run("test.count", steps=50, delay=0.2)
    merge = project.run("sets.merge", sets=[first.out.numbers, slow.out.numbers])
    wait_for(merge, "scheduled")  # waits for `slow`
    before = graph_rows(project)
    with pytest.raises(GraphError, match=rf"used by run\(s\) \[{merge.id}\]"):
        project.delete_run(first.id)
    with pytest.raises(GraphError, match=rf"run\(s\) \[{merge.id}\] are still active"):
        project.delete_run(first.id, cascade=True)
    assert graph_rows(project) == before
    assert first.folder.is_dir()
    assert merge.folder.is_dir()
    slow.abort()
    merge.wait(TIMEOUT, check=False)
    assert merge.status == "failed"
    assert sorted(project.delete_run(first.id, cascade=True)) == [first.id, merge.id]
    assert [r.id for r in project.runs()] == [slow.id]


def test_delete_of_a_missing_run(project: Project) -> None:
    before = database_dump(project)
    with pytest.raises(RunNotFoundError):
        project.delete_run(7)
    assert database_dump(project) == before


# -- labels and comments ----------------------------------------------------------------------
def test_set_label_and_comment(project: Project, chain: list[Run]) -> None:
    run = chain[2]
    project.set_label(run.id, "halves")
    project.set_comment(run.id, "for FSC")
    assert run.label == "halves"
    assert run.comment == "for FSC"
    assert chain[1].label == "low"  # others untouched
    events = [e for e in project.events() if e["run"] == run.id]
    assert {"kind": "label", "value": "halves"} in [
        {"kind": e["kind"], "value": e.get("value")} for e in events
    ]
    assert any(e["kind"] == "comment" and e["value"] == "for FSC" for e in events)
    graph = project.run_graph()
    node = next(n for n in graph["nodes"] if n["id"] == run.id)
    assert node["label"] == "halves"
    assert node["comment"] == "for FSC"


def test_set_label_of_a_missing_run_changes_nothing(project: Project) -> None:
    before = database_dump(project)
    with pytest.raises(RunNotFoundError):
        project.set_label(3, "x")
    with pytest.raises(RunNotFoundError):
        project.set_comment(3, "x")
    assert database_dump(project) == before


def test_copying_rewires_inputs_only_and_can_launch(project) -> None:  # type: ignore[no-untyped-def]
    first = project.run("test.count", steps=1).wait(30)
    second = project.save("sets.subset", source=first.out.numbers, where="value > 1")
    copies = project.copy_runs([first.id, second.id], launch=True)
    copied_second = copies[second.id].wait(30)
    assert copied_second.params["source"] == f"{copies[first.id].id}.numbers"
    assert copied_second.params["where"] == "value > 1"
    assert copied_second.status == "finished"
