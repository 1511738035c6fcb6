"""Automatic framing: a world-space mesh -> image-space vertices that fill the image."""

from __future__ import annotations

import numpy as np

from ..validate import check_float, check_vertices
from .rasterize import _check_size

__all__ = ["frame_vertices"]


def frame_vertices(vertices, height: int, width: int, *, margin: float = 0.05) -> np.ndarray:
    """Orthographic camera looking down -z that frames a mesh: returns image-space vertices.

    The world frame is x right, y up, z towards the viewer (the BFM / face3d model frame). The
    mesh is scaled uniformly so that its x-y bounding box fits in the image with ``margin`` (a
    fraction of each side) left on every side, centred on the image's centre ((width - 1) / 2,
    (height - 1) / 2) in the rasterizer's integer-pixel-centre coordinates, and y is flipped to
    point down: ``x' = s (x - cx) + (width - 1) / 2``, ``y' = (height - 1) / 2 - s (y - cy)``,
    ``z' = s (z - cz)`` with (cx, cy, cz) the bounding-box centre. Larger z' stays nearer (``near_is_larger``) and
    front faces stay counter-clockwise in the image.

    Parameters
    ----------
    vertices : (V, 3) float, world coordinates.
    height, width : int, image size.
    margin : float in [0, 0.5).

    Returns
    -------
    (V, 3) float64 image-space vertices for ``rasterize`` and the render functions.
    """
    v = check_vertices(vertices, "vertices")
    h, w = _check_size(height, width)
    m = check_float(margin, "margin", minimum=0.0)
    if m >= 0.5:
        raise ValueError(f"margin: expected a fraction in [0, 0.5), got {m}")
    lo, hi = v.min(axis=0), v.max(axis=0)
    c = 0.5 * (lo + hi)
    ext = hi - lo
    sx = (1 - 2 * m) * w / ext[0] if ext[0] > 0 else np.inf
    sy = (1 - 2 * m) * h / ext[1] if ext[1] > 0 else np.inf
    s = min(sx, sy)
    if not np.isfinite(s):
        s = 1.0  # all vertices on one point: any scale frames it
    out = np.empty_like(v)
    out[:, 0] = s * (v[:, 0] - c[0]) + 0.5 * (w - 1)
    out[:, 1] = 0.5 * (h - 1) - s * (v[:, 1] - c[1])
    out[:, 2] = s * (v[:, 2] - c[2])
    return out
