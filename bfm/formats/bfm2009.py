"""BFM2009: ``01_MorphableModel.mat`` with the expression basis ``Exp_Pca.bin`` and its trim list.

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
    seen from the front, like every real BFM triangle list (../shared/REAL_FILES.md; eos swaps two
    indices of each to make them front-facing): ``winding="auto"`` re-winds them counter-clockwise
    (``bfm.formats._common.loaded_triangles``, measured on the mean) and the writer writes them
    clockwise again.
Expression basis ``Exp_Pca.bin`` (Guo et al., FaceWarehouse-derived; shipped with
    Deep3DFaceReconstruction's instructions): little-endian binary, ``int32 n_exp`` then
    ``float32 expMU[3 * n]`` then ``float32 expPC[n_exp * 3 * n]`` stored component after component
    (reshape (n_exp, 3n) then transpose to (3n, n_exp)); interleaved xyz within a component. n =
    53,215: the basis lives on the TRIMMED vertex set, in the order of ``BFM_exp_idx.mat`` key
    ``trimIndex`` (1-based indices into the 53,490 BFM2009 vertices). The standard deviations are
    a separate text file ``std_exp.txt`` (one per line; the real basis has n_exp = 79, as
    Deep3DFaceReconstruction's ``reshape(expEV, [-1, 79])`` shows). Deep3DFaceReconstruction
    ignores ``expMU``; ``add_expression_mean=True`` adds it to the mean instead.
"""

from __future__ import annotations

import os
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
    write_atomic,
)

__all__ = ["load_bfm2009", "read_exp_pca_bin", "read_trim_index", "write_bfm2009"]


def read_exp_pca_bin(path, n_vertices: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read ``Exp_Pca.bin``: returns (expMU (3n,) float32, expPC (3n, n_exp) float32).

    Layout (see the module docstring): int32 n_exp, float32 expMU (3n values), float32 expPC
    (n_exp rows of 3n values).
    n is deduced from the file size (and checked against ``n_vertices`` when given); a file whose
    size does not fit the layout (e.g. truncated) is a ``ValueError``.
    """
    p = check_file(path)
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
        p = check_file(source, "trim")
        if p.suffix.lower() == ".mat":
            d = loadmat(p)
            key = "trimIndex" if "trimIndex" in d else "idx" if "idx" in d else None
            if key is None:
                raise ValueError(f"{p}: expected key 'trimIndex' or 'idx'; found: {describe(d)}")
            return indices(column(d[key], key, str(p)), key, str(p), one_based=True)
        return indices(np.loadtxt(p, ndmin=1), "trim", str(p), one_based=True)
    arr = np.asarray(source)
    return indices(arr.reshape(-1), "trim", "trim", one_based=False)


def _read_expression_std(source, n_exp: int) -> np.ndarray:
    """(n_exp,) expression std from ``std_exp.txt`` (one per line) or an array (extra values dropped)."""
    std = (np.loadtxt(check_file(source, "expression_std"), ndmin=1)
           if isinstance(source, (str, os.PathLike)) else np.asarray(source, np.float64))
    std = column(std, "expression_std", "expression_std")
    if std.size < n_exp:
        raise ValueError(f"expression_std: expected {n_exp} values, got {std.size}")
    return std[:n_exp]


def load_bfm2009(path, *, expression=None, expression_std=None, trim=None, landmarks=None,
                 winding: str = "auto", add_expression_mean: bool = False, name: str | None = None) -> MorphableModel:
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
    winding : "auto" | "keep"
        "auto" (default): counter-clockwise (outward) triangles, the file's clockwise ``tl``
        reversed (measured on the mean shape; recorded in ``stored_winding``); "keep": as stored.
    add_expression_mean : bool
        Add Exp_Pca.bin's ``expMU`` to the mean (Deep3DFaceReconstruction ignores it).
    """
    p = check_file(path)
    d = loadmat(p)
    where = f"{p} (BFM2009 layout)"
    need(d, ["shapeMU", "shapePC", "shapeEV", "tl"], where)
    mu, n = interleaved(d["shapeMU"], "shapeMU", where)
    n3 = 3 * n
    pc, ev = basis(d, "shapePC", "shapeEV", where, n3)
    tl = np.asarray(d["tl"])
    if tl.ndim != 2 or tl.shape[1] != 3:
        raise ValueError(f"{where}: tl expected shape (F, 3), got {tl.shape}")
    mean = mu.reshape(n, 3).astype(np.float32)
    tri, stored = loaded_triangles(mean, indices(tl, "tl", where, one_based=True, n=n), winding)
    tex = texture(d, where, n)
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
            exp_std = _read_expression_std(expression_std, e_pc.shape[1])
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
                           triangles=tri, landmarks=np.zeros(0, np.int64), name=name or "BFM2009", stored_winding=stored,
                           **tex)
    if trim_idx is not None:
        model = model.subset(trim_idx, name=name or "BFM2009 trimmed")
    if landmarks is not None:
        model = model.with_landmarks(landmarks)
    return model


def write_bfm2009(directory, model, *, trim=None, expression: bool = True) -> dict:
    """Write a model in the BFM2009 layout: ``01_MorphableModel.mat`` (+ ``Exp_Pca.bin``,
    ``std_exp.txt`` and ``BFM_exp_idx.mat`` when ``expression``).

    The .mat holds shapeMU (3N, 1), shapePC (3N, K), shapeEV (K, 1), texMU, texPC, texEV (float32),
    and tl (F, 3) 1-based with clockwise winding as in the real file (``stored_triangles``).
    The expression basis goes to Exp_Pca.bin on the vertices ``trim`` (0-based; written 1-based
    as ``trimIndex`` (M, 1) in BFM_exp_idx.mat), in that order; its std to std_exp.txt.

    Parameters
    ----------
    directory : output folder (created).
    model : MorphableModel, e.g. the first element of ``bfm.synthetic.synthetic_model_full``.
    trim : (M,) int, 0-based, optional (default: all vertices).

    Returns
    -------
    dict of the written paths: "mat", and "exp_pca", "std_exp", "trim" when written.
    """
    import scipy.io

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    n = model.n_vertices
    tri = stored_triangles(model) + 1
    d = {"shapeMU": col(model.mean), "shapePC": np.asarray(model.shape_basis, np.float32),
         "shapeEV": col(model.shape_std), "tl": tri.astype(np.float32)}
    if model.has_texture:
        d.update(texMU=col(model.texture_mean), texPC=np.asarray(model.texture_basis, np.float32),
                 texEV=col(model.texture_std))
    paths = {"mat": out / "01_MorphableModel.mat"}
    write_atomic(paths["mat"], lambda fh: scipy.io.savemat(fh, d, do_compression=False))
    if expression and model.n_expression:
        idx = np.arange(n) if trim is None else np.asarray(trim, np.int64)
        rows = (3 * idx[:, None] + np.arange(3)).reshape(-1)
        pc = np.asarray(model.expression_basis, np.float32)[rows]  # (3M, K)
        paths["exp_pca"] = out / "Exp_Pca.bin"
        header = np.array([pc.shape[1]], "<i4").tobytes()
        mu = np.zeros(rows.size, "<f4").tobytes()
        write_atomic(paths["exp_pca"], lambda fh: fh.write(header + mu + np.ascontiguousarray(pc.T, "<f4").tobytes()))
        paths["std_exp"] = out / "std_exp.txt"
        write_atomic(paths["std_exp"], lambda fh: np.savetxt(fh, np.asarray(model.expression_std, np.float64)))
        paths["trim"] = out / "BFM_exp_idx.mat"
        write_atomic(paths["trim"], lambda fh: scipy.io.savemat(fh, {"trimIndex": col(idx + 1, np.float64)}))
    return paths
