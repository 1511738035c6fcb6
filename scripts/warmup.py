"""Compile meshkit's numba kernels into their on-disk cache, so that no user call pays the JIT.

The kernels are compiled on first use and cached (numba ``cache=True``, next to the sources or in
``NUMBA_CACHE_DIR``); a fresh process then loads machine code instead of compiling. Compiling them
all takes ~10 s of CPU (the decimation and closest-point kernels most of it: numba's type
inference and lowering, not LLVM's optimizer), so ``scripts/setup.sh`` runs this once. Run it again
after changing numba or a kernel's source (a changed kernel would otherwise recompile on its next
use). Small inputs: the compiled code depends on the argument types only, which the public entry
points fix (float64 vertices, int64 faces), not on the sizes.

Run: .venv/bin/python scripts/warmup.py   (prints the seconds of each step)
"""

from __future__ import annotations

import time

import numpy as np


def steps():
    """(name, callable) pairs covering every numba kernel reached from the public API."""
    import sampling
    from meshkit import render as R
    from meshkit import spiral_indices
    from meshkit.synthetic import face_template

    v, f = face_template(2000, topology="bfm")
    rgb = (v - v.min(0)) / np.ptp(v, axis=0)
    uv = rgb[:, :2]

    def render():
        small = R.frame_vertices(v, 32, 32)  # fewer pixels than 2 x faces: per-pixel interpolation
        large = R.frame_vertices(v, 256, 256)  # many pixels per face: per-face planes
        for vi, size in ((small, 32), (large, 256)):
            frag = R.rasterize(vi, f, size, size)
            R.interpolate(frag, f, rgb)
            frag.barycentric  # noqa: B018 (computed on first access)
            R.render_colors(vi, f, rgb, size, size)
            R.render_depth(vi, f, size, size)
            R.Rasterizer(size, size)(vi, f)
        R.rasterize_batch(np.stack([small, small]), f, 32, 32)
        R.rasterize_batch([(small, f), (small, f)], None, 32, 32)
        R.render_colors_batch(np.stack([small, small]), f, rgb, 32, 32)
        R.uv_position_map(v, f, uv, 64)

    return [
        ("build_hierarchy: decimation, closest points, spirals, Laplacians",
         lambda: sampling.build_hierarchy(v, f, factors=(4, 4))),
        ("spiral_indices styles spiralnet++ and neural3dmm",
         lambda: [spiral_indices(f, 9, style=s, vertices=v) for s in ("spiralnet++", "neural3dmm")]),
        ("rasterizer and shading", render),
    ]


def main() -> None:
    t_all = time.perf_counter()
    for name, fn in steps():
        t0 = time.perf_counter()
        fn()
        print(f"[warmup] {name}: {time.perf_counter() - t0:.1f} s", flush=True)
    print(f"[warmup] numba kernels compiled and cached in {time.perf_counter() - t_all:.1f} s")


if __name__ == "__main__":
    main()
