"""The core's subcommands of the `meshkit` command: info, decimate, spiral, render, demo (a plugin of ``meshkit.cli``).

``add_commands(subparsers)`` declares them; each is a pair ``_add_<name>(subparsers)`` (arguments,
``func`` = its handler) and ``_run_<name>(args)``. Handlers import what they need lazily, so
``meshkit --help`` stays fast. ``DEMO_STEPS`` (the renders) run first in ``meshkit demo``.
"""

from __future__ import annotations

import time
from pathlib import Path

__all__ = ["add_commands", "orientation_text", "DEMO_STEPS", "DEMO_STAGE"]


def add_commands(sub) -> None:
    """Add ``info``, ``demo``, ``spiral``, ``decimate`` and ``render`` to ``sub`` (an argparse subparsers action)."""
    for add in (_add_info, _add_demo, _add_spiral, _add_decimate, _add_render):
        add(sub)


# ---------------------------------------------------------------------------------------------
# info


def _add_info(sub) -> None:
    p = sub.add_parser("info", help="what a file holds: a mesh (counts, bounding box, components, boundary loops, "
                                    "manifoldness, orientation) or a Morphable Model file (layout, sizes, units, winding)")
    p.add_argument("mesh", type=Path, help="mesh file (ply, obj, off, stl, npz) or model file (BFM .mat, .pkl, .h5, .npz)")
    p.set_defaults(func=_run_info)


def _describers() -> list:
    """The ``describe_file(path) -> list of (label, text) or None`` hooks of the command modules
    (``bfm.cli`` describes Morphable Model files; meshkit itself never imports bfm)."""
    from .cli import command_modules

    return [m.describe_file for m in command_modules() if hasattr(m, "describe_file")]


def _run_info(args) -> int:
    from . import topology
    from .io import read_mesh

    for describe in _describers():
        lines = describe(args.mesh)
        if lines is not None:
            print(f"{'file':<13} {args.mesh}")
            for label, text in lines:
                print(f"{label:<13} {text}")
            return 0
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
    print(f"orientation   {orientation_text(m.vertices, m.faces)}")
    return 0


def orientation_text(vertices, faces) -> str:
    """One line on a mesh's winding: consistency and the share of faces pointing outward / to +z,
    naming the fix when most point inward (shared with ``bfm``'s model-file description)."""
    from . import topology

    consistent = topology.is_consistently_oriented(faces)
    out = topology.outward_fraction(vertices, faces)
    front = topology.facing_fraction(vertices, faces, (0.0, 0.0, 1.0))
    text = (f"{'consistent' if consistent else 'NOT consistent'}; {100 * out:.1f} % of faces point away from the "
            f"centroid, {100 * front:.1f} % of the area faces +z")
    if out < 0.5 or not consistent:
        text += " (inward or mixed: meshkit.topology.orient_outward fixes it)"
    return text


# ---------------------------------------------------------------------------------------------
# demo


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="run the main job on the bundled synthetic face model")
    p.add_argument("--out", type=Path, default=Path("demo-out"), help="output folder (default: demo-out)")
    p.add_argument("--small", action="store_true", help="a small template instead of the 53,215-vertex one")
    p.set_defaults(func=_run_demo)


def _run_demo(args) -> int:
    """The template, then the demo steps of every command module (``meshkit.cli.demo_steps``)."""
    from .cli import demo_steps
    from .io import write_mesh
    from .synthetic import face_template

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    v, f = face_template(2000 if args.small else 53_215)
    path = out / "template.ply"
    write_mesh(path, v, f)
    print(f"[demo] template: {len(v)} vertices, {len(f)} faces -> {path} ({time.perf_counter() - t0:.2f} s)")
    for step in demo_steps():
        step(args, v, f)
    print(f"[demo] done in {time.perf_counter() - t0:.1f} s; outputs in {out}/")
    return 0


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


def _render_image(v, f, mode: str, size: int, *, colors=None, margin: float = 0.05, cull: bool = False, name: str = "mesh"):
    """The image of one render mode, float in [0, 1]: shared by ``meshkit render`` and the demo.

    The camera looks down -z (front faces counter-clockwise seen from +z). When most of the
    surface faces away from it (a clockwise mesh, such as a BFM triangle list as stored), one
    line on stderr says so and names the fix, and the picture stays readable: shading is two-sided
    and the normal map is drawn from the faces re-wound by ``topology.orient_outward``.
    """
    import sys

    import numpy as np

    from . import render, topology

    vi = render.frame_vertices(v, size, size, margin=margin)
    kw = dict(cull_backfaces=cull)
    facing = topology.facing_fraction(v, f, (0.0, 0.0, 1.0))
    away = facing < 0.5
    if away:
        remedy = {"colour": "shaded two-sided", "normals": "normals drawn re-wound"}.get(mode, "drawn as is")
        print(f"meshkit render: warning: {name}: {100 * (1 - facing):.0f} % of the surface faces away from the camera "
              f"(clockwise winding?); {remedy}; fix the file with meshkit.topology.orient_outward", file=sys.stderr)
    if mode == "depth":
        return render.render_depth(vi, f, size, size, normalize=True, **kw)
    if mode == "normals":
        g = topology.orient_outward(v, f, view_direction=(0.0, 0.0, 1.0)) if away else f
        n = render.render_normals(vi, g, size, size, **kw)
        return np.where(np.any(n != 0, axis=2, keepdims=True), 0.5 * (n + 1.0), 0.0)
    if mode == "pncc":
        return render.render_pncc(vi, f, size, size, reference=v, **kw)
    if colors is not None:
        return render.render_colors(vi, f, np.asarray(colors)[:, :3].astype(np.float64) / 255.0, size, size, **kw)
    # shaded grey: a light above-right of the camera
    return render.render_shaded(vi, f, size, size, colors=(0.85, 0.85, 0.85), light_direction=(0.4, -0.5, 1.0),
                                two_sided=away, **kw)


def _run_render(args) -> int:
    from .io import read_mesh
    from .render import save_png
    from .validate import check_int

    size = check_int(args.size, "--size", minimum=1, maximum=1 << 15)
    m, colors = read_mesh(args.mesh, return_colors=True)
    mode = "colour" if args.mode == "color" else args.mode
    t0 = time.perf_counter()
    img = _render_image(m.vertices, m.faces, mode, size, colors=colors if mode == "colour" else None,
                        margin=args.margin, cull=args.cull, name=str(args.mesh))
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


DEMO_STEPS = [_demo_render]
DEMO_STAGE = 0
