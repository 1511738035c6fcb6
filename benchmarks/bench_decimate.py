"""Decimation and transfer benchmarks on the 53,215-vertex face template.

Tables:
1. one QEM decimation to 1/4 (53215 -> 13304): meshkit (with down/up) vs fast-simplification and
   pyfqmr (C++, no matrices, asked for the same face count), plus meshkit's parts; the same on a
   noisy 40,962-vertex icosphere (vertices in subdivision order, less cache-friendly);
2. the CoMA chain 53215 -> 13304 -> 3326 -> 832 -> 208 -> 52;
3. exact closest points of the 53,215 fine vertices on the 13,304-vertex coarse mesh: meshkit vs
   libigl's AABB tree (C++) and trimesh (on a subset);
4. the cold JIT compile (fresh process, empty numba cache) reported on its own.

Run: ``.venv/bin/python benchmarks/bench_decimate.py``
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from _runner import Bench, optional

from meshkit.decimate import decimate
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


def cold_compile() -> tuple[float, float]:
    """First decimate() call in a fresh process with an empty numba cache, and the second call."""
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, NUMBA_CACHE_DIR=d)
        out = subprocess.run([sys.executable, "-c", _COLD], env=env, capture_output=True, text=True, check=True)
    first, second = map(float, out.stdout.split())
    return first, second


def main() -> None:
    v, f = face_template()
    n = len(v)
    target = int(np.ceil(n / 4))
    print(f"face template: {n} vertices, {len(f)} faces; target {target}\n")

    d = decimate(v, f, factor=4)
    n_faces = len(d.faces)

    # --- 1. one decimation to 1/4
    b = Bench(f"QEM decimation 53,215 -> {target} vertices (face template, {len(f)} faces)")
    b.time("meshkit decimate (with down + up)", lambda: decimate(v, f, factor=4), repeat=7,
           note=f"exact {target} vertices, {n_faces} faces")
    fs = optional("fast_simplification")
    if fs is not None:
        cv, _ = fs.simplify(v, f, target_count=n_faces)
        b.time("fast-simplification", lambda: fs.simplify(v, f, target_count=n_faces), repeat=7,
               note=f"{len(cv)} vertices, no matrices")
    else:
        b.skip("fast-simplification", "not installed")
    pyfqmr = optional("pyfqmr")
    if pyfqmr is not None:
        def run_fqmr():
            s = pyfqmr.Simplify()
            s.setMesh(v, f)
            s.simplify_mesh(target_count=n_faces, verbose=False)
            return s.getMesh()

        cv = run_fqmr()[0]
        b.time("pyfqmr", run_fqmr, repeat=7, note=f"{len(cv)} vertices, no matrices")
    else:
        b.skip("pyfqmr", "not installed")
    # meshkit's parts
    from meshkit._kernels import decimate as _k
    from meshkit.decimate import BOUNDARY_WEIGHT, EPS_DEGENERATE, MIN_COS, MIN_QUALITY, _check_input

    lo, hi = v.min(0), v.max(0)
    p = (v - 0.5 * (lo + hi)) / np.linalg.norm(hi - lo)
    b.time("  part: input checks (manifold, degenerate)", lambda: _check_input(v, f), repeat=7)
    b.time("  part: collapse kernel",
           lambda: _k.qem_decimate(p, f, target, BOUNDARY_WEIGHT, MIN_COS, EPS_DEGENERATE, MIN_QUALITY), repeat=7)
    rem = np.setdiff1d(np.arange(n), d.kept)
    cv, cf = np.array(d.vertices), np.array(d.faces)
    b.time("  part: up (closest points of the removed vertices)", lambda: barycentric_transfer(cv, cf, v[rem]), repeat=7)
    b.report(reference="meshkit decimate (with down + up)")

    # --- 1b. a less friendly mesh: noisy icosphere, vertices in subdivision order (poor locality)
    trimesh = optional("trimesh")
    if trimesh is not None:
        m = trimesh.creation.icosphere(subdivisions=6)
        rng = np.random.default_rng(0)
        sv = np.asarray(m.vertices) * (1 + 0.002 * rng.standard_normal((len(m.vertices), 1)))
        sf = np.asarray(m.faces, dtype=np.int64)
        ds = decimate(sv, sf, factor=4)
        bs = Bench(f"QEM decimation, noisy icosphere {len(sv)} -> {len(ds.vertices)} vertices ({len(sf)} faces)")
        bs.time("meshkit decimate (with down + up)", lambda: decimate(sv, sf, factor=4), repeat=7)
        if fs is not None:
            cv2, _ = fs.simplify(sv, sf, target_count=len(ds.faces))
            bs.time("fast-simplification", lambda: fs.simplify(sv, sf, target_count=len(ds.faces)), repeat=7,
                    note=f"{len(cv2)} vertices, no matrices")
        if pyfqmr is not None:
            def run_fqmr_sphere():
                s = pyfqmr.Simplify()
                s.setMesh(sv, sf)
                s.simplify_mesh(target_count=len(ds.faces), verbose=False)
                return s.getMesh()

            bs.time("pyfqmr", run_fqmr_sphere, repeat=7, note=f"{len(run_fqmr_sphere()[0])} vertices, no matrices")
        bs.report(reference="meshkit decimate (with down + up)")

    # --- 2. the chain
    def chain():
        cur_v, cur_f = v, f
        counts = [len(cur_v)]
        for _ in range(5):
            dd = decimate(cur_v, cur_f, factor=4)
            cur_v, cur_f = dd.vertices, dd.faces
            counts.append(len(cur_v))
        return counts

    counts = chain()
    b2 = Bench("CoMA chain " + " -> ".join(map(str, counts)) + " (5 decimations with down + up)")
    b2.time("meshkit", chain, repeat=5)
    b2.report(reference="meshkit")

    # --- 3. closest points / transfer
    b3 = Bench(f"exact closest points: {n} points on the {len(cv)}-vertex, {len(cf)}-face coarse mesh")
    b3.time("meshkit closest_points", lambda: closest_points(cv, cf, v), repeat=7)
    b3.time("meshkit barycentric_transfer", lambda: barycentric_transfer(cv, cf, v), repeat=7)
    igl = optional("igl")
    if igl is not None:
        b3.time("libigl point_mesh_squared_distance (AABB)", lambda: igl.point_mesh_squared_distance(v, cv, cf), repeat=7)
    else:
        b3.skip("libigl", "not installed")
    if trimesh is not None:
        tm = trimesh.Trimesh(cv, cf, process=False)
        sub = v[:: max(1, n // 2000)]
        t0 = time.perf_counter()
        trimesh.proximity.closest_point(tm, sub)
        dt = (time.perf_counter() - t0) * n / len(sub)
        b3.skip("trimesh.proximity.closest_point", f"{len(sub)} points took {dt * len(sub) / n:.2f} s, ~{dt:.1f} s scaled to {n}")
    b3.report(reference="meshkit closest_points")

    # --- 4. cold JIT
    first, second = cold_compile()
    print("## JIT compile (fresh process, empty numba cache)\n")
    print(f"first decimate() call on face_template(2000), compile included: {first:.2f} s; second call: {second * 1000:.1f} ms\n")


if __name__ == "__main__":
    main()
