import os

import meshio
import numpy as np
import pytest
import trimesh

from meshkit import Mesh
from meshkit.io import atomic_path, merge_vertices, read_mesh, write_mesh


@pytest.fixture
def shuffled_face(small_face):
    """The synthetic face with its vertices in a random order, so any reordering would show."""
    v, f = small_face
    perm = np.random.default_rng(0).permutation(len(v))
    inv = np.argsort(perm)
    return v[perm], inv[f]


@pytest.mark.parametrize("ext", ["ply", "obj", "off", "npz"])
def test_round_trip_keeps_vertex_order(tmp_path, shuffled_face, ext):
    v, f = shuffled_face
    p = write_mesh(tmp_path / f"m.{ext}", v, f)
    m = read_mesh(p)
    np.testing.assert_array_equal(m.faces, f)
    np.testing.assert_allclose(m.vertices, v, rtol=0, atol=1e-9 * np.abs(v).max())


@pytest.mark.parametrize("ext", ["ply", "obj", "off"])
def test_files_read_by_an_independent_reader(tmp_path, shuffled_face, ext):
    v, f = shuffled_face
    p = write_mesh(tmp_path / f"m.{ext}", v, f)
    other = meshio.read(p)
    np.testing.assert_allclose(other.points, v, rtol=0, atol=1e-9 * np.abs(v).max())
    np.testing.assert_array_equal(other.cells_dict["triangle"], f)


def test_reads_files_written_by_trimesh_in_order(tmp_path, shuffled_face):
    v, f = shuffled_face
    tm = trimesh.Trimesh(v, f, process=False)
    for ext in ("obj", "off"):
        p = tmp_path / f"t.{ext}"
        tm.export(p)
        np.testing.assert_array_equal(read_mesh(p).faces, f)


@pytest.mark.parametrize("ext", ["ply", "obj", "npz"])
def test_colours_survive(tmp_path, small_face, ext):
    v, f = small_face
    c = np.random.default_rng(1).integers(0, 256, (len(v), 3)).astype(np.uint8)
    _, col = read_mesh(write_mesh(tmp_path / f"c.{ext}", v, f, colors=c), return_colors=True)
    np.testing.assert_array_equal(col[:, :3], c)


def test_stl_is_unshared_and_merge_is_explicit(tmp_path, small_face):
    v, f = small_face
    m = read_mesh(write_mesh(tmp_path / "m.stl", v, f))
    assert m.n_vertices == 3 * len(f)  # STL keeps corners apart; nothing merged behind our back
    v2, f2, index = merge_vertices(m.vertices, m.faces)
    assert len(v2) == len(v) and len(f2) == len(f)
    # welded mesh is the same surface: same set of triangles as coordinate triples
    a = np.sort(np.round(v2[f2], 2).reshape(len(f2), -1), axis=0)
    b = np.sort(np.round(v[f].astype(np.float32).astype(float), 2).reshape(len(f), -1), axis=0)
    np.testing.assert_allclose(a, b, atol=0.02)
    assert index.shape == (m.n_vertices,)


def test_merge_with_tolerance_drops_collapsed_faces():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1e-9, 0, 0]], float)
    f = np.array([[0, 1, 2], [0, 3, 2]])
    v2, f2, index = merge_vertices(v, f, tolerance=1e-6)
    assert len(v2) == 3 and f2.tolist() == [[0, 1, 2]] and index.tolist() == [0, 1, 2, 0]


def test_mesh_object_and_errors(tmp_path, small_face):
    m = Mesh(*small_face)
    assert read_mesh(write_mesh(tmp_path / "m.npz", m)) == m
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_mesh(tmp_path / "missing.ply")
    with pytest.raises(ValueError, match="expected a file ending in"):
        read_mesh(tmp_path / "m.xyz")
    bad = tmp_path / "bad.ply"
    bad.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 10\nproperty float x\nend_header\n\x00")
    with pytest.raises(ValueError, match="bad.ply"):
        read_mesh(bad)
    trunc = tmp_path / "t.npz"
    trunc.write_bytes((tmp_path / "m.npz").read_bytes()[:100])
    with pytest.raises(ValueError, match="could not read"):
        read_mesh(trunc)
    with pytest.raises(ValueError, match="colors"):
        write_mesh(tmp_path / "c.ply", *small_face, colors=np.zeros((3, 3)))
    for ext in ("off", "stl"):  # colours are refused, not silently lost
        with pytest.raises(ValueError, match="cannot store per-vertex colours"):
            write_mesh(tmp_path / f"c.{ext}", *small_face, colors=np.zeros((len(small_face[0]), 3)))
        assert not (tmp_path / f"c.{ext}").exists()


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.npy"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("crash")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.npy"]
    with atomic_path(target) as tmp:
        np.save(tmp, np.arange(3))
    assert np.load(target).tolist() == [0, 1, 2]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() would create it, not mkstemp's 0600
