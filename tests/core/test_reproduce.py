"""cryolab reproduce: re-execution of projects, workflows and notebooks, and the verdicts."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cryolab.cli import main
from cryolab.core.project import Project, open_project
from cryolab.core.reproduce import (
    ReproductionError,
    Tolerances,
    compare_projects,
    reproduce,
    reproduction_pairs,
)
from cryolab.core.reproduce_compare import CompareContext, compare_outputs
from cryolab.core.runs import OutputRef
from cryolab.core.sets import Set

NOTEBOOK = Path(__file__).parents[1] / "data" / "reproduce" / "runs.ipynb"
PASSING = ("identical", "within tolerance")


@pytest.fixture(scope="module")
def reproduced_demo(small_demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small demo reproduced into a new project (shared by this module's tests)."""
    target = tmp_path_factory.mktemp("reproduced") / "demo-again"
    reproduce(small_demo, target, timeout=900)
    return target


def test_demo_reproduction_report(small_demo: Path, reproduced_demo: Path) -> None:
    data = json.loads((reproduced_demo / "reproduction.json").read_text())
    assert data["source"] == {"kind": "project", "path": str(small_demo.resolve())}
    assert len(data["runs"]) == 11
    assert [r["source_run"] for r in data["runs"]] == list(range(1, 12))
    assert all(r["deterministic"] and r["status"] == "finished" for r in data["runs"])
    assert data["tolerances"] == Tolerances().to_dict()
    pick = next(r for r in data["runs"] if r["protocol"] == "spa.pick")
    coordinates = pick["outputs"]["coordinates"]
    assert coordinates["count"]["source"] == coordinates["count"]["reproduced"] > 0
    # maps are compared by their pixels and FSC, not by their file names
    post = next(r for r in data["runs"] if r["protocol"] == "spa.postprocess")
    items = post["outputs"]["volume"]["items"]
    assert items["items"] == 1 and items["min_fsc"] is not None
    text = (reproduced_demo / "reproduction.txt").read_text()
    assert "spa.refine_3d" in text and "rtol=1e-05" in text
    assert (reproduced_demo / "workflow.json").exists()


def test_demo_reproduces_every_run(reproduced_demo: Path) -> None:
    # outputs close in plan order, so parallel steps finishing in another order change nothing
    data = json.loads((reproduced_demo / "reproduction.json").read_text())
    assert data["verdict"] in PASSING, [
        (r["protocol"], r["details"]) for r in data["runs"] if r["verdict"] not in PASSING
    ]


def test_tampered_outputs_differ_naming_them(
    small_demo: Path, reproduced_demo: Path, tmp_path: Path
) -> None:
    from cryolab.em import imageio

    project = _copy(reproduced_demo, tmp_path / "tampered")
    noise_file = project.path / "noise.mrc"
    post = _run(project, "spa.postprocess")
    volumes = post.out.volume.load()
    shape = imageio.read_image(volumes[0].path).shape
    noise = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    imageio.write_mrc(noise_file, noise)
    _replace(post.out.volume, volumes.with_columns(**{"image.path": [str(noise_file)]}))
    ctf = _run(project, "spa.ctf_estimate")
    ctfs = ctf.out.ctfs.load()
    _replace(ctf.out.ctfs, ctfs.with_columns(**{"ctf.defocus_u": ctfs["ctf.defocus_u"] * 1.01}))

    report = compare_projects(
        open_project(small_demo, create=False), project, reproduction_pairs(project)
    )
    verdicts = {r["protocol"]: r for r in report.runs}
    assert report.verdict == "differs" and not report.ok
    assert verdicts["spa.postprocess"]["verdict"] == "differs"
    assert "volume" in verdicts["spa.postprocess"]["details"]
    figures = verdicts["spa.postprocess"]["outputs"]["volume"]["items"]
    assert figures["min_correlation"] < 0.5 and figures["min_fsc"] < 0.5
    assert verdicts["spa.ctf_estimate"]["verdict"] == "differs"
    assert "ctf.defocus_u" in verdicts["spa.ctf_estimate"]["details"]
    assert verdicts["spa.pick"]["verdict"] in PASSING
    assert "ctf.defocus_u" in str(report)


def test_a_reordered_input_is_named_in_the_run_that_differs_after_it(
    small_demo: Path, reproduced_demo: Path, tmp_path: Path
) -> None:
    """Projects from before outputs closed in plan order: the report names the likely cause."""
    project = _copy(reproduced_demo, tmp_path / "reordered")
    extract = _run(project, "spa.extract")
    particles = extract.out.particles.load()
    _replace(extract.out.particles, particles.take(np.arange(len(particles))[::-1]))
    classify = _run(project, "spa.classify_2d")
    assigned = classify.out.particles.load()
    shifted = assigned["transform.psi"] + 90.0
    _replace(classify.out.particles, assigned.with_columns(**{"transform.psi": shifted}))

    report = compare_projects(
        open_project(small_demo, create=False), project, reproduction_pairs(project)
    )
    verdicts = {r["run"]: r for r in report.runs}
    assert verdicts[extract.id]["verdict"] in PASSING  # the same rows, matched by uid
    assert verdicts[extract.id]["outputs"]["particles"]["row_order"] == "different"
    assert verdicts[classify.id]["verdict"] == "differs"
    assert verdicts[classify.id]["inputs_reordered"] == [f"{extract.id}.particles"]
    assert "came in another row order" in verdicts[classify.id]["details"]


def test_statistical_comparison_end_to_end(
    small_demo: Path, reproduced_demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs of protocols taken as non-deterministic: sizes, KS per column, maps by FSC."""
    from cryolab.core.plugins import registry
    from cryolab.core.sets import new_uids

    for protocol in ("spa.pick", "spa.postprocess"):
        monkeypatch.setattr(registry.get(protocol), "deterministic", False)
    project = _copy(reproduced_demo, tmp_path / "statistical")
    pick = _run(project, "spa.pick")
    picks = pick.out.coordinates.load()
    rng = np.random.default_rng(8)
    jittered = picks.with_columns(
        **{"coordinate.x": picks["coordinate.x"] + rng.normal(scale=0.5, size=len(picks))}
    )
    _replace(pick.out.coordinates, jittered.take(np.arange(1, len(picks))))  # one pick fewer
    post = _run(project, "spa.postprocess")
    volumes = post.out.volume.load()
    _replace(post.out.volume, volumes.with_columns(uid=new_uids(1)))  # a map drawn anew

    report = compare_projects(
        open_project(small_demo, create=False), project, reproduction_pairs(project)
    )
    runs = {r["protocol"]: r for r in report.runs}
    coordinates = runs["spa.pick"]["outputs"]["coordinates"]
    assert not runs["spa.pick"]["deterministic"]
    assert coordinates["count"]["source"] == coordinates["count"]["reproduced"] + 1
    assert coordinates["columns"]["coordinate.x"]["ks_pvalue"] > 0.01
    assert coordinates["verdict"] == "within tolerance", coordinates["summary"]
    volume = runs["spa.postprocess"]["outputs"]["volume"]
    assert volume["matched_by"] == "single row" and "item uids drawn anew" in volume["notes"]
    assert volume["items"]["verdict"] == "identical" and volume["items"]["min_fsc"] > 0.99
    assert runs["spa.postprocess"]["verdict"] in PASSING
    assert "statistical" in str(report)


def _copy(project_folder: Path, target: Path) -> Project:
    """A copy of a project folder, opened (tests change copies, never the shared fixtures)."""
    shutil.copytree(project_folder, target)
    return open_project(target, create=False)


def _run(project: Project, protocol: str) -> Any:
    """The first run of ``protocol`` in ``project``."""
    return next(run for run in project.runs() if run.protocol == protocol)


def _replace(ref: OutputRef, data: Set) -> None:
    shutil.rmtree(ref.path)
    data.save(ref.path)


# -- row matching and statistics on synthetic sets ---------------------------------------------
def _output(tmp_path: Path, name: str, data: Set) -> OutputRef:
    path = data.save(Path(tempfile.mkdtemp(dir=tmp_path)) / name)
    return OutputRef(None, 1, name, path, ["Set"])  # type: ignore[arg-type]


def _compare(tmp_path: Path, a: Set, b: Set, deterministic: bool = True) -> dict[str, Any]:
    context = CompareContext(Tolerances(), deterministic, tmp_path, tmp_path)
    return compare_outputs(_output(tmp_path, "a", a), _output(tmp_path, "b", b), context)


def test_rows_are_matched_in_any_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=50)
    a = Set({"x": x, "group": np.arange(50) % 3, "name": [f"n{i}" for i in range(50)]})
    order = rng.permutation(50)
    shuffled = Set(
        {"x": x[order], "group": (np.arange(50) % 3)[order], "name": [f"n{i}" for i in order]}
    )
    result = _compare(tmp_path, a, shuffled)  # new uids, other order
    assert result["verdict"] == "identical" and result["matched_by"] == "sorted rows"
    assert "item uids drawn anew" in result["notes"]
    # the same uids given to other rows (steps finishing in another order)
    relabelled = a.take(order).with_columns(uid=a.uids)
    assert _compare(tmp_path, a, relabelled)["verdict"] == "identical"
    same = a.take(order)
    result = _compare(tmp_path, a, same)
    assert result["verdict"] == "identical" and result["matched_by"] == "uid"


def test_float_tolerances_and_differences(tmp_path: Path) -> None:
    a = Set({"x": np.linspace(1, 2, 20), "n": np.arange(20)})
    close = a.with_columns(x=a["x"] * (1 + 1e-9))
    result = _compare(tmp_path, a, close)
    assert result["verdict"] == "within tolerance"
    assert result["columns"]["x"]["max_rel_diff"] == pytest.approx(1e-9, rel=1e-3)
    far = a.with_columns(x=a["x"] * 1.001)
    result = _compare(tmp_path, a, far)
    assert result["verdict"] == "differs" and "column x" in result["summary"]
    fewer = a.take(np.arange(19))
    assert "20 items in the source, 19 reproduced" in _compare(tmp_path, a, fewer)["summary"]
    props = Set(a, properties={"resolution": 4.0})
    assert _compare(tmp_path, props, Set(a, properties={"resolution": 4.2}))["verdict"] == "differs"


def test_statistical_comparison(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    a = Set({"score": rng.normal(size=400)})
    alike = Set({"score": rng.normal(size=410)})
    result = _compare(tmp_path, a, alike, deterministic=False)
    assert result["verdict"] == "within tolerance"
    assert result["columns"]["score"]["ks_pvalue"] > 0.01
    shifted = Set({"score": rng.normal(loc=1.0, size=400)})
    result = _compare(tmp_path, a, shifted, deterministic=False)
    assert result["verdict"] == "differs" and "score" in result["summary"]
    assert (
        _compare(tmp_path, a, Set({"score": a["score"][:300]}), deterministic=False)["verdict"]
        == "differs"
    )
    assert _compare(tmp_path, a, Set(a.to_arrow()), deterministic=False)["verdict"] == "identical"


# -- workflows and notebooks of the test plugin ---------------------------------------------------
@pytest.fixture
def counted(tmp_path: Path) -> Project:
    """A project with the runs the test notebook makes: test.count then test.sum."""
    project = open_project(tmp_path / "source")
    numbers = project.run("test.count", steps=3, seed=5)
    project.run("test.sum", source=numbers.out.numbers, seed=6).wait(60)
    return project


def _notebook(tmp_path: Path, metadata: dict[str, Any] | None, *cells: str) -> Path:
    document = json.loads(NOTEBOOK.read_text())
    if metadata is not None:
        document["metadata"]["cryolab"] = metadata
    if cells:  # the parameters cell, then the given cells
        document["cells"] = [document["cells"][1]] + [
            {
                "cell_type": "code",
                "metadata": {},
                "outputs": [],
                "execution_count": None,
                "source": c,
            }
            for c in cells
        ]
    path = tmp_path / "notebook.ipynb"
    path.write_text(json.dumps(document))
    return path


def test_notebook_is_executed_with_papermill(counted: Project, tmp_path: Path) -> None:
    pytest.importorskip("papermill")
    source = _notebook(tmp_path, {"project": str(counted.path), "runs": [1, 2]})
    report = reproduce(source, tmp_path / "again", timeout=120)
    assert report.verdict == "identical", str(report)
    assert [(r["source_run"], r["run"]) for r in report.runs] == [(1, 1), (2, 2)]
    notebook = report.to_dict()["notebook"]
    assert notebook["status"] == "completed"
    executed = json.loads(Path(notebook["output"]).read_text())
    assert str(tmp_path / "again") in json.dumps(executed["cells"])  # the injected parameter
    assert Path(notebook["output"]).parent == tmp_path / "again" / "notebooks"
    assert "<table>" in report._repr_html_()
    # the reproduced runs record the executed notebook they were made in
    again = open_project(tmp_path / "again", create=False)
    origins = [run.origin.get("notebook") or {} for run in again.runs()]
    assert [o.get("abs_path") for o in origins] == [notebook["output"]] * 2
    again.close()


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("x = 1\nraise ValueError('boom')", "cell 2 ('x = 1') raised ValueError: boom"),
        ("import os\nos._exit(1)", "cell 2 ('import os') killed the kernel"),
        ("import time\ntime.sleep(60)", "cell 2 ('import time') did not finish within"),
    ],
)
def test_notebook_failures_name_the_cell(
    counted: Project, tmp_path: Path, cell: str, expected: str
) -> None:
    pytest.importorskip("papermill")
    source = _notebook(tmp_path, {"project": str(counted.path), "runs": []}, cell)
    report = reproduce(source, tmp_path / "again", timeout=4)
    notebook = report.to_dict()["notebook"]
    assert notebook["status"] == "failed"
    assert expected in notebook["error"]
    assert report.verdict == "differs" and expected in str(report)


def test_the_timeout_bounds_the_whole_notebook(counted: Project, tmp_path: Path) -> None:
    """Two cells of 3 s each, each within 5 s, but not both: the second is stopped."""
    pytest.importorskip("papermill")
    cells = ("import time\ntime.sleep(3)", "time.sleep(3)")
    source = _notebook(tmp_path, {"project": str(counted.path), "runs": []}, *cells)
    report = reproduce(source, tmp_path / "again", timeout=5)
    notebook = report.to_dict()["notebook"]
    assert notebook["status"] == "failed"
    assert "did not finish within the timeout of 5 s" in notebook["error"]
    assert notebook["duration"] < 8


def test_notebook_without_papermill(
    counted: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryolab.core.reproduce_notebook import NotebookError

    closed: list[Path] = []
    close = Project.close

    def record(project: Project) -> None:
        closed.append(project.path)
        close(project)

    monkeypatch.setattr(Project, "close", record)
    monkeypatch.setitem(sys.modules, "papermill", None)
    source = _notebook(tmp_path, {"project": str(counted.path), "runs": [1, 2]})
    with pytest.raises(NotebookError, match="needs papermill"):
        reproduce(source, tmp_path / "again")
    assert not (tmp_path / "again").exists()  # removed: a retry is not refused
    assert {counted.path, tmp_path / "again"} <= set(closed)  # every opened project closed
    (tmp_path / "empty").mkdir()  # a folder that existed is kept, emptied again
    with pytest.raises(NotebookError, match="needs papermill"):
        reproduce(source, tmp_path / "empty")
    assert (tmp_path / "empty").is_dir() and not any((tmp_path / "empty").iterdir())


def test_an_interrupted_notebook_leaves_nothing(
    counted: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryolab.core import reproduce_notebook

    def interrupted(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise KeyboardInterrupt

    monkeypatch.setattr(reproduce_notebook, "execute", interrupted)
    source = _notebook(tmp_path, {"project": str(counted.path), "runs": [1, 2]})
    with pytest.raises(KeyboardInterrupt):
        reproduce(source, tmp_path / "again")
    assert not (tmp_path / "again").exists()


def test_the_notebook_source_project_is_checked_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryolab.core import reproduce_notebook

    executed: list[Any] = []
    monkeypatch.setattr(reproduce_notebook, "execute", lambda *a, **k: executed.append(a))
    source = _notebook(tmp_path, {"project": str(tmp_path / "gone"), "runs": [1]})
    with pytest.raises(ReproductionError, match=r"named in notebook\.ipynb.*not a cryolab project"):
        reproduce(source, tmp_path / "again")
    assert not (tmp_path / "again").exists() and not executed
    with pytest.raises(ReproductionError, match=r"--against.*not a cryolab project"):
        reproduce(source, tmp_path / "again", against=tmp_path)
    assert not (tmp_path / "again").exists() and not executed


def test_refusals(counted: Project, tmp_path: Path) -> None:
    Project.create(tmp_path / "taken")
    with pytest.raises(ReproductionError, match="is a project already"):
        reproduce(counted.path, tmp_path / "taken")
    with pytest.raises(ReproductionError, match="no such file"):
        reproduce(tmp_path / "missing.json", tmp_path / "new")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ReproductionError, match="give a project folder"):
        reproduce(tmp_path / "notes.txt", tmp_path / "new")
    (tmp_path / "plain").mkdir()
    with pytest.raises(ReproductionError, match="not a cryolab project"):
        reproduce(tmp_path / "plain", tmp_path / "new")
    with pytest.raises(ReproductionError, match="does not name its source project"):
        reproduce(_notebook(tmp_path, None), tmp_path / "new")
    with pytest.raises(ReproductionError, match="a project is compared with itself"):
        reproduce(counted.path, tmp_path / "new", against=tmp_path / "taken")
    assert not (tmp_path / "new").exists()
    with pytest.raises(ReproductionError, match=r"notes\.txt is a file"):
        reproduce(counted.path, tmp_path / "notes.txt")
    with pytest.raises(ReproductionError, match=r"notes\.txt is a file"):
        reproduce(counted.path, tmp_path / "notes.txt" / "below")
    with pytest.raises(ReproductionError, match="plain is a folder that is not empty"):
        (tmp_path / "plain" / "data.txt").write_text("x")
        reproduce(counted.path, tmp_path / "plain")


def test_an_unwritable_parent_is_named(
    counted: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    checked: list[Path] = []

    def no_write(path: Path, mode: int) -> bool:  # as for a non-root user in a 0o500 folder
        checked.append(Path(path))
        return False

    monkeypatch.setattr(os, "access", no_write)
    with pytest.raises(ReproductionError, match="locked is not writable"):
        reproduce(counted.path, locked / "new" / "again")
    assert checked == [locked] and not (locked / "new").exists()


def test_workflow_against_a_project_and_alone(counted: Project, tmp_path: Path) -> None:
    workflow = tmp_path / "workflow.json"
    counted.export_workflow(workflow)
    report = reproduce(workflow, tmp_path / "compared", against=counted.path, timeout=120)
    assert [r["verdict"] for r in report.runs] == ["identical", "identical"]
    alone = reproduce(workflow, tmp_path / "alone", timeout=120)
    assert alone.verdict == "not compared" and alone.ok
    assert all(r["status"] == "finished" for r in alone.runs)
    assert "not compared: no project to compare with (give --against)" in str(alone)


def test_nothing_compared_with_a_project_is_not_ok(counted: Project, tmp_path: Path) -> None:
    runs = counted.runs()
    report = compare_projects(counted, counted, [(98, runs[0]), (99, runs[1])])
    assert report.verdict == "not compared" and report.compared == 0 and not report.ok
    assert f"no run could be compared with {counted.path}" in str(report)
    partly = compare_projects(counted, counted, [(1, runs[0]), (99, runs[1])])
    assert partly.compared == 1 and partly.ok
    assert compare_projects(None, counted, [(None, runs[0])]).ok


def test_imported_runs_are_copied_and_the_rest_recomputed(tmp_path: Path) -> None:
    source = open_project(tmp_path / "source")
    imported = source.add_imported_run(
        "test.count", {"steps": 3}, {"numbers": Set({"value": np.arange(30)})}
    )
    source.run("test.sum", source=imported.out.numbers, seed=6).wait(60)
    report = reproduce(source.path, tmp_path / "again", timeout=120)
    assert [(r["source_run"], r["verdict"]) for r in report.runs] == [
        (1, "identical"),
        (2, "identical"),
    ]
    assert "copied as they are: 1" in str(report)
    again = open_project(tmp_path / "again", create=False)
    copy, total = again.runs()
    assert copy.origin["imported"] and copy.origin["copied_from"] == 1
    assert total.params["source"] == f"{copy.id}.numbers"
    assert total.out.total.load()["value"].tolist() == [435]
    assert [(s, r.id) for s, r in reproduction_pairs(again)] == [(1, 1), (2, 2)]
    again.close()
    source.close()


def test_a_run_ending_while_it_is_aborted_keeps_its_status(
    counted: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryolab.core import database
    from cryolab.core.reproduce import _wait
    from cryolab.core.runs import Run

    run = counted.get_run(1)
    with database.transaction(counted.db):
        counted.db.execute("UPDATE runs SET status = 'running', pid = NULL WHERE id = 1")

    def finishes_first(self: Run, grace: float = 5.0) -> None:  # it ended meanwhile
        with database.transaction(counted.db):
            counted.db.execute("UPDATE runs SET status = 'finished' WHERE id = 1")

    monkeypatch.setattr(Run, "abort", finishes_first)
    _wait(counted, [run], time.monotonic() - 1, 1.0)
    assert run.status == "finished" and run.error is None


def test_cli_exit_codes(
    counted: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workflow = tmp_path / "workflow.json"
    document = counted.export_workflow(workflow)
    document["runs"][0]["params"]["steps"] = 4  # a changed parameter: 40 numbers, not 30
    workflow.write_text(json.dumps(document))
    code = main(
        ["reproduce", str(workflow), "--into", str(tmp_path / "changed"), "--against",
         str(counted.path), "--timeout", "120"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1
    assert "numbers" in out and "parameters changed: steps" in out and "30 items" in out
    code = main(
        [
            "reproduce",
            str(counted.path),
            "--into",
            str(tmp_path / "same"),
            "--json",
            "--rtol",
            "1e-3",
        ]
    )
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["verdict"] == "identical" and data["tolerances"]["rtol"] == 1e-3
    assert main(["reproduce", str(tmp_path / "nothing"), "--into", str(tmp_path / "x")]) == 2
    assert "cryolab reproduce: error: no such file" in capsys.readouterr().err
    (tmp_path / "a-file").write_text("x")
    assert main(["reproduce", str(counted.path), "--into", str(tmp_path / "a-file")]) == 2
    assert "a-file is a file; reproduce into a new folder" in capsys.readouterr().err
    # nothing could be compared with the project given: not a success
    empty = Project.create(tmp_path / "empty")
    empty.close()
    code = main(
        ["reproduce", str(workflow), "--into", str(tmp_path / "unmatched"), "--against",
         str(tmp_path / "empty"), "--timeout", "120"]
    )  # fmt: skip
    assert code == 1 and "no run could be compared with" in capsys.readouterr().out
