"""Mesh: a validated, immutable-by-convention triangle mesh with cached derived properties.

Holds ``vertices`` (V, 3) float64 and ``faces`` (F, 3) int64, counter-clockwise winding = outward
normal. Derived quantities (normals, areas, edges, bounding box) are computed once and cached;
the arrays are marked read-only so the cache cannot go stale.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from .validate import check_mesh

__all__ = ["Mesh", "face_normals", "face_areas", "vertex_normals"]


def _cross(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Per-face (v1 - v0) x (v2 - v0): direction = normal, length = twice the area."""
    v0, v1, v2 = (vertices[faces[:, k]] for k in range(3))
    return np.cross(v1 - v0, v2 - v0)


def face_areas(vertices, faces) -> np.ndarray:
    """Area of each face, (F,) float64."""
    v, f = check_mesh(vertices, faces)
    return 0.5 * np.linalg.norm(_cross(v, f), axis=1)


def face_normals(vertices, faces) -> np.ndarray:
    """Unit normal of each face, (F, 3) float64, by the right-hand rule on the winding.

    A degenerate (zero-area) face gets the zero vector.
    """
    v, f = check_mesh(vertices, faces)
    return _unit(_cross(v, f))


def vertex_normals(vertices, faces) -> np.ndarray:
    """Area-weighted unit vertex normals, (V, 3) float64: the normalized sum of the adjacent faces'
    area vectors. An isolated vertex gets the zero vector."""
    v, f = check_mesh(vertices, faces)
    return _vertex_normals(v, f)


def _vertex_normals(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    c = _cross(v, f)  # length = 2 * area: area weighting for free
    acc = np.zeros_like(v)
    for k in range(3):
        np.add.at(acc, f[:, k], c)
    return _unit(acc)


def _unit(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x), where=n > 0)


class Mesh:
    """A triangle mesh: ``vertices`` (V, 3) float64, ``faces`` (F, 3) int64.

    Validated on construction (finite coordinates, three distinct in-range indices per face);
    vertex order is exactly the given order. The arrays are read-only copies, so derived
    properties can be cached safely.

    >>> m = Mesh([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 2]])
    >>> m.face_normals
    array([[0., 0., 1.]])
    """

    __slots__ = ("vertices", "faces", "__dict__")

    def __init__(self, vertices, faces):
        v, f = check_mesh(vertices, faces)
        v = v.copy()
        f = f.copy()
        v.flags.writeable = False
        f.flags.writeable = False
        self.vertices = v
        self.faces = f

    def __repr__(self) -> str:
        return f"Mesh(n_vertices={self.n_vertices}, n_faces={self.n_faces})"

    def __eq__(self, other) -> bool:
        if not isinstance(other, Mesh):
            return NotImplemented
        return np.array_equal(self.vertices, other.vertices) and np.array_equal(self.faces, other.faces)

    __hash__ = None

    @property
    def n_vertices(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def n_faces(self) -> int:
        return int(self.faces.shape[0])

    @cached_property
    def face_normals(self) -> np.ndarray:
        """Unit face normals (F, 3)."""
        return _readonly(_unit(_cross(self.vertices, self.faces)))

    @cached_property
    def face_areas(self) -> np.ndarray:
        """Face areas (F,)."""
        return _readonly(0.5 * np.linalg.norm(_cross(self.vertices, self.faces), axis=1))

    @cached_property
    def vertex_normals(self) -> np.ndarray:
        """Area-weighted unit vertex normals (V, 3)."""
        return _readonly(_vertex_normals(self.vertices, self.faces))

    @cached_property
    def area(self) -> float:
        """Total surface area."""
        return float(self.face_areas.sum())

    @cached_property
    def bounds(self) -> np.ndarray:
        """Axis-aligned bounding box, (2, 3): [min, max]."""
        return _readonly(np.stack([self.vertices.min(axis=0), self.vertices.max(axis=0)]))

    @property
    def bbox_diagonal(self) -> float:
        """Length of the bounding-box diagonal (the usual scale for relative errors)."""
        return float(np.linalg.norm(self.bounds[1] - self.bounds[0]))

    @cached_property
    def edges(self) -> np.ndarray:
        """Unique undirected edges (E, 2), each sorted (i < j), rows in lexicographic order."""
        from .topology import edges

        return _readonly(edges(self.faces))

    def copy(self, *, vertices=None, faces=None) -> Mesh:
        """A new Mesh, optionally with replaced vertices or faces."""
        return Mesh(self.vertices if vertices is None else vertices, self.faces if faces is None else faces)

    # -- conversions (lazy imports: trimesh is core, pyvista is the `viz` extra) ---------------
    def to_trimesh(self):
        """A ``trimesh.Trimesh`` with the same vertex order (``process=False``)."""
        import trimesh

        return trimesh.Trimesh(vertices=np.array(self.vertices), faces=np.array(self.faces), process=False)

    @classmethod
    def from_trimesh(cls, mesh) -> Mesh:
        """From a ``trimesh.Trimesh``; vertices are taken in its order, nothing is merged."""
        return cls(np.asarray(mesh.vertices), np.asarray(mesh.faces))

    def to_pyvista(self):
        """A ``pyvista.PolyData`` (needs the ``viz`` extra)."""
        pv = _import_pyvista()
        cells = np.hstack([np.full((self.n_faces, 1), 3, dtype=np.int64), self.faces]).ravel()
        return pv.PolyData(np.array(self.vertices), cells)

    @classmethod
    def from_pyvista(cls, polydata) -> Mesh:
        """From a ``pyvista.PolyData`` of triangles (needs the ``viz`` extra)."""
        _import_pyvista()
        if not polydata.is_all_triangles:
            raise ValueError("polydata: expected a triangle mesh, got non-triangle cells (call .triangulate())")
        faces = np.asarray(polydata.faces).reshape(-1, 4)[:, 1:]
        return cls(np.asarray(polydata.points), faces)


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _import_pyvista():
    from ._optional import require

    return require("pyvista", "Mesh.to_pyvista / Mesh.from_pyvista")
