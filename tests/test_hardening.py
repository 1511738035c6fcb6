"""Regression tests for issue #15: inputs that crashed the process or silently damaged data.

Every case where a crash (segfault, heap corruption) was possible runs in a fresh interpreter
(``tests._helpers.run_snippet``), so that a crash fails the test instead of killing the run.
"""

import json

import numpy as np
import pytest

from tests._helpers import assert_snippet_ok, brute_closest, grid_mesh

# --- closest points / barycentric transfer: tiny triangles far apart -------------------------------

_LAYOUTS = [(size, offset) for size in (1e-12, 1e-6, 1.0) for offset in ([1e12, 1e12, 1e12], [1e12, 0.0, 0.0])]


def _far_apart(size, offset):
    """Two triangles of side ``size``, the second moved by ``offset``, and 8 query points."""
    s, d = size, np.asarray(offset)
    v = np.r_[[[0, 0, 0], [s, 0, 0], [0, s, 0]], [[0, 0, 0], [s, 0, 0], [0, s, 0]] + d]
    return v, np.array([[0, 1, 2], [3, 4, 5]]), np.r_[v + 0.25 * s, [d / 2, -d, 3 * d]]


_FAR_APART = """
import json
import numpy as np
from meshkit.transfer import _grid_params, barycentric_transfer, closest_points
from tests.test_hardening import _LAYOUTS, _far_apart
out = []
for size, offset in _LAYOUTS:
    v, f, p = _far_apart(size, offset)
    r = closest_points(v, f, p)
    t = barycentric_transfer(v, f, p)
    _, _, _, _, dims, entries = _grid_params(v, f)
    out.append([r.face.tolist(), r.distance.tolist(), (t @ v).tolist(), bool(np.prod(dims.astype(float)) < 2.0**62),
                entries])
print(json.dumps(out))
"""


def test_closest_points_on_tiny_triangles_1e12_apart():
    # before: int64 overflow of the cell count (crash), a 4e10-cell grid (MemoryError), or minutes
    results = json.loads(assert_snippet_ok(_FAR_APART, timeout=120))
    for (size, offset), (face, dist, closest, keys_fit, entries) in zip(_LAYOUTS, results, strict=True):
        v, f, p = _far_apart(size, offset)
        for i in range(len(p)):
            ref, _ = brute_closest(v, f, p[i])
            assert face[i] == int(np.argmin(ref))
            assert dist[i] == pytest.approx(ref.min(), rel=1e-9, abs=1e-9 * size)
        np.testing.assert_allclose(np.linalg.norm(np.array(closest) - p, axis=1), dist, rtol=1e-9, atol=1e-9 * size)
        assert keys_fit
        assert entries <= 8 * len(f) + 64  # the grid stays O(F), whatever the mesh's extent


def test_closest_points_on_a_mesh_with_a_far_outlier_triangle_matches_brute_force():
    # a fine grid plus one triangle 1e9 away: the cells must follow the triangles' own size
    from meshkit.transfer import _grid_params, closest_points

    v, f = grid_mesh(30, 30, jitter=0.2, seed=3)
    v = np.r_[v, [[1e9, 0, 0], [1e9 + 1, 0, 0], [1e9, 1, 0]]]
    f = np.r_[f, [[len(v) - 3, len(v) - 2, len(v) - 1]]]
    rng = np.random.default_rng(0)
    p = np.r_[rng.uniform(-2, 32, (200, 3)), [[5e8, 0, 0], [2e9, 1, 1], [-1e9, 0, 0]]]
    r = closest_points(v, f, p)
    for i in range(len(p)):
        ref, _ = brute_closest(v, f, p[i])
        assert r.distance[i] == pytest.approx(ref.min(), rel=1e-9, abs=1e-9)
        assert r.face[i] == int(np.flatnonzero(ref == ref.min())[0]) or ref[r.face[i]] == pytest.approx(ref.min())
    _, _, _, h, _, entries = _grid_params(v, f)
    assert entries <= 8 * len(f) + 64
    assert h < 10.0  # cells about the triangles' size, not (1e9 / cells) wide


def test_closest_points_on_a_mesh_wider_than_float64_can_hold():
    # the mesh's extent (2e308) overflows float64; scaled by a power of two it does not
    from meshkit.transfer import barycentric_transfer, closest_points

    v = np.array([[-1e308, 0, 0], [1e308, 0, 0], [0, 1e308, 0]])
    f = np.array([[0, 1, 2]])
    p = np.array([[0.0, 0.0, 0.0], [5e307, -3e307, 0.0], [0.0, 5e307, 7e307]])
    r = closest_points(v, f, p)
    np.testing.assert_allclose(r.distance, [0.0, 3e307, 7e307], rtol=1e-15)
    np.testing.assert_allclose(barycentric_transfer(v, f, p).toarray(), [[0.5, 0.5, 0], [0.25, 0.75, 0], [0.25, 0.25, 0.5]])


# --- spiral_indices: length * dilation must not wrap -------------------------------------------------


def test_spiral_indices_rejects_a_length_times_dilation_that_overflows():
    # before: 4 * 2**62 wrapped to 0 and the kernel wrote past its buffer (heap corruption)
    code = """
from meshkit.synthetic import face_template
from meshkit.spiral import spiral_indices
v, f = face_template(200)
for length, dilation in [(4, 2**62), (2**40, 2**30), (3, 2**31)]:
    try:
        spiral_indices(f, length, dilation=dilation)
        print("returned")
    except ValueError as e:
        print(e)
"""
    out = assert_snippet_ok(code).splitlines()
    assert out == [f"dilation: expected length * dilation <= 2147483647, got {n} * {d} = {n * d}"
                   for n, d in [(4, 2**62), (2**40, 2**30), (3, 2**31)]]


def test_spiral_indices_with_a_dilation_beyond_the_mesh_pads_every_row():
    # a dilation far beyond the mesh still works: every row is the centre, padded (repeat -> itself)
    from meshkit.spiral import spiral_indices

    v, f = grid_mesh(4, 4)
    s = spiral_indices(f, 2, dilation=2**20)
    np.testing.assert_array_equal(s, np.repeat(np.arange(len(v))[:, None], 2, axis=1))


# --- Fragments of a Rasterizer: stale buffers; interpolate with other faces -----------------------

_STALE = """
import numpy as np
from meshkit.render import Rasterizer, interpolate
r = Rasterizer(32, 32)
small_v = np.array([[2.0, 2, 0], [30, 2, 0], [2, 30, 0]])
small_f = np.array([[0, 2, 1]])
frag = r(small_v, small_f)
big_v = np.random.default_rng(0).uniform(0, 32, (300, 3))
big_f = np.random.default_rng(1).integers(0, 300, (500, 3))
r(big_v, big_f)  # reuses the buffers: frag's face_index now points into big_f
reads = {"barycentric": lambda: frag.barycentric, "face_index": lambda: frag.face_index,
         "depth": lambda: frag.depth, "mask": lambda: frag.mask, "copy": frag.copy,
         "interpolate": lambda: interpolate(frag, small_f, np.ones(3))}
for name, read in reads.items():
    try:
        read()
        print(name, "returned")
    except ValueError as e:
        print(name, "ValueError", str(e))
"""


def test_reading_fragments_after_their_rasterizer_drew_another_frame_raises():
    # before: the stale face_index indexed the old faces out of bounds (garbage, inf, or a crash)
    out = assert_snippet_ok(_STALE).splitlines()
    assert len(out) == 6
    for line in out:
        assert " ValueError fragments: expected fragments of the current frame, got frame 1 of a Rasterizer now at " \
               "frame 2" in line, line


def test_copied_fragments_outlive_the_next_frame():
    from meshkit.render import Rasterizer, interpolate, rasterize

    r = Rasterizer(32, 32)
    v = np.array([[2.0, 2, 0], [30, 2, 0], [2, 30, 0]])
    f = np.array([[0, 2, 1]])
    kept = r(v, f).copy()
    r(v[:, [1, 0, 2]], f[:, ::-1])  # another frame
    fresh = rasterize(v, f, 32, 32)
    np.testing.assert_array_equal(kept.face_index, fresh.face_index)
    np.testing.assert_array_equal(kept.barycentric, fresh.barycentric)
    np.testing.assert_array_equal(interpolate(kept, f, v), interpolate(fresh, f, v))


def test_interpolate_rejects_a_different_faces_array_of_the_same_length():
    from meshkit.render import interpolate, rasterize

    v, f = grid_mesh(6, 5)
    frag = rasterize(v * 5 + 1, f, 32, 32)
    other = f[::-1].copy()  # same shape, same vertices, other order
    with pytest.raises(ValueError, match="faces: expected the faces that were rasterized, got a different array"):
        interpolate(frag, other, v)
    # an equal copy (or another dtype with the same content) is accepted
    np.testing.assert_array_equal(interpolate(frag, f.astype(np.int32), v), interpolate(frag, f, v))


# --- mesh files: exact float64 text, declared counts ------------------------------------------------


@pytest.mark.parametrize("ext", ["obj", "off", "ply", "npz"])
@pytest.mark.parametrize("scale", [1e-30, 1e-300, 1.0, 1e300])
def test_write_read_keeps_every_float64_bit(tmp_path, ext, scale):
    from meshkit.io import read_mesh, write_mesh

    rng = np.random.default_rng(7)
    v, f = grid_mesh(5, 4, jitter=0.3, seed=1)
    v = (v + rng.standard_normal(v.shape) * 1e-3) * scale
    v[0, 2] = -0.0
    v[1, 2] = 5e-324 if scale < 1 else 1.7976931348623157e308  # the smallest subnormal / the largest float
    m = read_mesh(write_mesh(tmp_path / f"m.{ext}", v, f))
    np.testing.assert_array_equal(m.vertices.view(np.int64), v.view(np.int64))  # bit for bit, signs of zeros too
    np.testing.assert_array_equal(m.faces, f)


def test_obj_and_off_are_written_with_shortest_repr_text(tmp_path):
    from meshkit.io import write_mesh

    v = np.array([[0.1, 1e-30, -2.5e300], [1.0, 0.0, 0.0], [0.0, 1.0, 1 / 3]])
    f = np.array([[0, 1, 2]])
    obj = write_mesh(tmp_path / "m.obj", v, f).read_text().splitlines()
    assert "v 0.1 1e-30 -2.5e+300" in obj and "v 0.0 1.0 0.3333333333333333" in obj and "f 1 2 3" in obj
    off = write_mesh(tmp_path / "m.off", v, f).read_text().splitlines()
    assert off[:3] == ["OFF", "3 1 0", "0.1 1e-30 -2.5e+300"] and off[-1] == "3 0 1 2"


_ASCII_PLY = ("ply\nformat ascii 1.0\ncomment test\nelement vertex {nv}\nproperty float x\nproperty float y\n"
              "property float z\nelement face {nf}\nproperty list uchar int vertex_indices\nend_header\n"
              "0 0 0\n1 0 0\n0 1 0\n1 1 0\n3 0 1 2\n3 1 3 2\n")
_OFF = "OFF\n# comment\n{nv} {nf} 0\n0 0 0\n1 0 0\n0 1 0\n1 1 0\n3 0 1 2\n3 1 3 2\n"


@pytest.mark.parametrize("text, ext", [(_ASCII_PLY, "ply"), (_OFF, "off")])
def test_text_readers_check_the_declared_counts(tmp_path, text, ext):
    import trimesh

    from meshkit.io import read_mesh

    p = tmp_path / f"m.{ext}"
    p.write_text(text.format(nv=4, nf=2))
    m = read_mesh(p)
    ref = trimesh.load(p, process=False)
    np.testing.assert_array_equal(m.vertices, ref.vertices)
    np.testing.assert_array_equal(m.faces, ref.faces)
    for nv, nf in [(5, 2), (3, 2), (4, 3), (4, 1)]:  # trimesh alone reads these as other meshes
        p.write_text(text.format(nv=nv, nf=nf))
        with pytest.raises(ValueError, match=rf"path: '.*m\.{ext}' declares .*{nv}.* but holds 6 data lines"):
            read_mesh(p)


@pytest.mark.parametrize("declared", [3, 5])
def test_binary_ply_with_a_wrong_vertex_count_is_refused(tmp_path, declared):
    from meshkit.io import read_mesh, write_mesh

    v, f = grid_mesh(2, 2)
    p = write_mesh(tmp_path / "m.ply", v, f)
    data = p.read_bytes().replace(b"element vertex 4", f"element vertex {declared}".encode(), 1)
    p.write_bytes(data)
    with pytest.raises(ValueError, match="path: .*m.ply"):
        read_mesh(p)


@pytest.mark.parametrize("exponent", [-300, -200, 200, 300])
def test_closest_points_at_extreme_magnitudes_equal_the_scaled_unit_result(exponent):
    # the Voronoi-region test multiplies dot products (4th powers of coordinates): at 1e77 they
    # overflowed and picked wrong regions; scaling by a power of two is exact, so results must match
    from meshkit.transfer import closest_points

    v, f = grid_mesh(6, 5, jitter=0.3, seed=2)
    v[:, 2] = 0.3 * np.sin(v[:, 0])
    p = np.random.default_rng(1).uniform(-1, 6, (300, 3))
    r = closest_points(v, f, p)
    s = 2.0**exponent
    rs = closest_points(v * s, f, p * s)
    np.testing.assert_array_equal(rs.face, r.face)
    np.testing.assert_array_equal(rs.barycentric, r.barycentric)
    np.testing.assert_array_equal(rs.distance, r.distance * s)


@pytest.mark.parametrize("change", ["count-1", "count+1", "truncated"])
def test_binary_stl_with_a_wrong_triangle_count_is_refused(tmp_path, change):
    import struct

    from meshkit.io import read_mesh, write_mesh

    v, f = grid_mesh(3, 3)
    p = write_mesh(tmp_path / "m.stl", v, f)
    data = bytearray(p.read_bytes())
    assert len(data) == 84 + 50 * len(f)  # the binary STL layout, written by trimesh
    if change == "truncated":
        data = data[:-20]
    else:
        data[80:84] = struct.pack("<I", len(f) + (1 if change == "count+1" else -1))
    p.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"path: .*m\.stl' is a binary STL declaring \d+ triangles \(\d+ bytes\) but"):
        read_mesh(p)
