"""Quadric-error decimation with CoMA-style down/up matrices.

``decimate(vertices, faces, factor=4)`` collapses edges by the Garland-Heckbert quadric error
metric until exactly ``ceil(V / factor)`` vertices (or exactly ``n_vertices``) remain, and returns a
``Decimation``: the coarse mesh, the fine indices of the kept vertices, and the two sparse matrices
that move per-vertex data between the levels.

The algorithm, step by step (kernel: ``meshkit._kernels.decimate.qem_decimate``):

0. Units: the kernel sees the coordinates centred at the bbox centre, divided by the bbox diagonal and
   rounded to multiples of ``COORD_GRID`` (2^-28 of the diagonal). Scaling the input by a power of two
   leaves those bits unchanged; any other factor (micrometres -> millimetres) changes them by ~1e-16,
   far below the grid, so they too stay the same (a coordinate lands on the other side of a rounding
   boundary with probability ~1e-7). Every cost and check depends on those coordinates alone, so the
   collapses, the kept vertices and the time do not depend on the units, even on regular grids whose
   costs tie to the last bit.

1. Every face contributes its plane quadric ``K_p = p p^T`` (``p = (n, d)``, unit normal ``n``,
   ``n.x + d = 0``), weighted by its area, to its three corners.
2. Every boundary edge adds a constraint plane through the edge, perpendicular to its face,
   weighted by ``BOUNDARY_WEIGHT * |edge|^2``, to both ends: moving off the boundary is expensive.
3. Every directed collapse a -> b (a removed, b stays where it is) costs ``(Q_a + Q_b)(x_b)``; a
   boundary vertex never moves into an interior one. Each vertex is queued once, under its
   cheapest collapse, in an indexed heap; equal costs remove the larger index first, so of an
   edge whose two directions cost the same the smaller index is kept.
4. The cheapest collapse is checked and applied, ``Q_b += Q_a``, and the keys of b and its ring
   (the only vertices whose quadrics or faces changed) are recomputed in place. A collapse is
   refused when it would break the link condition (common neighbours of a and b must be exactly
   the opposite vertices of the edge's faces; an interior edge between two boundary vertices is
   refused, it would pinch the surface), leave a vertex without faces, make a face degenerate, a
   new sliver (``MIN_QUALITY``) or a duplicate, or turn a surviving face's normal by more than
   ``arccos(MIN_COS)`` from its current normal or from its normal on the input (fine) surface. A
   refused collapse is remembered and the vertex's next-best one is queued instead, until the
   neighbourhood of either end changes.
5. Stop at the target count. If the queue runs dry first, ``ValueError`` says how far it got.

Because every coarse vertex is an input vertex, ``down`` is a 0/1 selection (``down @ V == V[kept]``
bit for bit); ``up`` row i holds the barycentric weights of fine vertex i's closest point on the coarse
surface (``meshkit.transfer``), exactly 1 on itself for kept vertices. Connectivity of each component
and the Euler characteristic are preserved (link condition); vertex order is preserved (``kept`` ascending).

Quality, and what keeping input vertices costs: decimators that move each kept vertex to its
quadric-optimal position (fast-simplification, pyfqmr) reach a lower mean distance from the fine
vertices to the coarse surface: on the real BFM mesh at 1/4, meshkit's mean is 1.05-1.08x
fast-simplification's and 1.26-1.29x pyfqmr's, its maximum 2.1-2.5x pyfqmr's and a twelfth of
fast-simplification's. That gap is the vertex movement alone: held to the same rule (pyfqmr's own result
with each vertex snapped to its nearest input vertex), pyfqmr's mean is 1.03x meshkit's on the real
mesh, fast-simplification's 1.20x. CoMA's own decimator, which also keeps input vertices, erodes the
rim and has a 7-8x larger mean error than this one (benchmarks/README.md, "Error reference: CoMA's own
decimator" and "The peers by coordinate scale"). Neither the result nor the time depends on the
coordinate scale (the input is normalised first); the peers' fixed thresholds make both of theirs
change with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .validate import check_float, check_int, check_mesh

__all__ = ["Decimation", "decimate", "BOUNDARY_WEIGHT", "MIN_COS", "EPS_DEGENERATE", "MIN_QUALITY", "COORD_GRID"]

#: Weight of the boundary constraint planes, relative to the area-weighted face quadrics.
BOUNDARY_WEIGHT = 100.0
#: A collapse may not turn a surviving face's normal beyond arccos(MIN_COS), from its current
#: normal or from its input normal.
MIN_COS = 0.3
#: A face is degenerate when twice its area is <= EPS_DEGENERATE * (its longest edge)^2
#: (input faces like that are refused; collapses creating them are refused).
EPS_DEGENERATE = 1e-10
#: A collapse may not leave a face thinner than MIN_QUALITY (its height over its longest edge,
#: i.e. 2 area / longest^2; 0.87 for an equilateral triangle) unless that face was thinner before.
MIN_QUALITY = 0.1
#: The kernel works on coordinates centred at the bbox centre, divided by the bbox diagonal and rounded
#: to multiples of COORD_GRID (2^-28, i.e. 1.2e-3 um on the 315 mm diagonal of the BFM face): every decision depends on
#: those alone, so the result does not depend on the units of the input (see the module docstring).
COORD_GRID = 2.0**-28


@dataclass(frozen=True, eq=False)
class Decimation:
    """Result of ``decimate``: the coarse mesh and the matrices between the two levels.

    Attributes
    ----------
    vertices : (n_coarse, 3) float64, the coarse vertices (= fine ``vertices[kept]``)
    faces : (F_coarse, 3) int64, coarse faces (indices into the coarse vertices), same winding as the input
    kept : (n_coarse,) int64, ascending fine index of each coarse vertex
    down : csr (n_coarse, n_fine), 0/1 with one 1 per row: ``down @ fine_values`` = ``fine_values[kept]``
    up : csr (n_fine, n_coarse), barycentric weights (<= 3 per row, > 0, summing to 1):
        ``up @ coarse_values`` interpolates at the fine vertices' closest points on the coarse surface
    collapses : (n_fine - n_coarse, 2) int64, the collapses in order as (removed, kept-into) fine indices
    """

    vertices: np.ndarray
    faces: np.ndarray
    kept: np.ndarray
    down: sp.csr_matrix
    up: sp.csr_matrix
    collapses: np.ndarray | None = None

    @property
    def n_fine(self) -> int:
        return self.down.shape[1]

    @property
    def n_coarse(self) -> int:
        return self.down.shape[0]


def _target(n: int, factor, n_vertices) -> int:
    if (factor is None) == (n_vertices is None):
        raise ValueError(
            f"decimate: give exactly one of factor and n_vertices, got factor={factor!r}, n_vertices={n_vertices!r}"
        )
    if n_vertices is not None:
        t = check_int(n_vertices, "n_vertices", minimum=4)
        if t >= n:
            raise ValueError(f"n_vertices: expected fewer than the mesh's {n} vertices, got {t}")
        return t
    fac = check_float(factor, "factor", minimum=1.0, strict_minimum=True)
    t = math.ceil(n / fac)
    if t < 4:
        raise ValueError(f"factor: {fac} leaves ceil({n} / {fac}) = {t} vertices; expected at least 4")
    return t


def _normalise(v: np.ndarray) -> np.ndarray:
    """The coordinates the kernel works on: centred at the bbox centre, divided by the bbox diagonal,
    rounded to multiples of ``COORD_GRID`` (so that the units of the input do not matter, see the
    module docstring)."""
    # per column: numpy's axis-0 reduction over an (n, 3) array is ~20x slower than three 1-D ones
    lo = np.array([v[:, i].min() for i in range(3)])
    hi = np.array([v[:, i].max() for i in range(3)])
    diag = float(np.linalg.norm(hi - lo)) or 1.0
    p = v - 0.5 * (lo + hi)
    p /= diag * COORD_GRID  # = (p / diag) / COORD_GRID: dividing by a power of two is exact
    np.round(p, out=p)
    p *= COORD_GRID
    return p


def _refuse_features_below_the_grid(v: np.ndarray, p: np.ndarray, f: np.ndarray) -> None:
    """When decimation stops early: if rounding to ``COORD_GRID`` made input faces degenerate (features
    smaller than 2^-28 of the bounding-box diagonal, e.g. a tiny part far from the rest), say so,
    naming the scale, instead of the generic "no valid collapse left". (Checked on this failure path
    only: a vectorised check costs ~17 ms on the BFM face, a fifth of the decimation.)"""
    a = p[f[:, 0]]
    e1, e2 = p[f[:, 1]] - a, p[f[:, 2]] - a
    area2 = np.linalg.norm(np.cross(e1, e2), axis=1)
    longest = np.maximum(np.maximum((e1 * e1).sum(1), (e2 * e2).sum(1)), ((e2 - e1) ** 2).sum(1))
    bad = np.flatnonzero(area2 <= EPS_DEGENERATE * longest)
    if bad.size:
        diag = float(np.linalg.norm(v.max(axis=0) - v.min(axis=0)))
        raise ValueError(
            f"vertices: {bad.size} face(s) (first {int(bad[0])}) are smaller than the decimation's coordinate grid, "
            f"COORD_GRID = 2^-28 of the bounding-box diagonal ({diag * COORD_GRID:.3g} here): the mesh spans scales "
            f"too far apart (tiny parts far from the rest); decimate its parts separately")


def _check_size(n_vertices: int, n_faces: int) -> None:
    """The kernels index vertices and corners (3 per face) with int32: refuse meshes beyond that."""
    if 3 * n_faces >= 2**31 or n_vertices >= 2**31:
        raise ValueError(
            f"faces: decimate supports up to {(2**31 - 1) // 3:,} faces and 2^31 - 1 vertices (int32 indices), "
            f"got {n_faces:,} faces and {n_vertices:,} vertices; decimate the mesh in parts")


def _check_input(v: np.ndarray, f: np.ndarray) -> None:
    """Refuse unreferenced vertices, degenerate faces and non-manifold or inconsistently wound input
    (one numba pass; the tests check it against meshkit.topology)."""
    from ._kernels import decimate as decimate_kernels

    code, a, b = decimate_kernels.check_input(v, f, EPS_DEGENERATE)
    if code == 1:
        raise ValueError(f"faces: every vertex must belong to a face, got unreferenced vertex {a} (remove such vertices first)")
    if code == 2:
        raise ValueError(
            f"faces: expected non-degenerate triangles, got {b} zero-area face(s), first face {a} {f[a].tolist()} "
            "(remove or repair them first)"
        )
    if code == 3:
        raise ValueError(
            f"faces: expected a manifold, consistently wound mesh, got the directed edge ({a}, {b}) in two faces "
            "(an edge with more than two faces, or two faces wound against each other)"
        )
    if code == 4:
        raise ValueError(
            f"faces: expected a manifold mesh, got a non-manifold vertex {a} (its faces do not form one fan)"
        )


def decimate(vertices, faces, factor=None, n_vertices=None) -> Decimation:
    """Quadric-error edge-collapse decimation keeping original vertices (CoMA semantics).

    Parameters
    ----------
    vertices : (V, 3) float, the fine mesh (float32 or float64)
    faces : (F, 3) int, manifold, consistently wound, no degenerate faces, every vertex used
    factor : float > 1, keep exactly ``ceil(V / factor)`` vertices (53215 / 4 -> 13304); or
    n_vertices : int, 4 <= n_vertices < V, keep exactly that many. Give exactly one of the two.

    Returns
    -------
    Decimation with ``vertices`` (n, 3), ``faces`` (F', 3), ``kept`` (n,), ``down`` csr (n, V),
    ``up`` csr (V, n) and ``collapses`` (V - n, 2).

    Raises
    ------
    ValueError
        Bad arguments; non-manifold, inconsistently wound or degenerate input; or no valid collapse
        left before the target count (the message says how many vertices remain). With ``factor``
        so close to 1 that ``ceil(V / factor) == V``, nothing is collapsed and the identity is returned.

    Example
    -------
    >>> d = decimate(v, f, factor=4)  # doctest: +SKIP
    >>> coarse = d.down @ v           # == v[d.kept]  # doctest: +SKIP
    >>> back = d.up @ coarse          # fine vertices projected onto the coarse surface  # doctest: +SKIP
    """
    from ._kernels import decimate as decimate_kernels
    from .transfer import _barycentric_matrix, _closest

    v, f = check_mesh(vertices, faces)
    # numba compiles a separate specialisation for read-only arrays (e.g. a Mesh's): hand it writeable ones
    v = np.require(v, np.float64, ["C", "W"])
    f = np.require(f, np.int64, ["C", "W"])
    n = len(v)
    target = _target(n, factor, n_vertices)
    _check_size(n, len(f))
    _check_input(v, f)
    p = _normalise(v)

    if target < n:
        alive, out_f, face_alive, n_alive, collapses = decimate_kernels.qem_decimate(
            p, f, target, BOUNDARY_WEIGHT, MIN_COS, EPS_DEGENERATE, MIN_QUALITY)
        if n_alive != target:
            _refuse_features_below_the_grid(v, p, f)
            raise ValueError(
                f"decimate: no valid collapse left at {n_alive} vertices, target {target} "
                f"(started from {n}; {n - n_alive} collapses done, {n_alive - target} missing)"
            )
        kept = np.flatnonzero(alive).astype(np.int64)
        remap = np.full(n, -1, dtype=np.int64)
        remap[kept] = np.arange(len(kept), dtype=np.int64)
        cf = remap[out_f[face_alive]]
    else:
        kept = np.arange(n, dtype=np.int64)
        cf = f.copy()
        collapses = np.empty((0, 2), dtype=np.int64)
    nc = len(kept)
    cv = v[kept]

    down = sp.csr_matrix((np.ones(nc), kept.copy(), np.arange(nc + 1, dtype=np.int64)), shape=(nc, n))

    # up: kept vertices map to themselves (weight exactly 1), the others to their closest coarse point
    removed = np.ones(n, dtype=bool)
    removed[kept] = False
    rem = np.flatnonzero(removed)
    face, bary, _ = _closest(cv, cf, v[rem])
    corners = np.empty((n, 3), dtype=np.int64)
    weights = np.zeros((n, 3))
    corners[kept] = np.arange(nc, dtype=np.int64)[:, None]  # kept vertex j: weight 1 on coarse vertex j
    weights[kept, 0] = 1.0
    corners[rem] = cf[face]
    weights[rem] = bary
    up = _barycentric_matrix(corners, weights, nc)
    # arrays are fresh copies owned by the result, left writeable (torch.from_numpy warns on read-only ones)
    return Decimation(vertices=cv, faces=cf, kept=kept, down=down, up=up, collapses=np.asarray(collapses))
