"""Saving, loading and exporting hierarchies.

Our format is one ``.npz`` (no pickle inside; ``np.load(..., allow_pickle=False)`` reads it):
per level ``level{i}/vertices``, ``level{i}/faces``, ``level{i}/spirals`` and the sparse
``level{i}/adjacency``, ``level{i}/laplacian``; between levels ``down{i}``, ``up{i}``, ``kept{i}``.
A sparse matrix ``M`` is stored as ``M/data``, ``M/indices``, ``M/indptr``, ``M/shape`` (CSR).
``metadata`` is a JSON string: format version, parameters, the template's SHA-256, level sizes,
build seconds and the per-level lmax.

Exports, for existing training code to read unchanged (docs/exports.md has a loading snippet per
repository and what was checked):

- SpiralNet++ ``transform.pkl`` (read by ``reconstruction/main.py`` with
  ``pickle.load(f, encoding='latin1')``): a dict with ``vertices`` (list of (n_i, 3) float64, one
  per level, level 0 = template), ``face`` (list of (F_i, 3) int64), ``adj`` (list of (n_i, n_i)
  sparse), ``down_transform`` (list of (n_{i+1}, n_i) sparse) and ``up_transform`` (list of
  (n_i, n_{i+1}) sparse). Its script computes spirals itself from ``face`` and ``vertices`` of levels
  0..L-1 with OpenMesh; with ``spirals=True`` the file also holds ``spirals``: exactly those arrays
  (list of (n_i, seq_length_i) int64 for levels 0..L-1, :func:`meshkit.spiral_indices` with
  ``style="spiralnet++"``), so the script runs without OpenMesh.
- Neural3DMM ``downsampling_matrices.pkl`` (read by ``neural3DMM.ipynb`` with ``pickle.load(fp)``, then
  ``get_adj_trigs(A, F, reference_mesh)``): a dict with ``M_verts_faces`` (list of (vertices, faces)
  tuples, levels 0..L), ``A`` (adjacency, levels 0..L), ``D`` (L down matrices), ``U`` (L up matrices)
  and ``F`` (faces of levels 1..L, as CoMA's ``generate_transform_matrices`` returns them;
  ``get_adj_trigs`` takes level 0's faces from the template mesh). With ``reference=`` it also holds
  ``spirals``, ``spiral_sizes`` and ``reference_points``: what its ``generate_spirals`` returns as
  ``spirals_np`` ((1, n_i + 1, size_i) arrays, -1 = its zero dummy vertex) and ``spiral_sizes``, for
  the given ``step_sizes`` and ``dilation``. ``template=`` writes the level-0 mesh as the OBJ its
  ``ShapeData`` reads (``reference_mesh_file``).

Both consumers build these with CoMA's ``generate_transform_matrices``, whose sparse matrices are
``scipy.sparse.csc_matrix`` of float32 (A, D) / float64 (U); ours are written with the same types.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from meshkit.io import atomic_path, write_mesh
from meshkit.spiral import neural3dmm_raw_spirals, spiral_indices
from meshkit.validate import check_int, check_mesh

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


def _levels_param(value, n: int, name: str, default) -> list[int]:
    vals = [default[i] if default is not None else None for i in range(n)] if value is None else value
    if isinstance(vals, (int, np.integer)):
        vals = [int(vals)] * n
    vals = list(vals)
    if len(vals) != n:
        raise ValueError(f"{name}: expected one value or {n} (one per level), got {len(vals)}")
    return [check_int(x, name, minimum=1) for x in vals]


def export_spiralnet(h: Hierarchy, path, *, spirals: bool = False, seq_length=None, dilation=None) -> Path:
    """Write SpiralNet++'s ``transform.pkl`` (see the module docstring and docs/exports.md).

    Parameters
    ----------
    h : Hierarchy
    path : output file (``<data>/transform.pkl`` for SpiralNet++'s ``reconstruction/main.py``)
    spirals : bool
        Also store ``spirals``: SpiralNet++'s own spirals (``preprocess_spiral``, row for row) of
        levels 0..L-1, the ones its ``AE`` takes, so its script needs no OpenMesh.
    seq_length, dilation : int or one per level 0..L-1, optional
        Its ``--seq_length`` / ``--dilation``; default the hierarchy's ``spiral_length``/``dilation``.
    """
    obj = {
        "vertices": [np.asarray(lv.vertices, dtype=np.float64) for lv in h.levels],
        "face": [np.asarray(lv.faces, dtype=np.int64) for lv in h.levels],
        "adj": [sp.csc_matrix(lv.adjacency, dtype=np.float32) for lv in h.levels],
        "down_transform": [sp.csc_matrix(d, dtype=np.float32) for d in h.down],
        "up_transform": [sp.csc_matrix(u, dtype=np.float64) for u in h.up],
    }
    if spirals:
        n = len(h.levels) - 1
        lengths = _levels_param(seq_length, n, "seq_length", h.params.get("spiral_length"))
        dils = _levels_param(dilation, n, "dilation", h.params.get("dilation"))
        obj["spirals"] = [
            spiral_indices(obj["face"][i], lengths[i], dils[i], style="spiralnet++", vertices=obj["vertices"][i])
            for i in range(n)
        ]
    return _pickle_to(obj, path)


def export_neural3dmm(h: Hierarchy, path, *, template=None, reference: int | None = None, step_sizes=None,
                      dilation=None, nb_stds: float = 2.0) -> Path:
    """Write Neural3DMM's ``downsampling_matrices.pkl`` (see the module docstring and docs/exports.md).

    Parameters
    ----------
    h : Hierarchy
    path : output file (``<root>/<dataset>/template/<method>/downsampling_matrices.pkl``)
    template : path, optional
        Also write the level-0 mesh there as OBJ (``<root>/<dataset>/template/template.obj``, the
        notebook's ``reference_mesh_file``), vertex order kept.
    reference : int, optional
        Neural3DMM's ``reference_points[0][0]`` (a level-0 vertex). When given, the file also holds
        ``spirals`` (list of (1, n_i + 1, size_i) int64, -1 = the dummy vertex), ``spiral_sizes``
        and ``reference_points`` (per level, the vertex nearest to the reference), exactly what the
        notebook's ``generate_spirals(step_sizes, M, Adj, Trigs, reference_points, dilation)``
        computes (up to its set-order artefacts, see :mod:`meshkit.spiral`).
    step_sizes : int or one per level 0..L
        Rings per level (its ``step_sizes``); needed with ``reference``.
    dilation : int or one per level 0..L, optional
        Its ``dilation`` (None: no dilation, as with its ``dilation_flag = False``).
    nb_stds : float
        Its spiral size rule: ``int(mean + nb_stds * std)`` of the spiral lengths per level.
    """
    obj = {
        "M_verts_faces": [(np.asarray(lv.vertices, dtype=np.float64), np.asarray(lv.faces, dtype=np.int64)) for lv in h.levels],
        "A": [sp.csc_matrix(lv.adjacency, dtype=np.float32) for lv in h.levels],
        "D": [sp.csc_matrix(d, dtype=np.float32) for d in h.down],
        "U": [sp.csc_matrix(u, dtype=np.float64) for u in h.up],
        "F": [np.asarray(lv.faces, dtype=np.int64) for lv in h.levels[1:]],
    }
    n = len(h.levels)
    if reference is not None:
        reference = check_int(reference, "reference", minimum=0, maximum=h.n_vertices[0] - 1)
        if step_sizes is None:
            raise ValueError("step_sizes: Neural3DMM's spirals need the number of rings per level (its step_sizes), got None")
        steps = _levels_param(step_sizes, n, "step_sizes", None)
        dils = [1] * n if dilation is None else _levels_param(dilation, n, "dilation", None)
        point = h.levels[0].vertices[reference]
        refs = [int(np.argmin(((lv.vertices - point) ** 2).sum(axis=1))) for lv in h.levels]
        obj["reference_points"] = [[r] for r in refs]
        obj["spirals"], obj["spiral_sizes"] = [], []
        for lv, r, k, d in zip(h.levels, refs, steps, dils, strict=True):
            s, size = _neural3dmm_level(lv, r, k, d, nb_stds)
            obj["spirals"].append(s)
            obj["spiral_sizes"].append(size)
    if template is not None:
        write_mesh(Path(template), h.levels[0].vertices, h.levels[0].faces, format="obj")
    return _pickle_to(obj, path)


def _neural3dmm_level(lv, ref: int, rings: int, dilation: int, nb_stds: float):
    """One level of Neural3DMM's ``generate_spirals``: spirals of ``rings`` rings, dilated as
    ``s[:1] + s[1::d]``, size ``int(mean + nb_stds * std)`` of their lengths, cut or padded with -1,
    plus the all -1 row of the dummy vertex. Returns ((1, n + 1, size) int64, size)."""
    n = lv.n_vertices
    f = np.asarray(lv.faces, dtype=np.int64)
    ball = sp.identity(n, format="csr", dtype=np.int8) + (lv.adjacency != 0).astype(np.int8)
    reach = ball
    for _ in range(rings - 1):
        reach = ((reach @ ball) != 0).astype(np.int8)
    width = int(np.diff(reach.tocsr().indptr).max()) + rings  # vertices within reach + one dummy per ring
    raw = neural3dmm_raw_spirals(f, np.asarray(lv.vertices, dtype=np.float64), n, width, np.array([ref]), rings)
    raw = np.concatenate([raw[:, :1], raw[:, 1::dilation]], axis=1)
    lengths = (raw != -2).sum(axis=1)
    size = int(lengths.mean() + nb_stds * lengths.std())
    out = np.full((1, n + 1, size), -1, dtype=np.int64)
    k = min(size, raw.shape[1])
    out[0, :n, :k] = np.where(raw[:, :k] == -2, -1, raw[:, :k])
    return out, size
