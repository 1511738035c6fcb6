"""Differentiable, batched torch twin of a morphable model for parameter-regression training.

``TorchMorphableModel`` holds a model's mean and bases as registered buffers (so ``.to(device)`` and
``state_dict`` carry them) and reconstructs batches of meshes with gradients flowing to the
coefficients and pose. It mirrors the numpy code exactly (same conventions, tested against it):

- Vertices: V = mean + (shape_basis @ a_s + expression_basis @ a_e) reshaped to (N, 3); basis rows are
  interleaved x1, y1, z1, x2, ... (the BFM layout). Coefficients are in the basis' own units, as for
  ``bfm.MorphableModel.reconstruct``.
- 300W-LP ``Pose_Para`` = (pitch, yaw, roll, tx, ty, tz, scale), angles in radians:
  image = scale * V @ R.T + t with R = ``meshkit.transform.euler_to_matrix(angles, convention="3ddfa")``, then
  (optionally, given the image height h) y -> h - y - 1.
- 3DDFA 62-vector = 12 pose values (the 3x4 camera [R|t] scaled, row-major) + 40 shape + 10
  expression coefficients, whitened as x = (p - param_mean) / param_std:
  image = V @ P[:, :3].T + P[:, 3], then optionally, in a crop of side ``size``, 3DDFA_V2's frame
  change x -= 1, z -= 1, y -> size - y (``bfm.pose.camera_to_image``).

Needs torch (``pip install torch==2.13.0`` CPU build, then ``meshkit[torch]``).
"""

from __future__ import annotations

import numpy as np

from meshkit._optional import require

torch = require("torch", "bfm.torch_model")
nn = torch.nn

__all__ = ["TorchMorphableModel", "euler_to_matrix"]


def euler_to_matrix(angles: torch.Tensor, *, convention: str = "3ddfa") -> torch.Tensor:
    """Differentiable rotation matrices from (pitch, yaw, roll) radians; same as ``meshkit.transform``.

    Parameters
    ----------
    angles : (..., 3) tensor
    convention : "3ddfa" (the transpose of the standard matrix) or "standard" (Rz(roll) Ry(yaw) Rx(pitch)).

    Returns
    -------
    (..., 3, 3) tensor.
    """
    if convention not in ("3ddfa", "standard"):
        raise ValueError(f"convention: expected one of ['3ddfa', 'standard'], got {convention!r}")
    if not isinstance(angles, torch.Tensor) or angles.dim() == 0 or angles.shape[-1] != 3:
        got = tuple(angles.shape) if isinstance(angles, torch.Tensor) else type(angles).__name__
        raise ValueError(f"angles: expected a tensor of shape (..., 3) = (pitch, yaw, roll), got {got}")
    cx, cy, cz = torch.cos(angles).unbind(-1)
    sx, sy, sz = torch.sin(angles).unbind(-1)
    rows = [
        torch.stack([cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx], -1),
        torch.stack([sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx], -1),
        torch.stack([-sy, cy * sx, cy * cx], -1),
    ]
    r = torch.stack(rows, -2)
    return r.transpose(-1, -2) if convention == "3ddfa" else r


def _array(x, name, ndim, dtype):
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected a real-valued array, got dtype {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: expected finite values, got NaN/inf")
    return torch.from_numpy(np.array(a, order="C")).to(dtype)  # a copy: inputs may be read-only


class TorchMorphableModel(nn.Module):
    """A morphable model's mean and bases as buffers, with differentiable batched reconstruction.

    Parameters
    ----------
    mean : (N, 3) array
    shape_basis : (3N, Ks) array, rows interleaved x1, y1, z1, ...
    expression_basis : (3N, Ke) array, optional (Ke = 0 when omitted).
    triangles : (F, 3) int array, optional (kept as a buffer for renderers / losses).
    landmarks : (68,) int array of vertex indices, optional.
    shape_std, expression_std : (Ks,), (Ke,) arrays, optional: per-component standard deviations, for
        ``reconstruct(..., units="std")``.
    param_mean, param_std : (62,) arrays, optional: the 3DDFA whitening statistics.
    dtype : torch dtype of the float buffers (float32 by default).
    """

    def __init__(self, mean, shape_basis, expression_basis=None, *, shape_std=None, expression_std=None, triangles=None,
                 landmarks=None, param_mean=None, param_std=None, dtype: torch.dtype = torch.float32):
        super().__init__()
        mu = _array(mean, "mean", 2, dtype)
        if mu.shape[1] != 3 or mu.shape[0] == 0:
            raise ValueError(f"mean: expected shape (N, 3), got {tuple(mu.shape)}")
        n = mu.shape[0]
        ws = _array(shape_basis, "shape_basis", 2, dtype)
        if ws.shape[0] != 3 * n:
            raise ValueError(f"shape_basis: expected shape ({3 * n}, Ks) for N = {n} vertices, got {tuple(ws.shape)}")
        we = torch.zeros(3 * n, 0, dtype=dtype) if expression_basis is None else _array(expression_basis,
                                                                                           "expression_basis", 2, dtype)
        if we.shape[0] != 3 * n:
            raise ValueError(f"expression_basis: expected shape ({3 * n}, Ke), got {tuple(we.shape)}")
        self.register_buffer("mean", mu)
        self.register_buffer("shape_basis", ws)
        self.register_buffer("expression_basis", we)
        for name, std, k in (("shape_std", shape_std, ws.shape[1]), ("expression_std", expression_std, we.shape[1])):
            if std is None:
                setattr(self, name, None)
                continue
            t = _array(np.asarray(std).reshape(-1), name, 1, dtype)
            if t.shape != (k,):
                raise ValueError(f"{name}: expected {k} values (one per component), got {tuple(t.shape)}")
            self.register_buffer(name, t)
        if triangles is not None:
            from meshkit.validate import check_faces

            self.register_buffer("triangles", torch.from_numpy(check_faces(triangles, n, "triangles").copy()))
        else:
            self.triangles = None
        if landmarks is not None:
            lm = np.asarray(landmarks)
            if lm.dtype.kind not in "iu" or lm.ndim != 1 or (lm.size and (lm.min() < 0 or lm.max() >= n)):
                raise ValueError(f"landmarks: expected a 1-D integer array of indices in [0, {n}), got {lm!r}")
            self.register_buffer("landmarks", torch.from_numpy(lm.astype(np.int64)))
        else:
            self.landmarks = None
        if (param_mean is None) != (param_std is None):
            raise ValueError("param_mean, param_std: expected both or neither")
        if param_mean is not None:
            pm = _array(np.asarray(param_mean).reshape(-1), "param_mean", 1, dtype)
            ps = _array(np.asarray(param_std).reshape(-1), "param_std", 1, dtype)
            if pm.shape != (62,) or ps.shape != (62,):
                raise ValueError(f"param_mean, param_std: expected 62 values each, got {tuple(pm.shape)}, {tuple(ps.shape)}")
            if (ps <= 0).any():
                raise ValueError("param_std: expected values > 0")
            self.register_buffer("param_mean", pm)
            self.register_buffer("param_std", ps)
        else:
            self.param_mean = None
            self.param_std = None

    @classmethod
    def from_model(cls, model, *, n_shape: int | None = None, n_expression: int | None = None, param_mean=None,
                   param_std=None, dtype: torch.dtype = torch.float32) -> TorchMorphableModel:
        """Twin of a ``bfm.MorphableModel`` (reads ``mean``, ``shape_basis``, ``expression_basis``,
        ``triangles``, ``landmarks``), optionally keeping only the first ``n_shape`` / ``n_expression``
        components (3DDFA: 40 and 10)."""
        ws = np.asarray(model.shape_basis)
        we = getattr(model, "expression_basis", None)
        we = None if we is None else np.asarray(we)
        ss = getattr(model, "shape_std", None)
        es = getattr(model, "expression_std", None)
        if n_shape is not None:
            if n_shape > ws.shape[1]:
                raise ValueError(f"n_shape: expected at most {ws.shape[1]} components, got {n_shape}")
            ws = ws[:, :n_shape]
            ss = None if ss is None else np.asarray(ss)[:n_shape]
        if n_expression is not None and we is not None:
            if n_expression > we.shape[1]:
                raise ValueError(f"n_expression: expected at most {we.shape[1]} components, got {n_expression}")
            we = we[:, :n_expression]
            es = None if es is None else np.asarray(es)[:n_expression]
        return cls(model.mean, ws, we, shape_std=ss, expression_std=es, triangles=getattr(model, "triangles", None),
                   landmarks=getattr(model, "landmarks", None), param_mean=param_mean, param_std=param_std, dtype=dtype)

    @property
    def n_vertices(self) -> int:
        return self.mean.shape[0]

    @property
    def n_shape(self) -> int:
        return self.shape_basis.shape[1]

    @property
    def n_expression(self) -> int:
        return self.expression_basis.shape[1]

    def _coeffs(self, x, name, k):
        if not isinstance(x, torch.Tensor):
            x = torch.as_tensor(np.asarray(x), dtype=self.mean.dtype, device=self.mean.device)
        if x.dim() == 1:
            x = x.unsqueeze(0)
        if x.dim() != 2 or x.shape[1] > k:
            raise ValueError(f"{name}: expected shape (B, K) with K <= {k}, got {tuple(x.shape)}")
        return x

    def reconstruct(self, shape, expression=None, *, units: str = "raw", vertex_indices=None) -> torch.Tensor:
        """Vertices mean + shape_basis @ shape + expression_basis @ expression, (B, N, 3).

        Parameters
        ----------
        shape : (B, K_s') or (K_s',) coefficients, K_s' <= n_shape (the first K_s' components are used).
        expression : (B, K_e') or (K_e',), optional.
        units : "raw" (coefficients multiply the basis, 300W-LP / 3DDFA) or "std" (in standard deviations:
            multiplied by ``shape_std`` / ``expression_std`` first), as ``MorphableModel.reconstruct``.
        vertex_indices : optional (n,) ints: reconstruct only these vertices -> (B, n, 3).
        """
        if units not in ("raw", "std"):
            raise ValueError(f"units: expected one of ['raw', 'std'], got {units!r}")
        a_s = self._coeffs(shape, "shape", self.n_shape)
        if units == "std":
            if self.shape_std is None or (expression is not None and self.expression_std is None):
                raise ValueError("units: 'std' needs shape_std/expression_std, which this model was built without")
            a_s = a_s * self.shape_std[: a_s.shape[1]].to(a_s.dtype)
        mean, ws, we = self.mean, self.shape_basis, self.expression_basis
        if vertex_indices is not None:
            idx = torch.as_tensor(vertex_indices, dtype=torch.long, device=mean.device).reshape(-1)
            mean = mean[idx]
            rows = (3 * idx[:, None] + torch.arange(3, device=idx.device)).reshape(-1)
            ws, we = ws[rows], we[rows]
        dt = a_s.dtype
        offs = a_s @ ws[:, : a_s.shape[1]].to(dt).T
        if expression is not None:
            a_e = self._coeffs(expression, "expression", self.n_expression)
            if units == "std":
                a_e = a_e * self.expression_std[: a_e.shape[1]].to(a_e.dtype)
            if a_e.shape[0] != a_s.shape[0]:
                raise ValueError(f"expression: expected batch size {a_s.shape[0]} (as shape), got {a_e.shape[0]}")
            offs = offs + a_e.to(dt) @ we[:, : a_e.shape[1]].to(dt).T
        return mean.to(dt) + offs.reshape(a_s.shape[0], -1, 3)

    @staticmethod
    def _flip(v, height):
        if height is None:
            return v
        return torch.stack([v[..., 0], float(height) - v[..., 1] - 1.0, v[..., 2]], -1)

    @staticmethod
    def pose_para_to_image(vertices: torch.Tensor, pose_para: torch.Tensor, height: float) -> torch.Tensor:
        """300W-LP image-space vertices, the torch twin of ``bfm.pose.pose_para_to_image`` (same
        arguments): scale * V @ R.T + t with R from the 3DDFA Euler convention, then y -> h - y - 1.

        Parameters
        ----------
        vertices : (B, N, 3) (or (N, 3) with pose_para (7,))
        pose_para : (B, 7) = pitch, yaw, roll (radians), tx, ty, tz, scale
        height : image height h (required: 300W-LP image space always has the y flip).
        """
        if height is None:
            raise ValueError("height: expected the image height (300W-LP image space flips y as h - y - 1), got None")
        pose = pose_para
        if pose.dim() == 1:
            pose = pose.unsqueeze(0)
        if vertices.dim() == 2:
            vertices = vertices.unsqueeze(0)
        if pose.dim() != 2 or pose.shape[1] != 7:
            raise ValueError(f"pose_para: expected shape (B, 7) = (pitch, yaw, roll, tx, ty, tz, scale), got {tuple(pose.shape)}")
        if vertices.dim() != 3 or vertices.shape[-1] != 3 or vertices.shape[0] not in (1, pose.shape[0]):
            raise ValueError(f"vertices: expected shape ({pose.shape[0]}, N, 3), got {tuple(vertices.shape)}")
        r = euler_to_matrix(pose[:, :3], convention="3ddfa")
        v = pose[:, 6, None, None] * (vertices @ r.transpose(1, 2)) + pose[:, None, 3:6]
        return TorchMorphableModel._flip(v, height)

    def whiten(self, params: torch.Tensor) -> torch.Tensor:
        """(p - param_mean) / param_std for (B, 62) parameters."""
        if self.param_mean is None:
            raise ValueError("whiten: this model has no param_mean/param_std (pass them to the constructor)")
        return (params - self.param_mean.to(params.dtype)) / self.param_std.to(params.dtype)

    def unwhiten(self, params: torch.Tensor) -> torch.Tensor:
        """x * param_std + param_mean for (B, 62) whitened parameters."""
        if self.param_mean is None:
            raise ValueError("unwhiten: this model has no param_mean/param_std (pass them to the constructor)")
        return params * self.param_std.to(params.dtype) + self.param_mean.to(params.dtype)

    @staticmethod
    def parse_params62(params: torch.Tensor):
        """Split unwhitened (B, 62) parameters into camera (B, 3, 4), shape (B, 40), expression (B, 10)."""
        if not isinstance(params, torch.Tensor) or params.dim() != 2 or params.shape[1] != 62:
            got = tuple(params.shape) if isinstance(params, torch.Tensor) else type(params).__name__
            raise ValueError(f"params: expected a tensor of shape (B, 62), got {got}")
        return params[:, :12].reshape(-1, 3, 4), params[:, 12:52], params[:, 52:62]

    def params62_to_vertices(self, params: torch.Tensor, *, whitened: bool = True, size: float | None = None,
                             vertex_indices=None) -> torch.Tensor:
        """Image-space vertices V @ P[:, :3].T + P[:, 3] from 3DDFA 62-vectors, (B, N, 3) (or (B, n, 3)).

        Parameters
        ----------
        params : (B, 62), whitened when ``whitened`` (needs param_mean/param_std).
        size : optional crop side (120 for 3DDFA): then x -= 1, z -= 1, y -> size - y (3DDFA_V2's frame,
            as ``bfm.pose.camera_to_image(..., size=size)``).
        vertex_indices : optional (n,) vertex indices (e.g. ``self.landmarks``).
        """
        self.parse_params62(params)  # shape check before anything else
        if whitened:
            params = self.unwhiten(params)
        cam, a_s, a_e = self.parse_params62(params)
        if a_s.shape[1] > self.n_shape or a_e.shape[1] > self.n_expression:
            raise ValueError(f"params: the 62-vector needs >= 40 shape and >= 10 expression components, the model has "
                             f"{self.n_shape} and {self.n_expression}")
        v = self.reconstruct(a_s, a_e, vertex_indices=vertex_indices)
        v = v @ cam[:, :, :3].transpose(1, 2) + cam[:, None, :, 3]
        if size is None:
            return v
        sz = float(size)
        return torch.stack([v[..., 0] - 1.0, sz - v[..., 1], v[..., 2] - 1.0], -1)
