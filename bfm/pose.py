"""Pose conventions of 300W-LP (``Pose_Para``) and 3DDFA (the 62-parameter vector).

This file holds the conversions between model-space vertices and image space for both
conventions, the split/join and whitening of 3DDFA parameter vectors, and Euler angles from an
affine camera.

300W-LP ``Pose_Para`` (stored (1, 7) in each sample's .mat):
    ``[pitch, yaw, roll, tx, ty, tz, scale]``, angles in radians. As face3d's 300W-LP scripts use
    it (face3d ``examples/8_generate_posmap_300WLP.py`` + ``morphable_model.transform_3ddfa``):

        image = scale * V @ R.T + t,   R = euler_to_matrix((pitch, yaw, roll), convention="3ddfa")
        image[:, 1] = height - image[:, 1] - 1          (y flip, ``meshkit.transform.flip_y``)

    ``R_3ddfa(p, y, r) = Rx(p)^T Ry(y)^T Rz(r)^T`` with Rx, Ry, Rz the usual active rotations (see
    ``meshkit.transform``). x and z columns are kept as is (orthographic: z is depth, larger =
    nearer the viewer before the flip, which touches y only).

3DDFA parameter vector (3DDFA ``utils/inference.py``/``params.py``; 3DDFA_V2 ``utils/tddfa_util.py``
``_parse_param`` and ``TDDFA.recon_vers``):
    ``param = [P (12, row-major 3x4), alpha_shape (40), alpha_expression (10)]`` (62; 3DDFA_V2 also
    parses 72 = 12 + 40 + 20 and 141 = 12 + 100 + 29). The network predicts a whitened vector;
    ``param = whitened * std + mean`` with the (62,) mean/std of 3DDFA_V2's
    ``param_mean_std_62d_120x120.pkl`` (keys ``mean``, ``std``) or 3DDFA's ``param_whitening.pkl``
    (keys ``param_mean``, ``param_std``). Vertices: ``P[:, :3] @ (u + W_shp a_shp + W_exp a_exp)
    reshaped (3, N) column-wise + P[:, 3]`` (u interleaved x1, y1, z1, ...), then in the crop of
    side ``size``: 3DDFA_V2 ``x -= 1, z -= 1, y = size - y`` (3DDFA v1: ``y = size + 1 - y``, the
    1-based form). ``P[:, :3]`` is a scaled rotation: for 300W-LP-derived parameters
    ``P = [scale * R_3ddfa | t]``, the same R and t as Pose_Para.

Euler angles from a camera: ``camera_to_angles(P)`` normalises the first two rows of ``P[:, :3]``,
completes the third by their cross product (3DDFA_V2 ``utils/pose.py`` ``P2sRt``; the mean of the
two row norms is the scale) and reads (pitch, yaw, roll) in the 300W-LP convention (exact inverse
of ``pose_para_to_camera``). ``convention="3ddfa_v2"`` instead reproduces the angles 3DDFA_V2's
``matrix2angle`` prints: yaw = asin(R[2, 0]), pitch = atan2(R[2, 1], R[2, 2]),
roll = atan2(R[1, 0], R[0, 0]) (a different decomposition: it is NOT the inverse of R_3ddfa).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from meshkit.transform import euler_to_matrix, matrix_to_euler
from meshkit.validate import check_array, check_choice, check_float, check_shape

__all__ = [
    "TEMPLATES",
    "split_pose_para",
    "pose_para_to_camera",
    "camera_to_pose_para",
    "pose_para_to_image",
    "image_to_model",
    "camera_to_image",
    "split_params",
    "join_params",
    "whiten_params",
    "unwhiten_params",
    "camera_to_angles",
]

#: 3DDFA parameter templates: length -> (pose, shape, expression) sizes (3DDFA_V2 ``_parse_param``).
TEMPLATES = {62: (12, 40, 10), 72: (12, 40, 20), 141: (12, 100, 29)}


def _pose_para(pose_para) -> np.ndarray:
    p = np.asarray(pose_para) if pose_para is not None else pose_para
    if isinstance(p, np.ndarray) and p.ndim == 2 and p.shape == (1, 7):
        p = p[0]  # the (1, 7) row as stored in 300W-LP .mat files
    out = check_array(p, "pose_para", (..., 7), what="= pitch, yaw, roll, tx, ty, tz, scale", copy=True)
    return out


def _vertices(vertices, name: str = "vertices") -> np.ndarray:
    return check_array(vertices, name, (..., 3), what="of (N, 3) or (B, N, 3) points", copy=True)


def _out_dtype(a) -> np.dtype:
    """float32 in -> float32 out (bulk data path); anything else -> float64."""
    return np.float32 if np.asarray(a).dtype == np.float32 else np.float64


def split_pose_para(pose_para) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split a 300W-LP Pose_Para into (angles (..., 3) radians, t (..., 3), scale (...,)).

    Parameters
    ----------
    pose_para : (7,), (1, 7) as stored, or (B, 7): pitch, yaw, roll, tx, ty, tz, scale.
    """
    p = _pose_para(pose_para)
    return p[..., 0:3].copy(), p[..., 3:6].copy(), p[..., 6].copy()


def pose_para_to_camera(pose_para) -> np.ndarray:
    """The 3x4 affine camera ``[scale * R_3ddfa(pitch, yaw, roll) | t]`` of a Pose_Para.

    Applied to model vertices as ``V @ P[:, :3].T + P[:, 3]`` (before the image y flip), this is
    exactly the 300W-LP transform, and it is the ``P`` of a 3DDFA 62-vector derived from 300W-LP.

    Parameters
    ----------
    pose_para : (7,) / (1, 7) / (B, 7)

    Returns
    -------
    (3, 4) or (B, 3, 4) float64.
    """
    angles, t, s = split_pose_para(pose_para)
    r = euler_to_matrix(angles, convention="3ddfa")
    return np.concatenate([s[..., None, None] * r, t[..., :, None]], axis=-1)


def _decompose(camera) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scale (...,), R (..., 3, 3) orthonormal, t (..., 3)) from a 3x4 affine camera, as 3DDFA_V2's
    P2sRt: rows 0 and 1 normalised, row 2 = row0 x row1, scale = mean of the two row norms."""
    p = check_array(camera, "camera", (..., 3, 4), what="(3x4 affine camera [s R | t])", copy=True)
    r1, r2 = p[..., 0, :3], p[..., 1, :3]
    n1, n2 = np.linalg.norm(r1, axis=-1), np.linalg.norm(r2, axis=-1)
    if (n1 <= 0).any() or (n2 <= 0).any():
        raise ValueError("camera: expected non-zero first two rows of P[:, :3], got a zero row")
    r1 = r1 / n1[..., None]
    r2 = r2 / n2[..., None]
    r = np.stack([r1, r2, np.cross(r1, r2)], axis=-2)
    return 0.5 * (n1 + n2), r, p[..., :, 3].copy()


def camera_to_pose_para(camera) -> np.ndarray:
    """Inverse of :func:`pose_para_to_camera`: (7,) or (B, 7) Pose_Para from a 3x4 affine camera.

    The camera's rotation part is orthonormalised as in :func:`camera_to_angles`; for a camera
    made by :func:`pose_para_to_camera` the round trip is exact (to rounding, away from |yaw| = 90
    degrees where pitch and roll mix, see ``meshkit.transform``).
    """
    s, r, t = _decompose(camera)
    angles = matrix_to_euler(r, convention="3ddfa")
    return np.concatenate([angles, t, s[..., None]], axis=-1)


def camera_to_angles(camera, *, convention: Literal["300wlp", "3ddfa_v2"] = "300wlp") -> np.ndarray:
    """(pitch, yaw, roll) in radians from a 3x4 affine camera (or a 3DDFA 62-vector's first 12).

    Parameters
    ----------
    camera : (3, 4), (12,), (B, 3, 4) or (B, 12) float
        ``[s R | t]``; a flat 12-vector is read row-major as in 3DDFA.
    convention : "300wlp" | "3ddfa_v2"
        "300wlp": the Pose_Para angles, R = R_3ddfa(pitch, yaw, roll) (inverse of
        :func:`pose_para_to_camera`). "3ddfa_v2": the numbers 3DDFA_V2's ``calc_pose`` reports
        (yaw = asin R[2,0], pitch = atan2(R[2,1], R[2,2]), roll = atan2(R[1,0], R[0,0]); at
        |R[2,0]| > 0.998 roll = 0), returned in the same (pitch, yaw, roll) order.

    Returns
    -------
    (3,) or (B, 3) float64, radians.
    """
    check_choice(convention, "convention", ("300wlp", "3ddfa_v2"))
    p = np.asarray(camera)
    if p.ndim >= 1 and p.shape[-1] == 12 and p.dtype.kind in "fiu":
        p = p.reshape(p.shape[:-1] + (3, 4))
    _, r, _ = _decompose(p)
    if convention == "300wlp":
        return matrix_to_euler(r, convention="3ddfa")
    s20 = r[..., 2, 0]
    lock_pos, lock_neg = s20 > 0.998, s20 < -0.998
    yaw = np.where(lock_pos, np.pi / 2, np.where(lock_neg, -np.pi / 2, np.arcsin(np.clip(s20, -1, 1))))
    pitch = np.where(lock_pos, np.arctan2(-r[..., 0, 1], -r[..., 0, 2]),
                     np.where(lock_neg, np.arctan2(r[..., 0, 1], r[..., 0, 2]), np.arctan2(r[..., 2, 1], r[..., 2, 2])))
    roll = np.where(lock_pos | lock_neg, 0.0, np.arctan2(r[..., 1, 0], r[..., 0, 0]))
    return np.stack([pitch, yaw, roll], axis=-1)


def pose_para_to_image(vertices, pose_para, height) -> np.ndarray:
    """Model-space vertices to 300W-LP image space: ``s * V @ R.T + t`` then ``y -> height - y - 1``.

    Parameters
    ----------
    vertices : (N, 3) or (B, N, 3) float
        Model-space vertices (e.g. ``MorphableModel.reconstruct`` with 300W-LP's Shape_Para/Exp_Para).
    pose_para : (7,) / (1, 7), or (B, 7) with batched vertices
        pitch, yaw, roll (radians), tx, ty, tz, scale.
    height : float > 0
        Image height in pixels (450 for 300W-LP).

    Returns
    -------
    Image-space vertices, same shape; x, y in pixels (y down), z scaled depth. float32 for float32
    input, else float64.
    """
    dtype = _out_dtype(vertices)
    v = _vertices(vertices)
    h = check_float(height, "height", minimum=0.0, strict_minimum=True)
    cam = pose_para_to_camera(pose_para)
    _check_batch(v, cam, "pose_para")
    out = v @ np.swapaxes(cam[..., :3], -1, -2) + cam[..., None, :, 3]
    out[..., 1] = h - out[..., 1] - 1.0  # flip_y, applied on the batch at once
    return out.astype(dtype, copy=False)


def image_to_model(image_vertices, pose_para, height) -> np.ndarray:
    """Inverse of :func:`pose_para_to_image`: undo the y flip, the translation, rotation and scale.

    ``V = ((flip_y(image) - t) / s) @ R`` (R orthonormal, so R^-1 = R^T).
    Same shapes and dtype rule as :func:`pose_para_to_image`.
    """
    dtype = _out_dtype(image_vertices)
    v = _vertices(image_vertices, "image_vertices")
    h = check_float(height, "height", minimum=0.0, strict_minimum=True)
    angles, t, s = split_pose_para(pose_para)
    if (s == 0).any():
        raise ValueError("pose_para: expected a non-zero scale (element 6), got 0")
    r = euler_to_matrix(angles, convention="3ddfa")
    _check_batch(v, r, "pose_para")
    w = v.copy()
    w[..., 1] = h - w[..., 1] - 1.0
    w = (w - t[..., None, :]) / s[..., None, None]
    return (w @ r).astype(dtype, copy=False)


def camera_to_image(vertices, camera, *, size=None) -> np.ndarray:
    """Apply a 3x4 affine camera: ``V @ P[:, :3].T + P[:, 3]``; with ``size``, also the 3DDFA_V2
    crop-frame flip (``x -= 1``, ``z -= 1``, ``y = size - y``; 3DDFA_V2 ``similar_transform``
    before its ROI rescale).

    Parameters
    ----------
    vertices : (N, 3) or (B, N, 3)
    camera : (3, 4) / (12,) or batched (B, 3, 4) / (B, 12)
    size : float, optional
        The crop side (120 for 3DDFA).
    """
    dtype = _out_dtype(vertices)
    v = _vertices(vertices)
    p = np.asarray(camera)
    if p.ndim >= 1 and p.shape[-1] == 12 and p.dtype.kind in "fiu":
        p = p.reshape(p.shape[:-1] + (3, 4))
    p = check_array(p, "camera", (..., 3, 4), what="(3x4 affine camera)", copy=True)
    _check_batch(v, p, "camera")
    out = v @ np.swapaxes(p[..., :3], -1, -2) + p[..., None, :, 3]
    if size is not None:
        sz = check_float(size, "size", minimum=0.0, strict_minimum=True)
        out[..., 0] -= 1.0
        out[..., 2] -= 1.0
        out[..., 1] = sz - out[..., 1]
    return out.astype(dtype, copy=False)


def _check_batch(v: np.ndarray, per_item: np.ndarray, name: str) -> None:
    """Vertices (N, 3) go with one pose; (B, N, 3) with one pose or B poses."""
    batched_pose = per_item.ndim == 3
    check_shape(v, "vertices", [("N", 3), ("B", "N", 3)])
    if batched_pose and (v.ndim != 3 or v.shape[0] != per_item.shape[0]):
        raise ValueError(f"{name}: got a batch of {per_item.shape[0]} poses for vertices of shape {v.shape}; "
                         f"expected one pose or (B, N, 3) vertices with the same B")


# ---------------------------------------------------------------------------------------------
# 3DDFA parameter vectors


def _params(param, name: str = "param") -> np.ndarray:
    p = check_array(param, name, (..., "n"), copy=True)
    n = p.shape[-1]
    if n not in TEMPLATES:
        raise ValueError(f"{name}: expected a 3DDFA parameter vector of length {sorted(TEMPLATES)} "
                         f"(12 pose + shape + expression), got length {n} (shape {p.shape})")
    return p


def split_params(param) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split (un-whitened) 3DDFA parameters into (camera (..., 3, 4), shape (..., Ks), expression (..., Ke)).

    Parameters
    ----------
    param : (L,) or (B, L) float, L in {62, 72, 141} (:data:`TEMPLATES`)
        The first 12 are the 3x4 camera, row-major.
    """
    p = _params(param)
    n_pose, n_shape, _ = TEMPLATES[p.shape[-1]]
    cam = p[..., :n_pose].reshape(p.shape[:-1] + (3, 4))
    return cam, p[..., n_pose:n_pose + n_shape].copy(), p[..., n_pose + n_shape:].copy()


def join_params(camera, shape, expression) -> np.ndarray:
    """Inverse of :func:`split_params`: concatenate camera (3, 4) row-major, shape and expression.

    Parameters
    ----------
    camera : (3, 4) or (B, 3, 4)
    shape : (Ks,) or (B, Ks)
    expression : (Ke,) or (B, Ke); (12 + Ks + Ke) must be one of :data:`TEMPLATES`.

    Returns
    -------
    (L,) or (B, L) float64.
    """
    cam = check_array(camera, "camera", (..., 3, 4), what="(3x4 affine camera)", copy=True)
    s = np.asarray(shape, dtype=np.float64)
    e = np.asarray(expression, dtype=np.float64)
    lead = cam.shape[:-2]
    for name, a in (("shape", s), ("expression", e)):
        if a.shape[:-1] != lead or a.ndim != len(lead) + 1:
            raise ValueError(f"{name}: expected shape {lead + ('K',)} to match camera {cam.shape}, got {a.shape}")
    out = np.concatenate([cam.reshape(lead + (12,)), s, e], axis=-1)
    return _params(out)


def whiten_params(param, mean, std) -> np.ndarray:
    """Whitened parameters ``(param - mean) / std`` (what a 3DDFA network regresses).

    Parameters
    ----------
    param : (L,) or (B, L)
    mean, std : (L,) float; std > 0 (3DDFA_V2 ``param_mean_std_62d_120x120.pkl``: keys ``mean``, ``std``)
    """
    p = _params(param)
    m, s = _mean_std(mean, std, p.shape[-1])
    return (p - m) / s


def unwhiten_params(whitened, mean, std) -> np.ndarray:
    """``whitened * std + mean``: the raw 3DDFA parameters (3DDFA_V2 ``TDDFA.__call__``)."""
    p = _params(whitened, "whitened")
    m, s = _mean_std(mean, std, p.shape[-1])
    return p * s + m


def _mean_std(mean, std, n: int) -> tuple[np.ndarray, np.ndarray]:
    m = check_array(mean, "mean", (..., n), what=f"(the parameter mean, length {n})", copy=True)
    s = check_array(std, "std", (..., n), what=f"(the parameter std, length {n})", copy=True)
    if m.ndim != 1 or s.ndim != 1:
        raise ValueError(f"mean, std: expected 1-D arrays of length {n}, got shapes {m.shape}, {s.shape}")
    if not (s > 0).all():
        raise ValueError(f"std: expected values > 0, got minimum {s.min()}")
    return m, s
