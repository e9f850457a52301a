"""Integer latents of a frame sequence to chunk payloads and back: I-frames code q in two
checkerboard halves, the second under tables chosen by its decoded neighbours (spatial context),
P-frames code q_t - q_(t-1) under tables chosen by each element's temporal context (both in
codec.coding.context). All of it is exact integers, so the decoder's reference and contexts equal
the encoder's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from codec.coding.bitstream import FRAME_TYPES, I_FRAME, Chunk
from codec.coding.context import anchors, bucket_order, context_buckets, spatial_context
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


def _min_payload(tables: CodingTables, level: Level, frame_type: int, h: int, w: int) -> int:
    """The fewest bytes that can hold a frame of this type with h x w symbols per channel: what they
    cost if every one were the likeliest of the cheapest table it could be under."""

    def cheapest(row: tuple[int, ...]) -> float:
        return min(tables.tables[t].min_bits for t in row)

    if frame_type == I_FRAME:
        first = int(anchors(h, w).sum()) if level.intra_context_table else h * w
        rows = zip(level.intra_table, level.intra_context_table or [()] * len(level.intra_table), strict=True)
        bits = sum(first * cheapest((t,)) + (h * w - first) * cheapest(row or (t,)) for t, row in rows)
    else:
        bits = h * w * sum(cheapest(row) for row in level.inter_table)
    return least_payload(bits)


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
            centred = q - np.asarray(self.level.intra_centre, np.int64)[:, None, None]
            contexts = self.level.intra_context_table
            anchor = anchors(*q.shape[1:]) if contexts else np.ones(q.shape[1:], bool)
            for c, table_index in enumerate(self.level.intra_table):
                coder.encode_block(centred[c][anchor], *self.models.get(table_index))
            if contexts:  # the other half, in its spatial contexts
                buckets, prediction = spatial_context(centred * anchor)
                self._encode_buckets(coder, centred - prediction, buckets, contexts, np.flatnonzero(~anchor))
            self.previous_residual = np.zeros_like(q)
        else:
            residual = q - self.previous
            buckets = context_buckets(self.previous_residual)
            self._encode_buckets(coder, residual, buckets, self.level.inter_table, np.arange(q[0].size))
            self.previous_residual = residual
        self.previous = q
        return Chunk(index, frame_type, check, coder.finish())

    def _encode_buckets(
        self,
        coder: SymbolRangeEncoder,
        symbols: np.ndarray,
        buckets: np.ndarray,
        tables: tuple[tuple[int, ...], ...],
        positions: np.ndarray,
    ) -> None:
        """The (C, h, w) ``symbols`` at the flat ``positions``, one block per channel and bucket."""
        for c, row in enumerate(tables):
            order, counts = bucket_order(buckets[c], positions)
            blocks = np.split(symbols[c].ravel()[order], np.cumsum(counts)[:-1])
            for block, table_index in zip(blocks, row, strict=True):
                coder.encode_block(block, *self.models.get(table_index))


class LatentUnpacker:
    """Unpacks chunks back into integer latents of shape (C, h, w); keeps the previous latent for P-frames."""

    def __init__(self, tables: CodingTables, quality: int, latent_shape: tuple[int, int, int]) -> None:
        self.level = _level(tables, quality)
        if len(self.level.intra_table) != latent_shape[0]:
            raise CodecError("the entropy tables do not match the decoder's latent channels")
        self.models = _Models(tables)
        self.shape = latent_shape
        _, h, w = latent_shape
        self.min_payload = {t: _min_payload(tables, self.level, t, h, w) for t in FRAME_TYPES}
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
                contexts = self.level.intra_context_table
                anchor = anchors(h, w) if contexts else np.ones((h, w), bool)
                centred = np.zeros((c, h, w), np.int64)
                for channel, table_index in enumerate(self.level.intra_table):
                    centred[channel][anchor] = coder.decode_block(int(anchor.sum()), *self.models.get(table_index))
                if contexts:
                    buckets, prediction = spatial_context(centred)
                    centred += self._decode_buckets(coder, buckets, contexts, np.flatnonzero(~anchor)) + np.where(
                        anchor, 0, prediction
                    )
                q = centred + np.asarray(self.level.intra_centre, np.int64)[:, None, None]
                residual = np.zeros_like(q)
            else:
                buckets = context_buckets(self.previous_residual)
                residual = self._decode_buckets(coder, buckets, self.level.inter_table, np.arange(h * w))
                q = residual + self.previous
        self.previous, self.previous_residual = q, residual
        return q

    def _decode_buckets(
        self, coder: SymbolRangeDecoder, buckets: np.ndarray, tables: tuple[tuple[int, ...], ...], positions: np.ndarray
    ) -> np.ndarray:
        """(C, h, w): the symbols at the flat ``positions``, one block per channel and bucket, zeros elsewhere."""
        out = np.zeros((len(tables), *buckets.shape[1:]), np.int64)
        for c, row in enumerate(tables):
            order, counts = bucket_order(buckets[c], positions)
            blocks = [coder.decode_block(int(n), *self.models.get(t)) for n, t in zip(counts, row, strict=True)]
            out[c].ravel()[order] = np.concatenate(blocks)
        return out
