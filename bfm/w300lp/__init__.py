"""300W-LP reading and preprocessing into a chunked, resumable zarr training store.

The package is split by concept: ``layout`` (discovery of a tree, ``discover``, and reading one
sample, ``read_sample``), ``crop`` (``crop_from_landmarks``, ``crop_image``, ``crop_vertices``,
``reconstruct_cropped``), ``blocks`` (processing a block, ``process_samples``, and the worker side:
``WorkerSpec``, ``run_block``), ``store`` (the zarr store, its config and resume markers,
``open_store``) and ``runners`` (in process, local process pool, Dask). This file holds the
orchestration, ``preprocess`` with its ``Summary``, and re-exports the public names.

300W-LP layout (as read by TFDS ``the300w_lp``, face3d ``examples/8_generate_posmap_300WLP.py``,
3DDFA and PRNet-style generators)::

    ROOT/AFW/AFW_134212_1_0.jpg + .mat       subsets AFW, HELEN, IBUG, LFPW, one .mat per image
    ROOT/AFW_Flip/AFW_134212_1_0.jpg + .mat  the horizontally mirrored samples (same file names)
    ROOT/landmarks/AFW/AFW_134212_1_0_pts.mat   pts_2d (68, 2), pts_3d (68, 2); no _Flip folders

Each sample .mat holds ``Pose_Para`` (1, 7) = pitch, yaw, roll (radians), tx, ty, tz, scale;
``Shape_Para`` (199, 1); ``Exp_Para`` (29, 1); ``Color_Para`` (1, 7); ``Illum_Para`` (1, 10);
``Tex_Para`` (199, 1); ``pt2d`` (2, 68); ``roi`` (1, 4). Images are 450 x 450 RGB JPEGs.
A sample's id is ``"<folder>/<stem>"``, e.g. ``"AFW_Flip/AFW_134212_1_0"``; samples are processed in
sorted id order.

Per sample (``units="raw"`` coefficients, as 300W-LP stores them): the mesh is
``model.reconstruct(Shape_Para[:Ks], Exp_Para[:Ke])`` (a model with fewer than 199 / 29 components
uses the leading ones and ignores the rest: recorded in the store's attrs as ``n_shape_used`` /
``n_expression_used``), taken to image space with ``bfm.pose.pose_para_to_image`` (height = the
image height, y flipped as ``h - y - 1``).

Pixel convention (face3d's): image-space x, y are *pixel indices*, pixel (row j, column i) has its
centre at (i, j). The crop follows face3d's 300W-LP script: the box of the 68 landmarks (``pt2d``)
has centre c and mean side ``((right - left) + (bottom - top)) / 2``; the crop is the square of
side ``margin`` times that (``margin = 1.5`` in face3d, ``old_size * 1.5``), centred on c, mapped so
that its corners land on pixel centres 0 and ``size - 1`` (face3d's ``DST_PTS``):

    x_out = s * (x - x0),  y_out = s * (y - y0),  s = (size - 1) / side,  (x0, y0) = c - side / 2
    z_out = s * z - min(s * z)                       (z scaled alike, shifted to start at 0)

The image is resampled with that same map (bilinear, one compiled pass; outside the source = black).
Differences from face3d's script, on purpose: the box comes from the annotated ``pt2d`` (face3d
uses the reconstructed model landmarks), the side is not truncated to an integer, and there is no
random jitter of centre and size (augmentation belongs to training: ``bfm.dataset``).

Store (zarr v3 group, every array chunked along samples with ``block_size`` samples per chunk):

=============== ======================== ===================================================
images          (N, S, S, 3) uint8       the crops (``image_codec``: JPEG q95 per crop, or lossless)
vertices        (N, V, 3) float32/16     cropped image-space mesh (``store="vertices"`` only)
landmarks2d     (N, 68, 2) float32       ``pt2d`` after the crop
landmarks3d     (N, 68, 3) float32       the cropped vertices at ``model.landmarks``
pose            (N, 3) float32           pitch, yaw, roll (radians, Pose_Para[:3])
pose_para       (N, 7) float32           Pose_Para as read
shape_para      (N, Ks) float32          the leading Ks identity coefficients used
exp_para        (N, Ke) float32          the leading Ke expression coefficients used
crop            (N, 4) float64           s, x0, y0, z_shift (``reconstruct_cropped`` redoes it)
source_size     (N, 2) int32             height, width of the source image
ids             (N,) str                 sample ids, sorted
skip_reason     (N,) str                 why a skipped sample was skipped ("" otherwise)
status          (N,) int8                0 not written yet, 1 done, 2 skipped (attrs["failures"])
vertices_level1 (N, n_1, 3) ...          with ``hierarchy``: ``down[0] @ vertices``, then
                                         ``vertices_level{k+1} = down[k] @ vertices_level{k}``
uv_position_map (N, M, M, 3) float32/16  ``store="uvmap"`` (instead of vertices): the cropped mesh
                                         in UV space (PRNet; ``bfm.w300lp.uvmap``); with it
uv_layout       (V, 2) float64           the UV layout (``uv``), and
uv_covered      (M, M) bool              the texels inside the layout
uv_texture      (N, M, M, 3) uint8       with ``uv_texture``: the crop's colours in UV space, and
uv_texture_mask (N, M, M) bool           the texels the crop shows
=============== ======================== ===================================================

Every array has zarr 3 ``dimension_names`` (``store.DIMENSIONS``: sample, row, col, channel, vertex,
xyz, landmark, xy, ...), so ``xarray.open_zarr(store)`` gives a Dataset with those dims and
``dask.array.from_zarr`` / ``zarr.open`` read the arrays; nothing else lives in the zarr hierarchy.
``attrs["config"]`` holds the settings and the format (``store.STORE_FORMAT``; a store in an older
format is refused, with the advice to rerun with ``overwrite=True``); a finished store has
``attrs["complete"]`` and consolidated metadata.

One job at a time: a job holds ``<store>.lock`` (created exclusively, naming its pid, host, start time
and command) while it runs; a second job refuses (``StoreLockedError``) naming the first one; a lock
left by a dead process on the same host is taken over. The store is created under
``<store>.creating`` and renamed once its arrays and config exist, so a kill at any instant leaves
no store or a resumable one; a store missing arrays is reported as damaged.

Images: ``image_codec="jpeg"`` (default) keeps each crop as a JPEG, quality ``jpeg_quality`` (95, 4:4:4
chroma), through imagecodecs in the zarr 3 codec ``"meshkit.jpeg"`` (``bfm.w300lp.codec``; registered
when ``bfm.w300lp`` is imported, and a ``zarr.codecs`` entry point of the distribution): ~31 KB per
256 x 256 photo crop, PSNR ~45 dB against the exact crop, far below the source JPEGs' own artefacts.
``image_codec="lossless"`` keeps the exact pixels (zstd): ~180 KB per crop (real 300W-LP: 185 KB).

Speed: each block's meshes are one float32 GEMM, pose + y flip + crop one compiled pass over them,
the image crop one compiled bilinear pass; local workers start in the background while this
process discovers the samples and creates the store (the forkserver imports the block code once,
workers map the model's arrays from .npy files and warm up before their first block).

Resumability: blocks are aligned with the chunks; a worker writes its block's chunks itself (zarr's
LocalStore writes each chunk to a temp file and renames it; only a few bytes of status travel
back, so on a Dask cluster the store must be on a file system the workers share), ``status`` last:
a block is done once its ``status`` chunk exists (all its rows non-zero). A restart with the same
settings skips the done blocks, so a killed job ends, after a restart, with the same store as an
uninterrupted one (the order and the block contents are deterministic). Bit-identity holds for the
same command; a run with another worker count or scheduler can differ in the last float32 bit of the
vertices (BLAS threading: pool workers run single-threaded BLAS, an in-process ``workers=1`` run uses
the default threads). A corrupt .mat, missing image or wrong-shape parameter is recorded (id +
reason) and skipped, never raised. Paths (root, out, model, hierarchy) are made absolute before any
work is sent out; a Dask cluster lost mid-run, or a scheduler without workers for longer than
``no_workers_timeout`` (300 s), raises ``ClusterLost`` (one line; rerunning the same command resumes).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from meshkit.validate import check_choice, check_float, check_int

from ..model import MorphableModel
from . import runners
from .blocks import (
    STATUS_DONE,
    STATUS_SKIPPED,
    BlockOptions,
    WorkerSpec,
    model_payload,
    process_samples,
    save_model_payload,
)
from .codec import IMAGE_CODECS, register
from .crop import CropTransform, crop_from_landmarks, crop_image, crop_vertices, reconstruct_cropped
from .layout import FLIP_SUFFIX, N_LANDMARKS, SUBSETS, Sample, SampleError, discover, read_sample
from .runners import ClusterLost
from .store import (
    DIMENSIONS,
    STORE_FORMAT,
    StoreLockedError,
    finish_store,
    model_token,
    open_store,
    prepare_store,
    read_progress,
    resolve_hierarchy,
    store_config,
    store_lock,
)

__all__ = [
    "SUBSETS",
    "FLIP_SUFFIX",
    "N_LANDMARKS",
    "STATUS_DONE",
    "STATUS_SKIPPED",
    "Sample",
    "SampleError",
    "STORE_FORMAT",
    "DIMENSIONS",
    "StoreLockedError",
    "ClusterLost",
    "CropTransform",
    "Summary",
    "discover",
    "read_sample",
    "crop_from_landmarks",
    "crop_image",
    "crop_vertices",
    "process_samples",
    "reconstruct_cropped",
    "model_token",
    "preprocess",
    "open_store",
]

register()  # the "meshkit.jpeg" zarr codec: stores with JPEG crops open in any process that imports bfm.w300lp

StoreMode = Literal["vertices", "params", "uvmap"]


@dataclass
class Summary:
    """What a ``preprocess`` run did."""

    store: Path
    n_samples: int
    processed: int  # samples done in total (this run and earlier runs)
    skipped: list  # [(id, reason), ...] over the whole store
    blocks_total: int
    blocks_resumed: int  # blocks found finished and not redone
    seconds: float

    def __str__(self) -> str:
        lines = [f"300W-LP store {self.store}: {self.processed} processed, {len(self.skipped)} skipped, "
                 f"{self.n_samples} samples in {self.blocks_total} blocks ({self.blocks_resumed} already done), "
                 f"{self.seconds:.1f} s"]
        reasons: dict[str, int] = {}
        for _, r in self.skipped:
            key = r.split(":", 1)[0]
            reasons[key] = reasons.get(key, 0) + 1
        for r, n in sorted(reasons.items()):
            lines.append(f"  skipped {n:6d}  {r}")
        for sid, r in self.skipped[:10]:
            lines.append(f"    {sid}: {r}")
        if len(self.skipped) > 10:
            lines.append(f"    ... ({len(self.skipped) - 10} more in the store's attrs['failures'])")
        return "\n".join(lines)


def preprocess(root, out, *, model, size: int = 256, margin: float = 1.5, store: StoreMode = "vertices",
               vertex_dtype: Literal["float32", "float16"] = "float32", block_size: int = 32, workers: int = 2,
               scheduler=None, limit: int | None = None, n_shape: int | None = None, n_expression: int | None = None,
               subsets: Sequence[str] = SUBSETS, flips: bool = True, hierarchy=None, uv=None, uv_size: int = 256,
               uv_texture: bool = False, overwrite: bool = False, progress: bool = True,
               image_codec: Literal["jpeg", "lossless"] = "jpeg", jpeg_quality: int = 95,
               no_workers_timeout: float | None = 300.0) -> Summary:
    """Preprocess a 300W-LP tree into a chunked zarr store, in parallel, resumably.

    Parameters
    ----------
    root : the 300W_LP folder.
    out : the store path (a directory). An existing store made with the same settings is resumed;
        one made with other settings, in an older format or damaged is an error unless ``overwrite``.
        The job holds ``<out>.lock`` while it runs: a second job on the same ``out`` raises
        ``StoreLockedError`` naming the first one's pid and host.
    model : MorphableModel, or a path ``bfm.formats.load_model`` reads (each worker loads it once).
    size : crop side in pixels (256; 120 for 3DDFA-style).
    margin : crop side / mean landmark-box side (1.5, face3d).
    store : "vertices" (the cropped meshes are stored), "params" (only parameters and the crop;
        ``reconstruct_cropped`` / ``bfm.dataset`` rebuild the mesh on the fly) or "uvmap" (PRNet-style
        position maps of the cropped meshes instead of the meshes: ``bfm.w300lp.uvmap``).
    vertex_dtype : "float32" or "float16" for ``vertices`` (and ``uv_position_map``).
    block_size : samples per block = per chunk along the sample axis.
    workers : local worker processes (1 = in this process). Ignored with ``scheduler``.
    scheduler : a dask.distributed scheduler address (str) or Client: run the blocks there. The
        store path must be reachable by the workers (shared file system). While the scheduler has no
        workers (none yet, or all gone) the job waits for some, at most ``no_workers_timeout``.
    limit : only the first ``limit`` samples in id order.
    n_shape, n_expression : use at most this many leading components (default: min(model, 199 / 29)).
    subsets, flips : see ``discover``.
    hierarchy : optional multi-resolution hierarchy: a path saved by ``sampling.io.save``, a
        ``sampling.Hierarchy``, or a sequence of sparse ``down`` matrices (n_{k+1}, n_k). With
        ``store="vertices"``, arrays ``vertices_level1..K`` hold the down-sampled meshes.
    uv : with ``store="uvmap"``: the model's UV layout, a ``BFM_UV.mat`` / ``.npy`` path or a (V, 2)
        array (``meshkit.synthetic.template_uv(model.mean)`` for the synthetic model).
    uv_size : side of the UV maps in texels (256, PRNet).
    uv_texture : with ``store="uvmap"``, also store the crops' colours unwrapped into UV space.
    overwrite : replace a store made with other settings (a store with the same settings is always
        resumed, finished blocks are never redone: delete it to start over). A folder or file at
        ``out`` that is no zarr store is never replaced.
    progress : show a tqdm progress bar.
    image_codec : how the store keeps the crops: "jpeg" (each crop a JPEG at ``jpeg_quality``, 4:4:4,
        through imagecodecs: ~6x smaller than "lossless" on photo crops, errors far below the source
        JPEGs' own) or "lossless" (zstd on the pixels, bit-exact). See ``bfm.w300lp.codec``.
    jpeg_quality : 1..100, with ``image_codec="jpeg"`` (95).
    no_workers_timeout : with ``scheduler``: seconds the scheduler may have no workers, without a break,
        before the job gives up with ``ClusterLost`` (300, for clusters that scale up slowly); None
        waits forever.

    Returns
    -------
    Summary (processed, skipped ids with reasons, seconds, blocks resumed).

    Raises ``ClusterLost`` (a ``ConnectionError``) when the Dask cluster loses its workers or scheduler
    mid-run, or its scheduler has no workers for longer than ``no_workers_timeout``: the finished blocks
    are kept, rerunning the same command resumes.
    """
    t0 = time.perf_counter()
    check_choice(store, "store", ("vertices", "params", "uvmap"))
    check_choice(vertex_dtype, "vertex_dtype", ("float32", "float16"))
    size = check_int(size, "size", minimum=8)
    margin = check_float(margin, "margin", minimum=0.0, strict_minimum=True)
    block_size = check_int(block_size, "block_size", minimum=1)
    check_choice(image_codec, "image_codec", IMAGE_CODECS)
    jpeg_quality = check_int(jpeg_quality, "jpeg_quality", minimum=1, maximum=100)
    workers = check_int(workers, "workers", minimum=1)
    if no_workers_timeout is not None:
        no_workers_timeout = check_float(no_workers_timeout, "no_workers_timeout", minimum=0.0, strict_minimum=True)
    if limit is not None:
        limit = check_int(limit, "limit", minimum=1)
    if isinstance(model, (str, os.PathLike)):
        from ..formats import load_model

        model_src = str(Path(model).absolute())  # workers may run elsewhere: never a relative path
        model = load_model(model_src)
    elif isinstance(model, MorphableModel):
        model_src = None
    else:
        raise TypeError(f"model: expected a MorphableModel or a model file path, got {type(model).__name__}")
    if len(model.landmarks) != N_LANDMARKS:
        raise ValueError(f"model: expected a model with {N_LANDMARKS} landmark indices (the iBUG points of "
                         f"300W-LP's pt2d), got {len(model.landmarks)}")
    ks = min(model.n_shape, 199) if n_shape is None else check_int(n_shape, "n_shape", minimum=0, maximum=model.n_shape)
    if n_expression is None and model.n_expression > 29:
        raise ValueError(
            f"model: has {model.n_expression} expression components, but 300W-LP's Exp_Para (29,) are "
            "coefficients of 3DDFA's 29-component expression basis (face3d's BFM.mat layout), not of another "
            "basis such as Exp_Pca.bin's; load that model, or pass n_expression=... to use this basis's leading ones")
    ke = (model.n_expression if n_expression is None
          else check_int(n_expression, "n_expression", minimum=0, maximum=model.n_expression))
    model = model.with_components(n_shape=ks, n_expression=ke)
    opts = BlockOptions(size, margin, store, vertex_dtype, ks, ke, image_codec=image_codec, jpeg_quality=jpeg_quality)
    if hierarchy is not None and store != "vertices":
        raise ValueError("hierarchy: the level arrays are stored with store='vertices' only (a params store "
                         f"rebuilds meshes on the fly: apply the down matrices there), got store={store!r}")
    if store != "uvmap" and (uv is not None or uv_texture):
        raise ValueError(f"uv: a UV layout and uv_texture are used with store='uvmap' only, got store={store!r}")
    if store == "uvmap":
        from .uvmap import check_uv_layout, uv_config

        uv = check_uv_layout(uv, model.n_vertices)
        uv_settings = uv_config(uv, size=uv_size, texture=uv_texture)
    else:
        uv_settings = {}
    if isinstance(hierarchy, (str, os.PathLike)):
        hierarchy = Path(hierarchy).absolute()
    down = resolve_hierarchy(hierarchy, model.n_vertices)

    out = Path(out).absolute()
    root = Path(root).absolute()
    if not root.is_dir():  # before any worker starts (discover checks the rest)
        raise FileNotFoundError(f"root: expected a 300W-LP folder, got {str(root)!r} which is not a directory")
    # the workers start now, in the background, while this process discovers the samples and prepares
    # the store; they build the model once, named by this job's token
    token = uuid.uuid4().hex
    payload_dir = None
    if model_src is not None:  # each worker loads the file and keeps the leading components
        spec = WorkerSpec(token, model_src, n_shape=ks, n_expression=ke, down=down)
    elif scheduler is None and workers > 1:  # local workers map the (truncated) model's arrays from files
        payload_dir = _model_folder()
        spec = WorkerSpec(token, save_model_payload(model, payload_dir), n_shape=None, n_expression=None, down=down)
    else:  # the (truncated) model travels as its arrays
        spec = WorkerSpec(token, model_payload(model), n_shape=None, n_expression=None, down=down)
    pool = runners.LocalPool(workers, spec) if scheduler is None and workers > 1 else None
    try:
        samples = discover(root, subsets=subsets, flips=flips)
        if limit is not None:
            samples = samples[:limit]
        with store_lock(out):
            return _run(out, samples, model, spec, pool, opts, block_size, down, workers, scheduler, overwrite,
                        progress, t0, uv, uv_settings, no_workers_timeout)
    finally:
        if pool is not None:
            pool.close()
        if payload_dir is not None:
            shutil.rmtree(payload_dir, ignore_errors=True)


def _model_folder() -> str:
    """A new temporary folder for the model's arrays, ``w300lp-model-<pid>-*``; folders left by jobs that
    died without cleaning up (killed: their pid no longer runs) are removed first."""
    tmp = Path(tempfile.gettempdir())
    for old in tmp.glob("w300lp-model-*-*"):
        pid = old.name.split("-")[2]
        if pid.isdigit() and int(pid) != os.getpid() and not runners._alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"w300lp-model-{os.getpid()}-")


def _run(out: Path, samples: list, model: MorphableModel, spec: WorkerSpec, pool, opts: BlockOptions,
         block_size: int, down: tuple, workers: int, scheduler, overwrite: bool, progress: bool, t0: float,
         uv=None, uv_settings=None, no_workers_timeout: float | None = 300.0) -> Summary:
    """``preprocess`` after the checks, holding the store's lock (``pool``: the started local pool or None)."""
    config = {**store_config(samples, model, opts, block_size, down), **(uv_settings or {})}
    prepare_store(out, samples, model, opts, block_size, config, down, overwrite=overwrite, uv=uv)

    done = read_progress(out)[0]
    n_blocks = len(done)
    todo = [b for b in range(n_blocks) if not done[b]]
    resumed = n_blocks - len(todo)

    def tasks():
        for b in todo:
            start = b * block_size
            yield b, start, samples[start: start + block_size]

    bar = None
    if progress:
        from tqdm.auto import tqdm

        todo_set = set(todo)
        bar = tqdm(total=len(samples), initial=sum(min(block_size, len(samples) - b * block_size)
                                                   for b in range(n_blocks) if b not in todo_set),
                   unit="sample", desc="300W-LP", dynamic_ncols=True)

    def on_done(result):
        b, _, _ = result
        if bar is not None:
            bar.update(min(block_size, len(samples) - b * block_size))

    # the runners are looked up on the module when called (tests wrap them to simulate a killed job)
    try:
        if scheduler is not None:
            runners.run_dask(scheduler, spec, str(out), tasks(), opts, on_done, window=max(2, 2 * workers),
                             no_workers_timeout=no_workers_timeout)
        elif workers == 1:
            runners.run_in_process(spec, str(out), tasks(), opts, on_done)
        else:
            runners.run_local(pool, spec, str(out), tasks(), opts, on_done)
    finally:
        if bar is not None:
            bar.close()

    # gather the failures of every block (this run and earlier runs) into the attrs
    _, n_ok, failures = read_progress(out)
    finish_store(out, failures)
    return Summary(out, len(samples), n_ok, failures, n_blocks, resumed, time.perf_counter() - t0)
