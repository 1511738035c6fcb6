"""Set-up shared by the layout modules: path and key checks, array parsing, .mat reading, atomic writes,
and the one winding mechanism of every loader and writer (:func:`measure_winding`, :func:`loaded_triangles`,
:func:`stored_triangles`).

Every check raises ``ValueError`` (``TypeError`` for a wrong kind of argument) starting with
``where`` (the file and its layout) and naming the key, the expected shape and what was found.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from meshkit.io import atomic_path
from meshkit.topology import outward_fraction, reverse_winding
from meshkit.validate import check_choice, check_mesh

#: ``winding=`` of every loader: "auto" re-winds clockwise files to counter-clockwise, "keep" keeps the file's order.
WINDINGS = ("auto", "keep")


def check_file(path, name: str = "path") -> Path:
    """``path`` as a Path to an existing file (TypeError for a non-path, FileNotFoundError if absent)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name}: expected a file path, got {type(path).__name__}")
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{name}: no such file: {p}")
    return p


def describe(d: dict) -> str:
    """'key (shape) dtype, ...' for the entries of a loaded file (for error messages)."""
    parts = []
    for k, v in d.items():
        if str(k).startswith("__"):
            continue
        shape = getattr(v, "shape", None)
        parts.append(f"{k} {tuple(shape)} {getattr(v, 'dtype', type(v).__name__)}" if shape is not None else
                     f"{k} ({type(v).__name__})")
    return ", ".join(parts) if parts else "nothing"


def need(d: dict, keys, where: str) -> None:
    """Raise naming the missing keys and listing what ``d`` holds."""
    missing = [k for k in keys if k not in d]
    if missing:
        raise ValueError(f"{where}: missing key(s) {missing}; found: {describe(d)}")


def column(a, name: str, where: str, length: int | None = None) -> np.ndarray:
    """A (n, 1), (1, n) or (n,) array as (n,)."""
    arr = np.asarray(a)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1 or (length is not None and arr.shape[0] != length):
        exp = f"({length},) or ({length}, 1)" if length is not None else "(n,) or (n, 1)"
        raise ValueError(f"{where}: {name} expected shape {exp}, got {np.asarray(a).shape}")
    return arr


def matrix(a, name: str, where: str, rows: int | None = None) -> np.ndarray:
    """A 2-D array with ``rows`` rows (any number of columns)."""
    arr = np.asarray(a)
    if arr.ndim != 2 or (rows is not None and arr.shape[0] != rows):
        raise ValueError(f"{where}: {name} expected shape ({rows if rows is not None else 'rows'}, K), got {arr.shape}")
    return arr


def interleaved(a, name: str, where: str) -> tuple[np.ndarray, int]:
    """An interleaved x1, y1, z1, x2, ... column: returns (the (3N,) array, N)."""
    arr = column(a, name, where)
    if arr.size % 3:
        raise ValueError(f"{where}: {name} length {arr.size} is not a multiple of 3")
    return arr, arr.size // 3


def basis(d: dict, basis_key: str, std_key: str, where: str, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """A (rows, K) basis and its (K,) companion column (std or variance) from ``d``."""
    b = matrix(d[basis_key], basis_key, where, rows)
    return b, column(d[std_key], std_key, where, b.shape[1])


def texture(d: dict, where: str, n: int, keys=("texMU", "texPC", "texEV")) -> dict:
    """The MorphableModel texture fields from a (mean, basis, std) key triple, or {} when absent."""
    mu_key, pc_key, ev_key = keys
    if not all(k in d for k in keys):
        return {}
    pc, ev = basis(d, pc_key, ev_key, where, 3 * n)
    return dict(texture_mean=column(d[mu_key], mu_key, where, 3 * n).reshape(n, 3), texture_basis=pc, texture_std=ev)


def indices(a, name: str, where: str, *, one_based: bool, n: int | None = None) -> np.ndarray:
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


def triangles_3xf(a, name: str, where: str, *, one_based: bool, n: int) -> np.ndarray:
    """Triangles stored (3, F) (a transposed (F, 3) accepted too) -> (F, 3) int64, 0-based."""
    t = np.asarray(a)
    if t.ndim == 2 and t.shape[0] == 3 and t.shape[1] != 3:
        t = t.T
    if t.ndim != 2 or t.shape[1] != 3:
        raise ValueError(f"{where}: {name} expected shape (3, F), got {np.asarray(a).shape}")
    return indices(t, name, where, one_based=one_based, n=n)


def loadmat(path: Path) -> dict:
    """scipy.io.loadmat with a ValueError naming the file for v7.3 (HDF5) and unreadable files."""
    import scipy.io

    try:
        return scipy.io.loadmat(str(path))
    except NotImplementedError as e:  # MATLAB v7.3 files are HDF5
        raise ValueError(f"{path}: MATLAB v7.3 (HDF5) .mat files are not supported; re-save with -v7 ({e})") from e
    except Exception as e:  # scipy raises many types for truncated/corrupt files
        raise ValueError(f"{path}: cannot read as a MATLAB .mat file (truncated or corrupt?): {type(e).__name__}: {e}") from e


def col(a, dtype=np.float32) -> np.ndarray:
    """``a`` as an (n, 1) column of ``dtype`` (how the MATLAB layouts store vectors)."""
    return np.asarray(a, dtype=dtype).reshape(-1, 1)


def write_atomic(path: Path, write) -> None:
    """Call ``write(binary file handle)`` on a temporary file in the same folder, then rename over ``path``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        write(fh)


# ---------------------------------------------------------------------------------------------
# winding: one mechanism for every layout
#
# Every real BFM triangle list is clockwise seen from outside (../shared/REAL_FILES.md: 3 % of the
# triangles face outward on the real mean face, 97 % once reversed). Rather than trusting a flag
# per layout, the loaders measure the file's winding on its mean shape with
# meshkit.topology.outward_fraction and reverse every triangle when most face inward; the writers
# do the inverse, so a real file round-trips exactly and files of any winding load outward.


#: The share of triangles facing away from the mean's centroid must differ from the share facing
#: toward it by at least this much for the winding to be decided (real BFM files: 0.97 - 0.03 = 0.94;
#: the synthetic face 0.8; a flat or saddle-shaped mean about 0).
DECISIVE = 0.2


def measure_winding(mean, triangles) -> str | None:
    """The winding of ``triangles`` on ``mean``: "counter-clockwise" when clearly more triangles face
    away from the centroid than toward it (``meshkit.topology.outward_fraction``), "clockwise" when
    clearly fewer, None when the shares differ by less than :data:`DECISIVE` (a flat, saddle-shaped
    or otherwise undecidable mean shape)."""
    away = outward_fraction(mean, triangles)
    toward = outward_fraction(mean, reverse_winding(np.asarray(triangles, np.int64)))
    if abs(away - toward) < DECISIVE:
        return None
    return "counter-clockwise" if away > toward else "clockwise"


def loaded_triangles(mean, triangles, winding: str = "auto") -> tuple[np.ndarray, str | None]:
    """The triangles a loader hands out, and the file's winding as stored.

    ``winding="auto"``: counter-clockwise (outward) triangles, reversed with
    ``meshkit.topology.reverse_winding`` when the file stores them clockwise; a mean shape on which
    the winding cannot be decided (:func:`measure_winding` gives None) raises ``ValueError`` rather
    than guess; ``"keep"``: as stored. Returns ((F, 3) int64, "clockwise" | "counter-clockwise" |
    None).
    """
    check_choice(winding, "winding", WINDINGS)
    v, f = check_mesh(mean, triangles, vertices_name="mean", faces_name="triangles")
    stored = measure_winding(v, f)
    if stored is None and winding == "auto":
        away = outward_fraction(v, f)
        raise ValueError(
            f"winding: cannot tell from the model's mean shape whether its triangles face outward ({away:.0%} "
            f"face away from its centroid, {outward_fraction(v, reverse_winding(f)):.0%} reversed; a decision "
            f"needs the two to differ by {DECISIVE:.0%}); pass winding='keep' to keep the stored order")
    return (reverse_winding(f) if winding == "auto" and stored == "clockwise" else f), stored


def stored_triangles(model) -> np.ndarray:
    """``model``'s triangles in the native order of the real layouts: clockwise seen from outside.

    The inverse of :func:`loaded_triangles`: a model loaded from a real file gets its triangle
    array back exactly (the same reversal undone); a model whose triangles are already clockwise
    (loaded with ``winding="keep"``) is written as it is.
    """
    tri = np.asarray(model.triangles, np.int64)
    # an undecidable mean (None) is written as it is
    return reverse_winding(tri) if measure_winding(model.mean, tri) == "counter-clockwise" else tri
