"""Spiral neighbourhood orderings for spiral convolutions (SpiralNet++, Neural3DMM).

A spiral lists, for one centre vertex, the centre itself, then its one-ring in rotational order,
then the two-ring, and so on, so a 1-D convolution along the list sees neighbours in a consistent
order. This module holds one function, :func:`spiral_indices`; the walk runs in the numba kernel
``meshkit/_kernels/spiral.py`` on top of the ordered one-rings of :mod:`meshkit.topology`.

How the reference code builds spirals, and how ours relates to it
-----------------------------------------------------------------
* SpiralNet++ (``extract_spirals`` in ``utils/generate_spiral_seq.py``) takes the one-ring from
  OpenMesh's default vertex-vertex circulator, which runs *clockwise* (seen from the front of
  counter-clockwise wound faces) starting at the target of the vertex's stored outgoing half-edge
  (for a boundary vertex, the boundary half-edge; otherwise whatever the mesh construction left).
  Each next ring visits the previous ring's vertices in order and, around each of them, reads the
  circulator cyclically from just after its first neighbour in the previous ring, keeping vertices
  not seen yet. It gathers rings until ``length * dilation`` vertices are reached, keeps
  ``spiral[:length * dilation][::dilation]``, and when a vertex runs out of rings it silently
  replaces the whole spiral with the k nearest vertices in Euclidean space.
* Neural3DMM (``get_spirals`` in ``spiral_utils.py``) walks counter-clockwise, starts the one-ring
  at the neighbour on the shortest path to a reference vertex, starts each next ring at the vertex
  across the edge (last, first) of the previous ring, pads with -1 (a dummy vertex whose features
  are zero), and dilates as ``spiral[:1] + spiral[1::dilation]`` (the centre, then every
  dilation-th entry starting with the first neighbour).

What :func:`spiral_indices` does, exactly
-----------------------------------------
1. Entry 0 is the centre vertex c.
2. Ring 1 is :func:`meshkit.topology.one_rings` of c: counter-clockwise seen from the front (the
   side the face normals point to). An interior vertex's ring starts at its smallest-index
   neighbour; a boundary vertex's ring starts at the boundary neighbour from which the
   counter-clockwise sweep covers all its faces and ends at the other boundary neighbour.
3. Ring p+1 visits the vertices w of ring p in order. Around each w it reads w's ordered one-ring
   cyclically, starting just after w's *anchor*, and appends every vertex not yet in the spiral.
   The anchor is the vertex before w in ring p (for the first w of the ring: the last vertex of
   ring p, which is how the next ring continues from where the previous one ended) when that
   vertex is a neighbour of w; otherwise (open rings of boundary vertices) it is the first
   neighbour of w, in w's stored ring order, that is already in the spiral. On an interior patch
   ring p+1 therefore starts at the vertex across the edge (last of ring p, first of ring p) and
   sweeps counter-clockwise, as in Neural3DMM, and in the same cyclic-read manner as SpiralNet++.
   Ring p holds exactly the vertices at graph distance p from c.
4. The walk stops once ``length * dilation`` vertices are collected (the last ring may be cut) or
   when no new vertex is reachable. The row is ``spiral[:length * dilation][::dilation]`` (the
   SpiralNet++ dilation: the centre, then entries dilation, 2 * dilation, ...).
5. A row shorter than ``length`` (a component with too few vertices, e.g. a tiny mesh, or an
   isolated vertex) is padded: ``padding="repeat"`` repeats the row's last index,
   ``padding="sentinel"`` fills with the index ``V`` (= ``n_vertices``), one past the last vertex.

Where we deliberately differ: counter-clockwise like Neural3DMM, not clockwise like OpenMesh's
default circulator (pass ``faces[:, ::-1]`` to get clockwise spirals); ring 1 starts at a
documented neighbour instead of an artefact of half-edge storage or of geometry; and we never
substitute k-nearest neighbours when rings run out: we pad, and say so.

Using the sentinel in a model: append one row of zeros to the vertex features before gathering,
``x = torch.cat([x, x.new_zeros(B, 1, C)], dim=1); x[:, spirals]`` (features (B, V, C) ->
gathered (B, V, length, C)), so padded positions contribute nothing.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ._kernels import spiral as spiral_kernels
from .topology import _rings_csr
from .validate import check_choice, check_faces, check_int

__all__ = ["spiral_indices"]

_MAX_SPIRAL = 2**31 - 1  # bound on length * dilation (spiral entries walked per vertex)


def spiral_indices(faces, length: int, dilation: int = 1, *, padding: Literal["repeat", "sentinel"] = "repeat",
                   n_vertices: int | None = None) -> np.ndarray:
    """Spiral ordering of every vertex: itself, its one-ring counter-clockwise, then the next rings.

    The exact construction (which neighbour each ring starts at, how the next ring continues,
    dilation, padding) is documented in the module docstring of :mod:`meshkit.spiral`.

    Parameters
    ----------
    faces : (F, 3) int
        Triangles, counter-clockwise seen from the front. Every vertex must be manifold (one
        consistently wound fan of faces), else its ring has no rotational order.
    length : int >= 1
        Entries per spiral (the centre included).
    dilation : int >= 1
        Keep every ``dilation``-th entry of the first ``length * dilation`` spiral entries.
    padding : "repeat" or "sentinel"
        How rows with too few reachable vertices are completed: repeat the row's last index, or
        the sentinel index ``V`` (append a zero feature row in the model; see the module docs).
    n_vertices : int, optional
        Number of vertices V (default ``faces.max() + 1``); vertices used by no face are isolated
        and get a spiral of just themselves, padded.

    Returns
    -------
    (V, length) int64 array; row v starts with v.

    Raises
    ------
    ValueError
        ``length`` or ``dilation`` < 1, bad ``padding``, bad faces, or a non-manifold vertex (or
        inconsistent winding) whose one-ring cannot be ordered.

    Example
    -------
    >>> s = spiral_indices(faces, 9)           # (V, 9): v, 6 one-ring vertices, 2 of the two-ring
    """
    length = check_int(length, "length", minimum=1)
    dilation = check_int(dilation, "dilation", minimum=1)
    if length * dilation > _MAX_SPIRAL:  # the kernel's buffer holds length * dilation int64 entries
        raise ValueError(f"dilation: expected length * dilation <= {_MAX_SPIRAL}, got {length} * {dilation} = "
                         f"{length * dilation}")
    check_choice(padding, "padding", ("repeat", "sentinel"))
    f = check_faces(faces, n_vertices if n_vertices is None else check_int(n_vertices, "n_vertices", minimum=1))
    n = int(f.max()) + 1 if n_vertices is None else int(n_vertices)
    indptr, ring, status = _rings_csr(f, n)
    bad = np.flatnonzero(status < 0)
    if bad.size:
        raise ValueError(
            f"faces: cannot order the one-ring of {bad.size} vertex(es) for spirals (expected manifold vertices "
            f"with consistently wound faces, got a non-manifold vertex or inconsistent winding), first at vertex "
            f"{int(bad[0])}"
        )
    pad = -1 if padding == "repeat" else n
    return spiral_kernels.spirals(indptr, ring, n, length, dilation, pad)
