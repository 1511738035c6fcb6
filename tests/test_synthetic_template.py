"""meshkit.synthetic.face_template (topology "bfm"): the synthetic template with the real BFM mesh's connectivity.

Every fact is checked against an independent reference: trimesh (winding, unique edges, face
normals), networkx (connected components of the edge graph), scipy (connected components of each
vertex's fan), numpy histograms of faces per vertex, boundary loops walked here from the edge
multiplicities, the Euler characteristic, and mirror symmetry through bfm.dataset.vertex_mirror_map
(a nearest-neighbour query, scipy) with the mirrored faces compared as sets. The real mesh's figures come from
shared/REAL_FILES.md: 53,215 vertices, 105,840 triangles, boundary loops of 512 (rim) and 78
(mouth), faces per vertex 4 on 50.1 % and 8 on 49.3 % of vertices.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
import trimesh
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse.csgraph import connected_components

from bfm.dataset import vertex_mirror_map
from bfm.synthetic import LANDMARK_UV, landmark_indices
from meshkit.synthetic import HALF_HEIGHT, HALF_WIDTH, _half_width, face_height, face_template


def _grid(n_vertices=53_215):
    return face_template(n_vertices, topology="bfm")

REAL_V, REAL_F, REAL_RIM, REAL_MOUTH = 53_215, 105_840, 512, 78


@pytest.fixture(scope="module")
def real_size():
    return _grid()


@pytest.fixture(scope="module")
def small():
    return _grid(2000)


def edge_multiplicity(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Undirected edges (E, 2), sorted pairs, and how many faces use each."""
    e = np.sort(f[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    return np.unique(e, axis=0, return_counts=True)


def walk_boundary_loops(f: np.ndarray) -> list[list[int]]:
    """Loops of the edges used by one face, walked vertex to vertex; each boundary vertex must have
    exactly two boundary edges (else the boundary is not a set of simple loops)."""
    e, count = edge_multiplicity(f)
    b = e[count == 1]
    nbrs: dict[int, list[int]] = {}
    for u, v in b:
        nbrs.setdefault(int(u), []).append(int(v))
        nbrs.setdefault(int(v), []).append(int(u))
    assert all(len(x) == 2 for x in nbrs.values()), "a boundary vertex without exactly two boundary edges"
    seen: set[int] = set()
    loops = []
    for start in sorted(nbrs):
        if start in seen:
            continue
        loop, prev, cur = [start], None, start
        seen.add(start)
        while True:
            a, c = nbrs[cur]
            nxt = c if a == prev else a
            if nxt == start:
                break
            loop.append(nxt)
            seen.add(nxt)
            prev, cur = cur, nxt
        loops.append(loop)
    return loops


def fans_per_vertex(f: np.ndarray, n: int) -> np.ndarray:
    """Number of separate fans of faces around each vertex (1 for a manifold vertex), with scipy:
    the corners (vertex, face) are linked when the two faces share an edge through that vertex."""
    i, j = np.array([0, 1, 2]), np.array([1, 2, 0])
    u, w = f[:, i].ravel(), f[:, j].ravel()  # each face's three edges u-w, with their corners
    cu = (3 * np.arange(len(f))[:, None] + i).ravel()
    cw = (3 * np.arange(len(f))[:, None] + j).ravel()
    key = np.minimum(u, w) * n + np.maximum(u, w)
    o = np.argsort(key, kind="stable")
    u, cu, cw, key = u[o], cu[o], cw[o], key[o]
    k = np.flatnonzero(key[1:] == key[:-1])  # records k and k + 1: the two faces of one edge
    same = u[k] == u[k + 1]  # the second face lists the edge in the same or the opposite direction
    a = np.concatenate([cu[k], cw[k]])
    b = np.concatenate([np.where(same, cu[k + 1], cw[k + 1]), np.where(same, cw[k + 1], cu[k + 1])])
    g = sp.coo_matrix((np.ones(len(a)), (a, b)), shape=(f.size, f.size))
    _, label = connected_components(g, directed=False)
    first = np.unique(label, return_index=True)[1]  # one corner per fan
    return np.bincount(f.ravel()[first], minlength=n)


def test_reference_helpers_on_known_meshes():
    bowtie = np.array([[0, 1, 2], [0, 3, 4]])  # two triangles sharing only vertex 0
    assert fans_per_vertex(bowtie, 5).tolist() == [2, 1, 1, 1, 1]
    square = np.array([[0, 1, 2], [0, 2, 3]])
    assert fans_per_vertex(square, 4).tolist() == [1, 1, 1, 1]
    assert [sorted(lp) for lp in walk_boundary_loops(square)] == [[0, 1, 2, 3]]
    # a 3 x 3 grid of quads without its middle quad: an annulus with loops of 12 and 4
    ids = np.arange(16).reshape(4, 4)
    quads = [(ids[j, i], ids[j, i + 1], ids[j + 1, i + 1], ids[j + 1, i]) for j in range(3) for i in range(3)
             if (i, j) != (1, 1)]
    ring = np.array([t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))])
    assert sorted(map(len, walk_boundary_loops(ring))) == [4, 12]
    with pytest.raises(AssertionError):
        walk_boundary_loops(bowtie)


def check_mesh(v: np.ndarray, f: np.ndarray, n: int) -> tuple[list[list[int]], np.ndarray]:
    """The structural facts that hold at every size. Returns (boundary loops, faces per vertex)."""
    assert v.shape == (n, 3) and v.dtype == np.float64 and np.isfinite(v).all()
    assert f.ndim == 2 and f.shape[1] == 3 and f.dtype == np.int64
    assert f.min() == 0 and f.max() == n - 1
    m = trimesh.Trimesh(v, f, process=False)
    assert len(m.vertices) == n and len(m.faces) == len(f)  # nothing merged or dropped
    # counter-clockwise seen from +z: consistent winding, every normal towards the viewer
    assert m.is_winding_consistent
    assert (m.face_normals[:, 2] > 0).all()
    # no degenerate or repeated triangle
    assert (np.diff(np.sort(f, axis=1), axis=1) > 0).all()
    assert len(np.unique(np.sort(f, axis=1), axis=0)) == len(f)
    assert m.area_faces.min() > 0.05 * np.median(m.area_faces)
    # edge-manifold (an edge in one or two faces) and vertex-manifold (one fan per vertex)
    _, count = edge_multiplicity(f)
    assert count.max() == 2
    assert (fans_per_vertex(f, n) == 1).all()
    # one connected component (networkx on the edge graph), every vertex used
    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(map(tuple, m.edges_unique))
    assert nx.number_connected_components(g) == 1
    # an annulus: two boundary loops, V - E + F = 0, F = 2 V - (boundary vertices)
    loops = walk_boundary_loops(f)
    assert len(loops) == 2
    assert n - len(m.edges_unique) + len(f) == 0
    assert len(f) == 2 * n - sum(len(lp) for lp in loops)
    fpv = np.bincount(f.ravel(), minlength=n)
    return loops, fpv


def test_real_size_has_the_real_counts(real_size):
    v, f = real_size
    loops, fpv = check_mesh(v, f, REAL_V)
    assert len(f) == REAL_F
    assert sorted(len(lp) for lp in loops) == [REAL_MOUTH, REAL_RIM]
    # faces per vertex: real 4 on 50.1 %, 8 on 49.3 %
    assert abs(100 * np.mean(fpv == 4) - 50.1) < 0.5
    assert abs(100 * np.mean(fpv == 8) - 49.3) < 0.5


def interior_irregular(loops, fpv: np.ndarray) -> np.ndarray:
    """Interior vertices in neither 4 nor 8 faces."""
    interior = np.ones(len(fpv), dtype=bool)
    interior[np.concatenate(loops)] = False
    return np.flatnonzero(interior & (fpv != 4) & (fpv != 8))


def test_interior_vertices_are_4_or_8_but_a_few_cones(real_size, small):
    for v, f in (real_size, small):
        loops, fpv = check_mesh(v, f, len(v))
        odd = interior_irregular(loops, fpv)
        # the centre rectangle's corners (3 quads: 3 or 6 faces) and the corner cuts' notches
        # (3 or 5 quads: 5 or 10 faces); a cut corner (one vertex removed) gets at most 5
        assert 4 <= len(odd) <= 20
        assert set(fpv[odd].tolist()) <= {3, 5, 6, 10}
        # they come in mirrored pairs (the cuts are made in mirrored pairs)
        mirror = vertex_mirror_map(v, center_x=0.0)
        assert set(mirror[odd].tolist()) == set(odd.tolist())


def test_rim_and_mouth_are_where_they_belong(real_size, small):
    for v, f in (real_size, small):
        loops = sorted(walk_boundary_loops(f), key=len)
        mouth, rim = v[loops[0]], v[loops[1]]
        # the rim follows face_template's outline: |x| = half width at its height, or the top/bottom
        # edge at |y| = 0.97 HALF_HEIGHT
        on_side = np.isclose(np.abs(rim[:, 0]), _half_width(rim[:, 1] / HALF_HEIGHT), rtol=1e-3, atol=50)
        on_end = np.isclose(np.abs(rim[:, 1]), 0.97 * HALF_HEIGHT, atol=1.0)
        assert (on_side | on_end).all()
        # the mouth slit is on face_height's mouth line, centred, narrower than the lip corners
        assert abs(mouth[:, 1].mean() - (-0.545 * HALF_HEIGHT)) < 0.02 * HALF_HEIGHT
        step = np.median(np.linalg.norm(np.diff(mouth[:, :2], axis=0), axis=1))
        assert abs(mouth[:, 0].mean()) <= 0.6 * step  # centred to half a cell
        assert np.abs(mouth[:, 0]).max() < 0.3 * HALF_WIDTH
        x, y = mouth[:, 0], mouth[:, 1]
        area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))  # shoelace
        assert area < 1.5 * step * np.ptp(x)  # a slit about one cell high
        assert np.ptp(x) > 5 * step


def test_same_frame_outline_and_height_field_as_face_template(real_size):
    v, _ = real_size
    old, _ = face_template(topology="rows")
    np.testing.assert_allclose(v[:, 2], face_height(v[:, 0], v[:, 1]), rtol=0, atol=1e-6)
    # inside the outline
    assert (np.abs(v[:, 1]) <= 0.97 * HALF_HEIGHT + 1e-6).all()
    assert (np.abs(v[:, 0]) <= _half_width(v[:, 1] / HALF_HEIGHT) + 1.0).all()
    # the same x-y bounding box (so framed renders use the same pixel scale)
    np.testing.assert_allclose(v[:, :2].min(0), old[:, :2].min(0), rtol=2e-3)
    np.testing.assert_allclose(v[:, :2].max(0), old[:, :2].max(0), rtol=2e-3)


def test_edge_lengths_spread_like_the_real_ones(real_size):
    v, f = real_size
    e = trimesh.Trimesh(v, f, process=False).edges_unique
    length = np.linalg.norm(v[e[:, 0]] - v[e[:, 1]], axis=1)
    p5, p50, p95 = np.percentile(length, [5, 50, 95])
    # real: 662 / 1,305 / 2,211 um, p95 / p5 = 3.3. The spread is matched; the median cannot be
    # in this frame (the height field's area over 53,215 vertices gives ~0.7 mm edges; the old
    # template's median is 734 um)
    assert 3.0 < p95 / p5 < 3.6
    assert 600 < p50 < 900


def test_landmarks_land_on_their_positions(real_size, small):
    for (v, _), tol in ((real_size, 1_000.0), (small, 4_000.0)):
        idx = landmark_indices(v)
        assert idx.shape == (68,) and len(set(idx.tolist())) == 68
        assert idx.min() >= 0 and idx.max() < len(v)
        target = LANDMARK_UV * [HALF_WIDTH, HALF_HEIGHT]
        d = np.hypot(v[idx, 0] - target[:, 0], v[idx, 1] - target[:, 1])
        assert d.max() < tol


@pytest.mark.parametrize("n", [200, 300])
@pytest.mark.parametrize("topology", ["bfm", "rows"])
def test_landmarks_on_tiny_templates_are_the_nearest_free_vertices(n, topology):
    # at these sizes several landmarks compete for the same few vertices (the mouth has 20 on a
    # ~17-vertex-wide face); each must still get a valid vertex of its own, the nearest one left
    v, _ = face_template(n, topology=topology)
    idx = landmark_indices(v)
    assert idx.dtype == np.int64 and idx.shape == (68,)
    assert idx.min() >= 0 and idx.max() < n and len(set(idx.tolist())) == 68
    target = LANDMARK_UV * [HALF_WIDTH, HALF_HEIGHT]
    for i in range(68):
        d = np.hypot(v[:, 0] - target[i, 0], v[:, 1] - target[i, 1])
        nearer = np.flatnonzero(d < d[idx[i]])
        assert set(nearer.tolist()) <= set(idx[:i].tolist())  # every nearer vertex is an earlier landmark's


def test_landmarks_need_68_vertices():
    with pytest.raises(ValueError, match="vertices: expected at least 68"):
        landmark_indices(np.zeros((67, 3)))


def test_deterministic_and_row_major_centre():
    v1, f1 = _grid(3000)
    v2, f2 = _grid(3000)
    assert np.array_equal(v1, v2) and np.array_equal(f1, f2)
    # the first vertices are the centre's top row, left to right, at one height
    assert v1[0, 1] == v1[1, 1] and v1[0, 0] < v1[1, 0] < v1[2, 0]


@pytest.mark.parametrize("n", [200, 300, 2000, 10_000, 60_000])
def test_exact_vertex_count_and_proportions(n):
    v, f = _grid(n)
    loops, fpv = check_mesh(v, f, n)
    rim, mouth = sorted(map(len, loops), reverse=True)
    # rim ~ 512 sqrt(n / 53215), mouth : rim ~ 78 : 512
    assert abs(rim - REAL_RIM * np.sqrt(n / REAL_V)) <= 10
    # the mouth loop is 2 L + 2 vertices with L even (a slit centred on the midline): steps of 4
    assert abs(mouth - REAL_MOUTH / REAL_RIM * rim) <= 2.5
    assert np.mean((fpv == 4) | (fpv == 8)) > 1 - 4.0 / np.sqrt(n)


def canonical_faces(f: np.ndarray) -> set[tuple[int, int, int]]:
    """Faces as a set of index triples, each rotated to start at its smallest index (keeps the winding)."""
    first = np.argmin(f, axis=1)
    rows = np.arange(len(f))
    return set(map(tuple, np.stack([f[rows, (first + i) % 3] for i in range(3)], axis=1).tolist()))


def check_mirror_symmetric(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    """The mesh is its own mirror image in x = 0, vertex for vertex and face for face. Returns the
    vertices on the midline."""
    mirror, dist = vertex_mirror_map(v, center_x=0.0, return_distance=True)
    assert dist.max() < 1e-6  # every reflected vertex lands on a vertex (BFM units: micrometres)
    assert np.array_equal(mirror[mirror], np.arange(len(v)))  # an involution
    # the mirror reverses orientation, so the mirrored faces re-wound are the faces
    assert canonical_faces(mirror[f][:, ::-1]) == canonical_faces(f)
    midline = np.flatnonzero(mirror == np.arange(len(v)))
    assert np.abs(v[midline, 0]).max() < 1e-6
    return midline


def test_canonical_faces_reference():
    assert canonical_faces(np.array([[2, 0, 1], [5, 4, 3]])) == {(0, 1, 2), (3, 5, 4)}


@pytest.mark.parametrize("n", [200, 201, 300, 2000, 5001, 60_000])
def test_mirror_symmetric_with_a_midline_column(n):
    v, f = _grid(n)
    midline = check_mirror_symmetric(v, f)
    # a column of vertices from the chin to the forehead: at least the rows of the centre and both
    # ends of every ring (bottom and top middle), so more than a third of the height in vertices
    assert len(midline) > np.sqrt(n) / 3
    y = np.sort(v[midline, 1])
    assert y[0] == v[:, 1].min() and y[-1] == v[:, 1].max()  # the rim's bottom and top middle
    # the midline runs through the mouth opening: its loop maps onto itself
    mouth = min(walk_boundary_loops(f), key=len)
    assert len(set(mouth) & set(midline.tolist())) == 2  # its upper and lower middle vertex


def test_real_size_is_mirror_symmetric_and_midline_landmarks_sit_on_it(real_size, small):
    for v, f in (real_size, small):
        midline = check_mirror_symmetric(v, f)
        idx = landmark_indices(v)
        on_midline = np.flatnonzero(LANDMARK_UV[:, 0] == 0.0)
        assert on_midline.tolist() == [8, 27, 28, 29, 30, 33, 51, 57, 62, 66]
        assert set(idx[on_midline].tolist()) <= set(midline.tolist())


@settings(max_examples=5, deadline=None)
@given(st.integers(300, 60_000))
def test_any_size(n):
    v, f = _grid(n)
    loops, _ = check_mesh(v, f, n)
    assert len(f) == 2 * n - sum(map(len, loops))
    check_mirror_symmetric(v, f)


def test_meshkit_kernels_accept_it(small):
    import meshkit

    v, f = small
    d = meshkit.decimate(v, f, factor=4)
    assert len(d.vertices) == int(np.ceil(len(v) / 4))
    assert meshkit.spiral_indices(f, 9).shape == (len(v), 9)


@pytest.mark.parametrize("bad, exc", [(199, ValueError), (2000.0, TypeError), (True, TypeError), ("2000", TypeError)])
def test_bad_input(bad, exc):
    with pytest.raises(exc, match="n_vertices"):
        _grid(bad)
