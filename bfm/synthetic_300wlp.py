"""A synthetic 300W-LP tree, written in the real layout from a model with known random parameters.

This file holds ``write_synthetic_300wlp``: for tests and ``meshkit demo`` it writes

    ROOT/<SUBSET>/<SUBSET>_<id>_1_0.jpg + .mat         SUBSET in AFW, HELEN, IBUG, LFPW
    ROOT/<SUBSET>_Flip/<same stem>.jpg + .mat          the mirrored samples
    ROOT/landmarks/<SUBSET>/<stem>_pts.mat             pts_2d (68, 2), pts_3d (68, 2); no _Flip folders

with the keys, shapes and dtypes of the real files (../shared/REAL_FILES.md, measured):
``Pose_Para`` (1, 7) float32, ``Shape_Para`` (199, 1) float64, ``Exp_Para`` (29, 1) float64,
``Color_Para`` (1, 7) float32, ``Illum_Para`` (1, 10) float64, ``Tex_Para`` (199, 1) float64,
``pt2d`` (2, 68) float64 and ``roi`` (1, 4) int16; images 450 x 450 RGB JPEG. The pose is drawn,
rounded to float32 as the file stores it, and the image and ``pt2d`` are made from that stored
pose, so file and image agree exactly. ``roi`` is a square box around the face (centred on the
landmark box, side twice its larger extent, rounded to whole pixels), not clipped to the image:
like the real one (e.g. ``[53, -166, 638, 419]``) it may be negative or exceed the image.

Each image is a render (``meshkit.render``) of ``model.reconstruct(Shape_Para, Exp_Para)`` posed
with ``bfm.pose.pose_para_to_image`` (pixel-index coordinates, the rasterizer's own: pixel (r, c)
centred on x = c, y = r) over a background.

``style="photo"`` (default) gives the images a photo's entropy, so that sizes and speeds measured on
them predict the real ones: a scene of 1/f^2-spectrum colour noise (the power spectrum of natural
images) with hard-edged shapes, hair (vertically stretched noise) round the head's top and woven
clothes below the chin; the face lit from a random side, with skin texture (pore-scale and blotchy
albedo noise), a slight optical blur, then sensor noise (read + shot noise), saved as JPEG quality
80. Calibration (``benchmarks/bench_w300lp.py``, 450 x 450, face_px 190): about 45 KB per JPEG
(real 300W-LP: 30-60 KB) and about 177 KB per 256 x 256 crop in the store's lossless codec (real:
185 KB; these renders: 78 KB). ``style="plain"`` is the clean render over a smooth colour wave
(tests that re-render the face and compare need it). The texture and noise come from a stream of
their own (``seed``, subset, sample): the parameters drawn do not depend on the style.
``pt2d`` is the exact projection of the model's 68 landmark vertices (real 300W-LP
``pt2d`` are annotations; here they are known exactly, which is what tests need).

Coefficients beyond the model's size (e.g. a 40-component model in a 199-row ``Shape_Para``) are
written as zeros. A ``_Flip`` sample has the mirrored pose (pitch, -yaw, -roll, W - 1 - tx, ty,
tz, scale) with the same shape and expression, rendered directly from its own .mat (so image and
.mat agree exactly; it is the mirror image of its partner as far as the face is symmetric).
``Color_Para`` / ``Illum_Para`` / ``Tex_Para`` carry neutral values (gains 1, offsets 0,
ambient/directional light, zero texture coefficients): they are stored for layout fidelity.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from meshkit.io import atomic_path
from meshkit.validate import check_float, check_int

from .model import MorphableModel
from .pose import pose_para_to_image
from .w300lp.layout import SUBSETS

__all__ = ["write_synthetic_300wlp", "vertex_pattern_colors"]


def vertex_pattern_colors(model: MorphableModel) -> np.ndarray:
    """Smooth, left/right-asymmetric per-vertex RGB colours in [0, 1] from the mean shape.

    Used when the model has no texture: red grows left to right, green top to bottom, blue is a
    low-frequency wave; the face is recognisable after a flip (tests rely on it).
    """
    m = np.asarray(model.mean, np.float64)
    lo, hi = m.min(axis=0), m.max(axis=0)
    u = (m - lo) / np.where(hi > lo, hi - lo, 1.0)
    r = 0.25 + 0.6 * u[:, 0]
    g = 0.25 + 0.6 * u[:, 1]
    b = 0.5 + 0.3 * np.sin(2 * np.pi * (1.5 * u[:, 0] + u[:, 1]))
    return np.clip(np.stack([r, g, b], axis=1), 0.0, 1.0)


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """The ``style="plain"`` background: a smooth colour wave in [0, 1] (h, w, 3)."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = rng.uniform(0.1, 0.5, size=3)
    amp = rng.uniform(0.05, 0.2, size=3)
    ph = rng.uniform(0, 2 * np.pi, size=3)
    return np.clip(base + amp * np.sin(2 * np.pi * (xx[..., None] * 1.3 + yy[..., None] * 0.7) + ph), 0, 1)


def _pink_noise(rng: np.random.Generator, h: int, w: int, channels: int, exponent: float = 2.0) -> np.ndarray:
    """Noise with a 1/f^exponent power spectrum (natural-image statistics), (h, w, channels), unit std."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    amp = f ** (-exponent / 2.0)
    amp[0, 0] = 0.0
    spec = (rng.standard_normal((channels, h, w // 2 + 1)) + 1j * rng.standard_normal((channels, h, w // 2 + 1))) * amp
    out = np.fft.irfft2(spec, s=(h, w)).transpose(1, 2, 0)
    return out / (out.std(axis=(0, 1), keepdims=True) + 1e-12)


def _photo_background(rng: np.random.Generator, h: int, w: int, centre, face_px: float) -> np.ndarray:
    """A scene behind the face, (h, w, 3) in [0, 1]: 1/f^2 colour noise (correlated channels), a few
    hard-edged shapes (furniture, windows), hair (dark strands) round the head's top and clothes at
    the bottom (a woven texture). The face is rendered over it."""
    from PIL import Image, ImageDraw
    from scipy.ndimage import gaussian_filter

    lum = _pink_noise(rng, h, w, 1, exponent=2.6)
    chroma = _pink_noise(rng, h, w, 3, exponent=2.4)
    base = rng.uniform(0.15, 0.7, size=3)
    img = base + 0.25 * lum + 0.08 * chroma
    # hard-edged shapes with their own shading: edges are what makes photos expensive to compress
    layer = Image.new("RGB", (w, h))
    alpha = Image.new("L", (w, h))
    dc, da = ImageDraw.Draw(layer), ImageDraw.Draw(alpha)
    for _ in range(int(rng.integers(4, 9))):
        x0, y0 = rng.uniform(-0.2, 1.0, 2) * (w, h)
        x1, y1 = x0 + rng.uniform(0.1, 0.6) * w, y0 + rng.uniform(0.1, 0.6) * h
        col = tuple(int(c) for c in rng.integers(20, 235, 3))
        if rng.random() < 0.6:
            dc.rectangle((x0, y0, x1, y1), fill=col)
            da.rectangle((x0, y0, x1, y1), fill=255)
        else:
            dc.ellipse((x0, y0, x1, y1), fill=col)
            da.ellipse((x0, y0, x1, y1), fill=255)
    shapes = np.asarray(layer, np.float64) / 255.0
    a = np.asarray(alpha, np.float64)[..., None] / 255.0
    img = np.where(a > 0, shapes * (1.0 + 0.15 * lum) + 0.04 * chroma, img)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    cx, cy = centre
    # hair: strands = noise stretched along the vertical, in an ellipse over the top of the head
    strands = gaussian_filter(rng.standard_normal((h, w)), sigma=(7.0, 0.8))
    strands /= strands.std() + 1e-12
    r = face_px * rng.uniform(0.62, 0.75)
    hair = ((xx - cx) / r) ** 2 + ((yy - (cy - 0.25 * face_px)) / (1.15 * r)) ** 2 < 1.0
    hair_col = rng.uniform(0.05, 0.45) * np.array([1.0, rng.uniform(0.7, 0.9), rng.uniform(0.5, 0.75)])
    img = np.where(hair[..., None], hair_col * (1.0 + 0.45 * strands[..., None]) + 0.03 * lum, img)
    # clothes: shoulders below the chin, a fine weave with folds
    shoulders = (yy > cy + 0.55 * face_px + 0.35 * np.abs(xx - cx)) & (np.abs(xx - cx) < 1.4 * face_px)
    period = rng.uniform(2.5, 5.0)
    weave = np.sin(2 * np.pi * xx / period) * np.sin(2 * np.pi * yy / period)
    cloth_col = rng.uniform(0.1, 0.85, 3)
    img = np.where(shoulders[..., None], cloth_col * (1.0 + 0.12 * weave[..., None] + 0.2 * lum), img)
    return np.clip(img, 0.0, 1.0)


def _skin_and_sensor(rng: np.random.Generator, image: np.ndarray, face: np.ndarray) -> np.ndarray:
    """Skin texture on the face pixels (pores: fine albedo noise; blotches: mid-scale), a slight optical
    blur, then sensor noise (photon + read noise), (h, w, 3) float in [0, 1] -> same."""
    from scipy.ndimage import gaussian_filter

    h, w = image.shape[:2]
    pores = gaussian_filter(rng.standard_normal((h, w)), 0.7)
    pores /= pores.std() + 1e-12
    blotch = _pink_noise(rng, h, w, 1, exponent=3.0)[..., 0]
    skin = 1.0 + 0.07 * pores + 0.08 * blotch
    out = np.where(face[..., None], image * skin[..., None], image)
    out = gaussian_filter(out, sigma=(0.6, 0.6, 0.0))
    sigma = np.sqrt((1.0 / 255.0) ** 2 + 0.0003 * out)  # read noise + shot noise (grows with brightness)
    out = out + sigma * rng.standard_normal((h, w, 3)) + (0.8 / 255.0) * rng.standard_normal((h, w, 1))
    return np.clip(out, 0.0, 1.0)


def _render(model: MorphableModel, colors: np.ndarray, image_v: np.ndarray, bg: np.ndarray,
            rng: np.random.Generator | None = None, light=(0.0, 0.0, 1.0)) -> np.ndarray:
    """Render the posed face over ``bg`` lit from ``light`` -> (h, w, 3) uint8; with ``rng``
    (``style="photo"``) add skin texture and sensor noise."""
    from meshkit.render import render_shaded

    h, w = bg.shape[:2]
    # light from the viewer, two-sided: the y flip of pose_para_to_image mirrors the winding
    v = image_v.astype(np.float64)  # pixel-index coordinates: the rasterizer's own convention
    ambient = 0.45 if rng is None else 0.3
    out = render_shaded(v, model.triangles, h, w, colors=colors, light_direction=light, ambient=ambient,
                        diffuse=1.0 - ambient, two_sided=True, background=(-1.0, -1.0, -1.0)).astype(np.float64)
    face = out[..., 0] >= 0
    out = np.where(face[..., None], out, bg)
    if rng is not None:
        out = _skin_and_sensor(rng, out, face)
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


def _roi(pt2d: np.ndarray) -> np.ndarray:
    """(1, 4) int16 [x0, y0, x1, y1]: a square centred on the landmark box, side twice its larger extent."""
    lo, hi = pt2d.min(axis=0), pt2d.max(axis=0)
    c, half = (lo + hi) / 2, float((hi - lo).max())
    return np.round([[c[0] - half, c[1] - half, c[0] + half, c[1] + half]]).astype(np.int16)


def _savemat(path: Path, d: dict) -> None:
    import scipy.io

    with atomic_path(path) as tmp:
        scipy.io.savemat(str(tmp), d)


def _save_jpg(path: Path, image: np.ndarray, quality: int) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="JPEG", quality=quality)


def write_synthetic_300wlp(root, model: MorphableModel, *, n_per_subset: int = 4, flips: bool = True,
                           image_size: int = 450, subsets: Sequence[str] = SUBSETS, seed: int = 0,
                           yaw_range: float = 0.6, face_px: float = 190.0, quality: int = 80,
                           colors: str = "texture", style: str = "photo", progress: bool = False) -> dict:
    """Write a synthetic 300W-LP tree under ``root`` (see the module docstring for the layout).

    Parameters
    ----------
    root : output folder (the ``300W_LP`` folder); created if needed.
    model : MorphableModel with 68 landmarks (e.g. ``bfm.synthetic.synthetic_model()``).
    n_per_subset : samples per subset (each also gets a _Flip partner when ``flips``).
    flips : write the ``_Flip`` folders.
    image_size : image side (450 in 300W-LP).
    subsets : subset names.
    seed : all parameters are drawn from ``np.random.default_rng(seed)``.
    yaw_range : yaw ~ U(-yaw_range, yaw_range) radians (pitch within +-0.3, roll within +-0.25).
    face_px : approximate face width in pixels (sets the Pose_Para scale).
    quality : JPEG quality.
    colors : "texture" (the model's texture mean; ``vertex_pattern_colors`` if it has none) or
        "pattern" (always ``vertex_pattern_colors``: high-contrast, left/right asymmetric).
    style : "photo" (a textured scene: 1/f^2 colour noise, hard-edged shapes, hair, clothes; skin texture
        on the face, optical blur and sensor noise: photo-like entropy, see the module docstring) or
        "plain" (a smooth colour wave behind a clean render).
    progress : show a progress bar (tqdm) over the images written (about 0.3 s each at 450 x 450
        for the 53,215-vertex model).

    Returns
    -------
    dict id -> {"pose_para" (7,), "shape_para" (199,), "exp_para" (29,), "pt2d" (68, 2)}: the
    parameters written, by sample id ``"<folder>/<stem>"``.
    """
    if not isinstance(model, MorphableModel):
        raise TypeError(f"model: expected a MorphableModel, got {type(model).__name__}")
    if len(model.landmarks) != 68:
        raise ValueError(f"model: expected 68 landmark indices, got {len(model.landmarks)}")
    n_per_subset = check_int(n_per_subset, "n_per_subset", minimum=1)
    image_size = check_int(image_size, "image_size", minimum=16)
    yaw_range = check_float(yaw_range, "yaw_range", minimum=0.0, maximum=1.6)
    face_px = check_float(face_px, "face_px", minimum=1.0)
    if colors not in ("texture", "pattern"):
        raise ValueError(f"colors: expected 'texture' or 'pattern', got {colors!r}")
    if style not in ("photo", "plain"):
        raise ValueError(f"style: expected 'photo' or 'plain', got {style!r}")
    quality = check_int(quality, "quality", minimum=1, maximum=100)
    from tqdm.auto import tqdm

    rng = np.random.default_rng(seed)
    root = Path(root)
    h = w = image_size
    colors = (np.clip(np.asarray(model.texture_mean, np.float64) / 255.0, 0, 1) if model.has_texture and colors == "texture"
              else vertex_pattern_colors(model))
    width_units = float(np.ptp(model.mean[:, 0])) or 1.0
    ks, ke = min(model.n_shape, 199), min(model.n_expression, 29)
    truth = {}
    bar = tqdm(total=len(subsets) * n_per_subset * (2 if flips else 1), desc="synthetic 300W-LP", unit="image",
               disable=not progress)
    for si, subset in enumerate(subsets):
        for k in range(n_per_subset):
            stem = f"{subset}_{1000 + 37 * k + 11 * len(subset)}_1_0"
            shape = np.zeros(199)
            shape[:ks] = rng.standard_normal(ks) * model.shape_std[:ks] * 0.6
            exp = np.zeros(29)
            exp[:ke] = rng.standard_normal(ke) * model.expression_std[:ke] * 0.6
            s = face_px / width_units * rng.uniform(0.85, 1.15)
            pitch, yaw, roll = rng.uniform(-0.3, 0.3), rng.uniform(-yaw_range, yaw_range), rng.uniform(-0.25, 0.25)
            tx = (w - 1) / 2 + rng.uniform(-0.06, 0.06) * w
            ty = (h - 1) / 2 + rng.uniform(-0.06, 0.06) * h
            tz = rng.uniform(-50, 50)
            pose = np.array([pitch, yaw, roll, tx, ty, tz, s])
            bg = _background(rng, h, w)  # drawn in both styles: the parameters do not depend on the style
            mesh = model.reconstruct(shape[:ks].astype(np.float32), exp[:ke].astype(np.float32))
            # the photo's texture and noise come from their own stream (seed, subset, sample)
            photo_rng = np.random.default_rng([seed, si, k]) if style == "photo" else None
            if photo_rng is not None:
                pt = pose_para_to_image(mesh.astype(np.float64), pose, h)[model.landmarks, :2]
                centre = (pt.min(axis=0) + pt.max(axis=0)) / 2.0
                bg = _photo_background(photo_rng, h, w, centre, s * width_units)
                light = np.array([photo_rng.uniform(-0.8, 0.8), photo_rng.uniform(-0.6, 0.2), 1.0])
            else:
                light = np.array([0.0, 0.0, 1.0])
            variants = [(subset, pose)]
            if flips:
                variants.append((subset + "_Flip", np.array([pitch, -yaw, -roll, (w - 1) - tx, ty, tz, s])))
            for folder, pp in variants:
                pp = pp.astype(np.float32).astype(np.float64)  # what the file holds (Pose_Para is float32)
                image_v = pose_para_to_image(mesh.astype(np.float64), pp, h)
                pt2d = image_v[model.landmarks, :2]
                flip = folder.endswith("_Flip")
                image = _render(model, colors, image_v, bg[:, ::-1] if flip else bg, photo_rng,
                                light * (-1.0 if flip else 1.0, 1.0, 1.0))
                d = root / folder
                d.mkdir(parents=True, exist_ok=True)
                mat = {
                    "Pose_Para": pp.reshape(1, 7).astype(np.float32),
                    "Shape_Para": shape.reshape(199, 1).astype(np.float64),
                    "Exp_Para": exp.reshape(29, 1).astype(np.float64),
                    "Color_Para": np.array([[1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0]], np.float32),
                    "Illum_Para": np.array([[0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.0, 0.0, 0.0, 20.0]], np.float64),
                    "Tex_Para": np.zeros((199, 1), np.float64),
                    "pt2d": pt2d.T.astype(np.float64),
                    "roi": _roi(pt2d),
                }
                _savemat(d / f"{stem}.mat", mat)
                _save_jpg(d / f"{stem}.jpg", image, quality)
                if not folder.endswith("_Flip"):
                    ld = root / "landmarks" / subset
                    ld.mkdir(parents=True, exist_ok=True)
                    _savemat(ld / f"{stem}_pts.mat", {"pts_2d": pt2d.copy(), "pts_3d": pt2d.copy()})
                truth[f"{folder}/{stem}"] = {"pose_para": pp, "shape_para": shape, "exp_para": exp, "pt2d": pt2d}
                bar.update(1)
    bar.close()
    return truth
