"""The store's image codecs: how the crops are kept (``image_codec`` of ``bfm.w300lp.preprocess``).

* ``"jpeg"``: each crop of a chunk is a JPEG (libjpeg-turbo through imagecodecs, 4:4:4 chroma, at
  ``jpeg_quality``), by ``JpegCodec``, a zarr 3 array-to-bytes codec named ``"meshkit.jpeg"``.
  A chunk is ``uint32 count``, ``count x uint32 lengths``, then the JPEG streams one after the other.
* ``"lossless"``: zarr's default codec chain (zstd on the raw pixels): bit-exact, 4-5x larger on
  photo crops.

Reading a ``"jpeg"`` store needs the codec registered in the reading process: importing
``bfm.w300lp`` does it (``register()``), and the distribution declares it as a ``zarr.codecs`` entry
point, so ``zarr.open`` / ``xarray.open_zarr`` find it in a process that never imported ``bfm``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.common import parse_named_configuration

if TYPE_CHECKING:
    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import Buffer, NDBuffer

__all__ = ["IMAGE_CODECS", "CODEC_NAME", "JpegCodec", "register", "image_codec_kwargs"]

IMAGE_CODECS = ("jpeg", "lossless")
CODEC_NAME = "meshkit.jpeg"


def _imagecodecs():
    from meshkit._optional import require

    return require("imagecodecs", "the store's JPEG image codec (image_codec='jpeg')")


@dataclass(frozen=True)
class JpegCodec(ArrayBytesCodec):
    """Zarr 3 codec: a chunk of (n, H, W, C) uint8 images (C = 1 or 3) as n JPEG streams at ``quality``."""

    is_fixed_size = False
    quality: int

    def __init__(self, *, quality: int = 95) -> None:
        if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
            raise ValueError(f"quality: expected an integer in 1..100, got {quality!r}")
        object.__setattr__(self, "quality", int(quality))

    @classmethod
    def from_dict(cls, data):
        _, config = parse_named_configuration(data, CODEC_NAME)
        return cls(**(config or {}))

    def to_dict(self):
        return {"name": CODEC_NAME, "configuration": {"quality": self.quality}}

    def validate(self, *, shape, dtype, chunk_grid) -> None:
        if np.dtype(dtype.to_native_dtype()) != np.uint8 or len(shape) != 4 or shape[-1] not in (1, 3):
            raise ValueError(f"{CODEC_NAME}: expected (n, H, W, 1 or 3) uint8 images, got shape {shape} dtype {dtype}")

    def _encode_sync(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer:
        ic = _imagecodecs()
        a = np.ascontiguousarray(chunk_array.as_numpy_array())
        streams = [ic.jpeg8_encode(img if img.shape[-1] == 3 else img[..., 0], level=self.quality, subsampling="444")
                   for img in a]
        head = np.array([len(streams)] + [len(s) for s in streams], "<u4").tobytes()
        return chunk_spec.prototype.buffer.from_bytes(head + b"".join(streams))

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        ic = _imagecodecs()
        raw = chunk_bytes.as_numpy_array().view(np.uint8)
        n = int(raw[:4].view("<u4")[0])
        lengths = raw[4: 4 + 4 * n].view("<u4").astype(np.int64)
        out = np.empty(chunk_spec.shape, np.uint8)
        if n != out.shape[0]:
            raise ValueError(f"{CODEC_NAME}: a chunk of {out.shape[0]} images holds {n} JPEG streams")
        pos = 4 + 4 * n
        for i, ln in enumerate(lengths):
            img = ic.jpeg8_decode(raw[pos: pos + ln])
            out[i] = img.reshape(out.shape[1:])
            pos += ln
        return chunk_spec.prototype.nd_buffer.from_numpy_array(out)

    async def _encode_single(self, chunk_array, chunk_spec):
        return self._encode_sync(chunk_array, chunk_spec)

    async def _decode_single(self, chunk_bytes, chunk_spec):
        return self._decode_sync(chunk_bytes, chunk_spec)

    def compute_encoded_size(self, input_byte_length: int, chunk_spec) -> int:
        raise NotImplementedError(f"{CODEC_NAME}: variable-size output")


_registered = False


def register() -> None:
    """Register ``JpegCodec`` with zarr under ``"meshkit.jpeg"`` (idempotent)."""
    global _registered
    if not _registered:
        from zarr.registry import register_codec

        register_codec(CODEC_NAME, JpegCodec)
        _registered = True


def image_codec_kwargs(image_codec: str, jpeg_quality: int) -> dict:
    """The ``create_array`` codec arguments of the ``images`` array."""
    if image_codec == "jpeg":
        _imagecodecs()  # fail before any store is made when imagecodecs is missing
        register()
        return {"serializer": JpegCodec(quality=jpeg_quality), "compressors": None}
    return {}
