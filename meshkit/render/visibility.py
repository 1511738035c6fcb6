"""Per-vertex visibility from the depth buffer (which vertices the camera sees)."""

from __future__ import annotations

import numpy as np

from ..validate import check_bool, check_float
from .rasterize import _check_image_mesh, _rasterize

__all__ = ["visible_vertices"]


def visible_vertices(vertices, faces, height: int, width: int, *, tolerance: float | None = None,
                     near_is_larger: bool = True, cull_backfaces: bool = False) -> np.ndarray:
    """Which vertices are visible: inside the image and not behind the rendered surface.

    A vertex at image position (x, y) is compared with the depth buffer at the (up to) four pixel
    centres around it (the 2 x 2 block whose centres enclose (x, y), clipped to the image): it is
    visible when at least one covered centre has depth no nearer than the vertex by more than
    ``tolerance`` (``z >= depth - tolerance``; ``z <= depth + tolerance`` when
    ``near_is_larger=False``). When none of the four is covered (a vertex on the rim of an open
    mesh), it is visible unless ``cull_backfaces`` (then nothing front-facing is there). The
    tolerance absorbs the surface's own slope between the vertex and the pixel centres; occluders
    nearer than that are missed. Vertices outside the image's pixels, [-0.5, width - 0.5) x
    [-0.5, height - 0.5) (pixel centres on integers, as in ``rasterize``), are not visible.

    Parameters
    ----------
    vertices, faces, height, width, near_is_larger, cull_backfaces : as in ``rasterize``.
    tolerance : float >= 0 or None
        In z units. None: 1 % of the mesh's z extent plus one pixel (z and pixels share units
        in an orthographic image-space mesh).

    Returns
    -------
    (V,) bool.
    """
    v, f, h, w = _check_image_mesh(vertices, faces, height, width)
    near = check_bool(near_is_larger, "near_is_larger")
    cull = check_bool(cull_backfaces, "cull_backfaces")
    if tolerance is None:
        tol = 0.01 * float(np.ptp(v[:, 2])) + 1.0
    else:
        tol = check_float(tolerance, "tolerance", minimum=0.0)
    frag = _rasterize(v, f, h, w, near, cull)
    inside = (v[:, 0] >= -0.5) & (v[:, 0] < w - 0.5) & (v[:, 1] >= -0.5) & (v[:, 1] < h - 0.5)
    idx = np.flatnonzero(inside)
    x, y, z = v[idx, 0], v[idx, 1], v[idx, 2]
    c0 = np.floor(x).astype(np.int64)  # the four pixel centres (integer points) around the vertex
    r0 = np.floor(y).astype(np.int64)
    any_covered = np.zeros(idx.size, dtype=bool)
    seen = np.zeros(idx.size, dtype=bool)
    for dr in (0, 1):
        for dc in (0, 1):
            r = np.clip(r0 + dr, 0, h - 1)
            c = np.clip(c0 + dc, 0, w - 1)
            d = frag.depth[r, c].astype(np.float64)  # NaN where empty: comparisons are False
            any_covered |= ~np.isnan(d)
            seen |= (z >= d - tol) if near else (z <= d + tol)
    vis = np.zeros(v.shape[0], dtype=bool)
    vis[idx] = seen | (~any_covered & (not cull))
    return vis
