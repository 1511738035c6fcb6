"""The synthetic writers write files exactly like the real ones: every fact of ../shared/REAL_FILES.md
that a writer produces (keys, shapes, dtypes, index base, (3, F) layout, clockwise winding with the
3 % / 97 % measure), checked by reading the written files with scipy.io, pickle and h5py directly,
never with our loaders. The winding measure is recomputed here from its definition."""

import pickle

import numpy as np
import pytest
import scipy.io

from bfm import MorphableModel
from bfm.formats import load_model
from bfm.synthetic import (
    small_model,
    synthetic_model,
    synthetic_model_full,
    write_3ddfa_pkl,
    write_bfm2009,
    write_face3d_mat,
)
from bfm.synthetic_300wlp import write_synthetic_300wlp
from tests._helpers import bfm_like_face


def outward(mean, tri0):
    """REAL_FILES.md's measure, from its definition: the fraction of triangles whose normal
    cross(v1 - v0, v2 - v0) points away from the mesh centroid."""
    v = np.asarray(mean, np.float64)
    a, b, c = v[tri0[:, 0]], v[tri0[:, 1]], v[tri0[:, 2]]
    n = np.cross(b - a, c - a)
    return float(np.mean(np.sum(((a + b + c) / 3 - v.mean(axis=0)) * n, axis=1) > 0))


def assert_clockwise(mean, tri0):
    """Stored order mostly inward (3 % outward on the real files), reversed mostly outward (97 %).

    Bounds at 20 % / 80 %: the real mean face wraps round to the ears (z spans 148,000 um), the
    synthetic one is a shallower height field (55,000 um deep) and measures about 10 % / 90 %."""
    assert outward(mean, tri0) < 0.2
    assert outward(mean, tri0[:, ::-1]) > 0.8


@pytest.fixture(scope="module")
def model():
    return small_model()


def test_face3d_bfm_mat_tri_is_uint16_one_based_3xf_clockwise(tmp_path, model):
    m = scipy.io.loadmat(write_face3d_mat(tmp_path / "BFM.mat", model))["model"][0, 0]
    tri = m["tri"]
    assert tri.dtype == np.uint16 and tri.shape == (3, len(model.triangles))
    assert tri.min() == 1 and tri.max() == model.n_vertices  # 1-based
    mean = (m["shapeMU"] + m["expMU"]).reshape(-1, 3)
    assert_clockwise(mean, tri.T.astype(np.int64) - 1)
    assert m["tri_mouth"].dtype == np.uint16 and m["tri_mouth"].shape[0] == 3


def test_3ddfa_v2_tri_pkl_is_int32_zero_based_3xf_clockwise(tmp_path, model):
    paths = write_3ddfa_pkl(tmp_path / "bfm_noneck_v3.pkl", model, tri_path=tmp_path / "tri.pkl",
                            param_mean_std_path=tmp_path / "param_mean_std_62d_120x120.pkl")
    with open(paths["tri"], "rb") as fh:
        tri = pickle.load(fh)
    assert tri.dtype == np.int32 and tri.shape == (3, len(model.triangles))
    assert tri.min() == 0 and tri.max() == model.n_vertices - 1  # 0-based
    with open(paths["pkl"], "rb") as fh:
        d = pickle.load(fh)
    assert d["u"].dtype == np.float32 and d["u"].shape == (3 * model.n_vertices, 1)  # interleaved x, y, z
    assert_clockwise(d["u"].reshape(-1, 3), tri.T.astype(np.int64))
    # keypoints: 68 landmarks as x, y, z flat indices, int64 (204,); vertex = kp[::3] // 3
    kp = d["keypoints"]
    assert kp.dtype == np.int64 and kp.shape == (204,)
    np.testing.assert_array_equal(kp[::3] // 3, model.landmarks)
    with open(paths["param_mean_std"], "rb") as fh:
        ms = pickle.load(fh)
    assert set(ms) == {"mean", "std"}
    assert all(ms[k].dtype == np.float32 and ms[k].shape == (62,) for k in ms)


def test_bfm2009_tl_is_one_based_fx3_clockwise(tmp_path):
    full, trim = synthetic_model_full(2000, 40, 10, 20)
    d = scipy.io.loadmat(write_bfm2009(tmp_path, full, trim=trim)["mat"])
    tl = d["tl"]
    assert tl.shape == (len(full.triangles), 3) and tl.min() == 1 and tl.max() == full.n_vertices
    assert_clockwise(d["shapeMU"].reshape(-1, 3), tl.astype(np.int64) - 1)


@pytest.mark.slow
def test_full_size_synthetic_face_is_clockwise_as_written(tmp_path):
    """On the 53,215-vertex synthetic face: 105,840 triangles, stored clockwise (REAL_FILES.md's first rows)."""
    model = synthetic_model()
    m = scipy.io.loadmat(write_face3d_mat(tmp_path / "BFM.mat", model))["model"][0, 0]
    assert m["tri"].shape == (3, 105_840) and m["tri"].dtype == np.uint16
    assert_clockwise((m["shapeMU"] + m["expMU"]).reshape(-1, 3), m["tri"].T.astype(np.int64) - 1)


def test_300w_lp_sample_mat_keys_shapes_and_dtypes(tmp_path, model):
    root = tmp_path / "300W_LP"
    write_synthetic_300wlp(root, model, n_per_subset=2, seed=5, face_px=300.0, subsets=("AFW",))
    expected = {  # key: (shape, dtype), the table of REAL_FILES.md
        "Pose_Para": ((1, 7), np.float32), "Shape_Para": ((199, 1), np.float64), "Exp_Para": ((29, 1), np.float64),
        "Tex_Para": ((199, 1), np.float64), "Color_Para": ((1, 7), np.float32), "Illum_Para": ((1, 10), np.float64),
        "pt2d": ((2, 68), np.float64), "roi": ((1, 4), np.int16),
    }
    mats = sorted(root.glob("AFW*/*.mat"))
    assert len(mats) == 4
    rois = []
    for p in mats:
        mat = scipy.io.loadmat(str(p))
        assert {k for k in mat if not k.startswith("__")} == set(expected)
        assert {k: (mat[k].shape, mat[k].dtype) for k in expected} == expected
        x, y = mat["pt2d"]
        roi = mat["roi"].reshape(-1).astype(np.int64)
        # the roi is a box around the landmarks, in the same pixel frame (x row, y row of pt2d)
        assert roi[0] <= x.min() and roi[1] <= y.min() and roi[2] >= x.max() and roi[3] >= y.max()
        assert mat["Pose_Para"][0, 6] > 0  # scale
        rois.append(roi)
    # like the real roi (e.g. [53, -166, 638, 419] in a 450-px image), it is not clipped to the image
    rois = np.array(rois)
    assert (rois < 0).any() or (rois > 450).any()


def test_winding_holds_on_a_mesh_with_the_real_connectivity(tmp_path):
    """The writers' clockwise order and the loaders' measure do not depend on the synthetic template:
    the same on a grid of alternating diagonals with a rim and a mouth opening (REAL_FILES.md's topology)."""
    v, f = bfm_like_face()
    n = len(v)
    used = np.unique(f)
    model = MorphableModel(mean=v, shape_basis=np.zeros((3 * n, 1)), shape_std=np.ones(1),
                           expression_basis=np.zeros((3 * n, 1)), expression_std=np.ones(1), triangles=f,
                           landmarks=used[np.linspace(0, used.size - 1, 68).astype(int)])
    m = scipy.io.loadmat(write_face3d_mat(tmp_path / "BFM.mat", model))["model"][0, 0]
    assert_clockwise(m["shapeMU"].reshape(-1, 3), m["tri"].T.astype(np.int64) - 1)
    got = load_model(tmp_path / "BFM.mat")
    assert got.stored_winding == "clockwise"
    np.testing.assert_array_equal(got.triangles, f)
