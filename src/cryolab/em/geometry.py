"""Orientations and shifts: the internal convention and exact conversions to other programs.

The internal convention is RELION 3.1's (``docs/conventions.md`` writes it down in full):

- ``rot, tilt, psi`` are ZYZ Euler angles in degrees and :func:`euler_to_matrix` gives the
  matrix ``A`` of RELION's ``Euler_angles2matrix``, ``A = Rz(-psi) @ Ry(-tilt) @ Rz(-rot)``
  (``Rz``, ``Ry``: right-handed rotations of vectors). ``A`` maps a point ``r`` of the
  reference (Å from the map centre) to the particle's frame, ``p = A @ r``; the image is the
  projection of ``p`` along z.
- ``shift_x, shift_y`` are RELION's ``rlnOriginXAngst/YAngst`` in Å: the reference point ``r``
  appears in the image at pixel ``N // 2 + ((A @ r)[:2] - shift) / pixel_size`` (rotate and
  project first, then shift), so moving the image by ``+shift / pixel_size`` pixels centres
  the particle.

Every function is vectorised: angles, shifts and pixel sizes broadcast like numpy arrays (N
values in, N values out; scalars give 0-d arrays), matrices are stacks of shape ``(..., 3, 3)``
or ``(..., 4, 4)``.

Conversions (sources in ``docs/conventions.md``):

- RELION 3.1: the identity; RELION before 3.1: origins in pixels, same sign.
- cryoSPARC ``alignments3D/pose`` is a rotation vector (axis times angle, radians) whose matrix
  is ``A.T``; ``alignments3D/shift`` is the same shift in pixels (same sign);
  ``alignments2D/pose`` is ``psi`` in radians.
- EMAN2 ``xform.projection`` "eman" angles ``az = rot + 90, alt = tilt, phi = psi - 90`` (ZXZ)
  and post-rotation translation ``tx, ty = -shift / pixel_size``.
- Scipion ``Transform`` matrices (projection alignment) are ``[[A.T, A.T @ s], [0, 1]]`` with
  ``s = (shift_x, shift_y, 0) / pixel_size``; 2-D alignment matrices are
  ``[[Rz(psi), s], [0, 1]]``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

GIMBAL_EPSILON = 1e-12
"""Below this value of ``sin(tilt)`` :func:`matrix_to_euler` treats a matrix as gimbal locked.

RELION uses ``16 * FLT_EPSILON`` (about 1.9e-6, a tilt within 1.1e-4 degrees of a pole); in
float64 the part of the rotation dropped by the gimbal-lock rule is at most this value."""


class Euler(NamedTuple):
    """ZYZ Euler angles in degrees (RELION ``rlnAngleRot``, ``rlnAngleTilt``, ``rlnAnglePsi``)."""

    rot: FloatArray
    tilt: FloatArray
    psi: FloatArray


class Pose(NamedTuple):
    """An orientation and shift in the internal convention (degrees and Å)."""

    rot: FloatArray
    tilt: FloatArray
    psi: FloatArray
    shift_x: FloatArray
    shift_y: FloatArray


class RelionPose(NamedTuple):
    """RELION angles (degrees) and origins (Å from 3.1 on, pixels before)."""

    rot: FloatArray
    tilt: FloatArray
    psi: FloatArray
    origin_x: FloatArray
    origin_y: FloatArray


class CryosparcPose(NamedTuple):
    """cryoSPARC ``alignments3D/pose`` (radians, ``(..., 3)``; ``(...)`` for 2-D alignments)
    and ``alignments3D/shift`` (pixels, ``(..., 2)``)."""

    pose: FloatArray
    shift: FloatArray


class EmanPose(NamedTuple):
    """EMAN2 ``xform.projection`` as "eman" Euler angles (degrees) and translation (pixels)."""

    az: FloatArray
    alt: FloatArray
    phi: FloatArray
    tx: FloatArray
    ty: FloatArray


def _floats(*values: ArrayLike) -> list[FloatArray]:
    """The values as float64 arrays broadcast to one shape (new, writable arrays)."""
    arrays = [np.asarray(value, dtype=np.float64) for value in values]
    return [np.array(array) for array in np.broadcast_arrays(*arrays)]


def _pixel_size(pixel_size: ArrayLike) -> FloatArray:
    """The pixel size as a float64 array, checked to be positive."""
    size = np.asarray(pixel_size, dtype=np.float64)
    if not np.all(size > 0):
        raise ValueError(f"pixel sizes must be positive (got {pixel_size!r})")
    return size


def _matrices(matrix: ArrayLike, size: int) -> FloatArray:
    """The matrix stack as float64, checked to be ``(..., size, size)``."""
    array = np.asarray(matrix, dtype=np.float64)
    if array.ndim < 2 or array.shape[-2:] != (size, size):
        raise ValueError(f"expected matrices of shape (..., {size}, {size}), got {array.shape}")
    return array


def _transpose(matrix: FloatArray) -> FloatArray:
    """Transpose the last two axes of a matrix stack."""
    return np.swapaxes(matrix, -1, -2)


def wrap_angle(angle: ArrayLike) -> FloatArray:
    """Angles in degrees brought into [-180, 180).

    Parameters
    ----------
    angle
        Angles in degrees, any shape.

    Returns
    -------
    numpy.ndarray
        ``angle`` plus a multiple of 360, in [-180, 180).
    """
    value = np.asarray(angle, dtype=np.float64)
    wrapped: FloatArray = np.mod(value + 180.0, 360.0) - 180.0
    # np.mod can round up to 360 for tiny negative inputs
    return np.where(wrapped >= 180.0, wrapped - 360.0, wrapped)


def euler_to_matrix(rot: ArrayLike, tilt: ArrayLike, psi: ArrayLike) -> FloatArray:
    """RELION's rotation matrix ``A`` of ZYZ Euler angles (``Euler_angles2matrix``).

    Parameters
    ----------
    rot, tilt, psi
        Euler angles in degrees; they broadcast together to a shape ``S``.

    Returns
    -------
    numpy.ndarray
        Shape ``S + (3, 3)``: ``A = Rz(-psi) @ Ry(-tilt) @ Rz(-rot)``, which maps reference
        coordinates to the particle's frame (``p = A @ r``).
    """
    alpha, beta, gamma = (np.deg2rad(a) for a in _floats(rot, tilt, psi))
    ca, sa = np.cos(alpha), np.sin(alpha)
    cb, sb = np.cos(beta), np.sin(beta)
    cg, sg = np.cos(gamma), np.sin(gamma)
    cc, cs, sc, ss = cb * ca, cb * sa, sb * ca, sb * sa
    matrix = np.empty((*alpha.shape, 3, 3), dtype=np.float64)
    matrix[..., 0, 0] = cg * cc - sg * sa
    matrix[..., 0, 1] = cg * cs + sg * ca
    matrix[..., 0, 2] = -cg * sb
    matrix[..., 1, 0] = -sg * cc - cg * sa
    matrix[..., 1, 1] = -sg * cs + cg * ca
    matrix[..., 1, 2] = sg * sb
    matrix[..., 2, 0] = sc
    matrix[..., 2, 1] = ss
    matrix[..., 2, 2] = cb
    return matrix


def matrix_to_euler(matrix: ArrayLike) -> Euler:
    """ZYZ Euler angles of rotation matrices, following RELION's ``Euler_matrix2angles``.

    Parameters
    ----------
    matrix
        Rotation matrices ``A`` (RELION's meaning), shape ``S + (3, 3)``.

    Returns
    -------
    Euler
        Angles of shape ``S`` in degrees: ``rot`` in [-180, 180], ``tilt`` in [0, 180],
        ``psi`` in (-180, 180].

    Notes
    -----
    As RELION: ``tilt = atan2(hypot(A[0, 2], A[1, 2]), A[2, 2])`` (RELION's sign of
    ``sin(tilt)`` is always positive) and ``rot = atan2(A[2, 1], A[2, 0])``. Gimbal lock,
    ``sin(tilt) <= GIMBAL_EPSILON``, is resolved as RELION does: ``rot = 0``, ``tilt = 0`` and
    ``psi = atan2(-A[1, 0], A[0, 0])`` if ``A[2, 2] >= 0``, else ``tilt = 180`` and
    ``psi = atan2(A[1, 0], -A[0, 0])``.

    One deliberate difference: RELION takes ``psi = atan2(A[1, 2], -A[0, 2])``, which loses
    precision as ``sin(tilt)`` goes to 0 (or to 180 degrees). Here ``psi`` comes from the
    well-conditioned sum ``rot + psi = atan2(A[0, 1] - A[1, 0], A[0, 0] + A[1, 1])`` when
    ``A[2, 2] >= 0``, or difference ``rot - psi = atan2(-(A[0, 1] + A[1, 0]), A[1, 1] - A[0, 0])``
    otherwise: the same angle for exact matrices, and round trips stay exact to about 1e-15
    right up to the poles.
    """
    m = _matrices(matrix, 3)
    abs_sb = np.hypot(m[..., 0, 2], m[..., 1, 2])
    general = abs_sb > GIMBAL_EPSILON
    upright = m[..., 2, 2] >= 0
    alpha = np.arctan2(m[..., 2, 1], m[..., 2, 0])
    total = np.arctan2(m[..., 0, 1] - m[..., 1, 0], m[..., 0, 0] + m[..., 1, 1])  # rot + psi
    difference = np.arctan2(-(m[..., 0, 1] + m[..., 1, 0]), m[..., 1, 1] - m[..., 0, 0])
    gamma = np.where(upright, total - alpha, alpha - difference)
    locked = np.where(
        upright,
        np.arctan2(-m[..., 1, 0], m[..., 0, 0]),
        np.arctan2(m[..., 1, 0], -m[..., 0, 0]),
    )
    rot = np.where(general, alpha, 0.0)
    tilt = np.where(general, np.arctan2(abs_sb, m[..., 2, 2]), np.where(upright, 0.0, np.pi))
    psi = -wrap_angle(-np.rad2deg(np.where(general, gamma, locked)))  # (-180, 180]
    # + 0.0 turns -0.0 into 0.0, so equal rotations print equal angles
    return Euler(*_floats(np.rad2deg(rot) + 0.0, np.rad2deg(tilt) + 0.0, psi + 0.0))


def _skew(vector: FloatArray) -> FloatArray:
    """The cross-product matrices ``[v]x`` of vectors ``(..., 3)``."""
    x, y, z = vector[..., 0], vector[..., 1], vector[..., 2]
    zero = np.zeros_like(x)
    rows = [
        np.stack([zero, -z, y], axis=-1),
        np.stack([z, zero, -x], axis=-1),
        np.stack([-y, x, zero], axis=-1),
    ]
    return np.stack(rows, axis=-2)


def rotvec_to_matrix(rotvec: ArrayLike) -> FloatArray:
    """Rotation matrices of rotation vectors (Rodrigues' formula).

    Parameters
    ----------
    rotvec
        Rotation vectors ``(..., 3)``: axis times angle in radians (right-handed).

    Returns
    -------
    numpy.ndarray
        ``(..., 3, 3)`` matrices ``R`` rotating vectors (``R @ v``) about the axis.
    """
    v = np.asarray(rotvec, dtype=np.float64)
    if v.ndim < 1 or v.shape[-1] != 3:
        raise ValueError(f"expected rotation vectors of shape (..., 3), got {v.shape}")
    theta = np.linalg.norm(v, axis=-1)[..., None, None]
    k = _skew(v)
    a = np.sinc(theta / np.pi)  # sin(theta) / theta, 1 at 0
    b = 0.5 * np.sinc(theta / (2 * np.pi)) ** 2  # (1 - cos(theta)) / theta**2, 1/2 at 0
    result: FloatArray = np.eye(3) + a * k + b * (k @ k)
    return result


def matrix_to_rotvec(matrix: ArrayLike) -> FloatArray:
    """Rotation vectors of rotation matrices (the inverse of :func:`rotvec_to_matrix`).

    Parameters
    ----------
    matrix
        Rotation matrices ``(..., 3, 3)``.

    Returns
    -------
    numpy.ndarray
        ``(..., 3)`` rotation vectors with angles (norms) in [0, pi]; accurate near 0 and pi.
    """
    m = _matrices(matrix, 3)
    w = np.stack(
        [m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]],
        axis=-1,
    )  # 2 sin(theta) * axis
    sin_t = 0.5 * np.linalg.norm(w, axis=-1)
    cos_t = np.clip(0.5 * (np.trace(m, axis1=-2, axis2=-1) - 1.0), -1.0, 1.0)
    theta = np.arctan2(sin_t, cos_t)
    # up to 90 degrees: the axis from the antisymmetric part
    factor = np.divide(theta, 2 * sin_t, out=np.full_like(theta, 0.5), where=sin_t > 0)
    small = w * factor[..., None]
    # beyond: the axis from the symmetric part, (R + R.T) / 2 - cos(theta) = (1 - cos) k k.T
    sym = 0.5 * (m + _transpose(m)) - cos_t[..., None, None] * np.eye(3)
    diagonal = np.diagonal(sym, axis1=-2, axis2=-1)
    best = np.argmax(diagonal, axis=-1)[..., None]
    column = np.take_along_axis(sym, best[..., None, :], axis=-1)[..., 0]
    scale = np.sqrt(np.clip(np.take_along_axis(diagonal, best, axis=-1)[..., 0], 1e-300, None))
    # 1 - cos(theta) > 1 where this branch is used; the maximum only avoids 0 elsewhere
    axis = column / (scale * np.sqrt(np.maximum(1.0 - cos_t, 1.0)))[..., None]
    sign = np.where(np.sum(axis * w, axis=-1) < 0, -1.0, 1.0)
    large = axis * (sign * theta)[..., None]
    result: FloatArray = np.where((cos_t < 0)[..., None], large, small)
    return result


def matrix_angular_distance(first: ArrayLike, second: ArrayLike) -> FloatArray:
    """The angle of the rotation taking one orientation to another, from rotation matrices.

    Parameters
    ----------
    first, second
        Rotation matrices ``(..., 3, 3)``; the stacks broadcast together.

    Returns
    -------
    numpy.ndarray
        Angles in degrees in [0, 180]: the angle of ``first.T @ second``.
    """
    a = _matrices(first, 3)
    b = _matrices(second, 3)
    relative = _transpose(a) @ b
    cos_t = 0.5 * (np.trace(relative, axis1=-2, axis2=-1) - 1.0)
    antisymmetric = relative - _transpose(relative)  # Frobenius norm 2 * sqrt(2) * sin
    sin_t = np.linalg.norm(antisymmetric, axis=(-2, -1)) / (2.0 * np.sqrt(2.0))
    result: FloatArray = np.rad2deg(np.arctan2(sin_t, cos_t))
    return result


def _triples(value: ArrayLike) -> FloatArray:
    """Euler triples along the last axis; an :class:`Euler` or :class:`Pose` is stacked."""
    if isinstance(value, Euler | Pose):
        return np.stack(_floats(value.rot, value.tilt, value.psi), axis=-1)
    array = np.asarray(value, dtype=np.float64)
    if array.ndim < 1 or array.shape[-1] != 3:
        raise ValueError(f"expected (rot, tilt, psi) along the last axis, got shape {array.shape}")
    return array


def angular_distance(first: ArrayLike, second: ArrayLike) -> FloatArray:
    """The angle of the rotation between two orientations given as Euler angles.

    Parameters
    ----------
    first, second
        ``(rot, tilt, psi)`` in degrees along the last axis (shape ``(..., 3)``), or
        :class:`Euler` / :class:`Pose` tuples; they broadcast together.

    Returns
    -------
    numpy.ndarray
        Angles in degrees in [0, 180]; 0 for equal orientations whatever their Euler angles.
        No symmetry is applied.
    """
    a = _triples(first)
    b = _triples(second)
    return matrix_angular_distance(
        euler_to_matrix(a[..., 0], a[..., 1], a[..., 2]),
        euler_to_matrix(b[..., 0], b[..., 1], b[..., 2]),
    )


# RELION ------------------------------------------------------------------------------------


def relion_pre31_pixel_size(detector_pixel_size: ArrayLike, magnification: ArrayLike) -> FloatArray:
    """The pixel size in Å of RELION < 3.1 STAR files.

    Parameters
    ----------
    detector_pixel_size
        ``rlnDetectorPixelSize`` in micrometres.
    magnification
        ``rlnMagnification``.

    Returns
    -------
    numpy.ndarray
        ``1e4 * detector_pixel_size / magnification`` (Å/px).
    """
    detector, magnification_ = _floats(detector_pixel_size, magnification)
    result: FloatArray = 1e4 * detector / magnification_
    return result


def from_relion(
    rot: ArrayLike, tilt: ArrayLike, psi: ArrayLike, origin_x: ArrayLike, origin_y: ArrayLike
) -> Pose:
    """The internal pose of RELION 3.1 values (``rlnAngle*``, ``rlnOriginX/YAngst`` in Å).

    Parameters
    ----------
    rot, tilt, psi
        ``rlnAngleRot``, ``rlnAngleTilt``, ``rlnAnglePsi`` in degrees.
    origin_x, origin_y
        ``rlnOriginXAngst``, ``rlnOriginYAngst`` in Å.

    Returns
    -------
    Pose
        The same numbers (the internal convention is RELION 3.1's), broadcast as float64.
    """
    return Pose(*_floats(rot, tilt, psi, origin_x, origin_y))


def to_relion(
    rot: ArrayLike, tilt: ArrayLike, psi: ArrayLike, shift_x: ArrayLike, shift_y: ArrayLike
) -> RelionPose:
    """RELION 3.1 values of an internal pose: the identity (origins in Å).

    Parameters
    ----------
    rot, tilt, psi
        Euler angles in degrees.
    shift_x, shift_y
        Shifts in Å.

    Returns
    -------
    RelionPose
        ``rlnAngleRot/Tilt/Psi`` and ``rlnOriginXAngst/YAngst``.
    """
    return RelionPose(*_floats(rot, tilt, psi, shift_x, shift_y))


def from_relion_pre31(
    rot: ArrayLike,
    tilt: ArrayLike,
    psi: ArrayLike,
    origin_x: ArrayLike,
    origin_y: ArrayLike,
    pixel_size: ArrayLike,
) -> Pose:
    """The internal pose of RELION < 3.1 values (``rlnOriginX/Y`` in pixels).

    Parameters
    ----------
    rot, tilt, psi
        ``rlnAngleRot``, ``rlnAngleTilt``, ``rlnAnglePsi`` in degrees.
    origin_x, origin_y
        ``rlnOriginX``, ``rlnOriginY`` in pixels.
    pixel_size
        Å/px of the images (see :func:`relion_pre31_pixel_size`).

    Returns
    -------
    Pose
        Shifts ``origin * pixel_size`` (same sign: RELION 3.1 only changed the unit).
    """
    size = _pixel_size(pixel_size)
    r, t, p, x, y, s = _floats(rot, tilt, psi, origin_x, origin_y, size)
    return Pose(*_floats(r, t, p, x * s, y * s))


def to_relion_pre31(
    rot: ArrayLike,
    tilt: ArrayLike,
    psi: ArrayLike,
    shift_x: ArrayLike,
    shift_y: ArrayLike,
    pixel_size: ArrayLike,
) -> RelionPose:
    """RELION < 3.1 values of an internal pose (origins in pixels).

    Parameters
    ----------
    rot, tilt, psi
        Euler angles in degrees.
    shift_x, shift_y
        Shifts in Å.
    pixel_size
        Å/px of the images.

    Returns
    -------
    RelionPose
        Angles unchanged, ``rlnOriginX/Y = shift / pixel_size``.
    """
    size = _pixel_size(pixel_size)
    r, t, p, x, y, s = _floats(rot, tilt, psi, shift_x, shift_y, size)
    return RelionPose(*_floats(r, t, p, x / s, y / s))


# cryoSPARC ---------------------------------------------------------------------------------


def to_cryosparc(
    rot: ArrayLike,
    tilt: ArrayLike,
    psi: ArrayLike,
    shift_x: ArrayLike,
    shift_y: ArrayLike,
    pixel_size: ArrayLike,
) -> CryosparcPose:
    """cryoSPARC ``alignments3D/pose`` and ``alignments3D/shift`` of an internal pose.

    Parameters
    ----------
    rot, tilt, psi
        Euler angles in degrees.
    shift_x, shift_y
        Shifts in Å.
    pixel_size
        Å/px the shifts are written in (``alignments3D/psize_A``).

    Returns
    -------
    CryosparcPose
        ``pose`` ``(..., 3)``: the rotation vector (radians, norm at most pi) of ``A.T``;
        ``shift`` ``(..., 2)``: ``(shift_x, shift_y) / pixel_size`` in pixels, same sign.
    """
    size = _pixel_size(pixel_size)
    r, t, p, x, y, s = _floats(rot, tilt, psi, shift_x, shift_y, size)
    pose = matrix_to_rotvec(_transpose(euler_to_matrix(r, t, p)))
    return CryosparcPose(pose, np.stack([x / s, y / s], axis=-1))


def from_cryosparc(pose: ArrayLike, shift: ArrayLike, pixel_size: ArrayLike) -> Pose:
    """The internal pose of cryoSPARC ``alignments3D/pose`` and ``alignments3D/shift``.

    Parameters
    ----------
    pose
        Rotation vectors ``(..., 3)`` in radians; their matrices are ``A.T``.
    shift
        Shifts ``(..., 2)`` in pixels.
    pixel_size
        Å/px of the shifts (``alignments3D/psize_A``).

    Returns
    -------
    Pose
        Euler angles of ``rotvec_to_matrix(pose).T`` (:func:`matrix_to_euler`) and
        ``shift * pixel_size`` in Å.
    """
    size = _pixel_size(pixel_size)
    shifts = np.asarray(shift, dtype=np.float64)
    if shifts.ndim < 1 or shifts.shape[-1] != 2:
        raise ValueError(f"expected shifts of shape (..., 2), got {shifts.shape}")
    euler = matrix_to_euler(_transpose(rotvec_to_matrix(pose)))
    return Pose(*_floats(*euler, shifts[..., 0] * size, shifts[..., 1] * size))


def to_cryosparc_2d(
    psi: ArrayLike, shift_x: ArrayLike, shift_y: ArrayLike, pixel_size: ArrayLike
) -> CryosparcPose:
    """cryoSPARC ``alignments2D/pose`` and ``alignments2D/shift`` of an in-plane pose.

    Parameters
    ----------
    psi
        In-plane angle in degrees (``rot = tilt = 0``).
    shift_x, shift_y
        Shifts in Å.
    pixel_size
        Å/px of the shifts (``alignments2D/psize_A``).

    Returns
    -------
    CryosparcPose
        ``pose`` of shape ``(...)``: ``psi`` in radians, wrapped to [-pi, pi); ``shift``
        ``(..., 2)`` in pixels.
    """
    size = _pixel_size(pixel_size)
    p, x, y, s = _floats(psi, shift_x, shift_y, size)
    pose = np.asarray(np.deg2rad(wrap_angle(p)), dtype=np.float64)
    return CryosparcPose(pose, np.stack([x / s, y / s], axis=-1))


def from_cryosparc_2d(pose: ArrayLike, shift: ArrayLike, pixel_size: ArrayLike) -> Pose:
    """The internal pose of cryoSPARC ``alignments2D/pose`` (radians) and ``/shift`` (px).

    Parameters
    ----------
    pose
        In-plane angles in radians, shape ``S``.
    shift
        Shifts ``S + (2,)`` in pixels.
    pixel_size
        Å/px of the shifts (``alignments2D/psize_A``).

    Returns
    -------
    Pose
        ``rot = tilt = 0``, ``psi`` = the pose in degrees, shifts in Å.
    """
    size = _pixel_size(pixel_size)
    shifts = np.asarray(shift, dtype=np.float64)
    if shifts.ndim < 1 or shifts.shape[-1] != 2:
        raise ValueError(f"expected shifts of shape (..., 2), got {shifts.shape}")
    psi, x, y = _floats(np.rad2deg(pose), shifts[..., 0] * size, shifts[..., 1] * size)
    return Pose(np.zeros_like(psi), np.zeros_like(psi), psi, x, y)


# EMAN2 -------------------------------------------------------------------------------------


def eman_matrix(az: ArrayLike, alt: ArrayLike, phi: ArrayLike) -> FloatArray:
    """The rotation matrix of EMAN2's Transform for "eman" Euler angles (ZXZ).

    Parameters
    ----------
    az, alt, phi
        EMAN2 Euler angles in degrees.

    Returns
    -------
    numpy.ndarray
        ``(..., 3, 3)``: ``Rz(-phi) @ Rx(-alt) @ Rz(-az)``, the matrix EMAN2's
        ``Transform.set_rotation`` builds; it equals :func:`euler_to_matrix` of
        ``(az - 90, alt, phi + 90)``.
    """
    a, b, c = (np.deg2rad(x) for x in _floats(az, alt, phi))
    ca, sa = np.cos(a), np.sin(a)
    cb, sb = np.cos(b), np.sin(b)
    cc, sc = np.cos(c), np.sin(c)
    matrix = np.empty((*a.shape, 3, 3), dtype=np.float64)
    matrix[..., 0, 0] = cc * ca - cb * sa * sc
    matrix[..., 0, 1] = cc * sa + cb * ca * sc
    matrix[..., 0, 2] = sb * sc
    matrix[..., 1, 0] = -sc * ca - cb * sa * cc
    matrix[..., 1, 1] = -sc * sa + cb * ca * cc
    matrix[..., 1, 2] = sb * cc
    matrix[..., 2, 0] = sb * sa
    matrix[..., 2, 1] = -sb * ca
    matrix[..., 2, 2] = cb
    return matrix


def to_eman(
    rot: ArrayLike,
    tilt: ArrayLike,
    psi: ArrayLike,
    shift_x: ArrayLike,
    shift_y: ArrayLike,
    pixel_size: ArrayLike,
) -> EmanPose:
    """EMAN2 ``xform.projection`` parameters of an internal pose.

    Parameters
    ----------
    rot, tilt, psi
        Euler angles in degrees.
    shift_x, shift_y
        Shifts in Å.
    pixel_size
        Å/px of the images.

    Returns
    -------
    EmanPose
        ``az = rot + 90`` and ``phi = psi - 90`` in [0, 360), ``alt = tilt``, and the
        translation ``tx, ty = -shift / pixel_size`` in pixels (applied after the rotation).
    """
    size = _pixel_size(pixel_size)
    r, t, p, x, y, s = _floats(rot, tilt, psi, shift_x, shift_y, size)
    return EmanPose(*_floats(np.mod(r + 90.0, 360.0), t, np.mod(p - 90.0, 360.0), -x / s, -y / s))


def from_eman(
    az: ArrayLike,
    alt: ArrayLike,
    phi: ArrayLike,
    tx: ArrayLike,
    ty: ArrayLike,
    pixel_size: ArrayLike,
) -> Pose:
    """The internal pose of EMAN2 ``xform.projection`` parameters.

    Parameters
    ----------
    az, alt, phi
        EMAN2 "eman" Euler angles in degrees.
    tx, ty
        EMAN2 translation in pixels.
    pixel_size
        Å/px of the images.

    Returns
    -------
    Pose
        ``rot = az - 90`` and ``psi = phi + 90`` in [-180, 180), ``tilt = alt``,
        ``shift = -t * pixel_size``.
    """
    size = _pixel_size(pixel_size)
    a, b, c, x, y, s = _floats(az, alt, phi, tx, ty, size)
    return Pose(*_floats(wrap_angle(a - 90.0), b, wrap_angle(c + 90.0), -x * s, -y * s))


# Scipion -----------------------------------------------------------------------------------


def to_scipion_matrix(
    rot: ArrayLike,
    tilt: ArrayLike,
    psi: ArrayLike,
    shift_x: ArrayLike,
    shift_y: ArrayLike,
    pixel_size: ArrayLike,
) -> FloatArray:
    """Scipion ``Transform`` matrices of internal poses (projection alignment).

    Parameters
    ----------
    rot, tilt, psi
        Euler angles in degrees.
    shift_x, shift_y
        Shifts in Å.
    pixel_size
        The particle set's sampling rate, Å/px (Scipion stores shifts in pixels).

    Returns
    -------
    numpy.ndarray
        ``(..., 4, 4)``: ``[[A.T, A.T @ s], [0, 0, 0, 1]]`` with
        ``s = (shift_x, shift_y, 0) / pixel_size``, the inverse of ``[[A, -s], [0, 1]]``
        (what Scipion's RELION plugin stores for ``ALIGN_PROJ``).
    """
    size = _pixel_size(pixel_size)
    r, t, p, x, y, s = _floats(rot, tilt, psi, shift_x, shift_y, size)
    rotation = _transpose(euler_to_matrix(r, t, p))
    shift = np.stack([x / s, y / s, np.zeros_like(x)], axis=-1)
    matrix = np.zeros((*r.shape, 4, 4), dtype=np.float64)
    matrix[..., :3, :3] = rotation
    matrix[..., :3, 3] = (rotation @ shift[..., None])[..., 0]
    matrix[..., 3, 3] = 1.0
    return matrix


def from_scipion_matrix(matrix: ArrayLike, pixel_size: ArrayLike) -> Pose:
    """The internal pose of Scipion ``Transform`` matrices (projection alignment).

    Parameters
    ----------
    matrix
        ``(..., 4, 4)`` matrices ``[[R, t], [0, 1]]`` with ``R`` a rotation (no scale or
        mirror) and ``t`` in pixels.
    pixel_size
        The particle set's sampling rate, Å/px.

    Returns
    -------
    Pose
        Angles of ``A = R.T`` and shifts ``(A @ t)[:2] * pixel_size``; the z component
        ``(A @ t)[2]`` (RELION's ``rlnOriginZAngst``, 0 for particles) is dropped.
    """
    size = _pixel_size(pixel_size)
    m = _matrices(matrix, 4)
    relion = _transpose(m[..., :3, :3])
    shift = (relion @ m[..., :3, 3, None])[..., 0]
    euler = matrix_to_euler(relion)
    return Pose(*_floats(*euler, shift[..., 0] * size, shift[..., 1] * size))


def to_scipion_matrix_2d(
    psi: ArrayLike, shift_x: ArrayLike, shift_y: ArrayLike, pixel_size: ArrayLike
) -> FloatArray:
    """Scipion ``Transform`` matrices of in-plane poses (2-D alignment, ``ALIGN_2D``).

    Parameters
    ----------
    psi
        In-plane angle in degrees (``rot = tilt = 0``).
    shift_x, shift_y
        Shifts in Å.
    pixel_size
        The particle set's sampling rate, Å/px.

    Returns
    -------
    numpy.ndarray
        ``(..., 4, 4)``: ``[[Rz(psi), s], [0, 1]]`` with ``s = (shift_x, shift_y, 0) /
        pixel_size`` (not rotated, unlike the projection matrix).
    """
    size = _pixel_size(pixel_size)
    p, x, y, s = _floats(psi, shift_x, shift_y, size)
    angle = np.deg2rad(p)
    matrix = np.zeros((*p.shape, 4, 4), dtype=np.float64)
    matrix[..., 0, 0] = np.cos(angle)
    matrix[..., 0, 1] = -np.sin(angle)
    matrix[..., 1, 0] = np.sin(angle)
    matrix[..., 1, 1] = np.cos(angle)
    matrix[..., 2, 2] = 1.0
    matrix[..., 0, 3] = x / s
    matrix[..., 1, 3] = y / s
    matrix[..., 3, 3] = 1.0
    return matrix


def from_scipion_matrix_2d(matrix: ArrayLike, pixel_size: ArrayLike) -> Pose:
    """The internal pose of Scipion 2-D alignment matrices (``ALIGN_2D``, no mirror).

    Parameters
    ----------
    matrix
        ``(..., 4, 4)`` matrices ``[[Rz(psi), s], [0, 1]]``, shifts in pixels.
    pixel_size
        The particle set's sampling rate, Å/px.

    Returns
    -------
    Pose
        ``rot = tilt = 0``, ``psi = atan2(M[1, 0], M[0, 0])``, shifts ``M[:2, 3] * pixel_size``.
    """
    size = _pixel_size(pixel_size)
    m = _matrices(matrix, 4)
    psi = np.rad2deg(np.arctan2(m[..., 1, 0], m[..., 0, 0]))
    p, x, y = _floats(psi, m[..., 0, 3] * size, m[..., 1, 3] * size)
    return Pose(np.zeros_like(p), np.zeros_like(p), p, x, y)
