"""Numba kernels of the z-buffer rasterizer (see meshkit.render.rasterize for the conventions).

Holds: vertex snapping to fixed point, the per-triangle coverage + depth-test scan (which keeps
only the winning triangle and depth per pixel), the single-image and batched (prange) drivers,
and the deferred passes over the final face-index buffer: barycentrics, and attribute
interpolation (per pixel, or per-triangle planes when triangles cover many pixels).

Fixed point: x and y are snapped to 1/256 pixel (SUBPIXEL_BITS = 8, as GPUs do), stored as
int32 and combined in int64, so every edge function is an exact integer: a pixel on an edge shared by two triangles sees
exactly opposite values from the two sides, and the top-left rule then gives it to exactly one.
Pixel (row j, column i) samples the point (i + 0.5, j + 0.5), i.e. (256 i + 128, 256 j + 128).
"""

import numpy as np
from numba import njit, prange

from .intrinsics import prefetch as _prefetch

SUBPIXEL_BITS = 8
SUBPIXEL = 1 << SUBPIXEL_BITS  # 256
HALF = SUBPIXEL // 2  # the pixel centre offset, in fixed point


@njit(cache=True)
def snap(vertices, xy):
    """Fixed-point x, y: round half to even at 1/256 px, int32 (|x|, |y| <= 2^21 px fit; all
    arithmetic on them is promoted to int64, where the edge functions are exact)."""
    for v in range(vertices.shape[0]):
        xy[v, 0] = np.int32(np.rint(vertices[v, 0] * SUBPIXEL))
        xy[v, 1] = np.int32(np.rint(vertices[v, 1] * SUBPIXEL))


@njit(cache=True, inline="always")
def _bias(dx, dy):
    """0 for a top or left edge (the pixel on it is drawn), -1 otherwise (it is not).

    For an edge a -> b of a positively oriented triangle the interior lies where
    E(p) = dx (py - ay) - dy (px - ax) >= 0, i.e. along the gradient (-dy, dx): a top edge is
    horizontal with the interior below (dy == 0, dx > 0), a left edge has the interior to its
    right (-dy > 0). Computed without branches (the signs are data, not predictable).
    """
    return np.int64((dy < 0) | ((dy == 0) & (dx > 0))) - 1


@njit(cache=True, fastmath=True)
def max_abs_xy(vertices):
    """max |x|, |y| over the vertices (for the guard-band check, without temporaries).

    fastmath lets the compiler vectorize the max (2x faster); the vertices are validated finite
    before this runs, so the NaN semantics it relaxes never matter."""
    m = 0.0
    for v in range(vertices.shape[0]):
        m = max(m, max(abs(vertices[v, 0]), abs(vertices[v, 1])))
    return m


@njit(cache=True)
def scan(xy, vertices, sign, faces, f_start, f_end, height, width, cull, fbuf, zbuf):
    """Coverage + depth test of faces[f_start:f_end] into fbuf/zbuf; fbuf gets f - f_start.

    fbuf (H, W) int32 must hold -1 and zbuf (H, W) float32 NaN on entry (NaN = empty: every
    comparison with it is false, so ``not z <= zbuf`` takes the first triangle). A pixel takes a
    triangle when its signed depth is strictly larger (nearer): on equal depth the lower face
    index, drawn first, stays. Depth is interpolated with the same integer edge functions as the
    coverage test. Returns nothing; the buffers are updated in place.

    The paths give identical results: a triangle whose bounding box holds at most one pixel
    centre (most triangles of a dense mesh in a small image) is tested at that centre without
    data-dependent branches; a clipped box of at most 2 x 2 centres is scanned as a fixed 2 x 2
    block with masked stores; a box at most 8 centres wide as vectorized rows of 4 or 8 lanes with
    masked stores; a wider one (or one at the image's right edge) as rows of such 8-lane chunks.
    Depth at the k-th pixel of a row is z_row + k dz, z_row its exact value at the row's first box
    column.
    """
    # lane counts of the row loop below, as run-time values: with a constant trip count the compiler
    # unrolls that loop into scalar code instead of vectorizing it (numba runs no SLP vectorizer)
    lanes4 = min(4, width)
    lanes8 = min(8, width)
    for f in range(f_start, f_end):
        # vertex indices as unsigned (validated in [0, V)): indexing then skips the wrap-around
        # handling of negative indices (~8% of this loop on a dense mesh)
        a = np.uint64(faces[f, 0])
        b = np.uint64(faces[f, 1])
        c = np.uint64(faces[f, 2])
        x0 = xy[a, 0]
        y0 = xy[a, 1]
        x1 = xy[b, 0]
        y1 = xy[b, 1]
        x2 = xy[c, 0]
        y2 = xy[c, 1]
        # bounding box in pixel indices: centres 256 i + 128 within [min, max] (before clipping)
        i0 = (min(x0, min(x1, x2)) - HALF + SUBPIXEL - 1) >> SUBPIXEL_BITS
        i1 = (max(x0, max(x1, x2)) - HALF) >> SUBPIXEL_BITS
        j0 = (min(y0, min(y1, y2)) - HALF + SUBPIXEL - 1) >> SUBPIXEL_BITS
        j1 = (max(y0, max(y1, y2)) - HALF) >> SUBPIXEL_BITS
        if i1 < max(i0, 0) or j1 < max(j0, 0) or i0 >= width or j0 >= height:
            continue  # no pixel centre in the clipped box (a quarter of a dense mesh's triangles)
        area = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
        za = sign * vertices[a, 2]  # signed depth: near = larger
        zb = sign * vertices[b, 2]
        zc = sign * vertices[c, 2]
        if area < 0:
            # counter-clockwise on screen (front face): swap b and c to rasterize it positively
            x1, x2 = x2, x1
            y1, y2 = y2, y1
            zb, zc = zc, zb
            area = -area
        elif cull:
            continue  # clockwise on screen = back face (or degenerate)
        # edge k is opposite vertex k: w0 over b -> c, w1 over c -> a, w2 over a -> b
        dx0 = x2 - x1
        dy0 = y2 - y1
        dx1 = x0 - x2
        dy1 = y0 - y2
        dx2 = x1 - x0
        dy2 = y1 - y0
        bias0 = _bias(dx0, dy0)
        bias1 = _bias(dx1, dy1)
        bias2 = _bias(dx2, dy2)
        # depth as a barycentric combination: z = (w0 z0 + w1 z1 + w2 z2) / area
        inv = 1.0 / max(area, 1)
        c0 = za * inv
        c1 = zb * inv
        c2 = zc * inv
        if i1 <= i0 and j1 <= j0:
            # at most one centre in the box: evaluate it, store under a mask (no branch on the outcome)
            ok = (i0 == i1) & (j0 == j1) & (i0 >= 0) & (i0 < width) & (j0 >= 0) & (j0 < height) & (area != 0)
            i = min(max(i0, 0), width - 1)
            j = min(max(j0, 0), height - 1)
            px = (i << SUBPIXEL_BITS) + HALF
            py = (j << SUBPIXEL_BITS) + HALF
            w0 = dx0 * (py - y1) - dy0 * (px - x1)
            w1 = dx1 * (py - y2) - dy1 * (px - x2)
            w2 = dx2 * (py - y0) - dy2 * (px - x0)
            inside = ((w0 + bias0) | (w1 + bias1) | (w2 + bias2)) >= 0
            z = np.float32(w0 * c0 + w1 * c1 + w2 * c2)
            old = zbuf[j, i]
            take = ok & inside & (not z <= old)
            zbuf[j, i] = z if take else old
            fbuf[j, i] = np.int32(f - f_start) if take else fbuf[j, i]
            continue
        if area == 0:
            continue  # degenerate after snapping: covers no sample point
        if i0 < 0:
            i0 = 0
        if j0 < 0:
            j0 = 0
        if i1 > width - 1:
            i1 = width - 1
        if j1 > height - 1:
            j1 = height - 1
        if i0 > i1 or j0 > j1:
            continue  # no sample point inside the clipped box
        px0 = (i0 << SUBPIXEL_BITS) + HALF
        # one pixel to the right: E_k changes by -s_k (exact integer steps), depth by dz
        s0 = dy0 << SUBPIXEL_BITS
        s1 = dy1 << SUBPIXEL_BITS
        s2 = dy2 << SUBPIXEL_BITS
        dz = -(s0 * c0 + s1 * c1 + s2 * c2)
        fid = np.int32(f - f_start)
        if i1 - i0 < 2 and j1 - j0 < 2:
            # a box of at most 2 x 2 centres is scanned as a fixed 2 x 2 block with masked stores:
            # constant trip counts (unrolled) and no branch on the data. Slots beyond the box repeat
            # its last row / column and store the old values back.
            for dj in range(2):
                j = min(j0 + dj, j1)
                row_ok = j0 + dj <= j1
                py = (j << SUBPIXEL_BITS) + HALF
                w0 = dx0 * (py - y1) - dy0 * (px0 - x1)
                w1 = dx1 * (py - y2) - dy1 * (px0 - x2)
                w2 = dx2 * (py - y0) - dy2 * (px0 - x0)
                z = w0 * c0 + w1 * c1 + w2 * c2
                w0 += bias0
                w1 += bias1
                w2 += bias2
                for di in range(2):
                    i = min(i0 + di, i1)
                    z32 = np.float32(z + di * dz)
                    old = zbuf[j, i]
                    take = row_ok & (i0 + di <= i1) & (((w0 - di * s0) | (w1 - di * s1) | (w2 - di * s2)) >= 0) & (not z32 <= old)
                    zbuf[j, i] = z32 if take else old
                    fbuf[j, i] = fid if take else fbuf[j, i]
            continue
        last = i1 - i0
        if last < lanes8 and i0 + lanes8 <= width:
            # a box at most 8 centres wide (at most 4: 4 lanes): each row is one loop over 4 or 8
            # adjacent pixels from the box's left column, with the inside test, depth test and
            # stores done for all lanes at once and masked (lanes beyond the box are outside). The
            # trip count is a run-time value, so the compiler vectorizes this loop (SIMD compares
            # and masked stores) instead of unrolling it into scalar selects; the lanes stay in the
            # image (i0 + 8 <= width). Costs per row, not per pixel: the real mesh's mix of box
            # sizes no longer mispredicts (5-8 wide boxes were 3x the cost per pixel of 4 x 4 ones).
            n = lanes4 if last < 4 else lanes8
            iu = np.uint64(i0)  # unsigned pixel indices: no wrap-around handling, contiguous lanes
            for j in range(j0, j1 + 1):
                py = (j << SUBPIXEL_BITS) + HALF
                w0 = dx0 * (py - y1) - dy0 * (px0 - x1)
                w1 = dx1 * (py - y2) - dy1 * (px0 - x2)
                w2 = dx2 * (py - y0) - dy2 * (px0 - x0)
                z = w0 * c0 + w1 * c1 + w2 * c2
                w0 += bias0
                w1 += bias1
                w2 += bias2
                ju = np.uint64(j)
                for di in range(n):
                    i = iu + np.uint64(di)
                    z32 = np.float32(z + di * dz)
                    old = zbuf[ju, i]
                    oldf = fbuf[ju, i]
                    take = ((((w0 - di * s0) | (w1 - di * s1) | (w2 - di * s2) | (last - di)) >= 0)
                            & ((z32 > old) | (old != old)))  # nearer, or the pixel is empty (NaN)
                    zbuf[ju, i] = z32 if take else old
                    fbuf[ju, i] = fid if take else oldf
            continue
        # a wider box (or one at the image's right edge): each row in chunks of 8 lanes, vectorized and
        # masked as above (lanes outside the box, k < 0 or k > last, are outside). A chunk that would
        # cross the image's right edge is moved left to end on it: its lanes left of the box are
        # masked, those it shares with the chunk before are tested again with the same result. k counts
        # from the box's left column, so depth is z_row + k dz as on every path.
        for j in range(j0, j1 + 1):
            py = (j << SUBPIXEL_BITS) + HALF
            w0 = dx0 * (py - y1) - dy0 * (px0 - x1)
            w1 = dx1 * (py - y2) - dy1 * (px0 - x2)
            w2 = dx2 * (py - y0) - dy2 * (px0 - x0)
            z = w0 * c0 + w1 * c1 + w2 * c2
            w0 += bias0
            w1 += bias1
            w2 += bias2
            ju = np.uint64(j)
            for cs in range(i0, i1 + 1, lanes8):
                start = min(cs, width - lanes8)
                k0 = start - i0
                iu = np.uint64(start)
                for di in range(lanes8):
                    k = k0 + di
                    i = iu + np.uint64(di)
                    z32 = np.float32(z + k * dz)
                    old = zbuf[ju, i]
                    oldf = fbuf[ju, i]
                    take = ((((w0 - k * s0) | (w1 - k * s1) | (w2 - k * s2) | (last - k) | k) >= 0)
                            & ((z32 > old) | (old != old)))
                    zbuf[ju, i] = z32 if take else old
                    fbuf[ju, i] = fid if take else oldf


@njit(cache=True, inline="always")
def _weights(xy, a, b, c, px, py):
    """Barycentric weights of the sample (px, py) (fixed point) in triangle (a, b, c), from the
    exact integer edge functions of the coverage test: >= 0 inside, summing to 1 (rounding)."""
    wa = (xy[c, 0] - xy[b, 0]) * (py - xy[b, 1]) - (xy[c, 1] - xy[b, 1]) * (px - xy[b, 0])
    wb = (xy[a, 0] - xy[c, 0]) * (py - xy[c, 1]) - (xy[a, 1] - xy[c, 1]) * (px - xy[c, 0])
    wc = (xy[b, 0] - xy[a, 0]) * (py - xy[a, 1]) - (xy[b, 1] - xy[a, 1]) * (px - xy[a, 0])
    # a negatively oriented face has all three <= 0: the ratios are still right
    inv = 1.0 / float(wa + wb + wc)
    return wa * inv, wb * inv, wc * inv


@njit(cache=True)
def barycentric(xy, faces, fbuf):
    """(H, W, 3) float32 barycentrics of each pixel centre in its triangle (faces' vertex order), 0 where empty."""
    height, width = fbuf.shape
    bary = np.zeros((height, width, 3), dtype=np.float32)
    for j in range(height):
        py = (j << SUBPIXEL_BITS) + HALF
        for i in range(width):
            f = fbuf[j, i]
            if f < 0:
                continue
            ba, bb, bc = _weights(xy, faces[f, 0], faces[f, 1], faces[f, 2], (i << SUBPIXEL_BITS) + HALF, py)
            bary[j, i, 0] = ba
            bary[j, i, 1] = bb
            bary[j, i, 2] = bc
    return bary


@njit(cache=True)
def interpolate_fused(xy, faces, fbuf, attributes, background, out):
    """out[j, i, :] = barycentric interpolation of attributes (V, C) over each pixel's triangle,
    barycentrics recomputed on the fly (never stored); background (C,) where empty."""
    height, width = fbuf.shape
    n_ch = attributes.shape[1]
    for j in range(height):
        py = (j << SUBPIXEL_BITS) + HALF
        for i in range(width):
            f = fbuf[j, i]
            if f < 0:
                for c in range(n_ch):
                    out[j, i, c] = background[c]
                continue
            fu = np.uint64(f)  # unsigned indices (all valid here): no negative-index wrap-around
            a = np.uint64(faces[fu, 0])
            b = np.uint64(faces[fu, 1])
            d = np.uint64(faces[fu, 2])
            ba, bb, bc = _weights(xy, a, b, d, (i << SUBPIXEL_BITS) + HALF, py)
            if n_ch == 3:  # RGB spelled out: constant trip counts compile to straight code (~12% faster)
                out[j, i, 0] = ba * attributes[a, 0] + bb * attributes[b, 0] + bc * attributes[d, 0]
                out[j, i, 1] = ba * attributes[a, 1] + bb * attributes[b, 1] + bc * attributes[d, 1]
                out[j, i, 2] = ba * attributes[a, 2] + bb * attributes[b, 2] + bc * attributes[d, 2]
                continue
            for c in range(n_ch):
                out[j, i, c] = ba * attributes[a, c] + bb * attributes[b, c] + bc * attributes[d, c]


@njit(cache=True)
def interpolate_planes(xy, faces, fbuf, attributes, background, out, coef):
    """As interpolate_fused, for images with many pixels per triangle: every triangle's attributes
    are first turned into planes over the image, value = A + gx px + gy py with (px, py) the
    fixed-point pixel centre, in one pass over the faces; each pixel then costs two multiply-adds
    per channel. Same values as the barycentric form up to float64 rounding (A is the plane
    through the first vertex moved to the origin: for pixels within the guard band its rounding
    stays far below float32 resolution). All planes up front, in face order, rather than on a
    triangle's first pixel: a per-pixel "first visit" branch mispredicts more than the planes of
    the hidden triangles cost when most of a dense mesh is visible.
    coef (>= F, >= 3 C) float64 is scratch (reused across calls)."""
    height, width = fbuf.shape
    n_ch = attributes.shape[1]
    n_cols = 3 * n_ch
    for f in range(faces.shape[0]):
        a = np.uint64(faces[f, 0])  # unsigned (validated) vertex indices: no wrap-around handling
        b = np.uint64(faces[f, 1])
        d = np.uint64(faces[f, 2])
        xa = xy[a, 0]
        ya = xy[a, 1]
        xb = xy[b, 0] - xa
        yb = xy[b, 1] - ya
        xc = xy[d, 0] - xa
        yc = xy[d, 1] - ya
        area = xb * yc - yb * xc
        inv = 1.0 / float(area) if area != 0 else 0.0  # zero-area faces cover no pixel: never read
        for c in range(n_ch):
            # value = A + (w_b (B - A) + w_c (C - A)) / area, with w_b = yc dx - xc dy and
            # w_c = xb dy - yb dx the edge functions of the edges through a, (dx, dy) = p - a
            va = attributes[a, c]
            db = attributes[b, c] - va
            dc = attributes[d, c] - va
            gx = (yc * db - yb * dc) * inv
            gy = (xb * dc - xc * db) * inv
            coef[f, 3 * c] = va - gx * xa - gy * ya
            coef[f, 3 * c + 1] = gx
            coef[f, 3 * c + 2] = gy
    for j in range(height):
        py = float((j << SUBPIXEL_BITS) + HALF)
        j_next = min(j + 1, height - 1)
        for i in range(width):
            # the plane of the pixel below is fetched one row ahead: a face's plane is first needed
            # in the top row it covers, and when neighbouring pixels hit faces far apart in memory
            # (a face order unlike the image's rows) that first read otherwise waits on memory
            # (1024², real-like face order: pixel pass 2.3 -> 1.8 ms)
            f_next = np.uint64(max(fbuf[j_next, i], 0))
            _prefetch(coef, f_next, 0)  # a plane of 3 channels spans at most two cache lines
            _prefetch(coef, f_next, n_cols - 1)
            f = fbuf[j, i]
            if f < 0:
                for c in range(n_ch):
                    out[j, i, c] = background[c]
                continue
            px = float((i << SUBPIXEL_BITS) + HALF)
            if n_ch == 3:  # RGB spelled out, as in interpolate_fused
                out[j, i, 0] = coef[f, 0] + px * coef[f, 1] + py * coef[f, 2]
                out[j, i, 1] = coef[f, 3] + px * coef[f, 4] + py * coef[f, 5]
                out[j, i, 2] = coef[f, 6] + px * coef[f, 7] + py * coef[f, 8]
                continue
            for c in range(n_ch):
                out[j, i, c] = coef[f, 3 * c] + px * coef[f, 3 * c + 1] + py * coef[f, 3 * c + 2]


@njit(cache=True)
def rasterize_into(vertices, faces, sign, cull, fbuf, zbuf, xy):
    """Rasterize one mesh into given buffers: fbuf (H,W) int32, zbuf (H,W) float32 (input z,
    NaN empty), xy (V,2) int32 for the snapped vertices."""
    snap(vertices, xy)
    fbuf[:, :] = -1
    zbuf[:, :] = np.nan
    scan(xy, vertices, sign, faces, 0, faces.shape[0], fbuf.shape[0], fbuf.shape[1], cull, fbuf, zbuf)
    if sign < 0:
        zbuf *= np.float32(-1.0)


@njit(cache=True)
def rasterize_one(vertices, faces, height, width, sign, cull):
    """Rasterize one mesh: returns (face_index (H,W) int32, depth (H,W) float32 input z / NaN,
    xy (V, 2) int32 the snapped positions)."""
    n = vertices.shape[0]
    xy = np.empty((n, 2), dtype=np.int32)
    fbuf = np.empty((height, width), dtype=np.int32)
    zbuf = np.empty((height, width), dtype=np.float32)
    rasterize_into(vertices, faces, sign, cull, fbuf, zbuf, xy)
    return fbuf, zbuf, xy


@njit(cache=True, parallel=True)
def rasterize_stack(vertices, faces, height, width, sign, cull):
    """Rasterize B poses of one mesh in parallel (one image per prange iteration).

    vertices (B, V, 3) C-contiguous, faces (F, 3) shared. Returns (face_index (B,H,W) int32,
    depth (B,H,W) float32, xy (B, V, 2) int32). Each image is written in place by the same
    kernel as ``rasterize_one`` (``vertices[k]`` etc. stay C-contiguous: no copies).
    """
    n_img, n_v = vertices.shape[0], vertices.shape[1]
    fidx = np.empty((n_img, height, width), dtype=np.int32)
    depth = np.empty((n_img, height, width), dtype=np.float32)
    xy = np.empty((n_img, n_v, 2), dtype=np.int32)
    for k in prange(n_img):
        rasterize_into(vertices[k], faces, sign, cull, fidx[k], depth[k], xy[k])
    return fidx, depth, xy


@njit(cache=True, parallel=True)
def rasterize_many(vertices, faces, v_start, f_start, f_end, height, width, sign, cull):
    """Rasterize B different meshes in parallel (one image per prange iteration).

    vertices (sum V, 3) and faces (sum F, 3) are stacked; image b uses vertices
    v_start[b]:v_start[b+1] and faces f_start[b]:f_end[b] (indices local to its vertices).
    Returns (face_index (B,H,W) int32 local to each image's faces, depth (B,H,W) float32,
    xy (sum V, 2) snapped positions).
    """
    n_img = f_start.shape[0]
    fidx = np.empty((n_img, height, width), dtype=np.int32)
    depth = np.empty((n_img, height, width), dtype=np.float32)
    xy = np.empty((vertices.shape[0], 2), dtype=np.int32)
    for k in prange(n_img):
        lo = v_start[k]
        hi = v_start[k + 1]
        # contiguous per-mesh copies: the kernels then run on plain C arrays, as in rasterize_one
        verts = np.ascontiguousarray(vertices[lo:hi])
        tris = np.ascontiguousarray(faces[f_start[k]:f_end[k]])
        xyk = np.empty((hi - lo, 2), dtype=np.int32)
        rasterize_into(verts, tris, sign, cull, fidx[k], depth[k], xyk)
        xy[lo:hi] = xyk
    return fidx, depth, xy


@njit(cache=True, parallel=True)
def render_stack(vertices, faces, attributes, background, height, width, sign, cull):
    """Rasterize and interpolate B poses of one mesh in parallel (one image per prange iteration).

    vertices (B, V, 3), faces (F, 3), attributes (A, V, C) with A = 1 (shared) or B (per image),
    background (C,). Returns (face_index (B,H,W) int32, depth (B,H,W) float32, images
    (B,H,W,C) float32), each image exactly as rasterize_one + the interpolation kernel give it.
    """
    n_img, n_v = vertices.shape[0], vertices.shape[1]
    n_att = attributes.shape[0]
    n_ch = attributes.shape[2]
    n_f = faces.shape[0]
    fidx = np.empty((n_img, height, width), dtype=np.int32)
    depth = np.empty((n_img, height, width), dtype=np.float32)
    images = np.empty((n_img, height, width, n_ch), dtype=np.float32)
    planes = height * width >= 2 * n_f
    for k in prange(n_img):
        xy = np.empty((n_v, 2), dtype=np.int32)
        rasterize_into(vertices[k], faces, sign, cull, fidx[k], depth[k], xy)
        att = attributes[min(np.int64(k), n_att - 1)]  # (prange indices are unsigned: cast first)
        if planes:
            coef = np.empty((n_f, 3 * n_ch), dtype=np.float64)
            interpolate_planes(xy, faces, fidx[k], att, background, images[k], coef)
        else:
            interpolate_fused(xy, faces, fidx[k], att, background, images[k])
    return fidx, depth, images
