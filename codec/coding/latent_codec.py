"""Integer latents of a frame sequence to chunk payloads and back: I-frames code q, P-frames code
q_t - q_(t-1) under tables chosen by each element's temporal context (codec.coding.context). All
of it is exact integers, so the decoder's reference and contexts equal the encoder's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from codec.coding.bitstream import FRAME_TYPES, I_FRAME, Chunk
from codec.coding.context import context_buckets
from codec.coding.entropy_coding import (
    CodingTables,
    Level,
    SymbolRangeDecoder,
    SymbolRangeEncoder,
    Table,
    least_payload,
)
from codec.errors import CodecError, naming


class _Models:
    """constriction models built once per table, from the bundle's integers."""

    def __init__(self, tables: CodingTables) -> None:
        self.tables = tables
        self._cache: dict[int, Any] = {}

    def get(self, index: int) -> tuple[Table, Any]:
        table = self.tables.tables[index]
        if index not in self._cache:
            self._cache[index] = table.model()
        return table, self._cache[index]


def _min_payload(tables: CodingTables, level: Level, frame_type: int, symbols: int) -> int:
    """The fewest bytes that can hold ``symbols`` symbols per channel of a frame of this type: what
    they cost if every one were the likeliest of the cheapest table it could be under."""
    rows = [(t,) for t in level.intra_table] if frame_type == I_FRAME else level.inter_table
    return least_payload(symbols * sum(min(tables.tables[t].min_bits for t in row) for row in rows))


def _level(tables: CodingTables, quality: int) -> Level:
    if not 0 <= quality < len(tables.levels):
        raise CodecError(f"quality {quality} is not one of the bundle's levels 0..{len(tables.levels) - 1}")
    return tables.levels[quality]


class LatentPacker:
    """Packs each frame's integer latent into a chunk whose payload is its range-coded symbols;
    keeps the previous latent for P-frames."""

    def __init__(self, tables: CodingTables, quality: int) -> None:
        self.level = _level(tables, quality)
        self.models = _Models(tables)
        self.previous: np.ndarray | None = None
        self.previous_residual: np.ndarray | None = None

    def pack(self, q: np.ndarray, index: int, frame_type: int, check: int) -> Chunk:
        """Frame ``index``'s latent ``q`` as a chunk of ``frame_type`` carrying the reconstruction
        ``check``; ``q`` becomes the next reference."""
        if frame_type != I_FRAME and self.previous is None:
            raise CodecError(f"frame {index}: a P-frame needs a previous frame")
        q = q.astype(np.int64)
        coder = SymbolRangeEncoder()
        if frame_type == I_FRAME:
            residual = q - np.asarray(self.level.intra_centre, np.int64)[:, None, None]
            for c, table_index in enumerate(self.level.intra_table):
                coder.encode_block(residual[c], *self.models.get(table_index))
            self.previous_residual = np.zeros_like(q)
        else:
            residual = q - self.previous
            buckets = context_buckets(self.previous_residual)
            for c, row in enumerate(self.level.inter_table):
                for bucket, table_index in enumerate(row):
                    coder.encode_block(residual[c][buckets[c] == bucket], *self.models.get(table_index))
            self.previous_residual = residual
        self.previous = q
        return Chunk(index, frame_type, check, coder.finish())


class LatentUnpacker:
    """Unpacks chunks back into integer latents of shape (C, h, w); keeps the previous latent for P-frames."""

    def __init__(self, tables: CodingTables, quality: int, latent_shape: tuple[int, int, int]) -> None:
        self.level = _level(tables, quality)
        if len(self.level.intra_table) != latent_shape[0]:
            raise CodecError("the entropy tables do not match the decoder's latent channels")
        self.models = _Models(tables)
        self.shape = latent_shape
        _, h, w = latent_shape
        self.min_payload = {t: _min_payload(tables, self.level, t, h * w) for t in FRAME_TYPES}
        self.previous: np.ndarray | None = None
        self.previous_residual: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the reference (after damage): only an I-frame can be decoded next."""
        self.previous = self.previous_residual = None

    def unpack(self, chunk: Chunk) -> np.ndarray:
        """The latent of ``chunk``, which becomes the next reference; a payload that cannot hold it is a CodecError."""
        if chunk.frame_type != I_FRAME and self.previous is None:
            raise CodecError(f"frame {chunk.index}: P-frame without a decoded reference frame")
        c, h, w = self.shape
        least = self.min_payload[chunk.frame_type]
        if len(chunk.payload) < least:  # the coder would read on past the end, not fail
            raise CodecError(
                f"frame {chunk.index}: payload of {len(chunk.payload)} bytes is too short for its "
                f"{c}x{h}x{w} latent (at least {least} bytes)"
            )
        coder = SymbolRangeDecoder(chunk.payload)
        with naming(f"frame {chunk.index}"):
            if chunk.frame_type == I_FRAME:
                residual = np.stack(
                    [coder.decode_block(h * w, *self.models.get(t)).reshape(h, w) for t in self.level.intra_table]
                )
                q = residual + np.asarray(self.level.intra_centre, np.int64)[:, None, None]
                residual = np.zeros_like(q)
            else:
                buckets = context_buckets(self.previous_residual)
                residual = np.zeros((c, h, w), np.int64)
                for channel, row in enumerate(self.level.inter_table):
                    for bucket, table_index in enumerate(row):
                        where = buckets[channel] == bucket
                        residual[channel][where] = coder.decode_block(int(where.sum()), *self.models.get(table_index))
                q = residual + self.previous
        self.previous, self.previous_residual = q, residual
        return q
