"""Optional heavy dependencies, imported on use with one clear message when missing.

Every optional import in meshkit, bfm and sampling goes through :func:`require`, so that a missing
package always gives the same message: who needs it, and the extra that installs it.
"""

from __future__ import annotations

import importlib

# The extra that installs each optional module (its top-level package is looked up when a submodule
# is asked for: "matplotlib.figure" -> "matplotlib"). torch is pinned first: an unpinned
# `pip install torch` pulls a multi-gigabyte CUDA build.
_INSTALL = {
    "torch": "`pip install torch==2.13.0` (the CPU build) first, then `pip install \"meshkit[torch]\"`",
    "pyvista": "`pip install \"meshkit[viz]\"`",
    "matplotlib": "`pip install \"meshkit[viz]\"`",
    "dask": "`pip install \"meshkit[dist]\"`",
    "distributed": "`pip install \"meshkit[dist]\"`",
}


def install_hint(module: str) -> str:
    """How to install ``module`` (a dotted name is looked up by its top-level package)."""
    top = module.split(".")[0]
    return _INSTALL.get(module, _INSTALL.get(top, f"`pip install {top}`"))


def require(module: str, needed_by: str):
    """Import and return ``module``, or raise ``ImportError`` saying who needs it and how to install it.

    Parameters
    ----------
    module : str
        Dotted module name, e.g. ``"torch"``, ``"matplotlib.figure"``, ``"dask.distributed"``.
    needed_by : str
        The function or feature that needs it, named in the message.

    Returns
    -------
    The imported module.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{needed_by} needs {module}, which is not installed: install it with "
                          f"{install_hint(module)}.") from exc
