"""Integer latents of a frame sequence to chunk payloads and back: I-frames code q in passes, each
after the first predicted from its decoded neighbours and under tables they choose (spatial
context), P-frames code q_t - q_(t-1) under tables chosen by each element's temporal context (both
in codec.coding.common.context). A pass (or a P-frame) is coded as one block per table: its symbols under
table i, all channels together, in order of i. All of it is exact integers, so the decoder's
reference and contexts equal the encoder's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from codec.coding.common.bitstream import FRAME_TYPES, I_FRAME, Chunk
from codec.coding.common.context import CONTEXTS, INTRA_PASSES, WHOLE, IntraPass, context_buckets
from codec.coding.common.entropy_coding import (
    SCALE_BINS,
    CodingTables,
    Level,
    SymbolRangeDecoder,
    SymbolRangeEncoder,
    Table,
    least_payload,
)
from codec.coding.common.intra_refinement import join_intra, split_intra
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

    if frame_type != I_FRAME:
        return least_payload(h * w * sum(cheapest(row) for row in level.inter_table))
    first, *later = _intra_passes(level)
    bits = first.size(h, w) * sum(cheapest((t,)) for t in level.intra_table)
    for k, intra_pass in enumerate(later, 1):
        bits += intra_pass.size(h, w) * sum(cheapest(tuple(row)) for row in _pass_tables(level, k).tolist())
    return least_payload(bits)


def _pass_tables(level: Level, index: int) -> np.ndarray:
    """(C, CONTEXTS): each channel's tables of I-frame pass ``index`` (>= 1), by bucket."""
    return np.asarray(level.intra_pass_table, np.int64)[:, (index - 1) * CONTEXTS : index * CONTEXTS]


def _temporal_tables(level: Level, previous_residual: np.ndarray) -> np.ndarray:
    """The table of every element of a P-frame's latent, by its temporal bucket."""
    return _by_bucket(np.asarray(level.inter_table, np.int64), context_buckets(previous_residual))


def _by_bucket(rows: np.ndarray, buckets: np.ndarray) -> np.ndarray:
    """The table of every element of a (C, ...) latent: its channel's row of ``rows`` at its bucket."""
    return np.take_along_axis(rows, buckets.reshape(len(rows), -1), 1).reshape(buckets.shape)


def _block_order(table_of: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The flat positions of the symbols whose tables are ``table_of`` (1-D), grouped by table (the
    smallest index first, flat order within each: the order they are coded in), the tables in that
    order, and how many symbols each holds."""
    order = np.argsort(table_of.astype(np.uint8), kind="stable")  # a radix sort: indices < SCALE_BINS
    counts = np.bincount(table_of, minlength=SCALE_BINS)
    tables = np.flatnonzero(counts)
    return order, tables, counts[tables]


def _intra_passes(level: Level) -> tuple[IntraPass, ...]:
    """An I-frame's passes: INTRA_PASSES, or one of everything for a bundle without pass tables."""
    return INTRA_PASSES if level.intra_pass_table else (WHOLE,)


def _intra_context(level: Level, centred: np.ndarray, index: int) -> tuple[np.ndarray, np.ndarray]:
    """(C, n) each: the table and prediction of every element of I-frame pass ``index``, from
    ``centred`` (which holds at least the earlier passes)."""
    intra_pass = _intra_passes(level)[index]
    if index == 0:
        table_of = np.asarray(level.intra_table, np.int64)[:, None]
        return np.broadcast_to(table_of, (len(centred), intra_pass.size(*centred.shape[1:]))), np.zeros((), np.int64)
    buckets, prediction = intra_pass.context(centred)
    return _by_bucket(_pass_tables(level, index), buckets), prediction


def _encode_grouped(coder: SymbolRangeEncoder, models: _Models, symbols: np.ndarray, table_of: np.ndarray) -> None:
    """The 1-D ``symbols``, each under its table in ``table_of``, one block per table."""
    order, tables, counts = _block_order(table_of)
    for table_index, start, n in zip(tables, np.cumsum(counts) - counts, counts, strict=True):
        coder.encode_block(symbols[order[start : start + n]], *models.get(int(table_index)))


def _decode_grouped(coder: SymbolRangeDecoder, models: _Models, table_of: np.ndarray) -> np.ndarray:
    """The 1-D symbols :func:`_encode_grouped` coded under ``table_of``."""
    order, tables, counts = _block_order(table_of)
    out = np.zeros(len(table_of), np.int64)
    for table_index, start, n in zip(tables, np.cumsum(counts) - counts, counts, strict=True):
        out[order[start : start + n]] = coder.decode_block(int(n), *models.get(int(table_index)))
    return out


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

    def pack(self, q: np.ndarray, index: int, frame_type: int, check: int, refinement: bytes = b"") -> Chunk:
        """Frame ``index``'s latent ``q`` as a chunk of ``frame_type`` carrying the reconstruction
        ``check`` (an I-frame's with its ``refinement``, codec.coding.common.intra_refinement); ``q``
        becomes the next reference."""
        if frame_type != I_FRAME and self.previous is None:
            raise CodecError(f"frame {index}: a P-frame needs a previous frame")
        q = q.astype(np.int64)
        coder = SymbolRangeEncoder()
        if frame_type == I_FRAME:
            centred = q - np.asarray(self.level.intra_centre, np.int64)[:, None, None]
            for k, intra_pass in enumerate(_intra_passes(self.level)):
                table_of, prediction = _intra_context(self.level, centred, k)
                _encode_grouped(coder, self.models, (intra_pass.take(centred) - prediction).ravel(), table_of.ravel())
            self.previous_residual = np.zeros_like(q)
        else:
            residual = q - self.previous
            table_of = _temporal_tables(self.level, self.previous_residual)
            _encode_grouped(coder, self.models, residual.ravel(), table_of.ravel())
            self.previous_residual = residual
        self.previous = q
        payload = coder.finish()
        return Chunk(index, frame_type, check, join_intra(payload, refinement) if frame_type == I_FRAME else payload)


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
        """The latent of ``chunk`` (of an I-frame, without its refinement), which becomes the next
        reference; a payload that cannot hold it is a CodecError."""
        if chunk.frame_type == I_FRAME:
            q = self.unpack_intra(chunk)
            self.follow_intra(q)
            return q
        if self.previous is None:
            raise CodecError(f"frame {chunk.index}: P-frame without a decoded reference frame")
        coder = self._coder(chunk, chunk.payload)
        with naming(f"frame {chunk.index}"):
            table_of = _temporal_tables(self.level, self.previous_residual)
            residual = _decode_grouped(coder, self.models, table_of.ravel()).reshape(self.shape)
        q = residual + self.previous
        self.previous, self.previous_residual = q, residual
        return q

    def unpack_intra(self, chunk: Chunk) -> np.ndarray:
        """The latent of the I-frame ``chunk``, leaving the reference as it is (what a decoder
        working ahead calls; :meth:`follow_intra` makes it the reference when its turn comes)."""
        payload, _ = split_intra(chunk.payload, f"frame {chunk.index}")
        coder = self._coder(chunk, payload)
        centred = np.zeros(self.shape, np.int64)
        with naming(f"frame {chunk.index}"):
            for k, intra_pass in enumerate(_intra_passes(self.level)):
                table_of, prediction = _intra_context(self.level, centred, k)
                symbols = _decode_grouped(coder, self.models, table_of.ravel()).reshape(table_of.shape)
                intra_pass.put(centred, symbols + prediction)
        return centred + np.asarray(self.level.intra_centre, np.int64)[:, None, None]

    def follow_intra(self, q: np.ndarray) -> None:
        """Make the I-frame latent ``q`` the reference of the P-frames after it."""
        self.previous, self.previous_residual = q, np.zeros_like(q)

    def _coder(self, chunk: Chunk, payload: bytes) -> SymbolRangeDecoder:
        """A decoder of ``payload``, the latent of ``chunk``; one too short to hold the latent (the
        coder would read on past its end, not fail) is a CodecError."""
        c, h, w = self.shape
        least = self.min_payload[chunk.frame_type]
        if len(payload) < least:
            raise CodecError(
                f"frame {chunk.index}: latent of {len(payload)} bytes is too short for its "
                f"{c}x{h}x{w} values (at least {least} bytes)"
            )
        return SymbolRangeDecoder(payload)
