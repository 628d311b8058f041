"""2-D classification: the numerics on simulated particles, the agreement metric, the protocol.

The particles are real-space projections (:func:`cryolab.em.simulate.project`, in-plane angle
included) of the globular phantom at four distinct views (the elongated one has side views that
differ mostly by a turn in the plane), moved by known shifts, CTF-modulated with
:func:`cryolab.em.simulate.ctf_image` (contrast inverted: protein bright) and buried in
Gaussian noise at SNR 0.05; none of this shares code with the classification.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from cryolab.core.project import Project
from cryolab.em.class_metrics import class_agreement, classify
from cryolab.em.classify2d import Settings, rotate
from cryolab.em.imageio import read_images, write_stack
from cryolab.em.objects import Acquisition, SetOfParticles
from cryolab.em.phantom import make_phantom
from cryolab.em.simulate import ctf_image, fourier_shift, project

from .conftest import imported

Array = NDArray[np.float64]
BOX, PIXEL, COUNT = 48, 3.0, 600
VIEWS = ((0.0, 0.0), (0.0, 90.0), (90.0, 90.0), (45.0, 45.0))
ACQUISITION = Acquisition(sampling_rate=PIXEL)


@dataclass
class Particles:
    volume: Array
    images: Array
    ctf: dict[str, Array]
    view: NDArray[np.int64]
    psi: Array
    shift: Array  # (n, 2) px: the particle centre is at -shift


@pytest.fixture(scope="module")
def particles() -> Particles:
    rng = np.random.default_rng(5)
    volume = make_phantom(BOX, PIXEL, shape="globular").astype(np.float64)
    view = rng.integers(0, len(VIEWS), COUNT)
    psi = rng.uniform(0, 360, COUNT)
    shift = rng.uniform(-1.5, 1.5, (COUNT, 2))
    defocus = rng.uniform(10000, 25000, COUNT)
    images = np.empty((COUNT, BOX, BOX))
    for i in range(COUNT):
        image = project(volume, *VIEWS[view[i]], psi[i])
        image = fourier_shift(image, -shift[i, 0], -shift[i, 1])
        ctf = -ctf_image((BOX, BOX), PIXEL, defocus[i], 0.95 * defocus[i], 30.0)
        images[i] = np.fft.ifft2(np.fft.fft2(image) * ctf).real
    images += rng.normal(scale=np.sqrt(images.var() / 0.05), size=images.shape)
    ctf_columns = {
        "defocus_u": defocus,
        "defocus_v": 0.95 * defocus,
        "defocus_angle": np.full(COUNT, 30.0),
        "phase_shift": np.zeros(COUNT),
    }
    return Particles(volume, images / images.std(), ctf_columns, view, psi, shift)


def test_rotation_follows_the_relion_in_plane_convention() -> None:
    image = np.zeros((1, 9, 9))
    image[0, 4, 6] = 1.0  # x = +2, y = 0 from the centre
    turned = rotate(image, [90.0])[0]
    # out(p) = img(A^T p), A = [[0, 1], [-1, 0]] for psi = 90: the point goes to (0, -2)
    assert turned[2, 4] == pytest.approx(1.0) and turned.sum() == pytest.approx(1.0)


def test_classes_recover_the_views(particles: Particles) -> None:
    settings = Settings(BOX, PIXEL, classes=4)
    references, found = classify(particles.images, particles.ctf, settings, iterations=8, seed=3)
    # each view lands mostly in one class, a different one per view
    table = np.zeros((4, 4), dtype=np.int64)
    np.add.at(table, (particles.view, found.classes), 1)
    assert (table.max(axis=1) >= 0.75 * table.sum(axis=1)).all(), table
    assert len(set(table.argmax(axis=1).tolist())) == 4, table
    # within a class the found in-plane angle is the true one up to one offset
    for view in range(4):
        members = (particles.view == view) & (found.classes == table[view].argmax())
        error = np.exp(1j * np.deg2rad(found.psi[members] - particles.psi[members]))
        assert abs(error.mean()) > 0.95
        # the shifts are the true ones up to the class's offset c: s_found - s_true = -A(psi) c
        moved = np.column_stack([found.shift_x, found.shift_y])[members] - particles.shift[members]
        c, s = (f(np.deg2rad(particles.psi[members])) for f in (np.cos, np.sin))
        offset = np.column_stack(
            [c * moved[:, 0] - s * moved[:, 1], s * moved[:, 0] + c * moved[:, 1]]
        )
        spread = np.linalg.norm(offset - np.median(offset, axis=0), axis=1)
        assert np.median(spread) < 0.7, np.median(spread)
    assert references.resolutions.max() < 20.0
    good = class_agreement(references.averages, particles.volume, PIXEL)
    assert np.median(good) >= 0.8, good
    # negative controls: random groups at random angles (no alignment pass), and noise
    random_groups, _ = classify(particles.images, particles.ctf, settings, iterations=0, seed=3)
    smeared = class_agreement(random_groups.averages, particles.volume, PIXEL)
    noise = np.random.default_rng(0).normal(size=(4, BOX, BOX))
    pure_noise = class_agreement(noise, particles.volume, PIXEL)
    assert np.median(smeared) < 0.75 and np.median(pure_noise) < 0.65
    assert np.median(good) - np.median(smeared) > 0.1, (good, smeared)


def particle_set(
    particles: Particles, tmp_path: Path, count: int, ctf: bool = True
) -> SetOfParticles:
    stack = write_stack(tmp_path / "particles.mrcs", particles.images.astype(np.float32), PIXEL)
    columns = {
        "image.path": [str(stack)] * count,
        "image.index": np.arange(1, count + 1),
        "micrograph_uid": np.arange(count) // 50,
    }
    if ctf:
        columns.update({f"ctf.{k}": v[:count] for k, v in particles.ctf.items()})
    return SetOfParticles(
        columns,
        properties={"sampling_rate": PIXEL, "acquisition": ACQUISITION.to_dict(), "inverted": True},
    )


def test_protocol_through_a_project(project: Project, particles: Particles, tmp_path: Path) -> None:
    source = imported(project, "particles", particle_set(particles, tmp_path, COUNT))
    run = project.run(
        "spa.classify_2d",
        particles=source,
        classes=4,
        iterations=6,
        parts=2,
        batch_size=128,
        device="cpu",
    ).wait(120)
    classes = run.out.classes.load()
    assert 1 <= len(classes) <= 4 and classes.properties["sampling_rate"] == PIXEL
    assert int(np.sum(classes["class.size"])) == COUNT
    assert np.sum(classes["class.distribution"]) == pytest.approx(1.0)
    assert np.all(np.asarray(classes["class.resolution"]) < 30.0)
    averages = read_images(classes["image.path"][0], np.asarray(classes["image.index"]))
    assert averages.shape == (len(classes), BOX, BOX)
    assert np.median(class_agreement(averages, particles.volume, PIXEL)) >= 0.75
    out = run.out.particles.load()
    assert len(out) == COUNT and out.properties["inverted"] is True
    assert out.acquisition == ACQUISITION and out.sampling_rate == PIXEL
    assert set(np.unique(out["class_id"]).tolist()) <= set(np.asarray(classes["class_id"]).tolist())
    np.testing.assert_array_equal(out["micrograph_uid"], np.arange(COUNT) // 50)
    np.testing.assert_array_equal(out["image.index"], np.arange(1, COUNT + 1))
    for name in ("transform.psi", "transform.shift_x", "transform.shift_y", "class.score"):
        assert np.isfinite(np.asarray(out[name], dtype=np.float64)).all(), name
    assert np.abs(np.asarray(out["transform.shift_x"])).max() <= 3 * PIXEL  # max_shift 3 px
    # the class of a particle is mostly that of the other particles of its view
    found = np.asarray(out["class_id"])
    purity = sum(np.bincount(found[particles.view == v]).max() for v in range(4)) / COUNT
    assert purity >= 0.7


@pytest.mark.parametrize(
    ("count", "ctf", "params", "message"),
    [
        (0, True, {}, "particles set is empty"),
        (3, True, {"classes": 4}, "4 classes for 3 particles"),
        (20, False, {"classes": 2}, "ctf_correction needs the column ctf.defocus_u"),
    ],
)
def test_protocol_refuses_bad_inputs(
    project: Project,
    particles: Particles,
    tmp_path: Path,
    count: int,
    ctf: bool,
    params: dict[str, int],
    message: str,
) -> None:
    source = imported(project, "particles", particle_set(particles, tmp_path, count, ctf))
    run = project.run(
        "spa.classify_2d", particles=source, iterations=1, parts=1, device="cpu", **params
    ).wait(60, check=False)
    assert run.status == "failed" and message in str(run.error)
