"""Small formats of other programs: CTFFIND, MotionCor2, EMAN, IMOD, SerialEM, EPU."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from cryolab.core.errors import CryolabError
from cryolab.em import formats
from cryolab.em.formats import FormatError
from cryolab.em.formats.ctffind import AVROT_CURVES, read_avrot, read_ctffind, write_ctffind
from cryolab.em.formats.eman import read_box, read_eman_json, write_box, write_eman_json
from cryolab.em.formats.epu import read_epu_xml
from cryolab.em.formats.imod import read_tlt, read_xf, write_tlt, write_xf, xf_matrices
from cryolab.em.formats.motioncor import read_motioncor_log
from cryolab.em.formats.serialem import Mdoc, read_mdoc, write_mdoc
from cryolab.em.objects import Acquisition, SetOfCoordinates, SetOfCTFs

Real = Callable[[str], Path]
CTFFIND = "aspire/ctffind4_diagnostic_output.txt"


def test_format_error_names_file_line_field_and_row() -> None:
    error = FormatError("a/b.txt", "bad value", line=3, field="x", row=2)
    assert issubclass(FormatError, CryolabError) and isinstance(error, ValueError)
    assert str(error) == "a/b.txt, line 3, field 'x', row 2 (0-based): bad value"
    assert (error.path, error.line, error.field, error.row) == ("a/b.txt", 3, "x", 2)
    assert formats.read_mdoc is read_mdoc  # lazy names of the package
    with pytest.raises(AttributeError):
        _ = formats.read_nothing


# -- CTFFIND -----------------------------------------------------------------------------------
def test_ctffind_real_output(real: Real) -> None:
    ctfs = read_ctffind(real(CTFFIND))
    assert isinstance(ctfs, SetOfCTFs) and len(ctfs) == 1
    assert ctfs["ctffind.micrograph"].tolist() == [1]
    assert ctfs["ctf.defocus_u"][0] == 9982.502930
    assert ctfs["ctf.defocus_v"][0] == 9982.502930
    assert ctfs["ctf.defocus_angle"][0] == 0.0
    assert ctfs["ctf.phase_shift"][0] == pytest.approx(np.rad2deg(0.035256))
    assert ctfs["ctf.score"][0] == 0.565683
    assert ctfs["ctf.resolution"][0] == 1.980663
    assert ctfs.sampling_rate == 1.0
    acquisition = ctfs.acquisition
    assert acquisition is not None
    assert (acquisition.voltage, acquisition.spherical_aberration) == (200.0, 2.26)
    assert acquisition.amplitude_contrast == 0.07
    info = ctfs.properties["ctffind"]
    assert (info["version"], info["run_on"]) == ("4.1.14", "2023-02-02 15:13:07")
    assert info["settings"]["Input file"] == "test_img.mrc"
    assert info["settings"]["Box size"] == 1024 and info["units"]["Box size"] == "pixels"
    assert info["settings"]["max. def."] == 50000.0  # written without a colon by CTFFIND
    assert info["columns"]["5"] == "additional phase shift [radians]"


def test_ctffind_read_write_read(real: Real, tmp_path: Path) -> None:
    ctfs = read_ctffind(real(CTFFIND))
    copy = write_ctffind(ctfs, tmp_path / "copy_ctf.txt")
    assert copy.read_text() == real(CTFFIND).read_text()  # same text, byte for byte
    again = read_ctffind(copy)
    for column in ctfs.columns[1:]:
        np.testing.assert_array_equal(again[column], ctfs[column], err_msg=column)


CTFFIND5 = """\
# Output from CTFFind version 5.0.2, run on 2024-05-01 10:00:00
# Input file: /data/ts_01.mrc ; Number of micrographs: 2
# Pixel size: 1.350 Angstroms ; acceleration voltage: 300.0 keV ; spherical aberration: 2.70 mm \
; amplitude contrast: 0.10
# Columns: #1 - micrograph number; #2 - defocus 1 [Angstroms]; #3 - defocus 2; \
#4 - azimuth of astigmatism; #5 - additional phase shift [radians]; #6 - cross correlation; \
#7 - spacing (in Angstroms) up to which CTF rings were fit successfully; \
#8 - Estimated tilt axis angle; #9 - Estimated tilt angle ; \
#10 - Estimated sample thickness (in Angstroms)
1.000000 21000.500000 20500.250000 -35.000000 0.000000 0.120000 5.500000 85.300000 12.000000 1500.0
2.000000 22000.500000 21500.250000 40.000000 0.000000 0.110000 6.500000 85.300000 15.000000 1600.0
"""


def test_ctffind5_extra_columns_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "ts_01_ctf.txt"
    path.write_text(CTFFIND5)
    ctfs = read_ctffind(path)
    assert len(ctfs) == 2
    assert ctfs["ctffind.estimated_tilt_axis_angle"].tolist() == [85.3, 85.3]
    assert ctfs["ctffind.estimated_tilt_angle"].tolist() == [12.0, 15.0]
    assert ctfs["ctffind.estimated_sample_thickness"].tolist() == [1500.0, 1600.0]
    assert ctfs["ctf.defocus_angle"].tolist() == [-35.0, 40.0]
    again = read_ctffind(write_ctffind(ctfs, tmp_path / "again_ctf.txt"))
    assert again.columns[1:] == ctfs.columns[1:]
    for column in ctfs.columns[1:]:
        np.testing.assert_array_equal(again[column], ctfs[column], err_msg=column)


def test_ctffind_from_a_set_made_elsewhere(tmp_path: Path) -> None:
    ctfs = SetOfCTFs(
        {
            "ctf.defocus_u": [15000.0],
            "ctf.defocus_v": [14000.0],
            "ctf.defocus_angle": [12.5],
            "ctf.phase_shift": [0.0],
            "ctf.score": [0.2],
            "ctf.resolution": [3.5],
        },
        properties={"acquisition": Acquisition(sampling_rate=0.83).to_dict()},
    )
    again = read_ctffind(write_ctffind(ctfs, tmp_path / "made_ctf.txt"))
    assert again["ctffind.micrograph"].tolist() == [1]
    assert again["ctf.defocus_angle"].tolist() == [12.5]
    assert again.sampling_rate == 0.83
    with pytest.raises(FormatError, match="no column"):
        write_ctffind(SetOfCTFs({"ctf.defocus_u": [1.0]}), tmp_path / "bad.txt")


@pytest.mark.parametrize(
    ("line", "message", "field"),
    [
        ("1.0 2.0 3.0 4.0 5.0", "at least 7 values", None),
        ("1.0 9000.0 abc 0.0 0.0 0.1 4.0", "'abc' is not a number", "defocus 2"),
    ],
)
def test_ctffind_malformed_lines(
    real: Real, tmp_path: Path, line: str, message: str, field: str | None
) -> None:
    path = tmp_path / "bad_ctf.txt"
    path.write_text(real(CTFFIND).read_text().replace("1.000000 9982", line + "\n1.000000 9982"))
    with pytest.raises(FormatError, match=message) as caught:
        read_ctffind(path)
    assert caught.value.line == 6 and caught.value.field == field
    path.write_text(real(CTFFIND).read_text() + "2.0 1.0 1.0 1.0 1.0 1.0 1.0 1.0\n")
    with pytest.raises(FormatError, match="has 8 values; the lines before have 7") as caught:
        read_ctffind(path)
    assert caught.value.line == 7


AVROT = """\
# Output from CTFFind version 4.1.14, run on 2023-02-02 15:13:07
# Input file: test_img.mrc ; Number of micrographs: 2
# Pixel size: 1.000 Angstroms ; acceleration voltage: 200.0 keV
# Box size: 1024 pixels
# 6 lines per micrograph: #1 - spatial frequency (1/Angstroms); #2 - 1D rotational average ...
"""


def test_avrot_gives_six_curves_per_micrograph(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    curves = rng.uniform(0, 1, (12, 5)).round(6)
    path = tmp_path / "mic_avrot.txt"
    path.write_text(AVROT + "".join(" ".join(f"{v:.6f}" for v in row) + "\n" for row in curves))
    averages = read_avrot(path)
    assert len(averages) == 2
    assert tuple(averages[0]) == AVROT_CURVES
    np.testing.assert_array_equal(averages[1]["ctf_fit"], curves[9])
    np.testing.assert_array_equal(averages[0]["frequency"], curves[0])
    path.write_text(AVROT + "0.1 0.2\n" * 7)
    with pytest.raises(FormatError, match="6 per micrograph"):
        read_avrot(path)
    path.write_text(AVROT + "0.1 0.2\n" * 3 + "0.1\n" + "0.1 0.2\n" * 2)
    with pytest.raises(FormatError, match="has 1 values") as caught:
        read_avrot(path)
    assert (caught.value.line, caught.value.field, caught.value.row) == (9, "ctf_fit", 0)


# -- MotionCor2 --------------------------------------------------------------------------------
def test_motioncor2_150_log(real: Real) -> None:
    log = read_motioncor_log(real("appion_nysbc/motioncor2_1.5.0_log.txt"))
    assert log.version is None and log.cuda_version == "11.6.1"
    assert log.shifts.num_rows == 16
    assert log.shifts.column_names == ["movie", "frame", "shift_x", "shift_y"]
    rows = log.shifts.to_pylist()
    assert rows[0] == {"movie": 1, "frame": 1, "shift_x": 2.46, "shift_y": 8.51}
    assert rows[8] == {"movie": 1, "frame": 9, "shift_x": 0.0, "shift_y": 0.0}
    assert rows[15] == {"movie": 1, "frame": 16, "shift_x": -1.32, "shift_y": -4.6}
    assert len(log.parameters) == 47
    assert log.parameters["PixSize"] == "0.73" and log.parameters["Patch"] == "5  5  0"
    assert log.parameters["InMrc"] == "" and log.repeated == {}  # -FmIntFile twice, same text
    assert log.input_file is not None and log.input_file.endswith("00005eer.frames.eer")
    assert log.output_file == "/tmp/n25jul07b_NY0367G4_00016gr_00016sq_v02_00002hl_00005eer_c.mrc"
    acquisition = log.acquisition()
    assert (acquisition.voltage, acquisition.sampling_rate) == (300.0, 0.73)
    assert acquisition.dose_per_frame == 3.23
    assert acquisition.gain is not None and acquisition.gain.endswith(
        "norm-semc-cpu02-0-1926761.mrc"
    )


def test_motioncor2_164_log_prints_a_shift_table(real: Real) -> None:
    log = read_motioncor_log(real("appion_nysbc/motioncor2_1.6.4_log.txt"))
    rows = log.shifts.to_pylist()
    assert len(rows) == 16
    assert rows[0] == {"movie": 1, "frame": 1, "shift_x": 0.0, "shift_y": 0.0}
    assert rows[1] == {"movie": 1, "frame": 2, "shift_x": -0.61, "shift_y": -2.32}
    assert rows[15] == {"movie": 1, "frame": 16, "shift_x": -3.79, "shift_y": -13.12}
    assert log.parameters["Group"] == "1  4" and log.parameters["InvGain"] == "0"
    assert log.cuda_version == "12.1.0"


def test_motioncor2_tiff_log(real: Real) -> None:
    log = read_motioncor_log(real("appion_nysbc/30117940.motioncor2.log"))
    rows = log.shifts.to_pylist()
    assert len(rows) == 40
    assert rows[0] == {"movie": 1, "frame": 1, "shift_x": -1.18, "shift_y": 0.39}
    assert rows[39] == {"movie": 1, "frame": 40, "shift_x": 0.25, "shift_y": 0.27}
    assert log.input_file is not None and log.input_file.endswith("00025enn_st.tif")
    assert log.acquisition().sampling_rate == 0.83


def test_motioncor2_log_of_two_movies_with_a_version_line(tmp_path: Path) -> None:
    path = tmp_path / "run.log"
    path.write_text(
        "MotionCor2 version 1.4.7\n-PixSize   1.1\n-Gpu 0\n-Gpu 1\n"
        "Full-frame alignment shift\n...... Frame (  1) shift:  1.0  2.0\n"
        "...... Frame (  2) shift:  0.0  0.0\n"
        "Full-frame alignment shift\n...... Frame (  1) shift:  -1.5  0.5\n"
    )
    log = read_motioncor_log(path)
    assert log.version == "1.4.7"
    assert log.shifts.column("movie").to_pylist() == [1, 1, 2]
    assert log.shifts.column("shift_x").to_pylist() == [1.0, 0.0, -1.5]
    assert log.parameters["Gpu"] == "0" and log.repeated == {"Gpu": ["0", "1"]}


def test_motioncor2_malformed_logs(tmp_path: Path) -> None:
    path = tmp_path / "bad.log"
    path.write_text(
        "Full-frame alignment shift\n...... Frame (  1) shift:  1.0  2.0\n"
        "...... Frame (  2) shift:  x  2.0\n"
    )
    with pytest.raises(FormatError, match="'x' is not a number") as caught:
        read_motioncor_log(path)
    assert (caught.value.line, caught.value.field) == (3, "shift_x")
    path.write_text("Full-frame alignment shift\n...... Frame (  1) shift:  1.0\n")
    with pytest.raises(FormatError, match="malformed frame shift line") as caught:
        read_motioncor_log(path)
    assert caught.value.line == 2
    path.write_text("hello\nworld\n")
    with pytest.raises(FormatError, match="not a MotionCor2 log"):
        read_motioncor_log(path)


# -- EMAN --------------------------------------------------------------------------------------
def test_box_files_give_centres_and_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "mic001.box"
    text = "100\t200\t64\t64\n1500\t32\t64\t64\n7.5\t10\t64\t64\n"
    path.write_text(text)
    coordinates = read_box(path, micrograph_uid=42)
    assert isinstance(coordinates, SetOfCoordinates) and len(coordinates) == 3
    assert coordinates["coordinate.x"].tolist() == [132.0, 1532.0, 39.5]
    assert coordinates["coordinate.y"].tolist() == [232.0, 64.0, 42.0]
    assert coordinates.properties["box_size"] == 64
    assert coordinates["micrograph_uid"].tolist() == [42, 42, 42]
    assert write_box(coordinates, tmp_path / "copy.box").read_text() == text
    with pytest.raises(FormatError, match="box size"):
        write_box(SetOfCoordinates({"coordinate.x": [1.0], "coordinate.y": [1.0]}), path)


def test_box_files_with_mixed_sizes_and_extra_columns(tmp_path: Path) -> None:
    path = tmp_path / "helix.box"
    text = "10 20 64 64 -1\n30 40 64 80 -2\n"
    path.write_text(text)
    coordinates = read_box(path)
    assert "box_size" not in coordinates.properties
    assert coordinates["eman.box_height"].tolist() == [64.0, 80.0]
    assert coordinates["eman.column_5"].tolist() == [-1.0, -2.0]
    assert coordinates["coordinate.y"].tolist() == [52.0, 80.0]
    again = read_box(write_box(coordinates, tmp_path / "copy.box"))
    for column in coordinates.columns[1:]:
        np.testing.assert_array_equal(again[column], coordinates[column], err_msg=column)


def test_box_files_malformed(tmp_path: Path) -> None:
    path = tmp_path / "bad.box"
    path.write_text("10 20 64 64\n\n10 20 64\n")
    with pytest.raises(FormatError, match="has 3 values") as caught:
        read_box(path)
    assert caught.value.line == 3
    path.write_text("10 20 64 64\n10 y 64 64\n")
    with pytest.raises(FormatError, match="'y' is not a number") as caught:
        read_box(path)
    assert (caught.value.line, caught.value.field) == (2, "y")


def test_eman2_info_json_boxes(tmp_path: Path) -> None:
    info = {
        "boxes": [[10, 20, "manual"], [30.5, 40, "auto_convnet", 0.8], [5, 6, "manual", 1, "x"]],
        "quality": 3,
        "ctf": [{"defocus": 1.5}],
    }
    path = tmp_path / "mic_info.json"
    path.write_text(json.dumps(info))
    coordinates = read_eman_json(path)
    assert coordinates["coordinate.x"].tolist() == [10.0, 30.5, 5.0]
    assert coordinates["eman.box_type"].tolist() == ["manual", "auto_convnet", "manual"]
    scores = coordinates.to_arrow().column("coordinate.score").to_pylist()
    assert scores == [None, 0.8, 1.0]
    assert coordinates.properties["eman"] == {"quality": 3, "ctf": [{"defocus": 1.5}]}
    copy = write_eman_json(coordinates, tmp_path / "copy_info.json")
    assert json.loads(copy.read_text()) == info
    made = SetOfCoordinates({"coordinate.x": [1.0], "coordinate.y": [2.5]})
    assert json.loads(write_eman_json(made, tmp_path / "made.json").read_text()) == {
        "boxes": [[1, 2.5, "manual"]]
    }


def test_eman2_info_json_malformed(tmp_path: Path) -> None:
    path = tmp_path / "bad_info.json"
    path.write_text('{"boxes": [[1, 2, "manual"], [3, "a"]]}')
    with pytest.raises(FormatError, match="with numbers") as caught:
        read_eman_json(path)
    assert (caught.value.field, caught.value.row) == ("boxes", 1)
    path.write_text('{"boxes": [[1, 2, "manual"]')
    with pytest.raises(FormatError, match="not JSON"):
        read_eman_json(path)
    path.write_text('{"boxes": 3}')
    with pytest.raises(FormatError, match='"boxes" list'):
        read_eman_json(path)


# -- IMOD --------------------------------------------------------------------------------------
def test_imod_xf_real_file_round_trips_byte_for_byte(real: Real, tmp_path: Path) -> None:
    path = real("imod_etomofiles_teamtomo/TS_001.xf")
    transforms = read_xf(path)
    assert len(transforms) == 40
    first = transforms[0].as_dict()
    assert first["xf.a11"] == 0.1020875 and first["xf.a12"] == 0.9947760
    assert (first["xf.dx"], first["xf.dy"]) == (2.395, -3.871)
    last_line = path.read_text().splitlines()[-1].split()
    assert transforms["xf.dy"][-1] == float(last_line[5])
    matrices = xf_matrices(transforms)
    assert matrices.shape == (40, 2, 3)
    np.testing.assert_array_equal(
        matrices[0], [[0.1020875, 0.994776, 2.395], [-0.994776, 0.1020875, -3.871]]
    )
    assert write_xf(transforms, tmp_path / "copy.xf").read_text() == path.read_text()
    array = np.column_stack([transforms[c] for c in transforms.columns[1:]])
    assert write_xf(array, tmp_path / "array.xf").read_text() == path.read_text()


@pytest.mark.parametrize(
    ("name", "first", "exact"),
    [("TS_001.tlt", -57.12, True), ("TS_001.rawtlt", -60.0, False), ("TS_001.xtilt", -0.01, True)],
)
def test_imod_tilt_angle_files(
    real: Real, tmp_path: Path, name: str, first: float, exact: bool
) -> None:
    path = real(f"imod_etomofiles_teamtomo/{name}")
    angles = read_tlt(path)
    assert len(angles) == 40 and angles[0] == first
    assert angles[-1] == float(path.read_text().split()[-1])
    copy = write_tlt(angles, tmp_path / name)
    np.testing.assert_array_equal(read_tlt(copy), angles)
    assert (copy.read_text() == path.read_text()) is exact  # .rawtlt has no padding


def test_imod_exact_values_beyond_imod_layout(tmp_path: Path) -> None:
    angles = np.array([-60.0, 0.123456789, 1234567.5])
    np.testing.assert_array_equal(read_tlt(write_tlt(angles, tmp_path / "a.tlt")), angles)
    values = np.array([[1.0, 0.0, 0.0, 1.0, 0.1234567891, -2.0]])
    np.testing.assert_array_equal(
        xf_matrices(read_xf(write_xf(values, tmp_path / "a.xf")))[0],
        [[1.0, 0.0, 0.1234567891], [0.0, 1.0, -2.0]],
    )


def test_imod_malformed_files(tmp_path: Path) -> None:
    path = tmp_path / "bad.xf"
    path.write_text("1 0 0 1 0 0\n1 0 0 1 0\n")
    with pytest.raises(FormatError, match="has 5") as caught:
        read_xf(path)
    assert caught.value.line == 2
    path.write_text("1 0 0 1 0 z\n")
    with pytest.raises(FormatError, match="'z' is not a number") as caught:
        read_xf(path)
    assert caught.value.field == "xf.dy"
    tlt = tmp_path / "bad.tlt"
    tlt.write_text("-60.0\n-57.0 1\n")
    with pytest.raises(FormatError, match="one value") as caught:
        read_tlt(tlt)
    assert caught.value.line == 2
    with pytest.raises(FormatError, match=r"\(n, 6\)"):
        write_xf(np.zeros((2, 5)), tmp_path / "x.xf")


# -- SerialEM ----------------------------------------------------------------------------------
def test_mdoc_frame_set(real: Real, tmp_path: Path) -> None:
    path = real("serialem_mdocfile_teamtomo/frame_set_single.mdoc")
    mdoc = read_mdoc(path)
    assert mdoc.globals["Voltage"] == "300"
    assert mdoc.globals["T"].startswith("SerialEM: UMass_Krios")
    assert mdoc.titles == []
    assert mdoc.newline == ("\r\n" if b"\r\n" in path.read_bytes() else "\n")
    row = mdoc.sections.to_pylist()[0]
    assert mdoc.sections.num_rows == 1
    assert (row["section.type"], row["section.index"]) == ("FrameSet", 0)
    assert row["TiltAngle"] == 32.984 and row["PixelSpacing"] == 1.2827
    assert (row["StagePosition.0"], row["StagePosition.1"]) == (-142.82, -457.442)
    assert row["NumSubFrames"] == 12 and row["Binning"] == 0.5
    assert row["SubFramePath"].endswith("s_mmm_00993_33.0_Oct08_07.39.05.tif")
    assert row["DateTime"] == "08-Oct-21  07:39:08"
    assert mdoc.sections.schema.field("NumSubFrames").type == pa.int64()
    same_mdoc(mdoc, read_mdoc(write_mdoc(mdoc, tmp_path / "copy.mdoc")))


def test_mdoc_montage(real: Real, tmp_path: Path) -> None:
    mdoc = read_mdoc(real("serialem_mdocfile_teamtomo/montage_section.mdoc"))
    assert mdoc.globals["ImageFile"] == "LMM.mrc" and mdoc.globals["Montage"] == "1"
    assert mdoc.globals["ImageSize"] == "5064 3976"
    assert mdoc.titles[0].startswith("SerialEM: Titan Krios D3692 at Institut Pasteur")
    assert mdoc.titles[1] == "Tilt axis angle = -86.7, binning = 1  spot = 7  camera = 1"
    types = mdoc.sections.column("section.type").to_pylist()
    assert len(types) == 63 and types.count("ZValue") == 62 and types[-1] == "MontSection"
    assert mdoc.sections.column("section.index").to_pylist()[:3] == [0, 1, 2]
    assert mdoc.sections.column("PieceCoordinates.1").to_pylist()[:2] == [0, 3400]
    assert mdoc.sections.schema.field("PieceCoordinates.1").type == pa.int64()
    assert mdoc.sections.column("MinMaxMean.2")[1].as_py() == 50.6412
    montage = mdoc.sections.to_pylist()[-1]
    assert (montage["FullMontSize.0"], montage["FullMontSize.1"]) == (31992, 31176)
    assert mdoc.sections.to_pylist()[0]["FullMontSize.0"] is None
    same_mdoc(mdoc, read_mdoc(write_mdoc(mdoc, tmp_path / "copy.mdoc")))


def test_mdoc_tilt_series_with_crlf(real: Real, tmp_path: Path) -> None:
    path = real("tomo_preprocessing_aburt/TS_01.mrc.mdoc")
    assert b"\r\n" in path.read_bytes()
    mdoc = read_mdoc(path)
    assert mdoc.newline == "\r\n"
    assert mdoc.globals == {
        "PixelSpacing": "5.4",
        "ImageFile": "TS_01.mrc",
        "ImageSize": "924 958",
        "DataMode": "1",
    }
    assert mdoc.titles[1] == "Tilt axis angle = 85.3, binning = 4  spot = 8  camera = 2"
    sections = mdoc.sections
    assert sections.num_rows == 41
    assert sections.column("section.index").to_pylist() == list(range(41))
    assert sections.column("TiltAngle").to_pylist()[:3] == [0.000999877, 3.00113, -2.99863]
    paths = sections.column("SubFramePath").to_pylist()
    assert paths[0] == "D:\\DATA\\Flo\\HGK149_20151130\\frames\\TS_01_000_0.0.mrc"
    assert not any("\r" in str(v) for v in paths + list(mdoc.globals.values()))
    copy = write_mdoc(mdoc, tmp_path / "TS_01.mrc.mdoc")
    assert b"\r\n" in copy.read_bytes() and b"\r\r" not in copy.read_bytes()
    same_mdoc(mdoc, read_mdoc(copy))
    lf = read_mdoc(write_mdoc(mdoc, tmp_path / "lf.mdoc", newline="\n"))
    assert lf.newline == "\n" and lf.sections.equals(sections)


def same_mdoc(first: Mdoc, second: Mdoc) -> None:
    assert second.globals == first.globals
    assert second.titles == first.titles
    assert second.newline == first.newline
    assert second.sections.equals(first.sections)


def test_mdoc_malformed(tmp_path: Path) -> None:
    path = tmp_path / "bad.mdoc"
    path.write_text("PixelSpacing = 1.0\n\n[ZValue = 0]\nTiltAngle = 0\nthis is not a pair\n")
    with pytest.raises(FormatError, match="expected 'key = value'") as caught:
        read_mdoc(path)
    assert caught.value.line == 5
    path.write_text("[ZValue = zero]\nTiltAngle = 0\n")
    with pytest.raises(FormatError, match="not a whole number") as caught:
        read_mdoc(path)
    assert (caught.value.line, caught.value.field) == (1, "ZValue")
    path.write_text("[ZValue = 0]\nTiltAngle = 0\n[ZValue = 1]\nTiltAngle = 3\nTiltAngle = 4\n")
    with pytest.raises(FormatError, match="appears twice") as caught:
        read_mdoc(path)
    assert (caught.value.line, caught.value.field, caught.value.row) == (5, "TiltAngle", 1)


def test_mdoc_mixed_values_stay_text(tmp_path: Path) -> None:
    path = tmp_path / "mixed.mdoc"
    path.write_text("[ZValue = 0]\nA = 1 2\nB = 1\n\n[ZValue = 1]\nA = 1 2 3\nB = x\n")
    sections = read_mdoc(path).sections
    assert sections.column("A").to_pylist() == ["1 2", "1 2 3"]
    assert sections.column("B").to_pylist() == ["1", "x"]


# -- EPU ---------------------------------------------------------------------------------------
EPU_XML = """<?xml version="1.0" encoding="utf-8"?>
<MicroscopeImage xmlns="http://schemas.datacontract.org/2004/07/Fei.SharedObjects"
    xmlns:i="http://www.w3.org/2001/XMLSchema-instance">
  <uniqueID>synthetic-0001</uniqueID>
  <CustomData xmlns:a="http://schemas.microsoft.com/2003/10/Serialization/Arrays">
    <a:KeyValueOfstringanyType>
      <a:Key>Dose</a:Key>
      <a:Value i:type="b:double" xmlns:b="http://www.w3.org/2001/XMLSchema">4.0E+21</a:Value>
    </a:KeyValueOfstringanyType>
    <a:KeyValueOfstringanyType>
      <a:Key>AppliedDefocus</a:Key>
      <a:Value i:type="b:double" xmlns:b="http://www.w3.org/2001/XMLSchema">-1.5E-06</a:Value>
    </a:KeyValueOfstringanyType>
    <a:KeyValueOfstringanyType>
      <a:Key>DetectorCommercialName</a:Key>
      <a:Value i:type="b:string" xmlns:b="http://www.w3.org/2001/XMLSchema">Falcon 4i</a:Value>
    </a:KeyValueOfstringanyType>
  </CustomData>
  <SpatialScale>
    <pixelSize>
      <x><numericValue>7.25E-11</numericValue></x>
      <y><numericValue>7.25E-11</numericValue></y>
    </pixelSize>
  </SpatialScale>
  <microscopeData>
    <acquisition>
      <acquisitionDateTime>2024-03-01T12:00:00.0+00:00</acquisitionDateTime>
      <camera>
        <Binning xmlns:a="http://schemas.datacontract.org/2004/07/System.Drawing">
          <a:x>1</a:x><a:y>1</a:y>
        </Binning>
        <CameraSpecificInput xmlns:a="http://schemas.microsoft.com/2003/10/Serialization/Arrays">
          <a:KeyValueOfstringanyType>
            <a:Key>FractionationSettings</a:Key>
            <a:Value xmlns:b="http://schemas.datacontract.org/2004/07/Fei.Omp">
              <b:NumberOffractions>40</b:NumberOffractions>
            </a:Value>
          </a:KeyValueOfstringanyType>
          <a:KeyValueOfstringanyType>
            <a:Key>SuperResolutionFactor</a:Key>
            <a:Value>1</a:Value>
          </a:KeyValueOfstringanyType>
        </CameraSpecificInput>
        <ExposureTime>2.5</ExposureTime>
      </camera>
    </acquisition>
    <core>
      <ApplicationSoftware>EPU</ApplicationSoftware>
      <ApplicationSoftwareVersion>3.6.0</ApplicationSoftwareVersion>
    </core>
    <gun>
      <AccelerationVoltage>300000</AccelerationVoltage>
      <Filament i:nil="true"/>
    </gun>
    <optics>
      <Defocus>-1.2E-06</Defocus>
      <EnergyFilter><AccelerationVoltageOffset>0</AccelerationVoltageOffset></EnergyFilter>
      <TemMagnification><NominalMagnification>165000</NominalMagnification></TemMagnification>
    </optics>
  </microscopeData>
</MicroscopeImage>
"""


def test_epu_xml_synthetic_sample(tmp_path: Path) -> None:
    path = tmp_path / "FoilHole_1_Data_2_3_20240301_120000.xml"
    path.write_text(EPU_XML)
    acquisition = read_epu_xml(path)
    assert isinstance(acquisition, Acquisition)
    assert acquisition.voltage == 300.0
    assert acquisition.sampling_rate == pytest.approx(0.725)
    assert acquisition.magnification == 165000
    assert acquisition.dose_per_frame == pytest.approx(40.0 / 40)
    extra = acquisition.extra
    assert extra["total_dose"] == pytest.approx(40.0)
    assert extra["frames"] == 40 and extra["exposure_time"] == 2.5 and extra["binning"] == 1
    assert extra["super_resolution_factor"] == 1.0 and extra["detector"] == "Falcon 4i"
    assert extra["applied_defocus"] == pytest.approx(15000.0)
    assert extra["software"] == "EPU 3.6.0"
    assert extra["acquired_at"] == "2024-03-01T12:00:00.0+00:00"
    assert "pixel_size_y" not in extra
    epu = extra["epu"]
    assert epu["microscopeData/optics/Defocus"] == "-1.2E-06"
    assert epu["microscopeData/gun/Filament"] is None
    assert epu["uniqueID"] == "synthetic-0001"
    assert acquisition.check() == []
    json.dumps(acquisition.to_dict())  # fits a set property


def test_epu_xml_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "bad.xml"
    path.write_text("<MicroscopeImage><microscopeData>\n</MicroscopeImage>")
    with pytest.raises(FormatError, match="not XML") as caught:
        read_epu_xml(path)
    assert caught.value.line == 2
    path.write_text("<EpuSessionXml/>")
    with pytest.raises(FormatError, match="root element"):
        read_epu_xml(path)
    path.write_text(EPU_XML.replace("<AccelerationVoltage>300000</AccelerationVoltage>", ""))
    with pytest.raises(FormatError, match="AccelerationVoltage"):
        read_epu_xml(path)
    path.write_text(EPU_XML.replace("<numericValue>7.25E-11</numericValue>", "<numericValue/>"))
    with pytest.raises(FormatError, match="pixel size"):
        read_epu_xml(path)
