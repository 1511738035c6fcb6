"""300W-LP preprocessing on photo-like synthetic images: cost per stage, samples/s with 1 and 2 workers
(whole job and steady state), worker start-up, bytes per sample per store and image codec, projections
for the full 122,450 samples.

The tree is written by ``bfm.synthetic_300wlp.write_synthetic_300wlp`` (``style="photo"``: textured scene,
hair, clothes, skin texture, sensor noise, JPEG q80; real layout, 450 x 450 JPEG + .mat with 199 + 29
parameters) from ``bfm.synthetic.synthetic_model()`` (53,215 vertices, the BFM's sizes); each distinct
sample is hard-linked ``--replicate`` times under new stems (more samples, cheap to write). Bytes are
measured on the distinct samples only (replicas side by side in one chunk would compress too well).

Sections:

* image statistics: JPEG file size and the 256 x 256 crop's size in each image codec, against the real
  300W-LP figures (30-60 KB per JPEG, 185 KB per crop in the lossless codec);
* stages: CPU milliseconds per sample of each step in one process (``time.process_time``: robust to
  other jobs on the machine), and ``2 workers, CPU-bound`` = 2 x 1000 / (ms per sample of a whole
  block), the rate two free cores would reach;
* start-up: a cold local pool (forkserver, imports, model, warm-up) until both workers answer, in a
  fresh process; ``preprocess`` overlaps it with discovery and store creation;
* throughput: ``preprocess`` wall time, whole job (start-up included) and steady state (the marginal
  rate between a quarter and all of the samples);
* bytes per sample per store and codec, projected to 122,450 samples.

Run: .venv/bin/python benchmarks/bench_w300lp.py [--n-per-subset 8 --replicate 16]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FULL = 122_450


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"


def _cpu_ms(fn, n: int, repeat: int = 2) -> float:
    """Best CPU milliseconds per item of fn() over ``repeat`` runs (fn handles n items)."""
    best = np.inf
    for _ in range(repeat):
        t = time.process_time()
        fn()
        best = min(best, (time.process_time() - t) / n * 1e3)
    return best


_POOL_SCRIPT = """
import os, sys, tempfile, time
t0 = time.perf_counter()
from bfm.synthetic import synthetic_model
from bfm.w300lp import blocks, runners
def main():
    m = synthetic_model()
    t = time.perf_counter()
    spec = blocks.WorkerSpec("bench", blocks.save_model_payload(m, tempfile.mkdtemp()), None, None)
    pool = runners.LocalPool(2, spec)
    ex = pool.executor()
    pids = set()
    while len(pids) < 2:  # until both workers have answered (each busy 20 ms per ping)
        pids |= {f.result() for f in [ex.submit(runners._ping) for _ in range(4)]}
    print(time.perf_counter() - t, len(pids))
    pool.close()
if __name__ == "__main__":
    main()
"""


def stages(root: Path, model, n: int) -> dict:
    """CPU ms per sample of each step, in this process (single-threaded BLAS as in a pool worker)."""
    import imagecodecs
    import numcodecs
    import scipy.io
    from PIL import Image

    from bfm import w300lp
    from bfm.w300lp._kernels import pose_crop
    from bfm.w300lp.blocks import BlockOptions, run_block, warm_up
    from bfm.w300lp.crop import pose_crop_map

    warm_up()
    ss = w300lp.discover(root)[:n]
    out = {}
    out["read .mat (scipy.io.loadmat)"] = _cpu_ms(lambda: [scipy.io.loadmat(str(s.mat)) for s in ss], n)
    raw = [s.image.read_bytes() for s in ss]
    import io

    out["decode JPEG 450x450 (Pillow)"] = _cpu_ms(lambda: [np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in raw], n)
    ds = [w300lp.read_sample(s) for s in ss]
    crops = [w300lp.crop_from_landmarks(d["pt2d"], size=256) for d in ds]
    out["crop 256 (compiled bilinear)"] = _cpu_ms(
        lambda: [w300lp.crop_image(d["image"], c, 256) for d, c in zip(ds, crops, strict=True)], n)
    sp = np.stack([d["shape_para"][:199] for d in ds]).astype(np.float32)
    ep = np.stack([d["exp_para"][:29] for d in ds]).astype(np.float32)
    out["reconstruct (one GEMM per block of 32)"] = _cpu_ms(
        lambda: [model.reconstruct(sp[i:i + 32], ep[i:i + 32]) for i in range(0, n, 32)], n)
    meshes = model.reconstruct(sp, ep)
    maps = np.stack([pose_crop_map(d["pose_para"], c, 450.0)[0] for d, c in zip(ds, crops, strict=True)])
    offs = np.stack([pose_crop_map(d["pose_para"], c, 450.0)[1] for d, c in zip(ds, crops, strict=True)])
    buf = np.empty_like(meshes)
    out["pose + flip + crop (one compiled pass)"] = _cpu_ms(
        lambda: pose_crop(meshes, maps, offs, buf, np.zeros(n), np.zeros(n, bool)), n)
    imgs = np.stack([w300lp.crop_image(d["image"], c, 256) for d, c in zip(ds, crops, strict=True)])
    out["encode crop: JPEG q95 (imagecodecs)"] = _cpu_ms(
        lambda: [imagecodecs.jpeg8_encode(x, level=95, subsampling="444") for x in imgs], n)
    out["encode crop: lossless (zstd)"] = _cpu_ms(lambda: numcodecs.Zstd(level=0).encode(imgs.tobytes()), n)
    out["encode vertices (Blosc lz4 + shuffle)"] = _cpu_ms(
        lambda: numcodecs.Blosc(cname="lz4", clevel=5, shuffle=1).encode(buf.tobytes()), n)
    tmp = Path(tempfile.mkdtemp(prefix="bench_stage_"))
    try:
        for mode in ("params", "vertices"):
            opts = BlockOptions(256, 1.5, mode, "float32", model.n_shape, model.n_expression)
            store = tmp / f"{mode}.zarr"
            w300lp.preprocess(root, store, model=model, store=mode, workers=1, limit=n, progress=False)
            from bfm.w300lp import blocks

            blocks._LOADED["stage"] = (model, ())
            out[f"whole block, store={mode}, JPEG crops (read .. write)"] = _cpu_ms(
                lambda store=store, opts=opts: [run_block("stage", str(store), i // 32, i, ss[i:i + 32], opts)
                                                for i in range(0, n, 32)], n)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-per-subset", type=int, default=8, help="distinct samples per subset (x4 subsets x2 flips)")
    ap.add_argument("--replicate", type=int, default=16, help="hard-link each sample this many times")
    args = ap.parse_args()
    for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # as in a pool worker
        os.environ.setdefault(k, "1")

    import numcodecs

    from bfm import w300lp
    from bfm.synthetic import synthetic_model
    from bfm.synthetic_300wlp import write_synthetic_300wlp

    print(f"load average at start: {_load()} (2 cores)\n")
    tmp = Path(tempfile.mkdtemp(prefix="bench_w300lp_"))
    try:
        model = synthetic_model()
        orig, root = tmp / "orig" / "300W_LP", tmp / "300W_LP"
        t0 = time.perf_counter()
        write_synthetic_300wlp(orig, model, n_per_subset=args.n_per_subset, seed=0)
        dt = time.perf_counter() - t0
        distinct = w300lp.discover(orig)
        for s in distinct:
            for r in range(args.replicate):
                for src in (s.image, s.mat):
                    dst = root / src.parent.name / f"{src.stem}_r{r}{src.suffix}"
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    os.link(src, dst)
        n, n_orig = len(w300lp.discover(root)), len(distinct)
        print(f"synthetic tree: {n_orig} distinct photo-style samples written in {dt:.1f} s "
              f"({dt / n_orig:.2f} s each), x{args.replicate} = {n} samples; model {model.n_vertices} vertices, "
              f"{model.n_shape} + {model.n_expression} components\n")

        # -- image statistics
        import imagecodecs

        crops = []
        for s in distinct:
            d = w300lp.read_sample(s)
            crops.append(w300lp.crop_image(d["image"], w300lp.crop_from_landmarks(d["pt2d"], size=256), 256))
        crops = np.stack(crops)
        print("## image statistics (per image; distinct samples)\n")
        print("| measure | synthetic (photo) | real 300W-LP |\n|---|---:|---:|")
        print(f"| JPEG file 450x450 (KB) | {np.mean([s.image.stat().st_size for s in distinct]) / 1e3:.1f} | 30-60 |")
        zs = np.mean([len(numcodecs.Zstd(level=0).encode(crops[i:i + 32].tobytes())) for i in range(0, n_orig, 32)])
        print(f"| 256x256 crop, lossless store codec (zstd), KB | {zs / min(32, n_orig) / 1e3:.1f} | 185 |")
        for q in (90, 95):
            j = np.mean([len(imagecodecs.jpeg8_encode(c, level=q, subsampling="444")) for c in crops])
            print(f"| 256x256 crop, JPEG q{q} 4:4:4 (KB) | {j / 1e3:.1f} | |")
        rt = np.stack([imagecodecs.jpeg8_decode(imagecodecs.jpeg8_encode(c, level=95, subsampling="444")) for c in crops])
        err = rt.astype(float) - crops
        print(f"\nJPEG q95 round trip of the crops: mean |error| {np.abs(err).mean():.2f} levels, RMS "
              f"{np.sqrt((err ** 2).mean()):.2f}, PSNR {10 * np.log10(255 ** 2 / (err ** 2).mean()):.1f} dB\n")

        # -- stages
        print("## CPU ms per sample by stage (one process, one BLAS thread)\n")
        st = stages(root, model, min(n, 256))
        print("| stage | CPU ms/sample |\n|---|---:|")
        for k, v in st.items():
            print(f"| {k} | {v:.2f} |")
        for mode in ("params", "vertices"):
            v = st[f"whole block, store={mode}, JPEG crops (read .. write)"]
            print(f"| => 2 workers, CPU-bound, store={mode} | {2000 / v:.0f} samples/s |")

        # -- start-up
        r = subprocess.run([sys.executable, "-c", _POOL_SCRIPT], capture_output=True, text=True, check=True)
        t_pool, n_pids = r.stdout.split()
        print(f"\ncold local pool (forkserver + imports + model + warm-up, {n_pids} workers answering): "
              f"{float(t_pool):.2f} s (overlapped by preprocess with discovery and store creation)\n")

        # -- throughput
        print(f"## preprocess wall time, {n} samples, crop 256, blocks of 32, JPEG crops (load {_load()})\n")
        print("| run | seconds | samples/s | projected 122,450 (min) |\n|---|---:|---:|---:|")
        rates = {}
        for mode in ("params", "vertices"):
            for workers in (1, 2):
                out = tmp / f"{mode}{workers}.zarr"
                t0 = time.perf_counter()
                w300lp.preprocess(root, out, model=model, store=mode, workers=workers, progress=False)
                t = time.perf_counter() - t0
                shutil.rmtree(out, ignore_errors=True)
                print(f"| store={mode}, {workers} worker{'s' if workers > 1 else ''}, whole job | {t:.2f} | {n / t:.0f} | "
                      f"{FULL / (n / t) / 60:.1f} |", flush=True)
            ts = []
            for k in (n // 4, n):
                out = tmp / f"marg_{mode}_{k}.zarr"
                t0 = time.perf_counter()
                w300lp.preprocess(root, out, model=model, store=mode, workers=2, limit=k, progress=False)
                ts.append(time.perf_counter() - t0)
                shutil.rmtree(out, ignore_errors=True)
            rates[mode] = (n - n // 4) / max(ts[1] - ts[0], 1e-9)
            print(f"| store={mode}, 2 workers, steady state (marginal {n // 4} -> {n}) | | {rates[mode]:.0f} | "
                  f"{FULL / rates[mode] / 60:.1f} |", flush=True)
        print(f"\n(load average after: {_load()})\n")

        # -- bytes
        print("## bytes per sample on disk (distinct samples) and projection for 122,450\n")
        print("| store | image codec | bytes/sample | of which images | projected 122,450 (GB) |\n|---|---|---:|---:|---:|")
        for mode in ("params", "vertices"):
            for codec in ("jpeg", "lossless"):
                out = tmp / f"bytes_{mode}_{codec}.zarr"
                w300lp.preprocess(orig, out, model=model, store=mode, workers=1, image_codec=codec, progress=False)
                b, bi = _du(out) / n_orig, _du(out / "images") / n_orig
                print(f"| {mode} | {codec}{' q95' if codec == 'jpeg' else ''} | {b:,.0f} | {bi:,.0f} | {b * FULL / 1e9:.1f} |")
                shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
