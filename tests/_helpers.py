"""Helpers shared by several test modules (tests never import each other; fixtures live in conftest.py)."""

import numpy as np

__all__ = ["grid_mesh", "brute_closest", "run_snippet", "assert_snippet_ok"]


def grid_mesh(nx: int = 6, ny: int = 5, *, jitter: float = 0.0, seed: int = 0):
    """A flat (nx by ny vertices) grid in the z=0 plane, CCW seen from +z (normals +z)."""
    rng = np.random.default_rng(seed)
    xs, ys = np.meshgrid(np.arange(nx, dtype=float), np.arange(ny, dtype=float))
    v = np.stack([xs.ravel(), ys.ravel(), np.zeros(nx * ny)], axis=1)
    if jitter:
        v[:, :2] += rng.uniform(-jitter, jitter, size=(nx * ny, 2))
    faces = []
    for j in range(ny - 1):
        for i in range(nx - 1):
            a, b, c, d = j * nx + i, j * nx + i + 1, (j + 1) * nx + i, (j + 1) * nx + i + 1
            faces += [(a, b, d), (a, d, c)]
    return v, np.asarray(faces, dtype=np.int64)



def _closest_on_segments(p, a, b):
    """Closest points on segments a_i b_i (arrays (T, 3)) to one point p: (points (T,3), t (T,))."""
    e = b - a
    ee = (e * e).sum(1)
    t = np.where(ee > 0, ((p - a) * e).sum(1) / np.where(ee > 0, ee, 1.0), 0.0)
    t = np.clip(t, 0.0, 1.0)
    return a + t[:, None] * e, t


def brute_closest(v, f, p):
    """For one point p: the distance to every triangle of (v, f), by projecting onto the plane when
    the projection falls inside (barycentric coordinates from the 2x2 normal equations), else the
    nearest of the three edges. Returns (distances (T,), closest points (T, 3))."""
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    e0, e1 = b - a, c - a
    g00, g01, g11 = (e0 * e0).sum(1), (e0 * e1).sum(1), (e1 * e1).sum(1)
    det = g00 * g11 - g01 * g01
    r = p - a
    r0, r1 = (r * e0).sum(1), (r * e1).sum(1)
    ok = det > 1e-14 * np.maximum(g00, g11) ** 2
    safe = np.where(ok, det, 1.0)
    s = (g11 * r0 - g01 * r1) / safe
    t = (g00 * r1 - g01 * r0) / safe
    inside = ok & (s >= 0) & (t >= 0) & (s + t <= 1)
    q_plane = a + s[:, None] * e0 + t[:, None] * e1
    cands = [_closest_on_segments(p, a, b)[0], _closest_on_segments(p, b, c)[0], _closest_on_segments(p, c, a)[0]]
    d_edges = np.stack([np.linalg.norm(q - p, axis=1) for q in cands], axis=1)
    best_edge = np.argmin(d_edges, axis=1)
    q_edge = np.stack(cands, axis=1)[np.arange(len(f)), best_edge]
    q = np.where(inside[:, None], q_plane, q_edge)
    return np.linalg.norm(q - p, axis=1), q


def bfm_like_face(nx: int = 41, ny: int = 49, *, mouth: bool = True):
    """A face-like mesh with the real BFM mesh's connectivity (REAL_FILES.md): a grid whose diagonals
    alternate (vertices of valence 4 and 8 faces), bent over a cap of a sphere facing +z, with an
    outer rim and a mouth opening (two boundary loops), wound counter-clockwise seen from +z.

    Returns (vertices (V, 3) float64 in micrometre-like units, faces (F, 3) int64)."""
    xs, ys = np.meshgrid(np.linspace(-1, 1, nx), np.linspace(-1.2, 1.2, ny))
    x, y = xs.ravel(), ys.ravel()
    z = np.sqrt(np.clip(2.5**2 - x**2 - (0.8 * y) ** 2, 0, None))  # a cap of a sphere of radius 2.5
    v = np.stack([x, y, z], axis=1) * 75_000.0
    faces = []
    for j in range(ny - 1):
        for i in range(nx - 1):
            a, b, c, d = j * nx + i, j * nx + i + 1, (j + 1) * nx + i, (j + 1) * nx + i + 1
            centre = np.array([(xs[j, i] + xs[j, i + 1]) / 2, (ys[j, i] + ys[j + 1, i]) / 2])
            if mouth and abs(centre[0]) < 0.3 and abs(centre[1] + 0.6) < 0.08:
                continue  # the mouth opening
            if (i + j) % 2 == 0:  # alternate the diagonal: valence 4 and 8
                faces += [(a, b, d), (a, d, c)]
            else:
                faces += [(a, b, c), (b, d, c)]
    return v, np.asarray(faces, dtype=np.int64)


def run_snippet(code: str, *, timeout: float = 120.0, env: dict | None = None):
    """Run ``code`` in a fresh interpreter (``sys.executable -c``) with this checkout first on the
    path; return the CompletedProcess (text stdout/stderr). A crash (segfault, abort) shows as a
    negative return code instead of killing the test run; a hang fails after ``timeout`` seconds."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    e = dict(os.environ, **(env or {}))
    e["PYTHONPATH"] = root + os.pathsep + e.get("PYTHONPATH", "")
    try:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                              env=e, cwd=root)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the snippet did not finish within {timeout} s:\n{code}") from exc


def assert_snippet_ok(code: str, *, timeout: float = 120.0, stderr_contains: str | None = None) -> str:
    """Run ``code`` with :func:`run_snippet` and assert it exits with status 0 (no crash, no
    uncaught exception); with ``stderr_contains``, assert instead that it exits with status 1
    (an uncaught Python exception, not a signal) and that stderr contains that text. Returns stdout."""
    r = run_snippet(code, timeout=timeout)
    expected = 0 if stderr_contains is None else 1
    assert r.returncode == expected, (
        f"exit status {r.returncode} (expected {expected}; negative = killed by a signal)\n"
        f"stdout:\n{r.stdout[-2000:]}\nstderr:\n{r.stderr[-4000:]}")
    if stderr_contains is not None:
        assert stderr_contains in r.stderr, f"{stderr_contains!r} not in stderr:\n{r.stderr[-4000:]}"
    return r.stdout


def absolute_imports(path):
    """The absolute imports of a Python file: (line, [module names]) per import statement, from its
    syntax tree (relative imports are the package's own and are left out)."""
    import ast
    from pathlib import Path

    out = []
    for node in ast.walk(ast.parse(Path(path).read_text())):
        if isinstance(node, ast.Import):
            out.append((node.lineno, [a.name for a in node.names]))
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            out.append((node.lineno, [node.module or ""]))
    return out


def mirror_consistent_model(model):
    """``model`` with its 68 landmarks made exactly consistent with the left/right mirror of its mean
    (iBUG's flip pairs map to mirrored vertices, the midline points lie on self-mirrored vertices), so
    that flip augmentations can be checked exactly."""
    import numpy as np

    from bfm.dataset import IBUG_FLIP, vertex_mirror_map

    mirror = vertex_mirror_map(model.mean)
    lm = model.landmarks.copy()
    on_mid = np.flatnonzero(mirror == np.arange(model.n_vertices))
    for j in range(68):
        if IBUG_FLIP[j] == j and mirror[lm[j]] != lm[j]:
            lm[j] = on_mid[np.argmin(np.linalg.norm(model.mean[on_mid] - model.mean[lm[j]], axis=1))]
        elif IBUG_FLIP[j] > j:
            lm[IBUG_FLIP[j]] = mirror[lm[j]]
    return model.with_landmarks(lm)
