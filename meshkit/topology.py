"""Mesh connectivity: edges, adjacency, vertex-face incidence, ordered one-rings, boundary loops,
connected components, non-manifold detection, Euler characteristic.

All functions take ``faces`` (F, 3) int and, where isolated vertices matter, ``n_vertices``
(default: ``faces.max() + 1``). Sparse results are ``scipy.sparse.csr_matrix``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ._kernels import topology as topology_kernels
from .validate import check_faces, check_int

__all__ = [
    "edges",
    "adjacency",
    "degree",
    "vertex_face_incidence",
    "one_rings",
    "boundary_edges",
    "boundary_loops",
    "boundary_vertices",
    "connected_components",
    "nonmanifold_edges",
    "nonmanifold_vertices",
    "is_manifold",
    "euler_characteristic",
]


def _faces_and_vertex_count(faces, n_vertices) -> tuple[np.ndarray, int]:
    """Validated faces and the vertex count (``n_vertices``, checked first, or ``faces.max() + 1``)."""
    n = None if n_vertices is None else check_int(n_vertices, "n_vertices", minimum=1)
    f = check_faces(faces, n)
    return f, (int(f.max()) + 1 if n is None else n)


def _directed(f: np.ndarray) -> np.ndarray:
    """The 3F directed half-edges (a->b, b->c, c->a), face-major."""
    return np.stack([f, np.roll(f, -1, axis=1)], axis=2).reshape(-1, 2)


def edges(faces, *, return_counts: bool = False):
    """Unique undirected edges (E, 2) int64, each row sorted (i < j), rows in lexicographic order.

    With ``return_counts`` also the number of faces using each edge (1 = boundary, 2 = interior,
    more = non-manifold).
    """
    f = check_faces(faces)
    e = np.sort(_directed(f), axis=1)
    u, counts = np.unique(e, axis=0, return_counts=True)
    return (u, counts) if return_counts else u


def adjacency(faces, n_vertices: int | None = None) -> sp.csr_matrix:
    """Symmetric 0/1 vertex adjacency (V, V) csr, float64, no diagonal, column indices sorted."""
    f, n = _faces_and_vertex_count(faces, n_vertices)
    return _adjacency(f, n)


def _adjacency(f: np.ndarray, n: int) -> sp.csr_matrix:
    """:func:`adjacency` on validated faces: every face edge in both directions, duplicates (an
    interior edge appears in two faces) summed by scipy, then set to 1."""
    i = np.concatenate([f[:, 0], f[:, 1], f[:, 2], f[:, 1], f[:, 2], f[:, 0]])
    j = np.concatenate([f[:, 1], f[:, 2], f[:, 0], f[:, 0], f[:, 1], f[:, 2]])
    a = sp.csr_matrix((np.ones(i.size), (i, j)), shape=(n, n))
    a.sum_duplicates()
    a.sort_indices()
    a.data[:] = 1.0
    return a


def degree(faces, n_vertices: int | None = None) -> np.ndarray:
    """Number of distinct neighbours of each vertex, (V,) int64."""
    return np.diff(adjacency(faces, n_vertices).indptr).astype(np.int64)


def vertex_face_incidence(faces, n_vertices: int | None = None) -> sp.csr_matrix:
    """Incidence (V, F) csr: entry (v, f) = 1 when vertex v is a corner of face f.

    Row v's column indices (``.indices[indptr[v]:indptr[v+1]]``) list v's faces in ascending order.
    """
    f, n = _faces_and_vertex_count(faces, n_vertices)
    nf = len(f)
    rows = f.ravel()
    cols = np.repeat(np.arange(nf, dtype=np.int64), 3)
    order = np.argsort(rows, kind="stable")
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return sp.csr_matrix((np.ones(3 * nf), cols[order], indptr), shape=(n, nf))


def _rings_csr(f: np.ndarray, n: int):
    vf = vertex_face_incidence(f, n)
    return topology_kernels.ordered_one_rings(f, vf.indptr.astype(np.int64), vf.indices.astype(np.int64), n)


def one_rings(faces, n_vertices: int | None = None, *, return_boundary: bool = False):
    """Each vertex's one-ring neighbours in rotational order, consistent with the face winding.

    The order is counter-clockwise seen from the front (the side the normals point to). An
    interior vertex's ring starts at its smallest-index neighbour; a boundary vertex's ring starts
    at the boundary neighbour from which the counter-clockwise sweep covers all its faces, and ends
    on the other boundary neighbour. Isolated vertices get an empty ring.

    Parameters
    ----------
    faces : (F, 3) int
    n_vertices : int, optional
    return_boundary : bool
        Also return a (V,) bool array marking boundary vertices.

    Returns
    -------
    list of V int64 arrays (and the boundary mask).

    Raises
    ------
    ValueError
        At a non-manifold vertex (several fans) or inconsistent winding, which has no rotational order.
    """
    f, n = _faces_and_vertex_count(faces, n_vertices)
    indptr, ring, status = _rings_csr(f, n)
    bad = np.flatnonzero(status < 0)
    if bad.size:
        raise ValueError(
            f"faces: cannot order the one-ring of {bad.size} vertex(es) (non-manifold vertex or "
            f"inconsistent winding), first at vertex {bad[0]}"
        )
    rings = np.split(ring, indptr[1:-1])
    return (rings, status == 1) if return_boundary else rings


def boundary_edges(faces) -> np.ndarray:
    """Directed boundary half-edges (B, 2): (a, b) in some face whose reverse (b, a) is in none.

    They follow the winding, so with outward normals each boundary loop runs counter-clockwise
    seen from the front.
    """
    f = check_faces(faces)
    d = _directed(f)
    n = int(f.max()) + 1
    key = d[:, 0] * n + d[:, 1]
    rkey = d[:, 1] * n + d[:, 0]
    mask = ~np.isin(key, rkey)
    return d[mask]


def boundary_loops(faces) -> list[np.ndarray]:
    """Boundary loops as ordered vertex arrays, following the winding; each loop starts at its
    smallest vertex index; loops sorted by that start. Raises ``ValueError`` where a boundary
    vertex has two outgoing boundary edges (a non-manifold 'bowtie' boundary)."""
    be = boundary_edges(faces)
    if len(be) == 0:
        return []
    nxt: dict[int, int] = {}
    for a, b in be.tolist():
        if a in nxt:
            raise ValueError(f"faces: boundary vertex {a} has two outgoing boundary edges (non-manifold)")
        nxt[a] = b
    loops = []
    seen: set[int] = set()
    for s in sorted(nxt):
        if s in seen:
            continue
        loop = [s]
        seen.add(s)
        cur = nxt[s]
        while cur != s:
            if cur in seen or cur not in nxt:
                raise ValueError(f"faces: boundary does not close into a loop at vertex {cur}")
            loop.append(cur)
            seen.add(cur)
            cur = nxt[cur]
        loops.append(np.asarray(loop, dtype=np.int64))
    return loops


def boundary_vertices(faces, n_vertices: int | None = None) -> np.ndarray:
    """(V,) bool mask of vertices on a boundary edge."""
    f, n = _faces_and_vertex_count(faces, n_vertices)
    mask = np.zeros(n, dtype=bool)
    mask[boundary_edges(f).ravel()] = True
    return mask


def connected_components(faces, n_vertices: int | None = None) -> tuple[int, np.ndarray]:
    """Connected components through edges: (count, labels (V,) int64).

    Labels are numbered by first appearance in vertex order; an isolated vertex is its own component.
    """
    from scipy.sparse.csgraph import connected_components as cc

    a = adjacency(faces, n_vertices)
    count, labels = cc(a, directed=False)
    # renumber by first appearance so labels do not depend on scipy's traversal
    _, first = np.unique(labels, return_index=True)
    remap = np.empty(count, dtype=np.int64)
    remap[np.argsort(first, kind="stable")] = np.arange(count)
    return int(count), remap[labels]


def nonmanifold_edges(faces) -> np.ndarray:
    """Undirected edges (E', 2) shared by more than two faces."""
    e, c = edges(faces, return_counts=True)
    return e[c > 2]


def nonmanifold_vertices(faces, n_vertices: int | None = None) -> np.ndarray:
    """Indices of vertices whose faces do not form a single fan (e.g. two cones touching at a tip),
    or around which the winding is inconsistent."""
    f, n = _faces_and_vertex_count(faces, n_vertices)
    _, _, status = _rings_csr(f, n)
    return np.flatnonzero(status < 0)


def is_manifold(faces, n_vertices: int | None = None) -> bool:
    """True when every edge has at most two faces and every vertex a single consistently wound fan."""
    return len(nonmanifold_edges(faces)) == 0 and len(nonmanifold_vertices(faces, n_vertices)) == 0


def euler_characteristic(faces, n_vertices: int | None = None) -> int:
    """V - E + F, counting all ``n_vertices`` vertices (default: those up to ``faces.max()``)."""
    f, n = _faces_and_vertex_count(faces, n_vertices)
    return int(n - len(edges(f)) + len(f))
