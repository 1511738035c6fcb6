"""The 300W-LP zarr store: its config, the job's lock, creating (atomically) or resuming it, writing a
block (its ``status`` rows last: they mark the block done), gathering the progress, and ``open_store``
for readers.

See the package docstring (``bfm.w300lp``) for the arrays, the lock and the resume rule.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..model import MorphableModel
from .layout import N_LANDMARKS

if TYPE_CHECKING:
    from .blocks import BlockOptions

__all__ = ["STORE_FORMAT", "DIMENSIONS", "StoreLockedError", "model_token", "hierarchy_token", "resolve_hierarchy",
           "store_config", "array_dimensions", "lock_path", "store_lock", "prepare_store", "open_store", "write_block",
           "read_progress", "finish_store"]


#: ``attrs["pixel_convention"]``: what the image coordinates of ``landmarks2d`` and ``vertices`` mean
#: (docs/conventions.md, "Pixels"; the rasterizer of meshkit.render uses the same).
PIXEL_CONVENTION = ("x right, y down, in pixels of the crop; pixel (row r, column c) is centred on x = c, y = r "
                    "(integer pixel centres, as 300W-LP pt2d, face3d and 3DDFA; meshkit.render rasterizes these "
                    "coordinates as they are)")
#: ``attrs["config"]["format"]`` of a store this package writes. Format 1 kept one marker file per
#: block in a ``.w300lp`` folder inside the zarr hierarchy and had no dimension names.
STORE_FORMAT = "meshkit-300wlp-2"
_OLD_FORMATS = ("meshkit-300wlp-1",)

#: The dimension names of each array (zarr 3 ``dimension_names``; xarray reads them as its dims).
#: ``vertices_level{k}`` has ``("sample", "vertex_level{k}", "xyz")``.
DIMENSIONS = {
    "images": ("sample", "row", "col", "channel"),
    "vertices": ("sample", "vertex", "xyz"),
    "landmarks2d": ("sample", "landmark", "xy"),
    "landmarks3d": ("sample", "landmark", "xyz"),
    "pose": ("sample", "angle"),
    "pose_para": ("sample", "pose_param"),
    "shape_para": ("sample", "shape_component"),
    "exp_para": ("sample", "expression_component"),
    "crop": ("sample", "crop_param"),
    "source_size": ("sample", "hw"),
    "status": ("sample",),
    "skip_reason": ("sample",),
    "ids": ("sample",),
    # store="uvmap" (bfm.w300lp.uvmap): per-sample maps, and the layout once
    "uv_position_map": ("sample", "u_row", "u_col", "xyz"),
    "uv_texture": ("sample", "u_row", "u_col", "channel"),
    "uv_texture_mask": ("sample", "u_row", "u_col"),
    "uv_layout": ("vertex", "uv"),
    "uv_covered": ("u_row", "u_col"),
}


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
            "hierarchy_levels": [int(d.shape[0]) for d in down], "hierarchy_sha1": hierarchy_token(down),
            "image_codec": opts.image_codec, "jpeg_quality": opts.jpeg_quality if opts.image_codec == "jpeg" else None}


def array_dimensions(config: dict) -> dict:
    """{array name: dimension names} of a store made with ``config``."""
    uv = ("uv_position_map", "uv_layout", "uv_covered") if config["store"] == "uvmap" else ()
    uv += ("uv_texture", "uv_texture_mask") if config.get("uv_texture") else ()
    dims = {k: v for k, v in DIMENSIONS.items()
            if (not k.startswith("uv_") or k in uv) and (k != "vertices" or config["store"] == "vertices")}
    if config["store"] == "vertices":
        for k in range(1, len(config["hierarchy_levels"]) + 1):
            dims[f"vertices_level{k}"] = ("sample", f"vertex_level{k}", "xyz")
    return dims


def _zarr():
    """zarr, with the store's image codec (``codec.JpegCodec``) registered: every store function opens
    stores through it, so a process that never created a store reads ``image_codec="jpeg"`` ones."""
    import zarr

    from .codec import register

    register()
    return zarr


# ---------------------------------------------------------------------------------------------
# the job's lock


class StoreLockedError(FileExistsError):
    """Another live job holds the store's lock."""


def lock_path(out: Path) -> Path:
    """The lock file of a store: ``<store>.lock`` beside it."""
    return out.with_name(out.name + ".lock")


@contextmanager
def store_lock(out: Path):
    """Hold the exclusive lock of the store at ``out`` for the ``with`` block.

    The lock is an ``flock`` on the file ``<store>.lock``, which holds the job's pid, host, start time
    and command. The kernel releases an flock when its process ends, however it ends, so a lock file
    left by a killed job is simply taken again (with a warning naming that job), and two jobs can
    never both hold it: the check and the take are one system call. A live job's lock raises
    ``StoreLockedError`` naming it. A lock file naming another host is never taken over (flock may
    not reach across hosts on a shared file system): its message says to delete it if that job no
    longer runs.
    """
    import fcntl
    import warnings

    path = lock_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
          "command": " ".join(sys.argv)}
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held = _lock_holder(fd)
            os.close(fd)
            raise StoreLockedError(
                f"out: {str(out)!r} is in use by another preprocess job: pid {held.get('pid')} on host "
                f"{held.get('host')}, started {held.get('started')} ({held.get('command')!r}); wait for it to "
                f"end") from None
        # the file may have been unlinked by its last holder between our open and our flock: then the
        # lock we hold is on a file nobody else can find; start again on the current one
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        held = _lock_holder(fd)
        if held and held.get("host") != me["host"]:
            raise StoreLockedError(
                f"out: {str(out)!r} is locked by a job on another host: pid {held.get('pid')} on host "
                f"{held.get('host')}, started {held.get('started')}; if that job no longer runs, delete "
                f"{str(path)!r}")
        if held:  # a job of this host that ended without releasing it (killed)
            warnings.warn(f"{str(out)!r}: took over the stale lock of job pid {held.get('pid')} on {held.get('host')} "
                          f"(no longer running, started {held.get('started')})", RuntimeWarning, stacklevel=3)
        mine = json.dumps(me).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, mine, 0)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        raise
    try:
        yield
    finally:
        try:
            path.unlink()  # while still holding the flock: the next job creates a new file
        except FileNotFoundError:
            pass
        os.close(fd)


def _lock_holder(fd: int) -> dict:
    """The job a lock file names (empty: a new file, or one its job had no time to write)."""
    try:
        raw = os.pread(fd, 1 << 16, 0)
        held = json.loads(raw) if raw else {}
    except ValueError:
        held = {}
    return held if isinstance(held, dict) else {}


# ---------------------------------------------------------------------------------------------
# creating, checking, resuming


def prepare_store(out: Path, samples: list, model: MorphableModel, opts: BlockOptions, block_size: int, config: dict,
                  down: tuple = (), *, overwrite: bool = False, uv=None) -> None:
    """Keep a store at ``out`` made with ``config`` (to resume it), else create it; a 300W-LP store made
    with other settings, in an older format or damaged is replaced only with ``overwrite``; anything
    else at ``out`` (a folder, a file, a zarr store this package did not make) is never replaced.

    Call it holding ``store_lock(out)``. The store is built under ``<store>.creating`` and renamed to
    ``out`` once its arrays and config exist (a store it replaces is first renamed ``<store>.replaced``,
    then deleted): a kill at any instant leaves no store, or a resumable one. ``uv`` is the (V, 2)
    layout of a ``store="uvmap"`` store.
    """
    tmp, old = out.with_name(out.name + ".creating"), out.with_name(out.name + ".replaced")
    for left in (tmp, old):  # left by a job killed while creating (the lock says no other job is at it)
        if left.exists():
            _remove_tree(left)
    if out.exists():
        problem = _store_problem(out, config)
        if problem is None:
            return  # same settings: resume
        if not _made_here(out):  # overwrite replaces our 300W-LP stores, never other folders, files or stores
            raise ValueError(f"out: {str(out)!r} {problem}; use another path (overwrite=True replaces only 300W-LP "
                             "stores made by bfm.w300lp)")
        if not overwrite:
            raise ValueError(f"out: {str(out)!r} {problem}; use another path or overwrite=True (--overwrite)")
    _create_store(tmp, samples, model, opts, block_size, config, down, uv)
    replacing = out.exists()
    if replacing:
        os.rename(out, old)
    os.rename(tmp, out)
    _fsync_dir(out.parent)
    if replacing:
        _remove_tree(old)


def _made_here(out: Path) -> bool:
    """Whether ``out`` is a zarr store this package made (its attrs hold a 300W-LP config of any format)."""
    if not (out / "zarr.json").is_file():
        return False
    try:
        old = _zarr().open_group(str(out), mode="r", use_consolidated=False).attrs.get("config")
    except Exception:  # noqa: BLE001 - unreadable: not ours to delete
        return False
    return isinstance(old, dict) and str(old.get("format", "")).startswith("meshkit-300wlp-")


def _store_problem(out: Path, config: dict) -> str | None:
    """Why the store at ``out`` cannot be resumed with ``config`` (None: it can)."""
    zarr = _zarr()

    try:
        g = zarr.open_group(str(out), mode="r", use_consolidated=False)  # what is on disk now
        old = g.attrs.get("config")
    except Exception:  # noqa: BLE001 - not a zarr group
        return "exists and is not a zarr store (this job did not make it)"
    if not isinstance(old, dict):
        return "holds a zarr store this job did not make (no 300W-LP config in its attrs)"
    if old.get("format") in _OLD_FORMATS:
        return (f"holds a 300W-LP store in an older format ({old.get('format')}, now {STORE_FORMAT}: markers moved "
                "out of the zarr hierarchy, named dimensions); rerun with overwrite=True to make it again")
    if old != config:
        keys = [k for k in config if old.get(k) != config[k]]
        diff = ", ".join(f"{k}: {old.get(k)!r} -> {config[k]!r}" for k in keys[:4]) or "different"
        return f"holds a store made with other settings or samples ({diff})"
    missing = [k for k in array_dimensions(config) if k not in set(g.array_keys())]
    if missing:
        return (f"is damaged: its config is there but it is missing arrays {', '.join(missing)}; rerun with "
                "overwrite=True to make it again")
    return None


def _remove_tree(path: Path) -> None:
    import shutil

    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _create_store(path: Path, samples: list, model: MorphableModel, opts: BlockOptions, block_size: int, config: dict,
                  down: tuple = (), uv=None):
    zarr = _zarr()

    n, s, b = len(samples), opts.size, block_size
    g = zarr.open_group(str(path), mode="w")
    dims = array_dimensions(config)

    def arr(name, tail, dtype, fill_value=0, **kw):
        g.create_array(name, shape=(n,) + tail, chunks=(b,) + tail, dtype=dtype, fill_value=fill_value,
                       dimension_names=dims[name], **kw)

    # float meshes: byte-shuffle + lz4 (Blosc) is ~15% smaller than zarr's default zstd on them and
    # about twice as fast to write; the other arrays keep the default codec
    from zarr.codecs import BloscCodec

    mesh_codec = {"compressors": [BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")]}

    from .codec import image_codec_kwargs

    arr("images", (s, s, 3), "uint8", **image_codec_kwargs(opts.image_codec, opts.jpeg_quality))
    if opts.store == "vertices":
        arr("vertices", (model.n_vertices, 3), opts.vertex_dtype, **mesh_codec)
        for k, d in enumerate(down, start=1):
            arr(f"vertices_level{k}", (d.shape[0], 3), opts.vertex_dtype, **mesh_codec)
    if opts.store == "uvmap":
        from meshkit.render.uv import UVLayout

        m = config["uv_size"]
        arr("uv_position_map", (m, m, 3), opts.vertex_dtype, **mesh_codec)
        if config["uv_texture"]:
            arr("uv_texture", (m, m, 3), "uint8")
            arr("uv_texture_mask", (m, m), "bool")
        g.create_array("uv_layout", data=np.asarray(uv, np.float64), dimension_names=dims["uv_layout"])
        g.create_array("uv_covered", data=UVLayout(uv, model.triangles, m).covered,
                       dimension_names=dims["uv_covered"])
    arr("landmarks2d", (N_LANDMARKS, 2), "float32")
    arr("landmarks3d", (len(model.landmarks), 3), "float32")
    arr("pose", (3,), "float32")
    arr("pose_para", (7,), "float32")
    arr("shape_para", (opts.n_shape,), "float32")
    arr("exp_para", (opts.n_expression,), "float32")
    arr("crop", (4,), "float64")
    arr("source_size", (2,), "int32")
    arr("skip_reason", (), str, fill_value="")
    arr("status", (), "int8")
    ids = g.create_array("ids", shape=(n,), chunks=(max(b, min(n, 65536)),), dtype=str, dimension_names=dims["ids"])
    ids[:] = np.array([smp.id for smp in samples])
    g.attrs["triangles_note"] = "triangles are the model's (MorphableModel.triangles); not copied"
    g.attrs["pixel_convention"] = PIXEL_CONVENTION
    g.attrs["config"] = config
    return g


def open_store(path):
    """Open a preprocessed store read-only (a zarr group); raise if it is not a 300W-LP store of this format."""
    zarr = _zarr()

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"store: {str(p)!r} does not exist")
    try:
        g = zarr.open_group(str(p), mode="r")
    except zarr.errors.GroupNotFoundError:
        raise ValueError(f"store: {str(p)!r} is not a zarr store (expected a store written by "
                         "bfm.w300lp.preprocess)") from None
    fmt = g.attrs["config"].get("format") if isinstance(g.attrs.get("config"), dict) else None
    if fmt in _OLD_FORMATS:
        raise ValueError(f"store: {str(p)!r} is a 300W-LP store in an older format ({fmt}, now {STORE_FORMAT}); "
                         "rerun its preprocess command with overwrite=True (--overwrite) to make it again")
    if fmt != STORE_FORMAT:
        raise ValueError(f"store: {str(p)!r} is not a meshkit 300W-LP store (no config in its attrs)")
    return g


# ---------------------------------------------------------------------------------------------
# blocks


def write_block(out: Path, start: int, ids: list, arrays: dict, failures: list, *, vertex_dtype: str) -> None:
    """Write a block's rows (``arrays`` from ``process_samples``, the samples ``ids``) at ``start``, the
    failures' reasons in ``skip_reason``, and ``status`` last: its chunk (one per block, written
    atomically by zarr's LocalStore) marks the block done."""
    zarr = _zarr()

    g = zarr.open_group(str(out), mode="r+", use_consolidated=False)
    stop = start + len(arrays["status"])
    for k, a in arrays.items():
        if k != "status":
            g[k][start:stop] = a.astype(vertex_dtype) if k.startswith(("vertices", "uv_position")) else a
    row = {sid: i for i, sid in enumerate(ids)}
    reasons = np.full(len(ids), "", dtype=object)
    for sid, r in failures:
        reasons[row[sid]] = r if not reasons[row[sid]] else f"{reasons[row[sid]]}; {r}"
    g["skip_reason"][start:stop] = reasons.astype(str)
    block = start // g["status"].chunks[0]
    # durable before marked done: a power loss after the status chunk lands must not leave the block's
    # rows unwritten (zarr writes each chunk atomically, but does not fsync)
    _fsync_chunks(out, [k for k in arrays if k != "status"] + ["skip_reason"], block)
    g["status"][start:stop] = arrays["status"]
    _fsync_chunks(out, ["status"], block)


def _fsync_chunks(out: Path, names: list, block: int) -> None:
    """fsync the chunk files of sample-chunk ``block`` of each array in ``names`` (zarr 3's default
    chunk keys: ``<array>/c/<block>/...``, a file for 1-D arrays, a folder for the others), and
    the folders holding them."""
    for name in names:
        top = Path(out) / name / "c" / str(block)
        files = [top] if top.is_file() else sorted(q for q in top.rglob("*") if q.is_file())
        for f in files:
            fd = os.open(f, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        for d in {f.parent for f in files}:
            _fsync_dir(d)


def read_progress(out: Path) -> tuple[np.ndarray, int, list]:
    """The progress of a store: (done (n_blocks,) bool, samples done, [(id, reason), ...] of the
    skipped samples in done blocks, in id order)."""
    zarr = _zarr()

    g = zarr.open_group(str(out), mode="r", use_consolidated=False)
    b = g.attrs["config"]["block_size"]
    status = g["status"][:]
    n_blocks = (len(status) + b - 1) // b
    padded = np.ones(n_blocks * b, np.int8)
    padded[: len(status)] = status
    done = (padded.reshape(n_blocks, b) != 0).all(axis=1)
    skipped = np.flatnonzero(status == 2)
    ids = g["ids"][:] if len(skipped) else []
    reasons = g["skip_reason"][:] if len(skipped) else []
    failures = [(str(ids[i]), str(reasons[i])) for i in skipped]
    return done, int((status == 1).sum()), failures


def finish_store(out: Path, failures: list) -> None:
    """Mark a store complete: its failures into the attrs, then consolidated metadata (readers such as
    ``xarray.open_zarr`` open it with one read)."""
    zarr = _zarr()

    g = zarr.open_group(str(out), mode="r+", use_consolidated=False)
    g.attrs["failures"] = [list(f) for f in failures]
    g.attrs["complete"] = True
    import warnings

    with warnings.catch_warnings():  # zarr notes that consolidated metadata is not in the v3 spec yet
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        zarr.consolidate_metadata(str(out))
