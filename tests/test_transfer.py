"""Closest points on triangle meshes and barycentric transfer, against brute force and trimesh."""

import numpy as np
import pytest
import scipy.sparse as sp
import trimesh
from hypothesis import given, settings
from hypothesis import strategies as st

from meshkit.transfer import barycentric_transfer, closest_points
from tests._helpers import brute_closest, grid_mesh

# ------------------------------------------------------------------------------------------------
# slow, obviously-correct references


def _noisy_sphere(sub=2, amp=0.02, seed=0):
    m = trimesh.creation.icosphere(subdivisions=sub)
    rng = np.random.default_rng(seed)
    v = np.asarray(m.vertices) * (1 + amp * rng.standard_normal((len(m.vertices), 1)))
    return v, np.asarray(m.faces, dtype=np.int64)


def _check_against_brute(v, f, pts, atol):
    q, face, bary, dist = closest_points(v, f, pts)
    assert q.shape == (len(pts), 3) and face.shape == (len(pts),) and bary.shape == (len(pts), 3)
    assert dist.shape == (len(pts),)
    assert (bary >= 0).all() and np.allclose(bary.sum(1), 1.0, atol=1e-12)
    # the returned point is the barycentric combination, at the returned distance
    np.testing.assert_allclose(q, np.einsum("pk,pkd->pd", bary, v[f[face]]), atol=atol)
    np.testing.assert_allclose(dist, np.linalg.norm(q - pts, axis=1), atol=atol)
    for i, p in enumerate(pts):
        d_all, _ = brute_closest(v, f, p)
        assert abs(dist[i] - d_all.min()) <= atol, (i, dist[i], d_all.min())
        # the chosen face achieves that distance
        assert abs(d_all[face[i]] - d_all.min()) <= atol


# ------------------------------------------------------------------------------------------------


def test_closest_points_random_vs_brute_force_sphere():
    v, f = _noisy_sphere(2, 0.03, 1)
    rng = np.random.default_rng(0)
    pts = np.concatenate([
        rng.normal(size=(150, 3)) * 0.7,  # inside and around
        rng.normal(size=(100, 3)) * 4.0,  # far outside the grid
        v[:30] + 1e-3 * rng.normal(size=(30, 3)),  # near the surface
    ])
    _check_against_brute(v, f, pts, 1e-10)


def test_closest_points_vs_trimesh_face_template(small_face):
    v, f = small_face
    rng = np.random.default_rng(1)
    lo, hi = v.min(0), v.max(0)
    pts = rng.uniform(lo - 0.2 * (hi - lo), hi + 0.2 * (hi - lo), size=(400, 3))
    q, face, bary, dist = closest_points(v, f, pts)
    tm = trimesh.Trimesh(v, f, process=False)
    _, d_ref, _ = trimesh.proximity.closest_point(tm, pts)
    np.testing.assert_allclose(dist, d_ref, rtol=1e-9, atol=1e-6 * np.linalg.norm(hi - lo))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n_tri=st.integers(1, 12), scale=st.sampled_from([1e-3, 1.0, 1e5]))
def test_closest_points_random_triangle_soups(seed, n_tri, scale):
    """Random (possibly overlapping, needle-thin or degenerate) triangles and random points."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(3 * n_tri, 3)) * scale
    if n_tri > 2:  # one exactly degenerate (collinear) triangle and one needle
        v[2] = v[0] + 0.5 * (v[1] - v[0])
        v[5] = v[3] + 1e-7 * rng.normal(size=3) * scale
    f = np.arange(3 * n_tri, dtype=np.int64).reshape(-1, 3)
    pts = rng.normal(size=(25, 3)) * scale * 1.5
    _check_against_brute(v, f, pts, 1e-9 * scale)


def test_points_on_vertices_map_to_themselves():
    v, f = _noisy_sphere(2, 0.02, 3)
    t = barycentric_transfer(v, f, v)
    assert (t != sp.identity(len(v), format="csr")).nnz == 0


def test_barycentric_transfer_rows_and_values():
    v, f = grid_mesh(9, 7, jitter=0.2, seed=2)
    v[:, 2] = np.sin(v[:, 0]) * np.cos(v[:, 1])
    rng = np.random.default_rng(5)
    pts = np.c_[rng.uniform(-1, 9, 300), rng.uniform(-1, 7, 300), rng.normal(size=300)]
    t = barycentric_transfer(v, f, pts)
    assert sp.isspmatrix_csr(t) and t.shape == (300, len(v))
    nnz = np.diff(t.indptr)
    assert (nnz >= 1).all() and (nnz <= 3).all()
    assert (t.data > 0).all()
    np.testing.assert_allclose(np.asarray(t.sum(1)).ravel(), 1.0, atol=1e-12)
    # the non-zeros of each row are corners of one face: the closest face
    q, face, _, dist = closest_points(v, f, pts)
    for i in range(300):
        assert set(t.indices[t.indptr[i]:t.indptr[i + 1]]) <= set(f[face[i]])
    # T @ V is the closest point; its distance is the brute-force minimum
    tv = t @ v
    np.testing.assert_allclose(tv, q, atol=1e-12)
    for i in range(0, 300, 7):
        assert abs(np.linalg.norm(tv[i] - pts[i]) - brute_closest(v, f, pts[i])[0].min()) < 1e-10


def test_empty_points():
    v, f = grid_mesh(3, 3)
    t = barycentric_transfer(v, f, np.empty((0, 3)))
    assert t.shape == (0, len(v))
    q, face, bary, dist = closest_points(v, f, np.empty((0, 3)))
    assert q.shape == (0, 3) and face.shape == (0,) and bary.shape == (0, 3) and dist.shape == (0,)


def test_deterministic():
    v, f = _noisy_sphere(3, 0.01, 4)
    pts = np.random.default_rng(0).normal(size=(2000, 3))
    a = closest_points(v, f, pts)
    b = closest_points(v, f, pts)
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x, y)


def test_result_does_not_depend_on_query_order_and_ties_keep_the_smallest_face():
    # the query starts from the previous point's face (an upper bound only): any order, or one point
    # at a time, must give the same answer; on a lattice, where distances tie exactly, the smallest face
    v, f = grid_mesh(9, 7)
    rng = np.random.default_rng(3)
    pts = np.r_[v, 0.5 * (v[f[:, 0]] + v[f[:, 1]]), rng.integers(-2, 20, (300, 3)) / 2.0]
    _, face, bary, dist = closest_points(v, f, pts)
    perm = rng.permutation(len(pts))
    _, face_p, bary_p, dist_p = closest_points(v, f, pts[perm])
    np.testing.assert_array_equal(face_p, face[perm])
    np.testing.assert_array_equal(bary_p, bary[perm])
    np.testing.assert_array_equal(dist_p, dist[perm])
    for i in rng.choice(len(pts), 60, replace=False):
        _, fi, bi, di = closest_points(v, f, pts[i:i + 1])
        assert fi[0] == face[i] and (bi[0] == bary[i]).all() and di[0] == dist[i]
    for i, p in enumerate(pts):
        d_all, _ = brute_closest(v, f, p)
        assert face[i] == np.flatnonzero(d_all <= d_all.min() + 1e-12)[0], i


def test_bad_input():
    v, f = grid_mesh(3, 3)
    with pytest.raises(ValueError, match="points"):
        closest_points(v, f, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="points"):
        barycentric_transfer(v, f, np.array([[0.0, np.nan, 0.0]]))
    with pytest.raises(TypeError, match="src_faces"):
        barycentric_transfer(v, f.astype(float), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="src_faces"):
        barycentric_transfer(v, f + 100, np.zeros((1, 3)))
    with pytest.raises(ValueError, match="faces"):
        closest_points(v, f[:, :2], np.zeros((1, 3)))
    with pytest.raises(ValueError, match="overflows"):
        closest_points(v, f, np.array([[0.0, 0.0, 0.0], [1e300, 0.0, 0.0]]))


def test_triangle_boxes_and_cell_count_kernels_vs_numpy():
    from meshkit._kernels.transfer import count_cells, triangle_boxes

    v, f = _noisy_sphere(2, 0.05, 9)
    v = np.r_[v, [[50.0, 50.0, 50.0]]]  # an unused vertex must not widen the box
    lo, hi, size, all_lo, all_hi = triangle_boxes(v, f)
    corners = v[f]
    np.testing.assert_array_equal(lo, corners.min(1))
    np.testing.assert_array_equal(hi, corners.max(1))
    np.testing.assert_array_equal(size, (corners.max(1) - corners.min(1)).max(1))
    np.testing.assert_array_equal(all_lo, corners.reshape(-1, 3).min(0))
    np.testing.assert_array_equal(all_hi, corners.reshape(-1, 3).max(0))
    h = 0.3
    dims = (np.floor((all_hi - all_lo) / h) + 1).astype(np.int64)
    cells = np.floor((corners - all_lo) / h).astype(np.int64)  # each corner's cell
    expected = np.prod(cells.max(1) - cells.min(1) + 1, axis=1).sum()
    assert count_cells(lo, hi, all_lo, h, dims) == expected


def test_build_grid_lists_each_triangle_in_the_cells_its_box_overlaps():
    # a few large triangles over many small cells: more occupied cells than half the hash table's first
    # size (4 slots per triangle), so it grows while being filled
    from meshkit._kernels.transfer import build_grid, count_cells, triangle_boxes

    rng = np.random.default_rng(5)
    v = rng.uniform(0, 10, (12, 3))
    f = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11], [0, 4, 8]], dtype=np.int64)
    lo, hi, _, all_lo, all_hi = triangle_boxes(v, f)
    h = 0.7
    dims = (np.floor((all_hi - all_lo) / h) + 1).astype(np.int64)
    n_entries = int(count_cells(lo, hi, all_lo, h, dims))
    keys, ptr, tris, table_keys, table_cells = build_grid(lo, hi, all_lo, h, dims, n_entries)
    # reference: the cells of each triangle's box, as a set of (key, triangle) pairs
    c0 = np.floor((lo - all_lo) / h).astype(np.int64)
    c1 = np.floor((hi - all_lo) / h).astype(np.int64)
    expected = set()
    for t in range(len(f)):
        for i in range(c0[t, 0], c1[t, 0] + 1):
            for j in range(c0[t, 1], c1[t, 1] + 1):
                for k in range(c0[t, 2], c1[t, 2] + 1):
                    expected.add(((i * dims[1] + j) * dims[2] + k, t))
    assert len(keys) > 4 * len(f) + 4  # beyond half its first size (< 8 slots per triangle + 8): it grew
    got = {(int(keys[c]), int(t)) for c in range(len(keys)) for t in tris[ptr[c]:ptr[c + 1]]}
    assert got == expected and len(tris) == n_entries
    assert all((np.diff(tris[ptr[c]:ptr[c + 1]]) > 0).all() for c in range(len(keys)))
    # the table maps every key to its cell, and holds nothing else
    assert len(table_keys) & (len(table_keys) - 1) == 0 and 2 * len(keys) <= len(table_keys)
    used = table_keys >= 0
    assert sorted(table_keys[used]) == sorted(keys)
    np.testing.assert_array_equal(keys[table_cells[used]], table_keys[used])


def test_closest_points_result_has_named_fields():
    import trimesh

    from meshkit.transfer import ClosestPoints, closest_points

    m = trimesh.creation.icosphere(subdivisions=1)
    pts = np.array([[0.0, 0.0, 2.0], [0.1, 0.2, 0.0]])
    r = closest_points(m.vertices, m.faces, pts)
    assert isinstance(r, ClosestPoints)
    c, f, b, d = r  # still unpacks like a tuple
    np.testing.assert_array_equal(r.points, c)
    np.testing.assert_allclose(r.distance, np.linalg.norm(pts - r.points, axis=1))
    np.testing.assert_allclose(np.einsum("pk,pkd->pd", r.barycentric, m.vertices[m.faces[r.face]]), r.points)


def coo_barycentric(corners, bary, n_cols):
    """The barycentric matrix built independently: scipy COO of clipped, renormalised weights."""
    w = np.maximum(bary, 0.0)
    w = w / w.sum(axis=1, keepdims=True)
    rows = np.repeat(np.arange(len(corners)), 3)
    m = sp.coo_matrix((w.ravel(), (rows, corners.ravel())), shape=(len(corners), n_cols)).tocsr()
    m.eliminate_zeros()
    m.sort_indices()
    return m


def test_barycentric_matrix_matches_scipy_coo():
    from meshkit.transfer import _barycentric_matrix

    rng = np.random.default_rng(3)
    n_cols = 40
    corners = np.stack([rng.choice(n_cols, 3, replace=False) for _ in range(200)]).astype(np.int64)
    bary = rng.random((200, 3))
    bary[rng.random((200, 3)) < 0.2] = 0.0  # on an edge or a vertex
    bary[rng.random((200, 3)) < 0.05] = -1e-12  # round-off below 0
    bary[bary.sum(axis=1) <= 0, 0] = 1.0
    got = _barycentric_matrix(corners, bary, n_cols)
    want = coo_barycentric(corners, bary, n_cols)
    assert got.shape == want.shape and got.has_sorted_indices
    assert np.array_equal(got.indptr, want.indptr) and np.array_equal(got.indices, want.indices)
    assert got.data.tobytes() == want.data.tobytes()  # bit-identical weights
