"""bfm.torch_model: the torch twin against the numpy conventions (meshkit.transform, bfm.model, bfm.pose),
gradients (gradcheck, float64), and the WPDC / VDC losses built on it."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from bfm.torch_model import TorchMorphableModel, euler_to_matrix  # noqa: E402
from meshkit.nn import vdc_loss, wpdc_loss, wpdc_weights  # noqa: E402
from meshkit.transform import euler_to_matrix as np_euler  # noqa: E402
from meshkit.transform import flip_y  # noqa: E402

N, KS, KE = 40, 40, 10


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(0)
    mean = rng.normal(size=(N, 3)) * 50
    ws = rng.normal(size=(3 * N, KS))
    we = rng.normal(size=(3 * N, KE)) * 0.5
    pm = rng.normal(size=62) * 0.1
    ps = rng.uniform(0.5, 2.0, size=62)
    return dict(mean=mean, ws=ws, we=we, pm=pm, ps=ps, ss=rng.uniform(1, 3, KS), es=rng.uniform(1, 3, KE))


@pytest.fixture(scope="module")
def twin(arrays):
    a = arrays
    return TorchMorphableModel(a["mean"], a["ws"], a["we"], shape_std=a["ss"], expression_std=a["es"],
                               param_mean=a["pm"], param_std=a["ps"], landmarks=np.arange(0, N, 4), dtype=torch.float64)


def _np_reconstruct(a, s, e):
    """Explicit per-component sum, interleaved rows x1, y1, z1, ..."""
    v = a["mean"].copy()
    for k in range(s.shape[0]):
        v += s[k] * a["ws"][:, k].reshape(N, 3)
    for k in range(e.shape[0]):
        v += e[k] * a["we"][:, k].reshape(N, 3)
    return v


def test_reconstruct_matches_numpy_formula(twin, arrays):
    rng = np.random.default_rng(1)
    s, e = rng.normal(size=(3, KS)), rng.normal(size=(3, KE))
    got = twin.reconstruct(torch.tensor(s), torch.tensor(e)).numpy()
    for b in range(3):
        np.testing.assert_allclose(got[b], _np_reconstruct(arrays, s[b], e[b]), rtol=1e-12, atol=1e-9)
    # fewer components than the model: the leading ones
    got = twin.reconstruct(torch.tensor(s[:, :5])).numpy()
    np.testing.assert_allclose(got[0], _np_reconstruct(arrays, s[0, :5], np.zeros(0)), atol=1e-9)
    # units="std" scales by the stds first
    got = twin.reconstruct(torch.tensor(s), torch.tensor(e), units="std").numpy()
    np.testing.assert_allclose(got[1], _np_reconstruct(arrays, s[1] * arrays["ss"], e[1] * arrays["es"]), atol=1e-9)
    # vertex subset equals the rows of the full reconstruction
    idx = [3, 0, 17]
    sub = twin.reconstruct(torch.tensor(s), torch.tensor(e), vertex_indices=idx).numpy()
    np.testing.assert_allclose(sub, twin.reconstruct(torch.tensor(s), torch.tensor(e)).numpy()[:, idx], atol=1e-12)
    with pytest.raises(ValueError, match=r"shape: expected shape \(B, K\) with K <= 40"):
        twin.reconstruct(torch.zeros(2, 41))
    with pytest.raises(ValueError, match="units"):
        twin.reconstruct(torch.zeros(2, 3), units="sigma")


def test_matches_bfm_morphable_model():
    synthetic = pytest.importorskip("bfm.synthetic")
    model = synthetic.small_model()
    t = TorchMorphableModel.from_model(model, dtype=torch.float64)
    rng = np.random.default_rng(2)
    s = rng.normal(size=(2, model.n_shape)).astype(np.float32)
    e = rng.normal(size=(2, model.n_expression)).astype(np.float32)
    for units in ("raw", "std"):
        ref = model.reconstruct(s, e, units=units)
        got = t.reconstruct(torch.tensor(s, dtype=torch.float64), torch.tensor(e, dtype=torch.float64), units=units).numpy()
        scale = np.abs(ref).max()
        np.testing.assert_allclose(got, ref, atol=1e-5 * scale)
    assert torch.equal(t.triangles, torch.tensor(np.asarray(model.triangles, dtype=np.int64)))
    assert torch.equal(t.landmarks, torch.tensor(np.asarray(model.landmarks, dtype=np.int64)))
    small = TorchMorphableModel.from_model(model, n_shape=40, n_expression=10)
    assert (small.n_shape, small.n_expression) == (40, 10) and small.mean.dtype == torch.float32
    with pytest.raises(ValueError, match="n_shape"):
        TorchMorphableModel.from_model(model, n_shape=model.n_shape + 1)


@pytest.mark.parametrize("convention", ["3ddfa", "standard"])
def test_euler_matches_meshkit_transform(convention):
    rng = np.random.default_rng(3)
    ang = rng.uniform(-math.pi, math.pi, size=(7, 3))
    got = euler_to_matrix(torch.tensor(ang), convention=convention).numpy()
    np.testing.assert_allclose(got, np_euler(ang, convention=convention), atol=1e-14)
    with pytest.raises(ValueError, match="convention"):
        euler_to_matrix(torch.tensor(ang), convention="xyz")


def test_pose_para_to_image_matches_numpy(twin):
    rng = np.random.default_rng(4)
    v = rng.normal(size=(2, N, 3)) * 1e4
    pose = np.column_stack([rng.uniform(-0.5, 0.5, (2, 3)), rng.uniform(50, 150, (2, 3)), rng.uniform(5e-4, 2e-3, 2)])
    got = twin.pose_para_to_image(torch.tensor(v), torch.tensor(pose), 450).numpy()
    for b in range(2):
        r = np_euler(pose[b, :3], convention="3ddfa")
        ref = flip_y(pose[b, 6] * v[b] @ r.T + pose[b, 3:6], 450)
        np.testing.assert_allclose(got[b], ref, rtol=1e-12, atol=1e-9)
    pose_mod = pytest.importorskip("bfm.pose")
    np.testing.assert_allclose(got, pose_mod.pose_para_to_image(v, pose, 450), rtol=1e-12, atol=1e-9)
    with pytest.raises(ValueError, match=r"pose_para: expected shape \(B, 7\)"):
        twin.pose_para_to_image(torch.tensor(v), torch.zeros(2, 6), 450)
    with pytest.raises(ValueError, match="height"):
        twin.pose_para_to_image(torch.tensor(v), torch.tensor(pose), None)


def test_params62_matches_numpy(twin, arrays):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 62))
    got = twin.params62_to_vertices(torch.tensor(x)).numpy()
    got_crop = twin.params62_to_vertices(torch.tensor(x), size=120).numpy()
    p = x * arrays["ps"] + arrays["pm"]
    for b in range(3):
        cam = p[b, :12].reshape(3, 4)
        v = _np_reconstruct(arrays, p[b, 12:52], p[b, 52:62])
        ref = v @ cam[:, :3].T + cam[:, 3]
        np.testing.assert_allclose(got[b], ref, rtol=1e-10, atol=1e-8)
        crop = np.column_stack([ref[:, 0] - 1, 120 - ref[:, 1], ref[:, 2] - 1])
        np.testing.assert_allclose(got_crop[b], crop, rtol=1e-10, atol=1e-8)
    pose_mod = pytest.importorskip("bfm.pose")
    raw = pose_mod.unwhiten_params(x, arrays["pm"], arrays["ps"])
    cam, s, e = pose_mod.split_params(raw)
    verts = np.stack([_np_reconstruct(arrays, s[b], e[b]) for b in range(3)])
    np.testing.assert_allclose(got_crop, pose_mod.camera_to_image(verts, cam, size=120), rtol=1e-10, atol=1e-8)
    np.testing.assert_allclose(twin.whiten(twin.unwhiten(torch.tensor(x))).numpy(), x, atol=1e-12)
    lm = twin.params62_to_vertices(torch.tensor(x), vertex_indices=twin.landmarks).numpy()
    np.testing.assert_allclose(lm, got[:, twin.landmarks.numpy()], atol=1e-10)
    with pytest.raises(ValueError, match=r"params: expected a tensor of shape \(B, 62\)"):
        twin.params62_to_vertices(torch.zeros(2, 61))


def test_gradcheck_twin(twin):
    rng = np.random.default_rng(6)
    s = torch.tensor(rng.normal(size=(2, KS)), requires_grad=True)
    e = torch.tensor(rng.normal(size=(2, KE)), requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: twin.reconstruct(a, b, vertex_indices=[1, 5, 9]), (s, e))
    v = torch.tensor(rng.normal(size=(2, 5, 3)), requires_grad=True)
    pose = torch.tensor(np.column_stack([rng.uniform(-1, 1, (2, 3)), rng.normal(size=(2, 3)), [0.7, 1.3]]),
                        requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: twin.pose_para_to_image(a, b, 100), (v, pose))
    x = torch.tensor(rng.normal(size=(2, 62)), requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: twin.params62_to_vertices(a, vertex_indices=[0, 7]), (x,))


def test_buffers_and_validation(arrays, twin):
    sd = twin.state_dict()
    for k in ("mean", "shape_basis", "expression_basis", "param_mean", "param_std", "landmarks"):
        assert k in sd
    f32 = TorchMorphableModel(arrays["mean"], arrays["ws"])
    assert f32.mean.dtype == torch.float32 and f32.n_expression == 0
    assert f32.double().shape_basis.dtype == torch.float64
    with pytest.raises(ValueError, match=r"shape_basis: expected shape \(120, Ks\)"):
        TorchMorphableModel(arrays["mean"], arrays["ws"][:-1])
    with pytest.raises(ValueError, match="mean: expected shape"):
        TorchMorphableModel(arrays["mean"][:, :2], arrays["ws"])
    with pytest.raises(ValueError, match="expected both or neither"):
        TorchMorphableModel(arrays["mean"], arrays["ws"], param_mean=arrays["pm"])
    with pytest.raises(ValueError, match="no param_mean"):
        f32.unwhiten(torch.zeros(1, 62))
    with pytest.raises(ValueError, match="landmarks"):
        TorchMorphableModel(arrays["mean"], arrays["ws"], landmarks=np.array([0, N]))


# ----------------------------------------------------------------------------------------------- WPDC / VDC


def test_wpdc_weights_equal_jacobian_column_norms(twin):
    rng = np.random.default_rng(7)
    x = torch.tensor(rng.normal(size=(2, 62)))
    y = torch.tensor(rng.normal(size=(2, 62)))
    idx = np.arange(0, N, 3)
    w = wpdc_weights(x, y, twin, vertex_indices=idx).numpy()
    p = twin.unwhiten(x)
    g = twin.unwhiten(y)
    for b in range(2):
        # ||dV/dp_i|| from autograd's full Jacobian of the projected vertices w.r.t. the raw parameters
        jac = torch.autograd.functional.jacobian(
            lambda q: twin.params62_to_vertices(q[None], whitened=False, vertex_indices=idx)[0], p[b])
        norms = torch.linalg.vector_norm(jac.reshape(-1, 62), dim=0).numpy()
        ref = np.abs((p[b] - g[b]).numpy()) * norms + 1e-6
        ref = ref / ref.max()
        ref[11] = 0.0
        np.testing.assert_allclose(w[b], ref, rtol=1e-9, atol=1e-12)
    assert (w[:, 11] == 0).all() and np.isclose(w.max(1), 1.0).all()


def test_wpdc_loss_value_and_gradient(twin):
    rng = np.random.default_rng(8)
    x = torch.tensor(rng.normal(size=(3, 62)), requires_grad=True)
    y = torch.tensor(rng.normal(size=(3, 62)))
    w = wpdc_weights(x.detach(), y, twin)
    loss = wpdc_loss(x, y, twin)
    assert math.isclose(loss.item(), float((w * (x.detach() - y) ** 2).mean()), rel_tol=1e-12)
    (gx,) = torch.autograd.grad(loss, x)
    # the weights are constants: d/dx mean(w (x - y)^2) = 2 w (x - y) / numel
    np.testing.assert_allclose(gx.numpy(), (2 * w * (x.detach() - y) / x.numel()).numpy(), rtol=1e-12, atol=1e-15)
    assert wpdc_loss(y.clone(), y, twin).item() == 0.0


def test_vdc_loss_value_and_gradcheck(twin):
    rng = np.random.default_rng(9)
    x = torch.tensor(rng.normal(size=(2, 62)), requires_grad=True)
    y = torch.tensor(rng.normal(size=(2, 62)))
    vp = twin.params62_to_vertices(x.detach()).numpy()
    vg = twin.params62_to_vertices(y).numpy()
    assert math.isclose(vdc_loss(x, y, twin).item(), float(((vp - vg) ** 2).mean()), rel_tol=1e-10)
    assert torch.autograd.gradcheck(lambda a: vdc_loss(a, y, twin, vertex_indices=[0, 4, 8]), (x,))
    with pytest.raises(ValueError, match=r"pred: expected a tensor of shape \(B, 62\)"):
        vdc_loss(x[:, :60], y, twin)
