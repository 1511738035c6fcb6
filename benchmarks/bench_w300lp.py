"""300W-LP preprocessing throughput: samples/s on 2 cores for both store modes, peak memory, bytes
per sample, projected time for the full 122,450 samples.

A synthetic 300W-LP tree (real layout, 450 x 450 JPEGs, .mat files with 199 + 29 parameters) is
written from ``bfm.synthetic.synthetic_model()`` (53,215 vertices, 199 + 29 components, the BFM's
sizes). Rows:

* ``one-at-a-time``: the face3d-script way (one process, one sample at a time, one .npz per
  sample: read, reconstruct one mesh, pose, crop, save) - the peer.
* ``meshkit 1 worker`` / ``meshkit 2 workers``: ``bfm.w300lp.preprocess`` into the zarr store
  (blocks of 32, one GEMM per block), ``store="vertices"`` and ``store="params"``.

Each timed call writes a fresh store (process-pool start-up included: it is paid once per job).
Peak memory: each configuration is re-run in a fresh subprocess at N and 2N samples, and the peak
resident set of the job and of its largest worker are read from getrusage; flat = does not grow
with N.

Run: .venv/bin/python benchmarks/bench_w300lp.py [--n-per-subset 16]
     .venv/bin/python benchmarks/bench_w300lp.py uvmap   (``bench_uvmap``: store="uvmap" beside "vertices")
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _runner import Bench  # noqa: E402

FULL = 122_450


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _one_at_a_time(root: Path, out: Path, model) -> None:
    from bfm import w300lp

    out.mkdir(parents=True, exist_ok=True)
    for s in w300lp.discover(root):
        arrays, _ = w300lp.process_samples(model, [s], size=256)
        np.savez(out / (s.id.replace("/", "__") + ".npz"), **{k: v[0] for k, v in arrays.items()})


_MEM_SCRIPT = """
import json, os, resource, sys, threading, time
from bfm import w300lp
from bfm.synthetic import synthetic_model

peak = {}
stop = threading.Event()

def descendants(root):
    kids = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as fh:
                    kids.setdefault(int(fh.read().rsplit(")", 1)[1].split()[1]), []).append(int(p))
            except OSError:
                pass
    out, todo = [], [root]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out

def sample():  # peak RSS (VmHWM) of every descendant process: the pool workers and the forkserver
    while not stop.is_set():
        for pid in descendants(os.getpid()):
            try:
                with open(f"/proc/{pid}/status") as fh:
                    for line in fh:
                        if line.startswith("VmHWM"):
                            peak[pid] = max(peak.get(pid, 0), int(line.split()[1]) / 1024)
            except OSError:
                pass
        time.sleep(0.1)

m = synthetic_model()
threading.Thread(target=sample, daemon=True).start()
t = time.perf_counter()
s = w300lp.preprocess(sys.argv[1], sys.argv[2], model=m, workers=2, store=sys.argv[3], limit=int(sys.argv[4]),
                      block_size=32, progress=False)
dt = time.perf_counter() - t
stop.set()
print(json.dumps({"self_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "worker_mb": max(peak.values(), default=0.0), "n": s.processed, "seconds": dt}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-per-subset", type=int, default=16, help="samples per subset (x4 subsets x2 flips)")
    ap.add_argument("--replicate", type=int, default=8, help="hard-link each sample this many times (more samples, "
                    "cheap to write)")
    args = ap.parse_args()

    from bfm import w300lp
    from bfm.synthetic import synthetic_model
    from bfm.synthetic_300wlp import write_synthetic_300wlp

    tmp = Path(tempfile.mkdtemp(prefix="bench_w300lp_"))
    try:
        model = synthetic_model()
        orig, root = tmp / "orig" / "300W_LP", tmp / "300W_LP"
        t0 = time.perf_counter()
        write_synthetic_300wlp(orig, model, n_per_subset=args.n_per_subset, seed=0)
        for s in w300lp.discover(orig):  # replicas under new stems (hard links: same bytes, new ids)
            for r in range(args.replicate):
                for src in (s.image, s.mat):
                    dst = root / src.parent.name / f"{src.stem}_r{r}{src.suffix}"
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    os.link(src, dst)
        n = len(w300lp.discover(root))
        n_orig = len(w300lp.discover(orig))
        print(f"synthetic tree: {n} samples (450x450 JPEG + .mat) written in {time.perf_counter() - t0:.1f} s; "
              f"model {model.n_vertices} vertices, {model.n_shape} + {model.n_expression} components\n")

        rates, sizes, marginal, startup = {}, {}, {}, {}
        for mode in ("vertices", "params"):
            b = Bench(f"300W-LP -> store={mode}, {n} samples, crop 256 (seconds per job; lower is better)")
            if mode == "vertices":
                peer = tmp / "peer"

                def run_peer(peer=peer):
                    shutil.rmtree(peer, ignore_errors=True)
                    _one_at_a_time(root, peer, model)

                t = b.time("one-at-a-time (face3d-style script)", run_peer, repeat=1)
                rates["one-at-a-time"] = n / t.median
                sizes["one-at-a-time (npz)"] = _du(peer) / n  # np.savez: uncompressed
            for workers in (1, 2):
                out = tmp / f"{mode}{workers}.zarr"

                def run(out=out, workers=workers, mode=mode):
                    shutil.rmtree(out, ignore_errors=True)
                    w300lp.preprocess(root, out, model=model, store=mode, workers=workers, block_size=32, progress=False)

                t = b.time(f"meshkit {workers} worker{'s' if workers > 1 else ''}", run, repeat=1)
                rates[f"{mode} {workers}w"] = n / t.median
            # bytes on the distinct samples only (replicas side by side in a chunk compress too well)
            out = tmp / f"bytes_{mode}.zarr"
            w300lp.preprocess(orig, out, model=model, store=mode, workers=1, block_size=32, progress=False)
            sizes[f"store={mode}"] = _du(out) / n_orig
            b.report(reference="meshkit 2 workers")
            # steady state: the marginal rate between a quarter and all of the samples, 2 workers
            # (pool start-up and the model's transfer to the workers cancel out)
            ts = []
            for k in (n // 4, n):
                out = tmp / f"marg_{mode}_{k}.zarr"
                t0 = time.perf_counter()
                w300lp.preprocess(root, out, model=model, store=mode, workers=2, block_size=32, limit=k, progress=False)
                ts.append(time.perf_counter() - t0)
                shutil.rmtree(out, ignore_errors=True)
            marginal[mode] = (n - n // 4) / (ts[1] - ts[0])
            startup[mode] = max(0.0, ts[0] - (n // 4) / marginal[mode])

        print("## throughput and projection for 122,450 samples\n")
        print("| run | samples/s | projected 122,450 (min) |\n|---|---:|---:|")
        for k, r in rates.items():
            print(f"| {k} (whole job, {n} samples) | {r:.1f} | {FULL / r / 60:.1f} |")
        for k, r in marginal.items():
            print(f"| {k} 2w steady state (marginal; start-up {startup[k]:.1f} s once) | {r:.1f} | "
                  f"{(startup[k] + FULL / r) / 60:.1f} |")
        print("\n## bytes per sample on disk\n")
        print("| output | bytes/sample | projected 122,450 (GB) |\n|---|---:|---:|")
        for k, v in sizes.items():
            print(f"| {k} | {v:,.0f} | {v * FULL / 1e9:.1f} |")

        print("\n## peak memory (fresh process per run, 2 workers)\n")
        print("| store | samples | job peak RSS (MB) | largest worker peak RSS (MB) | samples/s |\n|---|---:|---:|---:|---:|")
        for mode in ("vertices", "params"):
            for k in (n // 4, n):
                out = tmp / f"mem_{mode}_{k}.zarr"
                r = subprocess.run([sys.executable, "-c", _MEM_SCRIPT, str(root), str(out), mode, str(k)],
                                   capture_output=True, text=True, check=True)
                d = json.loads(r.stdout.strip().splitlines()[-1])
                print(f"| {mode} | {d['n']} | {d['self_mb']:.0f} | {d['worker_mb']:.0f} | {d['n'] / d['seconds']:.1f} |",
                      flush=True)
                shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# 300W-LP uvmap: store="uvmap" (PRNet position maps, optionally UV textures) against store="vertices"


def bench_uvmap(n_per_subset: int = 8, replicate: int = 16, workers: int = 2) -> None:
    """samples/s and bytes/sample of store="uvmap" (256² position maps; with and without UV textures)
    beside store="vertices", same tree, same model, 2 workers, marginal (steady state) rates."""
    from bfm import w300lp
    from bfm.synthetic import synthetic_model
    from bfm.synthetic_300wlp import write_synthetic_300wlp
    from meshkit.synthetic import template_uv

    tmp = Path(tempfile.mkdtemp(prefix="bench_w300lp_uvmap_"))
    try:
        model = synthetic_model()
        uv = template_uv(model.mean)
        orig, root = tmp / "orig" / "300W_LP", tmp / "300W_LP"
        write_synthetic_300wlp(orig, model, n_per_subset=n_per_subset, seed=0)
        for s in w300lp.discover(orig):
            for r in range(replicate):
                for src in (s.image, s.mat):
                    dst = root / src.parent.name / f"{src.stem}_r{r}{src.suffix}"
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    os.link(src, dst)
        n, n_orig = len(w300lp.discover(root)), len(w300lp.discover(orig))
        runs = {"vertices": {"store": "vertices"}, "uvmap": {"store": "uvmap", "uv": uv},
                "uvmap + texture": {"store": "uvmap", "uv": uv, "uv_texture": True}}
        print(f"## 300W-LP uvmap: {n} samples, crop 256, maps 256², {workers} workers, model {model.n_vertices} "
              f"vertices\n")
        # steady state: the marginal rate between n/4 and n samples (pool start-up and the model's transfer
        # cancel out); the configurations interleaved, best of 2 (the machine is shared)
        best: dict = {}
        for _ in range(2):
            for name, kw in runs.items():
                for k in (n // 4, n):
                    out = tmp / "s.zarr"
                    shutil.rmtree(out, ignore_errors=True)
                    t0 = time.perf_counter()
                    w300lp.preprocess(root, out, model=model, workers=workers, block_size=32, limit=k, progress=False,
                                      **kw)
                    best[name, k] = min(best.get((name, k), np.inf), time.perf_counter() - t0)
        print("| store | whole job samples/s | steady samples/s | bytes/sample |\n|---|---:|---:|---:|")
        for name, kw in runs.items():
            steady = (n - n // 4) / (best[name, n] - best[name, n // 4])
            out = tmp / "bytes.zarr"  # bytes on the distinct samples only (replicas compress too well)
            shutil.rmtree(out, ignore_errors=True)
            w300lp.preprocess(orig, out, model=model, workers=1, block_size=32, progress=False, **kw)
            print(f"| {name} | {n / best[name, n]:.1f} | {steady:.1f} | {_du(out) / n_orig:,.0f} |", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["uvmap"]:  # .venv/bin/python benchmarks/bench_w300lp.py uvmap
        bench_uvmap()
    else:
        main()
