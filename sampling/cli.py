"""The `meshkit hierarchy` subcommand and its demo step (a plugin of ``meshkit.cli``).

``add_commands(subparsers)`` declares the subcommand; ``DEMO_STEPS`` are run by ``meshkit demo``
after the core's steps (``DEMO_STAGE`` 1: it builds on the template); ``WARMUP_STEPS`` (a small
``build_hierarchy``) are run by ``meshkit warmup`` after the core's.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from meshkit.commands import check_input, check_output

__all__ = ["add_commands", "DEMO_STEPS", "DEMO_STAGE", "WARMUP_STEPS"]


def add_commands(sub) -> None:
    """Add the ``hierarchy`` subcommand to ``sub`` (an argparse subparsers action)."""
    p = sub.add_parser("hierarchy", help="build a multi-resolution hierarchy (meshes, down/up, Laplacians, spirals)")
    p.add_argument("template", type=Path, help="template mesh file")
    p.add_argument("--factors", type=float, nargs="+", default=[4, 4, 4, 4, 4], help="decimation factor per level")
    p.add_argument("--spiral-length", type=int, default=9)
    p.add_argument("--dilation", type=int, default=1)
    p.add_argument("--padding", choices=["repeat", "sentinel", "nearest"], default=None,
                   help="short spirals: repeat the last index, the sentinel index V, or the nearest vertices in space "
                        "(default: the spiral style's own: repeat for meshkit, nearest for spiralnet++, sentinel for neural3dmm)")
    p.add_argument("--spiral-style", choices=["meshkit", "spiralnet++", "neural3dmm"], default="meshkit",
                   help="spiral ordering: meshkit's (default), SpiralNet++'s (OpenMesh order) or Neural3DMM's, row for row")
    p.add_argument("--spiral-reference", type=int, default=0,
                   help="neural3dmm: the reference vertex on level 0 (coarser levels use their nearest vertex; default 0)")
    p.add_argument("--laplacian", choices=["normalized", "combinatorial", "random_walk"], default="normalized")
    p.add_argument("--out", type=Path, required=True, help="output .npz")
    p.add_argument("--export", choices=["spiralnet", "neural3dmm"], action="append", default=[],
                   help="also write SpiralNet++'s transform.pkl (with its spirals) / Neural3DMM's downsampling_matrices.pkl "
                        "(and template.obj) beside --out; see docs/exports.md")
    p.add_argument("--neural3dmm-step-sizes", type=int, nargs="+", default=None,
                   help="with --export neural3dmm: also store Neural3DMM's spirals, rings per level (e.g. 2 2 1 1 1)")
    p.add_argument("--neural3dmm-dilation", type=int, nargs="+", default=None,
                   help="with --neural3dmm-step-sizes: Neural3DMM's dilation per level (default 1)")
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
                        spiral_style=args.spiral_style, spiral_reference=args.spiral_reference,
                        cache_dir=args.cache_dir, progress=True)
    print(h.summary())
    print(f"[hierarchy] built in {time.perf_counter() - t0:.2f} s -> {h.save(args.out)}")
    folder = args.out.parent
    if "spiralnet" in args.export:
        print(f"[hierarchy] spiralnet export -> {h.export_spiralnet(folder / 'transform.pkl', spirals=True)}")
    if "neural3dmm" in args.export:
        path = h.export_neural3dmm(folder / "downsampling_matrices.pkl", template=folder / "template.obj",
                                   reference=None if args.neural3dmm_step_sizes is None else args.spiral_reference,
                                   step_sizes=args.neural3dmm_step_sizes,
                                   dilation=args.neural3dmm_dilation)
        print(f"[hierarchy] neural3dmm export -> {path} (+ {folder / 'template.obj'})")
    if args.preview:
        from .preview import save_preview

        print(f"[hierarchy] preview -> {save_preview(h, args.preview)}")
    return h


def _demo_hierarchy(args, vertices, faces) -> None:
    out: Path = args.out
    opts = argparse.Namespace(factors=[4, 4, 4, 4, 4] if not args.small else [4, 4, 4], spiral_length=9, dilation=1,
                              padding=None, laplacian="normalized", out=out / "hierarchy.npz",
                              spiral_style="meshkit", spiral_reference=0, export=["spiralnet"],
                              neural3dmm_step_sizes=None, neural3dmm_dilation=None,
                              preview=out / "hierarchy.png", cache_dir=None)
    print("[demo] hierarchy of the template")
    _check_outputs(opts)
    _build_hierarchy_outputs(vertices, faces, opts)


DEMO_STEPS = [_demo_hierarchy]
DEMO_STAGE = 1


def _warmup_hierarchy() -> None:
    """A two-level hierarchy of a small template: the kernels ``build_hierarchy`` calls (decimation,
    closest points, one-rings, spirals), loaded from numba's cache or compiled into it."""
    from meshkit.synthetic import face_template

    from .hierarchy import build_hierarchy

    v, f = face_template(2000, topology="bfm")
    build_hierarchy(v, f, factors=(4, 4))


WARMUP_STEPS = [("build_hierarchy (2,000-vertex template, two levels)", _warmup_hierarchy)]
