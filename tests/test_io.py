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


def two_colour_texture():
    """Left half red, right half green: which half shows where tells the UVs were applied."""
    tex = np.zeros((64, 64, 3), np.uint8)
    tex[:, :32, 0] = 255
    tex[:, 32:, 1] = 255
    return tex


def planar_uv(v):
    return (v[:, :2] - v[:, :2].min(0)) / np.ptp(v[:, :2], axis=0)


def test_textured_obj_read_by_trimesh_with_its_texture(tmp_path, shuffled_face):
    v, f = shuffled_face
    uv, tex = planar_uv(v), two_colour_texture()
    p = write_mesh(tmp_path / "face.obj", v, f, uv=uv, texture=tex)
    assert sorted(os.listdir(tmp_path)) == ["face.mtl", "face.obj", "face.png"]
    tm = trimesh.load(p, process=False, maintain_order=True)
    np.testing.assert_array_equal(tm.vertices, v)  # shortest repr: float64 exactly
    np.testing.assert_array_equal(tm.faces, f)
    np.testing.assert_array_equal(tm.visual.uv, uv)
    np.testing.assert_array_equal(np.asarray(tm.visual.material.image.convert("RGB")), tex)
    m, got_uv = read_mesh(p, return_uv=True)
    np.testing.assert_array_equal(m.vertices, v)
    np.testing.assert_array_equal(got_uv, uv)
    m, colors, got_uv = read_mesh(p, return_colors=True, return_uv=True)
    assert colors is None and got_uv.shape == uv.shape
    assert read_mesh(write_mesh(tmp_path / "plain.obj", v, f), return_uv=True)[1] is None


def test_textured_obj_read_and_rendered_by_pyvista(tmp_path, shuffled_face):
    pv = pytest.importorskip("pyvista")
    v, f = shuffled_face
    uv, tex = planar_uv(v), two_colour_texture()
    p = write_mesh(tmp_path / "face.obj", v, f, uv=uv, texture=tex)
    mesh = pv.read(p)
    np.testing.assert_array_equal(np.asarray(mesh.points), v)
    np.testing.assert_allclose(np.asarray(mesh.active_texture_coordinates), uv, rtol=0, atol=1e-6)
    # the OBJ importer follows mtllib -> map_Kd: the face seen from +z shows red left, green right
    pl = pv.Plotter(off_screen=True, window_size=(128, 128))
    pl.import_obj(str(p))
    pl.view_xy()
    img = pl.screenshot(return_img=True).astype(int)
    pl.close()
    r, g = img[..., 0], img[..., 1]
    red, green = (r > 150) & (g < 80), (g > 150) & (r < 80)
    assert red.mean() > 0.05 and green.mean() > 0.05  # textured, not uniformly shaded
    cols = np.arange(img.shape[1])
    assert (red * cols).sum() / red.sum() < (green * cols).sum() / green.sum()


def test_textured_glb_and_npz_uv(tmp_path, shuffled_face):
    v, f = shuffled_face
    uv, tex = planar_uv(v), two_colour_texture()
    p = write_mesh(tmp_path / "face.glb", v, f, uv=uv, texture=tex.astype(float) / 255)
    assert os.listdir(tmp_path) == ["face.glb"]
    tm = trimesh.load(p, process=False, maintain_order=True, force="mesh")
    np.testing.assert_allclose(tm.vertices, v, rtol=1e-7)  # glTF stores float32
    np.testing.assert_array_equal(tm.faces, f)
    np.testing.assert_allclose(tm.visual.uv, uv, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(np.asarray(tm.visual.material.baseColorTexture.convert("RGB")), tex)
    m, got_uv = read_mesh(p, return_uv=True)
    np.testing.assert_allclose(got_uv, uv, rtol=0, atol=1e-7)
    m, got_uv = read_mesh(write_mesh(tmp_path / "face.npz", v, f, uv=uv), return_uv=True)
    np.testing.assert_array_equal(got_uv, uv)
    c = np.random.default_rng(2).integers(0, 256, (len(v), 3)).astype(np.uint8)
    _, col = read_mesh(write_mesh(tmp_path / "c" / "face.glb", v, f, colors=c), return_colors=True)
    np.testing.assert_array_equal(col[:, :3], c)
    bare = write_mesh(tmp_path / "bare" / "face.obj", v, f, uv=uv)  # UVs without an image: no mtl, no png
    assert os.listdir(bare.parent) == ["face.obj"]
    np.testing.assert_array_equal(trimesh.load(bare, process=False, maintain_order=True).visual.uv, uv)


def test_textured_export_errors(tmp_path, small_face):
    v, f = small_face
    uv, tex = planar_uv(v), two_colour_texture()
    with pytest.raises(ValueError, match="uv: the ply writer cannot store texture coordinates"):
        write_mesh(tmp_path / "m.ply", v, f, uv=uv)
    with pytest.raises(ValueError, match="uv: expected one row per vertex"):
        write_mesh(tmp_path / "m.obj", v, f, uv=uv[:-1], texture=tex)
    with pytest.raises(ValueError, match="uv: expected .* texture coordinates with a texture"):
        write_mesh(tmp_path / "m.obj", v, f, texture=tex)
    with pytest.raises(ValueError, match="texture: the npz writer cannot store a texture"):
        write_mesh(tmp_path / "m.npz", v, f, uv=uv, texture=tex)
    with pytest.raises(ValueError, match=r"texture: expected float values in \[0, 1\]"):
        write_mesh(tmp_path / "m.obj", v, f, uv=uv, texture=tex * 2.0)
    with pytest.raises(ValueError, match="texture: expected shape"):
        write_mesh(tmp_path / "m.obj", v, f, uv=uv, texture=tex[..., :2])
    with pytest.raises(ValueError, match="colors: expected None when uv is given"):
        write_mesh(tmp_path / "m.obj", v, f, uv=uv, colors=np.zeros((len(v), 3)))
    assert os.listdir(tmp_path) == []  # nothing half-written
