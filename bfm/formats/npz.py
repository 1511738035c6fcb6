"""Our canonical ``.npz``: the MorphableModel fields by name, ``name`` as a unicode scalar and
``format`` = "meshkit-bfm-1"; loaded with ``allow_pickle=False``. Triangles are written as the
model holds them (counter-clockwise) and measured on load like every layout (``winding=``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from meshkit.io import atomic_path

from ..model import MorphableModel
from ._common import check_file, loaded_triangles, need

__all__ = ["NPZ_FORMAT", "load_npz", "save_npz"]

NPZ_FORMAT = "meshkit-bfm-1"

_NPZ_ARRAYS = ("mean", "shape_basis", "shape_std", "expression_basis", "expression_std", "triangles", "landmarks")
_NPZ_TEXTURE = ("texture_mean", "texture_basis", "texture_std")


def save_npz(path, model: MorphableModel, *, compressed: bool = False) -> Path:
    """Write a model as our canonical .npz (atomic: temp file + rename). Returns the path."""
    if not isinstance(model, MorphableModel):
        raise TypeError(f"model: expected a MorphableModel, got {type(model).__name__}")
    p = Path(path)
    arrays = {k: getattr(model, k) for k in _NPZ_ARRAYS}
    if model.has_texture:
        arrays.update({k: getattr(model, k) for k in _NPZ_TEXTURE})
    arrays["name"] = np.array(model.name)
    arrays["format"] = np.array(NPZ_FORMAT)
    with atomic_path(p) as tmp, open(tmp, "wb") as fh:
        (np.savez_compressed if compressed else np.savez)(fh, **arrays)
    return p


def load_npz(path, *, winding: str = "auto") -> MorphableModel:
    """Read our canonical .npz (``allow_pickle=False``); ``winding`` as in every loader ("auto" | "keep")."""
    p = check_file(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
    except ValueError as e:
        raise ValueError(f"{p}: refused or unreadable .npz (object arrays are not allowed): {e}") from e
    except Exception as e:  # zipfile.BadZipFile, EOFError, OSError on truncated files
        raise ValueError(f"{p}: cannot read as .npz (truncated or corrupt?): {type(e).__name__}: {e}") from e
    where = f"{p} (meshkit .npz layout)"
    need(d, list(_NPZ_ARRAYS), where)
    fmt = str(d.get("format", ""))
    if fmt != NPZ_FORMAT:
        raise ValueError(f"{where}: expected format '{NPZ_FORMAT}', got {fmt!r}")
    tex = {k: d[k] for k in _NPZ_TEXTURE if k in d}
    d["triangles"], stored = loaded_triangles(d["mean"], d["triangles"], winding)
    return MorphableModel(**{k: d[k] for k in _NPZ_ARRAYS}, name=str(d.get("name", "")), stored_winding=stored, **tex)
