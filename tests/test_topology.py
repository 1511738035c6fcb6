import networkx as nx
import numpy as np
import pytest
import trimesh
from hypothesis import given, settings
from hypothesis import strategies as st

from meshkit import topology
from tests._helpers import bfm_like_face, grid_mesh


def _nx_graph(faces, n):
    g = nx.Graph()
    g.add_nodes_from(range(n))
    for a, b, c in faces:
        g.add_edges_from([(a, b), (b, c), (c, a)])
    return g


def _random_mesh(seed):
    """A few icospheres and grids, some faces removed: several components, holes, boundaries."""
    rng = np.random.default_rng(seed)
    parts, off = [], 0
    for k in range(rng.integers(1, 4)):
        if k % 2 == 0:
            m = trimesh.creation.icosphere(subdivisions=1)
            v, f = np.asarray(m.vertices) + 3 * k, np.asarray(m.faces)
        else:
            v, f = grid_mesh(int(rng.integers(3, 7)), int(rng.integers(3, 7)))
        keep = rng.random(len(f)) > 0.15
        parts.append((v, f[keep] + off))
        off += len(v)
    return np.vstack([p[0] for p in parts]), np.vstack([p[1] for p in parts]), off


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000))
def test_adjacency_and_components_match_networkx(seed):
    _, f, n = _random_mesh(seed)
    g = _nx_graph(f, n)
    a = topology.adjacency(f, n)
    ref = nx.to_scipy_sparse_array(g, nodelist=range(n), format="csr")
    assert (a != ref).nnz == 0
    count, labels = topology.connected_components(f, n)
    comps = list(nx.connected_components(g))
    assert count == len(comps)
    for c in comps:  # same partition
        assert len(set(labels[list(c)])) == 1
    assert len(set(labels)) == count
    np.testing.assert_array_equal(topology.degree(f, n), [g.degree(i) for i in range(n)])


def test_edges_match_trimesh(icosphere):
    v, f = icosphere
    tm = trimesh.Trimesh(v, f, process=False)
    np.testing.assert_array_equal(topology.edges(f), np.unique(np.sort(tm.edges_unique, axis=1), axis=0))
    e, c = topology.edges(f, return_counts=True)
    assert (c == 2).all()


def test_vertex_face_incidence(icosphere):
    v, f = icosphere
    inc = topology.vertex_face_incidence(f, len(v))
    dense = np.zeros((len(v), len(f)))
    for i, face in enumerate(f):
        dense[face, i] = 1
    np.testing.assert_array_equal(inc.toarray(), dense)


def test_one_rings_closed_mesh_ccw_and_complete(icosphere):
    v, f = icosphere
    rings, boundary = topology.one_rings(f, len(v), return_boundary=True)
    assert not boundary.any()
    g = _nx_graph(f, len(v))
    normals = trimesh.Trimesh(v, f, process=False).vertex_normals
    for i, ring in enumerate(rings):
        assert set(ring.tolist()) == set(g.neighbors(i))
        assert ring[0] == min(ring)  # documented start
        # consecutive neighbours turn counter-clockwise around the outward normal
        d = v[ring] - v[i]
        cross = np.cross(d, np.roll(d, -1, axis=0))
        assert (cross @ normals[i] > 0).all()


def test_one_rings_on_grid_boundary_and_corner():
    v, f = grid_mesh(4, 3)
    rings, boundary = topology.one_rings(f, len(v), return_boundary=True)
    interior = {5, 6}
    assert set(np.flatnonzero(~boundary)) == interior
    # boundary fan sweeps CCW: the signed angle from each neighbour to the next is positive
    for i in range(len(v)):
        d = v[rings[i]] - v[i]
        z = d[:-1, 0] * d[1:, 1] - d[:-1, 1] * d[1:, 0]
        assert (z > 0).all()
    # corner 0 has faces (0,1,5), (0,5,4): ring runs 1 -> 5 -> 4
    assert rings[0].tolist() == [1, 5, 4]


def test_nonmanifold_detection():
    # two tetra-like fans touching at vertex 0 (bowtie)
    f = np.array([[0, 1, 2], [0, 3, 4]])
    assert topology.nonmanifold_vertices(f).tolist() == [0]
    assert not topology.is_manifold(f)
    with pytest.raises(ValueError, match="vertex 0"):
        topology.one_rings(f)
    # three faces on one edge
    f2 = np.array([[0, 1, 2], [1, 0, 3], [0, 1, 4]])
    assert topology.nonmanifold_edges(f2).tolist() == [[0, 1]]


def test_boundary_loops_and_euler():
    v, f = grid_mesh(5, 4)
    loops = topology.boundary_loops(f)
    assert len(loops) == 1 and len(loops[0]) == 2 * (5 + 4) - 4
    # the loop follows the winding: counter-clockwise, positive signed area
    p = v[loops[0], :2]
    area = 0.5 * np.sum(p[:, 0] * np.roll(p[:, 1], -1) - np.roll(p[:, 0], -1) * p[:, 1])
    assert area == pytest.approx(4 * 3)
    assert topology.euler_characteristic(f) == 1
    m = trimesh.creation.icosphere(subdivisions=1)
    assert topology.euler_characteristic(m.faces) == 2 == m.euler_number
    assert topology.boundary_loops(m.faces) == []
    torus = trimesh.creation.torus(major_radius=2, minor_radius=0.5)
    assert topology.euler_characteristic(torus.faces) == 0


def test_synthetic_face_template_structure(small_face):
    # the template has the real BFM mesh's topology (shared/REAL_FILES.md): an annulus, the outer
    # rim and the mouth opening; trimesh's outline is the independent count of the loops
    v, f = small_face
    assert len(v) == 2000
    assert topology.is_manifold(f, len(v))
    assert topology.connected_components(f, len(v))[0] == 1
    loops = topology.boundary_loops(f)
    outline = trimesh.Trimesh(v, f, process=False).outline().entities
    assert len(loops) == len(outline) == 2
    assert sorted(map(len, loops)) == sorted(len(e.points) - 1 for e in outline)
    assert topology.euler_characteristic(f, len(v)) == 0  # an annulus


@pytest.mark.slow
def test_full_size_template_matches_bfm_counts():
    from meshkit.synthetic import face_template

    v, f = face_template()
    # the real mesh (shared/REAL_FILES.md): 105,840 triangles, loops of 512 (rim) and 78 (mouth)
    assert v.shape == (53215, 3) and f.shape == (105840, 3)
    assert topology.is_manifold(f, len(v))
    assert sorted(map(len, topology.boundary_loops(f))) == [78, 512]


@pytest.mark.parametrize(
    "steps, want",
    [
        ([(1, 2), (2, 3), (3, 1)], [1, 2, 3]),  # closed fan: starts at the smallest source
        ([(3, 1), (2, 3), (1, 2)], [1, 2, 3]),
        ([(5, 6), (4, 5)], [4, 5, 6]),  # open fan: from the source nobody ends at, D + 1 vertices
        ([(1, 2), (2, 1), (3, 4), (4, 3)], None),  # two closed fans
        ([(1, 2), (3, 4)], None),  # two open fans
        ([(1, 2), (1, 3)], None),  # a repeated source (inconsistent winding)
        ([(1, 3), (2, 3)], None),  # a repeated target
        ([(1, 2), (3, 4), (4, 3)], None),  # an open fan beside a closed one
    ],
)
def test_fan_order(steps, want):
    from meshkit._kernels.topology import fan_order

    src = np.array([s for s, _ in steps], dtype=np.int64)
    dst = np.array([d for _, d in steps], dtype=np.int64)
    out = np.full(len(steps) + 1, -1, dtype=np.int64)
    n = fan_order(src, dst, out)
    if want is None:
        assert n == -1
    else:
        assert out[:n].tolist() == want


# ---------------------------------------------------------------------------------------------
# orientation


def _scrambled(f, seed, p=0.4):
    """``f`` with a random subset of faces reversed (as a careless exporter might write them)."""
    flip = np.random.default_rng(seed).random(len(f)) < p
    return np.where(flip[:, None], f[:, [0, 2, 1]], f)


def _closed_parts():
    """Closed surfaces of several shapes (one non-convex: the torus), wound outward, as one mesh."""
    parts = [trimesh.creation.icosphere(subdivisions=2), trimesh.creation.torus(2.0, 0.6),
             trimesh.creation.capsule(height=2.0, radius=0.5)]
    vs, fs, off = [], [], 0
    for k, m in enumerate(parts):
        vs.append(np.asarray(m.vertices) + [8.0 * k, 0, 0])
        fs.append(np.asarray(m.faces) + off)
        off += len(m.vertices)
    return np.vstack(vs), np.vstack(fs)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000))
def test_is_consistently_oriented_matches_trimesh(seed):
    v, f = _closed_parts()
    g = _scrambled(f, seed, p=float(np.random.default_rng(seed).choice([0.0, 0.01, 0.5])))
    ref = trimesh.Trimesh(v, g, process=False).is_winding_consistent
    assert topology.is_consistently_oriented(g) == ref


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.booleans())
def test_orient_outward_closed_components_have_positive_volume(seed, reverse_all):
    v, f = _closed_parts()
    g = _scrambled(f if not reverse_all else f[:, ::-1], seed)
    out = topology.orient_outward(v, g)
    assert topology.is_consistently_oriented(out)
    # the same triangles, same order, same first corner; only the winding changes
    np.testing.assert_array_equal(np.sort(out, axis=1), np.sort(g, axis=1))
    np.testing.assert_array_equal(out[:, 0], g[:, 0])
    n, labels = topology.connected_components(out, len(v))
    for c in range(n):
        sub = out[labels[out[:, 0]] == c]
        assert trimesh.Trimesh(v, sub, process=False).volume > 0  # trimesh: signed volume, outward = positive


def _hemisphere_shell():
    """An open face-like shell: the front (z > 0) cap of a sphere, wound outward."""
    m = trimesh.creation.icosphere(subdivisions=3)
    v, f = np.asarray(m.vertices), np.asarray(m.faces)
    return v, f[v[f].mean(axis=1)[:, 2] > 0.2]


@pytest.mark.parametrize("view", [None, (0.0, 0.0, 1.0), (0.3, -0.2, 1.0)])
def test_orient_outward_open_shell_faces_the_viewer(view):
    v, f = _hemisphere_shell()
    for g in (f[:, ::-1], _scrambled(f, 3)):
        out = topology.orient_outward(v, g, view_direction=view)
        assert topology.is_consistently_oriented(out)
        # trimesh's face normals (its own cross products) of the cap point to +z and away from the centre
        normals = trimesh.Trimesh(v, out, process=False).face_normals
        assert (normals[:, 2] > 0).all()


def test_orient_outward_view_direction_decides_open_parts():
    v, f = grid_mesh(6, 5)  # a flat sheet: no outward side, the viewer decides
    for d in ((0, 0, 1.0), (0, 0, -1.0)):
        out = topology.orient_outward(v, _scrambled(f, 1), view_direction=d)
        normals = np.cross(v[out[:, 1]] - v[out[:, 0]], v[out[:, 2]] - v[out[:, 0]])
        assert (normals @ np.asarray(d) > 0).all()


def test_orient_outward_leaves_a_moebius_strip_as_given():
    n = 12  # a strip of 2n triangles whose ends are glued with a half twist
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    ring = []
    for s in (-1.0, 1.0):
        w = 0.3 * s
        ring.append(np.column_stack([(1 + w * np.cos(t / 2)) * np.cos(t), (1 + w * np.cos(t / 2)) * np.sin(t),
                                     w * np.sin(t / 2)]))
    v = np.vstack(ring)  # 0..n-1 one edge, n..2n-1 the other
    f = []
    for i in range(n):
        j = (i + 1) % n
        a, b, c, d = i, j, n + i, n + j
        if j == 0:  # the twist: the edges swap
            b, d = n + j, j
        f += [[a, b, d], [a, d, c]]
    f = np.asarray(f)
    out = topology.orient_outward(v, f)
    assert not topology.is_consistently_oriented(out)
    assert trimesh.Trimesh(v, f, process=False).is_winding_consistent is False


def test_outward_fraction_and_warning():
    m = trimesh.creation.icosphere(subdivisions=2)
    v, f = np.asarray(m.vertices), np.asarray(m.faces)
    assert topology.outward_fraction(v, f) == 1.0
    assert topology.outward_fraction(v, topology.reverse_winding(f)) == 0.0
    np.testing.assert_array_equal(topology.reverse_winding(topology.reverse_winding(f)), f)
    with pytest.warns(UserWarning, match="orient_outward"):
        assert topology.warn_if_inward(v, f[:, ::-1]) == 0.0
    with pytest.warns(UserWarning, match="viewer"):
        topology.warn_if_inward(*_hemisphere_shell()[:1], _hemisphere_shell()[1][:, ::-1], view_direction=(0, 0, 1))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        topology.warn_if_inward(v, f)
    hv, hf = _hemisphere_shell()
    # the facing fraction of a +z cap: its whole area faces +z, none faces -z (trimesh areas as the reference)
    assert topology.facing_fraction(hv, hf, (0, 0, 1)) == pytest.approx(1.0)
    assert topology.facing_fraction(hv, hf, (0, 0, -1)) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="view_direction"):
        topology.orient_outward(hv, hf, view_direction=(0, 0, 0))


def test_orientation_tools_on_a_mesh_with_the_real_bfm_connectivity():
    """Not only the synthetic template: a grid of alternating diagonals (valence 4 / 8) with an outer
    rim and a mouth opening, as the real 53,215-vertex mesh (REAL_FILES.md)."""
    v, f = bfm_like_face()
    counts = np.bincount(f.ravel(), minlength=len(v))
    assert set(np.unique(counts[(counts > 0) & ~topology.boundary_vertices(f, len(v))])) == {4, 8}
    assert len(topology.boundary_loops(f)) == 2
    assert topology.outward_fraction(v, f) > 0.97 and topology.outward_fraction(v, f[:, ::-1]) < 0.03
    for g in (f[:, ::-1], _scrambled(f, 7)):
        for view in (None, (0.0, 0.0, 1.0)):
            out = topology.orient_outward(v, g, view_direction=view)
            assert topology.is_consistently_oriented(out)
            assert trimesh.Trimesh(v, out, process=False).is_winding_consistent
            np.testing.assert_array_equal(np.sort(out, axis=1), np.sort(f, axis=1))
            assert (trimesh.Trimesh(v, out, process=False).face_normals[:, 2] > 0).all()
