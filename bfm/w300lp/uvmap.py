"""UV maps of the 300W-LP store (``store="uvmap"``): PRNet-style position maps of the cropped meshes,
optionally the crops' colours unwrapped into UV space.

This file holds the store's UV settings (``check_uv_layout``, ``uv_config``, ``uv_mirror_texels``)
and the worker side (``add_uv_maps``, called by ``blocks.run_block`` for each block).

A position map (PRNet, Feng et al. 2018; face3d ``examples/8_generate_posmap_300WLP.py``) is the
cropped mesh rasterized in UV space: texel (r, c) holds the x, y, z of the mesh point whose UV is
``u = c / (M - 1)``, ``v = 1 - r / (M - 1)`` (``meshkit.render.uv``), in exactly the space and crop
of the ``vertices`` store: x, y in crop pixel indices, z scaled by the same factor and shifted so
that the mesh's min z is 0. Texels outside the layout (``uv_covered`` False) hold 0. So
``meshkit.render.uv.sample_uv_map(map, uv, mask=covered)`` gives back the stored vertices up to the
map's resolution.

The texture (``uv_texture=True``) is ``meshkit.render.uv.uv_texture`` of the crop with the cropped
mesh: each covered texel's colour in the crop where the crop shows it (inside, front facing, not
occluded); ``uv_texture_mask`` says which texels hold a colour.

The layout itself (``uv_layout`` (V, 2) and ``uv_covered`` (M, M)) is stored once; each worker
reads it from the store the first time it processes a block and rasterizes it once
(``UVLayout``), so a block's maps cost one interpolation of all its meshes.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from meshkit.validate import check_bool, check_int

__all__ = ["check_uv_layout", "uv_mirror_texels", "uv_config", "add_uv_maps"]


def check_uv_layout(uv, n_vertices: int) -> np.ndarray:
    """A UV layout for the store: a ``BFM_UV.mat`` / ``.npy`` path or a (V, 2) array in [0, 1] -> float64.

    Parameters
    ----------
    uv : path or (V, 2) float, one row per model vertex.
    n_vertices : the model's vertex count V.
    """
    if uv is None:
        raise ValueError("uv: expected the model's UV layout for store='uvmap' (the BFM's BFM_UV.mat, or "
                         "meshkit.synthetic.template_uv(model.mean) for the synthetic model), got None")
    if isinstance(uv, (str, os.PathLike)):
        from ..formats import read_uv

        a = read_uv(uv)
    else:
        from ..formats.uv import _check_layout

        a = _check_layout(uv, "uv")
    if a.shape[0] != n_vertices:
        raise ValueError(f"uv: expected one row per model vertex ({n_vertices}), got {a.shape[0]} rows")
    return np.ascontiguousarray(a, dtype=np.float64)


def uv_mirror_texels(uv, size: int) -> float:
    """How far the layout is from symmetric about u = 0.5: the largest distance, in texels of a
    size x size map, from a vertex's reflection (1 - u, v) to the nearest vertex UV (0 for an exactly
    symmetric layout; a flip maps texel (r, c) to (r, size - 1 - c), right when this is small)."""
    from scipy.spatial import cKDTree

    a = np.asarray(uv, dtype=np.float64)
    r = a.copy()
    r[:, 0] = 1.0 - r[:, 0]
    d, _ = cKDTree(a).query(r, k=1)
    return float(d.max() * (size - 1))


def uv_config(uv: np.ndarray, *, size: int = 256, texture: bool = False) -> dict:
    """The store config entries of a uvmap store: map side, texture flag, layout hash and symmetry."""
    size = check_int(size, "uv_size", minimum=2, maximum=4096)
    texture = check_bool(texture, "uv_texture")
    return {"uv_size": size, "uv_texture": texture,
            "uv_sha1": hashlib.sha1(np.ascontiguousarray(uv, dtype=np.float64).tobytes()).hexdigest()[:16],
            "uv_mirror_texels": round(uv_mirror_texels(uv, size), 4)}


#: This process's rasterized layout: {(store path, model token, uv_sha1, uv_size): UVLayout} (one entry).
_LAYOUT: dict = {}


def _worker_layout(out: str, faces: np.ndarray):
    """(the store's layout rasterized once per process, the store's config); the config is read for
    every block, the layout only when the store, model or layout changed."""
    import zarr

    from meshkit.render.uv import UVLayout

    g = zarr.open_group(str(out), mode="r", use_consolidated=False)
    config = dict(g.attrs["config"])
    key = (str(out), config["model_token"], config["uv_sha1"], config["uv_size"])
    if key not in _LAYOUT:
        _LAYOUT.clear()
        _LAYOUT[key] = UVLayout(g["uv_layout"][:], faces, config["uv_size"])
    return _LAYOUT[key], config


def add_uv_maps(out: str, model, arrays: dict) -> None:
    """Replace a processed block's ``vertices`` by its UV maps (the ``store="uvmap"`` hook of ``run_block``).

    Parameters
    ----------
    out : the store path (its ``uv_layout`` and config are read once per process).
    model : the MorphableModel (its triangles are the layout's faces).
    arrays : ``process_samples`` output with ``vertices`` (B, V, 3); gains ``uv_position_map``
        (B, M, M, 3) and, with the store's ``uv_texture``, ``uv_texture`` (B, M, M, 3) uint8 and
        ``uv_texture_mask`` (B, M, M) bool. Rows of failed samples are 0.
    """
    from .blocks import STATUS_DONE

    layout, config = _worker_layout(out, model.triangles)
    v = arrays.pop("vertices")
    b, n, _ = v.shape
    m = layout.size
    # one interpolation for the whole block: the B meshes side by side as 3B channels
    img = layout.map(np.ascontiguousarray(v.transpose(1, 0, 2)).reshape(n, b * 3)).image
    maps = np.ascontiguousarray(img.reshape(m, m, b, 3).transpose(2, 0, 1, 3))
    maps[:, ~layout.covered] = 0.0
    ok = arrays["status"] == STATUS_DONE
    maps[~ok] = 0.0
    arrays["uv_position_map"] = maps
    if config["uv_texture"]:
        from meshkit.render.uv import uv_texture

        tex = np.zeros((b, m, m, 3), np.uint8)
        mask = np.zeros((b, m, m), bool)
        for i in np.flatnonzero(ok):
            t = uv_texture(arrays["images"][i], v[i], layout.faces, layout.uv, m)
            tex[i] = np.clip(np.round(t.image * 255.0), 0, 255).astype(np.uint8)
            mask[i] = t.mask
        arrays["uv_texture"] = tex
        arrays["uv_texture_mask"] = mask
