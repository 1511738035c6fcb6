"""MorphableModel: batched reconstruction vs a per-component float64 loop, units, subset vs brute
force, validation; the synthetic model's invariants (orthonormal bases, decaying spectra,
landmarks on the right features, full/trimmed variants)."""

from dataclasses import FrozenInstanceError

import numpy as np
import pytest

from bfm import MorphableModel
from bfm.synthetic import HALF_HEIGHT, HALF_WIDTH, small_model, synthetic_model, synthetic_model_full
from meshkit import face_normals


@pytest.fixture(scope="module")
def model():
    return small_model()


def naive(model, shape=None, expression=None):
    """Reference: mean + sum_k a_k * column_k, one component at a time, float64, (N, 3) by reshape."""
    v = model.mean.astype(np.float64).reshape(-1).copy()
    if shape is not None:
        for k, a in enumerate(shape):
            v += float(a) * model.shape_basis[:, k].astype(np.float64)
    if expression is not None:
        for k, a in enumerate(expression):
            v += float(a) * model.expression_basis[:, k].astype(np.float64)
    return v.reshape(-1, 3)


def test_reconstruct_matches_naive_loop(model):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((5, model.n_shape)) * model.shape_std
    e = rng.standard_normal((5, model.n_expression)) * model.expression_std
    out = model.reconstruct(a, e)
    assert out.shape == (5, model.n_vertices, 3) and out.dtype == np.float32
    for i in range(5):
        ref = naive(model, a[i], e[i])
        assert np.abs(out[i] - ref).max() < 1e-6 * np.abs(ref).max() + 1e-2


def test_unbatched_none_and_leading_components(model):
    assert np.array_equal(model.reconstruct(), model.mean)
    a = np.linspace(-1, 1, 7) * model.shape_std[:7]
    out = model.reconstruct(a)
    assert out.shape == (model.n_vertices, 3)
    np.testing.assert_allclose(out, naive(model, a), rtol=0, atol=0.05)
    # fewer coefficients == zero-padded full vector
    full = np.zeros(model.n_shape)
    full[:7] = a
    np.testing.assert_allclose(out, model.reconstruct(full), rtol=0, atol=0.05)
    # expression only
    e = np.ones(3) * model.expression_std[:3]
    np.testing.assert_allclose(model.reconstruct(expression=e), naive(model, None, e), rtol=0, atol=0.05)


def test_one_dim_argument_broadcasts_over_batch(model):
    a = np.ones(model.n_shape) * 0.5 * model.shape_std
    e = np.random.default_rng(1).standard_normal((3, 4)) * model.expression_std[:4]
    out = model.reconstruct(a, e)
    assert out.shape == (3, model.n_vertices, 3)
    for i in range(3):
        np.testing.assert_allclose(out[i], naive(model, a, e[i]), rtol=0, atol=0.05)


def test_units_std_multiplies_by_std(model):
    z = np.random.default_rng(2).standard_normal((2, 10))
    ze = np.random.default_rng(3).standard_normal((2, 5))
    a = model.reconstruct(z, ze, units="std")
    b = model.reconstruct(z * model.shape_std[:10], ze * model.expression_std[:5], units="raw")
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-2)


@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        (dict(shape=np.ones(41)), ValueError, ["at most 40", "41"]),
        (dict(expression=np.ones(11)), ValueError, ["at most 10", "11"]),
        (dict(shape=np.array([1.0, np.nan])), ValueError, ["finite", "NaN"]),
        (dict(expression=np.array([[np.inf]])), ValueError, ["finite"]),
        (dict(shape="1,2"), TypeError, ["shape"]),
        (dict(shape=np.array(["a"])), TypeError, ["dtype"]),
        (dict(shape=np.ones((2, 2, 2))), ValueError, ["(K,) or (B, K)"]),
        (dict(shape=np.ones((2, 3)), expression=np.ones((3, 2))), ValueError, ["batch"]),
        (dict(shape=np.ones(3), units="sigma"), ValueError, ["units"]),
    ],
)
def test_reconstruct_bad_input(model, kwargs, exc, words):
    with pytest.raises(exc) as ei:
        model.reconstruct(**kwargs)
    for w in words:
        assert w in str(ei.value)


def test_texture(model):
    t = np.random.default_rng(4).standard_normal((2, 5)) * model.texture_std[:5]
    out = model.reconstruct_texture(t)
    ref = model.texture_mean.astype(np.float64).reshape(-1) + model.texture_basis[:, :5].astype(np.float64) @ t.T[:, 1]
    np.testing.assert_allclose(out[1], ref.reshape(-1, 3), rtol=0, atol=1e-3)
    assert np.array_equal(model.reconstruct_texture(), model.texture_mean)
    plain = MorphableModel(model.mean, model.shape_basis, model.shape_std, model.expression_basis, model.expression_std,
                           model.triangles, model.landmarks)
    with pytest.raises(ValueError, match="no texture"):
        plain.reconstruct_texture()


def test_frozen_and_read_only(model):
    with pytest.raises(FrozenInstanceError):
        model.mean = np.zeros((3, 3))
    with pytest.raises(ValueError):
        model.mean[0, 0] = 1.0
    with pytest.raises(ValueError):
        model.shape_basis[0, 0] = 1.0


def test_constructor_validation(model):
    base = dict(mean=model.mean, shape_basis=model.shape_basis, shape_std=model.shape_std,
                expression_basis=model.expression_basis, expression_std=model.expression_std,
                triangles=model.triangles, landmarks=model.landmarks)
    with pytest.raises(ValueError, match="shape_basis"):
        MorphableModel(**{**base, "shape_basis": model.shape_basis[:-3]})
    with pytest.raises(ValueError, match="shape_std"):
        MorphableModel(**{**base, "shape_std": model.shape_std[:-1]})
    with pytest.raises(ValueError, match="> 0"):
        MorphableModel(**{**base, "expression_std": -model.expression_std})
    with pytest.raises(ValueError, match="triangles"):
        MorphableModel(**{**base, "triangles": model.triangles + model.n_vertices})
    with pytest.raises(ValueError, match="landmarks"):
        MorphableModel(**{**base, "landmarks": np.array([model.n_vertices])})
    with pytest.raises(TypeError, match="landmarks"):
        MorphableModel(**{**base, "landmarks": np.array([1.5])})


def test_subset_matches_brute_force(model):
    rng = np.random.default_rng(5)
    keep = rng.permutation(model.n_vertices)[: model.n_vertices * 3 // 4]
    keep = np.union1d(keep, model.landmarks)
    keep = rng.permutation(keep)  # arbitrary order: new vertex i = old keep[i]
    sub = model.subset(keep)
    a = rng.standard_normal((2, model.n_shape)) * model.shape_std
    e = rng.standard_normal((2, model.n_expression)) * model.expression_std
    np.testing.assert_allclose(sub.reconstruct(a, e), model.reconstruct(a, e)[:, keep], rtol=0, atol=1e-2)
    # triangles: brute force over the old list, keeping order
    pos = {int(v): i for i, v in enumerate(keep)}
    ref = [[pos[int(v)] for v in t] for t in model.triangles if all(int(v) in pos for v in t)]
    assert np.array_equal(sub.triangles, np.array(ref))
    assert np.array_equal(keep[sub.landmarks], model.landmarks)
    np.testing.assert_array_equal(sub.texture_mean, model.texture_mean[keep])


def test_subset_refuses_removing_landmarks(model):
    keep = np.setdiff1d(np.arange(model.n_vertices), model.landmarks[[3, 40]])
    with pytest.raises(ValueError, match="landmark"):
        model.subset(keep)
    with pytest.raises(ValueError, match="distinct"):
        model.subset(np.array([0, 0, 1]))
    with pytest.raises(ValueError, match="range|\\["):
        model.subset(np.array([model.n_vertices]))


# ---------------------------------------------------------------------------------------------
# synthetic model


def test_synthetic_bases_orthonormal_with_decaying_std(model):
    for basis, std in ((model.shape_basis, model.shape_std), (model.expression_basis, model.expression_std),
                       (model.texture_basis, model.texture_std)):
        g = basis.astype(np.float64).T @ basis.astype(np.float64)
        np.testing.assert_allclose(g, np.eye(basis.shape[1]), atol=1e-5)
        assert (np.diff(std) < 0).all()


def test_synthetic_deterministic_and_seeded():
    a, b = small_model(0), small_model(0)
    assert np.array_equal(a.shape_basis, b.shape_basis)
    c = small_model(1)
    assert not np.allclose(a.shape_basis, c.shape_basis)


def test_synthetic_fields_are_smooth(model):
    # neighbouring vertices move together: mean edge-length change << mean displacement
    f = model.triangles
    d = model.shape_basis[:, 0].reshape(-1, 3).astype(np.float64)
    edge_diff = np.linalg.norm(d[f[:, 0]] - d[f[:, 1]], axis=1).mean()
    assert edge_diff < 0.15 * np.linalg.norm(d, axis=1).mean()


def test_expression_concentrated_on_mouth_eyes_brows(model):
    u = model.mean[:, 0] / HALF_WIDTH
    v = model.mean[:, 1] / HALF_HEIGHT
    energy = (model.expression_basis.astype(np.float64).reshape(-1, 3, model.n_expression) ** 2).sum((1, 2))
    mouth = (np.abs(u) < 0.35) & (np.abs(v + 0.58) < 0.15)
    forehead = v > 0.7
    assert energy[mouth].mean() > 20 * energy[forehead].mean()


def test_synthetic_landmarks_on_features(model):
    lm = model.mean[model.landmarks]
    assert len(np.unique(model.landmarks)) == 68
    jaw, brows, nose, eyes, mouth = lm[:17], lm[17:27], lm[27:36], lm[36:48], lm[48:]
    assert np.argmin(jaw[:, 1]) == 8  # chin is the lowest jaw point
    assert jaw[0, 0] < 0 < jaw[16, 0]  # iBUG point 0 on the subject's right = -x (image left)
    assert (brows[:, 1].min() > eyes[:, 1].max())  # brows above eyes
    assert eyes[:6, 0].max() < 0 < eyes[6:, 0].min()  # right eye 36-41 at -x
    assert nose[3, 2] == nose[:, 2].max()  # nose tip (30) is the most protruding nose point
    assert nose[3, 2] > np.percentile(model.mean[:, 2], 99)
    assert mouth[:, 1].max() < nose[4:, 1].min()  # mouth below the nostrils
    assert mouth[0, 0] < mouth[3, 0] < mouth[6, 0]  # corners 48 / 54 around the centre 51
    # eye points are in the sockets: lower than the brow ridge in z
    assert eyes[:, 2].mean() < brows[:, 2].mean()


def test_synthetic_normals_point_outward(model):
    """REAL_FILES.md's measure on the mean face: the share of triangles whose normal points away
    from the centroid (0.97 on the real BFM mean once re-wound; lips, eyelids and nostrils fold
    inward), rather than "faces +z", which only a height field such as the template satisfies. The
    synthetic face is shallower than the real head (55,000 against 148,000 um deep) and measures
    about 0.9."""
    n = face_normals(model.mean, model.triangles)
    centres = model.mean[model.triangles].mean(axis=1)
    outward = np.einsum("ij,ij->i", centres - model.mean.mean(axis=0), n) > 0
    assert outward.mean() > 0.8


def test_full_variant_trims_to_model():
    full, trim = synthetic_model_full(2000, 40, 10, 20)
    m = small_model()
    assert full.n_vertices > m.n_vertices and len(trim) == m.n_vertices
    sub = full.subset(trim)
    for k in ("mean", "shape_basis", "expression_basis", "texture_basis", "triangles", "landmarks"):
        assert np.array_equal(getattr(sub, k), getattr(m, k)), k
    extra = np.setdiff1d(np.arange(full.n_vertices), trim)
    assert (full.mean[extra, 1] < m.mean[:, 1].min()).all()  # the extra vertices are below the chin
    assert not full.expression_basis[(3 * extra[:, None] + np.arange(3)).ravel()].any()


@pytest.mark.slow
def test_default_sizes_match_the_bfm():
    full, trim = synthetic_model_full()
    assert full.n_vertices == 53_490 and len(trim) == 53_215
    m = synthetic_model()
    assert (m.n_vertices, len(m.triangles), m.n_shape, m.n_expression, m.n_texture) == (53_215, 105_840, 199, 29, 199)
    b = m.shape_basis[:, :20].astype(np.float64)
    np.testing.assert_allclose(b.T @ b, np.eye(20), atol=1e-5)
    assert len(np.unique(m.landmarks)) == 68
