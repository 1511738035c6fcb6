"""Numba kernels of the z-buffer rasterizer (see meshkit.render.rasterize for the conventions).

Holds: vertex snapping to fixed point, the per-triangle coverage + depth-test scan, the deferred
barycentric pass over the winning triangle of each pixel, the single-image and batched (prange)
drivers, and attribute interpolation over fragments.

Fixed point: x and y are snapped to 1/256 pixel (SUBPIXEL_BITS = 8, as GPUs do) and held in
int64, so every edge function is an exact integer: a pixel on an edge shared by two triangles sees
exactly opposite values from the two sides, and the top-left rule then gives it to exactly one.
Pixel (row j, column i) samples the point (i + 0.5, j + 0.5), i.e. (256 i + 128, 256 j + 128).
"""

import numpy as np
from numba import njit, prange

SUBPIXEL_BITS = 8
SUBPIXEL = 1 << SUBPIXEL_BITS  # 256
HALF = SUBPIXEL // 2  # the pixel centre offset, in fixed point


@njit(cache=True)
def snap(vertices, sign, xs, ys, zs):
    """Fixed-point x, y (round half to even at 1/256 px) and signed depth sign * z (near = larger)."""
    for v in range(vertices.shape[0]):
        xs[v] = np.int64(np.rint(vertices[v, 0] * SUBPIXEL))
        ys[v] = np.int64(np.rint(vertices[v, 1] * SUBPIXEL))
        zs[v] = sign * vertices[v, 2]


@njit(cache=True, inline="always")
def _oriented(xs, ys, a, b, c):
    """Twice the signed area of (a, b, c) in image axes (y down): > 0 means clockwise on screen."""
    return (xs[b] - xs[a]) * (ys[c] - ys[a]) - (ys[b] - ys[a]) * (xs[c] - xs[a])


@njit(cache=True, inline="always")
def _bias(dx, dy):
    """0 for a top or left edge (the pixel on it is drawn), -1 otherwise (it is not).

    For an edge a -> b of a positively oriented triangle the interior lies where
    E(p) = dx (py - ay) - dy (px - ax) >= 0, i.e. along the gradient (-dy, dx): a top edge is
    horizontal with the interior below (dy == 0, dx > 0), a left edge has the interior to its
    right (-dy > 0).
    """
    if dy < 0 or (dy == 0 and dx > 0):
        return 0
    return -1


@njit(cache=True)
def scan(xs, ys, zs, faces, f_start, f_end, v_off, height, width, cull, fbuf, zbuf):
    """Coverage + depth test of faces[f_start:f_end] (vertex ids offset by v_off) into fbuf/zbuf.

    fbuf (H, W) int32 must hold -1 and zbuf (H, W) float32 NaN on entry (NaN = empty: every
    comparison with it is false, so ``not z <= zbuf`` takes the first triangle). A pixel takes a
    triangle when its signed depth is strictly larger (nearer): on equal depth the lower face
    index, drawn first, stays. Depth is interpolated with the same integer edge functions as the
    coverage test. Returns nothing; the buffers are updated in place.
    """
    for f in range(f_start, f_end):
        a = faces[f, 0] + v_off
        b = faces[f, 1] + v_off
        c = faces[f, 2] + v_off
        area = _oriented(xs, ys, a, b, c)
        if area == 0:
            continue  # degenerate after snapping: covers no sample point
        if area > 0:
            if cull:
                continue  # clockwise on screen = back face (see rasterize's docstring)
        else:
            b, c = c, b  # rasterize both windings: make the orientation positive
            area = -area
        x0 = xs[a]
        y0 = ys[a]
        x1 = xs[b]
        y1 = ys[b]
        x2 = xs[c]
        y2 = ys[c]
        # bounding box in pixel indices: sample 256 i + 128 within [min, max], clipped to the image
        i0 = (min(x0, min(x1, x2)) - HALF + SUBPIXEL - 1) >> SUBPIXEL_BITS
        i1 = (max(x0, max(x1, x2)) - HALF) >> SUBPIXEL_BITS
        j0 = (min(y0, min(y1, y2)) - HALF + SUBPIXEL - 1) >> SUBPIXEL_BITS
        j1 = (max(y0, max(y1, y2)) - HALF) >> SUBPIXEL_BITS
        if i0 < 0:
            i0 = 0
        if j0 < 0:
            j0 = 0
        if i1 > width - 1:
            i1 = width - 1
        if j1 > height - 1:
            j1 = height - 1
        if i0 > i1 or j0 > j1:
            continue  # no sample point inside the (clipped) box
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
        inv = 1.0 / area
        c0 = zs[a] * inv
        c1 = zs[b] * inv
        c2 = zs[c] * inv
        px0 = (i0 << SUBPIXEL_BITS) + HALF
        for j in range(j0, j1 + 1):
            py = (j << SUBPIXEL_BITS) + HALF
            w0 = dx0 * (py - y1) - dy0 * (px0 - x1)
            w1 = dx1 * (py - y2) - dy1 * (px0 - x2)
            w2 = dx2 * (py - y0) - dy2 * (px0 - x0)
            for i in range(i0, i1 + 1):
                if ((w0 + bias0) | (w1 + bias1) | (w2 + bias2)) >= 0:
                    z = np.float32(w0 * c0 + w1 * c1 + w2 * c2)
                    if not z <= zbuf[j, i]:
                        zbuf[j, i] = z
                        fbuf[j, i] = f - f_start
                # one pixel to the right: E changes by -dy * 256 (exact integer steps)
                w0 -= dy0 << SUBPIXEL_BITS
                w1 -= dy1 << SUBPIXEL_BITS
                w2 -= dy2 << SUBPIXEL_BITS


@njit(cache=True, inline="always")
def _weights(xs, ys, a, b, c, px, py):
    """Barycentric weights of the sample (px, py) (fixed point) in triangle (a, b, c), from the
    exact integer edge functions of the coverage test: >= 0 inside, summing to 1 (rounding)."""
    wa = (xs[c] - xs[b]) * (py - ys[b]) - (ys[c] - ys[b]) * (px - xs[b])
    wb = (xs[a] - xs[c]) * (py - ys[c]) - (ys[a] - ys[c]) * (px - xs[c])
    wc = (xs[b] - xs[a]) * (py - ys[a]) - (ys[b] - ys[a]) * (px - xs[a])
    # a negatively oriented face has all three <= 0: the ratios are still right
    inv = 1.0 / float(wa + wb + wc)
    return wa * inv, wb * inv, wc * inv


@njit(cache=True)
def barycentric(xs, ys, faces, fbuf):
    """(H, W, 3) float32 barycentrics of each pixel centre in its triangle (faces' vertex order), 0 where empty."""
    height, width = fbuf.shape
    bary = np.zeros((height, width, 3), dtype=np.float32)
    for j in range(height):
        py = (j << SUBPIXEL_BITS) + HALF
        for i in range(width):
            f = fbuf[j, i]
            if f < 0:
                continue
            ba, bb, bc = _weights(xs, ys, faces[f, 0], faces[f, 1], faces[f, 2], (i << SUBPIXEL_BITS) + HALF, py)
            bary[j, i, 0] = ba
            bary[j, i, 1] = bb
            bary[j, i, 2] = bc
    return bary


@njit(cache=True)
def interpolate_fused(xs, ys, faces, fbuf, attributes, background, out):
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
            a = faces[f, 0]
            b = faces[f, 1]
            d = faces[f, 2]
            ba, bb, bc = _weights(xs, ys, a, b, d, (i << SUBPIXEL_BITS) + HALF, py)
            for c in range(n_ch):
                out[j, i, c] = ba * attributes[a, c] + bb * attributes[b, c] + bc * attributes[d, c]


@njit(cache=True)
def interpolate(fbuf, bary, faces, attributes, background, out):
    """As interpolate_fused, from stored barycentrics (H, W, 3)."""
    height, width = fbuf.shape
    n_ch = attributes.shape[1]
    for j in range(height):
        for i in range(width):
            f = fbuf[j, i]
            if f < 0:
                for c in range(n_ch):
                    out[j, i, c] = background[c]
                continue
            a = faces[f, 0]
            b = faces[f, 1]
            d = faces[f, 2]
            ba = bary[j, i, 0]
            bb = bary[j, i, 1]
            bc = bary[j, i, 2]
            for c in range(n_ch):
                out[j, i, c] = ba * attributes[a, c] + bb * attributes[b, c] + bc * attributes[d, c]


@njit(cache=True)
def rasterize_one(vertices, faces, height, width, sign, cull):
    """Rasterize one mesh: returns (face_index (H,W) int32, depth (H,W) float32 input z / NaN,
    xs (V,) int64, ys (V,) int64 the snapped positions)."""
    n = vertices.shape[0]
    xs = np.empty(n, dtype=np.int64)
    ys = np.empty(n, dtype=np.int64)
    zs = np.empty(n, dtype=np.float64)
    snap(vertices, sign, xs, ys, zs)
    fbuf = np.full((height, width), -1, dtype=np.int32)
    zbuf = np.full((height, width), np.nan, dtype=np.float32)
    scan(xs, ys, zs, faces, 0, faces.shape[0], 0, height, width, cull, fbuf, zbuf)
    if sign < 0:
        zbuf *= np.float32(-1.0)
    return fbuf, zbuf, xs, ys


@njit(cache=True, parallel=True)
def rasterize_many(vertices, faces, v_start, f_start, f_end, height, width, sign, cull):
    """Rasterize B meshes in parallel (one image per prange iteration).

    vertices (sum V, 3) and faces (sum F or F, 3) are stacked; image b uses vertices
    v_start[b]:v_start[b+1] and faces f_start[b]:f_end[b] (indices local to its vertices).
    Returns (face_index (B,H,W) int32 local to each image's faces, depth (B,H,W) float32,
    xs (sum V,), ys (sum V,) snapped positions).
    """
    n_img = f_start.shape[0]
    fidx = np.empty((n_img, height, width), dtype=np.int32)
    depth = np.empty((n_img, height, width), dtype=np.float32)
    n_all = vertices.shape[0]
    xs = np.empty(n_all, dtype=np.int64)
    ys = np.empty(n_all, dtype=np.int64)
    for k in prange(n_img):
        lo = v_start[k]
        hi = v_start[k + 1]
        zs = np.empty(hi - lo, dtype=np.float64)
        xk = xs[lo:hi]
        yk = ys[lo:hi]
        snap(vertices[lo:hi], sign, xk, yk, zs)
        fbuf = fidx[k]
        zbuf = depth[k]
        fbuf[:, :] = -1
        zbuf[:, :] = np.nan
        scan(xk, yk, zs, faces, f_start[k], f_end[k], 0, height, width, cull, fbuf, zbuf)
        if sign < 0:
            zbuf *= np.float32(-1.0)
    return fidx, depth, xs, ys
