"""Shading on fragments: per-pixel interpolation of vertex attributes and the usual render passes.

Holds ``interpolate`` (any per-vertex attribute over the fragments of ``rasterize``) and the
one-call renders built on it: ``render_colors``, ``render_shaded`` (Lambertian), ``render_depth``, ``render_normals``,
``render_pncc`` (with ``pncc_code``, the per-vertex PNCC colours) and ``render_texture``
(UV mapping with bilinear texture lookup). Image axes, pixel centres and depth sign are those of
``meshkit.render.rasterize``. Renders are float32 images; empty pixels take ``background``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from ..mesh import _vertex_normals
from ..validate import check_array, check_bool, check_faces, check_float, check_vertices
from .lighting import lambertian
from .rasterize import Fragments, _check_guard, _check_image_mesh, _check_size, _kernel_frame, _rasterize

__all__ = [
    "interpolate",
    "render_colors",
    "render_colors_batch",
    "render_shaded",
    "BatchRender",
    "render_depth",
    "render_normals",
    "render_pncc",
    "pncc_code",
    "render_texture",
]


def _check_attributes(attributes, n_vertices: int, name: str) -> tuple[np.ndarray, bool]:
    """(V, C) or (V,) finite numbers -> ((V, C) float64, was_1d)."""
    a = check_array(attributes, name, [("V",), ("V", "C")])
    if a.shape[0] != n_vertices:
        raise ValueError(f"{name}: expected one row per vertex ({n_vertices}), got {a.shape[0]} rows")
    one_d = a.ndim == 1
    return (a[:, None] if one_d else a), one_d


def _check_background(background, n_ch: int) -> np.ndarray:
    """A scalar or (C,) fill value for empty pixels -> (C,) float64."""
    b = check_array(background, "background")
    if b.ndim > 1 or (b.ndim == 1 and b.shape[0] not in (1, n_ch)):
        raise ValueError(f"background: expected a number or {n_ch} numbers, got {background!r}")
    return np.ascontiguousarray(np.broadcast_to(b.reshape(-1), (n_ch,)))


def interpolate(fragments: Fragments, faces, attributes, *, background=0.0, out=None) -> np.ndarray:
    """Interpolate a per-vertex attribute over the pixels with the fragments' barycentrics.

    ``out[j, i] = sum_k b_k * attributes[faces[face_index[j, i], k]]`` where b are the pixel's
    barycentric coordinates (recomputed exactly on the fly, never stored); empty pixels get
    ``background``. Linear in image space (orthographic: no perspective correction).

    Parameters
    ----------
    fragments : Fragments
        From ``rasterize`` (or one element of ``rasterize_batch``, or the current frame of a
        ``Rasterizer``) of this mesh.
    faces : (F, 3) int
        The faces that were rasterized. Checked by content: the very array object the fragments
        hold (``fragments.faces``, which is what was passed to the rasterizer when it was already an
        int64 array) is taken as is (do not modify it in place in between); any other array is
        validated and must equal it element for element, else ``ValueError``.
    attributes : (V, C) or (V,) float
        Any per-vertex quantity: colours, normals, UVs, coordinates, labels as floats.
    background : float or (C,) float
        Value of empty pixels.
    out : (H, W, C) float32 C-contiguous array or None
        Write the result here (reused between frames: no new image allocated), and return it.

    Returns
    -------
    (H, W, C) float32, or (H, W) for a (V,) attribute (a view of ``out`` when given).
    """
    if not isinstance(fragments, Fragments):
        raise TypeError(f"fragments: expected a Fragments from rasterize, got {type(fragments).__name__}")
    n_v = fragments.snapped_xy.shape[0]  # raises ValueError for stale fragments of a Rasterizer
    drawn = fragments.faces
    # the very array that was rasterized (and validated then) needs no second check
    f = drawn if faces is drawn else check_faces(faces, n_v, "faces", allow_repeated=True)
    if f.shape != drawn.shape:
        raise ValueError(f"faces: expected the {drawn.shape[0]} faces that were rasterized, got {f.shape[0]}")
    if f is not drawn and not np.array_equal(f, drawn):
        i = int(np.flatnonzero((f != drawn).any(axis=1))[0])
        raise ValueError(f"faces: expected the faces that were rasterized, got a different array of the same "
                         f"length (face {i} is {f[i].tolist()}, was {drawn[i].tolist()})")
    a, one_d = _check_attributes(attributes, n_v, "attributes")
    bg = _check_background(background, a.shape[1])
    if out is not None:
        want = fragments.shape + (a.shape[1],)
        if not isinstance(out, np.ndarray) or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise TypeError(f"out: expected a C-contiguous float32 array of shape {want}, got {type(out).__name__}"
                            + (f" of dtype {out.dtype}" if isinstance(out, np.ndarray) else ""))
        if out.shape != want and not (one_d and out.shape == want[:2]):
            raise ValueError(f"out: expected shape {want}, got {out.shape}")
        if out.shape != want:
            out = out.reshape(want)
    out = _interpolate(fragments, f, a, bg, out)
    return out[..., 0] if one_d else out


_scratch = threading.local()


def _plane_scratch(n_faces: int, n_cols: int) -> np.ndarray:
    """Per-thread (F, n_cols) float64 scratch of interpolate_planes, kept between calls (fresh
    pages cost more than the work)."""
    coef = getattr(_scratch, "coef", None)
    if coef is None or coef.shape[0] < n_faces or coef.shape[1] < n_cols:
        coef = _scratch.coef = np.empty((n_faces, n_cols), dtype=np.float64)
    return coef


def _face_index_scratch(height: int, width: int) -> np.ndarray:
    """Per-thread (height, width) int32 face-index buffer of the renders that return no fragments,
    kept between calls like the plane scratch (a fresh 4 MB buffer at 1024² cost ~2,000 page
    faults, ~3 ms, per call: more than the rasterization)."""
    buf = getattr(_scratch, "face_index", None)
    if buf is None or buf.size < height * width:
        buf = _scratch.face_index = np.empty(height * width, dtype=np.int32)
    return buf[:height * width].reshape(height, width)


def _interpolate(fragments: Fragments, f: np.ndarray, a: np.ndarray, bg: np.ndarray, out: np.ndarray | None = None
                 ) -> np.ndarray:
    """interpolate on validated input: (V, C) float64 attributes, (C,) background -> (H, W, C) float32."""
    from .._kernels import render as render_kernels

    h, w = fragments.shape
    if out is None:
        out = np.empty((h, w, a.shape[1]), dtype=np.float32)
    # many pixels per triangle: per-triangle planes (all computed up front) pay off; else
    # barycentrics per pixel
    if h * w >= 2 * f.shape[0]:
        coef = _plane_scratch(f.shape[0], 3 * a.shape[1])
        render_kernels.interpolate_planes(fragments.snapped_xy, f, fragments.face_index, a, bg, out, coef)
    else:
        render_kernels.interpolate_fused(fragments.snapped_xy, f, fragments.face_index, a, bg, out)
    return out


def render_colors(vertices, faces, colors, height: int, width: int, *, background=0.0, near_is_larger: bool = True,
                  cull_backfaces: bool = False) -> np.ndarray:
    """Render per-vertex colours (Gouraud interpolation) with a z-buffer.

    Parameters
    ----------
    vertices : (V, 3) float, image space (see ``rasterize``).
    faces : (F, 3) int
    colors : (V, C) float, any number of channels (e.g. RGB in [0, 1]); (V,) gives an (H, W) image.
    height, width : int
    background : float or (C,) float, the colour of empty pixels.
    near_is_larger, cull_backfaces : as in ``rasterize``.

    Returns
    -------
    (H, W, C) float32 image.
    """
    v, f, h, w = _check_image_mesh(vertices, faces, height, width)
    c, one_d = _check_attributes(colors, v.shape[0], "colors")
    bg = _check_background(background, c.shape[1])
    frag = _rasterize(v, f, h, w, check_bool(near_is_larger, "near_is_larger"), check_bool(cull_backfaces, "cull_backfaces"))
    out = _interpolate(frag, f, c, bg)
    return out[..., 0] if one_d else out


def render_shaded(vertices, faces, height: int, width: int, *, colors=(0.85, 0.85, 0.85), light_direction=(0.0, 0.0, 1.0),
                  ambient: float = 0.3, diffuse: float = 0.7, two_sided: bool = False, per_pixel: bool = False,
                  background=0.0, cull_backfaces: bool = False) -> np.ndarray:
    """Render a mesh lit by one directional light: ``colors * (ambient + diffuse * max(0, n . l))``.

    The one shading routine of meshkit's pictures (``meshkit render``, hierarchy previews,
    synthetic 300W-LP images). Normals ``n`` are the outward area-weighted vertex normals in the
    image axes (x right, y down, z towards the viewer), as in ``render_normals``; so is
    ``light_direction`` (towards the light): (0, 0, 1) lights from the camera, (0.4, -0.5, 1) from
    above right of it. By default each vertex is shaded and the shades are interpolated (Gouraud);
    ``per_pixel`` lights each pixel's interpolated, renormalized normal instead (crisper on
    coarse meshes).

    Parameters
    ----------
    vertices : (V, 3) float, image space (see ``rasterize``; the nearer the larger z).
    faces : (F, 3) int
    height, width : int
    colors : (C,) float uniform colour, or (V, C) float per-vertex colours (the albedo), e.g. RGB in [0, 1].
    light_direction : (3,) float, non-zero, the direction towards the light in image axes.
    ambient, diffuse : float >= 0
    two_sided : bool
        Light faces turned away from the viewer as if they faced it (``|n . l|`` for a light on
        the view axis).
    per_pixel : bool
        Shade interpolated per-pixel normals instead of interpolating per-vertex shades.
    background : float, (C,) float, or (height, width, C) float image: the pixels no triangle covers.
    cull_backfaces : bool, as in ``rasterize``.

    Returns
    -------
    (height, width, C) float32 image.
    """
    v, f, h, w = _check_image_mesh(vertices, faces, height, width)
    two = check_bool(two_sided, "two_sided")
    pixel = check_bool(per_pixel, "per_pixel")
    albedo = np.asarray(colors) if not isinstance(colors, (str, bytes)) else np.asarray(None)
    per_vertex = albedo.ndim == 2 and albedo.shape[0] == v.shape[0]
    if albedo.dtype.kind not in "fiu" or not (albedo.ndim == 1 or per_vertex) or not np.isfinite(albedo).all():
        raise ValueError(f"colors: expected (C,) finite numbers or ({v.shape[0]}, C) per-vertex colours, got "
                         f"{getattr(colors, 'shape', colors)!r}")
    albedo = np.ascontiguousarray(albedo, dtype=np.float64)
    c = albedo.shape[-1]
    bg = np.asarray(background, dtype=np.float64) if not isinstance(background, (str, bytes)) else None
    if bg is not None and bg.shape == (h, w, c):
        if not np.isfinite(bg).all():
            raise ValueError("background: expected finite values in the image")
    else:
        bg = _check_background(background, c)
    n = -_vertex_normals(v, f)  # the cross product of a front face points away from the viewer (left-handed axes)
    if two:
        n = np.where(n[:, 2:3] < 0, -n, n)
    frag = _rasterize(v, f, h, w, True, check_bool(cull_backfaces, "cull_backfaces"))
    if pixel:
        npix = _interpolate(frag, f, n, np.zeros(3))
        length = np.linalg.norm(npix, axis=2, keepdims=True)
        np.divide(npix, length, out=npix, where=length > 0)
        a = _interpolate(frag, f, albedo, np.zeros(c)) if per_vertex else albedo
        img = lambertian(npix, a, light_direction, ambient=ambient, diffuse=diffuse)
    else:
        shade = lambertian(n, albedo, light_direction, ambient=ambient, diffuse=diffuse).astype(np.float64)
        img = _interpolate(frag, f, shade, np.zeros(c))
    return np.where(frag.mask[..., None], img, bg).astype(np.float32)


@dataclass(frozen=True, eq=False)  # arrays inside: compare fields explicitly
class BatchRender:
    """Renders of a batch: ``images`` (B, H, W, C) float32, ``depth`` (B, H, W) float32 (NaN
    where empty), ``face_index`` (B, H, W) int32 (-1 where empty)."""

    images: np.ndarray
    depth: np.ndarray
    face_index: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """(B, H, W) bool: True where a triangle covers the pixel."""
        return self.face_index >= 0


def render_colors_batch(vertices, faces, colors, height: int, width: int, *, background=0.0,
                        near_is_larger: bool = True, cull_backfaces: bool = False) -> BatchRender:
    """Render B poses of one mesh (depth + per-vertex colours), in parallel over the images.

    Rasterization and interpolation of each image run in one numba prange iteration, so a batch
    uses all of numba's threads (``numba.set_num_threads``); every image equals what
    ``rasterize`` and ``render_colors`` give for it alone.

    Parameters
    ----------
    vertices : (B, V, 3) float, image space (see ``rasterize``).
    faces : (F, 3) int, shared.
    colors : (V, C) float shared by all images, or (B, V, C) per image.
    height, width, background, near_is_larger, cull_backfaces : as in ``render_colors``.

    Returns
    -------
    BatchRender with ``images`` (B, H, W, C), ``depth`` (B, H, W), ``face_index`` (B, H, W).
    """
    from .._kernels import render as render_kernels

    v = np.asarray(vertices) if not isinstance(vertices, (str, bytes)) and vertices is not None else vertices
    if not isinstance(v, np.ndarray) or v.ndim != 3 or v.shape[2] != 3 or v.shape[0] == 0:
        raise ValueError(f"vertices: expected shape (B, V, 3) with B >= 1, got {getattr(v, 'shape', type(v).__name__)}")
    b, n_v = v.shape[0], v.shape[1]
    flat = check_vertices(v.reshape(-1, 3), "vertices")
    f = check_faces(faces, n_v, "faces", allow_repeated=True)
    _check_guard(flat, "vertices")
    h, w = _check_size(height, width)
    c = np.asarray(colors) if not isinstance(colors, (str, bytes)) and colors is not None else colors
    if isinstance(c, np.ndarray) and c.ndim == 3:
        if c.shape[0] != b:
            raise ValueError(f"colors: expected (V, C) or ({b}, V, C) for {b} images, got shape {c.shape}")
        att = np.stack([_check_attributes(c[k], n_v, f"colors[{k}]")[0] for k in range(b)])
    else:
        att = _check_attributes(c, n_v, "colors")[0][None]
    bg = _check_background(background, att.shape[2])
    sign = 1.0 if check_bool(near_is_larger, "near_is_larger") else -1.0
    fidx, depth, images = render_kernels.render_stack(_kernel_frame(flat).reshape(b, n_v, 3), f, np.ascontiguousarray(att),
                                                      bg, h, w, sign,
                                         check_bool(cull_backfaces, "cull_backfaces"))
    return BatchRender(images, depth, fidx)


def render_depth(vertices, faces, height: int, width: int, *, background: float = 0.0, normalize: bool = False,
                 near_is_larger: bool = True, cull_backfaces: bool = False) -> np.ndarray:
    """Render the depth map: the nearest surface's z at each pixel centre.

    Parameters
    ----------
    vertices, faces, height, width, near_is_larger, cull_backfaces : as in ``rasterize``.
    background : float
        Value of empty pixels (after normalization when ``normalize``).
    normalize : bool
        Map the covered pixels' depth linearly to [0, 1] with the nearest at 1 and the farthest at
        0 (a constant depth maps to 1): a ready-to-view depth image.

    Returns
    -------
    (H, W) float32: z in the input's units and sign, or normalized.
    """
    v, f, h, w = _check_image_mesh(vertices, faces, height, width)
    bg = check_float(background, "background")
    norm = check_bool(normalize, "normalize")
    near = check_bool(near_is_larger, "near_is_larger")
    cull = check_bool(cull_backfaces, "cull_backfaces")
    from .._kernels import render as render_kernels

    # as _rasterize, with the face index in a reused buffer (only the depth is returned)
    fidx = _face_index_scratch(h, w)
    d = np.empty((h, w), dtype=np.float32)
    render_kernels.rasterize_into(_kernel_frame(v), f, 1.0 if near else -1.0, cull, fidx, d,
                                  np.empty((v.shape[0], 2), dtype=np.int32))
    empty = fidx < 0
    if norm and not empty.all():
        mask = ~empty
        z = d[mask] if near else -d[mask]
        lo, hi = float(z.min()), float(z.max())
        d[mask] = (z - lo) / (hi - lo) if hi > lo else 1.0
    # one masked pass (a copy and boolean-index assignment took 1.5 ms at 1024², this 0.3 ms)
    np.copyto(d, bg, where=empty)
    return d


def render_normals(vertices, faces, height: int, width: int, *, background=0.0, near_is_larger: bool = True,
                   cull_backfaces: bool = False) -> np.ndarray:
    """Render the normal map: interpolated area-weighted vertex normals, renormalized per pixel.

    Normals are expressed in the image axes x right, y down, z towards the viewer, so a surface
    facing the camera has n_z > 0 (for either ``near_is_larger``), assuming the mesh is wound as
    described in ``rasterize`` (front faces counter-clockwise in the image). Map to colours with
    ``(n + 1) / 2``.

    Returns
    -------
    (H, W, 3) float32 unit vectors; ``background`` where empty.
    """
    v, f, h, w = _check_image_mesh(vertices, faces, height, width)
    bg = _check_background(background, 3)
    near = check_bool(near_is_larger, "near_is_larger")
    # axes (x right, y down, z towards the viewer) are left-handed: the cross product of a
    # front face then points away from the viewer, so flip it to get outward normals
    vz = v if near else v * np.array([1.0, 1.0, -1.0])
    n = -_vertex_normals(vz, f)
    frag = _rasterize(v, f, h, w, near, check_bool(cull_backfaces, "cull_backfaces"))
    img = _interpolate(frag, f, n, np.zeros(3))
    length = np.linalg.norm(img, axis=2, keepdims=True)
    np.divide(img, length, out=img, where=length > 0)
    img[~frag.mask] = bg
    return img


def pncc_code(reference) -> np.ndarray:
    """Projected Normalized Coordinate Code colours: each axis of the reference mesh scaled to [0, 1].

    ``code[:, k] = (reference[:, k] - min_k) / (max_k - min_k)`` (3DDFA, Zhu et al. 2016); the
    reference is the mean shape in its model frame, so a vertex keeps its colour whatever the pose
    and expression of the rendered mesh. A flat axis (max = min) maps to 0.

    Parameters
    ----------
    reference : (V, 3) float

    Returns
    -------
    (V, 3) float64 in [0, 1].
    """
    r = check_vertices(reference, "reference")
    lo = r.min(axis=0)
    span = r.max(axis=0) - lo
    return np.divide(r - lo, span, out=np.zeros_like(r), where=span > 0)


def render_pncc(vertices, faces, height: int, width: int, *, reference=None, background=0.0,
                near_is_larger: bool = True, cull_backfaces: bool = False) -> np.ndarray:
    """Render PNCC: the mesh coloured by ``pncc_code(reference)``.

    Parameters
    ----------
    vertices, faces, height, width, near_is_larger, cull_backfaces : as in ``rasterize``.
    reference : (V, 3) float or None
        The mean shape (model frame) with the same vertex order; None uses ``vertices`` itself,
        which is PNCC only when the vertices are the mean shape.
    background : float or (3,) float

    Returns
    -------
    (H, W, 3) float32 in [0, 1] (background where empty).
    """
    v, f, h, w = _check_image_mesh(vertices, faces, height, width)
    ref = v if reference is None else check_vertices(reference, "reference")
    if ref.shape[0] != v.shape[0]:
        raise ValueError(f"reference: expected {v.shape[0]} vertices like vertices, got {ref.shape[0]}")
    return render_colors(v, f, pncc_code(ref), h, w, background=background, near_is_larger=near_is_larger,
                         cull_backfaces=cull_backfaces)


def render_texture(vertices, faces, uv, texture, height: int, width: int, *, background=0.0,
                   near_is_larger: bool = True, cull_backfaces: bool = False) -> np.ndarray:
    """Render a UV-mapped texture: per-pixel interpolated UV, then a bilinear texture lookup.

    UV convention (OBJ / OpenGL): u in [0, 1] left to right, v in [0, 1] bottom to top of the
    texture image; texel (row r, column c) has its centre at u = (c + 0.5) / Wt,
    v = 1 - (r + 0.5) / Ht. Lookups outside the texel centres clamp to the border texels.

    Parameters
    ----------
    vertices, faces, height, width, near_is_larger, cull_backfaces : as in ``rasterize``.
    uv : (V, 2) float
    texture : (Ht, Wt) or (Ht, Wt, C) array; uint8 is scaled to [0, 1], floats are used as is.
    background : float or (C,) float

    Returns
    -------
    (H, W, C) float32 (or (H, W) for a 2-D texture).
    """
    v, f, h, w = _check_image_mesh(vertices, faces, height, width)
    uv_, _ = _check_attributes(uv, v.shape[0], "uv")
    if uv_.shape[1] != 2:
        raise ValueError(f"uv: expected shape (V, 2), got shape {np.shape(uv)}")
    tex = np.asarray(texture)
    if tex.dtype.kind not in "fiu":
        raise TypeError(f"texture: expected a numeric image, got {tex.dtype}")
    if tex.ndim not in (2, 3) or tex.shape[0] < 1 or tex.shape[1] < 1:
        raise ValueError(f"texture: expected shape (Ht, Wt) or (Ht, Wt, C), got {tex.shape}")
    gray = tex.ndim == 2
    t = (tex.astype(np.float32) / 255.0) if tex.dtype == np.uint8 else tex.astype(np.float32)
    if gray:
        t = t[..., None]
    if not np.isfinite(t).all():
        raise ValueError("texture: expected finite values, got NaN/inf")
    bg = _check_background(background, t.shape[2])
    frag = _rasterize(v, f, h, w, check_bool(near_is_larger, "near_is_larger"), check_bool(cull_backfaces, "cull_backfaces"))
    mask = frag.mask
    uvs = _interpolate(frag, f, uv_, np.zeros(2))[mask].astype(np.float64)
    ht, wt = t.shape[:2]
    # continuous texel coordinates, texel centres at integers
    cx = np.clip(uvs[:, 0] * wt - 0.5, 0.0, wt - 1.0)
    cy = np.clip((1.0 - uvs[:, 1]) * ht - 0.5, 0.0, ht - 1.0)
    x0 = np.floor(cx).astype(np.int64)
    y0 = np.floor(cy).astype(np.int64)
    x1 = np.minimum(x0 + 1, wt - 1)
    y1 = np.minimum(y0 + 1, ht - 1)
    fx = (cx - x0)[:, None]
    fy = (cy - y0)[:, None]
    top = t[y0, x0] * (1 - fx) + t[y0, x1] * fx
    bottom = t[y1, x0] * (1 - fx) + t[y1, x1] * fx
    out = np.empty((h, w, t.shape[2]), dtype=np.float32)
    out[:] = bg
    out[mask] = top * (1 - fy) + bottom * fy
    return out[..., 0] if gray else out
