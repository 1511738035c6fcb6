"""UV space: position maps against brute-force numpy references, the round trip back to the
vertices (measured), photo unwrapping with occlusion on a scene with a known answer, mirror fill."""

import numpy as np
import pytest

from meshkit.render import UVLayout, UVMap, sample_uv_map, symmetric_fill, uv_position_map, uv_texture

SUB = 256  # the rasterizer's fixed-point steps per texel


def planar_uv(v):
    """The template is a height field seen from +z: its normalised (x, y) is a no-overlap unwrap.

    Synthetic-only on purpose: these tests need a UV layout without overlaps to have exact
    references, and a planar projection gives one only for a height field. The real BFM mean folds
    at the lips and nostrils, which is why real layouts ship their own UVs (3DDFA_V2 ``BFM_UV.mat``)."""
    lo, hi = v[:, :2].min(0), v[:, :2].max(0)
    return (v[:, :2] - lo) / (hi - lo)


def quantized(uv, size):
    """UVs on the rasterizer's 1/256-texel grid, so that snapping changes nothing and an exact
    numpy reference applies to every texel."""
    k = SUB * (size - 1)
    return np.round(uv * k) / k


def texel_uv(size):
    """(size, size, 2) UV of every texel centre: u = c / (size - 1), v = 1 - r / (size - 1)."""
    r, c = np.mgrid[0:size, 0:size].astype(float)
    return np.stack([c / (size - 1), 1 - r / (size - 1)], axis=-1)


def brute_force(uv, faces, points, tol=1e-9):
    """For each point: (min barycentric over its best triangle, that triangle, its barycentrics)."""
    best = np.full(len(points), -np.inf)
    tri = np.full(len(points), -1)
    bary = np.zeros((len(points), 3))
    for lo in range(0, len(faces), 256):
        f = faces[lo:lo + 256]
        a, b, c = uv[f[:, 0]], uv[f[:, 1]], uv[f[:, 2]]  # (T, 2)
        d = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
        px = points[None, :, 0] - a[:, None, 0]
        py = points[None, :, 1] - a[:, None, 1]
        wb = (px * (c[:, None, 1] - a[:, None, 1]) - py * (c[:, None, 0] - a[:, None, 0])) / d[:, None]
        wc = ((b[:, None, 0] - a[:, None, 0]) * py - (b[:, None, 1] - a[:, None, 1]) * px) / d[:, None]
        w = np.stack([1 - wb - wc, wb, wc], axis=-1)  # (T, P, 3)
        m = w.min(axis=-1)
        k = m.argmax(axis=0)
        mk = m[k, np.arange(len(points))]
        better = mk > best
        best[better] = mk[better]
        tri[better] = lo + k[better]
        bary[better] = w[k[better], np.flatnonzero(better)]
    return best, tri, bary


@pytest.fixture(scope="module")
def face():
    from bfm.synthetic import face_template

    return face_template()


def test_position_map_covers_the_layout_and_interpolates(small_face):
    v, f = small_face
    size = 64
    uv = quantized(planar_uv(v), size)
    m = uv_position_map(v, f, uv, size)
    assert isinstance(m, UVMap) and m.image.shape == (size, size, 3) and m.image.dtype == np.float32
    assert m.mask.dtype == bool and np.array_equal(m.mask, m.covered)
    best, tri, bary = brute_force(uv, f, texel_uv(size).reshape(-1, 2))
    best, tri, bary = best.reshape(size, size), tri.reshape(size, size), bary.reshape(size, size, 3)
    inside, outside = best > 1e-9, best < -1e-9
    assert np.array_equal(m.mask[inside | outside], inside[inside | outside])
    on_edge = ~(inside | outside)
    assert on_edge.sum() < 0.05 * size * size  # centres exactly on a triangle edge: the fill rule decides
    assert inside.sum() > 0.5 * size * size
    # values: the barycentric interpolation of the vertices over the containing UV triangle
    ref = np.einsum("rck,rckd->rcd", bary, v[f[tri]])
    scale = np.abs(v).max()
    np.testing.assert_allclose(m.image[m.mask], ref[m.mask], rtol=0, atol=4e-7 * scale)
    assert np.all(m.image[~m.mask] == 0)


def test_layout_is_reusable_and_takes_any_channels(small_face):
    v, f = small_face
    uv = quantized(planar_uv(v), 32)
    layout = UVLayout(uv, f, 32)
    a = layout.map(v)
    depth = layout.map(v[:, 2], background=-1.0)
    assert depth.image.shape == (32, 32)
    np.testing.assert_array_equal(depth.image[a.mask], a.image[a.mask][:, 2])
    assert np.all(depth.image[~a.mask] == -1.0)


def local_gradient(v, f, uv):
    """For each vertex, the largest Frobenius norm of d(position)/d(uv) over the faces of its
    two-ring (faces sharing a vertex with a face at the vertex): the local Lipschitz constant of
    the mesh's piecewise-linear map from UV to positions."""
    import scipy.sparse as sp

    a, b, c = uv[f[:, 0]], uv[f[:, 1]], uv[f[:, 2]]
    jac = np.stack([v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]], 2) @ np.linalg.inv(np.stack([b - a, c - a], 2))
    norm = np.linalg.norm(jac.reshape(len(f), 6), axis=1)
    inc = sp.csr_matrix((np.ones(f.size), (f.ravel(), np.repeat(np.arange(len(f)), 3))), shape=(len(v), len(f)))
    ring2 = (inc @ inc.T @ inc).tocsr()
    ring2.data[:] = 1.0
    return (ring2 @ sp.diags(norm)).max(axis=1).toarray().ravel()


def test_round_trip_error_is_interpolation_error(face):
    """vertices -> 256² map -> vertices, on the 53,215-vertex template (figures in docs/conventions.md).

    The map holds the mesh's piecewise-linear interpolation at texel centres, and the bilinear
    lookup blends texels within sqrt(2) texels (in UV) of the vertex with convex weights, so each
    vertex comes back within sqrt(2) h L of itself, h = 1 / (size - 1) the texel size and L the
    local gradient d(position)/d(uv) (over the two-ring, which spans more than sqrt(2) texels
    here). That is the bound where the blend is one-sided (boundary vertices: masked-out texels
    dropped, so affine maps are no longer reproduced); the worst are the lips of the mouth opening
    across the mouth line's groove. Measured max ratio 0.58 on both templates ("bfm", "rows").
    Elsewhere the blend reproduces affine maps, so the typical error is far smaller.
    """
    v, f = face
    uv = planar_uv(v)
    diag = np.linalg.norm(v.max(0) - v.min(0))
    lipschitz = local_gradient(v, f, uv)
    errors = {}
    for size in (256, 512):
        back = sample_uv_map(uv_position_map(v, f, uv, size), uv)
        assert back.shape == v.shape and np.isfinite(back).all()
        err = np.linalg.norm(back - v, axis=1)
        errors[size] = err
        assert (err <= np.sqrt(2) / (size - 1) * lipschitz).all()
        # typical vertices: bilinear blends of an almost affine map (measured 1.0e-5, 5.1e-6 of the diagonal)
        assert np.median(err) / diag < 2e-5 * 256 / size
    assert errors[512].mean() < 0.6 * errors[256].mean()  # converges with the texel size


def test_affine_values_round_trip_exactly(small_face):
    """Bilinear lookup reproduces an affine function of (u, v): vertices whose four texels are
    covered come back to float32 precision (UVs on the 1/256-texel grid: the rasterizer snaps
    to it, which otherwise moves values by up to 1/512 texel times their gradient)."""
    v, f = small_face
    size = 128
    uv = quantized(planar_uv(v), size)
    values = uv @ np.array([[3.0, -1.0, 0.5], [2.0, 4.0, -0.25]]) + np.array([1.0, 2.0, 3.0])
    m = UVLayout(uv, f, size).map(values)
    back = sample_uv_map(m, uv)
    cx, cy = uv[:, 0] * (size - 1), (1 - uv[:, 1]) * (size - 1)
    x0, y0 = np.minimum(np.floor(cx).astype(int), size - 2), np.minimum(np.floor(cy).astype(int), size - 2)
    full = m.mask[y0, x0] & m.mask[y0, x0 + 1] & m.mask[y0 + 1, x0] & m.mask[y0 + 1, x0 + 1]
    assert full.mean() > 0.9
    np.testing.assert_allclose(back[full], values[full], rtol=0, atol=2e-6)


def test_sample_uv_map_on_arrays_and_masks():
    img = np.arange(12, dtype=float).reshape(3, 4)  # value = 4 r + c
    # (u, v) = (c / 3, 1 - r / 2): the centre of texel (1, 2) and a point between four texels
    got = sample_uv_map(img, np.array([[2 / 3, 0.5], [0.5, 0.75]]))
    np.testing.assert_allclose(got, [6.0, 4 * 0.5 + 1.5])
    mask = np.ones((3, 4), bool)
    mask[0, 1] = False  # the texel that would pull the second point towards 1.0
    got = sample_uv_map(img, np.array([[0.5, 0.75]]), mask=mask)
    w = np.array([0.25, 0.25, 0.25])  # the remaining three of the four equal weights
    np.testing.assert_allclose(got, [(w @ [2.0, 5.0, 6.0]) / w.sum()])
    assert np.isnan(sample_uv_map(img, np.array([[0.0, 1.0]]), mask=np.zeros((3, 4), bool))).all()


def grid(n, x0, y0, side, z, u0, u1, v0, v1):
    """An n x n vertex square in image space [x0, x0 + side] x [y0, y0 + side] at depth z, with UVs
    spanning [u0, u1] x [v0, v1] (u may run backwards: a mirrored copy), front-facing (counter-
    clockwise in the y-down image)."""
    s, t = np.meshgrid(np.linspace(0, 1, n), np.linspace(0, 1, n))
    s, t = s.ravel(), t.ravel()
    v = np.stack([x0 + side * s, y0 + side * t, np.full(s.shape, float(z))], axis=1)
    uv = np.stack([u0 + (u1 - u0) * s, v1 - (v1 - v0) * t], axis=1)
    i = np.arange(n * n).reshape(n, n)
    a, b, c, d = i[:-1, :-1].ravel(), i[:-1, 1:].ravel(), i[1:, :-1].ravel(), i[1:, 1:].ravel()
    f = np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)])
    p = v[f]
    area = (p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1]) - (p[:, 1, 1] - p[:, 0, 1]) * (p[:, 2, 0] - p[:, 0, 0])
    f[area > 0] = f[area > 0][:, ::-1]  # front = counter-clockwise on screen = negative area here
    return v, uv, f


@pytest.fixture
def two_planes():
    """Plane A (near, z = 10) partly hides plane B (far, z = 0); their UVs mirror each other
    across u = 0.5 (A on the left, B on the right). The photo's colour is linear in the pixel
    index: (column / 63, row / 63, 0.5)."""
    va, uva, fa = grid(9, 8, 8, 32, 10, 0.05, 0.45, 0.1, 0.9)
    vb, uvb, fb = grid(9, 24, 24, 32, 0, 0.95, 0.55, 0.1, 0.9)
    v = np.concatenate([va, vb])
    uv = np.concatenate([uva, uvb])
    f = np.concatenate([fa, fb + len(va)])
    r, c = np.mgrid[0:64, 0:64]
    photo = np.stack([c / 63, r / 63, np.full((64, 64), 0.5)], axis=-1)
    return photo, v, f, uv


def expected_points(size):
    """Each texel's plane and image point, from the scene's affine UV -> image maps (no mesh code)."""
    t = texel_uv(size)
    u, vv = t[..., 0], t[..., 1]
    in_a = (u > 0.05) & (u < 0.45) & (vv > 0.1) & (vv < 0.9)
    in_b = (u > 0.55) & (u < 0.95) & (vv > 0.1) & (vv < 0.9)
    row = (0.9 - vv) / 0.8 * 32
    xa, ya = 8 + (u - 0.05) / 0.4 * 32, 8 + row
    xb, yb = 24 + (0.95 - u) / 0.4 * 32, 24 + row
    return in_a, in_b, np.where(in_a, xa, xb), np.where(in_a, ya, yb)


def test_uv_texture_takes_the_photo_and_masks_occluded_texels(two_planes):
    photo, v, f, uv = two_planes
    size = 64
    tex = uv_texture(photo, v, f, uv, size)
    in_a, in_b, x, y = expected_points(size)
    assert np.array_equal(tex.covered, in_a | in_b)  # no texel centre lies on the layout's border
    # B's texels whose image point is inside A's square are hidden (away from its edges)
    hidden = in_b & (x > 8.5) & (x < 39.5) & (y > 8.5) & (y < 39.5)
    shown = in_a | (in_b & ~((x > 7.5) & (x < 40.5) & (y > 7.5) & (y < 40.5)))
    assert hidden.sum() > 50 and (shown & in_b).sum() > 50
    assert not tex.mask[hidden].any()
    assert tex.mask[shown].all()
    # seen texels carry the photo's colour at their image point (bilinear of a linear photo = exact,
    # up to the layout's 1/256-texel snapping: 1/512 texel = 0.0025 pixel here, 4e-5 in colour)
    want = np.stack([x / 63, y / 63, np.full(x.shape, 0.5)], axis=-1)  # pixel (r, c) centred on x = c, y = r
    np.testing.assert_allclose(tex.image[tex.mask], want[tex.mask], rtol=0, atol=5e-5)
    assert np.all(tex.image[~tex.mask] == 0)
    # uint8 photos are scaled to [0, 1]; a 2-D photo gives a 2-D map
    gray = uv_texture((photo[..., 0] * 255).round().astype(np.uint8), v, f, uv, size)
    assert gray.image.shape == (size, size) and np.array_equal(gray.mask, tex.mask)
    np.testing.assert_allclose(gray.image[gray.mask], tex.image[tex.mask][:, 0], atol=0.5 / 255 + 1e-6)


def test_uv_texture_masks_back_faces(two_planes):
    photo, v, f, uv = two_planes
    flipped = f[:, ::-1].copy()  # everything now faces away from the camera
    assert not uv_texture(photo, v, flipped, uv, 32).mask.any()
    kept = uv_texture(photo, v, flipped, uv, 32, mask_backfaces=False)
    assert np.array_equal(kept.mask, uv_texture(photo, v, f, uv, 32).mask)


def test_uv_texture_outside_the_photo_is_masked(two_planes):
    photo, v, f, uv = two_planes
    tex = uv_texture(photo[:30, :30], v, f, uv, 64)  # a crop: most of the mesh falls outside
    in_a, in_b, x, y = expected_points(64)
    assert not tex.mask[(x >= 29.5) | (y >= 29.5)].any()  # beyond the last pixel, [-0.5, 29.5)
    assert tex.mask[in_a & (x < 29.5) & (y < 29.5)].all()


def test_symmetric_fill_mirrors_hidden_texels(two_planes):
    photo, v, f, uv = two_planes
    size = 64
    tex = uv_texture(photo, v, f, uv, size)
    filled = uv_texture(photo, v, f, uv, size, symmetric=True)
    assert np.array_equal(symmetric_fill(tex).image, filled.image)
    mirror = tex.mask[:, ::-1]
    new = tex.covered & ~tex.mask & mirror
    assert new.sum() > 50  # B's hidden texels, seen on A
    assert np.array_equal(filled.mask, tex.mask | new)
    np.testing.assert_array_equal(filled.image[new], tex.image[:, ::-1][new])
    np.testing.assert_array_equal(filled.image[tex.mask], tex.image[tex.mask])
    # B's hidden part mirrors A's texels: at the same row, the mirrored column of A
    r, c = np.nonzero(new)
    assert tex.covered[r, size - 1 - c].all()


def test_bad_input_names_the_argument(small_face, two_planes):
    v, f = small_face
    uv = planar_uv(v)
    with pytest.raises(ValueError, match=r"uv: expected u and v in \[0, 1\]"):
        uv_position_map(v, f, uv * 2, 32)
    with pytest.raises(ValueError, match=r"uv: expected one row per vertex"):
        uv_position_map(v, f, uv[:-1], 32)
    with pytest.raises(ValueError, match=r"uv: expected shape \(V, 2\)"):
        uv_position_map(v, f, v, 32)
    with pytest.raises(ValueError, match="size: expected an integer >= 2"):
        uv_position_map(v, f, uv, 1)
    with pytest.raises(TypeError, match="size"):
        uv_position_map(v, f, uv, 32.0)
    with pytest.raises(ValueError, match="faces: expected indices in"):
        uv_position_map(v, f + len(v), uv, 32)
    with pytest.raises(ValueError, match="vertices: expected finite"):
        uv_position_map(np.where(np.arange(len(v))[:, None] == 3, np.nan, v), f, uv, 32)
    with pytest.raises(ValueError, match="values: expected one row per vertex"):
        UVLayout(uv, f, 32).map(v[:10])
    with pytest.raises(ValueError, match=r"mask: expected a bool array of shape \(8, 8\)"):
        sample_uv_map(np.zeros((8, 8)), uv, mask=np.ones((4, 4), bool))
    with pytest.raises(ValueError, match="mask: expected None with a UVMap"):
        sample_uv_map(uv_position_map(v, f, uv, 8), uv, mask=np.ones((8, 8), bool))
    with pytest.raises(ValueError, match="uv_map: expected shape"):
        sample_uv_map(np.zeros(8), uv)
    with pytest.raises(TypeError, match="uv_map: expected a UVMap"):
        symmetric_fill(np.zeros((8, 8, 3)))
    photo, pv, pf, puv = two_planes
    with pytest.raises(TypeError, match="image: expected a numeric"):
        uv_texture(photo.astype(object), pv, pf, puv, 32)
    with pytest.raises(ValueError, match="image: expected shape"):
        uv_texture(photo[..., 0].ravel(), pv, pf, puv, 32)
    with pytest.raises(ValueError, match="image_vertices: expected shape"):
        uv_texture(photo, pv[:, :2], pf, puv, 32)
    with pytest.raises(ValueError, match="eps: expected"):
        uv_texture(photo, pv, pf, puv, 32, eps=-1.0)
    with pytest.raises(TypeError, match="symmetric: expected a bool"):
        uv_texture(photo, pv, pf, puv, 32, symmetric=1)


def test_uv_texture_of_a_height_field_seen_from_the_front_masks_nothing(small_face):
    """A height field seen along its height axis has no self-occlusion and no back faces: every
    covered texel is seen, and a uniform photo unwraps to that colour everywhere."""
    from meshkit.render import frame_vertices

    v, f = small_face
    uv = planar_uv(v)
    vi = frame_vertices(v, 128, 128)
    photo = np.full((128, 128, 3), 0.25)
    tex = uv_texture(photo, vi, f, uv, 64)
    assert tex.covered.sum() > 0.5 * 64 * 64
    assert np.array_equal(tex.mask, tex.covered)
    np.testing.assert_allclose(tex.image[tex.mask], 0.25, rtol=0, atol=1e-7)


def test_unwrapped_texture_renders_back_to_the_photo(two_planes):
    """photo -> uv_texture -> render_texture (OBJ texel convention: u' = (u (size - 1) + 0.5) / size)
    gives the photo back wherever the mesh is seen: the two conventions differ by exactly that map."""
    from meshkit.render import render_texture

    photo, v, f, uv = two_planes
    size = 128
    tex = uv_texture(photo, v, f, uv, size)
    uv_obj = (uv * (size - 1) + 0.5) / size
    back = render_texture(v, f, uv_obj, tex.image, 64, 64)
    seen = render_texture(v, f, uv_obj, tex.mask.astype(float), 64, 64) == 1  # all four texels seen
    assert seen.sum() > 1500
    np.testing.assert_allclose(back[seen], photo[seen], rtol=0, atol=1e-4)
