"""Decimation and transfer benchmarks on both 53,215-vertex face templates, in micrometres and millimetres.

Tables:
1. one QEM decimation to 1/4 (53215 -> 13304), on ``face_template(topology=...)`` "rows" (the old
   zipped-rows template) and "bfm" (the real mesh's connectivity), each in micrometres (the BFM
   files' unit) and millimetres (x 1e-3), plain, with the vertex order shuffled and with a rough
   surface (z + Gaussian noise, sd 300 um): meshkit (with down/up) against fast-simplification
   (``simplify(target_count=<meshkit's face count>)``) and pyfqmr (same face count), which make no
   matrices and move vertices. The three are called in turn within each repeat (load drift hits
   all alike); median of the repeats. Error: distance of every fine vertex to the coarse surface
   (``meshkit.closest_points``, the same for all three), in micrometres, mean and max;
2. meshkit's parts on both templates: input checks, the kernel's setup (quadrics, corner lists,
   queue; the kernel run with nothing to collapse), the collapse loop (the kernel minus its setup),
   the up matrix's closest points, the rest (normalisation, matrices);
3. the CoMA chain 53215 -> 13304 -> 3326 -> 832 -> 208 -> 52 on both templates;
4. exact closest points of the 53,215 fine vertices on the 13,304-vertex coarse mesh: meshkit vs
   libigl's AABB tree (C++) and trimesh (on a subset);
5. the cold JIT compile (fresh process, empty numba cache) reported on its own;
6. with ``--baseline DIR`` (a directory holding an older meshkit as the package ``meshkit_base``, e.g.
   ``git archive <commit> meshkit | tar -x -C DIR && mv DIR/meshkit DIR/meshkit_base``): that version
   and this one called in turn on both templates, whole ``decimate`` and its parts, after checking that
   both give the same kept vertices, faces and ``up``.

Table 1b: mean error under CoMA semantics: the peers' own results with each coarse vertex snapped to its
nearest fine vertex (their connectivity kept), against meshkit's.

Run: ``.venv/bin/python benchmarks/bench_decimate.py [--repeat 7] [--quick] [--units um,mm] [--baseline DIR]
[--mesh PATH]``
(``--quick``: plain meshes only; ``--mesh``: also a mesh file of yours in tables 1 and 2, e.g. the real
BFM mesh as 3DDFA distributes it, ``BFM_Remove_Neck/bfm.ply``: licensed data, never in this repository)
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from _runner import Bench, optional

from meshkit._kernels import decimate as _k
from meshkit.decimate import BOUNDARY_WEIGHT, EPS_DEGENERATE, MIN_COS, MIN_QUALITY, _check_input, _normalise, decimate
from meshkit.synthetic import face_template
from meshkit.transfer import barycentric_transfer, closest_points

_COLD = """
import time, numpy as np
t0 = time.perf_counter()
from meshkit.synthetic import face_template
from meshkit.decimate import decimate
v, f = face_template(2000)
t1 = time.perf_counter()
decimate(v, f, factor=4)
t2 = time.perf_counter()
decimate(v, f, factor=4)
t3 = time.perf_counter()
print(f"{t2 - t1:.3f} {t3 - t2:.4f}")
"""

TOPOLOGIES = ("rows", "bfm")
EXTRA: dict[str, str] = {}  # --mesh: label -> path of a mesh file measured like the templates


def meshes() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(label, vertices, faces): the two 53,215-vertex templates, then any --mesh file (e.g. the real
    BFM mesh as 3DDFA distributes it, BFM_Remove_Neck/bfm.ply, in micrometres)."""
    from meshkit.io import read_mesh

    out = [(topo, *face_template(53_215, topology=topo)) for topo in TOPOLOGIES]
    for label, path in EXTRA.items():
        m = read_mesh(path)
        out.append((label, np.array(m.vertices, np.float64), np.array(m.faces, np.int64)))  # writeable copies
    return out
UNITS = {"nm": 1e3, "um": 1.0, "mm": 1e-3, "m": 1e-6}  # factor applied to micrometre coordinates
SCALES = [("um", 1.0), ("mm", 1e-3)]  # table 1's units; --units changes them


def cold_compile() -> tuple[float, float]:
    """First decimate() call in a fresh process with an empty numba cache, and the second call."""
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, NUMBA_CACHE_DIR=d)
        out = subprocess.run([sys.executable, "-c", _COLD], env=env, capture_output=True, text=True, check=True)
    first, second = map(float, out.stdout.split())
    return first, second


def variant(v: np.ndarray, f: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The template as is, with its vertex order shuffled ("shuffled"), its face order shuffled
    ("faces-shuffled"), both ("both-shuffled"), or with z + noise (sd 300 um, "rough")."""
    if name in ("shuffled", "both-shuffled"):
        perm = np.random.default_rng(0).permutation(len(v))
        v, f = v[perm], np.argsort(perm)[f]
    if name in ("faces-shuffled", "both-shuffled"):
        f = f[np.random.default_rng(1).permutation(len(f))]
    if name in ("shuffled", "faces-shuffled", "both-shuffled"):
        return v, f
    if name == "rough":
        v = v.copy()
        v[:, 2] += 300.0 * np.random.default_rng(0).standard_normal(len(v))
    return v, f


def alternate(fns: dict, repeat: int) -> dict[str, float]:
    """Median seconds of each function, called in turn within each repeat, after one warm-up call each."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            gc.collect()
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def peers():
    fs = optional("fast_simplification")
    pyfqmr = optional("pyfqmr")
    out = {}
    if fs is not None:
        out["fast-simplification"] = lambda v, f, nf: fs.simplify(v, f, target_count=nf)
    if pyfqmr is not None:
        def run_fqmr(v, f, nf):
            s = pyfqmr.Simplify()
            s.setMesh(v, f)
            s.simplify_mesh(target_count=nf, verbose=False)
            return s.getMesh()[:2]

        out["pyfqmr"] = run_fqmr
    return out


def peer_row(head: str, v: np.ndarray, f: np.ndarray, s: float, others: dict, repeat: int) -> str:
    """One table row: times, ratios, vertex counts, mean and max error (um: distances / s)."""
    d = decimate(v, f, factor=4)
    nf = len(d.faces)
    fns = {"meshkit": lambda: decimate(v, f, factor=4)}
    fns.update({name: (lambda run=run: run(v, f, nf)) for name, run in others.items()})
    med = alternate(fns, repeat)
    meshes = {"meshkit": (d.vertices, d.faces)}
    meshes.update({name: run(v, f, nf) for name, run in others.items()})
    n_out, mean, mx = {}, {}, {}
    for name, (cv, cf) in meshes.items():
        dist = closest_points(np.asarray(cv, float), np.asarray(cf, np.int64), v)[3] / s
        n_out[name], mean[name], mx[name] = f"{len(cv):,}", f"{dist.mean():.2f}", f"{dist.max():.0f}"
    names = ["meshkit", *others]
    ratio = {n: f"{med['meshkit'] / med[n]:.2f}" if n in med else "-" for n in ("fast-simplification", "pyfqmr")}
    ms = {n: f"{1e3 * med[n]:.1f}" if n in med else "-" for n in ("meshkit", "fast-simplification", "pyfqmr")}
    return (f"{head}| {ms['meshkit']} | {ms['fast-simplification']} | {ms['pyfqmr']} | {ratio['fast-simplification']} "
            f"| {ratio['pyfqmr']} | {' / '.join(n_out[n] for n in names)} | {' / '.join(mean[n] for n in names)} "
            f"| {' / '.join(mx[n] for n in names)} |")


def table_peers(repeat: int, variants: tuple[str, ...]) -> None:
    others = peers()
    print("## QEM decimation 53,215 -> 13,304 vertices: meshkit (with down + up) vs peers at meshkit's face count\n")
    print("Time: median of the repeats (ms), the three called in turn; x fs: over fast-simplification's median. "
          "Error: fine vertices to the coarse surface, um.\n")
    print("| template | variant | units | meshkit ms | fast-simpl. ms | pyfqmr ms | meshkit x fs | meshkit x pyfqmr "
          "| vertices (mk / fs / pyfqmr) | mean err um (mk / fs / pyfqmr) | max err um (mk / fs / pyfqmr) |")
    print("|---|---|---|---:|---:|---:|---:|---:|---|---|---|")
    for topo, v0, f0 in meshes():
        for var in variants:
            vu, f = variant(v0, f0, var)
            for unit, s in SCALES:
                print(peer_row(f"| {topo} | {var} | {unit} ", vu * s, f, s, others, repeat), flush=True)
    print()


def snapped(v: np.ndarray, cv: np.ndarray, cf: np.ndarray) -> tuple[np.ndarray, int]:
    """A peer's coarse mesh under CoMA semantics: each coarse vertex replaced by its nearest fine vertex
    (scipy's k-d tree), faces that collapse to an edge dropped. Returns (faces into v, distinct vertices)."""
    from scipy.spatial import cKDTree

    idx = cKDTree(v).query(np.asarray(cv, float))[1]
    sf = idx[np.asarray(cf, np.int64)]
    ok = (sf[:, 0] != sf[:, 1]) & (sf[:, 1] != sf[:, 2]) & (sf[:, 0] != sf[:, 2])
    return sf[ok], len(np.unique(idx))


def table_selection() -> None:
    """Mean error when every coarse vertex must be a fine vertex (CoMA semantics, meshkit's promise): the
    peers' own results with their vertices snapped to the nearest fine vertex, against meshkit's."""
    others = peers()
    print("## Mean error under CoMA semantics: the peers' results snapped to fine vertices\n")
    print("Each peer's coarse vertex replaced by its nearest fine vertex, its own faces kept (faces that "
          "collapse dropped); error as in table 1 (fine vertices to the coarse surface, um).\n")
    print("| template | meshkit mean | peer | peer mean (moved vertices) | peer snapped: mean | distinct vertices "
          "| faces dropped | meshkit / snapped |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for topo, v, f in meshes():
        d = decimate(v, f, factor=4)
        nf = len(d.faces)

        def err(cv, cf, v=v):
            return closest_points(np.asarray(cv, float), np.asarray(cf, np.int64), v)[3].mean()

        mk = err(d.vertices, d.faces)
        for name, run in others.items():
            cv, cf = run(v, f, nf)
            sf, distinct = snapped(v, cv, cf)
            e = err(v, sf)
            print(f"| {topo} | {mk:.2f} | {name} | {err(cv, cf):.2f} | {e:.2f} | {distinct:,} of {len(cv):,} "
                  f"| {len(cf) - len(sf)} | {mk / e:.2f} |", flush=True)
    print()


def parts_row(topo: str, v: np.ndarray, f: np.ndarray, repeat: int) -> str:
    n = len(v)
    d = decimate(v, f, factor=4)
    target = len(d.kept)
    p = _normalise(v)
    rem = np.setdiff1d(np.arange(n), d.kept)
    cv, cf = np.array(d.vertices), np.array(d.faces)
    fns = {
        "total": lambda: decimate(v, f, factor=4),
        "check": lambda: _check_input(v, f),
        "setup": lambda: _k.qem_decimate(p, f, n, BOUNDARY_WEIGHT, MIN_COS, EPS_DEGENERATE, MIN_QUALITY),
        "kernel": lambda: _k.qem_decimate(p, f, target, BOUNDARY_WEIGHT, MIN_COS, EPS_DEGENERATE, MIN_QUALITY),
        "up": lambda: barycentric_transfer(cv, cf, v[rem]),
    }
    m = {k: 1e3 * x for k, x in alternate(fns, repeat).items()}
    loop = m["kernel"] - m["setup"]
    rest = m["total"] - m["check"] - m["kernel"] - m["up"]
    return f"| {topo} | {m['total']:.1f} | {m['check']:.1f} | {m['setup']:.1f} | {loop:.1f} | {m['up']:.1f} | {rest:.1f} |"


def table_parts(repeat: int) -> None:
    print("## meshkit decimate's parts (median ms, called in turn)\n")
    print("| template | total | input checks | kernel setup | collapse loop | up: closest points | rest |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for topo, v, f in meshes():
        print(parts_row(topo, v, f, repeat), flush=True)
    print()


def baseline_rows(topo: str, old_dec, old_k, repeat: int) -> list[str]:
    """Table rows for one template: the baseline (old_dec/old_k) and this meshkit, called in turn."""
    v, f = face_template(53_215, topology=topo)
    a, b = old_dec.decimate(v, f, factor=4), decimate(v, f, factor=4)
    if not (np.array_equal(a.kept, b.kept) and np.array_equal(a.faces, b.faces) and (a.up != b.up).nnz == 0):
        return [f"| {topo} | outputs differ: not timed | | | |"]
    p, target = _normalise(v), len(b.kept)
    consts = (BOUNDARY_WEIGHT, MIN_COS, EPS_DEGENERATE, MIN_QUALITY)
    parts = {
        "whole decimate": (lambda: old_dec.decimate(v, f, factor=4), lambda: decimate(v, f, factor=4)),
        "input checks": (lambda: old_k.check_input(v, f, EPS_DEGENERATE), lambda: _k.check_input(v, f, EPS_DEGENERATE)),
        "kernel (setup + collapse loop)": (lambda: old_k.qem_decimate(p, f, target, *consts),
                                           lambda: _k.qem_decimate(p, f, target, *consts)),
    }
    rows = []
    for name, (old, new) in parts.items():
        med = alternate({"old": old, "new": new}, repeat)
        rows.append(f"| {topo} | {name} | {1e3 * med['old']:.1f} | {1e3 * med['new']:.1f} | {med['new'] / med['old']:.2f} |")
    return rows


def table_baseline(directory: str, repeat: int) -> None:
    """An older meshkit (package meshkit_base in ``directory``) against this one, called in turn."""
    import importlib

    sys.path.insert(0, directory)
    old_dec = importlib.import_module("meshkit_base.decimate")
    old_k = importlib.import_module("meshkit_base._kernels.decimate")
    print("## this meshkit vs the baseline (median ms, called in turn; same kept vertices, faces and up checked)\n")
    print("| template | part | baseline ms | now ms | now / baseline |")
    print("|---|---|---:|---:|---:|")
    for topo in TOPOLOGIES:
        print("\n".join(baseline_rows(topo, old_dec, old_k, repeat)), flush=True)
    print()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="plain templates only (no shuffled / rough variants)")
    ap.add_argument("--variants", default=None, help="comma-separated variants of table 1 instead (plain, shuffled, "
                    "faces-shuffled, both-shuffled, rough)")
    ap.add_argument("--baseline", default=None, help="directory holding an older meshkit as meshkit_base")
    ap.add_argument("--units", default="um,mm", help="comma-separated units of table 1 (nm, um, mm, m): the "
                    "templates and the BFM files are in um; the peers' thresholds are fixed, so their time and "
                    "result change with the units")
    ap.add_argument("--mesh", action="append", default=[], metavar="PATH",
                    help="also measure this mesh file (tables 1 and 2), e.g. the real BFM_Remove_Neck/bfm.ply")
    args = ap.parse_args()
    for path in args.mesh:
        EXTRA[os.path.basename(path)] = path
    SCALES[:] = [(u, UNITS[u]) for u in args.units.split(",")]
    rep = args.repeat
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    if args.baseline:
        table_baseline(args.baseline, rep)
        return

    # --- 1. peers side by side, 2. parts
    variants = ("plain",) if args.quick else ("plain", "shuffled", "rough")
    table_peers(rep, tuple(args.variants.split(",")) if args.variants else variants)
    table_selection()
    table_parts(rep)

    # --- 3. the chain
    for topo in TOPOLOGIES:
        v, f = face_template(53_215, topology=topo)

        def chain(v=v, f=f):
            cur_v, cur_f = v, f
            counts = [len(cur_v)]
            for _ in range(5):
                dd = decimate(cur_v, cur_f, factor=4)
                cur_v, cur_f = dd.vertices, dd.faces
                counts.append(len(cur_v))
            return counts

        counts = chain()
        b2 = Bench(f"CoMA chain on '{topo}' " + " -> ".join(map(str, counts)) + " (5 decimations with down + up)")
        b2.time("meshkit", chain, repeat=rep)
        b2.report(reference="meshkit")

    # --- 4. closest points / transfer
    v, f = face_template(53_215, topology="bfm")
    n = len(v)
    d = decimate(v, f, factor=4)
    cv, cf = np.array(d.vertices), np.array(d.faces)
    b3 = Bench(f"exact closest points: {n} points on the {len(cv)}-vertex, {len(cf)}-face coarse 'bfm' mesh")
    b3.time("meshkit closest_points", lambda: closest_points(cv, cf, v), repeat=rep)
    b3.time("meshkit barycentric_transfer", lambda: barycentric_transfer(cv, cf, v), repeat=rep)
    igl = optional("igl")
    if igl is not None:
        b3.time("libigl point_mesh_squared_distance (AABB)", lambda: igl.point_mesh_squared_distance(v, cv, cf), repeat=rep)
    else:
        b3.skip("libigl", "not installed")
    trimesh = optional("trimesh")
    if trimesh is not None:
        tm = trimesh.Trimesh(cv, cf, process=False)
        sub = v[:: max(1, n // 2000)]
        t0 = time.perf_counter()
        trimesh.proximity.closest_point(tm, sub)
        dt = (time.perf_counter() - t0) * n / len(sub)
        b3.skip("trimesh.proximity.closest_point", f"{len(sub)} points took {dt * len(sub) / n:.2f} s, ~{dt:.1f} s scaled to {n}")
    b3.report(reference="meshkit closest_points")

    # --- 5. cold JIT
    first, second = cold_compile()
    print("## JIT compile (fresh process, empty numba cache)\n")
    print(f"first decimate() call on face_template(2000), compile included: {first:.2f} s; second call: {second * 1000:.1f} ms\n")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
