"""Z-buffer rasterization of triangle meshes given in image space -> per-pixel fragments.

Holds ``Fragments`` (which triangle each pixel sees, where in it, at what depth), ``rasterize``
(one mesh), ``Rasterizer`` (many frames of one size with reused buffers) and ``rasterize_batch``
(many meshes, in parallel over images), plus the shared input checks of the render package.

Image-space conventions (the face3d / 3DDFA / 300W-LP ones; docs/conventions.md states them once):

* x points right and y points down, in pixels; pixel (row j, column i) is CENTRED on the integer
  point (x = i, y = j) and covers [i - 0.5, i + 0.5) x [j - 0.5, j + 0.5). So a vertex at (0, 0)
  is the centre of the top-left pixel, and a point at 300W-LP's ``pt2d`` (or face3d's, 3DDFA's
  projected vertices after the ``h - y - 1`` flip) lands on the pixel those files mean. The
  numba kernels sample pixel centres at (i + 0.5, j + 0.5) in their own frame; the public
  functions here add 0.5 to x and y before calling them (``_kernel_frame``), the only place the
  two frames meet.
* z is depth along the viewing axis, larger = nearer the camera by default (``near_is_larger``);
  pass ``near_is_larger=False`` for camera coordinates where z grows away from the camera.
* Projection is orthographic (the vertices are already projected): attributes are interpolated
  linearly in image space, which is exact here, so there is no perspective correction.
* A triangle whose corners appear counter-clockwise in the image (y down) faces the viewer. A
  mesh wound counter-clockwise around outward normals in a y-up world frame keeps that property
  after the usual image-space flip ``y -> h - y``. Both windings are drawn unless
  ``cull_backfaces=True``, which drops the clockwise ones.
"""

from __future__ import annotations

import numpy as np

from ..validate import check_bool, check_faces, check_int, check_mesh, check_vertices

__all__ = ["Fragments", "Rasterizer", "rasterize", "rasterize_batch", "GUARD_BAND", "SUBPIXEL"]

#: Vertices are snapped to 1/SUBPIXEL of a pixel before the (exact, integer) coverage test.
SUBPIXEL = 256
#: Largest |x| or |y| accepted, in pixels: fixed-point coordinates fit int32 and the edge
#: functions (products of their differences) int64.
GUARD_BAND = float(1 << 21)
#: Largest image side accepted.
MAX_SIDE = 1 << 15


class Fragments:
    """What each pixel of a rasterized image sees.

    Attributes
    ----------
    face_index : (H, W) int32
        Index of the nearest triangle covering the pixel centre, -1 where no triangle does.
    depth : (H, W) float32
        The interpolated z of the input vertices at the pixel centre (same sign convention as the
        input); NaN where empty.
    snapped_xy : (V, 2) int32
        The vertices' x + 0.5, y + 0.5 (the kernels' pixel-corner frame) in fixed point (1/256
        pixel) as the coverage test saw them; barycentrics are recomputed exactly from these.
    barycentric : (H, W, 3) float32, computed on first access and cached
        Barycentric coordinates of the pixel centre in its triangle, in the order of the face's
        own vertices ``faces[face_index]``; >= 0, summing to 1 (float rounding). Zero where empty.
        ``interpolate`` recomputes them on the fly instead of reading this array (faster).
    faces : (F, 3) int64
        The faces that were rasterized (``face_index`` points into them).

    Fragments made by a :class:`Rasterizer` live in its reused buffers and carry the number of the
    frame they belong to: once the Rasterizer has drawn another frame, reading any attribute raises
    ``ValueError`` (as reading a closed file does) instead of returning the next frame's pixels
    mixed with this frame's faces. ``copy()`` gives fragments that own their arrays.
    """

    __slots__ = ("_face_index", "_depth", "_snapped_xy", "_faces", "_owner", "_frame", "_barycentric")

    def __init__(self, face_index: np.ndarray, depth: np.ndarray, snapped_xy: np.ndarray, faces: np.ndarray, *,
                 owner: Rasterizer | None = None):
        self._face_index = face_index
        self._depth = depth
        self._snapped_xy = snapped_xy
        self._faces = faces
        self._owner = owner
        self._frame = None if owner is None else owner.frame
        self._barycentric = None

    def _current(self) -> Fragments:
        """self, after checking that its Rasterizer has not drawn another frame since."""
        if self._owner is not None and self._owner.frame != self._frame:
            raise ValueError(
                f"fragments: expected fragments of the current frame, got frame {self._frame} of a Rasterizer now at "
                f"frame {self._owner.frame} (its buffers were reused; call .copy() on fragments you keep)")
        return self

    @property
    def face_index(self) -> np.ndarray:
        return self._current()._face_index

    @property
    def depth(self) -> np.ndarray:
        return self._current()._depth

    @property
    def snapped_xy(self) -> np.ndarray:
        return self._current()._snapped_xy

    @property
    def faces(self) -> np.ndarray:
        return self._current()._faces

    @property
    def barycentric(self) -> np.ndarray:
        from .._kernels import render as render_kernels

        self._current()
        if self._barycentric is None:
            self._barycentric = render_kernels.barycentric(self._snapped_xy, self._faces, self._face_index)
        return self._barycentric

    @property
    def mask(self) -> np.ndarray:
        """(H, W) bool: True where a triangle covers the pixel."""
        return self.face_index >= 0

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the image."""
        return self.face_index.shape

    def copy(self) -> Fragments:
        """Fragments owning copies of these arrays (they outlive the Rasterizer's next frame)."""
        self._current()
        out = Fragments(self._face_index.copy(), self._depth.copy(), self._snapped_xy.copy(), self._faces.copy())
        return out

    def __repr__(self) -> str:
        state = "" if self._owner is None else f", frame={self._frame}"
        return f"Fragments(shape={self._face_index.shape}, faces={self._faces.shape[0]}{state})"


def _kernel_frame(v: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Integer pixel centres (the public convention) -> the kernels' frame, whose pixel centres sit
    at i + 0.5: ``v`` (..., 3) with 0.5 added to x and y, into ``out`` (same shape, float64) or a new
    array. Exact for points on the 1/256-pixel grid the kernels snap to (within a float64 rounding,
    ~1e-16 pixel, elsewhere), so ties on pixel centres reach the top-left fill rule unchanged."""
    return np.add(v, _HALF_PIXEL, out=out)


#: What ``_kernel_frame`` adds: half a pixel on x and y, nothing on z.
_HALF_PIXEL = np.array([0.5, 0.5, 0.0])


def _check_size(height, width) -> tuple[int, int]:
    h = check_int(height, "height", minimum=1, maximum=MAX_SIDE)
    w = check_int(width, "width", minimum=1, maximum=MAX_SIDE)
    return h, w


def _check_guard(v: np.ndarray, name: str) -> None:
    """Refuse x/y beyond the fixed-point guard band (a sign of un-projected model coordinates)."""
    from .._kernels import render as render_kernels

    m = float(render_kernels.max_abs_xy(v)) if v.size else 0.0
    if m > GUARD_BAND:
        raise ValueError(
            f"{name}: expected image-space x and y within +-{GUARD_BAND:.0f} pixels (the rasterizer's "
            f"fixed-point range), got |x| or |y| up to {m:.6g}; project the mesh into the image first"
        )


def _check_image_mesh(vertices, faces, height, width):
    v, f = check_mesh(vertices, faces, allow_repeated=True)
    _check_guard(v, "vertices")
    h, w = _check_size(height, width)
    return v, f, h, w


def rasterize(vertices, faces, height: int, width: int, *, near_is_larger: bool = True,
              cull_backfaces: bool = False) -> Fragments:
    """Rasterize an image-space triangle mesh with a z-buffer: nearest triangle per pixel.

    Coverage is decided at pixel centres (the integer points x = i, y = j) with exact integer edge
    functions on vertices snapped to 1/256 pixel, and the top-left fill rule: a pixel centre exactly on an edge
    shared by two triangles belongs to exactly one of them, so a closed or tiled surface has no
    cracks and no double coverage. Degenerate triangles (zero area after snapping, including faces
    that repeat a vertex index) cover nothing;
    off-screen parts are clipped. Depth is tested per pixel, nearer wins; on exactly equal depth
    the lower face index wins (deterministic). No perspective correction: the vertices are an
    orthographic image-space projection, where linear interpolation is exact. See the module
    docstring for the axes.

    Parameters
    ----------
    vertices : (V, 3) float
        Image-space positions: x right and y down in pixels (pixel (j, i) centred on x = i, y = j),
        z depth (larger = nearer by default).
    faces : (F, 3) int
        Triangles, 0-based.
    height, width : int
        Image size in pixels (>= 1).
    near_is_larger : bool
        True (default, face3d / 3DDFA) when larger z is nearer the camera; False when larger z is
        farther (camera coordinates with z forward).
    cull_backfaces : bool
        Drop triangles that appear clockwise in the image (back faces); default draws both.

    Returns
    -------
    Fragments
        ``face_index`` (H, W) int32 (-1 empty), ``depth`` (H, W) float32 (input z, NaN empty),
        ``barycentric`` (H, W, 3) float32 (computed when first read).
    """
    v, f, h, w = _check_image_mesh(vertices, faces, height, width)
    return _rasterize(v, f, h, w, check_bool(near_is_larger, "near_is_larger"), check_bool(cull_backfaces, "cull_backfaces"))


def _rasterize(v: np.ndarray, f: np.ndarray, h: int, w: int, near: bool, cull: bool) -> Fragments:
    """rasterize on validated input (float64 vertices, int64 faces, checked sizes and flags)."""
    from .._kernels import render as render_kernels

    fidx, depth, xy = render_kernels.rasterize_one(_kernel_frame(v), f, h, w, 1.0 if near else -1.0, cull)
    return Fragments(fidx, depth, xy, f)


class Rasterizer:
    """``rasterize`` for many frames of one size, reusing its buffers (no per-frame allocation).

    Large images spend more time getting fresh memory pages from the system than rasterizing;
    this holds the face-index and depth buffers and the vertex scratch between calls. The
    returned Fragments' arrays ARE those buffers: the next call overwrites them, and counts the
    frames (``frame``) so that reading fragments of an earlier frame raises ``ValueError`` (call
    ``Fragments.copy()`` on what you keep). Pair it with ``interpolate(..., out=image)`` to reuse
    the output image too.

    >>> r = Rasterizer(1024, 1024)
    >>> for v in frames:                                    # doctest: +SKIP
    ...     frag = r(v, faces)
    ...     interpolate(frag, faces, colors, out=image)

    Parameters
    ----------
    height, width : int
    near_is_larger, cull_backfaces : as in ``rasterize``.
    """

    def __init__(self, height: int, width: int, *, near_is_larger: bool = True, cull_backfaces: bool = False):
        self.height, self.width = _check_size(height, width)
        self.near_is_larger = check_bool(near_is_larger, "near_is_larger")
        self.cull_backfaces = check_bool(cull_backfaces, "cull_backfaces")
        self._fbuf = np.empty((self.height, self.width), dtype=np.int32)
        self._zbuf = np.empty((self.height, self.width), dtype=np.float32)
        self._xy = np.empty((0, 2), dtype=np.int32)
        self._shifted = np.empty((0, 3), dtype=np.float64)  # the vertices in the kernels' frame
        self.frame = 0  # number of frames drawn; Fragments remember theirs

    def __call__(self, vertices, faces) -> Fragments:
        """Rasterize one frame (see ``rasterize``); the result lives in this object's buffers."""
        from .._kernels import render as render_kernels

        v, f = check_mesh(vertices, faces, allow_repeated=True)
        _check_guard(v, "vertices")
        n = v.shape[0]
        if self._xy.shape[0] < n:
            self._xy = np.empty((n, 2), dtype=np.int32)
            self._shifted = np.empty((n, 3), dtype=np.float64)
        xy = self._xy[:n]
        self.frame += 1  # before drawing: earlier fragments are stale even if this call fails
        sign = 1.0 if self.near_is_larger else -1.0
        render_kernels.rasterize_into(_kernel_frame(v, self._shifted[:n]), f, sign, self.cull_backfaces,
                                      self._fbuf, self._zbuf, xy)
        return Fragments(self._fbuf, self._zbuf, xy, f, owner=self)


def rasterize_batch(vertices, faces, height: int, width: int, *, near_is_larger: bool = True,
                    cull_backfaces: bool = False) -> list[Fragments]:
    """Rasterize many meshes into same-size images, in parallel over the images (numba prange).

    Parameters
    ----------
    vertices : (B, V, 3) float with ``faces`` (F, 3) int shared by all, or a sequence of meshes
        given as ``(vertices, faces)`` pairs or objects with ``.vertices`` / ``.faces`` (``faces``
        then None).
    faces : (F, 3) int or None
    height, width, near_is_larger, cull_backfaces
        As in ``rasterize``.

    Returns
    -------
    list of B Fragments, each as ``rasterize`` would return for that mesh (views into shared
    (B, H, W) blocks). The number of threads is numba's (``numba.set_num_threads``).
    """
    from .._kernels import render as render_kernels

    h, w = _check_size(height, width)
    sign = 1.0 if check_bool(near_is_larger, "near_is_larger") else -1.0
    cull = check_bool(cull_backfaces, "cull_backfaces")
    if isinstance(vertices, np.ndarray) and vertices.ndim == 3:
        if faces is None:
            raise ValueError("faces: expected an (F, 3) integer array shared by the (B, V, 3) vertices, got None")
        b, n_v = vertices.shape[0], vertices.shape[1]
        if b == 0:
            raise ValueError(f"vertices: expected at least one mesh, got shape {vertices.shape}")
        if vertices.shape[2] != 3:
            raise ValueError(f"vertices: expected shape (B, V, 3), got shape {vertices.shape}")
        flat = check_vertices(vertices.reshape(-1, 3), "vertices")
        f = check_faces(faces, n_v, "faces", allow_repeated=True)
        _check_guard(flat, "vertices")
        fidx, depth, xy = render_kernels.rasterize_stack(_kernel_frame(flat).reshape(b, n_v, 3), f, h, w, sign, cull)
        return [Fragments(fidx[k], depth[k], xy[k], f) for k in range(b)]
    if faces is not None:
        raise ValueError("faces: expected None when vertices is a sequence of meshes (each carries its faces)")
    if isinstance(vertices, np.ndarray):
        raise ValueError(f"vertices: expected a (B, V, 3) array or a sequence of meshes, got shape {vertices.shape}")
    meshes = list(vertices)
    if not meshes:
        raise ValueError("vertices: expected at least one mesh, got an empty sequence")
    vs, fs = [], []
    for k, m in enumerate(meshes):
        mv, mf = (m.vertices, m.faces) if hasattr(m, "vertices") else m
        mv, mf = check_mesh(mv, mf, vertices_name=f"vertices[{k}]", faces_name=f"faces[{k}]", allow_repeated=True)
        vs.append(mv)
        fs.append(mf)
    flat = np.concatenate(vs)
    stacked_f = np.concatenate(fs)
    v_start = np.concatenate([[0], np.cumsum([len(x) for x in vs])]).astype(np.int64)
    f_end = np.cumsum([len(x) for x in fs]).astype(np.int64)
    f_start = np.concatenate([[0], f_end[:-1]]).astype(np.int64)
    _check_guard(flat, "vertices")
    fidx, depth, xy = render_kernels.rasterize_many(_kernel_frame(flat), stacked_f, v_start, f_start, f_end, h, w, sign, cull)
    return [Fragments(fidx[k], depth[k], xy[v_start[k]:v_start[k + 1]], stacked_f[f_start[k]:f_end[k]])
            for k in range(len(f_start))]
