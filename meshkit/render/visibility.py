"""Per-vertex visibility from the depth buffer (which vertices the camera sees)."""

from __future__ import annotations

import numpy as np

from .._validate import check_float
from .rasterize import _check_flag, _check_image_mesh, rasterize

__all__ = ["visible_vertices"]


def visible_vertices(vertices, faces, height: int, width: int, *, tolerance: float | None = None,
                     near_is_larger: bool = True, cull_backfaces: bool = False) -> np.ndarray:
    """Which vertices are visible: inside the image and not behind the rendered surface.

    A vertex at image position (x, y) is looked up in the pixel that contains it,
    (row floor(y), column floor(x)); it is visible when that pixel is covered and the vertex is no
    farther than the depth buffer there by more than ``tolerance``:
    ``z >= depth - tolerance`` (``z <= depth + tolerance`` when ``near_is_larger=False``).
    The tolerance absorbs the surface's own slope across the up-to-half-pixel offset between the
    vertex and the pixel centre; occluders nearer than that are missed.

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
    near = _check_flag(near_is_larger, "near_is_larger")
    if tolerance is None:
        tol = 0.01 * float(np.ptp(v[:, 2])) + 1.0
    else:
        tol = check_float(tolerance, "tolerance", minimum=0.0)
    frag = rasterize(v, f, h, w, near_is_larger=near, cull_backfaces=cull_backfaces)
    col = np.floor(v[:, 0]).astype(np.int64)
    row = np.floor(v[:, 1]).astype(np.int64)
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    vis = np.zeros(v.shape[0], dtype=bool)
    idx = np.flatnonzero(inside)
    d = frag.depth[row[idx], col[idx]].astype(np.float64)  # NaN where empty -> comparisons False
    z = v[idx, 2]
    vis[idx] = (z >= d - tol) if near else (z <= d + tol)
    return vis
