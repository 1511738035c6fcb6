"""300W-LP reading and preprocessing into a chunked, resumable zarr training store.

This file holds discovery of a 300W-LP tree (``discover``), reading one sample (``read_sample``),
the landmark crop (``crop_from_landmarks``, ``crop_image``, ``crop_vertices``), the per-block
processing, and the parallel, resumable store writer (``preprocess``) with its ``Summary``.

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

The image is resampled with that same map (Pillow, bilinear; outside the source = black).
Differences from face3d's script, on purpose: the box comes from the annotated ``pt2d`` (face3d
uses the reconstructed model landmarks), the side is not truncated to an integer, and there is no
random jitter of centre and size (augmentation belongs to training: ``bfm.dataset``).

Store (zarr v3 group, every array chunked along samples with ``block_size`` samples per chunk):

=============== ======================== ===================================================
images          (N, S, S, 3) uint8       the crops
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
status          (N,) int8                0 pending, 1 done, 2 skipped (see attrs["failures"])
vertices_level1 (N, n_1, 3) ...          with ``hierarchy``: ``down[0] @ vertices``, then
                                         ``vertices_level{k+1} = down[k] @ vertices_level{k}``
=============== ======================== ===================================================

Resumability: blocks are aligned with the chunks; a worker writes its block's chunks itself (zarr's
LocalStore writes each chunk to a temp file and renames it; only a few bytes of status travel
back, so on a Dask cluster the store must be on a file system the workers share), then an
atomic marker file ``<store>/.w300lp/block_<i>.json`` (temp file + rename) naming the block's
failures. A restart with the same settings skips blocks whose marker exists, so a killed job ends,
after a restart, with the same store as an uninterrupted one (the order and the block contents
are deterministic). Bit-identity holds for the same command; a run with another worker count or
scheduler can differ in the last float32 bit of the vertices (BLAS threading: pool workers run
single-threaded BLAS, an in-process ``workers=1`` run uses the default threads). A corrupt .mat,
missing image or wrong-shape parameter is recorded (id + reason) and skipped, never raised.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from meshkit._validate import check_choice, check_float, check_int
from meshkit.io import atomic_path

from .model import MorphableModel
from .pose import pose_para_to_image

__all__ = [
    "SUBSETS",
    "FLIP_SUFFIX",
    "IMAGE_SIZE",
    "Sample",
    "SampleError",
    "CropTransform",
    "Summary",
    "discover",
    "read_sample",
    "crop_from_landmarks",
    "crop_image",
    "crop_vertices",
    "process_samples",
    "reconstruct_cropped",
    "preprocess",
    "open_store",
]

SUBSETS = ("AFW", "HELEN", "IBUG", "LFPW")
FLIP_SUFFIX = "_Flip"
IMAGE_SIZE = 450
N_LANDMARKS = 68
STATUS_PENDING, STATUS_DONE, STATUS_SKIPPED = 0, 1, 2
_MARKER_DIR = ".w300lp"
#: Test hook: the main process exits hard (``os._exit``) after this many newly finished blocks.
EXIT_AFTER_ENV = "MESHKIT_W300LP_EXIT_AFTER_BLOCKS"

StoreMode = Literal["vertices", "params"]


@dataclass(frozen=True, order=True)
class Sample:
    """One 300W-LP sample: its id and file paths (the files may be missing or broken)."""

    id: str
    image: Path = field(compare=False)
    mat: Path = field(compare=False)
    landmarks: Path | None = field(default=None, compare=False)

    @property
    def subset(self) -> str:
        return self.id.split("/", 1)[0]

    @property
    def flip(self) -> bool:
        return self.subset.endswith(FLIP_SUFFIX)


class SampleError(ValueError):
    """A sample that cannot be used (corrupt .mat, missing image, wrong-shape parameters)."""


@dataclass(frozen=True)
class CropTransform:
    """The crop map ``p_out = scale * (p - (x0, y0))`` in pixel-index coordinates."""

    scale: float
    x0: float
    y0: float


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


# ---------------------------------------------------------------------------------------------
# discovery and reading


def discover(root, *, subsets: Sequence[str] = SUBSETS, flips: bool = True) -> list[Sample]:
    """List the samples of a 300W-LP tree, sorted by id.

    A sample is any stem with a ``.jpg`` or a ``.mat`` in a subset folder: a .mat without its image
    (or the reverse) is listed, so that processing reports it instead of silently dropping it.

    Parameters
    ----------
    root : path of the 300W_LP folder (holding AFW, AFW_Flip, ..., landmarks).
    subsets : subset folder names to read (default AFW, HELEN, IBUG, LFPW).
    flips : also read the ``<subset>_Flip`` folders.

    Returns
    -------
    list of Sample, sorted by id (``"<folder>/<stem>"``).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"root: expected a 300W-LP folder, got {str(root)!r} which is not a directory")
    if isinstance(subsets, str):
        raise TypeError(f"subsets: expected a sequence of folder names, got the string {subsets!r}")
    folders = []
    for s in subsets:
        folders.append(s)
        if flips:
            folders.append(s + FLIP_SUFFIX)
    found = [f for f in folders if (root / f).is_dir()]
    if not found:
        raise ValueError(f"root: expected subset folders {', '.join(folders)} under {str(root)!r}, found none")
    out = []
    for folder in found:
        d = root / folder
        stems = sorted({p.stem for p in d.iterdir() if p.suffix.lower() in (".jpg", ".mat") and not p.name.startswith(".")})
        base = folder[: -len(FLIP_SUFFIX)] if folder.endswith(FLIP_SUFFIX) else folder
        for stem in stems:
            lm = root / "landmarks" / base / f"{stem}_pts.mat"
            out.append(Sample(f"{folder}/{stem}", d / f"{stem}.jpg", d / f"{stem}.mat",
                              lm if (lm.is_file() and not folder.endswith(FLIP_SUFFIX)) else None))
    out.sort()
    return out


def _param(mat: dict, key: str, shapes: tuple) -> np.ndarray:
    """mat[key] as float64, checked against the accepted shapes (None = any length)."""
    if key not in mat:
        keys = ", ".join(sorted(k for k in mat if not k.startswith("__")))
        raise SampleError(f"missing key: {key} not in the .mat (keys: {keys})")
    a = np.asarray(mat[key])
    if a.dtype.kind not in "fiu":
        raise SampleError(f"wrong dtype: {key} has dtype {a.dtype}, expected numbers")
    ok = any(a.ndim == len(s) and all(x is None or x == y for x, y in zip(s, a.shape, strict=True)) for s in shapes)
    if not ok or a.size == 0:
        raise SampleError(f"wrong shape: {key} has shape {a.shape}, expected {' or '.join(map(str, shapes))}")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise SampleError(f"non-finite values: {key} has NaN/inf")
    return a


def read_sample(sample: Sample, *, load_image: bool = True) -> dict:
    """Read one sample's .mat (and image); raise ``SampleError`` naming what is wrong.

    Returns
    -------
    dict with ``pose_para`` (7,), ``shape_para`` (Ks,), ``exp_para`` (Ke,), ``pt2d`` (68, 2) (x, y
    in pixel indices), all float64, and ``image`` (H, W, 3) uint8 when ``load_image``.
    """
    import scipy.io

    if not sample.mat.is_file():
        raise SampleError(f"missing .mat: {sample.mat.name} not found")
    try:
        mat = scipy.io.loadmat(str(sample.mat))
    except Exception as e:  # noqa: BLE001 - any reader failure means a corrupt file
        raise SampleError(f"corrupt .mat: {type(e).__name__}: {e}") from None
    out = {
        "pose_para": _param(mat, "Pose_Para", ((1, 7), (7, 1), (7,))).reshape(7),
        "shape_para": _param(mat, "Shape_Para", ((None, 1), (None,))).reshape(-1),
        "exp_para": _param(mat, "Exp_Para", ((None, 1), (None,))).reshape(-1),
        "pt2d": _param(mat, "pt2d", ((2, N_LANDMARKS),)).T.copy(),
    }
    if out["pose_para"][6] <= 0:
        raise SampleError(f"wrong value: Pose_Para scale (element 6) is {out['pose_para'][6]}, expected > 0")
    if load_image:
        from PIL import Image

        if not sample.image.is_file():
            raise SampleError(f"missing image: {sample.image.name} not found")
        try:
            with Image.open(sample.image) as im:
                out["image"] = np.asarray(im.convert("RGB"))
        except Exception as e:  # noqa: BLE001
            raise SampleError(f"corrupt image: {type(e).__name__}: {e}") from None
    return out


# ---------------------------------------------------------------------------------------------
# crop


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
    side = margin * float((hi - lo).sum()) / 2.0
    if not side > 0:
        raise ValueError(f"pt2d: expected landmarks spanning a box of positive size, got a box of side {side}")
    c = (lo + hi) / 2.0
    return CropTransform(scale=(size - 1) / side, x0=float(c[0] - side / 2), y0=float(c[1] - side / 2))


def crop_image(image: np.ndarray, crop: CropTransform, size: int) -> np.ndarray:
    """Resample an (H, W, 3) uint8 image with the crop map into (size, size, 3) uint8 (bilinear).

    Pillow's transforms work in continuous coordinates (pixel k covers [k, k+1)), so the
    pixel-index map ``p_out = s (p - q)`` becomes ``u_in = u_out / s + q + 0.5 - 0.5 / s``.
    """
    from PIL import Image

    s = crop.scale
    data = (1.0 / s, 0.0, crop.x0 + 0.5 - 0.5 / s, 0.0, 1.0 / s, crop.y0 + 0.5 - 0.5 / s)
    im = Image.fromarray(np.ascontiguousarray(image))
    out = im.transform((size, size), Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR, fillcolor=(0, 0, 0))
    return np.asarray(out)


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


# ---------------------------------------------------------------------------------------------
# block processing (runs in workers)


@dataclass(frozen=True)
class _Options:
    size: int
    margin: float
    store: str
    vertex_dtype: str
    n_shape: int
    n_expression: int


def process_samples(model: MorphableModel, samples: Sequence[Sample], *, size: int = 256, margin: float = 1.5,
                    with_vertices: bool = True) -> tuple[dict, list]:
    """Process a block of samples: read, reconstruct (one batched GEMM), pose, crop.

    Parameters
    ----------
    model : the MorphableModel (the leading min(Ks, 199) / min(Ke, 29) components are used).
    samples : the block's samples.
    size, margin : the crop (see ``crop_from_landmarks``).
    with_vertices : also return the cropped vertices (else only what ``store="params"`` keeps).

    Returns
    -------
    (arrays, failures): arrays is a dict of per-sample arrays with a leading axis of len(samples)
    (rows of failed samples are zero, ``status`` says which); failures is [(id, reason), ...].
    """
    n = len(samples)
    ks, ke = model.n_shape, model.n_expression
    nl = len(model.landmarks)
    arrays = {
        "images": np.zeros((n, size, size, 3), np.uint8),
        "landmarks2d": np.zeros((n, N_LANDMARKS, 2), np.float32),
        "landmarks3d": np.zeros((n, nl, 3), np.float32),
        "pose": np.zeros((n, 3), np.float32),
        "pose_para": np.zeros((n, 7), np.float32),
        "shape_para": np.zeros((n, ks), np.float32),
        "exp_para": np.zeros((n, ke), np.float32),
        "crop": np.zeros((n, 4), np.float64),
        "source_size": np.zeros((n, 2), np.int32),
        "status": np.full(n, STATUS_SKIPPED, np.int8),
    }
    if with_vertices:
        arrays["vertices"] = np.zeros((n, model.n_vertices, 3), np.float32)
    failures = []
    read = []
    for i, smp in enumerate(samples):
        try:
            d = read_sample(smp)
            h, w = d["image"].shape[:2]
            k_s, k_e = min(ks, d["shape_para"].size), min(ke, d["exp_para"].size)
            arrays["shape_para"][i, :k_s] = d["shape_para"][:k_s]
            arrays["exp_para"][i, :k_e] = d["exp_para"][:k_e]
            arrays["pose_para"][i] = d["pose_para"]
            arrays["pose"][i] = d["pose_para"][:3]
            arrays["source_size"][i] = (h, w)
            read.append((i, d))
        except SampleError as e:
            failures.append((smp.id, str(e)))
    if read:
        rows = np.array([i for i, _ in read])
        # one GEMM for the block's meshes (float32, raw units)
        meshes = model.reconstruct(arrays["shape_para"][rows], arrays["exp_para"][rows])
        for (i, d), mesh in zip(read, meshes, strict=True):
            try:
                h = arrays["source_size"][i, 0]
                img_v = pose_para_to_image(mesh, d["pose_para"], float(h))
                crop = crop_from_landmarks(d["pt2d"], size=size, margin=margin)
                v, z_shift = crop_vertices(img_v, crop)
                if not np.isfinite(v).all():
                    raise SampleError("non-finite vertices after the pose and crop")
                arrays["images"][i] = crop_image(d["image"], crop, size)
                arrays["landmarks2d"][i, :, 0] = crop.scale * (d["pt2d"][:, 0] - crop.x0)
                arrays["landmarks2d"][i, :, 1] = crop.scale * (d["pt2d"][:, 1] - crop.y0)
                arrays["landmarks3d"][i] = v[model.landmarks]
                arrays["crop"][i] = (crop.scale, crop.x0, crop.y0, z_shift)
                if with_vertices:
                    arrays["vertices"][i] = v
                arrays["status"][i] = STATUS_DONE
            except (SampleError, ValueError) as e:
                failures.append((samples[i].id, f"bad parameters: {e}"))
    # rows of failures are zeroed whatever step failed
    bad = arrays["status"] != STATUS_DONE
    if bad.any():
        for k, a in arrays.items():
            if k != "status":
                a[bad] = 0
    failures.sort()
    return arrays, failures


_WORKER: dict = {}


def _model_payload(model: MorphableModel) -> dict:
    """The constructor arguments of a model (pickled once per worker instead of the object)."""
    return dict(mean=model.mean, shape_basis=model.shape_basis, shape_std=model.shape_std,
                expression_basis=model.expression_basis, expression_std=model.expression_std,
                triangles=model.triangles, landmarks=model.landmarks, name=model.name)


def _model_token(model: MorphableModel) -> str:
    """Hash of everything that shapes a reconstruction (mean, both full bases, triangles, landmarks):
    a store is resumed, or read by the dataset, only with exactly the model that made it."""
    h = hashlib.sha1()
    for a in (model.mean, model.shape_basis, model.expression_basis, model.triangles, model.landmarks):
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(f"{model.n_vertices} {model.n_shape} {model.n_expression}".encode())
    return h.hexdigest()[:16]


def _worker_model(spec) -> MorphableModel:
    """The model of this worker process, built once from a spec (token, payload dict or path, ks, ke);
    a bare token looks up the model the worker's initializer built."""
    if isinstance(spec, str):
        return _WORKER[spec]
    token = spec[0]
    m = _WORKER.get(token)
    if m is None:
        _WORKER.clear()
        src = spec[1]
        if isinstance(src, MorphableModel):
            m = src
        elif isinstance(src, dict):
            m = MorphableModel(**src)
        else:
            from .formats import load_model

            m = load_model(src)
        if spec[2] is not None or spec[3] is not None:
            m = _truncate(m, spec[2], spec[3])
        _WORKER[token] = m
        _WORKER[token + ":down"] = spec[4] if len(spec) > 4 else ()
    return m


def _truncate(model: MorphableModel, ks: int | None, ke: int | None) -> MorphableModel:
    ks = model.n_shape if ks is None else ks
    ke = model.n_expression if ke is None else ke
    if ks == model.n_shape and ke == model.n_expression:
        return model
    return MorphableModel(model.mean, model.shape_basis[:, :ks], model.shape_std[:ks], model.expression_basis[:, :ke],
                          model.expression_std[:ke], model.triangles, model.landmarks, name=model.name)


def _alive(pid: int) -> bool:
    """Whether a process runs (a zombie, dead but not yet reaped by its parent, counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except FileNotFoundError:
        return False
    except OSError:  # pragma: no cover - no /proc: fall back to a signal probe
        try:
            os.kill(pid, 0)
            return True
        except (ProcessLookupError, PermissionError):
            return False


def _init_worker(spec, parent_pid: int | None = None) -> None:
    """Worker start-up: build the model once; exit if the parent job dies (a killed job leaves no
    orphan workers holding its files)."""
    if parent_pid is not None:
        import threading

        ppid0 = os.getppid()  # the job itself, or the forkserver it started

        def watch():
            while True:
                time.sleep(0.25)
                if os.getppid() != ppid0 or not _alive(parent_pid):
                    os._exit(1)

        threading.Thread(target=watch, daemon=True, name="w300lp-parent-watch").start()
    _worker_model(spec)


def _atomic_write_text(path: Path, text: str) -> None:
    with atomic_path(path, durable=True) as tmp:
        tmp.write_text(text)


def _marker(out: Path, block: int) -> Path:
    return out / _MARKER_DIR / f"block_{block:07d}.json"


def _run_block(spec, out: str, block: int, start: int, samples: list, opts: _Options) -> tuple[int, int, list]:
    """Process one block and write it into the store, then its marker. Returns (block, n_ok, failures)."""
    import zarr

    model = _worker_model(spec)
    arrays, failures = process_samples(model, samples, size=opts.size, margin=opts.margin,
                                       with_vertices=opts.store == "vertices")
    down = _WORKER.get((spec if isinstance(spec, str) else spec[0]) + ":down", ())
    if down and "vertices" in arrays:
        cur = arrays["vertices"]
        for k, d in enumerate(down, start=1):
            b, n, _ = cur.shape
            # one sparse product for the block: (n_k, n) @ (n, B*3)
            x = np.ascontiguousarray(cur.transpose(1, 0, 2)).reshape(n, b * 3)
            cur = np.asarray(d @ x, dtype=np.float32).reshape(d.shape[0], b, 3).transpose(1, 0, 2)
            arrays[f"vertices_level{k}"] = cur
    g = zarr.open_group(out, mode="r+")
    stop = start + len(samples)
    for k, a in arrays.items():
        if k.startswith("vertices"):
            a = a.astype(opts.vertex_dtype)
        g[k][start:stop] = a
    n_ok = int((arrays["status"] == STATUS_DONE).sum())
    _atomic_write_text(_marker(Path(out), block), json.dumps({"block": block, "ok": n_ok, "failures": failures}))
    return block, n_ok, failures


# ---------------------------------------------------------------------------------------------
# the store writer


def _config(samples: list, model: MorphableModel, opts: _Options, block_size: int, down: tuple = ()) -> dict:
    ids_hash = hashlib.sha1("\n".join(s.id for s in samples).encode()).hexdigest()
    return {"format": "meshkit-300wlp-1", "n_samples": len(samples), "ids_sha1": ids_hash, "size": opts.size,
            "margin": opts.margin, "store": opts.store, "vertex_dtype": opts.vertex_dtype, "block_size": block_size,
            "n_vertices": model.n_vertices, "n_shape_used": opts.n_shape, "n_expression_used": opts.n_expression,
            "n_landmarks": len(model.landmarks), "model": model.name, "model_token": _model_token(model),
            "hierarchy_levels": [int(d.shape[0]) for d in down], "hierarchy_sha1": _down_hash(down)}


def _down_hash(down) -> str:
    h = hashlib.sha1()
    for d in down:
        for a in (d.indptr, d.indices, d.data):
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16] if down else ""


def _resolve_hierarchy(hierarchy, n_vertices: int) -> tuple:
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


def _create_store(out: Path, samples: list, model: MorphableModel, opts: _Options, block_size: int, config: dict,
                  down: tuple = ()):
    import zarr

    n, s, b = len(samples), opts.size, block_size
    g = zarr.open_group(str(out), mode="w")
    # the marker folder first: it tells a rerun that this (possibly unfinished) store is ours
    (out / _MARKER_DIR).mkdir(exist_ok=True)
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
    if "config" not in g.attrs or g.attrs["config"].get("format") != "meshkit-300wlp-1":
        raise ValueError(f"store: {str(p)!r} is not a meshkit 300W-LP store (no config in its attrs)")
    return g


def preprocess(root, out, *, model, size: int = 256, margin: float = 1.5, store: StoreMode = "vertices",
               vertex_dtype: Literal["float32", "float16"] = "float32", block_size: int = 32, workers: int = 2,
               scheduler=None, limit: int | None = None, n_shape: int | None = None, n_expression: int | None = None,
               subsets: Sequence[str] = SUBSETS, flips: bool = True, hierarchy=None, overwrite: bool = False,
               progress: bool = True) -> Summary:
    """Preprocess a 300W-LP tree into a chunked zarr store, in parallel, resumably.

    Parameters
    ----------
    root : the 300W_LP folder.
    out : the store path (a directory). An existing store made with the same settings is resumed;
        one made with other settings is an error unless ``overwrite``.
    model : MorphableModel, or a path ``bfm.formats.load_model`` reads (each worker loads it once).
    size : crop side in pixels (256; 120 for 3DDFA-style).
    margin : crop side / mean landmark-box side (1.5, face3d).
    store : "vertices" (the cropped meshes are stored) or "params" (only parameters and the crop;
        ``reconstruct_cropped`` / ``bfm.dataset`` rebuild the mesh on the fly).
    vertex_dtype : "float32" or "float16" for ``vertices``.
    block_size : samples per block = per chunk along the sample axis.
    workers : local worker processes (1 = in this process). Ignored with ``scheduler``.
    scheduler : a dask.distributed scheduler address (str) or Client: run the blocks there. The
        store path must be reachable by the workers (shared file system).
    limit : only the first ``limit`` samples in id order.
    n_shape, n_expression : use at most this many leading components (default: min(model, 199 / 29)).
    subsets, flips : see ``discover``.
    hierarchy : optional multi-resolution hierarchy: a path saved by ``sampling.io.save``, a
        ``sampling.Hierarchy``, or a sequence of sparse ``down`` matrices (n_{k+1}, n_k). With
        ``store="vertices"``, arrays ``vertices_level1..K`` hold the down-sampled meshes.
    overwrite : replace a store made with other settings (a store with the same settings is always
        resumed, finished blocks are never redone: delete it to start over).
    progress : show a tqdm progress bar.

    Returns
    -------
    Summary (processed, skipped ids with reasons, seconds, blocks resumed).
    """
    t0 = time.perf_counter()
    check_choice(store, "store", ("vertices", "params"))
    check_choice(vertex_dtype, "vertex_dtype", ("float32", "float16"))
    size = check_int(size, "size", minimum=8)
    margin = check_float(margin, "margin", minimum=0.0, strict_minimum=True)
    block_size = check_int(block_size, "block_size", minimum=1)
    workers = check_int(workers, "workers", minimum=1)
    if limit is not None:
        limit = check_int(limit, "limit", minimum=1)
    if isinstance(model, (str, os.PathLike)):
        from .formats import load_model

        model_src = str(model)
        model = load_model(model)
    elif isinstance(model, MorphableModel):
        model_src = None
    else:
        raise TypeError(f"model: expected a MorphableModel or a model file path, got {type(model).__name__}")
    if len(model.landmarks) == 0:
        raise ValueError("model: expected a model with landmark indices (68 iBUG points), got none")
    ks = min(model.n_shape, 199) if n_shape is None else check_int(n_shape, "n_shape", minimum=0, maximum=model.n_shape)
    if n_expression is None and model.n_expression > 29:
        raise ValueError(
            f"model: has {model.n_expression} expression components, but 300W-LP's Exp_Para (29,) are "
            "coefficients of 3DDFA's 29-component expression basis (face3d's BFM.mat layout), not of another "
            "basis such as Exp_Pca.bin's; load that model, or pass n_expression=... to use this basis's leading ones")
    ke = (model.n_expression if n_expression is None
          else check_int(n_expression, "n_expression", minimum=0, maximum=model.n_expression))
    model = _truncate(model, ks, ke)
    opts = _Options(size, margin, store, vertex_dtype, ks, ke)
    if hierarchy is not None and store != "vertices":
        raise ValueError("hierarchy: the level arrays are stored with store='vertices' only (a params store "
                         "rebuilds meshes on the fly: apply the down matrices there), got store='params'")
    down = _resolve_hierarchy(hierarchy, model.n_vertices)

    samples = discover(root, subsets=subsets, flips=flips)
    if limit is not None:
        samples = samples[:limit]
    out = Path(out)
    config = _config(samples, model, opts, block_size, down)
    g = None
    if out.exists():
        import zarr

        try:
            g = zarr.open_group(str(out), mode="r+")
            old = g.attrs.get("config")
        except Exception:  # noqa: BLE001 - not a zarr group: only replaced when asked to
            old = "unreadable"
        if old is None and not (out / _MARKER_DIR).is_dir() and not overwrite:
            # a zarr store that is not ours (ours gets its marker folder before its config)
            old = "foreign"
        if old is not None and old != config:
            if not overwrite:
                raise ValueError(f"out: {str(out)!r} holds a store made with other settings or samples, or not by "
                                 f"this job ({_config_diff(old, config)}); use another path or overwrite=True (--overwrite)")
            g = None
        elif old is None:
            g = None  # an unfinished creation of ours: start it again
    if g is None:
        if out.exists():
            _remove_tree(out)
        g = _create_store(out, samples, model, opts, block_size, config, down)

    n_blocks = (len(samples) + block_size - 1) // block_size
    todo = [b for b in range(n_blocks) if not _marker(out, b).is_file()]
    resumed = n_blocks - len(todo)
    spec = (_model_token(model) + _down_hash(down), model_src if model_src is not None else _model_payload(model),
            ks if model_src is not None else None, ke if model_src is not None else None, down)
    exit_after = int(os.environ.get(EXIT_AFTER_ENV, "0") or 0)

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
    done_now = 0

    def on_done(result):
        nonlocal done_now
        b, _, _ = result
        done_now += 1
        if bar is not None:
            bar.update(min(block_size, len(samples) - b * block_size))
        if exit_after and done_now >= exit_after:
            os._exit(75)  # the test hook: die like a killed job, no cleanup

    try:
        if scheduler is not None:
            _run_dask(scheduler, spec, str(out), tasks(), opts, on_done, window=max(2, 2 * workers))
        elif workers == 1:
            for b, start, smp in tasks():
                on_done(_run_block(spec, str(out), b, start, smp, opts))
        else:
            _run_local(workers, spec, str(out), tasks(), opts, on_done)
    finally:
        if bar is not None:
            bar.close()

    # gather the failures of every block (this run and earlier ones) into the attrs
    failures, n_ok = [], 0
    for b in range(n_blocks):
        rec = json.loads(_marker(out, b).read_text())
        n_ok += rec["ok"]
        failures.extend(tuple(f) for f in rec["failures"])
    import zarr

    g = zarr.open_group(str(out), mode="r+")
    g.attrs["failures"] = [list(f) for f in failures]
    g.attrs["complete"] = True
    return Summary(out, len(samples), n_ok, failures, n_blocks, resumed, time.perf_counter() - t0)


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


def _run_local(workers: int, spec, out: str, tasks, opts: _Options, on_done) -> None:
    """Blocks on a process pool, at most 2 * workers in flight (memory flat in the sample count)."""
    import multiprocessing as mp

    ctx = mp.get_context("forkserver") if "forkserver" in mp.get_all_start_methods() else mp.get_context("spawn")
    # one BLAS thread per worker (the workers are the parallelism); only where the user set nothing,
    # and only for processes started now
    saved = {k: os.environ.get(k) for k in _BLAS_ENV}
    for k in _BLAS_ENV:
        os.environ.setdefault(k, "1")
    try:
        _pool_loop(ctx, workers, spec, out, tasks, opts, on_done)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _pool_loop(ctx, workers: int, spec, out: str, tasks, opts: _Options, on_done) -> None:
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(spec, os.getpid())) as ex:
        pending = set()
        it = iter(tasks)
        exhausted = False
        while True:
            while not exhausted and len(pending) < 2 * workers:
                try:
                    b, start, smp = next(it)
                except StopIteration:
                    exhausted = True
                    break
                pending.add(ex.submit(_run_block, spec[0], out, b, start, smp, opts))
            if not pending:
                break
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in sorted(finished, key=lambda f: f.result()[0]):
                on_done(f.result())


def _run_dask(scheduler, spec, out: str, tasks, opts: _Options, on_done, window: int) -> None:
    """The same blocks on a dask.distributed cluster, a bounded number in flight."""
    from meshkit._optional import require

    distributed = require("dask.distributed", "preprocess(scheduler=...) on a Dask cluster")
    Client, as_completed = distributed.Client, distributed.as_completed
    own = not isinstance(scheduler, Client)
    client = Client(scheduler) if own else scheduler
    try:
        payload = client.scatter(spec, broadcast=True)
        it = iter(tasks)
        ac = as_completed()
        n_in = 0
        for b, start, smp in it:
            ac.add(client.submit(_run_block, payload, out, b, start, smp, opts, key=f"w300lp-{out}-{b}", pure=False))
            n_in += 1
            if n_in >= window:
                break
        for fut in ac:
            on_done(fut.result())
            fut.release()
            nxt = next(it, None)
            if nxt is not None:
                b, start, smp = nxt
                ac.add(client.submit(_run_block, payload, out, b, start, smp, opts, key=f"w300lp-{out}-{b}", pure=False))
    finally:
        if own:
            client.close()
