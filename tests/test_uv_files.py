"""UV layouts as data: BFM_UV.mat written exactly in the real layout (REAL_FILES.md) and read back by an
independent reader (scipy.io, as face3d's load_uv_coords does), and the synthetic template's UV unwrap
(smooth, no overlaps) checked against brute-force point location."""

import numpy as np
import pytest
import scipy.io

from bfm.formats import UV_KEY, read_uv, write_uv
from meshkit.synthetic import face_template, template_uv


def test_bfm_uv_mat_has_the_real_layout(tmp_path):
    """REAL_FILES.md: 3DDFA_V2 BFM_UV.mat holds `UV` (53215, 2) float64 in [0, 1] x [0, 1]."""
    v, _ = face_template()
    uv = template_uv(v)
    path = write_uv(tmp_path / "BFM_UV.mat", uv)
    d = scipy.io.loadmat(str(path))  # face3d: sio.loadmat(path)['UV']
    assert UV_KEY == "UV" and [k for k in d if not k.startswith("__")] == ["UV"]
    a = d["UV"]
    assert a.shape == (53215, 2) and a.dtype == np.float64
    assert a.min() >= 0.0 and a.max() <= 1.0 and np.isclose(a.min(), 0) and np.isclose(a.max(), 1)
    np.testing.assert_array_equal(a, uv)
    np.testing.assert_array_equal(read_uv(path), uv)


def test_npy_round_trip_and_bad_files(tmp_path):
    uv = np.array([[0.0, 0.5], [1.0, 0.25], [0.5, 1.0]])
    np.testing.assert_array_equal(np.load(write_uv(tmp_path / "uv.npy", uv)), uv)
    np.testing.assert_array_equal(read_uv(tmp_path / "uv.npy"), uv)
    scipy.io.savemat(str(tmp_path / "other.mat"), {"uv_coords": uv})
    with pytest.raises(ValueError, match=r"expected the variable 'UV' \(N, 2\) float64, found uv_coords \(3, 2\)"):
        read_uv(tmp_path / "other.mat")
    scipy.io.savemat(str(tmp_path / "big.mat"), {"UV": uv * 2})
    with pytest.raises(ValueError, match=r"expected u and v in \[0, 1\], got values in \[0, 2\]"):
        read_uv(tmp_path / "big.mat")
    scipy.io.savemat(str(tmp_path / "three.mat"), {"UV": np.zeros((4, 3))})
    with pytest.raises(ValueError, match=r"\(V, 2\)"):
        read_uv(tmp_path / "three.mat")
    with pytest.raises(ValueError, match=r"path: expected a file name ending in \.mat or \.npy, got 'uv\.txt'"):
        write_uv(tmp_path / "uv.txt", uv)
    with pytest.raises(ValueError, match=r"uv: expected u and v in \[0, 1\]"):
        write_uv(tmp_path / "neg.mat", -uv)
    with pytest.raises(FileNotFoundError):
        read_uv(tmp_path / "missing.mat")
    assert not (tmp_path / "neg.mat").exists()


def _signed_areas(uv, f):
    a, b, c = uv[f[:, 0]], uv[f[:, 1]], uv[f[:, 2]]
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))


def _cover_counts(uv, f, points, chunk=64):
    """How many UV triangles contain each point (brute force; points on edges count for each, so
    the points are random and almost surely off every edge)."""
    a, b, c = uv[f[:, 0]], uv[f[:, 1]], uv[f[:, 2]]

    def left_of(p, s, t):  # p (P, 1, 2) strictly left of every edge s -> t (T, 2): (P, T) bool
        return (t[:, 0] - s[:, 0]) * (p[..., 1] - s[:, 1]) - (t[:, 1] - s[:, 1]) * (p[..., 0] - s[:, 0]) > 0

    counts = np.zeros(len(points), dtype=np.int64)
    for i in range(0, len(points), chunk):
        p = points[i:i + chunk, None, :]
        counts[i:i + chunk] = (left_of(p, a, b) & left_of(p, b, c) & left_of(p, c, a)).sum(axis=1)
    return counts


@pytest.mark.parametrize("n", [2000, 53215])
def test_template_uv_is_a_smooth_unwrap_without_overlaps(n):
    v, f = face_template(n)
    uv = template_uv(v)
    assert uv.shape == (n, 2) and uv.dtype == np.float64
    # smooth: affine in the positions
    lo, hi = v[:, :2].min(0), v[:, :2].max(0)
    np.testing.assert_allclose(uv * (hi - lo) + lo, v[:, :2], rtol=0, atol=1e-9 * np.ptp(v))
    # no folds: every triangle keeps its counter-clockwise orientation
    areas = _signed_areas(uv, f)
    assert areas.min() > 0
    # no overlaps: random points in the footprint lie in exactly one triangle, outside it in none
    rng = np.random.default_rng(0)
    counts = _cover_counts(uv, f, rng.uniform(0, 1, size=(300 if n > 10_000 else 2000, 2)))
    assert counts.max() == 1 and counts.sum() > 0
    # and the covered area is the area the triangles add up to (no double counting): fraction of
    # points covered vs. the triangles' total area
    assert abs(counts.mean() - areas.sum()) < 4 * np.sqrt(areas.sum() * (1 - areas.sum()) / len(counts))


def test_template_uv_is_mirror_symmetric():
    """The face is symmetric about x = 0, so u -> 1 - u maps the layout onto itself (symmetric_fill)."""
    from scipy.spatial import cKDTree

    v, _ = face_template(2000)
    uv = template_uv(v)
    mirrored = np.c_[1 - uv[:, 0], uv[:, 1]]
    dist, _ = cKDTree(uv).query(mirrored)
    assert dist.max() < 1e-9


def test_synthetic_model_mean_gets_the_template_layout():
    from bfm.synthetic import small_model

    model = small_model()
    v, f = face_template(2000)
    np.testing.assert_allclose(template_uv(model.mean), template_uv(v), atol=1e-6)
    assert _signed_areas(template_uv(model.mean), model.triangles).min() > 0
