"""face3d's ``BFM.mat``: one MATLAB struct ``model`` holding the trimmed BFM with its expression basis.

face3d ``BFM.mat`` (face3d ``examples/Data/BFM/generate.m``/``generate.py``, read by face3d
    ``morphable_model/load.py`` ``load_BFM``): one struct ``model`` with ``shapeMU`` (3N, 1),
    ``shapePC`` (3N, 199), ``shapeEV`` (199, 1), ``expMU`` (3N, 1), ``expPC`` (3N, 29), ``expEV``
    (29, 1) (the expression model of 3DDFA's ``Model_Expression.mat``: ``mu_exp``, ``w_exp``,
    ``sigma_exp``), ``texMU``, ``texPC``, ``texEV``, ``tri`` (3, F) 1-based (3DDFA's
    ``model_info.mat`` ``tri``; face3d transposes and subtracts 1), ``kpt_ind`` (1, 68) 1-based,
    ``tri_mouth`` (3, F_mouth) 1-based; N = 53,215 (rows selected by ``trimIndex``). face3d's
    loader uses ``shapeMU + expMU`` as the mean, which this loader does too. ``tri`` is uint16,
    1-based, (3, F) and clockwise seen from outside (../shared/REAL_FILES.md: identical to 3DDFA's
    ``visualize/tri.mat``); the loader re-winds it counter-clockwise (``winding="auto"``) and the
    writer writes it back clockwise as uint16.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..model import MorphableModel
from ._common import (
    basis,
    check_file,
    col,
    column,
    describe,
    indices,
    interleaved,
    loaded_triangles,
    loadmat,
    need,
    stored_triangles,
    texture,
    triangles_3xf,
    write_atomic,
)

__all__ = ["load_face3d_mat", "write_face3d_mat"]

# iBUG landmarks 48..67 outline the mouth
_MOUTH_LANDMARKS = slice(48, 68)


def load_face3d_mat(path, *, winding: str = "auto", name: str | None = None) -> MorphableModel:
    """Load face3d's generated ``BFM.mat`` (struct ``model``; see the module docstring).

    The mean is ``shapeMU + expMU`` (as face3d's ``load_BFM``); ``tri`` and ``kpt_ind`` are
    1-based in the file and stored as (3, F) / (1, 68) (a transposed (F, 3) is accepted too).
    ``winding``: "auto" (default) re-winds the file's clockwise ``tri`` counter-clockwise (measured
    on the mean; recorded in ``stored_winding``), "keep" keeps the stored order.
    """
    p = check_file(path)
    d = loadmat(p)
    where = f"{p} (face3d BFM.mat layout)"
    if "model" not in d:
        raise ValueError(f"{where}: expected a struct 'model'; found: {describe(d)}")
    s = d["model"]
    if s.dtype.names is None or s.size != 1:
        raise ValueError(f"{where}: 'model' expected a 1x1 struct, got {s.dtype} of shape {s.shape}")
    s = s.reshape(-1)[0]
    m = {k: s[k] for k in s.dtype.names}
    need(m, ["shapeMU", "shapePC", "shapeEV", "expPC", "expEV", "tri", "kpt_ind"], where)
    mu, n = interleaved(m["shapeMU"], "shapeMU", where)
    pc, ev = basis(m, "shapePC", "shapeEV", where, 3 * n)
    epc, eev = basis(m, "expPC", "expEV", where, 3 * n)
    if "expMU" in m:
        mu = mu + column(m["expMU"], "expMU", where, 3 * n)
    mean = mu.reshape(n, 3)
    tri, stored = loaded_triangles(mean, triangles_3xf(m["tri"], "tri", where, one_based=True, n=n), winding)
    kpt = indices(column(m["kpt_ind"], "kpt_ind", where), "kpt_ind", where, one_based=True, n=n)
    return MorphableModel(mean=mean, shape_basis=pc, shape_std=ev, expression_basis=epc, expression_std=eev,
                          triangles=tri, landmarks=kpt, name=name or "face3d BFM", stored_winding=stored,
                          **texture(m, where, n))


def _mouth_mask(model: MorphableModel) -> np.ndarray:
    """(F,) bool: the triangles with all three vertices inside the ellipse (in x, y) centred on the box
    of the iBUG mouth landmarks 48-67 with 1.25 times its half-extents. Relative to that box, so the
    same in any units (micrometres, millimetres). All False without 68 landmarks."""
    if model.landmarks.size != 68:
        return np.zeros(len(model.triangles), dtype=bool)
    xy = np.asarray(model.mean, np.float64)[:, :2]
    box = xy[model.landmarks[_MOUTH_LANDMARKS]]
    lo, hi = box.min(axis=0), box.max(axis=0)
    half = 1.25 * np.maximum((hi - lo) / 2, np.finfo(np.float64).tiny)
    inside = (((xy - (lo + hi) / 2) / half) ** 2).sum(axis=1) < 1.0
    return inside[model.triangles].all(axis=1)


def mouth_triangles(model: MorphableModel) -> np.ndarray:
    """(F_mouth, 3) triangles around the mouth, in the model's winding (see :func:`_mouth_mask`);
    empty without 68 landmarks."""
    return model.triangles[_mouth_mask(model)]


def _tri_dtype(n_vertices: int):
    """uint16 as in the real file (1-based indices up to 65,535), uint32 for larger meshes."""
    return np.uint16 if n_vertices <= np.iinfo(np.uint16).max else np.uint32


def write_face3d_mat(path, model) -> Path:
    """Write face3d's ``BFM.mat`` layout: a 1x1 struct ``model`` with shapeMU, shapePC, shapeEV,
    expMU (zeros), expPC, expEV, texMU, texPC, texEV, tri (3, F) 1-based uint16 clockwise (the real
    file's dtype and winding; uint32 beyond 65,535 vertices), kpt_ind (1, 68) 1-based and
    tri_mouth (3, F_mouth) 1-based (:func:`mouth_triangles`, same dtype and winding as tri), as
    face3d's ``load_BFM`` reads them. Column vectors are (n, 1). A model without 68 landmarks gets
    an empty tri_mouth, with a warning. Returns the path."""
    import warnings

    import scipy.io

    if model.landmarks.size != 68:
        warnings.warn(f"write_face3d_mat: the model has {model.landmarks.size} landmarks, not the 68 iBUG points that "
                      "locate the mouth: tri_mouth is written empty (give the model landmarks with "
                      "model.with_landmarks)", UserWarning, stacklevel=2)
    n3 = 3 * model.n_vertices
    dtype = _tri_dtype(model.n_vertices)
    tri = stored_triangles(model) + 1
    s = {"shapeMU": col(model.mean), "shapePC": np.asarray(model.shape_basis, np.float32),
         "shapeEV": col(model.shape_std), "expMU": np.zeros((n3, 1)),
         "expPC": np.asarray(model.expression_basis, np.float64), "expEV": col(model.expression_std, np.float64),
         "tri": tri.T.astype(dtype), "kpt_ind": (model.landmarks + 1).astype(np.float64)[None, :],
         "tri_mouth": tri[_mouth_mask(model)].T.astype(dtype)}
    if model.has_texture:
        s.update(texMU=col(model.texture_mean), texPC=np.asarray(model.texture_basis, np.float32),
                 texEV=col(model.texture_std))
    p = Path(path)
    write_atomic(p, lambda fh: scipy.io.savemat(fh, {"model": s}, do_compression=False))
    return p
