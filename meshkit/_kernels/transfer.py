"""Numba kernels for exact closest points on a triangle mesh.

What is here:
- ``closest_on_triangle``: exact closest point of a point to a triangle by Voronoi regions
  (vertex, edge, interior), returning barycentric weights; degenerate triangles fall back to
  their three edges.
- ``build_grid``: a uniform grid over the triangles (each triangle listed in every cell its
  bounding box overlaps), stored as CSR (cell -> triangles).
- ``query_grid``: for many points, search cells in growing cubic shells around the point's cell
  until no unvisited cell can hold anything closer than the best triangle found.
- ``grid_stats``: bounding box of the triangles and their mean edge length (for the cell size).

The query loop is serial on purpose: on the 2-core target machine shared with other work, numba's
statically scheduled parallel loop measured slower than the serial one (one busy core stalls the
other half of the points).

Barycentric weights (u, v, w) are with respect to the face's corners (faces[f, 0], faces[f, 1],
faces[f, 2]): closest point = u a + v b + w c, u, v, w >= 0, u + v + w = 1.
"""

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def _seg(px, py, pz, ax, ay, az, bx, by, bz):
    """Closest point parameter t in [0, 1] on the segment a + t (b - a) to p."""
    ex = bx - ax
    ey = by - ay
    ez = bz - az
    ee = ex * ex + ey * ey + ez * ez
    if ee <= 0.0:
        return 0.0
    t = ((px - ax) * ex + (py - ay) * ey + (pz - az) * ez) / ee
    if t < 0.0:
        return 0.0
    if t > 1.0:
        return 1.0
    return t


@njit(cache=True)
def closest_on_triangle(px, py, pz, ax, ay, az, bx, by, bz, cx, cy, cz):
    """Closest point of triangle (a, b, c) to p: returns (squared distance, u, v, w).

    Regions are tested in turn with the dot products d1..d6 of the edge vectors ab, ac with
    p - a, p - b, p - c (the classic vertex / edge / face Voronoi-region test); the face region
    weights are the signed sub-areas va, vb, vc divided by their sum.
    """
    abx = bx - ax
    aby = by - ay
    abz = bz - az
    acx = cx - ax
    acy = cy - ay
    acz = cz - az
    # degenerate triangle: closest of the three edges
    nx = aby * acz - abz * acy
    ny = abz * acx - abx * acz
    nz = abx * acy - aby * acx
    n2 = nx * nx + ny * ny + nz * nz
    scale = max(abx * abx + aby * aby + abz * abz, acx * acx + acy * acy + acz * acz)
    if n2 <= 1e-24 * scale * scale:
        best = np.inf
        bu = 1.0
        bv = 0.0
        bw = 0.0
        for e in range(3):
            if e == 0:
                t = _seg(px, py, pz, ax, ay, az, bx, by, bz)
                u, v, w = 1.0 - t, t, 0.0
            elif e == 1:
                t = _seg(px, py, pz, bx, by, bz, cx, cy, cz)
                u, v, w = 0.0, 1.0 - t, t
            else:
                t = _seg(px, py, pz, cx, cy, cz, ax, ay, az)
                u, v, w = t, 0.0, 1.0 - t
            qx = u * ax + v * bx + w * cx - px
            qy = u * ay + v * by + w * cy - py
            qz = u * az + v * bz + w * cz - pz
            d2 = qx * qx + qy * qy + qz * qz
            if d2 < best:
                best = d2
                bu = u
                bv = v
                bw = w
        return best, bu, bv, bw

    apx = px - ax
    apy = py - ay
    apz = pz - az
    d1 = abx * apx + aby * apy + abz * apz
    d2 = acx * apx + acy * apy + acz * apz
    if d1 <= 0.0 and d2 <= 0.0:
        u, v, w = 1.0, 0.0, 0.0
    else:
        bpx = px - bx
        bpy = py - by
        bpz = pz - bz
        d3 = abx * bpx + aby * bpy + abz * bpz
        d4 = acx * bpx + acy * bpy + acz * bpz
        if d3 >= 0.0 and d4 <= d3:
            u, v, w = 0.0, 1.0, 0.0
        else:
            vc = d1 * d4 - d3 * d2
            if vc <= 0.0 and d1 >= 0.0 and d3 <= 0.0:
                t = d1 / (d1 - d3)
                u, v, w = 1.0 - t, t, 0.0
            else:
                cpx = px - cx
                cpy = py - cy
                cpz = pz - cz
                d5 = abx * cpx + aby * cpy + abz * cpz
                d6 = acx * cpx + acy * cpy + acz * cpz
                if d6 >= 0.0 and d5 <= d6:
                    u, v, w = 0.0, 0.0, 1.0
                else:
                    vb = d5 * d2 - d1 * d6
                    if vb <= 0.0 and d2 >= 0.0 and d6 <= 0.0:
                        t = d2 / (d2 - d6)
                        u, v, w = 1.0 - t, 0.0, t
                    else:
                        va = d3 * d6 - d5 * d4
                        if va <= 0.0 and (d4 - d3) >= 0.0 and (d5 - d6) >= 0.0:
                            t = (d4 - d3) / ((d4 - d3) + (d5 - d6))
                            u, v, w = 0.0, 1.0 - t, t
                        else:
                            # interior: the sub-areas are >= 0 up to rounding; clamp so the
                            # weights are exactly non-negative and sum to 1
                            va = max(va, 0.0)
                            vb = max(vb, 0.0)
                            vc = max(vc, 0.0)
                            s = va + vb + vc
                            u = va / s
                            v = vb / s
                            w = vc / s
    qx = u * ax + v * bx + w * cx - px
    qy = u * ay + v * by + w * cy - py
    qz = u * az + v * bz + w * cz - pz
    return qx * qx + qy * qy + qz * qz, u, v, w


@njit(cache=True)
def grid_stats(vertices, faces):
    """(lo (3,), hi (3,), mean edge length) over the triangles' corners."""
    lo = np.full(3, np.inf)
    hi = np.full(3, -np.inf)
    total = 0.0
    for f in range(faces.shape[0]):
        for k in range(3):
            a = faces[f, k]
            b = faces[f, (k + 1) % 3]
            dd = 0.0
            for d in range(3):
                x = vertices[a, d]
                if x < lo[d]:
                    lo[d] = x
                if x > hi[d]:
                    hi[d] = x
                e = vertices[b, d] - x
                dd += e * e
            total += np.sqrt(dd)
    return lo, hi, total / max(3 * faces.shape[0], 1)


@njit(cache=True, inline="always")
def _box_d2(px, py, pz, origin, h, i, j, k):
    """Squared distance from p to cell (i, j, k)."""
    d2 = 0.0
    lo = origin[0] + i * h
    e = max(lo - px, px - (lo + h), 0.0)
    d2 += e * e
    lo = origin[1] + j * h
    e = max(lo - py, py - (lo + h), 0.0)
    d2 += e * e
    lo = origin[2] + k * h
    e = max(lo - pz, pz - (lo + h), 0.0)
    d2 += e * e
    return d2


@njit(cache=True)
def build_grid(vertices, faces, origin, h, dims):
    """CSR lists of the triangles overlapping each cell (by bounding box): (cell_ptr, cell_tris).

    Cell (i, j, k) covers origin + h * [i, i+1) x [j, j+1) x [k, k+1); its linear id is
    (i * dims[1] + j) * dims[2] + k.
    """
    m = faces.shape[0]
    nc = dims[0] * dims[1] * dims[2]
    lo = np.empty((m, 3), dtype=np.int64)
    hi = np.empty((m, 3), dtype=np.int64)
    counts = np.zeros(nc + 1, dtype=np.int64)
    for f in range(m):
        for d in range(3):
            a = vertices[faces[f, 0], d]
            b = vertices[faces[f, 1], d]
            c = vertices[faces[f, 2], d]
            mn = min(a, b, c)
            mx = max(a, b, c)
            i0 = int(np.floor((mn - origin[d]) / h))
            i1 = int(np.floor((mx - origin[d]) / h))
            lo[f, d] = min(max(i0, 0), dims[d] - 1)
            hi[f, d] = min(max(i1, 0), dims[d] - 1)
        for i in range(lo[f, 0], hi[f, 0] + 1):
            for j in range(lo[f, 1], hi[f, 1] + 1):
                for k in range(lo[f, 2], hi[f, 2] + 1):
                    counts[(i * dims[1] + j) * dims[2] + k + 1] += 1
    for c in range(nc):
        counts[c + 1] += counts[c]
    pos = counts[:-1].copy()
    tris = np.empty(counts[nc], dtype=np.int64)
    for f in range(m):
        for i in range(lo[f, 0], hi[f, 0] + 1):
            for j in range(lo[f, 1], hi[f, 1] + 1):
                for k in range(lo[f, 2], hi[f, 2] + 1):
                    c = (i * dims[1] + j) * dims[2] + k
                    tris[pos[c]] = f
                    pos[c] += 1
    return counts, tris


@njit(cache=True)
def query_grid(points, vertices, faces, origin, h, dims, cell_ptr, cell_tris):
    """Closest triangle of each point: (face (P,) int64, bary (P, 3), squared distance (P,)).

    Cubic shells of cells around the point's (clamped) cell are searched in order of their
    Chebyshev radius r, skipping cells farther from the point than the best triangle so far; after
    shell r the search stops once the best squared distance is below the squared distance from the
    point to the outside of the searched box (only box sides not on the grid's border count). Every
    cell that could hold a triangle at the best distance is visited, so ties between triangles keep
    the smallest face index.
    """
    n = points.shape[0]
    face = np.full(n, -1, dtype=np.int64)
    bary = np.zeros((n, 3))
    dist2 = np.full(n, np.inf)
    d0 = dims[0]
    d1 = dims[1]
    d2_ = dims[2]
    for q in range(n):
        px = points[q, 0]
        py = points[q, 1]
        pz = points[q, 2]
        # clamp in floating point first: a far-away point must not overflow the integer cast
        ci = int(min(max(np.floor((px - origin[0]) / h), 0.0), d0 - 1.0))
        cj = int(min(max(np.floor((py - origin[1]) / h), 0.0), d1 - 1.0))
        ck = int(min(max(np.floor((pz - origin[2]) / h), 0.0), d2_ - 1.0))
        best = np.inf
        bf = -1
        bu = 0.0
        bv = 0.0
        bw = 0.0
        r = 0
        while True:
            i0 = max(ci - r, 0)
            i1 = min(ci + r, d0 - 1)
            j0 = max(cj - r, 0)
            j1 = min(cj + r, d1 - 1)
            k0 = max(ck - r, 0)
            k1 = min(ck + r, d2_ - 1)
            for i in range(i0, i1 + 1):
                ei = i == ci - r or i == ci + r
                for j in range(j0, j1 + 1):
                    ej = j == cj - r or j == cj + r
                    if ei or ej:
                        kstep = 1
                    else:
                        kstep = 2 * r if r > 0 else 1
                    k = ck - r
                    while k <= ck + r:
                        if k >= k0 and k <= k1 and _box_d2(px, py, pz, origin, h, i, j, k) <= best:
                            c = (i * d1 + j) * d2_ + k
                            for t in range(cell_ptr[c], cell_ptr[c + 1]):
                                f = cell_tris[t]
                                a = faces[f, 0]
                                b = faces[f, 1]
                                cc = faces[f, 2]
                                dd, u, v, w = closest_on_triangle(
                                    px, py, pz,
                                    vertices[a, 0], vertices[a, 1], vertices[a, 2],
                                    vertices[b, 0], vertices[b, 1], vertices[b, 2],
                                    vertices[cc, 0], vertices[cc, 1], vertices[cc, 2])
                                if dd < best or (dd == best and f < bf):
                                    best = dd
                                    bf = f
                                    bu = u
                                    bv = v
                                    bw = w
                        k += kstep
            # distance from p to the unsearched region (sides of the box not on the grid border)
            bound = np.inf
            if i0 > 0:
                bound = min(bound, px - (origin[0] + i0 * h))
            if i1 < d0 - 1:
                bound = min(bound, origin[0] + (i1 + 1) * h - px)
            if j0 > 0:
                bound = min(bound, py - (origin[1] + j0 * h))
            if j1 < d1 - 1:
                bound = min(bound, origin[1] + (j1 + 1) * h - py)
            if k0 > 0:
                bound = min(bound, pz - (origin[2] + k0 * h))
            if k1 < d2_ - 1:
                bound = min(bound, origin[2] + (k1 + 1) * h - pz)
            if bound == np.inf:
                break
            if bound > 0.0 and best < bound * bound:
                break
            r += 1
        face[q] = bf
        bary[q, 0] = bu
        bary[q, 1] = bv
        bary[q, 2] = bw
        dist2[q] = best
    return face, bary, dist2
