"""Extraction: box geometry, normalisation, inversion, downsampling, phase flip, ``spa.extract``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from cryolab.core.project import Project
from cryolab.core.sets import Set
from cryolab.em.ctf import chi
from cryolab.em.extract import BACKGROUND_RADIUS, CtfParams, extract_boxes, fourier_crop
from cryolab.em.imageio import write_mrc
from cryolab.em.objects import (
    Acquisition,
    SetOfCoordinates,
    SetOfCTFs,
    SetOfMicrographs,
    SetOfParticles,
)

ACQUISITION = Acquisition(sampling_rate=2.0).to_dict()


def blob(shape: tuple[int, int], x: float, y: float, sigma: float) -> NDArray[np.float64]:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return np.asarray(np.exp(-0.5 * ((xx - x) ** 2 + (yy - y) ** 2) / sigma**2))


@pytest.mark.parametrize("box", [32, 33])
def test_a_box_centred_on_a_blob_has_it_at_the_origin(box: int) -> None:
    image = blob((200, 256), 101, 77, 2.0)
    stack, kept = extract_boxes(image, [[101, 77]], box, normalise_background=False, device="cpu")
    assert kept.tolist() == [0] and stack.shape == (1, box, box)
    y, x = np.unravel_index(np.argmax(stack[0]), stack[0].shape)
    assert (x, y) == (box // 2, box // 2)


def test_edges_are_skipped_or_padded() -> None:
    image = np.random.default_rng(0).normal(size=(128, 128))
    coords = [[64, 64], [5, 64], [64, 125]]
    _, kept = extract_boxes(image, coords, 32, device="cpu")
    assert kept.tolist() == [0]
    stack, kept = extract_boxes(image, coords, 32, edge="pad", device="cpu")
    assert kept.tolist() == [0, 1, 2] and stack.shape == (3, 32, 32)


def test_normalisation_and_inversion() -> None:
    rng = np.random.default_rng(1)
    image = 5.0 + 3.0 * rng.normal(size=(256, 256)) - 4 * blob((256, 256), 128, 128, 6)
    coords = [[128, 128], [60, 70], [190, 200]]
    stack, _ = extract_boxes(image, coords, 64, device="cpu")
    yy, xx = np.mgrid[:64, :64] - 32
    ring = np.hypot(xx, yy) > BACKGROUND_RADIUS * 32
    assert np.allclose(stack[:, ring].mean(axis=1), 0, atol=1e-5)
    assert np.allclose(stack[:, ring].std(axis=1), 1, atol=1e-4)
    raw, _ = extract_boxes(image, coords, 64, normalise_background=False, device="cpu")
    inverted, _ = extract_boxes(
        image, coords, 64, invert=True, normalise_background=False, device="cpu"
    )
    np.testing.assert_allclose(inverted, -raw, rtol=1e-6)
    # the dark blob becomes bright once inverted and normalised
    bright, _ = extract_boxes(image, coords[:1], 64, invert=True, device="cpu")
    assert bright[0, 32, 32] > 3


def test_downsampling_keeps_low_frequencies() -> None:
    image = blob((256, 256), 128, 128, 8.0) + 0.5
    full, _ = extract_boxes(image, [[128, 128]], 64, normalise_background=False, device="cpu")
    small, _ = extract_boxes(
        image, [[128, 128]], 64, normalise_background=False, downsample_to=32, device="cpu"
    )
    assert small.shape == (1, 32, 32)
    # the same blob sampled at twice the pixel size: sigma 4 px, centre at 16
    expected = blob((32, 32), 16, 16, 4.0) + 0.5
    np.testing.assert_allclose(small[0], expected, atol=2e-3)
    assert small[0].mean() == pytest.approx(full[0].mean(), rel=1e-4)
    with pytest.raises(ValueError, match="larger one"):
        fourier_crop(full, 80)


def test_phase_flip_flips_where_the_ctf_is_negative() -> None:
    rng = np.random.default_rng(2)
    image = rng.normal(size=(128, 128))
    ctf = CtfParams(defocus_u=15000, defocus_v=13000, defocus_angle=30, sampling_rate=1.5)
    plain, _ = extract_boxes(image, [[64, 64]], 64, normalise_background=False, device="cpu")
    flipped, _ = extract_boxes(
        image, [[64, 64]], 64, normalise_background=False, ctf=ctf, device="cpu"
    )
    f = np.fft.fftfreq(64) / 1.5
    fy, fx = f[:, None], f[None, :]
    phase = chi(
        np.hypot(fx, fy),
        np.degrees(np.arctan2(fy, fx)),
        15000,
        13000,
        30,
        voltage=300,
        spherical_aberration=2.7,
        amplitude_contrast=0.1,
    )
    negative = -np.sin(phase) < 0
    assert 0.2 < negative.mean() < 0.8
    ratio = np.fft.fft2(flipped[0]) / np.fft.fft2(plain[0])
    inner = np.ones((64, 64), dtype=bool)
    inner[32, :] = inner[:, 32] = False  # the Nyquist lines of an even box have no mirror pair
    expected = np.where(negative, -1.0, 1.0)
    np.testing.assert_allclose(ratio.real[inner], expected[inner], atol=1e-3)


def test_a_box_larger_than_the_micrograph_is_refused() -> None:
    with pytest.raises(ValueError, match="box of 300 px is larger than the micrograph"):
        extract_boxes(np.zeros((256, 200)), [[100, 100]], 300, device="cpu")


def imported(project: Project, name: str, data: Set) -> Any:
    run = project.add_imported_run(
        "external.job",
        {"program": "test", "job": name, "output_names": [name], "output_types": [data.type_name]},
        {name: data},
    )
    return getattr(run.out, name)


def make_inputs(project: Project, folder: Path, empty: bool = False) -> dict[str, Any]:
    """Two micrographs with dark blobs at known places, their coordinates and CTFs."""
    rng = np.random.default_rng(4)
    centres = [[(60, 60), (150, 90), (200, 200), (250, 128)], [(100, 180), (70, 70)]]
    paths = []
    for index, points in enumerate(centres):
        image = rng.normal(0, 0.1, (256, 256))
        for x, y in points:
            image -= blob((256, 256), x, y, 4.0)
        paths.append(str(write_mrc(folder / f"m{index}.mrc", image.astype(np.float32), 2.0)))
    properties = {"sampling_rate": 2.0, "acquisition": ACQUISITION}
    micrographs = SetOfMicrographs({"image.path": paths}, properties=properties)
    uids = micrographs.uids
    owner = [uids[i] for i, points in enumerate(centres) for _ in points]
    xy = np.array([p for points in centres for p in points], dtype=float)
    keep = slice(0, 0) if empty else slice(None)
    coordinates = SetOfCoordinates(
        {
            "micrograph_uid": np.array(owner, dtype=np.uint64)[keep],
            "coordinate.x": xy[keep, 0],
            "coordinate.y": xy[keep, 1],
        },
        properties=properties,
    )
    ctfs = SetOfCTFs(
        {
            "micrograph_uid": uids,
            "ctf.defocus_u": [15000.0, 20000.0],
            "ctf.defocus_v": [14000.0, 19000.0],
            "ctf.defocus_angle": [10.0, 20.0],
        },
        properties=properties,
    )
    return {
        "micrographs": imported(project, "micrographs", micrographs),
        "coordinates": imported(project, "coordinates", coordinates),
        "ctfs": imported(project, "ctfs", ctfs),
        "truth": (uids, coordinates),
    }


def test_extract_protocol_through_a_project(project: Project, tmp_path: Path) -> None:
    inputs = make_inputs(project, tmp_path)
    uids, coordinates = inputs.pop("truth")
    run = project.run(
        "spa.extract",
        **inputs,
        box=48,
        downsample_to=24,
        phase_flip=True,
        parallel=2,
        device="cpu",
    ).wait(60)
    particles = run.out.particles.load()
    assert isinstance(particles, SetOfParticles)
    # (250, 128) is too close to the edge for a 48 px box
    assert len(particles) == 5
    assert particles.sampling_rate == pytest.approx(4.0)
    assert particles.properties["box_size"] == 24
    assert set(particles["coordinate_uid"].tolist()) < set(coordinates.uids.tolist())
    assert not set(particles.uids.tolist()) & set(coordinates.uids.tolist())
    first = particles.where(particles["micrograph_uid"] == uids[0])
    assert sorted(first["image.index"].tolist()) == [1, 2, 3]
    assert (first["ctf.defocus_u"] == 15000.0).all()
    for item in particles:
        image = item.read()
        assert image.shape == (24, 24)
        assert item.path.parent == run.folder / "particles"


def test_extract_protocol_without_ctfs(project: Project, tmp_path: Path) -> None:
    inputs = make_inputs(project, tmp_path)
    inputs.pop("truth")
    inputs.pop("ctfs")
    run = project.run("spa.extract", **inputs, box=32, invert=True, parallel=1, device="cpu").wait(
        60
    )
    particles = run.out.particles.load()
    assert len(particles) == 5 and "ctf.defocus_u" not in particles  # one at the edge
    assert particles.sampling_rate == pytest.approx(2.0)
    # inverted: the dark blobs are bright at the centre
    assert all(item.read()[16, 16] > 2 for item in particles)


def test_extract_protocol_refuses_bad_inputs(project: Project, tmp_path: Path) -> None:
    inputs = make_inputs(project, tmp_path, empty=True)
    inputs.pop("truth")
    inputs.pop("ctfs")
    run = project.run("spa.extract", **inputs, box=32, parallel=1, device="cpu").wait(
        60, check=False
    )
    assert run.status == "failed" and "coordinates set is empty" in str(run.error)
    full = make_inputs(project, tmp_path)
    full.pop("truth")
    full.pop("ctfs")
    run = project.run("spa.extract", **full, box=300, parallel=1, device="cpu").wait(
        60, check=False
    )
    assert run.status == "failed" and "larger than the micrograph" in str(run.error)
