"""Landmark fitting: recovers known synthetic parameters (landmarks rendered with the 300W-LP
transform), stays graceful with noise and yaw ~70 degrees, 3D landmarks, batch == per item."""

import numpy as np
import pytest

from bfm import fit_landmarks
from bfm.pose import pose_para_to_image
from bfm.synthetic import small_model
from meshkit.transform import euler_to_matrix

H = 450.0


@pytest.fixture(scope="module")
def model():
    return small_model()


def make_case(model, b, yaw_deg, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((b, 40)) * model.shape_std[:40]
    e = rng.standard_normal((b, 10)) * model.expression_std[:10]
    pp = np.zeros((b, 7))
    pp[:, 0] = rng.uniform(-0.25, 0.25, b)
    pp[:, 1] = np.radians(yaw_deg) * rng.uniform(0.8, 1.0, b) * rng.choice([-1, 1], b)
    pp[:, 2] = rng.uniform(-0.25, 0.25, b)
    pp[:, 3:5] = rng.uniform(180, 270, (b, 2))
    pp[:, 6] = rng.uniform(0.001, 0.0015, b)
    verts = model.reconstruct(a, e).astype(np.float64)
    lm = pose_para_to_image(verts, pp, H)[:, model.landmarks, :2]
    return a, e, pp, verts, lm


def face_size(lm):
    return np.linalg.norm(lm.max(1) - lm.min(1), axis=-1)  # bbox diagonal of the landmarks


def rotation_error_deg(p1, p2):
    r1, r2 = euler_to_matrix(p1[..., :3]), euler_to_matrix(p2[..., :3])
    c = (np.einsum("...ij,...ij->...", r1, r2) - 1) / 2
    return np.degrees(np.arccos(np.clip(c, -1, 1)))


def test_recovers_parameters_without_noise(model):
    a, e, pp, verts, lm = make_case(model, 6, 40, seed=0)
    f = fit_landmarks(model, lm, reg=1e-8, image_height=H)
    err = np.linalg.norm(f.landmarks - lm, axis=-1).mean(-1) / face_size(lm)
    assert err.max() < 0.01 and (f.residual / face_size(lm)).max() < 0.01
    # identity + expression recovered: the dense mesh matches within 1% of the face width
    dense = np.linalg.norm(model.reconstruct(f.shape, f.expression) - verts, axis=-1).mean(-1)
    assert dense.max() < 0.01 * 150_000
    assert rotation_error_deg(f.pose_para, pp).max() < 1.0
    np.testing.assert_allclose(f.pose_para[:, 6], pp[:, 6], rtol=0.01)
    np.testing.assert_allclose(f.pose_para[:, 3:5], pp[:, 3:5], atol=1.0)
    # the returned camera reproduces the fitted landmarks through the 300W-LP transform
    again = pose_para_to_image(model.reconstruct(f.shape, f.expression).astype(np.float64), f.pose_para, H)
    np.testing.assert_allclose(again[:, model.landmarks, :2], f.landmarks, atol=1e-6)


def test_noise_and_large_yaw_are_graceful(model):
    a, e, pp, verts, lm = make_case(model, 6, 70, seed=1)
    noisy = lm + np.random.default_rng(2).normal(0, 1.0, lm.shape)  # ~0.5% of a ~200 px face
    f = fit_landmarks(model, noisy, image_height=H)
    assert np.isfinite(f.shape).all() and np.isfinite(f.pose_para).all()
    err = np.linalg.norm(f.landmarks - lm, axis=-1).mean(-1) / face_size(lm)
    assert err.max() < 0.02
    assert rotation_error_deg(f.pose_para, pp).max() < 15.0
    assert (np.abs(np.degrees(f.pose_para[:, 1])) > 45).all()  # still a large yaw, same side
    assert (np.sign(f.pose_para[:, 1]) == np.sign(pp[:, 1])).all()
    # the prior keeps the coefficients plausible: within a few standard deviations
    assert (np.abs(f.shape / model.shape_std[:40]) < 6).all()


def test_three_d_landmarks(model):
    a, e, pp, verts, _ = make_case(model, 3, 30, seed=3)
    lm3 = pose_para_to_image(verts, pp, H)[:, model.landmarks]
    f = fit_landmarks(model, lm3, reg=1e-8, image_height=H)
    assert f.landmarks.shape == (3, 68, 3)
    assert (f.residual / face_size(lm3[..., :2])).max() < 1e-3
    np.testing.assert_allclose(f.pose_para[:, 3:], pp[:, 3:], rtol=1e-3, atol=0.5)


def test_batch_equals_per_item(model):
    *_, lm = make_case(model, 3, 20, seed=4)
    f = fit_landmarks(model, lm, image_height=H)
    for i in range(3):
        g = fit_landmarks(model, lm[i], image_height=H)
        assert g.shape.shape == (40,) and g.landmarks.shape == (68, 2)
        np.testing.assert_allclose(g.shape, f.shape[i], rtol=1e-6, atol=1e-6 * model.shape_std[0])
        np.testing.assert_allclose(g.pose_para, f.pose_para[i], rtol=1e-6, atol=1e-9)


def test_more_regularisation_shrinks_coefficients(model):
    *_, lm = make_case(model, 2, 10, seed=5)
    loose = fit_landmarks(model, lm, reg=1e-6, image_height=H)
    tight = fit_landmarks(model, lm, reg=1.0, image_height=H)
    assert (np.linalg.norm(tight.shape / model.shape_std[:40], axis=1)
            < np.linalg.norm(loose.shape / model.shape_std[:40], axis=1)).all()
    assert (tight.residual > loose.residual).all()


def test_bad_input(model):
    with pytest.raises(ValueError, match="68"):
        fit_landmarks(model, np.zeros((67, 2)))
    with pytest.raises(ValueError, match="finite"):
        fit_landmarks(model, np.full((68, 2), np.nan))
    with pytest.raises(TypeError, match="landmarks"):
        fit_landmarks(model, np.zeros((68, 2), dtype=object))
    few = model.with_landmarks(model.landmarks[:8])  # 16 coordinates for 6 pose + 50 coefficients
    with pytest.raises(ValueError, match="reg"):
        fit_landmarks(few, np.random.default_rng(0).normal(size=(8, 2)), reg=0.0)
    with pytest.raises(ValueError, match="reg"):
        fit_landmarks(model, np.zeros((68, 2)), reg=-1.0)
    with pytest.raises(TypeError, match="model"):
        fit_landmarks("model", np.zeros((68, 2)))
