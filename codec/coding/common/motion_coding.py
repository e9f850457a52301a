"""A motion field to range-coded symbols and back, in two sizes of block: the field has one vector per
16x16 block, and each 2x2 of those blocks (a 32x32 block) either moves as one or is split.

The payload codes the coarse field first, one vector per 32x32 block, each as its difference from
the median of its left, top and top-right neighbours' (H.264's predictor); then one binary symbol
per 32x32 block, split or not; then, for each 16x16 block of a split one, its difference from its
32x32 block's vector. A split block's coarse vector is the encoder's choice (this encoder takes the
lower median of its four, so the four differences are small).

A set of differences is coded as: per difference, whether it is zero (one binary symbol, under one
of the coder's fixed integer probabilities, named by the frame); then each component of the others
as its signed bit length (0, +-1, +-2 for 2..3, +-3 for 4..7, ...: heavy tails cost a few bits, not
an escape) under the table of a given set that codes that frame's shortest, its number coded first,
then its bits below the leading one, uniformly.

The decoder rebuilds the predictors from vectors it has decoded, block after block, so both sides
compute them from the same integers; every difference is bounded before it is used, and every
vector rebuilt is within MAX_VECTOR (a crafted payload is a CodecError, never a read out of bounds).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from codec.coding import kernels
from codec.coding.common.entropy_coding import SymbolRangeDecoder, SymbolRangeEncoder, Table, bit_split
from codec.coding.common.motion import MAX_VECTOR, check_vectors, median_predictor
from codec.errors import CodecError, naming

SPLIT = 2  # a coarse block is SPLIT x SPLIT blocks of the field


def coarse_grid(rows: int, cols: int) -> tuple[int, int]:
    """Rows and columns of coarse blocks over a field of ``rows`` x ``cols`` blocks."""
    return -(-rows // SPLIT), -(-cols // SPLIT)


def expand(coarse: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Each coarse block's value on each of its blocks: a (rows, cols, ...) array."""
    return np.repeat(np.repeat(coarse, SPLIT, 0), SPLIT, 1)[:rows, :cols]


def children(vectors: np.ndarray) -> np.ndarray:
    """(coarse rows, coarse cols, SPLIT**2, 2): each coarse block's vectors (the field extended by its
    edge where it does not fill the last coarse blocks)."""
    rows, cols = vectors.shape[:2]
    r, c = coarse_grid(rows, cols)
    padded = np.pad(vectors, ((0, r * SPLIT - rows), (0, c * SPLIT - cols), (0, 0)), mode="edge")
    return padded.reshape(r, SPLIT, c, SPLIT, 2).transpose(0, 2, 1, 3, 4).reshape(r, c, SPLIT * SPLIT, 2)


def coarse_vectors(vectors: np.ndarray, split: np.ndarray) -> np.ndarray:
    """The coarse field this encoder codes for ``vectors`` ((rows, cols, 2)): an unsplit block's one
    vector, a split block's lower median of its vectors (per component)."""
    kids = children(vectors)
    return np.where(split[..., None], np.sort(kids, 2)[:, :, (SPLIT * SPLIT - 1) // 2], kids[:, :, 0])


def _classes(differences: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each difference's signed bit length, its bits below the leading one, and how many those are."""
    magnitude = np.abs(differences)
    nonzero = magnitude > 0
    low_bits, low = np.zeros_like(magnitude), np.zeros_like(magnitude)
    low_bits[nonzero], low[nonzero] = bit_split(magnitude[nonzero])
    return np.sign(differences) * (low_bits + nonzero), low, low_bits


def _encode_differences(differences: np.ndarray, coder: SymbolRangeEncoder, tables: Sequence[Table]) -> None:
    differences = differences.reshape(-1, 2).astype(np.int64)
    moved = np.abs(differences).sum(1) > 0
    coder.encode_flags(moved)
    for k in (0, 1):
        classes, low, bits = _classes(differences[moved, k])
        coder.encode_choosing(classes, tables)
        coder.encode_bits(low, bits)


def _decode_differences(
    coder: SymbolRangeDecoder, count: int, tables: Sequence[Table], models: Sequence[Any]
) -> np.ndarray:
    differences = np.zeros((count, 2), np.int64)
    moved = coder.decode_flags(count)
    for k in (0, 1):
        classes = coder.decode_chosen(int(moved.sum()), tables, models)
        if np.abs(classes).max(initial=0) > MAX_VECTOR.bit_length() + 1:
            raise CodecError(f"a motion vector difference beyond {2 * MAX_VECTOR} quarter pixels")
        bits = np.maximum(np.abs(classes) - 1, 0)
        low = coder.decode_bits(bits)
        magnitude = np.where(classes != 0, (1 << bits) + low, 0)
        differences[moved, k] = np.sign(classes) * magnitude
    return differences


def encode_motion(vectors: np.ndarray, split: np.ndarray, coder: SymbolRangeEncoder, tables: Sequence[Table]) -> None:
    """Append the (rows, cols, 2) quarter-pixel ``vectors`` to ``coder``, under ``tables``; ``split``
    ((coarse rows, coarse cols) bool) says which coarse blocks do not move as one (the vectors of
    the others must be equal)."""
    rows, cols = vectors.shape[:2]
    coarse = coarse_vectors(vectors, split)
    inside = expand(split, rows, cols)
    refinements = vectors - expand(coarse, rows, cols)
    if refinements[~inside].any():
        raise ValueError("an unsplit block's vectors differ")
    _encode_differences(coarse - median_predictor(coarse), coder, tables)
    coder.encode_flags(split.ravel())
    _encode_differences(refinements[inside], coder, tables)


def decode_motion(
    coder: SymbolRangeDecoder, rows: int, cols: int, tables: Sequence[Table], models: Sequence[Any], source: str
) -> np.ndarray:
    """The (rows, cols, 2) vectors :func:`encode_motion` appended, ``models`` being ``tables``' models."""
    r, c = coarse_grid(rows, cols)
    with naming(source):
        differences = _decode_differences(coder, r * c, tables, models)
    coarse = check_vectors(kernels.from_medians(differences, r, c), r, c, source)
    with naming(source):
        split = coder.decode_flags(r * c).reshape(r, c)
        inside = expand(split, rows, cols)
        vectors = expand(coarse, rows, cols).astype(np.int64)
        vectors[inside] += _decode_differences(coder, int(inside.sum()), tables, models)
    return check_vectors(vectors, rows, cols, source)
