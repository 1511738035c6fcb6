"""Numba kernels for quadric-error edge-collapse decimation (Garland & Heckbert 1997).

What is here:
- ``check_input``: unreferenced vertices, degenerate faces, edges with > 2 faces or inconsistent
  winding, non-manifold vertices (one fan around each vertex), in one pass.
- ``qem_decimate``: the whole decimation loop: quadrics, boundary constraint planes, a priority
  queue, the collapse checks (link condition, boundary rules, normal flips, degenerate and
  duplicate faces) and the collapses themselves on a corner-based vertex -> face incidence
  (singly linked int32 corner lists) that is updated in place. The lists hold live faces only: a
  collapse kills the one or two faces on its edge, whose corners sit in the lists of the kept end
  and the opposite vertices, and unlinks them there at once, so no traversal tests for dead faces.

The priority queue is an indexed 4-ary heap holding each vertex once, keyed by its cheapest allowed
collapse (over its neighbours). After a collapse r -> k only k and its ring can change (k's quadric
and every ring's faces changed), so exactly those keys are recomputed and moved in place: no stale
entries are ever popped (an earlier version with per-edge entries and lazy invalidation popped ~7
stale entries per collapse and spent most of its time in the heap). A refused collapse is
remembered on its vertex (the next-best one is offered instead) until the neighbourhood of either
end changes. The order is the same as "apply the cheapest valid directed collapse, recomputing
everything each step" (the test suite checks this against such a pure-Python reference).

Conventions. A quadric is stored as 10 floats ``(a00 a01 a02 a11 a12 a22 b0 b1 b2 c)`` meaning
``Q(x) = x^T A x + 2 b.x + c`` with ``A = sum w n n^T``, ``b = sum w d n``, ``c = sum w d^2`` for planes
``n.x + d = 0``. A collapse ``a -> b`` removes vertex ``a`` and keeps ``b`` in place; its cost is
``(Q_a + Q_b)(x_b)``. Everything here assumes validated input (see meshkit.decimate).
"""

import numpy as np
from numba import njit

from .intrinsics import live as _live
from .intrinsics import prefetch

# ------------------------------------------------------------------------------------------------
# input checks


@njit(cache=True)
def check_input(vertices, faces, eps_area):
    """One pass over a mesh for the conditions decimation needs. Returns (code, a, b):

    0: fine; 1: vertex a is in no face; 2: face a is degenerate (twice its area <= eps_area *
    (longest edge)^2; b = number of such faces); 3: the directed edge (a, b) is in two faces (an edge
    with more than two faces, or two faces wound against each other); 4: the faces around vertex a
    do not form one fan (a non-manifold vertex). The first problem found, in that order.
    """
    n = vertices.shape[0]
    m = faces.shape[0]
    # int32 scratch throughout (as in qem_decimate): half the memory traffic of int64
    # vertex -> corners, by counting sort
    ptr = np.zeros(n + 1, dtype=np.int32)
    for f in range(m):
        for k in range(3):
            ptr[faces[f, k] + 1] += 1
    for v in range(n):
        if ptr[v + 1] == 0:
            return 1, v, 0
        ptr[v + 1] += ptr[v]
    # each corner's step src -> dst (the next and the previous vertex of its face), grouped by vertex:
    # filled in face order, so that the checks below read them contiguously
    fill = ptr[:-1].copy()
    src = np.empty(3 * m, dtype=np.int32)
    dst = np.empty(3 * m, dtype=np.int32)
    for f in range(m):
        for k in range(3):
            v = faces[f, k]
            src[fill[v]] = faces[f, 1 if k == 0 else (2 if k == 1 else 0)]
            dst[fill[v]] = faces[f, 2 if k == 0 else (0 if k == 1 else 1)]
            fill[v] += 1
    # degenerate faces
    n_deg = 0
    first_deg = -1
    for f in range(m):
        a = faces[f, 0]
        b = faces[f, 1]
        c = faces[f, 2]
        ux = vertices[b, 0] - vertices[a, 0]
        uy = vertices[b, 1] - vertices[a, 1]
        uz = vertices[b, 2] - vertices[a, 2]
        wx = vertices[c, 0] - vertices[a, 0]
        wy = vertices[c, 1] - vertices[a, 1]
        wz = vertices[c, 2] - vertices[a, 2]
        cx = uy * wz - uz * wy
        cy = uz * wx - ux * wz
        cz = ux * wy - uy * wx
        ex = wx - ux
        ey = wy - uy
        ez = wz - uz
        l2 = max(ux * ux + uy * uy + uz * uz, wx * wx + wy * wy + wz * wz, ex * ex + ey * ey + ez * ez)
        if np.sqrt(cx * cx + cy * cy + cz * cz) <= eps_area * l2:
            if first_deg < 0:
                first_deg = f
            n_deg += 1
    if n_deg > 0:
        return 2, first_deg, n_deg
    # each directed edge v -> x at most once
    mark = np.full(n, -1, dtype=np.int32)
    for v in range(n):
        for i in range(ptr[v], ptr[v + 1]):
            x = src[i]
            if mark[x] == v:
                return 3, v, x
            mark[x] = v
    # one fan per vertex: the steps src -> dst (next -> prev corner) of v's corners chain into one path
    # or one cycle. Every directed edge is in one face (checked above), so v's sources are distinct
    # and so are its destinations: the steps form disjoint paths and cycles, found in O(degree) with
    # two vertex-indexed stamps (step_of[x]: v's step whose source is x; is_dst[x] == v: x is a destination)
    step_of = np.full(n, -1, dtype=np.int32)
    src_of = np.full(n, -1, dtype=np.int32)
    is_dst = np.full(n, -1, dtype=np.int32)
    for v in range(n):
        for i in range(ptr[v], ptr[v + 1]):
            step_of[src[i]] = i
            src_of[src[i]] = v
            is_dst[dst[i]] = v
        start = ptr[v]
        n_starts = 0
        for i in range(ptr[v], ptr[v + 1]):
            if is_dst[src[i]] != v:  # a source no step ends at: a path starts here
                n_starts += 1
                start = i
        if n_starts > 1:
            return 4, v, 0
        # walk from the start (a path's start, or any step of a cycle) and count the steps reached
        i = start
        count = 0
        while True:
            count += 1
            y = dst[i]
            if src_of[y] != v:
                break
            i = step_of[y]
            if i == start:
                break
        if count != ptr[v + 1] - ptr[v]:
            return 4, v, 0
    return 0, 0, 0


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
# indexed 4-ary min-heap of vertices keyed by their best collapse: hcost[i], hvert[i] for heap slot i,
# pos[v] = slot of vertex v or -1. Order: lower cost first; equal costs: the larger vertex index first
# (so that of an edge whose two directions cost the same, the smaller index is the one kept).


@njit(cache=True, inline="always")
def _before(c1, v1, c2, v2):
    return c1 < c2 or (c1 == c2 and v1 > v2)


@njit(cache=True)
def _hset(hcost, hvert, pos, hsize, v, cost):
    """Insert vertex v with key cost, change its key, or (cost = inf) remove it. hsize = [size].

    Written without calls and with every array used at the end (see ``_live``): it runs ~9 times per
    collapse.
    """
    i = pos[v]
    size = hsize[0]
    c = cost
    u = v
    if i >= 0 and hcost[i] == cost:
        i = -1  # unchanged key (most re-evaluations of a ring vertex): nothing to move
    elif cost == np.inf:
        if i >= 0:
            size -= 1
            pos[v] = -1
            if i == size:
                i = -1  # it was the last slot: nothing to move
            else:
                c = hcost[size]  # the last entry fills the hole
                u = hvert[size]
    elif i < 0:
        i = size
        size += 1
    if i >= 0:
        # up while before the parent; then down while after the best child (one of the two moves)
        while i > 0:
            p = (i - 1) // 4
            if not _before(c, u, hcost[p], hvert[p]):
                break
            hcost[i] = hcost[p]
            hvert[i] = hvert[p]
            pos[hvert[i]] = i
            i = p
        while True:
            first = 4 * i + 1
            if first >= size:
                break
            best = first
            for j in range(first + 1, min(first + 4, size)):
                if _before(hcost[j], hvert[j], hcost[best], hvert[best]):
                    best = j
            if not _before(hcost[best], hvert[best], c, u):
                break
            hcost[i] = hcost[best]
            hvert[i] = hvert[best]
            pos[hvert[i]] = i
            i = best
        hcost[i] = c
        hvert[i] = u
        pos[u] = i
    hsize[0] = size
    _live(hcost, hvert, pos, hsize)


# ------------------------------------------------------------------------------------------------
# the decimation


@njit(cache=True)
def qem_decimate(vertices, faces, target, boundary_weight, min_cos, eps_area, min_quality, rej_capacity=32):
    """Collapse edges of the (validated, manifold, consistently wound) mesh until ``target``
    vertices remain.

    Parameters
    ----------
    vertices : (V, 3) float64, normalised (meshkit.decimate._normalise: centred, bbox diagonal 1, on a
        2^-28 grid) so that ``eps_area`` is relative and the result does not depend on the input's units
    faces : (F, 3) int64
    target : int, number of vertices to keep
    boundary_weight : float, weight of the boundary constraint planes (times the edge length squared)
    min_cos : float, a collapse is refused when a surviving face's normal turns by more than
        arccos(min_cos) from its current normal, or by more than arccos(min_cos) from its normal
        in the input mesh (the fine surface)
    eps_area : float, a face whose doubled area is <= eps_area * (longest edge)^2 counts as degenerate
    min_quality : float, a collapse may not make a face thinner than this (height over longest edge,
        = 2 area / longest edge^2; an equilateral triangle has 0.87) unless it was thinner already
    rej_capacity : int, refusals remembered per vertex; a vertex with more refusals drops out of
        the queue until its neighbourhood changes

    Returns
    -------
    alive : (V,) bool, the kept vertices
    out_faces : (F, 3) int32, faces after the collapses (rows of dead faces are meaningless)
    face_alive : (F,) bool
    n_alive : int, number of vertices left (== target unless the queue ran out)
    order : (V - n_alive, 2) int64, the collapses (removed, kept) in order
    """
    n = vertices.shape[0]
    m = faces.shape[0]
    F = faces.astype(np.int32)  # int32 indices throughout: half the memory traffic of int64
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
    head = np.full(n, -1, dtype=np.int32)
    nxt = np.full(3 * m, -1, dtype=np.int32)
    for f in range(m - 1, -1, -1):
        for k in range(3):
            v = F[f, k]
            c = 3 * f + k
            nxt[c] = head[v]
            head[v] = c
    face_alive = np.ones(m, dtype=np.bool_)
    nfaces = np.zeros(n, dtype=np.int32)
    for f in range(m):
        for k in range(3):
            nfaces[F[f, k]] += 1

    # --- boundary half-edges a -> b (no face holds b -> a): flag both ends and add a constraint
    # plane through the edge, perpendicular to its face, weighted by boundary_weight * |b - a|^2
    # (the half-edge from corner c's vertex a to the next corner's b has a twin iff b precedes a in
    # one of a's faces: mark the vertices preceding a, then test the ones following it)
    no_twin = np.zeros(3 * m, dtype=np.bool_)
    prev_of = np.full(n, -1, dtype=np.int32)
    for a in range(n):
        c = head[a]
        while c >= 0:
            j = c % 3
            prev_of[F[c // 3, (j + 2) % 3]] = a
            c = nxt[c]
        c = head[a]
        while c >= 0:
            j = c % 3
            if prev_of[F[c // 3, (j + 1) % 3]] != a:
                no_twin[c] = True
            c = nxt[c]
    boundary = np.zeros(n, dtype=np.bool_)
    for f in range(m):
        for k in range(3):
            if not no_twin[3 * f + k]:
                continue
            a = F[f, k]
            b = F[f, (k + 1) % 3]
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

    # --- every vertex's cheapest allowed collapse, in an indexed heap
    RMAX = rej_capacity
    rej = np.empty((n, RMAX), dtype=np.int32)  # refused targets of each vertex, since its last change
    nrej = np.zeros(n, dtype=np.int32)
    refused_by = np.zeros(n, dtype=np.int32)  # how many refusals name each vertex as target
    mark = np.full(n, -1, dtype=np.int32)  # scratch: neighbour marks (int32: half the cache lines of int64)
    mark_id = np.int64(0)  # typed, not the literal 0: each helper compiles once (int32 vertices, int64 marks)
    best_t = np.full(n, -1, dtype=np.int32)
    hcost = np.empty(n)
    hvert = np.empty(n, dtype=np.int32)
    pos = np.full(n, -1, dtype=np.int32)
    hsize = np.zeros(1, dtype=np.int64)
    for v64 in range(n):
        v = np.int32(v64)
        mark_id += 1
        cost, t = _best(Q, P, F, head, nxt, boundary, rej, nrej, mark, mark_id, v)
        best_t[v] = t
        _hset(hcost, hvert, pos, hsize, v, cost)  # inserted (cost inf: no collapse, not queued)

    alive = np.ones(n, dtype=np.bool_)
    n_alive = n
    order = np.empty((max(n - target, 0), 2), dtype=np.int64)
    n_done = 0
    nbr = np.empty(n, dtype=np.int32)  # scratch: the changed vertices of a collapse
    in_changed = np.full(n, -1, dtype=np.int32)
    opp = np.empty(2, dtype=np.int32)

    while n_alive > target and hsize[0] > 0:
        if mark_id > 1 << 30:  # int32 marks: start again before they could overflow (a handful per collapse)
            mark[:] = -1
            mark_id = np.int64(0)
        r = hvert[0]
        k = best_t[r]
        ok = _can_collapse(P, F, head, nxt, nfaces, boundary, fn, mark, mark_id, r, k, min_cos, eps_area,
                           min_quality)
        mark_id += 2
        if not ok:
            # remember the refusal and offer r's next-best collapse
            if nrej[r] < RMAX:
                rej[r, nrej[r]] = k
                nrej[r] += 1
                refused_by[k] += 1
                mark_id += 1
                cost, t = _best(Q, P, F, head, nxt, boundary, rej, nrej, mark, mark_id, r)
            else:
                cost = np.inf
                t = -1
            best_t[r] = t
            _hset(hcost, hvert, pos, hsize, r, cost)
            continue

        # --- collapse r -> k: the faces on the edge die, r's other faces move to k
        for t in range(10):
            Q[k, t] += Q[r, t]
        n_opp = 0
        c = head[r]
        while c >= 0:
            cn = nxt[c]
            g = c // 3
            if F[g, 0] == k or F[g, 1] == k or F[g, 2] == k:
                face_alive[g] = False
                for t in range(3):
                    w = F[g, t]
                    nfaces[w] -= 1
                    if w != r and w != k:
                        opp[n_opp] = w
                        n_opp += 1
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
        _hset(hcost, hvert, pos, hsize, r, np.inf)
        # the dead faces' corners are in the lists of k and the opposite vertices only: drop them
        # there, so that every corner list holds live faces only (no other list needs a check)
        _drop_dead(head, nxt, face_alive, k)
        for i in range(n_opp):
            _drop_dead(head, nxt, face_alive, opp[i])

        # k's ring: the changed vertices (next corners of k's faces, + previous ones on the boundary)
        cnt = 0
        mark_id += 1
        n_side = 2 if boundary[k] else 1
        c = head[k]
        while c >= 0:
            g = c // 3
            j = c - 3 * g
            for s in range(n_side):
                jj = j + 1 + s
                w = F[g, jj - 3 if jj >= 3 else jj]
                if n_side == 2:  # an open fan's next and previous corners overlap (a closed fan's are distinct)
                    if mark[w] == mark_id:
                        continue
                    mark[w] = mark_id
                nbr[cnt] = w
                cnt += 1
            c = nxt[c]
        nbr[cnt] = k
        cnt += 1
        for i in range(cnt):
            in_changed[nbr[i]] = n_done

        # changed vertices: forget their refusals and re-evaluate. Only k's quadric changed, so for
        # another changed vertex w only the cost of w -> k is new: unless w's best went to r (gone)
        # or to k (its cost can only have grown), or w had refusals, a min with that one cost is exact.
        for i in range(cnt):
            w = nbr[i]
            full = w == k or nrej[w] > 0 or best_t[w] == r or best_t[w] == k
            for j in range(nrej[w]):
                refused_by[rej[w, j]] -= 1
            nrej[w] = 0
            if full:
                mark_id += 1
                cost, t = _best(Q, P, F, head, nxt, boundary, rej, nrej, mark, mark_id, w)
            else:
                cost = hcost[pos[w]] if pos[w] >= 0 else np.inf
                t = best_t[w]
                if not (boundary[w] and not boundary[k]):
                    ck = _qerr(Q, w, k, P[k, 0], P[k, 1], P[k, 2])
                    if ck < cost or (ck == cost and k < t):
                        cost = ck
                        t = k
            best_t[w] = t
            _hset(hcost, hvert, pos, hsize, w, cost)
        # unchanged vertices that refused a collapse into a changed vertex: forget that refusal
        for i in range(cnt):
            w = nbr[i]
            if refused_by[w] == 0:
                continue
            c = head[w]
            while c >= 0:
                g = c // 3
                for t in range(3):
                    x = F[g, t]
                    if nrej[x] > 0 and in_changed[x] != n_done:
                        j = 0
                        found = False
                        while j < nrej[x]:
                            if in_changed[rej[x, j]] == n_done:
                                refused_by[rej[x, j]] -= 1
                                rej[x, j] = rej[x, nrej[x] - 1]
                                nrej[x] -= 1
                                found = True
                            else:
                                j += 1
                        if found:
                            mark_id += 1
                            cost, tt = _best(Q, P, F, head, nxt, boundary, rej, nrej, mark, mark_id, x)
                            best_t[x] = tt
                            _hset(hcost, hvert, pos, hsize, x, cost)
                c = nxt[c]

    return alive, F, face_alive, n_alive, order[:n_done]


@njit(cache=True)
def _drop_dead(head, nxt, face_alive, v):
    """Unlink the corners of dead faces from v's corner list."""
    prev = -1
    c = head[v]
    while c >= 0:
        cn = nxt[c]
        if face_alive[c // 3]:
            prev = c
        elif prev < 0:
            head[v] = cn
        else:
            nxt[prev] = cn
        c = cn


@njit(cache=True)
def _best(Q, P, F, head, nxt, boundary, rej, nrej, mark, mark_id, v):
    """Cheapest allowed collapse removing v: (cost, target), (inf, -1) if none.

    Over v's neighbours x: cost (Q_v + Q_x)(x_x), skipping x in v's rejected list and, when v is
    on the boundary, interior x (a boundary vertex never moves into the interior). Equal costs:
    the smaller x. The neighbours are the next corners of v's faces (an interior vertex's fan is
    closed, so they are distinct), plus the previous corners when v is on the boundary (the last
    neighbour of an open fan is no face's next corner); there mark[] with mark_id visits each once.
    """
    bc = np.inf
    bt = -1
    bv = boundary[v]
    q0 = Q[v, 0]
    q1 = Q[v, 1]
    q2 = Q[v, 2]
    q3 = Q[v, 3]
    q4 = Q[v, 4]
    q5 = Q[v, 5]
    q6 = Q[v, 6]
    q7 = Q[v, 7]
    q8 = Q[v, 8]
    q9 = Q[v, 9]
    nr = nrej[v]
    c = head[v]
    while c >= 0:
        g = c // 3
        j = c - 3 * g
        for s in range(2 if bv else 1):
            jj = j + 1 + s
            x = F[g, jj - 3 if jj >= 3 else jj]
            if bv:  # an open fan's next and previous corners overlap: visit each neighbour once
                if mark[x] == mark_id:
                    continue
                mark[x] = mark_id
                if not boundary[x]:
                    continue
            skip = False
            for i in range(nr):
                if rej[v, i] == x:
                    skip = True
                    break
            if skip:
                continue
            px = P[x, 0]
            py = P[x, 1]
            pz = P[x, 2]
            a0 = q0 + Q[x, 0]
            a1 = q1 + Q[x, 1]
            a2 = q2 + Q[x, 2]
            a3 = q3 + Q[x, 3]
            a4 = q4 + Q[x, 4]
            a5 = q5 + Q[x, 5]
            b0 = q6 + Q[x, 6]
            b1 = q7 + Q[x, 7]
            b2 = q8 + Q[x, 8]
            cc = q9 + Q[x, 9]
            e = (a0 * px * px + a3 * py * py + a5 * pz * pz + 2.0 * (a1 * px * py + a2 * px * pz + a4 * py * pz)
                 + 2.0 * (b0 * px + b1 * py + b2 * pz) + cc)
            cost = e if e > 0.0 else 0.0
            if cost < bc or (cost == bc and x < bt):
                bc = cost
                bt = x
        c = nxt[c]
    return bc, bt


@njit(cache=True)
def _can_collapse(P, F, head, nxt, nfaces, boundary, fn, mark, mark_id, r, k, min_cos, eps_area, min_quality):
    """Whether removing r into k (k stays in place) keeps a valid manifold without flips.

    Checks, in order of cost: the faces shared by the edge (1 = boundary edge, 2 = interior);
    boundary rules (r on the boundary may only move along a boundary edge; an interior edge whose
    ends are both on the boundary would pinch the surface); no vertex left without faces; the link
    condition (the common neighbours of r and k are exactly the opposite vertices of the shared
    faces); then per surviving face of r: not degenerate, not a new sliver, normal not turned by more than
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
        prefetch(fn, g, 0)  # the face's input normal, for the geometry checks below (often a cache miss)
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
    # (one exit: a flag instead of early returns, see _hset)
    if n_shared == 0 or n_shared > 2:
        ok = False
    elif n_shared == 2:
        ok = not (boundary[r] and boundary[k])  # interior edge between two boundary vertices: would pinch
    else:
        ok = boundary[r] and boundary[k]
    if boundary[r] and not boundary[k]:
        ok = False
    # nobody may end up without faces
    if ok and (nfaces[k] <= n_shared or nfaces[opp0] <= 1 or (n_shared == 2 and nfaces[opp1] <= 1)):
        ok = False

    # link condition: common neighbours of r and k must be exactly the opposite vertices
    if ok:
        n_common = 0
        c = head[k]
        while c >= 0:
            g = c // 3
            for t in range(3):
                w = F[g, t]
                if w != k and w != r and mark[w] == m1:
                    mark[w] = m1 + 1  # count once
                    n_common += 1
            c = nxt[c]
        ok = n_common == n_shared

    # geometry of each face of r that survives (r replaced by k)
    kx = P[k, 0]
    ky = P[k, 1]
    kz = P[k, 2]
    c = head[r] if ok else -1
    while c >= 0:
        g = c // 3
        if not (F[g, 0] == k or F[g, 1] == k or F[g, 2] == k):
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
            ex = P[y, 0] - P[x, 0]
            ey = P[y, 1] - P[x, 1]
            ez = P[y, 2] - P[x, 2]
            e2 = ex * ex + ey * ey + ez * ez
            l2_old = max(ax * ax + ay * ay + az * az, bx * bx + by * by + bz * bz, e2)
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
            l2 = max(ax * ax + ay * ay + az * az, bx * bx + by * by + bz * bz, e2)
            lo = np.sqrt(ox * ox + oy * oy + oz * oz)
            if ln <= eps_area * l2:
                ok = False  # degenerate
            elif ln < min_quality * l2 and ln * l2_old < lo * l2:
                # sliver: height over longest edge (= 2 area / longest^2) below min_quality, and thinner than before
                ok = False
            elif ox * nx + oy * ny + oz * nz < min_cos * lo * ln:
                ok = False  # turned too far from its current normal
            elif fn[g, 0] * nx + fn[g, 1] * ny + fn[g, 2] * nz < min_cos * ln:
                ok = False  # turned too far from the fine surface
            elif nfaces[r] == 3:
                # duplicate: does k already have a face on x and y? Given the link condition that needs
                # x and y to be the two opposite vertices, i.e. r of valence 3 (a tetrahedron-like corner)
                cc = head[k]
                while cc >= 0:
                    h = cc // 3
                    hx = F[h, 0] == x or F[h, 1] == x or F[h, 2] == x
                    hy = F[h, 0] == y or F[h, 1] == y or F[h, 2] == y
                    if hx and hy:
                        ok = False
                        break
                    cc = nxt[cc]
            if not ok:
                break
        c = nxt[c]
    _live(P, F, head, nxt, nfaces, boundary, fn, mark)
    return ok
