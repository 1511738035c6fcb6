"""Numba kernels for exact closest points on a triangle mesh.

What is here:
- ``closest_on_triangle``: exact closest point of a point to a triangle by Voronoi regions
  (vertex, edge, interior), returning barycentric weights; degenerate triangles fall back to
  their three edges.
- ``triangle_boxes``: each triangle's bounding box; ``count_cells``: how many (cell, triangle)
  entries a grid of a given cell size holds (to choose the cell size).
- ``build_grid``: a sparse uniform grid over the triangles: each triangle listed in every cell its
  bounding box overlaps, only occupied cells stored (CSR cell -> triangles), found through an
  open-addressing hash table.
- ``query_grid``: for many points, search cells in growing cubic shells around the point's cell
  until no unvisited cell can hold anything closer than the best triangle found (starting from the
  previous point's face as an upper bound, and skipping triangles whose bounding box is farther than
  the best so far: the result does not depend on either); a point whose
  shells would enumerate more lattice positions than there are occupied cells (a point far from
  everything, or between far-apart clusters) scans the occupied cells instead, so one query never
  costs more than a pass over the grid.

The query loop is serial on purpose: on the 2-core target machine shared with other work, numba's
statically scheduled parallel loop measured slower than the serial one (one busy core stalls the
other half of the points), and so did chunks of points on 2 Python threads whenever another process
kept a core busy (about 0.7x the serial time with both cores free, up to 1.6x with them busy:
benchmarks/README.md, "up query"). ``query_grid`` releases the GIL, so callers may still run
independent queries on threads; each point's result does not depend on the others (the same bit for
bit in any split).

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


@njit(cache=True, inline="always")
def _cell_range(lo, hi, origin, h, dims, d):
    """First and last cell index along axis d of the interval [lo, hi] (clamped to the grid)."""
    i0 = int(min(max(np.floor((lo - origin[d]) / h), 0.0), dims[d] - 1.0))
    i1 = int(min(max(np.floor((hi - origin[d]) / h), 0.0), dims[d] - 1.0))
    return i0, i1


@njit(cache=True)
def count_cells(box_lo, box_hi, origin, h, dims):
    """Total number of (cell, triangle) entries of a grid of cell size h, as a float (no overflow)."""
    total = 0.0
    for f in range(box_lo.shape[0]):
        c = 1.0
        for d in range(3):
            i0, i1 = _cell_range(box_lo[f, d], box_hi[f, d], origin, h, dims, d)
            c *= i1 - i0 + 1
        total += c
    return total


@njit(cache=True, inline="always")
def _slot(key, mask):
    """Home slot of a cell key in a power-of-two hash table (Fibonacci hashing, wrapping int64)."""
    x = key * -7046029254386353131
    x ^= x >> 29
    return x & mask


@njit(cache=True, inline="always")
def _find(key, table_keys, table_cells, mask):
    """Index of the occupied cell with this key, or -1."""
    s = _slot(key, mask)
    while True:
        k = table_keys[s]
        if k == key:
            return table_cells[s]
        if k < 0:
            return -1
        s = (s + 1) & mask


@njit(cache=True)
def triangle_boxes(vertices, faces):
    """Bounding box of each triangle, its largest side and the box of them all:
    (lo (F, 3), hi (F, 3), size (F,), all_lo (3,), all_hi (3,))."""
    m = faces.shape[0]
    lo = np.empty((m, 3))
    hi = np.empty((m, 3))
    size = np.zeros(m)
    all_lo = np.full(3, np.inf)
    all_hi = np.full(3, -np.inf)
    for f in range(m):
        for d in range(3):
            a = vertices[faces[f, 0], d]
            b = vertices[faces[f, 1], d]
            c = vertices[faces[f, 2], d]
            lo[f, d] = min(a, b, c)
            hi[f, d] = max(a, b, c)
            size[f] = max(size[f], hi[f, d] - lo[f, d])
            all_lo[d] = min(all_lo[d], lo[f, d])
            all_hi[d] = max(all_hi[d], hi[f, d])
    return lo, hi, size, all_lo, all_hi


@njit(cache=True)
def _number_cells(box_lo, box_hi, origin, h, dims, table_keys, table_cells, keys, cell_of_entry, counts):
    """Pass 1 of ``build_grid``: number the occupied cells in order of first appearance (keys[c] the key
    of cell c, entered in the empty hash table (table_keys, table_cells)), note the cell of each
    (triangle, cell) entry and count the triangles of cell c in counts[c + 1].

    Returns the number of occupied cells, or -1 (stopping there) when the table would be half full.
    """
    size = table_keys.shape[0]
    mask = size - 1
    d1 = dims[1]
    d2 = dims[2]
    n = 0
    n_cells = 0
    for f in range(box_lo.shape[0]):
        i0, i1 = _cell_range(box_lo[f, 0], box_hi[f, 0], origin, h, dims, 0)
        j0, j1 = _cell_range(box_lo[f, 1], box_hi[f, 1], origin, h, dims, 1)
        k0, k1 = _cell_range(box_lo[f, 2], box_hi[f, 2], origin, h, dims, 2)
        for i in range(i0, i1 + 1):
            for j in range(j0, j1 + 1):
                for k in range(k0, k1 + 1):
                    key = (i * d1 + j) * d2 + k
                    s = _slot(key, mask)
                    while table_keys[s] >= 0 and table_keys[s] != key:
                        s = (s + 1) & mask
                    if table_keys[s] < 0:
                        if 2 * (n_cells + 1) > size:
                            return -1
                        table_keys[s] = key
                        table_cells[s] = n_cells
                        keys[n_cells] = key
                        n_cells += 1
                    cell_of_entry[n] = table_cells[s]
                    counts[table_cells[s] + 1] += 1
                    n += 1
    return n_cells


@njit(cache=True)
def build_grid(box_lo, box_hi, origin, h, dims, n_entries):
    """Sparse grid of the triangles overlapping each cell (by bounding box).

    Cell (i, j, k) covers origin + h * [i, i+1) x [j, j+1) x [k, k+1) (clamped to dims) and has the
    key (i * dims[1] + j) * dims[2] + k (the caller keeps dims[0] * dims[1] * dims[2] < 2**62).
    Occupied cells are numbered in order of first appearance.

    Returns (keys (C,), cell_ptr (C + 1,), cell_tris (n_entries,), table_keys, table_cells): the
    triangles of occupied cell c are cell_tris[cell_ptr[c]:cell_ptr[c + 1]] (ascending), and the
    hash table (table_keys, table_cells) maps a key to its c.
    """
    m = box_lo.shape[0]
    cell_of_entry = np.empty(n_entries, dtype=np.int64)
    # pass 1: number the occupied cells and count their triangles, in a hash table of >= 4 slots per
    # triangle, doubled (pass 1 redone) while half full or more: sized by the occupied cells (~F), not
    # the entries (up to 8 F), the table and the per-cell arrays stay small (fewer fresh pages, cached)
    size = 1
    while size < 4 * m + 4:
        size *= 2
    while True:
        table_keys = np.full(size, -1, dtype=np.int64)
        table_cells = np.empty(size, dtype=np.int64)
        keys = np.empty(size // 2, dtype=np.int64)
        ptr = np.zeros(size // 2 + 1, dtype=np.int64)
        n_cells = _number_cells(box_lo, box_hi, origin, h, dims, table_keys, table_cells, keys, cell_of_entry, ptr)
        if n_cells >= 0:
            break
        size *= 2
    for c in range(n_cells):
        ptr[c + 1] += ptr[c]
    # pass 2: list the triangles of each cell, in ascending order (entries are in triangle order)
    pos = ptr[:n_cells].copy()
    tris = np.empty(n_entries, dtype=np.int64)
    n = 0
    for f in range(m):
        i0, i1 = _cell_range(box_lo[f, 0], box_hi[f, 0], origin, h, dims, 0)
        j0, j1 = _cell_range(box_lo[f, 1], box_hi[f, 1], origin, h, dims, 1)
        k0, k1 = _cell_range(box_lo[f, 2], box_hi[f, 2], origin, h, dims, 2)
        for _ in range((i1 - i0 + 1) * (j1 - j0 + 1) * (k1 - k0 + 1)):
            c = cell_of_entry[n]
            tris[pos[c]] = f
            pos[c] += 1
            n += 1
    return keys[:n_cells].copy(), ptr[:n_cells + 1].copy(), tris, table_keys, table_cells


@njit(cache=True, inline="always")
def _closest_on_face(px, py, pz, vertices, faces, f):
    """``closest_on_triangle`` of point p and face f of the mesh."""
    a = faces[f, 0]
    b = faces[f, 1]
    c = faces[f, 2]
    return closest_on_triangle(px, py, pz,
                               vertices[a, 0], vertices[a, 1], vertices[a, 2],
                               vertices[b, 0], vertices[b, 1], vertices[b, 2],
                               vertices[c, 0], vertices[c, 1], vertices[c, 2])


@njit(cache=True, inline="always")
def _bound(best, tol):
    """Squared distance beyond which a triangle's bounding box proves it farther than ``best``: the
    computed closest point of a triangle (a convex combination of its corners) lies within a few ulps
    of its box, and its distance is within a few ulps of the true one; ``tol`` (absolute) and 2^-40
    (relative) are far above both."""
    r = np.sqrt(best) * (1.0 + 2.0**-40) + tol
    return r * r


@njit(cache=True, inline="always")
def _visit_cell(c, px, py, pz, vertices, faces, box_lo, box_hi, tol, cell_ptr, cell_tris, best, lim, bf, bu, bv, bw):
    """Test the triangles of occupied cell c against the best so far (ties keep the smaller face),
    skipping those whose bounding box is farther than ``lim`` (``_bound(best, tol)``)."""
    for t in range(cell_ptr[c], cell_ptr[c + 1]):
        f = cell_tris[t]
        e = max(box_lo[f, 0] - px, px - box_hi[f, 0], 0.0)
        bd = e * e
        e = max(box_lo[f, 1] - py, py - box_hi[f, 1], 0.0)
        bd += e * e
        e = max(box_lo[f, 2] - pz, pz - box_hi[f, 2], 0.0)
        bd += e * e
        if bd > lim:
            continue
        dd, u, v, w = _closest_on_face(px, py, pz, vertices, faces, f)
        if dd < best or (dd == best and f < bf):
            best = dd
            lim = _bound(best, tol)
            bf = f
            bu = u
            bv = v
            bw = w
    return best, lim, bf, bu, bv, bw


@njit(cache=True, nogil=True)
def query_grid(points, vertices, faces, box_lo, box_hi, tol, origin, h, dims, keys, cell_ptr, cell_tris,
               table_keys, table_cells):
    """Closest triangle of each point: (face (P,) int64, bary (P, 3), squared distance (P,)).

    ``box_lo``, ``box_hi`` (F, 3) are the triangles' bounding boxes: a triangle whose box is farther
    than the best distance so far plus ``tol`` (a margin for rounding) is skipped untested.

    Cubic shells of cells around the point's (clamped) cell are searched in order of their
    Chebyshev radius r, skipping cells farther from the point than the best triangle so far; after
    shell r the search stops once the best squared distance is below the squared distance from the
    point to the outside of the searched box (only box sides not on the grid's border count). Once
    the shells have enumerated more lattice positions than there are occupied cells, the point
    scans all occupied cells instead (same pruning). Every cell that could hold a triangle at the
    best distance is visited, so ties between triangles keep the smallest face index.
    """
    n = points.shape[0]
    face = np.empty(n, dtype=np.int64)  # every entry is written (point q's at the end of its loop)
    bary = np.empty((n, 3))
    dist2 = np.empty(n)
    d0 = dims[0]
    d1 = dims[1]
    d2_ = dims[2]
    mask = table_keys.shape[0] - 1
    n_cells = keys.shape[0]
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
        if q > 0 and face[q - 1] >= 0:
            # the previous point's face first: neighbouring queries (a mesh's vertices in order) share it
            # often, and the bound it gives skips most triangles below by their boxes alone
            f = face[q - 1]
            dd, u, v, w = _closest_on_face(px, py, pz, vertices, faces, f)
            if dd < best:  # not when it overflows: such a point keeps face -1 (reported by the caller)
                best = dd
                bf = f
                bu = u
                bv = v
                bw = w
        lim = _bound(best, tol)
        r = 0
        visited = 0
        while True:
            i0 = max(ci - r, 0)
            i1 = min(ci + r, d0 - 1)
            j0 = max(cj - r, 0)
            j1 = min(cj + r, d1 - 1)
            k0 = max(ck - r, 0)
            k1 = min(ck + r, d2_ - 1)
            if visited > 2 * n_cells:
                # far from everything: a pass over the occupied cells is cheaper than more shells
                for c in range(n_cells):
                    key = keys[c]
                    i = key // (d1 * d2_)
                    j = (key // d2_) % d1
                    k = key % d2_
                    if _box_d2(px, py, pz, origin, h, i, j, k) <= best:
                        best, lim, bf, bu, bv, bw = _visit_cell(
                            c, px, py, pz, vertices, faces, box_lo, box_hi, tol, cell_ptr, cell_tris,
                            best, lim, bf, bu, bv, bw)
                break
            for i in range(i0, i1 + 1):
                ei = i == ci - r or i == ci + r
                for j in range(j0, j1 + 1):
                    ej = j == cj - r or j == cj + r
                    # a row on the shell's i or j face: all its cells; inside: only its two k ends
                    if ei or ej:
                        ka = k0
                        kb = k1
                        kstep = 1
                    else:
                        ka = ck - r if ck - r >= k0 else ck + r
                        kb = ck + r if ck + r <= k1 else ck - r
                        kstep = max(2 * r, 1)
                    k = ka
                    while k <= kb and k >= k0:
                        visited += 1
                        if _box_d2(px, py, pz, origin, h, i, j, k) <= best:
                            c = _find((i * d1 + j) * d2_ + k, table_keys, table_cells, mask)
                            if c >= 0:
                                best, lim, bf, bu, bv, bw = _visit_cell(
                                    c, px, py, pz, vertices, faces, box_lo, box_hi, tol, cell_ptr, cell_tris,
                                    best, lim, bf, bu, bv, bw)
                        k += kstep
                    visited += 1
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



@njit(cache=True)
def barycentric_csr(corners, bary):
    """CSR arrays (indptr (P + 1,), indices (nnz,), data (nnz,)) of the rows ``bary[i]`` on the columns
    ``corners[i]``: negative weights clipped to 0, each row divided by its sum, zero weights dropped,
    columns ascending within a row (the columns with a positive weight are distinct within a row)."""
    n = corners.shape[0]
    indptr = np.empty(n + 1, dtype=np.int64)
    indptr[0] = 0
    indices = np.empty(3 * n, dtype=np.int64)
    data = np.empty(3 * n)
    nnz = 0
    for i in range(n):
        w0 = max(bary[i, 0], 0.0)
        w1 = max(bary[i, 1], 0.0)
        w2 = max(bary[i, 2], 0.0)
        s = w0 + w1 + w2
        start = nnz
        for k in range(3):
            w = (w0 if k == 0 else w1 if k == 1 else w2) / s
            if w > 0.0:  # insert into the row's ascending columns
                c = corners[i, k]
                j = nnz
                while j > start and indices[j - 1] > c:
                    indices[j] = indices[j - 1]
                    data[j] = data[j - 1]
                    j -= 1
                indices[j] = c
                data[j] = w
                nnz += 1
        indptr[i + 1] = nnz
    return indptr, indices[:nnz].copy(), data[:nnz].copy()
