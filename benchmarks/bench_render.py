"""Rasterizer: depth + colour of the 53,215-vertex / 105,840-triangle face filling the frame.

Rows (steady state after warm-up; the first call is reported apart):
- meshkit: ``rasterize`` (face index + depth) then ``interpolate`` of per-vertex RGB, the one
  single-threaded numba kernel each; also the validated one-call ``render_colors``.
- face3d / Sim3DR: their C++ rasterization loops (face3d ``_render_colors_core``, Sim3DR
  ``_rasterize``) with the array preparation their Python wrappers do on every call. They are not
  on PyPI and need Cython to build, so they are timed only when a local build is pointed to by
  ``MESHKIT_RENDER_PEERS=/path/libpeers.so`` (C-linkage build of those two functions,
  ``g++ -O3 -fwrapv -std=c++11 -shared -fPIC``, see benchmarks/README.md); else skipped.
- pyvista/VTK off-screen (``pv.Plotter(off_screen=True)``, parallel projection, no lighting):
  update the points, render, read back the colour image and the depth buffer. Mesa llvmpipe,
  LP_NUM_THREADS=1 so that it is single-threaded too.
- batches: B posed frames; ``rasterize_batch`` (numba prange over images) then ``interpolate``
  per frame, and ``render_colors_batch`` (raster + colour both inside the prange), 1 vs 2
  threads, against a loop of single renders.

- templates (``--templates``): the real-like template (``face_template(topology="bfm")``) against
  the default one, render_depth / rasterize / render_colors alternating, single thread.

Run: .venv/bin/python benchmarks/bench_render.py [--quick] [--batch (the batch table only)]
[--templates [--before DIR] [--mesh PATH] (the side-by-side template table only; DIR: an earlier
version of the package as DIR/meshkit_before, timed alternately, see templates_side_by_side; PATH: a
mesh file measured alongside, e.g. the real BFM mesh)] [--levels [--before DIR] (the reused Rasterizer
on the template's CoMA levels, 53,215 down to 208 vertices: triangles of every size)]
"""

from __future__ import annotations

import ctypes
import os
import sys

os.environ.setdefault("LP_NUM_THREADS", "1")  # before VTK loads Mesa: single-threaded llvmpipe

import numba
import numpy as np
from _runner import Bench, optional

from meshkit import render as R
from meshkit.synthetic import face_template


def frame(v, size):
    return R.frame_vertices(v, size, size, margin=0.02)


def peers_library():
    path = os.environ.get("MESHKIT_RENDER_PEERS")
    if not path or not os.path.exists(path):
        return None
    lib = ctypes.CDLL(path)
    fp, ip, up = (np.ctypeslib.ndpointer(t, flags="C_CONTIGUOUS") for t in (np.float32, np.int32, np.uint8))
    lib.face3d_render_colors_core.argtypes = [fp, fp, ip, fp, fp] + [ctypes.c_int] * 5
    lib.sim3dr_rasterize.argtypes = [up, fp, ip, fp, fp] + [ctypes.c_int] * 4 + [ctypes.c_float, ctypes.c_bool]
    return lib


def face3d_render_colors(lib, vertices, triangles, colors, h, w):
    """As face3d.mesh_cython.render.render_colors: float32 copies, depth buffer -999999, float image."""
    image = np.zeros((h, w, 3), dtype=np.float32)
    depth = np.zeros((h, w), dtype=np.float32) - 999999.0
    v = vertices.astype(np.float32).copy()
    t = triangles.astype(np.int32).copy()
    c = colors.astype(np.float32).copy()
    lib.face3d_render_colors_core(image, v, t, c, depth, v.shape[0], t.shape[0], h, w, 3)
    return image, depth


def sim3dr_rasterize(lib, vertices, triangles, colors, h, w):
    """As Sim3DR.rasterize: uint8 background, depth buffer -1e8, float32 colours."""
    image = np.zeros((h, w, 3), dtype=np.uint8)
    depth = np.zeros((h, w), dtype=np.float32) - 1e8
    v = np.ascontiguousarray(vertices, dtype=np.float32)
    t = np.ascontiguousarray(triangles, dtype=np.int32)
    c = np.ascontiguousarray(colors, dtype=np.float32)
    lib.sim3dr_rasterize(image, v, t, c, depth, t.shape[0], h, w, 3, 1.0, False)
    return image, depth


def vtk_renderer(pv, vertices, faces, colors, size):
    """An off-screen plotter showing the mesh orthographically, like the image-space rasterizers."""
    cells = np.hstack([np.full((len(faces), 1), 3), faces]).ravel()
    mesh = pv.PolyData(vertices * [1, -1, 1], cells)  # image y down -> VTK y up
    mesh["rgb"] = (colors * 255).astype(np.uint8)
    pl = pv.Plotter(off_screen=True, window_size=(size, size))
    pl.add_mesh(mesh, scalars="rgb", rgb=True, lighting=False)
    pl.enable_parallel_projection()
    pl.view_xy()
    pl.reset_camera()

    def render(new_vertices):
        mesh.points = new_vertices * [1, -1, 1]
        pl.render()
        img = pl.screenshot(return_img=True)
        depth = pl.get_image_depth()
        return img, depth

    return render, pl


def bench_size(size, v, f, colors, lib, pv, repeat):
    """One table: depth + colour of the framed face at size x size, single thread."""
    vi = frame(v, size)
    frag = R.rasterize(vi, f, size, size)
    print(f"{size}x{size}: the face covers {frag.mask.mean():.1%} of the frame "
          f"({frag.mask.sum()} pixels, {np.unique(frag.face_index[frag.mask]).size} visible triangles)")
    rast = R.Rasterizer(size, size)
    out = np.empty((size, size, 3), np.float32)

    def depth_colour():
        fr = R.rasterize(vi, f, size, size)
        return fr.depth, R.interpolate(fr, f, colors)

    def depth_colour_reused():
        fr = rast(vi, f)
        return fr.depth, R.interpolate(fr, f, colors, out=out)

    numba.set_num_threads(1)
    b = Bench(f"depth + colour, {size}x{size}, single thread")
    b.time("meshkit rasterize + interpolate", depth_colour, repeat=repeat)
    b.time("meshkit Rasterizer + interpolate(out=) (buffers reused)", depth_colour_reused, repeat=repeat)
    b.time("meshkit rasterize only (face index + depth)", lambda: R.rasterize(vi, f, size, size), repeat=repeat)
    b.time("meshkit render_colors (one call)", lambda: R.render_colors(vi, f, colors, size, size), repeat=repeat)
    if lib is not None:
        b.time("face3d C++ core (+ its wrapper's copies)", lambda: face3d_render_colors(lib, vi, f, colors, size, size),
               repeat=repeat, note="local build of the published source")
        b.time("Sim3DR C++ (+ its wrapper's copies)", lambda: sim3dr_rasterize(lib, vi, f, colors, size, size),
               repeat=repeat, note="local build of the published source")
    else:
        b.skip("face3d C++ core", "not installable from PyPI; set MESHKIT_RENDER_PEERS to a local build")
        b.skip("Sim3DR C++", "not installable from PyPI; set MESHKIT_RENDER_PEERS to a local build")
    if pv is not None:
        render, pl = vtk_renderer(pv, vi, f, colors, size)
        b.time("pyvista/VTK off-screen (render + read colour + depth)", lambda: render(vi), repeat=max(3, repeat // 3),
               note="Mesa llvmpipe, LP_NUM_THREADS=1")
        pl.close()
    else:
        b.skip("pyvista/VTK off-screen", "pyvista not installed")
    b.report(reference="meshkit rasterize + interpolate")


def templates_side_by_side(repeat: int, before: str | None = None, mesh: str | None = None) -> None:
    """The real-like template (``topology="bfm"``: real connectivity and triangle-size spread) against
    the default one (``"rows"``), render_depth / rasterize / render_colors, calls alternating so that
    load drift hits both alike; single thread, medians of ``repeat`` rounds after one warm-up. Timed
    in CPU time of the thread (``time.thread_time``): on a shared machine, wall time also counts the
    time the process waits for a core.

    ``before``: a directory holding an earlier version of the package as ``meshkit_before`` (e.g.
    ``git archive <commit> meshkit | tar -x -C DIR && mv DIR/meshkit DIR/meshkit_before``); its
    render calls then alternate with this one's and the table gets "before" columns. ``mesh``: a mesh
    file measured alongside (e.g. the real BFM mesh as 3DDFA distributes it, ``BFM_Remove_Neck/bfm.ply``:
    the mean face mirrored in z, its front looking along -z: viewed from the front with
    ``render.front_view``), with a "mesh / rows" column."""
    import importlib
    import time

    numba.set_num_threads(1)
    impls = {"": R}
    if before is not None:
        sys.path.insert(0, before)
        impls = {"before ": importlib.import_module("meshkit_before.render"), "": R}
    meshes = {t: face_template(topology=t) for t in ("rows", "bfm")}
    if mesh is not None:
        from meshkit.io import read_mesh

        m = read_mesh(mesh)
        f = np.array(m.faces, np.int64)
        meshes["mesh"] = (R.front_view(np.array(m.vertices, np.float64), f)[0], f)
    print(f"## templates side by side, single thread ({repeat} alternating rounds; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)\n")
    cols = [f"{p}{t}" for p in impls for t in meshes]
    print("| call | size | " + " | ".join(f"{c} median (CPU ms)" for c in cols) + " | bfm / rows |"
          + (" bfm / before rows |" if before else "") + (" mesh / rows |" if mesh else ""))
    print("|---|---:|" + "---:|" * (len(cols) + 1 + bool(before) + bool(mesh)))
    for size in (256, 1024):
        framed = {t: (frame(v, size), f, R.pncc_code(v)) for t, (v, f) in meshes.items()}
        for name in ("Rasterizer (buffers reused: the kernel)", "render_depth", "rasterize", "render_colors"):
            calls = {}
            for p, mod in impls.items():
                if name.startswith("Rasterizer"):
                    reused = {t: mod.Rasterizer(size, size) for t in framed}
                    calls[p] = lambda t, vi, f, c, r=reused: r[t](vi, f)
                elif name == "render_colors":
                    calls[p] = lambda t, vi, f, c, m=mod, s=size: m.render_colors(vi, f, c, s, s)
                else:
                    fn = getattr(mod, name)
                    calls[p] = lambda t, vi, f, c, fn=fn, s=size: fn(vi, f, s, s)
            times = {c: [] for c in cols}
            for k in range(repeat + 1):
                for p, fn in calls.items():
                    for t, args in framed.items():
                        t0 = time.thread_time()
                        fn(t, *args)
                        if k:  # round 0 is the warm-up
                            times[p + t].append(time.thread_time() - t0)
            med = {c: float(np.median(x)) for c, x in times.items()}
            row = f"| {name} | {size} | " + " | ".join(f"{med[c] * 1e3:.2f}" for c in cols)
            row += f" | {med['bfm'] / med['rows']:.2f} |"
            if before:
                row += f" {med['bfm'] / med['before rows']:.2f} |"
            if mesh:
                row += f" {med['mesh'] / med['rows']:.2f} |"
            print(row, flush=True)
    print()


def levels_side_by_side(repeat: int, before: str | None = None) -> None:
    """The reused Rasterizer on the CoMA levels of the real-like template (53,215 -> 13,304 -> 3,326 ->
    832 -> 208 vertices, each framed alike), where the triangles grow from a few pixels to hundreds;
    with ``before`` (as in templates_side_by_side), that version alternating with this one. CPU time of
    the thread, medians of ``repeat`` rounds after one warm-up, single thread."""
    import importlib
    import time

    from meshkit import decimate

    numba.set_num_threads(1)
    impls = {"": R}
    if before is not None:
        sys.path.insert(0, before)
        impls = {"before": importlib.import_module("meshkit_before.render"), "now": R}
    v, f = face_template(topology="bfm")
    levels = [(v, f)]
    for _ in range(4):
        d = decimate(*levels[-1], factor=4)
        levels.append((d.vertices, d.faces))
    print(f"## Rasterizer (buffers reused) on the levels of the real-like template, single thread ({repeat} "
          f"alternating rounds; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)\n")
    cols = list(impls)
    print("| vertices | size | " + " | ".join(f"{c or 'now'} median (CPU ms)" for c in cols)
          + (" | now / before |" if before else " |"))
    print("|---:|---:|" + "---:|" * (len(cols) + bool(before)))
    for size in (256, 1024):
        for lv, lf in levels:
            vi = frame(lv, size)
            calls = {c: (mod.Rasterizer(size, size), np.asarray(lf)) for c, mod in impls.items()}
            times = {c: [] for c in cols}
            for k in range(repeat + 1):
                for c, (r, ff) in calls.items():
                    t0 = time.thread_time()
                    r(vi, ff)
                    if k:
                        times[c].append(time.thread_time() - t0)
            med = {c: float(np.median(x)) * 1e3 for c, x in times.items()}
            row = f"| {len(lv):,} | {size} | " + " | ".join(f"{med[c]:.2f}" for c in cols)
            row += f" | {med['now'] / med['before']:.2f} |" if before else " |"
            print(row, flush=True)
    print()


def main(quick: bool = False, batch_only: bool = False) -> None:
    if "--levels" in sys.argv[1:]:
        args = sys.argv[1:]
        levels_side_by_side(11 if quick else 41, args[args.index("--before") + 1] if "--before" in args else None)
        return
    if "--templates" in sys.argv[1:]:
        args = sys.argv[1:]
        before = args[args.index("--before") + 1] if "--before" in args else None
        mesh = args[args.index("--mesh") + 1] if "--mesh" in args else None
        templates_side_by_side(11 if quick else 41, before, mesh)
        return
    v, f = face_template()
    colors = R.pncc_code(v)  # any per-vertex RGB in [0, 1]
    lib = peers_library()
    pv = optional("pyvista")
    repeat = 5 if quick else 30
    print(f"mesh: {len(v)} vertices, {len(f)} triangles; numba threads available: {numba.config.NUMBA_NUM_THREADS}\n")
    for size in () if batch_only else (256, 1024):
        bench_size(size, v, f, colors, lib, pv, repeat)

    # batches: B frames of the face under different poses (yaw, pitch within +-30 degrees), 256x256
    size, n_img = 256, 8 if quick else 32
    rng = np.random.default_rng(0)

    def posed(yaw, pitch):
        cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
        ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
        return frame(v @ (rx @ ry).T, size)

    batch = np.stack([posed(*rng.uniform(-np.pi / 6, np.pi / 6, 2)) for _ in range(n_img)])

    def batched():
        frs = R.rasterize_batch(batch, f, size, size)
        return [R.interpolate(fr, f, colors) for fr in frs]

    def looped():
        out = []
        for k in range(n_img):
            fr = R.rasterize(batch[k], f, size, size)
            out.append(R.interpolate(fr, f, colors))
        return out

    b = Bench(f"batch of {n_img} frames, depth + colour, {size}x{size}")
    threads = min(2, numba.config.NUMBA_NUM_THREADS)
    numba.set_num_threads(1)
    rows = [("loop of rasterize + interpolate (1 thread)", looped)]
    rows.append(("rasterize_batch (1 thread) + interpolate per frame", batched))
    rows.append(("render_colors_batch, 1 thread", lambda: R.render_colors_batch(batch, f, colors, size, size)))
    timings = []
    for name, fn in rows:
        timings.append((name, b.time(name, fn, repeat=max(3, repeat // 5))))
    numba.set_num_threads(threads)
    for name, fn in ((f"rasterize_batch ({threads} threads) + interpolate per frame", batched),
                     (f"render_colors_batch, {threads} threads", lambda: R.render_colors_batch(batch, f, colors, size, size))):
        timings.append((name, b.time(name, fn, repeat=max(3, repeat // 5))))
    b.report(reference="loop of rasterize + interpolate (1 thread)")
    for name, t in timings:
        print(f"throughput {name}: {n_img / t.median:.0f} frames/s")


if __name__ == "__main__":
    main(quick="--quick" in sys.argv, batch_only="--batch" in sys.argv)
