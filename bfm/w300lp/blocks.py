"""Processing one block of 300W-LP samples: read, reconstruct, pose, crop (``process_samples``), and the
worker side of a run: the model each worker builds once from a ``WorkerSpec`` and ``run_block``, which
processes a block and writes it into the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..model import MorphableModel
from ._kernels import pose_crop
from .crop import crop_from_landmarks, crop_image, pose_crop_map
from .layout import N_LANDMARKS, Sample, SampleError, read_sample
from .store import write_block

__all__ = ["STATUS_DONE", "STATUS_SKIPPED", "BlockOptions", "WorkerSpec", "SavedModel", "process_samples",
           "model_payload", "save_model_payload", "worker_model", "warm_up", "run_block"]


#: Values of the store's ``status`` array (0, the fill value, is a row no block has written yet).
STATUS_DONE, STATUS_SKIPPED = 1, 2


@dataclass(frozen=True)
class BlockOptions:
    """The settings every block is processed and stored with."""

    size: int  # crop side in pixels
    margin: float  # crop side / mean landmark-box side
    store: str  # "vertices" or "params"
    vertex_dtype: str  # "float32" or "float16"
    n_shape: int  # leading identity components used
    n_expression: int  # leading expression components used
    image_codec: str = "jpeg"  # how the store keeps the crops: "jpeg" or "lossless" (``codec``)
    jpeg_quality: int = 95  # with image_codec="jpeg"


@dataclass(frozen=True)
class WorkerSpec:
    """How a worker builds the model once: ``model`` (constructor arguments, a model file path or the
    model itself), truncated to ``n_shape`` / ``n_expression`` leading components when those are not
    None, and the hierarchy's ``down`` matrices; ``token`` names the result (model and hierarchy)."""

    token: str
    model: dict | str | MorphableModel | SavedModel
    n_shape: int | None
    n_expression: int | None
    down: tuple = ()


def process_samples(model: MorphableModel, samples: Sequence[Sample], *, size: int = 256, margin: float = 1.5,
                    with_vertices: bool = True) -> tuple[dict, list]:
    """Process a block of samples: read, reconstruct (one batched GEMM), pose and crop (one compiled pass).

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
        arrays["vertices"] = np.zeros((n, model.n_vertices, 3), np.float32)  # zero pages: allocated lazily
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
        # one GEMM for the block's meshes (float32, raw units), then pose + flip + crop in one pass
        meshes = model.reconstruct(arrays["shape_para"][rows], arrays["exp_para"][rows])
        maps, offsets = np.zeros((len(rows), 3, 3)), np.zeros((len(rows), 3))
        for r, (i, d) in enumerate(read):
            try:
                crop = crop_from_landmarks(d["pt2d"], size=size, margin=margin)
                maps[r], offsets[r] = pose_crop_map(d["pose_para"], crop, float(arrays["source_size"][i, 0]))
                arrays["images"][i] = crop_image(d["image"], crop, size)
                arrays["landmarks2d"][i, :, 0] = crop.scale * (d["pt2d"][:, 0] - crop.x0)
                arrays["landmarks2d"][i, :, 1] = crop.scale * (d["pt2d"][:, 1] - crop.y0)
                arrays["crop"][i, :3] = (crop.scale, crop.x0, crop.y0)
                arrays["status"][i] = STATUS_DONE
            except ValueError as e:
                failures.append((samples[i].id, f"bad parameters: {e}"))
        z_shift, finite = np.zeros(len(rows)), np.zeros(len(rows), bool)
        pose_crop(meshes, maps, offsets, meshes, z_shift, finite)  # in place
        for r, i in enumerate(rows):
            if arrays["status"][i] == STATUS_DONE and not finite[r]:
                arrays["status"][i] = STATUS_SKIPPED
                failures.append((samples[i].id, "bad parameters: non-finite vertices after the pose and crop"))
        arrays["crop"][rows, 3] = z_shift
        arrays["landmarks3d"][rows] = meshes[:, model.landmarks]
        if with_vertices:
            if len(rows) == n:
                arrays["vertices"] = meshes
            else:
                arrays["vertices"][rows] = meshes
    # rows of failures are zeroed whatever step failed
    bad = arrays["status"] != STATUS_DONE
    if bad.any():
        for k, a in arrays.items():
            if k != "status":
                a[bad] = 0
    failures.sort()
    return arrays, failures


#: This process's model and down matrices, by spec token (one entry: a worker serves one job).
_LOADED: dict = {}


def model_payload(model: MorphableModel) -> dict:
    """The constructor arguments of a model (pickled once per worker instead of the object)."""
    return dict(mean=model.mean, shape_basis=model.shape_basis, shape_std=model.shape_std,
                expression_basis=model.expression_basis, expression_std=model.expression_std,
                triangles=model.triangles, landmarks=model.landmarks, name=model.name)


@dataclass(frozen=True)
class SavedModel:
    """A model's constructor arrays saved as ``<folder>/<name>.npy`` (``save_model_payload``): workers map
    the files (the page cache holds one copy for all of them) instead of receiving pickled arrays."""

    folder: str
    name: str


def save_model_payload(model: MorphableModel, folder) -> SavedModel:
    """Write ``model_payload(model)``'s arrays into ``folder`` (one .npy each)."""
    folder = Path(folder)
    payload = model_payload(model)
    name = payload.pop("name")
    for k, a in payload.items():
        np.save(folder / f"{k}.npy", np.ascontiguousarray(a))
    return SavedModel(str(folder), name)


def worker_model(spec: WorkerSpec | str) -> tuple[MorphableModel, tuple]:
    """The (model, down matrices) of this process, built once from a spec; a bare token (``spec.token``)
    looks up what an earlier call (the worker's initializer) built."""
    if isinstance(spec, str):
        return _LOADED[spec]
    loaded = _LOADED.get(spec.token)
    if loaded is None:
        _LOADED.clear()
        src = spec.model
        if isinstance(src, MorphableModel):
            m = src
        elif isinstance(src, dict):
            m = MorphableModel(**src)
        elif isinstance(src, SavedModel):
            arrays = {p.stem: np.load(p, mmap_mode="r") for p in Path(src.folder).glob("*.npy")}
            m = MorphableModel(**arrays, name=src.name)
        else:
            from ..formats import load_model

            m = load_model(src)
        if spec.n_shape is not None or spec.n_expression is not None:
            m = m.with_components(n_shape=spec.n_shape, n_expression=spec.n_expression)
        loaded = _LOADED[spec.token] = (m, spec.down)
    return loaded


def warm_up() -> None:
    """Pay the first-call costs of a block (loading the compiled kernels from numba's cache, the
    readers' and codecs' imports) in a worker's start-up instead of in its first block."""
    import PIL.Image  # noqa: F401
    import scipy.io  # noqa: F401
    import zarr  # noqa: F401

    from ._kernels import crop_bilinear, pose_crop

    crop_bilinear(np.zeros((2, 2, 3), np.uint8), 1.0, 0.0, 0.0, np.zeros((2, 2, 3), np.uint8))
    m = np.zeros((1, 2, 3), np.float32)
    pose_crop(m, np.eye(3)[None], np.zeros((1, 3)), m, np.zeros(1), np.zeros(1, bool))
    from .codec import _imagecodecs

    _imagecodecs()


def run_block(spec: WorkerSpec | str, out: str, block: int, start: int, samples: list,
              opts: BlockOptions) -> tuple[int, int, list]:
    """Process one block and write it into the store (its status rows last). Returns (block, n_ok, failures)."""
    model, down = worker_model(spec)
    arrays, failures = process_samples(model, samples, size=opts.size, margin=opts.margin,
                                       with_vertices=opts.store == "vertices")
    if down and "vertices" in arrays:
        cur = arrays["vertices"]
        for k, d in enumerate(down, start=1):
            b, n, _ = cur.shape
            # one sparse product for the block: (n_k, n) @ (n, B*3)
            x = np.ascontiguousarray(cur.transpose(1, 0, 2)).reshape(n, b * 3)
            cur = np.asarray(d @ x, dtype=np.float32).reshape(d.shape[0], b, 3).transpose(1, 0, 2)
            arrays[f"vertices_level{k}"] = cur
    n_ok = int((arrays["status"] == STATUS_DONE).sum())
    write_block(Path(out), start, [smp.id for smp in samples], arrays, failures, vertex_dtype=opts.vertex_dtype)
    return block, n_ok, failures
