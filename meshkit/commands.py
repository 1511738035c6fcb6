"""The core's subcommands of the `meshkit` command: info, decimate, spiral, render, uv, demo, warmup (a ``meshkit.cli`` plugin).

``add_commands(subparsers)`` declares them; each is a pair ``_add_<name>(subparsers)`` (arguments,
``func`` = its handler) and ``_run_<name>(args)``. Handlers import what they need lazily, so
``meshkit --help`` stays fast, and call ``check_input`` / ``check_output`` (also used by the
sampling and bfm subcommands) on every path before any work. ``DEMO_STEPS`` (the renders, the UV
maps) run first in ``meshkit demo``; ``WARMUP_STEPS`` (``meshkit.warmup.STEPS``, every kernel of
``meshkit/_kernels``) run first in ``meshkit warmup``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from .warmup import STEPS as WARMUP_STEPS

__all__ = ["add_commands", "check_output", "check_input", "mesh_suffixes", "image_suffixes", "orientation_text",
           "DEMO_STEPS", "DEMO_STAGE", "WARMUP_STEPS"]


def mesh_suffixes() -> tuple:
    """The endings ``meshkit.io.write_mesh`` writes (".ply", ".obj", ...), from ``meshkit.io.FORMATS``."""
    from .io import FORMATS

    return tuple("." + f for f in FORMATS)


def image_suffixes() -> tuple:
    """The endings ``meshkit.render.save_image`` writes (".png", ".jpg", ".jpeg")."""
    from .render.image import IMAGE_SUFFIXES

    return tuple(IMAGE_SUFFIXES)


# ---------------------------------------------------------------------------------------------
# path checks: every subcommand (core, sampling, bfm) calls these first, before any work


def check_output(path, suffixes, option: str) -> Path:
    """Check an output path before any work: its extension, and that its folder can be written.

    Parameters
    ----------
    path : str or Path
        The output file (or folder, with ``suffixes=None``).
    suffixes : tuple of str or None
        Endings the command writes (".png", ...; compared in lower case); None for an output folder
        (a store, the demo's folder), which must not be an existing file.
    option : str
        The option or argument name for the message ("--out").

    Returns
    -------
    The path as a ``Path``. Raises ``ValueError`` naming ``option``: wrong extension, the path is a
    folder where a file is expected (or a file where a folder is), or the nearest existing folder
    above it is not a writable folder (missing folders below it are created by the writers).
    """
    p = Path(path)
    if suffixes is None:
        if p.exists() and not p.is_dir():
            raise ValueError(f"{option}: expected a folder, got the existing file {str(p)!r}")
    else:
        if p.suffix.lower() not in suffixes:
            raise ValueError(f"{option}: expected a file name ending in {', '.join(suffixes)}, got {p.name!r}")
        if p.is_dir():
            raise ValueError(f"{option}: expected a file name, got the existing folder {str(p)!r}")
    parent = p.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{option}: cannot create {str(p)!r}: {str(parent)!r} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{option}: cannot write {str(p)!r}: the folder {str(parent)!r} is not writable")
    return p


def check_input(path, option: str, *, folder: bool = False) -> Path:
    """Check an input path before any work: it exists and is a file (or a folder with ``folder=True``).

    Returns the path as a ``Path``; raises ``FileNotFoundError`` ("no such file") when it does not
    exist and ``ValueError`` when it is the other kind, both naming ``option``.
    """
    p = Path(path)
    kind = "folder" if folder else "file"
    if not p.exists():
        raise FileNotFoundError(f"{option}: no such {kind}: {p}")
    if p.is_dir() != folder:
        raise ValueError(f"{option}: expected a {kind}, got {str(p)!r}, which is a {'folder' if p.is_dir() else 'file'}")
    return p


def add_commands(sub) -> None:
    """Add ``info``, ``demo``, ``spiral``, ``decimate``, ``render``, ``uv`` and ``warmup`` to ``sub`` (argparse subparsers)."""
    for add in (_add_info, _add_demo, _add_spiral, _add_decimate, _add_render, _add_uv, _add_warmup):
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

    check_input(args.mesh, "mesh")
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

    out = check_output(args.out, None, "--out")
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
# warmup


def _add_warmup(sub) -> None:
    p = sub.add_parser(
        "warmup",
        help="compile meshkit's numba kernels into numba's on-disk cache once, so that no later call pays the JIT",
        description="Compile meshkit's numba kernels (core, sampling, bfm) into numba's on-disk cache once, so that "
                    "no later call pays the JIT (the first hierarchy of the 53,215-vertex template: ~11 s cold, ~1 s "
                    "after this). The cache is in NUMBA_CACHE_DIR when that is set, else in __pycache__ next to the "
                    "kernel sources. Run it again after upgrading numba or meshkit.")
    p.set_defaults(func=_run_warmup)


def _run_warmup(args) -> int:
    """Every command module's warm-up steps (``meshkit.cli.warmup_steps``), one timed line each.

    A failing step is reported by name on stderr, exit status 1 (not 2: it is no input error).
    """
    import sys
    import traceback

    from .cli import warmup_steps
    from .warmup import WarmupError, run

    cache = os.environ.get("NUMBA_CACHE_DIR") or "__pycache__ next to the kernel sources"
    print(f"[warmup] compiling into numba's cache: {cache}", flush=True)
    try:
        run(warmup_steps(), progress=lambda line: print(line, flush=True))
    except WarmupError as e:
        traceback.print_exception(e.__cause__)
        print(f"meshkit warmup: error: {e}", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------------------------------------
# spiral


def _add_spiral(sub) -> None:
    p = sub.add_parser("spiral", help="spiral neighbourhood orderings of a mesh (SpiralNet++ / Neural3DMM) -> .npy (V, length)")
    p.add_argument("mesh", type=Path, help="mesh file (ply, obj, off, stl, npz)")
    p.add_argument("--length", type=int, default=9, help="entries per spiral, the vertex included (default: 9)")
    p.add_argument("--dilation", type=int, default=1, help="keep every d-th of the first length*d entries (default: 1)")
    p.add_argument("--style", choices=["meshkit", "spiralnet++", "neural3dmm"], default="meshkit",
                   help="meshkit's ordering (default), SpiralNet++'s (OpenMesh's order) or Neural3DMM's, row for row")
    p.add_argument("--padding", choices=["repeat", "sentinel", "nearest"], default=None,
                   help="short spirals: repeat the last index, the sentinel index V, or the nearest vertices in space "
                        "(default: the style's own: repeat, nearest (spiralnet++), sentinel (neural3dmm))")
    p.add_argument("--reference", type=int, default=0, help="neural3dmm: the reference vertex (default 0)")
    p.add_argument("--rings", type=int, default=None, help="neural3dmm: rings per spiral at most (its step_sizes)")
    p.add_argument("--out", type=Path, required=True, help="output .npy, int64 (V, length)")
    p.set_defaults(func=_run_spiral)


def _run_spiral(args) -> int:
    import numpy as np

    from .io import atomic_path, read_mesh
    from .spiral import spiral_indices

    check_input(args.mesh, "mesh")
    check_output(args.out, (".npy",), "--out")
    m = read_mesh(args.mesh)
    t0 = time.perf_counter()
    s = spiral_indices(m.faces, args.length, args.dilation, style=args.style, padding=args.padding,
                       n_vertices=m.n_vertices, vertices=m.vertices, reference=args.reference, rings=args.rings)
    dt = time.perf_counter() - t0
    with atomic_path(args.out) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, s)
    n_pad = int((s == m.n_vertices).any(axis=1).sum())  # rows holding the sentinel V (sentinel padding, neural3dmm gaps)
    pad_text = f", {n_pad} row(s) with the sentinel {m.n_vertices}" if n_pad else ""
    padding = args.padding or "the style's own"
    print(f"spirals {s.shape[0]} x {s.shape[1]} ({args.style}, dilation {args.dilation}, padding {padding}{pad_text}) "
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
    check_input(args.mesh, "mesh")
    check_output(args.out, mesh_suffixes(), "out")
    if args.matrices is not None:
        check_output(args.matrices, (".npz",), "--matrices")
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
    p = sub.add_parser("render", help="render a mesh to PNG or JPEG (depth, colour, normals, PNCC) with an automatic camera")
    p.add_argument("mesh", type=Path, help="mesh file (ply, obj, off, stl, npz), world frame: x right, y up, z to the viewer")
    p.add_argument("--mode", choices=_RENDER_MODES, default="colour",
                   help="depth (near = bright), colour (vertex colours, else shaded grey), normals ((n+1)/2), pncc")
    p.add_argument("--size", type=int, default=256, help="image side in pixels (default: 256)")
    p.add_argument("--margin", type=float, default=0.05, help="free border, fraction of the side (default: 0.05)")
    p.add_argument("--cull", action="store_true", help="drop back faces (clockwise in the image)")
    p.add_argument("--out", type=Path, required=True, help="output image: .png, or .jpg/.jpeg (JPEG, quality 95)")
    p.set_defaults(func=_run_render)


def _render_image(v, f, mode: str, size: int, *, colors=None, margin: float = 0.05, cull: bool = False, name: str = "mesh"):
    """The image of one render mode, float in [0, 1]: shared by ``meshkit render`` and the demo.

    The camera looks down -z (front faces counter-clockwise seen from +z). A mesh wound outward whose
    front looks along -z (its file puts z away from the viewer) is viewed turned 180 degrees about y
    (``render.front_view``; one line on stderr says so). When most of the surface still faces away
    (a clockwise mesh, such as a BFM triangle list as stored), one line on stderr says so and names
    the fix, and the picture stays readable: shading is two-sided and the normal map is drawn from
    the faces re-wound by ``topology.orient_outward``.
    """
    import sys

    import numpy as np

    from . import render, topology

    reference = v  # the PNCC code belongs to the vertices, not to the view
    v, turned = render.front_view(v, f)
    if turned:
        print(f"meshkit render: note: {name}: wound outward but facing -z (z points away from the viewer in this "
              "file); viewed from -z (turned 180 degrees about y)", file=sys.stderr)
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
        return render.render_pncc(vi, f, size, size, reference=reference, **kw)
    if colors is not None:
        return render.render_colors(vi, f, np.asarray(colors)[:, :3].astype(np.float64) / 255.0, size, size, **kw)
    # shaded grey: a light above-right of the camera
    return render.render_shaded(vi, f, size, size, colors=(0.85, 0.85, 0.85), light_direction=(0.4, -0.5, 1.0),
                                two_sided=away, **kw)


def _run_render(args) -> int:
    from .io import read_mesh
    from .render import save_image
    from .validate import check_int

    size = check_int(args.size, "--size", minimum=1, maximum=1 << 15)
    check_input(args.mesh, "mesh")
    check_output(args.out, image_suffixes(), "--out")
    m, colors = read_mesh(args.mesh, return_colors=True)
    mode = "colour" if args.mode == "color" else args.mode
    t0 = time.perf_counter()
    img = _render_image(m.vertices, m.faces, mode, size, colors=colors if mode == "colour" else None,
                        margin=args.margin, cull=args.cull, name=str(args.mesh))
    dt = time.perf_counter() - t0
    save_image(args.out, img)
    print(f"render {mode} {size}x{size} of {m.n_vertices} vertices / {m.n_faces} faces in {dt:.3f} s -> {args.out}")
    return 0


def _demo_render(args, v, f) -> None:
    from .render import save_png

    t0 = time.perf_counter()
    for mode in ("depth", "normals", "pncc", "colour"):
        save_png(args.out / f"render_{mode}.png", _render_image(v, f, mode, 256))
    print(f"[demo] renders: depth, normals, pncc, colour 256x256 -> {args.out}/render_*.png "
          f"({time.perf_counter() - t0:.2f} s)")


# ---------------------------------------------------------------------------------------------
# uv: position maps, photo textures unwrapped, textured export


def _add_uv(sub) -> None:
    p = sub.add_parser("uv", help="UV space: position map, texture unwrapped from a photo, textured OBJ/GLB export")
    usub = p.add_subparsers(dest="uv_command", metavar="UV_COMMAND")
    uv_help = "per-vertex UV layout: BFM_UV.mat (variable UV, (V, 2) in [0, 1]) or .npy"
    pm = usub.add_parser("position-map", help="the mesh's positions rasterized in UV space (PRNet position map)")
    pm.add_argument("mesh", type=Path, help="mesh file (ply, obj, off, stl, npz, glb)")
    pm.add_argument("--uv", type=Path, required=True, help=uv_help)
    pm.add_argument("--size", type=int, default=256, help="map side in texels (default: 256)")
    pm.add_argument("--out", type=Path, required=True,
                    help=".npy (size, size, 3) float32 positions, background 0; or .png/.jpg, the positions "
                         "scaled per axis to [0, 1] over the mesh's bounding box (a picture)")
    pm.set_defaults(func=_run_uv_position_map)
    tx = usub.add_parser("texture", help="unwrap a photo's colours into UV space (occluded texels masked)")
    tx.add_argument("image", type=Path, help="the photo (.png, .jpg)")
    tx.add_argument("mesh", type=Path, help="the mesh in the photo's image space: x right, y down in pixels, z depth "
                                            "(near = larger)")
    tx.add_argument("--uv", type=Path, required=True, help=uv_help)
    tx.add_argument("--size", type=int, default=256, help="map side in texels (default: 256)")
    tx.add_argument("--symmetric", action="store_true", help="fill occluded texels from their mirror across u = 0.5")
    tx.add_argument("--out", type=Path, required=True, help="output image: .png (alpha = texels seen) or .jpg")
    tx.set_defaults(func=_run_uv_texture)
    ex = usub.add_parser("export", help="write a textured mesh: .obj (+ .mtl + .png beside it) or one .glb")
    ex.add_argument("mesh", type=Path, help="mesh file (ply, obj, off, stl, npz, glb)")
    ex.add_argument("--uv", type=Path, required=True, help=uv_help)
    ex.add_argument("--texture", type=Path, required=True,
                    help="texture image in meshkit.render.uv's texel convention (e.g. from `meshkit uv texture`); "
                         "the UVs are written shifted by half a texel so viewers show it texel-aligned")
    ex.add_argument("--out", type=Path, required=True, help="output .obj or .glb")
    ex.set_defaults(func=_run_uv_export)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _read_uv(path: Path):
    """A per-vertex UV layout from BFM_UV.mat (variable ``UV``) or .npy, as an (N, 2) array (checked by its users).

    The same layout ``bfm.formats.read_uv`` reads; read here with scipy so the core does not import bfm.
    """
    import numpy as np

    if path.suffix.lower() == ".npy":
        return np.load(path, allow_pickle=False)
    if path.suffix.lower() != ".mat":
        raise ValueError(f"--uv: expected a BFM_UV.mat-style .mat or an .npy file, got {path.name!r}")
    import scipy.io

    d = scipy.io.loadmat(str(path))
    if "UV" not in d:
        found = ", ".join(k for k in d if not k.startswith("__")) or "nothing"
        raise ValueError(f"--uv: expected the variable 'UV' ((N, 2) float64) in {path}, found {found}")
    return d["UV"]


def _read_image(path: Path):
    """An image file as a uint8 array (H, W, 3) (grey and alpha dropped to RGB)."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _run_uv_position_map(args) -> int:
    import numpy as np

    from .io import atomic_path, read_mesh
    from .render import save_image, uv_position_map
    from .validate import check_int

    size = check_int(args.size, "--size", minimum=2, maximum=1 << 15)
    check_input(args.mesh, "mesh")
    check_input(args.uv, "--uv")
    check_output(args.out, (".npy",) + image_suffixes(), "--out")
    m = read_mesh(args.mesh)
    t0 = time.perf_counter()
    pm = uv_position_map(m.vertices, m.faces, _read_uv(args.uv), size)
    dt = time.perf_counter() - t0
    if args.out.suffix.lower() == ".npy":
        with atomic_path(args.out) as tmp, open(tmp, "wb") as fh:
            np.save(fh, pm.image)
    else:
        save_image(args.out, _position_picture(pm, m.vertices))
    print(f"uv position map {size}x{size}: {int(pm.mask.sum())} covered texels of {m.n_vertices} vertices "
          f"in {dt:.3f} s -> {args.out}")
    return 0


def _position_picture(pm, vertices):
    """A position map as a picture: x, y, z scaled to [0, 1] over the vertices' bounding box; black outside."""
    import numpy as np

    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    img = (pm.image - lo) / np.where(hi > lo, hi - lo, 1.0)
    return np.where(pm.mask[..., None], np.clip(img, 0.0, 1.0), 0.0)


def _run_uv_texture(args) -> int:
    import numpy as np

    from .io import read_mesh
    from .render import save_image, uv_texture
    from .validate import check_int

    size = check_int(args.size, "--size", minimum=2, maximum=1 << 15)
    for path, name in ((args.image, "image"), (args.mesh, "mesh"), (args.uv, "--uv")):
        check_input(path, name)
    check_output(args.out, image_suffixes(), "--out")
    photo = _read_image(args.image)
    m = read_mesh(args.mesh)
    t0 = time.perf_counter()
    tex = uv_texture(photo, m.vertices, m.faces, _read_uv(args.uv), size, symmetric=args.symmetric)
    dt = time.perf_counter() - t0
    png = args.out.suffix.lower() == ".png"
    save_image(args.out, np.dstack([tex.image, tex.mask]) if png else tex.image)
    print(f"uv texture {size}x{size}: {int(tex.mask.sum())} of {int(tex.covered.sum())} covered texels seen "
          f"in {dt:.3f} s -> {args.out}")
    return 0


def _run_uv_export(args) -> int:
    from .io import read_mesh, write_mesh

    for path, name in ((args.mesh, "mesh"), (args.uv, "--uv"), (args.texture, "--texture")):
        check_input(path, name)
    check_output(args.out, (".obj", ".glb"), "--out")
    m = read_mesh(args.mesh)
    texture = _read_image(args.texture)
    path = write_mesh(args.out, m.vertices, m.faces, uv=_file_uv(_read_uv(args.uv), texture.shape), texture=texture)
    print(f"textured mesh: {m.n_vertices} vertices, texture {texture.shape[1]}x{texture.shape[0]} -> {path}")
    return 0


def _file_uv(uv, shape):
    """UVs of a map in meshkit.render.uv's texel convention, shifted for texture files (docs/conventions.md).

    A map's texel (r, c) sits at ``u = c / (W - 1)``; texture files put it at ``(c + 0.5) / W``, so
    ``u' = (u * (W - 1) + 0.5) / W`` (and the same for v with H) shows the map texel-aligned.
    """
    import numpy as np

    from .render.uv import _check_uv

    a = _check_uv(uv)
    n = np.array([shape[1], shape[0]], dtype=np.float64)
    return (a * (n - 1.0) + 0.5) / n


def _demo_uv(args, v, f) -> None:
    """A position map of the template and a texture unwrapped from a render of it, and a textured face.obj."""
    import numpy as np

    from . import render
    from .io import write_mesh
    from .synthetic import template_uv

    t0 = time.perf_counter()
    uv = template_uv(v)
    pm = render.uv_position_map(v, f, uv, 256)
    render.save_image(args.out / "uv_position_map.png", _position_picture(pm, v))
    # the "photo": the template turned 30 degrees to its left, a colour checker (8 x 8 in UV) shaded
    checker = (np.floor(uv[:, 0] * 8) + np.floor(uv[:, 1] * 8)) % 2
    colors = np.stack([0.35 + 0.55 * uv[:, 0], 0.3 + 0.4 * checker, 0.85 - 0.55 * uv[:, 1]], axis=1)
    a = np.radians(30.0)
    turned = v @ np.array([[np.cos(a), 0.0, np.sin(a)], [0.0, 1.0, 0.0], [-np.sin(a), 0.0, np.cos(a)]]).T
    vi = render.frame_vertices(turned, 512, 512)
    photo = render.render_shaded(vi, f, 512, 512, colors=colors, light_direction=(0.3, -0.4, 1.0), background=1.0)
    render.save_image(args.out / "uv_photo.png", photo)
    tex = render.uv_texture(photo, vi, f, uv, 256)  # alpha = the texels the render shows
    render.save_image(args.out / "uv_texture.png", np.dstack([tex.image, tex.mask]))
    filled = render.symmetric_fill(tex)  # the hidden side of the nose from its mirror, for the textured mesh
    obj = write_mesh(args.out / "face.obj", v, f, uv=_file_uv(uv, filled.image.shape), texture=filled.image)
    print(f"[demo] uv: position map, a render turned 30 degrees and its texture unwrapped ({int(tex.mask.sum())} of "
          f"{int(tex.covered.sum())} texels seen, {int(filled.mask.sum())} after the mirror fill) 256x256 -> "
          f"{args.out}/uv_position_map.png, uv_photo.png, uv_texture.png; textured {obj} "
          f"({time.perf_counter() - t0:.2f} s)")


DEMO_STEPS = [_demo_render, _demo_uv]
DEMO_STAGE = 0
