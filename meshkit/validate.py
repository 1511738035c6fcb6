"""The one shared validator used at every public entry point.

Every public function of meshkit, bfm and sampling checks its array arguments here, so that bad
input fails in one consistent way: ``TypeError`` for a wrong dtype or type, ``ValueError`` for a
wrong shape or value, each message naming the argument, what was expected and what was given.
Numba kernels sit behind these checks and assume clean input.
"""

from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse as sp

__all__ = [
    "check_array",
    "shape_text",
    "check_shape",
    "check_signal",
    "check_square_sparse",
    "check_image",
    "check_vertices",
    "check_faces",
    "check_mesh",
    "check_bool",
    "check_int",
    "check_float",
    "check_choice",
    "check_points",
]


def _describe(a) -> str:
    if isinstance(a, np.ndarray):
        return f"array of shape {a.shape} and dtype {a.dtype}"
    return f"{type(a).__name__}"


def shape_text(shape) -> str:
    """A shape pattern as text: ``(..., 3)``, ``(?, 3)`` for None, ``(V, C)`` for named sizes, ``(9,)``."""
    parts = ["..." if s is Ellipsis else "?" if s is None else str(s) for s in shape]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def _matches(shape: tuple, pattern: tuple) -> bool:
    if pattern and pattern[0] is Ellipsis:
        tail = pattern[1:]
        if len(shape) < len(tail):
            return False
        shape, pattern = shape[len(shape) - len(tail):], tail
    if len(shape) != len(pattern):
        return False
    return all(not isinstance(p, numbers.Integral) or p == s for p, s in zip(pattern, shape, strict=True))


def check_shape(a: np.ndarray, name: str, shape, *, what: str = "") -> None:
    """Raise ``ValueError`` unless ``a.shape`` matches the pattern ``shape`` (or one of a list of them).

    A pattern is a tuple of sizes: an int is that size, None or a str (a name for the message, e.g.
    "V") any size, and a leading ``...`` any number of leading dimensions. ``what`` is appended to
    the expected shape in the message (e.g. "= pitch, yaw, roll, tx, ty, tz, scale").
    """
    patterns = shape if isinstance(shape, list) else [shape]
    if not any(_matches(a.shape, p) for p in patterns):
        text = " or ".join(shape_text(p) for p in patterns)
        raise ValueError(f"{name}: expected shape {text}{' ' + what if what else ''}, got shape {a.shape}")


def check_array(a, name: str, shape=None, *, dtype=np.float64, kinds: str = "fiu", finite: bool = True,
                nonempty: bool = False, copy: bool = False, what: str = "") -> np.ndarray:
    """Validate a numeric array; return it as a C-contiguous array of ``dtype`` (None: keep the dtype).

    Parameters
    ----------
    a : array-like
    name : the argument's name, for the messages.
    shape : a shape pattern or a list of alternatives (see :func:`check_shape`); None: any shape.
    dtype : the returned dtype (numpy type), or None to keep the input's.
    kinds : accepted numpy dtype kinds ("f" float, "i"/"u" integer, "b" bool); others are a TypeError.
    finite : refuse NaN and inf (ValueError, with their count).
    nonempty : refuse an array with no elements.
    copy : always return a new array (the caller may write it).
    what : words appended to the expected shape in the messages.

    Returns
    -------
    np.ndarray: the caller's own array when no conversion was needed (read it, do not write it),
    unless ``copy``.
    """
    patterns = [] if shape is None else shape if isinstance(shape, list) else [shape]
    expected = {"fiu": "a float array", "fiub": "a numeric array", "iu": "an integer array"}.get(kinds, "an array")
    if patterns:
        expected += " of shape " + " or ".join(shape_text(p) for p in patterns)
    if what:
        expected += " " + what
    if a is None or isinstance(a, (str, bytes)):
        raise TypeError(f"{name}: expected {expected}, got {type(a).__name__}")
    arr = np.asarray(a)
    if arr.dtype == object or arr.dtype.kind not in kinds:
        raise TypeError(f"{name}: expected {expected}, got dtype {arr.dtype}")
    if shape is not None:
        check_shape(arr, name, shape, what=what)
    if nonempty and arr.size == 0:
        raise ValueError(f"{name}: expected a non-empty array, got shape {arr.shape}")
    arr = np.array(arr, dtype=dtype, order="C", copy=True) if copy else np.ascontiguousarray(arr, dtype=dtype)
    if finite and arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            raise ValueError(f"{name}: expected finite values, got {int(bad.sum())} NaN/inf value(s)")
    return arr


def check_signal(x, n: int, name: str = "x") -> np.ndarray:
    """Validate a signal on n items (one value or C channels each): (n,) or (n, C) finite reals -> float64."""
    return check_array(x, name, [(n,), (n, "C")])


def check_square_sparse(L, name: str = "L") -> sp.csr_matrix:
    """Validate a non-empty square matrix of finite real entries; return it as float64 CSR.

    A scipy.sparse matrix, or a square 2D numpy array (converted); anything else is a TypeError.
    """
    if not sp.issparse(L):
        if isinstance(L, np.ndarray) and L.ndim == 2 and L.shape[0] == L.shape[1]:
            L = sp.csr_matrix(L)
        else:
            raise TypeError(f"{name}: expected a square scipy.sparse matrix, got {_describe(L)}")
    if L.ndim != 2 or L.shape[0] != L.shape[1] or L.shape[0] == 0:
        raise ValueError(f"{name}: expected a non-empty square matrix, got shape {L.shape}")
    if L.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected a real matrix, got dtype {L.dtype}")
    L = sp.csr_matrix(L, dtype=np.float64)
    bad = ~np.isfinite(L.data)
    if bad.any():
        raise ValueError(f"{name}: expected finite entries, got {int(bad.sum())} NaN/inf value(s)")
    return L


def check_image(image, name: str = "image") -> np.ndarray:
    """Validate an image: (H, W) or (H, W, 1|3|4), H, W >= 1, float, integer or bool; returned as is (dtype kept)."""
    return check_array(image, name, [("H", "W"), ("H", "W", 1), ("H", "W", 3), ("H", "W", 4)], dtype=None,
                       kinds="fiub", finite=False, nonempty=True)


def check_vertices(vertices, name: str = "vertices", *, dims: int = 3, allow_empty: bool = False) -> np.ndarray:
    """Validate a (V, dims) array of finite float coordinates; return it as a float64 array.

    Integer input is accepted and converted (a grid of integer points is a valid mesh); bool,
    complex and object arrays are rejected with ``TypeError``. The input is never modified: a
    float64 C-contiguous input is returned as is (read it, do not write it).
    """
    if isinstance(vertices, (str, bytes)) or vertices is None:
        raise TypeError(f"{name}: expected an array of shape (V, {dims}) of floats, got {_describe(vertices)}")
    a = np.asarray(vertices)
    if a.dtype == object or a.dtype.kind not in "fiu":
        raise TypeError(
            f"{name}: expected a float array of shape (V, {dims}), got {_describe(a)}"
        )
    if a.ndim != 2 or a.shape[1] != dims:
        raise ValueError(f"{name}: expected shape (V, {dims}), got shape {a.shape}")
    if a.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name}: expected at least one vertex, got an empty array of shape {a.shape}")
    a = np.ascontiguousarray(a, dtype=np.float64)
    if not np.isfinite(a).all():
        bad = np.flatnonzero(~np.isfinite(a).all(axis=1))
        raise ValueError(
            f"{name}: expected finite coordinates, got NaN/inf in {bad.size} row(s), first at row {bad[0]}"
        )
    return a


def check_faces(faces, n_vertices: int | None = None, name: str = "faces", *, allow_empty: bool = False,
                allow_repeated: bool = False) -> np.ndarray:
    """Validate an (F, 3) integer array of vertex indices; return it as a C-contiguous int64 array.

    Checks: integer dtype (a float array whose values are all integers is refused too: silent
    casts hide bugs), three indices per face, indices in ``[0, n_vertices)`` when ``n_vertices``
    is given, and (unless ``allow_repeated``) no index repeated within one face.
    """
    if isinstance(faces, (str, bytes)) or faces is None:
        raise TypeError(f"{name}: expected an integer array of shape (F, 3), got {_describe(faces)}")
    a = np.asarray(faces)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected an integer array of shape (F, 3), got {_describe(a)}")
    if a.ndim != 2 or a.shape[1] != 3:
        hint = " (only triangles are supported; triangulate quads first)" if a.ndim == 2 and a.shape[1] == 4 else ""
        raise ValueError(f"{name}: expected shape (F, 3), got shape {a.shape}{hint}")
    if a.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name}: expected at least one face, got an empty array of shape {a.shape}")
    a = np.ascontiguousarray(a, dtype=np.int64)
    if a.size:
        lo, hi = int(a.min()), int(a.max())
        if lo < 0:
            row = int(np.flatnonzero((a < 0).any(axis=1))[0])
            raise ValueError(f"{name}: expected indices >= 0, got {lo} (first in face {row})")
        if n_vertices is not None and hi >= n_vertices:
            row = int(np.flatnonzero((a >= n_vertices).any(axis=1))[0])
            raise ValueError(
                f"{name}: expected indices in [0, {n_vertices}) for {n_vertices} vertices, "
                f"got {hi} (first in face {row})"
            )
        if not allow_repeated:
            rep = (a[:, 0] == a[:, 1]) | (a[:, 1] == a[:, 2]) | (a[:, 0] == a[:, 2])
            if rep.any():
                row = int(np.flatnonzero(rep)[0])
                raise ValueError(
                    f"{name}: expected three distinct vertex indices per face, got {a[row].tolist()} "
                    f"in face {row} ({int(rep.sum())} such face(s))"
                )
    return a


def check_mesh(vertices, faces, *, vertices_name: str = "vertices", faces_name: str = "faces",
               allow_repeated: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Validate a triangle mesh; return (vertices float64 (V,3), faces int64 (F,3))."""
    v = check_vertices(vertices, vertices_name)
    f = check_faces(faces, v.shape[0], faces_name, allow_repeated=allow_repeated)
    return v, f


def check_points(points, name: str = "points", *, dims: int = 3) -> np.ndarray:
    """Validate a (P, dims) array of finite query points (may be empty); return float64."""
    return check_vertices(points, name, dims=dims, allow_empty=True)


def check_bool(value, name: str) -> bool:
    """Validate a flag: a Python or numpy bool (0/1 and other truthy values are refused)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__} {value!r}")
    return bool(value)


def check_int(value, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Validate an integer scalar (bools refused) within optional inclusive bounds."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral,)):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__} {value!r}")
    v = int(value)
    if minimum is not None and v < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {v}")
    if maximum is not None and v > maximum:
        raise ValueError(f"{name}: expected an integer <= {maximum}, got {v}")
    return v


def check_float(value, name: str, *, minimum: float | None = None, maximum: float | None = None,
                strict_minimum: bool = False) -> float:
    """Validate a finite real scalar within optional bounds (``strict_minimum``: value > minimum)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__} {value!r}")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name}: expected a finite number, got {v}")
    if minimum is not None:
        if strict_minimum and not v > minimum:
            raise ValueError(f"{name}: expected a number > {minimum}, got {v}")
        if not strict_minimum and v < minimum:
            raise ValueError(f"{name}: expected a number >= {minimum}, got {v}")
    if maximum is not None and v > maximum:
        raise ValueError(f"{name}: expected a number <= {maximum}, got {v}")
    return v


def check_choice(value, name: str, choices) -> str:
    """Validate a mode string against the allowed choices."""
    if value not in choices:
        raise ValueError(f"{name}: expected one of {sorted(choices)}, got {value!r}")
    return value
