"""Shared fixtures: small meshes with known structure."""

import numpy as np
import pytest
import trimesh


def grid_mesh(nx: int = 6, ny: int = 5, *, jitter: float = 0.0, seed: int = 0):
    """A flat (nx by ny vertices) grid in the z=0 plane, CCW seen from +z (normals +z)."""
    rng = np.random.default_rng(seed)
    xs, ys = np.meshgrid(np.arange(nx, dtype=float), np.arange(ny, dtype=float))
    v = np.stack([xs.ravel(), ys.ravel(), np.zeros(nx * ny)], axis=1)
    if jitter:
        v[:, :2] += rng.uniform(-jitter, jitter, size=(nx * ny, 2))
    faces = []
    for j in range(ny - 1):
        for i in range(nx - 1):
            a, b, c, d = j * nx + i, j * nx + i + 1, (j + 1) * nx + i, (j + 1) * nx + i + 1
            faces += [(a, b, d), (a, d, c)]
    return v, np.asarray(faces, dtype=np.int64)


@pytest.fixture
def grid():
    return grid_mesh()


@pytest.fixture
def icosphere():
    m = trimesh.creation.icosphere(subdivisions=2)
    return np.asarray(m.vertices), np.asarray(m.faces, dtype=np.int64)


@pytest.fixture(scope="session")
def small_face():
    from meshkit.synthetic import face_template

    return face_template(2000)
