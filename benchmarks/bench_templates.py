"""The same kernels on both synthetic templates: the old zipped-rows one and the real-like grid.

``face_template(topology="rows")`` (rows zipped into strips: 6 faces per vertex, one boundary loop)
and ``face_template()`` (topology "bfm": the real BFM mesh's connectivity: alternating
diagonals, 4 or 8 faces per vertex, rim 512 + mouth 78) at 53,215 vertices, same frame, outline and
height field. Rows, each after a warm-up call (first call reported apart):
- meshkit.decimate to 1/4 (with down + up) and its collapse kernel alone; fast-simplification
  (target_reduction=0.75) and pyfqmr (same face count as meshkit's result) when installed;
- meshkit.spiral_indices(faces, 9);
- render_depth of the framed mesh (frame_vertices, margin 0.02) at 256 and 1024;
- decimate with the vertex order shuffled, and on a rough surface (z + Gaussian noise, sd 300 um):
  two candidate causes of the real mesh's slower collapse loop;
- decimate on the coordinates scaled by 1e-3 (millimetres) and by 2^-10: time, and whether the
  result (kept vertices, faces) is the same as on micrometres.
Then a summary table (grid / old median) and the mesh statistics that explain the differences.

``--geometry`` prints only the geometry statistics that set the rasterizer's cost (``geometry_stats``:
triangle size classes and projected areas at 1024 x 1024, edge lengths, extents, winding measure)
for both templates and, with ``--mesh PATH``, for a mesh file of yours (e.g. the real BFM mesh as
3DDFA distributes it, ``BFM_Remove_Neck/bfm.ply``; read as stored, never written anywhere), so the
templates can be compared with a real mesh by anyone who has one.

Run: ``.venv/bin/python benchmarks/bench_templates.py [--repeat 7] [--geometry [--mesh PATH]]``
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

import numpy as np
from _runner import Bench, Timing, optional

from meshkit import render as R
from meshkit import topology
from meshkit._kernels import decimate as _k
from meshkit.decimate import BOUNDARY_WEIGHT, EPS_DEGENERATE, MIN_COS, MIN_QUALITY, decimate
from meshkit.spiral import spiral_indices
from meshkit.synthetic import face_template


def box_centres(v: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres (x + 0.5, y + 0.5) spanned by each triangle's bounding box, per axis."""
    p = v[f][:, :, :2]
    lo, hi = p.min(1), p.max(1)
    n = np.floor(hi - 0.5) - np.ceil(lo - 0.5) + 1
    n = np.maximum(n, 0)
    return n[:, 0], n[:, 1]


def stats(name: str, v: np.ndarray, f: np.ndarray, gen_time: float) -> list[str]:
    fpv = np.bincount(f.ravel(), minlength=len(v))
    loops = sorted((len(lp) for lp in topology.boundary_loops(f)), reverse=True)
    e = topology.edges(f)
    length = np.linalg.norm(v[e[:, 0]] - v[e[:, 1]], axis=1)
    p5, p50, p95 = np.percentile(length, [5, 50, 95])
    v1024 = R.frame_vertices(v, 1024, 1024, margin=0.02)
    nx, ny = box_centres(v1024, f)
    big = np.mean((nx > 4) | (ny > 4))
    v256 = R.frame_vertices(v, 256, 256, margin=0.02)
    nx, ny = box_centres(v256, f)
    empty = np.mean(nx * ny == 0)
    share = {k: 100 * np.mean(fpv == k) for k in (4, 6, 8)}
    return [name, f"{len(v):,}", f"{len(f):,}", "+".join(map(str, loops)),
            f"{share[4]:.1f} / {share[6]:.1f} / {share[8]:.1f}",
            f"{p5:,.0f} / {p50:,.0f} / {p95:,.0f} ({p95 / p5:.2f})", f"{100 * big:.1f}", f"{100 * empty:.1f}",
            f"{gen_time * 1000:.0f}"]


GEOMETRY_HEAD = ["mesh", "tris with box > 4x4 centres (%)", "tiny: box holds <= 1 centre (%)",
                 "wider than 8 centres (%)", "projected area px p10 / median / p90", "edge um p5 / median / p95",
                 "x / y / z span (mm)", "facing away from the centroid, as stored (%)"]


def geometry_stats(name: str, v: np.ndarray, f: np.ndarray) -> list[str]:
    """The statistics that set the rasterizer's cost, as one table row (GEOMETRY_HEAD).

    At 1024 x 1024 (frame_vertices, margin 0.02, as bench_render): each triangle's bounding box in
    pixel centres (``box_centres``), its share spanning more than 4 centres in x or y, holding at most
    one centre, and spanning more than 8 centres in x; the projected areas (px^2). Edge lengths on
    the unique edges (mesh units), the extents, and the share of triangles whose normal
    ``cross(v1 - v0, v2 - v0)`` points away from the mesh centroid (from the triangle's centroid).
    """
    p = R.frame_vertices(v, 1024, 1024, margin=0.02)
    nx, ny = box_centres(p, f)
    t = p[f][:, :, :2]
    d1, d2 = t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]
    area = 0.5 * np.abs(d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0])
    e = topology.edges(f)
    length = np.linalg.norm(v[e[:, 0]] - v[e[:, 1]], axis=1)
    normal = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    away = np.einsum("ij,ij->i", normal, v[f].mean(1) - v.mean(0)) > 0
    a10, a50, a90 = np.percentile(area, [10, 50, 90])
    e5, e50, e95 = np.percentile(length, [5, 50, 95])
    span = np.ptp(v, axis=0) / 1000
    return [name, f"{100 * np.mean((nx > 4) | (ny > 4)):.1f}", f"{100 * np.mean(nx * ny <= 1):.1f}",
            f"{100 * np.mean(nx > 8):.1f}", f"{a10:.2f} / {a50:.2f} / {a90:.1f}",
            f"{e5:,.0f} / {e50:,.0f} / {e95:,.0f}", f"{span[0]:.0f} / {span[1]:.0f} / {span[2]:.0f}",
            f"{100 * np.mean(away):.1f}"]


def geometry(mesh: str | None) -> None:
    """Print geometry_stats for both templates and, if given, the mesh file at ``mesh``."""
    meshes = {f"face_template(topology={t!r})": face_template(topology=t) for t in ("rows", "bfm")}
    if mesh is not None:
        from meshkit.io import read_mesh

        m = read_mesh(mesh)
        meshes[f"--mesh {mesh}"] = (np.array(m.vertices, np.float64), np.asarray(m.faces, np.int64))
    print("## Geometry statistics (the rasterizer's cost at 1024 x 1024)\n")
    print("| " + " | ".join(GEOMETRY_HEAD) + " |")
    print("|---|" + "---:|" * (len(GEOMETRY_HEAD) - 1))
    for name, (v, f) in meshes.items():
        print("| " + " | ".join(geometry_stats(name, v, f)) + " |")
    print()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--geometry", action="store_true", help="print only the geometry statistics")
    ap.add_argument("--mesh", default=None, help="a mesh file measured beside the templates (with --geometry)")
    args = ap.parse_args()
    if args.geometry:
        geometry(args.mesh)
        return
    rep = args.repeat

    meshes = {}
    gen = {}
    templates = (("old hex", lambda n=53_215: face_template(n, topology="rows")),
                 ("real-like grid", lambda n=53_215: face_template(n, topology="bfm")))
    for name, make in templates:
        make()
        t0 = time.perf_counter()
        meshes[name] = make()
        gen[name] = time.perf_counter() - t0

    print("## Mesh statistics (53,215 vertices)\n")
    head = ["template", "V", "F", "boundary loops", "faces/vertex 4 / 6 / 8 (%)",
            "edge um p5 / median / p95 (p95/p5)", "tris with box > 4x4 px at 1024 (%)",
            "tris with no pixel centre in box at 256 (%)", "generate (ms)"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name, (v, f) in meshes.items():
        print("| " + " | ".join(stats(name, v, f, gen[name])) + " |")
    print("| real BFM (REAL_FILES.md) | 53,215 | 105,840 | 512+78 | 50.1 / - / 49.3 | 662 / 1,305 / 2,211 (3.34) "
          "| 52.7 | - | - |\n")

    fs = optional("fast_simplification")
    pyfqmr = optional("pyfqmr")
    names = list(meshes)
    b = Bench("Kernels on both templates (53,215 vertices; the two templates' calls alternate)")
    rows = []  # (kernel, template, Timing)

    def pair(kernel: str, fns: dict, notes: dict | None = None) -> None:
        """Time fns[name]() for both templates, their calls alternating (the machine's load drifts)."""
        first, times = {}, {name: [] for name in fns}
        for name, fn in fns.items():
            gc.collect()
            t0 = time.perf_counter()
            fn()
            first[name] = time.perf_counter() - t0
        for _ in range(rep):
            for name, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        for name in fns:
            t = Timing(f"{kernel} / {name}", first[name], min(times[name]), statistics.median(times[name]), rep,
                       (notes or {}).get(name, ""))
            b.timings.append(t)
            rows.append((kernel, name, t))

    dec = {name: decimate(v, f, factor=4) for name, (v, f) in meshes.items()}
    target = int(np.ceil(len(meshes[names[0]][0]) / 4))
    pair("meshkit decimate 1/4 (down + up)", {n: (lambda v=v, f=f: decimate(v, f, factor=4))
                                              for n, (v, f) in meshes.items()},
         {n: f"{len(d.vertices)} v, {len(d.faces)} f" for n, d in dec.items()})
    normalised = {}
    for name, (v, f) in meshes.items():
        lo, hi = v.min(0), v.max(0)
        normalised[name] = ((v - 0.5 * (lo + hi)) / np.linalg.norm(hi - lo), f)
    pair("  its collapse kernel", {n: (lambda p=p, f=f: _k.qem_decimate(p, f, target, BOUNDARY_WEIGHT, MIN_COS,
                                                                         EPS_DEGENERATE, MIN_QUALITY))
                                   for n, (p, f) in normalised.items()})
    rng = np.random.default_rng(0)
    shuffled = {}
    for name, (v, f) in meshes.items():
        perm = rng.permutation(len(v))  # new vertex i is old vertex perm[i]
        inv = np.empty_like(perm)
        inv[perm] = np.arange(len(v))
        shuffled[name] = (v[perm], inv[f])
    pair("meshkit decimate 1/4, vertex order shuffled", {n: (lambda v=v, f=f: decimate(v, f, factor=4))
                                                         for n, (v, f) in shuffled.items()})
    rough = {}
    for name, (v, f) in meshes.items():
        vr = v.copy()
        vr[:, 2] += rng.normal(0.0, 300.0, len(v))  # rough surface: z noise of ~0.4 median edge
        rough[name] = (vr, f)
    pair("meshkit decimate 1/4, z + noise (sd 300 um)", {n: (lambda v=v, f=f: decimate(v, f, factor=4))
                                                        for n, (v, f) in rough.items()})
    same = {}
    for label, scale in (("x 1e-3 (mm)", 1e-3), ("x 2^-10", 2.0**-10)):
        notes = {}
        for name, (v, f) in meshes.items():
            ds, d = decimate(v * scale, f, factor=4), dec[name]
            eq = np.array_equal(ds.kept, d.kept) and np.array_equal(ds.faces, d.faces)
            swapped = np.setdiff1d(ds.kept, d.kept).size
            same[(label, name)] = (eq, swapped, len(ds.faces))
            notes[name] = "same result" if eq else f"different: {swapped} of {target} kept vertices, {len(ds.faces)} f"
        pair(f"meshkit decimate 1/4, coordinates {label}",
             {n: (lambda v=v * scale, f=f: decimate(v, f, factor=4)) for n, (v, f) in meshes.items()}, notes)
    if fs is not None:
        pair("fast-simplification (target_reduction 0.75)",
             {n: (lambda v=v, f=f: fs.simplify(v, f, target_reduction=0.75)) for n, (v, f) in meshes.items()},
             {n: f"{len(fs.simplify(v, f, target_reduction=0.75)[0])} v" for n, (v, f) in meshes.items()})
    else:
        b.skip("fast-simplification", "not installed")
    if pyfqmr is not None:
        def run_fqmr(v, f, nf):
            s = pyfqmr.Simplify()
            s.setMesh(v, f)
            s.simplify_mesh(target_count=nf, verbose=False)
            return s.getMesh()

        jobs = {n: (v, f, len(dec[n].faces)) for n, (v, f) in meshes.items()}
        pair("pyfqmr (meshkit's face count)", {n: (lambda j=j: run_fqmr(*j)) for n, j in jobs.items()},
             {n: f"{len(run_fqmr(*j)[0])} v" for n, j in jobs.items()})
    else:
        b.skip("pyfqmr", "not installed")
    pair("meshkit spiral_indices(faces, 9)", {n: (lambda f=f: spiral_indices(f, 9)) for n, (v, f) in meshes.items()})
    for size in (256, 1024):
        framed = {n: (R.frame_vertices(v, size, size, margin=0.02), f) for n, (v, f) in meshes.items()}
        pair(f"render_depth {size}x{size} (framed)",
             {n: (lambda vi=vi, f=f, s=size: R.render_depth(vi, f, s, s)) for n, (vi, f) in framed.items()})
    b.report()

    print("## Summary: grid / old (best and median of the alternating calls)\n")
    print("| kernel | old hex best / median (s) | real-like grid best / median (s) | grid / old, best | median |")
    print("|---|---:|---:|---:|---:|")
    kernels = list(dict.fromkeys(k for k, _, _ in rows))
    by = {(k, n): t for k, n, t in rows}
    for k in kernels:
        a, g = by[(k, names[0])], by[(k, names[1])]
        print(f"| {k} | {a.best:.4f} / {a.median:.4f} | {g.best:.4f} / {g.median:.4f} | {g.best / a.best:.2f} "
              f"| {g.median / a.median:.2f} |")
    print()
    for (label, name), (eq, swapped, nf) in same.items():
        print(f"coordinates {label}, {name}: " + ("same kept vertices and faces" if eq else
                                                   f"result differs: {swapped} of {target} kept vertices swapped, "
                                                   f"{nf} faces"))


if __name__ == "__main__":
    main()
