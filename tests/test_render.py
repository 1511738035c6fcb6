"""Rasterizer and shading: checked against brute-force per-pixel references, trimesh ray casting,
closed forms (fill rule on squares, bilinear lookups of linear textures, SH irradiance integrals)
and invariants (exactly-once coverage, no holes inside silhouettes, batch = single)."""

import numpy as np
import pytest
import trimesh
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from meshkit import render as R
from meshkit.render.rasterize import GUARD_BAND

# ---------------------------------------------------------------------------------------------
# references


def grid_vertices(rng, n, lo, hi, zlo=-5.0, zhi=5.0):
    """Random vertices whose x, y lie on the 1/256 pixel grid: the rasterizer's snapping is then
    the identity and float64 edge functions are exact, so the reference below is exact too."""
    xy = rng.integers(int(lo * 256), int(hi * 256), size=(n, 2)) / 256.0
    z = rng.uniform(zlo, zhi, size=(n, 1))
    return np.hstack([xy, z])


def reference_raster(v, f, h, w):
    """Brute force over all (pixel, triangle) pairs in float64 (exact for grid vertices).

    Returns (strict (N, F) bool: centre strictly inside, inclusive (N, F) bool: inside or on an
    edge, depth (N, F) float64 plane depth), N = h * w pixels in row-major order.
    """
    jj, ii = np.mgrid[0:h, 0:w]
    px = (ii.ravel())[:, None]
    py = (jj.ravel())[:, None]
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]

    def edge(p, q):  # E(x) = (q - p) x (x - p), 2-D
        return (q[:, 0] - p[:, 0]) * (py - p[:, 1]) - (q[:, 1] - p[:, 1]) * (px - p[:, 0])

    wa, wb, wc = edge(b, c), edge(c, a), edge(a, b)
    area = wa + wb + wc
    s = np.sign(area)
    strict = (s * wa > 0) & (s * wb > 0) & (s * wc > 0)
    incl = (s * wa >= 0) & (s * wb >= 0) & (s * wc >= 0) & (s != 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        depth = (wa * a[:, 2] + wb * b[:, 2] + wc * c[:, 2]) / area
    return strict, incl, depth


def random_triangles(seed, n_tri=40, h=24, w=32):
    rng = np.random.default_rng(seed)
    v = grid_vertices(rng, 3 * n_tri, -6, max(h, w) + 6)
    f = np.arange(3 * n_tri).reshape(-1, 3)
    return v, f


def ray_cast(v, f, h, w):
    """trimesh ray casting from every pixel centre along -z (camera at +z): face id and hit z."""
    mesh = trimesh.Trimesh(v, f, process=False)
    jj, ii = np.mgrid[0:h, 0:w]
    top = v[:, 2].max() + 10.0
    origins = np.stack([ii.ravel(), jj.ravel(), np.full(h * w, top)], axis=1)
    dirs = np.tile([0.0, 0.0, -1.0], (h * w, 1))
    inter = trimesh.ray.ray_triangle.RayMeshIntersector(mesh)
    tri, ray, loc = inter.intersects_id(origins, dirs, multiple_hits=True, return_locations=True)
    fid = np.full(h * w, -1)
    z = np.full(h * w, -np.inf)
    for t, r, p in zip(tri, ray, loc, strict=True):
        if p[2] > z[r]:
            z[r], fid[r] = p[2], t
    return fid.reshape(h, w), np.where(fid >= 0, z, np.nan).reshape(h, w)


def snapped(v):
    out = v.copy()
    out[:, :2] = np.round(out[:, :2] * 256) / 256
    return out


def sphere_in_image(size=48, subdivisions=3, radius=None):
    m = trimesh.creation.icosphere(subdivisions=subdivisions)
    r = radius or 0.4 * size
    v = np.asarray(m.vertices) * r + [size / 2 + 0.3, size / 2 - 0.2, 0.0]
    # world y up -> image y down, keeps front faces counter-clockwise in the image
    v[:, 1] = size - v[:, 1]
    return snapped(v), np.asarray(m.faces, dtype=np.int64), r


# ---------------------------------------------------------------------------------------------
# rasterize vs brute force


@pytest.mark.parametrize("seed", range(6))
def test_rasterize_matches_brute_force(seed):
    h, w = 24, 32
    v, f = random_triangles(seed, h=h, w=w)
    frag = R.rasterize(v, f, h, w)
    strict, incl, depth = reference_raster(v, f, h, w)
    fid = frag.face_index.ravel()
    d = frag.depth.ravel()
    rows = np.arange(h * w)
    # nothing drawn where no triangle even touches the centre; every drawn centre is in its triangle
    assert (fid[~incl.any(1)] == -1).all()
    drawn = fid >= 0
    assert incl[rows[drawn], fid[drawn]].all()
    # every strictly covered centre is drawn (no cracks), and no strictly-covering triangle is nearer
    assert drawn[strict.any(1)].all()
    best_strict = np.where(strict, depth, -np.inf).max(1)
    assert (d[drawn] >= best_strict[drawn] - 1e-4).all()
    # where no covering triangle passes through the centre on an edge, the answer is unique
    clear = (incl == strict).all(1) & strict.any(1)
    sd = np.where(strict, depth, -np.inf)
    top2 = np.sort(sd, axis=1)[:, -2:]
    with np.errstate(invalid="ignore"):
        clear &= (top2[:, 1] - top2[:, 0]) > 1e-4  # no near-ties in float32 (-inf - -inf is NaN: False)
    assert clear.sum() > 50
    ref_id = np.argmax(sd, axis=1)
    np.testing.assert_array_equal(fid[clear], ref_id[clear])
    np.testing.assert_allclose(d[clear], sd[clear, ref_id[clear]], rtol=0, atol=1e-5)
    # empty pixels: NaN depth, zero barycentrics
    assert np.isnan(d[~drawn]).all()
    assert (frag.barycentric.reshape(-1, 3)[~drawn] == 0).all()


def check_against_brute_force(v, f, h, w, min_clear=50):
    frag = R.rasterize(v, f, h, w)
    strict, incl, depth = reference_raster(v, f, h, w)
    fid = frag.face_index.ravel()
    drawn = fid >= 0
    assert (fid[~incl.any(1)] == -1).all()
    assert incl[np.arange(h * w)[drawn], fid[drawn]].all()
    assert drawn[strict.any(1)].all()
    sd = np.where(strict, depth, -np.inf)
    top2 = np.sort(sd, axis=1)[:, -2:]
    with np.errstate(invalid="ignore"):
        clear = (incl == strict).all(1) & strict.any(1) & ((top2[:, 1] - top2[:, 0]) > 1e-4)
    assert clear.sum() >= min_clear
    ref_id = np.argmax(sd, axis=1)
    np.testing.assert_array_equal(fid[clear], ref_id[clear])
    np.testing.assert_allclose(frag.depth.ravel()[clear], sd[clear, ref_id[clear]], atol=1e-5)


@pytest.mark.parametrize("seed", range(4))
def test_tiny_triangles_match_brute_force(seed):
    # sub-pixel triangles (at most one pixel centre in their box: the rasterizer's fast path),
    # many of them straddling the image border
    rng = np.random.default_rng(100 + seed)
    h, w = 12, 16
    centres = rng.integers(-2 * 256, 18 * 256, size=(400, 1, 2))
    offsets = rng.integers(-200, 200, size=(400, 3, 2))
    xy = ((centres + offsets) / 256.0).reshape(-1, 2)
    v = np.c_[xy, rng.uniform(-5, 5, len(xy))]
    f = np.arange(len(v)).reshape(-1, 3)
    check_against_brute_force(v, f, h, w, min_clear=20)


@pytest.mark.parametrize("seed", range(4))
def test_small_triangles_match_brute_force(seed):
    # triangles whose clipped box holds at most 2 x 2 or 4 x 4 pixel centres (the rasterizer's
    # fixed-block paths) and a few up to 6 x 6 (the general loop), overlapping each other and
    # straddling the image border; exact grid vertices, so the reference is exact
    rng = np.random.default_rng(200 + seed)
    h, w = 14, 18
    n = 500
    centres = rng.integers(-3 * 256, 21 * 256, size=(n, 1, 2))
    radius = rng.choice([160, 300, 520, 800], size=(n, 1, 1))
    offsets = rng.integers(-1, 2, size=(n, 3, 2)) * radius + rng.integers(-64, 64, size=(n, 3, 2))
    xy = ((centres + offsets) / 256.0).reshape(-1, 2)
    v = np.c_[xy, rng.uniform(-5, 5, len(xy))]
    f = np.arange(len(v)).reshape(-1, 3)
    check_against_brute_force(v, f, h, w, min_clear=40)


def centres_in_box(v, f, h, w):
    """(columns, rows) of pixel centres (i + 0.5, j + 0.5) inside each triangle's bounding box
    after clipping to the image: the quantity by which the rasterizer picks its scan path."""
    x, y = v[f, 0], v[f, 1]
    i0 = np.clip(np.ceil(x.min(1) - 0.5), 0, w)
    i1 = np.clip(np.floor(x.max(1) - 0.5), -1, w - 1)
    j0 = np.clip(np.ceil(y.min(1) - 0.5), 0, h)
    j1 = np.clip(np.floor(y.max(1) - 0.5), -1, h - 1)
    return np.maximum(i1 - i0 + 1, 0), np.maximum(j1 - j0 + 1, 0)


#: size classes of the scan: (name, vertex spread in 1/256 px, smallest and largest number of pixel
#: centres along the longer side of the clipped box, how far outside the image centres may lie in px)
SIZE_CLASSES = [
    ("tiny", 160, 0, 1, 2),        # at most one centre: the branch-free one-pixel path
    ("2x2", 300, 2, 2, 2),         # the unrolled 2 x 2 block
    ("4x4", 700, 3, 4, 2),         # rows of 4 vectorized lanes (or 8-lane chunks at the right border)
    ("tile", 1700, 5, 8, 3),       # rows of 8 lanes: boxes of 5 to 8 centres, most of the real mesh at 1024 px
    ("huge", 40 * 256, 9, 40, 20),  # rows of 8-lane chunks: larger than the image, clipped on several sides
]


@pytest.mark.parametrize("name,spread,lo,hi,out", SIZE_CLASSES, ids=[c[0] for c in SIZE_CLASSES])
def test_every_size_class_matches_brute_force(name, spread, lo, hi, out):
    # overlapping triangles of one scan path each, many straddling the image border; exact grid
    # vertices, so the float64 reference is exact
    rng = np.random.default_rng(300 + len(name))
    h, w = 20, 24
    n = 4000
    centres = rng.integers(-out * 256, (max(h, w) + out) * 256, size=(n, 1, 2))
    xy = centres + rng.integers(-spread, spread + 1, size=(n, 3, 2))
    v = np.c_[(xy / 256.0).reshape(-1, 2), rng.uniform(-5, 5, 3 * n)]
    f = np.arange(3 * n).reshape(-1, 3)
    cols, rows = centres_in_box(v, f, h, w)
    side = np.maximum(cols, rows)
    keep = (side >= lo) & (side <= hi) & (cols * rows > 0 if lo > 0 else True)
    f = f[keep][: {"tiny": 1000, "huge": 12}.get(name, 150)]
    assert len(f) >= 12, "the generator no longer produces this size class"
    check_against_brute_force(v, f, h, w, min_clear=20)


@pytest.mark.parametrize("w", [1, 3, 7, 8, 9, 17])
def test_large_triangles_in_narrow_images_match_brute_force(w):
    # the chunked rows at every image width around the lane counts: chunks moved left at the right
    # edge, images narrower than a chunk
    rng = np.random.default_rng(500 + w)
    h, n = 11, 60
    centres = rng.integers(-3 * 256, (w + 3) * 256, size=(n, 1, 2))
    centres[:, :, 1] = rng.integers(-3 * 256, (h + 3) * 256, size=(n, 1))
    xy = centres + rng.integers(-12 * 256, 12 * 256 + 1, size=(n, 3, 2))
    v = np.c_[(xy / 256.0).reshape(-1, 2), rng.uniform(-5, 5, 3 * n)]
    f = np.arange(3 * n).reshape(-1, 3)
    check_against_brute_force(v, f, h, w, min_clear=min(h * w // 3, 20))


def test_slivers_and_off_screen_triangles_match_brute_force():
    # long thin triangles (1/256 to 1 px wide, up to 60 px long, every direction) and triangles
    # wholly or partly off screen on every side
    rng = np.random.default_rng(400)
    h, w = 20, 24
    n = 300
    a = rng.integers(-20 * 256, 44 * 256, size=(n, 2))
    d = rng.integers(-60 * 256, 60 * 256, size=(n, 2))
    thick = rng.integers(1, 257, size=(n, 1)) * rng.choice([-1, 1], size=(n, 1))
    normal = np.c_[-d[:, 1], d[:, 0]] / np.maximum(np.hypot(d[:, 0], d[:, 1]), 1)[:, None]
    c = a + d // 2 + np.rint(normal * thick).astype(np.int64)
    xy = np.stack([a, a + d, c], axis=1)
    v = np.c_[(xy / 256.0).reshape(-1, 2), rng.uniform(-5, 5, 3 * n)]
    f = np.arange(3 * n).reshape(-1, 3)
    cols, rows = centres_in_box(v, f, h, w)
    assert (cols * rows == 0).sum() > 20 and (np.maximum(cols, rows) > 8).sum() > 50  # both kinds present
    check_against_brute_force(v, f, h, w, min_clear=20)


@pytest.mark.parametrize("seed", range(3))
def test_near_is_larger_false_is_the_mirror(seed):
    h, w = 20, 20
    v, f = random_triangles(seed, h=h, w=w)
    a = R.rasterize(v, f, h, w)
    flipped = v * [1, 1, -1]
    b = R.rasterize(flipped, f, h, w, near_is_larger=False)
    np.testing.assert_array_equal(a.face_index, b.face_index)
    np.testing.assert_array_equal(np.nan_to_num(a.depth), np.nan_to_num(-b.depth))


def assert_ids_agree_off_edges(v, f, frag, fid_ref, both):
    """Triangle ids equal, except for centres exactly on an edge shared by the two triangles
    (the fill rule picks one, the ray caster another: both contain the centre)."""
    h, w = frag.shape
    dis = both & (frag.face_index != fid_ref)
    assert dis.sum() < 0.05 * both.sum()
    _, incl, _ = reference_raster(v, f, h, w)
    jj, ii = np.nonzero(dis)
    p = jj * w + ii
    assert incl[p, frag.face_index[dis]].all() and incl[p, fid_ref[dis]].all()
    strict_any = reference_raster(v, f, h, w)[0][p]
    assert not strict_any[np.arange(len(p)), frag.face_index[dis]].any()


def test_depth_and_ids_match_trimesh_ray_casting_on_a_sphere():
    size = 48
    v, f, _ = sphere_in_image(size)
    frag = R.rasterize(v, f, size, size)
    fid_ref, z_ref = ray_cast(v, f, size, size)
    both = (frag.face_index >= 0) & (fid_ref >= 0)
    only_one = (frag.face_index >= 0) ^ (fid_ref >= 0)
    assert both.sum() > 0.4 * size * size
    # a ray through an edge or vertex may be hit or missed by trimesh's tolerance: allow a handful
    assert only_one.sum() <= 0.01 * both.sum()
    np.testing.assert_allclose(frag.depth[both], z_ref[both], atol=1e-3 * size)
    assert_ids_agree_off_edges(v, f, frag, fid_ref, both)


def test_depth_matches_ray_casting_on_the_face_template(small_face):
    v, f = small_face
    size = 64
    vi = snapped(R.frame_vertices(v, size, size))
    frag = R.rasterize(vi, f, size, size)
    fid_ref, z_ref = ray_cast(vi, f, size, size)
    both = (frag.face_index >= 0) & (fid_ref >= 0)
    assert both.sum() > 0.4 * size * size
    assert ((frag.face_index >= 0) ^ (fid_ref >= 0)).sum() <= 0.01 * both.sum()
    np.testing.assert_allclose(frag.depth[both], z_ref[both], atol=1e-4 * size)
    assert_ids_agree_off_edges(vi, f, frag, fid_ref, both)


def contains(v, tri, px, py):
    """Exact (grid vertices) inclusive / strict containment of points in given triangles."""
    a, b, c = v[tri[:, 0]], v[tri[:, 1]], v[tri[:, 2]]

    def edge(p, q):
        return (q[:, 0] - p[:, 0]) * (py - p[:, 1]) - (q[:, 1] - p[:, 1]) * (px - p[:, 0])

    w = np.stack([edge(b, c), edge(c, a), edge(a, b)], 1) * np.sign(edge(a, b) + edge(b, c) + edge(c, a))[:, None]
    return (w >= 0).all(1), (w > 0).all(1)


def test_full_size_face_matches_ray_casting():
    from meshkit.synthetic import face_template

    v, f = face_template()  # 53,215 vertices, 105,840 triangles
    size = 128
    vi = snapped(R.frame_vertices(v, size, size))
    frag = R.rasterize(vi, f, size, size)
    fid_ref, z_ref = ray_cast(vi, f, size, size)
    both = (frag.face_index >= 0) & (fid_ref >= 0)
    assert both.sum() > 0.4 * size * size
    assert ((frag.face_index >= 0) ^ (fid_ref >= 0)).sum() <= 0.005 * both.sum()
    np.testing.assert_allclose(frag.depth[both], z_ref[both], atol=1e-4)
    dis = both & (frag.face_index != fid_ref)
    assert dis.sum() <= 0.01 * both.sum()
    jj, ii = np.nonzero(dis)
    mine_incl, mine_strict = contains(vi, f[frag.face_index[dis]], ii, jj)
    theirs_incl, _ = contains(vi, f[fid_ref[dis]], ii, jj)
    assert mine_incl.all() and theirs_incl.all() and not mine_strict.any()  # only centres on shared edges


# ---------------------------------------------------------------------------------------------
# fill rule, watertightness


def coverage_count(v, f, h, w):
    """How many triangles cover each pixel, rasterizing every triangle on its own."""
    count = np.zeros((h, w), dtype=int)
    for t in f:
        count += R.rasterize(v, t[None], h, w).mask
    return count


@settings(max_examples=60, deadline=None)
@given(x0=st.integers(-800, 4000), y0=st.integers(-800, 4000), dx=st.integers(1, 3000), dy=st.integers(1, 3000),
       diagonal=st.booleans(), flip=st.booleans())
def test_square_of_two_triangles_covers_each_pixel_exactly_once(x0, y0, dx, dy, diagonal, flip):
    h, w = 12, 14
    x1, y1 = x0 + dx, y0 + dy
    v = np.array([[x0, y0, 0], [x1, y0, 0], [x1, y1, 0], [x0, y1, 0]], dtype=float) / 256.0
    f = np.array([[0, 1, 2], [0, 2, 3]] if diagonal else [[0, 1, 3], [1, 2, 3]])
    if flip:
        f = f[:, ::-1]
    count = coverage_count(v, f, h, w)
    # closed form of the top-left rule on an axis-aligned rectangle: [x0, x1) x [y0, y1)
    c = np.arange(w) * 256
    r = np.arange(h) * 256
    expected = ((r >= y0) & (r < y1))[:, None] & ((c >= x0) & (c < x1))[None, :]
    np.testing.assert_array_equal(count, expected.astype(int))
    np.testing.assert_array_equal(R.rasterize(v, f, h, w).mask, expected)



def test_pixel_r_c_is_centred_on_x_c_y_r():
    """docs/conventions.md, 'Pixels': a small triangle around the point (x, y) = (c, r) covers
    exactly pixel (r, c), through every entry point (rasterize, Rasterizer, rasterize_batch)."""
    h, w = 9, 11
    for c, r in ((0, 0), (5, 7), (10, 8), (3, 2)):
        tri = np.array([[c - 0.3, r - 0.3, 0], [c + 0.3, r - 0.3, 0], [c, r + 0.3, 0]])
        expected = np.zeros((h, w), bool)
        expected[r, c] = True
        f = np.array([[0, 1, 2]])
        for frag in (R.rasterize(tri, f, h, w), R.Rasterizer(h, w)(tri, f), R.rasterize_batch(tri[None], f, h, w)[0],
                     R.rasterize_batch([(tri, f)], None, h, w)[0]):
            np.testing.assert_array_equal(frag.mask, expected)
    # a vertex half a pixel off the image is outside it: the image spans [-0.5, w - 0.5)
    edge = np.array([[-0.5, 2.0, 0], [-0.9, 1.0, 0], [-0.9, 3.0, 0]])
    assert not R.rasterize(edge, np.array([[0, 1, 2]]), h, w).mask.any()


@pytest.mark.parametrize("nx,ny", [(1, 1), (1, 2), (2, 2), (3, 3), (2, 3), (3, 1), (4, 4), (5, 3)])
def test_small_rectangles_with_corners_on_pixel_centres_follow_the_fill_rule(nx, ny):
    # corners exactly on pixel centres: their boxes hold (nx + 1) x (ny + 1) centres (the 2 x 2,
    # 4 x 4 and general scans), and every box edge and the diagonal pass through centres, where
    # only the top-left rule decides; closed form: the centres in [x0, x1) x [y0, y1)
    h, w = 10, 11
    c = np.arange(w) * 256
    r = np.arange(h) * 256
    for ox in range(-1, w - nx + 1, 2):
        for oy in range(-1, h - ny + 1, 3):
            x0, y0 = ox * 256, oy * 256
            x1, y1 = x0 + nx * 256, y0 + ny * 256
            v = np.array([[x0, y0, 0], [x1, y0, 0], [x1, y1, 0], [x0, y1, 0]], dtype=float) / 256.0
            expected = ((r >= y0) & (r < y1))[:, None] & ((c >= x0) & (c < x1))[None, :]
            for f in ([[0, 1, 2], [0, 2, 3]], [[0, 1, 3], [1, 2, 3]], [[2, 1, 0], [3, 2, 0]], [[3, 1, 0], [3, 2, 1]]):
                count = coverage_count(v, np.array(f), h, w)
                np.testing.assert_array_equal(count, expected.astype(int))

def signed_areas(v, f):
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(3, 9))
def test_fan_of_a_convex_polygon_covers_interior_once(seed, n):
    rng = np.random.default_rng(seed)
    h = w = 16
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    rad = rng.uniform(3, 9)
    ctr = rng.uniform(4, 12, 2)
    ring = np.round((ctr + rad * np.stack([np.cos(ang), np.sin(ang)], 1)) * 256) / 256
    hub = np.round(ring.mean(0) * 256) / 256
    v = np.vstack([np.c_[ring, np.zeros(n)], [[hub[0], hub[1], 0.0]]])
    f = np.array([[n, k, (k + 1) % n] for k in range(n)])
    assume((signed_areas(v, f) > 0).all())  # a valid fan: the hub strictly inside, ring in order
    count = coverage_count(v, f, h, w).ravel()
    strict, incl, _ = reference_raster(v, f, h, w)
    assert count.max() <= 1
    assert (count[strict.any(1)] == 1).all()  # interior of each triangle
    assert (count[~incl.any(1)] == 0).all()  # outside the polygon
    # centres on a spoke (an edge shared by two triangles) or on the hub: exactly once
    on_ring_vertex = np.zeros(h * w, bool)
    for x, y in ring:
        if x % 1 == 0 and y % 1 == 0 and 0 <= x < w and 0 <= y < h:
            on_ring_vertex[int(y) * w + int(x)] = True
    shared = (incl.sum(1) >= 2) & ~on_ring_vertex
    assert (count[shared] == 1).all()


@pytest.mark.parametrize("cull", [False, True])
def test_closed_mesh_has_no_holes_inside_its_silhouette(cull):
    from scipy.spatial import Delaunay

    size = 40
    v, f, _ = sphere_in_image(size)
    mask = R.rasterize(v, f, size, size, cull_backfaces=cull).mask
    jj, ii = np.mgrid[0:size, 0:size]
    centres = np.stack([ii.ravel(), jj.ravel()], 1)
    # the silhouette of a convex mesh is the convex hull of its projected vertices
    inside = Delaunay(v[:, :2]).find_simplex(centres) >= 0
    assert inside.sum() > 500
    assert mask.ravel()[inside].all()
    assert not mask.ravel()[~inside].any()
    if cull:  # front faces alone tile the silhouette: each centre covered exactly once
        front = R.rasterize(v, f, size, size, cull_backfaces=True)
        areas = signed_areas(v, f)
        keep = f[areas < 0]  # counter-clockwise in the image
        assert np.isin(np.unique(front.face_index[front.mask]), np.flatnonzero(areas < 0)).all()
        np.testing.assert_array_equal(coverage_count(v, keep, size, size).ravel()[inside], 1)


def test_culling_keeps_only_the_front_half_of_a_sphere():
    size = 40
    v, f, _ = sphere_in_image(size)
    both = R.rasterize(v, f, size, size)
    front = R.rasterize(v, f, size, size, cull_backfaces=True)
    # with both windings drawn the nearest surface is the front: same ids, same depth
    np.testing.assert_array_equal(both.face_index, front.face_index)
    normals = trimesh.Trimesh(v * [1, -1, 1], f, process=False).face_normals  # back to y up
    assert (normals[front.face_index[front.mask], 2] > 0).all()


# ---------------------------------------------------------------------------------------------
# depth order, off-screen, degenerate


def test_overlapping_triangles_nearer_wins_in_either_order():
    big = np.array([[2, 2, 1.0], [30, 3, 1.0], [5, 28, 1.0]])
    small = np.array([[6, 6, 2.0], [20, 7, 2.0], [8, 20, 2.0]])
    v = np.vstack([big, small])
    for f in (np.array([[0, 1, 2], [3, 4, 5]]), np.array([[3, 4, 5], [0, 1, 2]])):
        frag = R.rasterize(v, f, 32, 32)
        small_id = int(np.flatnonzero(f[:, 0] == 3)[0])
        strict, _, _ = reference_raster(v, f[[small_id]], 32, 32)
        in_small = strict[:, 0].reshape(32, 32)
        assert (frag.face_index[in_small] == small_id).all()
        np.testing.assert_allclose(frag.depth[in_small], 2.0)
        # far is nearer when z grows away from the camera
        far = R.rasterize(v, f, 32, 32, near_is_larger=False)
        assert (far.face_index[in_small] == 1 - small_id).all()


def test_interpenetrating_triangles_split_along_the_intersection():
    # two triangles crossing at x = 16: the left part of A is nearer, the right part of B
    va = np.array([[0, 0, 16], [32, 0, -16], [0, 32, 16], [0, 0, -16], [32, 0, 16], [0, 32, -16]], dtype=float)
    f = np.array([[0, 1, 2], [3, 4, 5]])
    frag = R.rasterize(va, f, 32, 32)
    strict, _, depth = reference_raster(va, f, 32, 32)
    both = strict.all(1)
    ref = np.argmax(depth, 1).reshape(32, 32)
    sep = np.abs(depth[:, 0] - depth[:, 1]).reshape(32, 32) > 1e-3
    sel = both.reshape(32, 32) & sep
    assert sel.sum() > 100
    np.testing.assert_array_equal(frag.face_index[sel], ref[sel])


def test_off_screen_and_clipped_triangles():
    h, w = 16, 16
    off = np.array([[-50, -50, 0], [-20, -50, 0], [-50, -10, 0], [100, 100, 0], [140, 90, 0], [90, 130, 0]], float)
    frag = R.rasterize(off, np.array([[0, 1, 2], [3, 4, 5]]), h, w)
    assert not frag.mask.any()
    # a huge triangle (far beyond the image on all sides) covers everything, with its plane depth
    big = np.array([[-1e5, -1e5, 1.0], [3e5, -1e5, 5.0], [-1e5, 3e5, 9.0]])
    frag = R.rasterize(big, np.array([[0, 1, 2]]), h, w)
    assert frag.mask.all()
    jj, ii = np.mgrid[0:h, 0:w]
    # plane through the three corners: z = 1 + 4 (x + 1e5) / 4e5 + 8 (y + 1e5) / 4e5
    plane = 1 + 4 * (ii + 1e5) / 4e5 + 8 * (jj + 1e5) / 4e5
    np.testing.assert_allclose(frag.depth, plane, rtol=1e-6)
    # partly visible: clipped, agrees with the brute-force reference
    v = np.array([[-10.25, 4.5, 0], [9.75, -6.0, 1.0], [12.5, 30.25, 2.0]])
    frag = R.rasterize(v, np.array([[0, 1, 2]]), h, w)
    strict, incl, _ = reference_raster(v, np.array([[0, 1, 2]]), h, w)
    m = frag.mask.ravel()
    assert m[strict[:, 0]].all() and not m[~incl[:, 0]].any()


def test_degenerate_triangles_draw_nothing():
    v = np.array([[1, 1, 0], [10, 10, 0], [5.5, 5.5, 0], [3, 3, 0], [3, 12, 0], [3, 8, 0], [0, 0, 0]], float)
    f = np.array([[0, 1, 2], [3, 4, 5]])  # two collinear triples (diagonal, vertical)
    frag = R.rasterize(v, f, 16, 16)
    assert not frag.mask.any()
    # faces repeating a vertex are accepted and cover nothing, next to a normal face
    rep = R.rasterize(v, np.array([[0, 0, 4], [4, 4, 4], [6, 1, 4]]), 16, 16)
    only = R.rasterize(v, np.array([[6, 1, 4]]), 16, 16)
    np.testing.assert_array_equal(rep.mask, only.mask)
    assert (rep.face_index[rep.mask] == 2).all()
    # a sub-1/256-pixel sliver snaps to zero area too
    sliver = np.array([[1.0, 1.0, 0], [12.0, 1.0, 0], [6.0, 1.0 + 1e-4, 0]])
    assert not R.rasterize(sliver, np.array([[0, 1, 2]]), 16, 16).mask.any()


def test_equal_depth_tie_goes_to_the_lower_face_index():
    v = np.array([[1, 1, 3.0], [15, 1, 3.0], [1, 15, 3.0]])
    f = np.array([[0, 1, 2], [0, 2, 1], [1, 0, 2]])
    frag = R.rasterize(v, f, 16, 16)
    assert (frag.face_index[frag.mask] == 0).all()


# ---------------------------------------------------------------------------------------------
# barycentrics, interpolation


def test_barycentrics_sum_to_one_and_reproduce_the_pixel_centre():
    h, w = 24, 32
    v, f = random_triangles(3, h=h, w=w)
    frag = R.rasterize(v, f, h, w)
    b = frag.barycentric.astype(np.float64)
    m = frag.mask
    np.testing.assert_allclose(b.sum(2)[m], 1.0, atol=1e-6)
    assert (b[m] >= 0).all()
    # interpolating x and y gives back the pixel centre: the barycentrics are the right ones
    xy = np.einsum("nk,nkc->nc", b[m], v[f[frag.face_index[m]]][:, :, :2])
    jj, ii = np.nonzero(m)
    np.testing.assert_allclose(xy, np.stack([ii, jj], 1), atol=1e-4)


def test_interpolate_matches_numpy_reference(small_face):
    v, f = small_face
    vi = R.frame_vertices(v, 48, 40)
    frag = R.rasterize(vi, f, 48, 40)
    attr = np.random.default_rng(0).normal(size=(len(v), 5))
    out = R.interpolate(frag, f, attr, background=-7.0)
    m = frag.mask
    ref = np.einsum("nk,nkc->nc", frag.barycentric[m].astype(np.float64), attr[f[frag.face_index[m]]])
    np.testing.assert_allclose(out[m], ref, rtol=1e-5, atol=1e-5)
    assert (out[~m] == -7.0).all()
    one = R.interpolate(frag, f, attr[:, 0])
    assert one.shape == (48, 40)
    np.testing.assert_allclose(one[m], ref[:, 0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n_ch", [3, 4])  # RGB has its own spelled-out code in the kernels
@pytest.mark.parametrize("size", [24, 96])
def test_both_interpolation_kernels_match_numpy(size, n_ch):
    # few pixels per triangle -> per-pixel barycentrics; many -> per-triangle planes (scratch larger
    # than needed, reused): both against NumPy barycentrics of the snapped vertices
    from meshkit._kernels import render as render_kernels

    v, f, _ = sphere_in_image(size, subdivisions=2)
    frag = R.rasterize(v, f, size, size)
    attr = np.random.default_rng(size).normal(size=(len(v), n_ch))
    m = frag.mask
    jj, ii = np.nonzero(m)
    p = np.stack([ii * 256.0 + 128, jj * 256.0 + 128], 1)  # pixel centres in the kernels' frame (x + 0.5)
    tri = frag.snapped_xy.astype(np.float64)[f[frag.face_index[m]]]  # (N, 3, 2), exact integers

    def edge(q, r):  # (r - q) x (p - q)
        return (r[:, 0] - q[:, 0]) * (p[:, 1] - q[:, 1]) - (r[:, 1] - q[:, 1]) * (p[:, 0] - q[:, 0])

    w = np.stack([edge(tri[:, 1], tri[:, 2]), edge(tri[:, 2], tri[:, 0]), edge(tri[:, 0], tri[:, 1])], 1)
    ref = np.einsum("nk,nkc->nc", w / w.sum(1, keepdims=True), attr[f[frag.face_index[m]]])
    coef = np.full((len(f) + 3, 16), np.nan)  # larger than needed, reused
    kernels = ((render_kernels.interpolate_fused, ()), (render_kernels.interpolate_planes, (coef,)),
               (render_kernels.interpolate_planes, (coef,)))
    for kernel, extra in kernels:
        out = np.empty((size, size, n_ch), np.float32)
        kernel(frag.snapped_xy, f, frag.face_index, attr, np.full(n_ch, 9.0), out, *extra)
        np.testing.assert_allclose(out[m], ref, rtol=1e-5, atol=1e-5)
        assert (out[~m] == 9.0).all()
    np.testing.assert_allclose(R.interpolate(frag, f, attr)[m], ref, rtol=1e-5, atol=1e-5)



@pytest.mark.parametrize("shape", [(1, 160), (160, 1), (97, 131)])
def test_plane_interpolation_does_not_depend_on_the_face_order(small_face, shape):
    # the plane kernel fetches the planes of the next row's faces ahead: faces shuffled in memory
    # (neighbouring pixels on faces far apart) and images one row or one column high must give the
    # colours of the faces in mesh order, bit for bit, and match NumPy barycentrics
    from meshkit._kernels import render as render_kernels

    v, f = small_face
    h, w = shape
    vi = R.frame_vertices(v, 160, 160, margin=0.02) - [(160 - w) // 2, (160 - h) // 2, 0]  # a strip of the middle
    attr = np.random.default_rng(7).uniform(size=(len(v), 3))
    perm = np.random.default_rng(8).permutation(len(f))
    images = []
    for faces in (f, f[perm]):
        frag = R.rasterize(vi, faces, h, w)
        out = np.empty((h, w, 3), np.float32)
        render_kernels.interpolate_planes(frag.snapped_xy, faces, frag.face_index, attr, np.full(3, -1.0), out,
                                          np.empty((len(faces), 9)))
        images.append((frag, out))
    (frag, out), (frag_s, out_s) = images
    assert frag.mask.any()
    np.testing.assert_array_equal(perm[frag_s.face_index[frag_s.mask]], frag.face_index[frag.mask])
    np.testing.assert_array_equal(out_s, out)
    m = frag.mask
    jj, ii = np.nonzero(m)
    p = np.stack([ii * 256.0 + 128, jj * 256.0 + 128], 1)
    tri = frag.snapped_xy.astype(np.float64)[f[frag.face_index[m]]]
    w_ = np.stack([(c[:, 0] - b[:, 0]) * (p[:, 1] - b[:, 1]) - (c[:, 1] - b[:, 1]) * (p[:, 0] - b[:, 0])
                   for b, c in ((tri[:, 1], tri[:, 2]), (tri[:, 2], tri[:, 0]), (tri[:, 0], tri[:, 1]))], 1)
    ref = np.einsum("nk,nkc->nc", w_ / w_.sum(1, keepdims=True), attr[f[frag.face_index[m]]])
    np.testing.assert_allclose(out[m], ref, rtol=1e-5, atol=1e-5)
    assert (out[~m] == -1.0).all()


def test_plane_interpolation_of_far_and_thin_triangles_matches_numpy():
    # the plane kernel moves each triangle's plane to the image origin: check its rounding on
    # triangles with vertices far off-screen (large coordinates) and on thin slivers (steep gradients)
    from meshkit._kernels import render as render_kernels

    h = w = 16
    v = np.array([[-1e5, -1e5, 1.0], [3e5, -1e5, 5.0], [-1e5, 3e5, 9.0],  # huge, covers the image
                  [-3000.0, 1.8, 20.0], [3000.0, 2.1, 20.0], [-3000.0, 2.55, 20.0],  # long, 0.5 px thin
                  [3.6, 8.7, 30.0], [3.9, 15.2, 30.0], [4.4, 8.9, 30.0]])  # narrow, near
    f = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    frag = R.rasterize(v, f, h, w)
    assert {0, 1, 2} <= set(np.unique(frag.face_index))
    attr = np.random.default_rng(5).normal(size=(len(v), 3)) * [1, 100, 1e-3]
    m = frag.mask
    jj, ii = np.nonzero(m)
    p = np.stack([ii * 256.0 + 128, jj * 256.0 + 128], 1)  # pixel centres in the kernels' frame (x + 0.5)
    tri = frag.snapped_xy.astype(np.float64)[f[frag.face_index[m]]]

    def edge(q, r):
        return (r[:, 0] - q[:, 0]) * (p[:, 1] - q[:, 1]) - (r[:, 1] - q[:, 1]) * (p[:, 0] - q[:, 0])

    wts = np.stack([edge(tri[:, 1], tri[:, 2]), edge(tri[:, 2], tri[:, 0]), edge(tri[:, 0], tri[:, 1])], 1)
    ref = np.einsum("nk,nkc->nc", wts / wts.sum(1, keepdims=True), attr[f[frag.face_index[m]]])
    out = np.empty((h, w, 3), np.float32)
    render_kernels.interpolate_planes(frag.snapped_xy, f, frag.face_index, attr, np.zeros(3), out, np.empty((3, 9)))
    scale = np.abs(attr).max(0)  # per channel
    np.testing.assert_allclose(out[m] / scale, ref / scale, rtol=0, atol=1e-6)

def test_constant_colour_mesh_renders_that_colour(small_face):
    v, f = small_face
    vi = R.frame_vertices(v, 64, 64)
    colour = np.array([0.2, 0.55, 0.9, 1.0])
    img = R.render_colors(vi, f, np.tile(colour, (len(v), 1)), 64, 64, background=[0, 0, 0, 0])
    mask = R.rasterize(vi, f, 64, 64).mask
    np.testing.assert_allclose(img[mask], np.tile(colour, (mask.sum(), 1)), atol=1e-6)
    assert (img[~mask] == 0).all()


def test_depth_of_a_plane_is_the_plane(small_face):
    rng = np.random.default_rng(5)
    v = grid_vertices(rng, 200, 0, 32)
    v[:, 2] = 0.25 * v[:, 0] - 0.5 * v[:, 1] + 3.0
    from scipy.spatial import Delaunay

    f = Delaunay(v[:, :2]).simplices.astype(np.int64)
    d = R.render_depth(v, f, 32, 32, background=-1.0)
    frag = R.rasterize(v, f, 32, 32)
    jj, ii = np.mgrid[0:32, 0:32]
    plane = 0.25 * ii - 0.5 * jj + 3.0
    np.testing.assert_allclose(d[frag.mask], plane[frag.mask], atol=1e-4)
    assert (d[~frag.mask] == -1.0).all()
    dn = R.render_depth(v, f, 32, 32, normalize=True)
    z = plane[frag.mask]
    np.testing.assert_allclose(dn[frag.mask], (z - z.min()) / (z.max() - z.min()), atol=1e-4)
    assert (dn[~frag.mask] == 0.0).all()
    # camera-style depth (larger = farther): the same surface mirrored in z normalizes to the same image
    vm = v * [1, 1, -1]
    dm = R.render_depth(vm, f, 32, 32, normalize=True, near_is_larger=False, background=-2.0)
    np.testing.assert_allclose(dm[frag.mask], dn[frag.mask], atol=1e-6)
    assert (dm[~frag.mask] == -2.0).all()
    np.testing.assert_allclose(R.render_depth(vm, f, 32, 32, near_is_larger=False)[frag.mask], -plane[frag.mask], atol=1e-4)
    # nothing on screen: background everywhere, normalized or not
    for norm in (False, True):
        assert (R.render_depth(v + [100, 0, 0], f, 32, 32, normalize=norm, background=7.0) == 7.0).all()


def test_render_depth_is_the_fragments_depth_across_sizes_and_options(small_face):
    # render_depth rasterizes into a reused per-thread face-index buffer: sizes changing between
    # calls (larger, smaller, other aspect) and both options must give rasterize's depth exactly
    v, f = small_face
    for (h, w), near, cull in (((80, 96), True, False), ((24, 20), False, True), ((96, 80), False, False),
                               ((80, 96), True, True)):
        vi = R.frame_vertices(v, h, w, margin=0.05)
        if not near:
            vi = vi * [1, 1, -1]
        frag = R.rasterize(vi, f, h, w, near_is_larger=near, cull_backfaces=cull)
        d = R.render_depth(vi, f, h, w, near_is_larger=near, cull_backfaces=cull, background=-5.0)
        assert d.shape == (h, w) and d.dtype == np.float32
        np.testing.assert_array_equal(d[frag.mask], frag.depth[frag.mask])
        assert (d[~frag.mask] == -5.0).all() and frag.mask.any() and not frag.mask.all()


# ---------------------------------------------------------------------------------------------
# normals, PNCC, texture


def test_normal_map_of_a_sphere_is_the_radial_direction():
    size = 64
    v, f, r = sphere_in_image(size, subdivisions=4)
    n = R.render_normals(v, f, size, size)
    frag = R.rasterize(v, f, size, size)
    jj, ii = np.mgrid[0:size, 0:size]
    c = v.mean(0)
    # the sphere point under the centre, in image axes (x right, y down, z towards the viewer)
    dx = ii - c[0]
    dy = jj - c[1]
    dz = np.sqrt(np.clip(r * r - dx * dx - dy * dy, 0, None))
    radial = np.stack([dx, dy, dz], -1) / r
    inner = frag.mask & (dx * dx + dy * dy < (0.8 * r) ** 2)
    np.testing.assert_allclose(np.linalg.norm(n[frag.mask], axis=1), 1.0, atol=1e-5)
    assert np.abs(n[inner] - radial[inner]).max() < 0.03
    assert (n[~frag.mask] == 0).all()
    # the same geometry in camera axes with z away from the viewer gives the same map
    n2 = R.render_normals(v * [1, 1, -1], f, size, size, near_is_larger=False)
    np.testing.assert_allclose(n2, n, atol=1e-5)


def test_pncc_code_and_render(small_face):
    v, f = small_face
    code = R.pncc_code(v)
    lo, hi = v.min(0), v.max(0)
    np.testing.assert_allclose(code, (v - lo) / (hi - lo))
    vi = R.frame_vertices(v, 48, 48)
    img = R.render_pncc(vi, f, 48, 48, reference=v)
    frag = R.rasterize(vi, f, 48, 48)
    m = frag.mask
    assert img[m].min() >= 0 and img[m].max() <= 1
    # PNCC is the (normalized) model coordinate of the surface point: x grows to the right,
    # y (up in the model) grows upwards in the image, matching the pixel position
    jj, ii = np.nonzero(m)
    assert np.corrcoef(img[m][:, 0], ii)[0, 1] > 0.99
    assert np.corrcoef(img[m][:, 1], -jj)[0, 1] > 0.99


def test_texture_bilinear_lookup_of_a_linear_texture_is_exact():
    rng = np.random.default_rng(2)
    v = grid_vertices(rng, 150, 0, 32)
    from scipy.spatial import Delaunay

    f = Delaunay(v[:, :2]).simplices.astype(np.int64)
    ht, wt = 20, 30
    rows, cols = np.mgrid[0:ht, 0:wt]
    tex = np.stack([cols / (wt - 1), rows / (ht - 1), np.full((ht, wt), 0.5)], -1)  # linear in texel index
    # u, v kept inside the texel-centre range so that no clamping happens
    uv = np.stack([(0.5 + (wt - 1) * v[:, 0] / 32) / wt, 1 - (0.5 + (ht - 1) * v[:, 1] / 32) / ht], 1)
    img = R.render_texture(v, f, uv, tex, 32, 32, background=[1, 1, 1])
    frag = R.rasterize(v, f, 32, 32)
    jj, ii = np.mgrid[0:32, 0:32]
    expect = np.stack([ii / 32, jj / 32, np.full((32, 32), 0.5)], -1)
    m = frag.mask
    np.testing.assert_allclose(img[m], expect[m], atol=1e-5)
    assert (img[~m] == 1).all()
    # uint8 texture is scaled to [0, 1]; a grey texture gives an (H, W) image
    g = R.render_texture(v, f, uv, np.full((4, 4), 255, np.uint8), 32, 32)
    assert g.shape == (32, 32) and np.allclose(g[m], 1.0)


# ---------------------------------------------------------------------------------------------
# lighting


def sphere_quadrature(n=200_000, seed=0):
    """Quasi-uniform directions (Fibonacci sphere) with equal weights 4 pi / n."""
    k = np.arange(n) + 0.5
    z = 1 - 2 * k / n
    phi = np.pi * (1 + 5**0.5) * k
    r = np.sqrt(1 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], 1), 4 * np.pi / n


def test_sh_basis_is_orthonormal():
    d, wq = sphere_quadrature()
    y = R.sh_basis(d)
    np.testing.assert_allclose(y.T @ y * wq, np.eye(9), atol=1e-3)


def test_sh_irradiance_of_a_linear_sky_matches_the_closed_form():
    # environment L(w) = 1 + 0.5 w_z - 0.25 w_x: band-limited, so SH irradiance is exact;
    # integral of max(0, n.w) = pi, integral of w max(0, n.w) = 2 pi / 3 n
    d, wq = sphere_quadrature()
    radiance = 1 + 0.5 * d[:, 2] - 0.25 * d[:, 0]
    coeffs = R.sh_basis(d).T @ radiance * wq
    rng = np.random.default_rng(0)
    n = rng.normal(size=(50, 3))
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    e = R.sh_irradiance(n, coeffs)
    np.testing.assert_allclose(e, np.pi + 2 * np.pi / 3 * (0.5 * n[:, 2] - 0.25 * n[:, 0]), atol=2e-3)
    # and by direct quadrature of the clamped cosine for one normal
    e_direct = (radiance * np.maximum(0, d @ n[0])).sum() * wq
    assert abs(e[0] - e_direct) < 2e-3
    # white sky of radiance 1/pi returns the albedo
    white = np.zeros(9)
    white[0] = 2 / np.sqrt(np.pi)
    np.testing.assert_allclose(R.sh_lighting(n, [0.3, 0.6, 0.9], white), np.tile([0.3, 0.6, 0.9], (50, 1)), atol=1e-6)


def test_lambertian_closed_form():
    n = np.array([[0, 0, 1.0], [1, 0, 0], [0, 0, -1], [0, 0.6, 0.8]])
    out = R.lambertian(n, [1.0, 0.5], (0, 0, 2), ambient=0.2, diffuse=0.8)
    cos = np.array([1.0, 0.0, 0.0, 0.8])
    np.testing.assert_allclose(out, np.outer(0.2 + 0.8 * cos, [1.0, 0.5]), atol=1e-6)



def _tilted_plane(normal, size=32):
    """A grid filling most of a size x size image, on the plane through its centre with the given
    (image-axes) normal, wound so that its outward normal is ``normal`` (front faces CCW in the image)."""
    from tests._helpers import grid_mesh

    v, f = grid_mesh(9, 9)
    v = v * (size - 8) / 8 + 4.0  # x, y in [4, size - 4]
    n = np.asarray(normal, float) / np.linalg.norm(normal)
    c = (size - 1) / 2
    v[:, 2] = -(n[0] * (v[:, 0] - c) + n[1] * (v[:, 1] - c)) / n[2]
    # grid_mesh is CCW seen from +z in x right, y up; in the image (y down) that is clockwise, the
    # winding of a back face: reverse it when the normal faces the viewer
    return v, (f[:, ::-1] if n[2] > 0 else f).copy(), n


@pytest.mark.parametrize("per_pixel", [False, True])
def test_render_shaded_closed_form_on_planes(per_pixel):
    """A plane shades uniformly to colors * (ambient + diffuse * max(0, n . l)); two_sided uses |n . l|
    for a light on the view axis; uncovered pixels take the background image."""
    size, light = 32, np.array([0.4, -0.5, 1.0])
    bg = np.random.default_rng(0).uniform(0, 1, (size, size, 3))
    for normal in ([0.3, -0.2, 1.0], [-0.5, 0.4, 1.0], [0.0, 0.0, 1.0]):
        v, f, n = _tilted_plane(normal, size)
        covered = R.rasterize(v, f, size, size).mask
        assert covered.sum() > 300
        img = R.render_shaded(v, f, size, size, colors=(1.0, 0.5, 0.25), light_direction=light, ambient=0.2,
                              diffuse=0.8, per_pixel=per_pixel, background=bg)
        cos = max(0.0, n @ light / np.linalg.norm(light))
        np.testing.assert_allclose(img[covered], np.broadcast_to((0.2 + 0.8 * cos) * np.array([1.0, 0.5, 0.25]),
                                                                 (covered.sum(), 3)), atol=1e-5)
        np.testing.assert_allclose(img[~covered], bg[~covered], atol=1e-6)
        # the same plane seen from behind (winding reversed): one-sided gets the ambient term only,
        # two-sided lights it like the front
        back = f[:, ::-1].copy()
        one = R.render_shaded(v, back, size, size, ambient=0.3, diffuse=0.7, per_pixel=per_pixel)
        two = R.render_shaded(v, back, size, size, ambient=0.3, diffuse=0.7, two_sided=True, per_pixel=per_pixel)
        np.testing.assert_allclose(one[covered], 0.85 * 0.3, atol=1e-5)
        np.testing.assert_allclose(two[covered], 0.85 * (0.3 + 0.7 * n[2]), atol=1e-5)


def test_render_shaded_per_vertex_colours_and_bad_input():
    v, f, n = _tilted_plane([0.0, 0.0, 1.0])
    cols = np.random.default_rng(1).uniform(0, 1, (len(v), 3))
    img = R.render_shaded(v, f, 32, 32, colors=cols, ambient=0.25, diffuse=0.5)
    # facing the light: a factor 0.75 on the interpolated colours
    np.testing.assert_allclose(img, 0.75 * R.render_colors(v, f, cols, 32, 32), atol=1e-5)
    with pytest.raises(ValueError, match="colors"):
        R.render_shaded(v, f, 32, 32, colors=np.ones((3, 3)))
    with pytest.raises(ValueError, match="background"):
        R.render_shaded(v, f, 32, 32, background=np.ones((5, 5, 3)))


# ---------------------------------------------------------------------------------------------
# visibility, batches, camera, images


def test_visible_vertices_of_a_sphere_and_an_occluder():
    size = 64
    v, f, r = sphere_in_image(size)
    vis = R.visible_vertices(v, f, size, size)
    nz = (v[:, 2] - v[:, 2].mean()) / r
    assert vis[nz > 0.2].all()
    assert not vis[nz < -0.2].any()
    # a square in front of the left half hides those front vertices
    sq = np.array([[0, 0, 2 * r], [size / 2 - 4, 0, 2 * r], [size / 2 - 4, size, 2 * r], [0, size, 2 * r]])
    v2 = np.vstack([v, sq])
    f2 = np.vstack([f, [[len(v), len(v) + 1, len(v) + 2], [len(v), len(v) + 2, len(v) + 3]]])
    vis2 = R.visible_vertices(v2, f2, size, size)[: len(v)]
    hidden = v[:, 0] < size / 2 - 5
    assert not vis2[hidden].any()
    assert vis2[(nz > 0.2) & (v[:, 0] > size / 2 - 3)].all()
    # off-screen vertices are never visible
    shifted = v + [size * 0.6, 0, 0]
    vis3 = R.visible_vertices(shifted, f, size, size)
    assert not vis3[shifted[:, 0] >= size].any()


def test_visible_vertices_agree_with_ray_casting(small_face):
    v, f = small_face
    size = 96
    vi = R.frame_vertices(v, size, size)
    vis = R.visible_vertices(vi, f, size, size)
    mesh = trimesh.Trimesh(vi, f, process=False)
    # occluded = a ray from just above the vertex towards the viewer hits the surface
    origins = vi + [0, 0, 0.5]
    hit = trimesh.ray.ray_triangle.RayMeshIntersector(mesh).intersects_any(origins, np.tile([0, 0, 1.0], (len(vi), 1)))
    assert (vis == ~hit).mean() > 0.97


def test_batch_equals_single(small_face):
    v, f = small_face
    rng = np.random.default_rng(1)
    batch = np.stack([R.frame_vertices(v + rng.normal(scale=2000, size=v.shape), 40, 48) for _ in range(5)])
    out = R.rasterize_batch(batch, f, 40, 48)
    assert len(out) == 5
    for k in range(5):
        one = R.rasterize(batch[k], f, 40, 48)
        np.testing.assert_array_equal(out[k].face_index, one.face_index)
        np.testing.assert_array_equal(out[k].depth, one.depth)
        np.testing.assert_array_equal(out[k].barycentric, one.barycentric)
    # a list of different meshes (each with its own faces)
    s, sf, _ = sphere_in_image(40)
    meshes = [(batch[0], f), (s, sf), trimesh.Trimesh(batch[1], f, process=False)]
    out = R.rasterize_batch(meshes, None, 40, 48, cull_backfaces=True)
    for (mv, mf), o in zip([(batch[0], f), (s, sf), (batch[1], f)], out, strict=True):
        one = R.rasterize(mv, mf, 40, 48, cull_backfaces=True)
        np.testing.assert_array_equal(o.face_index, one.face_index)
        np.testing.assert_array_equal(o.depth, one.depth)
        col = rng.random((len(mv), 3))
        np.testing.assert_array_equal(R.interpolate(o, mf, col), R.interpolate(one, mf, col))


@pytest.mark.parametrize("size", [32, 200])  # per-pixel and per-triangle-plane interpolation
def test_render_colors_batch_equals_single_renders(small_face, size):
    v, f = small_face
    rng = np.random.default_rng(3)
    batch = np.stack([R.frame_vertices(v @ np.linalg.qr(rng.normal(size=(3, 3)))[0] * 0.2 + v * 0.8, size, size)
                      for _ in range(3)])
    shared = rng.random((len(v), 2))
    per_image = rng.random((3, len(v), 2))
    for colors in (shared, per_image):
        out = R.render_colors_batch(batch, f, colors, size, size, background=[0.5, -1], cull_backfaces=True)
        assert out.images.shape == (3, size, size, 2)
        for k in range(3):
            col = colors if colors.ndim == 2 else colors[k]
            one = R.rasterize(batch[k], f, size, size, cull_backfaces=True)
            np.testing.assert_array_equal(out.face_index[k], one.face_index)
            np.testing.assert_array_equal(out.depth[k], one.depth)
            np.testing.assert_allclose(out.images[k], R.render_colors(batch[k], f, col, size, size, background=[0.5, -1],
                                                                      cull_backfaces=True), rtol=1e-6, atol=1e-6)
            np.testing.assert_array_equal(out.mask[k], one.mask)
    with pytest.raises(ValueError, match="colors: expected"):
        R.render_colors_batch(batch, f, per_image[:2], size, size)
    with pytest.raises(ValueError, match=r"vertices: expected shape \(B, V, 3\)"):
        R.render_colors_batch(batch[0], f, shared, size, size)


def test_rasterizer_reuses_buffers_and_matches_rasterize(small_face):
    v, f = small_face
    r = R.Rasterizer(40, 56, cull_backfaces=True)
    out = np.empty((40, 56, 3), np.float32)
    col = np.random.default_rng(0).random((len(v), 3))
    first = None
    for k, scale in enumerate((1.0, 0.7, 0.4)):
        vi = R.frame_vertices(v, 40, 56) * [scale, scale, 1]
        frag = r(vi, f)
        one = R.rasterize(vi, f, 40, 56, cull_backfaces=True)
        np.testing.assert_array_equal(frag.face_index, one.face_index)
        np.testing.assert_array_equal(frag.depth, one.depth)
        img = R.interpolate(frag, f, col, out=out)
        assert img is out
        np.testing.assert_array_equal(img, R.interpolate(one, f, col))
        if k == 0:
            first = frag
    assert first._face_index is frag.face_index  # the same buffer, overwritten by each frame
    with pytest.raises(ValueError, match="fragments: expected fragments of the current frame, got frame 1"):
        first.face_index  # noqa: B018 - reading a stale frame raises
    with pytest.raises(ValueError, match=r"out: expected shape \(40, 56, 3\)"):
        R.interpolate(frag, f, col, out=np.empty((40, 56, 4), np.float32))
    with pytest.raises(TypeError, match="out: expected a C-contiguous float32"):
        R.interpolate(frag, f, col, out=np.empty((40, 56, 3)))
    # a bigger mesh after a smaller one grows the scratch
    s, sf, _ = sphere_in_image(40, subdivisions=4)
    np.testing.assert_array_equal(r(s, sf).face_index, R.rasterize(s, sf, 40, 56, cull_backfaces=True).face_index)


def test_frame_vertices_fits_and_flips(small_face):
    v, _ = small_face
    out = R.frame_vertices(v, 100, 200, margin=0.1)
    lo, hi = out.min(0), out.max(0)
    # the image spans [-0.5, w - 0.5) x [-0.5, h - 0.5) (pixel centres on integers): 10 % margins
    assert lo[0] >= 19.5 - 1e-9 and hi[0] <= 179.5 + 1e-9 and lo[1] >= 9.5 - 1e-9 and hi[1] <= 89.5 + 1e-9
    np.testing.assert_allclose([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2], [99.5, 49.5])  # centred
    assert np.isclose(hi[1] - lo[1], 80) or np.isclose(hi[0] - lo[0], 160)  # the binding side is filled
    s = (hi[1] - lo[1]) / np.ptp(v[:, 1])
    np.testing.assert_allclose(np.ptp(out, axis=0), s * np.ptp(v, axis=0))  # uniform scale
    top = np.argmax(v[:, 1])
    assert np.isclose(out[top, 1], lo[1])  # world top -> image top (y down)


def test_png_round_trip_and_overlay(tmp_path):
    from PIL import Image

    img = np.linspace(0, 1, 4 * 5 * 3).reshape(4, 5, 3)
    p = R.save_png(tmp_path / "a.png", img)
    back = np.asarray(Image.open(p))
    np.testing.assert_array_equal(back, np.rint(img * 255).astype(np.uint8))
    R.save_png(tmp_path / "g.png", img[..., 0])
    assert np.asarray(Image.open(tmp_path / "g.png")).shape == (4, 5)
    base = np.full((4, 5, 3), 200, np.uint8)
    ren = np.zeros((4, 5, 3))
    mask = np.zeros((4, 5), bool)
    mask[1:3, 2:] = True
    out = R.overlay(base, ren, mask, alpha=0.25)
    assert out.dtype == np.uint8
    assert (out[~mask] == 200).all() and (out[mask] == 150).all()
    outf = R.overlay(base / 255.0, ren + 1.0, mask, alpha=0.5)
    np.testing.assert_allclose(outf[mask], 0.5 * 200 / 255 + 0.5)


# ---------------------------------------------------------------------------------------------
# bad input


def test_bad_input_errors(small_face):
    v, f = small_face
    vi = R.frame_vertices(v, 16, 16)
    with pytest.raises(ValueError, match=r"vertices: expected shape \(V, 3\)"):
        R.rasterize(vi[:, :2], f, 16, 16)
    with pytest.raises(ValueError, match=r"faces: expected shape \(F, 3\)"):
        R.rasterize(vi, np.c_[f, f[:, :1]], 16, 16)
    with pytest.raises(TypeError, match="faces"):
        R.rasterize(vi, f.astype(float), 16, 16)
    bad = vi.copy()
    bad[7, 1] = np.nan
    with pytest.raises(ValueError, match="vertices: expected finite"):
        R.rasterize(bad, f, 16, 16)
    with pytest.raises(ValueError, match="height: expected an integer >= 1, got 0"):
        R.rasterize(vi, f, 0, 16)
    with pytest.raises(ValueError, match="width"):
        R.render_depth(vi, f, 16, 0)
    with pytest.raises(TypeError, match="height"):
        R.rasterize(vi, f, 16.0, 16)
    with pytest.raises(ValueError, match="project the mesh"):
        R.rasterize(vi * [1e6, 1, 1], f, 16, 16)
    assert GUARD_BAND > 1e6
    with pytest.raises(TypeError, match="near_is_larger"):
        R.rasterize(vi, f, 16, 16, near_is_larger="yes")
    with pytest.raises(ValueError, match="faces: expected indices in"):
        R.rasterize(vi, f + len(v), 16, 16)
    frag = R.rasterize(vi, f, 16, 16)
    with pytest.raises(ValueError, match="attributes: expected one row per vertex"):
        R.interpolate(frag, f, np.ones((len(v) - 1, 3)))
    with pytest.raises(ValueError, match="faces: expected the"):
        R.interpolate(frag, f[:-1], np.ones((len(v), 3)))
    with pytest.raises(TypeError, match="fragments"):
        R.interpolate(frag.face_index, f, np.ones((len(v), 3)))
    with pytest.raises(ValueError, match="colors"):
        R.render_colors(vi, f, np.ones((3, 3)), 16, 16)
    with pytest.raises(ValueError, match="background"):
        R.render_colors(vi, f, np.ones((len(v), 3)), 16, 16, background=[1, 2])
    with pytest.raises(ValueError, match="uv"):
        R.render_texture(vi, f, np.ones((len(v), 3)), np.ones((4, 4, 3)), 16, 16)
    with pytest.raises(ValueError, match="texture"):
        R.render_texture(vi, f, np.ones((len(v), 2)), np.ones(4), 16, 16)
    with pytest.raises(ValueError, match="reference"):
        R.render_pncc(vi, f, 16, 16, reference=v[:10])
    with pytest.raises(ValueError, match="coefficients"):
        R.sh_lighting(np.ones((4, 3)), np.ones(3), np.ones(8))
    with pytest.raises(ValueError, match="light_direction"):
        R.lambertian(np.ones((4, 3)), np.ones(3), (0, 0, 0))
    with pytest.raises(ValueError, match="tolerance"):
        R.visible_vertices(vi, f, 16, 16, tolerance=-1.0)
    with pytest.raises(ValueError, match="margin"):
        R.frame_vertices(v, 16, 16, margin=0.5)
    with pytest.raises(ValueError, match="mask"):
        R.overlay(np.zeros((4, 4, 3)), np.zeros((4, 4, 3)), np.zeros((3, 4), bool))
    with pytest.raises(ValueError, match="alpha"):
        R.overlay(np.zeros((4, 4, 3)), np.zeros((4, 4, 3)), np.zeros((4, 4), bool), alpha=2)
    with pytest.raises(ValueError, match="image: expected integer values"):
        R.to_uint8(np.full((2, 2), 300))
    with pytest.raises(ValueError, match=r"vertices: expected shape \(B, V, 3\)"):
        R.rasterize_batch(np.zeros((2, 5, 2)), f, 16, 16)
    with pytest.raises(ValueError, match="faces: expected an"):
        R.rasterize_batch(np.zeros((2, 5, 3)), None, 16, 16)
    with pytest.raises(ValueError, match="at least one mesh"):
        R.rasterize_batch([], None, 16, 16)
    with pytest.raises(ValueError, match=r"vertices\[1\]"):
        R.rasterize_batch([(vi, f), (bad, f)], None, 16, 16)


# ---------------------------------------------------------------------------------------------
# command line


@pytest.mark.parametrize("mode", ["depth", "colour", "normals", "pncc"])
def test_cli_render_writes_the_png_of_the_framed_mesh(tmp_path, small_face, mode, capsys):
    from PIL import Image

    from meshkit.cli import main
    from meshkit.io import write_mesh

    v, f = small_face
    p = write_mesh(tmp_path / "face.ply", v, f)
    out = tmp_path / f"{mode}.png"
    assert main(["render", str(p), "--mode", mode, "--size", "64", "--out", str(out)]) == 0
    assert "render" in capsys.readouterr().out
    img = np.asarray(Image.open(out))
    assert img.shape[:2] == (64, 64)
    mask = R.rasterize(R.frame_vertices(v, 64, 64), f, 64, 64).mask
    lit = img.reshape(64, 64, -1).max(axis=2) > 0
    # drawn exactly where the framed mesh covers (a depth of exactly the farthest point is 0)
    assert (lit <= mask).all() and lit[mask].mean() > 0.99
    if mode == "depth":  # near = bright: the nose tip (largest z) is the brightest pixel
        tip = R.frame_vertices(v, 64, 64)[np.argmax(v[:, 2])]
        j, i = np.unravel_index(np.argmax(img), img.shape)
        assert abs(i - tip[0]) < 3 and abs(j - tip[1]) < 3


@pytest.mark.parametrize("mode", ["depth", "colour", "normals"])
def test_cli_render_views_an_outward_mesh_facing_minus_z_from_its_front(tmp_path, small_face, mode, capsys):
    """A file whose z points away from the viewer (3DDFA's BFM_Remove_Neck/bfm.ply: wound outward, its
    front looking along -z) renders as the same mesh facing +z would, with a note, not the
    'clockwise winding?' warning (re-winding would turn it inside out)."""
    from PIL import Image

    from meshkit.cli import main
    from meshkit.io import write_mesh

    v, f = small_face
    images = {}
    for name, w in (("front", v), ("back", v * np.array([-1.0, 1.0, -1.0]))):
        p = write_mesh(tmp_path / f"{name}.ply", w, f)
        out = tmp_path / f"{name}.png"
        assert main(["render", str(p), "--mode", mode, "--size", "64", "--out", str(out)]) == 0
        images[name] = np.asarray(Image.open(out))
        err = capsys.readouterr().err
        assert ("turned 180 degrees about y" in err) == (name == "back") and "clockwise" not in err, err
    np.testing.assert_array_equal(images["back"], images["front"])


def test_front_view_turns_only_an_outward_surface_facing_away():
    from meshkit import topology
    from meshkit.synthetic import face_template

    v, f = face_template(2000)
    turn = np.array([-1.0, 1.0, -1.0])
    assert topology.outward_fraction(v, f) > 0.8 and topology.facing_fraction(v, f, (0, 0, 1)) > 0.5
    same, turned = R.front_view(v, f)
    assert not turned and np.array_equal(same, v)
    back, turned = R.front_view(v * turn, f)
    assert turned and np.array_equal(back, v)
    # wound inward (clockwise, as the BFM triangle lists are stored): a winding problem, never turned
    _, turned = R.front_view(v, f[:, ::-1])
    assert not turned
    _, turned = R.front_view(v * turn, f[:, ::-1])
    assert not turned
    with pytest.warns(UserWarning, match="wound outward: its front looks the other way"):
        topology.warn_if_inward(v * turn, f, view_direction=(0, 0, 1))
    with pytest.warns(UserWarning, match="clockwise winding"):
        topology.warn_if_inward(v, f[:, ::-1], view_direction=(0, 0, 1))


def test_cli_render_bad_input_is_one_line_error(tmp_path, small_face, capsys):
    from meshkit.cli import main
    from meshkit.io import write_mesh

    p = write_mesh(tmp_path / "face.ply", *small_face)
    assert main(["render", str(p), "--size", "0", "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "--size: expected an integer >= 1, got 0" in err and "Traceback" not in err


def test_cli_render_uses_vertex_colours_when_the_file_has_them(tmp_path, small_face):
    from PIL import Image

    from meshkit.cli import main
    from meshkit.io import write_mesh

    v, f = small_face
    rgba = np.tile(np.array([[30, 200, 90, 255]], np.uint8), (len(v), 1))
    p = write_mesh(tmp_path / "face.ply", v, f, colors=rgba)
    assert main(["render", str(p), "--mode", "colour", "--size", "48", "--out", str(tmp_path / "c.png")]) == 0
    img = np.asarray(Image.open(tmp_path / "c.png"))
    mask = R.rasterize(R.frame_vertices(v, 48, 48), f, 48, 48).mask
    assert (img[mask] == [30, 200, 90]).all() and (img[~mask] == 0).all()
