"""Spiral neighbourhood orderings for spiral convolutions (SpiralNet++, Neural3DMM).

A spiral lists, for one centre vertex, the centre itself, then its one-ring in rotational order,
then the two-ring, and so on, so a 1-D convolution along the list sees neighbours in a consistent
order. This module holds one function, :func:`spiral_indices`; the walk runs in the numba kernel
``meshkit/_kernels/spiral.py`` on top of the ordered one-rings of :mod:`meshkit.topology`.

Three styles, one function
--------------------------
``style="meshkit"`` (the default, described exactly below) is ours. ``style="spiralnet++"`` and
``style="neural3dmm"`` reproduce, row for row, what the two projects' own code computes, so that a
checkpoint trained on their spirals carries over and their training code needs neither OpenMesh nor
its slow Python loop. ``tests/fixtures/spirals/`` holds the arrays their published code produced on
six small meshes (face with a rim, closed sphere, irregular valences, a decimated level, the BFM
grid topology with a mouth hole, tiny components); the tests compare against them.

* **SpiralNet++** (``preprocess_spiral`` -> ``extract_spirals`` in ``utils/generate_spiral_seq.py``)
  builds an OpenMesh ``TriMesh`` from the faces in file order and reads each one-ring with
  OpenMesh's vertex-vertex circulator, which runs *clockwise* seen from the front. Where it starts
  is a fact of OpenMesh's half-edge construction: a boundary vertex v starts at the boundary
  neighbour b whose edge v -> b has no face (the last vertex of our counter-clockwise ring); an
  interior vertex starts at the vertex that follows v in the *last* face (in file order) that uses v
  (this assumes OpenMesh accepts every face, as it does for the manifold meshes accepted here; it
  prints "complex edge" / "complex vertex" when it drops one). Ring p+1 visits the vertices w of
  ring p in order and reads w's clockwise ring cyclically from just after the first of its entries
  that lies in ring p (from its first entry when none does), appending every vertex not yet in the
  spiral. Rings are gathered until ``length * dilation`` vertices are there; the row is
  ``spiral[:length * dilation][::dilation]``. When the walk runs out first (the centre's component
  has fewer vertices, or is just the centre and its one-ring) SpiralNet++ replaces the *whole row*
  by the ``length * dilation`` vertices nearest to the centre in space, every ``dilation``-th kept:
  ``padding="nearest"`` (the default of this style; ties by index). Without ``vertices`` pass
  ``padding="repeat"`` or ``"sentinel"``. (SpiralNet++ without vertices puts every point at (1, 1,
  1), which makes its fallback arbitrary.)
* **Neural3DMM** (``get_spirals`` in ``spiral_utils.py``, as ``generate_spirals`` calls it) walks
  *counter-clockwise*. Ring 1 starts at the neighbour on the shortest path (Dijkstra over edge
  lengths; among equally short predecessors the smallest index) towards the ``reference`` vertex;
  the reference vertex itself starts at its nearest neighbour in space. Ring 1 is then c's
  one-ring counter-clockwise from that start; at a boundary vertex a dummy entry (their -1, our
  sentinel ``V``) stands where the ring crosses the boundary gap. Ring p+1 starts at the third
  vertex of the triangle on the edge (first, last) of ring p that reaches outward (if that fails,
  at the unseen vertex of the first triangle on a consecutive pair of ring p that can start the
  walk) and follows the triangles with one vertex in ring p and two in ring p+1, counter-clockwise,
  then, if it hits the boundary, from the start the other way round, inserted in reverse, with a
  dummy at the gap. ``rings`` caps the number of rings (their ``step_sizes`` entry). Dilation is
  ``spiral[:1] + spiral[1::dilation]``; the row is cut to ``length`` and padded with the sentinel
  (their -1 into a feature matrix with one extra zero row: the same row ``V``).
  Not deterministic in their code: from ring 2 on, where more than one triangle qualifies for the
  next step (irregular valences), ``get_spirals`` takes the first one a Python ``set`` yields, an
  artefact of hash values; ours take them in file order. Rows where that choice does not arise
  are identical (all rows on the face, sphere, BFM-grid fixtures; on the irregular and decimated
  ones the rows marked order-independent, and most of the others too).

What ``style="meshkit"`` does, exactly
--------------------------------------
1. Entry 0 is the centre vertex c.
2. Ring 1 is :func:`meshkit.topology.one_rings` of c: counter-clockwise seen from the front (the
   side the face normals point to). An interior vertex's ring starts at its smallest-index
   neighbour; a boundary vertex's ring starts at the boundary neighbour from which the
   counter-clockwise sweep covers all its faces and ends at the other boundary neighbour.
3. Ring p+1 visits the vertices w of ring p in order. Around each w it reads w's ordered one-ring
   cyclically, starting just after w's *anchor*, and appends every vertex not yet in the spiral.
   The anchor is the vertex before w in ring p (for the first w of the ring: the last vertex of
   ring p, which is how the next ring continues from where the previous one ended) when that
   vertex is a neighbour of w; otherwise (open rings of boundary vertices) it is the first
   neighbour of w, in w's stored ring order, that is already in the spiral. On an interior patch
   ring p+1 therefore starts at the vertex across the edge (last of ring p, first of ring p) and
   sweeps counter-clockwise, as in Neural3DMM, and in the same cyclic-read manner as SpiralNet++.
   Ring p holds exactly the vertices at graph distance p from c.
4. The walk stops once ``length * dilation`` vertices are collected (the last ring may be cut) or
   when no new vertex is reachable. The row is ``spiral[:length * dilation][::dilation]`` (the
   SpiralNet++ dilation: the centre, then entries dilation, 2 * dilation, ...).
5. A row shorter than ``length`` (a component with too few vertices, e.g. a tiny mesh, or an
   isolated vertex) is padded: ``padding="repeat"`` repeats the row's last index,
   ``padding="sentinel"`` fills with the index ``V`` (= ``n_vertices``), one past the last vertex;
   ``padding="nearest"`` replaces the row as SpiralNet++ does (see above; needs ``vertices``).

How it relates to the other two: counter-clockwise like Neural3DMM, not clockwise like OpenMesh's
circulator (``faces[:, ::-1]`` gives clockwise spirals); ring 1 starts at a documented neighbour
that does not depend on the face order (SpiralNet++'s start does) nor on geometry and a reference
vertex (Neural3DMM's does); the next rings continue in SpiralNet++'s cyclic-read manner, starting
where Neural3DMM's start on an interior patch; and rows that run out are padded, never replaced by
nearest vertices unless ``padding="nearest"`` asks for it.

Using the sentinel in a model: append one row of zeros to the vertex features before gathering,
``x = torch.cat([x, x.new_zeros(B, 1, C)], dim=1); x[:, spirals]`` (features (B, V, C) ->
gathered (B, V, length, C)), so padded positions contribute nothing.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp

from ._kernels import spiral as spiral_kernels
from .topology import _rings_csr
from .validate import check_choice, check_faces, check_int, check_vertices

__all__ = ["spiral_indices", "neural3dmm_raw_spirals", "STYLES"]

STYLES = ("meshkit", "spiralnet++", "neural3dmm")
_PADDINGS = ("repeat", "sentinel", "nearest")

_MAX_SPIRAL = 2**31 - 1  # bound on length * dilation (spiral entries walked per vertex)


def spiral_indices(faces, length: int, dilation: int = 1, *,
                   style: Literal["meshkit", "spiralnet++", "neural3dmm"] = "meshkit",
                   padding: Literal["repeat", "sentinel", "nearest"] | None = None,
                   n_vertices: int | None = None, vertices=None, reference=0,
                   rings: int | None = None) -> np.ndarray:
    """Spiral ordering of every vertex: itself, its one-ring in rotational order, then the next rings.

    The exact construction of each style (which neighbour each ring starts at, the direction, how
    the next ring continues, dilation, padding) is documented in the module docstring of
    :mod:`meshkit.spiral`.

    Parameters
    ----------
    faces : (F, 3) int
        Triangles, counter-clockwise seen from the front. Every vertex must be manifold (one
        consistently wound fan of faces), else its ring has no rotational order.
    length : int >= 1
        Entries per spiral (the centre included).
    dilation : int >= 1
        Dilation: ``spiral[:length * dilation][::dilation]`` for "meshkit" and "spiralnet++",
        ``spiral[:1] + spiral[1::dilation]`` (then cut to ``length``) for "neural3dmm".
    style : "meshkit" (default), "spiralnet++" or "neural3dmm"
        "meshkit": counter-clockwise, each ring starting at a documented neighbour.
        "spiralnet++": row for row what SpiralNet++'s ``preprocess_spiral`` computes with OpenMesh
        from the same faces (in the same order). "neural3dmm": row for row what Neural3DMM's
        ``get_spirals`` computes (its second and later rings where its Python-set order does not
        matter; see the module docs), after its dilation, cut to ``length``.
    padding : "repeat", "sentinel" or "nearest", optional
        How a row whose rings run out is completed: repeat the row's last index; the sentinel index
        ``V`` (append a zero feature row in the model); or, as SpiralNet++ does, replace the whole
        row by the ``length * dilation`` vertices nearest to the centre in space (needs
        ``vertices``), taking every ``dilation``-th. Default: the style's own ("repeat" for
        "meshkit", "nearest" for "spiralnet++", "sentinel" for "neural3dmm", the only one it takes:
        its dummy vertex inside rings is the sentinel too).
    n_vertices : int, optional
        Number of vertices V (default ``faces.max() + 1``, or ``len(vertices)``); vertices used by
        no face get a spiral of just themselves, padded.
    vertices : (V, 3) float, optional
        Coordinates; needed by "neural3dmm" (shortest paths) and by ``padding="nearest"``.
    reference : int or sequence of int
        "neural3dmm" only: the reference vertex (Neural3DMM's ``reference_points`` of this level);
        each ring 1 starts at the neighbour on the shortest path towards it. Default 0.
    rings : int >= 1, optional
        "neural3dmm" only: gather at most this many rings (Neural3DMM's ``step_sizes`` entry);
        default as many as ``length`` needs. Rows shorter than ``length`` are then padded.

    Returns
    -------
    (V, length) int64 array; row v starts with v.

    Raises
    ------
    ValueError
        ``length`` or ``dilation`` < 1, unknown ``style`` or ``padding``, bad faces, a non-manifold
        vertex (or inconsistent winding) whose one-ring cannot be ordered, missing ``vertices``
        where they are needed, or a bad ``reference``.

    Example
    -------
    >>> s = spiral_indices(faces, 9)           # (V, 9): v, 6 one-ring vertices, 2 of the two-ring
    >>> s = spiral_indices(faces, 9, style="spiralnet++", vertices=verts)   # SpiralNet++'s own
    """
    length = check_int(length, "length", minimum=1)
    dilation = check_int(dilation, "dilation", minimum=1)
    if length * dilation > _MAX_SPIRAL:  # the kernel's buffer holds length * dilation int64 entries
        raise ValueError(f"dilation: expected length * dilation <= {_MAX_SPIRAL}, got {length} * {dilation} = "
                         f"{length * dilation}")
    check_choice(style, "style", STYLES)
    if padding is None:
        padding = {"meshkit": "repeat", "spiralnet++": "nearest", "neural3dmm": "sentinel"}[style]
    check_choice(padding, "padding", _PADDINGS)
    if style == "neural3dmm" and padding != "sentinel":
        raise ValueError(f"padding: style 'neural3dmm' pads with its dummy vertex, expected 'sentinel' or None, got {padding!r}")
    if rings is not None and style != "neural3dmm":
        raise ValueError(f"rings: only style 'neural3dmm' takes a ring count, got rings={rings!r} with style {style!r}")
    v = None
    if vertices is not None:
        v = check_vertices(vertices)
        if n_vertices is None:
            n_vertices = v.shape[0]
    f = check_faces(faces, n_vertices if n_vertices is None else check_int(n_vertices, "n_vertices", minimum=1))
    n = int(f.max()) + 1 if n_vertices is None else int(n_vertices)
    if v is not None and v.shape[0] != n:
        raise ValueError(f"vertices: expected {n} rows (n_vertices), got {v.shape[0]}")
    indptr, ring, status = _rings_csr(f, n)
    bad = np.flatnonzero(status < 0)
    if bad.size:
        raise ValueError(
            f"faces: cannot order the one-ring of {bad.size} vertex(es) for spirals (expected manifold vertices "
            f"with consistently wound faces, got a non-manifold vertex or inconsistent winding), first at vertex "
            f"{int(bad[0])}"
        )
    if style == "meshkit":
        if padding != "nearest":
            return spiral_kernels.spirals(indptr, ring, n, length, dilation, -1 if padding == "repeat" else n)
        out = spiral_kernels.spirals(indptr, ring, n, length, dilation, n)
        exhausted = (out == n).any(axis=1)
    elif style == "spiralnet++":
        cw = spiral_kernels.rotate_rings_clockwise(indptr, ring, _openmesh_start(f, n, indptr, ring, status))
        out, exhausted = spiral_kernels.spirals_spiralnet(indptr, cw, n, length, dilation)
    else:
        if v is None:
            raise ValueError("vertices: style 'neural3dmm' needs the vertex coordinates (its rings start on shortest paths)")
        return _neural3dmm(f, v, n, length, dilation, reference, rings)
    return _complete(out, exhausted, padding, v, length, dilation, n)


def _complete(out, exhausted, padding, v, length, dilation, n):
    """Fill the rows whose rings ran out (``exhausted``; their missing entries are negative)."""
    rows = np.flatnonzero(exhausted)
    if rows.size == 0:
        return out
    if padding == "nearest":
        need = length * dilation
        if v is None:
            raise ValueError(
                f"vertices: {rows.size} row(s) run out of rings (first at vertex {int(rows[0])}); padding 'nearest' "
                f"replaces them with the nearest vertices in space and needs vertices=, or pass padding='repeat' or 'sentinel'"
            )
        if need > n:
            raise ValueError(f"length: padding 'nearest' needs length * dilation = {need} <= the {n} vertices")
        for c in rows:
            d = ((v - v[c]) ** 2).sum(axis=1)
            out[c] = np.argsort(d, kind="stable")[:need][::dilation]  # ties by index
        return out
    for c in rows:
        k = int(np.count_nonzero(out[c] >= 0))
        out[c, k:] = out[c, k - 1] if padding == "repeat" else n
    return out


def _openmesh_start(f, n, indptr, ring, status):
    """The neighbour OpenMesh's vertex-vertex circulator starts at, for a mesh built face by face
    from ``f`` (``openmesh.TriMesh(points, faces)``): a boundary vertex starts at the boundary
    neighbour b with no face on the v -> b side (the end of our counter-clockwise ring); an interior
    vertex at the vertex that follows it in the last face (in face order) that uses it."""
    start = np.full(n, -1, dtype=np.int64)
    last = np.full(n, -1, dtype=np.int64)
    np.maximum.at(last, f.ravel(), np.repeat(np.arange(f.shape[0], dtype=np.int64), 3))
    used = np.flatnonzero(last >= 0)
    lf = f[last[used]]
    k = np.argmax(lf == used[:, None], axis=1)
    start[used] = lf[np.arange(used.size), (k + 1) % 3]
    bnd = np.flatnonzero((status == 1) & (np.diff(indptr) > 0))
    start[bnd] = ring[indptr[bnd + 1] - 1]
    return start


def _neural3dmm(f, v, n, length, dilation, reference, rings):
    refs = np.atleast_1d(np.asarray(reference))
    if refs.ndim != 1 or refs.size == 0 or refs.dtype.kind not in "iu":
        raise ValueError(f"reference: expected a vertex index or a list of them, got {reference!r}")
    if refs.min() < 0 or refs.max() >= n:
        raise ValueError(f"reference: expected vertex indices in [0, {n}), got {refs.tolist()}")
    max_rings = n if rings is None else check_int(rings, "rings", minimum=1)
    raw = neural3dmm_raw_spirals(f, v, n, 1 + (length - 1) * dilation, refs, max_rings)
    out = np.concatenate([raw[:, :1], raw[:, 1::dilation]], axis=1)[:, :length]
    out[out < 0] = n  # the dummy vertex and the padding: index V (Neural3DMM's -1 into its V + 1 rows)
    return np.ascontiguousarray(out)


def neural3dmm_raw_spirals(f, v, n, n_raw, refs, max_rings):
    """Neural3DMM's undilated, variable-length spirals, as its ``generate_spirals`` sizes them.

    Used by ``sampling``'s Neural3DMM export; ``spiral_indices(style="neural3dmm")`` is the
    fixed-length form. Expects validated input (no checks here).

    Parameters
    ----------
    f : (F, 3) int64 faces; v : (n, 3) float64 vertices; n : vertex count.
    n_raw : int, row width of the output.
    refs : (R,) int64 valid reference vertex indices.
    max_rings : int, rings per row at most.

    Returns
    -------
    (n, n_raw) int64: vertex indices, -1 for Neural3DMM's dummy vertex, -2 after the end of a row.
    """
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    adj = sp.csr_matrix((np.ones(len(e), dtype=np.int8), (e[:, 0], e[:, 1])), shape=(n, n))
    adj = (adj + adj.T).tocsr()
    adj.sum_duplicates()
    adj.sort_indices()
    a_ptr, a_idx = adj.indptr.astype(np.int64), adj.indices.astype(np.int64)
    # the shortest-path tree: each later reference overwrites what it reaches (as get_spirals does)
    dist = np.full(n, np.inf)
    prev = np.full(n, -1, dtype=np.int64)
    for r in np.atleast_1d(refs).tolist():
        spiral_kernels.shortest_path_tree(v, a_ptr, a_idx, int(r), dist, prev)
    start = prev.copy()
    for r in set(np.atleast_1d(refs).tolist()):  # a reference vertex starts at its nearest neighbour (first on ties)
        nb = a_idx[a_ptr[r]:a_ptr[r + 1]]
        start[r] = nb[np.argmin(((v[r] - v[nb]) ** 2).sum(axis=1))] if nb.size else -1
    order = np.argsort(f.ravel(), kind="stable")
    vf = (order // 3).astype(np.int64)
    vf_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(f.ravel(), minlength=n), out=vf_ptr[1:])
    return spiral_kernels.spirals_neural3dmm(f, vf_ptr, vf, a_ptr, a_idx, start, n, n_raw, max_rings)
