"""Numba kernels for quadric-error edge-collapse decimation (Garland & Heckbert 1997).

What is here:
- ``check_halfedges``: every directed half-edge used once (no edge with > 2 faces, consistent winding).
- ``qem_decimate``: the whole decimation loop: quadrics, boundary constraint planes, an array-based
  binary min-heap with lazy invalidation (per-vertex modification stamps), the collapse checks
  (link condition, boundary rules, normal flips, degenerate and duplicate faces) and the collapses
  themselves on a corner-based vertex -> face incidence that is updated in place.

Conventions. A quadric is stored as 10 floats ``(a00 a01 a02 a11 a12 a22 b0 b1 b2 c)`` meaning
``Q(x) = x^T A x + 2 b.x + c`` with ``A = sum w n n^T``, ``b = sum w d n``, ``c = sum w d^2`` for planes
``n.x + d = 0``. A collapse ``a -> b`` removes vertex ``a`` and keeps ``b`` in place; its cost is
``(Q_a + Q_b)(x_b)``. Everything here assumes validated input (see meshkit.decimate).
"""

import numpy as np
from numba import njit

# ------------------------------------------------------------------------------------------------
# input checks


@njit(cache=True)
def check_halfedges(faces, n_vertices):
    """Return (-1, -1) when every directed half-edge (a -> b) occurs in at most one face, else the
    first repeated half-edge. A repeat means an edge with more than two faces or two faces on one
    edge wound inconsistently."""
    m = faces.shape[0]
    # counting sort of half-edges by source vertex, then a per-source scan of targets
    cnt = np.zeros(n_vertices + 1, dtype=np.int64)
    for f in range(m):
        for k in range(3):
            cnt[faces[f, k] + 1] += 1
    for v in range(n_vertices):
        cnt[v + 1] += cnt[v]
    pos = cnt[:-1].copy()
    tgt = np.empty(3 * m, dtype=np.int64)
    for f in range(m):
        for k in range(3):
            a = faces[f, k]
            tgt[pos[a]] = faces[f, (k + 1) % 3]
            pos[a] += 1
    mark = np.full(n_vertices, -1, dtype=np.int64)
    for v in range(n_vertices):
        for i in range(cnt[v], cnt[v + 1]):
            t = tgt[i]
            if mark[t] == v:
                return v, t
            mark[t] = v
    return -1, -1


# ------------------------------------------------------------------------------------------------
# quadrics


@njit(cache=True, inline="always")
def _add_plane(q, k, nx, ny, nz, d, w):
    q[k, 0] += w * nx * nx
    q[k, 1] += w * nx * ny
    q[k, 2] += w * nx * nz
    q[k, 3] += w * ny * ny
    q[k, 4] += w * ny * nz
    q[k, 5] += w * nz * nz
    q[k, 6] += w * nx * d
    q[k, 7] += w * ny * d
    q[k, 8] += w * nz * d
    q[k, 9] += w * d * d


@njit(cache=True, inline="always")
def _qerr(q, i, j, x, y, z):
    """(Q_i + Q_j)(x, y, z)."""
    a0 = q[i, 0] + q[j, 0]
    a1 = q[i, 1] + q[j, 1]
    a2 = q[i, 2] + q[j, 2]
    a3 = q[i, 3] + q[j, 3]
    a4 = q[i, 4] + q[j, 4]
    a5 = q[i, 5] + q[j, 5]
    b0 = q[i, 6] + q[j, 6]
    b1 = q[i, 7] + q[j, 7]
    b2 = q[i, 8] + q[j, 8]
    c = q[i, 9] + q[j, 9]
    e = (a0 * x * x + a3 * y * y + a5 * z * z + 2.0 * (a1 * x * y + a2 * x * z + a4 * y * z)
         + 2.0 * (b0 * x + b1 * y + b2 * z) + c)
    return e if e > 0.0 else 0.0


# ------------------------------------------------------------------------------------------------
# array-based 4-ary min-heap of entry ids; the entry table ent[id] = (remove, keep, stamp, alt) holds
# the payload and hc[i] the cost of heap slot i. Order: cost, then (remove, keep), then entry id, a
# strict total order that does not depend on the order of the pushes for distinct collapses.


@njit(cache=True, inline="always")
def _before(c1, i1, c2, i2, ent):
    """Whether entry (cost c1, id i1) comes before (c2, i2)."""
    if c1 != c2:
        return c1 < c2
    if ent[i1, 0] != ent[i2, 0]:
        return ent[i1, 0] < ent[i2, 0]
    if ent[i1, 1] != ent[i2, 1]:
        return ent[i1, 1] < ent[i2, 1]
    return i1 < i2


@njit(cache=True)
def _sift_down(hc, hid, ent, i, size):
    cc = hc[i]
    ci = hid[i]
    while True:
        first = 4 * i + 1
        if first >= size:
            break
        best = first
        bc = hc[first]
        bi = hid[first]
        last = min(first + 4, size)
        for j in range(first + 1, last):
            if _before(hc[j], hid[j], bc, bi, ent):
                best = j
                bc = hc[j]
                bi = hid[j]
        if _before(bc, bi, cc, ci, ent):
            hc[i] = bc
            hid[i] = bi
            i = best
        else:
            break
    hc[i] = cc
    hid[i] = ci


@njit(cache=True)
def _sift_up(hc, hid, ent, i):
    cc = hc[i]
    ci = hid[i]
    while i > 0:
        p = (i - 1) // 4
        if _before(cc, ci, hc[p], hid[p], ent):
            hc[i] = hc[p]
            hid[i] = hid[p]
            i = p
        else:
            break
    hc[i] = cc
    hid[i] = ci


@njit(cache=True)
def _push(hc, hid, ent, cnt, cost, r, k, stamp, alt):
    """Append entry (r, k, stamp, alt) with its cost; grows the arrays when full. cnt = [size, n_entries]."""
    if cnt[1] >= ent.shape[0]:
        cap = 2 * ent.shape[0]
        hc2 = np.empty(cap)
        hc2[: cnt[0]] = hc[: cnt[0]]
        hid2 = np.empty(cap, dtype=np.int64)
        hid2[: cnt[0]] = hid[: cnt[0]]
        ent2 = np.empty((cap, 4), dtype=np.int64)
        ent2[: cnt[1]] = ent[: cnt[1]]
        hc = hc2
        hid = hid2
        ent = ent2
    e = cnt[1]
    ent[e, 0] = r
    ent[e, 1] = k
    ent[e, 2] = stamp
    ent[e, 3] = alt
    cnt[1] += 1
    i = cnt[0]
    hc[i] = cost
    hid[i] = e
    cnt[0] += 1
    _sift_up(hc, hid, ent, i)
    return hc, hid, ent


# ------------------------------------------------------------------------------------------------
# the decimation


@njit(cache=True)
def qem_decimate(vertices, faces, target, boundary_weight, min_cos, eps_area):
    """Collapse edges of the (validated, manifold, consistently wound) mesh until ``target``
    vertices remain.

    Parameters
    ----------
    vertices : (V, 3) float64, ideally normalised (centred, bbox diagonal 1) so ``eps_area`` is relative
    faces : (F, 3) int64
    target : int, number of vertices to keep
    boundary_weight : float, weight of the boundary constraint planes (times the edge length squared)
    min_cos : float, a collapse is refused when a surviving face's normal turns by more than
        arccos(min_cos) from its current normal, or by more than arccos(min_cos) from its normal
        in the input mesh (the fine surface)
    eps_area : float, a face whose doubled area is <= eps_area * (longest edge)^2 counts as degenerate

    Returns
    -------
    alive : (V,) bool, the kept vertices
    out_faces : (F, 3) int64, faces after the collapses (rows of dead faces are meaningless)
    face_alive : (F,) bool
    n_alive : int, number of vertices left (== target unless the queue ran out)
    order : (V - n_alive, 2) int64, the collapses (removed, kept) in order
    """
    n = vertices.shape[0]
    m = faces.shape[0]
    F = faces.copy()
    P = vertices

    # --- face normals (unit) and areas; plane quadrics weighted by area
    fn = np.zeros((m, 3))
    Q = np.zeros((n, 10))
    for f in range(m):
        i0 = F[f, 0]
        i1 = F[f, 1]
        i2 = F[f, 2]
        ux = P[i1, 0] - P[i0, 0]
        uy = P[i1, 1] - P[i0, 1]
        uz = P[i1, 2] - P[i0, 2]
        vx = P[i2, 0] - P[i0, 0]
        vy = P[i2, 1] - P[i0, 1]
        vz = P[i2, 2] - P[i0, 2]
        cx = uy * vz - uz * vy
        cy = uz * vx - ux * vz
        cz = ux * vy - uy * vx
        ln = np.sqrt(cx * cx + cy * cy + cz * cz)
        if ln > 0.0:
            nx = cx / ln
            ny = cy / ln
            nz = cz / ln
            fn[f, 0] = nx
            fn[f, 1] = ny
            fn[f, 2] = nz
            d = -(nx * P[i0, 0] + ny * P[i0, 1] + nz * P[i0, 2])
            w = 0.5 * ln
            _add_plane(Q, i0, nx, ny, nz, d, w)
            _add_plane(Q, i1, nx, ny, nz, d, w)
            _add_plane(Q, i2, nx, ny, nz, d, w)

    # --- corner lists: corner c = 3 f + k belongs to vertex F[f, k]; head/nxt singly linked
    head = np.full(n, -1, dtype=np.int64)
    nxt = np.full(3 * m, -1, dtype=np.int64)
    for f in range(m - 1, -1, -1):
        for k in range(3):
            v = F[f, k]
            c = 3 * f + k
            nxt[c] = head[v]
            head[v] = c
    face_alive = np.ones(m, dtype=np.bool_)
    nfaces = np.zeros(n, dtype=np.int64)
    for f in range(m):
        for k in range(3):
            nfaces[F[f, k]] += 1

    # --- boundary half-edges a -> b (no face holds b -> a): flag both ends and add a constraint
    # plane through the edge, perpendicular to its face, weighted by boundary_weight * |b - a|^2
    boundary = np.zeros(n, dtype=np.bool_)
    for f in range(m):
        for k in range(3):
            a = F[f, k]
            b = F[f, (k + 1) % 3]
            has_twin = False
            c = head[b]
            while c >= 0:
                g = c // 3
                kk = c % 3
                if F[g, (kk + 1) % 3] == a:
                    has_twin = True
                    break
                c = nxt[c]
            if has_twin:
                continue
            boundary[a] = True
            boundary[b] = True
            ex = P[b, 0] - P[a, 0]
            ey = P[b, 1] - P[a, 1]
            ez = P[b, 2] - P[a, 2]
            # e x n points away from the face, perpendicular to both
            px = ey * fn[f, 2] - ez * fn[f, 1]
            py = ez * fn[f, 0] - ex * fn[f, 2]
            pz = ex * fn[f, 1] - ey * fn[f, 0]
            lp = np.sqrt(px * px + py * py + pz * pz)
            if lp > 0.0:
                px /= lp
                py /= lp
                pz /= lp
                d = -(px * P[a, 0] + py * P[a, 1] + pz * P[a, 2])
                w = boundary_weight * (ex * ex + ey * ey + ez * ez)
                _add_plane(Q, a, px, py, pz, d, w)
                _add_plane(Q, b, px, py, pz, d, w)

    # --- heap storage (grown on demand)
    cap = 3 * m + 16  # >= number of edges
    hc = np.empty(cap)
    hid = np.empty(cap, dtype=np.int64)
    ent = np.empty((cap, 4), dtype=np.int64)
    hcount = np.zeros(2, dtype=np.int64)

    alive = np.ones(n, dtype=np.bool_)
    modified = np.zeros(n, dtype=np.int64)  # stamp of the last change to a vertex's quadric/ring
    blocked = np.zeros(n, dtype=np.bool_)  # has an edge that was refused since its last re-push
    mark = np.full(n, -1, dtype=np.int64)  # scratch: neighbour marks
    stamp = 0
    nbr = np.empty(n, dtype=np.int64)  # scratch neighbour list

    # initial edges: each undirected edge once (from its smaller end), pushed unsorted then heapified
    size = _initial_edges(Q, P, F, head, nxt, boundary, mark, hc, hid, ent)
    hcount[0] = size
    hcount[1] = size
    mark_id = n + 1
    for i in range((size - 2) // 4, -1, -1):
        _sift_down(hc, hid, ent, i, size)

    n_alive = n
    order = np.empty((max(n - target, 0), 2), dtype=np.int64)
    n_done = 0
    processed = np.full(n, -1, dtype=np.int64)

    while n_alive > target and hcount[0] > 0:
        # pop the cheapest entry
        e = hid[0]
        r = ent[e, 0]
        k = ent[e, 1]
        st = ent[e, 2]
        is_alt = ent[e, 3] != 0
        hcount[0] -= 1
        size = hcount[0]
        if size > 0:
            hc[0] = hc[size]
            hid[0] = hid[size]
            _sift_down(hc, hid, ent, 0, size)
        if not alive[r] or not alive[k] or st < modified[r] or st < modified[k]:
            continue  # stale

        ok = _can_collapse(P, F, head, nxt, face_alive, nfaces, boundary, fn, mark, mark_id, r, k, min_cos, eps_area)
        mark_id += 2
        if not ok:
            blocked[r] = True
            blocked[k] = True
            if not is_alt and not (boundary[k] and not boundary[r]):
                # try the other direction later, at its own (higher) cost
                acost = _qerr(Q, r, k, P[r, 0], P[r, 1], P[r, 2])
                hc, hid, ent = _push(hc, hid, ent, hcount, acost, k, r, stamp, 1)
            continue

        # --- collapse r -> k
        for t in range(10):
            Q[k, t] += Q[r, t]
        c = head[r]
        while c >= 0:
            cn = nxt[c]
            g = c // 3
            if face_alive[g]:
                if F[g, 0] == k or F[g, 1] == k or F[g, 2] == k:
                    face_alive[g] = False
                    for t in range(3):
                        nfaces[F[g, t]] -= 1
                else:
                    F[g, c % 3] = k
                    nxt[c] = head[k]
                    head[k] = c
                    nfaces[k] += 1
            c = cn
        head[r] = -1
        nfaces[r] = 0
        alive[r] = False
        n_alive -= 1
        order[n_done, 0] = r
        order[n_done, 1] = k
        n_done += 1
        stamp += 1
        modified[k] = stamp
        modified[r] = stamp

        # compact k's corner list (drop dead faces) and gather k's ring
        cnt = 0
        mark_id += 1
        prev = -1
        c = head[k]
        while c >= 0:
            cn = nxt[c]
            g = c // 3
            if not face_alive[g]:
                if prev < 0:
                    head[k] = cn
                else:
                    nxt[prev] = cn
            else:
                prev = c
                for t in range(3):
                    w = F[g, t]
                    if w != k and mark[w] != mark_id:
                        mark[w] = mark_id
                        nbr[cnt] = w
                        cnt += 1
            c = cn
        # neighbours lost faces too: drop dead corners from their lists
        for i in range(cnt):
            w = nbr[i]
            prev = -1
            c = head[w]
            while c >= 0:
                cn = nxt[c]
                if not face_alive[c // 3]:
                    if prev < 0:
                        head[w] = cn
                    else:
                        nxt[prev] = cn
                else:
                    prev = c
                c = cn

        # re-push k's edges with their new costs; re-push the edges of blocked neighbours
        processed[k] = stamp
        for i in range(cnt):
            w = nbr[i]
            hc, hid, ent = _push_edge(Q, P, boundary, k, w, stamp, hc, hid, ent, hcount)
        for i in range(cnt):
            w = nbr[i]
            if blocked[w]:
                blocked[w] = False
                modified[w] = stamp
                processed[w] = stamp
                mark_id += 1
                c = head[w]
                while c >= 0:
                    g = c // 3
                    for t in range(3):
                        x = F[g, t]
                        if x != w and mark[x] != mark_id:
                            mark[x] = mark_id
                            if processed[x] != stamp:
                                hc, hid, ent = _push_edge(Q, P, boundary, w, x, stamp, hc, hid, ent, hcount)
                    c = nxt[c]
        blocked[k] = False

    return alive, F, face_alive, n_alive, order[:n_done]


@njit(cache=True)
def _initial_edges(Q, P, F, head, nxt, boundary, mark, hc, hid, ent):
    """Fill the heap arrays (unordered) with every undirected edge once, from its smaller end;
    mark[v] is set to v while scanning v. Returns the number of entries."""
    n = P.shape[0]
    size = 0
    for a in range(n):
        c = head[a]
        while c >= 0:
            g = c // 3
            for t in range(3):
                b = F[g, t]
                if b > a and mark[b] != a:
                    mark[b] = a
                    cost, r, k = _direction(Q, P, boundary, a, b)
                    hc[size] = cost
                    hid[size] = size
                    ent[size, 0] = r
                    ent[size, 1] = k
                    ent[size, 2] = 0
                    ent[size, 3] = 0
                    size += 1
            c = nxt[c]
    return size


@njit(cache=True, inline="always")
def _direction(Q, P, boundary, a, b):
    """Preferred direction of edge (a, b): (cost, remove, keep). The end of lower error is kept,
    ties keep the smaller index; a boundary vertex never collapses into an interior one."""
    ba = boundary[a]
    bb = boundary[b]
    if ba and not bb:
        return _qerr(Q, a, b, P[a, 0], P[a, 1], P[a, 2]), b, a
    if bb and not ba:
        return _qerr(Q, a, b, P[b, 0], P[b, 1], P[b, 2]), a, b
    ca = _qerr(Q, a, b, P[a, 0], P[a, 1], P[a, 2])
    cb = _qerr(Q, a, b, P[b, 0], P[b, 1], P[b, 2])
    if ca < cb or (ca == cb and a < b):
        return ca, b, a
    return cb, a, b


@njit(cache=True)
def _push_edge(Q, P, boundary, a, b, stamp, hc, hid, ent, hcount):
    """Push edge (a, b) in its preferred direction."""
    cost, r, k = _direction(Q, P, boundary, a, b)
    return _push(hc, hid, ent, hcount, cost, r, k, stamp, 0)


@njit(cache=True)
def _can_collapse(P, F, head, nxt, face_alive, nfaces, boundary, fn, mark, mark_id, r, k, min_cos, eps_area):
    """Whether removing r into k (k stays in place) keeps a valid manifold without flips.

    Checks, in order of cost: the faces shared by the edge (1 = boundary edge, 2 = interior);
    boundary rules (r on the boundary may only move along a boundary edge; an interior edge whose
    ends are both on the boundary would pinch the surface); no vertex left without faces; the link
    condition (the common neighbours of r and k are exactly the opposite vertices of the shared
    faces); then per surviving face of r: not degenerate, normal not turned by more than
    arccos(min_cos) from its current normal nor from its input normal, and no duplicate of a face of k.
    """
    # faces around r: shared with k, and the rest; neighbours of r marked with mark_id
    m1 = mark_id + 1
    n_shared = 0
    opp0 = -1
    opp1 = -1
    c = head[r]
    while c >= 0:
        g = c // 3
        if face_alive[g]:
            has_k = F[g, 0] == k or F[g, 1] == k or F[g, 2] == k
            for t in range(3):
                w = F[g, t]
                if w != r:
                    mark[w] = m1
                    if has_k and w != k:
                        if n_shared == 0:
                            opp0 = w
                        else:
                            opp1 = w
            if has_k:
                n_shared += 1
        c = nxt[c]
    if n_shared == 0 or n_shared > 2:
        return False
    if n_shared == 2:
        if boundary[r] and boundary[k]:
            return False  # interior edge between two boundary vertices: would pinch
    else:
        if not boundary[r] or not boundary[k]:
            return False
    if boundary[r] and not boundary[k]:
        return False
    # nobody may end up without faces
    if nfaces[k] <= n_shared:
        return False
    if nfaces[opp0] <= 1:
        return False
    if n_shared == 2 and nfaces[opp1] <= 1:
        return False

    # link condition: common neighbours of r and k must be exactly the opposite vertices
    n_common = 0
    c = head[k]
    while c >= 0:
        g = c // 3
        if face_alive[g]:
            for t in range(3):
                w = F[g, t]
                if w != k and w != r and mark[w] == m1:
                    mark[w] = m1 + 1  # count once
                    n_common += 1
        c = nxt[c]
    if n_common != n_shared:
        return False

    # geometry of each face of r that survives (r replaced by k)
    kx = P[k, 0]
    ky = P[k, 1]
    kz = P[k, 2]
    c = head[r]
    while c >= 0:
        g = c // 3
        if face_alive[g] and not (F[g, 0] == k or F[g, 1] == k or F[g, 2] == k):
            j = c % 3
            x = F[g, (j + 1) % 3]
            y = F[g, (j + 2) % 3]
            # old normal (r, x, y) and new normal (k, x, y)
            ax = P[x, 0] - P[r, 0]
            ay = P[x, 1] - P[r, 1]
            az = P[x, 2] - P[r, 2]
            bx = P[y, 0] - P[r, 0]
            by = P[y, 1] - P[r, 1]
            bz = P[y, 2] - P[r, 2]
            ox = ay * bz - az * by
            oy = az * bx - ax * bz
            oz = ax * by - ay * bx
            ax = P[x, 0] - kx
            ay = P[x, 1] - ky
            az = P[x, 2] - kz
            bx = P[y, 0] - kx
            by = P[y, 1] - ky
            bz = P[y, 2] - kz
            nx = ay * bz - az * by
            ny = az * bx - ax * bz
            nz = ax * by - ay * bx
            ln = np.sqrt(nx * nx + ny * ny + nz * nz)
            ex = P[y, 0] - P[x, 0]
            ey = P[y, 1] - P[x, 1]
            ez = P[y, 2] - P[x, 2]
            l2 = max(ax * ax + ay * ay + az * az, bx * bx + by * by + bz * bz, ex * ex + ey * ey + ez * ez)
            if ln <= eps_area * l2:
                return False  # degenerate
            lo = np.sqrt(ox * ox + oy * oy + oz * oz)
            if ox * nx + oy * ny + oz * nz < min_cos * lo * ln:
                return False  # turned too far from its current normal
            if fn[g, 0] * nx + fn[g, 1] * ny + fn[g, 2] * nz < min_cos * ln:
                return False  # turned too far from the fine surface
            # duplicate: does k already have a face on x and y?
            cc = head[k]
            while cc >= 0:
                h = cc // 3
                if face_alive[h]:
                    hx = F[h, 0] == x or F[h, 1] == x or F[h, 2] == x
                    hy = F[h, 0] == y or F[h, 1] == y or F[h, 2] == y
                    if hx and hy:
                        return False
                cc = nxt[cc]
        c = nxt[c]
    return True
