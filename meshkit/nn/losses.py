"""Training losses for mesh and 3DMM-parameter regression.

Vertex losses (pred, target of the same shape, e.g. (B, V, 3)):

- ``vertex_l1_loss``: mean |pred - target| over all coordinates.
- ``vertex_l2_loss``: mean (pred - target)^2 over all coordinates.
- ``vertex_distance_loss``: mean over vertices of the Euclidean distance |pred_v - target_v|.

Robust landmark losses, elementwise on x = pred - target, averaged:

- ``wing_loss`` (Feng et al., CVPR 2018): w ln(1 + |x| / eps) for |x| < w, |x| - C otherwise,
  C = w - w ln(1 + w / eps) (continuous at |x| = w). Defaults w = 10, eps = 2.
- ``exp_wing_loss``: the exponential variant w (exp(|x| / eps) - 1) for |x| < w, |x| - C otherwise,
  C = w - w (exp(w / eps) - 1) (continuous at |x| = w). Defaults w = 5, eps = 4.

3DMM parameter losses on 3DDFA's 62-vector (12 pose + 40 shape + 10 expression, whitened), using a
differentiable model ``model`` (``bfm.torch_model.TorchMorphableModel`` or anything with the same
``unwhiten``, ``parse_params62``, ``params62_to_vertices``, ``mean``, ``shape_basis``,
``expression_basis`` members):

- ``vdc_loss`` (Vertex Distance Cost, Zhu et al., CVPR 2016): mean squared coordinate difference of
  the vertices the two parameter vectors reconstruct.
- ``wpdc_loss`` (Weighted Parameter Distance Cost, Zhu et al. 2016): sum_i w_i (x_i - x*_i)^2 averaged,
  with the weights of ``wpdc_weights`` (no gradient flows through them).
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = [
    "vertex_l1_loss",
    "vertex_l2_loss",
    "vertex_distance_loss",
    "wing_loss",
    "exp_wing_loss",
    "WingLoss",
    "ExpWingLoss",
    "wpdc_weights",
    "wpdc_loss",
    "vdc_loss",
]

_REDUCTIONS = ("mean", "sum", "none")


def _pair(pred, target):
    if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError(f"pred, target: expected torch tensors, got {type(pred).__name__}, {type(target).__name__}")
    if pred.shape != target.shape:
        raise ValueError(f"target: expected the shape of pred {tuple(pred.shape)}, got {tuple(target.shape)}")
    return pred - target


def _reduce(x, reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction: expected one of {list(_REDUCTIONS)}, got {reduction!r}")
    if reduction == "mean":
        return x.mean()
    if reduction == "sum":
        return x.sum()
    return x


def _positive(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
    return float(value)


def vertex_l1_loss(pred: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    """Mean absolute coordinate error. pred, target: same shape, e.g. (B, V, 3)."""
    return _reduce(_pair(pred, target).abs(), reduction)


def vertex_l2_loss(pred: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    """Mean squared coordinate error. pred, target: same shape, e.g. (B, V, 3)."""
    return _reduce(_pair(pred, target) ** 2, reduction)


def vertex_distance_loss(pred: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean",
                         eps: float = 0.0) -> torch.Tensor:
    """Mean per-vertex Euclidean distance |pred_v - target_v| over the last axis (the coordinates).

    ``eps`` > 0 computes sqrt(|d|^2 + eps^2) instead, which keeps the gradient finite at d = 0.
    Returns a scalar, or (B, V) with ``reduction="none"``.
    """
    d = _pair(pred, target)
    if eps:
        dist = torch.sqrt((d * d).sum(-1) + float(eps) ** 2)
    else:
        dist = torch.linalg.vector_norm(d, dim=-1)
    return _reduce(dist, reduction)


def wing_loss(pred: torch.Tensor, target: torch.Tensor, *, w: float = 10.0, eps: float = 2.0,
              reduction: str = "mean") -> torch.Tensor:
    """Wing loss (Feng et al. 2018), elementwise on x = pred - target.

    L(x) = w ln(1 + |x| / eps) if |x| < w, else |x| - C with C = w - w ln(1 + w / eps).
    """
    w, eps = _positive(w, "w"), _positive(eps, "eps")
    a = _pair(pred, target).abs()
    c = w - w * math.log1p(w / eps)
    return _reduce(torch.where(a < w, w * torch.log1p(a / eps), a - c), reduction)


def exp_wing_loss(pred: torch.Tensor, target: torch.Tensor, *, w: float = 5.0, eps: float = 4.0,
                  reduction: str = "mean") -> torch.Tensor:
    """Exponential wing loss, elementwise on x = pred - target.

    L(x) = w (exp(|x| / eps) - 1) if |x| < w, else |x| - C with C = w - w (exp(w / eps) - 1), so that
    L is continuous at |x| = w (its slope jumps there from (w / eps) exp(w / eps) to 1).
    """
    w, eps = _positive(w, "w"), _positive(eps, "eps")
    a = _pair(pred, target).abs()
    c = w - w * math.expm1(w / eps)
    inner = w * torch.expm1(torch.clamp(a, max=w) / eps)  # clamp: no overflow in the unused branch
    return _reduce(torch.where(a < w, inner, a - c), reduction)


class WingLoss(nn.Module):
    """Module form of :func:`wing_loss`."""

    def __init__(self, w: float = 10.0, eps: float = 2.0, reduction: str = "mean"):
        super().__init__()
        self.w, self.eps, self.reduction = _positive(w, "w"), _positive(eps, "eps"), reduction
        _reduce(torch.zeros(1), reduction)

    def forward(self, pred, target):
        return wing_loss(pred, target, w=self.w, eps=self.eps, reduction=self.reduction)


class ExpWingLoss(nn.Module):
    """Module form of :func:`exp_wing_loss`."""

    def __init__(self, w: float = 5.0, eps: float = 4.0, reduction: str = "mean"):
        super().__init__()
        self.w, self.eps, self.reduction = _positive(w, "w"), _positive(eps, "eps"), reduction
        _reduce(torch.zeros(1), reduction)

    def forward(self, pred, target):
        return exp_wing_loss(pred, target, w=self.w, eps=self.eps, reduction=self.reduction)


def _check_params(x, name):
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != 62:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name}: expected a tensor of shape (B, 62) (12 pose + 40 shape + 10 expression), got {got}")


@torch.no_grad()
def wpdc_weights(pred: torch.Tensor, target: torch.Tensor, model, *, whitened: bool = True,
                 vertex_indices=None, eps: float = 1e-6) -> torch.Tensor:
    """Per-parameter WPDC weights (B, 62), no gradient.

    For parameter i the weight is |p_i - p*_i| * ||dV / dp_i||, where p are unwhitened parameters and
    V = P[:, :3] (mean + W_s a_s + W_e a_e) + P[:, 3] the projected vertices (over ``vertex_indices``,
    default all), evaluated at the prediction:

    - pose entry P[r, c], c < 3: ||dV / dP[r,c]|| = ||S[:, c]|| with S = mean + W_s a_s + W_e a_e (n, 3);
    - translation P[r, 3]: sqrt(n);
    - shape / expression coefficient j: ||B_j P[:, :3]^T||_F, B_j = basis column j as (n, 3).

    ``eps`` is added to every weight, each row is divided by its maximum, and the z translation
    (index 11, invisible under orthographic projection) gets weight 0, as in 3DDFA. 3DDFA evaluates
    the norms on its 68 keypoints plus 132 randomly resampled vertices: pass those as
    ``vertex_indices`` to do the same (the default uses every vertex, O(N K) per call).
    """
    _check_params(pred, "pred")
    _check_params(target, "target")
    p = model.unwhiten(pred) if whitened else pred
    g = model.unwhiten(target) if whitened else target
    cam, a_s, a_e = model.parse_params62(p)
    mean, ws, we = model.mean, model.shape_basis[:, : a_s.shape[1]], model.expression_basis[:, : a_e.shape[1]]
    if vertex_indices is not None:
        idx = torch.as_tensor(vertex_indices, dtype=torch.long, device=mean.device).reshape(-1)
        mean = mean[idx]
        rows = (3 * idx[:, None] + torch.arange(3, device=idx.device)).reshape(-1)
        ws, we = ws[rows], we[rows]
    n = mean.shape[0]
    dt = p.dtype
    mean, ws, we = mean.to(dt), ws.to(dt), we.to(dt)
    shape = mean + (a_s @ ws.T + a_e @ we.T).reshape(-1, n, 3)  # (B, n, 3)
    col_norm = torch.linalg.vector_norm(shape, dim=1)  # (B, 3): ||S[:, c]||
    b = p.shape[0]
    grad_norm = torch.empty(b, 62, dtype=dt, device=p.device)
    pose = torch.cat([col_norm, torch.full((b, 1), math.sqrt(n), dtype=dt, device=p.device)], dim=1)  # (B, 4)
    grad_norm[:, :12] = pose.repeat(1, 3)  # row-major 3x4: entry (r, c) -> pose[c]
    # ||B_j A^T||_F^2 = trace(A G_j A^T) = sum(G_j * (A^T A)) with the 3x3 Gram G_j = B_j^T B_j:
    # O(n K) once instead of a (B, n, 3, K) intermediate
    basis = torch.cat([ws, we], dim=1).reshape(n, 3, -1)  # (n, 3, K)
    gram = torch.einsum("nck,ndk->kcd", basis, basis)  # (K, 3, 3)
    a3 = cam[:, :, :3]  # (B, 3, 3)
    ata = a3.transpose(1, 2) @ a3  # (B, 3, 3)
    grad_norm[:, 12:] = torch.sqrt(torch.clamp(torch.einsum("kcd,bcd->bk", gram, ata), min=0.0))
    weights = (p - g).abs() * grad_norm + eps
    weights = weights / weights.max(dim=1, keepdim=True).values
    weights[:, 11] = 0.0
    return weights


def wpdc_loss(pred: torch.Tensor, target: torch.Tensor, model, *, whitened: bool = True, vertex_indices=None,
              reduction: str = "mean") -> torch.Tensor:
    """Weighted parameter distance: mean of ``wpdc_weights`` * (pred - target)^2 over (B, 62).

    pred, target: (B, 62) parameters, whitened by the model's parameter mean/std when ``whitened``.
    """
    w = wpdc_weights(pred, target, model, whitened=whitened, vertex_indices=vertex_indices)
    return _reduce(w * (pred - target) ** 2, reduction)


def vdc_loss(pred: torch.Tensor, target: torch.Tensor, model, *, whitened: bool = True, vertex_indices=None,
             reduction: str = "mean") -> torch.Tensor:
    """Vertex distance cost: mean squared coordinate difference of the vertices both parameter sets give.

    pred, target: (B, 62); vertices via ``model.params62_to_vertices`` (no image y flip).
    """
    _check_params(pred, "pred")
    _check_params(target, "target")
    vp = model.params62_to_vertices(pred, whitened=whitened, vertex_indices=vertex_indices)
    with torch.no_grad():
        vg = model.params62_to_vertices(target, whitened=whitened, vertex_indices=vertex_indices)
    return _reduce((vp - vg) ** 2, reduction)
