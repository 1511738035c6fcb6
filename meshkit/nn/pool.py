"""Mesh pooling by a fixed sparse matrix: ``down`` (n_coarse, n_fine) or ``up`` (n_fine, n_coarse).

``Pool(M)`` maps vertex features x (B, n_in, C) to M @ x per sample and channel, (B, n_out, C),
with n_out, n_in = M.shape: ``Pool(down)`` coarsens, ``Pool(up)`` refines (CoMA / SpiralNet++ pooling).
The gradient with respect to x is M.T @ grad; the matrix itself is a constant buffer.

A 0/1 selection matrix (exactly one entry per row, equal to 1: CoMA's ``down``) is applied as a
plain row gather (``index_select``), about twice as fast as the sparse product; any other matrix
goes through a CSR sparse-dense product (see ``meshkit.nn._sparse``).
"""

from __future__ import annotations

import numpy as np
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

    Notes
    -----
    Shapes: forward(x (B, n_in, C)) -> (B, n_out, C); an unbatched (n_in, C) input gives (n_out, C).
    """

    def __init__(self, matrix):
        super().__init__()
        m = _sparse.check_sparse(matrix, "matrix")
        self.n_out, self.n_in = m.shape
        m.eliminate_zeros()
        self.is_selection = bool(m.nnz == m.shape[0] and (np.diff(m.indptr) == 1).all() and (m.data == 1.0).all())
        _sparse.register_sparse(self, "matrix", m)
        if self.is_selection:
            self.register_buffer("select", torch.from_numpy(m.indices.astype(np.int64)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, batched = _sparse.check_features(x, "x", self.n_in)
        if self.is_selection:
            y = x.index_select(1, self.select)
        else:
            y = _sparse.apply(self, "matrix", (self.n_out, self.n_in), x)
        return y if batched else y[0]

    def extra_repr(self) -> str:
        return f"{self.n_in} -> {self.n_out}, nnz={int(self.matrix_val.numel())}, selection={self.is_selection}"
