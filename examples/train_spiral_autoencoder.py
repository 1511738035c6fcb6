"""Train a SpiralNet++-style mesh autoencoder on synthetic faces for a few epochs on CPU.

Faces (``--source store``, the default) come from a synthetic preprocessed 300W-LP store: a small
synthetic 300W-LP tree is written (``bfm.synthetic_300wlp``, no flipped copies so that no identity
is in both splits), preprocessed into a parameter store (``bfm.w300lp.preprocess(store="params")``),
and each sample's mesh is rebuilt in model space from its stored ``shape_para`` / ``exp_para``
(300W-LP raw units). ``--source model`` instead draws coefficients directly from the synthetic
morphable model (standard-deviation units). The multi-resolution operators come from
``sampling.build_hierarchy`` on the model's mean mesh. Vertices are centred on the mean face and
scaled by one global standard deviation for training; errors are reported in millimetres (BFM units
are micrometres). A plot of the training loss and the held-out mean per-vertex error is saved as PNG.

Runs in well under 2 minutes on 2 CPU cores with the defaults:

    .venv/bin/python examples/train_spiral_autoencoder.py --out spiral_ae.png
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vertices", type=int, default=2000, help="vertices of the synthetic face (default 2000)")
    ap.add_argument("--source", choices=("store", "model"), default="store",
                    help="faces from a synthetic preprocessed 300W-LP store, or drawn from the model")
    ap.add_argument("--train", type=int, default=384, help="training faces")
    ap.add_argument("--test", type=int, default=96, help="held-out faces")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--latent", type=int, default=16)
    ap.add_argument("--channels", type=int, nargs=3, default=(16, 16, 32), help="encoder widths per level")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="spiral_autoencoder.png", help="output plot (PNG)")
    args = ap.parse_args(argv)

    import torch

    from bfm.synthetic import synthetic_model
    from meshkit.nn import SpiralAutoencoder, vertex_distance_loss, vertex_l1_loss
    from sampling import build_hierarchy

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    model = synthetic_model(args.vertices, 40, 10, 10, seed=args.seed)
    h = build_hierarchy(model.mean, model.triangles, factors=(4, 4, 4), spiral_length=9)
    print(f"model + hierarchy {[lvl.n_vertices for lvl in h.levels]} in {time.perf_counter() - t0:.1f} s")

    n = args.train + args.test
    if args.source == "model":
        faces = model.reconstruct(rng.normal(size=(n, model.n_shape)), rng.normal(size=(n, model.n_expression)),
                                  units="std")
    else:
        import tempfile
        from pathlib import Path

        from bfm.synthetic_300wlp import write_synthetic_300wlp
        from bfm.w300lp import open_store, preprocess

        with tempfile.TemporaryDirectory() as tmp:
            root, store = Path(tmp) / "300W_LP", Path(tmp) / "store"
            per_subset = -(-n // 4)  # 4 subsets
            write_synthetic_300wlp(root, model, n_per_subset=per_subset, flips=False, image_size=128, face_px=60.0,
                                   seed=args.seed)
            preprocess(root, store, model=model, size=64, store="params", workers=1, progress=False)
            g = open_store(store)
            shape_para, exp_para = np.asarray(g["shape_para"][:n]), np.asarray(g["exp_para"][:n])
        faces = model.reconstruct(shape_para, exp_para, units="raw")
        print(f"{len(faces)} faces from a synthetic preprocessed store ({time.perf_counter() - t0:.1f} s)")
        if len(faces) < n:
            raise SystemExit(f"the store holds {len(faces)} samples, fewer than --train + --test = {n}")
    mean = model.mean.astype(np.float32)
    scale = float((faces - mean).std())
    data = torch.tensor((faces - mean) / scale, dtype=torch.float32)
    train, test = data[: args.train], data[args.train:]
    mm = scale / 1000.0  # normalised units -> millimetres

    net = SpiralAutoencoder.from_hierarchy(h, channels=tuple(args.channels), latent_dim=args.latent)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
    losses, errors = [], []

    def test_error():
        net.eval()
        with torch.no_grad():
            return vertex_distance_loss(net(test), test).item() * mm

    errors.append(test_error())
    print(f"epoch 0: held-out mean vertex error {errors[-1]:.3f} mm")
    for epoch in range(1, args.epochs + 1):
        net.train()
        perm = torch.randperm(args.train)
        total = 0.0
        for i in range(0, args.train, args.batch):
            x = train[perm[i:i + args.batch]]
            opt.zero_grad()
            loss = vertex_l1_loss(net(x), x)
            loss.backward()
            opt.step()
            total += loss.item() * len(x)
        sched.step()
        losses.append(total / args.train)
        errors.append(test_error())
        print(f"epoch {epoch}: train L1 {losses[-1]:.4f}, held-out mean vertex error {errors[-1]:.3f} mm "
              f"({time.perf_counter() - t0:.0f} s)")

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    a1, a2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    a1.plot(range(1, args.epochs + 1), losses, marker="o")
    a1.set_xlabel("epoch")
    a1.set_ylabel("training L1 (normalised units)")
    a1.set_yscale("log")
    a1.set_title("loss")
    a2.plot(range(0, args.epochs + 1), errors, marker="o", color="C1")
    a2.set_xlabel("epoch")
    a2.set_ylabel("mean per-vertex error (mm)")
    a2.set_title(f"held-out error ({args.test} faces)")
    for a in (a1, a2):
        a.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out, format="png")
    print(f"wrote {args.out}; error {errors[0]:.3f} -> {errors[-1]:.3f} mm in {time.perf_counter() - t0:.0f} s")
    return 0 if errors[-1] < errors[0] else 1


if __name__ == "__main__":
    raise SystemExit(main())
