"""Numba kernels for mesh connectivity (ordered one-rings)."""

import numpy as np
from numba import njit


@njit(cache=True)
def ordered_one_rings(faces, vf_indptr, vf_faces, n_vertices):
    """Rotationally ordered one-ring of every vertex, as CSR.

    For a face (a, b, c) the corner at a contributes the step b -> c: walking these steps goes
    counter-clockwise around a (as seen from the side the normal points to). Interior vertices
    start at their smallest-index neighbour; boundary vertices start at the one neighbour with no
    incoming step, so the walk sweeps the whole fan and ends on the other boundary neighbour.

    Returns (indptr (V+1,), ring (nnz,), status (V,) int8) with status 0 interior, 1 boundary,
    2 isolated, -1 not orderable (several fans, or inconsistent winding, at that vertex).
    """
    indptr = np.zeros(n_vertices + 1, dtype=np.int64)
    # a closed fan has as many neighbours as faces, an open one one more: bound by 2 * faces
    cap = 0
    for v in range(n_vertices):
        cap += vf_indptr[v + 1] - vf_indptr[v] + 1
    ring = np.empty(cap, dtype=np.int64)
    status = np.zeros(n_vertices, dtype=np.int8)
    pos = 0
    for v in range(n_vertices):
        indptr[v] = pos
        lo = vf_indptr[v]
        hi = vf_indptr[v + 1]
        deg = hi - lo
        if deg == 0:
            status[v] = 2
            continue
        src = np.empty(deg, dtype=np.int64)
        dst = np.empty(deg, dtype=np.int64)
        for k in range(deg):
            f = vf_faces[lo + k]
            a = faces[f, 0]
            b = faces[f, 1]
            c = faces[f, 2]
            if a == v:
                src[k] = b
                dst[k] = c
            elif b == v:
                src[k] = c
                dst[k] = a
            else:
                src[k] = a
                dst[k] = b
        # the start: a step source that no step ends at (boundary), else the smallest neighbour
        start = -1
        n_starts = 0
        bad = False
        for k in range(deg):
            has_in = False
            for j in range(deg):
                if dst[j] == src[k]:
                    has_in = True
                    break
            if not has_in:
                n_starts += 1
                start = src[k]
            for j in range(k + 1, deg):
                if src[j] == src[k] or dst[j] == dst[k]:
                    bad = True
        if bad or n_starts > 1:
            status[v] = -1
            continue
        boundary = n_starts == 1
        if not boundary:
            start = src[0]
            for k in range(1, deg):
                if src[k] < start:
                    start = src[k]
        # walk
        cur = start
        count = 0
        ring[pos] = cur
        pos += 1
        while True:
            nxt = -1
            for k in range(deg):
                if src[k] == cur:
                    nxt = dst[k]
                    break
            if nxt == -1:
                break
            count += 1
            if nxt == start:
                break
            if count > deg:
                break
            ring[pos] = nxt
            pos += 1
            cur = nxt
        if count != deg:  # several closed fans sharing the vertex
            status[v] = -1
            pos = indptr[v]
            continue
        status[v] = 1 if boundary else 0
    indptr[n_vertices] = pos
    return indptr, ring[:pos].copy(), status
