"""``cryolab export-notebook``: a notebook that rebuilds runs, checked by running it."""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import papermill
import pytest
from small_demo import DEMO_PROTOCOLS

from cryolab.cli import main
from cryolab.core import notebook_export
from cryolab.core.errors import ProjectError, RunNotFoundError
from cryolab.core.project import Project, open_project
from cryolab.core.sets import Set

ROOT = Path(__file__).resolve().parents[2]


def ruff(notebook: Path) -> subprocess.CompletedProcess[str]:
    """``ruff check`` of a notebook's code cells with the project's own settings."""
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "ruff"),
            "check",
            "--no-cache",
            "--config",
            str(ROOT / "pyproject.toml"),
            str(notebook),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def assignments(source: str) -> dict[str, Any]:
    """``name = literal`` assignments of a cell."""
    values = {}
    for node in ast.parse(source).body:
        assert isinstance(node, ast.Assign), ast.dump(node)
        values[node.targets[0].id] = ast.literal_eval(node.value)  # type: ignore[attr-defined]
    return values


def mapped(value: Any, ids: dict[int, int]) -> Any:
    """Input references of the source project as references of the rebuilt one."""
    if isinstance(value, list):
        return [mapped(v, ids) for v in value]
    if isinstance(value, str) and value.split(".")[0].isdigit() and "." in value:
        run, _, output = value.partition(".")
        return f"{ids[int(run)]}.{output}"
    return value


def test_the_demo_notebook_rebuilds_the_demo(
    small_demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "demo.ipynb"
    assert main(["export-notebook", str(small_demo), "-o", str(path)]) == 0
    assert "exported 11 runs" in capsys.readouterr().out
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert (notebook.nbformat, notebook.nbformat_minor) == (4, 5)
    source = open_project(small_demo, create=False)
    ids = [r.id for r in source.runs()]
    assert notebook.metadata.cryolab == {"project": str(small_demo.resolve()), "runs": ids}
    assert notebook.metadata.kernelspec.name == "python3"
    assert notebook.metadata.language_info.name == "python"

    title, parameters, opening, *run_cells, result = notebook.cells
    assert title.cell_type == "markdown" and "cryolab 0.1.0" in title.source
    assert parameters.metadata.tags == ["parameters"]
    values = assignments(parameters.source)
    assert values["project_path"] == str(small_demo.resolve()) + "-rebuilt"
    acquisition = {k: source.get_run(1).params[k] for k in values if k != "project_path"}
    assert acquisition == {
        "pixel_size": 4.0,
        "voltage": 300.0,
        "spherical_aberration": 2.7,
        "amplitude_contrast": 0.1,
        "dose_per_frame": 2.5,
    }
    assert values == {"project_path": values["project_path"], **acquisition}
    assert "pixel_size = 4.0  # Å/px; simulate.spa (run 1)" in parameters.source
    assert "voltage=voltage," in run_cells[0].source
    assert "cryolab.open_project(project_path)" in opening.source
    assert [c.metadata.cryolab.source_run for c in run_cells] == ids
    assert "r5 = project.run(\n" in run_cells[4].source
    assert "coordinates=r4.out.coordinates," in run_cells[4].source
    assert "project.graph(follow=False)" in result.source
    checked = ruff(path)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    rebuilt_path = tmp_path / "rebuilt"
    output = tmp_path / "out.ipynb"
    papermill.execute_notebook(
        str(path),
        str(output),
        parameters={"project_path": str(rebuilt_path), "PAPERMILL_OUTPUT_PATH": str(output)},
        kernel_name="python3",
        progress_bar=False,
    )
    rebuilt = open_project(rebuilt_path, create=False)
    copies = rebuilt.runs()
    assert [r.protocol for r in copies] == DEMO_PROTOCOLS
    new_ids = {old: new.id for old, new in zip(ids, copies, strict=True)}
    for old, new in zip(source.runs(), copies, strict=True):
        assert new.params == mapped(old.params, new_ids), old.id
        assert rebuilt._run_row(new.id)["seed"] == source._run_row(old.id)["seed"]
        assert new.label == old.label
        assert new.status == "finished"
        # the rebuilt runs name the cell that made them (papermill --inject-paths)
        assert new.notebook is not None
        assert (new.notebook["path"], new.notebook["cell_id"]) == (str(output), f"run-{old.id}")


def test_chosen_runs_bring_their_upstream_runs(small_demo: Path, tmp_path: Path) -> None:
    source = open_project(small_demo, create=False)
    notebook = source.export_notebook(tmp_path / "post.ipynb", runs=[11])
    # postprocess <- refine <- the best initial model and extract <- pick, ctf <- motion <- sim
    best = int(source.get_run(10).params["reference"].split(".")[0])
    assert notebook["metadata"]["cryolab"]["runs"] == [1, 2, 3, 4, 5, best, 10, 11]
    assert source.export_notebook(tmp_path / "ctf.ipynb", runs=[3, 2])["metadata"]["cryolab"][
        "runs"
    ] == [1, 2, 3]
    # an existing notebook is replaced
    again = source.export_notebook(tmp_path / "ctf.ipynb", runs=[1])
    assert json.loads((tmp_path / "ctf.ipynb").read_text())["metadata"] == again["metadata"]


def test_errors_name_the_problem(
    small_demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export-notebook", str(small_demo), "--runs", "3,99", "-o", "x.ipynb"]) == 2
    assert "error: no run 99" in capsys.readouterr().err
    assert main(["export-notebook", str(small_demo), "--runs", "a", "-o", "x.ipynb"]) == 2
    assert "a run id is a number" in capsys.readouterr().err
    source = open_project(small_demo, create=False)
    with pytest.raises(RunNotFoundError):
        source.export_notebook(tmp_path / "x.ipynb", runs=[0])
    missing = tmp_path / "absent" / "x.ipynb"
    with pytest.raises(ProjectError, match=r"folder .*absent does not exist"):
        source.export_notebook(missing)
    assert not missing.parent.exists()


def test_empty_projects_and_imported_runs_are_refused(project: Project, tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="has no runs to export"):
        project.export_notebook(tmp_path / "x.ipynb")
    imported = project.add_imported_run(
        "external.job",
        {"program": "relion", "job": "x", "output_names": ["rows"], "output_types": ["Set"]},
        {"rows": Set({"score": [0.5]})},
    )
    subset = project.save("sets.subset", source=imported.out.rows, where="score > 0.1")
    with pytest.raises(ProjectError, match=r"runs \[1\] were imported"):
        project.export_notebook(tmp_path / "x.ipynb", runs=[subset.id])
    assert not (tmp_path / "x.ipynb").exists()


def test_data_paths_become_parameters_and_long_lines_are_wrapped(
    project: Project, tmp_path: Path
) -> None:
    folder = tmp_path / ("a-rather-long-folder-name-for-the-tables-" * 3) / "of-this-experiment"
    folder.mkdir(parents=True)
    (folder / "scores.csv").write_text("score\n0.5\n")
    first = project.save("sets.import_table", files=str(folder / "*.csv"), label="scores")
    where = "score > 0.1" + " and score < 1" * 8
    project.save("sets.subset", source=first.out.rows, where=where)
    path = tmp_path / "tables.ipynb"
    notebook = nbformat.reads(json.dumps(project.export_notebook(path)), as_version=4)
    nbformat.validate(notebook)
    values = assignments(notebook.cells[1].source)
    assert values["files"] == str(folder / "*.csv")
    assert "files=files," in notebook.cells[3].source
    assert max(len(line) for c in notebook.cells[1:] for line in c.source.splitlines()) <= 100
    checked = ruff(path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize(
    "value",
    [
        "/data/" + "x" * 150 + "/movies/*.tif",
        'quote " and backslash \\ and é and \n newline',
        [10000.0, 25000.0],
        [list(range(40)), {"key": "v" * 120, "n": None, "b": True}],
        {"nested": {"list": ["a" * 60, "b" * 60]}},
        1e-300,
        -7,
    ],
)
def test_values_are_python_literals_that_round_trip(value: Any) -> None:
    for start, indent in [(4, 4), (40, 4), (90, 0)]:
        text = notebook_export._literal(value, start, indent)
        assert ast.literal_eval(text) == value
        first, *rest = text.splitlines()
        assert start + len(first) <= 101 and all(len(line) <= 100 for line in rest)


def test_infinite_numbers_are_written_as_floats() -> None:
    assert notebook_export._literal(math.inf, 0, 0) == 'float("inf")'
    assert eval(notebook_export._literal([-math.inf], 0, 0)) == [-math.inf]
