"""The closest-point query behind decimate's ``up`` matrix (issue #17): serial, threaded, and an older meshkit.

The query: the exact closest point on the 1/4 coarse mesh (13,304 vertices) of each of the 39,911
fine vertices that the decimation removed, on ``face_template(53215, topology=...)`` "bfm" and "rows"
(``meshkit.transfer._closest(cv, cf, v[removed])``, as at the end of ``decimate``); also the first
100 / 1,000 / 5,000 / 10,000 / 20,000 of those points (the grid is built for every call).

Variants, called in turn within each repeat (load drift from other work hits all alike), median of
the repeats: "meshkit" (``transfer._closest``), "serial" (the same steps written out here) and the
query split into 1 or 4 chunks per thread on 2 Python threads (``query_grid`` releases the GIL; the
split is only here, meshkit does not thread it), and with ``--baseline DIR`` the same query of an
older meshkit copied to DIR/meshkit_base, e.g.::

    git archive ac09e46 meshkit | tar -x -C /tmp/base && mv /tmp/base/meshkit /tmp/base/meshkit_base

Every variant's faces, weights and distances are checked equal, bit for bit, to the first one's.
Also: the time split of one serial call (triangle boxes + cell size, grid build, query), and with a
baseline, the whole ``decimate(v, f, factor=4)`` of both (the baseline's own transfer module) and
other callers: 300 random points in the rows coarse mesh's box (most far from the surface), 100 and
50,000 normal points around a 642-vertex icosphere (trimesh).

Run: ``.venv/bin/python benchmarks/bench_up_query.py [--repeat 21] [--baseline DIR]``
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import trimesh

from meshkit import transfer
from meshkit._kernels import transfer as kernels
from meshkit.decimate import decimate
from meshkit.synthetic import face_template

SIZES = (100, 1_000, 5_000, 10_000, 20_000, None)


def threaded(threads: int, chunks: int):
    """``transfer._closest`` (without its rescaling, not needed here) with the query split into
    ``threads * chunks`` consecutive chunks run on ``threads`` Python threads (``query_grid`` releases
    the GIL); threads=1: one call, as in meshkit."""

    def run(cv, cf, p):
        cv, cf, p = (np.require(a, t, ["C", "W"]) for a, t in ((cv, np.float64), (cf, np.int64), (p, np.float64)))
        lo, hi, origin, h, dims, entries = transfer._grid_params(cv, cf)
        grid = kernels.build_grid(lo, hi, origin, h, dims, entries)
        args = (cv, cf, lo, hi, 2.0**-40 * float(np.abs(cv).max()), origin, h, dims, *grid)
        if threads == 1:
            face, bary, d2 = kernels.query_grid(p, *args)
        else:
            bounds = np.linspace(0, len(p), threads * chunks + 1).astype(np.int64)
            with ThreadPoolExecutor(threads) as pool:
                parts = list(pool.map(lambda a, b: kernels.query_grid(p[a:b], *args), bounds[:-1], bounds[1:]))
            face, bary, d2 = (np.concatenate(x) for x in zip(*parts, strict=True))
        return face, bary, np.sqrt(d2)

    return run


def split(cv, cf, p, repeat: int) -> dict[str, float]:
    """Median ms of the serial call's parts."""
    parts: dict[str, list[float]] = {"boxes + cell size": [], "grid build": [], "query": []}
    for _ in range(repeat):
        t0 = time.perf_counter()
        lo, hi, origin, h, dims, entries = transfer._grid_params(cv, cf)
        t1 = time.perf_counter()
        grid = kernels.build_grid(lo, hi, origin, h, dims, entries)
        t2 = time.perf_counter()
        kernels.query_grid(p, cv, cf, lo, hi, 2.0**-40 * float(np.abs(cv).max()), origin, h, dims, *grid)
        t3 = time.perf_counter()
        for k, a, b in zip(parts, (t0, t1, t2), (t1, t2, t3), strict=True):
            parts[k].append(b - a)
    return {k: 1e3 * statistics.median(x) for k, x in parts.items()}


def table(label_head: str, rows, variants: dict, repeat: int, reference: str) -> None:
    """Print one markdown table: per row (label, args) the median ms of each variant and its ratio to
    ``reference``; every variant's result is checked equal to the reference's first."""
    names = list(variants)
    print(f"| {label_head} | " + " | ".join(f"{n} (ms)" for n in names) + " | "
          + " | ".join(f"{n} / {reference}" for n in names if n != reference) + " |")
    print("|---|" + "---:|" * (2 * len(names) - 1))
    for label, args in rows:
        ref = variants[reference](*args)
        for n in names:
            got = variants[n](*args)
            if isinstance(ref, tuple) and all(isinstance(a, np.ndarray) for a in ref):
                assert all(np.array_equal(a, b) for a, b in zip(ref, got, strict=True)), (label, n)
        times: dict[str, list[float]] = {n: [] for n in names}
        for _ in range(repeat):
            for n in names:
                t0 = time.perf_counter()
                variants[n](*args)
                times[n].append(time.perf_counter() - t0)
        med = {k: 1e3 * statistics.median(x) for k, x in times.items()}
        print(f"| {label} | " + " | ".join(f"{med[n]:.2f}" for n in names) + " | "
              + " | ".join(f"{med[n] / med[reference]:.2f}" for n in names if n != reference) + " |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=21)
    ap.add_argument("--baseline", default=None, help="directory holding an older meshkit as meshkit_base")
    args = ap.parse_args()
    variants = {"meshkit": transfer._closest, "serial": threaded(1, 1), "2 threads x 1 chunk": threaded(2, 1),
                "2 threads x 4 chunks": threaded(2, 4)}
    whole = {}
    if args.baseline:
        sys.path.insert(0, args.baseline)
        base_transfer = importlib.import_module("meshkit_base.transfer")
        base_decimate = importlib.import_module("meshkit_base.decimate")
        variants = {"baseline": base_transfer._closest, **variants}
        whole = {"baseline": lambda v, f: base_decimate.decimate(v, f, factor=4),
                 "now": lambda v, f: decimate(v, f, factor=4)}
    for topology in ("bfm", "rows"):
        v, f = face_template(53215, topology=topology)
        d = decimate(v, f, factor=4)
        removed = np.setdiff1d(np.arange(len(v)), d.kept)
        cv, cf, pts = d.vertices, d.faces, v[removed]
        split_ms = split(cv, cf, pts, args.repeat)
        print(f"\n#### {topology}: {len(cv):,} coarse vertices, {len(cf):,} faces; serial split (ms): "
              + ", ".join(f"{k} {t:.2f}" for k, t in split_ms.items()))
        rows = [(f"{n if n else len(pts):,} removed vertices", (cv, cf, pts[:n] if n else pts)) for n in SIZES]
        table("query", rows, variants, args.repeat, "baseline" if args.baseline else "meshkit")
        if whole:
            print()
            table("decimate 53,215 -> 1/4", [(topology, (v, f))], whole, args.repeat, "baseline")
    if args.baseline:  # other callers: points off the surface, a small mesh
        sphere = trimesh.creation.icosphere(subdivisions=3)
        sv, sf = np.asarray(sphere.vertices), np.asarray(sphere.faces, dtype=np.int64)
        rng = np.random.default_rng(0)
        lo, hi = cv.min(0), cv.max(0)
        rows = [("rows 1/4 mesh, 300 random points in its box", (cv, cf, lo + (hi - lo) * rng.random((300, 3)))),
                ("icosphere 642 vertices, 100 normal points", (sv, sf, rng.normal(size=(100, 3)))),
                ("icosphere 642 vertices, 50,000 normal points", (sv, sf, rng.normal(size=(50_000, 3))))]
        print()
        table("closest_points", rows, {"baseline": base_transfer._closest, "meshkit": transfer._closest},
              max(3, args.repeat // 3), "baseline")


if __name__ == "__main__":
    main()
