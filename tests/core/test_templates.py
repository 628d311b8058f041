"""Workflow templates: export, import into another project, dynamic parameters, bad input."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from conftest import database_dump
from cryolab.core import templates
from cryolab.core.errors import TemplateError
from cryolab.core.project import Project, open_project
from cryolab.core.runs import Run

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_SOURCE = ROOT / "src" / "cryolab" / "core" / "workflow.schema.json"
SCHEMA_DOCS = ROOT / "docs" / "workflow.schema.json"
TIMEOUT = 60
ROWS = 12


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """Finished runs 1 import_table (12 rows) -> 2 subset (x < 8: 8 rows) -> 3 split (3 parts)."""
    folder = tmp_path_factory.mktemp("source")
    table = folder / "table.csv"
    table.write_text("x,y\n" + "".join(f"{i},{i * i}\n" for i in range(ROWS)), encoding="utf-8")
    project = open_project(folder / "project")
    rows = project.run(
        "sets.import_table", files=str(table), label="table", seed=1, executor="sync"
    )
    subset = project.run(
        "sets.subset",
        source=rows.out.rows,
        where="x < 8",
        label="low x",
        comment="small values",
        seed=2,
        executor="sync",
    )
    split = project.run("sets.split", source=subset.out.subset, parts=3, seed=3)
    split.wait(TIMEOUT)
    assert [r.status for r in project.runs()] == ["finished"] * 3
    yield project
    project.close()


@pytest.fixture
def target(project: Project) -> Project:
    """The importing project, with a run already there so that imported ids differ."""
    project.save("test.count", steps=1)
    return project


@pytest.fixture
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_DOCS.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def sizes(run: Run) -> dict[str, int]:
    return {name: ref.count for name, ref in run.out.items()}


def by_key(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["key"]: entry for entry in document["runs"]}


# -- the schema ---------------------------------------------------------------------------------
def test_published_schema_is_identical_to_the_packaged_one() -> None:
    assert SCHEMA_DOCS.read_bytes() == SCHEMA_SOURCE.read_bytes()
    assert templates.schema() == json.loads(SCHEMA_DOCS.read_text(encoding="utf-8"))


def test_exported_documents_are_valid(
    source: Project, tmp_path: Path, validator: jsonschema.Draft202012Validator
) -> None:
    path = tmp_path / "workflow.json"
    returned = source.export_workflow(path, dynamic={"2.where": "cut", "3.parts": "n_parts"})
    written = json.loads(path.read_text(encoding="utf-8"))
    assert written == returned
    validator.validate(written)
    validator.validate(source.export_workflow(runs=[2, 3]))
    validator.validate(source.export_workflow(runs=[3]))
    assert written["format"] == "cryolab.workflow"
    assert written["version"] == 1


# -- export -----------------------------------------------------------------------------------
def test_export_describes_runs_inputs_and_dynamic_parameters(source: Project) -> None:
    document = source.export_workflow(dynamic={"2.where": "cut"})
    runs = by_key(document)
    assert list(runs) == ["r1", "r2", "r3"]
    assert runs["r1"]["protocol"] == "sets.import_table"
    assert runs["r1"]["inputs"] == {}
    assert runs["r2"]["inputs"] == {"source": "r1.rows"}
    assert runs["r2"]["params"]["where"] == {"$param": "cut"}
    assert runs["r2"]["label"] == "low x"
    assert runs["r2"]["comment"] == "small values"
    assert runs["r2"]["seed"] == 2
    assert runs["r2"]["executor"] == {"name": "sync", "cores": None}
    assert runs["r3"]["inputs"] == {"source": "r2.subset"}
    assert runs["r3"]["params"] == {"parts": 3, "order": "random", "group_by": ""}
    (cut,) = document["parameters"]
    assert cut["name"] == "cut"
    assert cut["default"] == "x < 8"
    assert cut["kind"] == "str"


def test_export_of_a_subgraph_makes_outside_inputs_dynamic(source: Project) -> None:
    document = source.export_workflow(runs=[3, 2])
    assert [r["key"] for r in document["runs"]] == ["r2", "r3"]
    runs = by_key(document)
    assert runs["r2"]["inputs"] == {"source": {"$param": "r2_source"}}
    assert runs["r3"]["inputs"] == {"source": "r2.subset"}
    (declared,) = document["parameters"]
    assert declared["name"] == "r2_source"
    assert declared["kind"] == "input"
    assert "default" not in declared  # must be wired at import


@pytest.mark.parametrize(
    ("dynamic", "message"),
    [
        ({"2.nope": "x"}, "has no parameter(s) ['2.nope']"),
        ({"2.source": "src"}, "no such non-input parameter"),
        ({"9.where": "cut"}, "['9.where']"),
        ({"where": "cut"}, "['where']"),
        ({"2.where": "not-a-name"}, "must be identifiers"),
    ],
)
def test_export_refuses_dynamic_markers_it_cannot_honour(
    source: Project, tmp_path: Path, dynamic: dict[str, str], message: str
) -> None:
    """Bug fixed: these were ignored silently, or gave a template that cannot be imported."""
    path = tmp_path / "w.json"
    with pytest.raises(TemplateError) as info:
        source.export_workflow(path, dynamic=dynamic)
    assert message in str(info.value)
    assert not path.exists()


def test_export_of_an_empty_project_is_refused(project: Project) -> None:
    """Bug fixed: it wrote a template with no runs, which the schema (and import) reject."""
    with pytest.raises(TemplateError, match="no runs to export"):
        project.export_workflow()


def test_export_to_an_unwritable_place_is_a_template_error(source: Project, tmp_path: Path) -> None:
    """Bug fixed: the OSError escaped (a traceback in ``cryolab export``)."""
    with pytest.raises(TemplateError, match="cannot write the template"):
        source.export_workflow(tmp_path / "missing" / "w.json")


# -- import -----------------------------------------------------------------------------------
def test_import_rewires_runs_and_keeps_parameters(
    source: Project, target: Project, tmp_path: Path
) -> None:
    path = tmp_path / "workflow.json"
    source.export_workflow(path)
    runs = target.import_workflow(path)
    assert [r.id for r in runs] == [2, 3, 4]
    assert [r.status for r in runs] == ["saved"] * 3
    originals = source.runs()
    for original, imported in zip(originals, runs, strict=True):
        assert imported.protocol == original.protocol
        assert imported.label == original.label
        assert imported.comment == original.comment
        assert target._run_row(imported.id)["seed"] == source._run_row(original.id)["seed"]
        assert imported.folder.is_dir()
        assert imported.folder.parent == target.path / "Runs"
    assert runs[0].params == originals[0].params
    assert runs[1].params == {**originals[1].params, "source": "2.rows"}
    assert runs[2].params == {**originals[2].params, "source": "3.subset"}
    graph = target.run_graph()
    assert {(e["source"], e["output"], e["target"]) for e in graph["edges"]} == {
        (2, "rows", 3),
        (3, "subset", 4),
    }
    origin = json.loads(target._run_row(3)["origin"])
    assert origin == {"template_key": "r2"}


def test_imported_runs_launch_and_finish_with_the_same_output_sizes(
    source: Project, target: Project
) -> None:
    runs = target.import_workflow(source.export_workflow(), launch=True)
    runs[-1].wait(TIMEOUT)
    assert [r.status for r in runs] == ["finished"] * 3
    assert [sizes(r) for r in runs] == [sizes(r) for r in source.runs()]
    assert sizes(runs[2]) == {"part1": 3, "part2": 3, "part3": 2}
    # same seed, same data: the same random split
    assert sorted(runs[2].out.part1.load().uids) == sorted(source.get_run(3).out.part1.load().uids)


def test_saved_imported_runs_can_be_launched_later(source: Project, target: Project) -> None:
    runs = target.import_workflow(source.export_workflow(runs=[1]))
    (run,) = runs
    assert run.status == "saved"
    assert run.launch().wait(TIMEOUT).out.rows.count == ROWS


def test_dynamic_values_from_python_and_from_text(source: Project, project: Project) -> None:
    document = source.export_workflow(dynamic={"2.where": "cut", "3.parts": "n_parts"})
    first = project.import_workflow(document, {"cut": "x < 4", "n_parts": 2})
    assert first[1].params["where"] == "x < 4"
    assert first[2].params["parts"] == 2
    assert list(first[2].out) == ["part1", "part2"]
    second = project.import_workflow(document, {"n_parts": "4"})  # text: parsed as an int
    assert second[2].params["parts"] == 4
    assert isinstance(second[2].params["parts"], int)
    assert second[1].params["where"] == "x < 8"  # the default: the exported value
    assert second[1].params["source"] == f"{second[0].id}.rows"
    third = project.import_workflow(document)
    assert third[2].params["parts"] == 3
    assert third[1].params["where"] == "x < 8"
    # and they run with those values
    first[2].launch()
    first[1].launch()
    first[0].launch()
    first[2].wait(TIMEOUT)
    assert first[1].out.subset.count == 4
    assert sum(sizes(first[2]).values()) == 4


def test_dynamic_text_that_does_not_parse_is_refused(source: Project, project: Project) -> None:
    document = source.export_workflow(dynamic={"3.parts": "n_parts"})
    before = database_dump(project)
    with pytest.raises(TemplateError, match=r"'n_parts'.*'many' is not an integer"):
        project.import_workflow(document, {"n_parts": "many"})
    with pytest.raises(TemplateError, match=r"r3.*parts"):
        project.import_workflow(document, {"n_parts": 1})  # below the minimum
    assert database_dump(project) == before


def test_a_dynamic_parameter_without_default_needs_a_value(
    source: Project, project: Project
) -> None:
    document = source.export_workflow()
    document["parameters"] = [{"name": "n_parts", "kind": "int"}]
    by_key(document)["r3"]["params"]["parts"] = {"$param": "n_parts"}
    before = database_dump(project)
    with pytest.raises(TemplateError) as info:
        project.import_workflow(document)
    assert "'n_parts'" in str(info.value)
    assert "needs a value" in str(info.value)
    assert database_dump(project) == before
    runs = project.import_workflow(document, {"n_parts": "5"})
    assert runs[2].params["parts"] == 5


def test_outside_inputs_must_be_wired_at_import(source: Project, project: Project) -> None:
    document = source.export_workflow(runs=[2, 3])
    before = database_dump(project)
    with pytest.raises(TemplateError, match=r"'r2_source'.*needs a value"):
        project.import_workflow(document)
    assert database_dump(project) == before
    table = source.get_run(1).params["files"]
    rows = project.run("sets.import_table", files=table, executor="sync")
    rows.wait(TIMEOUT)
    before = database_dump(project)
    with pytest.raises(TemplateError, match="run 7 does not exist"):
        project.import_workflow(document, {"r2_source": "7.rows"})
    assert database_dump(project) == before
    runs = project.import_workflow(document, {"r2_source": f"{rows.id}.rows"}, launch=True)
    assert runs[0].params["source"] == f"{rows.id}.rows"
    assert runs[1].params["source"] == f"{runs[0].id}.subset"
    runs[1].wait(TIMEOUT)
    assert [sizes(r) for r in runs] == [sizes(source.get_run(2)), sizes(source.get_run(3))]
    # an output handle works as well as text
    again = project.import_workflow(document, {"r2_source": rows.out.rows})
    assert again[0].params["source"] == f"{rows.id}.rows"


def test_unknown_value_names_are_refused(source: Project, project: Project) -> None:
    document = source.export_workflow(dynamic={"2.where": "cut"})
    before = database_dump(project)
    with pytest.raises(TemplateError) as info:
        project.import_workflow(document, {"cut": "x < 2", "cutt": "x < 3"})
    assert "no parameter(s) ['cutt']" in str(info.value)
    assert "['cut']" in str(info.value)
    assert database_dump(project) == before


# -- malformed templates ----------------------------------------------------------------------
def _mutations() -> list[tuple[str, Callable[[dict[str, Any]], Any], str]]:
    def drop_runs(d: dict[str, Any]) -> None:
        del d["runs"]

    def wrong_format(d: dict[str, Any]) -> None:
        d["format"] = "other.workflow"

    def newer(d: dict[str, Any]) -> None:
        d["version"] = 2
        d["new_field"] = True

    def duplicate_keys(d: dict[str, Any]) -> None:
        d["runs"][2]["key"] = "r1"

    def unknown_key(d: dict[str, Any]) -> None:
        d["runs"][2]["inputs"]["source"] = "r9.subset"

    def cycle(d: dict[str, Any]) -> None:
        d["runs"][1]["inputs"]["source"] = "r3.part1"

    def undeclared(d: dict[str, Any]) -> None:
        d["runs"][1]["params"]["where"] = {"$param": "cut"}

    def unknown_protocol(d: dict[str, Any]) -> None:
        d["runs"][2]["protocol"] = "sets.splitt"

    def bad_value(d: dict[str, Any]) -> None:
        d["runs"][2]["params"]["parts"] = 1

    def bad_param(d: dict[str, Any]) -> None:
        d["runs"][2]["params"]["bogus"] = 1

    def bad_output(d: dict[str, Any]) -> None:
        d["runs"][2]["inputs"]["source"] = "r2.nothing"

    def extra_field(d: dict[str, Any]) -> None:
        d["runs"][0]["code"] = "import os"

    def repeated_parameter(d: dict[str, Any]) -> None:
        d["parameters"] = [{"name": "cut", "default": "x < 1"}, {"name": "cut"}]
        d["runs"][1]["params"]["where"] = {"$param": "cut"}

    def not_an_object(d: dict[str, Any]) -> list[Any]:
        return [d]

    return [
        ("missing runs", drop_runs, "at (top level): 'runs' is a required property"),
        ("wrong format", wrong_format, "at format: 'cryolab.workflow' was expected"),
        ("newer version", newer, "is workflow format 2; this cryolab reads up to 1"),
        ("duplicate keys", duplicate_keys, "run keys must be unique; repeated: ['r1']"),
        (
            "unknown run key",
            unknown_key,
            "run r3 takes 'r9.subset', but the template has no run 'r9'",
        ),
        ("cycle", cycle, "runs ['r2', 'r3'] take inputs from each other in a cycle"),
        (
            "undeclared dynamic",
            undeclared,
            "run r2 uses dynamic parameter 'cut', which 'parameters' does not declare",
        ),
        (
            "unknown protocol",
            unknown_protocol,
            "run r3: unknown protocol 'sets.splitt'; did you mean sets.split",
        ),
        (
            "invalid value",
            bad_value,
            "run r3 (sets.split): parameter 'parts': 1 is below the minimum 2",
        ),
        ("unknown parameter", bad_param, "run r3 (sets.split): parameter 'bogus'"),
        ("unknown output", bad_output, "has no output 'nothing'"),
        ("extra field", extra_field, "at runs/0: Additional properties are not allowed"),
        ("repeated parameter", repeated_parameter, "dynamic parameter names must be unique"),
        ("not an object", not_an_object, "is not of type 'object'"),
    ]


@pytest.mark.parametrize(
    ("change", "message"), [pytest.param(c, m, id=i) for i, c, m in _mutations()]
)
def test_malformed_templates_are_refused_and_change_nothing(
    source: Project,
    target: Project,
    tmp_path: Path,
    change: Callable[[dict[str, Any]], Any],
    message: str,
) -> None:
    document = copy.deepcopy(source.export_workflow())
    document = change(document) or document
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    before = database_dump(target)
    folders = sorted((target.path / "Runs").iterdir())
    with pytest.raises(TemplateError) as info:
        target.import_workflow(path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    if isinstance(document, dict):  # the same from a dict as from a file
        with pytest.raises(TemplateError, match=r"\S"):
            target.import_workflow(document)
    assert database_dump(target) == before
    assert sorted((target.path / "Runs").iterdir()) == folders


def test_invalid_json_is_refused(target: Project, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"format": "cryolab.workflow", "runs": [', encoding="utf-8")
    before = database_dump(target)
    with pytest.raises(TemplateError, match=r"bad\.json is not valid JSON"):
        target.import_workflow(path)
    with pytest.raises(TemplateError, match="no template file"):
        target.import_workflow(tmp_path / "absent.json")
    with pytest.raises(TemplateError, match="cannot read the template"):
        target.import_workflow(tmp_path)  # a folder
    assert database_dump(target) == before


def test_a_failure_in_a_later_run_rolls_back_the_earlier_ones(
    source: Project, target: Project
) -> None:
    document = source.export_workflow()
    by_key(document)["r3"]["params"]["order"] = "backwards"
    before = database_dump(target)
    count = len(target.runs())
    with pytest.raises(TemplateError, match="'order'"):
        target.import_workflow(document)
    assert database_dump(target) == before
    assert len(target.runs()) == count
    # the next import gets the ids the failed one would have had
    runs = target.import_workflow(source.export_workflow())
    assert [r.id for r in runs] == [2, 3, 4]


def test_load_template_checks_without_a_project(source: Project) -> None:
    document = source.export_workflow()
    assert templates.load_template(document)["runs"] == document["runs"]
    with pytest.raises(TemplateError, match=r"at runs: \[\] should be non-empty"):
        templates.load_template({**document, "runs": []})
