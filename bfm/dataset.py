"""A torch Dataset over a preprocessed 300W-LP store, with consistent augmentations.

This file holds the iBUG 68-point mirror permutation (``IBUG_FLIP``), the vertex mirror map of a
model (``vertex_mirror_map``), the augmentation (``Augmentation``, ``random_augmentation``,
``augmentation_matrix``, ``apply_augmentation``) and ``W300LPDataset``.

Pixel convention (docs/conventions.md, "Pixels"; the store's ``pixel_convention`` attribute): the
store's ``landmarks2d`` and ``vertices`` x, y are pixel indices of the crop, pixel (row r, column
c) centred on x = c, y = r; ``meshkit.render`` rasterizes them as they are, so a landmark vertex
drawn by the rasterizer lands on the pixel ``landmarks2d`` names, before and after augmentation.

Augmentation (the research recipe: rotation +-45 degrees, translation +-10% of the crop, scale
0.9-1.2, horizontal flip with probability 0.5), all in the store's pixel-index coordinates
(x right, y down, pixel centres at integers, crop side S, centre c = ((S-1)/2, (S-1)/2)):

    flip:   x -> (S - 1) - x                                        (when aug.flip)
    then    p' = k * R(angle) @ (p - c) + c + t,   R = [[cos, -sin], [sin, cos]]

(with y down, a positive angle turns the picture clockwise on screen). The image is resampled with
exactly this map (Pillow, bilinear, black outside), vertex and landmark x, y are mapped with it and
z is multiplied by k (so z still starts at 0). A flip also re-indexes, so that index i still means
the same anatomical point: ``vertices'[i] = mapped(vertices[mirror[i]])`` with the model's vertex
mirror map, and ``landmarks'[j] = mapped(landmarks[IBUG_FLIP[j]])``. The stored pose angles are
returned with yaw and roll negated under a flip; the in-plane rotation is *not* folded into them
(the sample's ``augmentation`` entry gives angle, tx, ty, scale, flip).

Vertex mirror map: for a face model whose mean is left/right symmetric about the plane
x = center_x (BFM coordinates: x across the face, y up, z out of the face), ``mirror[i]`` is the
vertex nearest to the reflection (2 center_x - x_i, y_i, z_i) (scipy cKDTree; ties to the lower
index). On an exactly symmetric mesh it is an involution; on a nearly symmetric one (the real BFM
mean) it is a nearest-neighbour approximation: ``vertex_mirror_map(..., return_distance=True)``
reports how far each reflection is from its partner.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from pathlib import Path

import numpy as np

from meshkit.validate import check_float, check_int, check_vertices

__all__ = [
    "IBUG_FLIP",
    "vertex_mirror_map",
    "Augmentation",
    "random_augmentation",
    "augmentation_matrix",
    "apply_augmentation",
    "W300LPDataset",
]


def _ibug_flip() -> tuple:
    """The iBUG 68-point left/right permutation (0-based): point j of a mirrored face is point
    IBUG_FLIP[j] of the original. Pairs: jaw 0-16 reversed; brows 17-21 <-> 26-22; nose bridge
    27-30 fixed; nostrils 31-35 reversed; eyes 36<->45, 37<->44, 38<->43, 39<->42, 40<->47,
    41<->46; outer lip 48-54 reversed, 55<->59, 56<->58, 57 fixed; inner lip 60-64 reversed,
    65<->67, 66 fixed (the same table as face-alignment's ``shuffle_lr``)."""
    p = list(range(68))

    def swap(a, b):
        p[a], p[b] = b, a

    for a, b in zip(range(0, 8), range(16, 8, -1), strict=True):
        swap(a, b)
    for a, b in zip(range(17, 22), range(26, 21, -1), strict=True):
        swap(a, b)
    for a, b in ((31, 35), (32, 34), (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46),
                 (48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63), (65, 67)):
        swap(a, b)
    return tuple(p)


IBUG_FLIP: tuple = _ibug_flip()


def vertex_mirror_map(vertices, *, center_x: float | None = None, return_distance: bool = False):
    """For each vertex, the index of its left/right mirror partner (nearest neighbour of the reflection).

    Parameters
    ----------
    vertices : (V, 3) float, a symmetric (or nearly) shape, e.g. ``model.mean``.
    center_x : the x of the symmetry plane; default ``(min x + max x) / 2``.
    return_distance : also return the distance from each reflection to its partner.

    Returns
    -------
    mirror : (V,) int64; with ``return_distance`` also dist : (V,) float64.
    """
    from scipy.spatial import cKDTree

    v = check_vertices(vertices, "vertices")
    cx = 0.5 * (v[:, 0].min() + v[:, 0].max()) if center_x is None else check_float(center_x, "center_x")
    r = v.copy()
    r[:, 0] = 2.0 * cx - r[:, 0]
    dist, idx = cKDTree(v).query(r, k=1)
    idx = idx.astype(np.int64)
    return (idx, dist) if return_distance else idx


@dataclass(frozen=True)
class Augmentation:
    """One draw of the augmentation: angle (radians), tx, ty (pixels), scale, flip."""

    angle: float = 0.0
    tx: float = 0.0
    ty: float = 0.0
    scale: float = 1.0
    flip: bool = False


def random_augmentation(rng: np.random.Generator, size: int, *, rotation: float = 45.0, translation: float = 0.1,
                        scale: tuple = (0.9, 1.2), flip_probability: float = 0.5) -> Augmentation:
    """Draw an augmentation: angle ~ U(-rotation, rotation) degrees, tx, ty ~ U(-translation,
    translation) * size, scale ~ U(scale[0], scale[1]), flip with ``flip_probability``."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    size = check_int(size, "size", minimum=1)
    rotation = check_float(rotation, "rotation", minimum=0.0, maximum=180.0)
    translation = check_float(translation, "translation", minimum=0.0, maximum=1.0)
    lo, hi = (check_float(s, "scale", minimum=0.0, strict_minimum=True) for s in scale)
    if lo > hi:
        raise ValueError(f"scale: expected (low, high) with low <= high, got {scale}")
    p = check_float(flip_probability, "flip_probability", minimum=0.0, maximum=1.0)
    angle = np.deg2rad(rng.uniform(-rotation, rotation))
    tx, ty = rng.uniform(-translation, translation, size=2) * size
    return Augmentation(float(angle), float(tx), float(ty), float(rng.uniform(lo, hi)), bool(rng.random() < p))


def augmentation_matrix(aug: Augmentation, size: int) -> np.ndarray:
    """The (2, 3) pixel-index affine map of an augmentation (flip first, then k R about the centre, then t)."""
    c = (size - 1) / 2.0
    ca, sa = np.cos(aug.angle), np.sin(aug.angle)
    a = aug.scale * np.array([[ca, -sa], [sa, ca]])
    fm = np.diag([-1.0 if aug.flip else 1.0, 1.0])
    fb = np.array([size - 1.0 if aug.flip else 0.0, 0.0])
    m = np.empty((2, 3))
    m[:, :2] = a @ fm
    m[:, 2] = a @ (fb - c) + c + np.array([aug.tx, aug.ty])
    return m


def _warp_image(image: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Resample (S, S, C) uint8 with the pixel-index map m (output = m(input)), Pillow bilinear."""
    from PIL import Image

    inv = np.linalg.inv(m[:, :2])
    # Pillow maps output continuous coordinates (pixel k covers [k, k+1)) to input ones
    off = inv @ (np.array([-0.5, -0.5]) - m[:, 2]) + 0.5
    data = (inv[0, 0], inv[0, 1], off[0], inv[1, 0], inv[1, 1], off[1])
    h, w = image.shape[:2]
    im = Image.fromarray(np.ascontiguousarray(image))
    out = im.transform((w, h), Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR)
    return np.asarray(out)


def apply_augmentation(image, vertices, landmarks2d, landmarks3d, aug: Augmentation, *, vertex_mirror=None,
                       landmark_flip=IBUG_FLIP) -> tuple:
    """Apply one augmentation consistently to a crop, its mesh and its landmarks.

    Parameters
    ----------
    image : (S, S, 3) uint8.
    vertices : (V, 3) float or None, cropped image-space mesh (z >= 0).
    landmarks2d : (68, 2) float or None; landmarks3d : (68, 3) float or None.
    aug : the augmentation.
    vertex_mirror : (V,) int, the vertex mirror map (``vertex_mirror_map(model.mean)``); required
        when ``aug.flip`` and vertices are given.
    landmark_flip : (L,) int landmark permutation for flips (iBUG 68 by default).

    Returns
    -------
    (image, vertices, landmarks2d, landmarks3d), same shapes; float arrays float32.
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[0] != img.shape[1] or img.dtype != np.uint8:
        raise ValueError(f"image: expected an (S, S, C) uint8 array, got shape {img.shape} dtype {img.dtype}")
    size = img.shape[0]
    m = augmentation_matrix(aug, size)
    out_img = _warp_image(img, m)

    def pts(p, name, dims, perm):
        if p is None:
            return None
        a = np.array(p, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != dims:
            raise ValueError(f"{name}: expected shape (N, {dims}), got shape {a.shape}")
        a[:, :2] = a[:, :2] @ m[:, :2].T + m[:, 2]
        if dims == 3:
            a[:, 2] *= aug.scale
        if aug.flip:
            if perm is None:
                raise ValueError(f"vertex_mirror: expected the (V,) vertex mirror map to flip {name}, got None")
            perm = np.asarray(perm)
            if perm.shape != (a.shape[0],):
                raise ValueError(f"{name}: expected {perm.shape[0]} rows to match the flip permutation, got {a.shape[0]}")
            a = a[perm]
        return a.astype(np.float32)

    return (out_img, pts(vertices, "vertices", 3, vertex_mirror), pts(landmarks2d, "landmarks2d", 2, landmark_flip),
            pts(landmarks3d, "landmarks3d", 3, landmark_flip))


class W300LPDataset:
    """A torch map-style ``Dataset`` over a store written by ``bfm.w300lp.preprocess``.

    (Duck-typed: ``__len__`` + ``__getitem__``, which is all ``torch.utils.data.DataLoader`` needs;
    not a subclass, so that importing this module does not import torch.)

    Parameters
    ----------
    store : path of the zarr store.
    model : MorphableModel; required for a ``params`` store (meshes rebuilt on the fly with
        ``bfm.w300lp.reconstruct_cropped``) and for flips (its mean gives the vertex mirror map).
    augment : draw a random augmentation per item (else items are returned as stored).
    seed : augmentations come from ``np.random.default_rng((seed, epoch, index))``: reproducible,
        different per epoch (``set_epoch``) and independent of the DataLoader's worker split.
    rotation, translation, scale, flip_probability : see ``random_augmentation``.
    vertex_mirror : (V,) int, overrides the mirror map computed from ``model.mean``.
    include_skipped : also index the samples that failed preprocessing (their rows are zeros).

    Items are dicts of torch tensors: ``image`` (3, S, S) float32 in [0, 1], ``vertices`` (V, 3),
    ``landmarks2d`` (68, 2), ``landmarks3d`` (68, 3), ``pose`` (3,) (pitch, yaw, roll; yaw and roll
    negated under a flip), ``augmentation`` (5,) = angle, tx, ty, scale, flip, plus ``index`` and
    ``id``.
    """

    def __init__(self, store, *, model=None, augment: bool = False, seed: int = 0, rotation: float = 45.0,
                 translation: float = 0.1, scale: tuple = (0.9, 1.2), flip_probability: float = 0.5,
                 vertex_mirror=None, include_skipped: bool = False):
        from meshkit._optional import require

        from .w300lp import STATUS_DONE, model_token, open_store

        require("torch", "W300LPDataset")
        self.path = Path(store)
        g = open_store(self.path)
        self.config = dict(g.attrs["config"])
        self.mode = self.config["store"]
        self.size = int(self.config["size"])
        self.model = model
        if self.mode == "params" and model is None:
            raise ValueError("model: expected the MorphableModel the store was made with (a params store "
                             "rebuilds meshes on the fly), got None")
        if model is not None and model.n_vertices != self.config["n_vertices"]:
            raise ValueError(f"model: expected {self.config['n_vertices']} vertices as in the store, got {model.n_vertices}")
        if model is not None and self.mode == "params":
            # a params store is only meaningful with exactly the model that made it
            used = model.with_components(n_shape=self.config["n_shape_used"],
                                         n_expression=self.config["n_expression_used"])
            if model_token(used) != self.config["model_token"]:
                raise ValueError(f"model: this params store was made with another model ({self.config['model']!r}, "
                                 f"token {self.config['model_token']}); meshes rebuilt with this one would be wrong")
        status = g["status"][:]
        self.indices = np.arange(len(status)) if include_skipped else np.flatnonzero(status == STATUS_DONE)
        self.ids = g["ids"]
        self.augment = bool(augment)
        self.seed = check_int(seed, "seed", minimum=0)
        self.aug_options = dict(rotation=rotation, translation=translation, scale=tuple(scale),
                                flip_probability=flip_probability)
        # validate the options once
        random_augmentation(np.random.default_rng(0), self.size, **self.aug_options)
        self.epoch = 0
        if vertex_mirror is not None:
            vm = np.asarray(vertex_mirror)
            if vm.shape != (self.config["n_vertices"],) or vm.dtype.kind not in "iu":
                raise ValueError(f"vertex_mirror: expected ({self.config['n_vertices']},) integers, got {vm.shape} {vm.dtype}")
            self.vertex_mirror = vm.astype(np.int64)
        elif model is not None:
            self.vertex_mirror = vertex_mirror_map(model.mean)
        else:
            self.vertex_mirror = None
        if self.augment and flip_probability > 0 and self.vertex_mirror is None:
            raise ValueError("model: flips need the vertex mirror map: give model= or vertex_mirror=, or flip_probability=0")
        self._group = None
        self._pid = None

    def set_epoch(self, epoch: int) -> None:
        """Use another set of random augmentations (call once per epoch)."""
        self.epoch = check_int(epoch, "epoch", minimum=0)

    def __len__(self) -> int:
        return len(self.indices)

    def _open_group(self):
        import os

        import zarr

        if self._group is None or self._pid != os.getpid():  # re-open in each DataLoader worker
            self._group = zarr.open_group(str(self.path), mode="r")
            self._pid = os.getpid()
        return self._group

    def raw(self, i: int) -> dict:
        """Item ``i`` as stored (numpy), before augmentation."""
        from .w300lp import reconstruct_cropped

        if not -len(self) <= i < len(self):
            raise IndexError(f"index: expected 0 <= index < {len(self)}, got {i}")
        r = int(self.indices[i])
        g = self._open_group()
        out = {"index": r, "id": str(g["ids"][r]), "image": g["images"][r], "landmarks2d": g["landmarks2d"][r],
               "landmarks3d": g["landmarks3d"][r], "pose": g["pose"][r]}
        if self.mode == "vertices":
            out["vertices"] = np.asarray(g["vertices"][r], np.float32)
        else:
            out["vertices"] = reconstruct_cropped(self.model, g["shape_para"][r], g["exp_para"][r], g["pose_para"][r],
                                                  g["crop"][r], g["source_size"][r][0])
        return out

    def __getitem__(self, i: int) -> dict:
        import torch

        d = self.raw(i)
        aug = Augmentation()
        if self.augment:
            rng = np.random.default_rng((self.seed, self.epoch, d["index"]))
            aug = random_augmentation(rng, self.size, **self.aug_options)
            img, v, l2, l3 = apply_augmentation(d["image"], d["vertices"], d["landmarks2d"], d["landmarks3d"], aug,
                                                vertex_mirror=self.vertex_mirror)
            d.update(image=img, vertices=v, landmarks2d=l2, landmarks3d=l3)
            if aug.flip:
                d["pose"] = d["pose"] * np.array([1.0, -1.0, -1.0], np.float32)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(d["image"].transpose(2, 0, 1))).float().div_(255.0),
            "vertices": torch.from_numpy(np.ascontiguousarray(d["vertices"], np.float32)),
            "landmarks2d": torch.from_numpy(np.ascontiguousarray(d["landmarks2d"], np.float32)),
            "landmarks3d": torch.from_numpy(np.ascontiguousarray(d["landmarks3d"], np.float32)),
            "pose": torch.from_numpy(np.ascontiguousarray(d["pose"], np.float32)),
            "augmentation": torch.tensor(astuple(aug), dtype=torch.float32),
            "index": d["index"],
            "id": d["id"],
        }

