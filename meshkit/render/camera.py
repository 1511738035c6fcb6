"""Automatic camera: which side to view a mesh from, and framing it to fill the image."""

from __future__ import annotations

import numpy as np

from ..validate import check_float, check_mesh, check_vertices
from .rasterize import _check_size

__all__ = ["frame_vertices", "front_view"]


def front_view(vertices, faces) -> tuple[np.ndarray, bool]:
    """Turn a mesh whose front looks along -z so that a camera looking down -z sees that front.

    A surface wound outward (:func:`meshkit.topology.outward_fraction` at least one half) of which
    most of the area faces -z (:func:`meshkit.topology.facing_fraction` along +z below one half) is
    a mesh seen from behind: its file puts z away from the viewer (3DDFA's ``BFM_Remove_Neck/bfm.ply``
    does). It is turned 180 degrees about the y axis (x -> -x, z -> -z: a rotation, so the winding
    stays outward and the image is not mirrored). Any other mesh is returned as is: one wound
    inward (clockwise, as the BFM triangle lists are stored) is a winding problem that turning would
    only hide (``meshkit.topology.orient_outward`` fixes it), and one that faces +z already needs no turn.

    Parameters
    ----------
    vertices : (V, 3) float, world coordinates.
    faces : (F, 3) int.

    Returns
    -------
    (vertices (V, 3) float64, turned: bool).
    """
    from ..topology import facing_fraction, outward_fraction

    v, f = check_mesh(vertices, faces, allow_repeated=True)
    if facing_fraction(v, f, (0.0, 0.0, 1.0)) >= 0.5 or outward_fraction(v, f) < 0.5:
        return v, False
    return v * np.array([-1.0, 1.0, -1.0]), True


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
