"""The 300W-LP zarr store: its config, creating or resuming it, writing a block and its resume marker,
gathering the markers, and ``open_store`` for readers.

See the package docstring (``bfm.w300lp``) for the arrays and the resume rule.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from meshkit.io import atomic_path

from ..model import MorphableModel
from .layout import N_LANDMARKS

if TYPE_CHECKING:
    from .blocks import BlockOptions

__all__ = ["STORE_FORMAT", "MARKER_DIR", "model_token", "hierarchy_token", "resolve_hierarchy", "store_config",
           "prepare_store", "open_store", "marker_path", "write_block", "read_markers"]


#: ``attrs["pixel_convention"]``: what the image coordinates of ``landmarks2d`` and ``vertices`` mean
#: (docs/conventions.md, "Pixels"; the rasterizer of meshkit.render uses the same).
PIXEL_CONVENTION = ("x right, y down, in pixels of the crop; pixel (row r, column c) is centred on x = c, y = r "
                    "(integer pixel centres, as 300W-LP pt2d, face3d and 3DDFA; meshkit.render rasterizes these "
                    "coordinates as they are)")
#: ``attrs["config"]["format"]`` of a store this package wrote.
STORE_FORMAT = "meshkit-300wlp-1"
#: The folder inside the store holding one marker file per finished block.
MARKER_DIR = ".w300lp"


def model_token(model: MorphableModel) -> str:
    """Hash of everything that shapes a reconstruction (mean, both full bases, triangles, landmarks):
    a store is resumed, or read by the dataset, only with exactly the model that made it."""
    h = hashlib.sha1()
    for a in (model.mean, model.shape_basis, model.expression_basis, model.triangles, model.landmarks):
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(f"{model.n_vertices} {model.n_shape} {model.n_expression}".encode())
    return h.hexdigest()[:16]


def hierarchy_token(down) -> str:
    """Hash of the down matrices ("" without a hierarchy)."""
    h = hashlib.sha1()
    for d in down:
        for a in (d.indptr, d.indices, d.data):
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16] if down else ""


def resolve_hierarchy(hierarchy, n_vertices: int) -> tuple:
    """None | saved hierarchy path | sampling Hierarchy | sequence of down matrices -> tuple of csr."""
    import scipy.sparse as sp

    if hierarchy is None:
        return ()
    if isinstance(hierarchy, (str, os.PathLike)):
        try:
            from sampling.io import load
        except ImportError as e:  # pragma: no cover
            raise ImportError(f"hierarchy: reading a saved hierarchy needs the sampling package: {e}") from e
        hierarchy = load(hierarchy)
    down = getattr(hierarchy, "down", hierarchy)
    if not isinstance(down, (list, tuple)) or not down or not all(sp.issparse(d) for d in down):
        raise TypeError(f"hierarchy: expected a saved hierarchy path, a Hierarchy or a sequence of sparse down "
                        f"matrices, got {type(hierarchy).__name__}")
    out, n = [], n_vertices
    for k, d in enumerate(down):
        if d.shape[1] != n:
            raise ValueError(f"hierarchy: expected down[{k}] with {n} columns (the vertices of the level above), "
                             f"got shape {d.shape}")
        out.append(sp.csr_matrix(d, dtype=np.float32))
        n = d.shape[0]
    return tuple(out)


def store_config(samples: list, model: MorphableModel, opts: BlockOptions, block_size: int, down: tuple = ()) -> dict:
    """The settings a store is made with (``attrs["config"]``): a rerun resumes only a store with equal ones."""
    ids_hash = hashlib.sha1("\n".join(s.id for s in samples).encode()).hexdigest()
    return {"format": STORE_FORMAT, "n_samples": len(samples), "ids_sha1": ids_hash, "size": opts.size,
            "margin": opts.margin, "store": opts.store, "vertex_dtype": opts.vertex_dtype, "block_size": block_size,
            "n_vertices": model.n_vertices, "n_shape_used": opts.n_shape, "n_expression_used": opts.n_expression,
            "n_landmarks": len(model.landmarks), "model": model.name, "model_token": model_token(model),
            "hierarchy_levels": [int(d.shape[0]) for d in down], "hierarchy_sha1": hierarchy_token(down)}


def prepare_store(out: Path, samples: list, model: MorphableModel, opts: BlockOptions, block_size: int, config: dict,
                  down: tuple = (), *, overwrite: bool = False) -> None:
    """Keep a store at ``out`` made with ``config`` (to resume it), else create it; a store made with
    other settings (or not by this package) is replaced only with ``overwrite``."""
    if out.exists():
        import zarr

        keep = False
        try:
            old = zarr.open_group(str(out), mode="r+").attrs.get("config")
        except Exception:  # noqa: BLE001 - not a zarr group: only replaced when asked to
            old = "unreadable"
        if old is None and not (out / MARKER_DIR).is_dir() and not overwrite:
            # a zarr store that is not ours (ours gets its marker folder before its config)
            old = "foreign"
        if old is not None and old != config:
            if not overwrite:
                raise ValueError(f"out: {str(out)!r} holds a store made with other settings or samples, or not by "
                                 f"this job ({_config_diff(old, config)}); use another path or overwrite=True (--overwrite)")
        elif old is not None:
            keep = True  # same settings: resume (old is None: an unfinished creation of ours, made again)
        if keep:
            return
        _remove_tree(out)
    _create_store(out, samples, model, opts, block_size, config, down)


def _config_diff(old, new) -> str:
    if not isinstance(old, dict):
        return "not a 300W-LP store"
    keys = [k for k in new if old.get(k) != new[k]]
    return ", ".join(f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in keys[:4]) or "different"


def _remove_tree(path: Path) -> None:
    import shutil

    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


def _create_store(out: Path, samples: list, model: MorphableModel, opts: BlockOptions, block_size: int, config: dict,
                  down: tuple = ()):
    import zarr

    n, s, b = len(samples), opts.size, block_size
    g = zarr.open_group(str(out), mode="w")
    # the marker folder first: it tells a rerun that this (possibly unfinished) store is ours
    (out / MARKER_DIR).mkdir(exist_ok=True)
    nl = len(model.landmarks)

    def arr(name, tail, dtype, **kw):
        g.create_array(name, shape=(n,) + tail, chunks=(b,) + tail, dtype=dtype, fill_value=0, **kw)

    # float meshes: byte-shuffle + lz4 (Blosc) is ~15% smaller than zarr's default zstd on them and
    # about twice as fast to write; the other arrays keep the default codec
    from zarr.codecs import BloscCodec

    mesh_codec = {"compressors": [BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")]}

    arr("images", (s, s, 3), "uint8")
    if opts.store == "vertices":
        arr("vertices", (model.n_vertices, 3), opts.vertex_dtype, **mesh_codec)
        for k, d in enumerate(down, start=1):
            arr(f"vertices_level{k}", (d.shape[0], 3), opts.vertex_dtype, **mesh_codec)
    arr("landmarks2d", (N_LANDMARKS, 2), "float32")
    arr("landmarks3d", (nl, 3), "float32")
    arr("pose", (3,), "float32")
    arr("pose_para", (7,), "float32")
    arr("shape_para", (opts.n_shape,), "float32")
    arr("exp_para", (opts.n_expression,), "float32")
    arr("crop", (4,), "float64")
    arr("source_size", (2,), "int32")
    arr("status", (), "int8")
    ids = g.create_array("ids", shape=(n,), chunks=(max(b, min(n, 65536)),), dtype=str)
    ids[:] = np.array([smp.id for smp in samples])
    g.attrs["triangles_note"] = "triangles are the model's (MorphableModel.triangles); not copied"
    g.attrs["pixel_convention"] = PIXEL_CONVENTION
    # the config last: a store without it is an unfinished creation and is made again
    g.attrs["config"] = config
    return g


def open_store(path):
    """Open a preprocessed store read-only (a zarr group); raise if it is not a finished 300W-LP store."""
    import zarr

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"store: {str(p)!r} does not exist")
    g = zarr.open_group(str(p), mode="r")
    if "config" not in g.attrs or g.attrs["config"].get("format") != STORE_FORMAT:
        raise ValueError(f"store: {str(p)!r} is not a meshkit 300W-LP store (no config in its attrs)")
    return g


def marker_path(out: Path, block: int) -> Path:
    """The marker file of a block: it exists once the block's rows are in the store."""
    return out / MARKER_DIR / f"block_{block:07d}.json"


def write_block(out: Path, block: int, start: int, arrays: dict, failures: list, *, n_ok: int,
                vertex_dtype: str) -> None:
    """Write a block's rows (``arrays`` from ``process_samples``) at ``start``, then its marker (atomic)."""
    import zarr

    g = zarr.open_group(str(out), mode="r+")
    stop = start + len(arrays["status"])
    for k, a in arrays.items():
        if k.startswith("vertices"):
            a = a.astype(vertex_dtype)
        g[k][start:stop] = a
    with atomic_path(marker_path(out, block), durable=True) as tmp:
        tmp.write_text(json.dumps({"block": block, "ok": n_ok, "failures": failures}))


def read_markers(out: Path, n_blocks: int) -> tuple[int, list]:
    """The markers of blocks 0..n_blocks-1 (all must exist): (samples done, [(id, reason), ...])."""
    failures, n_ok = [], 0
    for b in range(n_blocks):
        rec = json.loads(marker_path(out, b).read_text())
        n_ok += rec["ok"]
        failures.extend(tuple(f) for f in rec["failures"])
    return n_ok, failures
