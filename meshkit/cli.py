"""The `meshkit` command: mesh info, decimation, spirals, rendering, hierarchies, BFM tools, 300W-LP preprocessing, demo.

Each subcommand is a pair of functions: ``_add_<name>(subparsers)`` declares its arguments and
sets ``func`` to its handler ``_run_<name>(args)``. Handlers import what they need lazily, so
``meshkit --help`` stays fast and the ``bfm``/``sampling`` packages (which this module alone may
reach) are loaded only by the commands that use them. Errors from bad input are printed as one
line naming the problem, with exit status 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import __version__

# ---------------------------------------------------------------------------------------------
# info


def _add_info(sub) -> None:
    p = sub.add_parser("info", help="counts, bounding box, components, boundary loops, manifoldness of a mesh")
    p.add_argument("mesh", type=Path, help="mesh file (ply, obj, off, stl, npz)")
    p.set_defaults(func=_run_info)


def _run_info(args) -> int:
    from . import topology
    from .io import read_mesh

    m = read_mesh(args.mesh)
    n_comp, _ = topology.connected_components(m.faces, m.n_vertices)
    try:
        loops = topology.boundary_loops(m.faces)
        loop_text = f"{len(loops)} (lengths {', '.join(str(len(x)) for x in loops[:8])}{' ...' if len(loops) > 8 else ''})"
    except ValueError as e:
        loop_text = f"not well defined ({e})"
    nm_e = topology.nonmanifold_edges(m.faces)
    nm_v = topology.nonmanifold_vertices(m.faces, m.n_vertices)
    lo, hi = m.bounds
    print(f"file          {args.mesh}")
    print(f"vertices      {m.n_vertices}")
    print(f"faces         {m.n_faces}")
    print(f"edges         {len(m.edges)}")
    print(f"bbox min      {lo[0]:.6g} {lo[1]:.6g} {lo[2]:.6g}")
    print(f"bbox max      {hi[0]:.6g} {hi[1]:.6g} {hi[2]:.6g}")
    print(f"bbox diagonal {m.bbox_diagonal:.6g}")
    print(f"area          {m.area:.6g}")
    print(f"components    {n_comp}")
    print(f"boundary      {loop_text}")
    print(f"euler char.   {topology.euler_characteristic(m.faces, m.n_vertices)}")
    manifold = len(nm_e) == 0 and len(nm_v) == 0
    print(f"manifold      {'yes' if manifold else f'no ({len(nm_e)} non-manifold edges, {len(nm_v)} vertices)'}")
    return 0


# ---------------------------------------------------------------------------------------------
# demo


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="run the main job on the bundled synthetic face model")
    p.add_argument("--out", type=Path, default=Path("demo-out"), help="output folder (default: demo-out)")
    p.add_argument("--small", action="store_true", help="a small template instead of the 53,215-vertex one")
    p.set_defaults(func=_run_demo)


def _run_demo(args) -> int:
    from .io import write_mesh

    try:
        from bfm.synthetic import face_template
    except ImportError as e:  # pragma: no cover - the distribution always ships bfm
        raise SystemExit(f"meshkit demo needs the bfm package of this distribution: {e}") from e
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    v, f = face_template(2000 if args.small else 53_215)
    path = out / "template.ply"
    write_mesh(path, v, f)
    print(f"[demo] template: {len(v)} vertices, {len(f)} faces -> {path} ({time.perf_counter() - t0:.2f} s)")
    for step in _DEMO_STEPS:
        step(args, v, f)
    print(f"[demo] done in {time.perf_counter() - t0:.1f} s; outputs in {out}/")
    return 0


# Later stages of the demo pipeline append themselves here: functions (args, vertices, faces).
_DEMO_STEPS: list = []

# ---------------------------------------------------------------------------------------------
# hierarchy


def _add_hierarchy(sub) -> None:
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
    p.add_argument("--preview", type=Path, help="PNG with every level rendered side by side")
    p.add_argument("--cache-dir", type=Path, help="reuse a hierarchy built before from identical inputs")
    p.set_defaults(func=_run_hierarchy)


def _run_hierarchy(args) -> int:
    from .io import read_mesh

    m = read_mesh(args.template)
    _build_hierarchy_outputs(m.vertices, m.faces, args)
    return 0


def _build_hierarchy_outputs(vertices, faces, args):
    """Build, save, export and preview a hierarchy as the options say; returns it."""
    from sampling import build_hierarchy

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
        from sampling.preview import save_preview

        print(f"[hierarchy] preview -> {save_preview(h, args.preview)}")
    return h


def _demo_hierarchy(args, vertices, faces) -> None:
    out: Path = args.out
    opts = argparse.Namespace(factors=[4, 4, 4, 4, 4] if not args.small else [4, 4, 4], spiral_length=9, dilation=1,
                              padding="repeat", laplacian="normalized", out=out / "hierarchy.npz",
                              export=["spiralnet"], preview=out / "hierarchy.png", cache_dir=None)
    print("[demo] hierarchy of the template")
    _build_hierarchy_outputs(vertices, faces, opts)


_DEMO_STEPS.append(_demo_hierarchy)

# ---------------------------------------------------------------------------------------------
# spiral


def _add_spiral(sub) -> None:
    p = sub.add_parser("spiral", help="spiral neighbourhood orderings of a mesh (SpiralNet++ / Neural3DMM) -> .npy (V, length)")
    p.add_argument("mesh", type=Path, help="mesh file (ply, obj, off, stl, npz)")
    p.add_argument("--length", type=int, default=9, help="entries per spiral, the vertex included (default: 9)")
    p.add_argument("--dilation", type=int, default=1, help="keep every d-th of the first length*d entries (default: 1)")
    p.add_argument("--padding", choices=["repeat", "sentinel"], default="repeat",
                   help="short spirals: repeat the last index, or the sentinel index V (default: repeat)")
    p.add_argument("--out", type=Path, required=True, help="output .npy, int64 (V, length)")
    p.set_defaults(func=_run_spiral)


def _run_spiral(args) -> int:
    import numpy as np

    from .io import atomic_path, read_mesh
    from .spiral import spiral_indices

    m = read_mesh(args.mesh)
    t0 = time.perf_counter()
    s = spiral_indices(m.faces, args.length, args.dilation, padding=args.padding, n_vertices=m.n_vertices)
    dt = time.perf_counter() - t0
    with atomic_path(args.out) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, s)
    n_pad = int((s == m.n_vertices).any(axis=1).sum()) if args.padding == "sentinel" else None
    pad_text = f", {n_pad} padded row(s)" if n_pad is not None else ""
    print(f"spirals {s.shape[0]} x {s.shape[1]} (dilation {args.dilation}, padding {args.padding}{pad_text}) "
          f"in {dt:.3f} s -> {args.out}")
    return 0


# ---------------------------------------------------------------------------------------------
# decimate


def _add_decimate(sub) -> None:
    p = sub.add_parser("decimate", help="quadric-error decimation keeping original vertices; optional kept/down/up matrices")
    p.add_argument("mesh", type=Path, help="input mesh file (ply, obj, off, stl, npz)")
    p.add_argument("out", type=Path, help="output coarse mesh file (format from the extension)")
    p.add_argument("--factor", type=float, default=None, help="keep ceil(V / factor) vertices (default: 4)")
    p.add_argument("--n-vertices", type=int, default=None, help="keep exactly this many vertices (instead of --factor)")
    p.add_argument("--matrices", type=Path, default=None,
                   help="also write kept/down/up to this .npz (keys kept, down_data, down_indices, down_indptr, "
                        "down_shape, up_data, up_indices, up_indptr, up_shape: CSR parts for scipy.sparse.csr_matrix)")
    p.set_defaults(func=_run_decimate)


def _run_decimate(args) -> int:
    import numpy as np

    from .decimate import decimate
    from .io import atomic_path, read_mesh, write_mesh

    if args.factor is not None and args.n_vertices is not None:
        raise ValueError("give either --factor or --n-vertices, not both")
    factor = 4.0 if args.factor is None and args.n_vertices is None else args.factor
    m = read_mesh(args.mesh)
    t0 = time.perf_counter()
    d = decimate(m.vertices, m.faces, factor=factor, n_vertices=args.n_vertices)
    dt = time.perf_counter() - t0
    write_mesh(args.out, d.vertices, d.faces)
    msg = f"decimated {m.n_vertices} -> {d.vertices.shape[0]} vertices, {d.faces.shape[0]} faces in {dt:.3f} s -> {args.out}"
    if args.matrices is not None:
        parts = {"kept": d.kept}
        for name, mat in (("down", d.down), ("up", d.up)):
            parts[f"{name}_data"] = mat.data
            parts[f"{name}_indices"] = mat.indices
            parts[f"{name}_indptr"] = mat.indptr
            parts[f"{name}_shape"] = np.asarray(mat.shape, dtype=np.int64)
        with atomic_path(args.matrices) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **parts)
        msg += f"; kept/down/up -> {args.matrices}"
    print(msg)
    return 0


# ---------------------------------------------------------------------------------------------
# render

_RENDER_MODES = ("depth", "colour", "color", "normals", "pncc")


def _add_render(sub) -> None:
    p = sub.add_parser("render", help="render a mesh to PNG (depth, colour, normals, PNCC) with an automatic camera")
    p.add_argument("mesh", type=Path, help="mesh file (ply, obj, off, stl, npz), world frame: x right, y up, z to the viewer")
    p.add_argument("--mode", choices=_RENDER_MODES, default="colour",
                   help="depth (near = bright), colour (vertex colours, else shaded grey), normals ((n+1)/2), pncc")
    p.add_argument("--size", type=int, default=256, help="image side in pixels (default: 256)")
    p.add_argument("--margin", type=float, default=0.05, help="free border, fraction of the side (default: 0.05)")
    p.add_argument("--cull", action="store_true", help="drop back faces (clockwise in the image)")
    p.add_argument("--out", type=Path, required=True, help="output .png")
    p.set_defaults(func=_run_render)


def _render_image(v, f, mode: str, size: int, *, colors=None, margin: float = 0.05, cull: bool = False):
    """The image of one render mode, float in [0, 1]: shared by ``meshkit render`` and the demo."""
    import numpy as np

    from . import render
    from .mesh import _vertex_normals

    vi = render.frame_vertices(v, size, size, margin=margin)
    kw = dict(cull_backfaces=cull)
    if mode == "depth":
        return render.render_depth(vi, f, size, size, normalize=True, **kw)
    if mode == "normals":
        n = render.render_normals(vi, f, size, size, **kw)
        return np.where(np.any(n != 0, axis=2, keepdims=True), 0.5 * (n + 1.0), 0.0)
    if mode == "pncc":
        return render.render_pncc(vi, f, size, size, reference=v, **kw)
    if colors is not None:
        rgb = np.asarray(colors)[:, :3].astype(np.float64) / 255.0
    else:  # shaded grey: a light above-right of the camera; outward normals in image axes are -cross
        rgb = render.lambertian(-_vertex_normals(vi, f), [0.85, 0.85, 0.85], (0.4, -0.5, 1.0))
    return render.render_colors(vi, f, rgb, size, size, **kw)


def _run_render(args) -> int:
    from ._validate import check_int
    from .io import read_mesh
    from .render import save_png

    size = check_int(args.size, "--size", minimum=1, maximum=1 << 15)
    m, colors = read_mesh(args.mesh, return_colors=True)
    mode = "colour" if args.mode == "color" else args.mode
    t0 = time.perf_counter()
    img = _render_image(m.vertices, m.faces, mode, size, colors=colors if mode == "colour" else None,
                        margin=args.margin, cull=args.cull)
    dt = time.perf_counter() - t0
    save_png(args.out, img)
    print(f"render {mode} {size}x{size} of {m.n_vertices} vertices / {m.n_faces} faces in {dt:.3f} s -> {args.out}")
    return 0


def _demo_render(args, v, f) -> None:
    from .render import save_png

    t0 = time.perf_counter()
    for mode in ("depth", "normals", "pncc", "colour"):
        save_png(args.out / f"render_{mode}.png", _render_image(v, f, mode, 256))
    print(f"[demo] renders: depth, normals, pncc, colour 256x256 -> {args.out}/render_*.png "
          f"({time.perf_counter() - t0:.2f} s)")


_DEMO_STEPS.append(_demo_render)

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
    p.add_argument("--store", choices=("vertices", "params"), default="vertices",
                   help="store the cropped meshes, or only parameters (meshes rebuilt on the fly)")
    p.add_argument("--float16", action="store_true", help="store vertices as float16")
    p.add_argument("--workers", type=int, default=2, help="local worker processes (default 2)")
    p.add_argument("--scheduler", default=None, help="dask.distributed scheduler address (runs the blocks there)")
    p.add_argument("--block-size", type=int, default=32, help="samples per block / zarr chunk (default 32)")
    p.add_argument("--limit", type=int, default=None, help="only the first N samples (sorted ids)")
    p.add_argument("--hierarchy", type=Path, default=None,
                   help="a saved sampling hierarchy (.npz): also store the down-sampled meshes per level")
    p.add_argument("--overwrite", action="store_true", help="replace a store made with other settings")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_preprocess_300wlp)


def _run_preprocess_300wlp(args) -> int:
    import os

    from bfm import w300lp

    if args.synthetic_model:
        from bfm.synthetic import synthetic_model

        model = synthetic_model()
    else:
        path = args.model or os.environ.get("MESHKIT_BFM")
        if not path:
            raise ValueError("--model: expected a BFM model file (the BFM is licensed and not shipped; set --model "
                             "or $MESHKIT_BFM), or --synthetic-model for synthetic trees, got neither")
        model = str(path)
    summary = w300lp.preprocess(args.root, args.out, model=model, size=args.size, margin=args.margin, store=args.store,
                                vertex_dtype="float16" if args.float16 else "float32", block_size=args.block_size,
                                workers=args.workers, scheduler=args.scheduler, limit=args.limit, hierarchy=args.hierarchy,
                                overwrite=args.overwrite, progress=not args.no_progress)
    print(summary)
    return 0


def _demo_300wlp(args, v, f) -> None:
    from bfm import w300lp
    from bfm.synthetic import small_model, synthetic_model
    from bfm.synthetic_300wlp import write_synthetic_300wlp

    t0 = time.perf_counter()
    model = small_model() if args.small else synthetic_model()
    root = args.out / "300W_LP"
    truth = write_synthetic_300wlp(root, model, n_per_subset=4, seed=0)
    t1 = time.perf_counter()
    s = w300lp.preprocess(root, args.out / "300wlp.zarr", model=model, size=256, workers=2, block_size=8,
                          overwrite=True, progress=False)
    print(f"[demo] 300W-LP: synthetic tree of {len(truth)} samples (4 per subset + flips) -> {root} "
          f"({t1 - t0:.2f} s); preprocessed {s.processed} ({len(s.skipped)} skipped) -> "
          f"{args.out / '300wlp.zarr'} ({time.perf_counter() - t1:.2f} s)")


_DEMO_STEPS.append(_demo_300wlp)

# ---------------------------------------------------------------------------------------------

COMMANDS = [_add_info, _add_demo, _add_hierarchy, _add_spiral, _add_decimate, _add_render, _add_preprocess_300wlp]


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
    c.add_argument("output", type=Path, help=".npz (canonical), .h5 (BFM2017), .mat (face3d BFM.mat), .pkl (3DDFA_V2)")
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
    from bfm.formats import load_model

    from .io import write_mesh

    model = load_model(args.model)
    v = model.reconstruct(_coefficients(args.shape, "shape"), _coefficients(args.expression, "expression"), units=args.units)
    write_mesh(args.out, v, model.triangles)
    print(f"{model.name}: {model.n_vertices} vertices, {len(model.triangles)} triangles -> {args.out}")
    return 0


def _run_bfm_convert(args) -> int:
    from bfm import synthetic
    from bfm.formats import load_model, save_npz

    model = load_model(args.input)
    ext = args.output.suffix.lower()
    lost = []  # what the target layout cannot carry: said, never dropped silently
    if ext == ".npz":
        save_npz(args.output, model)
    elif ext in (".h5", ".hdf5"):
        synthetic.write_bfm2017_h5(args.output, model)
        if len(model.landmarks):
            lost.append("landmark indices (BFM2017 stores named points: pass landmarks= to bfm.load_model)")
    elif ext == ".mat":
        synthetic.write_face3d_mat(args.output, model)
    elif ext == ".pkl":
        # the layout has no standard deviations: they go to the 62-d mean/std file beside it
        std_path = args.output.with_name(args.output.stem + "_param_mean_std.pkl")
        synthetic.write_3ddfa_pkl(args.output, model, n_shape=model.n_shape, n_expression=model.n_expression,
                                  param_mean_std_path=std_path)
        print(f"standard deviations -> {std_path} (load with param_mean_std=)")
        if model.has_texture:
            lost.append("the texture model (3DDFA_V2's pickle has none)")
    else:
        raise ValueError(f"output: expected a .npz, .h5, .mat or .pkl file name, got {args.output.name!r}")
    for what in lost:
        print(f"meshkit bfm convert: warning: {args.output.suffix} cannot hold {what}; not written", file=sys.stderr)
    print(f"{model.name}: {model.n_vertices} vertices, {model.n_shape} shape + {model.n_expression} expression "
          f"components -> {args.output}")
    return 0


COMMANDS.append(_add_bfm)


def _demo_bfm(args, vertices, faces) -> None:
    import numpy as np

    from bfm import fit_landmarks
    from bfm.pose import pose_para_to_image
    from bfm.synthetic import small_model, synthetic_model

    from .io import write_mesh

    t0 = time.perf_counter()
    model = small_model() if args.small else synthetic_model()
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
          f"8 random faces -> {args.out}/bfm_random_face.ply; landmark fit (yaw -60..60) mean error "
          f"{100 * (fit.residual / size).mean():.3f}% of face size ({time.perf_counter() - t0:.2f} s)")


_DEMO_STEPS.append(_demo_bfm)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="meshkit", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"meshkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, OSError) as e:
        print(f"meshkit {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
