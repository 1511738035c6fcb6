"""sampling: multi-resolution mesh hierarchies ready for spiral and Chebyshev networks.

>>> from meshkit.synthetic import face_template                  # doctest: +SKIP
>>> h = build_hierarchy(*face_template(), factors=(4, 4, 4, 4, 4))  # doctest: +SKIP
>>> h.n_vertices                                                  # doctest: +SKIP
[53215, 13304, 3326, 832, 208, 52]
"""

from .hierarchy import FORMAT_VERSION, Hierarchy, Level, build_hierarchy, template_hash
from .io import export_neural3dmm, export_spiralnet, load, save

__all__ = [
    "FORMAT_VERSION",
    "Hierarchy",
    "Level",
    "build_hierarchy",
    "template_hash",
    "load",
    "save",
    "export_spiralnet",
    "export_neural3dmm",
]
