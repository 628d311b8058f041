"""RELION STAR files to EM sets and back: real files, lossless round trips, bad files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import starfile

from cryolab.em.objects import (
    FSC,
    Acquisition,
    SetOfClasses3D,
    SetOfCoordinates,
    SetOfCTFs,
    SetOfMicrographs,
    SetOfParticles,
)
from cryolab.em.relion import (
    micrograph_uid,
    micrographs_to_star,
    particles_to_star,
    read_model_star,
    read_postprocess_fsc,
    star_to_coordinates,
    star_to_ctfs,
    star_to_micrographs,
    star_to_particles,
)
from cryolab.em.star import StarError, read_star, write_star

Real = Callable[[str], Path]
RELION31 = "cryodrgn/relion31.star"
SIX_GROUPS = "cryodrgn/relion31.6opticsgroups.star"
RELION30 = "cryodrgn/FinalRefinement-OriginalParticles-PfCRT.star"
STA = "cryodrgn/sta_testing_bin8.star"
CTF = "tomo_preprocessing_aburt/relion4_tomo_micrographs_ctf.star"
MOTION = "tomo_preprocessing_aburt/relion4_tomo_corrected_micrographs.star"


def assert_same_set(a: Any, b: Any) -> None:
    assert type(a) is type(b)
    assert a.to_arrow().column_names == b.to_arrow().column_names
    for name in a.to_arrow().column_names:
        assert a.to_arrow().column(name).equals(b.to_arrow().column(name)), name
    assert a.properties == b.properties


def same_columns(a: pa.Table, b: pa.Table) -> None:
    """Same labels (in any order) with the same values and types."""
    assert sorted(a.column_names) == sorted(b.column_names)
    for name in a.column_names:
        assert a.column(name).equals(b.column(name)), name


# -- particles --------------------------------------------------------------------------------
def test_relion31_particles(real: Real) -> None:
    path = real(RELION31)
    particles = star_to_particles(path, seed=1)
    assert isinstance(particles, SetOfParticles) and len(particles) == 5
    assert particles["image.index"].tolist() == [1, 2, 3, 4, 5]
    assert set(particles["image.path"]) == {"relion31.mrcs"}
    assert particles["coordinate.x"].tolist()[:3] == [3277.0, 3277.0, 2826.0]
    assert particles["ctf.defocus_u"][0] == 13108.082418
    assert particles["ctf.defocus_angle"][0] == -160.39
    assert particles["ctf.resolution"][0] == 4.545 and particles["ctf.score"][0] == 0.089249
    assert particles["transform.rot"][0] == -102.30296
    assert particles["transform.shift_x"][0] == 0.019324
    assert particles["transform.shift_y"][0] == -0.64686
    assert particles["class_id"].dtype == np.int64 and particles["optics_group"].tolist() == [1] * 5
    name = (
        "Micrographs/18aug10a_MC2_FoilHole_10984848_Data_10985376_10985377_"
        "20180810_2123-144102_DW.mrc"
    )
    assert particles["micrograph.name"][0] == name
    assert particles["micrograph_uid"][0] == micrograph_uid([name])[0]
    assert particles["relion.rlnRandomSubset"].tolist() == [1] * 5  # carried along
    assert particles["relion.rlnImageOriginalName"][0].startswith("000001@Extract/job133/")
    assert particles.sampling_rate == 2.806
    acquisition = particles.acquisition
    assert isinstance(acquisition, Acquisition)
    assert (acquisition.voltage, acquisition.spherical_aberration) == (300.0, 0.01)
    assert acquisition.extra["rlnImageSize"] == 256
    assert particles.properties["optics_groups"][0]["name"] == "opticsGroup1"
    assert particles.properties["root"] == str(path.parent)  # where relion31.mrcs is
    particles.properties["permissive"] = True  # cryoDRGN wrote the stack without the MRC id
    assert particles[0].read().shape == (256, 256)


def test_uids_come_from_the_seed(real: Real) -> None:
    first = star_to_particles(real(RELION31), seed=5)
    assert np.array_equal(first.uids, star_to_particles(real(RELION31), seed=5).uids)
    assert not np.array_equal(first.uids, star_to_particles(real(RELION31), seed=6).uids)
    assert len(np.unique(first.uids)) == 5


@pytest.mark.parametrize("name", [RELION31, SIX_GROUPS])
@pytest.mark.parametrize("version", ["3.1", "4", "5"])
def test_relion31_round_trip_is_lossless(
    real: Real, tmp_path: Path, name: str, version: str
) -> None:
    original = star_to_particles(real(name), seed=3, root="/data")
    out = particles_to_star(original, tmp_path / "out.star", version=version)  # type: ignore[arg-type]
    assert_same_set(star_to_particles(out, seed=3, root="/data"), original)
    written, source = read_star(out), read_star(real(name))
    assert list(written) == ["optics", "particles"]
    assert written["particles"].equals(source["particles"])  # same labels, order and values
    assert written["optics"].equals(source["optics"])
    comment = "# version 50001" if version == "5" else "# version 30001"
    assert out.read_text().startswith(f"\n{comment}\n")


def test_six_optics_groups(real: Real) -> None:
    particles = star_to_particles(real(SIX_GROUPS), seed=0)
    groups = particles.properties["optics_groups"]
    assert [g["number"] for g in groups] == [1, 2, 3, 4, 5, 6]
    assert [g["name"] for g in groups][:2] == ["opticsGroup5", "opticsGroup3"]
    assert {g["sampling_rate"] for g in groups} == {1.25, 1.24}
    assert "sampling_rate" not in particles.properties  # differs between groups
    assert groups[0]["extra"]["rlnOddZernike"].startswith("[1.70554063513,")
    assert sorted(set(particles["optics_group"].tolist())) == [1, 2, 3, 4, 5, 6]
    assert len(particles) == 139 and "coordinate.score" in particles


def test_relion30_single_table(real: Real, tmp_path: Path) -> None:
    particles = star_to_particles(real(RELION30), seed=2, root="/data")
    assert len(particles) == 5 and particles.properties["relion.version"] == "3.0"
    pixel = 1.035 * 1e4 / 10000.0
    assert particles.sampling_rate == pixel
    assert particles["transform.shift_x"][0] == -0.14063 * pixel
    assert particles["transform.shift_y"][1] == 0.046875 * pixel
    assert particles["image.index"].tolist() == [1, 2, 3, 4, 5]
    assert "relion.rlnVoltage" not in particles  # optics labels become an optics group
    assert particles.acquisition is not None and particles.acquisition.voltage == 300.0
    # 3.0 -> 3.0: the same labels and values come back, in any order
    out = particles_to_star(particles, tmp_path / "v30.star", version="3.0")
    assert list(read_star(out)) == ["images"]
    same_columns(read_star(out)["images"], read_star(real(RELION30))["images"])
    assert_same_set(star_to_particles(out, seed=2, root="/data"), particles)
    # 3.0 -> 3.1: shifts in Å, the same table; the optics come from the group
    again = star_to_particles(
        particles_to_star(particles, tmp_path / "v31.star"), seed=2, root="/data"
    )
    assert again.to_arrow().equals(particles.to_arrow())
    assert again.sampling_rate == particles.sampling_rate


def test_relion30_subtomogram_tilts(real: Real, tmp_path: Path) -> None:
    particles = star_to_particles(real(STA), seed=0)
    assert len(particles) == 219 and particles.sampling_rate == 1.96
    assert particles.properties["optics_groups"][0]["magnification"] == 10000  # an int stays one
    assert particles["relion.rlnGroupName"][0].startswith("ay19102021_")
    particles.properties["permissive"] = True
    assert particles[0].read().shape == (64, 64)
    out = particles_to_star(particles, tmp_path / "sta.star", version="3.0")
    same_columns(read_star(out)["images"], read_star(real(STA))[""])


def test_starfile_dataframes_build_the_same_set(real: Real) -> None:
    for name in (RELION31, SIX_GROUPS, RELION30):
        ours = star_to_particles(real(name), seed=4, root="/r")
        theirs = star_to_particles(starfile.read(real(name), always_dict=True), seed=4, root="/r")
        assert ours.to_arrow().equals(theirs.to_arrow()), name


def test_sets_made_in_cryolab_export(tmp_path: Path) -> None:
    particles = SetOfParticles(
        {
            "image.path": ["a.mrcs", "a.mrcs", "b.mrcs"],
            "image.index": [1, 2, 1],
            "transform.shift_x": [1.5, -2.0, 0.0],
            "score": [0.1, 0.2, 0.3],  # no RELION label: written as cryolab.score
        },
        properties={"sampling_rate": 1.1, "acquisition": Acquisition(sampling_rate=1.1).to_dict()},
    )
    out = particles_to_star(particles, tmp_path / "p.star", write_uids=True)
    blocks = read_star(out)
    assert blocks["optics"].column("rlnImagePixelSize").to_pylist() == [1.1]
    assert blocks["particles"].column_names == [
        "rlnImageName",
        "rlnOriginXAngst",
        "cryolab.score",
        "cryolab.uid",  # a set made in memory has its uid column last
        "rlnOpticsGroup",
    ]
    assert blocks["particles"].column("rlnImageName").to_pylist()[2] == "000001@b.mrcs"
    back = star_to_particles(out, seed=0)
    assert np.array_equal(back.uids, particles.uids)
    assert back["score"].tolist() == [0.1, 0.2, 0.3]
    dropped = read_star(particles_to_star(particles, tmp_path / "d.star", unmapped="drop"))
    assert "cryolab.score" not in dropped["particles"].column_names
    three = read_star(particles_to_star(particles, tmp_path / "t.star", version="3.0"))["images"]
    assert three.column("rlnOriginX").to_numpy() * 1.1 == pytest.approx([1.5, -2.0, 0.0])
    assert three.column("rlnDetectorPixelSize").to_pylist() == [1.1] * 3


def test_export_errors(tmp_path: Path) -> None:
    bare = SetOfParticles({"image.path": ["a.mrcs"], "image.index": [1]})
    with pytest.raises(StarError, match="no optics_groups, acquisition or sampling_rate"):
        particles_to_star(bare, tmp_path / "x.star")
    clash = SetOfParticles(
        {"ctf.defocus_u": [1.0], "relion.rlnDefocusU": [2.0]}, properties={"sampling_rate": 1.0}
    )
    with pytest.raises(StarError, match="two columns would be written as _rlnDefocusU"):
        particles_to_star(clash, tmp_path / "x.star")
    with pytest.raises(StarError, match="unknown RELION version"):
        particles_to_star(clash, tmp_path / "x.star", version="2")  # type: ignore[arg-type]


# -- bad particle files -----------------------------------------------------------------------
OPTICS = "data_optics\nloop_\n_rlnOpticsGroup\n_rlnImagePixelSize\n1 1.5\n\n"


def test_missing_particles_block(tmp_path: Path) -> None:
    path = tmp_path / "p.star"
    path.write_text(OPTICS + "data_other\nloop_\n_rlnA\n1\n")
    with pytest.raises(
        StarError, match=r"no block data_particles or data_images or data_ "
    ) as caught:
        star_to_particles(path)
    assert str(path) in str(caught.value)


def test_non_numeric_defocus(tmp_path: Path) -> None:
    path = tmp_path / "p.star"
    rows = "\n".join(f"{i}@s.mrcs 1 {d}" for i, d in enumerate(["1.0", "2.0", "x2"], 1))
    path.write_text(
        OPTICS + "data_particles\nloop_\n_rlnImageName\n_rlnOpticsGroup\n_rlnDefocusU\n" + rows
    )
    with pytest.raises(StarError) as caught:
        star_to_particles(path)
    error = caught.value
    assert (error.file, error.block, error.column, error.row, error.line) == (
        str(path),
        "particles",
        "rlnDefocusU",
        3,
        14,
    )
    old = tmp_path / "old.star"  # RELION 3.0: the optics labels are dropped, the origin kept
    old.write_text(
        "data_images\nloop_\n_rlnImageName\n_rlnVoltage\n_rlnDefocusU\n1@a 300 1\n2@a 300 x\n"
    )
    with pytest.raises(
        StarError, match=r"old\.star, block data_images, column rlnDefocusU, row 2, line 7"
    ):
        star_to_particles(old)


def test_bad_image_name_and_missing_pixel_size(tmp_path: Path) -> None:
    path = tmp_path / "p.star"
    path.write_text(OPTICS + "data_particles\nloop_\n_rlnImageName\n1@s.mrcs\nfirst@s.mrcs\n")
    with pytest.raises(StarError, match="column rlnImageName, row 2"):
        star_to_particles(path)
    old = tmp_path / "old.star"
    old.write_text("data_\nloop_\n_rlnImageName\n_rlnOriginX\n1@s.mrcs 2.0\n")
    with pytest.raises(StarError, match="pass sampling_rate="):
        star_to_particles(old)
    assert star_to_particles(old, sampling_rate=1.5)["transform.shift_x"].tolist() == [3.0]


def test_truncated_particles_file(real: Real, tmp_path: Path) -> None:
    text = real(RELION31).read_text()
    cut = tmp_path / "cut.star"
    cut.write_text(text[: text.rindex("000005@relion31.mrcs")])
    with pytest.raises(StarError, match=r"row 5.*truncated"):
        star_to_particles(cut)


# -- micrographs and CTFs ---------------------------------------------------------------------
def test_micrographs(real: Real, tmp_path: Path) -> None:
    micrographs = star_to_micrographs(real(MOTION), root="/p")
    assert isinstance(micrographs, SetOfMicrographs) and len(micrographs) == 41
    names = micrographs["micrograph.name"]
    assert names[0] == "MotionCorr/job002/movies/TS_01_000_0_0.mrc"
    assert np.array_equal(micrographs.uids, micrograph_uid(names))
    assert micrographs.sampling_rate == 1.35
    assert micrographs["image.path"].tolist() == names.tolist()
    out = micrographs_to_star(micrographs, tmp_path / "m.star")
    assert read_star(out)["micrographs"].equals(read_star(real(MOTION))["micrographs"])
    assert read_star(out)["optics"].equals(read_star(real(MOTION))["optics"])
    assert_same_set(star_to_micrographs(out, root="/p"), micrographs)


def test_ctfs(real: Real, tmp_path: Path) -> None:
    ctfs, micrographs = star_to_ctfs(real(CTF), seed=0, root="/p")
    assert isinstance(ctfs, SetOfCTFs) and len(ctfs) == 41
    assert ctfs["ctf.defocus_u"][0] == 39224.277344
    assert ctfs["ctf.defocus_v"][0] == 39029.84375
    assert ctfs["ctf.defocus_angle"][0] == -15.47666
    assert ctfs["ctf.resolution"][0] == 7.166976 and ctfs["ctf.score"][0] == 0.036367
    assert ctfs["relion.rlnCtfAstigmatism"][0] == 194.433594
    assert ctfs["relion.rlnCtfImage"][0] == "CtfFind/job004/movies/TS_01_000_0_0_PS.ctf:mrc"
    assert np.array_equal(ctfs["micrograph_uid"], micrographs.uids)
    assert not any(c.startswith("ctf.") for c in micrographs.columns)
    assert ctfs.properties["sampling_rate"] == 1.35
    out = micrographs_to_star(micrographs, tmp_path / "ctf.star", ctfs=ctfs)
    same_columns(read_star(out)["micrographs"], read_star(real(CTF))["micrographs"])


def test_particles_and_micrographs_agree(real: Real, tmp_path: Path) -> None:
    particles = star_to_particles(real(SIX_GROUPS), seed=0)
    names = sorted(set(particles["micrograph.name"].tolist()))
    star = write_star(
        tmp_path / "mics.star",
        {
            "optics": pa.table({"rlnOpticsGroup": [1], "rlnMicrographPixelSize": [1.0]}),
            "micrographs": pa.table(
                {"rlnMicrographName": names, "rlnOpticsGroup": [1] * len(names)}
            ),
        },
    )
    micrographs = star_to_micrographs(star)
    assert set(particles["micrograph_uid"].tolist()) == set(micrographs.uids.tolist())


# -- coordinates, FSC, model ------------------------------------------------------------------
def coordinate_file(path: Path, rows: list[tuple[float, float, float]]) -> Path:
    table = pa.table(
        {
            "rlnCoordinateX": [r[0] for r in rows],
            "rlnCoordinateY": [r[1] for r in rows],
            "rlnClassNumber": [0] * len(rows),
            "rlnAutopickFigureOfMerit": [r[2] for r in rows],
            "rlnAnglePsi": [-999.0] * len(rows),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_star(path, {"": table}, version=30001)


def test_coordinates(tmp_path: Path) -> None:
    one = coordinate_file(
        tmp_path / "AutoPick/job006/Movies/mic1_autopick.star", [(10, 20, 0.5), (30, 40, 0.7)]
    )
    coordinate_file(tmp_path / "AutoPick/job006/Movies/mic2_autopick.star", [(50, 60, 0.9)])
    single = star_to_coordinates(one, seed=0)
    assert isinstance(single, SetOfCoordinates) and len(single) == 2
    assert single["micrograph.name"].tolist() == ["mic1_autopick"] * 2
    assert single["coordinate.score"].tolist() == [0.5, 0.7]
    named = star_to_coordinates(one, micrograph_name="Movies/mic1.mrc", seed=0)
    assert named["micrograph_uid"].tolist() == [micrograph_uid(["Movies/mic1.mrc"])[0]] * 2
    listing = write_star(
        tmp_path / "AutoPick/job006/autopick.star",
        {
            "coordinate_files": pa.table(
                {
                    "rlnMicrographName": ["Movies/mic1.mrc", "Movies/mic2.mrc"],
                    "rlnMicrographCoordinates": [
                        "AutoPick/job006/Movies/mic1_autopick.star",
                        "AutoPick/job006/Movies/mic2_autopick.star",
                    ],
                }
            )
        },
    )
    coordinates = star_to_coordinates(listing, seed=0)
    assert len(coordinates) == 3
    assert coordinates["coordinate.x"].tolist() == [10.0, 30.0, 50.0]
    assert coordinates["micrograph.name"].tolist() == ["Movies/mic1.mrc"] * 2 + ["Movies/mic2.mrc"]
    assert np.array_equal(
        coordinates["micrograph_uid"], micrograph_uid(coordinates["micrograph.name"])
    )
    assert coordinates["class_id"].tolist() == [0, 0, 0]
    assert coordinates["transform.psi"].tolist() == [-999.0] * 3
    (tmp_path / "AutoPick/job006/Movies/mic2_autopick.star").unlink()
    with pytest.raises(StarError, match=r"mic2_autopick\.star: cannot read"):
        star_to_coordinates(listing)


def test_postprocess_fsc(real: Real) -> None:
    fsc = read_postprocess_fsc(real("starfile_teamtomo/postprocess_relion3.0.8.star"), seed=0)
    assert isinstance(fsc, FSC) and len(fsc) == 49
    assert fsc["fsc.frequency"][1] == 0.001389 and fsc["fsc.value"][1] == 0.999943
    assert fsc["relion.rlnFourierShellCorrelationUnmaskedMaps"][1] == 0.999883
    assert fsc["relion.rlnSpectralIndex"].tolist() == list(range(49))
    assert fsc.properties["resolution"] == 16.363636
    assert fsc.properties["relion.rlnMaskName"] == "mask.mrc"
    assert fsc.properties["relion.rlnBfactorUsedForSharpening"] == 0.0
    assert 15.5 < fsc.resolution(0.143) < 16.5  # the curve crosses 0.143 near 1/0.0618


def test_model_star(real: Real) -> None:
    model = read_model_star(real("aspire/sample_data_model.star"), seed=0)
    assert model["general"]["rlnPixelSize"] == 1.25 and model["general"]["rlnNrClasses"] == 1
    classes = model["classes"]
    assert isinstance(classes, SetOfClasses3D) and len(classes) == 1
    assert classes["image.path"].tolist() == ["Class3D/run_001_it025_class001.mrc"]
    assert classes["class_id"].tolist() == [1]
    assert classes["class.distribution"].tolist() == [1.0]
    assert classes["relion.rlnAccuracyRotations"].tolist() == [1.801]
    assert classes.sampling_rate == 1.25
    assert model["class_spectra"][1].shape == (76, 8)
    assert list(model["blocks"]) == ["model_groups", "model_group_1", "model_pdf_orient_class_1"]


def test_missing_fsc_block(tmp_path: Path) -> None:
    path = tmp_path / "post.star"
    path.write_text("data_general\n_rlnFinalResolution 3.5\n")
    with pytest.raises(StarError, match="no block data_fsc"):
        read_postprocess_fsc(path)
