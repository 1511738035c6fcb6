"""Closest points on a triangle mesh and barycentric transfer matrices.

- ``closest_points(vertices, faces, points)``: for each query point, the exact closest point on the
  surface, its face, barycentric weights in that face and the distance.
- ``barycentric_transfer(src_vertices, src_faces, points)``: the sparse (n_points, n_src) matrix
  whose row i holds the barycentric weights of point i's closest surface point, so that
  ``T @ src_values`` interpolates per-vertex values of the source mesh at the points. This is the
  ``up`` matrix of a decimation (CoMA semantics), with the coarse mesh as source.

Distances are Euclidean; the search is exact (no approximation), accelerated by a sparse uniform
grid over the triangles (cells sized from the triangles' own extents, only occupied cells stored,
O(F) memory for any layout), in numba.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from .validate import check_mesh, check_points

__all__ = ["ClosestPoints", "closest_points", "barycentric_transfer"]


class ClosestPoints(NamedTuple):
    """Result of :func:`closest_points`; a named tuple, so ``c, f, b, d = closest_points(...)`` works too."""

    points: np.ndarray  # (P, 3) float64, the closest surface points
    face: np.ndarray  # (P,) int64, the face holding each
    barycentric: np.ndarray  # (P, 3) float64, weights w.r.t. that face's corners
    distance: np.ndarray  # (P,) float64


_MAX_CELLS_PER_AXIS = 2.0**40  # cell indices stay exact in float64
_MAX_CELLS = 2.0**62  # cell keys (i * d1 + j) * d2 + k stay in int64


def _grid_params(v: np.ndarray, f: np.ndarray):
    """Bounding boxes of the triangles and the acceleration grid for them.

    The cell size starts at the median extent of the triangles' own bounding boxes (not the whole
    mesh's: two tiny triangles 1e12 apart still get tiny cells) and is doubled until the grid holds
    at most ``8 F + 64`` (cell, triangle) entries, at most 2**40 cells along an axis and 2**62 in
    all (so that cell keys fit in int64). Only occupied cells are stored, so the memory is O(F)
    whatever the mesh's extent.

    Returns (box_lo (F, 3), box_hi (F, 3), origin (3,), cell size h, dims (3,) int64, entries).
    """
    from ._kernels import transfer as transfer_kernels

    box_lo, box_hi, size, origin, top = transfer_kernels.triangle_boxes(v, f)
    ext = top - origin  # finite: _closest brings coordinates to magnitudes about 1 first
    h = float(np.median(size))
    h = max(h, float(ext.max()) / _MAX_CELLS_PER_AXIS)
    if not h > 0.0:  # every triangle is one point, all at the same place
        h = 1.0
    budget = 8 * len(f) + 64
    while True:
        dims = np.floor(ext / h) + 1.0
        if dims.prod() < _MAX_CELLS:
            dims = dims.astype(np.int64)
            entries = transfer_kernels.count_cells(box_lo, box_hi, origin, h, dims)
            if entries <= budget:
                return box_lo, box_hi, origin, h, dims, int(entries)
        h *= 2.0


def _closest(v: np.ndarray, f: np.ndarray, p: np.ndarray):
    """Unvalidated core: (face (P,), bary (P,3), distance (P,))."""
    from ._kernels import transfer as transfer_kernels

    if len(p) == 0:
        return np.empty(0, dtype=np.int64), np.empty((0, 3)), np.empty(0)
    # numba compiles a separate specialisation for read-only arrays: hand it writeable ones
    v = np.require(v, np.float64, ["C", "W"])
    f = np.require(f, np.int64, ["C", "W"])
    p = np.require(p, np.float64, ["C", "W"])
    # The closest-point test multiplies dot products of coordinates (4th powers): beyond ~1e70 or
    # below ~1e-70 they overflow or lose digits. Scaling by a power of two is exact, so every
    # mesh is brought to magnitudes about 1 (meshes already there skip the copy: same result).
    vmax = float(np.abs(v).max())
    _, k = np.frexp(vmax)
    given = p
    if abs(int(k)) > 64:
        v, p = np.ldexp(v, -k), np.ldexp(p, -k)
        vmax = float(np.abs(v).max())
    box_lo, box_hi, origin, h, dims, entries = _grid_params(v, f)
    grid = transfer_kernels.build_grid(box_lo, box_hi, origin, h, dims, entries)
    # a triangle's computed closest point is within a few ulps of its bounding box: 2^-40 of the
    # largest coordinate is a safe margin for skipping triangles by their boxes
    tol = 2.0**-40 * vmax
    face, bary, d2 = transfer_kernels.query_grid(p, v, f, box_lo, box_hi, tol, origin, h, dims, *grid)
    if (face < 0).any():
        i = int(np.flatnonzero(face < 0)[0])
        raise ValueError(
            f"points: expected points whose squared distance to the mesh fits in float64, got point {i} "
            f"{given[i].tolist()} (every squared distance overflows)"
        )
    dist = np.sqrt(d2)
    return face, bary, (np.ldexp(dist, k) if abs(int(k)) > 64 else dist)


def closest_points(vertices, faces, points) -> ClosestPoints:
    """Exact closest point on a triangle mesh for each query point.

    Parameters
    ----------
    vertices : (V, 3) float
    faces : (F, 3) int, triangles (degenerate ones are allowed: their closest point is on an edge)
    points : (P, 3) float, query points

    Returns
    -------
    ClosestPoints, a named tuple of:
    points : (P, 3) float64, the closest surface points, ``sum_k bary[:, k] * vertices[faces[face, k]]``
    face : (P,) int64, index of the face holding each closest point (the smallest index on ties)
    bary : (P, 3) float64, barycentric weights w.r.t. that face's corners (>= 0, summing to 1)
    distance : (P,) float64, Euclidean distance from each point to its closest point
    """
    v, f = check_mesh(vertices, faces)
    p = check_points(points)
    face, bary, dist = _closest(v, f, p)
    closest = np.einsum("pk,pkd->pd", bary, v[f[face]]) if len(p) else np.empty((0, 3))
    return ClosestPoints(closest, face, bary, dist)


def _barycentric_matrix(corners: np.ndarray, bary: np.ndarray, n_cols: int) -> sp.csr_matrix:
    """Sparse (P, n_cols) matrix whose row i holds the weights ``bary[i]`` on the columns ``corners[i]``.

    Negative weights are clipped to 0, zero weights dropped, each row renormalised to sum to 1,
    columns ascending within each row. The corners with a positive weight must be distinct within a row.

    Parameters
    ----------
    corners : (P, 3) int64, column (vertex) indices in [0, n_cols).
    bary : (P, 3) float64, barycentric weights, each row with a positive sum.
    n_cols : int

    Returns
    -------
    scipy.sparse.csr_matrix (P, n_cols) float64.
    """
    from ._kernels import transfer as transfer_kernels

    corners = np.require(corners, np.int64, ["C", "W"])
    bary = np.require(bary, np.float64, ["C", "W"])
    indptr, indices, data = transfer_kernels.barycentric_csr(corners, bary)
    return sp.csr_matrix((data, indices, indptr), shape=(len(corners), n_cols))


def barycentric_transfer(src_vertices, src_faces, points) -> sp.csr_matrix:
    """Sparse barycentric transfer from a source mesh to query points.

    Row i holds the barycentric weights of point i's closest point on the source surface
    (``closest_points``): at most 3 non-zeros, all > 0, summing to 1. Then ``T @ src_vertices`` gives
    the closest surface points and ``T @ values`` interpolates any per-vertex field.

    Parameters
    ----------
    src_vertices : (V, 3) float
    src_faces : (F, 3) int
    points : (P, 3) float

    Returns
    -------
    T : scipy.sparse.csr_matrix, shape (P, V) = (n_points, n_src), float64
    """
    v, f = check_mesh(src_vertices, src_faces, vertices_name="src_vertices", faces_name="src_faces")
    p = check_points(points)
    face, bary, _ = _closest(v, f, p)
    return _barycentric_matrix(f[face], bary, len(v))
