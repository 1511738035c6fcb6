"""Images: float <-> uint8 conversion, PNG/JPEG output (pillow, atomic write) and alpha overlay."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io import atomic_path
from ..validate import check_float, check_image, check_int

__all__ = ["to_uint8", "save_png", "save_image", "IMAGE_SUFFIXES", "overlay"]

#: File name endings ``save_image`` writes, and the pillow format of each.
IMAGE_SUFFIXES = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}


def to_uint8(image) -> np.ndarray:
    """Convert an image to uint8: floats are taken in [0, 1] (clipped, rounded to nearest,
    NaN -> 0), uint8 is returned as is, bool maps to 0/255, other integers must lie in [0, 255].

    Parameters
    ----------
    image : (H, W) or (H, W, C) array

    Returns
    -------
    uint8 array of the same shape.
    """
    a = check_image(image, "image")
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if a.dtype.kind in "iu":
        if a.size and (a.min() < 0 or a.max() > 255):
            raise ValueError(f"image: expected integer values in [0, 255], got range [{a.min()}, {a.max()}]")
        return a.astype(np.uint8)
    f = np.nan_to_num(a.astype(np.float64), nan=0.0)
    return np.rint(np.clip(f, 0.0, 1.0) * 255.0).astype(np.uint8)


def save_png(path, image) -> Path:
    """Write an image as PNG (grey, RGB or RGBA by channel count), atomically (temp file + rename).

    Parameters
    ----------
    path : str or Path
        Written as PNG whatever its extension (``save_image`` chooses by extension).
    image : (H, W) or (H, W, 1|3|4) array, converted with ``to_uint8``.

    Returns
    -------
    The path written.
    """
    return _save(Path(path), image, "PNG", 95)


def save_image(path, image, *, quality: int = 95) -> Path:
    """Write an image as PNG or JPEG by the file extension (.png, .jpg, .jpeg), atomically.

    Any other extension is refused before anything is written. JPEG has no alpha channel: an RGBA
    image is refused for .jpg (write .png, or drop the alpha first).

    Parameters
    ----------
    path : str or Path ending in .png, .jpg or .jpeg (any case).
    image : (H, W) or (H, W, 1|3|4) array, converted with ``to_uint8``.
    quality : int in [1, 95]
        JPEG quality (pillow's scale; ignored for PNG, which is lossless).

    Returns
    -------
    The path written.
    """
    path = Path(path)
    fmt = IMAGE_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"path: expected a file name ending in {', '.join(IMAGE_SUFFIXES)}, got {path.name!r}")
    q = check_int(quality, "quality", minimum=1, maximum=95)
    return _save(path, image, fmt, q)


def _save(path: Path, image, fmt: str, quality: int) -> Path:
    """Convert with ``to_uint8`` and write in pillow format ``fmt`` through a temporary file."""
    from PIL import Image

    u = to_uint8(image)
    if u.ndim == 3 and u.shape[2] == 1:
        u = u[..., 0]
    if fmt == "JPEG" and u.ndim == 3 and u.shape[2] != 3:
        raise ValueError(f"image: JPEG holds grey or RGB images, got {u.shape[2]} channels; write a .png instead")
    options = {"optimize": True} if fmt == "PNG" else {"quality": quality}
    with atomic_path(path) as tmp:
        Image.fromarray(u).save(tmp, format=fmt, **options)
    return path


def overlay(image, rendered, mask, alpha: float = 0.5) -> np.ndarray:
    """Blend a render onto an image where the mask is set: ``(1 - alpha) * image + alpha * rendered``.

    Parameters
    ----------
    image : (H, W, C) or (H, W) array, uint8 or float in [0, 1].
    rendered : same shape; uint8 or float in [0, 1] (converted to the image's scale).
    mask : (H, W) bool, e.g. ``fragments.mask``.
    alpha : float in [0, 1], the render's opacity.

    Returns
    -------
    Array of the image's shape and dtype (uint8 rounded to nearest); unchanged outside the mask.
    """
    img = check_image(image, "image")
    ren = check_image(rendered, "rendered")
    if ren.shape != img.shape:
        raise ValueError(f"rendered: expected the image's shape {img.shape}, got {ren.shape}")
    m = np.asarray(mask)
    if m.dtype != np.bool_:
        raise TypeError(f"mask: expected a bool array of shape {img.shape[:2]}, got dtype {m.dtype}")
    if m.shape != img.shape[:2]:
        raise ValueError(f"mask: expected shape {img.shape[:2]}, got {m.shape}")
    a = check_float(alpha, "alpha", minimum=0.0, maximum=1.0)
    f_img = img.astype(np.float64) / (255.0 if img.dtype == np.uint8 else 1.0)
    f_ren = ren.astype(np.float64) / (255.0 if ren.dtype == np.uint8 else 1.0)
    out = f_img.copy()
    out[m] = (1.0 - a) * f_img[m] + a * f_ren[m]
    if img.dtype == np.uint8:
        return np.rint(np.clip(out, 0.0, 1.0) * 255.0).astype(np.uint8)
    return out.astype(img.dtype if img.dtype.kind == "f" else np.float64)
