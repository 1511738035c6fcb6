"""torch add-ons: the published spiral decoder forward + backward at batch 16 on CPU, and Pool / ChebConv
against a dense reference and a gather + scatter-add implementation.

Operators: the real 6-level hierarchy of the synthetic 53,215-vertex face template
(``sampling.build_hierarchy(face_template(), spiral_length=19)``: 53215 -> 13304 -> 3326 -> 832 ->
208 -> 52), built once and timed separately. Peers (no SpiralNet++ / CoMA / PyG install here, so the
peers are written in this file; ``Pool`` applies a 0/1 selection ``down`` as a row gather and any
other matrix as a CSR product, the note column says which): "dense" multiplies by the operator as a dense torch matrix (skipped
where that matrix would exceed 1 GiB); "gather+scatter" is SpiralNet++'s pooling scheme
(index_select the source rows, scale by the weights, index_add into the output rows).

Run: .venv/bin/python benchmarks/bench_nn.py
"""

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _runner import Bench, peak_rss_mb  # noqa: E402

from meshkit.nn import ChebConv, Pool, SpiralDecoder  # noqa: E402
from meshkit.synthetic import face_template  # noqa: E402
from sampling import build_hierarchy  # noqa: E402

B = 16
torch.manual_seed(0)


def fwd_bwd(module, x):
    def run():
        x.grad = None
        module.zero_grad(set_to_none=True)
        y = module(x)
        y.square().mean().backward()

    return run


class DenseOp(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.register_buffer("m", torch.tensor(m.toarray(), dtype=torch.float32))

    def forward(self, x):
        return torch.einsum("ij,bjc->bic", self.m, x)


class ScatterPool(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        c = m.tocoo()
        self.n_out = m.shape[0]
        self.register_buffer("row", torch.from_numpy(c.row.astype(np.int64)))
        self.register_buffer("col", torch.from_numpy(c.col.astype(np.int64)))
        self.register_buffer("val", torch.from_numpy(c.data.astype(np.float32)))

    def forward(self, x):
        src = x.index_select(1, self.col) * self.val[None, :, None]
        out = x.new_zeros(x.shape[0], self.n_out, x.shape[2])
        return out.index_add(1, self.row, src)


class DenseCheb(torch.nn.Module):
    """T_k recurrence with a dense Laplacian; same weights as the ChebConv it copies."""

    def __init__(self, conv, lap):
        super().__init__()
        self.register_buffer("lap", torch.tensor(lap.toarray(), dtype=torch.float32))
        self.weight = torch.nn.Parameter(conv.weight.detach().clone())
        self.bias = torch.nn.Parameter(conv.bias.detach().clone())

    def forward(self, x):
        t0, t1 = x, torch.einsum("ij,bjc->bic", self.lap, x)
        y = t0 @ self.weight[0] + t1 @ self.weight[1]
        for k in range(2, self.weight.shape[0]):
            t0, t1 = t1, 2 * torch.einsum("ij,bjc->bic", self.lap, t1) - t0
            y = y + t1 @ self.weight[k]
        return y + self.bias


def dense_ok(shape) -> bool:
    return shape[0] * shape[1] * 4 <= 2**30


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {B}\n")
    v, f = face_template()
    t0 = time.perf_counter()
    h = build_hierarchy(v, f, spiral_length=19)
    print(f"hierarchy built in {time.perf_counter() - t0:.2f} s: levels {[lv.n_vertices for lv in h.levels]}\n")

    # ---- the published decoder
    dec = SpiralDecoder.from_hierarchy(h, latent_dim=256)
    n_par = sum(p.numel() for p in dec.parameters())
    z = torch.randn(B, 256, requires_grad=True)
    b = Bench(f"SpiralDecoder (published layout, {n_par / 1e6:.2f} M params), batch {B}, CPU float32")
    with torch.no_grad():
        b.time("forward only (no_grad)", lambda: dec(z), repeat=5)
    b.time("forward + backward", fwd_bwd(dec, z), repeat=5)
    b.report(reference="forward + backward")

    # ---- Pool
    for name, m in (("up[0] 13304 -> 53215", h.up[0]), ("up[1] 3326 -> 13304", h.up[1]),
                    ("down[0] 53215 -> 13304", h.down[0]), ("up[2] 832 -> 3326", h.up[2])):
        c = 16
        x = torch.randn(B, m.shape[1], c, requires_grad=True)
        b = Bench(f"Pool {name} (nnz {m.nnz}), batch {B} x {c} channels, forward + backward")
        pool = Pool(m)
        b.time("meshkit Pool", fwd_bwd(pool, x), repeat=30,
               note="row gather (0/1 selection)" if pool.is_selection else "CSR sparse-dense product")
        b.time("gather + scatter-add (SpiralNet++ scheme)", fwd_bwd(ScatterPool(m), x), repeat=30)
        if dense_ok(m.shape):
            b.time("dense matmul", fwd_bwd(DenseOp(m), x), repeat=10)
        else:
            gib = m.shape[0] * m.shape[1] * 4 / 2**30
            b.skip("dense matmul", f"dense matrix {m.shape[0]}x{m.shape[1]} float32 = {gib:.1f} GiB")
        b.report(reference="meshkit Pool")

    # ---- ChebConv K = 6 (CoMA)
    for lvl in (2, 1):
        lap = h.levels[lvl].laplacian
        n = lap.shape[0]
        conv = ChebConv(16, 16, lap, 6)
        x = torch.randn(B, n, 16, requires_grad=True)
        b = Bench(f"ChebConv K=6, 16 -> 16 channels, level {lvl} ({n} vertices, nnz {lap.nnz}), batch {B}, forward + backward")
        b.time("meshkit ChebConv (CSR)", fwd_bwd(conv, x), repeat=30)
        if dense_ok(lap.shape):
            dense = DenseCheb(conv, lap)
            with torch.no_grad():
                err = (dense(x) - conv(x)).abs().max().item()
            b.time("dense Laplacian", fwd_bwd(dense, x), repeat=3, note=f"max |diff| {err:.1e}")
        else:
            b.skip("dense Laplacian", "dense matrix > 1 GiB")
        b.report(reference="meshkit ChebConv (CSR)")
    print(f"peak RSS {peak_rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
