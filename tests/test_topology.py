import networkx as nx
import numpy as np
import pytest
import trimesh
from hypothesis import given, settings
from hypothesis import strategies as st

from meshkit import topology
from tests._helpers import grid_mesh


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
