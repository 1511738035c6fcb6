"""BFM2017/2019: the statismo HDF5 layout (``model2017-1_bfm_nomouth.h5`` and kin).

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
    The winding of the real ``cells`` is not recorded in ../shared/REAL_FILES.md: the loader
    measures it like every other (``winding="auto"``) and the writer writes counter-clockwise.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from meshkit.io import atomic_path

from ..model import MorphableModel
from ._common import check_file, column, interleaved, loaded_triangles, matrix, triangles_3xf

__all__ = ["load_bfm2017_h5", "write_bfm2017_h5"]


def load_bfm2017_h5(path, *, landmarks=None, winding: str = "auto", name: str | None = None) -> MorphableModel:
    """Load a BFM2017/2019 statismo HDF5 file (``model2017-1_bfm_nomouth.h5`` and kin).

    ``pcaVariance`` holds variances: ``*_std = sqrt(pcaVariance)``. The ``expression`` and
    ``color`` groups are optional. Coordinates in millimetres as stored. ``winding``: "auto"
    (default) gives counter-clockwise triangles whatever the file stores (measured on the mean;
    recorded in ``stored_winding``), "keep" the stored order.
    """
    import h5py

    p = check_file(path)
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

            def pca(group, rows):
                """(orthonormal basis (rows, K), variance (K,)) of one group's model."""
                b = matrix(get(f"{group}/model/pcaBasis"), f"{group}/model/pcaBasis", where, rows)
                var = column(get(f"{group}/model/pcaVariance"), f"{group}/model/pcaVariance", where, b.shape[1])
                if scaled_basis:
                    root = np.sqrt(np.maximum(var, 0.0))
                    b = b / np.where(root > 1e-8, root, np.inf)[None, :]
                return b, var

            mu, n = interleaved(get("shape/model/mean"), "shape/model/mean", where)
            pc, var = pca("shape", 3 * n)
            tri = triangles_3xf(get("shape/representer/cells"), "shape/representer/cells", where, one_based=False, n=n)
            emu = get("expression/model/mean", required=False)
            if emu is not None:
                mu = mu + column(emu, "expression/model/mean", where, 3 * n)
                epc, evar = pca("expression", 3 * n)
            else:
                epc, evar = np.zeros((3 * n, 0), np.float32), np.zeros(0)
            tex = {}
            cmu = get("color/model/mean", required=False)
            if cmu is not None:
                cpc, cvar = pca("color", 3 * n)
                tex = dict(texture_mean=column(cmu, "color/model/mean", where, 3 * n).reshape(n, 3), texture_basis=cpc,
                           texture_std=np.sqrt(np.maximum(cvar, 0)))
    except OSError as e:  # h5py raises OSError on truncated datasets
        raise ValueError(f"{p}: cannot read HDF5 data (truncated or corrupt?): {e}") from e
    for nm, v in (("shape/model/pcaVariance", var), ("expression/model/pcaVariance", evar)):
        if (v < 0).any():
            raise ValueError(f"{where}: {nm} expected variances >= 0, got minimum {v.min()}")
    tri, stored = loaded_triangles(mu.reshape(n, 3), tri, winding)
    return MorphableModel(mean=mu.reshape(n, 3), shape_basis=pc, shape_std=np.sqrt(var), expression_basis=epc,
                          expression_std=np.sqrt(evar), triangles=tri, stored_winding=stored,
                          landmarks=np.zeros(0, np.int64) if landmarks is None else landmarks,
                          name=name or "BFM2017", **tex)


def write_bfm2017_h5(path, model, *, version: tuple[int, int] = (0, 9)) -> Path:
    """Write the BFM2017 statismo HDF5 layout: ``{shape,expression,color}/model/{mean, pcaBasis,
    pcaVariance, noiseVariance}`` (float32; mean (3N,), basis (3N, K), variance (K,) = std^2,
    noise (1,)), ``{group}/representer/{points (3, N) float32, cells (3, F) int32 0-based}`` with the
    representer attributes name/datasetType, ``/version/{majorVersion, minorVersion}``, and
    ``metadata/landmarks/json`` naming the landmark vertices. ``version=(0, 8)`` writes the old
    statismo basis U * sqrt(variance). Units are the model's (BFM2017 itself is in millimetres).
    Returns the path."""
    import h5py

    p = Path(path)
    with atomic_path(p) as tmp, h5py.File(tmp, "w") as f:
        groups = [("shape", np.asarray(model.mean).reshape(-1), model.shape_basis, model.shape_std)]
        if model.n_expression:
            groups.append(("expression", np.zeros(3 * model.n_vertices, np.float32), model.expression_basis,
                           model.expression_std))
        if model.has_texture:
            groups.append(("color", np.asarray(model.texture_mean).reshape(-1), model.texture_basis, model.texture_std))
        for g, mean, basis, std in groups:
            variance = np.asarray(std, np.float64) ** 2
            stored = np.asarray(basis, np.float64) * (np.sqrt(variance)[None, :] if tuple(version) == (0, 8) else 1.0)
            f[f"{g}/model/mean"] = np.asarray(mean, np.float32)
            f[f"{g}/model/pcaBasis"] = stored.astype(np.float32)
            f[f"{g}/model/pcaVariance"] = variance.astype(np.float32)
            f[f"{g}/model/noiseVariance"] = np.zeros(1, np.float32)
            f[f"{g}/representer/points"] = np.asarray(model.mean, np.float32).T
            f[f"{g}/representer/cells"] = np.asarray(model.triangles.T, np.int32)
            f[f"{g}/representer"].attrs["name"] = "itkStandardMeshRepresenter"
            f[f"{g}/representer"].attrs["datasetType"] = "POLYGON_MESH"
        f["version/majorVersion"] = np.int32(version[0])
        f["version/minorVersion"] = np.int32(version[1])
        lms = [{"id": f"ibug_{i}", "vertex": int(k), "coordinates": [float(c) for c in model.mean[k]]}
               for i, k in enumerate(model.landmarks)]
        f["metadata/landmarks/json"] = json.dumps(lms)
    return p
