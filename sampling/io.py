"""Saving, loading and exporting hierarchies.

Our format is one ``.npz`` (no pickle inside; ``np.load(..., allow_pickle=False)`` reads it):
per level ``level{i}/vertices``, ``level{i}/faces``, ``level{i}/spirals`` and the sparse
``level{i}/adjacency``, ``level{i}/laplacian``; between levels ``down{i}``, ``up{i}``, ``kept{i}``.
A sparse matrix ``M`` is stored as ``M/data``, ``M/indices``, ``M/indptr``, ``M/shape`` (CSR).
``metadata`` is a JSON string: format version, parameters, the template's SHA-256, level sizes,
build seconds and the per-level lmax.

Exports, for existing training code to read unchanged:

- SpiralNet++ ``transform.pkl``: a pickled dict with ``vertices`` (list of (n_i, 3) arrays, one per
  level, level 0 = template), ``face`` (list of (F_i, 3) int arrays), ``adj`` (list of (n_i, n_i)
  scipy sparse), ``down_transform`` (list of (n_{i+1}, n_i) sparse) and ``up_transform`` (list of
  (n_i, n_{i+1}) sparse). Its training script computes spirals itself from ``face``.
- Neural3DMM ``downsampling_matrices.pkl``: a pickled dict with ``M_verts_faces`` (list of
  (vertices, faces) tuples per level), ``A`` (adjacency per level), ``D`` (down per level
  transition), ``U`` (up) and ``F`` (faces per level).

Both consumers build these with CoMA's ``generate_transform_matrices``, whose sparse matrices are
``scipy.sparse.csc_matrix`` of float32 (A, D) / float64 (U); ours are written with the same types.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from meshkit.io import atomic_path
from meshkit.validate import check_mesh

from .hierarchy import FORMAT_VERSION, Hierarchy, Level, template_hash

__all__ = ["save", "load", "export_spiralnet", "export_neural3dmm"]


def _put_sparse(arrays: dict, key: str, m) -> None:
    c = sp.csr_matrix(m)
    arrays[f"{key}/data"] = c.data
    arrays[f"{key}/indices"] = c.indices.astype(np.int64)
    arrays[f"{key}/indptr"] = c.indptr.astype(np.int64)
    arrays[f"{key}/shape"] = np.asarray(c.shape, dtype=np.int64)


def _get_sparse(z, key: str) -> sp.csr_matrix:
    return sp.csr_matrix((z[f"{key}/data"], z[f"{key}/indices"], z[f"{key}/indptr"]), shape=tuple(z[f"{key}/shape"]))


def save(h: Hierarchy, path) -> Path:
    """Write ``h`` to ``path`` (.npz), atomically. Returns the path."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"path: expected a file ending in .npz, got {str(path)!r}")
    arrays: dict = {}
    for i, lv in enumerate(h.levels):
        arrays[f"level{i}/vertices"] = lv.vertices
        arrays[f"level{i}/faces"] = lv.faces
        arrays[f"level{i}/spirals"] = lv.spirals
        _put_sparse(arrays, f"level{i}/adjacency", lv.adjacency)
        _put_sparse(arrays, f"level{i}/laplacian", lv.laplacian)
    for i in range(len(h.down)):
        _put_sparse(arrays, f"down{i}", h.down[i])
        _put_sparse(arrays, f"up{i}", h.up[i])
        arrays[f"kept{i}"] = h.kept[i]
    meta = {
        "format": "meshkit-hierarchy",
        "format_version": FORMAT_VERSION,
        "params": h.params,
        "template_sha256": h.template_hash,
        "n_vertices": h.n_vertices,
        "lmax": [lv.lmax for lv in h.levels],
        "seconds": list(h.seconds),
    }
    arrays["metadata"] = np.asarray(json.dumps(meta))
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def load(path, *, template=None) -> Hierarchy:
    """Read a hierarchy written by :func:`save`.

    Parameters
    ----------
    path : .npz file.
    template : (vertices, faces), optional
        When given, the file must have been built from exactly this template (SHA-256 of its
        float64 vertices and int64 faces); a mismatch raises ``ValueError``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no such file: {str(path)!r}")
    try:
        z = np.load(path, allow_pickle=False)
        meta = json.loads(str(z["metadata"]))
    except Exception as e:
        raise ValueError(f"path: {str(path)!r} is not a readable meshkit hierarchy: {type(e).__name__}: {e}") from e
    with z:
        if meta.get("format") != "meshkit-hierarchy":
            raise ValueError(f"path: {str(path)!r} is not a meshkit hierarchy (metadata format {meta.get('format')!r})")
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"path: {str(path)!r} has hierarchy format version {meta.get('format_version')}, "
                f"this meshkit reads version {FORMAT_VERSION}; rebuild it"
            )
        if template is not None:
            tv, tf = check_mesh(*template, vertices_name="template vertices", faces_name="template faces")
            got = template_hash(tv, tf)
            if got != meta["template_sha256"]:
                raise ValueError(
                    f"template: this hierarchy was built from a different template "
                    f"(file {meta['template_sha256'][:12]}..., given {got[:12]}...; "
                    f"{meta['n_vertices'][0]} vs {len(tv)} vertices); rebuild it for this template"
                )
        n = len(meta["n_vertices"])
        levels = []
        for i in range(n):
            levels.append(
                Level(
                    vertices=z[f"level{i}/vertices"],
                    faces=z[f"level{i}/faces"],
                    adjacency=_get_sparse(z, f"level{i}/adjacency"),
                    laplacian=_get_sparse(z, f"level{i}/laplacian"),
                    spirals=z[f"level{i}/spirals"],
                    lmax=float(meta["lmax"][i]),
                )
            )
        down = tuple(_get_sparse(z, f"down{i}") for i in range(n - 1))
        up = tuple(_get_sparse(z, f"up{i}") for i in range(n - 1))
        kept = tuple(z[f"kept{i}"] for i in range(n - 1))
    for i, lv in enumerate(levels):  # cheap consistency checks against a damaged file
        if lv.n_vertices != meta["n_vertices"][i]:
            raise ValueError(f"path: level {i} has {lv.n_vertices} vertices, metadata says {meta['n_vertices'][i]}")
    for i in range(n - 1):
        if down[i].shape != (levels[i + 1].n_vertices, levels[i].n_vertices) or up[i].shape != down[i].shape[::-1]:
            raise ValueError(f"path: down{i}/up{i} shapes {down[i].shape}/{up[i].shape} do not chain the levels")
    return Hierarchy(tuple(levels), down, up, kept, meta["params"], meta["template_sha256"], tuple(meta["seconds"]))


def _pickle_to(obj, path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        pickle.dump(obj, fh, protocol=4)
    return path


def export_spiralnet(h: Hierarchy, path) -> Path:
    """Write SpiralNet++'s ``transform.pkl`` (see the module docstring for its keys)."""
    obj = {
        "vertices": [np.asarray(lv.vertices, dtype=np.float64) for lv in h.levels],
        "face": [np.asarray(lv.faces, dtype=np.int64) for lv in h.levels],
        "adj": [sp.csc_matrix(lv.adjacency, dtype=np.float32) for lv in h.levels],
        "down_transform": [sp.csc_matrix(d, dtype=np.float32) for d in h.down],
        "up_transform": [sp.csc_matrix(u, dtype=np.float64) for u in h.up],
    }
    return _pickle_to(obj, path)


def export_neural3dmm(h: Hierarchy, path) -> Path:
    """Write Neural3DMM's ``downsampling_matrices.pkl`` (see the module docstring for its keys)."""
    obj = {
        "M_verts_faces": [(np.asarray(lv.vertices, dtype=np.float64), np.asarray(lv.faces, dtype=np.int64)) for lv in h.levels],
        "A": [sp.csc_matrix(lv.adjacency, dtype=np.float32) for lv in h.levels],
        "D": [sp.csc_matrix(d, dtype=np.float32) for d in h.down],
        "U": [sp.csc_matrix(u, dtype=np.float64) for u in h.up],
        "F": [np.asarray(lv.faces, dtype=np.int64) for lv in h.levels],
    }
    return _pickle_to(obj, path)
