"""Mesh pooling by a fixed sparse matrix: ``down`` (n_coarse, n_fine) or ``up`` (n_fine, n_coarse).

``Pool(M)`` maps vertex features x (B, n_in, C) to M @ x per sample and channel, (B, n_out, C),
with n_out, n_in = M.shape: ``Pool(down)`` coarsens, ``Pool(up)`` refines (CoMA / SpiralNet++ pooling).
The gradient with respect to x is M.T @ grad; the matrix itself is a constant buffer.
"""

from __future__ import annotations

import torch
from torch import nn

from . import _sparse

__all__ = ["Pool"]


class Pool(nn.Module):
    """Apply a fixed sparse (n_out, n_in) matrix to batched vertex features.

    Parameters
    ----------
    matrix : scipy sparse (n_out, n_in)
        ``down`` (n_coarse, n_fine) to pool, ``up`` (n_fine, n_coarse) to unpool.

    Shapes: forward(x (B, n_in, C)) -> (B, n_out, C); an unbatched (n_in, C) input gives (n_out, C).
    """

    def __init__(self, matrix):
        super().__init__()
        m = _sparse.check_sparse(matrix, "matrix")
        self.n_out, self.n_in = m.shape
        _sparse.register_sparse(self, "matrix", m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, batched = _sparse.check_features(x, "x", self.n_in)
        y = _sparse.apply(self, "matrix", (self.n_out, self.n_in), x)
        return y if batched else y[0]

    def extra_repr(self) -> str:
        return f"{self.n_in} -> {self.n_out}, nnz={int(self.matrix_val.numel())}"
