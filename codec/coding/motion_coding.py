"""A motion field to range-coded symbols and back: each vector as its difference from the median of
its left, top and top-right neighbours' (H.264's predictor). A block whose difference is zero (half
of them on bikes) costs one binary symbol, under a probability the frame carries as one byte (an
integer, like every model here). Each component of the others is its signed bit length (0, +-1,
+-2 for 2..3, +-3 for 4..7, ...: heavy tails cost a few bits, not an escape) under the table of a
given set that codes that frame's shortest, its number coded first, then its bits below the
leading one, uniformly.

The decoder rebuilds the predictors from vectors it has decoded, block after block, so both sides
compute them from the same integers; every difference is bounded before it is used, and every
vector rebuilt is within MAX_VECTOR (a crafted payload is a CodecError, never a read out of bounds).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from codec.coding.entropy_coding import SymbolRangeDecoder, SymbolRangeEncoder, Table, bit_split
from codec.coding.motion import MAX_VECTOR, check_vectors, median_predictor
from codec.errors import CodecError, naming


def _classes(differences: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each difference's signed bit length, its bits below the leading one, and how many those are."""
    magnitude = np.abs(differences)
    nonzero = magnitude > 0
    low_bits, low = np.zeros_like(magnitude), np.zeros_like(magnitude)
    low_bits[nonzero], low[nonzero] = bit_split(magnitude[nonzero])
    return np.sign(differences) * (low_bits + nonzero), low, low_bits


def encode_motion(vectors: np.ndarray, coder: SymbolRangeEncoder, tables: Sequence[Table]) -> None:
    """Append the (rows, cols, 2) quarter-pixel ``vectors`` to ``coder``, under ``tables``."""
    differences = (vectors - median_predictor(vectors)).reshape(-1, 2).astype(np.int64)
    moved = np.abs(differences).sum(1) > 0
    coder.encode_flags(moved)
    for k in (0, 1):
        classes, low, bits = _classes(differences[moved, k])
        coder.encode_choosing(classes, tables)
        coder.encode_bits(low, bits)


def decode_motion(
    coder: SymbolRangeDecoder, rows: int, cols: int, tables: Sequence[Table], models: Sequence[Any], source: str
) -> np.ndarray:
    """The (rows, cols, 2) vectors :func:`encode_motion` appended, ``models`` being ``tables``' models."""
    differences = np.zeros((rows * cols, 2), np.int64)
    with naming(source):
        moved = coder.decode_flags(rows * cols)
        for k in (0, 1):
            classes = coder.decode_chosen(int(moved.sum()), tables, models)
            if np.abs(classes).max(initial=0) > MAX_VECTOR.bit_length() + 1:
                raise CodecError(f"a motion vector difference beyond {2 * MAX_VECTOR} quarter pixels")
            bits = np.maximum(np.abs(classes) - 1, 0)
            low = coder.decode_bits(bits)
            magnitude = np.where(classes != 0, (1 << bits) + low, 0)
            differences[moved, k] = np.sign(classes) * magnitude
    vectors = np.empty((rows, cols, 2), np.int64)
    for k in (0, 1):  # block after block, in Python integers: the median of three is the middle one
        d = differences[:, k].reshape(rows, cols).tolist()
        above = [0] * (cols + 1)  # the row above, with the zero beyond its right end
        for r in range(rows):
            row, left = [], 0
            for c in range(cols):
                left = sorted((left, above[c], above[c + 1]))[1] + d[r][c]
                row.append(left)
            vectors[r, :, k] = row
            above = [*row, 0]
    return check_vectors(vectors, rows, cols, source)
