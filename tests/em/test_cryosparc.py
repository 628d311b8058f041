"""cryoSPARC .cs files: lossless reading and writing, particle sets to and from them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import cryolab.em
from cryolab.core.errors import CryolabError
from cryolab.core.sets import Set
from cryolab.em import cryosparc
from cryolab.em.cryosparc import (
    cs_to_particles,
    particles_to_cs,
    particles_to_cs_table,
    read_cs,
    write_cs,
)
from cryolab.em.formats import FormatError
from cryolab.em.objects import Acquisition, SetOfParticles

J2 = "cryodrgn/cryosparc_J2_particles_exported.cs"
SCHEMA = "cryosparc-tools/4k_dataset_schema_only.cs"
Real = Callable[[str], Path]


def needs_geometry() -> Any:
    """The geometry module, or skip (it is written in parallel with this one)."""
    geometry = pytest.importorskip("cryolab.em.geometry")
    for name in ("from_cryosparc", "to_cryosparc"):
        if not hasattr(geometry, name):
            pytest.skip(f"cryolab.em.geometry.{name} is not there yet")
    return geometry


def same_records(first: np.ndarray, second: np.ndarray) -> None:
    """Two structured arrays with the same dtype (names, order, byte order) and values."""
    assert first.dtype == second.dtype
    assert first.dtype.descr == second.dtype.descr
    assert first.shape == second.shape
    for name in first.dtype.names or ():
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)


def save(path: Path, records: np.ndarray) -> Path:
    with path.open("wb") as stream:
        np.save(stream, records, allow_pickle=True)
    return path


def particle_records(rows: int = 6, *, poses: bool = True) -> np.ndarray:
    """A synthetic particles.cs record array with location, CTF and 3-D alignment fields."""
    rng = np.random.default_rng(7)
    fields: list[tuple[Any, ...]] = [
        ("uid", "<u8"),
        ("blob/path", "S24"),
        ("blob/idx", "<u4"),
        ("blob/psize_A", "<f4"),
        ("ctf/accel_kv", "<f4"),
        ("ctf/cs_mm", "<f4"),
        ("ctf/amp_contrast", "<f4"),
        ("ctf/df1_A", "<f4"),
        ("ctf/df2_A", "<f4"),
        ("ctf/df_angle_rad", "<f4"),
        ("ctf/phase_shift_rad", "<f4"),
        ("location/micrograph_uid", "<u8"),
        ("location/micrograph_shape", "<u4", (2,)),
        ("location/center_x_frac", "<f4"),
        ("location/center_y_frac", "<f4"),
    ]
    if poses:
        fields += [
            ("alignments3D/pose", "<f4", (3,)),
            ("alignments3D/shift", "<f4", (2,)),
            ("alignments3D/psize_A", "<f4"),
            ("alignments3D/class", "<u4"),
        ]
    records = np.zeros(rows, dtype=fields)
    records["uid"] = rng.integers(1, 2**63, rows, dtype=np.uint64) + np.uint64(2**63 - 1)
    records["blob/path"] = [f"J5/extract/mic{i // 3}.mrc".encode() for i in range(rows)]
    records["blob/idx"] = np.arange(rows) % 3
    records["blob/psize_A"] = 1.06
    records["ctf/accel_kv"] = 300
    records["ctf/cs_mm"] = 2.7
    records["ctf/amp_contrast"] = 0.07
    records["ctf/df1_A"] = rng.uniform(8000, 20000, rows)
    records["ctf/df2_A"] = records["ctf/df1_A"] - 150
    records["ctf/df_angle_rad"] = rng.uniform(-np.pi, np.pi, rows)
    records["ctf/phase_shift_rad"] = rng.uniform(0, 1.5, rows)
    records["location/micrograph_uid"] = 1000 + np.arange(rows) // 3
    records["location/micrograph_shape"] = (3838, 3710)
    records["location/center_x_frac"] = rng.uniform(0, 1, rows)
    records["location/center_y_frac"] = rng.uniform(0, 1, rows)
    if poses:
        axes = rng.normal(size=(rows, 3))
        axes /= np.linalg.norm(axes, axis=1, keepdims=True)
        records["alignments3D/pose"] = axes * rng.uniform(0.1, 3.0, (rows, 1))
        records["alignments3D/shift"] = rng.uniform(-5, 5, (rows, 2))
        records["alignments3D/psize_A"] = 1.06
        records["alignments3D/class"] = np.arange(rows) % 2
    return records


# -- read_cs / write_cs -----------------------------------------------------------------------
def test_the_python_api_names_are_there() -> None:
    assert cryolab.em.read_cs is cryosparc.read_cs
    assert cryolab.em.write_cs is cryosparc.write_cs
    assert issubclass(FormatError, CryolabError)


def test_read_real_exported_file_keeps_every_field(real: Real) -> None:
    path = real(J2)
    table = read_cs(path)
    original = np.load(path)
    assert table.num_rows == 22
    assert len(original.dtype.names) == 42
    # 42 fields; ctf/tetra_A and ctf/anisomag have 4 values, 5 fields have 2: 42 + 2 * 3 + 5
    assert table.num_columns == 53
    assert table.column_names[:3] == ["uid", "blob/path", "blob/idx"]
    assert table.column("uid").type == pa.uint64()
    assert table.column("uid")[0].as_py() == 2714306824294111763
    assert table.column("blob/path")[0].as_py() == (
        ">J1/imported/000090334788266266069_18jam15b_0345_ali_DW.mrcs"
    )
    assert table.column("blob/idx").to_pylist()[:2] == [0, 1]
    assert table.column("blob/shape.0")[0].as_py() == 300
    assert table.column("ctf/type")[0].as_py() == "imported"
    assert table.column("ctf/df1_A").type == pa.float32()
    assert table.column("ctf/df1_A")[0].as_py() == pytest.approx(16412.178, abs=1e-3)
    assert table.column("alignments2D/class").to_pylist()[:2] == [4, 1]
    assert table.column("ctf/tetra_A.3").type == pa.float32()
    meta = table.schema.field("ctf/anisomag.2").metadata
    assert meta[b"cs.field"] == b"ctf/anisomag" and meta[b"cs.shape"] == b"4"
    assert table.schema.field("blob/path").metadata[b"cs.dtype"] == b"|S61"
    for name in original.dtype.names:
        ftype = original.dtype.fields[name][0]
        if ftype.shape:
            for i in range(ftype.shape[0]):
                np.testing.assert_array_equal(
                    table.column(f"{name}.{i}").to_numpy(), original[name][:, i]
                )
        elif ftype.kind == "S":
            assert table.column(name).to_pylist() == [v.decode() for v in original[name]]
        else:
            np.testing.assert_array_equal(table.column(name).to_numpy(), original[name])


@pytest.mark.parametrize("relative", [J2, SCHEMA])
def test_read_write_read_is_identical(real: Real, tmp_path: Path, relative: str) -> None:
    path = real(relative)
    table = read_cs(path)
    copy = write_cs(tmp_path / "copy.cs", table)
    same_records(np.load(path), np.load(copy))
    assert read_cs(copy).equals(table, check_metadata=True)
    assert copy.read_bytes() == path.read_bytes()  # numpy writes the same header too


def test_schema_only_file_covers_the_dtypes(real: Real) -> None:
    table = read_cs(real(SCHEMA))
    original = np.load(real(SCHEMA))
    assert table.num_rows == 0
    assert len(original.dtype.names) == 106
    names = set(table.column_names)
    assert {"alignments3D/pose.2", "alignments_class_2/shift.1", "pick_stats/ncc_score"} <= names
    assert table.schema.field("location/micrograph_path").type == pa.string()
    assert table.schema.field("location/micrograph_path").metadata[b"cs.dtype"] == b"|S1"
    assert table.schema.field("alignments3D/class").type == pa.uint32()


def test_a_set_of_the_table_writes_the_same_file_with_cryosparc_uids(
    real: Real, tmp_path: Path
) -> None:
    path = real(J2)
    items = Set(read_cs(path))
    assert items.uids[0] == 2714306824294111763  # cryoSPARC's uid is the set's uid
    same_records(np.load(path), np.load(write_cs(tmp_path / "set.cs", items)))


def test_write_infers_dtypes_and_vectors_without_metadata(tmp_path: Path) -> None:
    table = pa.table(
        {
            "uid": pa.array([5, 6], pa.uint64()),
            "blob/path": ["a.mrcs", "long/name.mrcs"],
            "x/vec.0": pa.array([1.5, 2.5], pa.float32()),
            "x/vec.1": pa.array([3.5, 4.5], pa.float32()),
            "x/flag": [True, False],
            "x/count": pa.array([1, 2], pa.int16()),
        }
    )
    records = np.load(write_cs(tmp_path / "new.cs", table))
    assert records.dtype.names == ("uid", "blob/path", "x/vec", "x/flag", "x/count")
    assert records.dtype["blob/path"] == np.dtype("S14")
    assert records.dtype["x/vec"] == np.dtype(("<f4", (2,)))
    assert records.dtype["x/count"] == np.dtype("<i2")
    np.testing.assert_array_equal(records["x/vec"], [[1.5, 3.5], [2.5, 4.5]])


def test_write_adds_uids_first_when_missing(tmp_path: Path) -> None:
    records = np.load(write_cs(tmp_path / "n.cs", pa.table({"a/b": [1.0, 2.0]})))
    assert records.dtype.names == ("uid", "a/b")
    assert records["uid"].dtype == np.uint64 and len(set(records["uid"].tolist())) == 2


def test_big_endian_fields_are_read_and_written_back(tmp_path: Path) -> None:
    records = np.zeros(3, dtype=[("uid", ">u8"), ("v", ">f4", (2,)), ("s", "<U5")])
    records["uid"] = [1, 2, 3]
    records["v"] = [[1, 2], [3, 4], [5, 6.5]]
    records["s"] = ["ab", "héllo", ""]
    path = save(tmp_path / "be.cs", records)
    table = read_cs(path)
    assert table.column("v.1").to_pylist() == [2.0, 4.0, 6.5]
    assert table.column("s").to_pylist() == ["ab", "héllo", ""]
    same_records(records, np.load(write_cs(tmp_path / "copy.cs", table)))


# -- bad files --------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["O", "c8", "M8[s]"])
def test_an_unknown_dtype_names_file_field_and_row(tmp_path: Path, dtype: str) -> None:
    records = np.zeros(4, dtype=[("uid", "<u8"), ("bad/field", dtype)])
    path = save(tmp_path / "bad.cs", records)
    with pytest.raises(FormatError) as caught:
        read_cs(path)
    error = caught.value
    assert error.field == "bad/field" and error.row == 0 and error.path == str(path)
    assert "bad.cs" in str(error) and "'bad/field'" in str(error) and "row 0" in str(error)


def test_nested_records_are_refused(tmp_path: Path) -> None:
    records = np.zeros(2, dtype=[("uid", "<u8"), ("inner", [("a", "<f4"), ("b", "<f4")])])
    with pytest.raises(FormatError, match="nested records") as caught:
        read_cs(save(tmp_path / "nested.cs", records))
    assert caught.value.field == "inner"


def test_a_truncated_file_names_the_first_incomplete_row(real: Real, tmp_path: Path) -> None:
    data = real(J2).read_bytes()
    itemsize = np.load(real(J2)).dtype.itemsize
    cut = tmp_path / "cut.cs"
    cut.write_bytes(data[: len(data) - 5 * itemsize - 7])  # 16 whole rows, part of the 17th
    with pytest.raises(FormatError, match="truncated") as caught:
        read_cs(cut)
    assert caught.value.row == 16
    header_only = tmp_path / "header.cs"
    header_only.write_bytes(data[:20])
    with pytest.raises(FormatError, match="truncated inside its header"):
        read_cs(header_only)


def test_trailing_bytes_plain_arrays_and_other_files_are_refused(
    real: Real, tmp_path: Path
) -> None:
    longer = tmp_path / "longer.cs"
    longer.write_bytes(real(J2).read_bytes() + b"\0" * 9)
    with pytest.raises(FormatError, match="9 bytes follow"):
        read_cs(longer)
    plain = tmp_path / "plain.cs"
    np.save(plain.open("wb"), np.zeros(3))
    with pytest.raises(FormatError, match="not records"):
        read_cs(plain)
    text = tmp_path / "text.cs"
    text.write_text("uid,blob/path\n1,a.mrc\n")
    with pytest.raises(FormatError, match="no numpy array header"):
        read_cs(text)
    stream = tmp_path / "stream.cs"
    stream.write_bytes(b"\x95CSDAT" + b"\0" * 40)
    with pytest.raises(FormatError, match="CSDAT"):
        read_cs(stream)


def test_a_string_that_is_not_utf8_names_its_row(tmp_path: Path) -> None:
    records = np.zeros(5, dtype=[("uid", "<u8"), ("blob/path", "S8")])
    records["blob/path"] = [b"a", b"b", b"c", b"\xff\xfe", b"e"]
    with pytest.raises(FormatError, match="not UTF-8") as caught:
        read_cs(save(tmp_path / "latin.cs", records))
    assert (caught.value.field, caught.value.row) == ("blob/path", 3)


def test_write_refuses_missing_values_and_bad_vectors(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="missing value") as caught:
        write_cs(
            tmp_path / "n.cs", pa.table({"uid": pa.array([1, 2], pa.uint64()), "a": [1.0, None]})
        )
    assert (caught.value.field, caught.value.row) == ("a", 1)
    with pytest.raises(FormatError, match="numbered") as caught:
        write_cs(tmp_path / "v.cs", pa.table({"v.0": [1.0], "v.2": [2.0]}))
    assert caught.value.field == "v"
    with pytest.raises(FormatError, match="cannot hold values of type"):
        write_cs(tmp_path / "l.cs", pa.table({"a": pa.array([[1], [2]])}))


# -- particles --------------------------------------------------------------------------------
def test_particles_from_the_real_exported_file(real: Real) -> None:
    path = real(J2)
    original = np.load(path)
    particles = cs_to_particles(path)
    assert isinstance(particles, SetOfParticles)
    assert len(particles) == 22
    np.testing.assert_array_equal(particles.uids, original["uid"])
    assert particles["image.path"][0] == (
        "J1/imported/000090334788266266069_18jam15b_0345_ali_DW.mrcs"
    )
    np.testing.assert_array_equal(particles["image.index"], original["blob/idx"] + 1)
    assert particles.properties["cryosparc"]["exported_paths"] is True
    assert particles.properties["root"] == str(path.resolve().parent)
    assert particles[0].path == path.resolve().parent / particles["image.path"][0]
    assert particles.sampling_rate == pytest.approx(1.345, abs=1e-6)
    acquisition = particles.acquisition
    assert isinstance(acquisition, Acquisition)
    assert (acquisition.voltage, acquisition.spherical_aberration) == (300.0, 2.7)
    assert acquisition.amplitude_contrast == 0.1
    assert acquisition.sampling_rate == particles.sampling_rate
    np.testing.assert_array_equal(particles["ctf.defocus_u"], original["ctf/df1_A"])
    np.testing.assert_array_equal(particles["ctf.defocus_v"], original["ctf/df2_A"])
    assert particles["ctf.defocus_angle"][0] == pytest.approx(np.rad2deg(0.86163914), abs=1e-5)
    np.testing.assert_array_equal(particles["ctf.phase_shift"], 0.0)
    np.testing.assert_array_equal(particles["class_id"], original["alignments2D/class"])
    assert particles.properties["cryosparc"]["class_field"] == "alignments2D/class"
    # fields cryolab does not map are carried under cs.<field>, with their dtypes
    assert particles["cs.blob/shape.1"][0] == 300
    assert particles["cs.ctf/type"][0] == "imported"
    np.testing.assert_array_equal(
        particles["cs.alignments2D/shift.1"], original["alignments2D/shift"][:, 1]
    )
    assert particles.to_arrow().schema.field("cs.alignments2D/pose").type == pa.float32()
    mapped = {"uid", "blob/path", "blob/idx", "blob/psize_A", "ctf/accel_kv", "ctf/cs_mm"}
    mapped |= {"ctf/amp_contrast", "ctf/df1_A", "ctf/df2_A", "ctf/df_angle_rad"}
    mapped |= {"ctf/phase_shift_rad", "alignments2D/class"}
    carried = {c[3:].split(".")[0] for c in particles.columns if c.startswith("cs.")}
    assert carried | mapped == set(original.dtype.names)  # nothing is dropped


def test_particles_to_cs_to_particles_is_identical(real: Real, tmp_path: Path) -> None:
    path = real(J2)
    particles = cs_to_particles(path)
    written = particles_to_cs(particles, tmp_path / "particles.cs")
    same_records(np.load(path), np.load(written))  # the very same file content, marker included
    again = cs_to_particles(written)
    assert again.to_arrow().equals(particles.to_arrow(), check_metadata=True)
    expected = {k: v for k, v in particles.properties.items() if k != "root"}
    assert {k: v for k, v in again.properties.items() if k != "root"} == expected
    assert again.properties["root"] == str(tmp_path.resolve())


def test_a_subset_with_changed_values_is_written_back(real: Real, tmp_path: Path) -> None:
    particles = cs_to_particles(real(J2))
    chosen = particles.where("class_id == 1")
    changed = chosen.with_columns(**{"ctf.defocus_u": chosen["ctf.defocus_u"] + 100.0})
    records = np.load(particles_to_cs(changed, tmp_path / "subset.cs"))
    original = np.load(real(J2))
    keep = original["alignments2D/class"] == 1
    assert len(records) == int(keep.sum()) > 0
    np.testing.assert_array_equal(records["uid"], original["uid"][keep])
    np.testing.assert_allclose(records["ctf/df1_A"], original["ctf/df1_A"][keep] + 100, rtol=1e-7)
    np.testing.assert_array_equal(records["alignments2D/pose"], original["alignments2D/pose"][keep])
    assert records.dtype == original.dtype


def test_schema_only_file_round_trips_through_particles(real: Real, tmp_path: Path) -> None:
    path = real(SCHEMA)
    particles = cs_to_particles(path)
    assert len(particles) == 0
    for column in ("micrograph_uid", "coordinate.x", "class_id", "transform.rot"):
        assert column in particles
    assert "cs.pick_stats/ncc_score" in particles
    assert "cs.alignments3D/class" in particles  # alignments2D/class became class_id
    same_records(np.load(path), np.load(particles_to_cs(particles, tmp_path / "schema.cs")))


def test_synthetic_particles_map_locations_and_poses(tmp_path: Path) -> None:
    geometry = needs_geometry()
    records = particle_records()
    path = save(tmp_path / "P1_J9_particles.cs", records)
    particles = cs_to_particles(path)
    shape = records["location/micrograph_shape"].astype(np.float64)
    np.testing.assert_array_equal(
        particles["coordinate.x"], records["location/center_x_frac"] * shape[:, 1]
    )
    np.testing.assert_array_equal(
        particles["coordinate.y"], records["location/center_y_frac"] * shape[:, 0]
    )
    np.testing.assert_array_equal(particles["micrograph_uid"], records["location/micrograph_uid"])
    assert particles["micrograph_uid"].dtype == np.uint64
    np.testing.assert_array_equal(particles.uids, records["uid"])  # uids above 2**63 kept
    assert "root" not in particles.properties  # unmarked paths: relative to the project
    expected = geometry.from_cryosparc(
        records["alignments3D/pose"].astype(np.float64),
        records["alignments3D/shift"].astype(np.float64),
        records["alignments3D/psize_A"].astype(np.float64),
    )
    for column, values in zip(("rot", "tilt", "psi", "shift_x", "shift_y"), expected, strict=True):
        np.testing.assert_allclose(particles[f"transform.{column}"], values, atol=1e-9)
    np.testing.assert_array_equal(particles["class_id"], records["alignments3D/class"])
    assert particles.properties["cryosparc"]["class_field"] == "alignments3D/class"
    written = np.load(particles_to_cs(particles, tmp_path / "back.cs"))
    assert written.dtype == records.dtype
    for name in records.dtype.names:
        if name in ("alignments3D/pose", "alignments3D/shift"):
            np.testing.assert_allclose(written[name], records[name], atol=2e-6, err_msg=name)
        else:
            np.testing.assert_array_equal(written[name], records[name], err_msg=name)
    again = cs_to_particles(tmp_path / "back.cs")
    for column in particles.columns:
        if column.startswith("transform."):
            np.testing.assert_allclose(again[column], particles[column], atol=1e-3)
        else:
            np.testing.assert_array_equal(again[column], particles[column], err_msg=column)


def test_values_that_differ_between_rows_stay_columns(tmp_path: Path) -> None:
    records = particle_records(5, poses=False)
    records["blob/psize_A"] = [1.06, 1.06, 1.06, 0.83, 0.83]
    records["ctf/accel_kv"] = [300, 300, 200, 200, 200]
    path = save(tmp_path / "mixed.cs", records)
    particles = cs_to_particles(path)
    assert particles.sampling_rate == pytest.approx(1.06)  # the most common value
    assert particles.acquisition is not None and particles.acquisition.voltage == 200
    np.testing.assert_array_equal(particles["cs.blob/psize_A"], records["blob/psize_A"])
    np.testing.assert_array_equal(particles["cs.ctf/accel_kv"], records["ctf/accel_kv"])
    assert "cs.ctf/cs_mm" not in particles  # uniform: only the acquisition property
    same_records(records, np.load(particles_to_cs(particles, tmp_path / "back.cs")))


def test_a_marker_on_some_rows_only_is_kept_per_row(tmp_path: Path) -> None:
    records = particle_records(4, poses=False)
    records["blob/path"][1] = b">J5/extract/mic0.mrc"
    path = save(tmp_path / "some.cs", records)
    particles = cs_to_particles(path)
    assert particles["cs.exported"].tolist() == [False, True, False, False]
    assert particles["image.path"][1] == "J5/extract/mic0.mrc"
    assert particles.properties["cryosparc"]["exported_paths"] is False
    same_records(records, np.load(particles_to_cs(particles, tmp_path / "back.cs")))


def test_a_set_made_elsewhere_is_written_with_cryosparc_fields(tmp_path: Path) -> None:
    particles = SetOfParticles(
        {
            "uid": np.array([11, 12, 13], dtype=np.uint64),
            "image.path": ["Extract/job007/a.mrcs"] * 3,
            "image.index": [1, 2, 3],
            "ctf.defocus_u": [12000.0, 13000.0, 14000.0],
            "ctf.defocus_v": [11500.0, 12500.0, 13500.0],
            "ctf.defocus_angle": [10.0, -45.0, 170.0],
            "ctf.phase_shift": [0.0, 0.0, 90.0],
            "micrograph_uid": np.array([7, 7, 8], dtype=np.uint64),
            "coordinate.x": [100.0, 2000.5, 30.0],
            "coordinate.y": [50.0, 60.0, 3000.0],
            "class_id": [1, 2, 1],
            "optics_group": [1, 1, 2],
            "rln.random_subset": [1, 2, 1],
            "note": ["a", "b", "c"],
        },
        properties={
            "sampling_rate": 1.1,
            "acquisition": Acquisition(voltage=200, sampling_rate=1.1).to_dict(),
        },
    )
    path = particles_to_cs(particles, tmp_path / "new.cs", micrograph_shape=(4092, 5760))
    records = np.load(path)
    assert records["uid"].tolist() == [11, 12, 13]
    assert records["blob/path"].tolist() == [b"Extract/job007/a.mrcs"] * 3
    assert records["blob/idx"].tolist() == [0, 1, 2]
    assert records.dtype["blob/idx"] == np.dtype("<u4")
    np.testing.assert_allclose(records["blob/psize_A"], 1.1, rtol=1e-7)
    np.testing.assert_allclose(records["ctf/accel_kv"], 200)
    np.testing.assert_allclose(records["ctf/df_angle_rad"], np.deg2rad([10, -45, 170]), rtol=1e-6)
    np.testing.assert_allclose(
        records["location/center_x_frac"], np.array([100, 2000.5, 30]) / 5760
    )
    assert records["location/micrograph_shape"].tolist() == [[4092, 5760]] * 3
    assert records["alignments2D/class"].tolist() == [1, 2, 1]
    assert records["cryolab/optics_group"].tolist() == [1, 1, 2]
    assert records["cryolab/note"].tolist() == [b"a", b"b", b"c"]
    back = cs_to_particles(path)
    for column in ("image.path", "image.index", "micrograph_uid", "class_id", "optics_group"):
        np.testing.assert_array_equal(back[column], particles[column], err_msg=column)
    np.testing.assert_array_equal(back["rln.random_subset"], particles["rln.random_subset"])
    assert back["note"].tolist() == ["a", "b", "c"]
    np.testing.assert_allclose(back["coordinate.x"], particles["coordinate.x"], rtol=1e-6)
    np.testing.assert_allclose(back["ctf.defocus_angle"], particles["ctf.defocus_angle"], atol=1e-4)


def test_particles_to_cs_explains_what_is_missing(tmp_path: Path) -> None:
    base = {"image.path": ["a.mrcs"], "coordinate.x": [1.0], "coordinate.y": [2.0]}
    with pytest.raises(FormatError, match="micrograph_shape"):
        particles_to_cs_table(SetOfParticles(base))
    with pytest.raises(FormatError, match="not 1-based") as caught:
        particles_to_cs_table(SetOfParticles({"image.index": [1, 0]}))
    assert (caught.value.field, caught.value.row) == ("image.index", 1)
    with pytest.raises(FormatError, match="missing value") as caught:
        particles_to_cs_table(SetOfParticles({"image.path": pa.array(["a", None])}))
    assert caught.value.row == 1
    poses = {f"transform.{c}": [0.0] for c in ("rot", "tilt", "psi", "shift_x", "shift_y")}
    with pytest.raises(FormatError, match="pixel size"):
        particles_to_cs_table(SetOfParticles(poses))


def test_uid_beyond_int64_and_carried_columns_survive_a_set_round_trip(
    real: Real, tmp_path: Path
) -> None:
    particles = cs_to_particles(real(J2))
    saved = Set.open(particles.save(tmp_path / "set"))
    records = np.load(particles_to_cs(saved, tmp_path / "from_saved.cs"))
    same_records(np.load(real(J2)), records)
