"""A frame's residual levels (4x4 blocks of codec.coding.transform, for Y, Co and Cg) to range-coded
symbols and back.

Per component, each block first says whether it holds any level (one binary symbol, under a
probability the frame carries as one byte: most blocks of a well-predicted frame hold none); the
levels of the blocks that do follow in H.264's zigzag order, grouped by position (the DC, the five
lowest frequencies, the ten others), each group under the table of a given set that codes the
frame's shortest, its number coded first. A decoded level beyond MAX_LEVEL is refused: no level a
4x4 transform of 8-bit residuals quantizes to comes near it, and it keeps the integer inverse within
32 bits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from codec.coding.entropy_coding import SymbolRangeDecoder, SymbolRangeEncoder, Table
from codec.errors import CodecError, naming

ZIGZAG = np.array([0, 1, 4, 8, 5, 2, 3, 6, 9, 12, 13, 10, 7, 11, 14, 15])  # raster index of each scan position
GROUPS = (slice(0, 1), slice(1, 6), slice(6, 16))  # scan positions coded under one table each
MAX_LEVEL = 1 << 12


def encode_residual(levels: np.ndarray, coder: SymbolRangeEncoder, tables: Sequence[Table]) -> None:
    """Append ``levels`` ((rows, cols, 3, 4, 4) int) to ``coder``, under ``tables``."""
    scans = levels.reshape(-1, 3, 16)[:, :, ZIGZAG].astype(np.int64)
    for k in range(3):
        scan = scans[:, k]
        coded = np.abs(scan).sum(1) > 0
        coder.encode_flags(coded)
        for group in GROUPS:
            coder.encode_choosing(scan[coded, group].ravel(), tables)


def decode_residual(
    coder: SymbolRangeDecoder, rows: int, cols: int, tables: Sequence[Table], models: Sequence[Any], source: str
) -> np.ndarray:
    """The (rows, cols, 3, 4, 4) int32 levels :func:`encode_residual` appended."""
    scans = np.zeros((rows * cols, 3, 16), np.int32)
    with naming(source):
        for k in range(3):
            coded = coder.decode_flags(rows * cols)
            n = int(coded.sum())
            for group in GROUPS:
                width = len(range(16)[group])
                symbols = coder.decode_chosen(n * width, tables, models)
                if np.abs(symbols).max(initial=0) > MAX_LEVEL:
                    raise CodecError(f"a residual level beyond {MAX_LEVEL}")
                scans[coded, k, group] = symbols.reshape(n, width)
    raster = np.empty_like(scans)
    raster[:, :, ZIGZAG] = scans
    return raster.reshape(rows, cols, 3, 4, 4)
