"""Mesh models built from a multi-resolution hierarchy's operators.

All models take per-level operator lists, level 0 = finest mesh:

- ``spirals[i]`` (V_i, L_i) int64 spiral indices of level i,
- ``down[i]`` scipy csr (V_{i+1}, V_i), ``up[i]`` scipy csr (V_i, V_{i+1}),
- ``laplacians[i]`` scipy csr (V_i, V_i), rescaled for Chebyshev filtering,

and each also offers ``from_hierarchy(h, ...)`` for a ``sampling.Hierarchy`` (duck-typed: only
``h.levels[i].spirals``, ``h.levels[i].laplacian``, ``h.down[i]``, ``h.up[i]`` are read).

- ``SpiralAutoencoder``: SpiralNet++-style (Gong et al. 2019) encoder (spiral conv + ELU, pool by
  ``down``) per level, a linear map to the latent code, and the mirrored decoder (unpool by ``up``,
  spiral conv + ELU) ending in a spiral conv to the output channels.
- ``ChebAutoencoder``: the same layout with Chebyshev convolutions (CoMA, Ranjan et al. 2018).
- ``SpiralDecoder``: the published single-image face decoder, latent -> FC(V_n * C_n) -> [unpool ->
  spiral conv(hops, C) -> ELU] per level -> spiral conv to 3 channels; with its defaults on the 6-level
  53215 -> 13304 -> 3326 -> 832 -> 208 -> 52 face hierarchy it is exactly
  FC(52*128) -> Unpool -> SPConv(1,128,208) -> Unpool -> SPConv(1,64,832) -> Unpool -> SPConv(2,32,3326)
  -> Unpool -> SPConv(2,16,13304) -> Unpool -> SPConv(2,8,53215) -> SPConv(2,3,53215) (h = hops,
  ELU after all but the last; hops -> spiral length as documented in ``meshkit.nn.conv``).
- ``ImageToMesh``: a small CNN image encoder followed by a ``SpiralDecoder``.

Shapes: mesh features (B, V, C); latent codes (B, latent_dim); images (B, 3, H, W).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from meshkit.validate import check_int

from . import _sparse
from .conv import ChebConv, SpiralConv, check_spirals, spiral_length_for_hops
from .pool import Pool

__all__ = ["SpiralAutoencoder", "ChebAutoencoder", "SpiralDecoder", "ImageToMesh"]


def _as_list(x, name):
    if isinstance(x, (str, bytes)) or not isinstance(x, Sequence):
        raise TypeError(f"{name}: expected a list (one entry per level, level 0 = finest), got {type(x).__name__}")
    return list(x)


def _channels(x, name, n):
    xs = _as_list(x, name)
    if len(xs) != n:
        raise ValueError(f"{name}: expected {n} values, got {len(xs)}")
    return [check_int(c, f"{name}[{i}]", minimum=1) for i, c in enumerate(xs)]


def _sizes(down, up, n_first: int | None = None):
    """Validate a chain of down/up matrices; return the vertex counts [V_0, ..., V_n]."""
    down = [_sparse.check_sparse(m, f"down[{i}]") for i, m in enumerate(down)] if down is not None else None
    up = [_sparse.check_sparse(m, f"up[{i}]") for i, m in enumerate(up)]
    if down is not None and len(down) != len(up):
        raise ValueError(f"down: expected as many matrices as up ({len(up)}), got {len(down)}")
    if not up:
        raise ValueError("up: expected at least one matrix (two levels), got an empty list")
    sizes = [up[0].shape[0]]
    for i, u in enumerate(up):
        if u.shape[0] != sizes[-1]:
            raise ValueError(f"up[{i}]: expected {sizes[-1]} rows (vertices of level {i}), got shape {u.shape}")
        sizes.append(u.shape[1])
        if down is not None and down[i].shape != (u.shape[1], u.shape[0]):
            raise ValueError(f"down[{i}]: expected shape {(u.shape[1], u.shape[0])} (the transpose of up[{i}]'s), "
                             f"got {down[i].shape}")
    if n_first is not None and sizes[0] != n_first:
        raise ValueError(f"up[0]: expected {n_first} rows, got {sizes[0]}")
    return down, up, sizes


def _level_spirals(spirals, sizes, n_needed, lengths=None):
    sp = _as_list(spirals, "spirals")
    if len(sp) < n_needed:
        raise ValueError(f"spirals: expected at least {n_needed} levels, got {len(sp)}")
    out = []
    for i in range(n_needed):
        ln = None if lengths is None else lengths[i]
        out.append(check_spirals(sp[i], f"spirals[{i}]", n_vertices=sizes[i], length=ln))
    return out


class _Flatten(nn.Module):
    def forward(self, x):
        return x.reshape(x.shape[0], -1)


class _MeshAutoencoder(nn.Module):
    """The layout both autoencoders share (CoMA / SpiralNet++): per level conv -> ELU -> pool down,
    then a linear map to the code; back: a linear map, per level pool up -> conv -> ELU, and a last
    conv to ``in_channels``. Subclasses pass ``conv(level, c_in, c_out)`` to :meth:`_build`."""

    def _build(self, conv, down, up, sizes, ch) -> None:
        n = len(down)
        self.sizes = sizes
        enc = []
        c_in = self.in_channels
        for i in range(n):
            enc += [conv(i, c_in, ch[i]), nn.ELU(), Pool(down[i])]
            c_in = ch[i]
        enc += [_Flatten(), nn.Linear(sizes[n] * ch[-1], self.latent_dim)]
        self.encoder = nn.Sequential(*enc)
        self.fc_dec = nn.Linear(self.latent_dim, sizes[n] * ch[-1])
        dec = []
        c_in = ch[-1]
        for i in reversed(range(n)):
            dec += [Pool(up[i]), conv(i, c_in, ch[i]), nn.ELU()]
            c_in = ch[i]
        dec += [conv(0, ch[0], self.in_channels)]
        self.decoder = nn.Sequential(*dec)
        self._last_channels = ch[-1]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        x, _ = _sparse.check_features(x, "x", self.sizes[0], self.in_channels)
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z: expected shape (B, {self.latent_dim}), got {tuple(z.shape)}")
        y = self.fc_dec(z).reshape(z.shape[0], self.sizes[len(self.sizes) - 1], self._last_channels)
        return self.decoder(y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


class SpiralAutoencoder(_MeshAutoencoder):
    """SpiralNet++-style mesh autoencoder.

    Parameters
    ----------
    spirals : list of (V_i, L) int arrays, at least ``len(down)`` levels (level 0 finest).
    down, up : lists of scipy sparse, ``down[i]`` (V_{i+1}, V_i), ``up[i]`` (V_i, V_{i+1}).
    in_channels : int, features per vertex (3 for coordinates).
    channels : one width per encoder level (``len(down)`` values); default (32, 32, 32, 64).
    latent_dim : int
    length : int, optional, truncate every level's spirals to this length.

    Notes
    -----
    Shapes: forward(x (B, V_0, in_channels)) -> (B, V_0, in_channels); encode -> (B, latent_dim);
    decode(z) -> (B, V_0, in_channels).
    """

    def __init__(self, spirals, down, up, *, in_channels: int = 3, channels=(32, 32, 32, 64), latent_dim: int = 16,
                 length: int | None = None):
        super().__init__()
        down, up, sizes = _sizes(_as_list(down, "down"), _as_list(up, "up"))
        n = len(down)
        ch = _channels(channels, "channels", n)
        self.in_channels = check_int(in_channels, "in_channels", minimum=1)
        self.latent_dim = check_int(latent_dim, "latent_dim", minimum=1)
        sp = _level_spirals(spirals, sizes, n, None if length is None else [length] * n)
        self._build(lambda i, c_in, c_out: SpiralConv(c_in, c_out, sp[i]), down, up, sizes, ch)

    @classmethod
    def from_hierarchy(cls, h, **kwargs):
        """Build from a ``sampling.Hierarchy`` (reads ``h.levels[i].spirals``, ``h.down``, ``h.up``)."""
        return cls([lvl.spirals for lvl in h.levels], list(h.down), list(h.up), **kwargs)


class ChebAutoencoder(_MeshAutoencoder):
    """CoMA-style Chebyshev mesh autoencoder (same layout as ``SpiralAutoencoder``, ChebConv layers).

    Parameters
    ----------
    laplacians : list of (V_i, V_i) scipy sparse rescaled Laplacians, at least ``len(down)`` levels.
    down, up : lists of scipy sparse, ``down[i]`` (V_{i+1}, V_i), ``up[i]`` (V_i, V_{i+1}).
    in_channels : int
    channels : one width per encoder level; default (16, 16, 16, 32) as in CoMA.
    latent_dim : int, default 8 as in CoMA.
    K : int, Chebyshev terms per layer (CoMA: 6).

    Notes
    -----
    Shapes as ``SpiralAutoencoder``.
    """

    def __init__(self, laplacians, down, up, *, in_channels: int = 3, channels=(16, 16, 16, 32), latent_dim: int = 8,
                 K: int = 6):
        super().__init__()
        down, up, sizes = _sizes(_as_list(down, "down"), _as_list(up, "up"))
        n = len(down)
        ch = _channels(channels, "channels", n)
        self.in_channels = check_int(in_channels, "in_channels", minimum=1)
        self.latent_dim = check_int(latent_dim, "latent_dim", minimum=1)
        laps = _as_list(laplacians, "laplacians")
        if len(laps) < n:
            raise ValueError(f"laplacians: expected at least {n} levels, got {len(laps)}")
        laps = [_sparse.check_sparse(lp, f"laplacians[{i}]", (sizes[i], sizes[i])) for i, lp in enumerate(laps[:n])]
        self._build(lambda i, c_in, c_out: ChebConv(c_in, c_out, laps[i], K), down, up, sizes, ch)

    @classmethod
    def from_hierarchy(cls, h, **kwargs):
        """Build from a ``sampling.Hierarchy`` (reads ``h.levels[i].laplacian``, ``h.down``, ``h.up``)."""
        return cls([lvl.laplacian for lvl in h.levels], list(h.down), list(h.up), **kwargs)


class SpiralDecoder(nn.Module):
    """The published spiral mesh decoder: FC -> (unpool -> spiral conv -> ELU) per level -> spiral conv.

    Parameters
    ----------
    spirals : list of (V_i, L_i) int arrays, at least ``len(up)`` levels (level 0 finest).
    up : list of scipy sparse ``up[i]`` (V_i, V_{i+1}); n = len(up) + 1 levels.
    latent_dim : int, size of the input code.
    channels : n widths (C_n, C_{n-1}, ..., C_1): the FC output width at the coarsest level, then the
        width of the spiral conv after each unpooling, coarse to fine. Default (128, 128, 64, 32, 16, 8).
    out_channels : int, the final spiral conv's width (3 for coordinates).
    hops : n hop counts, one per spiral conv (the n - 1 after unpooling, coarse to fine, then the final
        one on level 0); each conv uses the first ``spiral_length_for_hops(h)`` entries of its level's
        spirals (1 -> 7, 2 -> 19). Default (1, 1, 2, 2, 2, 2). ``None`` uses the spirals as given.

    Notes
    -----
    Shapes: forward(z (B, latent_dim)) -> (B, V_0, out_channels). ``forward(z, return_all=True)``
    returns the list of every stage's output: [(B, V_n, C_n), (B, V_{n-1}, C_{n-1}), ..., (B, V_0, out)].
    """

    def __init__(self, spirals, up, *, latent_dim: int = 256, channels=(128, 128, 64, 32, 16, 8), out_channels: int = 3,
                 hops=(1, 1, 2, 2, 2, 2)):
        super().__init__()
        _, up, sizes = _sizes(None, _as_list(up, "up"))
        n = len(sizes)
        ch = _channels(channels, "channels", n)
        self.latent_dim = check_int(latent_dim, "latent_dim", minimum=1)
        self.out_channels = check_int(out_channels, "out_channels", minimum=1)
        if hops is not None:
            hp = _channels(hops, "hops", n)
            lengths = [spiral_length_for_hops(h) for h in hp]
        else:
            hp, lengths = None, [None] * n
        sp = _as_list(spirals, "spirals")
        if len(sp) < n - 1:
            raise ValueError(f"spirals: expected at least {n - 1} levels, got {len(sp)}")
        self.sizes = sizes
        self.hops = None if hp is None else tuple(hp)
        self.fc = nn.Linear(self.latent_dim, sizes[-1] * ch[0])
        self.unpools = nn.ModuleList()
        self.convs = nn.ModuleList()
        c_in = ch[0]
        for j, level in enumerate(reversed(range(n - 1))):  # level n-2 .. 0
            s = check_spirals(sp[level], f"spirals[{level}]", n_vertices=sizes[level], length=lengths[j])
            self.unpools.append(Pool(up[level]))
            self.convs.append(SpiralConv(c_in, ch[j + 1], s))
            c_in = ch[j + 1]
        s0 = check_spirals(sp[0], "spirals[0]", n_vertices=sizes[0], length=lengths[n - 1])
        self.final = SpiralConv(c_in, self.out_channels, s0)
        self.act = nn.ELU()
        self._c0 = ch[0]

    @classmethod
    def from_hierarchy(cls, h, **kwargs):
        """Build from a ``sampling.Hierarchy`` (reads ``h.levels[i].spirals`` and ``h.up``)."""
        return cls([lvl.spirals for lvl in h.levels], list(h.up), **kwargs)

    def forward(self, z: torch.Tensor, *, return_all: bool = False):
        if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != self.latent_dim:
            got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"z: expected a tensor of shape (B, {self.latent_dim}), got {got}")
        x = self.fc(z).reshape(z.shape[0], self.sizes[-1], self._c0)
        outs = [x]
        for unpool, conv in zip(self.unpools, self.convs, strict=True):
            x = self.act(conv(unpool(x)))
            outs.append(x)
        x = self.final(x)
        outs.append(x)
        return outs if return_all else x


class ImageToMesh(nn.Module):
    """A small image-to-mesh regressor: CNN encoder -> latent code -> ``SpiralDecoder``.

    The encoder is ``len(widths)`` blocks of (3x3 conv, stride 2 -> BatchNorm -> ReLU), global average
    pooling and a linear layer to ``latent_dim``. If ``template`` (V_0, 3) is given, the decoder predicts
    per-vertex offsets added to it.

    Parameters
    ----------
    spirals, up : as ``SpiralDecoder``.
    in_channels : image channels (3).
    widths : CNN widths per block, default (32, 64, 128, 256).
    latent_dim : int
    template : (V_0, 3) array, optional.
    **decoder_kwargs : passed to ``SpiralDecoder`` (channels, hops, out_channels).

    Notes
    -----
    Shapes: forward(images (B, in_channels, H, W)) -> (B, V_0, 3).
    """

    def __init__(self, spirals, up, *, in_channels: int = 3, widths=(32, 64, 128, 256), latent_dim: int = 256,
                 template=None, **decoder_kwargs):
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels", minimum=1)
        ws = [check_int(w, f"widths[{i}]", minimum=1) for i, w in enumerate(_as_list(widths, "widths"))]
        if not ws:
            raise ValueError("widths: expected at least one CNN block, got an empty list")
        layers = []
        c = self.in_channels
        for w in ws:
            layers += [nn.Conv2d(c, w, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            c = w
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, latent_dim)]
        self.encoder = nn.Sequential(*layers)
        self.decoder = SpiralDecoder(spirals, up, latent_dim=latent_dim, **decoder_kwargs)
        if template is not None:
            from meshkit.validate import check_vertices

            t = check_vertices(template, "template", dims=self.decoder.out_channels)
            if t.shape[0] != self.decoder.sizes[0]:
                raise ValueError(f"template: expected {self.decoder.sizes[0]} vertices, got {t.shape[0]}")
            self.register_buffer("template", torch.from_numpy(t).to(torch.get_default_dtype()))
        else:
            self.template = None

    @classmethod
    def from_hierarchy(cls, h, **kwargs):
        """Build from a ``sampling.Hierarchy`` (reads ``h.levels[i].spirals`` and ``h.up``)."""
        return cls([lvl.spirals for lvl in h.levels], list(h.up), **kwargs)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != self.in_channels:
            got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"images: expected a tensor of shape (B, {self.in_channels}, H, W), got {got}")
        y = self.decoder(self.encoder(images))
        return y if self.template is None else y + self.template
