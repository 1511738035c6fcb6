import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from meshkit import transform as T


def _rx(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


angles = st.tuples(*(st.floats(-3.1, 3.1),) * 3)


@settings(max_examples=100, deadline=None)
@given(angles)
def test_standard_is_rz_ry_rx_and_matches_scipy(a):
    p, y, r = a
    R = T.euler_to_matrix(a, convention="standard")
    np.testing.assert_allclose(R, _rz(r) @ _ry(y) @ _rx(p), atol=1e-12)
    # scipy: extrinsic x, then y, then z
    np.testing.assert_allclose(R, Rotation.from_euler("xyz", [p, y, r]).as_matrix(), atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(angles)
def test_3ddfa_is_product_of_transposed_factors(a):
    p, y, r = a
    R = T.euler_to_matrix(a, convention="3ddfa")
    # face3d angle2matrix_3ddfa: Rx'(p) Ry'(y) Rz'(r) with each factor the transposed rotation
    np.testing.assert_allclose(R, _rx(p).T @ _ry(y).T @ _rz(r).T, atol=1e-12)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0)


@settings(max_examples=200, deadline=None)
@given(angles, st.sampled_from(["3ddfa", "standard"]))
def test_round_trip_reproduces_rotation(a, conv):
    R = T.euler_to_matrix(a, convention=conv)
    back = T.matrix_to_euler(R, convention=conv)
    np.testing.assert_allclose(T.euler_to_matrix(back, convention=conv), R, atol=1e-9)
    assert -np.pi / 2 - 1e-12 <= back[1] <= np.pi / 2 + 1e-12


def test_round_trip_recovers_angles_in_principal_range():
    a = np.array([0.3, -0.7, 1.2])
    for conv in ("3ddfa", "standard"):
        np.testing.assert_allclose(T.matrix_to_euler(T.euler_to_matrix(a, convention=conv), convention=conv), a, atol=1e-12)


@pytest.mark.parametrize("yaw", [np.pi / 2, -np.pi / 2])
@pytest.mark.parametrize("conv", ["3ddfa", "standard"])
def test_gimbal_lock(yaw, conv):
    a = np.array([0.4, yaw, -0.25])
    R = T.euler_to_matrix(a, convention=conv)
    back = T.matrix_to_euler(R, convention=conv)
    assert back[2] == 0.0 and back[1] == pytest.approx(yaw)
    np.testing.assert_allclose(T.euler_to_matrix(back, convention=conv), R, atol=1e-12)


def test_batched():
    a = np.random.default_rng(0).uniform(-1, 1, size=(4, 5, 3))
    R = T.euler_to_matrix(a)
    assert R.shape == (4, 5, 3, 3)
    np.testing.assert_allclose(R[2, 3], T.euler_to_matrix(a[2, 3]))
    np.testing.assert_allclose(T.matrix_to_euler(R), a, atol=1e-12)


def test_similarity_from_points_recovers_transform():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(50, 3))
    R = Rotation.from_euler("xyz", [0.2, -0.4, 1.0]).as_matrix()
    dst = T.similarity_transform(src, 2.5, R, [1, 2, 3])
    np.testing.assert_allclose(dst, 2.5 * src @ R.T + [1, 2, 3])
    s, R2, t = T.similarity_from_points(src, dst)
    assert s == pytest.approx(2.5)
    np.testing.assert_allclose(R2, R, atol=1e-10)
    np.testing.assert_allclose(t, [1, 2, 3], atol=1e-10)


def test_projections_and_flip():
    v = np.array([[1.0, 2.0, 4.0], [-2.0, 0.5, 2.0]])
    np.testing.assert_array_equal(T.orthographic_project(v), v[:, :2])
    np.testing.assert_allclose(T.perspective_project(v, 100, (64, 48)), [[25 + 64, 50 + 48], [-100 + 64, 25 + 48]])
    f = T.flip_y(v, 120)
    np.testing.assert_array_equal(f[:, 1], 120 - v[:, 1] - 1)
    np.testing.assert_array_equal(T.flip_y(f, 120), v)


def test_bad_input():
    with pytest.raises(ValueError, match="convention"):
        T.euler_to_matrix([0, 0, 0], convention="zyx")
    with pytest.raises(ValueError, match=r"angles: expected shape \(\.\.\., 3\)"):
        T.euler_to_matrix([0, 0])
    with pytest.raises(ValueError, match="finite"):
        T.euler_to_matrix([0, np.nan, 0])
    with pytest.raises(ValueError, match="R: expected shape"):
        T.matrix_to_euler(np.eye(2))
    with pytest.raises(ValueError, match="in front of the camera"):
        T.perspective_project([[0, 0, -1.0]], 10)
