"""3DDFA_V2's model pickle (``bfm_noneck_v3.pkl``), its parameter whitening file, and safe unpickling.

3DDFA_V2 ``bfm_noneck_v3.pkl`` (3DDFA_V2 ``bfm/bfm.py`` ``BFMModel``, ``utils/io.py`` ``_load``):
    a pickled dict with ``u`` (3N, 1), ``w_shp`` (3N, >=40), ``w_exp`` (3N, >=10), ``keypoints``
    (204,) = the 3 interleaved row indices of each of the 68 landmarks (0-based, used as
    ``u[keypoints]``), ``tri`` stored (3, F) 0-based (transposed on load); for the v3 no-neck model
    the triangles come from a separate ``configs/tri.pkl`` (also (3, F), int32, clockwise seen from
    outside like every real BFM list: ../shared/REAL_FILES.md; re-wound counter-clockwise on load
    with ``winding="auto"``, written back clockwise). N = 38,365. The file
    stores no standard deviations; the 62-parameter whitening file
    ``param_mean_std_62d_120x120.pkl`` (dict ``mean``, ``std``, each (62,)) gives the std of the
    raw coefficients over 300W-LP and is used as ``shape_std``/``expression_std`` when passed
    (otherwise ones, so ``units="std"`` equals ``"raw"``). Pickles are loaded with a restricted
    unpickler admitting only numpy arrays/dtypes/scalars, ``_codecs.encode`` (how protocol-2
    pickles carry bytes) and plain containers; anything else is refused before it can run.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np

from ..model import MorphableModel
from ._common import (
    check_file,
    col,
    column,
    describe,
    indices,
    interleaved,
    loaded_triangles,
    matrix,
    need,
    stored_triangles,
    triangles_3xf,
    write_atomic,
)

__all__ = ["load_3ddfa_pkl", "read_param_mean_std", "safe_pickle_load", "write_3ddfa_pkl"]

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
    p = check_file(path)
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
            raise ValueError(f"{source}: expected keys 'mean'/'std' or 'param_mean'/'param_std'; found: {describe(d)}")
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


def _triangles_source(d: dict, tri, where: str):
    """The stored (3, F) triangles: the pickle's own ``tri``, a separate ``tri.pkl`` or an array."""
    if tri is None:
        if "tri" not in d:
            raise ValueError(f"{where}: no 'tri' in the pickle (3DDFA_V2 keeps the v3 triangles in configs/tri.pkl); "
                             f"pass tri=; found: {describe(d)}")
        return d["tri"]
    if isinstance(tri, (str, os.PathLike)):
        t = safe_pickle_load(tri)
        if isinstance(t, dict):
            need(t, ["tri"], str(tri))
            t = t["tri"]
        return t
    return tri


def load_3ddfa_pkl(path, *, tri=None, param_mean_std=None, n_shape: int | None = None, n_expression: int | None = None,
                   winding: str = "auto", name: str | None = None) -> MorphableModel:
    """Load a 3DDFA_V2 model pickle such as ``bfm_noneck_v3.pkl`` (restricted unpickler).

    Parameters
    ----------
    path : the pickle (dict with u, w_shp, w_exp, keypoints and, except for v3, tri).
    tri : path to ``tri.pkl`` or (3, F)/(F, 3) 0-based int array, optional
        Required when the pickle has no ``tri`` (3DDFA_V2 rebuilds the v3 triangles separately).
    param_mean_std : path to ``param_mean_std_62d_120x120.pkl`` or (mean, std), optional
        Supplies ``shape_std``/``expression_std`` (entries 12: of the std); else ones.
    n_shape, n_expression : keep only the leading components (3DDFA_V2 uses 40 and 10).
    winding : "auto" (default) re-winds the clockwise stored triangles counter-clockwise (measured
        on the mean; recorded in ``stored_winding``); "keep" keeps the stored order.
    """
    p = check_file(path)
    d = safe_pickle_load(p)
    where = f"{p} (3DDFA_V2 pickle layout)"
    if not isinstance(d, dict):
        raise ValueError(f"{where}: expected a dict, got {type(d).__name__}")
    need(d, ["u", "w_shp", "w_exp", "keypoints"], where)
    u, n = interleaved(d["u"], "u", where)
    ws = matrix(d["w_shp"], "w_shp", where, 3 * n)[:, :n_shape]
    we = matrix(d["w_exp"], "w_exp", where, 3 * n)[:, :n_expression]
    t, stored = loaded_triangles(u.reshape(n, 3), triangles_3xf(_triangles_source(d, tri, where), "tri", where,
                                                                one_based=False, n=n), winding)
    kp = indices(column(d["keypoints"], "keypoints", where), "keypoints", where, one_based=False, n=3 * n)
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
                          triangles=t, landmarks=lm, name=name or "3DDFA_V2 BFM", stored_winding=stored)


def write_3ddfa_pkl(path, model, *, n_shape: int = 40, n_expression: int = 10, tri_path=None,
                    param_mean_std_path=None, camera_mean=None) -> dict:
    """Write 3DDFA_V2's ``bfm_noneck_v3.pkl`` layout (+ ``tri.pkl`` and the 62-d mean/std pickle).

    The model pickle is a dict: u (3N, 1) float32, w_shp (3N, n_shape), w_exp (3N, n_expression)
    float32, keypoints (204,) int64 (the x, y, z rows of each landmark); with ``tri_path`` the
    triangles go to that separate pickle as a bare (3, F) int32 array (the v3 arrangement), else
    into the dict as ``tri`` (3, F); either way 0-based and clockwise, as in the real files.
    ``param_mean_std_path`` gets {"mean": (62,), "std": (62,)} float32: pose part from
    ``camera_mean`` (12,) (default a frontal 120-px camera) with std 1e-4,
    coefficient part mean 0 and std = the model's std. Protocol 2 (readable by Python 2 and 3).

    Returns
    -------
    dict of the written paths: "pkl", and "tri", "param_mean_std" when written.
    """
    ks, ke = min(n_shape, model.n_shape), min(n_expression, model.n_expression)
    rows = (3 * model.landmarks[:, None] + np.arange(3)).reshape(-1).astype(np.int64)
    d = {"u": col(model.mean), "w_shp": np.ascontiguousarray(model.shape_basis[:, :ks], np.float32),
         "w_exp": np.ascontiguousarray(model.expression_basis[:, :ke], np.float32), "keypoints": rows}
    tri = np.ascontiguousarray(stored_triangles(model).T, np.int32)
    paths = {"pkl": Path(path)}
    if tri_path is None:
        d["tri"] = tri
    else:
        paths["tri"] = Path(tri_path)
        write_atomic(paths["tri"], lambda fh: pickle.dump(tri, fh, protocol=2))
    write_atomic(paths["pkl"], lambda fh: pickle.dump(d, fh, protocol=2))
    if param_mean_std_path is not None:
        cam = np.array([6e-4, 0, 0, 60, 0, 6e-4, 0, 60, 0, 0, 6e-4, 0]) if camera_mean is None else np.asarray(camera_mean)
        mean = np.concatenate([cam.reshape(12), np.zeros(ks + ke)]).astype(np.float32)
        std = np.concatenate([np.full(12, 1e-4), model.shape_std[:ks], model.expression_std[:ke]]).astype(np.float32)
        paths["param_mean_std"] = Path(param_mean_std_path)
        write_atomic(paths["param_mean_std"], lambda fh: pickle.dump({"mean": mean, "std": std}, fh, protocol=2))
    return paths
