"""The `meshkit hierarchy` subcommand and its demo step (a plugin of ``meshkit.cli``).

``add_commands(subparsers)`` declares the subcommand; ``DEMO_STEPS`` are run by ``meshkit demo``
after the core's steps (``DEMO_STAGE`` 1: it builds on the template).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from meshkit.commands import check_input, check_output

__all__ = ["add_commands", "DEMO_STEPS", "DEMO_STAGE"]


def add_commands(sub) -> None:
    """Add the ``hierarchy`` subcommand to ``sub`` (an argparse subparsers action)."""
    p = sub.add_parser("hierarchy", help="build a multi-resolution hierarchy (meshes, down/up, Laplacians, spirals)")
    p.add_argument("template", type=Path, help="template mesh file")
    p.add_argument("--factors", type=float, nargs="+", default=[4, 4, 4, 4, 4], help="decimation factor per level")
    p.add_argument("--spiral-length", type=int, default=9)
    p.add_argument("--dilation", type=int, default=1)
    p.add_argument("--padding", choices=["repeat", "sentinel"], default="repeat")
    p.add_argument("--laplacian", choices=["normalized", "combinatorial", "random_walk"], default="normalized")
    p.add_argument("--out", type=Path, required=True, help="output .npz")
    p.add_argument("--export", choices=["spiralnet", "neural3dmm"], action="append", default=[],
                   help="also write SpiralNet++'s transform.pkl / Neural3DMM's downsampling_matrices.pkl beside --out")
    p.add_argument("--preview", type=Path, help=".png with every level rendered side by side")
    p.add_argument("--cache-dir", type=Path, help="reuse a hierarchy built before from identical inputs")
    p.set_defaults(func=_run_hierarchy)


def _run_hierarchy(args) -> int:
    from meshkit.io import read_mesh

    check_input(args.template, "template")
    _check_outputs(args)
    m = read_mesh(args.template)
    _build_hierarchy_outputs(m.vertices, m.faces, args)
    return 0


def _check_outputs(args) -> None:
    """Every path the hierarchy options write, checked before the build (``meshkit.commands.check_output``)."""
    check_output(args.out, (".npz",), "--out")
    if args.preview is not None:
        check_output(args.preview, (".png",), "--preview")
    if args.cache_dir is not None:
        check_output(args.cache_dir, None, "--cache-dir")


def _build_hierarchy_outputs(vertices, faces, args):
    """Build, save, export and preview a hierarchy as the options say; returns it."""
    from . import build_hierarchy

    t0 = time.perf_counter()
    h = build_hierarchy(vertices, faces, factors=args.factors, spiral_length=args.spiral_length,
                        dilation=args.dilation, padding=args.padding, laplacian=args.laplacian,
                        cache_dir=args.cache_dir, progress=True)
    print(h.summary())
    print(f"[hierarchy] built in {time.perf_counter() - t0:.2f} s -> {h.save(args.out)}")
    names = {"spiralnet": ("transform.pkl", h.export_spiralnet), "neural3dmm": ("downsampling_matrices.pkl", h.export_neural3dmm)}
    for kind in args.export:
        fname, export = names[kind]
        print(f"[hierarchy] {kind} export -> {export(args.out.parent / fname)}")
    if args.preview:
        from .preview import save_preview

        print(f"[hierarchy] preview -> {save_preview(h, args.preview)}")
    return h


def _demo_hierarchy(args, vertices, faces) -> None:
    out: Path = args.out
    opts = argparse.Namespace(factors=[4, 4, 4, 4, 4] if not args.small else [4, 4, 4], spiral_length=9, dilation=1,
                              padding="repeat", laplacian="normalized", out=out / "hierarchy.npz",
                              export=["spiralnet"], preview=out / "hierarchy.png", cache_dir=None)
    print("[demo] hierarchy of the template")
    _check_outputs(opts)
    _build_hierarchy_outputs(vertices, faces, opts)


DEMO_STEPS = [_demo_hierarchy]
DEMO_STAGE = 1
