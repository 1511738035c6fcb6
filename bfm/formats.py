"""Loaders for every real Morphable Model file layout, and the canonical .npz save/load.

This file holds one loader per layout, each returning a ``MorphableModel``, plus ``load_model``
(dispatch on the file content) and ``save_npz``/``load_npz``. The layout facts below were checked
against public loader code (repositories named; facts carried, code not copied).

BFM2009 ``01_MorphableModel.mat`` (Paysan et al. 2009; MATLAB v5 file)
    Keys ``shapeMU`` (3N, 1), ``shapePC`` (3N, 199), ``shapeEV`` (199, 1), ``texMU`` (3N, 1),
    ``texPC`` (3N, 199), ``texEV`` (199, 1), ``tl`` (F, 3) 1-based triangle list; N = 53,490,
    F = 106,466. Coordinates interleaved x1, y1, z1, x2, ... (face3d ``examples/Data/BFM/generate.m``
    selects rows 3i-2, 3i-1, 3i for vertex i; Deep3DFaceReconstruction ``load_data.py``
    ``transferBFM09``). All matrices are float32; ``shapePC`` columns are orthonormal; ``shapeEV`` /
    ``texEV`` are STANDARD DEVIATIONS, not variances (patrikhuber/eos
    ``share/scripts/convert-bfm2009-to-eos.py`` says so explicitly and squares them to get
    eigenvalues; Deep3DFaceReconstruction multiplies ``shapePC`` columns by ``shapeEV`` to get a
    unit-variance basis). Units: micrometres; colours 0..255. The ``tl`` triangles are clockwise
    seen from the front (eos swaps two indices of each to make them front-facing / counter-
    clockwise); ``fix_winding=True`` (default) does the same swap so our triangles are CCW = outward.
Expression basis ``Exp_Pca.bin`` (Guo et al., FaceWarehouse-derived; shipped with
    Deep3DFaceReconstruction's instructions): little-endian binary, ``int32 n_exp`` then
    ``float32 expMU[3 * n]`` then ``float32 expPC[n_exp * 3 * n]`` stored component after component
    (reshape (n_exp, 3n) then transpose to (3n, n_exp)); interleaved xyz within a component. n =
    53,215: the basis lives on the TRIMMED vertex set, in the order of ``BFM_exp_idx.mat`` key
    ``trimIndex`` (1-based indices into the 53,490 BFM2009 vertices). The standard deviations are
    a separate text file ``std_exp.txt`` (one per line; the real basis has n_exp = 79, as
    Deep3DFaceReconstruction's ``reshape(expEV, [-1, 79])`` shows). Deep3DFaceReconstruction
    ignores ``expMU``; ``add_expression_mean=True`` adds it to the mean instead.
face3d ``BFM.mat`` (face3d ``examples/Data/BFM/generate.m``/``generate.py``, read by face3d
    ``morphable_model/load.py`` ``load_BFM``): one struct ``model`` with ``shapeMU`` (3N, 1),
    ``shapePC`` (3N, 199), ``shapeEV`` (199, 1), ``expMU`` (3N, 1), ``expPC`` (3N, 29), ``expEV``
    (29, 1) (the expression model of 3DDFA's ``Model_Expression.mat``: ``mu_exp``, ``w_exp``,
    ``sigma_exp``), ``texMU``, ``texPC``, ``texEV``, ``tri`` (3, F) 1-based (3DDFA's
    ``model_info.mat`` ``tri``; face3d transposes and subtracts 1), ``kpt_ind`` (1, 68) 1-based,
    ``tri_mouth`` (3, F_mouth) 1-based; N = 53,215 (rows selected by ``trimIndex``). face3d's
    loader uses ``shapeMU + expMU`` as the mean, which this loader does too.
3DDFA_V2 ``bfm_noneck_v3.pkl`` (3DDFA_V2 ``bfm/bfm.py`` ``BFMModel``, ``utils/io.py`` ``_load``):
    a pickled dict with ``u`` (3N, 1), ``w_shp`` (3N, >=40), ``w_exp`` (3N, >=10), ``keypoints``
    (204,) = the 3 interleaved row indices of each of the 68 landmarks (0-based, used as
    ``u[keypoints]``), ``tri`` stored (3, F) 0-based (transposed on load); for the v3 no-neck model
    the triangles come from a separate ``configs/tri.pkl`` (also (3, F)). N = 38,365. The file
    stores no standard deviations; the 62-parameter whitening file
    ``param_mean_std_62d_120x120.pkl`` (dict ``mean``, ``std``, each (62,)) gives the std of the
    raw coefficients over 300W-LP and is used as ``shape_std``/``expression_std`` when passed
    (otherwise ones, so ``units="std"`` equals ``"raw"``). Pickles are loaded with a restricted
    unpickler admitting only numpy arrays/dtypes/scalars, ``_codecs.encode`` (how protocol-2
    pickles carry bytes) and plain containers; anything else is refused before it can run.
BFM2017 HDF5 (statismo format; h5py paths as used by e.g. ypan98/FaceReconstruction
    ``scripts/extractBFM.py``, semantics from unibas-gravis/scalismo ``io/StatismoIO.scala``):
    ``shape/model/mean`` (3N,) float32 interleaved, ``shape/model/pcaBasis`` (3N, K) float32,
    ``shape/model/pcaVariance`` (K,) VARIANCES (square-rooted here), ``shape/model/noiseVariance``
    (1,), ``shape/representer/points`` (3, N), ``shape/representer/cells`` (3, F) 0-based int; the
    same under ``expression/`` and ``color/`` (colour in 0..1). The file version is
    ``/version/majorVersion`` . ``minorVersion``: from 0.9 on ``pcaBasis`` holds the orthonormal
    eigenvectors U; version 0.8 stored U * sqrt(variance), which this loader divides back out
    (scalismo's ``extractOrthonormalPCABasisMatrix`` does the same). Units: millimetres. Landmarks
    are named 3D points in ``metadata/landmarks/json`` (not vertex indices); pass ``landmarks=``.
Canonical ``.npz`` (ours): the MorphableModel fields by name, ``name`` as a unicode scalar and
    ``format`` = "meshkit-bfm-1"; loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np

from meshkit.io import atomic_path

from .model import MorphableModel

__all__ = [
    "load_model",
    "load_bfm2009",
    "load_face3d_mat",
    "load_3ddfa_pkl",
    "load_bfm2017_h5",
    "load_npz",
    "save_npz",
    "read_exp_pca_bin",
    "read_trim_index",
    "read_param_mean_std",
    "safe_pickle_load",
    "NPZ_FORMAT",
]

NPZ_FORMAT = "meshkit-bfm-1"


# ---------------------------------------------------------------------------------------------
# small helpers


def _path(path, name: str = "path") -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name}: expected a file path, got {type(path).__name__}")
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{name}: no such file: {p}")
    return p


def _describe(d: dict) -> str:
    parts = []
    for k, v in d.items():
        if str(k).startswith("__"):
            continue
        shape = getattr(v, "shape", None)
        parts.append(f"{k} {tuple(shape)} {getattr(v, 'dtype', type(v).__name__)}" if shape is not None else
                     f"{k} ({type(v).__name__})")
    return ", ".join(parts) if parts else "nothing"


def _need(d: dict, keys, where: str) -> None:
    missing = [k for k in keys if k not in d]
    if missing:
        raise ValueError(f"{where}: missing key(s) {missing}; found: {_describe(d)}")


def _column(a, name: str, where: str, length: int | None = None) -> np.ndarray:
    """A (n, 1), (1, n) or (n,) array as (n,)."""
    arr = np.asarray(a)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1 or (length is not None and arr.shape[0] != length):
        exp = f"({length},) or ({length}, 1)" if length is not None else "(n,) or (n, 1)"
        raise ValueError(f"{where}: {name} expected shape {exp}, got {np.asarray(a).shape}")
    return arr


def _matrix(a, name: str, where: str, rows: int | None = None) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 2 or (rows is not None and arr.shape[0] != rows):
        raise ValueError(f"{where}: {name} expected shape ({rows if rows is not None else 'rows'}, K), got {arr.shape}")
    return arr


def _indices(a, name: str, where: str, *, one_based: bool, n: int | None = None) -> np.ndarray:
    """Integer-valued index array (float storage allowed, as MATLAB saves doubles) -> int64, 0-based."""
    arr = np.asarray(a)
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or not np.array_equal(arr, np.round(arr)):
            raise ValueError(f"{where}: {name} expected integer-valued indices, got non-integer values")
    elif arr.dtype.kind not in "iu":
        raise TypeError(f"{where}: {name} expected integer indices, got dtype {arr.dtype}")
    out = arr.astype(np.int64) - (1 if one_based else 0)
    if out.size and out.min() < 0:
        base = "1-based" if one_based else "0-based"
        raise ValueError(f"{where}: {name} expected {base} indices, got minimum {int(arr.min())}")
    if n is not None and out.size and out.max() >= n:
        raise ValueError(f"{where}: {name} index {int(out.max()) + one_based} out of range for {n} vertices")
    return out


def _loadmat(path: Path) -> dict:
    import scipy.io

    try:
        return scipy.io.loadmat(str(path))
    except NotImplementedError as e:  # MATLAB v7.3 files are HDF5
        raise ValueError(f"{path}: MATLAB v7.3 (HDF5) .mat files are not supported; re-save with -v7 ({e})") from e
    except Exception as e:  # scipy raises many types for truncated/corrupt files
        raise ValueError(f"{path}: cannot read as a MATLAB .mat file (truncated or corrupt?): {type(e).__name__}: {e}") from e


# ---------------------------------------------------------------------------------------------
# BFM2009 + Exp_Pca.bin + trim list


def read_exp_pca_bin(path, n_vertices: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read ``Exp_Pca.bin``: returns (expMU (3n,) float32, expPC (3n, n_exp) float32).

    Layout (see the module docstring): int32 n_exp, float32 expMU[3n], float32 expPC[n_exp][3n].
    n is deduced from the file size (and checked against ``n_vertices`` when given); a file whose
    size does not fit the layout (e.g. truncated) is a ``ValueError``.
    """
    p = _path(path)
    size = p.stat().st_size
    with open(p, "rb") as fh:
        head = fh.read(4)
        if len(head) < 4:
            raise ValueError(f"{p}: too short for Exp_Pca.bin ({size} bytes; expected an int32 header)")
        n_exp = int(np.frombuffer(head, "<i4")[0])
        if n_exp <= 0 or n_exp > 10_000:
            raise ValueError(f"{p}: Exp_Pca.bin header gives {n_exp} components; expected 1..10000 (not an Exp_Pca.bin?)")
        body = size - 4
        per_vertex = 4 * 3 * (1 + n_exp)
        if body % per_vertex:
            raise ValueError(f"{p}: {size} bytes do not fit an Exp_Pca.bin with {n_exp} components "
                             f"(4 + 12 * (1 + {n_exp}) * n bytes expected; truncated?)")
        n = body // per_vertex
        if n_vertices is not None and n != n_vertices:
            raise ValueError(f"{p}: Exp_Pca.bin holds {n} vertices, expected {n_vertices} (truncated or other model?)")
        data = np.frombuffer(fh.read(), "<f4")
    mu = data[: 3 * n].astype(np.float32)
    pc = data[3 * n:].reshape(n_exp, 3 * n).T.astype(np.float32)
    return mu, pc


def read_trim_index(source) -> np.ndarray:
    """A trimming index list as 0-based int64.

    ``source`` is a .mat file (key ``trimIndex``, as in Deep3DFaceReconstruction's
    ``BFM_exp_idx.mat`` and 3DDFA's ``model_info.mat``, or ``idx``; 1-based, converted), a text file
    of 1-based indices, or an integer array taken as 0-based.
    """
    if isinstance(source, (str, os.PathLike)):
        p = _path(source, "trim")
        if p.suffix.lower() == ".mat":
            d = _loadmat(p)
            key = "trimIndex" if "trimIndex" in d else "idx" if "idx" in d else None
            if key is None:
                raise ValueError(f"{p}: expected key 'trimIndex' or 'idx'; found: {_describe(d)}")
            return _indices(_column(d[key], key, str(p)), key, str(p), one_based=True)
        return _indices(np.loadtxt(p, ndmin=1), "trim", str(p), one_based=True)
    arr = np.asarray(source)
    return _indices(arr.reshape(-1), "trim", "trim", one_based=False)


def load_bfm2009(path, *, expression=None, expression_std=None, trim=None, landmarks=None,
                 fix_winding: bool = True, add_expression_mean: bool = False, name: str | None = None) -> MorphableModel:
    """Load BFM2009 ``01_MorphableModel.mat``, optionally with ``Exp_Pca.bin`` and trimming.

    Parameters
    ----------
    path : the .mat file (keys shapeMU, shapePC, shapeEV, texMU, texPC, texEV, tl).
    expression : path to ``Exp_Pca.bin``, optional
        Defined on the trimmed vertices, so ``trim`` is required when it has fewer vertices than
        the .mat file.
    expression_std : path to ``std_exp.txt`` or (n_exp,) array, optional
        Standard deviations of the expression coefficients; ones when not given (then
        ``units="std"`` means raw for expressions).
    trim : path (.mat with ``trimIndex``/``idx``, 1-based) or (M,) int array (0-based), optional
        Keep these vertices, in this order (53,490 -> 53,215); triangles touching a removed
        vertex are dropped (``MorphableModel.subset``).
    landmarks : (68,) int array, 0-based in the FINAL (trimmed) vertex numbering, optional.
    fix_winding : bool
        Swap two indices of each ``tl`` triangle (the file's triangles are clockwise seen from the
        front); our convention is counter-clockwise = outward.
    add_expression_mean : bool
        Add Exp_Pca.bin's ``expMU`` to the mean (Deep3DFaceReconstruction ignores it).
    """
    p = _path(path)
    d = _loadmat(p)
    where = f"{p} (BFM2009 layout)"
    _need(d, ["shapeMU", "shapePC", "shapeEV", "tl"], where)
    mu = _column(d["shapeMU"], "shapeMU", where)
    if mu.size % 3:
        raise ValueError(f"{where}: shapeMU length {mu.size} is not a multiple of 3")
    n3 = mu.size
    n = n3 // 3
    pc = _matrix(d["shapePC"], "shapePC", where, n3)
    ev = _column(d["shapeEV"], "shapeEV", where, pc.shape[1])
    tl = np.asarray(d["tl"])
    if tl.ndim != 2 or tl.shape[1] != 3:
        raise ValueError(f"{where}: tl expected shape (F, 3), got {tl.shape}")
    tri = _indices(tl, "tl", where, one_based=True, n=n)
    if fix_winding:
        tri = tri[:, [0, 2, 1]]
    tex = {}
    if all(k in d for k in ("texMU", "texPC", "texEV")):
        tpc = _matrix(d["texPC"], "texPC", where, n3)
        tex = dict(texture_mean=_column(d["texMU"], "texMU", where, n3).reshape(n, 3), texture_basis=tpc,
                   texture_std=_column(d["texEV"], "texEV", where, tpc.shape[1]))
    mean = mu.reshape(n, 3).astype(np.float32)
    trim_idx = None if trim is None else read_trim_index(trim)
    if trim_idx is not None and (trim_idx.size == 0 or trim_idx.max() >= n):
        raise ValueError(f"trim: indices must lie in [0, {n}) for the {n}-vertex model, got max {trim_idx.max()}")
    exp_pc = np.zeros((n3, 0), np.float32)
    exp_std = np.zeros((0,), np.float32)
    if expression is not None:
        e_mu, e_pc = read_exp_pca_bin(expression)
        n_e = e_mu.size // 3
        if trim_idx is None and n_e != n:
            raise ValueError(f"expression: Exp_Pca.bin has {n_e} vertices but the model has {n}; pass trim= "
                             "(e.g. BFM_exp_idx.mat) to select the vertices it is defined on")
        if trim_idx is not None and n_e != trim_idx.size:
            raise ValueError(f"expression: Exp_Pca.bin has {n_e} vertices but trim keeps {trim_idx.size}")
        if expression_std is None:
            exp_std = np.ones(e_pc.shape[1], np.float32)
        else:
            exp_std = (np.loadtxt(_path(expression_std, "expression_std"), ndmin=1)
                       if isinstance(expression_std, (str, os.PathLike)) else np.asarray(expression_std, np.float64))
            exp_std = _column(exp_std, "expression_std", "expression_std")
            if exp_std.size < e_pc.shape[1]:
                raise ValueError(f"expression_std: expected {e_pc.shape[1]} values, got {exp_std.size}")
            exp_std = exp_std[: e_pc.shape[1]]
        if trim_idx is not None:
            # put the trimmed-order expression rows back at their full-model positions (others 0)
            full_pc = np.zeros((n3, e_pc.shape[1]), np.float32)
            rows = (3 * trim_idx[:, None] + np.arange(3)).reshape(-1)
            full_pc[rows] = e_pc
            e_pc = full_pc
            full_mu = np.zeros(n3, np.float32)
            full_mu[rows] = e_mu
            e_mu = full_mu
        exp_pc = e_pc
        if add_expression_mean:
            mean = mean + e_mu.reshape(n, 3)
    model = MorphableModel(mean=mean, shape_basis=pc, shape_std=ev, expression_basis=exp_pc, expression_std=exp_std,
                           triangles=tri, landmarks=np.zeros(0, np.int64), name=name or "BFM2009", **tex)
    if trim_idx is not None:
        model = model.subset(trim_idx, name=name or "BFM2009 trimmed")
    if landmarks is not None:
        model = model.with_landmarks(landmarks)
    return model


# ---------------------------------------------------------------------------------------------
# face3d BFM.mat


def load_face3d_mat(path, *, name: str | None = None) -> MorphableModel:
    """Load face3d's generated ``BFM.mat`` (struct ``model``; see the module docstring).

    The mean is ``shapeMU + expMU`` (as face3d's ``load_BFM``); ``tri`` and ``kpt_ind`` are
    1-based in the file and stored as (3, F) / (1, 68) (a transposed (F, 3) is accepted too).
    """
    p = _path(path)
    d = _loadmat(p)
    where = f"{p} (face3d BFM.mat layout)"
    if "model" not in d:
        raise ValueError(f"{where}: expected a struct 'model'; found: {_describe(d)}")
    s = d["model"]
    if s.dtype.names is None or s.size != 1:
        raise ValueError(f"{where}: 'model' expected a 1x1 struct, got {s.dtype} of shape {s.shape}")
    s = s.reshape(-1)[0]
    m = {k: s[k] for k in s.dtype.names}
    _need(m, ["shapeMU", "shapePC", "shapeEV", "expPC", "expEV", "tri", "kpt_ind"], where)
    mu = _column(m["shapeMU"], "shapeMU", where)
    n3 = mu.size
    if n3 % 3:
        raise ValueError(f"{where}: shapeMU length {n3} is not a multiple of 3")
    n = n3 // 3
    pc = _matrix(m["shapePC"], "shapePC", where, n3)
    ev = _column(m["shapeEV"], "shapeEV", where, pc.shape[1])
    epc = _matrix(m["expPC"], "expPC", where, n3)
    eev = _column(m["expEV"], "expEV", where, epc.shape[1])
    if "expMU" in m:
        mu = mu + _column(m["expMU"], "expMU", where, n3)
    tri = np.asarray(m["tri"])
    if tri.ndim == 2 and tri.shape[0] == 3 and tri.shape[1] != 3:
        tri = tri.T
    if tri.ndim != 2 or tri.shape[1] != 3:
        raise ValueError(f"{where}: tri expected shape (3, F), got {np.asarray(m['tri']).shape}")
    tri = _indices(tri, "tri", where, one_based=True, n=n)
    kpt = _indices(_column(m["kpt_ind"], "kpt_ind", where), "kpt_ind", where, one_based=True, n=n)
    tex = {}
    if all(k in m for k in ("texMU", "texPC", "texEV")):
        tpc = _matrix(m["texPC"], "texPC", where, n3)
        tex = dict(texture_mean=_column(m["texMU"], "texMU", where, n3).reshape(n, 3), texture_basis=tpc,
                   texture_std=_column(m["texEV"], "texEV", where, tpc.shape[1]))
    return MorphableModel(mean=mu.reshape(n, 3), shape_basis=pc, shape_std=ev, expression_basis=epc, expression_std=eev,
                          triangles=tri, landmarks=kpt, name=name or "face3d BFM", **tex)


# ---------------------------------------------------------------------------------------------
# 3DDFA_V2 pickles


_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Admits numpy arrays, dtypes and scalars and plain containers; refuses every other global."""

    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refused to load global {module}.{name}: only numpy arrays and plain containers are allowed "
            "in model pickles (the file may be malicious or not a model file)"
        )

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refused persistent id in a model pickle")


def safe_pickle_load(path):
    """Unpickle a file through the restricted unpickler (numpy arrays + plain containers only).

    Python-2 pickles (as distributed by 3DDFA) are read with ``encoding="latin1"``. Anything else
    raises ``ValueError`` naming the refused global; no code from the file runs.
    """
    p = _path(path)
    data = p.read_bytes()
    try:
        return _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except pickle.UnpicklingError as e:
        raise ValueError(f"{p}: {e}") from e
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError, MemoryError) as e:
        raise ValueError(f"{p}: cannot unpickle (truncated or corrupt?): {type(e).__name__}: {e}") from e


def read_param_mean_std(source) -> tuple[np.ndarray, np.ndarray]:
    """The 3DDFA parameter mean and std: a pickle (3DDFA_V2 keys ``mean``/``std``, 3DDFA keys
    ``param_mean``/``param_std``; restricted unpickler) or a (mean, std) pair of arrays."""
    if isinstance(source, (str, os.PathLike)):
        d = safe_pickle_load(source)
        if not isinstance(d, dict):
            raise ValueError(f"{source}: expected a dict with 'mean'/'std', got {type(d).__name__}")
        if "mean" in d and "std" in d:
            m, s = d["mean"], d["std"]
        elif "param_mean" in d and "param_std" in d:
            m, s = d["param_mean"], d["param_std"]
        else:
            raise ValueError(f"{source}: expected keys 'mean'/'std' or 'param_mean'/'param_std'; found: {_describe(d)}")
    else:
        try:
            m, s = source
        except (TypeError, ValueError) as e:
            raise TypeError(f"param_mean_std: expected a path or a (mean, std) pair, got {type(source).__name__}") from e
    m = np.asarray(m, np.float64).reshape(-1)
    s = np.asarray(s, np.float64).reshape(-1)
    if m.shape != s.shape or m.size < 12:
        raise ValueError(f"param_mean_std: expected mean and std of the same length >= 12, got {m.shape} and {s.shape}")
    return m, s


def load_3ddfa_pkl(path, *, tri=None, param_mean_std=None, n_shape: int | None = None, n_expression: int | None = None,
                   name: str | None = None) -> MorphableModel:
    """Load a 3DDFA_V2 model pickle such as ``bfm_noneck_v3.pkl`` (restricted unpickler).

    Parameters
    ----------
    path : the pickle (dict with u, w_shp, w_exp, keypoints and, except for v3, tri).
    tri : path to ``tri.pkl`` or (3, F)/(F, 3) 0-based int array, optional
        Required when the pickle has no ``tri`` (3DDFA_V2 rebuilds the v3 triangles separately).
    param_mean_std : path to ``param_mean_std_62d_120x120.pkl`` or (mean, std), optional
        Supplies ``shape_std``/``expression_std`` (entries 12: of the std); else ones.
    n_shape, n_expression : keep only the leading components (3DDFA_V2 uses 40 and 10).
    """
    p = _path(path)
    d = safe_pickle_load(p)
    where = f"{p} (3DDFA_V2 pickle layout)"
    if not isinstance(d, dict):
        raise ValueError(f"{where}: expected a dict, got {type(d).__name__}")
    _need(d, ["u", "w_shp", "w_exp", "keypoints"], where)
    u = _column(d["u"], "u", where)
    n3 = u.size
    if n3 % 3:
        raise ValueError(f"{where}: u length {n3} is not a multiple of 3")
    n = n3 // 3
    ws = _matrix(d["w_shp"], "w_shp", where, n3)
    we = _matrix(d["w_exp"], "w_exp", where, n3)
    if n_shape is not None:
        ws = ws[:, :n_shape]
    if n_expression is not None:
        we = we[:, :n_expression]
    if tri is None:
        if "tri" not in d:
            raise ValueError(f"{where}: no 'tri' in the pickle (3DDFA_V2 keeps the v3 triangles in configs/tri.pkl); "
                             f"pass tri=; found: {_describe(d)}")
        t = d["tri"]
    elif isinstance(tri, (str, os.PathLike)):
        t = safe_pickle_load(tri)
        if isinstance(t, dict):
            _need(t, ["tri"], str(tri))
            t = t["tri"]
    else:
        t = tri
    t = np.asarray(t)
    if t.ndim == 2 and t.shape[0] == 3 and t.shape[1] != 3:
        t = t.T
    if t.ndim != 2 or t.shape[1] != 3:
        raise ValueError(f"{where}: tri expected shape (3, F), got {np.asarray(t).shape}")
    t = _indices(t, "tri", where, one_based=False, n=n)
    kp = _indices(_column(d["keypoints"], "keypoints", where), "keypoints", where, one_based=False, n=n3)
    if kp.size % 3 or not np.array_equal(kp.reshape(-1, 3) - kp.reshape(-1, 3)[:, :1], np.tile([0, 1, 2], (kp.size // 3, 1))):
        raise ValueError(f"{where}: keypoints expected 3 consecutive row indices (x, y, z) per landmark, got {kp[:6]}...")
    if (kp.reshape(-1, 3)[:, 0] % 3).any():
        raise ValueError(f"{where}: keypoints expected x-row indices divisible by 3, got {kp[:6]}...")
    lm = kp.reshape(-1, 3)[:, 0] // 3
    if param_mean_std is not None:
        _, std = read_param_mean_std(param_mean_std)
        if std.size < 12 + ws.shape[1] + we.shape[1]:
            # the whitening file may cover fewer components than the basis: keep that many
            ks = min(ws.shape[1], std.size - 12)
            ws = ws[:, :ks]
            we = we[:, : max(0, std.size - 12 - ks)]
        ss = std[12:12 + ws.shape[1]]
        es = std[12 + ws.shape[1]:12 + ws.shape[1] + we.shape[1]]
    else:
        ss = np.ones(ws.shape[1])
        es = np.ones(we.shape[1])
    return MorphableModel(mean=u.reshape(n, 3), shape_basis=ws, shape_std=ss, expression_basis=we, expression_std=es,
                          triangles=t, landmarks=lm, name=name or "3DDFA_V2 BFM")


# ---------------------------------------------------------------------------------------------
# BFM2017 HDF5


def load_bfm2017_h5(path, *, landmarks=None, name: str | None = None) -> MorphableModel:
    """Load a BFM2017/2019 statismo HDF5 file (``model2017-1_bfm_nomouth.h5`` and kin).

    ``pcaVariance`` holds variances: ``*_std = sqrt(pcaVariance)``. The ``expression`` and
    ``color`` groups are optional. Coordinates in millimetres as stored.
    """
    import h5py

    p = _path(path)
    try:
        f = h5py.File(p, "r")
    except OSError as e:
        raise ValueError(f"{p}: cannot open as HDF5 (truncated or not an HDF5 file?): {e}") from e
    where = f"{p} (BFM2017 HDF5 layout)"
    try:
        with f:
            found = []
            f.visititems(lambda k, v: found.append(f"{k} {v.shape}") if isinstance(v, h5py.Dataset) else None)

            def get(key, required=True):
                if key in f and isinstance(f[key], h5py.Dataset):
                    return np.asarray(f[key][()])
                if required:
                    raise ValueError(f"{where}: missing dataset '{key}'; found: {', '.join(found) or 'nothing'}")
                return None

            major = int(np.asarray(f["version/majorVersion"][()]).reshape(-1)[0]) if "version/majorVersion" in f else 0
            minor = int(np.asarray(f["version/minorVersion"][()]).reshape(-1)[0]) if "version/minorVersion" in f else 9
            scaled_basis = (major, minor) == (0, 8)  # old statismo: pcaBasis = U * sqrt(variance)

            def unscale(basis, variance):
                if not scaled_basis:
                    return basis
                root = np.sqrt(np.maximum(variance, 0.0))
                return basis / np.where(root > 1e-8, root, np.inf)[None, :]

            mu = _column(get("shape/model/mean"), "shape/model/mean", where)
            n3 = mu.size
            if n3 % 3:
                raise ValueError(f"{where}: shape/model/mean length {n3} is not a multiple of 3")
            n = n3 // 3
            pc = _matrix(get("shape/model/pcaBasis"), "shape/model/pcaBasis", where, n3)
            var = _column(get("shape/model/pcaVariance"), "shape/model/pcaVariance", where, pc.shape[1])
            pc = unscale(pc, var)
            cells = np.asarray(get("shape/representer/cells"))
            if cells.ndim != 2 or 3 not in cells.shape:
                raise ValueError(f"{where}: shape/representer/cells expected shape (3, F), got {cells.shape}")
            tri = cells.T if cells.shape[0] == 3 and cells.shape[1] != 3 else cells
            tri = _indices(tri, "shape/representer/cells", where, one_based=False, n=n)
            emu = get("expression/model/mean", required=False)
            if emu is not None:
                emu = _column(emu, "expression/model/mean", where, n3)
                mu = mu + emu
                epc = _matrix(get("expression/model/pcaBasis"), "expression/model/pcaBasis", where, n3)
                evar = _column(get("expression/model/pcaVariance"), "expression/model/pcaVariance", where, epc.shape[1])
                epc = unscale(epc, evar)
            else:
                epc, evar = np.zeros((n3, 0), np.float32), np.zeros(0)
            tex = {}
            cmu = get("color/model/mean", required=False)
            if cmu is not None:
                cpc = _matrix(get("color/model/pcaBasis"), "color/model/pcaBasis", where, n3)
                cvar = _column(get("color/model/pcaVariance"), "color/model/pcaVariance", where, cpc.shape[1])
                cpc = unscale(cpc, cvar)
                tex = dict(texture_mean=_column(cmu, "color/model/mean", where, n3).reshape(n, 3), texture_basis=cpc,
                           texture_std=np.sqrt(np.maximum(cvar, 0)))
    except OSError as e:  # h5py raises OSError on truncated datasets
        raise ValueError(f"{p}: cannot read HDF5 data (truncated or corrupt?): {e}") from e
    for nm, v in (("shape/model/pcaVariance", var), ("expression/model/pcaVariance", evar)):
        if (v < 0).any():
            raise ValueError(f"{where}: {nm} expected variances >= 0, got minimum {v.min()}")
    return MorphableModel(mean=mu.reshape(n, 3), shape_basis=pc, shape_std=np.sqrt(var), expression_basis=epc,
                          expression_std=np.sqrt(evar), triangles=tri,
                          landmarks=np.zeros(0, np.int64) if landmarks is None else landmarks,
                          name=name or "BFM2017", **tex)


# ---------------------------------------------------------------------------------------------
# canonical npz

_NPZ_ARRAYS = ("mean", "shape_basis", "shape_std", "expression_basis", "expression_std", "triangles", "landmarks")
_NPZ_TEXTURE = ("texture_mean", "texture_basis", "texture_std")


def save_npz(path, model: MorphableModel, *, compressed: bool = False) -> Path:
    """Write a model as our canonical .npz (atomic: temp file + rename). Returns the path."""
    if not isinstance(model, MorphableModel):
        raise TypeError(f"model: expected a MorphableModel, got {type(model).__name__}")
    p = Path(path)
    arrays = {k: getattr(model, k) for k in _NPZ_ARRAYS}
    if model.has_texture:
        arrays.update({k: getattr(model, k) for k in _NPZ_TEXTURE})
    arrays["name"] = np.array(model.name)
    arrays["format"] = np.array(NPZ_FORMAT)
    with atomic_path(p) as tmp, open(tmp, "wb") as fh:
        (np.savez_compressed if compressed else np.savez)(fh, **arrays)
    return p


def load_npz(path) -> MorphableModel:
    """Read our canonical .npz (``allow_pickle=False``)."""
    p = _path(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
    except ValueError as e:
        raise ValueError(f"{p}: refused or unreadable .npz (object arrays are not allowed): {e}") from e
    except Exception as e:  # zipfile.BadZipFile, EOFError, OSError on truncated files
        raise ValueError(f"{p}: cannot read as .npz (truncated or corrupt?): {type(e).__name__}: {e}") from e
    where = f"{p} (meshkit .npz layout)"
    _need(d, list(_NPZ_ARRAYS), where)
    fmt = str(d.get("format", ""))
    if fmt != NPZ_FORMAT:
        raise ValueError(f"{where}: expected format '{NPZ_FORMAT}', got {fmt!r}")
    tex = {k: d[k] for k in _NPZ_TEXTURE if k in d}
    return MorphableModel(**{k: d[k] for k in _NPZ_ARRAYS}, name=str(d.get("name", "")), **tex)


# ---------------------------------------------------------------------------------------------
# dispatch


def _sniff(p: Path) -> str:
    with open(p, "rb") as fh:
        head = fh.read(128)
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "h5"
    if head.startswith(b"PK"):
        return "npz"
    if head.startswith(b"MATLAB"):
        return "mat"
    if head[:1] == b"\x80" or p.suffix.lower() in (".pkl", ".pickle"):
        return "pkl"
    if p.suffix.lower() in (".h5", ".hdf5"):
        return "h5"
    if p.suffix.lower() == ".mat":
        return "mat"
    if p.suffix.lower() == ".npz":
        return "npz"
    return "unknown"


def load_model(path, **kw) -> MorphableModel:
    """Load a Morphable Model from any supported layout, chosen by the file's content.

    HDF5 -> :func:`load_bfm2017_h5`; zip -> :func:`load_npz`; MATLAB with a struct ``model`` ->
    :func:`load_face3d_mat`, with ``shapeMU``/``tl`` -> :func:`load_bfm2009`; pickle ->
    :func:`load_3ddfa_pkl`. Keyword arguments go to that loader (e.g. ``expression=``,
    ``trim=`` for BFM2009; ``tri=``, ``param_mean_std=`` for 3DDFA_V2).
    """
    p = _path(path)
    kind = _sniff(p)
    if kind == "h5":
        return load_bfm2017_h5(p, **kw)
    if kind == "npz":
        if kw:
            raise TypeError(f"load_model: the .npz layout takes no options, got {sorted(kw)}")
        return load_npz(p)
    if kind == "pkl":
        return load_3ddfa_pkl(p, **kw)
    if kind == "mat":
        import scipy.io

        try:
            names = {n for n, _, _ in scipy.io.whosmat(str(p))}
        except Exception as e:  # noqa: BLE001 - any failure means an unreadable file
            raise ValueError(f"{p}: cannot read as a MATLAB .mat file (truncated or corrupt?): {e}") from e
        if "model" in names:
            return load_face3d_mat(p, **kw)
        if {"shapeMU", "shapePC", "tl"} <= names:
            return load_bfm2009(p, **kw)
        raise ValueError(f"{p}: .mat file is neither BFM2009 (shapeMU, shapePC, shapeEV, tl) nor face3d BFM.mat "
                         f"(struct 'model'); found variables: {sorted(names)}")
    raise ValueError(f"{p}: unknown model file layout (expected .mat, .pkl, .h5 or .npz content)")
