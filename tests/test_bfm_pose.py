"""300W-LP / 3DDFA pose conventions against an independent re-derivation: rotation matrices of known
angles written out by hand (face3d's angle2matrix_3ddfa form), per-vertex scalar loops, the
3DDFA reshape(3, -1, order='F') reconstruction, and the y flip."""

import math

import numpy as np
import pytest

from bfm import pose
from bfm.synthetic import small_model


def r_3ddfa_by_hand(pitch, yaw, roll):
    """R = Rx Ry Rz with the sign pattern of face3d's angle2matrix_3ddfa, written out."""
    cx, sx, cy, sy, cz, sz = math.cos(pitch), math.sin(pitch), math.cos(yaw), math.sin(yaw), math.cos(roll), math.sin(roll)
    rx = np.array([[1, 0, 0], [0, cx, sx], [0, -sx, cx]])
    ry = np.array([[cy, 0, -sy], [0, 1, 0], [sy, 0, cy]])
    rz = np.array([[cz, sz, 0], [-sz, cz, 0], [0, 0, 1]])
    return rx @ ry @ rz


POSES = [
    np.array([0.0, 0.0, 0.0, 100.0, 120.0, 3.0, 0.001]),
    np.array([0.2, -0.6, 0.1, 225.0, 230.0, -10.0, 0.0012]),
    np.array([-0.35, 1.2, -0.4, 200.0, 180.0, 7.0, 0.0009]),
]


@pytest.mark.parametrize("pp", POSES)
def test_pose_para_to_image_matches_hand_derivation(pp):
    rng = np.random.default_rng(0)
    v = rng.uniform(-8e4, 8e4, size=(50, 3))
    h = 450.0
    got = pose.pose_para_to_image(v, pp, h)
    r = r_3ddfa_by_hand(*pp[:3])
    for i in range(len(v)):
        x = [pp[6] * sum(r[row, c] * v[i, c] for c in range(3)) + pp[3 + row] for row in range(3)]
        assert got[i, 0] == pytest.approx(x[0], abs=1e-9)
        assert got[i, 1] == pytest.approx(h - x[1] - 1, abs=1e-9)  # the y flip
        assert got[i, 2] == pytest.approx(x[2], abs=1e-9)


def test_y_flip_and_yaw_direction():
    v = np.array([[0.0, 1000.0, 0.0], [0.0, -1000.0, 0.0], [1000.0, 0.0, 0.0]])
    img = pose.pose_para_to_image(v, [0, 0, 0, 0, 0, 0, 1.0], 100)
    assert img[0, 1] < img[1, 1]  # higher in the model = higher in the image (smaller row)
    assert img[0, 1] == pytest.approx(100 - 1000 - 1)
    # yaw > 0 under R_3ddfa brings the +x side (subject's left) towards the viewer (+z)
    turned = pose.pose_para_to_image(v, [0, 0.5, 0, 0, 0, 0, 1.0], 100)
    assert turned[2, 2] == pytest.approx(1000 * math.sin(0.5))


def test_stored_row_shape_and_batch():
    v = np.random.default_rng(1).uniform(-1, 1, (4, 20, 3)) * 1e5
    pps = np.stack([POSES[1], POSES[2], POSES[0], POSES[1]])
    out = pose.pose_para_to_image(v, pps, 450)
    for i in range(4):
        np.testing.assert_allclose(out[i], pose.pose_para_to_image(v[i], pps[i][None, :], 450))  # (1, 7) as stored
    assert pose.pose_para_to_image(v.astype(np.float32), POSES[1], 450).dtype == np.float32


@pytest.mark.parametrize("pp", POSES)
def test_image_to_model_inverts(pp):
    v = np.random.default_rng(2).uniform(-1, 1, (30, 3)) * 1e5
    np.testing.assert_allclose(pose.image_to_model(pose.pose_para_to_image(v, pp, 450), pp, 450), v, atol=1e-6)


@pytest.mark.parametrize("pp", POSES)
def test_camera_round_trip_and_angles(pp):
    cam = pose.pose_para_to_camera(pp)
    np.testing.assert_allclose(cam[:, :3], pp[6] * r_3ddfa_by_hand(*pp[:3]), atol=1e-15)
    np.testing.assert_allclose(cam[:, 3], pp[3:6])
    np.testing.assert_allclose(pose.camera_to_pose_para(cam), pp, atol=1e-9)
    np.testing.assert_allclose(pose.camera_to_angles(cam.reshape(12)), pp[:3], atol=1e-9)


def test_3ddfa_v2_angle_convention_by_hand():
    rng = np.random.default_rng(3)
    for _ in range(20):
        cam = pose.pose_para_to_camera(np.r_[rng.uniform(-0.8, 0.8, 3), 0, 0, 0, 0.002])
        r = cam[:, :3] / np.linalg.norm(cam[0, :3])
        yaw = math.asin(r[2, 0])
        pitch = math.atan2(r[2, 1] / math.cos(yaw), r[2, 2] / math.cos(yaw))
        roll = math.atan2(r[1, 0] / math.cos(yaw), r[0, 0] / math.cos(yaw))
        np.testing.assert_allclose(pose.camera_to_angles(cam, convention="3ddfa_v2"), [pitch, yaw, roll], atol=1e-9)


def test_62_vector_matches_3ddfa_reconstruction():
    """3DDFA: P[:, :3] @ (u + W_shp a + W_exp e).reshape(3, -1, order='F') + P[:, 3]; equals the
    300W-LP transform before the flip when P comes from the same Pose_Para."""
    m = small_model()
    rng = np.random.default_rng(4)
    a, e = rng.standard_normal(40) * m.shape_std, rng.standard_normal(10) * m.expression_std
    pp = POSES[1]
    p62 = pose.join_params(pose.pose_para_to_camera(pp), a, e)
    assert p62.shape == (62,)
    cam, a2, e2 = pose.split_params(p62)
    flat = (m.mean.reshape(-1, 1).astype(np.float64) + m.shape_basis.astype(np.float64) @ a2[:, None]
            + m.expression_basis.astype(np.float64) @ e2[:, None])
    pts = cam[:, :3] @ flat.reshape(3, -1, order="F") + cam[:, 3:]
    ref = pose.pose_para_to_image(m.reconstruct(a, e).astype(np.float64), pp, 450)
    ref[:, 1] = 450 - ref[:, 1] - 1  # undo the flip
    np.testing.assert_allclose(pts.T, ref, rtol=1e-5, atol=1e-3)
    # 3DDFA_V2 crop flip: x - 1, z - 1, size - y
    crop = pose.camera_to_image(m.reconstruct(a, e).astype(np.float64), p62[:12], size=120)
    np.testing.assert_allclose(crop[:, 1], 120 - pts[1], rtol=1e-6, atol=1e-3)
    np.testing.assert_allclose(crop[:, 0], pts[0] - 1, rtol=1e-6, atol=1e-3)


def test_whitening_round_trip_and_templates():
    rng = np.random.default_rng(5)
    mean, std = rng.standard_normal(62), rng.uniform(0.5, 2, 62)
    p = rng.standard_normal((3, 62))
    w = pose.whiten_params(p, mean, std)
    np.testing.assert_allclose(w, (p - mean) / std)
    np.testing.assert_allclose(pose.unwhiten_params(w, mean, std), p)
    for n, (k_pose, k_shape, k_exp) in pose.TEMPLATES.items():
        cam, s, e = pose.split_params(np.arange(n, dtype=float))
        assert cam.shape == (3, 4) and s.shape == (k_shape,) and e.shape == (k_exp,) and k_pose == 12
        assert cam[0, 3] == 3 and cam[1, 0] == 4  # row-major


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda: pose.pose_para_to_image(np.zeros((3, 3)), np.zeros(6), 10), ValueError, ["pose_para", "7"]),
        (lambda: pose.pose_para_to_image(np.zeros((3, 3)), [0, np.nan, 0, 0, 0, 0, 1], 10), ValueError, ["finite"]),
        (lambda: pose.pose_para_to_image(np.zeros((3, 3)), POSES[0], 0), ValueError, ["height"]),
        (lambda: pose.pose_para_to_image(np.zeros((3, 2)), POSES[0], 10), ValueError, ["vertices"]),
        (lambda: pose.pose_para_to_image(np.zeros((2, 3, 3)), np.stack([POSES[0]] * 3), 10), ValueError, ["batch"]),
        (lambda: pose.split_params(np.zeros(61)), ValueError, ["62", "61"]),
        (lambda: pose.whiten_params(np.zeros(62), np.zeros(62), np.zeros(62)), ValueError, ["std", "> 0"]),
        (lambda: pose.whiten_params(np.zeros(62), np.zeros(50), np.ones(62)), ValueError, ["mean"]),
        (lambda: pose.camera_to_angles(np.zeros((3, 4))), ValueError, ["camera"]),
        (lambda: pose.camera_to_angles(np.eye(3, 4), convention="opencv"), ValueError, ["convention"]),
        (lambda: pose.pose_para_to_image(np.zeros((3, 3)), "pose", 10), TypeError, ["pose_para"]),
    ],
)
def test_bad_input(call, exc, words):
    with pytest.raises(exc) as ei:
        call()
    for w in words:
        assert w in str(ei.value)
