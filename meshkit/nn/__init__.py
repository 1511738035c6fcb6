"""Optional PyTorch add-ons: spiral and Chebyshev graph convolutions, sparse pooling, mesh models, losses.

Needs torch, which meshkit does not install by default (an unpinned ``pip install torch`` pulls a
multi-gigabyte CUDA build). Install the CPU build first, then the extra::

    pip install torch==2.13.0          # the CPU build
    pip install "meshkit[torch]"

Everything here consumes the geometry core's plain arrays (spiral indices (V, L) int64, ``down`` /
``up`` / Laplacian scipy csr matrices) and never re-derives an operator. Modules hold those operators
as registered buffers, so ``.to(device)`` and ``state_dict`` carry them.

Feature tensors are batched and vertex-major: ``(B, V, C)`` (batch, vertices, channels).
"""

from __future__ import annotations

from .._optional import require

require("torch", "meshkit.nn")

from .conv import ChebConv, SpiralConv, spiral_length_for_hops
from .losses import (
    ExpWingLoss,
    WingLoss,
    exp_wing_loss,
    vdc_loss,
    vertex_distance_loss,
    vertex_l1_loss,
    vertex_l2_loss,
    wing_loss,
    wpdc_loss,
    wpdc_weights,
)
from .models import ChebAutoencoder, ImageToMesh, SpiralAutoencoder, SpiralDecoder
from .pool import Pool

__all__ = [
    "SpiralConv",
    "ChebConv",
    "Pool",
    "spiral_length_for_hops",
    "SpiralAutoencoder",
    "ChebAutoencoder",
    "SpiralDecoder",
    "ImageToMesh",
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
