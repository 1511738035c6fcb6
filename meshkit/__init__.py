"""meshkit: a geometry-first toolkit for face-mesh research.

The top-level namespace holds the everyday names; each concept lives in the module of its name
(``meshkit.decimate``, ``meshkit.spiral``, ``meshkit.laplacian``, ``meshkit.render``, ...).
Optional heavy parts (``meshkit.nn`` needs torch) are imported only when used.
"""

from . import io, laplacian, metrics, render, topology, transform
from .decimate import Decimation, decimate
from .mesh import Mesh, face_areas, face_normals, vertex_normals
from .spiral import spiral_indices
from .transfer import ClosestPoints, barycentric_transfer, closest_points

__version__ = "0.1.0"

__all__ = [
    "Mesh",
    "face_areas",
    "face_normals",
    "vertex_normals",
    "topology",
    "transform",
    "io",
    "laplacian",
    "metrics",
    "render",
    "spiral_indices",
    "Decimation",
    "decimate",
    "barycentric_transfer",
    "closest_points",
    "ClosestPoints",
]
