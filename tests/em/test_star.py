"""STAR files: our reader and writer against real RELION files, starfile, and bad files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import starfile

from cryolab.em._star_text import (
    _read_lines as read_lines,  # the reference parser
)
from cryolab.em.star import (
    StarError,
    block,
    column_as,
    parse_star,
    read_star,
    write_star,
)

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
Real = Callable[[str], Path]

# file -> {block: rows and columns of a table, or the number of keys of a key-value block}
SHAPES: dict[str, dict[str, tuple[int, int] | int]] = {
    "cryodrgn/relion31.star": {"optics": (1, 9), "particles": (5, 26)},
    "cryodrgn/relion31.6opticsgroups.star": {"optics": (6, 18), "particles": (139, 23)},
    "cryodrgn/FinalRefinement-OriginalParticles-PfCRT.star": {"images": (5, 22)},
    "cryodrgn/sta_testing_bin8.star": {"": (219, 20)},
    "starfile_teamtomo/postprocess_relion3.0.8.star": {
        "general": 6,
        "fsc": (49, 7),
        "guinier": (49, 3),
    },
    "starfile_teamtomo/run_it025_optimiser_3D_relion3.1.star": {"optimiser_general": 84},
    "starfile_teamtomo/run_it025_optimiser_2D_relion3.1.star": {"optimiser_general": 84},
    "starfile_teamtomo/run_it025_sampling_3D_relion3.1.star": {
        "sampling_general": 15,
        "sampling_directions": (192, 2),
    },
    "starfile_teamtomo/default_pipeline_relion3.0.star": {
        "pipeline_general": 1,
        "pipeline_processes": (31, 4),
        "pipeline_nodes": (74, 2),
        "pipeline_input_edges": (48, 2),
        "pipeline_output_edges": (72, 2),
    },
    "aspire/sample_data_model.star": {
        "model_general": 22,
        "model_classes": (1, 4),
        "model_class_1": (76, 8),
        "model_groups": (1, 4),
        "model_group_1": (76, 3),
        "model_pdf_orient_class_1": (192, 1),
    },
    "tomo_preprocessing_aburt/relion4_tomo_micrographs_ctf.star": {
        "optics": (1, 7),
        "micrographs": (41, 9),
    },
    "tomo_preprocessing_aburt/relion4_tomo_corrected_micrographs.star": {
        "optics": (1, 7),
        "micrographs": (41, 7),
    },
    "relion_3dem/tomo/tilt_series.star": {"global": (5, 14)},
    "relion_3dem/tomo/tilt_series/220728_TS_01.star": {"220728_TS_01": (41, 29)},
    "relion_3dem/mtf_k2_300kV.star": {"mtf_k2_300kv": (1001, 2)},
    "relion_3dem/mtf_falcon4EC_300kV.star": {"": (64, 2)},
    "himena-relion_jobstars/spa/InitialModel/job001/job.star": {
        "job": 3,
        "joboptions_values": (26, 2),
    },
    "himena-relion_jobstars/spa/Class3D/job001/job.star": {"job": 3, "joboptions_values": (62, 2)},
    "himena-relion_jobstars/spa/Refine3D/job001/job.star": {"job": 3, "joboptions_values": (56, 2)},
    "himena-relion_jobstars/spa/PostProcess/job001/job.star": {
        "job": 3,
        "joboptions_values": (17, 2),
    },
    "himena-relion_jobstars/spa/Polish/job001/job.star": {"job": 3, "joboptions_values": (27, 2)},
    "himena-relion_jobstars/tomo/Import/job001/job.star": {"job": 3, "joboptions_values": (27, 2)},
    "himena-relion_jobstars/tomo/AlignTiltSeries/job001/job.star": {
        "job": 3,
        "joboptions_values": (23, 2),
    },
    "himena-relion_jobstars/tomo/Tomogram/job001/job.star": {
        "job": 3,
        "joboptions_values": (22, 2),
    },
}


def shape(content: pa.Table | dict[str, str]) -> tuple[int, int] | int:
    return content.shape if isinstance(content, pa.Table) else len(content)


def assert_same_blocks(ours: dict[str, Any], other: dict[str, Any]) -> None:
    """Same block names, kinds, columns, types and values (tables compared with Arrow)."""
    assert list(ours) == list(other)
    for name, content in ours.items():
        if isinstance(content, dict):
            assert content == other[name], name
        else:
            assert content.equals(other[name]), name
            assert content.schema.types == other[name].schema.types, name


# -- real files -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(SHAPES))
def test_real_blocks_and_shapes(real: Real, name: str) -> None:
    blocks = read_star(real(name))
    assert {block: shape(content) for block, content in blocks.items()} == SHAPES[name]


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_real_files_agree_with_starfile(real: Real, name: str) -> None:
    ours = read_star(real(name))
    theirs = starfile.read(real(name), always_dict=True)
    assert list(ours) == list(theirs)
    for block_name, content in ours.items():
        other = theirs[block_name]
        if isinstance(content, dict):
            assert isinstance(other, dict) and list(content) == list(other)
            for key, text in content.items():  # ours: the text; starfile: a number or text
                value = other[key]
                if isinstance(value, (int, float)):
                    assert float(text) == pytest.approx(value, rel=0, abs=0), key
                else:
                    assert text == value, key
            continue
        assert content.column_names == list(other.columns)
        for column in content.column_names:
            mine = content.column(column).to_numpy(zero_copy_only=False)
            expected = other[column].to_numpy()
            if expected.dtype.kind in "if":
                assert mine.dtype == expected.dtype, column
                assert np.array_equal(mine, expected, equal_nan=True), column
            else:
                assert [str(v) for v in mine] == [str(v) for v in expected], column


@pytest.mark.parametrize("name", sorted(SHAPES))
@pytest.mark.parametrize("aligned", [False, True])
def test_real_files_round_trip(real: Real, tmp_path: Path, name: str, aligned: bool) -> None:
    blocks = read_star(real(name))
    out = write_star(tmp_path / "copy.star", blocks, version=30001, aligned=aligned)
    assert_same_blocks(read_star(out), blocks)
    assert out.read_text().count("# version 30001") == len(blocks)


def test_relion31_values(real: Real) -> None:
    blocks = read_star(real("cryodrgn/relion31.star"))
    optics, particles = blocks["optics"], blocks["particles"]
    assert optics.column("rlnOpticsGroupName").to_pylist() == ["opticsGroup1"]
    assert optics.column("rlnImagePixelSize").to_pylist() == [2.806]
    assert optics.column("rlnImageSize").type == pa.int64()
    assert particles.column_names[0] == "rlnCoordinateX"
    assert particles.column_names[-1] == "rlnGroupNumber"
    assert particles.column("rlnDefocusU")[0].as_py() == 13108.082418
    assert particles.column("rlnLogLikeliContribution")[0].as_py() == 2.586789e05
    assert particles.column("rlnImageName").to_pylist()[:2] == [
        "000001@relion31.mrcs",
        "000002@relion31.mrcs",
    ]
    assert particles.column("rlnOriginYAngst").to_pylist()[:2] == [-0.64686, 0.403454]
    types = dict(zip(particles.column_names, particles.schema.types, strict=True))
    assert types["rlnClassNumber"] == pa.int64()
    assert types["rlnNrOfSignificantSamples"] == pa.int64()
    assert types["rlnCoordinateX"] == pa.float64()
    assert types["rlnMicrographName"] == pa.string()


def test_key_value_blocks_keep_the_text(real: Real) -> None:
    post = read_star(real("starfile_teamtomo/postprocess_relion3.0.8.star"))
    assert post["general"] == {
        "rlnFinalResolution": "16.363636",
        "rlnBfactorUsedForSharpening": "0.000000",
        "rlnUnfilteredMapHalf1": "average_symmetrized_ref_001_ite_0008.mrc",
        "rlnUnfilteredMapHalf2": "average_symmetrized_ref_002_ite_0008.mrc",
        "rlnMaskName": "mask.mrc",
        "rlnRandomiseFrom": "32.727273",
    }
    assert post["fsc"].column("rlnSpectralIndex").to_pylist() == list(range(49))
    assert post["fsc"].column("rlnAngstromResolution")[1].as_py() == 720.0
    sampling = read_star(real("starfile_teamtomo/run_it025_sampling_3D_relion3.1.star"))
    assert sampling["sampling_general"]["rlnSymmetryGroup"] == "C1"
    assert sampling["sampling_directions"].slice(0, 1).to_pylist() == [
        {"rlnAngleRot": 45.0, "rlnAngleTilt": 80.405932}
    ]


def test_job_star_quoted_empty_values(real: Real) -> None:
    blocks = read_star(real("himena-relion_jobstars/spa/PostProcess/job001/job.star"))
    assert blocks["job"]["rlnJobTypeLabel"] == "relion.postprocess"
    options = dict(
        zip(
            blocks["joboptions_values"].column("rlnJobOptionVariable").to_pylist(),
            blocks["joboptions_values"].column("rlnJobOptionValue").to_pylist(),
            strict=True,
        )
    )
    assert options["fn_mtf"] == "" and options["other_args"] == ""
    assert options["qsubscript"] == "/public/EM/RELION/relion/bin/relion_qsub.csh"
    assert blocks["joboptions_values"].column("rlnJobOptionValue").type == pa.string()


def test_tabs_model_and_tomo_files(real: Real) -> None:
    mtf = read_star(real("relion_3dem/mtf_falcon4EC_300kV.star"))[""]  # tab separated
    assert mtf.column("rlnResolutionInversePixel")[1].as_py() == 0.0078125
    assert mtf.column("rlnMtfValue")[0].as_py() == 0.999517475
    model = read_star(real("aspire/sample_data_model.star"))
    assert model["model_general"]["rlnPixelSize"] == "1.250000"
    assert model["model_classes"].column("rlnReferenceImage").to_pylist() == [
        "Class3D/run_001_it025_class001.mrc"
    ]
    assert model["model_class_1"].column("rlnSsnrMap")[0].as_py() == 4.082352e05
    ctf = read_star(real("tomo_preprocessing_aburt/relion4_tomo_micrographs_ctf.star"))
    assert ctf["micrographs"].column("rlnCtfImage")[0].as_py() == (
        "CtfFind/job004/movies/TS_01_000_0_0_PS.ctf:mrc"
    )
    assert ctf["micrographs"].column("rlnDefocusU")[0].as_py() == 39224.277344


# -- synthetic files: every path of the reader gives the same table ---------------------------
def synthetic(rows: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    stacks = rng.integers(0, 50, rows)
    return pa.table(
        {
            "rlnCoordinateX": np.round(rng.uniform(0, 4000, rows)),
            "rlnImageName": [
                f"{i + 1:06d}@Extract/job007/mic_{s}.mrcs" for i, s in enumerate(stacks)
            ],
            "rlnDefocusU": rng.uniform(5000, 30000, rows),
            "rlnClassNumber": rng.integers(1, 5, rows),
            "rlnAnglePsi": rng.normal(0, 100, rows),
            "rlnLogLikeliContribution": rng.normal(0, 1e12, rows),
            "rlnMicrographName": [f"Movies/mic_{s}.mrc" for s in stacks],
        }
    )


@pytest.mark.parametrize("rows", [3, 3000])
def test_fast_and_reference_readers_agree(tmp_path: Path, rows: int) -> None:
    table = synthetic(rows)
    plain = write_star(tmp_path / "plain.star", {"particles": table})
    aligned = write_star(tmp_path / "aligned.star", {"particles": table}, aligned=True)
    assert "  " not in plain.read_text().split("loop_")[1]
    for path in (plain, aligned):
        got = read_star(path)["particles"]
        assert got.equals(table)
        raw = path.read_bytes()
        body = raw.index(b"\n", raw.index(b"_rlnMicrographName")) + 1
        line = raw.count(b"\n", 0, body) + 1
        reference = read_lines(raw, body, len(raw), line, table.column_names, "particles", None)
        assert reference.equals(table)


def test_comments_blank_lines_crlf_and_quotes(tmp_path: Path) -> None:
    text = (
        "# a comment\n\ndata_things\n\nloop_\n_rlnName #1\n_rlnValue #2\n"
        "'a b' 1\n\n# a comment inside the loop\n\"c 'd'\" 2 # trailing comment\n"
        "plain 3\n   \ndata_pairs\n_rlnText  'with space'\n_rlnNumber 5\n_rlnEmpty \"\"\n"
    )
    for newline in ("\n", "\r\n"):
        path = tmp_path / "q.star"
        path.write_bytes(text.replace("\n", newline).encode())
        blocks = read_star(path)
        assert blocks["things"].column("rlnName").to_pylist() == ["a b", "c 'd'", "plain"]
        assert blocks["things"].column("rlnValue").to_pylist() == [1, 2, 3]
        assert blocks["pairs"] == {"rlnText": "with space", "rlnNumber": "5", "rlnEmpty": ""}
        again = read_star(write_star(tmp_path / "again.star", blocks))
        assert_same_blocks(again, blocks)


def test_quoted_values_in_a_big_body(tmp_path: Path) -> None:
    table = synthetic(3000).set_column(
        6, "rlnMicrographName", pa.array([f"my movies/mic {i}.mrc" for i in range(3000)])
    )
    path = write_star(tmp_path / "quoted.star", {"particles": table})
    assert '"my movies/mic 0.mrc"' in path.read_text()
    assert read_star(path)["particles"].equals(table)


def test_values_round_trip_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    special = [0.0, -0.0, 300.0, 1e9, 1e10, 123456789012.0, 2.0**53, 1e-7, 5e-324, 1.7e308]
    floats = np.concatenate([special, rng.normal(0, 1, 500) * 10.0 ** rng.integers(-30, 30, 500)])
    table = pa.table(
        {
            "rlnFloat": floats,
            "rlnWhole": np.floor(rng.uniform(-1e12, 1e12, floats.size)),
            "rlnSmallFloat": pa.array(rng.normal(size=floats.size), pa.float32()),
            "rlnInt": rng.integers(-(2**62), 2**62, floats.size),
            "rlnBool": rng.integers(0, 2, floats.size).astype(bool),
            "rlnText": [
                ["", "a b", "_x", "#y", "data_z", "it's", 'say "hi"', "ok"][i % 8]
                for i in range(floats.size)
            ],
        }
    )
    back = read_star(write_star(tmp_path / "v.star", {"v": table}))["v"]
    assert np.array_equal(back.column("rlnFloat").to_numpy(), floats)
    assert np.signbit(back.column("rlnFloat").to_numpy()[1])
    assert back.column("rlnWhole").type == pa.float64()
    assert back.column("rlnWhole").equals(table.column("rlnWhole"))
    assert back.column("rlnSmallFloat").cast(pa.float32()).equals(table.column("rlnSmallFloat"))
    assert back.column("rlnInt").equals(table.column("rlnInt"))
    assert back.column("rlnBool").to_pylist() == [
        int(b) for b in table.column("rlnBool").to_pylist()
    ]
    assert back.column("rlnText").equals(table.column("rlnText"))


def test_nan_inf_and_missing_floats(tmp_path: Path) -> None:
    table = pa.table({"rlnA": pa.array([1.5, None, float("inf"), float("nan")], pa.float64())})
    back = read_star(write_star(tmp_path / "n.star", {"t": table}))["t"].column("rlnA")
    values = back.to_numpy()
    assert values[0] == 1.5 and np.isnan(values[1]) and values[2] == np.inf and np.isnan(values[3])


def test_write_dataframes_dictionaries_and_a_single_table(tmp_path: Path) -> None:
    frame = pd.DataFrame({"rlnA": [1, 2], "rlnB": ["x", "y"]})
    single = write_star(tmp_path / "one.star", frame)
    assert list(read_star(single)) == [""]
    assert read_star(single)[""].to_pydict() == {"rlnA": [1, 2], "rlnB": ["x", "y"]}
    encoded = pa.table({"rlnB": pa.array(["x", "y", "x"]).dictionary_encode()})
    assert read_star(write_star(tmp_path / "d.star", {"d": encoded}))["d"].column(
        "rlnB"
    ).to_pylist() == ["x", "y", "x"]
    pairs = {"rlnF": 2.0, "rlnI": 3, "rlnS": "a b", "rlnT": True}
    assert read_star(write_star(tmp_path / "p.star", {"p": pairs}))["p"] == {
        "rlnF": "2.0",
        "rlnI": "3",
        "rlnS": "a b",
        "rlnT": "1",
    }
    empty = read_star(
        write_star(tmp_path / "e.star", {"e": pa.table({"rlnA": pa.array([], pa.int64())})})
    )
    assert empty["e"].column_names == ["rlnA"] and empty["e"].num_rows == 0


def test_starfile_reads_what_we_write(real: Real, tmp_path: Path) -> None:
    blocks = read_star(real("cryodrgn/relion31.6opticsgroups.star"))
    out = write_star(tmp_path / "ours.star", blocks, version=30001)
    theirs = starfile.read(out, always_dict=True)
    for name, table in blocks.items():
        assert pa.Table.from_pandas(theirs[name], preserve_index=False).equals(table)


def test_lazy_names_in_cryolab_em() -> None:
    import cryolab.em

    assert cryolab.em.read_star is read_star
    assert cryolab.em.write_star is write_star


# -- bad files --------------------------------------------------------------------------------
def write(tmp_path: Path, text: str, name: str = "bad.star") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD = "data_optics\nloop_\n_rlnOpticsGroup\n_rlnVoltage\n1 300.0\n\ndata_particles\nloop_\n"
GOOD += "_rlnDefocusU #1\n_rlnImageName #2\n"


def test_wrong_field_count_names_row_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "1.0 1@a.mrcs\n2.0\n3.0 3@a.mrcs\n")
    with pytest.raises(StarError) as caught:
        read_star(path)
    error = caught.value
    assert (error.file, error.block, error.row, error.line) == (str(path), "particles", 2, 12)
    assert str(path) in str(error) and "data_particles" in str(error) and "row 2" in str(error)
    assert "expected 2 values, found 1" in str(error)


def test_wrong_field_count_in_a_big_body(tmp_path: Path) -> None:
    table = synthetic(3000)
    good = write_star(tmp_path / "big.star", {"particles": table}, aligned=True).read_text()
    lines = good.split("\n")
    first = next(i for i, line in enumerate(lines) if "@" in line)
    lines[first + 1999] = lines[first + 1999].rsplit(" ", 1)[0]  # row 2000 loses its last value
    for aligned in (True, False):
        text = "\n".join(lines) if aligned else "\n".join(" ".join(x.split()) for x in lines)
        path = write(tmp_path, text)
        with pytest.raises(StarError, match="row 2000") as caught:
            read_star(path)
        assert caught.value.line == first + 2000


def test_truncated_file(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "1.0 1@a.mrcs\n2.0 2@a.mr")
    path.write_text(GOOD + "1.0 1@a.mrcs\n2.0")
    with pytest.raises(StarError, match="truncated") as caught:
        read_star(path)
    assert caught.value.row == 2


def test_non_numeric_value_in_a_numeric_column(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "1.0 1@a.mrcs\n2.0 2@a.mrcs\nabc 3@a.mrcs\n")
    table = read_star(path)["particles"]
    assert table.column("rlnDefocusU").type == pa.string()  # reading alone keeps the text
    with pytest.raises(StarError) as caught:
        column_as(table, "rlnDefocusU", pa.float64())
    error = caught.value
    assert (error.block, error.column, error.row, error.line) == ("particles", "rlnDefocusU", 3, 13)
    assert "'abc' is not a number" in str(error) and str(path) in str(error)
    assert column_as(read_star(path)["optics"], "rlnVoltage", pa.float64()).to_pylist() == [300.0]
    with pytest.raises(StarError, match="not an integer"):
        column_as(table, "rlnImageName", pa.int64())


def test_missing_block(tmp_path: Path) -> None:
    blocks = read_star(write(tmp_path, GOOD + "1.0 1@a.mrcs\n"))
    with pytest.raises(StarError, match=r"no block data_micrographs \(blocks: data_optics, data_"):
        block(blocks, "micrographs", "bad.star")
    assert block(blocks, ("micrographs", "particles")).num_rows == 1


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("data_a\n_rlnKey\n", "has no value", 2),
        ("data_a\n_rlnKey 1 2\n", "more than one value", 2),
        ("data_a\nloop_\n_rlnA\n1\ndata_a\nloop_\n_rlnA\n2\n", "a second block", 5),
        ("stray text\ndata_a\n", "text before the first data_ block", 1),
        ("data_a\nloop_\n_rlnA\n_rlnA\n1 2\n", "appears twice", 4),
        ("data_a\nloop_\n_rlnA\n1\nloop_\n_rlnB\n2\n", "one loop per block", 5),
        ("data_a\nhello\n", "unexpected text", 2),
    ],
)
def test_malformed_files(tmp_path: Path, text: str, message: str, line: int) -> None:
    with pytest.raises(StarError, match=message) as caught:
        read_star(write(tmp_path, text))
    assert caught.value.line == line


def test_missing_file_and_unwritable_values(tmp_path: Path) -> None:
    with pytest.raises(StarError, match="cannot read the file"):
        read_star(tmp_path / "absent.star")
    with pytest.raises(StarError, match="column rlnA, row 2: a missing value"):
        write_star(tmp_path / "x.star", {"t": pa.table({"rlnA": pa.array([1, None])})})
    assert not (tmp_path / "x.star").exists() and not list(tmp_path.glob("*.part"))
    with pytest.raises(StarError, match="cannot write"):
        write_star(tmp_path / "no" / "such" / "x.star", {"t": pa.table({"rlnA": [1]})})


def test_parse_text_and_empty_blocks() -> None:
    blocks = parse_star("data_\n\ndata_loop\nloop_\n_rlnA\n_rlnB\n")
    assert blocks[""] == {}
    assert blocks["loop"].column_names == ["rlnA", "rlnB"] and blocks["loop"].num_rows == 0
    assert parse_star("# only a comment\n") == {}
