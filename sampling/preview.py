"""A picture of a hierarchy: every level rendered side by side with meshkit's rasterizer.

Each level is shaded (Lambertian, light from the upper left front) with its wireframe-free
surface, framed by the same camera so the levels line up, and labelled with its vertex count
underneath. The camera looks down -z; a mesh wound outward whose front looks along -z (its file
puts z away from the viewer) is viewed from that side (``meshkit.render.front_view``: every level
turned 180 degrees about y); a mesh whose surface mostly faces away from the camera even so
(clockwise winding, as the real BFM triangle lists are stored) gets a warning naming the fix
(``meshkit.topology.orient_outward``) and is shaded two-sided, so it never renders dark silently.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from meshkit.render import frame_vertices, front_view, render_shaded, save_png
from meshkit.topology import warn_if_inward
from meshkit.validate import check_int

from .hierarchy import Hierarchy

__all__ = ["render_levels", "save_preview"]


def render_levels(h: Hierarchy, size: int = 256) -> np.ndarray:
    """Render every level of ``h`` side by side: (size + 24, n_levels * size, 3) uint8."""
    s = check_int(size, "size", minimum=16)
    v0, turned = front_view(h.levels[0].vertices, h.levels[0].faces)
    turn = np.array([-1.0, 1.0, -1.0]) if turned else np.ones(3)  # the same view of every level
    # the camera looks down -z: most of the surface should face +z
    two_sided = warn_if_inward(v0, h.levels[0].faces, view_direction=(0.0, 0.0, 1.0), name="hierarchy preview",
                               stacklevel=3) < 0.5
    tiles = []
    for lv in h.levels:
        # the same camera for every level: frame each level together with level 0's bounding box
        vi = frame_vertices(np.vstack([v0, lv.vertices * turn]), s, s)[len(v0):]
        tile = render_shaded(vi, lv.faces, s, s, colors=(0.85, 0.85, 0.88), light_direction=(-0.4, -0.5, 1.0),
                             per_pixel=True, background=1.0, two_sided=two_sided)
        label = np.ones((24, s, 3), np.float32)
        _draw_number(label, lv.n_vertices)
        tiles.append(np.vstack([tile, label]))
    img = np.hstack(tiles)
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def save_preview(h: Hierarchy, path, size: int = 256) -> Path:
    """Write :func:`render_levels` to a PNG (atomic)."""
    return save_png(path, render_levels(h, size))


# a tiny 3x5 bitmap font for the digits of the vertex counts (no font files needed)
_DIGITS = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111", "3": "111001111001111",
    "4": "101101111001001", "5": "111100111001111", "6": "111100111101111", "7": "111001001001001",
    "8": "111101111101111", "9": "111101111001111",
}


def _draw_number(label: np.ndarray, value: int, px: int = 3) -> None:
    text = str(value)
    width = len(text) * 4 * px
    x0 = max(0, (label.shape[1] - width) // 2)
    y0 = (label.shape[0] - 5 * px) // 2
    for k, ch in enumerate(text):
        bits = np.array([int(b) for b in _DIGITS[ch]], dtype=bool).reshape(5, 3)
        glyph = np.kron(bits, np.ones((px, px), dtype=bool))
        xs = x0 + k * 4 * px
        label[y0 : y0 + 5 * px, xs : xs + 3 * px][glyph] = 0.15
