"""The synthetic face template: pure geometry with the topology of the real BFM mesh.

``face_template`` builds an open, disc-like face surface (forehead, brows, eye sockets, nose, lips,
chin, cheeks) of exactly ``n_vertices`` vertices (53,215 by default, the trimmed BFM size; with
that default it also has the BFM's 105,840 triangles). Coordinates are in BFM units (micrometres:
the face is about 150,000 wide), x right, y up, z towards the viewer, and the winding is
counter-clockwise seen from the front, so normals point to +z. ``face_height`` is the height field
the surface samples. The synthetic Morphable Model on this template lives in ``bfm.synthetic``.
"""

from __future__ import annotations

import numpy as np

from .validate import check_int, check_vertices

__all__ = ["face_template", "face_height", "template_uv", "HALF_WIDTH", "HALF_HEIGHT", "DEPTH"]

# Half-extents of the face in BFM units (micrometres).
HALF_WIDTH = 75_000.0
HALF_HEIGHT = 95_000.0
DEPTH = 55_000.0


def face_height(x, y) -> np.ndarray:
    """Depth z of the synthetic face surface at (x, y) (BFM units), a smooth height field.

    A domed base plus Gaussian features: forehead, brow ridges, eye sockets, a nose ridge with a
    tip and nostril wings, cheeks, upper and lower lip with the mouth line between, and the chin.
    """
    u = np.asarray(x, dtype=np.float64) / HALF_WIDTH  # -1..1 across
    v = np.asarray(y, dtype=np.float64) / HALF_HEIGHT  # -1 (chin) .. 1 (forehead top)

    def g(cu, cv, su, sv, amp):
        return amp * np.exp(-(((u - cu) / su) ** 2) - ((v - cv) / sv) ** 2)

    dome = DEPTH * np.clip(1.0 - 0.55 * u**2 - 0.35 * v**2, 0.0, None) ** 0.8
    z = dome
    z = z + g(0.0, 0.75, 0.6, 0.25, 4_000)  # forehead
    z = z + g(-0.38, 0.33, 0.22, 0.06, 6_000) + g(0.38, 0.33, 0.22, 0.06, 6_000)  # brow ridges
    z = z - g(-0.36, 0.18, 0.17, 0.09, 12_000) - g(0.36, 0.18, 0.17, 0.09, 12_000)  # eye sockets
    # nose: a ridge from the bridge to the tip, growing towards the tip
    ridge_t = np.clip((0.22 - v) / 0.50, 0.0, 1.0)
    fade = np.exp(-((np.clip(-0.28 - v, 0.0, None) / 0.05) ** 2))  # smooth end below the tip
    z = z + 30_000 * ridge_t**1.3 * np.exp(-((u / (0.07 + 0.07 * ridge_t)) ** 2)) * fade
    z = z + g(0.0, -0.28, 0.09, 0.07, 9_000)  # tip
    z = z + g(-0.13, -0.32, 0.07, 0.05, 5_000) + g(0.13, -0.32, 0.07, 0.05, 5_000)  # nostril wings
    z = z + g(-0.55, -0.15, 0.25, 0.25, 5_000) + g(0.55, -0.15, 0.25, 0.25, 5_000)  # cheeks
    z = z + g(0.0, -0.49, 0.28, 0.035, 5_000)  # upper lip
    z = z + g(0.0, -0.60, 0.25, 0.04, 5_500)  # lower lip
    z = z - g(0.0, -0.545, 0.30, 0.012, 3_500)  # mouth line
    z = z + g(0.0, -0.86, 0.25, 0.10, 6_000)  # chin
    return z


def _half_width(v: np.ndarray) -> np.ndarray:
    """Half-width of the face outline at normalised height v in [-1, 1]: egg-shaped, narrower at
    the chin than at the forehead."""
    t = np.clip(1.0 - v**2, 0.0, 1.0)
    narrowing = 1.0 - 0.25 * np.clip(-v, 0.0, 1.0) ** 2
    return HALF_WIDTH * np.power(t, 0.45) * narrowing


def _row_counts(n_vertices: int, n_rows: int, n_top: int, n_bottom: int, widths: np.ndarray) -> np.ndarray:
    """Points per row proportional to the row width, summing to exactly n_vertices, with the
    first and last rows fixed (largest-remainder rounding)."""
    inner = widths[1:-1]
    budget = n_vertices - n_top - n_bottom
    raw = inner / inner.sum() * budget
    counts = np.floor(raw).astype(np.int64)
    short = budget - int(counts.sum())
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[:short]] += 1
    counts = np.maximum(counts, 2)
    excess = int(counts.sum()) - budget  # only > 0 if clamping added points
    for i in np.argsort(-counts, kind="stable")[:excess]:
        counts[i] -= 1
    return np.concatenate([[n_top], counts, [n_bottom]]).astype(np.int64)


def _zip_rows(top: np.ndarray, bottom: np.ndarray, ut: np.ndarray, ub: np.ndarray, out: list) -> None:
    """Triangulate the strip between two rows of vertex ids ordered left to right, advancing on
    whichever row's next point lies further left (u in [0, 1] along each row). Counter-clockwise
    seen from +z with y up: (top_i, bottom_j, bottom_j+1) and (top_i, bottom_j, top_i+1)."""
    i = j = 0
    m, k = len(top), len(bottom)
    while i < m - 1 or j < k - 1:
        advance_bottom = i == m - 1 or (j < k - 1 and ub[j + 1] <= ut[i + 1])
        if advance_bottom:
            out.append((top[i], bottom[j], bottom[j + 1]))
            j += 1
        else:
            out.append((top[i], bottom[j], top[i + 1]))
            i += 1


def face_template(n_vertices: int = 53_215) -> tuple[np.ndarray, np.ndarray]:
    """The synthetic face surface: an open disc-like triangle mesh of exactly ``n_vertices``.

    Vertices lie in rows from the top of the forehead down to the chin, left to right in each row;
    the strips between rows are triangulated counter-clockwise (normals towards +z). With the
    default 53,215 vertices there are 105,840 faces and 588 boundary vertices, as in the trimmed BFM.

    Parameters
    ----------
    n_vertices : int, >= 100
        Exact vertex count (e.g. 53215 for the BFM-sized mesh, ~2000 for quick tests).

    Returns
    -------
    vertices : (n_vertices, 3) float64, BFM units (micrometres)
    faces : (F, 3) int64
    """
    n = check_int(n_vertices, "n_vertices", minimum=100)
    s = np.sqrt(n / 53_215.0)
    n_rows = max(8, int(round(280 * s)))
    n_top = max(2, int(round(20 * s)))
    n_bottom = max(2, int(round(12 * s)))
    # row heights from the forehead top (v = 0.97) to the chin (v = -0.97); rows denser nowhere
    v_rows = np.linspace(0.97, -0.97, n_rows)
    widths = _half_width(v_rows)
    counts = _row_counts(n, n_rows, n_top, n_bottom, widths)

    xs, ys, us, ids = [], [], [], []
    start = 0
    for r in range(n_rows):
        c = int(counts[r])
        u = np.linspace(0.0, 1.0, c)
        w = widths[r]
        xs.append(-w + 2 * w * u)
        ys.append(np.full(c, v_rows[r] * HALF_HEIGHT))
        us.append(u)
        ids.append(np.arange(start, start + c))
        start += c
    x = np.concatenate(xs)
    y = np.concatenate(ys)
    vertices = np.stack([x, y, face_height(x, y)], axis=1)

    tris: list = []
    for r in range(n_rows - 1):
        _zip_rows(ids[r], ids[r + 1], us[r], us[r + 1], tris)
    faces = np.asarray(tris, dtype=np.int64)
    return vertices, faces


def template_uv(vertices) -> np.ndarray:
    """A UV layout of the synthetic face: its (x, y) normalised to [0, 1] (the face seen from the front).

    ``u = (x - min x) / (max x - min x)``, ``v = (y - min y) / (max y - min y)`` (v up, as in
    ``meshkit.render.uv``). The template is a height field seen from +z with every triangle facing
    +z, so this orthographic unwrap is smooth (affine in the positions) and has no overlaps: every
    triangle keeps its counter-clockwise orientation in UV and the triangles tile the footprint
    exactly once (``tests/test_uv_files.py`` checks both). It is symmetric about u = 0.5 because
    the face is symmetric about x = 0, so ``symmetric_fill`` applies. Computed from the positions
    only, so it holds for any mesh with those two properties (e.g. the model's mean face).

    Parameters
    ----------
    vertices : (V, 3) float
        The template (or a face seen from +z without folds).

    Returns
    -------
    (V, 2) float64 in [0, 1], one row per vertex, in vertex order.
    """
    v = check_vertices(vertices, "vertices")
    lo, hi = v[:, :2].min(axis=0), v[:, :2].max(axis=0)
    if np.any(hi <= lo):
        raise ValueError(f"vertices: expected a face spanning x and y, got extents {hi - lo}")
    return np.clip((v[:, :2] - lo) / (hi - lo), 0.0, 1.0)
