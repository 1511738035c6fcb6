"""Per-vertex UV layouts of the BFM: ``BFM_UV.mat`` (read and written) and plain ``.npy``.

``BFM_UV.mat`` (from 3DMMasSTN, ``util/BFM_UV.mat``; shipped by 3DDFA_V2 in ``configs/`` and used by
face3d's examples, read by face3d ``morphable_model/load.py`` ``load_uv_coords`` as
``scipy.io.loadmat(path)['UV']``): one MATLAB variable ``UV`` of shape (53215, 2), float64, one row
per vertex of the trimmed 53,215-vertex BFM in vertex order, u and v in [0, 1] (u to the right, v
up: face3d's ``process_uv`` maps v to image rows as ``(1 - v) * (h - 1)``, which is the convention
of ``meshkit.render.uv``). ``.npy``: the same (N, 2) array saved with numpy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from meshkit.validate import check_vertices

from ._common import check_file, describe, loadmat, write_atomic

__all__ = ["read_uv", "write_uv", "UV_KEY"]

#: The MATLAB variable holding the layout in ``BFM_UV.mat``.
UV_KEY = "UV"


def _check_layout(uv, where: str) -> np.ndarray:
    """(N, 2) finite floats in [0, 1] -> float64, errors starting with ``where``."""
    a = check_vertices(uv, where, dims=2)
    lo, hi = float(a.min()), float(a.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{where}: expected u and v in [0, 1], got values in [{lo:.6g}, {hi:.6g}]")
    return a


def read_uv(path) -> np.ndarray:
    """Read a per-vertex UV layout: ``BFM_UV.mat`` (variable ``UV``) or an ``.npy`` file.

    Parameters
    ----------
    path : str or Path ending in .mat or .npy

    Returns
    -------
    (N, 2) float64 in [0, 1], one row per vertex (u right, v up).
    """
    p = check_file(path)
    suffix = p.suffix.lower()
    if suffix == ".npy":
        try:
            a = np.load(p, allow_pickle=False)
        except ValueError as e:
            raise ValueError(f"{p}: cannot read as a numeric .npy array: {e}") from e
        return _check_layout(a, f"{p} (.npy UV layout)")
    if suffix != ".mat":
        raise ValueError(f"path: expected a BFM_UV.mat-style .mat or an .npy file, got {p.name!r}")
    d = loadmat(p)
    if UV_KEY not in d:
        raise ValueError(f"{p} (BFM_UV.mat layout): expected the variable {UV_KEY!r} (N, 2) float64, found {describe(d)}")
    return _check_layout(d[UV_KEY], f"{p} (BFM_UV.mat layout) {UV_KEY}")


def write_uv(path, uv) -> Path:
    """Write a per-vertex UV layout in the real ``BFM_UV.mat`` layout (or as .npy), atomically.

    Parameters
    ----------
    path : str or Path ending in .mat (variable ``UV``, (N, 2) float64, MATLAB 5 format) or .npy.
    uv : (N, 2) float in [0, 1]

    Returns
    -------
    The path written.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".mat", ".npy"):
        raise ValueError(f"path: expected a file name ending in .mat or .npy, got {p.name!r}")
    a = np.ascontiguousarray(_check_layout(uv, "uv"), dtype=np.float64)
    if suffix == ".npy":
        write_atomic(p, lambda fh: np.save(fh, a))
    else:
        import scipy.io

        write_atomic(p, lambda fh: scipy.io.savemat(fh, {UV_KEY: a}))
    return p
