"""Every real Morphable Model file layout: one module per layout holding its reader and writer.

``bfm2009`` (``01_MorphableModel.mat`` + ``Exp_Pca.bin`` + trim list), ``face3d`` (face3d's
``BFM.mat``), ``tddfa`` (3DDFA_V2's ``bfm_noneck_v3.pkl`` and its parameter whitening file),
``bfm2017`` (statismo HDF5) and ``npz`` (our canonical file); each module's docstring states the
layout facts, checked against public loader code (repositories named; facts carried, code not
copied). :data:`LAYOUTS` is the one table of layouts; :func:`load_model` picks the reader by the
file's content and :func:`save_model` the writer by ``layout=`` or the file extension.

Winding: every real BFM triangle list is clockwise seen from outside (../shared/REAL_FILES.md).
Every reader measures the stored winding on the file's mean shape (:func:`measure_winding`, on
``meshkit.topology.outward_fraction``) and, with ``winding="auto"`` (the default), reverses all
triangles of a clockwise file, so every model comes out counter-clockwise (outward);
``winding="keep"`` keeps the stored order. ``MorphableModel.stored_winding`` records what the file
held. Every writer writes the real layouts' clockwise order (BFM2017 and our .npz: counter-
clockwise), so a real file round-trips exactly and older counter-clockwise files still load outward.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..model import MorphableModel
from ._common import WINDINGS, check_file, measure_winding
from .bfm2009 import load_bfm2009, read_exp_pca_bin, read_trim_index, write_bfm2009
from .bfm2017 import load_bfm2017_h5, write_bfm2017_h5
from .face3d import load_face3d_mat, write_face3d_mat
from .npz import NPZ_FORMAT, load_npz, save_npz
from .tddfa import load_3ddfa_pkl, read_param_mean_std, safe_pickle_load, write_3ddfa_pkl
from .uv import UV_KEY, read_uv, write_uv

__all__ = [
    "LAYOUTS",
    "Layout",
    "load_model",
    "save_model",
    "load_bfm2009",
    "load_face3d_mat",
    "load_3ddfa_pkl",
    "load_bfm2017_h5",
    "load_npz",
    "save_npz",
    "write_bfm2009",
    "write_face3d_mat",
    "write_3ddfa_pkl",
    "write_bfm2017_h5",
    "read_exp_pca_bin",
    "read_trim_index",
    "read_param_mean_std",
    "safe_pickle_load",
    "NPZ_FORMAT",
    "read_uv",
    "write_uv",
    "UV_KEY",
    "WINDINGS",
    "measure_winding",
]


@dataclass(frozen=True)
class Layout:
    """One file layout: how its files are recognised, and its reader and writer.

    ``magic``: the bytes its files start with; ``suffixes``: its file extensions (lower case), used
    when the content is not recognised and by :func:`save_model`; ``variables``: for layouts that
    share a container (MATLAB), the variable names that identify this one; ``folder``: the writer
    takes a folder of several files, so :func:`save_model` uses it only when asked by name.
    """

    name: str
    magic: bytes
    suffixes: tuple[str, ...]
    read: Callable[..., MorphableModel]
    write: Callable
    variables: frozenset = frozenset()
    folder: bool = False


#: Layout name -> Layout, in the order :func:`load_model` tries them (face3d before BFM2009).
LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (
    Layout("bfm2017", b"\x89HDF\r\n\x1a\n", (".h5", ".hdf5"), load_bfm2017_h5, write_bfm2017_h5),
    Layout("npz", b"PK", (".npz",), load_npz, save_npz),
    Layout("face3d", b"MATLAB", (".mat",), load_face3d_mat, write_face3d_mat, variables=frozenset({"model"})),
    Layout("bfm2009", b"MATLAB", (".mat",), load_bfm2009, write_bfm2009,
           variables=frozenset({"shapeMU", "shapePC", "tl"}), folder=True),
    Layout("3ddfa", b"\x80", (".pkl", ".pickle"), load_3ddfa_pkl, write_3ddfa_pkl),
)}


def _named(layout) -> Layout:
    if layout not in LAYOUTS:
        raise ValueError(f"layout: expected one of {list(LAYOUTS)}, got {layout!r}")
    return LAYOUTS[layout]


def _sniff(p: Path) -> Layout:
    """The layout of file ``p``: by its leading bytes, else by its extension; MATLAB files by their variables."""
    with open(p, "rb") as fh:
        head = fh.read(128)
    found = ([lay for lay in LAYOUTS.values() if head.startswith(lay.magic)]
             or [lay for lay in LAYOUTS.values() if p.suffix.lower() in lay.suffixes])
    if not found:
        raise ValueError(f"{p}: unknown model file layout (expected .mat, .pkl, .h5 or .npz content)")
    if len(found) == 1:
        return found[0]
    import scipy.io

    try:
        names = {n for n, _, _ in scipy.io.whosmat(str(p))}
    except Exception as e:  # noqa: BLE001 - any failure means an unreadable file
        raise ValueError(f"{p}: cannot read as a MATLAB .mat file (truncated or corrupt?): {e}") from e
    for lay in found:
        if lay.variables <= names:
            return lay
    needs = "; ".join(f"{lay.name} needs {sorted(lay.variables)}" for lay in found)
    raise ValueError(f"{p}: .mat file is none of the layouts {[lay.name for lay in found]} ({needs}); "
                     f"found variables: {sorted(names)}")


def load_model(path, *, layout: str | None = None, **kw) -> MorphableModel:
    """Load a Morphable Model from any supported layout, chosen by the file's content.

    HDF5 -> :func:`load_bfm2017_h5`; zip -> :func:`load_npz`; MATLAB with a struct ``model`` ->
    :func:`load_face3d_mat`, with ``shapeMU``/``shapePC``/``tl`` -> :func:`load_bfm2009`; pickle
    -> :func:`load_3ddfa_pkl`; a file not recognised by content goes by its extension.

    Parameters
    ----------
    path : the model file (for BFM2009 the ``01_MorphableModel.mat``).
    layout : a name in :data:`LAYOUTS` to skip the detection, optional.
    **kw : options of that layout's reader (e.g. ``expression=``, ``trim=`` for BFM2009; ``tri=``,
        ``param_mean_std=`` for 3DDFA_V2; ``landmarks=`` for BFM2017); every reader takes
        ``winding="auto" | "keep"`` (see the module docstring).

    Returns
    -------
    MorphableModel
    """
    p = check_file(path)
    chosen = _sniff(p) if layout is None else _named(layout)
    return chosen.read(p, **kw)


def save_model(path, model: MorphableModel, *, layout: str | None = None, **kw):
    """Write a Morphable Model in the layout named by ``layout`` or, when not given, by the extension of ``path``.

    .npz -> :func:`save_npz`, .mat -> :func:`write_face3d_mat`, .pkl -> :func:`write_3ddfa_pkl`,
    .h5 -> :func:`write_bfm2017_h5`. BFM2009 is a folder of files (``01_MorphableModel.mat``,
    ``Exp_Pca.bin``, ``std_exp.txt``, ``BFM_exp_idx.mat``): ``layout="bfm2009"`` writes them into
    the folder ``path`` (:func:`write_bfm2009`). Layouts hold what they can: BFM2017 keeps
    landmarks as named points, 3DDFA_V2 keeps no texture and puts the std in a separate file.

    Parameters
    ----------
    path : output file (folder for BFM2009).
    model : MorphableModel.
    layout : a name in :data:`LAYOUTS`, optional.
    **kw : options of that layout's writer (e.g. ``param_mean_std_path=`` for 3DDFA_V2).

    Returns
    -------
    What the writer returns: the Path written, or for layouts of several files (bfm2009, 3ddfa) a
    dict of the written paths.
    """
    if not isinstance(model, MorphableModel):
        raise TypeError(f"model: expected a MorphableModel, got {type(model).__name__}")
    if layout is not None:
        return _named(layout).write(path, model, **kw)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a file path, got {type(path).__name__}")
    suffix = Path(path).suffix.lower()
    for lay in LAYOUTS.values():
        if suffix in lay.suffixes and not lay.folder:
            return lay.write(path, model, **kw)
    known = [s for lay in LAYOUTS.values() if not lay.folder for s in lay.suffixes]
    raise ValueError(f"path: cannot choose a layout from the extension {suffix!r} of {os.fspath(path)!r}; expected one "
                     f"of {known}, or pass layout= (e.g. layout='bfm2009' to write a BFM2009 folder)")
