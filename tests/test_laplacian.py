"""Laplacians: graph kinds against networkx, cotangent + mass against libigl, potpourri3d and
robust-laplacian, closed forms (linear precision on a flat mesh, the sphere spectrum l(l+1)),
structural invariants (symmetric, PSD, zero row sums), Chebyshev polynomials against explicit
ones from a dense eigendecomposition, eigenbasis against scipy's dense generalized eigh,
smoothing against a dense solve."""

import igl
import networkx as nx
import numpy as np
import potpourri3d as pp3d
import pytest
import robust_laplacian
import scipy.linalg as sla
import scipy.sparse as sp
import trimesh
from hypothesis import given, settings
from hypothesis import strategies as st

from meshkit import laplacian as lp
from tests._helpers import grid_mesh


def _nx_graph(faces, n):
    g = nx.Graph()
    g.add_nodes_from(range(n))
    for a, b, c in faces.tolist():
        g.add_edges_from([(a, b), (b, c), (c, a)])
    return g


def _random_mesh(seed, n_extra=0):
    """A random closed-ish mesh with obtuse triangles: a jittered icosphere with random faces
    dropped (boundaries), plus optional isolated vertices."""
    rng = np.random.default_rng(seed)
    m = trimesh.creation.icosphere(subdivisions=int(rng.integers(1, 3)))
    v = np.asarray(m.vertices) * rng.uniform(0.5, 2.0, size=3) + rng.normal(scale=0.08, size=m.vertices.shape)
    f = np.asarray(m.faces, dtype=np.int64)
    f = f[rng.random(len(f)) > 0.15]
    v = np.vstack([v, rng.normal(size=(n_extra, 3))])
    return v, f


def _dense(m):
    return m.toarray() if sp.issparse(m) else np.asarray(m)


# ---------------------------------------------------------------------------------------------
# graph Laplacians


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), extra=st.integers(0, 3))
def test_graph_laplacians_equal_networkx(seed, extra):
    v, f = _random_mesh(seed, extra)
    n = len(v)
    g = _nx_graph(f, n)
    nodes = list(range(n))
    L = lp.combinatorial(f, n)
    N = lp.normalized(f, n)
    R = lp.random_walk(f, n)
    for m in (L, N, R):
        assert isinstance(m, sp.csr_matrix) and m.shape == (n, n) and m.dtype == np.float64
    np.testing.assert_array_equal(_dense(L), _dense(nx.laplacian_matrix(g, nodelist=nodes)))
    np.testing.assert_allclose(_dense(N), _dense(nx.normalized_laplacian_matrix(g, nodelist=nodes)), atol=1e-14)
    a = _dense(nx.adjacency_matrix(g, nodelist=nodes))
    d = a.sum(axis=1)
    rw = np.where(d[:, None] > 0, np.eye(n) - a / np.where(d > 0, d, 1)[:, None], 0.0)
    np.testing.assert_allclose(_dense(R), rw, atol=1e-14)


def test_graph_laplacian_spectra():
    v, f = grid_mesh(7, 6)
    N, R, L = lp.normalized(f), lp.random_walk(f), lp.combinatorial(f)
    en = np.linalg.eigvalsh(_dense(N))
    er = np.sort(np.linalg.eigvals(_dense(R)).real)
    np.testing.assert_allclose(en, er, atol=1e-10)  # similar matrices
    assert en.min() > -1e-12 and en.max() <= 2 + 1e-12
    np.testing.assert_allclose(_dense(L).sum(axis=1), 0.0)
    np.testing.assert_allclose(_dense(R).sum(axis=1), 0.0, atol=1e-15)


# ---------------------------------------------------------------------------------------------
# cotangent and mass


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_cotangent_and_mass_match_libigl(seed):
    v, f = _random_mesh(seed)
    L = lp.cotangent(v, f)
    Li = -igl.cotmatrix(v, f)  # libigl's is negative semi-definite
    scale = abs(Li).max()
    assert abs(L - Li).max() <= 1e-10 * scale
    for kind, t in (("barycentric", igl.MASSMATRIX_TYPE_BARYCENTRIC), ("voronoi", igl.MASSMATRIX_TYPE_VORONOI)):
        M = lp.mass(v, f, kind=kind)
        Mi = igl.massmatrix(v, f, t)
        assert abs(M - Mi).max() <= 1e-10 * Mi.max()
        assert np.isclose(M.diagonal().sum(), igl.doublearea(v, f).sum() / 2)  # each face's area once


def test_random_meshes_have_obtuse_triangles():
    v, f = _random_mesh(1)
    e = [v[f[:, (k + 1) % 3]] - v[f[:, k]] for k in range(3)]
    dots = np.stack([-np.einsum("ij,ij->i", e[k - 1], e[k]) for k in range(3)], axis=1)
    assert (dots < 0).any()  # so the Voronoi test exercises the mixed-area branch


def test_cotangent_matches_potpourri3d_and_robust_laplacian():
    v, f = _random_mesh(5)
    assert abs(lp.cotangent(v, f) - pp3d.cotan_laplacian(v, f)).max() < 1e-10
    # robust-laplacian flips to the intrinsic Delaunay triangulation; an icosphere is already Delaunay
    m = trimesh.creation.icosphere(subdivisions=3)
    v, f = np.asarray(m.vertices), np.asarray(m.faces, dtype=np.int64)
    Lr, Mr = robust_laplacian.mesh_laplacian(v, f, mollify_factor=0.0)
    assert abs(lp.cotangent(v, f) - Lr).max() < 1e-10
    assert abs(lp.mass(v, f) - Mr).max() < 1e-10


def test_linear_precision_on_flat_mesh():
    v, f = grid_mesh(9, 8, jitter=0.3, seed=7)
    v = v @ trimesh.transformations.rotation_matrix(0.7, [1, 2, 3])[:3, :3].T  # a tilted plane
    L = lp.cotangent(v, f)
    interior = ~np.isin(np.arange(len(v)), igl.boundary_loop(f))
    rng = np.random.default_rng(0)
    for _ in range(3):
        lin = v @ rng.normal(size=3) + rng.normal()
        np.testing.assert_allclose((L @ lin)[interior], 0.0, atol=1e-12)
    assert np.abs((L @ v[:, 0])[~interior]).max() > 1e-3  # boundary rows do not vanish


def test_structure_symmetric_psd_zero_rows():
    v, f = _random_mesh(11)
    L = lp.cotangent(v, f)
    D = _dense(L)
    np.testing.assert_array_equal(D, D.T)
    np.testing.assert_allclose(D.sum(axis=1), 0.0, atol=1e-12 * abs(D).max())
    assert np.linalg.eigvalsh(D).min() > -1e-10 * abs(D).max()
    assert (L.diagonal() >= 0).all()


def test_degenerate_triangles_stay_finite_symmetric_psd():
    v, f = grid_mesh(5, 5)
    v = np.vstack([v, [[1.5, 0.0, 0.0], [4.0, 4.0, 0.0]]])  # 25: collinear with 1, 2; 26: duplicate of 24
    f = np.vstack([f, [[1, 25, 2], [24, 26, 19], [0, 1, 25]]])
    L = lp.cotangent(v, f)
    D = _dense(L)
    assert np.isfinite(D).all()
    np.testing.assert_allclose(D, D.T)
    np.testing.assert_allclose(D.sum(axis=1), 0.0, atol=1e-8 * abs(D).max())
    assert np.linalg.eigvalsh(D).min() > -1e-9 * abs(D).max()
    for kind in ("barycentric", "voronoi"):
        M = lp.mass(v, f, kind=kind)
        assert np.isfinite(M.data).all() and (M.diagonal() >= 0).all()
        assert np.isclose(M.diagonal().sum(), igl.doublearea(v, f).sum() / 2)
    # the clamp is relative: a larger eps bounds the weights more
    assert abs(lp.cotangent(v, f, eps=1e-3)).max() < abs(L).max()


def test_sphere_spectrum_is_l_l_plus_1():
    m = trimesh.creation.icosphere(subdivisions=3)  # unit sphere, 642 vertices
    v, f = np.asarray(m.vertices), np.asarray(m.faces, dtype=np.int64)
    b = lp.eigenbasis(lp.cotangent(v, f), 16, lp.mass(v, f, kind="voronoi"))
    expected = np.repeat([0.0, 2.0, 6.0, 12.0], [1, 3, 5, 7])
    assert abs(b.values[0]) < 1e-8
    np.testing.assert_allclose(b.values[1:], expected[1:], rtol=0.02)


# ---------------------------------------------------------------------------------------------
# Chebyshev


def test_lambda_max_and_rescale():
    v, f = _random_mesh(2)
    for L in (lp.normalized(f, len(v)), lp.combinatorial(f, len(v)), lp.cotangent(v, f)):
        lmax = np.linalg.eigvalsh(_dense(L)).max()
        assert np.isclose(lp.lambda_max(L), lmax, rtol=1e-7)
        H = lp.chebyshev_rescale(L)
        e = np.linalg.eigvalsh(_dense(H))
        assert np.isclose(e.max(), 1.0, atol=1e-6) and e.min() >= -1 - 1e-9
        np.testing.assert_allclose(_dense(lp.chebyshev_rescale(L, 2.0)), _dense(L) - np.eye(len(v)))
    R = lp.random_walk(f, len(v))  # not symmetric: Arnoldi path, same spectrum as normalized
    assert np.isclose(lp.lambda_max(R), np.linalg.eigvalsh(_dense(lp.normalized(f, len(v)))).max(), rtol=1e-7)


def test_chebyshev_basis_equals_explicit_polynomials():
    v, f = _random_mesh(3)
    L = lp.normalized(f, len(v))
    H = lp.chebyshev_rescale(L)
    lam, U = np.linalg.eigh(_dense(H))
    x = np.random.default_rng(0).normal(size=(len(v), 4))
    K = 6
    T = lp.chebyshev_basis(H, x, K)
    assert T.shape == (K, len(v), 4)
    for k in range(K):
        tk = np.polynomial.chebyshev.chebval(lam, np.eye(K)[k])  # T_k on the eigenvalues
        np.testing.assert_allclose(T[k], U @ (tk[:, None] * (U.T @ x)), atol=1e-10)
    T1 = lp.chebyshev_basis(H, x[:, 0], 3)
    assert T1.shape == (3, len(v))
    np.testing.assert_allclose(T1, T[:3, :, 0])


# ---------------------------------------------------------------------------------------------
# eigenbasis, Fourier


@pytest.mark.parametrize("with_mass", [False, True])
def test_eigenbasis_matches_dense_generalized_eigh(with_mass):
    v, f = _random_mesh(4)
    used = np.unique(f)
    remap = np.full(len(v), -1)
    remap[used] = np.arange(len(used))
    v, f = v[used], remap[f]  # no isolated vertices (the mass must be positive definite)
    L = lp.cotangent(v, f)
    M = lp.mass(v, f) if with_mass else None
    k = 10
    b = lp.eigenbasis(L, k, M)
    Md = np.eye(len(v)) if M is None else _dense(M)
    lam, phi = sla.eigh(_dense(L), Md)
    np.testing.assert_allclose(b.values, lam[:k], atol=1e-9 * lam[-1])
    assert (np.diff(b.values) >= 0).all()
    np.testing.assert_allclose(b.vectors.T @ Md @ b.vectors, np.eye(k), atol=1e-9)
    # same eigenspaces: the dense eigenvectors of the first k values lie in our span (M-projection)
    sel = lam < lam[k] - 1e-9 * lam[-1]  # whole eigenspaces only
    P = b.vectors @ (b.vectors.T @ Md @ phi[:, sel])
    np.testing.assert_allclose(P, phi[:, sel], atol=1e-7)
    # Fourier: coefficients of an eigenvector are a unit vector, and the round trip is exact in the span
    c = lp.fourier(b, b.vectors[:, 3])
    np.testing.assert_allclose(c, np.eye(k)[3], atol=1e-10)
    x = b.vectors @ np.random.default_rng(1).normal(size=(k, 2))
    np.testing.assert_allclose(b.inverse_fourier(b.fourier(x)), x, atol=1e-10)
    # deterministic, signs fixed
    b2 = lp.eigenbasis(L, k, M)
    np.testing.assert_array_equal(b.vectors, b2.vectors)
    big = np.abs(b.vectors).argmax(axis=0)
    assert (b.vectors[big, np.arange(k)] > 0).all()


def test_eigenbasis_superlu_fallback_agrees(monkeypatch):
    v, f = grid_mesh(8, 7, jitter=0.2)
    L, M = lp.cotangent(v, f), lp.mass(v, f)
    a = lp.eigenbasis(L, 6, M)
    monkeypatch.setattr(lp, "factor_backend", lambda: "superlu")
    b = lp.eigenbasis(L, 6, M)
    np.testing.assert_allclose(a.values, b.values, atol=1e-10)
    np.testing.assert_allclose(np.abs(a.vectors.T @ _dense(M) @ b.vectors), np.eye(6), atol=1e-6)


# ---------------------------------------------------------------------------------------------
# smoothing


@pytest.mark.parametrize("kind", ["cotangent", "combinatorial"])
def test_smooth_equals_dense_solve(kind, monkeypatch):
    v, f = grid_mesh(7, 6, jitter=0.2, seed=5)
    v[:, 2] = np.random.default_rng(0).normal(scale=0.3, size=len(v))
    t = 0.4
    if kind == "cotangent":
        L, M = -_dense(igl.cotmatrix(v, f)), _dense(igl.massmatrix(v, f, igl.MASSMATRIX_TYPE_BARYCENTRIC))
    else:
        L, M = _dense(nx.laplacian_matrix(_nx_graph(f, len(v)), nodelist=range(len(v)))), np.eye(len(v))
    want = np.linalg.solve(M + t * L, M @ v)
    np.testing.assert_allclose(lp.smooth(v, f, t, kind=kind), want, atol=1e-10)
    want2 = np.linalg.solve(M + t * L, M @ want)
    np.testing.assert_allclose(lp.smooth(v, f, t, kind=kind, iterations=2), want2, atol=1e-10)
    s = lp.Smoother(v, f, t, kind=kind)
    np.testing.assert_allclose(s(v[:, 2]), want[:, 2], atol=1e-10)  # 1-D signals too
    np.testing.assert_allclose(lp.smooth(v, f, 0.0, kind=kind), v, atol=1e-12)
    monkeypatch.setattr(lp, "factor_backend", lambda: "superlu")
    np.testing.assert_allclose(lp.smooth(v, f, t, kind=kind), want, atol=1e-10)


def test_smoothing_reduces_noise_keeps_mean():
    m = trimesh.creation.icosphere(subdivisions=3)
    v = np.asarray(m.vertices)
    f = np.asarray(m.faces, dtype=np.int64)
    noisy = v + np.random.default_rng(0).normal(scale=0.02, size=v.shape)
    M = lp.mass(noisy, f)
    out = lp.smooth(noisy, f, 1e-2)
    r_in, r_out = np.linalg.norm(noisy, axis=1), np.linalg.norm(out, axis=1)
    assert r_out.std() < 0.5 * r_in.std()
    # (M + tL) x = M x0 and 1^T L = 0 conserve the M-weighted sum of the input operator
    np.testing.assert_allclose(M.diagonal() @ out, M.diagonal() @ noisy, atol=1e-10)


# ---------------------------------------------------------------------------------------------
# dispatcher and bad input


def test_dispatcher():
    v, f = _random_mesh(8, 2)
    for kind, fn in (("combinatorial", lp.combinatorial), ("normalized", lp.normalized), ("random_walk", lp.random_walk)):
        np.testing.assert_array_equal(_dense(lp.laplacian(v, f, kind)), _dense(fn(f, len(v))))
        np.testing.assert_array_equal(_dense(lp.laplacian(None, f, kind)), _dense(fn(f)))
    np.testing.assert_array_equal(_dense(lp.laplacian(v, f)), _dense(lp.cotangent(v, f)))
    with pytest.raises(ValueError, match="vertices: expected a \\(V, 3\\) array for kind='cotangent'"):
        lp.laplacian(None, f, "cotangent")
    with pytest.raises(ValueError, match="kind: expected one of"):
        lp.laplacian(v, f, "cot")


def test_bad_input():
    v, f = grid_mesh(4, 4)
    L = lp.combinatorial(f)
    with pytest.raises(ValueError, match="kind: expected one of"):
        lp.mass(v, f, kind="lumped")
    with pytest.raises(ValueError, match="eps: expected a number >= 0"):
        lp.cotangent(v, f, eps=-1.0)
    with pytest.raises(TypeError, match="faces"):
        lp.combinatorial(f.astype(float))
    with pytest.raises(ValueError, match="faces: expected indices in"):
        lp.combinatorial(f, 3)
    with pytest.raises(ValueError, match="vertices: expected finite"):
        lp.cotangent(np.full_like(v, np.nan), f)
    with pytest.raises(ValueError, match="lmax: expected a number > 0"):
        lp.chebyshev_rescale(L, 0.0)
    with pytest.raises(ValueError, match="K: expected an integer >= 1"):
        lp.chebyshev_basis(L, v, 0)
    with pytest.raises(ValueError, match=r"x: expected shape \(16,\) or \(16, C\)"):
        lp.chebyshev_basis(L, v[:5], 2)
    with pytest.raises(ValueError, match="k: expected an integer <= 15"):
        lp.eigenbasis(L, 16)
    with pytest.raises(TypeError, match="L: expected a square scipy.sparse matrix"):
        lp.eigenbasis([[1.0]], 1)
    with pytest.raises(ValueError, match="mass: expected shape"):
        lp.eigenbasis(L, 2, sp.identity(5, format="csr"))
    with pytest.raises(ValueError, match="t: expected a number >= 0"):
        lp.smooth(v, f, -1.0)
    with pytest.raises(ValueError, match="kind: expected one of"):
        lp.Smoother(v, f, 1.0, kind="cot")
    if lp.factor_backend() == "cholmod":
        with pytest.raises(ValueError, match="positive definite"):
            lp._factor(sp.csc_matrix(np.diag([1.0, 0.0])))  # singular


def test_returns_csr_with_sorted_indices():
    v, f = _random_mesh(9)
    for m in (lp.combinatorial(f), lp.normalized(f), lp.random_walk(f), lp.cotangent(v, f), lp.mass(v, f),
              lp.mass(v, f, kind="voronoi"), lp.chebyshev_rescale(lp.normalized(f), 2.0)):
        assert isinstance(m, sp.csr_matrix) and m.has_sorted_indices and m.dtype == np.float64


@pytest.mark.slow
def test_full_face_template_invariants():
    from meshkit.synthetic import face_template

    v, f = face_template()
    L = lp.cotangent(v, f)
    assert abs(L - (-igl.cotmatrix(v, f))).max() <= 1e-10 * abs(L).max()
    np.testing.assert_allclose(L @ np.ones(len(v)), 0.0, atol=1e-9 * abs(L).max())
    b = lp.eigenbasis(L, 20, lp.mass(v, f))
    assert abs(b.values[0]) < 1e-6 * b.values[1] and (np.diff(b.values) > 0).all()
