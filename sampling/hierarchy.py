"""Hierarchy: every operator a mesh network needs, for every resolution, from one template mesh.

``build_hierarchy(vertices, faces, factors=(4, 4, 4, 4, 4))`` decimates the template level by
level with :func:`meshkit.decimate` (quadric error, each coarse vertex is a fine vertex) and
stores, per level, the mesh, its adjacency, its Chebyshev-rescaled Laplacian and its spiral
indices, and between consecutive levels the ``down`` (0/1 selection) and ``up`` (barycentric)
matrices. Level 0 is the finest. On the 53,215-vertex BFM-sized template the vertex counts are
53215, 13304, 3326, 832, 208, 52 (each level has exactly ceil(n / factor) vertices).

Shapes, with n_i the vertex count of level i:
``levels[i].spirals`` (n_i, L) int64; ``levels[i].laplacian`` and ``.adjacency`` csr (n_i, n_i);
``down[i]`` csr (n_{i+1}, n_i); ``up[i]`` csr (n_i, n_{i+1}); ``kept[i]`` (n_{i+1},) indices
into level i, so ``levels[i+1].vertices == levels[i].vertices[kept[i]]``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from meshkit import laplacian as _lap
from meshkit import topology
from meshkit.decimate import decimate
from meshkit.spiral import STYLES, spiral_indices
from meshkit.validate import check_choice, check_float, check_int, check_mesh

__all__ = ["Level", "Hierarchy", "build_hierarchy", "template_hash", "FORMAT_VERSION"]

FORMAT_VERSION = 1
#: Part of the ``cache_dir`` key with meshkit's version: bump it when the operators a hierarchy is made
#: of change for the same inputs (2: decimation made unit-free, meshkit 0.2 in progress), so that a
#: cache built by older code is not reused as if it were this code's output.
CACHE_VERSION = 2
_LAPLACIANS = ("normalized", "combinatorial", "random_walk")


@dataclass(frozen=True, eq=False)
class Level:
    """One resolution: the mesh and its per-level operators."""

    vertices: np.ndarray  # (n, 3) float64
    faces: np.ndarray  # (F, 3) int64
    adjacency: sp.csr_matrix  # (n, n) 0/1
    laplacian: sp.csr_matrix  # (n, n) rescaled to spectrum in [-1, 1]: 2 L / lmax - I
    spirals: np.ndarray  # (n, spiral_length) int64
    lmax: float  # the lmax used for the rescaling

    @property
    def n_vertices(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def n_faces(self) -> int:
        return int(self.faces.shape[0])


@dataclass(frozen=True, eq=False)
class Hierarchy:
    """Per-level meshes and operators (level 0 finest) plus the down/up matrices between levels.

    Build with :func:`build_hierarchy`; save with :meth:`save`, load with :func:`sampling.load`.
    """

    levels: tuple[Level, ...]
    down: tuple[sp.csr_matrix, ...]
    up: tuple[sp.csr_matrix, ...]
    kept: tuple[np.ndarray, ...]
    params: dict = field(default_factory=dict)
    template_hash: str = ""
    seconds: tuple[float, ...] = ()

    @property
    def n_vertices(self) -> list[int]:
        return [lv.n_vertices for lv in self.levels]

    @property
    def spirals(self) -> list[np.ndarray]:
        return [lv.spirals for lv in self.levels]

    @property
    def laplacians(self) -> list[sp.csr_matrix]:
        return [lv.laplacian for lv in self.levels]

    def __repr__(self) -> str:
        return f"Hierarchy(n_vertices={self.n_vertices}, spiral_length={self.params.get('spiral_length')})"

    def round_trip_error(self, vertices=None) -> list[tuple[float, float]]:
        """Mean and max distance, relative to the bounding-box diagonal, between the level-0
        vertices and their reconstruction after going down to level k and back up, k = 1..L.

        ``vertices`` (n_0, 3) defaults to the template itself."""
        v0 = self.levels[0].vertices if vertices is None else check_mesh(vertices, self.levels[0].faces)[0]
        diag = float(np.linalg.norm(v0.max(0) - v0.min(0))) or 1.0
        out = []
        x = v0
        for k in range(len(self.down)):
            x = self.down[k] @ x
            y = x
            for j in range(k, -1, -1):
                y = self.up[j] @ y
            d = np.linalg.norm(y - v0, axis=1) / diag
            out.append((float(d.mean()), float(d.max())))
        return out

    def summary(self) -> str:
        """A table: vertices, faces, boundary loops and build seconds per level, and the
        down-and-up reconstruction error of the template through each level."""
        errs = [(0.0, 0.0)] + self.round_trip_error()
        secs = list(self.seconds) + [float("nan")] * (len(self.levels) - len(self.seconds))
        lines = ["level  vertices    faces  seconds  round-trip error mean / max (x bbox diagonal)"]
        for i, lv in enumerate(self.levels):
            lines.append(
                f"{i:5d}  {lv.n_vertices:8d}  {lv.n_faces:7d}  {secs[i]:7.3f}  {errs[i][0]:.2e} / {errs[i][1]:.2e}"
            )
        return "\n".join(lines)

    # saving / exporting live in sampling/io.py; thin methods here for discoverability
    def save(self, path) -> Path:
        """Write the hierarchy to one .npz (atomic). See :func:`sampling.io.save`."""
        from .io import save

        return save(self, path)

    def export_spiralnet(self, path, **options) -> Path:
        """Write SpiralNet++'s ``transform.pkl``. See :func:`sampling.io.export_spiralnet`."""
        from .io import export_spiralnet

        return export_spiralnet(self, path, **options)

    def export_neural3dmm(self, path, **options) -> Path:
        """Write Neural3DMM's ``downsampling_matrices.pkl``. See :func:`sampling.io.export_neural3dmm`."""
        from .io import export_neural3dmm

        return export_neural3dmm(self, path, **options)

    def to_torch(self, dtype=None):
        """The operators as torch tensors: a dict with ``spirals`` (list of int64 (n_i, L)),
        ``down``/``up``/``laplacians``/``adjacency`` (lists of sparse COO tensors), ``vertices``
        and ``faces`` per level. Needs the ``torch`` extra."""
        from meshkit._optional import require

        torch = require("torch", "Hierarchy.to_torch")
        dtype = dtype or torch.float32

        def sparse(m):
            c = m.tocoo()
            idx = torch.from_numpy(np.vstack([c.row, c.col]).astype(np.int64))
            data = torch.from_numpy(c.data).to(dtype)
            return torch.sparse_coo_tensor(idx, data, c.shape, check_invariants=True).coalesce()

        return {
            "spirals": [torch.from_numpy(lv.spirals.astype(np.int64)) for lv in self.levels],
            "down": [sparse(d) for d in self.down],
            "up": [sparse(u) for u in self.up],
            "laplacians": [sparse(lv.laplacian) for lv in self.levels],
            "adjacency": [sparse(lv.adjacency) for lv in self.levels],
            "vertices": [torch.from_numpy(lv.vertices).to(dtype) for lv in self.levels],
            "faces": [torch.from_numpy(lv.faces.astype(np.int64)) for lv in self.levels],
        }


def template_hash(vertices, faces) -> str:
    """SHA-256 of the template's float64 vertices and int64 faces (hex)."""
    v, f = check_mesh(vertices, faces)
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(v, dtype="<f8").tobytes())
    h.update(np.ascontiguousarray(f, dtype="<i8").tobytes())
    return h.hexdigest()


def _per_level(value, n: int, name: str) -> list[int]:
    if isinstance(value, (int, np.integer)):
        vals = [int(value)] * n
    else:
        vals = list(value)
        if len(vals) != n:
            raise ValueError(f"{name}: expected one value or {n} (one per level), got {len(vals)}")
    return [check_int(x, name, minimum=1) for x in vals]


def _rescaled(faces, n, kind: str, lmax):
    L = getattr(_lap, kind)(faces, n)
    if lmax is None:
        # 2 bounds the normalized and random-walk spectra (CoMA rescales with lmax = 2); the
        # combinatorial one needs its largest eigenvalue
        lmax = 2.0 if kind in ("normalized", "random_walk") else float(_lap.lambda_max(L))
    return _lap.chebyshev_rescale(L, lmax=lmax), float(lmax)


def build_hierarchy(
    vertices,
    faces,
    factors: Sequence[float] = (4, 4, 4, 4, 4),
    spiral_length: int | Sequence[int] = 9,
    dilation: int | Sequence[int] = 1,
    *,
    padding: str | None = None,
    spiral_style: str = "meshkit",
    spiral_reference: int = 0,
    laplacian: str = "normalized",
    lmax: float | None = None,
    cache_dir=None,
    progress: bool = False,
) -> Hierarchy:
    """Build a multi-resolution hierarchy from a template mesh.

    Parameters
    ----------
    vertices : (V, 3) float, faces : (F, 3) int
        The template (a manifold triangle mesh; open boundaries are fine).
    factors : sequence of float > 1
        Decimation factor per level: level i+1 has ceil(n_i / factors[i]) vertices.
    spiral_length, dilation : int or one per level (len(factors) + 1 values)
        Spiral ordering parameters (see :func:`meshkit.spiral_indices`).
    padding : "repeat" | "sentinel" | "nearest", optional
        How spirals of vertices with too few neighbours are padded; default the style's own
        ("repeat" for "meshkit", "nearest" for "spiralnet++", "sentinel" for "neural3dmm").
    spiral_style : "meshkit" | "spiralnet++" | "neural3dmm"
        Which spiral ordering each level carries (see :func:`meshkit.spiral_indices`).
    spiral_reference : int
        "neural3dmm" only: the level-0 reference vertex; each coarser level uses its vertex
        nearest to that point, as Neural3DMM's notebook does.
    laplacian : "normalized" | "combinatorial" | "random_walk"
        Which graph Laplacian each level carries, rescaled for Chebyshev filters as
        2 L / lmax - I.
    lmax : float, optional
        The rescaling constant; default 2 for normalized / random-walk (CoMA's choice, the
        spectral bound), the largest eigenvalue for combinatorial.
    cache_dir : path, optional
        Reuse a hierarchy built before from identical inputs (template hash + parameters);
        a new one is saved there.
    progress : bool
        Print one line per level as it is built.

    Returns
    -------
    Hierarchy

    Raises
    ------
    ValueError naming the level when a factor is <= 1 or the chain cannot reach its size.
    """
    v, f = check_mesh(vertices, faces)
    facs = list(factors)
    if not facs:
        raise ValueError("factors: expected at least one decimation factor, got none")
    for i, fac in enumerate(facs):
        check_float(fac, f"factors[{i}]")
        if not fac > 1:
            raise ValueError(f"factors[{i}]: expected a factor > 1 (level {i + 1} must be coarser), got {fac}")
    n_levels = len(facs) + 1
    lengths = _per_level(spiral_length, n_levels, "spiral_length")
    dilations = _per_level(dilation, n_levels, "dilation")
    check_choice(spiral_style, "spiral_style", STYLES)
    if padding is None:
        padding = {"meshkit": "repeat", "spiralnet++": "nearest", "neural3dmm": "sentinel"}[spiral_style]
    check_choice(padding, "padding", ("repeat", "sentinel", "nearest"))
    spiral_reference = check_int(spiral_reference, "spiral_reference", minimum=0, maximum=v.shape[0] - 1)
    check_choice(laplacian, "laplacian", _LAPLACIANS)
    if lmax is not None:
        check_float(lmax, "lmax", minimum=0.0, strict_minimum=True)
    params = {
        "factors": [float(x) for x in facs],
        "spiral_length": lengths,
        "dilation": dilations,
        "padding": padding,
        "spiral_style": spiral_style,
        "spiral_reference": spiral_reference,
        "laplacian": laplacian,
        "lmax": lmax,
    }
    thash = template_hash(v, f)

    cache_file = None
    if cache_dir is not None:
        from meshkit import __version__

        code = {"meshkit": __version__, "cache_version": CACHE_VERSION}
        key = hashlib.sha256((thash + json.dumps({**params, **code}, sort_keys=True)).encode()).hexdigest()[:24]
        cache_file = Path(cache_dir) / f"hierarchy-{key}.npz"
        if cache_file.exists():
            from .io import load

            if progress:
                print(f"[hierarchy] reusing {cache_file}", flush=True)
            return load(cache_file, template=(v, f))

    levels, downs, ups, kept, seconds = [], [], [], [], []
    cur_v, cur_f = v, f
    for i in range(n_levels):
        t0 = time.perf_counter()
        if i > 0:
            target = int(np.ceil(cur_v.shape[0] / facs[i - 1]))
            try:
                d = decimate(cur_v, cur_f, n_vertices=target)
            except ValueError as e:
                raise ValueError(
                    f"factors[{i - 1}]: level {i} cannot be built from level {i - 1} "
                    f"({cur_v.shape[0]} vertices -> {target}): {e}"
                ) from e
            downs.append(d.down.tocsr())
            ups.append(d.up.tocsr())
            kept.append(np.asarray(d.kept, dtype=np.int64))
            cur_v, cur_f = np.asarray(d.vertices, dtype=np.float64), np.asarray(d.faces, dtype=np.int64)
        n = cur_v.shape[0]
        adj = topology.adjacency(cur_f, n)
        lap, used_lmax = _rescaled(cur_f, n, laplacian, lmax)
        ref = int(np.argmin(((cur_v - v[spiral_reference]) ** 2).sum(axis=1)))  # Neural3DMM's per-level reference
        spirals = spiral_indices(cur_f, lengths[i], dilation=dilations[i], padding=padding, n_vertices=n,
                                 style=spiral_style, vertices=cur_v, reference=ref)
        levels.append(Level(cur_v, cur_f, adj, lap.tocsr(), np.asarray(spirals, dtype=np.int64), used_lmax))
        seconds.append(time.perf_counter() - t0)
        if progress:
            print(f"[hierarchy] level {i}: {n} vertices, {cur_f.shape[0]} faces ({seconds[-1]:.2f} s)", flush=True)

    h = Hierarchy(tuple(levels), tuple(downs), tuple(ups), tuple(kept), params, thash, tuple(seconds))
    if cache_file is not None:
        h.save(cache_file)
    return h
