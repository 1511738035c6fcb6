"""300W-LP layout: the tree's folders, one ``Sample`` per image, and reading a sample's .mat and image.

See the package docstring (``bfm.w300lp``) for the folder layout and the .mat contents.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["SUBSETS", "FLIP_SUFFIX", "N_LANDMARKS", "Sample", "SampleError", "discover", "read_sample"]

SUBSETS = ("AFW", "HELEN", "IBUG", "LFPW")
FLIP_SUFFIX = "_Flip"
N_LANDMARKS = 68


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

