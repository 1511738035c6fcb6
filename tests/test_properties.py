"""Property-based tests (hypothesis) for issue #15: decimation at any coordinate scale, spiral first
rings, mesh-file round trips at extreme magnitudes, hierarchy save/load. References are independent:
networkx for rings, the face list itself for winding, float32 rounding by numpy for float32 formats,
brute-force closest points for ``up``. Examples are few and derandomized to keep the run short."""

import networkx as nx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests._helpers import brute_closest, grid_mesh

_SETTINGS = {"deadline": None, "derandomize": True, "suppress_health_check": [HealthCheck.too_slow,
                                                                               HealthCheck.function_scoped_fixture]}


def _shuffled_grid(nx_, ny, seed, jitter=0.25):
    """A jittered grid with its faces in random order and each face's corners rotated at random
    (same triangles, same winding)."""
    v, f = grid_mesh(nx_, ny, jitter=jitter, seed=seed)
    rng = np.random.default_rng(seed)
    v[:, 2] = 0.2 * np.sin(v[:, 0]) * np.cos(v[:, 1])  # a gentle bump: not planar
    f = f[rng.permutation(len(f))]
    r = rng.integers(0, 3, len(f))
    f = np.stack([np.roll(row, k) for row, k in zip(f, r, strict=True)])
    return v, f


# --- decimation: exact counts and CoMA semantics at any scale ------------------------------------


@settings(max_examples=15, **_SETTINGS)
@given(nx_=st.integers(6, 12), ny=st.integers(6, 12), seed=st.integers(0, 10_000), factor=st.floats(1.5, 4.0),
       exponent=st.integers(-250, 250))
def test_decimation_is_the_same_at_any_power_of_two_scale(nx_, ny, seed, factor, exponent):
    from meshkit.decimate import decimate

    v, f = _shuffled_grid(nx_, ny, seed)
    d = decimate(v, f, factor=factor)
    n, nc = len(v), int(np.ceil(len(v) / factor))
    assert len(d.vertices) == nc and (np.diff(d.kept) > 0).all()
    assert np.array_equal(d.vertices, v[d.kept]) and np.array_equal(d.down @ v, v[d.kept])
    up = d.up.tocsr()
    rows = np.diff(up.indptr)
    assert rows.min() >= 1 and rows.max() <= 3 and (up.data > 0).all()
    np.testing.assert_allclose(np.asarray(up.sum(axis=1)).ravel(), 1.0, rtol=0, atol=1e-12)
    # up puts each fine vertex on its closest point of the coarse surface (brute force)
    back = up @ d.vertices
    for i in np.random.default_rng(seed).choice(n, 10, replace=False):
        dist, _ = brute_closest(d.vertices, d.faces, v[i])
        assert np.linalg.norm(back[i] - v[i]) == pytest.approx(dist.min(), rel=1e-9, abs=1e-12)
    # multiplying by 2**k is exact in floating point, so every decision is the same (up to 2**+-250:
    # beyond, decimate's own degenerate-face check squares areas that underflow)
    ds = decimate(v * 2.0**exponent, f, factor=factor)
    np.testing.assert_array_equal(ds.kept, d.kept)
    np.testing.assert_array_equal(ds.faces, d.faces)
    np.testing.assert_array_equal(ds.up.toarray(), up.toarray())


# --- spirals: the first ring is the one-ring, in the faces' winding --------------------------------


@settings(max_examples=20, **_SETTINGS)
@given(nx_=st.integers(3, 9), ny=st.integers(3, 9), seed=st.integers(0, 10_000), extra=st.integers(0, 4))
def test_spiral_first_ring_is_the_one_ring_in_winding_order(nx_, ny, seed, extra):
    from meshkit.spiral import spiral_indices

    v, f = _shuffled_grid(nx_, ny, seed)
    g = nx.Graph()
    g.add_nodes_from(range(len(v)))
    for a, b, c in f.tolist():
        g.add_edges_from([(a, b), (b, c), (c, a)])
    length = max(dict(g.degree).values()) + 1 + extra
    s = spiral_indices(f, length)
    assert s.shape == (len(v), length) and (s[:, 0] == np.arange(len(v))).all()
    faces = {tuple(np.roll(row, k)) for row in f.tolist() for k in range(3)}  # every rotation of every face
    on_one_face = {}
    for a, b, c in f.tolist():
        for e in ((a, b), (b, c), (c, a)):
            on_one_face[frozenset(e)] = on_one_face.get(frozenset(e), 0) + 1
    boundary = {u for e, k in on_one_face.items() if k == 1 for u in e}
    for c in range(len(v)):
        k = g.degree[c]
        ring = s[c, 1:1 + k].tolist()
        assert sorted(ring) == sorted(g.neighbors(c))  # the one-ring, each neighbour once
        # around an interior vertex the ring closes; along the boundary it is a path
        pairs = list(zip(ring, ring[1:] + ring[:1], strict=True)) if c not in boundary else list(
            zip(ring[:-1], ring[1:], strict=True))
        for a, b in pairs:  # consecutive neighbours span a face wound (c, a, b)
            assert (c, a, b) in faces


# --- mesh files: round trips at extreme magnitudes ------------------------------------------------

_finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=25, **_SETTINGS)
@given(values=st.lists(_finite, min_size=36, max_size=36), exponent=st.integers(-320, 300),
       ext=st.sampled_from(["ply", "obj", "off", "npz"]))
def test_float64_formats_round_trip_bit_for_bit(tmp_path, values, exponent, ext):
    from meshkit.io import read_mesh, write_mesh

    v, f = grid_mesh(4, 3)
    with np.errstate(over="ignore", under="ignore"):
        scaled = np.asarray(values).reshape(12, 3) * 10.0**exponent
    v = np.where(np.isfinite(scaled), scaled, v)  # any finite float64, from subnormals to 1.8e308
    m = read_mesh(write_mesh(tmp_path / f"m.{ext}", v, f))
    np.testing.assert_array_equal(m.vertices.view(np.int64), v.view(np.int64))
    np.testing.assert_array_equal(m.faces, f)


@settings(max_examples=15, **_SETTINGS)
@given(exponent=st.integers(-30, 30), seed=st.integers(0, 10_000), ext=st.sampled_from(["stl", "glb"]))
def test_float32_formats_round_trip_to_float32(tmp_path, exponent, seed, ext):
    from meshkit.io import read_mesh, write_mesh

    v, f = grid_mesh(4, 3, jitter=0.3, seed=seed)
    v = v * 10.0**exponent
    m = read_mesh(write_mesh(tmp_path / f"m.{ext}", v, f))
    expected = v[f].reshape(-1, 3) if ext == "stl" else v  # STL stores each triangle's own corners
    np.testing.assert_array_equal(m.vertices, expected.astype(np.float32).astype(np.float64))


@settings(max_examples=15, **_SETTINGS)
@given(colors=st.lists(st.tuples(*[st.integers(0, 255)] * 3), min_size=12, max_size=12),
       ext=st.sampled_from(["ply", "obj", "npz"]))
def test_vertex_colours_round_trip(tmp_path, colors, ext):
    from meshkit.io import read_mesh, write_mesh

    v, f = grid_mesh(4, 3)
    c = np.asarray(colors, dtype=np.uint8)
    _, back = read_mesh(write_mesh(tmp_path / f"m.{ext}", v, f, colors=c), return_colors=True)
    np.testing.assert_array_equal(back[:, :3], c)


# --- hierarchies: save / load --------------------------------------------------------------------


@settings(max_examples=8, **_SETTINGS)
@given(n=st.integers(200, 600), factors=st.lists(st.sampled_from([2.0, 3.0, 4.0]), min_size=1, max_size=2),
       length=st.integers(3, 12), padding=st.sampled_from(["repeat", "sentinel"]),
       laplacian=st.sampled_from(["normalized", "combinatorial", "random_walk"]))
def test_hierarchy_save_load_round_trip(tmp_path, n, factors, length, padding, laplacian):
    from meshkit.synthetic import face_template
    from sampling import build_hierarchy, load

    v, f = face_template(n)
    h = build_hierarchy(v, f, factors=factors, spiral_length=length, padding=padding, laplacian=laplacian)
    g = load(h.save(tmp_path / "h.npz"), template=(v, f))
    assert g.n_vertices == h.n_vertices and g.params == h.params and g.template_hash == h.template_hash
    for a, b in zip(h.levels, g.levels, strict=True):
        for name in ("vertices", "faces", "spirals"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        for name in ("adjacency", "laplacian"):
            assert (getattr(a, name) != getattr(b, name)).nnz == 0
        assert a.lmax == b.lmax
    for i in range(len(h.down)):
        assert (h.down[i] != g.down[i]).nnz == 0 and (h.up[i] != g.up[i]).nnz == 0
        np.testing.assert_array_equal(h.kept[i], g.kept[i])
