"""Numba kernel for spiral neighbourhood orderings (see meshkit.spiral for the definition)."""

import numpy as np
from numba import njit

# "no face" / padding as a typed int64, not the literal -1: a literal argument makes numba compile
# the helper it is passed to a second time (once per literal value)
_NONE = np.int64(-1)


@njit(cache=True)
def spirals(ring_indptr, ring, n_vertices, length, dilation, pad_value):
    """Spiral of every vertex from the ordered one-rings (CSR ``ring_indptr``/``ring``).

    For centre c: c, then c's ordered one-ring, then ring after ring. Ring p+1 is built by
    visiting the vertices w of ring p in order; each w's ordered one-ring is read cyclically,
    starting just after its anchor, and every vertex not yet in the spiral is appended. The anchor
    is the vertex before w in ring p (for the first w: the last vertex of ring p) when it is a
    neighbour of w, else the first neighbour of w (in w's stored order) already in the spiral.
    The walk stops once ``length * dilation`` vertices are collected or no ring grows; the output
    row takes every ``dilation``-th entry and is padded with ``pad_value`` (-1: repeat the last).
    """
    need = length * dilation
    out = np.empty((n_vertices, length), dtype=np.int64)
    mark = np.full(n_vertices, -1, dtype=np.int64)  # mark[u] == c: u is already in c's spiral
    buf = np.empty(need, dtype=np.int64)
    for c in range(n_vertices):
        buf[0] = c
        mark[c] = c
        cnt = 1
        # ring 1: c's ordered one-ring as stored
        for q in range(ring_indptr[c], ring_indptr[c + 1]):
            if cnt == need:
                break
            u = ring[q]
            mark[u] = c
            buf[cnt] = u
            cnt += 1
        ps = 1
        pe = cnt
        while cnt < need and pe > ps:
            for k in range(ps, pe):
                w = buf[k]
                lo = ring_indptr[w]
                m = ring_indptr[w + 1] - lo
                prev = buf[pe - 1] if k == ps else buf[k - 1]
                j = -1
                for t in range(m):
                    if ring[lo + t] == prev:
                        j = t
                        break
                if j < 0:
                    for t in range(m):
                        if mark[ring[lo + t]] == c:
                            j = t
                            break
                if j < 0:  # cannot happen for w reached through an edge; keep the stored order
                    j = m - 1
                for t in range(1, m + 1):
                    u = ring[lo + (j + t) % m]
                    if mark[u] != c:
                        mark[u] = c
                        buf[cnt] = u
                        cnt += 1
                        if cnt == need:
                            break
                if cnt == need:
                    break
            ps = pe
            pe = cnt
        # every dilation-th entry, then padding
        i = 0
        while i < length and i * dilation < cnt:
            out[c, i] = buf[i * dilation]
            i += 1
        last = out[c, i - 1]
        while i < length:
            out[c, i] = last if pad_value < 0 else pad_value
            i += 1
    return out


@njit(cache=True)
def rotate_rings_clockwise(ring_indptr, ring, start):
    """The ordered one-rings read clockwise: vertex v's ring reversed, rotated to begin at ``start[v]``.

    ``ring`` holds counter-clockwise rings (CSR); ``start[v]`` is one of v's neighbours (or -1 for an
    isolated vertex). Returns the clockwise rings in the same CSR layout.
    """
    out = np.empty_like(ring)
    for v in range(ring_indptr.shape[0] - 1):
        lo = ring_indptr[v]
        m = ring_indptr[v + 1] - lo
        j = 0
        for t in range(m):
            if ring[lo + t] == start[v]:
                j = t
                break
        for t in range(m):
            out[lo + t] = ring[lo + (j - t + m) % m]
    return out


@njit(cache=True)
def spirals_spiralnet(ring_indptr, ring, n_vertices, length, dilation):
    """SpiralNet++'s spirals from its circulator-ordered one-rings (CSR ``ring_indptr``/``ring``).

    Ring 1 of centre c is c's ring as stored. Ring p+1 visits the vertices w of ring p in order and
    reads w's ring cyclically from just after the first of its entries that lies in ring p (from its
    first entry when none does), appending every vertex not yet in the spiral. Rings are gathered
    until ``length * dilation`` vertices are reached. A row is *exhausted* when the ring after the
    last one gathered is empty (the walk ran out before reaching the count, or the centre's
    component is the centre and its one-ring): SpiralNet++ then replaces the whole row by nearest
    vertices, which the caller does; here such rows keep what the walk found.

    Returns (spirals (V, length) int64 with -1 after the last entry found, exhausted (V,) bool).
    """
    need = length * dilation
    out = np.full((n_vertices, length), -1, dtype=np.int64)
    exhausted = np.zeros(n_vertices, dtype=np.bool_)
    mark = np.full(n_vertices, -1, dtype=np.int64)  # mark[u] == c: u is in c's spiral
    ring_id = np.full(n_vertices, -1, dtype=np.int64)  # ring_id[u] == r: u belongs to ring r (global count)
    buf = np.empty(n_vertices + 1, dtype=np.int64)
    rid = 0
    for c in range(n_vertices):
        buf[0] = c
        mark[c] = c
        cnt = 1
        rid += 1
        for q in range(ring_indptr[c], ring_indptr[c + 1]):
            u = ring[q]
            mark[u] = c
            ring_id[u] = rid
            buf[cnt] = u
            cnt += 1
        ps = 1
        pe = cnt
        while True:
            start = cnt
            rid += 1
            for k in range(ps, pe):
                w = buf[k]
                lo = ring_indptr[w]
                m = ring_indptr[w + 1] - lo
                j = -1
                for t in range(m):
                    if ring_id[ring[lo + t]] == rid - 1 and mark[ring[lo + t]] == c:
                        j = t
                        break
                for t in range(1, m + 1):
                    u = ring[lo + (j + t) % m] if j >= 0 else ring[lo + t - 1]
                    if mark[u] != c:
                        mark[u] = c
                        ring_id[u] = rid
                        buf[cnt] = u
                        cnt += 1
                if cnt >= need and cnt > start:
                    break
            if cnt == start:
                exhausted[c] = True
                break
            if cnt >= need:
                break
            ps = start
            pe = cnt
        i = 0
        while i < length and i * dilation < cnt:
            out[c, i] = buf[i * dilation]
            i += 1
    return out, exhausted


@njit(cache=True)
def _edge_length(vertices, a, b):
    dx = vertices[a, 0] - vertices[b, 0]
    dy = vertices[a, 1] - vertices[b, 1]
    dz = vertices[a, 2] - vertices[b, 2]
    return np.sqrt((dx * dx + dy * dy) + dz * dz)


@njit(cache=True)
def shortest_path_tree(vertices, adj_indptr, adj, source, dist, prev):
    """Dijkstra over mesh edges (Euclidean lengths) from ``source``; fills ``dist``/``prev`` of the
    vertices it reaches (others untouched). ``prev[v]`` is the neighbour u minimising
    (dist[u] + |uv|, u): the smallest index among equally short predecessors; ``prev[source] = -1``."""
    n = adj_indptr.shape[0] - 1
    done = np.zeros(n, dtype=np.bool_)
    best = np.full(n, np.inf)
    heap_d = np.empty(adj.shape[0] + 1)
    heap_v = np.empty(adj.shape[0] + 1, dtype=np.int64)
    size = 0
    best[source] = 0.0
    heap_d[0] = 0.0
    heap_v[0] = source
    size = 1
    while size > 0:
        d = heap_d[0]
        v = heap_v[0]
        size -= 1
        # pop: move the last entry to the root and sift down (ties by vertex index)
        heap_d[0] = heap_d[size]
        heap_v[0] = heap_v[size]
        k = 0
        while True:
            lft = 2 * k + 1
            if lft >= size:
                break
            m = lft
            r = lft + 1
            if r < size and (heap_d[r] < heap_d[lft] or (heap_d[r] == heap_d[lft] and heap_v[r] < heap_v[lft])):
                m = r
            if heap_d[m] < heap_d[k] or (heap_d[m] == heap_d[k] and heap_v[m] < heap_v[k]):
                heap_d[k], heap_d[m] = heap_d[m], heap_d[k]
                heap_v[k], heap_v[m] = heap_v[m], heap_v[k]
                k = m
            else:
                break
        if done[v] or d > best[v]:
            continue
        done[v] = True
        for q in range(adj_indptr[v], adj_indptr[v + 1]):
            w = adj[q]
            if done[w]:
                continue
            dw = d + _edge_length(vertices, v, w)
            if dw < best[w]:
                best[w] = dw
                heap_d[size] = dw
                heap_v[size] = w
                k = size
                size += 1
                while k > 0:
                    p = (k - 1) // 2
                    if heap_d[k] < heap_d[p] or (heap_d[k] == heap_d[p] and heap_v[k] < heap_v[p]):
                        heap_d[k], heap_d[p] = heap_d[p], heap_d[k]
                        heap_v[k], heap_v[p] = heap_v[p], heap_v[k]
                        k = p
                    else:
                        break
    for v in range(n):
        if not done[v]:
            continue
        dist[v] = best[v]
        prev[v] = -1
        if v == source:
            continue
        bd = np.inf
        for q in range(adj_indptr[v], adj_indptr[v + 1]):  # neighbours ascending: first minimum wins
            u = adj[q]
            if done[u] and best[u] < best[v]:
                du = best[u] + _edge_length(vertices, u, v)
                if du < bd:
                    bd = du
                    prev[v] = u


@njit(cache=True)
def _insert(buf, size, pos, value):
    for t in range(size, pos, -1):
        buf[t] = buf[t - 1]
    buf[pos] = value
    return size + 1


@njit(cache=True)
def _other(faces, f, a, b):
    """The vertex of face f that is neither a nor b (the first such in the face's order)."""
    for k in range(3):
        x = faces[f, k]
        if x != a and x != b:
            return x
    return -1


@njit(cache=True)
def spirals_neural3dmm(faces, vf_indptr, vf, adj_indptr, adj, start, n_vertices, n_raw, max_rings):
    """Neural3DMM's spirals (see meshkit.spiral for the definition), one raw row per vertex.

    ``vf`` lists each vertex's faces in ascending face order; ``adj`` its neighbours ascending;
    ``start[c]`` the neighbour c's first ring starts at (-1: none, the spiral is c alone). Each
    row gathers at most ``max_rings`` rings and stops once ``n_raw`` entries are there; -1 marks
    the dummy vertex placed where a ring crosses the boundary, -2 fills the rest.
    """
    out = np.full((n_vertices, n_raw), -2, dtype=np.int64)
    seen = np.full(n_vertices, -1, dtype=np.int64)
    in_next = np.full(n_vertices, -1, dtype=np.int64)
    fstate = np.full(faces.shape[0], -1, dtype=np.int64)  # == token: face still available in the current ring
    ring = np.empty(n_vertices + 2, dtype=np.int64)
    nxt = np.empty(n_vertices + 1, dtype=np.int64)
    tok = 0
    for c in range(n_vertices):
        seen[c] = c
        out[c, 0] = c
        cnt = 1
        s = start[c]
        if s < 0 or n_raw == 1:
            continue
        # ---- ring 1: the faces around c
        tok += 1
        avail = 0
        for q in range(vf_indptr[c], vf_indptr[c + 1]):
            fstate[vf[q]] = tok
            avail += 1
        ring[0] = s
        rn = 1
        seen[s] = c
        orient = False
        while avail > 0:
            cur = ring[rn - 1]
            f0 = _NONE
            f1 = _NONE
            nc = 0
            for q in range(vf_indptr[c], vf_indptr[c + 1]):
                f = vf[q]
                if fstate[f] == tok and (faces[f, 0] == cur or faces[f, 1] == cur or faces[f, 2] == cur):
                    if nc == 0:
                        f0 = f
                    elif nc == 1:
                        f1 = f
                    nc += 1
            if nc == 0:
                break
            if rn == 1:
                orient = ((faces[f0, 0] == c and faces[f0, 1] == cur) or (faces[f0, 1] == c and faces[f0, 2] == cur)
                          or (faces[f0, 2] == c and faces[f0, 0] == cur))
                if nc >= 2:
                    f = f0 if orient else f1
                    third = _other(faces, f, c, cur)
                    fstate[f] = -1
                    avail -= 1
                    ring[rn] = third
                    rn += 1
                    seen[third] = c
                else:
                    break
            else:
                if nc == 0:
                    break
                third = _other(faces, f0, cur, c)
                if seen[third] != c:
                    ring[rn] = third
                    rn += 1
                    seen[third] = c
                fstate[f0] = -1
                avail -= 1
        rev = rn
        v = s
        reverse = not (orient and rn == 1)
        pad = False
        while avail > 0:
            f0 = _NONE
            nc = 0
            for q in range(vf_indptr[c], vf_indptr[c + 1]):
                f = vf[q]
                if fstate[f] == tok and (faces[f, 0] == v or faces[f, 1] == v or faces[f, 2] == v):
                    f0 = f
                    nc += 1
            if nc != 1:
                break
            pad = True
            third = _other(faces, f0, v, c)
            fstate[f0] = -1
            avail -= 1
            if seen[third] != c:
                rn = _insert(ring, rn, rev, third)
                seen[third] = c
                if not reverse:
                    rev = rn
                v = third
        if pad:
            rn = _insert(ring, rn, rev, _NONE)
        for t in range(rn):
            if cnt < n_raw:
                out[c, cnt] = ring[t]
            cnt += 1
        # ---- the next rings: triangles with one vertex seen and two in the next ring
        n_rings = 1
        while n_rings < max_rings and cnt < n_raw and rn > 0:
            n_rings += 1
            tok += 1
            nn = 0
            for t in range(rn):
                w = ring[t]
                if w < 0:
                    continue
                for q in range(adj_indptr[w], adj_indptr[w + 1]):
                    u = adj[q]
                    if seen[u] != c and in_next[u] != tok:
                        in_next[u] = tok
                        nxt[nn] = u
                        nn += 1
            nxt[:nn].sort()
            avail = 0
            base = -1
            first = ring[0]
            last = ring[rn - 1]
            for k in range(nn):
                u = nxt[k]
                for q in range(vf_indptr[u], vf_indptr[u + 1]):
                    f = vf[q]
                    ns = 0
                    has_first = False
                    has_last = False
                    for j in range(3):
                        x = faces[f, j]
                        if seen[x] == c:
                            ns += 1
                        if x == first:
                            has_first = True
                        if x == last:
                            has_last = True
                    if ns == 1:
                        if fstate[f] != tok:
                            fstate[f] = tok
                            avail += 1
                    elif has_first and has_last:
                        base = f
            init = -1
            if base >= 0:
                for j in range(3):
                    x = faces[base, j]
                    if x != first and x != last:
                        init = x
                        break
                if init >= 0 and not _touches(faces, fstate, tok, vf_indptr, vf, init):
                    init = -1
            if init < 0:
                for r in range(rn - 1):
                    a = ring[r]
                    b = ring[r + 1]
                    if a < 0 or b < 0:
                        continue
                    for q in range(vf_indptr[a], vf_indptr[a + 1]):
                        f = vf[q]
                        if not (faces[f, 0] == b or faces[f, 1] == b or faces[f, 2] == b):
                            continue
                        cand = -1
                        for j in range(3):
                            if seen[faces[f, j]] != c:
                                cand = faces[f, j]
                                break
                        if cand >= 0 and _touches(faces, fstate, tok, vf_indptr, vf, cand):
                            init = cand
                            break
                    if init >= 0:
                        break
            if init < 0:
                rn = 0
                break
            ring[0] = init
            rn = 1
            seen[init] = c
            while avail > 0:
                cur = ring[rn - 1]
                f0 = _NONE
                f1 = _NONE
                nc = 0
                for q in range(vf_indptr[cur], vf_indptr[cur + 1]):
                    f = vf[q]
                    if fstate[f] == tok:
                        if nc == 0:
                            f0 = f
                        elif nc == 1:
                            f1 = f
                        nc += 1
                if nc == 0:
                    break
                if rn == 1:
                    orient = ((seen[faces[f0, 0]] == c and faces[f0, 1] == cur)
                              or (seen[faces[f0, 1]] == c and faces[f0, 2] == cur)
                              or (seen[faces[f0, 2]] == c and faces[f0, 0] == cur))
                    if nc >= 2:
                        f = f0 if orient else f1
                        third = _unseen(faces, f, seen, c)
                        fstate[f] = -1
                        avail -= 1
                        ring[rn] = third
                        rn += 1
                        seen[third] = c
                    else:
                        break
                else:
                    if nc == 0:
                        break
                    fstate[f0] = -1
                    avail -= 1
                    third = _unseen(faces, f0, seen, c)
                    if third < 0:
                        break
                    ring[rn] = third
                    rn += 1
                    seen[third] = c
            rev = rn
            v = init
            reverse = not (orient and rn == 1)
            pad = False
            while avail > 0:
                f0 = _NONE
                nc = 0
                for q in range(vf_indptr[v], vf_indptr[v + 1]):
                    f = vf[q]
                    if fstate[f] == tok:
                        f0 = f
                        nc += 1
                if nc != 1:
                    break
                pad = True
                third = -1
                for j in range(3):
                    x = faces[f0, j]
                    if x != v and seen[x] != c:
                        third = x
                        break
                fstate[f0] = -1
                avail -= 1
                if third >= 0:
                    rn = _insert(ring, rn, rev, third)
                    seen[third] = c
                    if not reverse:
                        rev = rn
                    v = third
            if pad:
                rn = _insert(ring, rn, rev, _NONE)
            for t in range(rn):
                if cnt < n_raw:
                    out[c, cnt] = ring[t]
                cnt += 1
    return out


@njit(cache=True)
def _touches(faces, fstate, tok, vf_indptr, vf, v):
    for q in range(vf_indptr[v], vf_indptr[v + 1]):
        if fstate[vf[q]] == tok:
            return True
    return False


@njit(cache=True)
def _unseen(faces, f, seen, c):
    for j in range(3):
        if seen[faces[f, j]] != c:
            return faces[f, j]
    return -1
