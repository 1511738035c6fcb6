"""Numba kernels for mesh connectivity: the one-fan check and ordered one-rings."""

import numpy as np
from numba import njit


@njit(cache=True)
def fan_order(src, dst, out):
    """Chain the steps ``src[k] -> dst[k]`` around one vertex (one per incident face) into one fan.

    For a face (a, b, c) the corner at a gives the step b -> c. The steps form one fan when they
    chain into a single path (an open fan, at a boundary vertex) or a single cycle (a closed fan).
    An open fan starts at the one source no step ends at; a closed one at its smallest source.

    Parameters
    ----------
    src, dst : (D,) int64, the D >= 1 steps.
    out : (>= D + 1,) int64, receives the fan's vertices in order.

    Returns
    -------
    int: the number of vertices written to ``out`` (D + 1 for an open fan, D for a closed one), or
    -1 when the steps are not one fan (a repeated source or target, several path starts, or a
    cycle that closes before using every step).
    """
    deg = src.shape[0]
    start = -1
    n_starts = 0
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
                return -1
    if n_starts > 1:
        return -1
    if n_starts == 0:
        start = src[0]
        for k in range(1, deg):
            if src[k] < start:
                start = src[k]
    # walk
    cur = start
    count = 0
    n_out = 1
    out[0] = cur
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
        out[n_out] = nxt
        n_out += 1
        cur = nxt
    if count != deg:  # several closed fans sharing the vertex
        return -1
    return n_out


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
        n_ring = fan_order(src, dst, ring[pos:])
        if n_ring < 0:
            status[v] = -1
            continue
        pos += n_ring
        status[v] = 1 if n_ring > deg else 0
    indptr[n_vertices] = pos
    return indptr, ring[:pos].copy(), status
