"""Graph convolutions on a fixed mesh topology: ``SpiralConv`` (SpiralNet++) and ``ChebConv`` (ChebNet / CoMA).

Both take batched vertex features ``x`` of shape (B, V, C_in) (a single (V, C_in) sample is accepted
too) and return (B, V, C_out). The topology is fixed at construction and held in buffers.

SpiralConv (Gong et al., "SpiralNet++", ICCVW 2019): for every vertex v with spiral
s_v = (s_v0 = v, s_v1, ..., s_v(L-1)),

    y_v = W [x_{s_v0} | x_{s_v1} | ... | x_{s_v(L-1)}] + b,

the L neighbour feature vectors concatenated in spiral order (entry l, channel c lands in column
l * C_in + c) and passed through one linear layer. Spirals padded with the sentinel index V read a
zero feature vector there (a zero row is appended to x before gathering); spirals padded by
repeating their last index simply read that vertex again.

Spiral length from hops: the published decoders give each spiral layer a number of hops h (rings
around the centre). Neural3DMM (Bouritsas et al. 2019, ``spiral_utils.generate_spirals``) collects
the h-ring spiral of every vertex and then fixes one length per level as int(mean + 2 std) of those
per-vertex lengths, padding shorter spirals with a dummy vertex and truncating longer ones;
SpiralNet++ instead fixes the length directly (9 by default) and optionally dilates. We use the
length of h full rings of a regular (valence-6) triangulation, ``1 + 3 h (h + 1)``: 7 for one hop,
19 for two (``spiral_length_for_hops``), close to what Neural3DMM's rule gives on a mostly regular mesh,
and truncate the level's spirals (which are ring-ordered, so a prefix is the nearest vertices) to
it. A level whose spirals are shorter than needed is an error, never silently accepted.

ChebConv (Defferrard et al. 2016; Ranjan et al., "CoMA", ECCV 2018): with the rescaled Laplacian
L~ = 2 L / lambda_max - I (eigenvalues in [-1, 1]; built by ``meshkit.laplacian``, not here) and the
Chebyshev recurrence T_0(L~) x = x, T_1(L~) x = L~ x, T_k(L~) x = 2 L~ T_{k-1}(L~) x - T_{k-2}(L~) x,

    y = sum_{k=0}^{K-1} T_k(L~) x Theta_k + b,   Theta_k of shape (C_in, C_out).

``K`` is the number of Chebyshev terms (polynomial degree K - 1), as in CoMA's and PyTorch
Geometric's ChebConv: CoMA's "K = 6" is ``K=6`` here.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from . import _sparse

__all__ = ["SpiralConv", "ChebConv", "spiral_length_for_hops", "check_spirals"]


def spiral_length_for_hops(hops: int) -> int:
    """Spiral length for ``hops`` rings: 1 + 3 h (h + 1), the size of h full rings on a valence-6 mesh.

    Parameters
    ----------
    hops : int >= 0

    Returns
    -------
    int: 1 for 0 hops, 7 for 1, 19 for 2, 37 for 3.
    """
    from meshkit.validate import check_int

    h = check_int(hops, "hops", minimum=0)
    return 1 + 3 * h * (h + 1)


def check_spirals(spirals, name: str = "spirals", *, n_vertices: int | None = None, length: int | None = None) -> np.ndarray:
    """Validate spiral indices (V, L) int: entry 0 is the vertex itself, others in [0, V] (V = sentinel).

    ``length`` truncates to the first ``length`` columns (an error if the spirals are shorter).
    Returns a C-contiguous int64 array.
    """
    if isinstance(spirals, torch.Tensor):
        spirals = spirals.detach().cpu().numpy()
    a = np.asarray(spirals)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected an integer array of shape (V, L), got dtype {a.dtype}")
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{name}: expected a non-empty array of shape (V, L), got shape {a.shape}")
    v = a.shape[0]
    if n_vertices is not None and v != n_vertices:
        raise ValueError(f"{name}: expected {n_vertices} rows (one spiral per vertex), got {v}")
    if length is not None:
        if a.shape[1] < length:
            raise ValueError(
                f"{name}: expected spirals of at least {length} entries, got {a.shape[1]}; "
                "build the spirals with a longer length"
            )
        a = a[:, :length]
    a = np.ascontiguousarray(a, dtype=np.int64)
    lo, hi = int(a.min()), int(a.max())
    if lo < 0 or hi > v:
        raise ValueError(f"{name}: expected indices in [0, {v}] ({v} = the zero-padding sentinel), got range [{lo}, {hi}]")
    bad = np.flatnonzero(a[:, 0] != np.arange(v))
    if bad.size:
        raise ValueError(
            f"{name}: expected entry 0 of each spiral to be the vertex itself, got {int(a[bad[0], 0])} "
            f"in row {int(bad[0])} ({bad.size} such row(s))"
        )
    return a


class SpiralConv(nn.Module):
    """Spiral convolution: gather each vertex's spiral, concatenate, one linear layer (see module doc).

    Parameters
    ----------
    in_channels, out_channels : int
    spirals : (V, L) int array
        Spiral indices; entry 0 of each row is the vertex itself; the value V pads with zeros.
    length : int, optional
        Use only the first ``length`` entries of each spiral (error if shorter).
    bias : bool

    Notes
    -----
    Shapes: forward(x (B, V, in_channels)) -> (B, V, out_channels).
    """

    def __init__(self, in_channels: int, out_channels: int, spirals, *, length: int | None = None, bias: bool = True):
        super().__init__()
        from meshkit.validate import check_int

        self.in_channels = check_int(in_channels, "in_channels", minimum=1)
        self.out_channels = check_int(out_channels, "out_channels", minimum=1)
        s = check_spirals(spirals, length=length)
        self.n_vertices, self.length = s.shape
        self.has_sentinel = bool((s == self.n_vertices).any())
        self.register_buffer("spirals", torch.from_numpy(s))
        self.linear = nn.Linear(self.in_channels * self.length, self.out_channels, bias=bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.linear.weight)
        if self.linear.bias is not None:
            nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, batched = _sparse.check_features(x, "x", self.n_vertices, self.in_channels)
        b = x.shape[0]
        if self.has_sentinel:
            x = torch.cat([x, x.new_zeros(b, 1, self.in_channels)], dim=1)
        g = x.index_select(1, self.spirals.reshape(-1)).reshape(b, self.n_vertices, self.length * self.in_channels)
        y = self.linear(g)
        return y if batched else y[0]

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, vertices={self.n_vertices}, length={self.length}, "
                f"sentinel={self.has_sentinel}")


class ChebConv(nn.Module):
    """Chebyshev graph convolution with K terms on a fixed rescaled Laplacian (see module doc).

    Parameters
    ----------
    in_channels, out_channels : int
    laplacian : (V, V) scipy sparse
        The *rescaled* Laplacian 2 L / lambda_max - I (spectrum in [-1, 1]); not checked (costly).
    K : int >= 1
        Number of Chebyshev terms T_0 .. T_{K-1}.
    bias : bool

    Notes
    -----
    Shapes: forward(x (B, V, in_channels)) -> (B, V, out_channels).
    """

    def __init__(self, in_channels: int, out_channels: int, laplacian, K: int = 6, *, bias: bool = True):
        super().__init__()
        from meshkit.validate import check_int

        self.in_channels = check_int(in_channels, "in_channels", minimum=1)
        self.out_channels = check_int(out_channels, "out_channels", minimum=1)
        self.K = check_int(K, "K", minimum=1)
        lap = _sparse.check_sparse(laplacian, "laplacian")
        if lap.shape[0] != lap.shape[1]:
            raise ValueError(f"laplacian: expected a square (V, V) matrix, got shape {lap.shape}")
        self.n_vertices = lap.shape[0]
        _sparse.register_sparse(self, "laplacian", lap)
        self.weight = nn.Parameter(torch.empty(self.K, self.in_channels, self.out_channels))
        self.bias = nn.Parameter(torch.empty(self.out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = math.sqrt(6.0 / (self.in_channels + self.out_channels))  # Glorot, per term
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def _lap(self, x):
        return _sparse.apply(self, "laplacian", (self.n_vertices, self.n_vertices), x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, batched = _sparse.check_features(x, "x", self.n_vertices, self.in_channels)
        t0 = x
        y = t0 @ self.weight[0]
        if self.K > 1:
            t1 = self._lap(x)
            y = y + t1 @ self.weight[1]
            for k in range(2, self.K):
                t2 = 2.0 * self._lap(t1) - t0
                y = y + t2 @ self.weight[k]
                t0, t1 = t1, t2
        if self.bias is not None:
            y = y + self.bias
        return y if batched else y[0]

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, vertices={self.n_vertices}, K={self.K}"
