"""UV space: position maps (PRNet), bilinear lookup back to the vertices, and photo textures unwrapped.

Holds ``UVLayout`` (a mesh's UV layout rasterized once at one map size; ``UVLayout.map`` then
interpolates any per-vertex quantity over it), ``UVMap`` (a map and its masks),
``uv_position_map``, ``sample_uv_map``, ``uv_texture`` and ``symmetric_fill``. Everything reuses
the z-buffer rasterizer of ``meshkit.render.rasterize``: a UV layout is rasterized as a flat mesh
at z = 0 whose x, y are the texel coordinates below.

UV convention (the face3d / PRNet one, ``process_uv`` in face3d and PRNet's
``generate_posmap_300WLP.py``, so our maps line up texel for texel with theirs and with their
UV index files such as ``uv_kpt_ind``):

* u in [0, 1] runs left to right and v in [0, 1] bottom to top of the map, and [0, 1] spans the
  texel centres from corner to corner: texel (row r, column c) of a size x size map is the point
  ``u = c / (size - 1)``, ``v = 1 - r / (size - 1)``; equivalently a vertex lands at column
  ``u * (size - 1)`` and row ``(1 - v) * (size - 1)``. So u = 0 is the centre of the first
  column, not its left edge. These texel coordinates are image coordinates of the rasterizer as
  they are (integer pixel centres, docs/conventions.md): no half-texel shift anywhere.
* This differs by at most half a texel from the OBJ / OpenGL convention of ``render_texture`` and of
  texture files (texel centre at ``(c + 0.5) / size``): 0.2 % of the map at 256.
* A texel is *covered* when its centre lies in a UV triangle, decided by the rasterizer's exact
  coverage test (top-left fill rule: a centre exactly on an edge shared by two triangles belongs
  to one of them; a centre exactly on the layout's right or bottom boundary belongs to none).
  Overlapping UV triangles are resolved by the lower face index (flat z-buffer), but a layout
  should have no overlaps. The *mask* of a ``UVMap`` marks the texels that hold a value: the
  covered ones for a position map; the covered ones seen in the photo for a texture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..validate import check_bool, check_faces, check_float, check_int, check_vertices
from .rasterize import MAX_SIDE, Fragments, _check_guard, _check_size, _rasterize
from .shading import _check_attributes, _check_background, _interpolate

__all__ = ["UVLayout", "UVMap", "uv_position_map", "sample_uv_map", "uv_texture", "symmetric_fill"]


@dataclass(frozen=True, eq=False)  # arrays inside: compare fields explicitly
class UVMap:
    """A map in UV space and its masks.

    Attributes
    ----------
    image : (size, size, C) float32 (or (size, size) for a one-channel quantity)
        The values; ``background`` (0 by default) where ``mask`` is False.
    mask : (size, size) bool
        Texels holding a value (covered, and for ``uv_texture`` seen in the photo or filled from
        their mirror texel).
    covered : (size, size) bool
        Texels whose centre lies in a UV triangle (the layout's footprint); ``mask`` implies it.
    """

    image: np.ndarray
    mask: np.ndarray
    covered: np.ndarray


def _check_uv(uv, n_vertices: int | None = None, name: str = "uv") -> np.ndarray:
    """(V, 2) finite floats in [0, 1] (one row per vertex when n_vertices is given) -> float64."""
    a = check_vertices(uv, name, dims=2)
    if n_vertices is not None and a.shape[0] != n_vertices:
        raise ValueError(f"{name}: expected one row per vertex ({n_vertices}), got {a.shape[0]} rows")
    lo, hi = float(a.min()), float(a.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{name}: expected u and v in [0, 1], got values in [{lo:.6g}, {hi:.6g}]")
    return a


class UVLayout:
    """A mesh's UV layout rasterized once at one map size, for many maps of meshes with these faces.

    The texel -> (face, barycentrics) correspondence depends only on ``uv``, ``faces`` and
    ``size``, so it is computed here once; ``map`` then costs one interpolation per call
    (0.4 ms for 53,215 vertices at 256², against 1.9 ms with the rasterization: see
    benchmarks/README.md). ``uv_position_map`` is ``UVLayout(uv, faces, size).map(vertices)``.

    Parameters
    ----------
    uv : (V, 2) float in [0, 1]
        Per-vertex UV coordinates (module docstring for the axes).
    faces : (F, 3) int
        Triangles, 0-based; faces repeating a vertex cover nothing.
    size : int
        Side of the square map in texels (2 to 32768; PRNet uses 256).

    Attributes
    ----------
    uv (V, 2) float64, faces (F, 3) int64, size int; ``fragments`` (the rasterization in texel
    coordinates: ``face_index`` (size, size) int32, -1 outside); ``covered`` (size, size) bool.
    """

    def __init__(self, uv, faces, size: int = 256):
        self.uv = _check_uv(uv)
        self.faces = check_faces(faces, self.uv.shape[0], "faces", allow_repeated=True)
        self.size = check_int(size, "size", minimum=2, maximum=MAX_SIDE)
        s = self.size - 1
        # texel (r, c) is the rasterizer's pixel (r, c), centred on x = c, y = r
        xyz = np.zeros((self.uv.shape[0], 3))
        xyz[:, 0] = self.uv[:, 0] * s
        xyz[:, 1] = (1.0 - self.uv[:, 1]) * s
        self.fragments: Fragments = _rasterize(xyz, self.faces, self.size, self.size, True, False)
        self.covered: np.ndarray = self.fragments.mask

    @property
    def n_vertices(self) -> int:
        return self.uv.shape[0]

    def map(self, values, *, background=0.0) -> UVMap:
        """Interpolate a per-vertex quantity over the covered texels (linear in UV space).

        Parameters
        ----------
        values : (V, C) or (V,) float
            Positions (a position map), colours, normals, ... one row per vertex of the layout.
        background : float or (C,) float
            Value of the texels that are not covered.

        Returns
        -------
        UVMap with ``image`` (size, size, C) float32 (or (size, size) for (V,) values) and
        ``mask`` = ``covered``.
        """
        a, one_d = _check_attributes(values, self.n_vertices, "values")
        bg = _check_background(background, a.shape[1])
        img = _interpolate(self.fragments, self.faces, a, bg)
        return UVMap(img[..., 0] if one_d else img, self.covered.copy(), self.covered.copy())


def uv_position_map(vertices, faces, uv, size: int = 256, *, background=0.0) -> UVMap:
    """The mesh's positions rasterized in UV space: a PRNet-style position map.

    Each covered texel holds the barycentric interpolation of ``vertices`` over the UV triangle
    that covers it (texel convention in the module docstring); the rest hold ``background``.
    For many meshes with the same faces and UVs, build a ``UVLayout`` once and call its ``map``.

    Parameters
    ----------
    vertices : (V, 3) float
        Any per-vertex positions: image space (PRNet), model space, ...
    faces : (F, 3) int
    uv : (V, 2) float in [0, 1]
    size : int
        Map side in texels (default 256).
    background : float or (3,) float

    Returns
    -------
    UVMap: ``image`` (size, size, 3) float32, ``mask`` = ``covered`` (size, size) bool.
    """
    v = check_vertices(vertices, "vertices")
    return UVLayout(_check_uv(uv, v.shape[0]), faces, size).map(v, background=background)


#: How far sample_uv_map keeps its bilinear offsets from 0 and 1 (see there).
_EDGE = 1e-9


def sample_uv_map(uv_map, uv, *, mask=None) -> np.ndarray:
    """Bilinear lookup of a UV map at given UVs (e.g. back to per-vertex values).

    The point (u, v) sits at column ``u * (W - 1)`` and row ``(1 - v) * (H - 1)`` (module
    docstring); its value is the bilinear blend of the four surrounding texels, restricted to the
    texels in ``mask``: the weights of masked-out texels are dropped and the rest renormalized, so
    a point at the layout's border is not blended with the background. The fractional offsets
    are kept 1e-9 inside (0, 1), so a point exactly on the row or column of masked-out texels (a
    layout border lying on a texel line, where the fill rule leaves texels uncovered) takes the
    limit of the blend from the masked-in side. A point none of whose four texels is in the mask
    gets NaN.

    Parameters
    ----------
    uv_map : UVMap, or (H, W, C) / (H, W) float array (H, W >= 2)
        A ``UVMap`` brings its own ``mask``.
    uv : (N, 2) float in [0, 1]
    mask : (H, W) bool or None
        Texels holding valid values, for an array ``uv_map``; None = all of them.

    Returns
    -------
    (N, C) float64, or (N,) for a 2-D map.
    """
    if isinstance(uv_map, UVMap):
        if mask is not None:
            raise ValueError("mask: expected None with a UVMap (it carries its own mask), got an array")
        img, m = uv_map.image, uv_map.mask
    else:
        if isinstance(uv_map, (str, bytes)) or uv_map is None:
            raise TypeError(f"uv_map: expected a UVMap or an (H, W, C) float array, got {type(uv_map).__name__}")
        img = np.asarray(uv_map)
        if img.dtype.kind not in "fiu":
            raise TypeError(f"uv_map: expected a numeric (H, W, C) array, got dtype {img.dtype}")
        m = mask
    if img.ndim not in (2, 3) or img.shape[0] < 2 or img.shape[1] < 2:
        raise ValueError(f"uv_map: expected shape (H, W) or (H, W, C) with H, W >= 2, got {img.shape}")
    h, w = img.shape[:2]
    if m is None:
        m = np.ones((h, w), dtype=bool)
    else:
        m = np.asarray(m)
        if m.dtype != bool or m.shape != (h, w):
            raise ValueError(f"mask: expected a bool array of shape {(h, w)}, got {m.dtype} {m.shape}")
    q = _check_uv(uv, name="uv")
    gray = img.ndim == 2
    vals = np.asarray(img, dtype=np.float64).reshape(h, w, -1)
    cx = q[:, 0] * (w - 1)
    cy = (1.0 - q[:, 1]) * (h - 1)
    x0 = np.minimum(np.floor(cx).astype(np.int64), w - 2)
    y0 = np.minimum(np.floor(cy).astype(np.int64), h - 2)
    # offsets kept a hair inside (0, 1): a point exactly on the row or column of a masked-out
    # texel (a layout border on a texel line) takes the limit of the blend from the masked-in side
    fx = np.clip(cx - x0, _EDGE, 1.0 - _EDGE)
    fy = np.clip(cy - y0, _EDGE, 1.0 - _EDGE)
    total = np.zeros((q.shape[0], vals.shape[2]))
    weight = np.zeros(q.shape[0])
    for dy, dx, wk in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        wk = wk * m[y0 + dy, x0 + dx]
        total += wk[:, None] * vals[y0 + dy, x0 + dx]
        weight += wk
    with np.errstate(invalid="ignore", divide="ignore"):
        out = total / weight[:, None]
    out[weight <= 0] = np.nan
    return out[:, 0] if gray else out


def _check_photo(image) -> np.ndarray:
    """(H, W) or (H, W, C) numeric photo -> (H, W, C) float32 (uint8 scaled to [0, 1])."""
    if isinstance(image, (str, bytes)) or image is None:
        raise TypeError(f"image: expected an (H, W) or (H, W, C) numeric array, got {type(image).__name__}")
    a = np.asarray(image)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"image: expected a numeric (H, W) or (H, W, C) array, got dtype {a.dtype}")
    if a.ndim not in (2, 3) or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"image: expected shape (H, W) or (H, W, C), got shape {a.shape}")
    t = a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)
    if not np.isfinite(t).all():
        raise ValueError("image: expected finite values, got NaN/inf")
    return t.reshape(a.shape[0], a.shape[1], -1)


def uv_texture(image, image_vertices, faces, uv, size: int = 256, *, symmetric: bool = False,
               near_is_larger: bool = True, mask_backfaces: bool = True, eps: float = 1.0,
               background=0.0) -> UVMap:
    """Unwrap a photo's colours into UV space, masking the texels the photo does not see.

    Each covered texel is a point on the mesh (``UVLayout.map(image_vertices)``: its image x, y
    and depth z); it takes the photo's bilinear colour at (x, y) (pixel (r, c) centred on x = c,
    y = r as in ``rasterize``; clamped to the border pixels). It is masked out when the photo cannot show it:

    * (x, y) lies outside the image's pixels ([-0.5, W - 0.5) x [-0.5, H - 0.5));
    * its triangle faces away from the camera (clockwise in the image, ``mask_backfaces``);
    * it is occluded: the z-buffer of the mesh at the pixel containing (x, y) holds a triangle
      whose plane, evaluated at (x, y), is nearer than the texel by more than ``eps``.

    ``symmetric=True`` then fills the covered texels left masked from their mirror texel
    (``symmetric_fill``), for layouts symmetric about u = 0.5.

    Parameters
    ----------
    image : (H, W, C) or (H, W) array
        The photo; uint8 is scaled to [0, 1], floats are used as is.
    image_vertices : (V, 3) float
        The mesh in the photo's image space (see ``rasterize``: x right, y down in pixels, z depth).
    faces : (F, 3) int
    uv : (V, 2) float in [0, 1]
    size : int
        Map side in texels.
    symmetric : bool
        Fill occluded texels from the mirror side.
    near_is_larger : bool
        As in ``rasterize``.
    mask_backfaces : bool
        Mask texels of triangles that face away from the camera (default True).
    eps : float
        Depth tolerance of the occlusion test, in the units of z (pixels for 300W-LP / 3DDFA
        image-space meshes, whose z is scaled like x and y).
    background : float or (C,) float
        Colour of masked texels.

    Returns
    -------
    UVMap: ``image`` (size, size, C) float32 (or (size, size) for a 2-D photo), ``mask`` the texels
    with a colour, ``covered`` the layout's footprint.
    """
    photo = _check_photo(image)
    gray = np.ndim(image) == 2
    v = check_vertices(image_vertices, "image_vertices")
    _check_guard(v, "image_vertices")
    layout = UVLayout(_check_uv(uv, v.shape[0]), faces, size)
    near = check_bool(near_is_larger, "near_is_larger")
    cull = check_bool(mask_backfaces, "mask_backfaces")
    tol = check_float(eps, "eps", minimum=0.0)
    bg = _check_background(background, photo.shape[2])
    sym = check_bool(symmetric, "symmetric")
    h, w = _check_size(photo.shape[0], photo.shape[1])
    f = layout.faces

    # the texels' points on the mesh, in image space (float64 from the exact barycentrics)
    r, c = np.nonzero(layout.covered)
    tri = layout.fragments.face_index[r, c].astype(np.int64)
    bary = layout.fragments.barycentric[r, c].astype(np.float64)
    p = np.einsum("nk,nkd->nd", bary, v[f[tri]])
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    seen = (x >= -0.5) & (x < w - 0.5) & (y >= -0.5) & (y < h - 0.5)  # inside the image's pixels
    if cull:
        a, b, cc = v[f[tri, 0]], v[f[tri, 1]], v[f[tri, 2]]
        area = (b[:, 0] - a[:, 0]) * (cc[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (cc[:, 0] - a[:, 0])
        seen &= area < 0  # counter-clockwise in the image (y down) = front face, as in rasterize
    # occlusion: depth of the visible surface at (x, y) from the z-buffer's triangle there
    zbuf = _rasterize(v, f, h, w, near, False).face_index
    px = np.clip(np.floor(x + 0.5).astype(np.int64), 0, w - 1)  # the pixel whose square holds (x, y)
    py = np.clip(np.floor(y + 0.5).astype(np.int64), 0, h - 1)
    front = zbuf[py, px].astype(np.int64)
    has = seen & (front >= 0) & (front != tri)
    k = np.flatnonzero(has)
    z_front = _plane_depth(v, f[front[k]], x[k], y[k])
    sign = 1.0 if near else -1.0
    seen[k] &= ~(sign * (z_front - z[k]) > tol)

    # photo colour at the seen texels (bilinear between the integer pixel centres)
    out = np.empty((layout.size, layout.size, photo.shape[2]), dtype=np.float32)
    out[:] = bg
    s = np.flatnonzero(seen)
    out[r[s], c[s]] = _bilinear(photo, x[s], y[s])
    mask = np.zeros_like(layout.covered)
    mask[r[s], c[s]] = True
    result = UVMap(out, mask, layout.covered.copy())
    if sym:
        result = symmetric_fill(result)
    if gray:
        result = UVMap(result.image[..., 0], result.mask, result.covered)
    return result


def _plane_depth(v: np.ndarray, tri: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """z of the planes through triangles v[tri] (T, 3) at the points (x, y) (barycentric extrapolation)."""
    a, b, c = v[tri[:, 0]], v[tri[:, 1]], v[tri[:, 2]]
    d = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    wb = ((x - a[:, 0]) * (c[:, 1] - a[:, 1]) - (y - a[:, 1]) * (c[:, 0] - a[:, 0])) / d
    wc = ((b[:, 0] - a[:, 0]) * (y - a[:, 1]) - (b[:, 1] - a[:, 1]) * (x - a[:, 0])) / d
    return a[:, 2] + wb * (b[:, 2] - a[:, 2]) + wc * (c[:, 2] - a[:, 2])


def _bilinear(img: np.ndarray, cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
    """(H, W, C) image at continuous pixel-index coordinates (centres at integers), border-clamped."""
    h, w = img.shape[:2]
    cx = np.clip(cx, 0.0, w - 1.0)
    cy = np.clip(cy, 0.0, h - 1.0)
    x0 = np.floor(cx).astype(np.int64)
    y0 = np.floor(cy).astype(np.int64)
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    fx = (cx - x0)[:, None]
    fy = (cy - y0)[:, None]
    top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
    bottom = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def symmetric_fill(uv_map: UVMap) -> UVMap:
    """Fill the covered texels that hold no value from their mirror texel across u = 0.5.

    Texel (r, c) mirrors texel (r, size - 1 - c), i.e. u -> 1 - u at the same v: right for a
    left/right symmetric layout (BFM's UV and the synthetic model's are). A covered texel outside
    the mask takes its mirror's value when the mirror is in the mask; texels with no visible mirror
    stay masked.

    Parameters
    ----------
    uv_map : UVMap (e.g. from ``uv_texture``)

    Returns
    -------
    A new UVMap: filled ``image``, ``mask`` extended by the filled texels, same ``covered``.
    """
    if not isinstance(uv_map, UVMap):
        raise TypeError(f"uv_map: expected a UVMap (from uv_texture or UVLayout.map), got {type(uv_map).__name__}")
    fill = uv_map.covered & ~uv_map.mask & uv_map.mask[:, ::-1]
    img = uv_map.image.copy()
    img[fill] = uv_map.image[:, ::-1][fill]
    return UVMap(img, uv_map.mask | fill, uv_map.covered.copy())
