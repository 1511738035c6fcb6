"""The landmark crop of a 300W-LP sample: the crop map, resampling the image, mapping the vertices.

See the package docstring (``bfm.w300lp``) for the crop rule (face3d's). Pixel convention: the
one of docs/conventions.md ("Pixels"), pixel (r, c) centred on x = c, y = r, shared with
``meshkit.render`` and recorded in the store's ``pixel_convention`` attribute. Pillow's transforms
count pixel corners instead; :func:`crop_image` is where the two meet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from meshkit.validate import check_float, check_int

from ..model import MorphableModel
from ..pose import pose_para_to_image

__all__ = ["CropTransform", "crop_from_landmarks", "crop_image", "pose_crop_map", "crop_vertices", "reconstruct_cropped"]


@dataclass(frozen=True)
class CropTransform:
    """The crop map ``p_out = scale * (p - (x0, y0))`` in pixel-index coordinates."""

    scale: float
    x0: float
    y0: float


def crop_from_landmarks(pt2d, *, size: int = 256, margin: float = 1.5) -> CropTransform:
    """The square crop around 68 landmarks (face3d's 300W-LP rule, see the module docstring).

    Parameters
    ----------
    pt2d : (68, 2) float, x, y pixel indices.
    size : output side in pixels.
    margin : crop side / mean side of the landmark box (1.5 in face3d).
    """
    p = np.asarray(pt2d, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2 or p.shape[0] == 0:
        raise ValueError(f"pt2d: expected shape (L, 2), got shape {p.shape}")
    size = check_int(size, "size", minimum=2)
    margin = check_float(margin, "margin", minimum=0.0, strict_minimum=True)
    lo, hi = p.min(axis=0), p.max(axis=0)
    with np.errstate(over="ignore", invalid="ignore"):  # a box too large to measure is refused just below
        side = margin * float((hi - lo).sum()) / 2.0
    if not 0 < side < np.inf:
        raise ValueError(f"pt2d: expected landmarks spanning a box of positive, finite size, got a box of side {side}")
    c = (lo + hi) / 2.0
    return CropTransform(scale=(size - 1) / side, x0=float(c[0] - side / 2), y0=float(c[1] - side / 2))


def crop_image(image: np.ndarray, crop: CropTransform, size: int) -> np.ndarray:
    """Resample an (H, W, 3) uint8 image with the crop map into (size, size, 3) uint8 (bilinear).

    Output pixel (row j, column i) samples the source at pixel index ``(x0 + i / s, y0 + j / s)``
    (the inverse of ``p_out = s (p - q)``), bilinearly; points outside every source pixel are black,
    points within half a pixel of the edge repeat the edge pixel. One pass of a compiled kernel.
    """
    from ._kernels import crop_bilinear

    # numba compiles a separate specialisation for read-only arrays (PIL's images are): hand it writeable ones
    src = np.require(image, requirements=["C", "W"])
    if src.ndim != 3 or src.dtype != np.uint8:
        raise ValueError(f"image: expected an (H, W, C) uint8 array, got shape {src.shape} dtype {src.dtype}")
    out = np.empty((size, size, src.shape[2]), np.uint8)
    crop_bilinear(src, 1.0 / crop.scale, float(crop.x0), float(crop.y0), out)
    return out


def pose_crop_map(pose_para, crop: CropTransform, height: float) -> tuple[np.ndarray, np.ndarray]:
    """Pose, 300W-LP's y flip and the crop as one affine map of model-space vertices.

    ``crop(flip_y(s R v + t))`` = ``A @ v + c`` with ``A = diag(k, -k, k) s R`` and
    ``c = k (t_x - x0, height - 1 - t_y - y0, t_z)``, k = ``crop.scale`` (z is not shifted here).

    Returns
    -------
    (A (3, 3) float64, c (3,) float64).
    """
    from ..pose import pose_para_to_camera

    cam = np.asarray(pose_para_to_camera(np.asarray(pose_para, np.float64).reshape(7)), np.float64)
    k = crop.scale
    a = np.array([k, -k, k])[:, None] * cam[:, :3]
    t = cam[:, 3]
    c = np.array([k * (t[0] - crop.x0), k * (height - 1.0 - t[1] - crop.y0), k * t[2]])
    return a, c


def crop_vertices(vertices: np.ndarray, crop: CropTransform) -> tuple[np.ndarray, float]:
    """Apply the crop map to (..., V, 3) image-space vertices; z scaled and shifted to start at 0.

    Returns
    -------
    (cropped vertices float32 of the same shape, z_shift = min(s * z) that was subtracted).
    """
    v = np.array(vertices, dtype=np.float64)
    s = crop.scale
    v[..., 0] = s * (v[..., 0] - crop.x0)
    v[..., 1] = s * (v[..., 1] - crop.y0)
    v[..., 2] *= s
    z_shift = float(v[..., 2].min())
    v[..., 2] -= z_shift
    return v.astype(np.float32), z_shift


def reconstruct_cropped(model: MorphableModel, shape_para, exp_para, pose_para, crop, source_height) -> np.ndarray:
    """Rebuild a store row's cropped vertices from its parameters (the ``store="params"`` path).

    Parameters
    ----------
    shape_para : (Ks,), exp_para : (Ke,), pose_para : (7,), crop : (4,) = s, x0, y0, z_shift,
    source_height : the source image height.

    Returns
    -------
    (V, 3) float32, equal (to float32 rounding) to what ``store="vertices"`` stores.
    """
    v = model.reconstruct(np.asarray(shape_para, np.float32), np.asarray(exp_para, np.float32))
    img = pose_para_to_image(v, np.asarray(pose_para, np.float64), float(source_height))
    c = np.asarray(crop, np.float64)
    out = np.array(img, dtype=np.float64)
    out[:, 0] = c[0] * (out[:, 0] - c[1])
    out[:, 1] = c[0] * (out[:, 1] - c[2])
    out[:, 2] = c[0] * out[:, 2] - c[3]
    return out.astype(np.float32)
