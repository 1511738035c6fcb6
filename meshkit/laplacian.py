"""Graph and cotangent Laplacians, mass matrices, Chebyshev rescaling, eigenbases and smoothing.

What this file holds:

* graph Laplacians of the edge graph: :func:`combinatorial` (D - A), :func:`normalized`
  (I - D^-1/2 A D^-1/2) and :func:`random_walk` (I - D^-1 A);
* the cotangent Laplacian :func:`cotangent` and the lumped mass matrices :func:`mass`
  (barycentric, or Meyer et al.'s mixed Voronoi areas); :func:`laplacian` dispatches by name;
* Chebyshev graph convolutions (CoMA): :func:`lambda_max`, :func:`chebyshev_rescale`,
  :func:`chebyshev_basis`;
* spectral tools: :func:`eigenbasis` (k smallest eigenpairs by shift-invert), :func:`fourier` and
  :func:`inverse_fourier`;
* implicit smoothing: :func:`smooth` and the :class:`Smoother` that keeps its factorization.

Sign convention, everywhere: every Laplacian here is *positive* semi-definite, with a positive
diagonal and non-positive off-diagonal entries for the graph Laplacians (cotangent off-diagonals
are negative except across edges whose opposite angles sum to more than pi). Rows of the
combinatorial and cotangent Laplacians sum to zero. No Laplacian is divided by area: the mass
matrix is returned separately by :func:`mass`, and the "area-normalized" operator is M^-1 L.
(libigl's ``cotmatrix`` is our ``-cotangent``; pytorch3d's ``cot_laplacian`` holds only the positive
off-diagonal weights cot a + cot b, without the 1/2 and without a diagonal, and returns inverse
vertex areas beside it; potpourri3d's ``cotan_laplacian`` equals ours.)
All matrices are ``scipy.sparse.csr_matrix`` of float64.

Sparse factorizations use CHOLMOD (``sksparse.cholmod``) when it is importable and fall back to
SciPy's SuperLU otherwise; :func:`_factor` alone makes that choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .topology import _adjacency, _faces_and_vertex_count
from .validate import check_choice, check_float, check_int, check_mesh, check_signal, check_square_sparse

__all__ = [
    "combinatorial",
    "normalized",
    "random_walk",
    "cotangent",
    "mass",
    "laplacian",
    "lambda_max",
    "chebyshev_rescale",
    "chebyshev_basis",
    "Eigenbasis",
    "eigenbasis",
    "fourier",
    "inverse_fourier",
    "Smoother",
    "smooth",
    "factor_backend",
]


# ---------------------------------------------------------------------------------------------
# helpers


def _with_diagonal(off: sp.csr_matrix, diag: np.ndarray) -> sp.csr_matrix:
    """csr of ``off`` (no diagonal entries) plus ``diag`` on the diagonal; indices sorted."""
    n = off.shape[0]
    out = (off + sp.csr_matrix((diag, (np.arange(n), np.arange(n))), shape=(n, n))).tocsr()
    out.sort_indices()
    return out


def factor_backend() -> str:
    """Which sparse factorization :func:`_factor` uses here: "cholmod" or "superlu"."""
    try:
        import sksparse.cholmod  # noqa: F401
    except ImportError:
        return "superlu"
    return "cholmod"


def _factor(A: sp.spmatrix):
    """Factor a sparse symmetric positive definite (V, V) matrix once; return ``solve(b)`` for
    b of shape (V,) or (V, C). CHOLMOD (sksparse) when importable, else SciPy SuperLU: the one
    place that chooses."""
    A = sp.csc_matrix(A, dtype=np.float64)
    if factor_backend() == "cholmod":
        from sksparse.cholmod import CholmodNotPositiveDefiniteError, cholesky

        try:
            fac = cholesky(A)
        except CholmodNotPositiveDefiniteError as e:
            raise ValueError(f"expected a symmetric positive definite system matrix, CHOLMOD says: {e}") from e
        return fac
    lu = spla.splu(A)
    return lu.solve


# ---------------------------------------------------------------------------------------------
# graph Laplacians


def combinatorial(faces, n_vertices: int | None = None) -> sp.csr_matrix:
    """Combinatorial graph Laplacian L = D - A of the mesh's edge graph.

    Convention: positive semi-definite; L_ii = degree of i (number of distinct neighbours),
    L_ij = -1 for an edge (i, j), 0 otherwise; rows sum to 0; no area, no mass.

    Parameters
    ----------
    faces : (F, 3) int
    n_vertices : int, optional
        V (default ``faces.max() + 1``); isolated vertices get an all-zero row.

    Returns
    -------
    (V, V) csr float64, symmetric.
    """
    f, n = _faces_and_vertex_count(faces, n_vertices)
    a = _adjacency(f, n)
    deg = np.diff(a.indptr).astype(np.float64)
    a.data *= -1.0
    return _with_diagonal(a, deg)


def normalized(faces, n_vertices: int | None = None) -> sp.csr_matrix:
    """Symmetric normalized graph Laplacian L = I - D^-1/2 A D^-1/2.

    Convention: positive semi-definite with eigenvalues in [0, 2]; L_ii = 1 and
    L_ij = -1 / sqrt(d_i d_j) for an edge (i, j). An isolated vertex (d = 0) gets an all-zero row
    and column, diagonal included (as networkx's ``normalized_laplacian_matrix``). No area.

    Parameters
    ----------
    faces : (F, 3) int
    n_vertices : int, optional

    Returns
    -------
    (V, V) csr float64, symmetric.
    """
    f, n = _faces_and_vertex_count(faces, n_vertices)
    a = _adjacency(f, n)
    deg = np.diff(a.indptr).astype(np.float64)
    s = np.zeros(n)
    s[deg > 0] = 1.0 / np.sqrt(deg[deg > 0])
    rows = np.repeat(np.arange(n), np.diff(a.indptr))
    a.data = -s[rows] * s[a.indices]
    return _with_diagonal(a, (deg > 0).astype(np.float64))


def random_walk(faces, n_vertices: int | None = None) -> sp.csr_matrix:
    """Random-walk graph Laplacian L = I - D^-1 A.

    Convention: not symmetric, but similar to :func:`normalized` (same eigenvalues, in [0, 2]),
    so positive semi-definite in spectrum; L_ii = 1, L_ij = -1 / d_i for an edge (i, j); rows sum
    to 0. An isolated vertex gets an all-zero row. No area.

    Parameters
    ----------
    faces : (F, 3) int
    n_vertices : int, optional

    Returns
    -------
    (V, V) csr float64.
    """
    f, n = _faces_and_vertex_count(faces, n_vertices)
    a = _adjacency(f, n)
    deg = np.diff(a.indptr).astype(np.float64)
    inv = np.zeros(n)
    inv[deg > 0] = 1.0 / deg[deg > 0]
    a.data = -np.repeat(inv, np.diff(a.indptr))
    return _with_diagonal(a, (deg > 0).astype(np.float64))


# ---------------------------------------------------------------------------------------------
# cotangent Laplacian and mass


def _corner_cotangents(v: np.ndarray, f: np.ndarray, eps: float):
    """Per face: cotangents (F, 3) of the angles at corners 0, 1, 2, squared lengths (F, 3) of the
    edges opposite those corners, and the areas (F,).

    cot at corner k = (dot of its two edge vectors) / (2 * area), with 2 * area clamped below at
    ``eps * (l0^2 + l1^2 + l2^2)`` (one common denominator per face, so the face's 3x3 stiffness
    block stays positive semi-definite); a face with three coincident corners contributes 0.
    """
    p0, p1, p2 = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    e0 = p2 - p1  # opposite corner 0
    e1 = p0 - p2  # opposite corner 1
    e2 = p1 - p0  # opposite corner 2
    sq = np.stack([np.einsum("ij,ij->i", e0, e0), np.einsum("ij,ij->i", e1, e1), np.einsum("ij,ij->i", e2, e2)], axis=1)
    dots = -np.stack([np.einsum("ij,ij->i", e1, e2), np.einsum("ij,ij->i", e2, e0), np.einsum("ij,ij->i", e0, e1)], axis=1)
    twice_area = np.linalg.norm(np.cross(e1, e2), axis=1)
    den = np.maximum(twice_area, eps * sq.sum(axis=1))
    cot = np.divide(dots, den[:, None], out=np.zeros_like(dots), where=den[:, None] > 0)
    return cot, sq, 0.5 * twice_area


def cotangent(vertices, faces, *, eps: float = 1e-10) -> sp.csr_matrix:
    """Cotangent Laplacian (the linear finite-element stiffness matrix), positive semi-definite.

    Convention: L_ij = -(cot a_ij + cot b_ij) / 2 for an edge (i, j), where a_ij, b_ij are the
    angles opposite the edge in its one or two faces (boundary edges have one term);
    L_ii = -sum_j L_ij, so rows sum to 0. Not divided by area: pair it with :func:`mass`
    (L x = lambda M x; M^-1 L is the pointwise operator). Equals ``-igl.cotmatrix(V, F)``.

    Robustness: obtuse angles give negative cotangents and are kept as they are (the matrix stays
    PSD: each face adds a PSD block); for (near-)degenerate faces, twice the face area used in
    the cotangent denominators is clamped below at ``eps * (sum of squared edge lengths)``, so
    weights stay finite and each face's block stays PSD; a face whose corners coincide adds 0.

    Parameters
    ----------
    vertices : (V, 3) float
    faces : (F, 3) int
    eps : float >= 0
        Relative clamp of the face area in the cotangent denominators (see above).

    Returns
    -------
    (V, V) csr float64, symmetric.
    """
    v, f = check_mesh(vertices, faces)
    eps = check_float(eps, "eps", minimum=0.0)
    n = len(v)
    cot, _, _ = _corner_cotangents(v, f, eps)
    w = 0.5 * cot  # weight of the edge opposite each corner
    # edge opposite corner 0 is (f1, f2), corner 1: (f2, f0), corner 2: (f0, f1)
    a = np.concatenate([f[:, 1], f[:, 2], f[:, 0]])
    b = np.concatenate([f[:, 2], f[:, 0], f[:, 1]])
    wf = np.concatenate([w[:, 0], w[:, 1], w[:, 2]])
    diag = np.bincount(a, weights=wf, minlength=n) + np.bincount(b, weights=wf, minlength=n)
    idx = np.arange(n)
    out = sp.csr_matrix((np.concatenate([-wf, -wf, diag]), (np.concatenate([a, b, idx]), np.concatenate([b, a, idx]))),
                        shape=(n, n))
    out.sum_duplicates()  # also sorts the column indices
    return out


def mass(vertices, faces, *, kind: Literal["barycentric", "voronoi"] = "barycentric", eps: float = 1e-10) -> sp.csr_matrix:
    """Lumped (diagonal) mass matrix: the area attributed to each vertex.

    * ``"barycentric"``: M_ii = one third of the total area of the faces around i.
    * ``"voronoi"``: Meyer, Desbrun, Schroeder & Barr (2003) mixed areas: in a non-obtuse face
      the corner at i gets its Voronoi area (|e_ij|^2 cot(k) + |e_ik|^2 cot(i's other
      opposite angle)) / 8; in an obtuse face the obtuse corner gets half the face area and the
      two others a quarter each. Matches ``igl.massmatrix(V, F, igl.MASSMATRIX_TYPE_VORONOI)``.

    Both attribute each face's area exactly once, so the trace is the surface area. Isolated
    vertices get 0 (the matrix is then singular).

    Parameters
    ----------
    vertices : (V, 3) float
    faces : (F, 3) int
    kind : "barycentric" or "voronoi"
    eps : float >= 0
        Area clamp of the cotangents in the Voronoi case (as in :func:`cotangent`).

    Returns
    -------
    (V, V) csr float64, diagonal.
    """
    v, f = check_mesh(vertices, faces)
    check_choice(kind, "kind", ("barycentric", "voronoi"))
    eps = check_float(eps, "eps", minimum=0.0)
    n = len(v)
    if kind == "barycentric":
        area = 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)
        per = np.repeat(area[:, None] / 3.0, 3, axis=1)
    else:
        cot, sq, area = _corner_cotangents(v, f, eps)
        # Voronoi part at corner k uses the two edges at k: corner 0 has edges opposite 1 and 2
        vor = np.stack([sq[:, 2] * cot[:, 2] + sq[:, 1] * cot[:, 1],
                        sq[:, 0] * cot[:, 0] + sq[:, 2] * cot[:, 2],
                        sq[:, 1] * cot[:, 1] + sq[:, 0] * cot[:, 0]], axis=1) / 8.0
        obtuse = cot < 0  # angle > pi / 2  <=>  dot < 0
        any_obtuse = obtuse.any(axis=1)
        mixed = np.where(obtuse, area[:, None] / 2.0, area[:, None] / 4.0)
        per = np.where(any_obtuse[:, None], mixed, vor)
    m = np.bincount(f.ravel(), weights=per.ravel(), minlength=n)
    return sp.csr_matrix((m, np.arange(n), np.arange(n + 1)), shape=(n, n))


def laplacian(vertices, faces, kind: Literal["combinatorial", "normalized", "random_walk", "cotangent"] = "cotangent", *,
              n_vertices: int | None = None) -> sp.csr_matrix:
    """The Laplacian of the given kind (conventions in each function); ``vertices`` may be None for
    the graph kinds. ``n_vertices`` defaults to ``len(vertices)`` when vertices are given."""
    check_choice(kind, "kind", ("combinatorial", "normalized", "random_walk", "cotangent"))
    if kind == "cotangent":
        if vertices is None:
            raise ValueError("vertices: expected a (V, 3) array for kind='cotangent', got None")
        return cotangent(vertices, faces)
    if n_vertices is None and vertices is not None:
        n_vertices = len(np.asarray(vertices))
    return {"combinatorial": combinatorial, "normalized": normalized, "random_walk": random_walk}[kind](faces, n_vertices)


# ---------------------------------------------------------------------------------------------
# Chebyshev


def _v0(n: int) -> np.ndarray:
    """Deterministic ARPACK start vector (ARPACK otherwise starts from a random one)."""
    return np.cos(np.arange(n) * 0.7548776662466927) + 1.5


def lambda_max(L, *, tol: float = 1e-8) -> float:
    """Largest eigenvalue of a Laplacian (Lanczos/Arnoldi via ARPACK, deterministic start vector).

    Parameters
    ----------
    L : (V, V) sparse, PSD (symmetric, or similar to symmetric like :func:`random_walk`)
    tol : float
        ARPACK relative tolerance.

    Returns
    -------
    float
    """
    L = check_square_sparse(L)
    tol = check_float(tol, "tol", minimum=0.0)
    n = L.shape[0]
    if n <= 16:
        return float(np.linalg.eigvals(L.toarray()).real.max())
    if abs(L - L.T).max() <= 1e-12 * max(1.0, abs(L).max()):
        val = spla.eigsh(L, k=1, which="LA", v0=_v0(n), tol=tol, return_eigenvectors=False)
    else:
        val = spla.eigs(L, k=1, which="LR", v0=_v0(n), tol=tol, return_eigenvectors=False)
    return float(np.real(val).max())


def chebyshev_rescale(L, lmax: float | None = None) -> sp.csr_matrix:
    """Rescale a Laplacian for Chebyshev filters: L_hat = 2 L / lmax - I (spectrum into [-1, 1]).

    Parameters
    ----------
    L : (V, V) sparse PSD Laplacian
    lmax : float > 0, optional
        Its largest eigenvalue; computed with :func:`lambda_max` when omitted. The cnn_graph code
        that CoMA builds on rescales with the bound ``lmax=2`` of the normalized Laplacian; pass
        ``lmax=2.0`` for that behaviour.

    Returns
    -------
    (V, V) csr float64.
    """
    L = check_square_sparse(L)
    lmax = lambda_max(L) if lmax is None else check_float(lmax, "lmax", minimum=0.0, strict_minimum=True)
    out = (L * (2.0 / lmax) - sp.identity(L.shape[0], format="csr")).tocsr()
    out.sort_indices()
    return out


def chebyshev_basis(L_hat, x, K: int) -> np.ndarray:
    """Chebyshev polynomials of ``L_hat`` applied to signals: [T_0 x, ..., T_{K-1} x].

    Recurrence: T_0 x = x, T_1 x = L_hat x, T_k x = 2 L_hat T_{k-1} x - T_{k-2} x.

    Parameters
    ----------
    L_hat : (V, V) sparse, usually :func:`chebyshev_rescale` of a Laplacian
    x : (V,) or (V, C) float
    K : int >= 1
        Number of polynomials (the filter order of ChebConv / CoMA).

    Returns
    -------
    (K, V, C) float64, or (K, V) for a 1-D ``x``.
    """
    L_hat = check_square_sparse(L_hat, "L_hat")
    x = check_signal(x, L_hat.shape[0])
    K = check_int(K, "K", minimum=1)
    out = np.empty((K,) + x.shape)
    out[0] = x
    if K > 1:
        out[1] = L_hat @ x
    for k in range(2, K):
        out[k] = 2.0 * (L_hat @ out[k - 1]) - out[k - 2]
    return out


# ---------------------------------------------------------------------------------------------
# eigenbasis and graph Fourier transform


@dataclass(frozen=True)
class Eigenbasis:
    """The k smallest eigenpairs of L phi = lambda M phi.

    Attributes
    ----------
    values : (k,) float64, ascending
    vectors : (V, k) float64, M-orthonormal (vectors.T @ M @ vectors = I); each column's sign is
        fixed so that its entry of largest magnitude (first such on ties) is positive
    mass : (V, V) csr or None (None means M = I)
    """

    values: np.ndarray
    vectors: np.ndarray
    mass: sp.csr_matrix | None

    def fourier(self, x) -> np.ndarray:
        """Spectral coefficients of ``x``: see :func:`fourier`."""
        return fourier(self, x)

    def inverse_fourier(self, coefficients) -> np.ndarray:
        """Signal from coefficients: see :func:`inverse_fourier`."""
        return inverse_fourier(self, coefficients)


def eigenbasis(L, k: int, mass=None, *, sigma: float | None = None, tol: float = 0.0) -> Eigenbasis:
    """The k smallest eigenpairs of the generalized problem L phi = lambda M phi (M = I if no mass).

    Shift-invert Lanczos (ARPACK ``eigsh``) around ``sigma`` slightly below 0, with the operator
    (L - sigma M)^-1 applied through one sparse Cholesky factor (CHOLMOD; SuperLU fallback).

    Parameters
    ----------
    L : (V, V) sparse symmetric PSD (e.g. :func:`cotangent`, :func:`combinatorial`)
    k : int, 1 <= k < V
    mass : (V, V) sparse symmetric positive definite, optional (e.g. :func:`mass`)
    sigma : float < 0, optional
        Shift; default ``-1e-8 * mean(diag L) / mean(diag M)``.
    tol : float
        ARPACK tolerance (0 = machine precision).

    Returns
    -------
    :class:`Eigenbasis` (values ascending, vectors M-orthonormal, deterministic signs).

    Notes
    -----
    The time goes mostly to ARPACK's dense vector work, which runs in the threaded BLAS. On a
    machine whose cores are already busy, BLAS threads waiting for each other can make this 5x
    slower; ``OMP_NUM_THREADS=1`` (set before Python starts) avoids it (see benchmarks/README.md).
    """
    L = check_square_sparse(L)
    n = L.shape[0]
    k = check_int(k, "k", minimum=1, maximum=n - 1)
    tol = check_float(tol, "tol", minimum=0.0)
    M = None if mass is None else check_square_sparse(mass, "mass")
    if M is not None and M.shape != L.shape:
        raise ValueError(f"mass: expected shape {L.shape} to match L, got {M.shape}")
    mdiag = 1.0 if M is None else float(np.mean(M.diagonal()))
    if sigma is None:
        scale = float(np.mean(L.diagonal())) / mdiag if mdiag > 0 else 1.0
        sigma = -1e-8 * (scale if scale > 0 else 1.0)
    else:
        sigma = check_float(sigma, "sigma")
    Mop = sp.identity(n, format="csr") if M is None else M
    solve = _factor((L - sigma * Mop).tocsc())
    opinv = spla.LinearOperator((n, n), matvec=lambda b: solve(np.asarray(b, dtype=np.float64)), dtype=np.float64)
    vals, vecs = spla.eigsh(L, k=k, M=M, sigma=sigma, which="LM", OPinv=opinv, v0=_v0(n), tol=tol)
    order = np.argsort(vals, kind="stable")
    vals, vecs = vals[order], vecs[:, order]
    # M-normalize and fix signs
    norms = np.sqrt(np.einsum("ij,ij->j", vecs, Mop @ vecs))
    vecs = vecs / norms
    big = np.argmax(np.abs(vecs), axis=0)
    vecs = vecs * np.where(vecs[big, np.arange(k)] < 0, -1.0, 1.0)
    return Eigenbasis(vals, np.ascontiguousarray(vecs), M)


def fourier(basis: Eigenbasis, x) -> np.ndarray:
    """Graph Fourier transform: coefficients c = Phi^T M x ((k,) or (k, C) for x (V,) or (V, C)).

    With M-orthonormal Phi, ``inverse_fourier(basis, fourier(basis, x))`` is the M-orthogonal
    projection of x onto the span of the k eigenvectors.
    """
    x = check_signal(x, basis.vectors.shape[0])
    mx = x if basis.mass is None else basis.mass @ x
    return basis.vectors.T @ mx


def inverse_fourier(basis: Eigenbasis, coefficients) -> np.ndarray:
    """Inverse graph Fourier transform: x = Phi c ((V,) or (V, C) for c (k,) or (k, C))."""
    c = check_signal(coefficients, basis.vectors.shape[1], "coefficients")
    return basis.vectors @ c


# ---------------------------------------------------------------------------------------------
# implicit smoothing


class Smoother:
    """Implicit Laplacian smoothing with a stored factorization: x = (M + t L)^-1 M x0.

    One backward-Euler step of the heat flow dx/dt = -M^-1 L x. The system matrix is factored once
    (CHOLMOD, SuperLU fallback); each call is then two triangular solves, so use this class to
    smooth many signals (or iterate) on one mesh.

    * ``kind="cotangent"``: L = :func:`cotangent`, M = :func:`mass` (``mass_kind``); ``t`` has
      units of area (length^2), so scale it with the mesh (e.g. ``t = 1e-3 * area``).
    * ``kind="combinatorial"``: L = :func:`combinatorial`, M = I; ``t`` is dimensionless (number of
      neighbour-averaging "steps").

    Parameters
    ----------
    vertices : (V, 3) float
    faces : (F, 3) int
    t : float >= 0
    kind : "cotangent" or "combinatorial" (the names of the Laplacians in this module)
    mass_kind : "barycentric" or "voronoi" (cotangent only)
    """

    def __init__(self, vertices, faces, t: float, *, kind: Literal["cotangent", "combinatorial"] = "cotangent",
                 mass_kind: Literal["barycentric", "voronoi"] = "barycentric"):
        v, f = check_mesh(vertices, faces)
        self.t = check_float(t, "t", minimum=0.0)
        self.kind = check_choice(kind, "kind", ("cotangent", "combinatorial"))
        check_choice(mass_kind, "mass_kind", ("barycentric", "voronoi"))
        n = len(v)
        if kind == "cotangent":
            L = cotangent(v, f)
            M = mass(v, f, kind=mass_kind)
            if (M.diagonal() <= 0).any():
                bad = int(np.flatnonzero(M.diagonal() <= 0)[0])
                raise ValueError(f"vertices: expected every vertex in a face of non-zero area, vertex {bad} has zero mass")
        else:
            L = combinatorial(f, n)
            M = sp.identity(n, format="csr")
        self.n_vertices = n
        self.mass = M
        self.backend = factor_backend()
        self._solve = _factor(M + self.t * L)

    def __call__(self, x) -> np.ndarray:
        """Smooth a signal x (V,) or (V, C) (e.g. the vertices) once; same shape out, float64."""
        x = check_signal(x, self.n_vertices)
        return np.asarray(self._solve(self.mass @ x)).reshape(x.shape)


def smooth(vertices, faces, t: float, *, kind: Literal["cotangent", "combinatorial"] = "cotangent", iterations: int = 1,
           mass_kind: Literal["barycentric", "voronoi"] = "barycentric") -> np.ndarray:
    """Implicitly smoothed vertex positions: ``iterations`` solves of (M + t L) x = M x0.

    The operator is built once from the input geometry and kept for all iterations (see
    :class:`Smoother` for the conventions of ``kind`` and the units of ``t``).

    Returns
    -------
    (V, 3) float64.
    """
    iterations = check_int(iterations, "iterations", minimum=0)
    s = Smoother(vertices, faces, t, kind=kind, mass_kind=mass_kind)
    x = check_mesh(vertices, faces)[0].copy()
    for _ in range(iterations):
        x = s(x)
    return x
