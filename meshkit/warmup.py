"""Compile meshkit's numba kernels into numba's on-disk cache once, so that no later call pays the JIT.

The kernels (``meshkit/_kernels``) are compiled on first use and cached (numba ``cache=True``): in
``NUMBA_CACHE_DIR`` when it is set, else in ``__pycache__`` next to the kernel sources. A fresh
process then loads machine code instead of compiling: the first ``sampling.build_hierarchy`` of the
53,215-vertex template takes ~1 s instead of ~10-11 s (about 10 s of CPU are numba compiling, mostly
type inference and lowering of the decimation and closest-point kernels). ``meshkit warmup`` runs
the steps of every command module (``meshkit.cli.warmup_steps``): the core's are :data:`STEPS`;
``sampling`` and ``bfm`` add their own. Re-run it after upgrading numba or meshkit (numba then
recompiles on the next call). Small inputs suffice: the compiled code depends on the argument types
(float64 vertices, int64 faces, fixed by the public entry points), not on the sizes.
"""

from __future__ import annotations

import time

import numpy as np

__all__ = ["STEPS", "WarmupError", "run"]


def _template():
    """A small synthetic face (float64 vertices, int64 faces) and per-vertex colours / UVs in [0, 1]."""
    from .synthetic import face_template

    v, f = face_template(2000, topology="bfm")
    rgb = (v - v.min(0)) / np.ptp(v, axis=0)
    return v, f, rgb


def _decimate() -> None:
    from .decimate import decimate

    v, f, _ = _template()
    decimate(v, f, factor=4)  # the quadric decimation and its closest-point ``up`` matrix


def _transfer() -> None:
    from .transfer import barycentric_transfer, closest_points

    v, f, _ = _template()
    points = v[::7] + 0.01
    closest_points(v, f, points)
    barycentric_transfer(v, f, points)


def _topology() -> None:
    from .topology import one_rings

    _, f, _ = _template()
    one_rings(f)
    one_rings(f, return_boundary=True)


def _spirals() -> None:
    from .spiral import STYLES, spiral_indices

    v, f, _ = _template()
    for style in STYLES:
        paddings = (None,) if style == "neural3dmm" else ("repeat", "sentinel", "nearest")  # neural3dmm: its own only
        for padding in paddings:
            spiral_indices(f, 9, style=style, padding=padding, vertices=v)


def _render() -> None:
    from . import render as R

    v, f, rgb = _template()
    small = R.frame_vertices(v, 32, 32)  # fewer pixels than 2 x faces: per-pixel interpolation
    large = R.frame_vertices(v, 256, 256)  # many pixels per face: per-face planes
    for vi, size in ((small, 32), (large, 256)):
        for cull in (False, True):
            frag = R.rasterize(vi, f, size, size, cull_backfaces=cull)
            R.interpolate(frag, f, rgb)
            frag.barycentric  # noqa: B018 (computed on first access)
            R.render_colors(vi, f, rgb, size, size, cull_backfaces=cull)
            R.render_depth(vi, f, size, size, cull_backfaces=cull)
        R.Rasterizer(size, size)(vi, f)
    R.rasterize_batch(np.stack([small, small]), f, 32, 32)
    R.rasterize_batch([(small, f), (small, f)], None, 32, 32)
    R.render_colors_batch(np.stack([small, small]), f, rgb, 32, 32)


def _uv() -> None:
    from . import render as R

    v, f, rgb = _template()
    uv = rgb[:, :2]
    R.uv_position_map(v, f, uv, 64)
    vi = R.frame_vertices(v, 64, 64)
    photo = R.render_colors(vi, f, rgb, 64, 64)
    R.symmetric_fill(R.uv_texture(photo, vi, f, uv, 64))
    R.uv_texture((photo * 255).astype(np.uint8), vi.astype(np.float32), f, uv, 64)  # bfm's 300W-LP crops


#: The core's warm-up steps, (name, callable()) pairs that together call every kernel of
#: ``meshkit/_kernels``: decimation (with its closest-point ``up``), closest points and barycentric
#: transfer, ordered one-rings, spirals in every style and padding, the rasterizer and shading, UV maps.
STEPS = [
    ("decimate (quadric collapses, closest-point up matrix)", _decimate),
    ("closest_points, barycentric_transfer", _transfer),
    ("one_rings", _topology),
    ("spiral_indices, every style and padding", _spirals),
    ("rasterizer, interpolation, shading, batches", _render),
    ("uv_position_map, uv_texture, symmetric_fill", _uv),
]


class WarmupError(RuntimeError):
    """A warm-up step failed: ``step`` is its name, the step's own exception is the ``__cause__``."""

    def __init__(self, step: str, error: BaseException):
        super().__init__(f"warm-up step {step!r} failed: {type(error).__name__}: {error}")
        self.step = step


def run(warmup_steps, *, progress=print) -> float:
    """Run warm-up steps in turn, timing each.

    Parameters
    ----------
    warmup_steps : sequence of (name, callable()) pairs.
    progress : called with one line per step ("[warmup] name: 1.2 s") and a final total line.

    Returns
    -------
    The total seconds. Raises ``WarmupError`` naming the step when a step raises (its exception
    as the cause); the steps after it are not run.
    """
    t_all = time.perf_counter()
    for name, fn in warmup_steps:
        t0 = time.perf_counter()
        try:
            fn()
        except Exception as e:
            raise WarmupError(name, e) from e
        progress(f"[warmup] {name}: {time.perf_counter() - t0:.1f} s")
    total = time.perf_counter() - t_all
    progress(f"[warmup] {len(warmup_steps)} steps, numba kernels compiled and cached in {total:.1f} s")
    return total
