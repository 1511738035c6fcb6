"""Shared fixtures: small meshes with known structure (shared helper functions are in tests/_helpers.py)."""

import numpy as np
import pytest
import trimesh

from tests._helpers import grid_mesh


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
