import math
import pickle

import numpy as np
import pytest
import scipy.sparse as sp
import trimesh

import sampling
from meshkit import topology
from sampling import build_hierarchy


@pytest.fixture(scope="module")
def face():
    from meshkit.synthetic import face_template

    return face_template(2000)


@pytest.fixture(scope="module")
def hier(face):
    return build_hierarchy(*face, factors=(4, 4, 4), spiral_length=9)


def test_counts_are_exact_ceilings(hier, face):
    n = [len(face[0])]
    for fac in (4, 4, 4):
        n.append(math.ceil(n[-1] / fac))
    assert hier.n_vertices == n == [2000, 500, 125, 32]


def test_levels_are_valid_meshes(hier):
    # no flipped faces, on any surface: each coarse face's normal agrees in sign with the fine
    # surface's normal where it stands, the mean of the fine vertex normals (trimesh's) at its three
    # corners, which are fine vertices
    fine_normals = trimesh.Trimesh(hier.levels[0].vertices, hier.levels[0].faces, process=False).vertex_normals
    fine_ids = np.arange(hier.levels[0].n_vertices)  # level i's vertices as level-0 vertex ids
    for i, lv in enumerate(hier.levels):
        if i > 0:
            fine_ids = fine_ids[hier.kept[i - 1]]
        assert topology.is_manifold(lv.faces, lv.n_vertices), f"level {i}"
        assert topology.connected_components(lv.faces, lv.n_vertices)[0] == 1
        used = np.unique(lv.faces)
        assert len(used) == lv.n_vertices  # no isolated vertices
        assert topology.is_consistently_oriented(lv.faces), f"level {i}"
        np.testing.assert_array_equal(lv.vertices, hier.levels[0].vertices[fine_ids])
        n = trimesh.Trimesh(lv.vertices, lv.faces, process=False).face_normals
        there = fine_normals[fine_ids[lv.faces]].mean(axis=1)
        assert ((n * there).sum(axis=1) > 0).all(), f"level {i} has a face flipped against the fine surface"


def test_operators_chain_and_are_consistent(hier):
    for i in range(len(hier.down)):
        fine, coarse = hier.levels[i], hier.levels[i + 1]
        assert hier.down[i].shape == (coarse.n_vertices, fine.n_vertices)
        assert hier.up[i].shape == (fine.n_vertices, coarse.n_vertices)
        # down selects kept vertices exactly
        np.testing.assert_array_equal(hier.down[i] @ fine.vertices, fine.vertices[hier.kept[i]])
        np.testing.assert_array_equal(coarse.vertices, fine.vertices[hier.kept[i]])
        up = hier.up[i].tocsr()
        np.testing.assert_allclose(np.asarray(up.sum(axis=1)).ravel(), 1.0, atol=1e-12)
        assert up.data.min() >= 0 and np.diff(up.indptr).max() <= 3


def test_per_level_operators_match_independent_builds(hier):
    import networkx as nx

    for lv in hier.levels:
        g = nx.Graph()
        g.add_nodes_from(range(lv.n_vertices))
        for a, b, c in lv.faces:
            g.add_edges_from([(a, b), (b, c), (c, a)])
        A = nx.to_scipy_sparse_array(g, nodelist=range(lv.n_vertices), format="csr")
        assert (lv.adjacency != A).nnz == 0
        # CoMA's rescaling of the normalized Laplacian with lmax = 2: L_hat = L - I = -D^-1/2 A D^-1/2
        Ln = nx.normalized_laplacian_matrix(g, nodelist=range(lv.n_vertices))
        np.testing.assert_allclose((lv.laplacian - (Ln - sp.eye(lv.n_vertices))).toarray(), 0, atol=1e-12)
        assert lv.spirals.shape == (lv.n_vertices, 9)
        np.testing.assert_array_equal(lv.spirals[:, 0], np.arange(lv.n_vertices))


def test_round_trip_error_is_bounded(hier):
    errs = hier.round_trip_error()
    means = [m for m, _ in errs]
    assert means == sorted(means)  # coarser levels lose more
    assert errs[0][0] < 2e-3 and errs[-1][1] < 0.1
    text = hier.summary()
    assert "round-trip" in text and "2000" in text


def test_save_load_identical(tmp_path, hier, face):
    p = hier.save(tmp_path / "h.npz")
    h2 = sampling.load(p, template=face)
    assert h2.n_vertices == hier.n_vertices and h2.params == hier.params
    for a, b in zip(hier.levels, h2.levels, strict=True):
        np.testing.assert_array_equal(a.vertices, b.vertices)
        np.testing.assert_array_equal(a.faces, b.faces)
        np.testing.assert_array_equal(a.spirals, b.spirals)
        assert (a.laplacian != b.laplacian).nnz == 0 and (a.adjacency != b.adjacency).nnz == 0
    for i in range(len(hier.down)):
        assert (hier.down[i] != h2.down[i]).nnz == 0 and (hier.up[i] != h2.up[i]).nnz == 0
        np.testing.assert_array_equal(hier.kept[i], h2.kept[i])
    # loads without pickle
    with np.load(p, allow_pickle=False) as z:
        assert "metadata" in z.files


def test_load_refuses_other_template(tmp_path, hier, face):
    p = hier.save(tmp_path / "h.npz")
    v, f = face
    with pytest.raises(ValueError, match="different template"):
        sampling.load(p, template=(v + 1.0, f))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(p.read_bytes()[:200])
    with pytest.raises(ValueError, match="not a readable meshkit hierarchy"):
        sampling.load(bad)


def test_cache_reuses_identical_inputs(tmp_path, face):
    h1 = build_hierarchy(*face, factors=(4,), cache_dir=tmp_path)
    files = list(tmp_path.glob("hierarchy-*.npz"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns
    h2 = build_hierarchy(*face, factors=(4,), cache_dir=tmp_path)
    assert files[0].stat().st_mtime_ns == mtime  # reused, not rebuilt
    np.testing.assert_array_equal(h1.levels[1].vertices, h2.levels[1].vertices)
    build_hierarchy(*face, factors=(4,), spiral_length=5, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("hierarchy-*.npz"))) == 2  # other parameters, other entry


def test_cache_is_not_reused_across_code_versions(tmp_path, face, monkeypatch):
    """A cache entry made by code whose operators differ (another CACHE_VERSION or meshkit version)
    is a miss: decimation changed its output this round, and old caches must not pass for new ones."""
    import sampling.hierarchy as hierarchy

    build_hierarchy(*face, factors=(4,), cache_dir=tmp_path)
    monkeypatch.setattr(hierarchy, "CACHE_VERSION", hierarchy.CACHE_VERSION + 1)
    build_hierarchy(*face, factors=(4,), cache_dir=tmp_path)
    assert len(list(tmp_path.glob("hierarchy-*.npz"))) == 2


def test_exports_readable_by_plain_pickle(tmp_path, hier):
    p = hier.export_spiralnet(tmp_path / "transform.pkl")
    with open(p, "rb") as fh:
        t = pickle.load(fh, encoding="latin1")
    assert set(t) == {"vertices", "face", "adj", "down_transform", "up_transform"}
    assert [len(x) for x in t["vertices"]] == hier.n_vertices
    assert len(t["down_transform"]) == len(t["up_transform"]) == len(hier.levels) - 1
    for i, d in enumerate(t["down_transform"]):
        assert sp.issparse(d) and d.shape == (hier.n_vertices[i + 1], hier.n_vertices[i])
        np.testing.assert_allclose(d @ t["vertices"][i], t["vertices"][i + 1], rtol=1e-6)
        assert t["up_transform"][i].shape == d.shape[::-1]
    p = hier.export_neural3dmm(tmp_path / "downsampling_matrices.pkl")
    with open(p, "rb") as fh:
        n = pickle.load(fh)
    assert set(n) == {"M_verts_faces", "A", "D", "U", "F"}
    assert [v.shape[0] for v, _ in n["M_verts_faces"]] == hier.n_vertices
    assert all(a.shape == (k, k) for a, k in zip(n["A"], hier.n_vertices, strict=True))


def test_to_torch(hier):
    torch = pytest.importorskip("torch")
    t = hier.to_torch()
    x = torch.from_numpy(hier.levels[0].vertices).float()
    np.testing.assert_allclose((t["down"][0] @ x).numpy(), hier.levels[1].vertices, rtol=1e-5)
    assert t["spirals"][1].dtype == torch.int64 and tuple(t["spirals"][1].shape) == (500, 9)


def test_bad_input_names_the_level(face):
    with pytest.raises(ValueError, match=r"factors\[1\]: expected a factor > 1"):
        build_hierarchy(*face, factors=(4, 1))
    with pytest.raises(ValueError, match=r"level 3"):
        build_hierarchy(*face, factors=(4, 4, 100))
    with pytest.raises(ValueError, match="spiral_length: expected one value or 3"):
        build_hierarchy(*face, factors=(4, 4), spiral_length=[9, 9])


@pytest.mark.slow
def test_full_size_template_counts():
    from meshkit.synthetic import face_template

    h = build_hierarchy(*face_template(), factors=(4, 4, 4, 4, 4))
    assert h.n_vertices == [53215, 13304, 3326, 832, 208, 52]


def test_preview_of_a_clockwise_mesh_warns_and_is_not_dark(face):
    """The hierarchy preview on a mesh wound clockwise (as the real BFM lists are stored) warns,
    naming the fix, and shades two-sided: the same picture as the outward mesh."""
    import dataclasses

    from sampling.preview import render_levels

    v, f = face
    h = build_hierarchy(v, f, factors=[4])
    # the same hierarchy with every level re-wound (not decimated again: on a regular grid, the
    # rounding of the reversed corners' plane equations can flip near-tied collapses)
    cw_levels = tuple(dataclasses.replace(lv, faces=lv.faces[:, ::-1].copy()) for lv in h.levels)
    ccw = render_levels(h, 64)
    with pytest.warns(UserWarning, match="orient_outward"):
        cw = render_levels(dataclasses.replace(h, levels=cw_levels), 64)
    assert np.abs(ccw.astype(int) - cw.astype(int)).max() <= 1


def test_preview_of_an_outward_mesh_facing_minus_z_shows_its_front(face):
    """A mesh wound outward whose front looks along -z (3DDFA's bfm.ply puts z away from the viewer):
    the preview views it from that side, with no warning: the same picture as the mesh facing +z
    (every level turned 180 degrees about y, which is exact in floating point)."""
    import dataclasses
    import warnings

    from sampling.preview import render_levels

    v, f = face
    h = build_hierarchy(v, f, factors=[4])
    turned = tuple(dataclasses.replace(lv, vertices=lv.vertices * np.array([-1.0, 1.0, -1.0])) for lv in h.levels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = render_levels(dataclasses.replace(h, levels=turned), 64)
    np.testing.assert_array_equal(back, render_levels(h, 64))
