import numpy as np
import pytest
import trimesh

from meshkit import Mesh, face_areas, face_normals, vertex_normals


def _noisy_sphere(seed=0):
    m = trimesh.creation.icosphere(subdivisions=2)
    rng = np.random.default_rng(seed)
    return np.asarray(m.vertices) * rng.uniform(0.8, 1.2, size=(len(m.vertices), 1)), np.asarray(m.faces)


def test_normals_and_areas_match_trimesh():
    v, f = _noisy_sphere()
    tm = trimesh.Trimesh(v, f, process=False)
    m = Mesh(v, f)
    np.testing.assert_allclose(m.face_normals, tm.face_normals, atol=1e-12)
    np.testing.assert_allclose(m.face_areas, tm.area_faces, rtol=1e-12)
    np.testing.assert_allclose(m.area, tm.area, rtol=1e-12)
    np.testing.assert_allclose(m.bounds, tm.bounds)
    np.testing.assert_array_equal(m.edges, np.unique(np.sort(tm.edges_unique, axis=1), axis=0))
    # trimesh's vertex normals are face-angle weighted; build the area-weighted ones from its
    # vertex-face incidence and its face normals and areas
    summed = tm.faces_sparse @ (tm.face_normals * tm.area_faces[:, None])
    area_weighted = summed / np.linalg.norm(summed, axis=1, keepdims=True)
    np.testing.assert_allclose(m.vertex_normals, area_weighted, atol=1e-10)


def test_functional_forms_agree_with_properties():
    v, f = _noisy_sphere(1)
    m = Mesh(v, f)
    np.testing.assert_array_equal(face_normals(v, f), m.face_normals)
    np.testing.assert_array_equal(face_areas(v, f), m.face_areas)
    np.testing.assert_array_equal(vertex_normals(v, f), m.vertex_normals)


def test_outward_normals_on_sphere():
    v, f = _noisy_sphere()
    m = Mesh(v, f)
    centroids = v[f].mean(axis=1)
    assert (np.einsum("ij,ij->i", m.face_normals, centroids) > 0).all()


def test_immutable_and_order_kept():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], float)
    m = Mesh(v, [[0, 1, 2]])
    with pytest.raises(ValueError):
        m.vertices[0, 0] = 1.0
    v[0, 0] = 7  # the mesh holds its own copy
    assert m.vertices[0, 0] == 0
    assert np.array_equal(Mesh.from_trimesh(m.to_trimesh()).vertices, m.vertices)


def test_degenerate_face_normal_is_zero():
    m = Mesh([[0, 0, 0], [1, 0, 0], [2, 0, 0]], [[0, 1, 2]])
    assert np.array_equal(m.face_normals, np.zeros((1, 3)))


def test_pyvista_round_trip():
    pytest.importorskip("pyvista")
    v, f = _noisy_sphere()
    m = Mesh(v, f)
    back = Mesh.from_pyvista(m.to_pyvista())
    assert back == m


def test_bad_input():
    with pytest.raises(ValueError, match="faces"):
        Mesh(np.zeros((3, 3)), [[0, 1, 3]])
    with pytest.raises(ValueError, match="NaN"):
        Mesh([[0, 0, np.nan], [1, 0, 0], [0, 1, 0]], [[0, 1, 2]])
