"""The synthetic face template: pure geometry with the topology of the real BFM mesh.

``face_template`` builds an open face surface (forehead, brows, eye sockets, nose, lips, chin,
cheeks) of exactly ``n_vertices`` vertices (53,215 by default, the trimmed BFM size). Coordinates
are in BFM units (micrometres: the face is about 150,000 wide), x right, y up, z towards the
viewer, and the winding is counter-clockwise seen from the front, so normals point to +z.
``face_height`` is the height field the surface samples. The synthetic Morphable Model on this
template lives in ``bfm.synthetic``.

Two connectivities (``topology=``) on the same height field, frame and outline:

- ``"bfm"`` (default): the real mesh's connectivity (facts in ``../shared/REAL_FILES.md``): quads
  split along alternating (checkerboard) diagonals, so interior vertices have 4 or 8 incident
  triangles, an outer rim and a mouth opening (two boundary loops, an annulus), and triangle sizes
  that vary over the face. At 53,215 vertices it has exactly the real counts: 105,840 triangles, rim
  512 and mouth 78 vertices, and the real spread of edge lengths (5th-95th percentile ratio 3.3).
  Mirror-symmetric in x = 0 as the real mean face, with a column of vertices on the midline (where
  the midline landmarks sit): the mirror maps vertices to vertices and faces to faces, so a
  left-right flip is a vertex permutation. Speed measured on it predicts the real mesh's
  (benchmarks/README.md, "Templates").
- ``"rows"``: rows zipped into strips (6 faces per vertex, one boundary loop of 588 vertices at
  the default size: a disc), the template of meshkit 0.1.

Layout (why rings): a grid with alternating diagonals and no irregular vertex is flat, and a flat
grid of V vertices needs a rim of at least about sqrt(8 V) vertices (a diamond-shaped region is the
best case): 652 for 53,215 vertices, against the real 512. So the real mesh must have a few
interior vertices of other valence, and this template has them too, at the corners of a central
rectangle: a rectangular grid of ``a`` x ``b`` vertices in the middle of the face, then ``r``
closed rings of ``N`` vertices each (N = the centre's boundary length) out to the rim. Each of the
rectangle's corners has 3 quads (3 or 6 triangles) instead of 4. The rectangle has an odd number
of columns, the middle one on x = 0; the checkerboard diagonals are then symmetric about it. Ring spacing grows geometrically
outwards, cells staying about square, so the triangles near the rim are ~2.4x larger than in the
centre and the edge lengths spread as the real mesh's (5th-95th percentile ratio 3.3). To hit any vertex
count exactly, a few vertices are cut from the rectangle's corners, the same number from both
corners of a side (9 from each top and 8 from each bottom corner at the default size), and the
ring length may differ from the size-scaled 512 by a few vertices. The mouth is a slit of an even
number ``L`` of removed ring quads on the mouth line, centred on the midline (2 L + 2 boundary
vertices).

Vertex order: the centre rectangle row by row (top to bottom, left to right), then the rings from
the inside out, each counter-clockwise from the bottom middle. Faces: two per quad, in that order.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from .validate import check_choice, check_int, check_vertices

__all__ = ["face_template", "face_height", "template_uv", "TOPOLOGIES", "HALF_WIDTH", "HALF_HEIGHT", "DEPTH"]

TOPOLOGIES = ("bfm", "rows")

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


def _rows_template(n_vertices: int = 53_215) -> tuple[np.ndarray, np.ndarray]:
    """The ``"rows"`` template: an open disc-like triangle mesh of exactly ``n_vertices``.

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


REAL_VERTICES = 53_215
REAL_RIM = 512  # outer boundary loop of the real mesh
REAL_MOUTH = 78  # mouth opening of the real mesh
V_EDGE = 0.97  # the outline spans y in [-0.97, 0.97] * HALF_HEIGHT, as in face_template
V_MOUTH = -0.545  # the mouth line of face_height (normalised y)
ASPECT = 1.3  # preferred height / width of the central rectangle (in vertices)
# The first ring lies this many centre spacings out (cells stay within 7 % of square); tuned so
# that edge lengths spread as on the real mesh, p95 / p5 = 3.3 (exactly square cells give 3.0).
FIRST_RING = 1.07


def _corner_cut(k: int) -> tuple[int, int, int]:
    """Shape of k vertices cut from one corner: ``rows`` full rows of ``w`` vertices and one more
    row of ``rem`` (a block with one partial row: 2 convex corners and 1 or 2 concave ones)."""
    if k == 0:
        return 0, 0, 0
    w = int(np.ceil(np.sqrt(k)))
    return w, k // w, k % w


def _plan(n: int) -> tuple[int, int, int, int, list[int], int]:
    """Sizes for n vertices: ring length N, centre a (columns) x b (rows), rings r, vertices cut
    from each corner (top-left, top-right, bottom-left, bottom-right), mouth slit length L.

    n = a b - sum(cuts) + N r with N = 2 (a + b) - 4 (the centre's boundary length). Mirror
    symmetry fixes the parities: a is odd (a centre column on the midline), the cuts come in
    mirrored pairs (top-left = top-right, bottom-left = bottom-right, so their sum is even) and L is
    even (the slit is centred on the midline). So b has the parity of n, and N / 2 = a + b - 2 the
    parity of n + 1. Chooses the fewest cut vertices, N near 512 sqrt(n / 53215), and b / a near
    ASPECT.
    """
    n0 = 2 * int(round(REAL_RIM / 2 * np.sqrt(n / REAL_VERTICES)))
    best = None
    for big_n in range(max(n0 - 8, 16), n0 + 9, 2):
        s = big_n // 2 + 2  # a + b
        a = np.arange(5, s - 3, 2)  # odd
        b = s - a
        r = -(-(n - a * b) // big_n)
        k = a * b + big_n * r - n
        top, bottom = (k // 2 + 1) // 2, k // 4  # per corner: top + bottom = k / 2
        w = np.ceil(np.sqrt(np.maximum(top, 1)))
        ok = (k % 2 == 0) & (b >= a) & (b <= 2 * a) & (r >= 4) & (w <= a // 3) & (np.ceil(top / w) <= b // 3)
        cost = k + 4 * abs(big_n - n0) + 100 * np.abs(np.log(b / a / ASPECT))
        cost = np.where(ok, cost, np.inf)
        if len(cost) == 0:
            continue
        i = int(np.argmin(cost))
        if np.isfinite(cost[i]) and (best is None or cost[i] < best[0]):
            best = (float(cost[i]), big_n, int(a[i]), int(b[i]), int(r[i]), [int(top[i])] * 2 + [int(bottom[i])] * 2)
    if best is None:
        raise ValueError(f"n_vertices: no ring layout found for {n} vertices")
    _, big_n, a, b, r, cuts = best
    mouth = 2 * max(1, int(round((REAL_MOUTH / REAL_RIM * big_n / 2 - 1) / 2)))  # 2 L + 2 ~ N * 78 / 512
    return big_n, a, b, r, cuts, mouth


def _quad_triangles(A, B, C, D, a_even) -> np.ndarray:
    """Two counter-clockwise triangles per quad A B C D (A, B on the inner/upper side, B after A
    counter-clockwise along it; C, D outward/below B, A), split along the diagonal through the
    even corner: A-C where A is even, else B-D. Returns (2 Q, 3) int64."""
    t1 = np.where(a_even[:, None], np.stack([A, D, C], 1), np.stack([A, D, B], 1))
    t2 = np.where(a_even[:, None], np.stack([A, C, B], 1), np.stack([B, D, C], 1))
    return np.stack([t1, t2], 1).reshape(-1, 3).astype(np.int64)


def _outline(fractions: np.ndarray) -> np.ndarray:
    """Points (len(fractions), 2) on face_template's outline at the given fractions of its length,
    measured counter-clockwise from the bottom middle."""
    v = np.linspace(-V_EDGE, V_EDGE, 8193)
    hw = _half_width(v)
    y = v * HALF_HEIGHT
    right = np.stack([hw, y], 1)
    left = np.stack([-hw[::-1], y[::-1]], 1)
    bottom = np.array([[0.0, y[0]]])
    poly = np.concatenate([bottom, right, left, bottom])
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(poly, axis=0), axis=1))])
    t = fractions * arc[-1]
    return np.stack([np.interp(t, arc, poly[:, 0]), np.interp(t, arc, poly[:, 1])], 1)


def _grid_template(n_vertices: int = REAL_VERTICES) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic face mesh of exactly ``n_vertices`` with the real BFM mesh's connectivity.

    A grid with alternating diagonals (interior vertices in 4 or 8 triangles, but for the centre
    rectangle's 4 corners and 2 to 4 more per corner cut: 16 at the default size, 20 at most), two
    boundary loops (outer rim, mouth slit) in the real 512 : 78 proportion, on ``face_height``
    inside ``face_template``'s outline, counter-clockwise seen from +z, mirror-symmetric in x = 0. With the default 53,215
    vertices: 105,840 faces, rim 512, mouth 78, as the real mesh.

    Parameters
    ----------
    n_vertices : int, >= 200
        Exact vertex count (53,215 for the BFM-sized mesh, ~2,000 for quick tests).

    Returns
    -------
    vertices : (n_vertices, 3) float64, BFM units (micrometres)
    faces : (F, 3) int64, F = 2 n_vertices - (rim + mouth vertices)
    """
    n = check_int(n_vertices, "n_vertices", minimum=200)
    big_n, a, b, r, cuts, mouth = _plan(n)

    # centre: a x b grid minus the corner cuts, unit spacing, row 0 at the top
    keep = np.ones((b, a), dtype=bool)
    for c, k in enumerate(cuts):
        w, rows, rem = _corner_cut(k)
        block = np.zeros((rows + 1, w), dtype=bool)
        block[:rows] = True
        block[rows, :rem] = True
        block = block[::-1] if c >= 2 else block  # bottom corners: the partial row innermost
        block = block[:, ::-1] if c % 2 else block
        rs = slice(0, rows + 1) if c < 2 else slice(b - rows - 1, b)
        cs = slice(0, w) if c % 2 == 0 else slice(a - w, a)
        keep[rs, cs] &= ~block
    ids = np.full((b, a), -1, dtype=np.int64)
    ids[keep] = np.arange(int(keep.sum()))
    n_centre = int(keep.sum())
    jj, ii = np.nonzero(keep)
    unit = np.stack([ii - (a - 1) / 2.0, (b - 1) / 2.0 - jj], 1)  # row-major order of ids

    A, B, C, D = ids[:-1, :-1], ids[:-1, 1:], ids[1:, 1:], ids[1:, :-1]
    cell = (A >= 0) & (B >= 0) & (C >= 0) & (D >= 0)
    par = (np.add.outer(np.arange(b - 1), np.arange(a - 1)) % 2 == 0)[cell]
    centre_faces = _quad_triangles(A[cell], B[cell], C[cell], D[cell], par)
    even = (ii + jj) % 2 == 0  # the diagonals run through even vertices

    # the centre's boundary, counter-clockwise from the bottom middle
    directed = centre_faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    key = directed[:, 0] * n_centre + directed[:, 1]
    rev = directed[:, 1] * n_centre + directed[:, 0]
    bnd = directed[~np.isin(rev, key)]
    nxt = np.full(n_centre, -1, dtype=np.int64)
    nxt[bnd[:, 0]] = bnd[:, 1]
    loop = np.empty(len(bnd), dtype=np.int64)
    loop[0] = ids[b - 1, a // 2]
    for m in range(1, len(loop)):
        loop[m] = nxt[loop[m - 1]]
    assert len(loop) == big_n and nxt[loop[-1]] == loop[0]

    # matching points on the outline: same fraction of the length from the bottom middle
    s_unit = unit[loop]
    seg = np.linalg.norm(np.diff(s_unit, axis=0, append=s_unit[:1]), axis=1)
    frac = np.concatenate([[0.0], np.cumsum(seg[:-1])]) / seg.sum()
    rim = _outline(frac)
    # exactly mirror-symmetric (loop[N - m] mirrors loop[m]; the arc lengths agree only to rounding)
    rim_mirror = rim[(-np.arange(big_n)) % big_n] * [-1.0, 1.0]
    rim = 0.5 * (rim + rim_mirror)
    s_rim = np.linalg.norm(np.diff(rim, axis=0, append=rim[:1]), axis=1).mean()

    # centre spacing h: rings at fractions tau_k = (q^(k/r) - 1) / (q - 1) of the way to the rim,
    # q = s_rim / h (spacing grows geometrically, cells about square), the first ring FIRST_RING h out
    def first_step(h):
        q = s_rim / h
        tau1 = (q ** (1.0 / r) - 1.0) / (q - 1.0)
        return tau1 * np.linalg.norm(rim - h * s_unit, axis=1).mean() - FIRST_RING * h

    lo, hi = 1e-6 * s_rim, s_rim * (1 - 1e-9)
    for _ in range(60):  # bisection: first_step > 0 below the root, < 0 above
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if first_step(mid) > 0 else (lo, mid)
    h = 0.5 * (lo + hi)
    q = s_rim / h
    tau = (q ** (np.arange(1, r + 1) / r) - 1.0) / (q - 1.0)
    inner = h * s_unit
    rings = inner[None] + tau[:, None, None] * (rim - inner)[None]  # (r, N, 2)

    xy = np.concatenate([h * unit, rings.reshape(-1, 2)])
    vertices = np.column_stack([xy, face_height(xy[:, 0], xy[:, 1])])

    # ring quads: ring k (k = 0 is the centre's boundary) to ring k + 1, m to m + 1
    ring_ids = np.concatenate([loop[None], n_centre + np.arange(r * big_n).reshape(r, big_n)])
    m = np.arange(big_n)
    Ar, Br = ring_ids[:-1][:, m], ring_ids[:-1][:, (m + 1) % big_n]
    Cr, Dr = ring_ids[1:][:, (m + 1) % big_n], ring_ids[1:][:, m]
    a_even = (even[loop][None, :] ^ (np.arange(r)[:, None] % 2 == 1))

    # the mouth: L quads removed from the ring pair whose middle row lies on the mouth line
    bottom_y = np.concatenate([inner[:1, 1], rings[:, 0, 1]])  # rings 0..r at m = 0 (bottom middle)
    mid_y = 0.5 * (bottom_y[:-1] + bottom_y[1:])
    k_mouth = int(np.argmin(np.abs(mid_y[: r - 1] - V_MOUTH * HALF_HEIGHT)))
    m0 = -(mouth // 2)  # quads -L/2 .. L/2 - 1: vertices -L/2 .. L/2 around the midline
    open_ = np.zeros((r, big_n), dtype=bool)
    open_[k_mouth, (m0 + np.arange(mouth)) % big_n] = True
    ring_faces = _quad_triangles(Ar[~open_], Br[~open_], Cr[~open_], Dr[~open_], a_even[~open_])
    return vertices, np.concatenate([centre_faces, ring_faces])


def face_template(n_vertices: int = 53_215, *, topology: Literal["bfm", "rows"] = "bfm") -> tuple[np.ndarray, np.ndarray]:
    """The synthetic face surface: an open triangle mesh of exactly ``n_vertices`` vertices.

    Parameters
    ----------
    n_vertices : int
        Exact vertex count (53,215 for the BFM-sized mesh, ~2,000 for quick tests); at least 200
        for ``"bfm"``, 100 for ``"rows"``.
    topology : "bfm" or "rows"
        ``"bfm"`` (default): the real BFM mesh's connectivity (alternating-diagonal grid, rim and
        mouth opening; 105,840 triangles at 53,215 vertices), mirror-symmetric with a midline
        vertex column. ``"rows"``: the valence-6 strip mesh of meshkit 0.1 (one boundary loop).

    Returns
    -------
    vertices : (n_vertices, 3) float64, BFM units (micrometres)
    faces : (F, 3) int64, counter-clockwise seen from +z
    """
    kind = check_choice(topology, "topology", TOPOLOGIES)
    return _grid_template(n_vertices) if kind == "bfm" else _rows_template(n_vertices)


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
