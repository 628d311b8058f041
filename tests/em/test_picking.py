"""Picking: DoG and template pickers on simulated micrographs, and ``spa.pick`` end to end.

Simulated micrographs follow the raw-data sign convention: protein is dark (negative density
added to a zero background), contamination is large very dark or bright blobs and a thin line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from cryolab.core.project import Project
from cryolab.em.imageio import write_mrc
from cryolab.em.objects import Acquisition, SetOfCoordinates, SetOfMicrographs
from cryolab.em.picking import match_picks, pick_dog, pick_template

BOX = 64
DIAMETER = 0.6 * BOX


def particle(rng: np.random.Generator, box: int = BOX) -> NDArray[np.float64]:
    """A projection-like blob: a cluster of anisotropic Gaussians, peak 1, positive density."""
    yy, xx = np.mgrid[:box, :box] - box // 2
    image = np.zeros((box, box))
    for _ in range(4):
        cx, cy = rng.normal(0, box * 0.07, 2)
        sx, sy = rng.uniform(0.06, 0.11, 2) * box
        t = rng.uniform(0, np.pi)
        u = (xx - cx) * np.cos(t) + (yy - cy) * np.sin(t)
        v = -(xx - cx) * np.sin(t) + (yy - cy) * np.cos(t)
        image += np.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))
    return image / image.max()


def simulate(
    seed: int,
    size: int = 1024,
    count: int = 60,
    snr: float = 0.08,
    contamination: bool = True,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """A micrograph (protein dark) and the true ``(x, y)`` centres of its particles."""
    rng = np.random.default_rng(seed)
    image = np.zeros((size, size))
    yy, xx = np.mgrid[:size, :size]
    blobs = []
    if contamination:
        for sign in (-1, 1, -1):  # ice balls / crystals, 3-5x the particle size
            c = rng.uniform(0.15 * size, 0.85 * size, 2)
            r = rng.uniform(1.5, 2.5) * DIAMETER
            blobs.append((c, r))
            image += sign * 8.0 / (1 + np.exp((np.hypot(xx - c[0], yy - c[1]) - r) / 3))
        # a thin dark line (carbon edge / crack) across the image
        angle = rng.uniform(0, np.pi)
        offset = rng.uniform(0.3, 0.7) * size
        distance = (xx - offset) * np.cos(angle) + (yy - size / 2) * np.sin(angle)
        image -= 4.0 * np.exp(-0.5 * (distance / 1.5) ** 2)
        line = (angle, offset)
    truth: list[NDArray[np.float64]] = []
    tries = 0
    half = BOX // 2
    signal = np.zeros((size, size))
    while len(truth) < count and tries < 20000:
        tries += 1
        p = rng.uniform(BOX, size - BOX, 2)
        if any(np.hypot(*(p - q)) < 1.1 * BOX for q in truth):
            continue
        if contamination:
            if any(np.hypot(*(p - c)) < r + BOX for c, r in blobs):
                continue
            d = (p[0] - line[1]) * np.cos(line[0]) + (p[1] - size / 2) * np.sin(line[0])
            if abs(d) < BOX:
                continue
        x0, y0 = int(p[0]) - half, int(p[1]) - half
        signal[y0 : y0 + BOX, x0 : x0 + BOX] -= particle(rng)
        truth.append(np.array([x0 + half, y0 + half], dtype=float))
    # noise so that mean(signal^2) / sigma^2 over a particle's disk is ``snr``
    yy0, xx0 = np.mgrid[:BOX, :BOX] - half
    disk = np.hypot(xx0, yy0) <= DIAMETER / 2
    one = particle(np.random.default_rng(0))
    sigma = np.sqrt(np.mean(one[disk] ** 2) / snr)
    image += signal + rng.normal(0, sigma, (size, size))
    return image, np.array(truth)


@pytest.mark.parametrize(("seed", "snr"), [(1, 0.08), (2, 0.08), (3, 0.05), (4, 0.05)])
def test_dog_picks_particles_not_contamination(seed: int, snr: float) -> None:
    image, truth = simulate(seed, snr=snr)
    picks, scores = pick_dog(image, DIAMETER, device="cpu")
    precision, recall, f1 = match_picks(picks, truth, BOX / 4)
    assert f1 >= 0.9, f"F1 {f1:.3f} (precision {precision:.3f}, recall {recall:.3f})"
    assert np.all(np.diff(scores) <= 0)


def test_contamination_fools_an_unguarded_picker() -> None:
    image, truth = simulate(1)
    picks, _ = pick_dog(image, DIAMETER, contamination=np.inf, elongation=0, device="cpu")
    guarded, _ = pick_dog(image, DIAMETER, device="cpu")
    assert match_picks(picks, truth, BOX / 4)[0] < match_picks(guarded, truth, BOX / 4)[0]


def test_dog_count_limit_and_edges() -> None:
    image, _ = simulate(4, size=512, count=20, contamination=False)
    picks, scores = pick_dog(image, DIAMETER, count=5, device="cpu")
    assert len(picks) == 5 and len(scores) == 5
    picks, _ = pick_dog(image, DIAMETER, device="cpu")
    assert picks.min() >= DIAMETER / 2 - 1 and picks.max() <= 512 - DIAMETER / 2
    bright, _ = pick_dog(-image, DIAMETER, dark_particles=False, device="cpu")
    np.testing.assert_allclose(np.sort(bright, axis=0), np.sort(picks, axis=0))


def test_dog_refuses_a_particle_larger_than_the_micrograph() -> None:
    with pytest.raises(ValueError, match="does not fit the micrograph"):
        pick_dog(np.zeros((32, 32)), 40.0, device="cpu")


def test_match_picks_counts_one_to_one() -> None:
    truth = np.array([[10.0, 10.0], [50.0, 50.0], [90.0, 90.0]])
    picked = np.array([[11.0, 10.0], [12.0, 10.0], [50.0, 52.0], [200.0, 200.0]])
    precision, recall, f1 = match_picks(picked, truth, 5.0)
    assert precision == pytest.approx(0.5) and recall == pytest.approx(2 / 3)
    assert f1 == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert match_picks(np.zeros((0, 2)), truth, 5.0) == (0.0, 0.0, 0.0)


def test_template_matching_finds_rotated_copies() -> None:
    from scipy import ndimage

    rng = np.random.default_rng(5)
    box = 48
    yy, xx = np.mgrid[:box, :box] - box // 2
    # an asymmetric "L": its orientation is recoverable
    template = np.exp(-0.5 * (((xx + 4) / 3) ** 2 + (yy / 12) ** 2))
    template += np.exp(-0.5 * (((xx - 4) / 8) ** 2 + ((yy - 9) / 3) ** 2))
    size = 512
    image = np.zeros((size, size))
    truth, angles = [], []
    for i, (x, y) in enumerate(
        [(80, 80), (250, 90), (420, 100), (90, 300), (300, 260), (420, 420)]
    ):
        angle = 45.0 * i
        copy = ndimage.rotate(template, angle, reshape=False, order=1)
        image[y - box // 2 : y + box // 2, x - box // 2 : x + box // 2] -= copy
        truth.append((x, y))
        angles.append(angle)
    image += rng.normal(0, 0.3, image.shape)
    picks, scores, found = pick_template(
        image, template, angles=range(0, 360, 15), threshold=0.3, device="cpu"
    )
    precision, recall, f1 = match_picks(picks, np.array(truth), box / 4)
    assert f1 == 1.0, f"F1 {f1:.3f} (precision {precision:.3f}, recall {recall:.3f})"
    for point, angle in zip(picks, found, strict=True):
        nearest = int(np.argmin(np.hypot(*(np.array(truth) - point).T)))
        difference = (angle - angles[nearest] + 180) % 360 - 180
        assert abs(difference) <= 15, f"angle {angle} for a copy turned by {angles[nearest]}"
    assert scores.max() <= 1.0 + 1e-9


ACQUISITION = Acquisition(sampling_rate=2.0).to_dict()


def imported_micrographs(project: Project, folder: Path, images: list[NDArray[np.float64]]):  # type: ignore[no-untyped-def]
    """Write images as MRC files and put them into the project as a SetOfMicrographs."""
    paths = []
    for index, image in enumerate(images):
        paths.append(str(write_mrc(folder / f"mic{index}.mrc", image.astype(np.float32), 2.0)))
    micrographs = SetOfMicrographs(
        {
            "image.path": paths,
            "image.index": [1] * len(paths),
            "micrograph.name": [f"mic{i}" for i in range(len(paths))],
        },
        properties={"sampling_rate": 2.0, "acquisition": ACQUISITION},
    )
    run = project.add_imported_run(
        "external.job",
        {
            "program": "test",
            "job": "x",
            "output_names": ["micrographs"],
            "output_types": ["SetOfMicrographs"],
        },
        {"micrographs": micrographs},
    )
    return run.out.micrographs, micrographs


def test_pick_protocol_through_a_project(project: Project, tmp_path: Path) -> None:
    made = [simulate(seed, size=512, count=15) for seed in (11, 12)]
    source, micrographs = imported_micrographs(project, tmp_path, [m[0] for m in made])
    run = project.run(
        "spa.pick",
        micrographs=source,
        particle_diameter=DIAMETER * 2.0,
        parallel=2,
        device="cpu",
    ).wait(60)
    coordinates = run.out.coordinates.load()
    assert isinstance(coordinates, SetOfCoordinates)
    assert coordinates.sampling_rate == 2.0
    for uid, (_, truth) in zip(micrographs.uids, made, strict=True):
        mine = coordinates.where(coordinates["micrograph_uid"] == uid)
        xy = np.column_stack([mine["coordinate.x"], mine["coordinate.y"]])
        f1 = match_picks(xy, truth, BOX / 4)[2]
        assert f1 >= 0.9, f"F1 {f1:.3f} on micrograph {uid}"
    assert np.isfinite(coordinates["coordinate.score"]).all()


def test_pick_protocol_refuses_an_empty_set(project: Project, tmp_path: Path) -> None:
    source, _ = imported_micrographs(project, tmp_path, [])
    run = project.run(
        "spa.pick", micrographs=source, particle_diameter=80.0, device="cpu", parallel=1
    ).wait(60, check=False)
    assert run.status == "failed" and "micrographs set is empty" in str(run.error)


def test_pick_protocol_with_templates(project: Project, tmp_path: Path) -> None:
    from cryolab.em.imageio import write_stack
    from cryolab.em.objects import SetOfImages

    rng = np.random.default_rng(8)
    shape = particle(rng)
    image = np.zeros((384, 384))
    truth = np.array([(80, 80), (250, 100), (100, 280), (290, 290)], dtype=float)
    for x, y in truth.astype(int):
        image[y - BOX // 2 : y + BOX // 2, x - BOX // 2 : x + BOX // 2] -= shape
    image += rng.normal(0, 0.3, image.shape)
    source, _ = imported_micrographs(project, tmp_path, [image])
    stack = write_stack(tmp_path / "templates.mrcs", shape[None].astype(np.float32), 2.0)
    templates = SetOfImages(
        {"image.path": [str(stack)], "image.index": [1]}, properties={"sampling_rate": 2.0}
    )
    ref = project.add_imported_run(
        "external.job",
        {"program": "test", "job": "t", "output_names": ["t"], "output_types": ["SetOfImages"]},
        {"t": templates},
    ).out.t
    run = project.run(
        "spa.pick",
        micrographs=source,
        method="template",
        templates=ref,
        particle_diameter=DIAMETER * 2.0,
        min_correlation=0.3,
        angular_step=30.0,
        parallel=1,
        device="cpu",
    ).wait(60)
    coordinates = run.out.coordinates.load()
    xy = np.column_stack([coordinates["coordinate.x"], coordinates["coordinate.y"]])
    f1 = match_picks(xy, truth, BOX / 4)[2]
    assert f1 == 1.0, f"F1 {f1:.3f}"
