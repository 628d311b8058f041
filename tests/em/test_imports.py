"""Import protocols for image files: movies, micrographs, volumes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from conftest import database_dump
from cryolab.core.errors import ParameterError
from cryolab.core.project import Project
from cryolab.em.imageio import write_mrc
from cryolab.em.objects import SetOfMicrographs, SetOfMovies, SetOfVolumes


def micrographs(folder: Path, count: int = 3, voxel: float = 1.5) -> list[np.ndarray]:
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(1)
    images = [rng.normal(size=(48, 64)).astype(np.float32) for _ in range(count)]
    for index, image in enumerate(images):
        write_mrc(folder / f"mic_{index:03d}.mrc", image, voxel_size=voxel)
    return images


def test_import_micrographs_records_acquisition_and_reads_back(
    project: Project, tmp_path: Path
) -> None:
    images = micrographs(tmp_path / "mics")
    run = project.run(
        "import.micrographs",
        files=str(tmp_path / "mics" / "*.mrc"),
        sampling_rate=1.5,
        voltage=200,
        spherical_aberration=2.0,
        dose_per_frame=1.2,
    ).wait(60)
    result = run.out.micrographs.load()
    assert isinstance(result, SetOfMicrographs) and len(result) == 3
    assert result.sampling_rate == 1.5
    assert result.acquisition is not None and result.acquisition.voltage == 200
    assert result.acquisition.dose_per_frame == 1.2
    assert result["micrograph.name"].tolist() == ["mic_000", "mic_001", "mic_002"]
    assert (
        result["image.width"].tolist() == [64] * 3 and result["image.height"].tolist() == [48] * 3
    )
    np.testing.assert_array_equal(result[1].read(), images[1])
    assert result[1].path == tmp_path / "mics" / "mic_001.mrc"


def test_pixel_size_mismatch_names_the_file(project: Project, tmp_path: Path) -> None:
    micrographs(tmp_path / "mics", voxel=1.5)
    run = project.run(
        "import.micrographs", files=str(tmp_path / "mics" / "*.mrc"), sampling_rate=0.9
    ).wait(60, check=False)
    assert run.status == "failed"
    assert "mic_000.mrc: its header says 1.5 Å/px but sampling_rate is 0.9 Å/px" in str(run.error)
    trusted = project.run(
        "import.micrographs",
        files=str(tmp_path / "mics" / "*.mrc"),
        sampling_rate=0.9,
        trust_header=True,
    ).wait(60)
    assert trusted.out.micrographs.load().sampling_rate == 0.9


def test_an_unreadable_file_is_named(project: Project, tmp_path: Path) -> None:
    micrographs(tmp_path / "mics")
    (tmp_path / "mics" / "mic_999.mrc").write_bytes(b"not an image at all" * 10)
    run = project.run(
        "import.micrographs", files=str(tmp_path / "mics" / "*.mrc"), sampling_rate=1.5
    ).wait(60, check=False)
    assert run.status == "failed" and "cannot import" in str(run.error)
    assert "mic_999.mrc" in str(run.error)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"voltage": 5.0}, "'voltage': 5.0 is below the minimum 20"),
        ({"files": "/nowhere/*.mrc"}, "no file matches"),
        ({"sampling_rate": None}, "'sampling_rate': a value is required"),
        ({"gain": "/nowhere/gain.mrc"}, "'gain': '/nowhere/gain.mrc' does not exist"),
    ],
)
def test_bad_acquisition_values_are_refused_before_anything_is_stored(
    project: Project, tmp_path: Path, params: dict, message: str
) -> None:
    micrographs(tmp_path / "mics")
    before = database_dump(project)
    values = {"files": str(tmp_path / "mics" / "*.mrc"), "sampling_rate": 1.5, **params}
    with pytest.raises(ParameterError, match=message):
        project.run("import.micrographs", **values)
    assert database_dump(project) == before


def test_import_movies_from_tiff_and_mrc(project: Project, tmp_path: Path) -> None:
    folder = tmp_path / "movies"
    folder.mkdir()
    frames = np.random.default_rng(2).integers(0, 4, size=(7, 32, 40)).astype(np.uint8)
    tifffile.imwrite(folder / "movie_a.tif", frames)
    write_mrc(folder / "movie_b.mrc", frames.astype(np.float32), voxel_size=0.8, stack=True)
    run = project.run(
        "import.movies", files=str(folder / "movie_*"), sampling_rate=0.8, dose_per_frame=1.0
    ).wait(60)
    movies = run.out.movies.load()
    assert isinstance(movies, SetOfMovies)
    assert movies["movie.frames"].tolist() == [7, 7]
    np.testing.assert_array_equal(movies[0].read(), frames[0])  # first frame of the TIFF


def test_import_a_real_volume_with_half_maps(project: Project, real) -> None:  # type: ignore[no-untyped-def]
    volume = real("mrcfile_ccpem/EMD-3197.map")
    run = project.run(
        "import.volumes",
        files=str(volume),
        sampling_rate=11.4,
        half1=str(volume),
        half2=str(real("mrcfile_ccpem/emd_3197.map.gz")),
    ).wait(60)
    volumes = run.out.volumes.load()
    assert isinstance(volumes, SetOfVolumes) and volumes["image.depth"].tolist() == [20]
    assert volumes[0].read().shape == (20, 20, 20)
    assert volumes["volume.half2"][0].endswith("emd_3197.map.gz")
    wrong = project.run("import.volumes", files=str(volume), sampling_rate=1.0).wait(
        60, check=False
    )
    assert "header says 11.4 Å/px" in str(wrong.error)


def test_a_micrograph_file_is_not_a_volume(project: Project, tmp_path: Path) -> None:
    micrographs(tmp_path / "mics", count=1)
    run = project.run(
        "import.volumes", files=str(tmp_path / "mics" / "mic_000.mrc"), sampling_rate=1.5
    ).wait(60, check=False)
    assert run.status == "failed" and "is not a 3-D volume" in str(run.error)


def test_half_maps_need_both(project: Project, real) -> None:  # type: ignore[no-untyped-def]
    volume = str(real("mrcfile_ccpem/EMD-3197.map"))
    with pytest.raises(ParameterError, match="give both half maps or neither"):
        project.run("import.volumes", files=volume, sampling_rate=11.4, half1=volume)


def imported_micrographs(project: Project, tmp_path: Path, count: int = 3):  # type: ignore[no-untyped-def]
    micrographs(tmp_path / "mics", count=count)
    return project.run(
        "import.micrographs", files=str(tmp_path / "mics" / "*.mrc"), sampling_rate=1.5
    ).wait(60)


def test_import_ctfs_matches_files_to_micrographs(project: Project, tmp_path: Path, real) -> None:  # type: ignore[no-untyped-def]
    mics = imported_micrographs(project, tmp_path)
    template = real("aspire/ctffind4_diagnostic_output.txt").read_text()
    folder = tmp_path / "ctffind"
    folder.mkdir()
    for index, defocus in enumerate([9000.0, 12000.0, 15000.0]):
        text = template.replace("9982.502930 9982.502930", f"{defocus:.6f} {defocus - 300:.6f}")
        (folder / f"mic_{index:03d}_ctf.txt").write_text(text)
    run = project.run(
        "import.ctfs", files=str(folder / "*_ctf.txt"), micrographs=mics.out.micrographs
    ).wait(60)
    ctfs = run.out.ctfs.load()
    micrograph_uids = mics.out.micrographs.load().uids.tolist()
    by_micrograph = dict(
        zip(ctfs["micrograph_uid"].tolist(), ctfs["ctf.defocus_u"].tolist(), strict=True)
    )
    assert by_micrograph == dict(zip(micrograph_uids, [9000.0, 12000.0, 15000.0], strict=True))
    assert ctfs["ctf.defocus_v"].tolist() == [8700.0, 11700.0, 14700.0]
    assert ctfs["ctf.resolution"][0] == pytest.approx(1.980663)


def test_an_estimation_for_an_unknown_micrograph_is_named(
    project: Project, tmp_path: Path, real
) -> None:  # type: ignore[no-untyped-def]
    mics = imported_micrographs(project, tmp_path)
    folder = tmp_path / "ctffind"
    folder.mkdir()
    (folder / "other_ctf.txt").write_text(real("aspire/ctffind4_diagnostic_output.txt").read_text())
    run = project.run(
        "import.ctfs", files=str(folder / "*.txt"), micrographs=mics.out.micrographs
    ).wait(60, check=False)
    assert run.status == "failed" and "other_ctf.txt matches no micrograph name" in str(run.error)


def test_import_coordinates_from_box_files(project: Project, tmp_path: Path) -> None:
    mics = imported_micrographs(project, tmp_path, count=2)
    folder = tmp_path / "boxes"
    folder.mkdir()
    (folder / "mic_000.box").write_text("10\t20\t64\t64\n100\t120\t64\t64\n")
    (folder / "mic_001.box").write_text("5\t6\t64\t64\n")
    run = project.run(
        "import.coordinates", files=str(folder / "*.box"), micrographs=mics.out.micrographs
    ).wait(60)
    coordinates = run.out.coordinates.load()
    assert len(coordinates) == 3
    uids = mics.out.micrographs.load().uids
    first = coordinates.where(coordinates["micrograph_uid"] == uids[0])
    assert sorted(first["coordinate.x"].tolist()) == [42.0, 132.0]  # corner + 64 / 2
    assert sorted(first["coordinate.y"].tolist()) == [52.0, 152.0]
    bad = project.run(
        "import.coordinates", files=str(folder / "*"), micrographs=mics.out.micrographs
    )
    assert bad.wait(60).status == "finished"
    (folder / "notes.txt").write_text("x")
    with pytest.raises(ParameterError, match=r"unsupported coordinate file type\(s\) \['\.txt'\]"):
        project.run("import.coordinates", files=str(folder / "*"), micrographs=mics.out.micrographs)


def test_import_particles_from_a_relion_star(project: Project, real) -> None:  # type: ignore[no-untyped-def]
    star = real("cryodrgn/relion31.star")
    run = project.run(
        "import.particles", files=str(star), permissive=True, root=str(star.parent)
    ).wait(60)
    particles = run.out.particles.load()
    assert len(particles) == 5 and particles.sampling_rate is not None
    assert "transform.rot" in particles and "ctf.defocus_u" in particles


def test_import_particles_from_a_cryosparc_file(project: Project, real) -> None:  # type: ignore[no-untyped-def]
    run = project.run(
        "import.particles", files=str(real("cryodrgn/cryosparc_J2_particles_exported.cs"))
    ).wait(60)
    particles = run.out.particles.load()
    assert len(particles) == 22 and particles["image.index"].min() >= 1


def test_import_particles_from_a_stack(project: Project, real) -> None:  # type: ignore[no-untyped-def]
    stack = real("cryodrgn/relion31.mrcs")
    with pytest.raises(ParameterError, match="'sampling_rate': a value is required"):
        project.run("import.particles", files=str(stack))
    strict = project.run("import.particles", files=str(stack), sampling_rate=1.0).wait(
        60, check=False
    )
    assert strict.status == "failed" and "permissive" in str(strict.error)
    run = project.run(
        "import.particles", files=str(stack), sampling_rate=1.0, permissive=True
    ).wait(60)
    particles = run.out.particles.load()
    assert particles["image.index"].tolist() == [1, 2, 3, 4, 5]
    assert particles[2].read().shape == (256, 256)


def test_import_relion_coordinates_and_ctfs(project: Project, tmp_path: Path) -> None:
    from cryolab.em.star import write_star

    mics = imported_micrographs(project, tmp_path, count=2)
    folder = tmp_path / "relion"
    folder.mkdir()
    import pyarrow as pa

    write_star(
        folder / "mic_001_autopick.star",
        {"": pa.table({"rlnCoordinateX": [10.0, 20.0], "rlnCoordinateY": [30.0, 40.0]})},
    )
    coordinates = (
        project.run(
            "import.coordinates",
            files=str(folder / "*_autopick.star"),
            micrographs=mics.out.micrographs,
        )
        .wait(60)
        .out.coordinates.load()
    )
    second = mics.out.micrographs.load().uids[1]
    assert coordinates["micrograph_uid"].tolist() == [second, second]
    assert coordinates["coordinate.x"].tolist() == [10.0, 20.0]
    write_star(
        folder / "micrographs_ctf.star",
        {
            "optics": pa.table(
                {
                    "rlnOpticsGroupName": ["opticsGroup1"],
                    "rlnOpticsGroup": [1],
                    "rlnMicrographPixelSize": [1.5],
                    "rlnVoltage": [300.0],
                    "rlnSphericalAberration": [2.7],
                    "rlnAmplitudeContrast": [0.1],
                }
            ),
            "micrographs": pa.table(
                {
                    "rlnMicrographName": [
                        "MotionCorr/job002/mic_000.mrc",
                        "MotionCorr/job002/mic_001.mrc",
                    ],
                    "rlnOpticsGroup": [1, 1],
                    "rlnDefocusU": [11000.0, 22000.0],
                    "rlnDefocusV": [10500.0, 21500.0],
                    "rlnDefocusAngle": [12.0, 34.0],
                }
            ),
        },
    )
    ctfs = (
        project.run(
            "import.ctfs",
            files=str(folder / "micrographs_ctf.star"),
            micrographs=mics.out.micrographs,
        )
        .wait(60)
        .out.ctfs.load()
    )
    uids = mics.out.micrographs.load().uids.tolist()
    assert dict(
        zip(ctfs["micrograph_uid"].tolist(), ctfs["ctf.defocus_u"].tolist(), strict=True)
    ) == {uids[0]: 11000.0, uids[1]: 22000.0}
