"""Scipion interop: set sqlite files read as cryolab sets, workflows imported as run graphs.

The set files are rebuilt with sqlite3 from the dumps of real files written by Scipion 3.11
(``shared/docs/notes/scipion-samples``); the workflows are the real templates of
``shared/data/real/scipion_templates`` and the workflow exported by pyworkflow 3.11.7.
"""

from __future__ import annotations

import json
import re
import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import database_dump
from cryolab.cli import main as cli
from cryolab.core.errors import TemplateError
from cryolab.core.plugins import registry
from cryolab.core.project import Project
from cryolab.core.runs import Run
from cryolab.em import geometry
from cryolab.em.formats import FormatError
from cryolab.em.scipion import read_scipion_class_members, read_scipion_set, scipion_uids
from cryolab.em.scipion_workflow import (
    PROTOCOL_MAP,
    import_scipion_workflow,
    output_type,
    read_scipion_workflow,
    template_markers,
)

NOTES = Path(__file__).resolve().parents[3] / "shared" / "docs" / "notes" / "scipion-samples"
FACILITY = "scipion_templates/emfacilities_facility_SPA_streaming.json.template"
NO_DOSE = "scipion_templates/emfacilities_to_2Dclassification_noDoseWeithed.json.template"
BETAGAL = "scipion_templates/relion_betagal-turorial.json.template"
EXPORTED_NAME = "exported_workflow_from_pyworkflow_3.11.7.json"


def notes(name: str) -> Path:
    path = NOTES / name
    if not path.exists():
        pytest.skip(f"{path} is not available")
    return path


# -- rebuilding the real set files from their dumps --------------------------------------------
def _create_tables(db: sqlite3.Connection, text: str) -> None:
    """Run the dump's CREATE statements (sqlite makes sqlite_sequence by itself)."""
    sql = "\n".join(
        line for line in text.splitlines() if not line.startswith("--") and "|" not in line
    )
    for statement in sql.split(";"):
        if statement.strip() and "sqlite_sequence" not in statement:
            db.execute(statement)


def _insert(db: sqlite3.Connection, table: str, columns: list[str], fields: list[str]) -> None:
    """Insert a dump row; the sqlite3 shell shows NULL as an empty field."""
    values = [None if v == "" else v for v in fields]
    marks = ", ".join("?" * len(values))
    db.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", values)


@pytest.fixture
def particles_file(tmp_path: Path) -> Path:
    """particles_set_sqlite_dump.txt as a sqlite file: schema, Classes, Properties, 2 rows."""
    text = notes("particles_set_sqlite_dump.txt").read_text(encoding="utf-8")
    path = tmp_path / "Runs" / "000123_ProtExtract" / "particles.sqlite"
    path.parent.mkdir(parents=True)
    db = sqlite3.connect(path)
    _create_tables(db, text)
    section, header = "", None
    for line in text.splitlines():
        if line.startswith("-- "):
            section = line[3:].split()[0]
        elif line and section == "Classes":
            _insert(
                db,
                "Classes",
                ["id", "label_property", "column_name", "class_name"],
                line.split("|"),
            )
        elif line and section == "Properties":
            key, _, value = line.partition("|")
            _insert(db, "Properties", ["key", "value"], [key, value])
        elif line and section == "Objects":
            if header is None:
                header = line.split("|")
            else:
                _insert(db, "Objects", header, line.split("|"))
    db.commit()
    db.close()
    return path


def _dump_rows(name: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The particles dump's attribute -> column map and its rows as attribute -> text."""
    text = notes(name).read_text(encoding="utf-8")
    columns = dict(
        (f[2], f[1]) for f in (line.split("|") for line in text.splitlines()) if len(f) == 4
    )
    rows = [line.split("|") for line in text.splitlines() if re.match(r"\d+\|1\|", line)]
    header = next(line.split("|") for line in text.splitlines() if line.startswith("id|"))
    return columns, [
        {columns.get(h, h): v for h, v in zip(header, row, strict=True)} for row in rows
    ]


# The classes dump lists the member tables' Classes rows but not the Classes rows of the main
# table (the classes). These are the ones Scipion writes for Class2D items, worked out from the
# column types of the dumped CREATE TABLE Objects and the row values; the dumped class rows have
# one empty field too many in the acquisition block (29 fields for 28 columns), which is dropped.
CLASS2D_ATTRIBUTES = [
    ("self", "Class2D"),
    ("_size", "Integer"),
    ("_streamState", "Integer"),
    ("_representative", "Particle"),
    ("_representative._index", "Integer"),
    ("_representative._filename", "String"),
    ("_representative._samplingRate", "Float"),
    ("_representative._micId", "Integer"),
    ("_representative._classId", "Integer"),
    ("_samplingRate", "Float"),
    ("_hasCtf", "Boolean"),
    ("_alignment", "String"),
    ("_isPhaseFlipped", "Boolean"),
    ("_isAmplitudeCorrected", "Boolean"),
    ("_acquisition", "Acquisition"),
    ("_acquisition._magnification", "Float"),
    ("_acquisition._voltage", "Float"),
    ("_acquisition._sphericalAberration", "Float"),
    ("_acquisition._amplitudeContrast", "Float"),
    ("_acquisition._doseInitial", "Float"),
    ("_acquisition._dosePerFrame", "Float"),
    ("_acquisition.opticsGroupInfo", "String"),
    ("_firstDim", "ImageDim"),
    ("_isSubParticles", "Boolean"),
]


@pytest.fixture
def classes_file(tmp_path: Path) -> Path:
    """classes2D_sqlite_dump.txt as a sqlite file (see CLASS2D_ATTRIBUTES for what is added)."""
    text = notes("classes2D_sqlite_dump.txt").read_text(encoding="utf-8")
    path = tmp_path / "classes2D.sqlite"
    db = sqlite3.connect(path)
    _create_tables(db, text)
    for number, (label, cls) in enumerate(CLASS2D_ATTRIBUTES):
        db.execute(
            "INSERT INTO Classes VALUES (?, ?, ?, ?)", (number + 1, label, f"c{number:02d}", cls)
        )
    db.execute("INSERT INTO Properties VALUES ('self', 'SetOfClasses2D')")
    db.execute("INSERT INTO Properties VALUES ('_samplingRate', '2.0')")
    tables, header = ["Objects", "Class001_Objects"], None
    for line in text.splitlines():
        fields = line.split("|")
        if len(fields) == 4 and re.fullmatch(r"c\d\d", fields[2]):
            _insert(
                db,
                "Class001_Classes",
                ["id", "label_property", "column_name", "class_name"],
                fields,
            )
        elif line.startswith("id|"):
            header, table = fields, tables.pop(0)
        elif header is not None and line:
            if len(fields) == len(header) + 1:
                assert fields[18:24] == [""] * 6  # the extra empty field
                del fields[18]
            _insert(db, table, header, fields)
    db.commit()
    db.close()
    return path


def write_scipion_set(
    path: Path,
    set_class: str,
    item_class: str,
    attributes: list[tuple[str, str]],
    rows: list[list[Any]],
    properties: dict[str, str] | None = None,
) -> Path:
    """A small set file in Scipion's flat layout (rows start with the item id)."""
    sql_types = {"Integer": "INTEGER", "Float": "REAL", "Boolean": "INTEGER"}
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE Properties (key TEXT UNIQUE, value TEXT DEFAULT NULL)")
    db.execute(
        "CREATE TABLE Classes (id INTEGER PRIMARY KEY AUTOINCREMENT, label_property TEXT UNIQUE, "
        "column_name TEXT UNIQUE, class_name TEXT DEFAULT NULL)"
    )
    columns = "".join(
        f", c{i + 1:02d} {sql_types.get(c, 'TEXT')} DEFAULT NULL"
        for i, (_, c) in enumerate(attributes)
    )
    db.execute(
        "CREATE TABLE Objects (id INTEGER PRIMARY KEY, enabled INTEGER DEFAULT 1, label TEXT, "
        f"comment TEXT, creation DATE{columns})"
    )
    db.execute(
        "INSERT INTO Classes(label_property, column_name, class_name) VALUES ('self', 'c00', ?)",
        (item_class,),
    )
    for i, (label, cls) in enumerate(attributes):
        db.execute(
            "INSERT INTO Classes(label_property, column_name, class_name) VALUES (?, ?, ?)",
            (label, f"c{i + 1:02d}", cls),
        )
    for key, value in {"self": set_class, **(properties or {})}.items():
        db.execute("INSERT INTO Properties VALUES (?, ?)", (key, value))
    names = ", ".join(f"c{i + 1:02d}" for i in range(len(attributes)))
    for row in rows:
        marks = ", ".join("?" * len(row))
        db.execute(f"INSERT INTO Objects (id, {names}) VALUES ({marks})", row)
    db.commit()
    db.close()
    return path


# -- sets ----------------------------------------------------------------------------------------
def test_particles_have_the_dumped_values(particles_file: Path) -> None:
    _, rows = _dump_rows("particles_set_sqlite_dump.txt")
    particles = read_scipion_set(particles_file)
    assert particles.type_name == "SetOfParticles" and len(particles) == len(rows) == 2
    assert particles["scipion.id"].tolist() == [int(r["id"]) for r in rows]
    assert particles["image.path"].tolist() == [r["_filename"] for r in rows]
    assert particles["image.index"].tolist() == [int(r["_index"]) for r in rows]
    for attribute, column in [
        ("_ctfModel._defocusU", "ctf.defocus_u"),
        ("_ctfModel._defocusV", "ctf.defocus_v"),
        ("_ctfModel._defocusAngle", "ctf.defocus_angle"),
        ("_ctfModel._resolution", "ctf.resolution"),
        ("_ctfModel._fitQuality", "ctf.score"),
        ("_ctfModel._defocusRatio", "scipion._ctfModel._defocusRatio"),
    ]:
        assert particles[column].tolist() == [float(r[attribute]) for r in rows], column
    assert particles["class_id"].tolist() == [int(r["_classId"]) for r in rows]
    assert particles["scipion._micId"].tolist() == [int(r["_micId"]) for r in rows]
    assert particles["micrograph_uid"].tolist() == scipion_uids([1, 1], "micrograph").tolist()
    # the transform, through the geometry module (projection alignment, shifts in pixels)
    matrices = np.array([json.loads(r["_transform._matrix"]) for r in rows])
    pose = geometry.from_scipion_matrix(matrices, 1.05)
    for name in ("rot", "tilt", "psi", "shift_x", "shift_y"):
        np.testing.assert_allclose(particles[f"transform.{name}"], getattr(pose, name))
    np.testing.assert_allclose(
        particles["transform.shift_x"], [1.7147464544174564 * 1.05, 0.5371175035952898 * 1.05]
    )
    # set properties; the per-item sampling rate and acquisition repeat them and are dropped
    assert particles.sampling_rate == 1.05
    acquisition = particles.acquisition
    assert acquisition is not None
    assert (acquisition.voltage, acquisition.spherical_aberration) == (300.0, 2.7)
    assert (acquisition.amplitude_contrast, acquisition.magnification) == (0.1, 105000.0)
    assert acquisition.dose_per_frame is None and acquisition.extra == {"dose_initial": 0.0}
    assert not [c for c in particles.columns if "_acquisition" in c or "_samplingRate" in c]
    scipion = particles.properties["scipion"]
    assert scipion["class"] == "SetOfParticles" and scipion["item_class"] == "Particle"
    assert scipion["properties"]["_alignment"] == "Projection"
    assert scipion["properties"]["_firstDim"] == "256,256,1"
    # image paths are relative to the Scipion project folder (the parent of Runs/)
    assert particles.properties["root"] == str(particles_file.parents[2].resolve())
    assert particles[0].path == particles_file.parents[2].resolve() / rows[0]["_filename"]
    assert particles.state == "closed"


def test_uids_are_stable_and_link_sets(particles_file: Path) -> None:
    first = read_scipion_set(particles_file)
    again = read_scipion_set(particles_file)
    other = read_scipion_set(particles_file, namespace="another project")
    assert first.uids.tolist() == again.uids.tolist() == scipion_uids([1, 2], "particle").tolist()
    assert len(set(first.uids.tolist()) | set(other.uids.tolist())) == 4
    assert all(0 < u < 2**63 for u in first.uids.tolist())
    # the hash is a bijection before the top bit is dropped: no collisions among many ids
    many = scipion_uids(np.arange(1, 1_000_001), "particle")
    assert np.unique(many).size == many.size and (many > 0).all()


def test_classes_and_their_members(classes_file: Path) -> None:
    classes = read_scipion_set(classes_file)
    assert classes.type_name == "SetOfClasses2D" and len(classes) == 2
    assert classes["class_id"].tolist() == [1, 2]
    assert classes["image.path"].tolist() == ["averages.mrcs"] * 2
    assert classes["image.index"].tolist() == [1, 2]
    assert classes["class.size"].tolist() == [3, 3]
    assert classes.sampling_rate == 2.0
    assert classes["scipion._alignment"].tolist() == ["None", "None"]
    assert classes["scipion._firstDim"].tolist() == ["64,64,1"] * 2
    members = read_scipion_class_members(classes_file)
    assert members.type_name == "SetOfParticles"
    assert members["scipion.id"].tolist() == [1, 3, 5]
    assert members["class_id"].tolist() == [1, 1, 1]
    assert members["image.path"].tolist() == ["parts.mrcs"] * 3
    assert members["image.index"].tolist() == [1, 3, 5]
    # members keep the uids of the particles they are (Scipion keeps their ids)
    assert members.uids.tolist() == scipion_uids([1, 3, 5], "particle").tolist()
    assert members.properties["scipion"]["members_of"] == "SetOfClasses2D"
    with pytest.raises(FormatError, match="not a set of classes"):
        read_scipion_class_members(
            write_scipion_set(
                classes_file.with_name("mics.sqlite"),
                "SetOfMicrographs",
                "Micrograph",
                [("_filename", "String")],
                [[1, "a.mrc"]],
            )
        )


def test_micrographs_ctfs_coordinates_and_volumes_link_up(tmp_path: Path) -> None:
    micrographs = read_scipion_set(
        write_scipion_set(
            tmp_path / "micrographs.sqlite",
            "SetOfMicrographs",
            "Micrograph",
            [
                ("_index", "Integer"),
                ("_filename", "String"),
                ("_samplingRate", "Float"),
                ("_micName", "String"),
            ],
            [[7, 0, "/data/m7.mrc", 1.5, "m7"], [9, 0, "/data/m9.mrc", 1.5, "m9"]],
            {"_samplingRate": "1.5", "_streamState": "1"},
        )
    )
    assert micrographs.type_name == "SetOfMicrographs" and micrographs.state == "open"
    assert micrographs["image.index"].tolist() == [1, 1]  # Scipion's 0: the whole file
    assert micrographs["micrograph.name"].tolist() == ["m7", "m9"]
    assert "root" not in micrographs.properties  # absolute paths
    ctfs = read_scipion_set(
        write_scipion_set(
            tmp_path / "ctfs.sqlite",
            "SetOfCTF",
            "CTFModel",
            [
                ("_defocusU", "Float"),
                ("_defocusV", "Float"),
                ("_defocusAngle", "Float"),
                ("_phaseShift", "Float"),
                ("_micObj._filename", "String"),
            ],
            [[9, 21000.0, 20000.0, 12.5, 0.0, "/data/m9.mrc"]],
        )
    )
    assert ctfs.type_name == "SetOfCTFs"
    assert ctfs["micrograph_uid"].tolist() == micrographs.uids[1:].tolist()
    assert ctfs.uids.tolist() != micrographs.uids[1:].tolist()
    assert (ctfs[0].ctf.defocus_u, ctfs[0].ctf.phase_shift) == (21000.0, 0.0)
    assert ctfs["scipion._micObj._filename"].tolist() == ["/data/m9.mrc"]
    coordinates = read_scipion_set(
        write_scipion_set(
            tmp_path / "coordinates.sqlite",
            "SetOfCoordinates",
            "Coordinate",
            [("_x", "Integer"), ("_y", "Integer"), ("_micId", "Integer"), ("_micName", "String")],
            [[1, 100, 200, 7, "m7"], [2, 300, 400, 9, "m9"]],
            {"_boxSize": "128"},
        )
    )
    assert coordinates.type_name == "SetOfCoordinates"
    assert coordinates["coordinate.x"].tolist() == [100.0, 300.0]
    assert coordinates["micrograph_uid"].tolist() == micrographs.uids.tolist()
    assert coordinates.properties["scipion"]["properties"]["_boxSize"] == "128"
    volumes = read_scipion_set(
        write_scipion_set(
            tmp_path / "volumes.sqlite",
            "SetOfVolumes",
            "Volume",
            [
                ("_index", "Integer"),
                ("_filename", "String"),
                ("_halfMapFilenames", "CsvList"),
                ("_acquisition", "Acquisition"),
                ("_acquisition._voltage", "Float"),
            ],
            [
                [1, 0, "map.mrc", "h1.mrc,h2.mrc", None, 300.0],
                [2, 0, "map2.mrc", None, None, 200.0],
            ],
        )
    )
    assert volumes["volume.half1"].tolist() == ["h1.mrc", None]
    assert volumes["volume.half2"].tolist() == ["h2.mrc", None]
    # acquisitions that differ between items are kept per item
    assert volumes["scipion._acquisition._voltage"].tolist() == [300.0, 200.0]
    assert "acquisition" not in volumes.properties


def test_two_d_alignments_and_other_transforms(tmp_path: Path) -> None:
    matrix = [[0.0, -1.0, 0.0, 2.0], [1.0, 0.0, 0.0, -4.0], [0.0, 0.0, 1.0, 0.0], [0, 0, 0, 1]]
    rows = [[1, "p.mrcs", json.dumps(matrix)], [2, "p.mrcs", None]]
    attributes = [("_filename", "String"), ("_transform._matrix", "Matrix")]
    aligned = read_scipion_set(
        write_scipion_set(
            tmp_path / "a.sqlite",
            "SetOfParticles",
            "Particle",
            attributes,
            rows,
            {"_alignment": "2D", "_samplingRate": "2.0"},
        )
    )
    assert aligned["transform.psi"][0] == pytest.approx(90.0)
    assert aligned["transform.shift_x"][0] == pytest.approx(4.0)
    assert aligned["transform.shift_y"][0] == pytest.approx(-8.0)
    assert aligned.to_arrow().column("transform.psi").null_count == 1  # row 2 has no transform
    raw = read_scipion_set(
        write_scipion_set(
            tmp_path / "b.sqlite",
            "SetOfParticles",
            "Particle",
            attributes,
            rows,
            {"_alignment": "3D", "_samplingRate": "2.0"},
        )
    )
    assert "transform.psi" not in raw
    assert raw["scipion._transform._matrix.m03"][0] == 2.0
    assert raw["scipion._transform._matrix.m10"][0] == 1.0


def test_unreadable_files_are_named(tmp_path: Path, project: Project) -> None:
    with pytest.raises(FormatError, match="no such Scipion set file") as missing:
        read_scipion_set(tmp_path / "absent.sqlite")
    assert missing.value.path == str(tmp_path / "absent.sqlite")
    text = tmp_path / "notes.sqlite"
    text.write_text("not a database at all, not even close" * 20)
    with pytest.raises(FormatError, match=r"notes\.sqlite: not a Scipion set file"):
        read_scipion_set(text)
    # a sqlite file of another kind: cryolab's own project database
    with pytest.raises(FormatError, match=r"no table\(s\) \['Properties', 'Classes', 'Objects'\]"):
        read_scipion_set(project.path / "project.sqlite")
    bad = write_scipion_set(
        tmp_path / "bad.sqlite",
        "SetOfParticles",
        "Particle",
        [("_transform._matrix", "Matrix")],
        [[1, "[[1, 2], [3]]"]],
        {"_alignment": "Projection", "_samplingRate": "1"},
    )
    with pytest.raises(FormatError, match=r"bad.sqlite, field '_transform._matrix'"):
        read_scipion_set(bad)


def test_the_api_name_users_rely_on(particles_file: Path) -> None:
    import cryolab.em

    assert cryolab.em.read_scipion_set is read_scipion_set
    assert len(cryolab.em.read_scipion_set(str(particles_file))) == 2


# -- workflows -------------------------------------------------------------------------------------
def origins(project: Project) -> dict[str, int]:
    """Scipion protocol id -> run id, from the runs' origin."""
    found = {}
    for run in project.runs():
        origin = json.loads(project._run_row(run.id)["origin"])
        found[origin["scipion"]["id"]] = run.id
    return found


def scipion_edges(document: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """(producer id, output, consumer id) for every "<id>.<output>" pointer of a workflow."""
    ids = {p["object.id"] for p in document}
    edges = set()
    for protocol in document:
        for key, value in protocol.items():
            for item in value if isinstance(value, list) else [value]:
                match = isinstance(item, str) and re.fullmatch(
                    r"(\d+)\.([A-Za-z_]\w*)(\.\w+)*", item
                )
                if match and key != "object.id":
                    assert match.group(1) in ids
                    edges.add((match.group(1), match.group(2), protocol["object.id"]))
    return edges


def graph_edges(project: Project) -> set[tuple[int, str, int]]:
    return {(e["source"], e["output"], e["target"]) for e in project.run_graph()["edges"]}


def check_import(project: Project, document: list[dict[str, Any]], runs: list[Any]) -> None:
    """Every protocol is a run (mapped or placeholder) with its pointers as edges."""
    assert len(runs) == len(document)
    ids = origins(project)
    assert set(ids) == {p["object.id"] for p in document}
    for protocol in document:
        run = project.get_run(ids[protocol["object.id"]])
        assert run.status == "saved"
        assert run.label == protocol["object.label"]
        assert run.comment == protocol["object.comment"]
        target = PROTOCOL_MAP.get(protocol["object.className"])
        if run.protocol == "external.job":
            assert run.params["program"] == "scipion"
            assert run.params["job"] == protocol["object.className"]
            settings = json.loads(run.params["settings"])
            assert settings == {k: v for k, v in protocol.items() if not k.startswith("object.")}
            origin = json.loads(project._run_row(run.id)["origin"])["scipion"]
            if target is not None and target not in registry.protocols():
                assert origin["maps_to"] == target
                assert f"unknown protocol {target!r}" in origin["not_mapped"]
        else:
            assert run.protocol == target
    expected = scipion_edges(document)
    edges = graph_edges(project)
    for producer, output, consumer in expected:
        matching = [e for e in edges if e[0] == ids[producer] and e[2] == ids[consumer]]
        if project.get_run(ids[producer]).protocol == "external.job":
            assert (ids[producer], output, ids[consumer]) in edges
        else:
            assert matching, (producer, output, consumer)
    # a run comes after the runs it takes inputs from
    assert all(source < target for source, _, target in edges)


def test_the_workflow_exported_by_pyworkflow(project: Project) -> None:
    exported = notes(EXPORTED_NAME)
    document = json.loads(exported.read_text(encoding="utf-8"))
    runs = import_scipion_workflow(project, exported)
    check_import(project, document, runs)
    first, second = runs
    assert first.out.oBoxSize.types == ["Set"]
    assert second.params["inputs_from"] == [f"{first.id}.oBoxSize"]
    assert graph_edges(project) == {(first.id, "oBoxSize", second.id)}
    origin = json.loads(project._run_row(second.id)["origin"])["scipion"]
    assert origin["inputs"] == {"iBoxSize": [f"{first.id}.oBoxSize"]}
    assert origin["workflow"] == str(exported.resolve())


@pytest.mark.parametrize(
    ("template", "values", "count", "edges"),
    [
        (FACILITY, {}, 22, 33),
        (NO_DOSE, {"moviesPath": "/data/movies", "gainPath": "/data/gain.mrc"}, 28, 41),
        (BETAGAL, {}, 33, 56),  # 2-D/3-D classification and refinement are mapped runs
    ],
)
def test_real_templates(
    project: Project,
    real: Callable[[str], Path],
    template: str,
    values: dict[str, str],
    count: int,
    edges: int,
) -> None:
    path = real(template)
    document = read_scipion_workflow(path, values, environ={"HOME": "/home/me"})
    runs = import_scipion_workflow(project, path, values, environ={"HOME": "/home/me"})
    assert len(runs) == count
    check_import(project, document, runs)
    assert len(project.run_graph()["edges"]) == edges
    assert [r.id for r in runs] == sorted(r.id for r in runs)


def test_pointers_to_protocols_wait_for_all_their_outputs(
    project: Project, real: Callable[[str], Path]
) -> None:
    runs = import_scipion_workflow(project, real(NO_DOSE), {"moviesPath": "/m", "gainPath": "/g"})
    ids = origins(project)
    monitor = next(r for r in runs if r.params.get("job") == "ProtMonitorSummary")
    origin = json.loads(project._run_row(monitor.id)["origin"])["scipion"]
    assert origin["protocols"] == {"inputProtocols": [ids[i] for i in ("2", "64", "159", "330")]}
    sources = {e[0] for e in graph_edges(project) if e[2] == monitor.id}
    # protocol 64 (gain estimation) has no output another protocol uses: nothing to wait for
    with_outputs = {ids[i] for i in ("2", "64", "159", "330") if project.get_run(ids[i]).out}
    assert sources == with_outputs
    # the union of two sets of averages takes both (a list of pointers)
    union = next(r for r in runs if r.params.get("job") == "ProtUnionSet")
    assert union.params["inputs_from"] == [
        f"{ids['891']}.outputAverages",
        f"{ids['927']}.outputAverages",
    ]
    assert project.get_run(ids["891"]).out.outputAverages.types[0] == "SetOfImages"


def scipion_settings(project: Project, run: Run) -> tuple[str, dict[str, Any]]:
    """The Scipion class and settings of an imported run, mapped or placeholder."""
    if run.protocol == "external.job":
        return run.params["job"], json.loads(run.params["settings"])
    origin = json.loads(project._run_row(run.id)["origin"])["scipion"]
    return origin["class"], origin["settings"]


def test_markers_are_asked_for(project: Project, real: Callable[[str], Path]) -> None:
    path = real(FACILITY)
    names = [m.name for m in template_markers(path)]
    assert names[:3] == ["moviesPath", "filesPattern", "voltage"] and names.count("classes") == 1
    runs = import_scipion_workflow(
        project,
        path,
        {"voltage": "200", "Sampling Rate": 1.1, "moviesPath": "/data/run1", "classes": "12"},
    )
    settings = dict(scipion_settings(project, r) for r in runs[:1])
    movies = settings["ProtImportMovies"]
    assert movies["voltage"] == 200  # an integer marker, given as text
    assert movies["samplingRate"] == 1.1  # by title
    assert movies["filesPath"] == "/data/run1"
    assert movies["filesPattern"] == "*.tiff"  # the default
    assert movies["dataStreaming"] == "true"  # a text marker stays text
    classes = [
        settings.get("numberOfClasses")
        for name, settings in (scipion_settings(project, r) for r in runs)
        if name == "ProtCryo2D"
    ]
    assert classes == [12, 12]  # one alias used twice


def test_defaults_use_the_environment(project: Project, real: Callable[[str], Path]) -> None:
    path = real(NO_DOSE)
    before = database_dump(project)
    with pytest.raises(TemplateError, match=r"marker 'moviesPath' uses %\(SCIPION_TESTS\)s"):
        import_scipion_workflow(project, path, environ={})
    assert database_dump(project) == before
    runs = import_scipion_workflow(project, path, environ={"SCIPION_TESTS": "/tests"})
    settings = json.loads(runs[0].params["settings"])
    assert settings["filesPath"] == "/tests/relion30_tutorial/Movies"


@pytest.fixture
def small_template(tmp_path: Path) -> Path:
    path = tmp_path / "small.json.template"
    path.write_text(
        "A small workflow.\nTwo protocols.\n"
        + json.dumps(
            [
                {
                    "object.className": "ProtImportParticles",
                    "object.id": "5",
                    "object.label": "import",
                    "object.comment": "",
                    "samplingRate": "~Pixel size|1.2|4|pixel~",
                    "filesPath": "~Data folder||2|~",
                    "doFlip": "~Flip|false|1|flip~",
                    "note": "at ~Where|%(HOME)s|0|where~ today",
                },
                {
                    "object.className": "ProtSomethingElse",
                    "object.id": "9",
                    "object.label": "next",
                    "object.comment": "",
                    "inputParticles": "5.outputParticles",
                    "_prerequisites": "5",
                },
            ],
            indent=1,
        ),
        encoding="utf-8",
    )
    return path


def test_a_marker_without_default_needs_a_value(project: Project, small_template: Path) -> None:
    before = database_dump(project)
    with pytest.raises(
        TemplateError, match=r"marker 'Data folder' has no default and needs a value"
    ):
        import_scipion_workflow(project, small_template)
    with pytest.raises(TemplateError, match=r"has no marker\(s\) \['pixle'\]"):
        import_scipion_workflow(project, small_template, {"Data folder": "/x", "pixle": "1"})
    with pytest.raises(TemplateError, match="marker 'Pixel size' \\(pixel\\) takes decimal"):
        import_scipion_workflow(project, small_template, {"Data folder": "/x", "pixel": "big"})
    assert database_dump(project) == before
    runs = import_scipion_workflow(
        project, small_template, {"Data folder": "/x", "flip": "yes"}, environ={"HOME": '/h"q'}
    )
    settings = json.loads(runs[0].params["settings"])
    assert settings == {
        "samplingRate": 1.2,
        "filesPath": "/x",
        "doFlip": True,
        "note": 'at /h"q today',
    }
    assert runs[1].params["inputs_from"] == [f"{runs[0].id}.outputParticles"]
    assert runs[0].out.outputParticles.types[0] == "SetOfParticles"


def test_bad_workflows_change_nothing(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exported = notes(EXPORTED_NAME)

    def workflow(*protocols: dict[str, Any]) -> Path:
        path = tmp_path / f"w{len(list(tmp_path.glob('w*.json')))}.json"
        path.write_text(json.dumps(list(protocols)), encoding="utf-8")
        return path

    def protocol(sid: str, **params: Any) -> dict[str, Any]:
        return {"object.className": "ProtX", "object.id": sid, **params}

    before = database_dump(project)
    cases = [
        (workflow(protocol("1", inputMovies="7.outputMovies")), "points to '7.outputMovies', but"),
        (
            workflow(protocol("1", a="2.outX"), protocol("2", b="1.outY")),
            r"\['1', '2'\] point to each other",
        ),
        (workflow(protocol("1"), protocol("1")), "two protocols have the id 1"),
        (workflow(protocol("1", a="1.outX")), "points to the protocol itself"),
        (workflow({"object.id": "1"}), "protocol 1 has no object.className"),
        (tmp_path / "absent.json", "no Scipion workflow file"),
    ]
    (tmp_path / "broken.json").write_text("[{", encoding="utf-8")
    cases.append((tmp_path / "broken.json", "is not a Scipion workflow \\(JSON\\)"))
    for path, message in cases:
        with pytest.raises(TemplateError, match=message):
            import_scipion_workflow(project, path)
    with pytest.raises(TemplateError, match="has no markers"):
        import_scipion_workflow(project, exported, {"x": 1})
    # a failure in the middle of creating the runs rolls all of them back
    calls = []
    original = Project.create_run

    def failing(self: Project, *args: Any, **kwargs: Any) -> int:
        calls.append(args[0])
        if len(calls) == 2:
            raise RuntimeError("disk on fire")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Project, "create_run", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        import_scipion_workflow(project, exported)
    assert database_dump(project) == before
    assert not list((project.path / "Runs").iterdir())


# -- mapped protocols: what happens once import.* / spa.* are registered -------------------------
FAKES = """
from cryolab.core.params import FloatParam, InputParam, StrParam
from cryolab.core.plugins import Plugin
from cryolab.core.protocol import Output, Protocol, Step


class ImportMovies(Protocol):
    name = "import.movies"
    files = StrParam()
    sampling_rate = FloatParam(min=0.01)
    voltage = FloatParam(default=300.0)
    spherical_aberration = FloatParam(default=2.7)
    outputs = {"movies": Output("SetOfMovies")}

    def plan(self):
        yield Step("nothing", "nothing")

    def nothing(self, ctx):
        ctx.update_properties("movies", sampling_rate=self.values["sampling_rate"])


class MotionCorrect(Protocol):
    name = "spa.motion_correct"
    movies = InputParam("SetOfMovies")
    outputs = {"micrographs": Output("SetOfMicrographs"), "aligned": Output("SetOfMovies")}

    def plan(self):
        yield Step("nothing", "nothing")

    def nothing(self, ctx):
        pass


class CtfEstimate(Protocol):
    name = "spa.ctf_estimate"
    micrographs = InputParam("SetOfMicrographs")
    window = FloatParam()  # required, and no Scipion parameter maps to it
    outputs = {"ctfs": Output("SetOfCTFs")}


plugin = Plugin(
    name="scipionfakes",
    protocols={
        "import.movies": "scipionfakes:ImportMovies",
        "spa.motion_correct": "scipionfakes:MotionCorrect",
        "spa.ctf_estimate": "scipionfakes:CtfEstimate",
    },
)
"""


@pytest.fixture
def fake_protocols(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    folder = tmp_path / "fakes"
    folder.mkdir()
    (folder / "scipionfakes.py").write_text(FAKES, encoding="utf-8")
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", f"{folder}:{__import__('os').environ['PYTHONPATH']}")
    monkeypatch.setenv(
        "CRYOLAB_PLUGINS", "testplugin=testplugin:plugin,scipionfakes=scipionfakes:plugin"
    )
    registry.refresh()
    yield
    sys.modules.pop("scipionfakes", None)
    registry.refresh()


# the fakes stand in for import.movies and spa.motion_correct; the two 2-D classifications are
# cryolab's own spa.classify_2d (ProtRelionClassify2D, ProtCryo2D)
MAPPED_FACILITY = ["import.movies", "spa.classify_2d", "spa.classify_2d", "spa.motion_correct"]


def test_mapped_protocols_become_real_runs(
    project: Project, real: Callable[[str], Path], fake_protocols: None
) -> None:
    path = real(FACILITY)
    runs = import_scipion_workflow(project, path, {"moviesPath": "/data/movies", "sampling": "0.8"})
    ids = origins(project)
    movies = project.get_run(ids["2284"])
    assert movies.protocol == "import.movies"
    assert movies.params["files"] == "/data/movies/*.tiff"
    assert (movies.params["sampling_rate"], movies.params["voltage"]) == (0.8, 300)
    assert movies.params["spherical_aberration"] == 2.7
    origin = json.loads(project._run_row(movies.id)["origin"])["scipion"]
    assert origin["mapped"] is True and origin["settings"]["magnification"] == 50000
    motion = project.get_run(ids["1242"])
    assert motion.protocol == "spa.motion_correct"
    assert motion.params["movies"] == f"{movies.id}.movies"
    # downstream placeholders take the mapped outputs standing for the Scipion ones
    edges = graph_edges(project)
    maxshift = ids["1207"]  # inputMovies = 1242.outputMovies
    assert (motion.id, "aligned", maxshift) in edges
    tilt = ids["1309"]  # inputMicrographs = 1207.outputMicrographsDoseWeighted (a placeholder)
    assert (maxshift, "outputMicrographsDoseWeighted", tilt) in edges
    # spa.ctf_estimate refuses the translated parameters: a placeholder, saying why
    ctf = project.get_run(ids["1346"])
    assert ctf.protocol == "external.job"
    reason = json.loads(project._run_row(ctf.id)["origin"])["scipion"]["not_mapped"]
    assert "spa.ctf_estimate refused" in reason and "window" in reason
    # the refused attempt left no trace: run ids are consecutive
    assert [r.id for r in runs] == list(range(runs[0].id, runs[0].id + 22))
    # the streaming protocols keep their settings in full (a mapped protocol: in its origin)
    mapped = sorted(r.protocol for r in runs if r.protocol != "external.job")
    assert mapped == MAPPED_FACILITY, mapped


def test_the_registered_import_movies_protocol_is_used(
    project: Project, real: Callable[[str], Path], tmp_path: Path
) -> None:
    """With cryolab's own import.movies registered, ProtImportMovies becomes a run of it."""
    if "import.movies" not in registry.protocols():
        pytest.skip("import.movies is not registered")
    folder = tmp_path / "movies"
    folder.mkdir()
    (folder / "movie_001.tiff").write_bytes(b"")
    runs = import_scipion_workflow(
        project, real(FACILITY), {"moviesPath": str(folder), "gainPath": ""}
    )
    ids = origins(project)
    movies = project.get_run(ids["2284"])
    assert movies.protocol == "import.movies", origin(project, movies.id)
    assert movies.params["files"] == str(folder / "*.tiff")
    assert movies.params["sampling_rate"] == 0.907
    (output,) = movies.out.values()
    assert output.types[0] == "SetOfMovies"
    motion = project.get_run(ids["1242"])  # inputMovies = 2284.outputMovies
    assert motion.params["inputs_from"] == [str(output)]
    assert len(runs) == 22


def origin(project: Project, run_id: int) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(project._run_row(run_id)["origin"])["scipion"]
    return loaded


def test_launch_starts_only_what_can_run(
    project: Project, real: Callable[[str], Path], fake_protocols: None
) -> None:
    runs = import_scipion_workflow(
        project, real(FACILITY), {"moviesPath": "/data/movies"}, launch=True
    )
    launched = [r for r in runs if r.status != "saved"]
    assert {r.protocol for r in launched} == {"import.movies", "spa.motion_correct"}
    for run in launched:
        run.wait(60)
    assert all(r.status == "saved" for r in runs if r.protocol == "external.job")


def test_output_types_are_guessed_from_names() -> None:
    assert output_type("outputMicrographsDoseWeighted") == "SetOfMicrographs"
    assert output_type("outputCoordinates_Auto_095") == "SetOfCoordinates"
    assert output_type("outputClasses", "ProtRelionClassify3D") == "SetOfClasses3D"
    assert output_type("outputClasses", "ProtCryo2D") == "SetOfClasses2D"
    assert output_type("outputVolumeSymmetrized") == "SetOfVolumes"
    assert output_type("TiltSeries_3") == "SetOfTiltSeries"
    assert output_type("boxsize") == "Set"


# -- command line ----------------------------------------------------------------------------------
def test_cli_import_scipion(
    project: Project, real: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(real(FACILITY))
    before = database_dump(project)
    assert cli(["import-scipion", str(project.path), path, "--set", "bogus=1"]) == 2
    assert "has no marker(s) ['bogus']" in capsys.readouterr().err
    assert cli(["import-scipion", str(project.path), path, "--set", "voltage"]) == 2
    assert "--set needs name=value" in capsys.readouterr().err
    assert database_dump(project) == before
    code = cli(
        [
            "import-scipion",
            str(project.path),
            path,
            "--set",
            "voltage=200",
            "--set",
            "moviesPath=/data",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    found = re.search(
        r"imported 22 Scipion protocols .*: (\d+) cryolab protocols, (\d+) "
        r"placeholders",
        out,
    )
    assert found is not None and int(found[1]) + int(found[2]) == 22, out
    _, settings = scipion_settings(project, project.runs()[0])
    assert (settings["voltage"], settings["filesPath"]) == (200, "/data")
