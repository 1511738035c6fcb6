"""Mesh files: read/write ply, obj, off, stl, glb (through trimesh) and npz, preserving vertex order.

Nothing is merged, reordered or dropped on the way in or out: the i-th vertex of the file is
the i-th row of ``vertices`` (trimesh is always called with ``process=False`` and
``maintain_order=True``). STL stores every triangle with its own three corners, so an STL file
reads as 3F unshared vertices; :func:`merge_vertices` is the separate, explicit step that welds
them. Per-vertex colours are kept where the format holds them (ply, obj, npz; trimesh writes
none to off and stl).

Textured meshes: ``write_mesh(path, vertices, faces, uv=..., texture=...)`` writes an .obj with
its .mtl and .png beside it (same stem), or a single binary glTF .glb, that trimesh, pyvista / VTK,
MeshLab and Blender open with the texture applied. UVs are per vertex (one ``vt`` per ``v``, same
index: the vertex order is kept), in the OBJ / glTF-on-disk sense: u left to right, v bottom to top
of the texture image (the ``meshkit.render.uv`` maps use the same axes, so a ``uv_texture`` result
is written as is; their texel centres are half a texel from the OBJ convention's, see there).

All writes are atomic: the file is written under a temporary name in the target folder and
renamed into place, so a crash never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np

from .mesh import Mesh
from .validate import check_float, check_mesh, check_vertices

__all__ = ["read_mesh", "write_mesh", "merge_vertices", "atomic_path", "FORMATS"]

FORMATS = ("ply", "obj", "off", "stl", "npz", "glb")


@contextlib.contextmanager
def atomic_path(path, *, durable: bool = False):
    """Context manager yielding a temporary path beside ``path``; on success it is renamed onto
    ``path`` (atomic on POSIX), on error it is removed and ``path`` is left untouched.

    ``durable=True`` also flushes the file to disk (fsync) before the rename, for markers that a
    resumed job trusts after a power loss; it costs a disk round trip, so it is off by default.

    >>> with atomic_path("out.npy") as tmp:          # doctest: +SKIP
    ...     np.save(tmp, array)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + "".join(path.suffixes), dir=path.parent)
    os.close(fd)
    # mkstemp creates the file 0600; give it the permissions a plain open() would (0666 & ~umask)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield Path(tmp)
        if durable:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _format(path: Path, fmt: str | None) -> str:
    ext = (fmt or path.suffix.lstrip(".")).lower()
    if ext not in FORMATS:
        raise ValueError(f"path: expected a file ending in one of {', '.join('.' + f for f in FORMATS)}, got {str(path)!r}")
    return ext


def _colors_to_uint8(colors, n: int) -> np.ndarray:
    c = np.asarray(colors)
    if c.ndim != 2 or c.shape[0] != n or c.shape[1] not in (3, 4):
        raise ValueError(f"colors: expected shape ({n}, 3) or ({n}, 4), got shape {c.shape}")
    if c.dtype.kind == "f":
        if not np.isfinite(c).all() or c.min() < 0 or c.max() > 1:
            raise ValueError("colors: expected float colours in [0, 1] (or uint8 in [0, 255])")
        c = np.round(c * 255.0)
    elif c.dtype.kind in "iu":
        if c.min() < 0 or c.max() > 255:
            raise ValueError("colors: expected integer colours in [0, 255]")
    else:
        raise TypeError(f"colors: expected a float or integer array, got dtype {c.dtype}")
    c = c.astype(np.uint8)
    if c.shape[1] == 3:
        c = np.hstack([c, np.full((n, 1), 255, np.uint8)])
    return c


def read_mesh(path, *, format: str | None = None, return_colors: bool = False, return_uv: bool = False):
    """Read a triangle mesh, keeping the file's vertex order exactly.

    Parameters
    ----------
    path : str or Path, a .ply, .obj, .off, .stl, .glb or .npz file (``format`` overrides the
        suffix). An .npz holds ``vertices`` (V, 3), ``faces`` (F, 3) and optionally ``colors``
        (V, 4) uint8 and ``uv`` (V, 2).
    return_colors : bool
        Also return per-vertex colours (V, 4) uint8 RGBA, or None when the file has none.
    return_uv : bool
        Also return per-vertex texture coordinates (V, 2) float64 (u right, v up), or None when the
        file has none.

    Returns
    -------
    Mesh, followed by the colours and then the UVs when asked for.

    Raises
    ------
    FileNotFoundError for a missing file; ValueError for an unreadable or non-triangle file.
    """
    path = Path(path)
    fmt = _format(path, format)
    if not path.is_file():
        raise FileNotFoundError(f"path: no such file: {str(path)!r}")
    colors = uv = None
    if fmt == "npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                missing = {"vertices", "faces"} - set(z.files)
                if missing:
                    raise ValueError(f"expected arrays 'vertices' and 'faces', found {sorted(z.files)}")
                v, f = z["vertices"], z["faces"]
                colors = z["colors"] if "colors" in z.files else None
                uv = z["uv"] if "uv" in z.files else None
        except ValueError as e:
            raise ValueError(f"path: could not read {str(path)!r} as an npz mesh: {e}") from e
        except Exception as e:  # zipfile.BadZipFile, EOFError, OSError on truncated files
            raise ValueError(f"path: could not read {str(path)!r} as an npz mesh: {type(e).__name__}: {e}") from e
    else:
        import trimesh

        _check_declared_counts(path, fmt)
        try:
            tm = trimesh.load(path, file_type=fmt, process=False, maintain_order=True, force="mesh")
        except Exception as e:  # trimesh raises many kinds for malformed files
            raise ValueError(f"path: could not read {str(path)!r} as a {fmt} mesh: {type(e).__name__}: {e}") from e
        if not isinstance(tm, trimesh.Trimesh) or len(tm.faces) == 0:
            raise ValueError(f"path: {str(path)!r} holds no triangle faces")
        v, f = np.asarray(tm.vertices), np.asarray(tm.faces)
        if getattr(tm.visual, "kind", None) == "vertex":
            colors = np.asarray(tm.visual.vertex_colors, dtype=np.uint8)
        if getattr(tm.visual, "uv", None) is not None and len(tm.visual.uv) == len(v):
            uv = np.asarray(tm.visual.uv, dtype=np.float64)
    try:
        mesh = Mesh(v, f)
    except (TypeError, ValueError) as e:
        raise ValueError(f"path: {str(path)!r} is not a valid triangle mesh: {e}") from e
    out = (mesh,) + ((colors,) if return_colors else ()) + ((uv,) if return_uv else ())
    return out if len(out) > 1 else mesh


def _check_declared_counts(path: Path, fmt: str) -> None:
    """Refuse a text file whose header counts disagree with its data lines (trimesh would read
    such a file as another mesh: face lines taken as vertices, or lines dropped).

    ASCII PLY: the header's element counts must add up to the number of data lines (one element
    per line, as the PLY format specifies). OFF: the vertex and face counts must add up to the
    number of data lines. Binary STL: the triangle count in its header must match the file's size
    (84 + 50 bytes per triangle); a file that does not is read as ASCII STL only when it starts
    with ``solid``. Binary PLY is length-checked by trimesh. Comments and blank lines are ignored.
    """
    if fmt == "stl":
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(84)
        n = int.from_bytes(head[80:84], "little") if len(head) == 84 else -1
        if size != 84 + 50 * n and not head.lstrip().startswith(b"solid"):
            raise ValueError(f"path: {str(path)!r} is a binary STL declaring {max(n, 0)} triangles "
                             f"({84 + 50 * max(n, 0)} bytes) but holds {size} bytes")
    elif fmt == "ply":
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
        end = head.find(b"end_header")
        if not head.startswith(b"ply") or end < 0:
            raise ValueError(f"path: {str(path)!r} is not a PLY file (no 'ply' ... 'end_header' header)")
        header = head[:end].decode("ascii", "replace").split("\n")
        if not any(line.split()[:2] == ["format", "ascii"] for line in header):
            return
        counts = []
        for line in header:
            words = line.split()
            if words[:1] == ["element"]:
                if len(words) != 3 or not words[2].isdigit():
                    raise ValueError(f"path: {str(path)!r} has a malformed PLY header line {line.strip()!r}")
                counts.append((words[1], int(words[2])))
        body = Path(path).read_bytes()[end:].split(b"\n", 1)
        n_lines = sum(1 for line in body[1].splitlines() if line.strip()) if len(body) > 1 else 0
        declared = sum(c for _, c in counts)
        if n_lines != declared:
            what = ", ".join(f"{c} {name}" for name, c in counts)
            raise ValueError(f"path: {str(path)!r} declares {what} element(s) ({declared} data lines) in its PLY "
                             f"header but holds {n_lines} data lines")
    elif fmt == "off":
        lines = []
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                line = line.split("#", 1)[0].strip()
                if line:
                    lines.append(line)
        if not lines or not lines[0].split()[0].endswith("OFF"):
            raise ValueError(f"path: {str(path)!r} is not an OFF file (expected 'OFF' on its first line)")
        first = lines[0].split()[1:]
        counts, data = (first, lines[1:]) if first else ((lines[1].split() if len(lines) > 1 else []), lines[2:])
        if len(counts) < 2 or not all(c.isdigit() for c in counts[:3]):
            raise ValueError(f"path: {str(path)!r} has no valid 'vertices faces edges' counts line after 'OFF', "
                             f"got {' '.join(counts)!r}")
        n_v, n_f = int(counts[0]), int(counts[1])
        if len(data) != n_v + n_f:
            raise ValueError(f"path: {str(path)!r} declares {n_v} vertices and {n_f} faces ({n_v + n_f} data lines) "
                             f"in its OFF header but holds {len(data)} data lines")


def write_mesh(path, vertices, faces=None, *, colors=None, uv=None, texture=None, format: str | None = None) -> Path:
    """Write a triangle mesh atomically, vertex order as given.

    Parameters
    ----------
    path : str or Path, ending in .ply, .obj, .off, .stl, .glb or .npz (or give ``format``).
    vertices : (V, 3) float, or a :class:`Mesh` (then ``faces`` is omitted).
    faces : (F, 3) int.
    colors : (V, 3|4) per-vertex colours, uint8 in [0, 255] or float in [0, 1]; ply, obj, glb and
        npz hold them; asking for them in off or stl raises ``ValueError`` (they would be lost).
    uv : (V, 2) float or None
        Per-vertex texture coordinates (u right, v up, as OBJ and ``meshkit.render.uv``); obj, glb
        and npz hold them. Not with ``colors`` (viewers show one or the other).
    texture : (H, W), (H, W, 3) or (H, W, 4) image or None
        uint8, or float in [0, 1]; needs ``uv``. For .obj it is written as ``<stem>.png`` beside
        it with a ``<stem>.mtl`` material that the OBJ names (all three atomically, the OBJ last);
        a .glb embeds it. Formats without textures (ply, off, stl, npz) raise ``ValueError``.

    Notes
    -----
    Vertices keep full float64 precision in ply (binary doubles), obj and off (each coordinate as
    the shortest decimal that reads back to the same float64) and npz; glb and stl store float32.

    Returns
    -------
    The path written (the .obj or .glb; the .mtl and .png share its stem).
    """
    if isinstance(vertices, Mesh):
        if faces is not None:
            raise TypeError("faces: expected None when vertices is a Mesh")
        v, f = vertices.vertices, vertices.faces
    else:
        if faces is None:
            raise TypeError("faces: expected an (F, 3) integer array, got None")
        v, f = check_mesh(vertices, faces)
    path = Path(path)
    fmt = _format(path, format)
    if colors is not None and fmt in ("off", "stl"):
        raise ValueError(f"colors: the {fmt} writer cannot store per-vertex colours; write ply, obj or npz to keep them")
    c = None if colors is None else _colors_to_uint8(colors, len(v))
    t = uvs = None
    if uv is not None:
        if fmt not in ("obj", "glb", "npz"):
            raise ValueError(f"uv: the {fmt} writer cannot store texture coordinates; write obj, glb or npz to keep them")
        if c is not None:
            raise ValueError("colors: expected None when uv is given (a mesh is written either textured or coloured)")
        uvs = check_vertices(uv, "uv", dims=2)
        if len(uvs) != len(v):
            raise ValueError(f"uv: expected one row per vertex ({len(v)}), got {len(uvs)} rows")
    if texture is not None:
        if uvs is None:
            raise ValueError("uv: expected (V, 2) texture coordinates with a texture, got None")
        if fmt not in ("obj", "glb"):
            raise ValueError(f"texture: the {fmt} writer cannot store a texture image; write obj or glb")
        t = _texture_to_uint8(texture)
    if fmt == "obj":
        _write_obj(path, v, f, colors=c, uv=uvs, texture=t)
        return path
    with atomic_path(path) as tmp:
        if fmt == "npz":
            arrays = {"vertices": np.asarray(v, np.float64), "faces": np.asarray(f, np.int64)}
            if c is not None:
                arrays["colors"] = c
            if uvs is not None:
                arrays["uv"] = uvs
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
        elif fmt == "ply":
            _write_ply(tmp, v, f, c)
        elif fmt == "off":
            _write_off(tmp, v, f)
        else:
            import trimesh

            tm = trimesh.Trimesh(vertices=np.array(v), faces=np.array(f), vertex_colors=c, process=False)
            if uvs is not None:
                from PIL import Image

                material = trimesh.visual.material.PBRMaterial(
                    baseColorTexture=None if t is None else Image.fromarray(t), baseColorFactor=[255, 255, 255, 255])
                tm.visual = trimesh.visual.TextureVisuals(uv=uvs, material=material)
            data = tm.export(file_type=fmt)
            with open(tmp, "wb") as fh:
                fh.write(data.encode() if isinstance(data, str) else data)
    return path


def _texture_to_uint8(texture) -> np.ndarray:
    """(H, W), (H, W, 3) or (H, W, 4) uint8 or float in [0, 1] -> uint8 (H, W[, C]) for PNG."""
    if isinstance(texture, (str, bytes)):
        raise TypeError(f"texture: expected an (H, W, 3) image array, got {type(texture).__name__}")
    a = np.asarray(texture)
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)) or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"texture: expected shape (H, W), (H, W, 3) or (H, W, 4), got shape {a.shape}")
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if a.dtype.kind != "f":
        raise TypeError(f"texture: expected uint8 or float in [0, 1], got dtype {a.dtype}")
    if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
        raise ValueError("texture: expected float values in [0, 1] (or uint8 in [0, 255])")
    return np.round(a * 255.0).astype(np.uint8)


def _write_obj(path: Path, v: np.ndarray, f: np.ndarray, *, colors: np.ndarray | None = None,
               uv: np.ndarray | None = None, texture: np.ndarray | None = None) -> None:
    """OBJ with coordinates as shortest float repr (exact float64 round trip): ``v x y z`` (plus
    ``r g b`` in [0, 1] with colours: the common extension trimesh, MeshLab and Blender read), one
    ``vt`` per ``v`` with UVs (faces ``a/a b/b c/c``); with a texture also ``<stem>.mtl`` and
    ``<stem>.png``. Each file is written atomically, the OBJ last, so an OBJ on disk always finds
    its material and image."""
    lines = ["# written by meshkit"]
    if texture is not None:
        from PIL import Image

        png, mtl = path.with_suffix(".png"), path.with_suffix(".mtl")
        with atomic_path(png) as tmp:
            Image.fromarray(texture).save(tmp, format="PNG")
        with atomic_path(mtl) as tmp:
            tmp.write_text(f"# written by meshkit\nnewmtl material0\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nd 1\nillum 1\n"
                           f"map_Kd {png.name}\n")
        lines += [f"mtllib {mtl.name}", "usemtl material0"]
    if colors is None:
        lines += [f"v {x!r} {y!r} {z!r}" for x, y, z in v.tolist()]
    else:
        rgb = (colors[:, :3] / 255.0).tolist()
        lines += [f"v {x!r} {y!r} {z!r} {r!r} {g!r} {b!r}" for (x, y, z), (r, g, b) in zip(v.tolist(), rgb, strict=True)]
    if uv is not None:
        lines += [f"vt {a!r} {b!r}" for a, b in uv.tolist()]
        lines += [f"f {a}/{a} {b}/{b} {c}/{c}" for a, b, c in (f + 1).tolist()]
    else:
        lines += [f"f {a} {b} {c}" for a, b, c in (f + 1).tolist()]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def _write_off(path, v: np.ndarray, f: np.ndarray) -> None:
    """OFF with coordinates as shortest float repr (exact float64 round trip)."""
    lines = ["OFF", f"{len(v)} {len(f)} 0"]
    lines += [f"{x!r} {y!r} {z!r}" for x, y, z in v.tolist()]
    lines += [f"3 {a} {b} {c}" for a, b, c in f.tolist()]
    Path(path).write_text("\n".join(lines) + "\n")


def _write_ply(path, v: np.ndarray, f: np.ndarray, colors: np.ndarray | None) -> None:
    """Binary little-endian PLY with float64 vertices (trimesh's exporter rounds to float32, which
    loses ~4e-3 at BFM's micrometre scale) and int32 faces; colours as uchar RGBA."""
    props = [("x", "<f8"), ("y", "<f8"), ("z", "<f8")]
    if colors is not None:
        props += [("red", "u1"), ("green", "u1"), ("blue", "u1"), ("alpha", "u1")]
    vert = np.empty(len(v), dtype=props)
    vert["x"], vert["y"], vert["z"] = v[:, 0], v[:, 1], v[:, 2]
    if colors is not None:
        for k, name in enumerate(("red", "green", "blue", "alpha")):
            vert[name] = colors[:, k]
    face = np.empty(len(f), dtype=[("n", "u1"), ("i", "<i4", (3,))])
    face["n"] = 3
    face["i"] = f
    ply_types = {"<f8": "double", "u1": "uchar"}
    header = ["ply", "format binary_little_endian 1.0", "comment written by meshkit", f"element vertex {len(v)}"]
    header += [f"property {ply_types[t]} {name}" for name, t in props]
    header += [f"element face {len(f)}", "property list uchar int vertex_indices", "end_header"]
    with open(path, "wb") as fh:
        fh.write(("\n".join(header) + "\n").encode("ascii"))
        fh.write(vert.tobytes())
        fh.write(face.tobytes())


def merge_vertices(vertices, faces, *, tolerance: float = 0.0):
    """Weld vertices closer than ``tolerance`` (0 = exactly equal), the explicit merging step.

    The first occurrence of each group is kept, in file order; faces are re-indexed and faces that
    collapse (two corners welded together) are dropped.

    Returns
    -------
    vertices (V', 3) float64, faces (F', 3) int64, index (V,) int64 mapping old -> new vertex.
    """
    v, f = check_mesh(vertices, faces, allow_repeated=True)
    tol = check_float(tolerance, "tolerance", minimum=0.0)
    if tol > 0:
        from scipy.spatial import cKDTree

        pairs = cKDTree(v).query_pairs(tol, output_type="ndarray")
        import scipy.sparse as sp
        from scipy.sparse.csgraph import connected_components

        g = sp.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(v), len(v)))
        _, labels = connected_components(g, directed=False)
    else:
        _, labels = np.unique(v, axis=0, return_inverse=True)
        labels = labels.reshape(-1)
    # representative of each group = its first vertex; new ids in order of first appearance
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(first, kind="stable")
    new_id_of_label = np.empty(len(first), dtype=np.int64)
    new_id_of_label[order] = np.arange(len(first))
    index = new_id_of_label[labels]
    new_v = v[np.sort(first)]
    new_f = index[f]
    keep = (new_f[:, 0] != new_f[:, 1]) & (new_f[:, 1] != new_f[:, 2]) & (new_f[:, 0] != new_f[:, 2])
    return new_v, new_f[keep], index
