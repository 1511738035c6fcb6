"""Sparse operators as module buffers, and the batched sparse-times-dense product with its gradient.

A scipy sparse matrix M (n_out, n_in) is stored on a module as six buffers: the CSR arrays of M and
of M.T (row pointers, column indices, values). Buffers follow ``.to(device/dtype)`` and live in the
``state_dict``. ``apply`` multiplies a batch of vertex features (B, n_in, C) by M, giving
(B, n_out, C); its backward multiplies the incoming gradient by M.T (the operator itself is constant:
no gradient flows to its values). Values are kept in float64 (exact) until ``.float()`` /
``.to(dtype)``; each product casts them to the input's dtype.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch


def check_sparse(matrix, name: str, shape: tuple[int | None, int | None] | None = None) -> sp.csr_matrix:
    """Validate a scipy sparse (or dense 2-D) real matrix with finite values; return it as csr float64."""
    if sp.issparse(matrix):
        m = sp.csr_matrix(matrix)
    elif isinstance(matrix, np.ndarray) and matrix.ndim == 2:
        m = sp.csr_matrix(matrix)
    else:
        raise TypeError(f"{name}: expected a scipy sparse matrix, got {type(matrix).__name__}")
    if m.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected a real-valued sparse matrix, got dtype {m.dtype}")
    m = m.astype(np.float64)
    if not np.isfinite(m.data).all():
        raise ValueError(f"{name}: expected finite values, got NaN/inf")
    if shape is not None:
        for axis, (want, got) in enumerate(zip(shape, m.shape, strict=True)):
            if want is not None and want != got:
                raise ValueError(
                    f"{name}: expected shape ({shape[0] if shape[0] is not None else 'any'}, "
                    f"{shape[1] if shape[1] is not None else 'any'}), got {m.shape} (axis {axis} differs)"
                )
    m.sum_duplicates()
    m.sort_indices()
    return m


def register_sparse(module: torch.nn.Module, prefix: str, matrix: sp.csr_matrix) -> None:
    """Register the CSR arrays of ``matrix`` and of its transpose as buffers named ``{prefix}_*``."""
    mt = sp.csr_matrix(matrix.T)
    mt.sort_indices()
    for tag, m in (("", matrix), ("_t", mt)):
        module.register_buffer(f"{prefix}{tag}_crow", torch.from_numpy(m.indptr.astype(np.int64)))
        module.register_buffer(f"{prefix}{tag}_col", torch.from_numpy(m.indices.astype(np.int64)))
        module.register_buffer(f"{prefix}{tag}_val", torch.from_numpy(m.data.astype(np.float64)))


_BETA_WARNING_SEEN = False


def _csr(crow, col, val, shape, dtype):
    global _BETA_WARNING_SEEN
    if not _BETA_WARNING_SEEN:
        # torch warns once per process that sparse CSR is "beta"; swallow that one warning here (the
        # products used are stable). Not done on every call: catch_warnings is slow under pytest.
        _BETA_WARNING_SEEN = True
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Ss]parse CSR tensor support is in beta.*")
            return torch.sparse_csr_tensor(crow, col, val.to(dtype), size=shape, check_invariants=False)
    return torch.sparse_csr_tensor(crow, col, val.to(dtype), size=shape, check_invariants=False)


class _SparseMM(torch.autograd.Function):
    """y = M @ x for x (n_in, K) dense; dy/dx via M.T (held as its own CSR)."""

    @staticmethod
    def forward(ctx, x, m, mt):
        ctx.mt = mt
        return m @ x

    @staticmethod
    def backward(ctx, grad):
        gx = ctx.mt @ grad if ctx.needs_input_grad[0] else None
        return gx, None, None


def apply(module: torch.nn.Module, prefix: str, shape: tuple[int, int], x: torch.Tensor) -> torch.Tensor:
    """Multiply batched features ``x`` (B, n_in, C) by the stored operator (n_out, n_in) -> (B, n_out, C)."""
    n_out, n_in = shape
    b, _, c = x.shape
    m = _csr(getattr(module, f"{prefix}_crow"), getattr(module, f"{prefix}_col"), getattr(module, f"{prefix}_val"),
             (n_out, n_in), x.dtype)
    mt = _csr(getattr(module, f"{prefix}_t_crow"), getattr(module, f"{prefix}_t_col"), getattr(module, f"{prefix}_t_val"),
              (n_in, n_out), x.dtype)
    x2 = x.permute(1, 0, 2).reshape(n_in, b * c)
    y2 = _SparseMM.apply(x2, m, mt)
    return y2.reshape(n_out, b, c).permute(1, 0, 2)


def check_features(x, name: str, n_vertices: int, channels: int | None = None) -> tuple[torch.Tensor, bool]:
    """Check a feature tensor of shape (B, V, C) or (V, C); return it as (B, V, C) and whether it was batched."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of shape (B, {n_vertices}, C), got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
    batched = x.dim() == 3
    if x.dim() == 2:
        x = x.unsqueeze(0)
    if x.dim() != 3 or x.shape[1] != n_vertices or (channels is not None and x.shape[2] != channels):
        want = f"(B, {n_vertices}, {channels if channels is not None else 'C'})"
        raise ValueError(f"{name}: expected shape {want} or without the batch axis, got {tuple(x.shape)}")
    return x, batched
