"""MorphableModel: a linear 3D Morphable Model (mean + shape, expression and texture bases).

This file holds the ``MorphableModel`` frozen dataclass and its batched reconstruction.

Model (the Basel Face Model convention, Paysan et al. 2009):

    vertices = mean + shape_basis @ alpha_shape + expression_basis @ alpha_expression

with every basis stored as a (3N, K) matrix whose rows are *interleaved* per vertex,
``x1, y1, z1, x2, y2, z2, ...`` (the order of BFM2009's ``shapeMU``/``shapePC``, face3d's
``BFM.mat`` and 3DDFA's ``u``/``w_shp``). A batch of coefficient vectors (B, K) therefore
reconstructs with one matrix product, ``params @ basis.T`` -> (B, 3N), reshaped to (B, N, 3).

Coefficient units
-----------------
``units="raw"`` (default): the coefficients multiply the basis columns directly. This is how
300W-LP's ``Shape_Para``/``Exp_Para`` and 3DDFA's 62-parameter vectors are used.
``units="std"``: the coefficients are in standard deviations of the model; they are multiplied
by ``shape_std`` / ``expression_std`` / ``texture_std`` first (raw = std_units * std).

``*_std`` are standard deviations (square roots of the PCA eigenvalues), in the basis' units.
BFM2009's ``shapeEV``/``texEV`` are already standard deviations (see ``bfm.formats``); BFM2017's
``pcaVariance`` holds variances and is square-rooted on load.

Fewer coefficients than basis columns are allowed: they address the *leading* components
(the columns are sorted by decreasing std), the rest are taken as zero. 300W-LP uses all 199 + 29,
3DDFA uses the first 40 + 10.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from meshkit.validate import check_array, check_choice, check_faces, check_int

__all__ = ["MorphableModel", "Units", "Winding"]

Units = Literal["raw", "std"]
_UNITS = ("raw", "std")
Winding = Literal["clockwise", "counter-clockwise"]
_WINDINGS = ("clockwise", "counter-clockwise")


def _readonly(a: np.ndarray | None) -> np.ndarray | None:
    if a is not None:
        a.flags.writeable = False
    return a


@dataclass(frozen=True, eq=False)
class MorphableModel:
    """A linear 3D Morphable Model (see the module docstring for the math and units).

    Attributes
    ----------
    mean : (N, 3) float32
        Mean shape (for models with an expression mean, e.g. face3d's ``expMU``, the sum of both).
    shape_basis : (3N, Ks) float32
        Identity basis, rows interleaved x1, y1, z1, x2, ...
    shape_std : (Ks,) float32
        Standard deviation of each identity coefficient (raw units), > 0.
    expression_basis : (3N, Ke) float32
        Expression basis (Ke may be 0: a model without expressions).
    expression_std : (Ke,) float32
    triangles : (F, 3) int64
        0-based vertex indices, counter-clockwise seen from the front (outward normals): every
        loader re-winds a file's triangles to this (``bfm.formats``, ``winding="auto"``).
    landmarks : (L,) int64
        0-based vertex indices of the landmarks, the 68 iBUG points in iBUG order for every shipped
        layout (L = 0 when a file carries none and none were given).
    texture_mean : (N, 3) float32 or None
        Per-vertex colour mean (BFM: 0..255 RGB).
    texture_basis : (3N, Kt) float32 or None
    texture_std : (Kt,) float32 or None
    name : str
        Free text naming the source (e.g. ``"BFM2009 trimmed"``).
    stored_winding : "clockwise", "counter-clockwise" or None
        The winding of the triangles in the file the model was loaded from, measured on its mean
        shape (``bfm.formats.measure_winding``): "clockwise" for every real BFM file, whose
        triangles the loader therefore reversed. None for a model not loaded from a file.

    The arrays are converted to the dtypes above and made read-only on construction. The shape and
    expression bases share one (3N, Ks + Ke) buffer so that a reconstruction with both is a single
    matrix product; ``shape_basis`` and ``expression_basis`` are column views of it.
    """

    mean: np.ndarray
    shape_basis: np.ndarray
    shape_std: np.ndarray
    expression_basis: np.ndarray
    expression_std: np.ndarray
    triangles: np.ndarray
    landmarks: np.ndarray
    texture_mean: np.ndarray | None = None
    texture_basis: np.ndarray | None = None
    texture_std: np.ndarray | None = None
    name: str = ""
    stored_winding: Winding | None = None
    _basis: np.ndarray = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        mean = check_array(self.mean, "mean", ("N", 3), dtype=np.float32)
        n = mean.shape[0]
        if n == 0:
            raise ValueError("mean: expected at least one vertex, got shape (0, 3)")
        sb = check_array(self.shape_basis, "shape_basis", (3 * n, "Ks"), dtype=np.float32)
        ss = check_array(self.shape_std, "shape_std", (sb.shape[1],), dtype=np.float32)
        eb = check_array(self.expression_basis, "expression_basis", (3 * n, "Ke"), dtype=np.float32)
        es = check_array(self.expression_std, "expression_std", (eb.shape[1],), dtype=np.float32)
        tri = check_faces(self.triangles, n, "triangles")
        lm = np.asarray(self.landmarks)
        if lm.dtype.kind not in "iu":
            raise TypeError(f"landmarks: expected an integer array of shape (L,), got dtype {lm.dtype}")
        if lm.ndim != 1:
            raise ValueError(f"landmarks: expected shape (L,), got shape {lm.shape}")
        lm = np.ascontiguousarray(lm, dtype=np.int64)
        if lm.size and (lm.min() < 0 or lm.max() >= n):
            raise ValueError(f"landmarks: expected vertex indices in [0, {n}), got range [{lm.min()}, {lm.max()}]")
        tex = [self.texture_mean, self.texture_basis, self.texture_std]
        if any(t is not None for t in tex):
            if self.texture_mean is None:
                raise ValueError("texture_mean: expected an (N, 3) array when a texture basis or std is given, got None")
            tm = check_array(self.texture_mean, "texture_mean", (n, 3), dtype=np.float32)
            if (self.texture_basis is None) != (self.texture_std is None):
                raise ValueError("texture_basis, texture_std: expected both or neither, got only one")
            if self.texture_basis is not None:
                tb = check_array(self.texture_basis, "texture_basis", (3 * n, "Kt"), dtype=np.float32)
                ts = check_array(self.texture_std, "texture_std", (tb.shape[1],), dtype=np.float32)
            else:
                tb = np.zeros((3 * n, 0), np.float32)
                ts = np.zeros((0,), np.float32)
            tex = [tm, tb, ts]
        for name, std in (("shape_std", ss), ("expression_std", es), ("texture_std", tex[2])):
            if std is not None and std.size and not (std > 0).all():
                raise ValueError(f"{name}: expected standard deviations > 0, got minimum {float(std.min())}")
        if self.stored_winding is not None:
            check_choice(self.stored_winding, "stored_winding", _WINDINGS)
        basis = np.empty((3 * n, sb.shape[1] + eb.shape[1]), np.float32)
        basis[:, : sb.shape[1]] = sb
        basis[:, sb.shape[1]:] = eb
        _readonly(basis)
        ks = sb.shape[1]
        values = dict(mean=mean, shape_basis=basis[:, :ks], shape_std=ss, expression_basis=basis[:, ks:],
                      expression_std=es, triangles=tri, landmarks=lm, texture_mean=tex[0], texture_basis=tex[1],
                      texture_std=tex[2], _basis=basis, name=str(self.name))
        for k, v in values.items():
            object.__setattr__(self, k, _readonly(v) if isinstance(v, np.ndarray) else v)

    # ------------------------------------------------------------------------------------------
    @property
    def n_vertices(self) -> int:
        return int(self.mean.shape[0])

    @property
    def n_shape(self) -> int:
        return int(self.shape_basis.shape[1])

    @property
    def n_expression(self) -> int:
        return int(self.expression_basis.shape[1])

    @property
    def n_texture(self) -> int:
        return 0 if self.texture_basis is None else int(self.texture_basis.shape[1])

    @property
    def has_texture(self) -> bool:
        return self.texture_mean is not None

    def __repr__(self) -> str:
        return (f"MorphableModel(name={self.name!r}, n_vertices={self.n_vertices}, n_triangles={len(self.triangles)}, "
                f"n_shape={self.n_shape}, n_expression={self.n_expression}, n_texture={self.n_texture}, "
                f"n_landmarks={len(self.landmarks)}, stored_winding={self.stored_winding!r})")

    # ------------------------------------------------------------------------------------------
    def reconstruct(self, shape=None, expression=None, *, units: Units = "raw") -> np.ndarray:
        """Vertices from identity and expression coefficients, batched.

        ``vertices = mean + shape_basis[:, :ks] @ shape + expression_basis[:, :ke] @ expression``,
        computed for a whole batch as one float32 matrix product (no loop over the batch).

        Parameters
        ----------
        shape : None, (Ks',) or (B, Ks') float, Ks' <= n_shape
            Identity coefficients for the leading Ks' components; None = zeros (the mean identity).
        expression : None, (Ke',) or (B, Ke') float, Ke' <= n_expression
            Expression coefficients for the leading Ke' components; None = neutral.
        units : "raw" | "std"
            "raw": coefficients multiply the basis directly (300W-LP, 3DDFA); "std": in standard
            deviations (multiplied by ``shape_std`` / ``expression_std`` first).

        Returns
        -------
        (N, 3) float32 when no argument is 2-D, else (B, N, 3) float32. A 1-D argument next to a
        2-D one is used for every batch item.
        """
        check_choice(units, "units", _UNITS)
        s = self._coefficients(shape, "shape", self.shape_std, units)
        e = self._coefficients(expression, "expression", self.expression_std, units)
        batched = (s is not None and s.ndim == 2) or (e is not None and e.ndim == 2)
        b = max(x.shape[0] if x is not None and x.ndim == 2 else 1 for x in (s, e))
        for name, x in (("shape", s), ("expression", e)):
            if x is not None and x.ndim == 2 and x.shape[0] != b:
                raise ValueError(f"{name}: expected a batch of {b} rows to match the other argument, got {x.shape[0]}")
        ks = 0 if s is None else s.shape[-1]
        ke = 0 if e is None else e.shape[-1]
        n3 = 3 * self.n_vertices
        if ke == 0:
            # shape only (or nothing): the leading columns of the shared buffer, no padding
            coef = np.zeros((b, ks), np.float32)
            if ks:
                coef[:] = s
            basis = self._basis[:, :ks]
        else:
            # the shape block padded to the full identity width so both blocks sit in one product
            coef = np.zeros((b, self.n_shape + ke), np.float32)
            if ks:
                coef[:, :ks] = s
            coef[:, self.n_shape:] = e
            basis = self._basis[:, : self.n_shape + ke]
        if coef.shape[1]:
            out = coef @ basis.T  # (B, 3N): the one BLAS call
            out += self.mean.reshape(1, n3)
        else:
            out = np.broadcast_to(self.mean.reshape(1, n3), (b, n3)).copy()
        out = out.reshape(b, self.n_vertices, 3)
        return out if batched else out[0]

    def reconstruct_texture(self, texture=None, *, units: Units = "raw") -> np.ndarray:
        """Per-vertex colours ``texture_mean + texture_basis[:, :kt] @ texture``, batched.

        Parameters
        ----------
        texture : None, (Kt',) or (B, Kt') float, Kt' <= n_texture
        units : "raw" | "std" (see :meth:`reconstruct`)

        Returns
        -------
        (N, 3) or (B, N, 3) float32, in the model's colour units (BFM: 0..255); not clipped.
        """
        check_choice(units, "units", _UNITS)
        if not self.has_texture:
            raise ValueError(f"texture: model {self.name!r} has no texture (texture_mean is None)")
        t = self._coefficients(texture, "texture", self.texture_std, units)
        n3 = 3 * self.n_vertices
        if t is None or t.shape[-1] == 0:
            b = 1 if t is None or t.ndim == 1 else t.shape[0]
            out = np.broadcast_to(self.texture_mean.reshape(1, n3), (b, n3)).copy()
        else:
            t2 = np.atleast_2d(t)
            out = t2 @ self.texture_basis[:, : t2.shape[1]].T
            out += self.texture_mean.reshape(1, n3)
        out = out.reshape(-1, self.n_vertices, 3)
        return out if (t is not None and t.ndim == 2) else out[0]

    def _coefficients(self, x, name: str, std: np.ndarray | None, units: str) -> np.ndarray | None:
        """Validate a (K,) or (B, K) coefficient array, K <= len(std); scale by std for units="std"."""
        if x is None:
            return None
        k_max = 0 if std is None else std.shape[0]
        if isinstance(x, (str, bytes)):
            raise TypeError(f"{name}: expected a float array of shape (K,) or (B, K) with K <= {k_max}, got {type(x).__name__}")
        a = np.asarray(x)
        if a.dtype == object or a.dtype.kind not in "fiu":
            raise TypeError(f"{name}: expected a float array of shape (K,) or (B, K) with K <= {k_max}, got dtype {a.dtype}")
        if a.ndim not in (1, 2):
            raise ValueError(f"{name}: expected shape (K,) or (B, K) with K <= {k_max}, got shape {a.shape}")
        if a.shape[-1] > k_max:
            raise ValueError(
                f"{name}: expected at most {k_max} coefficients (the model's {name} basis has {k_max} components), "
                f"got {a.shape[-1]} (shape {a.shape})"
            )
        if a.ndim == 2 and a.shape[0] == 0:
            raise ValueError(f"{name}: expected a batch of at least one row, got shape {a.shape}")
        a = a.astype(np.float32)
        bad = ~np.isfinite(a)
        if bad.any():
            where = np.argwhere(bad)[0].tolist()
            raise ValueError(
                f"{name}: expected finite coefficients, got {int(bad.sum())} NaN/inf value(s), first at index {where}"
            )
        if units == "std":
            a = a * std[: a.shape[-1]]
        return a

    # ------------------------------------------------------------------------------------------
    def subset(self, vertex_ids, *, name: str | None = None) -> MorphableModel:
        """The model restricted to the given vertices, in the given order.

        New vertex i is old vertex ``vertex_ids[i]``. Triangles with all three corners kept are
        re-indexed (their order kept); triangles touching a removed vertex are dropped. Landmarks are
        mapped to the new indices; removing a landmark vertex is an error. Basis rows are selected
        per vertex (3 interleaved rows each).

        Parameters
        ----------
        vertex_ids : (M,) int, distinct, in [0, N)
            E.g. face3d's trimming list (0-based) to go from the 53,490-vertex BFM2009 to 53,215.
        name : str, optional
            Name of the new model (default: this name + " subset").

        Returns
        -------
        MorphableModel with M vertices.
        """
        ids = np.asarray(vertex_ids)
        if ids.dtype.kind not in "iu":
            raise TypeError(f"vertex_ids: expected an integer array of shape (M,), got dtype {ids.dtype}")
        if ids.ndim != 1 or ids.size == 0:
            raise ValueError(f"vertex_ids: expected a non-empty array of shape (M,), got shape {ids.shape}")
        ids = ids.astype(np.int64)
        n = self.n_vertices
        if ids.min() < 0 or ids.max() >= n:
            raise ValueError(f"vertex_ids: expected indices in [0, {n}), got range [{ids.min()}, {ids.max()}]")
        if np.unique(ids).size != ids.size:
            raise ValueError(f"vertex_ids: expected distinct indices, got {ids.size - np.unique(ids).size} repeated")
        new_of_old = np.full(n, -1, np.int64)
        new_of_old[ids] = np.arange(ids.size)
        tri = new_of_old[self.triangles]
        tri = tri[(tri >= 0).all(axis=1)]
        if tri.shape[0] == 0:
            raise ValueError("vertex_ids: expected a subset keeping at least one whole triangle, got none")
        lm = new_of_old[self.landmarks]
        if (lm < 0).any():
            lost = np.flatnonzero(lm < 0)
            raise ValueError(
                f"vertex_ids: removes landmark vertices (landmark numbers {lost.tolist()[:10]}, vertices "
                f"{self.landmarks[lost].tolist()[:10]}); keep them or drop landmarks explicitly"
            )
        rows = (3 * ids[:, None] + np.arange(3)).reshape(-1)
        has_tex = self.has_texture
        return MorphableModel(
            mean=self.mean[ids], shape_basis=self.shape_basis[rows], shape_std=self.shape_std,
            expression_basis=self.expression_basis[rows], expression_std=self.expression_std,
            triangles=tri, landmarks=lm,
            texture_mean=self.texture_mean[ids] if has_tex else None,
            texture_basis=self.texture_basis[rows] if has_tex else None,
            texture_std=self.texture_std if has_tex else None,
            name=self.name + " subset" if name is None else name, stored_winding=self.stored_winding,
        )

    def with_landmarks(self, landmarks) -> MorphableModel:
        """A copy with other landmark indices ((L,) int, 0-based)."""
        return MorphableModel(self.mean, self.shape_basis, self.shape_std, self.expression_basis, self.expression_std,
                              self.triangles, landmarks, self.texture_mean, self.texture_basis, self.texture_std, self.name,
                              self.stored_winding)

    def with_components(self, *, n_shape: int | None = None, n_expression: int | None = None) -> MorphableModel:
        """A copy keeping the leading ``n_shape`` identity and ``n_expression`` expression components
        (None keeps all); this model itself when nothing is dropped."""
        ks = self.n_shape if n_shape is None else check_int(n_shape, "n_shape", minimum=0, maximum=self.n_shape)
        ke = (self.n_expression if n_expression is None
              else check_int(n_expression, "n_expression", minimum=0, maximum=self.n_expression))
        if ks == self.n_shape and ke == self.n_expression:
            return self
        return MorphableModel(self.mean, self.shape_basis[:, :ks], self.shape_std[:ks], self.expression_basis[:, :ke],
                              self.expression_std[:ke], self.triangles, self.landmarks, self.texture_mean,
                              self.texture_basis, self.texture_std, self.name, self.stored_winding)
