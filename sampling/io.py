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
    """Read a hierarchy written by :func:`save`, validating everything it reads.

    A damaged or hand-edited file is rejected with a ``ValueError`` naming the file, the array and
    what is wrong, before any of it reaches a matrix product: the metadata (sizes, parameters,
    lmax), every array's dtype, shape and finiteness, the sparse matrices' structure (index
    bounds, monotone row pointers), and the hierarchy's own invariants (faces index their level,
    spirals start at their vertex and stay in bounds, ``kept`` is ascending and
    ``levels[i+1].vertices == levels[i].vertices[kept[i]]``, ``down`` selects ``kept``, ``up``
    rows hold at most 3 non-negative weights summing to 1 and map kept vertices to themselves,
    adjacency and Laplacian are the ones the faces and parameters give).

    Parameters
    ----------
    path : .npz file.
    template : (vertices, faces), optional
        When given, the file must have been built from exactly this template (SHA-256 of its
        float64 vertices and int64 faces); a mismatch raises ``ValueError``.

    Returns
    -------
    Hierarchy
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
        if not isinstance(meta, dict) or meta.get("format") != "meshkit-hierarchy":
            got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
            raise ValueError(f"path: {str(path)!r} is not a meshkit hierarchy (metadata format {got!r})")
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"path: {str(path)!r} has hierarchy format version {meta.get('format_version')}, "
                f"this meshkit reads version {FORMAT_VERSION}; rebuild it"
            )
        try:
            h = _read_hierarchy(z, meta)
        except _Damaged as e:
            raise ValueError(f"path: {str(path)!r} is a damaged hierarchy: {e}") from None
    if template is not None:
        tv, tf = check_mesh(*template, vertices_name="template vertices", faces_name="template faces")
        got = template_hash(tv, tf)
        if got != h.template_hash:
            raise ValueError(
                f"template: this hierarchy was built from a different template "
                f"(file {h.template_hash[:12]}..., given {got[:12]}...; "
                f"{h.n_vertices[0]} vs {len(tv)} vertices); rebuild it for this template"
            )
    return h


class _Damaged(Exception):
    """What is wrong with one part of a hierarchy file (load turns it into a ValueError)."""


def _meta_list(meta: dict, key: str, n: int, kind: type, minimum=None) -> list:
    """metadata[key]: a list of n numbers of this kind (int or float), finite, >= minimum."""
    vals = meta.get(key)
    ok = isinstance(vals, list) and len(vals) == n and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) and (kind is float or isinstance(x, int))
        and np.isfinite(x) and (minimum is None or x >= minimum) for x in vals)
    if not ok:
        bound = "" if minimum is None else f" >= {minimum}"
        raise _Damaged(f"metadata {key}: expected a list of {n} finite {kind.__name__}s{bound}, got {vals!r:.200}")
    return [kind(x) for x in vals]


def _read(z, key: str, kinds: str, shape: tuple) -> np.ndarray:
    """Array ``key`` of the file: present, readable, of a dtype kind in ``kinds``, shape matching
    ``shape`` (None = any size), finite. Returns it as float64 or int64."""
    if key not in z.files:
        raise _Damaged(f"{key}: missing")
    try:
        a = z[key]
    except Exception as e:  # corrupted zip member, bad header, pickled object array
        raise _Damaged(f"{key}: unreadable ({type(e).__name__}: {e})") from None
    if a.dtype.kind not in kinds:
        raise _Damaged(f"{key}: expected {'integer' if kinds == 'iu' else 'float'} values, got dtype {a.dtype}")
    if a.ndim != len(shape) or any(w is not None and w != g for w, g in zip(shape, a.shape, strict=True)):
        want = "(" + ", ".join("n" if w is None else str(w) for w in shape) + ("," if len(shape) == 1 else "") + ")"
        raise _Damaged(f"{key}: expected shape {want}, got {a.shape}")
    if a.dtype.kind == "f":
        a = a.astype(np.float64, copy=False)
        if not np.isfinite(a).all():
            raise _Damaged(f"{key}: expected finite values, got {int((~np.isfinite(a)).sum())} NaN/inf")
    else:
        a = a.astype(np.int64, copy=False)
    return a


def _in_range(a: np.ndarray, key: str, lo: int, hi: int) -> None:
    """Every value of the integer array ``a`` in [lo, hi)."""
    if a.size and (a.min() < lo or a.max() >= hi):
        bad = a[(a < lo) | (a >= hi)][0]
        raise _Damaged(f"{key}: expected values in [{lo}, {hi}), got {int(bad)}")


def _read_sparse(z, key: str, shape: tuple[int, int]) -> sp.csr_matrix:
    """A CSR matrix of exactly this shape whose structure is valid (checked before scipy sees it)."""
    got = _read(z, f"{key}/shape", "iu", (2,))
    if tuple(got.tolist()) != shape:
        raise _Damaged(f"{key}/shape: expected {shape}, got {tuple(got.tolist())}")
    indptr = _read(z, f"{key}/indptr", "iu", (shape[0] + 1,))
    indices = _read(z, f"{key}/indices", "iu", (None,))
    data = _read(z, f"{key}/data", "f", (len(indices),))
    if indptr[0] != 0 or indptr[-1] != len(indices) or (np.diff(indptr) < 0).any():
        raise _Damaged(f"{key}/indptr: expected row pointers rising (never falling) from 0 to {len(indices)}, the "
                       f"number of entries; got {indptr[0]} ... {indptr[-1]}")
    _in_range(indices, f"{key}/indices", 0, shape[1])
    return sp.csr_matrix((data, indices, indptr), shape=shape)


def _same(a: sp.csr_matrix, b: sp.csr_matrix) -> float:
    """Largest absolute entry of a - b."""
    d = (a - b).tocsr()
    return float(np.abs(d.data).max()) if d.nnz else 0.0


def _read_hierarchy(z, meta: dict) -> Hierarchy:
    """Every array of a hierarchy file, checked; raises _Damaged naming the first problem."""
    from meshkit import topology

    from .hierarchy import _LAPLACIANS, _rescaled

    sizes = meta.get("n_vertices")
    if not isinstance(sizes, list) or not sizes:
        raise _Damaged(f"metadata n_vertices: expected a non-empty list of level sizes, got {sizes!r:.200}")
    n = len(sizes)
    sizes = _meta_list(meta, "n_vertices", n, int, minimum=1)
    lmaxes = _meta_list(meta, "lmax", n, float, minimum=0.0)
    seconds = _meta_list(meta, "seconds", n, float, minimum=0.0) if "seconds" in meta else []
    params = meta.get("params")
    if not isinstance(params, dict):
        raise _Damaged(f"metadata params: expected a dict, got {params!r:.200}")
    lengths = _meta_list(params, "spiral_length", n, int, minimum=1)
    if params.get("padding") not in ("repeat", "sentinel"):
        raise _Damaged(f"metadata params padding: expected 'repeat' or 'sentinel', got {params.get('padding')!r}")
    if params.get("laplacian") not in _LAPLACIANS:
        raise _Damaged(f"metadata params laplacian: expected one of {_LAPLACIANS}, got {params.get('laplacian')!r}")
    if not isinstance(meta.get("template_sha256"), str):
        raise _Damaged(f"metadata template_sha256: expected a hex string, got {meta.get('template_sha256')!r:.80}")
    pad_hi = 1 if params["padding"] == "sentinel" else 0  # the sentinel index is n_i itself

    levels = []
    for i in range(n):
        ni = sizes[i]
        vertices = _read(z, f"level{i}/vertices", "f", (ni, 3))
        faces = _read(z, f"level{i}/faces", "iu", (None, 3))
        if len(faces) == 0:
            raise _Damaged(f"level{i}/faces: expected at least one face, got none")
        _in_range(faces, f"level{i}/faces", 0, ni)
        if ((faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 0] == faces[:, 2])).any():
            raise _Damaged(f"level{i}/faces: expected three distinct vertices per face")
        spirals = _read(z, f"level{i}/spirals", "iu", (ni, lengths[i]))
        _in_range(spirals, f"level{i}/spirals", 0, ni + pad_hi)
        if (spirals[:, 0] != np.arange(ni)).any():
            raise _Damaged(f"level{i}/spirals: expected row v to start with v")
        if not lmaxes[i] > 0:
            raise _Damaged(f"metadata lmax[{i}]: expected a positive number, got {lmaxes[i]}")
        adjacency = _read_sparse(z, f"level{i}/adjacency", (ni, ni))
        if _same(adjacency, topology.adjacency(faces, ni)) != 0.0:
            raise _Damaged(f"level{i}/adjacency: expected the 0/1 edge graph of level{i}/faces, got another matrix")
        laplacian = _read_sparse(z, f"level{i}/laplacian", (ni, ni))
        expected, _ = _rescaled(faces, ni, params["laplacian"], lmaxes[i])
        if _same(laplacian, expected.tocsr()) > 1e-9:
            raise _Damaged(f"level{i}/laplacian: expected the rescaled {params['laplacian']} Laplacian of "
                           f"level{i}/faces with lmax {lmaxes[i]}, got another matrix")
        levels.append(Level(vertices, faces, adjacency, laplacian, spirals, lmaxes[i]))

    down, up, kept = [], [], []
    for i in range(n - 1):
        fine, coarse = sizes[i], sizes[i + 1]
        k = _read(z, f"kept{i}", "iu", (coarse,))
        _in_range(k, f"kept{i}", 0, fine)
        if (np.diff(k) <= 0).any():
            raise _Damaged(f"kept{i}: expected strictly ascending fine-vertex indices")
        if not np.array_equal(levels[i + 1].vertices, levels[i].vertices[k]):
            raise _Damaged(f"kept{i}: expected level{i + 1}/vertices == level{i}/vertices[kept{i}], got other vertices")
        d = _read_sparse(z, f"down{i}", (coarse, fine))
        if not (np.array_equal(d.indptr, np.arange(coarse + 1)) and np.array_equal(d.indices, k)
                and (d.data == 1.0).all()):
            raise _Damaged(f"down{i}: expected the 0/1 selection of kept{i} (one 1 per row), got another matrix")
        u = _read_sparse(z, f"up{i}", (fine, coarse))
        per_row = np.diff(u.indptr)
        if per_row.max(initial=0) > 3 or (per_row == 0).any() or (u.data < 0).any():
            raise _Damaged(f"up{i}: expected 1 to 3 non-negative weights per row")
        if np.abs(np.asarray(u.sum(axis=1)).ravel() - 1.0).max() > 1e-9:
            raise _Damaged(f"up{i}: expected rows summing to 1")
        uk = u[k]
        if not (np.array_equal(uk.indptr, np.arange(coarse + 1)) and np.array_equal(uk.indices, np.arange(coarse))
                and (uk.data == 1.0).all()):
            raise _Damaged(f"up{i}: expected kept vertices to map to themselves with weight 1")
        down.append(d)
        up.append(u)
        kept.append(k)
    return Hierarchy(tuple(levels), tuple(down), tuple(up), tuple(kept), params, meta["template_sha256"],
                     tuple(seconds))


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
