"""Rotations from Euler angles (two named conventions), similarity transforms, projections and the
image y flip.

Conventions (angles in radians, (pitch, yaw, roll) = rotations about x, y, z):

``"3ddfa"``
    The 300W-LP / 3DDFA convention (face3d's ``angle2matrix_3ddfa``):
    R = Rx'(pitch) Ry'(yaw) Rz'(roll), where each factor is the *transpose* of the usual active
    rotation, e.g. Rx'(a) = [[1, 0, 0], [0, cos a, sin a], [0, -sin a, cos a]]. Equivalently
    R_3ddfa(p, y, r) = R_standard(p, y, r).T. 300W-LP image-space vertices are
    ``scale * V @ R.T + t`` followed by the y flip ``h - y - 1``.
``"standard"``
    Right-handed active rotations applied x first, then y, then z:
    R = Rz(roll) Ry(yaw) Rx(pitch) (face3d's ``angle2matrix``, but in radians).

Gimbal lock: when |yaw| = pi/2, pitch and roll are not separable; ``matrix_to_euler`` then returns
roll = 0 and puts the whole remaining rotation into pitch, so the round trip still reproduces R.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from .validate import check_float, check_vertices

__all__ = [
    "EulerConvention",
    "euler_to_matrix",
    "matrix_to_euler",
    "similarity_transform",
    "similarity_from_points",
    "orthographic_project",
    "perspective_project",
    "flip_y",
]

EulerConvention = Literal["3ddfa", "standard"]
_CONVENTIONS = ("3ddfa", "standard")


def _check_convention(convention):
    if convention not in _CONVENTIONS:
        raise ValueError(f"convention: expected one of {list(_CONVENTIONS)}, got {convention!r}")


def _angles(angles) -> np.ndarray:
    a = np.asarray(angles)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"angles: expected a float array of shape (..., 3), got dtype {a.dtype}")
    if a.ndim == 0 or a.shape[-1] != 3:
        raise ValueError(f"angles: expected shape (..., 3) = (pitch, yaw, roll), got shape {a.shape}")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError("angles: expected finite values, got NaN/inf")
    return a


def euler_to_matrix(angles, *, convention: EulerConvention = "3ddfa") -> np.ndarray:
    """Rotation matrices from (pitch, yaw, roll) in radians.

    Parameters
    ----------
    angles : (..., 3) float
        pitch (about x), yaw (about y), roll (about z), radians.
    convention : "3ddfa" | "standard"
        See the module docstring.

    Returns
    -------
    (..., 3, 3) float64 rotation matrices (orthonormal, determinant +1).
    """
    _check_convention(convention)
    a = _angles(angles)
    cx, cy, cz = np.cos(a[..., 0]), np.cos(a[..., 1]), np.cos(a[..., 2])
    sx, sy, sz = np.sin(a[..., 0]), np.sin(a[..., 1]), np.sin(a[..., 2])
    # standard: R = Rz Ry Rx, written out
    r = np.empty(a.shape[:-1] + (3, 3))
    r[..., 0, 0] = cz * cy
    r[..., 0, 1] = cz * sy * sx - sz * cx
    r[..., 0, 2] = cz * sy * cx + sz * sx
    r[..., 1, 0] = sz * cy
    r[..., 1, 1] = sz * sy * sx + cz * cx
    r[..., 1, 2] = sz * sy * cx - cz * sx
    r[..., 2, 0] = -sy
    r[..., 2, 1] = cy * sx
    r[..., 2, 2] = cy * cx
    if convention == "3ddfa":
        r = np.swapaxes(r, -1, -2).copy()
    return r


def matrix_to_euler(R, *, convention: EulerConvention = "3ddfa", eps: float = 1e-9) -> np.ndarray:
    """(pitch, yaw, roll) in radians from rotation matrices; inverse of :func:`euler_to_matrix`.

    Yaw is returned in [-pi/2, pi/2], pitch and roll in (-pi, pi]. Within ``eps`` of gimbal lock
    (|cos yaw| < eps) roll is set to 0 (see the module docstring).

    Parameters
    ----------
    R : (..., 3, 3) float rotation matrices.
    convention : "3ddfa" | "standard"

    Returns
    -------
    (..., 3) float64 angles.
    """
    _check_convention(convention)
    m = np.asarray(R, dtype=np.float64)
    if m.ndim < 2 or m.shape[-2:] != (3, 3):
        raise ValueError(f"R: expected shape (..., 3, 3), got shape {m.shape}")
    if not np.isfinite(m).all():
        raise ValueError("R: expected finite values, got NaN/inf")
    if convention == "3ddfa":
        m = np.swapaxes(m, -1, -2)
    sy = np.clip(-m[..., 2, 0], -1.0, 1.0)
    yaw = np.arcsin(sy)
    cy = np.sqrt(np.maximum(0.0, 1.0 - sy * sy))
    regular = cy >= eps
    pitch = np.where(regular, np.arctan2(m[..., 2, 1], m[..., 2, 2]), np.arctan2(np.sign(sy) * m[..., 0, 1], m[..., 1, 1]))
    roll = np.where(regular, np.arctan2(m[..., 1, 0], m[..., 0, 0]), 0.0)
    return np.stack([pitch, yaw, roll], axis=-1)


def similarity_transform(vertices, scale, R, t) -> np.ndarray:
    """``scale * vertices @ R.T + t``: rotate, scale, then translate. Returns (V, 3) float64."""
    v = check_vertices(vertices)
    s = check_float(scale, "scale")
    rot = np.asarray(R, dtype=np.float64)
    if rot.shape != (3, 3):
        raise ValueError(f"R: expected shape (3, 3), got shape {rot.shape}")
    tt = np.asarray(t, dtype=np.float64).reshape(-1)
    if tt.shape != (3,):
        raise ValueError(f"t: expected 3 values, got shape {np.shape(t)}")
    return s * (v @ rot.T) + tt


def similarity_from_points(source, target, *, with_scale: bool = True):
    """Least-squares similarity (Umeyama 1991) taking ``source`` onto ``target``.

    Finds scale s, rotation R (det +1) and translation t minimising
    sum_i |s R source_i + t - target_i|^2.

    Returns
    -------
    (s, R (3, 3), t (3,)), so that ``similarity_transform(source, s, R, t) ~ target``.
    """
    src = check_vertices(source, "source")
    dst = check_vertices(target, "target")
    if src.shape != dst.shape:
        raise ValueError(f"target: expected the same shape as source {src.shape}, got {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(src)
    u, d, vt = np.linalg.svd(cov)
    sign = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    rot = (u * sign) @ vt
    var = (xs**2).sum() / len(src)
    s = float((d * sign).sum() / var) if with_scale and var > 0 else 1.0
    t = mu_d - s * rot @ mu_s
    return s, rot, t


def orthographic_project(vertices) -> np.ndarray:
    """Orthographic projection along z: the (V, 2) x, y coordinates."""
    return check_vertices(vertices)[:, :2].copy()


def perspective_project(vertices, focal, center=(0.0, 0.0), *, eps: float = 1e-12) -> np.ndarray:
    """Pinhole projection of camera-frame points (z > 0 in front of the camera).

    x_img = focal * x / z + cx, y_img = focal * y / z + cy. Returns (V, 2) float64.
    Raises ``ValueError`` for points with z <= eps (behind or on the camera plane).
    """
    v = check_vertices(vertices)
    f = check_float(focal, "focal", minimum=0.0, strict_minimum=True)
    c = np.asarray(center, dtype=np.float64).reshape(-1)
    if c.shape != (2,):
        raise ValueError(f"center: expected 2 values (cx, cy), got shape {np.shape(center)}")
    z = v[:, 2]
    if (z <= eps).any():
        i = int(np.flatnonzero(z <= eps)[0])
        raise ValueError(f"vertices: expected z > {eps} (in front of the camera), got z = {z[i]} at row {i}")
    return f * v[:, :2] / z[:, None] + c


def flip_y(vertices, height) -> np.ndarray:
    """Image-coordinate y flip ``y -> height - y - 1`` (the face3d / 300W-LP convention).

    Works on (V, 2) or (V, 3) arrays; other columns are copied. It is its own inverse.
    """
    a = np.asarray(vertices)
    dims = a.shape[1] if a.ndim == 2 else 3
    if dims not in (2, 3):
        raise ValueError(f"vertices: expected shape (V, 2) or (V, 3), got shape {a.shape}")
    v = check_vertices(a, dims=dims)
    h = check_float(height, "height", minimum=0.0, strict_minimum=True)
    out = v.copy()
    out[:, 1] = h - v[:, 1] - 1.0
    return out
