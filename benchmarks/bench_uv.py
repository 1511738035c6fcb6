"""UV maps: a PRNet-style position map of the 53,215-vertex / 105,840-triangle face, 256² and 512².

Rows (steady state after warm-up; the first call is reported apart; all single-threaded):
- meshkit ``uv_position_map``: the one call (validation, rasterization of the layout in texel
  space, interpolation of the positions).
- meshkit ``UVLayout.map``: the layout rasterized once (it depends only on the UVs, faces and
  size), then one interpolation per map: how a dataset job makes thousands of maps.
- face3d C++ ``render_colors`` at the face3d / PRNet texel coordinates (``process_uv``): PRNet's
  ``generate_posmap_300WLP.py`` does exactly this per image. Timed when ``MESHKIT_RENDER_PEERS``
  points to a local C-linkage build exporting ``face3d_render_colors_core`` (see
  benchmarks/README.md, "Rasterizer"); else skipped. Its map is also compared with ours.
- matplotlib ``LinearTriInterpolator`` on the same triangles at the texel centres: the plain
  numpy-stack reference of the same map (trapezoid-map point location + linear interpolation).
- ``sample_uv_map`` back to the 53,215 vertices, and the round-trip error, for each size.
- ``uv_texture``: a 256² photo unwrapped (layout, texel positions, z-buffer of the photo,
  occlusion test, bilinear colour lookup), for scale.

UVs: the template is a height field seen from +z; its normalised (x, y) is the layout.

Run: .venv/bin/python benchmarks/bench_uv.py [--quick]
"""

from __future__ import annotations

import ctypes
import os
import sys

import numpy as np
from _runner import Bench, optional

from bfm.synthetic import face_template
from meshkit.render import UVLayout, frame_vertices, sample_uv_map, uv_position_map, uv_texture


def face3d_library():
    path = os.environ.get("MESHKIT_RENDER_PEERS")
    if not path or not os.path.exists(path):
        return None
    lib = ctypes.CDLL(path)
    fp, ip = (np.ctypeslib.ndpointer(t, flags="C_CONTIGUOUS") for t in (np.float32, np.int32))
    lib.face3d_render_colors_core.argtypes = [fp, fp, ip, fp, fp] + [ctypes.c_int] * 5
    return lib


def face3d_position_map(lib, uv, triangles, positions, size):
    """PRNet's way: face3d process_uv (x = u (size-1), y = size - 1 - v (size-1), z = 0), then
    face3d.mesh_cython.render.render_colors with the positions as colours (its wrapper's float32
    copies, depth buffer -999999, zero image)."""
    xy = np.zeros((len(uv), 3), dtype=np.float32)
    xy[:, 0] = uv[:, 0] * (size - 1)
    xy[:, 1] = size - 1 - uv[:, 1] * (size - 1)
    image = np.zeros((size, size, 3), dtype=np.float32)
    depth = np.zeros((size, size), dtype=np.float32) - 999999.0
    t = triangles.astype(np.int32).copy()
    c = positions.astype(np.float32).copy()
    lib.face3d_render_colors_core(image, xy, t, c, depth, len(uv), len(t), size, size, 3)
    return image


def matplotlib_position_map(mtri, uv, triangles, positions, size):
    """The same map with matplotlib: linear interpolation over the given triangles at texel centres."""
    tri = mtri.Triangulation(uv[:, 0] * (size - 1), (1 - uv[:, 1]) * (size - 1), triangles)
    r, c = np.mgrid[0:size, 0:size].astype(float)
    finder = tri.get_trifinder()
    out = np.zeros((size, size, 3))
    for k in range(3):
        z = mtri.LinearTriInterpolator(tri, positions[:, k], trifinder=finder)(c, r)
        out[..., k] = z.filled(0.0)
    return out, finder(c, r) >= 0


def main(quick: bool = False) -> None:
    v, f = face_template()
    lo, hi = v[:, :2].min(0), v[:, :2].max(0)
    uv = (v[:, :2] - lo) / (hi - lo)
    print(f"mesh: {len(v)} vertices, {len(f)} triangles; UV = normalised (x, y); bounding-box diagonal "
          f"{np.linalg.norm(v.max(0) - v.min(0)):.0f} um\n")
    for size in (256, 512):
        run(v, f, uv, size, face3d_library(), optional("matplotlib.tri"), 5 if quick else 30)


def run(v, f, uv, size, lib, mtri, repeat) -> None:
    diag = float(np.linalg.norm(v.max(0) - v.min(0)))
    b = Bench(f"position map {size}x{size}, 53,215 vertices, single thread")
    m = uv_position_map(v, f, uv, size)
    b.time("meshkit uv_position_map (one call)", lambda: uv_position_map(v, f, uv, size), repeat=repeat)
    layout = UVLayout(uv, f, size)
    b.time("meshkit UVLayout.map (layout built once)", lambda: layout.map(v), repeat=repeat)
    if lib is not None:
        b.time("face3d C++ render_colors (PRNet's way)", lambda: face3d_position_map(lib, uv, f, v, size),
               repeat=repeat, note="local build of the published source")
    else:
        b.skip("face3d C++ render_colors (PRNet's way)", "set MESHKIT_RENDER_PEERS (see README)")
    if mtri is not None:
        b.time("matplotlib LinearTriInterpolator", lambda: matplotlib_position_map(mtri, uv, f, v, size),
               repeat=max(3, repeat // 10), note="plain reference")
    else:
        b.skip("matplotlib LinearTriInterpolator", "matplotlib not installed")
    b.time("meshkit sample_uv_map (map -> 53,215 vertices)", lambda: sample_uv_map(m, uv), repeat=repeat)
    image_vertices = frame_vertices(v, 256, 256)
    photo = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    b.time("meshkit uv_texture (256² photo, occlusion test)", lambda: uv_texture(photo, image_vertices, f, uv, size),
           repeat=max(3, repeat // 3))
    b.report(reference="meshkit uv_position_map (one call)")

    err = np.linalg.norm(sample_uv_map(m, uv) - v, axis=1)
    print(f"round trip vertices -> {size}² map -> vertices: max {err.max():.0f} um ({err.max() / diag:.2e} of "
          f"the diagonal), 99th percentile {np.percentile(err, 99):.1f} um, median {np.median(err):.2f} um; "
          f"{m.mask.sum()} covered texels ({m.mask.mean():.1%})")
    for name, pair in [("matplotlib", matplotlib_position_map(mtri, uv, f, v, size) if mtri else None),
                       ("face3d", _face3d_with_cover(lib, uv, f, v, size) if lib else None)]:
        if pair is None:
            continue
        ref, cover = pair
        both = cover & m.mask
        d = np.abs(ref[both] - m.image[both]).max(axis=1)
        print(f"vs {name}: coverage differs at {int((cover != m.mask).sum())} texels (centres on the layout "
              f"border); |difference| where both cover: max {d.max():.3g} um, 99.9th percentile "
              f"{np.percentile(d, 99.9):.3g} um")
    print()


def _face3d_with_cover(lib, uv, f, v, size):
    theirs = face3d_position_map(lib, uv, f, v, size)
    return theirs, np.any(theirs != 0, axis=2)


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
