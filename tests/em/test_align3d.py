"""Projection matching (:mod:`cryolab.em.align3d`, :mod:`cryolab.em.projector`) on particles
projected from the phantom in real space (:func:`cryolab.em.simulate.project`), so the Fourier
projector is checked against an independent projection."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from cryolab.em.align3d import global_search, local_rotations, local_search, shift_grid
from cryolab.em.geometry import euler_to_matrix, matrix_angular_distance
from cryolab.em.phantom import make_phantom
from cryolab.em.projector import FourierPoints, Projector, ctf_values, image_coefficients
from cryolab.em.simulate import project
from cryolab.em.volalign import rotation_grid

from .conftest import projected_particles

BOX = 32
PIXEL = 4.0


@pytest.fixture(scope="module")
def volume() -> NDArray[np.float32]:
    return make_phantom(BOX, PIXEL, seed=0)


def test_fourier_slices_match_real_space_projections(volume: NDArray[np.float32]) -> None:
    points = FourierPoints.make(BOX, BOX / 2)
    projector = Projector(volume, device="cpu")
    for angles in ((10.0, 40.0, 70.0), (200.0, 120.0, 300.0)):
        expected = image_coefficients(project(volume, *angles)[None], points)[0]
        found = projector.slices(euler_to_matrix(*angles)[None], points)[0]
        low = np.hypot(points.kx, points.ky) <= BOX / 4
        error = np.linalg.norm(found[low] - expected[low]) / np.linalg.norm(expected[low])
        assert error < 0.05, f"slice differs from the projection by {error:.3f}"


def test_global_then_local_search_finds_the_poses(volume: NDArray[np.float32]) -> None:
    images, truth, shifts, defocus = projected_particles(volume, 60, PIXEL, snr=0.5, seed=1)
    points = FourierPoints.make(BOX, BOX * PIXEL / 12.0)
    projector = Projector(volume, device="cpu")
    coefficients = image_coefficients(images, points)
    ctf = ctf_values(points, PIXEL, defocus, defocus, 0.0)
    grid = rotation_grid(15.0)
    candidates = shift_grid(3.0, 1.0)
    best, shift, _ = global_search(
        coefficients, ctf, projector.slices(grid, points), points, candidates
    )
    coarse = matrix_angular_distance(grid[best[:, 0]], truth)
    assert np.median(coarse) < 12, f"global search median error {np.median(coarse):.1f} deg"
    matrices, centres = grid[best[:, 0]], candidates[shift[:, 0]]
    for step in (7.5, 3.75, 1.9):
        matrices, centres, _ = local_search(
            coefficients,
            ctf,
            projector,
            points,
            matrices,
            centres,
            local_rotations(step),
            shift_grid(1.0, 0.5),
        )
    fine = matrix_angular_distance(matrices, truth)
    assert np.median(fine) < 4, f"local search median error {np.median(fine):.1f} deg"
    assert np.median(np.hypot(*(centres - shifts).T)) < 0.6


def test_wrong_contrast_is_found_by_its_score(volume: NDArray[np.float32]) -> None:
    images, truth, _, defocus = projected_particles(volume, 20, PIXEL, snr=10.0, seed=2)
    points = FourierPoints.make(BOX, 8)
    projector = Projector(volume, device="cpu")
    coefficients = image_coefficients(images, points)
    right = ctf_values(points, PIXEL, defocus, defocus, 0.0, inverted=True)
    slices = projector.slices(truth, points)
    score = np.einsum("nk,nk,nk->n", np.conj(coefficients), right, slices).real
    assert (score > 0).all(), "inverted particles correlate positively with +sin(chi) references"
