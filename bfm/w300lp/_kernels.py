"""Numba kernels of the 300W-LP block processing (private: ``crop`` and ``blocks`` validate first).

``crop_bilinear``: the crop's image resampling (one affine map, bilinear, black outside).
``pose_crop``: a block's meshes through pose, y flip and crop in one pass (one 3 x 3 map + offset per
sample), z shifted to start at 0.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, nogil=True, inline="always")
def _taps(t, n):  # pragma: no cover - compiled
    """The two source indices around coordinate t on an axis of n pixels (clamped to the edge: beyond it the
    edge pixel repeats) and the weight of the second."""
    ft = np.floor(t)
    a = int(ft)
    return min(max(a, 0), n - 1), min(max(a + 1, 0), n - 1), t - ft


@nb.njit(cache=True, nogil=True)
def crop_bilinear(src, inv_scale, x0, y0, out):  # pragma: no cover - compiled
    """out[j, i] = src bilinearly sampled at pixel index (x0 + i * inv_scale, y0 + j * inv_scale).

    src (H, W, C) uint8, out (S, S, C) uint8. A sample point outside [-0.5, W - 0.5] x [-0.5, H - 0.5]
    (outside every source pixel) is black; inside, neighbours beyond the edge repeat the edge pixel.
    Rounded to the nearest integer.
    """
    h, w, c = src.shape
    s_rows, s_cols = out.shape[0], out.shape[1]
    for j in range(s_rows):
        y = y0 + j * inv_scale
        if y < -0.5 or y > h - 0.5:
            for i in range(s_cols):
                for k in range(c):
                    out[j, i, k] = 0
            continue
        ya, yb, ty = _taps(y, h)
        for i in range(s_cols):
            x = x0 + i * inv_scale
            if x < -0.5 or x > w - 0.5:
                for k in range(c):
                    out[j, i, k] = 0
                continue
            xa, xb, tx = _taps(x, w)
            for k in range(c):
                top = src[ya, xa, k] * (1.0 - tx) + src[ya, xb, k] * tx
                bot = src[yb, xa, k] * (1.0 - tx) + src[yb, xb, k] * tx
                v = top * (1.0 - ty) + bot * ty + 0.5
                out[j, i, k] = min(255, int(v))


@nb.njit(cache=True, nogil=True)
def pose_crop(meshes, maps, offsets, out, z_shift, finite):  # pragma: no cover - compiled
    """out[b, v] = maps[b] @ meshes[b, v] + offsets[b] (float64 arithmetic, stored float32), then
    z_shift[b] = min over v of that z, subtracted from every z; finite[b] = all of out[b] finite.

    meshes (B, V, 3) float32, maps (B, 3, 3) float64, offsets (B, 3) float64, out (B, V, 3) float32
    (may be ``meshes`` itself: each vertex is read before it is written), z_shift (B,) float64,
    finite (B,) bool.
    """
    nb_, nv = meshes.shape[0], meshes.shape[1]
    for b in range(nb_):
        a = maps[b]
        c = offsets[b]
        zmin = np.inf
        for v in range(nv):
            x, y, z = np.float64(meshes[b, v, 0]), np.float64(meshes[b, v, 1]), np.float64(meshes[b, v, 2])
            zz = a[2, 0] * x + a[2, 1] * y + a[2, 2] * z + c[2]
            if zz < zmin:
                zmin = zz
        acc = 0.0
        for v in range(nv):
            x, y, z = np.float64(meshes[b, v, 0]), np.float64(meshes[b, v, 1]), np.float64(meshes[b, v, 2])
            ox = np.float32(a[0, 0] * x + a[0, 1] * y + a[0, 2] * z + c[0])
            oy = np.float32(a[1, 0] * x + a[1, 1] * y + a[1, 2] * z + c[1])
            oz = np.float32(a[2, 0] * x + a[2, 1] * y + a[2, 2] * z + c[2] - zmin)
            out[b, v, 0], out[b, v, 1], out[b, v, 2] = ox, oy, oz
            acc += np.float64(ox) * 0.0 + np.float64(oy) * 0.0 + np.float64(oz) * 0.0  # NaN/inf survive * 0
        z_shift[b] = zmin
        finite[b] = acc == 0.0
