"""BFM reconstruction: 64 full 53,215-vertex meshes from 199 identity + 29 expression coefficients.

Rows: ``MorphableModel.reconstruct`` (one float32 GEMM over the batch); the naive per-sample
NumPy loop (mean + shape_basis @ a_i + expression_basis @ e_i, float32, one mesh at a time, as
face3d's ``generate_vertices`` does); the same loop in float64 (face3d's arrays before its
float32 cast); torch.matmul float32 on CPU when installed (the training-time peer). Also the
landmark fit (68 points, 40 + 10 coefficients, batch of 64). Memory: model size, output size and
peak RSS. Run: .venv/bin/python benchmarks/bench_bfm.py
"""

import sys
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _runner import Bench, optional, peak_rss_mb  # noqa: E402

from bfm import fit_landmarks  # noqa: E402
from bfm.pose import pose_para_to_image  # noqa: E402
from bfm.synthetic import synthetic_model  # noqa: E402

B = 64


def peak_alloc_mib(fn) -> float:
    """Peak bytes allocated (tracemalloc sees numpy buffers) during one call, MiB."""
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    rss0 = peak_rss_mb()
    m = synthetic_model()  # 53,215 vertices, 199 + 29 (+ 199 texture) components
    rss_model = peak_rss_mb()
    rng = np.random.default_rng(0)
    a = (rng.standard_normal((B, m.n_shape)) * m.shape_std).astype(np.float32)
    e = (rng.standard_normal((B, m.n_expression)) * m.expression_std).astype(np.float32)
    print(f"model: {m}; bases {m._basis.nbytes / 2**20:.0f} MiB float32; output {B} x {m.n_vertices} x 3 float32 = "
          f"{B * m.n_vertices * 12 / 2**20:.1f} MiB")

    def naive32():
        mu, sb, eb = m.mean.reshape(-1), m.shape_basis, m.expression_basis
        return np.stack([(mu + sb @ a[i] + eb @ e[i]).reshape(-1, 3) for i in range(B)])

    sb64, eb64, mu64 = (np.ascontiguousarray(m.shape_basis, np.float64), np.ascontiguousarray(m.expression_basis, np.float64),
                        m.mean.reshape(-1).astype(np.float64))

    def naive64():
        return np.stack([(mu64 + sb64 @ a[i] + eb64 @ e[i]).reshape(-1, 3) for i in range(B)])

    ref = naive32()
    got = m.reconstruct(a, e)
    assert np.abs(got - ref).max() < 1e-3 * np.abs(ref).max(), "reconstruct disagrees with the naive loop"

    bench = Bench(f"BFM reconstruction, {B} meshes x 53,215 vertices, 199 + 29 coefficients")
    t = bench.time("meshkit reconstruct (batched float32 GEMM)", lambda: m.reconstruct(a, e), repeat=10)
    rows = {"meshkit": t}
    rows["naive32"] = bench.time("naive per-sample numpy loop (float32)", naive32, repeat=5)
    rows["naive64"] = bench.time("naive per-sample numpy loop (float64)", naive64, repeat=3)
    torch = optional("torch")
    if torch is not None:
        basis_t = torch.from_numpy(np.array(m._basis))
        mean_t = torch.from_numpy(m.mean.reshape(1, -1))
        coef_t = torch.from_numpy(np.concatenate([a, e], axis=1))
        rows["torch"] = bench.time("torch.matmul float32 (CPU)", lambda: torch.addmm(mean_t, coef_t, basis_t.T), repeat=10)
    else:
        bench.skip("torch.matmul float32 (CPU)", "torch not installed")
    bench.report(reference="meshkit reconstruct (batched float32 GEMM)")
    fns = {"meshkit": lambda: m.reconstruct(a, e), "naive32": naive32, "naive64": naive64}
    print("| impl | meshes/s (median) | peak allocation during the call (MiB) |\n|---|---:|---:|")
    for name, tm in rows.items():
        alloc = f"{peak_alloc_mib(fns[name]):.0f}" if name in fns else "-"
        print(f"| {tm.name} | {B / tm.median:,.0f} | {alloc} |")
    print()

    # landmark fitting, batch of 64 (68 landmarks, 40 + 10 coefficients)
    pp = np.zeros((B, 7))
    pp[:, 1] = rng.uniform(-1.2, 1.2, B)
    pp[:, 3:5] = 225
    pp[:, 6] = 0.0012
    lm = pose_para_to_image(m.reconstruct(a[:, :40], e[:, :10]).astype(np.float64), pp, 450)[:, m.landmarks, :2]
    fb = Bench(f"fit_landmarks, batch of {B} faces (68 2D landmarks, 40 + 10 coefficients, 20 Gauss-Newton steps max)")
    fb.time("meshkit fit_landmarks (batched)", lambda: fit_landmarks(m, lm, image_height=450), repeat=3)
    fb.time("meshkit fit_landmarks, one face at a time", lambda: [fit_landmarks(m, lm[i], image_height=450) for i in range(B)],
            repeat=1)
    fb.report(reference="meshkit fit_landmarks (batched)")
    print(f"peak RSS: {peak_rss_mb():.0f} MiB (before the model {rss0:.0f} MiB, after building it {rss_model:.0f} MiB)")


if __name__ == "__main__":
    main()
