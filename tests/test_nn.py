"""meshkit.nn: layers against dense references, gradients (gradcheck, float64), models, losses.

The operators are built here from trimesh icospheres (no dependency on meshkit's own hierarchy code):
level k is ``icosphere(k)``, whose vertices are the first vertices of ``icosphere(k + 1)``, so ``down``
selects them and ``up`` interpolates each fine vertex from its 3 nearest coarse vertices.
"""

import math

import numpy as np
import pytest
import scipy.sparse as sp

torch = pytest.importorskip("torch")
trimesh = pytest.importorskip("trimesh")

from meshkit.nn import (  # noqa: E402
    ChebAutoencoder,
    ChebConv,
    ExpWingLoss,
    ImageToMesh,
    Pool,
    SpiralAutoencoder,
    SpiralConv,
    SpiralDecoder,
    WingLoss,
    exp_wing_loss,
    spiral_length_for_hops,
    vertex_distance_loss,
    vertex_l1_loss,
    vertex_l2_loss,
    wing_loss,
)

# ----------------------------------------------------------------------------------------------- fixtures


def neighbourhoods(faces, n, length, *, pad="sentinel", max_hops=2):
    """BFS neighbourhoods [v, ring 1 (sorted), ..., ring ``max_hops`` (sorted)] cut / padded to ``length``."""
    rows, cols = faces[:, [0, 1, 2, 1, 2, 0]].ravel(), faces[:, [1, 2, 0, 0, 1, 2]].ravel()
    a = sp.coo_matrix((np.ones(rows.size), (rows, cols)), shape=(n, n)).tocsr()
    a.sum_duplicates()
    out = np.empty((n, length), dtype=np.int64)
    for v in range(n):
        seq, seen, ring, hop = [v], {v}, [v], 0
        while len(seq) < length and ring and hop < max_hops:
            hop += 1
            nxt = sorted({int(u) for w in ring for u in a.indices[a.indptr[w]:a.indptr[w + 1]]} - seen)
            seen.update(nxt)
            seq += nxt
            ring = nxt
        seq = seq[:length]
        fill = n if pad == "sentinel" else seq[-1]
        out[v] = seq + [fill] * (length - len(seq))
    return out


def icosphere_hierarchy(finest=3, levels=3, length=19):
    """Levels icosphere(finest), ..., icosphere(finest - levels + 1): spirals, down, up, rescaled Laplacians."""
    meshes = [trimesh.creation.icosphere(subdivisions=finest - i) for i in range(levels)]
    verts = [np.asarray(m.vertices) for m in meshes]
    faces = [np.asarray(m.faces, dtype=np.int64) for m in meshes]
    spirals = [neighbourhoods(f, len(v), length) for v, f in zip(verts, faces, strict=True)]
    down, up, laps = [], [], []
    for i in range(levels - 1):
        nf, nc = len(verts[i]), len(verts[i + 1])
        assert np.allclose(verts[i][:nc], verts[i + 1])
        down.append(sp.csr_matrix((np.ones(nc), (np.arange(nc), np.arange(nc))), shape=(nc, nf)))
        d = np.linalg.norm(verts[i][:, None] - verts[i + 1][None], axis=2)
        idx = np.argsort(d, axis=1, kind="stable")[:, :3]
        w = 1.0 / (np.take_along_axis(d, idx, 1) + 1e-3)
        w /= w.sum(1, keepdims=True)
        up.append(sp.csr_matrix((w.ravel(), (np.repeat(np.arange(nf), 3), idx.ravel())), shape=(nf, nc)))
    for v, f in zip(verts, faces, strict=True):
        laps.append(rescaled_laplacian(f, len(v)))
    return dict(verts=verts, faces=faces, spirals=spirals, down=down, up=up, laplacians=laps)


def rescaled_laplacian(faces, n):
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    a = sp.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n)).tocsr()
    a = ((a + a.T) > 0).astype(float)
    dinv = 1.0 / np.sqrt(np.asarray(a.sum(1)).ravel())
    lap = sp.eye(n) - sp.diags(dinv) @ a @ sp.diags(dinv)
    lmax = np.linalg.eigvalsh(lap.toarray()).max()
    return sp.csr_matrix(2.0 * lap / lmax - sp.eye(n))


@pytest.fixture(scope="module")
def hier():
    return icosphere_hierarchy()


@pytest.fixture(scope="module")
def small():
    m = trimesh.creation.icosphere(subdivisions=1)
    f = np.asarray(m.faces, dtype=np.int64)
    return np.asarray(m.vertices), f


def random_operators(sizes, lengths, seed=0):
    """Random valid spirals (V_i, L_i) and up matrices (3 positive weights per row summing to 1)."""
    rng = np.random.default_rng(seed)
    spirals = []
    for n, length in zip(sizes, lengths, strict=True):
        s = rng.integers(0, n, size=(n, length))
        s[:, 0] = np.arange(n)
        spirals.append(s)
    ups = []
    for nf, nc in zip(sizes[:-1], sizes[1:], strict=True):
        cols = rng.integers(0, nc, size=(nf, 3))
        w = rng.random((nf, 3)) + 0.1
        w /= w.sum(1, keepdims=True)
        ups.append(sp.csr_matrix((w.ravel(), (np.repeat(np.arange(nf), 3), cols.ravel())), shape=(nf, nc)))
    return spirals, ups


# ----------------------------------------------------------------------------------------------- SpiralConv


@pytest.mark.parametrize("pad", ["sentinel", "repeat"])
def test_spiralconv_equals_manual_gather(small, pad):
    v, f = small
    n = len(v)
    s = neighbourhoods(f, n, 19, pad=pad)  # icosphere(1) has 42 vertices: 2-ring spirals of length 19 need padding
    assert (s == n).any() == (pad == "sentinel")
    torch.manual_seed(0)
    conv = SpiralConv(4, 5, s).double()
    x = torch.randn(3, n, 4, dtype=torch.float64)
    y = conv(x).detach().numpy()
    w = conv.linear.weight.detach().numpy()
    b = conv.linear.bias.detach().numpy()
    xn = x.numpy()
    ref = np.zeros((3, n, 5))
    for bi in range(3):
        for vi in range(n):
            feats = []
            for idx in s[vi]:
                feats.append(np.zeros(4) if idx == n else xn[bi, idx])
            ref[bi, vi] = w @ np.concatenate(feats) + b
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)
    # an unbatched sample gives the same as a batch of one
    np.testing.assert_allclose(conv(x[0]).detach().numpy(), y[0], rtol=1e-12, atol=1e-12)


def test_spiralconv_gradcheck_with_sentinel(small):
    v, f = small
    s = neighbourhoods(f, len(v), 19)
    assert (s == len(v)).any()
    torch.manual_seed(1)
    conv = SpiralConv(2, 3, s).double()
    x = torch.randn(2, len(v), 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(conv, (x,))
    # gradient w.r.t. the weights too
    assert torch.autograd.gradcheck(lambda w: torch.nn.functional.linear(
        torch.cat([x.detach(), x.new_zeros(2, 1, 2)], 1)[:, conv.spirals.reshape(-1)].reshape(2, len(v), -1), w),
        (conv.linear.weight.detach().clone().requires_grad_(),))


def test_spiralconv_length_truncates_and_bad_input(small):
    v, f = small
    n = len(v)
    s = neighbourhoods(f, n, 19)
    conv = SpiralConv(3, 2, s, length=7)
    assert conv.length == 7 and torch.equal(conv.spirals, torch.from_numpy(s[:, :7]))
    with pytest.raises(ValueError, match="at least 25 entries"):
        SpiralConv(3, 2, s, length=25)
    with pytest.raises(TypeError, match="spirals"):
        SpiralConv(3, 2, s.astype(float))
    bad = s.copy()
    bad[3, 2] = n + 1
    with pytest.raises(ValueError, match=r"indices in \[0, 42\]"):
        SpiralConv(3, 2, bad)
    bad = s.copy()
    bad[5, 0] = 6
    with pytest.raises(ValueError, match="entry 0 of each spiral to be the vertex itself"):
        SpiralConv(3, 2, bad)
    with pytest.raises(ValueError, match=r"x: expected shape \(B, 42, 3\)"):
        conv(torch.zeros(2, n + 1, 3))
    with pytest.raises(ValueError, match=r"x: expected shape \(B, 42, 3\)"):
        conv(torch.zeros(2, n, 4))
    with pytest.raises(TypeError, match="floating-point"):
        conv(torch.zeros(2, n, 3, dtype=torch.long))


def test_spiral_length_for_hops():
    # closed form 1 + 3h(h+1) equals the size of h full rings on a regular (valence-6) triangulation:
    # count them on a large regular triangular grid from an interior vertex
    m = 21
    verts = [(i, j) for j in range(m) for i in range(m)]
    faces = []
    for j in range(m - 1):
        for i in range(m - 1):
            a, b, c, d = j * m + i, j * m + i + 1, (j + 1) * m + i, (j + 1) * m + i + 1
            faces += [(a, b, d), (a, d, c)]
    faces = np.array(faces)
    centre = (m // 2) * m + m // 2
    for h in range(4):
        s = neighbourhoods(faces, len(verts), 200, pad="sentinel", max_hops=5)[centre]
        ring_sizes = []
        # BFS ring sizes by hop from the centre (recomputed independently of the helper's ordering)
        e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
        g = sp.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(len(verts),) * 2)
        dist = sp.csgraph.shortest_path(((g + g.T) > 0).astype(float), indices=centre, unweighted=True)
        ring_sizes = int((dist <= h).sum())
        assert spiral_length_for_hops(h) == ring_sizes
        assert len(set(s[:ring_sizes].tolist())) == ring_sizes
    assert spiral_length_for_hops(1) == 7 and spiral_length_for_hops(2) == 19
    with pytest.raises(ValueError, match="hops"):
        spiral_length_for_hops(-1)


# ----------------------------------------------------------------------------------------------- ChebConv


def test_chebconv_equals_explicit_chebyshev_polynomials(small):
    v, f = small
    n = len(v)
    lap = rescaled_laplacian(f, n)
    dense = lap.toarray()
    lam, u = np.linalg.eigh(dense)
    assert lam.min() >= -1 - 1e-9 and lam.max() <= 1 + 1e-9
    torch.manual_seed(0)
    K = 4
    conv = ChebConv(3, 2, lap, K).double()
    x = torch.randn(2, n, 3, dtype=torch.float64)
    y = conv(x).detach().numpy()
    w = conv.weight.detach().numpy()
    b = conv.bias.detach().numpy()
    ref = np.zeros((2, n, 2))
    for k in range(K):
        tk = (u * np.cos(k * np.arccos(np.clip(lam, -1, 1)))) @ u.T  # T_k(L) = U cos(k arccos Lambda) U^T
        ref += np.einsum("ij,bjc,cd->bid", tk, x.numpy(), w[k])
    ref += b
    np.testing.assert_allclose(y, ref, rtol=1e-9, atol=1e-10)


def test_chebconv_gradcheck(small):
    v, f = small
    lap = rescaled_laplacian(f, len(v))
    torch.manual_seed(0)
    conv = ChebConv(2, 2, lap, 3).double()
    x = torch.randn(2, len(v), 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(conv, (x,))
    with pytest.raises(ValueError, match="square"):
        ChebConv(2, 2, sp.csr_matrix(np.ones((3, 4))), 3)
    with pytest.raises(TypeError, match="scipy sparse"):
        ChebConv(2, 2, [[1.0]], 3)


# ----------------------------------------------------------------------------------------------- Pool


def test_pool_equals_dense_matmul_and_gradcheck(hier):
    up = hier["up"][0]
    pool = Pool(up).double()
    x = torch.randn(3, up.shape[1], 4, dtype=torch.float64, requires_grad=True)
    y = pool(x)
    assert y.shape == (3, up.shape[0], 4)
    ref = np.einsum("ij,bjc->bic", up.toarray(), x.detach().numpy())
    np.testing.assert_allclose(y.detach().numpy(), ref, rtol=1e-12, atol=1e-12)
    small_up = hier["up"][1]
    p2 = Pool(small_up).double()
    x2 = torch.randn(2, small_up.shape[1], 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(p2, (x2,), fast_mode=True)
    tiny = Pool(sp.random(7, 5, density=0.4, random_state=0, format="csr")).double()
    xt = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(tiny, (xt,))
    assert torch.autograd.gradgradcheck(tiny, (xt,))  # the backward is itself differentiable
    # the backward is the transpose product
    g = torch.randn(2, small_up.shape[0], 2, dtype=torch.float64)
    (gx,) = torch.autograd.grad(p2(x2), x2, g)
    np.testing.assert_allclose(gx.numpy(), np.einsum("ji,bjc->bic", small_up.toarray(), g.numpy()), atol=1e-12)
    with pytest.raises(ValueError, match=r"x: expected shape \(B, 642, C\)"):
        Pool(hier["down"][0])(torch.zeros(1, 10, 3))


def test_pool_selection_gather_equals_dense(hier):
    down = hier["down"][0]
    pool = Pool(down).double()
    assert pool.is_selection and not Pool(hier["up"][0]).is_selection
    x = torch.randn(2, down.shape[1], 3, dtype=torch.float64, requires_grad=True)
    np.testing.assert_allclose(pool(x).detach().numpy(), np.einsum("ij,bjc->bic", down.toarray(), x.detach().numpy()),
                               atol=1e-15)
    assert torch.autograd.gradcheck(Pool(hier["down"][1]).double(), (torch.randn(1, 162, 2, dtype=torch.float64,
                                                                                  requires_grad=True),))
    # a 0/1 matrix with a row of two entries (or a weight != 1) is not a selection: the CSR product is used
    m = down.tolil()
    m[0, 5] = 1.0
    p2 = Pool(m.tocsr()).double()
    assert not p2.is_selection
    np.testing.assert_allclose(p2(x).detach().numpy(), np.einsum("ij,bjc->bic", m.toarray(), x.detach().numpy()),
                               atol=1e-15)


def test_buffers_follow_state_dict_and_dtype(hier):
    torch.manual_seed(0)
    ae = SpiralAutoencoder(hier["spirals"], hier["down"], hier["up"], channels=(8, 8), latent_dim=4)
    sd = ae.state_dict()
    assert any(k.endswith("spirals") for k in sd) and any(k.endswith("matrix_crow") for k in sd)
    torch.manual_seed(1)
    other = SpiralAutoencoder(hier["spirals"], hier["down"], hier["up"], channels=(8, 8), latent_dim=4)
    other.load_state_dict(sd)
    x = torch.randn(2, 642, 3)
    torch.testing.assert_close(other(x), ae(x))
    d = ae.double()
    assert d.encoder[2].matrix_val.dtype == torch.float64
    assert d(x.double()).dtype == torch.float64


# ----------------------------------------------------------------------------------------------- models


def test_spiral_decoder_vertex_counts_follow_hierarchy(hier):
    sizes = [s.shape[0] for s in hier["spirals"]]
    dec = SpiralDecoder(hier["spirals"], hier["up"], latent_dim=6, channels=(8, 6, 4), hops=(1, 2, 2))
    outs = dec(torch.randn(2, 6), return_all=True)
    assert [o.shape[1] for o in outs] == [sizes[2], sizes[1], sizes[0], sizes[0]]
    assert [o.shape[2] for o in outs] == [8, 6, 4, 3]
    assert [c.length for c in dec.convs] == [7, 19] and dec.final.length == 19
    with pytest.raises(ValueError, match="hops: expected 3 values"):
        SpiralDecoder(hier["spirals"], hier["up"], latent_dim=6, channels=(8, 6, 4), hops=(1, 2))
    with pytest.raises(ValueError, match="at least 37 entries"):
        SpiralDecoder(hier["spirals"], hier["up"], latent_dim=6, channels=(8, 6, 4), hops=(1, 3, 3))
    with pytest.raises(ValueError, match=r"z: expected a tensor of shape \(B, 6\)"):
        dec(torch.randn(2, 5))


def test_published_decoder_layout_on_face_sizes():
    """The published layout on operators of the real sizes (random but valid operators)."""
    sizes = [53215, 13304, 3326, 832, 208, 52]
    spirals, ups = random_operators(sizes, [19, 19, 19, 7, 7, 7])
    dec = SpiralDecoder(spirals, ups, latent_dim=32)
    assert dec.fc.out_features == 52 * 128
    got = [(c.in_channels, c.out_channels, c.n_vertices, c.length) for c in (*dec.convs, dec.final)]
    assert got == [(128, 128, 208, 7), (128, 64, 832, 7), (64, 32, 3326, 19), (32, 16, 13304, 19),
                   (16, 8, 53215, 19), (8, 3, 53215, 19)]
    outs = dec(torch.randn(1, 32), return_all=True)
    assert [tuple(o.shape[1:]) for o in outs] == [(52, 128), (208, 128), (832, 64), (3326, 32), (13304, 16),
                                                   (53215, 8), (53215, 3)]


class _Level:
    def __init__(self, spirals, laplacian):
        self.spirals, self.laplacian = spirals, laplacian


class _Hierarchy:  # duck-typed stand-in for sampling.Hierarchy
    def __init__(self, h):
        self.levels = [_Level(s, lp) for s, lp in zip(h["spirals"], h["laplacians"], strict=True)]
        self.down, self.up = h["down"], h["up"]


def _training_data(hier, n=24, seed=0):
    rng = np.random.default_rng(seed)
    v = hier["verts"][0]
    # smooth deformations: random anisotropic scalings and a low-frequency bump
    a = rng.uniform(0.8, 1.2, size=(n, 1, 3))
    bump = rng.uniform(-0.2, 0.2, size=(n, 1, 1)) * np.sin(2 * v[None, :, :1])
    return torch.tensor(v[None] * a + bump, dtype=torch.float32)


@pytest.mark.parametrize("kind", ["spiral", "cheb"])
def test_short_training_run_reduces_loss(hier, kind):
    torch.manual_seed(0)
    h = _Hierarchy(hier)
    if kind == "spiral":
        model = SpiralAutoencoder.from_hierarchy(h, channels=(16, 16), latent_dim=8)
    else:
        model = ChebAutoencoder.from_hierarchy(h, channels=(16, 16), latent_dim=8, K=3)
    data = _training_data(hier)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with torch.no_grad():
        first = vertex_l1_loss(model(data), data).item()
    for _ in range(40):
        opt.zero_grad()
        loss = vertex_l1_loss(model(data), data)
        loss.backward()
        opt.step()
    with torch.no_grad():
        last = vertex_l1_loss(model(data), data).item()
    assert last < 0.5 * first, (first, last)
    assert model.encode(data).shape == (24, 8)


def test_image_to_mesh_trains(hier):
    torch.manual_seed(0)
    h = _Hierarchy(hier)
    model = ImageToMesh.from_hierarchy(h, widths=(8, 16), latent_dim=16, channels=(16, 8, 8), hops=(1, 1, 1),
                                       template=hier["verts"][0])
    images = torch.randn(4, 3, 32, 32)
    target = _training_data(hier, n=4)
    assert model(images).shape == (4, 642, 3)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = vertex_l2_loss(model(images), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    with pytest.raises(ValueError, match="images"):
        model(torch.randn(4, 1, 32, 32))


def test_model_operator_mismatch_is_loud(hier):
    with pytest.raises(ValueError, match=r"down\[0\]: expected shape"):
        SpiralAutoencoder(hier["spirals"], [hier["down"][1], hier["down"][0]], hier["up"], channels=(4, 4))
    with pytest.raises(ValueError, match=r"spirals\[1\]: expected 162 rows"):
        SpiralAutoencoder([hier["spirals"][0], hier["spirals"][2]], hier["down"], hier["up"], channels=(4, 4))
    with pytest.raises(ValueError, match="channels: expected 2 values"):
        SpiralAutoencoder(hier["spirals"], hier["down"], hier["up"], channels=(4, 4, 4))
    with pytest.raises(ValueError, match=r"laplacians\[0\]: expected shape"):
        ChebAutoencoder(hier["laplacians"][1:], hier["down"], hier["up"], channels=(4, 4))


# ----------------------------------------------------------------------------------------------- losses


def test_vertex_losses_against_numpy():
    rng = np.random.default_rng(0)
    p, t = rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 5, 3))
    pt, tt = torch.tensor(p), torch.tensor(t)
    assert math.isclose(vertex_l1_loss(pt, tt).item(), np.abs(p - t).mean(), rel_tol=1e-12)
    assert math.isclose(vertex_l2_loss(pt, tt).item(), ((p - t) ** 2).mean(), rel_tol=1e-12)
    assert math.isclose(vertex_distance_loss(pt, tt).item(), np.linalg.norm(p - t, axis=2).mean(), rel_tol=1e-12)
    assert vertex_distance_loss(pt, tt, reduction="none").shape == (2, 5)
    with pytest.raises(ValueError, match="target: expected the shape"):
        vertex_l1_loss(pt, tt[:, :4])
    with pytest.raises(ValueError, match="reduction"):
        vertex_l1_loss(pt, tt, reduction="avg")


def test_wing_losses_closed_form_and_continuity():
    x = np.array([-30.0, -10.0, -4.0, -0.5, 0.0, 0.3, 2.0, 4.999, 5.0, 5.001, 9.0, 12.0])
    xt = torch.tensor(x)
    zero = torch.zeros_like(xt)
    # Wing: w ln(1 + |x|/eps) inside, |x| - (w - w ln(1 + w/eps)) outside
    w, e = 10.0, 2.0
    ref = np.where(np.abs(x) < w, w * np.log(1 + np.abs(x) / e), np.abs(x) - (w - w * np.log(1 + w / e)))
    np.testing.assert_allclose(wing_loss(xt, zero, reduction="none").numpy(), ref, rtol=1e-12)
    # exponential wing: W(exp(|x|/eps) - 1) inside, |x| - C outside with C = W - W(exp(W/eps) - 1)
    W, E = 5.0, 4.0
    C = W - W * (math.exp(W / E) - 1)
    ref = np.array([W * (math.exp(abs(v) / E) - 1) if abs(v) < W else abs(v) - C for v in x])
    np.testing.assert_allclose(exp_wing_loss(xt, zero, reduction="none").numpy(), ref, rtol=1e-12)
    for fn, ww in ((exp_wing_loss, W), (wing_loss, 10.0)):
        lo = fn(torch.tensor([ww - 1e-9]), torch.zeros(1)).item()
        hi = fn(torch.tensor([ww + 1e-9]), torch.zeros(1)).item()
        assert abs(lo - hi) < 1e-7
    assert math.isclose(ExpWingLoss()(xt, zero).item(), ref.mean(), rel_tol=1e-12)
    assert math.isclose(WingLoss(w=3.0, eps=1.0)(xt, zero).item(), wing_loss(xt, zero, w=3.0, eps=1.0).item())
    with pytest.raises(ValueError, match="w: expected a finite number > 0"):
        exp_wing_loss(xt, zero, w=0.0)
    # large inputs do not overflow in the unused branch
    assert torch.isfinite(exp_wing_loss(torch.tensor([1e6]), torch.zeros(1)))


def test_loss_gradcheck():
    torch.manual_seed(0)
    # away from the non-differentiable points x = 0 and |x| = w
    x = torch.tensor([[-7.0, -2.5, 0.7, 3.0, 6.5, 12.0]], dtype=torch.float64, requires_grad=True)
    t = torch.zeros_like(x)
    for fn in (wing_loss, exp_wing_loss, vertex_l1_loss, vertex_l2_loss):
        assert torch.autograd.gradcheck(lambda a, fn=fn: fn(a, t), (x,))
    p = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    q = torch.randn(2, 4, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: vertex_distance_loss(a, q), (p,))
    assert torch.autograd.gradcheck(lambda a: vertex_distance_loss(a, q, eps=1e-3), (p,))


# ----------------------------------------------------------------------------------------------- real hierarchy


@pytest.mark.parametrize("padding", ["repeat", "sentinel"])
def test_models_from_a_real_hierarchy(padding):
    """Integration with sampling.build_hierarchy (skipped if that module is unavailable)."""
    sampling = pytest.importorskip("sampling")
    from meshkit.synthetic import face_template

    v, f = face_template(2000)
    h = sampling.build_hierarchy(v, f, factors=(4, 4, 4), spiral_length=19, padding=padding)
    sizes = [lvl.n_vertices for lvl in h.levels]
    dec = SpiralDecoder.from_hierarchy(h, latent_dim=8, channels=(8, 8, 8, 4), hops=(1, 1, 2, 2))
    outs = dec(torch.randn(2, 8), return_all=True)
    assert [o.shape[1] for o in outs] == sizes[::-1] + [sizes[0]]
    for c in (*dec.convs, dec.final):  # the sentinel flag follows the operator's content
        assert c.has_sentinel == bool((c.spirals == c.n_vertices).any())
    ae = SpiralAutoencoder.from_hierarchy(h, channels=(8, 8, 8), latent_dim=4)
    x = torch.tensor(v[None] / 1e5, dtype=torch.float32)
    assert ae(x).shape == (1, sizes[0], 3)
    cheb = ChebAutoencoder.from_hierarchy(h, channels=(4, 4, 4), latent_dim=4, K=3)
    assert cheb(x).shape == (1, sizes[0], 3)


# ----------------------------------------------------------------------------------------------- optional torch


def test_meshkit_import_does_not_need_torch_and_nn_says_how_to_install():
    import subprocess
    import sys

    code = ("import sys; import meshkit, meshkit.metrics; assert 'torch' not in sys.modules, 'torch imported'; "
            "sys.modules['torch'] = None\n"
            "try:\n    import meshkit.nn\nexcept ImportError as e:\n    print(e)\nelse:\n    print('no error')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "pip install torch==2.13.0" in out.stdout and "meshkit[torch]" in out.stdout


def test_train_example_runs_and_error_falls(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "train_spiral_autoencoder.py"
    spec = importlib.util.spec_from_file_location("train_spiral_autoencoder", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "plot.png"
    # exit code 0 means the held-out vertex error fell over training
    assert mod.main(["--source", "model", "--epochs", "3", "--train", "64", "--test", "16", "--out", str(out)]) == 0
    assert out.stat().st_size > 1000
