"""The image and volume comparator of ``cryolab reproduce`` (pixels, correlation, FSC)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cryolab.core.plugins import registry
from cryolab.core.reproduce_compare import CompareContext, Tolerances, compare_outputs
from cryolab.core.runs import OutputRef
from cryolab.em import imageio
from cryolab.em.objects import SetOfMicrographs, SetOfMovies, SetOfVolumes
from cryolab.em.reproducibility import IMAGES, MOVIES

APIX = 2.0


def _map(seed: int = 0, size: int = 24) -> np.ndarray[Any, np.dtype[np.float32]]:
    """A smooth random blob map (low-pass filtered noise), so its FSC is meaningful."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(size,) * 3)
    spectrum = np.fft.fftn(noise)
    k = np.sqrt(sum(f**2 for f in np.meshgrid(*(np.fft.fftfreq(size),) * 3, indexing="ij")))
    return np.real(np.fft.ifftn(spectrum * np.exp(-((k / 0.15) ** 2)))).astype(np.float32)


def _volumes(folder: Path, name: str, data: np.ndarray[Any, Any]) -> SetOfVolumes:
    folder.mkdir(parents=True, exist_ok=True)
    imageio.write_mrc(folder / f"{name}.mrc", data)
    return SetOfVolumes(
        {"image.path": [str(folder / f"{name}.mrc")], "image.index": [1]},
        properties={"sampling_rate": APIX},
    )


def _context(tmp_path: Path, deterministic: bool) -> CompareContext:
    return CompareContext(Tolerances(), deterministic, tmp_path, tmp_path)


def test_identical_maps_in_other_files(tmp_path: Path) -> None:
    volume = _map()
    result = IMAGES.compare(
        _volumes(tmp_path / "a", "v", volume),
        _volumes(tmp_path / "b", "v", volume),
        _context(tmp_path, True),
    )
    assert result["verdict"] == "identical" and result["identical"] == 1
    assert result["same_file"] == 0
    assert result["min_fsc"] == pytest.approx(1.0) and result["min_fsc_nyquist"] == pytest.approx(
        1.0
    )
    assert result["resolution_fsc_0.5"] == pytest.approx(2 * APIX)  # never below 0.5: Nyquist


def test_the_same_file_is_not_read(tmp_path: Path) -> None:
    volumes = _volumes(tmp_path, "v", _map())
    result = IMAGES.compare(volumes, volumes, _context(tmp_path, True))
    assert result["verdict"] == "identical" and result["same_file"] == 1


@pytest.mark.parametrize(
    ("noise", "deterministic", "verdict"),
    [
        (1e-8, True, "within tolerance"),  # float rounding across machines
        (0.02, True, "differs"),
        (0.02, False, "within tolerance"),  # correlation and FSC stay high
        (3.0, False, "differs"),
    ],
)
def test_perturbed_maps(tmp_path: Path, noise: float, deterministic: bool, verdict: str) -> None:
    volume = _map()
    rng = np.random.default_rng(5)
    changed = volume + noise * float(np.abs(volume).max()) * rng.normal(size=volume.shape)
    result = IMAGES.compare(
        _volumes(tmp_path / "a", "v", volume),
        _volumes(tmp_path / "b", "v", changed.astype(np.float32)),
        _context(tmp_path, deterministic),
    )
    assert result["verdict"] == verdict, result
    assert result["max_abs_diff"] > 0
    if verdict == "differs" and not deterministic:
        assert result["min_correlation"] < 0.95 or result["min_fsc"] < 0.5
    assert "images: 1 of 1 differ" in result["summary"]


def test_half_maps_and_missing_files(tmp_path: Path) -> None:
    volume = _map()
    maps_a = _volumes(tmp_path / "a", "v", volume)
    maps_b = _volumes(tmp_path / "b", "v", volume)
    imageio.write_mrc(tmp_path / "a" / "h1.mrc", volume)
    a = maps_a.with_columns(**{"volume.half1": [str(tmp_path / "a" / "h1.mrc")]})
    b = maps_b.with_columns(**{"volume.half1": ["h1.mrc"]})  # relative: to the project folder
    imageio.write_mrc(tmp_path / "h1.mrc", volume)
    assert IMAGES.columns(a.columns) == ["image.path", "volume.half1"]
    result = IMAGES.compare(a, b, _context(tmp_path, True))
    assert result["verdict"] == "identical" and result["items"] == 2
    (tmp_path / "h1.mrc").unlink()
    result = IMAGES.compare(a, b, _context(tmp_path, True))
    assert result["verdict"] == "differs" and "no such file" in result["summary"]


def test_movies_are_compared_whole(tmp_path: Path) -> None:
    frames = np.random.default_rng(2).normal(size=(4, 16, 16)).astype(np.float32)
    other = frames.copy()
    other[2] += 1.0
    imageio.write_mrc(tmp_path / "a.mrcs", frames, stack=True)
    imageio.write_mrc(tmp_path / "b.mrcs", other, stack=True)
    a = SetOfMovies({"image.path": [str(tmp_path / "a.mrcs")], "image.index": [1]})
    b = SetOfMovies({"image.path": [str(tmp_path / "b.mrcs")], "image.index": [1]})
    assert IMAGES.compare(a, b, _context(tmp_path, True))["verdict"] == "identical"  # frame 1
    assert MOVIES.compare(a, b, _context(tmp_path, True))["verdict"] == "differs"


def test_images_correlation(tmp_path: Path) -> None:
    image = np.random.default_rng(4).normal(size=(32, 32)).astype(np.float32)
    imageio.write_mrc(tmp_path / "a.mrc", image)
    imageio.write_mrc(tmp_path / "b.mrc", -image)
    a = SetOfMicrographs({"image.path": [str(tmp_path / "a.mrc")]})
    b = SetOfMicrographs({"image.path": [str(tmp_path / "b.mrc")]})
    result = IMAGES.compare(a, b, _context(tmp_path, False))
    assert result["verdict"] == "differs"
    assert result["min_correlation"] == pytest.approx(-1.0)
    assert result["min_fsc"] is None  # not a map


def test_the_builtin_plugin_names_the_comparators() -> None:
    assert registry.comparator(SetOfVolumes.type_chain()) is IMAGES
    assert registry.comparator(SetOfMovies.type_chain()) is MOVIES
    assert registry.comparator(["SetOfClasses3D", "SetOfClasses2D", "SetOfImages"]) is IMAGES
    assert registry.comparator(["FSC", "EMSet", "Set"]) is None


def test_movies_are_compared_frame_by_frame(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One frame of each movie in memory at a time; the figures of the whole movies."""
    rng = np.random.default_rng(6)
    frames = (100.0 + rng.normal(size=(5, 16, 16))).astype(np.float32)
    other = frames + (0.01 * rng.normal(size=frames.shape)).astype(np.float32)
    imageio.write_mrc(tmp_path / "a.mrcs", frames, stack=True)
    imageio.write_mrc(tmp_path / "b.mrcs", other, stack=True)
    imageio.write_mrc(tmp_path / "c.mrcs", frames, stack=True)
    read = imageio.read_image
    indices: list[int | None] = []

    def one_frame(path: Path, index: int | None = 1, permissive: bool = False) -> Any:
        indices.append(index)
        return read(path, index, permissive)

    monkeypatch.setattr(imageio, "read_image", one_frame)
    a = SetOfMovies({"image.path": [str(tmp_path / "a.mrcs")], "image.index": [1]})
    b = SetOfMovies({"image.path": [str(tmp_path / "b.mrcs")], "image.index": [1]})
    result = MOVIES.compare(a, b, _context(tmp_path, False))
    assert sorted(indices) == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]  # never None: the whole movie
    fa, fb = frames.astype(np.float64), other.astype(np.float64)
    assert result["max_abs_diff"] == pytest.approx(float(np.abs(fa - fb).max()))
    assert result["max_rel_diff"] == pytest.approx(result["max_abs_diff"] / np.abs(fb).max())
    expected = np.corrcoef(fa.ravel(), fb.ravel())[0, 1]
    assert result["min_correlation"] == pytest.approx(expected, abs=1e-9)
    assert result["verdict"] == "within tolerance"
    indices.clear()
    c = SetOfMovies({"image.path": [str(tmp_path / "c.mrcs")], "image.index": [1]})
    result = MOVIES.compare(a, c, _context(tmp_path, True))
    assert result["verdict"] == "identical" and indices == []  # equal bytes: no pixel read


def _ref(tmp_path: Path, name: str, data: SetOfVolumes) -> OutputRef:
    path = data.save(tmp_path / "sets" / name)
    return OutputRef(None, 1, name, path, SetOfVolumes.type_chain())  # type: ignore[arg-type]


def test_maps_of_statistical_runs_are_compared_despite_new_uids(tmp_path: Path) -> None:
    """A non-deterministic protocol's map gets a new uid: still compared by correlation/FSC."""
    volume = _map()
    rng = np.random.default_rng(7)
    changed = volume + 0.02 * float(np.abs(volume).max()) * rng.normal(size=volume.shape)
    a = _volumes(tmp_path / "a", "v", volume)
    b = _volumes(tmp_path / "b", "v", changed.astype(np.float32))
    assert a.uids[0] != b.uids[0]
    result = compare_outputs(
        _ref(tmp_path, "a", a), _ref(tmp_path, "b", b), _context(tmp_path, False)
    )
    assert result["matched_by"] == "single row"
    assert result["items"]["items"] == 1 and result["items"]["min_fsc"] > 0.5
    assert result["verdict"] == "within tolerance", result


def test_classes_pair_by_their_carried_uids(tmp_path: Path) -> None:
    """Several maps with new uids, in another order: paired by the uids carried from inputs."""
    maps = [_map(seed) for seed in range(3)]
    paths_a = [tmp_path / f"a{i}.mrc" for i in range(3)]
    paths_b = [tmp_path / f"b{i}.mrc" for i in range(3)]
    for i, data in enumerate(maps):
        imageio.write_mrc(paths_a[i], data)
        imageio.write_mrc(paths_b[i], data * np.float32(1.0 + 1e-3))
    order = [2, 0, 1]
    a = SetOfVolumes(
        {"image.path": [str(p) for p in paths_a], "image.index": [1] * 3,
         "source_uid": np.array([11, 12, 13], dtype=np.uint64), "score": [0.3, 0.2, 0.1]},
        properties={"sampling_rate": APIX},
    )  # fmt: skip
    b = SetOfVolumes(
        {"image.path": [str(paths_b[i]) for i in order], "image.index": [1] * 3,
         "source_uid": np.array([11, 12, 13], dtype=np.uint64)[order],
         "score": [0.1, 0.35, 0.25]},
        properties={"sampling_rate": APIX},
    )  # fmt: skip
    result = compare_outputs(
        _ref(tmp_path, "a", a), _ref(tmp_path, "b", b), _context(tmp_path, False)
    )
    assert result["matched_by"] == "carried uids"
    assert result["items"]["min_correlation"] > 0.999  # each map with its own counterpart
    assert result["items"]["verdict"] == "within tolerance"
