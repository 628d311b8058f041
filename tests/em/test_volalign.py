"""Tests of ``cryolab.em.volalign``: rotation, shift and hand recovered between two maps."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import ndimage

from cryolab.em.fsc import fsc, fsc_to_reference
from cryolab.em.geometry import matrix_angular_distance, rotvec_to_matrix
from cryolab.em.phantom import make_phantom
from cryolab.em.volalign import VolumeAlignment, align_volume, rotation_grid

SIZE = 48
PIXEL = 2.5  # Å: the 77 Å phantom spans 31 of 48 voxels

Array = NDArray[Any]


def turn(volume: Array, rotation: Array, shift: Array) -> Array:
    """``out(r) = volume(Q.T @ (r - t))``: the point ``p`` moves to ``Q @ p + t`` (x, y, z)."""
    n = volume.shape[0]
    matrix = rotation.T[::-1, ::-1]  # (z, y, x) index order
    centre = np.full(3, n // 2, dtype=np.float64)
    offset = centre - matrix @ (centre + shift[::-1])
    out: Array = ndimage.affine_transform(volume, matrix, offset, order=3, mode="constant")
    return out


def mirror(volume: Array) -> Array:
    """``out(x, y, z) = volume(-x, y, z)`` about the centre voxel ``N // 2``."""
    n = volume.shape[0]
    return volume[:, :, (2 * (n // 2) - np.arange(n)) % n]


@pytest.fixture(scope="module")
def phantom() -> Array:
    return make_phantom(SIZE, PIXEL).astype(np.float64)


@pytest.fixture(scope="module")
def pose() -> tuple[Array, Array]:
    rng = np.random.default_rng(7)
    axis = rng.normal(size=3)
    rotation = rotvec_to_matrix(axis / np.linalg.norm(axis) * np.radians(137.0))
    return rotation, np.array([2.6, -1.7, 3.2])


@pytest.fixture(scope="module")
def rotated(phantom: Array, pose: tuple[Array, Array]) -> tuple[Array, VolumeAlignment]:
    moving = turn(phantom, *pose)
    return moving, align_volume(moving, phantom, pixel_size=PIXEL)


def test_turn_moves_a_point_as_documented() -> None:
    """The test's own rotation helper: a blob at ``p`` ends up at ``Q @ p + t``."""
    axis = np.arange(SIZE) - SIZE // 2
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    point = np.array([9.0, 0.0, 0.0])
    blob = np.exp(-((x - point[0]) ** 2 + (y - point[1]) ** 2 + (z - point[2]) ** 2) / 4)
    rotation = rotvec_to_matrix([0.0, 0.0, np.pi / 2])  # +x to +y
    moved = turn(blob, rotation, np.array([0.0, 0.0, 2.0]))
    peak = np.array(np.unravel_index(np.argmax(moved), moved.shape))[::-1] - SIZE // 2
    np.testing.assert_array_equal(peak, [0, 9, 2])


def test_rotation_grid_covers_so3() -> None:
    """Every random rotation lies within one grid step (15 degrees) of the grid."""
    grid = rotation_grid(15.0)
    rng = np.random.default_rng(3)
    samples = rotvec_to_matrix(rng.normal(size=(200, 3)))
    nearest = matrix_angular_distance(samples[:, None], grid[None]).min(axis=1)
    assert 3000 < len(grid) < 6000
    assert nearest.max() < 15.0


def test_rotated_and_shifted_copy_aligns_back(
    phantom: Array, pose: tuple[Array, Array], rotated: tuple[Array, VolumeAlignment]
) -> None:
    moving, result = rotated
    rotation, shift = pose
    assert not result.mirrored
    assert result.volume.dtype == np.float32 and result.volume.shape == phantom.shape
    assert matrix_angular_distance(result.matrix, rotation.T) < 3.0
    np.testing.assert_allclose(result.shift, -rotation.T @ shift, atol=0.5)
    assert result.correlation > 0.99
    # Two cubic-spline resamplings (the test's and the alignment's) damp the highest shells, so
    # the baseline is the round trip with the exact inverse: the alignment must be as good
    # (within 0.02) up to 2/3 Nyquist, where the round trip itself stays above 0.95.
    frequency, values = fsc(result.volume, phantom, PIXEL)
    _, baseline = fsc(turn(moving, rotation.T, -rotation.T @ shift), phantom, PIXEL)
    inner = frequency <= (2 / 3) * frequency[-1]
    assert baseline[inner].min() > 0.95
    assert values[inner].min() > 0.9
    assert np.all(values[inner] > baseline[inner] - 0.02)


def test_mirrored_copy_is_recovered_with_its_hand(
    phantom: Array, pose: tuple[Array, Array], rotated: tuple[Array, VolumeAlignment]
) -> None:
    rotation, _ = pose
    moving = mirror(rotated[0])
    result = align_volume(moving, phantom, pixel_size=PIXEL)
    assert result.mirrored
    # aligned(r) = moving(S R.T r) = turned(R.T r): the same rotation as without the mirror
    assert matrix_angular_distance(result.matrix, rotation.T) < 3.0
    assert result.correlation > 0.99
    wrong_hand = align_volume(moving, phantom, pixel_size=PIXEL, allow_mirror=False)
    assert not wrong_hand.mirrored
    # at low resolution the phantom is only weakly chiral (its three domains nearly fit either
    # way round): the best same-hand fit measured 0.91 against 0.99997 for the right hand
    assert wrong_hand.correlation < 0.95
    assert wrong_hand.correlation < result.correlation - 0.05


def test_noisy_copy_aligns(phantom: Array, pose: tuple[Array, Array]) -> None:
    rotation, shift = pose
    rng = np.random.default_rng(11)
    moving = turn(phantom, rotation, shift)
    noisy = moving + rng.normal(scale=moving.std(), size=moving.shape)  # SNR 1 over the box
    result = align_volume(noisy, phantom, pixel_size=PIXEL)
    assert not result.mirrored
    assert matrix_angular_distance(result.matrix, rotation.T) < 5.0


@pytest.mark.parametrize(
    ("moving", "reference"),
    [((16, 16, 12), (16, 16, 12)), ((16, 16, 16), (20, 20, 20)), ((16, 16), (16, 16))],
)
def test_bad_shapes_are_refused(moving: tuple[int, ...], reference: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=re.escape(f"{moving} and {reference}")):
        align_volume(np.zeros(moving), np.zeros(reference), pixel_size=1.0)


def test_fsc_to_reference_mask_removes_outside_noise(phantom: Array) -> None:
    rng = np.random.default_rng(5)
    outside = np.hypot.reduce(np.indices(phantom.shape) - SIZE // 2) > 0.42 * SIZE
    noisy = phantom + outside * rng.normal(scale=0.5, size=phantom.shape)
    _, plain = fsc_to_reference(noisy, phantom, PIXEL)
    _, masked = fsc_to_reference(
        noisy, phantom, PIXEL, mask_diameter=0.6 * SIZE * PIXEL
    )  # edge ends at 0.36 N
    assert masked[1:].min() > 0.999
    assert plain[1:].min() < 0.9
