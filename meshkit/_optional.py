"""Optional heavy dependencies, imported on use with one clear message when missing."""

from __future__ import annotations

import importlib

# what to install for each optional module (torch first and pinned: an unpinned `pip install torch`
# pulls a multi-gigabyte CUDA build)
_INSTALL = {
    "torch": "`pip install torch==2.13.0` (the CPU build) first, then `pip install \"meshkit[torch]\"`",
    "pyvista": "`pip install \"meshkit[viz]\"`",
    "dask.distributed": "`pip install \"meshkit[dist]\"`",
}


def require(module: str, needed_by: str):
    """Import and return ``module``, or raise ``ImportError`` saying who needs it and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        how = _INSTALL.get(module, f"`pip install {module}`")
        raise ImportError(f"{needed_by} needs {module}, which is not installed: install it with {how}.") from exc
