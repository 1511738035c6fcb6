"""The `meshkit bfm reconstruct|convert` and `meshkit preprocess-300wlp` subcommands (a plugin of ``meshkit.cli``).

``add_commands(subparsers)`` declares the subcommands; ``DEMO_STEPS`` (a synthetic 300W-LP tree
preprocessed into a store; a random face and a landmark fit) are run by ``meshkit demo`` after the
core's and the hierarchy's steps (``DEMO_STAGE`` 2). ``WARMUP_STEPS`` (a tiny synthetic 300W-LP tree
preprocessed: the crop and pose kernels of ``bfm/w300lp/_kernels.py``, the UV maps of float32 meshes)
are run by ``meshkit warmup``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from meshkit.commands import check_input, check_output, mesh_suffixes

__all__ = ["add_commands", "describe_file", "DEMO_STEPS", "DEMO_STAGE", "WARMUP_STEPS"]


def add_commands(sub) -> None:
    """Add the ``bfm`` and ``preprocess-300wlp`` subcommands to ``sub`` (an argparse subparsers action)."""
    _add_bfm(sub)
    _add_preprocess_300wlp(sub)


# ---------------------------------------------------------------------------------------------
# bfm: reconstruct a mesh from a Morphable Model, convert between model layouts


def _add_bfm(sub) -> None:
    p = sub.add_parser("bfm", help="Morphable Models: reconstruct a face mesh, convert between file layouts")
    bsub = p.add_subparsers(dest="bfm_command", metavar="BFM_COMMAND")
    r = bsub.add_parser("reconstruct", help="mesh from identity/expression coefficients")
    r.add_argument("model", type=Path, help="model file (BFM2009 .mat, face3d BFM.mat, 3DDFA_V2 .pkl, BFM2017 .h5, .npz)")
    r.add_argument("--shape", nargs="+", default=None,
                   help="identity coefficients: numbers separated by spaces or commas (--shape -1 2 0.5, "
                        "--shape=-1,2,0.5) or a .npy/.txt/.csv file")
    r.add_argument("--expression", nargs="+", default=None, help="expression coefficients, as --shape")
    r.add_argument("--units", choices=["raw", "std"], default="raw", help="coefficient units (default: raw)")
    r.add_argument("--out", type=Path, required=True, help="output mesh (ply, obj, off, stl, npz)")
    r.set_defaults(func=_run_bfm_reconstruct)
    c = bsub.add_parser("convert", help="convert a model file to another layout (by the output extension)")
    c.add_argument("input", type=Path, help="model file in any supported layout")
    c.add_argument("output", type=Path, help=".npz (canonical), .h5 (BFM2017), .mat (face3d BFM.mat), .pkl (3DDFA_V2), "
                                              "or a folder with --layout bfm2009")
    c.add_argument("--layout", default=None, choices=["npz", "face3d", "bfm2009", "3ddfa", "bfm2017"],
                   help="write this layout (npz, face3d, bfm2009, 3ddfa, bfm2017) instead of "
                                                  "choosing by the extension; each writes the layout's native winding")
    c.set_defaults(func=_run_bfm_convert)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _coefficients(tokens, name):
    """Coefficients from the command line: one file name, or numbers separated by spaces/commas."""
    import numpy as np

    if tokens is None:
        return None
    text = ",".join(tokens) if isinstance(tokens, list) else str(tokens)
    path = Path(text)
    if path.suffix.lower() in (".npy", ".txt", ".csv") and path.is_file():
        a = np.load(path) if path.suffix.lower() == ".npy" else np.loadtxt(path, delimiter="," if path.suffix == ".csv" else None)
        return np.asarray(a, dtype=np.float64).reshape(-1)
    try:
        return np.array([float(x) for x in str(text).replace(" ", "").split(",") if x != ""], dtype=np.float64)
    except ValueError as e:
        raise ValueError(f"--{name}: expected comma-separated numbers or a .npy/.txt file, got {text!r}") from e


def _run_bfm_reconstruct(args) -> int:
    from meshkit.io import write_mesh

    from .formats import load_model

    check_input(args.model, "model")
    check_output(args.out, mesh_suffixes(), "--out")
    model = load_model(args.model)
    v = model.reconstruct(_coefficients(args.shape, "shape"), _coefficients(args.expression, "expression"), units=args.units)
    write_mesh(args.out, v, model.triangles)
    print(f"{model.name}: {model.n_vertices} vertices, {len(model.triangles)} triangles -> {args.out}")
    return 0


#: the output endings ``meshkit bfm convert`` writes
_CONVERT_SUFFIXES = (".npz", ".h5", ".hdf5", ".mat", ".pkl")


def _run_bfm_convert(args) -> int:
    """Load with ``bfm.formats.load_model``, write with ``bfm.formats.save_model`` (layout by extension or --layout)."""
    from .formats import LAYOUTS, load_model, save_model

    check_input(args.input, "input")
    folder = args.layout is not None and LAYOUTS[args.layout].folder  # BFM2009: a folder of files
    if not folder and args.output.suffix.lower() not in _CONVERT_SUFFIXES:
        raise ValueError(f"output: expected a file name ending in {', '.join(_CONVERT_SUFFIXES)} (the layout is chosen by "
                         f"the extension), or --layout bfm2009 and a folder, got {args.output.name!r}")
    check_output(args.output, None if folder else _CONVERT_SUFFIXES, "output")
    model = load_model(args.input)
    layout = args.layout or next((name for name, lay in LAYOUTS.items()
                                  if args.output.suffix.lower() in lay.suffixes and not lay.folder), None)
    kw = {}
    lost = []  # what the target layout cannot carry: said, never dropped silently
    if layout == "3ddfa":
        # the layout has no standard deviations: they go to the 62-d mean/std file beside it
        std_path = args.output.with_name(args.output.stem + "_param_mean_std.pkl")
        kw = dict(n_shape=model.n_shape, n_expression=model.n_expression, param_mean_std_path=std_path)
        print(f"standard deviations -> {std_path} (load with param_mean_std=)")
        if model.has_texture:
            lost.append("the texture model (3DDFA_V2's pickle has none)")
    if layout == "bfm2017" and len(model.landmarks):
        lost.append("landmark indices (BFM2017 stores named points: pass landmarks= to bfm.load_model)")
    save_model(args.output, model, layout=layout, **kw)
    for what in lost:
        print(f"meshkit bfm convert: warning: {layout} cannot hold {what}; not written", file=sys.stderr)
    print(f"{model.name}: {model.n_vertices} vertices, {model.n_shape} shape + {model.n_expression} expression "
          f"components (triangles stored {model.stored_winding}) -> {args.output} ({layout or 'unknown'} layout)")
    return 0


# ---------------------------------------------------------------------------------------------
# meshkit info on a model file

#: Rough face widths (x extent of the mean) per unit, for the units guess of ``meshkit info``.
_UNITS = (("micrometres (BFM2009 / face3d / 3DDFA)", 3e4, 3e6), ("millimetres (BFM2017)", 30.0, 3e3),
          ("metres", 0.03, 3.0))


def _units_guess(mean) -> str:
    import numpy as np

    width = float(np.ptp(np.asarray(mean, np.float64)[:, 0]))
    for name, lo, hi in _UNITS:
        if lo <= width <= hi:
            return f"{name}; face width {width:.6g}"
    return f"unknown; face width {width:.6g}"


def describe_file(path):
    """``meshkit info``'s description of a Morphable Model file: (label, text) lines, or None when
    ``path`` is not one (a mesh file). Layout, sizes, components, landmarks, a units guess and the
    triangles' winding as stored in the file and as loaded."""
    import numpy as np

    from meshkit.commands import orientation_text
    from meshkit.topology import boundary_loops, connected_components

    from .formats import LAYOUTS, _sniff, load_model
    from .formats._common import check_file
    from .formats.npz import NPZ_FORMAT

    p = check_file(path, "mesh")
    model_suffixes = {s for lay in LAYOUTS.values() for s in lay.suffixes} - {".npz"}
    if p.suffix.lower() == ".npz" or p.suffix.lower() not in model_suffixes:
        # an .npz is a model file only with our format tag; other suffixes are meshes
        if p.suffix.lower() != ".npz":
            return None
        try:
            with np.load(p, allow_pickle=False) as z:
                if "format" not in z.files or str(z["format"]) != NPZ_FORMAT:
                    return None
        except Exception:  # noqa: BLE001 - not a readable .npz: leave it to the mesh reader's error
            return None
    layout = _sniff(p)
    lines = [("layout", f"{layout.name} (bfm.formats.LAYOUTS)")]
    try:
        model = load_model(p, layout=layout.name)
    except ValueError as e:
        lines.append(("loads", f"not on its own: {e}"))
        return lines
    stored = load_model(p, layout=layout.name, winding="keep").triangles
    n_comp, _ = connected_components(model.triangles, model.n_vertices)
    try:
        loops = ", ".join(str(len(x)) for x in boundary_loops(model.triangles)) or "none"
    except ValueError as e:
        loops = f"not well defined ({e})"
    lines += [
        ("name", model.name),
        ("vertices", str(model.n_vertices)),
        ("triangles", str(len(model.triangles))),
        ("components", f"{model.n_shape} shape, {model.n_expression} expression, {model.n_texture} texture"),
        ("landmarks", str(len(model.landmarks))),
        ("units", _units_guess(model.mean)),
        ("mesh parts", f"{n_comp} connected component(s); boundary loops of {loops} vertices"),
        ("stored", f"{model.stored_winding}: {orientation_text(model.mean, stored)}"),
        ("loaded", f"counter-clockwise: {orientation_text(model.mean, model.triangles)}"),
    ]
    return lines


# ---------------------------------------------------------------------------------------------
# preprocess-300wlp


def _add_preprocess_300wlp(sub) -> None:
    p = sub.add_parser("preprocess-300wlp", help="300W-LP -> chunked zarr training store (crops, meshes, landmarks, poses)")
    p.add_argument("root", type=Path, help="the 300W_LP folder (AFW, AFW_Flip, ..., landmarks)")
    p.add_argument("--out", type=Path, required=True, help="output store (zarr directory); resumed if it exists")
    p.add_argument("--model", type=Path, default=None,
                   help="BFM file in any layout bfm.formats.load_model reads (default: $MESHKIT_BFM)")
    p.add_argument("--synthetic-model", action="store_true",
                   help="use the bundled synthetic model instead of a BFM file (for synthetic trees)")
    p.add_argument("--size", type=int, default=256, help="crop side in pixels (default 256; 120 for 3DDFA-style)")
    p.add_argument("--margin", type=float, default=1.5, help="crop side / mean landmark-box side (default 1.5, face3d)")
    p.add_argument("--store", choices=("vertices", "params", "uvmap"), default="vertices",
                   help="store the cropped meshes, only parameters (meshes rebuilt on the fly), or PRNet-style "
                        "UV position maps of the cropped meshes (uvmap)")
    p.add_argument("--uv", type=Path, default=None,
                   help="with --store uvmap: the model's UV layout (BFM_UV.mat or .npy); the synthetic model's "
                        "is built in")
    p.add_argument("--uv-texture", action="store_true", help="with --store uvmap: also store UV textures of the crops")
    p.add_argument("--uv-size", type=int, default=256, help="with --store uvmap: side of the UV maps in texels (256, PRNet)")
    p.add_argument("--float16", action="store_true", help="store vertices as float16")
    p.add_argument("--image-codec", choices=("jpeg", "lossless"), default="jpeg",
                   help="how the crops are kept: JPEG per crop (default; ~6x smaller on photos) or lossless (zstd)")
    p.add_argument("--jpeg-quality", type=int, default=95, help="JPEG quality 1..100 with --image-codec jpeg (default 95)")
    p.add_argument("--workers", type=int, default=2, help="local worker processes (default 2)")
    p.add_argument("--scheduler", default=None, help="dask.distributed scheduler address (runs the blocks there)")
    p.add_argument("--no-workers-timeout", type=_seconds_or_none, default=300.0, metavar="SECONDS",
                   help="with --scheduler: give up after the scheduler has had no workers this long (default 300; "
                        "'none' waits forever)")
    p.add_argument("--block-size", type=int, default=32, help="samples per block / zarr chunk (default 32)")
    p.add_argument("--limit", type=int, default=None, help="only the first N samples (sorted ids)")
    p.add_argument("--hierarchy", type=Path, default=None,
                   help="a saved sampling hierarchy (.npz): also store the down-sampled meshes per level")
    p.add_argument("--overwrite", action="store_true", help="replace a store made with other settings")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_preprocess_300wlp)


def _seconds_or_none(text: str) -> float | None:
    """``--no-workers-timeout``'s value: seconds, or None for 'none' (``preprocess`` checks the number)."""
    import argparse

    if text.strip().lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds (a number) or 'none', got {text!r}") from None


def _run_preprocess_300wlp(args) -> int:
    import os

    from . import w300lp

    check_input(args.root, "root", folder=True)
    check_output(args.out, None, "--out")
    if args.hierarchy is not None:
        check_input(args.hierarchy, "--hierarchy")
    if args.store != "uvmap" and (args.uv is not None or args.uv_texture):
        raise ValueError(f"--uv: --uv and --uv-texture go with --store uvmap, got --store {args.store}")
    uv = None if args.uv is None else check_input(args.uv, "--uv")
    if args.synthetic_model:
        from .synthetic import synthetic_model

        t0 = time.perf_counter()
        print("[preprocess-300wlp] building the synthetic model ...", flush=True)
        model = synthetic_model()
        print(f"[preprocess-300wlp] synthetic model built in {time.perf_counter() - t0:.1f} s", flush=True)
        if args.store == "uvmap" and uv is None:
            from meshkit.synthetic import template_uv

            uv = template_uv(model.mean)
    else:
        path = args.model or os.environ.get("MESHKIT_BFM")
        if not path:
            raise ValueError("--model: expected a BFM model file (the BFM is licensed and not shipped; set --model "
                             "or $MESHKIT_BFM), or --synthetic-model for synthetic trees, got neither")
        model = str(check_input(path, "--model" if args.model else "$MESHKIT_BFM"))
        if args.store == "uvmap" and uv is None:
            raise ValueError("--uv: expected the model's UV layout with --store uvmap (the BFM's BFM_UV.mat, shipped "
                             "by 3DDFA_V2 in configs/), got none")
    summary = w300lp.preprocess(args.root, args.out, model=model, size=args.size, margin=args.margin, store=args.store,
                                vertex_dtype="float16" if args.float16 else "float32", block_size=args.block_size,
                                workers=args.workers, scheduler=args.scheduler, limit=args.limit, hierarchy=args.hierarchy,
                                uv=uv, uv_size=args.uv_size, uv_texture=args.uv_texture, overwrite=args.overwrite,
                                progress=not args.no_progress, image_codec=args.image_codec,
                                jpeg_quality=args.jpeg_quality, no_workers_timeout=args.no_workers_timeout)
    print(summary)
    return 0


def _demo_300wlp(args, v, f) -> None:
    from . import w300lp
    from .synthetic import small_model, synthetic_model
    from .synthetic_300wlp import write_synthetic_300wlp

    t0 = time.perf_counter()
    print("[demo] building the synthetic model ...", flush=True)
    model = small_model() if args.small else synthetic_model()
    print(f"[demo] synthetic model built in {time.perf_counter() - t0:.2f} s", flush=True)
    root = args.out / "300W_LP"
    truth = write_synthetic_300wlp(root, model, n_per_subset=4, seed=0, progress=True)
    t1 = time.perf_counter()
    s = w300lp.preprocess(root, args.out / "300wlp.zarr", model=model, size=256, workers=2, block_size=8,
                          overwrite=True, progress=True)
    print(f"[demo] 300W-LP: synthetic tree of {len(truth)} samples (4 per subset + flips) -> {root} "
          f"({t1 - t0:.2f} s); preprocessed {s.processed} ({len(s.skipped)} skipped) -> "
          f"{args.out / '300wlp.zarr'} ({time.perf_counter() - t1:.2f} s)")


# ---------------------------------------------------------------------------------------------
# demo


def _demo_bfm(args, vertices, faces) -> None:
    import numpy as np

    from meshkit.io import write_mesh
    from meshkit.synthetic import template_uv

    from . import fit_landmarks
    from .formats import write_uv
    from .pose import pose_para_to_image
    from .synthetic import small_model, synthetic_model

    t0 = time.perf_counter()
    model = small_model() if args.small else synthetic_model()
    # the model's UV layout in the real BFM_UV.mat layout (its mean is the template: template_uv applies)
    write_uv(args.out / "BFM_UV.mat", template_uv(model.mean))
    rng = np.random.default_rng(0)
    shape = rng.standard_normal((8, 40)) * model.shape_std[:40]
    expression = rng.standard_normal((8, 10)) * model.expression_std[:10]
    faces_v = model.reconstruct(shape, expression)
    write_mesh(args.out / "bfm_random_face.ply", faces_v[0], model.triangles)
    pose_para = np.zeros((8, 7))
    pose_para[:, 1] = np.radians(np.linspace(-60, 60, 8))
    pose_para[:, 3:5] = 225.0
    pose_para[:, 6] = 0.0012
    lm = pose_para_to_image(faces_v.astype(np.float64), pose_para, 450)[:, model.landmarks, :2]
    fit = fit_landmarks(model, lm, image_height=450)
    size = np.linalg.norm(lm.max(1) - lm.min(1), axis=-1)
    print(f"[demo] bfm: synthetic model {model.n_vertices} vertices, {model.n_shape} + {model.n_expression} components; "
          f"UV layout -> {args.out}/BFM_UV.mat; 8 random faces -> {args.out}/bfm_random_face.ply; "
          f"landmark fit (yaw -60..60) mean error "
          f"{100 * (fit.residual / size).mean():.3f}% of face size ({time.perf_counter() - t0:.2f} s)")


DEMO_STEPS = [_demo_300wlp, _demo_bfm]
DEMO_STAGE = 2


# ---------------------------------------------------------------------------------------------
# warmup


def _warmup_300wlp() -> None:
    """Preprocess a one-sample synthetic 300W-LP tree in this process, into a UV-map store with
    textures: the real path of a block (``crop_image`` -> ``crop_bilinear`` on uint8 crops,
    ``pose_crop`` on the model's float32 meshes, ``meshkit.render.uv`` on them), so that numba caches
    the same specialisations a real run uses."""
    import tempfile

    from meshkit.synthetic import template_uv

    from . import w300lp
    from .synthetic import small_model
    from .synthetic_300wlp import write_synthetic_300wlp

    model = small_model()
    with tempfile.TemporaryDirectory(prefix="meshkit-warmup-") as tmp:
        root = Path(tmp) / "300W_LP"
        write_synthetic_300wlp(root, model, n_per_subset=1, flips=False, subsets=("AFW",), image_size=128,
                               face_px=60.0)
        w300lp.preprocess(root, Path(tmp) / "store.zarr", model=model, size=32, workers=1, subsets=("AFW",),
                          flips=False, store="uvmap", uv=template_uv(model.mean), uv_size=32, uv_texture=True,
                          progress=False)


WARMUP_STEPS = [("bfm: 300W-LP block (crop, pose, UV maps) of a one-sample synthetic tree", _warmup_300wlp)]
