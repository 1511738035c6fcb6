"""Mesh connectivity: edges, adjacency, vertex-face incidence, ordered one-rings, boundary loops,
connected components, non-manifold detection, Euler characteristic; orientation: consistent
winding, outward normals, and a warning for meshes whose normals mostly point inward.

All functions take ``faces`` (F, 3) int and, where isolated vertices matter, ``n_vertices``
(default: ``faces.max() + 1``). Sparse results are ``scipy.sparse.csr_matrix``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ._kernels import topology as topology_kernels
from .validate import check_faces, check_int, check_mesh

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
    "reverse_winding",
    "is_consistently_oriented",
    "outward_fraction",
    "orient_outward",
    "warn_if_inward",
    "facing_fraction",
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
    # slices of the one array (views, as np.split would give, at a quarter of its cost per ring)
    rings = [ring[a:b] for a, b in zip(indptr[:-1].tolist(), indptr[1:].tolist(), strict=True)]
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


# ---------------------------------------------------------------------------------------------
# orientation
#
# A face's normal is cross(v1 - v0, v2 - v0): counter-clockwise corners seen from a side means the
# normal points to that side. "Outward" is measured against a centre c: face f points outward when
# (centroid_f - c) . normal_f > 0. Summed over a closed surface, that flux is 6 x its signed volume
# whatever c is; on an open shell such as a face mesh (c behind the surface) it is positive when the
# normals point away from the head. The fraction of outward faces about the vertex centroid is the
# measure of ../shared/REAL_FILES.md (3 % on the real BFM files as stored, 97 % reversed).


def reverse_winding(faces) -> np.ndarray:
    """Every triangle with its winding reversed: (a, b, c) -> (a, c, b), (F, 3) int64.

    The first corner stays first; applying it twice gives ``faces`` back.
    """
    f = check_faces(faces, allow_empty=True)
    return np.ascontiguousarray(f[:, [0, 2, 1]])


def is_consistently_oriented(faces) -> bool:
    """True when every edge shared by two faces is traversed in opposite directions by them.

    Equivalently no directed edge (a, b) occurs in two faces. Such a mesh has one well-defined
    side per connected component (for orientable surfaces); an edge with three or more faces always
    makes it False.
    """
    f = check_faces(faces)
    d = _directed(f)
    n = int(f.max()) + 1
    key = d[:, 0] * n + d[:, 1]
    return bool(np.unique(key).size == key.size)


def _face_flux(v: np.ndarray, f: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """(F,) (centroid_f - centre) . cross(v1 - v0, v2 - v0): > 0 where face f points away from ``centre``."""
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    normal = np.cross(b - a, c - a)
    return np.einsum("ij,ij->i", (a + b + c) / 3.0 - centre, normal)


def _used_centroid(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Mean of the vertices that some face uses (isolated vertices do not move the centre)."""
    used = np.zeros(len(v), dtype=bool)
    used[f.ravel()] = True
    return v[used].mean(axis=0)


def outward_fraction(vertices, faces) -> float:
    """Fraction of the triangles whose normal points away from the mesh centroid.

    The normal of face (a, b, c) is ``cross(v_b - v_a, v_c - v_a)``; it points away when
    ``(centroid_f - centroid) . normal > 0`` with ``centroid`` the mean of the vertices the faces
    use. The measure of ``../shared/REAL_FILES.md``: about 0.03 on the real BFM triangle lists as
    stored (clockwise), 0.97 reversed; about 1 on a convex closed mesh wound counter-clockwise
    around outward normals. Degenerate faces count as not outward.

    Parameters
    ----------
    vertices : (V, 3) float
    faces : (F, 3) int

    Returns
    -------
    float in [0, 1].
    """
    v, f = check_mesh(vertices, faces, allow_repeated=True)
    return float(np.mean(_face_flux(v, f, _used_centroid(v, f)) > 0))


def _face_components(f: np.ndarray) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """Faces linked through edges shared by exactly two faces.

    Returns (count, labels (F,), pairs (P, 2) of linked faces, same (P,) bool: True where the two
    faces traverse their shared edge in the same direction, i.e. disagree in orientation).
    """
    from scipy.sparse.csgraph import connected_components as cc

    nf = len(f)
    d = _directed(f)
    face_of = np.repeat(np.arange(nf, dtype=np.int64), 3)
    und = np.sort(d, axis=1)
    n = int(f.max()) + 1
    key = und[:, 0] * n + und[:, 1]
    order = np.argsort(key, kind="stable")
    k_sorted = key[order]
    starts = np.flatnonzero(np.r_[True, k_sorted[1:] != k_sorted[:-1]])
    counts = np.diff(np.r_[starts, key.size])
    first = order[starts[counts == 2]]
    second = order[starts[counts == 2] + 1]
    pairs = np.stack([face_of[first], face_of[second]], axis=1)
    same = d[first, 0] == d[second, 0]
    g = sp.csr_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(nf, nf))
    count, labels = cc(g, directed=False)
    return int(count), labels, pairs, same


def orient_outward(vertices, faces, *, view_direction=None) -> np.ndarray:
    """Faces re-wound so that each connected component is consistently oriented and faces outward.

    Two steps, per component of faces linked through edges shared by exactly two faces:

    1. Consistency: faces are flipped so that every such edge is traversed in opposite directions
       by its two faces (a two-colouring of the face graph, solved as the connected components of
       the graph of (face, flipped?) states). A non-orientable component (a Moebius strip) has no
       such orientation and is left as given.
    2. Side: a closed component (no boundary edge) is turned so that its signed volume is
       positive (outward normals). A component with a boundary is turned so that its area-weighted
       normals point towards ``view_direction`` when it is given (an open surface such as a face,
       seen from the camera: ``(0, 0, 1)`` in the BFM model frame), else away from the
       component's centroid (the flux of :func:`outward_fraction`'s measure, which is the signed
       volume for closed parts and points a face shell away from the head).

    Faces keep their order and their first corner; only the other two corners swap where a face
    flips. Degenerate faces follow their neighbours.

    Parameters
    ----------
    vertices : (V, 3) float
    faces : (F, 3) int
    view_direction : (3,) float, non-zero, optional
        Direction from the surface towards the viewer, for components with a boundary.

    Returns
    -------
    (F, 3) int64 faces.
    """
    from scipy.sparse.csgraph import connected_components as cc

    v, f = check_mesh(vertices, faces, allow_repeated=True)
    view = None
    if view_direction is not None:
        view = np.asarray(view_direction, dtype=np.float64)
        if view.shape != (3,) or not np.isfinite(view).all() or not np.any(view):
            raise ValueError(f"view_direction: expected a finite non-zero (3,) vector, got {view_direction!r}")
    nf = len(f)
    count, labels, pairs, same = _face_components(f)
    # (face, flipped) states: node k = face k kept, node nf + k = face k flipped; two faces that
    # traverse their edge the same way need opposite states, otherwise equal ones
    a, b = pairs[:, 0], pairs[:, 1]
    src = np.concatenate([a, a + nf])
    dst = np.concatenate([np.where(same, b + nf, b), np.where(same, b, b + nf)])
    g = sp.csr_matrix((np.ones(src.size), (src, dst)), shape=(2 * nf, 2 * nf))
    _, state = cc(g, directed=False)
    mixed = state[:nf] == state[nf:]  # kept and flipped joined: the component is not orientable
    orientable = np.bincount(labels, weights=mixed, minlength=count) == 0
    first_face = np.full(count, nf, dtype=np.int64)
    np.minimum.at(first_face, labels, np.arange(nf))
    # keep the state of each component's first face; flip the faces in the other state
    flip = (state[:nf] != state[first_face[labels]]) & orientable[labels]
    out = np.where(flip[:, None], f[:, [0, 2, 1]], f)
    # choose the side of each component; a face with fewer than three edges shared with exactly
    # one other face lies on a boundary (or a non-manifold edge)
    on_boundary = np.bincount(pairs.ravel(), minlength=nf) < 3
    has_boundary = np.bincount(labels, weights=on_boundary, minlength=count) > 0
    aa, bb, cc_ = v[out[:, 0]], v[out[:, 1]], v[out[:, 2]]
    normal = np.cross(bb - aa, cc_ - aa)
    centres = np.stack([np.bincount(labels, weights=((aa + bb + cc_) / 3.0)[:, k], minlength=count) for k in range(3)], 1)
    centres /= np.bincount(labels, minlength=count)[:, None]
    flux = np.einsum("ij,ij->i", (aa + bb + cc_) / 3.0 - centres[labels], normal)
    score = np.bincount(labels, weights=flux, minlength=count)
    if view is not None:
        facing = normal @ view
        score = np.where(has_boundary, np.bincount(labels, weights=facing, minlength=count), score)
    turn = score < 0
    return np.ascontiguousarray(np.where(turn[labels][:, None], out[:, [0, 2, 1]], out))


def warn_if_inward(vertices, faces, *, view_direction=None, name: str = "mesh", stacklevel: int = 2) -> float:
    """Warn (``UserWarning``) when most of a mesh's surface faces inward, or away from the viewer.

    Without ``view_direction`` the measure is :func:`outward_fraction` (faces pointing away from
    the centroid); with it, the fraction of the area whose normal has a positive component along
    ``view_direction`` (towards the viewer). Below one half, the message says how much, and
    names the fix: ``meshkit.topology.orient_outward`` for an inward winding, a turn
    (``meshkit.render.front_view``) for a surface wound outward whose front looks the other way.

    Parameters
    ----------
    vertices : (V, 3) float
    faces : (F, 3) int
    view_direction : (3,) float, optional
    name : str, what to call the mesh in the message.

    Returns
    -------
    float in [0, 1], the fraction measured.
    """
    v, f = check_mesh(vertices, faces, allow_repeated=True)
    frac = facing_fraction(v, f, view_direction) if view_direction is not None else outward_fraction(v, f)
    if frac < 0.5:
        import warnings

        if view_direction is not None and outward_fraction(v, f) >= 0.5:
            warnings.warn(f"{name}: only {100 * frac:.0f} % of the surface faces the viewer, but it is wound outward: "
                          "its front looks the other way; turn it (meshkit.render.front_view) rather than re-wind it",
                          UserWarning, stacklevel=stacklevel)
        else:
            towards = "the viewer" if view_direction is not None else "outward"
            warnings.warn(f"{name}: only {100 * frac:.0f} % of the surface faces {towards} (clockwise winding?); "
                          f"re-wind it with meshkit.topology.orient_outward(vertices, faces)", UserWarning,
                          stacklevel=stacklevel)
    return frac


def facing_fraction(vertices, faces, view_direction) -> float:
    """Fraction of the surface area whose normal ``cross(v1 - v0, v2 - v0)`` points towards ``view_direction``.

    Parameters
    ----------
    vertices : (V, 3) float
    faces : (F, 3) int
    view_direction : (3,) float, non-zero: from the surface towards the viewer.

    Returns
    -------
    float in [0, 1] (0 for a mesh of zero area).
    """
    v, f = check_mesh(vertices, faces, allow_repeated=True)
    d = np.asarray(view_direction, dtype=np.float64)
    if d.shape != (3,) or not np.isfinite(d).all() or not np.any(d):
        raise ValueError(f"view_direction: expected a finite non-zero (3,) vector, got {view_direction!r}")
    a = v[f[:, 0]]
    normal = np.cross(v[f[:, 1]] - a, v[f[:, 2]] - a)
    area = np.linalg.norm(normal, axis=1)
    total = area.sum()
    return float(area[normal @ d > 0].sum() / total) if total > 0 else 0.0
