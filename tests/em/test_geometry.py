"""Geometry conventions: RELION matrices, round trips through every format, angular distance.

Rotations are compared as matrices (Euler angles are not unique) and shifts in Å; "exact" means
within 1e-6. The elementary rotations below are written independently of the module.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cryolab.em import geometry as geo

TOL = 1e-6
SETTINGS = settings(deadline=None, max_examples=150)

# Angles anywhere (several turns), with the awkward ones drawn often: poles, right angles.
SPECIAL_ANGLES = [0.0, 90.0, -90.0, 180.0, -180.0, 270.0, 360.0, -360.0, 1e-9, -1e-9]
SPECIAL_ANGLES += [1e-5, 180.0 - 1e-9, 180.0 + 1e-7, 45.0]
ANGLE = st.one_of(
    st.floats(-720.0, 720.0, allow_nan=False, allow_infinity=False),
    st.sampled_from(SPECIAL_ANGLES),
)
SHIFT = st.floats(-500.0, 500.0, allow_nan=False, allow_infinity=False)
PIXEL = st.floats(0.2, 12.0, allow_nan=False, allow_infinity=False)


@st.composite
def poses(draw: st.DrawFn) -> tuple[np.ndarray, ...]:
    """``(rot, tilt, psi, shift_x, shift_y, pixel_size)``, arrays of N values."""
    n = draw(st.integers(1, 12))
    euler = draw(arrays(np.float64, (n, 3), elements=ANGLE))
    shift = draw(arrays(np.float64, (n, 2), elements=SHIFT))
    pixel = draw(arrays(np.float64, (n,), elements=PIXEL))
    return euler[:, 0], euler[:, 1], euler[:, 2], shift[:, 0], shift[:, 1], pixel


@st.composite
def rotvecs(draw: st.DrawFn) -> np.ndarray:
    """Rotation vectors of N rotations, angles from 0 to 3 pi (pi and its neighbours often)."""
    n = draw(st.integers(1, 12))
    axes = draw(
        arrays(np.float64, (n, 3), elements=st.floats(-1, 1, allow_nan=False)).filter(
            lambda a: bool(np.all(np.linalg.norm(a, axis=1) > 1e-3))
        )
    )
    angle = st.one_of(
        st.floats(0.0, 3 * np.pi, allow_nan=False),
        st.sampled_from([0.0, 1e-12, 1e-7, np.pi / 2, np.pi - 1e-9, np.pi, np.pi + 1e-9]),
    )
    angles = draw(arrays(np.float64, (n,), elements=angle))
    result: np.ndarray = axes / np.linalg.norm(axes, axis=1, keepdims=True) * angles[:, None]
    return result


def rz(degrees: float) -> np.ndarray:
    c, s = np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def ry(degrees: float) -> np.ndarray:
    c, s = np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rx(degrees: float) -> np.ndarray:
    c, s = np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def same(a: object, b: object, tol: float = TOL) -> None:
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=tol)


def same_pose(pose: geo.Pose, rot, tilt, psi, shift_x, shift_y) -> None:  # type: ignore[no-untyped-def]
    """Same rotation matrices and shifts (Å)."""
    same(geo.euler_to_matrix(pose.rot, pose.tilt, pose.psi), geo.euler_to_matrix(rot, tilt, psi))
    same(pose.shift_x, shift_x)
    same(pose.shift_y, shift_y)


def angle_difference(a: object, b: object) -> np.ndarray:
    """|a - b| modulo 360, in [0, 180]."""
    return np.abs(geo.wrap_angle(np.asarray(a, dtype=float) - np.asarray(b, dtype=float)))


# RELION matrices ---------------------------------------------------------------------------


def test_hand_computed_matrices() -> None:
    same(geo.euler_to_matrix(0, 0, 0), np.eye(3), 1e-15)
    # rot = 90 only: the reference turns by -90 degrees about z into the particle frame
    same(geo.euler_to_matrix(90, 0, 0), [[0, 1, 0], [-1, 0, 0], [0, 0, 1]], 1e-15)
    # psi = 90 only is the same rotation when tilt = 0
    same(geo.euler_to_matrix(0, 0, 90), [[0, 1, 0], [-1, 0, 0], [0, 0, 1]], 1e-15)
    # tilt = 90 only: the reference x axis becomes the viewing (z) axis
    same(geo.euler_to_matrix(0, 90, 0), [[0, 0, -1], [0, 1, 0], [1, 0, 0]], 1e-15)
    same(geo.euler_to_matrix(0, 90, 0) @ [1, 0, 0], [0, 0, 1], 1e-15)
    # tilt = 180 only: a half turn about y
    same(geo.euler_to_matrix(0, 180, 0), np.diag([-1.0, 1.0, -1.0]), 1e-15)


def test_relion_matrix_values_for_a_general_orientation() -> None:
    # the elements written out as in RELION's Euler_angles2matrix, for rot=30, tilt=60, psi=-45
    a, b, g = np.deg2rad([30.0, 60.0, -45.0])
    ca, sa, cb, sb, cg, sg = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(g), np.sin(g)
    expected = [
        [cg * cb * ca - sg * sa, cg * cb * sa + sg * ca, -cg * sb],
        [-sg * cb * ca - cg * sa, -sg * cb * sa + cg * ca, sg * sb],
        [sb * ca, sb * sa, cb],
    ]
    same(geo.euler_to_matrix(30, 60, -45), expected, 1e-15)


@SETTINGS
@given(poses())
def test_matrix_is_zyz_of_elementary_rotations(pose: tuple[np.ndarray, ...]) -> None:
    rot, tilt, psi = pose[:3]
    matrices = geo.euler_to_matrix(rot, tilt, psi)
    for m, r, t, p in zip(matrices, rot, tilt, psi, strict=True):
        same(m, rz(-p) @ ry(-t) @ rz(-r), 1e-12)
        same(m.T, rz(r) @ ry(t) @ rz(p), 1e-12)


@SETTINGS
@given(poses())
def test_matrices_are_proper_rotations(pose: tuple[np.ndarray, ...]) -> None:
    matrices = geo.euler_to_matrix(*pose[:3])
    same(matrices @ np.swapaxes(matrices, 1, 2), np.broadcast_to(np.eye(3), matrices.shape), 1e-12)
    same(np.linalg.det(matrices), np.ones(len(matrices)), 1e-12)


@SETTINGS
@given(poses())
def test_projection_direction_is_relions(pose: tuple[np.ndarray, ...]) -> None:
    rot, tilt, _psi = np.deg2rad(pose[:3])
    matrices = geo.euler_to_matrix(*pose[:3])
    direction = np.swapaxes(matrices, 1, 2) @ [0.0, 0.0, 1.0]  # the beam in reference coordinates
    expected = np.stack(
        [np.sin(tilt) * np.cos(rot), np.sin(tilt) * np.sin(rot), np.cos(tilt)], axis=1
    )  # RELION's Euler_angles2direction
    same(direction, expected, 1e-12)


def test_functions_are_vectorised_and_broadcast() -> None:
    assert geo.euler_to_matrix(10, 20, 30).shape == (3, 3)
    assert geo.euler_to_matrix([10, 20], 5, 0).shape == (2, 3, 3)
    assert geo.euler_to_matrix(np.zeros((4, 5)), 0, 0).shape == (4, 5, 3, 3)
    euler = geo.matrix_to_euler(geo.euler_to_matrix(np.zeros((4, 5)), 10, 0))
    assert euler.rot.shape == euler.tilt.shape == euler.psi.shape == (4, 5)
    pose = geo.to_eman(0, 0, 0, [1.0, 2.0, 3.0], 0, 1.5)
    assert all(np.shape(value) == (3,) for value in pose)
    scalar = geo.from_relion(1, 2, 3, 4, 5)
    assert all(isinstance(value, np.ndarray) and value.shape == () for value in scalar)


@SETTINGS
@given(poses())
def test_matrix_to_euler_round_trip(pose: tuple[np.ndarray, ...]) -> None:
    matrices = geo.euler_to_matrix(*pose[:3])
    euler = geo.matrix_to_euler(matrices)
    same(geo.euler_to_matrix(*euler), matrices)
    assert np.all((euler.tilt >= 0) & (euler.tilt <= 180))
    assert np.all(np.abs(euler.rot) <= 180) and np.all(np.abs(euler.psi) <= 180)


@SETTINGS
@given(
    st.floats(-179.999, 179.999),
    st.floats(1e-3, 180 - 1e-3),
    st.floats(-179.999, 179.999),
)
def test_canonical_angles_come_back_unchanged(rot: float, tilt: float, psi: float) -> None:
    euler = geo.matrix_to_euler(geo.euler_to_matrix(rot, tilt, psi))
    same(euler.tilt, tilt)
    same(angle_difference(euler.rot, rot), 0.0)
    same(angle_difference(euler.psi, psi), 0.0)


@pytest.mark.parametrize(
    ("angles", "expected"),
    [
        ((10, 0, 20), (0, 0, 30)),  # tilt 0: all the rotation about z goes to psi
        ((30, 0, 0), (0, 0, 30)),
        ((0, 0, 30), (0, 0, 30)),
        ((200, 360, 0), (0, 0, -160)),
        ((10, 180, 20), (0, 180, 10)),  # tilt 180: psi - rot
        ((10, -180, 20), (0, 180, 10)),
        ((0, 180, 0), (0, 180, 0)),
    ],
)
def test_gimbal_lock_is_resolved_as_relion_does(
    angles: tuple[float, float, float], expected: tuple[float, float, float]
) -> None:
    euler = geo.matrix_to_euler(geo.euler_to_matrix(*angles))
    same(euler, expected, 1e-9)
    same(geo.euler_to_matrix(*euler), geo.euler_to_matrix(*angles), 1e-12)


@SETTINGS
@given(
    arrays(np.float64, (8,), elements=st.floats(-720, 720)),
    arrays(np.float64, (8,), elements=st.floats(-1e-4, 1e-4)),
    st.sampled_from([0.0, 180.0, -180.0, 360.0]),
    arrays(np.float64, (8,), elements=st.floats(-720, 720)),
)
def test_near_gimbal_lock_round_trips(
    rot: np.ndarray, delta: np.ndarray, pole: float, psi: np.ndarray
) -> None:
    matrices = geo.euler_to_matrix(rot, pole + delta, psi)
    euler = geo.matrix_to_euler(matrices)
    same(geo.euler_to_matrix(*euler), matrices)
    # from a matrix with rounding errors of its own (through a rotation vector) as well
    rebuilt = geo.rotvec_to_matrix(geo.matrix_to_rotvec(matrices))
    same(geo.euler_to_matrix(*geo.matrix_to_euler(rebuilt)), matrices)


@SETTINGS
@given(poses(), arrays(np.float64, (12,), elements=st.floats(-1e-6, 1e-6)))
def test_matrix_to_euler_is_accurate_to_rounding_even_near_the_poles(
    pose: tuple[np.ndarray, ...], delta: np.ndarray
) -> None:
    n = len(pose[0])
    rot, psi = pose[0], pose[2]
    for pole in (0.0, 180.0):
        tilt = pole + delta[:n]
        matrices = geo.euler_to_matrix(rot, tilt, psi)
        same(geo.euler_to_matrix(*geo.matrix_to_euler(matrices)), matrices, 1e-12)
        # matrices with rounding errors of their own (RELION's psi formula loses digits here)
        noisy = geo.rotvec_to_matrix(geo.matrix_to_rotvec(matrices))
        same(geo.euler_to_matrix(*geo.matrix_to_euler(noisy)), noisy, 1e-12)


def test_equal_rotations_give_equal_angles() -> None:
    # RELION's Euler_another_set: (rot + 180, -tilt, psi - 180) is the same rotation
    rot, tilt, psi = (
        np.array([10.0, -75.0, 123.0]),
        np.array([20.0, 100.0, 5.0]),
        np.array([3, 0, 9]),
    )
    first = geo.matrix_to_euler(geo.euler_to_matrix(rot, tilt, psi))
    second = geo.matrix_to_euler(geo.euler_to_matrix(rot + 180, -tilt, psi - 180))
    same(first, second, 1e-9)
    assert np.all(first.tilt >= 0)
    gimbal = geo.matrix_to_euler(geo.euler_to_matrix([10.0, 30.0, -330.0], 0, [20.0, 0.0, 0.0]))
    assert np.array_equal(gimbal.rot, [0.0, 0.0, 0.0])  # no -0.0
    same(gimbal.psi, [30.0, 30.0, 30.0], 1e-9)


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="3, 3"):
        geo.matrix_to_euler(np.eye(4))
    with pytest.raises(ValueError, match="4, 4"):
        geo.from_scipion_matrix(np.eye(3), 1.0)
    with pytest.raises(ValueError, match="rotation vectors"):
        geo.rotvec_to_matrix([1.0, 2.0])
    with pytest.raises(ValueError, match="shifts"):
        geo.from_cryosparc(np.zeros((2, 3)), np.zeros((2, 3)), 1.0)
    with pytest.raises(ValueError, match="last axis"):
        geo.angular_distance(np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="positive"):
        geo.to_relion_pre31(0, 0, 0, 1, 1, 0.0)
    with pytest.raises(ValueError, match="positive"):
        geo.from_cryosparc(np.zeros(3), np.zeros(2), [-1.0])


@SETTINGS
@given(arrays(np.float64, (10,), elements=st.floats(-1e4, 1e4)))
def test_wrap_angle(angles: np.ndarray) -> None:
    wrapped = geo.wrap_angle(angles)
    assert np.all((wrapped >= -180) & (wrapped < 180))
    same(np.cos(np.deg2rad(wrapped)), np.cos(np.deg2rad(angles)), 1e-9)
    same(np.sin(np.deg2rad(wrapped)), np.sin(np.deg2rad(angles)), 1e-9)
    assert geo.wrap_angle(180.0) == -180.0
    assert geo.wrap_angle(-180.0) == -180.0


# RELION origins ----------------------------------------------------------------------------


@SETTINGS
@given(poses())
def test_relion31_is_the_identity(pose: tuple[np.ndarray, ...]) -> None:
    relion = geo.to_relion(*pose[:5])
    for value, expected in zip(relion, pose[:5], strict=True):
        assert np.array_equal(value, expected)
    back = geo.from_relion(*relion)
    for value, expected in zip(back, pose[:5], strict=True):
        assert np.array_equal(value, expected)


def test_relion_pre31_origins_are_pixels_with_the_same_sign() -> None:
    relion = geo.to_relion_pre31(10, 20, 30, 3.0, -1.5, 1.5)
    same((relion.origin_x, relion.origin_y), (2.0, -1.0), 1e-15)
    same(relion[:3], (10, 20, 30), 0)
    pose = geo.from_relion_pre31(10, 20, 30, 2.0, -1.0, 1.5)
    same((pose.shift_x, pose.shift_y), (3.0, -1.5), 1e-15)
    same(geo.relion_pre31_pixel_size(1.035, 10000), 1.035, 1e-15)
    same(geo.relion_pre31_pixel_size([5.0, 14.0], [50000, 10000]), [1.0, 14.0], 1e-15)


@SETTINGS
@given(poses())
def test_relion_pre31_round_trips(pose: tuple[np.ndarray, ...]) -> None:
    rot, tilt, psi, shift_x, shift_y, pixel = pose
    relion = geo.to_relion_pre31(rot, tilt, psi, shift_x, shift_y, pixel)
    same(relion.origin_x * pixel, shift_x)
    same_pose(geo.from_relion_pre31(*relion, pixel), rot, tilt, psi, shift_x, shift_y)


# cryoSPARC ---------------------------------------------------------------------------------


def test_rotation_vectors_hand_computed() -> None:
    same(geo.rotvec_to_matrix([0.0, 0.0, np.pi / 2]), rz(90), 1e-15)
    same(geo.rotvec_to_matrix([np.pi, 0.0, 0.0]), np.diag([1.0, -1.0, -1.0]), 1e-15)
    same(geo.rotvec_to_matrix([0.0, 0.0, 0.0]), np.eye(3), 0)
    same(geo.rotvec_to_matrix([0.0, 0.3, 0.0]), ry(np.rad2deg(0.3)), 1e-15)
    same(geo.rotvec_to_matrix([0.0, 0.0, 2 * np.pi]), np.eye(3), 1e-15)
    same(geo.matrix_to_rotvec(rx(-40)), [np.deg2rad(-40), 0, 0], 1e-15)
    same(np.abs(geo.matrix_to_rotvec(np.diag([-1.0, -1.0, 1.0]))), [0, 0, np.pi], 1e-15)


@SETTINGS
@given(rotvecs())
def test_rotation_vector_round_trip(rotvec: np.ndarray) -> None:
    matrices = geo.rotvec_to_matrix(rotvec)
    same(matrices @ np.swapaxes(matrices, 1, 2), np.broadcast_to(np.eye(3), matrices.shape), 1e-12)
    same(np.linalg.det(matrices), np.ones(len(matrices)), 1e-12)
    back = geo.matrix_to_rotvec(matrices)
    assert np.all(np.linalg.norm(back, axis=1) <= np.pi + 1e-12)
    same(geo.rotvec_to_matrix(back), matrices, 1e-9)
    # the axis is fixed and the angle is the vector's norm (modulo 2 pi)
    angle = np.linalg.norm(rotvec, axis=1)
    moving = angle > 1e-6
    axes = rotvec[moving] / angle[moving, None]
    same(np.einsum("nij,nj->ni", matrices[moving], axes), axes, 1e-12)
    cos = (np.trace(matrices, axis1=1, axis2=2) - 1) / 2
    same(cos, np.cos(angle), 1e-12)


def test_cryosparc_pose_is_the_rotation_vector_of_the_transposed_relion_matrix() -> None:
    # pyem (csparc2star: rot2euler(expmap(pose)) with expmap returning R.T) and cryoDRGN
    # (parse_pose_csparc: expmap(pose), then transposed) agree on A = R(pose).T
    cs = geo.to_cryosparc(90, 0, 0, 3.0, -1.5, 1.5)
    same(cs.pose, [0.0, 0.0, np.pi / 2], 1e-15)
    same(cs.shift, [2.0, -1.0], 1e-15)  # pixels, same sign as rlnOriginX
    back = geo.from_cryosparc([0.0, 0.0, np.pi / 2], [2.0, -1.0], 1.5)
    same_pose(back, 90, 0, 0, 3.0, -1.5)
    same(geo.rotvec_to_matrix(cs.pose).T, geo.euler_to_matrix(90, 0, 0), 1e-15)
    tilted = geo.to_cryosparc(0, 30, 0, 0, 0, 1.0)
    same(tilted.pose, [0.0, np.deg2rad(30), 0.0], 1e-15)  # A = Ry(-30), A.T = Ry(30)


@SETTINGS
@given(poses())
def test_cryosparc_round_trip(pose: tuple[np.ndarray, ...]) -> None:
    rot, tilt, psi, shift_x, shift_y, pixel = pose
    cs = geo.to_cryosparc(rot, tilt, psi, shift_x, shift_y, pixel)
    assert cs.pose.shape == (len(rot), 3) and cs.shift.shape == (len(rot), 2)
    same(geo.rotvec_to_matrix(cs.pose), np.swapaxes(geo.euler_to_matrix(rot, tilt, psi), 1, 2))
    same_pose(geo.from_cryosparc(cs.pose, cs.shift, pixel), rot, tilt, psi, shift_x, shift_y)


@SETTINGS
@given(rotvecs(), st.data())
def test_cryosparc_reverse_round_trip(rotvec: np.ndarray, data: st.DataObject) -> None:
    shift = data.draw(arrays(np.float64, (len(rotvec), 2), elements=SHIFT))
    pixel = data.draw(PIXEL)
    pose = geo.from_cryosparc(rotvec, shift, pixel)
    same(
        geo.euler_to_matrix(pose.rot, pose.tilt, pose.psi),
        np.swapaxes(geo.rotvec_to_matrix(rotvec), 1, 2),
    )
    cs = geo.to_cryosparc(*pose, pixel)
    same(geo.rotvec_to_matrix(cs.pose), geo.rotvec_to_matrix(rotvec))
    same(cs.shift, shift, 1e-9)


@SETTINGS
@given(
    arrays(np.float64, (6,), elements=st.floats(-10, 10)),
    arrays(np.float64, (6, 2), elements=SHIFT),
    PIXEL,
)
def test_cryosparc_2d(pose: np.ndarray, shift: np.ndarray, pixel: float) -> None:
    internal = geo.from_cryosparc_2d(pose, shift, pixel)
    same(internal.psi, np.rad2deg(pose), 1e-12)
    assert np.all(internal.rot == 0) and np.all(internal.tilt == 0)
    # the in-plane pose is the 3-D pose about z
    as_3d = geo.from_cryosparc(np.stack([0 * pose, 0 * pose, pose], axis=1), shift, pixel)
    same_pose(internal, *as_3d)
    back = geo.to_cryosparc_2d(internal.psi, internal.shift_x, internal.shift_y, pixel)
    same(np.cos(back.pose), np.cos(pose), 1e-12)
    same(np.sin(back.pose), np.sin(pose), 1e-12)
    assert np.all((back.pose >= -np.pi) & (back.pose < np.pi))
    same(back.shift, shift, 1e-9)


# EMAN2 -------------------------------------------------------------------------------------


def test_eman_hand_computed() -> None:
    eman = geo.to_eman(0, 0, 0, 3.0, -1.5, 1.5)
    same(eman, (90, 0, 270, -2.0, 1.0), 1e-12)  # az = rot + 90, phi = psi - 90, t = -origin
    same(geo.eman_matrix(90, 0, 270), np.eye(3), 1e-15)
    same(geo.eman_matrix(0, 90, 0), rx(-90), 1e-15)  # alt turns about x (ZXZ)
    same_pose(geo.from_eman(90, 0, 270, -2.0, 1.0, 1.5), 0, 0, 0, 3.0, -1.5)
    same(geo.from_eman(100, 30, 10, 0, 0, 1.0)[:3], (10, 30, 100), 1e-12)


@SETTINGS
@given(poses())
def test_eman_matrix_is_passive_zxz(pose: tuple[np.ndarray, ...]) -> None:
    az, alt, phi = pose[:3]
    for m, a, b, c in zip(geo.eman_matrix(az, alt, phi), az, alt, phi, strict=True):
        same(m, rz(-c) @ rx(-b) @ rz(-a), 1e-12)


@SETTINGS
@given(poses())
def test_eman_round_trip(pose: tuple[np.ndarray, ...]) -> None:
    rot, tilt, psi, shift_x, shift_y, pixel = pose
    eman = geo.to_eman(rot, tilt, psi, shift_x, shift_y, pixel)
    assert np.all((eman.az >= 0) & (eman.az <= 360) & (eman.phi >= 0) & (eman.phi <= 360))
    same(geo.eman_matrix(eman.az, eman.alt, eman.phi), geo.euler_to_matrix(rot, tilt, psi))
    same(eman.tx, -shift_x / pixel)
    same_pose(geo.from_eman(*eman, pixel), rot, tilt, psi, shift_x, shift_y)
    # and from EMAN2's side
    back = geo.to_eman(*geo.from_eman(*eman, pixel), pixel)
    same(geo.eman_matrix(*back[:3]), geo.eman_matrix(*eman[:3]))
    same(back[3:], eman[3:])


# Scipion -----------------------------------------------------------------------------------


def scipion_relion_plugin_matrix(rot, tilt, psi, shift_x, shift_y, pixel):  # type: ignore[no-untyped-def]
    """What scipion-em-relion's reader does for ALIGN_PROJ, written out: the 4x4 matrix of
    the Euler angles (negated, static zyz = RELION's A) with translation -origin (px), inverted."""
    m = np.eye(4)
    m[:3, :3] = rz(-psi) @ ry(-tilt) @ rz(-rot)
    m[:3, 3] = -np.array([shift_x, shift_y, 0.0]) / pixel
    return np.linalg.inv(m)


def test_scipion_hand_computed() -> None:
    m = geo.to_scipion_matrix(90, 0, 0, 0, 0, 1.0)
    same(m[:3, :3], rz(90), 1e-15)  # A.T
    same(m[3], [0, 0, 0, 1], 0)
    shift_only = geo.to_scipion_matrix(0, 0, 0, 3.0, -1.5, 1.5)
    same(shift_only[:3, 3], [2.0, -1.0, 0.0], 1e-15)  # pixels
    rotated = geo.to_scipion_matrix(90, 0, 0, 3.0, 0.0, 1.5)
    same(rotated[:3, 3], [0.0, 2.0, 0.0], 1e-15)  # A.T @ s
    same_pose(geo.from_scipion_matrix(rotated, 1.5), 90, 0, 0, 3.0, 0.0)


@SETTINGS
@given(poses())
def test_scipion_matrix_is_what_the_relion_plugin_stores(pose: tuple[np.ndarray, ...]) -> None:
    matrices = geo.to_scipion_matrix(*pose)
    for m, *values in zip(matrices, *pose, strict=True):
        same(m, scipion_relion_plugin_matrix(*values), 1e-9)


@SETTINGS
@given(poses())
def test_scipion_round_trip(pose: tuple[np.ndarray, ...]) -> None:
    rot, tilt, psi, shift_x, shift_y, pixel = pose
    matrices = geo.to_scipion_matrix(rot, tilt, psi, shift_x, shift_y, pixel)
    same_pose(geo.from_scipion_matrix(matrices, pixel), rot, tilt, psi, shift_x, shift_y)
    back = geo.to_scipion_matrix(*geo.from_scipion_matrix(matrices, pixel), pixel)
    same(back, matrices)


@SETTINGS
@given(
    arrays(np.float64, (6,), elements=ANGLE),
    arrays(np.float64, (6, 2), elements=SHIFT),
    PIXEL,
)
def test_scipion_2d(psi: np.ndarray, shift: np.ndarray, pixel: float) -> None:
    matrices = geo.to_scipion_matrix_2d(psi, shift[:, 0], shift[:, 1], pixel)
    for m, p in zip(matrices, psi, strict=True):
        same(m[:3, :3], rz(p), 1e-12)
    same(matrices[:, :2, 3], shift / pixel)  # not rotated, unlike projection matrices
    same(matrices[:, 2:, 3], [[0.0, 1.0]] * 6, 0)
    back = geo.from_scipion_matrix_2d(matrices, pixel)
    same_pose(back, 0, 0, psi, shift[:, 0], shift[:, 1])
    # the same rotation as a projection matrix with rot = tilt = 0, but a rotated shift
    projection = geo.to_scipion_matrix(0, 0, psi, shift[:, 0], shift[:, 1], pixel)
    same(projection[:, :3, :3], matrices[:, :3, :3])
    same(projection[:, :3, 3], np.einsum("nij,nj->ni", matrices[:, :3, :3], matrices[:, :3, 3]))


# every format together ---------------------------------------------------------------------


@SETTINGS
@given(poses())
def test_every_format_has_the_relion_matrix(pose: tuple[np.ndarray, ...]) -> None:
    rot, tilt, psi, shift_x, shift_y, pixel = pose
    relion = geo.euler_to_matrix(rot, tilt, psi)
    cs = geo.to_cryosparc(*pose)
    same(np.swapaxes(geo.rotvec_to_matrix(cs.pose), 1, 2), relion)
    eman = geo.to_eman(*pose)
    same(geo.eman_matrix(eman.az, eman.alt, eman.phi), relion)
    scipion = geo.to_scipion_matrix(*pose)
    same(np.swapaxes(scipion[:, :3, :3], 1, 2), relion)
    # and each format's shift puts the same reference point at the same image position:
    # a point r (pixels) lands at A @ r - origin relative to the image centre
    point = np.array([7.0, -3.0, 11.0])
    expected = (relion @ point)[:, :2] - np.stack([shift_x, shift_y], axis=1) / pixel[:, None]
    same(np.einsum("nji,j->ni", geo.rotvec_to_matrix(cs.pose), point)[:, :2] - cs.shift, expected)
    eman_t = np.stack([eman.tx, eman.ty], axis=1)
    same((geo.eman_matrix(eman.az, eman.alt, eman.phi) @ point)[:, :2] + eman_t, expected)
    inverse = np.linalg.inv(scipion)  # Scipion stores image -> reference
    same((inverse[:, :3, :3] @ point + inverse[:, :3, 3])[:, :2], expected, 1e-5)


@SETTINGS
@given(poses())
def test_a_pose_survives_every_format_in_turn(pose: tuple[np.ndarray, ...]) -> None:
    rot, tilt, psi, shift_x, shift_y, pixel = pose
    current = geo.from_relion(*geo.to_relion(rot, tilt, psi, shift_x, shift_y))
    current = geo.from_relion_pre31(*geo.to_relion_pre31(*current, pixel), pixel)
    current = geo.from_cryosparc(*geo.to_cryosparc(*current, pixel), pixel)
    current = geo.from_eman(*geo.to_eman(*current, pixel), pixel)
    current = geo.from_scipion_matrix(geo.to_scipion_matrix(*current, pixel), pixel)
    same_pose(current, rot, tilt, psi, shift_x, shift_y)


# angular distance --------------------------------------------------------------------------


def euler_triples(pose: tuple[np.ndarray, ...]) -> np.ndarray:
    return np.stack(pose[:3], axis=1)


@SETTINGS
@given(poses())
def test_distance_is_zero_for_the_same_orientation(pose: tuple[np.ndarray, ...]) -> None:
    rot, tilt, psi = pose[:3]
    same(geo.angular_distance(euler_triples(pose), euler_triples(pose)), 0.0, 1e-6)
    other = np.stack([rot + 180, -tilt, psi - 180], axis=1)  # RELION's Euler_another_set
    same(geo.angular_distance(euler_triples(pose), other), 0.0, 1e-6)
    canonical = geo.matrix_to_euler(geo.euler_to_matrix(rot, tilt, psi))
    same(geo.angular_distance(canonical, euler_triples(pose)), 0.0, 1e-6)


@SETTINGS
@given(poses(), poses())
def test_distance_is_symmetric_and_bounded(first: tuple[np.ndarray, ...], second) -> None:  # type: ignore[no-untyped-def]
    n = min(len(first[0]), len(second[0]))
    a, b = euler_triples(first)[:n], euler_triples(second)[:n]
    forward = geo.angular_distance(a, b)
    same(forward, geo.angular_distance(b, a), 1e-9)
    assert np.all((forward >= 0) & (forward <= 180))


@SETTINGS
@given(poses(), poses(), poses())
def test_distance_obeys_the_triangle_inequality(a, b, c) -> None:  # type: ignore[no-untyped-def]
    n = min(len(a[0]), len(b[0]), len(c[0]))
    a, b, c = euler_triples(a)[:n], euler_triples(b)[:n], euler_triples(c)[:n]
    ab, bc, ac = (geo.angular_distance(x, y) for x, y in ((a, b), (b, c), (a, c)))
    assert np.all(ac <= ab + bc + 1e-6)


@SETTINGS
@given(poses(), rotvecs())
def test_distance_is_the_angle_of_the_rotation_between(
    pose: tuple[np.ndarray, ...], rotvec: np.ndarray
) -> None:
    n = min(len(pose[0]), len(rotvec))
    start = geo.euler_to_matrix(*(value[:n] for value in pose[:3]))
    turn = geo.rotvec_to_matrix(rotvec[:n])
    angle = np.rad2deg(np.linalg.norm(rotvec[:n], axis=1))
    expected = np.abs(geo.wrap_angle(angle))  # a turn by more than 180 is a shorter one back
    # turning the particle frame, or the reference, by the same rotation
    same(geo.matrix_angular_distance(start, turn @ start), expected, 1e-6)
    same(geo.matrix_angular_distance(start, start @ turn), expected, 1e-6)
    moved = geo.matrix_to_euler(turn @ start)
    same(geo.angular_distance(euler_triples(pose)[:n], moved), expected, 1e-6)


def test_distance_hand_computed() -> None:
    same(geo.angular_distance([0, 0, 0], [30, 0, 0]), 30.0, 1e-9)
    same(geo.angular_distance([0, 0, 0], [0, 0, -30]), 30.0, 1e-9)
    same(geo.angular_distance([0, 0, 0], [0, 75, 0]), 75.0, 1e-9)
    same(geo.angular_distance([0, 0, 0], [270, 0, 0]), 90.0, 1e-9)
    same(geo.angular_distance([0, 0, 0], [180, 0, 0]), 180.0, 1e-9)
    same(geo.angular_distance([0, 0, 0], [0, 180, 0]), 180.0, 1e-9)
    same(geo.angular_distance([0, 0, 0], [0, 1e-7, 0]), 1e-7, 1e-15)  # accurate near 0
    same(geo.angular_distance([0, 0, 0], [0, 180 - 1e-7, 0]), 180 - 1e-7, 1e-9)  # and 180
    # one orientation against many; Euler and Pose tuples are accepted
    many = np.array([[0, 0, 10], [0, 0, 20], [0, 90, 0]])
    same(geo.angular_distance([0, 0, 0], many), [10, 20, 90], 1e-9)
    same(geo.angular_distance(geo.from_relion(0, 0, 0, 1, 1), geo.Euler(*many.T)), [10, 20, 90])


# real files --------------------------------------------------------------------------------

STAR_FILES = [
    "cryodrgn/relion31.star",
    "cryodrgn/relion31.6opticsgroups.star",
    "cryodrgn/FinalRefinement-OriginalParticles-PfCRT.star",
    "cryodrgn/sta_testing_bin8.star",
]


def read_star(path: Path) -> dict:  # type: ignore[type-arg]
    starfile = pytest.importorskip("starfile")
    return dict(starfile.read(path, always_dict=True))


@pytest.mark.parametrize("name", STAR_FILES)
def test_real_relion_angles_come_back_from_their_matrices(
    real: Callable[[str], Path], name: str
) -> None:
    particles = list(read_star(real(name)).values())[-1]
    rot, tilt, psi = (
        particles[k].to_numpy(float) for k in ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")
    )
    matrices = geo.euler_to_matrix(rot, tilt, psi)
    same(np.linalg.det(matrices), np.ones(len(rot)), 1e-12)
    euler = geo.matrix_to_euler(matrices)
    # RELION writes canonical angles (tilt in [0, 180], rot and psi in [-180, 180])
    same(euler.tilt, tilt, 1e-9)
    same(angle_difference(euler.rot, rot), 0.0, 1e-9)
    same(angle_difference(euler.psi, psi), 0.0, 1e-9)


def test_real_relion31_star_through_every_format(real: Callable[[str], Path]) -> None:
    blocks = read_star(real("cryodrgn/relion31.star"))
    particles, optics = blocks["particles"], blocks["optics"]
    pixel = optics.set_index("rlnOpticsGroup").loc[particles["rlnOpticsGroup"], "rlnImagePixelSize"]
    pixel = pixel.to_numpy(float)
    columns = ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi", "rlnOriginXAngst", "rlnOriginYAngst")
    values = [particles[c].to_numpy(float) for c in columns]
    pose = geo.from_relion(*values)
    assert np.array_equal(pose.shift_x, values[3])
    relion = geo.to_relion_pre31(*pose, pixel)
    same(relion.origin_x, values[3] / 2.806, 1e-12)
    same_pose(geo.from_relion_pre31(*relion, pixel), *values)
    same_pose(geo.from_cryosparc(*geo.to_cryosparc(*pose, pixel), pixel), *values)
    same_pose(geo.from_eman(*geo.to_eman(*pose, pixel), pixel), *values)
    same_pose(geo.from_scipion_matrix(geo.to_scipion_matrix(*pose, pixel), pixel), *values)


def test_real_optics_groups_with_their_own_pixel_sizes(real: Callable[[str], Path]) -> None:
    blocks = read_star(real("cryodrgn/relion31.6opticsgroups.star"))
    particles, optics = blocks["particles"], blocks["optics"]
    sizes = optics.set_index("rlnOpticsGroup")["rlnImagePixelSize"]
    pixel = sizes.loc[particles["rlnOpticsGroup"]].to_numpy(float)
    assert len(np.unique(pixel)) > 1  # the test needs per-particle pixel sizes
    columns = ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi", "rlnOriginXAngst", "rlnOriginYAngst")
    values = [particles[c].to_numpy(float) for c in columns]
    cs = geo.to_cryosparc(*values, pixel)
    same(cs.shift[:, 0], values[3] / pixel, 1e-12)
    same_pose(geo.from_cryosparc(cs.pose, cs.shift, pixel), *values)
    scipion = geo.to_scipion_matrix(*values, pixel)
    same_pose(geo.from_scipion_matrix(scipion, pixel), *values)
    eman = geo.to_eman(*values, pixel)
    same_pose(geo.from_eman(*eman, pixel), *values)


def test_real_pre31_star_origins_in_pixels(real: Callable[[str], Path]) -> None:
    particles = read_star(real("cryodrgn/FinalRefinement-OriginalParticles-PfCRT.star"))["images"]
    pixel = geo.relion_pre31_pixel_size(
        particles["rlnDetectorPixelSize"].to_numpy(float),
        particles["rlnMagnification"].to_numpy(float),
    )
    same(pixel, 1.035, 1e-12)
    columns = ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi", "rlnOriginX", "rlnOriginY")
    rot, tilt, psi, origin_x, origin_y = (particles[c].to_numpy(float) for c in columns)
    pose = geo.from_relion_pre31(rot, tilt, psi, origin_x, origin_y, pixel)
    same(pose.shift_x, origin_x * 1.035, 1e-12)
    same(pose.shift_y, origin_y * 1.035, 1e-12)
    back = geo.to_relion_pre31(*pose, pixel)
    same((back.origin_x, back.origin_y), (origin_x, origin_y), 1e-12)


def test_real_cryosparc_2d_alignments(real: Callable[[str], Path]) -> None:
    data = np.load(real("cryodrgn/cryosparc_J2_particles_exported.cs"))
    names = data.dtype.names
    assert "alignments2D/pose" in names and "alignments3D/pose" not in names  # 2-D only
    pose = data["alignments2D/pose"].astype(float)
    shift = data["alignments2D/shift"].astype(float)
    pixel = data["alignments2D/psize_A"].astype(float)
    assert pose.shape == (len(data),) and shift.shape == (len(data), 2)
    internal = geo.from_cryosparc_2d(pose, shift, pixel)
    same(internal.psi, np.rad2deg(pose), 1e-12)
    same(internal.shift_x, shift[:, 0] * pixel, 1e-12)
    # the same orientations as 3-D poses about z
    as_3d = geo.from_cryosparc(np.stack([0 * pose, 0 * pose, pose], axis=1), shift, pixel)
    same_pose(internal, *as_3d)
    back = geo.to_cryosparc_2d(internal.psi, internal.shift_x, internal.shift_y, pixel)
    same(np.mod(back.pose, 2 * np.pi), pose, 1e-9)  # cryoSPARC writes [0, 2 pi)
    same(back.shift, shift, 1e-9)
    # and through every other format
    for values in (internal, as_3d):
        same_pose(geo.from_eman(*geo.to_eman(*values, pixel), pixel), *internal)
        same_pose(geo.from_scipion_matrix(geo.to_scipion_matrix(*values, pixel), pixel), *internal)
