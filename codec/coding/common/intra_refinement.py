"""An I-frame's integer refinement: the autoencoder's reconstruction dec(q) acts as a learned intra
predictor, and the difference between the frame and it is coded with the M-frames' integer residual
coder (codec.coding.common.transform, codec.coding.common.residual_coding) at a QP of its own. A frame =
clip(dec(q) + residual): the latent sets the base, the refinement the detail the autoencoder cannot
hold, so quality keeps rising where finer latent steps stop paying. All of it is integer arithmetic
on the decoded base, so it adds no drift of its own.

An I-frame's payload:

    latent words n (u32, little-endian) | the latent (4n bytes, codec.coding.common.latent_codec)
    | the refinement: nothing, or one range-coded message: QP (QP_BITS uniform bits, 0..MAX_QP)
      and the residual levels, as an M-frame codes them

so a reader without the bundle can tell the base's bytes from the refinement's. Everything decoded
is bounded as an M-frame's residual is, and how much is decoded depends only on the frame size.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from codec.coding.common.bitstream import WORD
from codec.coding.common.entropy_coding import SymbolRangeDecoder, SymbolRangeEncoder
from codec.coding.common.inter_frame import (
    add_residual,
    decode_qp,
    encode_qp,
    inter_tables,
    residual_for,
    residual_grid,
)
from codec.coding.common.residual_coding import Residual, decode_residual, encode_residual
from codec.errors import CodecError, naming

LATENT_WORDS = struct.Struct("<I")  # an I-frame payload's first field: its latent's length in words


@dataclass(frozen=True)
class Refinement:
    """The residual ``levels`` coded at ``qp`` on top of an I-frame's base reconstruction; ``levels``
    None is no refinement."""

    qp: int = 0
    levels: Residual | None = None

    def apply(self, base: np.ndarray) -> np.ndarray:
        """The frame a decoder outputs: ``base`` ((H, W, 3) uint8, dec(q)) plus the residual."""
        return base if self.levels is None else add_residual(base, self.levels, self.qp)

    def encode(self) -> bytes:
        """The refinement's part of an I-frame's payload (empty for none)."""
        if self.levels is None:
            return b""
        coder = SymbolRangeEncoder()
        encode_qp(coder, self.qp)
        encode_residual(self.levels.dense(), coder, inter_tables()[0])
        return coder.finish()

    @staticmethod
    def decode(data: bytes, height: int, width: int, source: str) -> Refinement:
        """The refinement :meth:`encode` wrote, for a frame of ``height`` x ``width``."""
        if not data:
            return NO_REFINEMENT
        tables, models = inter_tables()
        with naming(source):
            coder = SymbolRangeDecoder(data)
            qp = decode_qp(coder, "refinement")
        return Refinement(qp, decode_residual(coder, *residual_grid(height, width), tables, models, source))


NO_REFINEMENT = Refinement()


def refine(frame: np.ndarray, base: np.ndarray, qp: int) -> Refinement:
    """The refinement of ``base`` (the I-frame's dec(q), (H, W, 3) uint8) towards ``frame`` at ``qp``:
    every 4x4 block's levels, quantized as an M-frame's are (a per-block choice by rate-distortion
    cost measured no better on bikes: the levels a block drops cost as much quality as bits)."""
    return Refinement(qp, Residual.of(residual_for(frame, base, qp)))


def join_intra(latent: bytes, refinement: bytes) -> bytes:
    """An I-frame's payload from its latent's range-coded words and its refinement's (maybe none)."""
    return LATENT_WORDS.pack(len(latent) // WORD) + latent + refinement


def split_intra(payload: bytes, source: str) -> tuple[bytes, bytes]:
    """The latent's and the refinement's parts of an I-frame's ``payload``; a length that does not fit
    is a CodecError naming ``source``."""
    if len(payload) < LATENT_WORDS.size:
        raise CodecError(f"{source}: I-frame payload of {len(payload)} bytes has no latent length")
    (words,) = LATENT_WORDS.unpack_from(payload)
    end = LATENT_WORDS.size + WORD * words
    if not words or end > len(payload):
        raise CodecError(f"{source}: I-frame latent of {words} words does not fit its payload of {len(payload)} bytes")
    return payload[LATENT_WORDS.size : end], payload[end:]
