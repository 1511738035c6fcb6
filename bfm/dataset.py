"""A torch Dataset over a preprocessed 300W-LP store, with consistent augmentations.

This file holds the iBUG 68-point mirror permutation (``IBUG_FLIP``), the vertex mirror map of a
model (``vertex_mirror_map``), the augmentation (``Augmentation``, ``random_augmentation``,
``augmentation_matrix``, ``apply_augmentation``, ``augment_position_map`` for UV position maps) and
``W300LPDataset``, whose instances are ``torch.utils.data.Dataset`` objects (the torch subclass is
made when the first dataset is, so importing this module does not import torch).

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

import os
import time
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
    "augment_position_map",
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
        a = np.asarray(p)
        if a.ndim != 2 or a.shape[1] != dims:
            raise ValueError(f"{name}: expected shape (N, {dims}), got shape {a.shape}")
        if aug.flip:
            if perm is None:
                raise ValueError(f"vertex_mirror: expected the (V,) vertex mirror map to flip {name}, got None")
            if np.shape(perm) != (a.shape[0],):
                raise ValueError(f"{name}: expected {np.shape(perm)[0]} rows to match the flip permutation, "
                                 f"got {a.shape[0]}")
        return _map_points(a, m, aug, perm if aug.flip else None)

    return (out_img, pts(vertices, "vertices", 3, vertex_mirror), pts(landmarks2d, "landmarks2d", 2, landmark_flip),
            pts(landmarks3d, "landmarks3d", 3, landmark_flip))


def augment_position_map(position_map, aug: Augmentation, size: int, *, covered=None) -> np.ndarray:
    """Apply an augmentation to a UV position map of a crop (``store="uvmap"``), consistently with the image.

    The in-plane part moves the map's *values* (x, y through ``augmentation_matrix``, z times the
    scale), not its texel grid. A flip also re-indexes, through the UV layout's mirror: for a layout
    symmetric about u = 0.5, texel (r, c) and texel (r, M - 1 - c) are mirror points of the face, so
    ``map'[r, c] = mapped(map[r, M - 1 - c])`` (the same rule as ``vertices'[i] =
    mapped(vertices[mirror[i]])``). Texels outside ``covered``, and covered texels whose mirror is
    not covered (a few border texels of a nearly symmetric layout), are set to 0.

    Parameters
    ----------
    position_map : (M, M, 3) float, x, y in crop pixel indices, z scaled alike.
    aug : the augmentation.
    size : the crop side S in pixels (the image's, not the map's).
    covered : (M, M) bool, the layout's texels (the store's ``uv_covered``); None = all.

    Returns
    -------
    (M, M, 3) float32.
    """
    a = np.array(position_map, dtype=np.float64)
    if a.ndim != 3 or a.shape[2] != 3 or a.shape[0] != a.shape[1]:
        raise ValueError(f"position_map: expected shape (M, M, 3), got shape {a.shape}")
    keep = np.ones(a.shape[:2], bool) if covered is None else np.asarray(covered, bool)
    if keep.shape != a.shape[:2]:
        raise ValueError(f"covered: expected a bool array of shape {a.shape[:2]}, got shape {keep.shape}")
    if aug.flip:
        a = a[:, ::-1]
        keep = keep & keep[:, ::-1]
    m = augmentation_matrix(aug, check_int(size, "size", minimum=1))
    a[..., :2] = a[..., :2] @ m[:, :2].T + m[:, 2]
    a[..., 2] *= aug.scale
    a[~keep] = 0.0
    return a.astype(np.float32)


#: Store arrays that are bookkeeping, not sample data (not returned in items).
_NOT_ITEMS = ("ids", "status", "skip_reason")


class W300LPDataset:
    """A torch map-style ``Dataset`` over a store written by ``bfm.w300lp.preprocess``.

    ``W300LPDataset(...)`` returns an instance of its subclass that also subclasses
    ``torch.utils.data.Dataset`` (made on first use, so that importing this module does not import
    torch): ``isinstance(ds, torch.utils.data.Dataset)`` holds. It is cheap to pickle: it carries
    the store path, the model's file path and its options; the zarr group, the model, its vertex
    mirror map and the hierarchy open lazily in each process (each ``DataLoader`` worker, spawned or
    forked). A model given as an object is written once to a temporary ``.npz`` (named by its token)
    the first time the dataset is pickled, so the workers load that file instead of unpickling the
    model.

    Parameters
    ----------
    store : path of the zarr store.
    model : MorphableModel or a model file path (``bfm.formats.load_model``). Required for a
        ``params`` store (meshes rebuilt on the fly with ``bfm.w300lp.reconstruct_cropped``; the
        model is checked against the token the store recorded, when the dataset is made and when a
        worker loads it) and for flips of meshes (its mean gives the vertex mirror map).
    hierarchy : a saved hierarchy path (``sampling.io.save``), a ``Hierarchy`` or the down matrices:
        for flips of a store with ``vertices_level*`` (the levels of a flipped mesh are
        ``down @`` the flipped vertices); checked against the store's hierarchy token.
    augment : draw a random augmentation per item (else items are returned as stored).
    seed : augmentations come from ``np.random.default_rng((seed, epoch, index))``: reproducible,
        different per epoch (``set_epoch``) and independent of the DataLoader's worker split.
    rotation, translation, scale, flip_probability : see ``random_augmentation``.
    vertex_mirror : (V,) int, overrides the mirror map computed from the model's mean (it travels
        with the dataset when pickled: 4 bytes per vertex).
    include_skipped : also index the samples that failed preprocessing (their rows are zeros).

    Notes
    -----
    Items are dicts of torch tensors holding every per-sample array of the store: ``image``
    (3, S, S) float32 in [0, 1] (the store's ``images``), ``landmarks2d`` (68, 2), ``landmarks3d``
    (68, 3), ``pose`` (3,) (pitch, yaw, roll), ``pose_para``, ``shape_para``, ``exp_para``,
    ``crop``, ``source_size``; ``vertices`` (V, 3) (stored, or rebuilt for a params store) and
    ``vertices_level{k}`` (n_k, 3) when the store has them; ``uv_position_map`` (M, M, 3),
    ``uv_texture`` (3, M, M) float32 in [0, 1] and ``uv_texture_mask`` (M, M) bool for a uvmap store;
    plus ``augmentation`` (5,) = angle, tx, ty, scale, flip, ``index`` (the store row) and ``id``.
    float16 arrays come back as float32, the others in their stored dtype.

    Augmentation (one draw per item, applied to every geometric array alike): image, vertices,
    landmarks and the levels as in ``apply_augmentation`` (levels: the same affine map; under a flip
    ``down_k @`` the flipped level above, so ``vertices_level1 == down_1 @ vertices`` holds for
    every item, to the store's float16 rounding for float16 stores); the position map as in
    ``augment_position_map``; the texture and its mask are mirrored about u = 0.5 under a flip (an
    in-plane motion does not change which colour a point has); ``pose`` has yaw and roll negated
    under a flip (the in-plane rotation is not folded in). ``pose_para``, ``shape_para``,
    ``exp_para``, ``crop`` and ``source_size`` describe the source sample and are returned as
    stored.
    """

    def __new__(cls, *args, **kwargs):
        return super().__new__(_torch_dataset_class() if cls is W300LPDataset else cls)

    def __init__(self, store, *, model=None, hierarchy=None, augment: bool = False, seed: int = 0,
                 rotation: float = 45.0, translation: float = 0.1, scale: tuple = (0.9, 1.2),
                 flip_probability: float = 0.5, vertex_mirror=None, include_skipped: bool = False):
        from meshkit.validate import check_bool

        from .model import MorphableModel
        from .w300lp.store import array_dimensions

        self.path = Path(store).absolute()
        self._pid = os.getpid()
        self._group = self._open()
        self.config = dict(self._group.attrs["config"])
        self.mode = self.config["store"]
        self.size = int(self.config["size"])
        dims = array_dimensions(self.config)
        self.arrays = tuple(k for k, d in dims.items() if d[0] == "sample" and k not in _NOT_ITEMS)
        self.levels = len(self.config["hierarchy_levels"])
        self.include_skipped = check_bool(include_skipped, "include_skipped")
        self._indices = self._read_indices()
        self.n_items = len(self._indices)

        # the model: a file path travels as is; an object is kept here and written to a file when pickled
        # (a file this dataset wrote holds the model's triangles as they are: read back with winding="keep")
        self.model_path, self._model, self._model_winding = None, None, "auto"
        if isinstance(model, (str, os.PathLike)):
            from .formats import load_model

            self.model_path = str(Path(model).absolute())
            model = load_model(self.model_path)
        elif model is not None and not isinstance(model, MorphableModel):
            raise TypeError(f"model: expected a MorphableModel, a model file path or None, got {type(model).__name__}")
        if model is None and self.mode == "params":
            raise ValueError("model: expected the MorphableModel the store was made with (a params store "
                             "rebuilds meshes on the fly), got None")
        self._model = None if model is None else self._check_model(model)

        # the hierarchy: a path travels as is; down matrices given as objects travel with the dataset
        self.hierarchy_path, self._down, self._down_given = None, None, None
        if hierarchy is not None:
            if isinstance(hierarchy, (str, os.PathLike)):
                self.hierarchy_path = str(Path(hierarchy).absolute())
                self._down = self._check_down(self.hierarchy_path)
            else:
                self._down = self._down_given = self._check_down(hierarchy)

        self.augment = check_bool(augment, "augment")
        self.seed = check_int(seed, "seed", minimum=0)
        self.aug_options = dict(rotation=rotation, translation=translation, scale=tuple(scale),
                                flip_probability=flip_probability)
        random_augmentation(np.random.default_rng(0), self.size, **self.aug_options)  # validate the options once
        self.epoch = 0
        self.vertex_mirror = None
        if vertex_mirror is not None:
            vm = np.asarray(vertex_mirror)
            n = self.config["n_vertices"]
            if vm.shape != (n,) or vm.dtype.kind not in "iu" or vm.min() < 0 or vm.max() >= n:
                raise ValueError(f"vertex_mirror: expected ({n},) integers in [0, {n}), got {vm.shape} {vm.dtype}")
            self.vertex_mirror = vm.astype(np.int32)
        self._mirror, self._covered = self.vertex_mirror, None
        if self.augment and flip_probability > 0:
            self._check_flips()

    # -- checks, shared by the first process and each worker

    def _check_model(self, model):
        """The model as used: vertex count checked; for a params store truncated to the components the
        store used and checked against the store's model token."""
        from .w300lp import model_token

        if model.n_vertices != self.config["n_vertices"]:
            raise ValueError(f"model: expected {self.config['n_vertices']} vertices as in the store, got {model.n_vertices}")
        if self.mode != "params":
            return model
        used = model.with_components(n_shape=self.config["n_shape_used"], n_expression=self.config["n_expression_used"])
        if model_token(used) != self.config["model_token"]:
            raise ValueError(f"model: this params store was made with another model ({self.config['model']!r}, "
                             f"token {self.config['model_token']}); meshes rebuilt with this one would be wrong")
        return used

    def _check_down(self, hierarchy) -> tuple:
        from .w300lp.store import hierarchy_token, resolve_hierarchy

        if not self.levels:
            raise ValueError("hierarchy: this store has no vertices_level* arrays (made without a hierarchy), got one")
        down = resolve_hierarchy(hierarchy, self.config["n_vertices"])
        if hierarchy_token(down) != self.config["hierarchy_sha1"]:
            raise ValueError(f"hierarchy: expected the hierarchy the store was made with (token "
                             f"{self.config['hierarchy_sha1']}, levels {self.config['hierarchy_levels']}), got another "
                             f"(levels {[d.shape[0] for d in down]})")
        return down

    def _check_flips(self) -> None:
        has_meshes = self.mode in ("vertices", "params")
        if has_meshes and self._model is None and self.vertex_mirror is None:
            raise ValueError("model: flips need the vertex mirror map: give model= or vertex_mirror=, or flip_probability=0")
        if self.levels and self._down is None:
            raise ValueError("hierarchy: flips of a store with vertices_level* need the hierarchy's down matrices (the "
                             "levels of a flipped mesh are down @ the flipped vertices): give hierarchy= (what "
                             "preprocess was given), or flip_probability=0")
        if self.mode == "uvmap" and self.config["uv_mirror_texels"] > 1.0:
            raise ValueError(f"flip_probability: flips mirror the UV maps about u = 0.5, but this store's UV layout is "
                             f"{self.config['uv_mirror_texels']} texels from symmetric; use flip_probability=0")

    # -- lazy, per-process state

    def __getstate__(self) -> dict:
        """Paths and options only: the group, the model, the mirror map and the levels reopen lazily."""
        if self._model is not None and self.model_path is None:
            self.model_path = str(_cached_model_file(self._model))
            self._model_winding = "keep"
            self._model_cached = True
        elif getattr(self, "_model_cached", False):
            _mark_used(Path(self.model_path))  # DataLoader workers (re)start from this pickle: still in use
        state = dict(self.__dict__)
        for k in ("_group", "_model", "_down", "_indices", "_covered", "_pid"):
            state[k] = None
        state["_mirror"] = self.vertex_mirror
        return state

    def _open(self):
        from .w300lp import open_store

        return open_store(self.path)

    def _read_indices(self) -> np.ndarray:
        from .w300lp import STATUS_DONE

        status = self._group["status"][:]
        return np.arange(len(status)) if self.include_skipped else np.flatnonzero(status == STATUS_DONE)

    def _ensure(self) -> None:
        """Open what this process has not opened yet (a DataLoader worker starts with paths only)."""
        if self._pid == os.getpid():
            return
        self._group = self._open()
        self._pid = os.getpid()
        if self._indices is None:
            self._indices = self._read_indices()
            if len(self._indices) != self.n_items:
                raise RuntimeError(f"store: {str(self.path)!r} changed since the dataset was made "
                                   f"({self.n_items} items, now {len(self._indices)})")
        if self._model is None and self.model_path is not None:
            from .formats import load_model

            self._model = self._check_model(load_model(self.model_path, winding=self._model_winding))
        if self._down is None and (self.hierarchy_path or self._down_given):
            self._down = self._check_down(self.hierarchy_path or self._down_given)

    def mirror(self) -> np.ndarray:
        """The (V,) vertex mirror map (given, or computed once per process from the model's mean)."""
        self._ensure()
        if self._mirror is None:
            if self._model is None:
                raise ValueError("model: flips need the vertex mirror map: give model= or vertex_mirror=")
            self._mirror = vertex_mirror_map(self._model.mean)
        return self._mirror

    def covered(self) -> np.ndarray:
        """The (M, M) texels of the store's UV layout (``uv_covered``; uvmap stores)."""
        self._ensure()
        if self._covered is None:
            self._covered = self._group["uv_covered"][:]
        return self._covered

    # -- items

    def set_epoch(self, epoch: int) -> None:
        """Use another set of random augmentations (call once per epoch)."""
        self.epoch = check_int(epoch, "epoch", minimum=0)

    def __len__(self) -> int:
        return self.n_items

    def raw(self, i: int) -> dict:
        """Item ``i`` as stored (numpy arrays by store name, ``vertices`` rebuilt for a params store), before augmentation."""
        from .w300lp import reconstruct_cropped

        if not -len(self) <= i < len(self):
            raise IndexError(f"index: expected 0 <= index < {len(self)}, got {i}")
        self._ensure()
        r = int(self._indices[i])
        g = self._group
        out = {"index": r, "id": str(g["ids"][r])}
        for k in self.arrays:
            a = np.asarray(g[k][r])
            out[k] = a.astype(np.float32) if a.dtype == np.float16 else a
        if self.mode == "params":
            out["vertices"] = reconstruct_cropped(self._model, out["shape_para"], out["exp_para"], out["pose_para"],
                                                  out["crop"], out["source_size"][0])
        return out

    def augmented(self, i: int) -> tuple[dict, Augmentation]:
        """Item ``i`` (numpy, as ``raw``) with its augmentation applied, and that augmentation."""
        d = self.raw(i)
        if not self.augment:
            return d, Augmentation()
        rng = np.random.default_rng((self.seed, self.epoch, d["index"]))
        aug = random_augmentation(rng, self.size, **self.aug_options)
        m = augmentation_matrix(aug, self.size)
        d["images"] = _warp_image(d["images"], m)
        if "vertices" in d:
            d["vertices"] = _map_points(d["vertices"], m, aug, self.mirror() if aug.flip else None)
        for j in range(1, self.levels + 1):
            key = f"vertices_level{j}"
            if aug.flip:  # the levels of the flipped mesh
                above = d["vertices" if j == 1 else f"vertices_level{j - 1}"]
                d[key] = np.asarray(self._down[j - 1] @ above, np.float32)
            else:
                d[key] = _map_points(d[key], m, aug, None)
        flip = list(IBUG_FLIP) if aug.flip else None
        d["landmarks2d"] = _map_points(d["landmarks2d"], m, aug, flip)
        d["landmarks3d"] = _map_points(d["landmarks3d"], m, aug, flip)
        if aug.flip:
            d["pose"] = d["pose"] * np.array([1.0, -1.0, -1.0], np.float32)
        if "uv_position_map" in d:
            d["uv_position_map"] = augment_position_map(d["uv_position_map"], aug, self.size, covered=self.covered())
        if aug.flip and "uv_texture" in d:
            d["uv_texture"] = np.ascontiguousarray(d["uv_texture"][:, ::-1])
            d["uv_texture_mask"] = np.ascontiguousarray(d["uv_texture_mask"][:, ::-1])
        return d, aug

    def __getitem__(self, i: int) -> dict:
        import torch

        d, aug = self.augmented(i)
        out = {"image": torch.from_numpy(np.ascontiguousarray(d.pop("images").transpose(2, 0, 1))).float().div_(255.0)}
        if "uv_texture" in d:
            out["uv_texture"] = torch.from_numpy(np.ascontiguousarray(d.pop("uv_texture").transpose(2, 0, 1))).float().div_(255.0)
        index, sid = d.pop("index"), d.pop("id")
        for k, a in d.items():
            out[k] = torch.from_numpy(np.ascontiguousarray(a))
        out["augmentation"] = torch.tensor(astuple(aug), dtype=torch.float32)
        out["index"] = index
        out["id"] = sid
        return out


def _map_points(p: np.ndarray, m: np.ndarray, aug: Augmentation, perm) -> np.ndarray:
    """(N, 2|3) points through the pixel map m (z times the scale), re-indexed by perm under a flip -> float32."""
    a = np.array(p, dtype=np.float64)
    a[:, :2] = a[:, :2] @ m[:, :2].T + m[:, 2]
    if a.shape[1] == 3:
        a[:, 2] *= aug.scale
    if perm is not None:
        a = a[np.asarray(perm)]
    return a.astype(np.float32)


MODEL_CACHE_DAYS = 14  # a cached model file nobody pickled a dataset with for this long is removed


def _cached_model_file(model) -> Path:
    """The model written once as .npz in the temp folder, named by its token (what DataLoader workers load).

    Each use marks the file as used (its modification time); writing a new one removes the files there
    unused for ``MODEL_CACHE_DAYS``, so that the folder does not grow with every model ever pickled.
    """
    import tempfile

    from .formats import save_npz
    from .w300lp import model_token

    path = Path(tempfile.gettempdir()) / "meshkit-dataset-models" / f"model-{model_token(model)}.npz"
    if path.exists():
        _mark_used(path)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    save_npz(path, model)
    cutoff = time.time() - MODEL_CACHE_DAYS * 86400
    for old in path.parent.glob("model-*.npz"):
        try:
            if old != path and old.stat().st_mtime < cutoff:
                old.unlink()
        except OSError:  # removed by another process meanwhile, or not ours to remove
            pass
    return path


def _mark_used(path: Path) -> None:
    """Set the cached model file's modification time to now (another process may have removed it: fine)."""
    try:
        os.utime(path)
    except OSError:
        pass


def _torch_dataset_class():
    """``W300LPDataset`` as a ``torch.utils.data.Dataset`` subclass (made once; pickles by this module's name)."""
    cls = globals().get("_TorchW300LPDataset")
    if cls is None:
        from meshkit._optional import require

        torch = require("torch", "bfm.dataset.W300LPDataset")
        cls = type("_TorchW300LPDataset", (W300LPDataset, torch.utils.data.Dataset),
                   {"__module__": __name__, "__doc__": W300LPDataset.__doc__})
        globals()["_TorchW300LPDataset"] = cls
    return cls


def __getattr__(name: str):
    # the torch subclass is made on first use (and when an unpickling worker asks for it by name)
    if name == "_TorchW300LPDataset":
        return _torch_dataset_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
