"""Numba kernel for spiral neighbourhood orderings (see meshkit.spiral for the definition)."""

import numpy as np
from numba import njit


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
