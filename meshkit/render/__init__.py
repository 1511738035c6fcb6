"""Fast CPU rendering of triangle meshes (numba z-buffer rasterizer) for face-mesh research.

rasterize.py   ``rasterize`` / ``rasterize_batch`` -> ``Fragments`` (conventions: image axes,
               pixel (r, c) centred on x = c, y = r, depth sign, fill rule, winding); ``Rasterizer``
               reuses its buffers over many frames
shading.py     ``interpolate`` and ``render_colors`` / ``render_shaded`` (one light, Lambertian) /
               ``render_depth`` / ``render_normals`` / ``render_pncc`` (``pncc_code``) /
               ``render_texture``; ``render_colors_batch``
               (B poses, parallel over images)
lighting.py    ``lambertian``, spherical-harmonics lighting (``sh_basis``, ``sh_irradiance``,
               ``sh_lighting``)
visibility.py  ``visible_vertices``
uv.py          UV space: ``uv_position_map`` (PRNet position maps), ``sample_uv_map``,
               ``uv_texture`` (photo unwrapped, occlusion-masked), ``symmetric_fill``; ``UVLayout``
               rasterizes a layout once for many maps; ``UVMap`` (image + masks)
camera.py      ``frame_vertices``, ``front_view``: an automatic orthographic camera framing a mesh, and
               the side to view it from
image.py       ``to_uint8``, ``save_png``, ``save_image`` (PNG/JPEG by extension; pillow), ``overlay``

Example::

    from meshkit.synthetic import face_template
    from meshkit import render
    v, f = face_template()
    vi = render.frame_vertices(v, 256, 256)
    render.save_png("depth.png", render.render_depth(vi, f, 256, 256, normalize=True))
"""

from .camera import frame_vertices, front_view
from .image import IMAGE_SUFFIXES, overlay, save_image, save_png, to_uint8
from .lighting import SH_BAND_FACTORS, lambertian, sh_basis, sh_irradiance, sh_lighting
from .rasterize import Fragments, Rasterizer, rasterize, rasterize_batch
from .shading import (
    BatchRender,
    interpolate,
    pncc_code,
    render_colors,
    render_colors_batch,
    render_depth,
    render_normals,
    render_pncc,
    render_shaded,
    render_texture,
)
from .uv import UVLayout, UVMap, sample_uv_map, symmetric_fill, uv_position_map, uv_texture
from .visibility import visible_vertices

__all__ = [
    "Fragments",
    "Rasterizer",
    "rasterize",
    "rasterize_batch",
    "interpolate",
    "render_colors",
    "render_colors_batch",
    "render_shaded",
    "BatchRender",
    "render_depth",
    "render_normals",
    "render_pncc",
    "pncc_code",
    "render_texture",
    "lambertian",
    "sh_basis",
    "sh_irradiance",
    "sh_lighting",
    "SH_BAND_FACTORS",
    "visible_vertices",
    "UVLayout",
    "UVMap",
    "uv_position_map",
    "sample_uv_map",
    "uv_texture",
    "symmetric_fill",
    "frame_vertices",
    "front_view",
    "to_uint8",
    "save_png",
    "save_image",
    "IMAGE_SUFFIXES",
    "overlay",
]
