"""A frame's residual levels (4x4 blocks of codec.coding.common.transform, for Y, Co and Cg) to range-coded
symbols and back.

Per component, each 16x16 square of pixels (4x4 blocks) first says whether any of its blocks holds
a level, then each block of the squares that do says whether it does: first the blocks on the even
squares of a checkerboard, then the odd ones, split by how many of their four (even) neighbours
hold levels (none, one or two, three or four), as CABAC conditions a block's flag on its neighbours'
(binary symbols, each set under a probability the frame names in 5 bits; most blocks of a
well-predicted frame hold none). The levels of the blocks that do follow in H.264's zigzag order,
grouped by position (the DC, the next two, the next three, the ten others: on bikes 6% fewer bytes
of levels than three groups), and, if the component's first bit says so (the encoder's choice:
whichever is shorter), within a group by context: how many of the block's four neighbours hold
levels (0-1, 2-3, 4) and how large its levels of the earlier groups are (sum of magnitudes 0, 1-2,
3 or more); each such set under the table of a given set that codes the frame's shortest, its
number coded first (an empty set costs nothing). A decoded level beyond MAX_LEVEL
is refused: no level a 4x4 transform of 8-bit residuals quantizes to comes near it, and it keeps
the integer inverse within 32 bits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from codec.coding.common.entropy_coding import SymbolRangeDecoder, SymbolRangeEncoder, Table, choosing_bits
from codec.errors import CodecError, naming

ZIGZAG = np.array([0, 1, 4, 8, 5, 2, 3, 6, 9, 12, 13, 10, 7, 11, 14, 15])  # raster index of each scan position
GROUPS = (slice(0, 1), slice(1, 3), slice(3, 6), slice(6, 16))  # scan positions coded under one table each
MAX_LEVEL = 1 << 12
GROUP_SIDE = 4  # 4x4 blocks under one group flag: a 16x16 square of pixels


def _in_coded_groups(group_flags: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """(rows * cols,) bool: the 4x4 blocks, in raster order, whose group has a flag set."""
    grid = np.repeat(np.repeat(group_flags, GROUP_SIDE, 0), GROUP_SIDE, 1)
    return grid[:rows, :cols].ravel()


def _groups(coded: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Per GROUP_SIDE x GROUP_SIDE group of blocks, whether any of ``coded`` ((rows * cols,) bool) is set."""
    side = GROUP_SIDE
    padded = np.zeros((-(-rows // side) * side, -(-cols // side) * side), bool)
    padded[:rows, :cols] = coded.reshape(rows, cols)
    return padded.reshape(padded.shape[0] // side, side, padded.shape[1] // side, side).any((1, 3))


def _neighbours_set(known: np.ndarray) -> np.ndarray:
    """Per 4x4 block, how many of its four neighbours (none beyond the frame) ``known`` ((rows, cols)
    bool) has set."""
    p = np.pad(known, 1).astype(np.int8)
    return p[1:-1, :-2] + p[1:-1, 2:] + p[:-2, 1:-1] + p[2:, 1:-1]


def _flag_sets(inside: np.ndarray, known: np.ndarray | None) -> list[np.ndarray]:
    """The masks of the 4x4 blocks whose flags are coded together, in order: the even squares of the
    checkerboard within ``inside``, then the odd ones by context (given the even ones, ``known``)."""
    rows, cols = inside.shape
    even = (np.arange(rows)[:, None] + np.arange(cols)) % 2 == 0
    if known is None:
        return [inside & even]
    context = np.digitize(_neighbours_set(known & even), (1, 3))  # none, one or two, three or four
    return [inside & ~even & (context == c) for c in range(3)]


@dataclass(frozen=True)
class Residual:
    """A frame's residual levels kept sparse (most 4x4 blocks of a well-predicted frame hold none):
    the blocks of its (rows, cols) grid that may hold levels, as distinct ascending raster indices,
    and their levels."""

    rows: int
    cols: int
    blocks: np.ndarray  # (n,) int64
    levels: np.ndarray  # (n, 3, 4, 4) int32

    @classmethod
    def of(cls, levels: np.ndarray) -> Residual:
        """The blocks of the dense ``levels`` ((rows, cols, 3, 4, 4) int) that hold any level."""
        rows, cols = levels.shape[:2]
        flat = levels.reshape(rows * cols, 3, 4, 4)
        blocks = np.flatnonzero(flat.reshape(rows * cols, 48).any(1))
        return cls(rows, cols, blocks, flat[blocks].astype(np.int32))

    def dense(self) -> np.ndarray:
        """The (rows, cols, 3, 4, 4) int32 levels, zero in the blocks not held."""
        out = np.zeros((self.rows * self.cols, 3, 4, 4), np.int32)
        out[self.blocks] = self.levels
        return out.reshape(self.rows, self.cols, 3, 4, 4)


LEVEL_CONTEXTS = 9
_EARLIER_BUCKET = np.array([0, 1, 1, 2])  # summed magnitudes 0, 1-2, 3 or more


def _near(grid: np.ndarray, split: bool) -> np.ndarray | None:
    """Per coded 4x4 block (raster order) of ``grid`` ((rows, cols) bool), how many of its four
    neighbours are coded, as 0 (0-1), 1 (2-3) or 2 (4); None when the levels are not split."""
    return np.digitize(_neighbours_set(grid)[grid], (2, 4)) if split else None


def _context_sets(near: np.ndarray | None, earlier: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The coded blocks in the order their levels of the next group are coded (by context, then
    raster order) and how many fall in each context; the context is the neighbours' (``near``) and
    the summed magnitudes ``earlier`` of the block's levels in the earlier groups, all 0 if
    ``near`` is None."""
    if near is None:
        return np.arange(len(earlier)), np.array([len(earlier)])
    context = _EARLIER_BUCKET[np.minimum(earlier, 3)] * 3 + near
    return np.argsort(context.astype(np.uint8), kind="stable"), np.bincount(context, minlength=LEVEL_CONTEXTS)


def _level_sets(scans: np.ndarray, grid: np.ndarray, split: bool) -> list[np.ndarray]:
    """One component's levels (``scans``, (n, 16) in zigzag order, of the blocks ``grid`` says are
    coded), as the sets they are coded in: by group, then by context (only if ``split``)."""
    sets, earlier, near = [], np.zeros(len(scans), np.int64), _near(grid, split)
    for group in GROUPS:
        levels = scans[:, group]
        order, counts = _context_sets(near, earlier)
        starts = np.cumsum(counts) - counts
        sets += [levels[order[start : start + n]].ravel() for start, n in zip(starts, counts, strict=True) if n]
        earlier += np.abs(levels).sum(1)
    return sets


def encode_levels(scans: np.ndarray, grid: np.ndarray, coder: SymbolRangeEncoder, tables: Sequence[Table]) -> None:
    """Append one component's levels (``scans``, (n, 16) in zigzag order, of the blocks ``grid``
    ((rows, cols) bool) says are coded, in raster order): one bit, whether they are split by
    context (whichever codes them shorter), then each set under the table that codes it shortest."""
    options = [_level_sets(scans, grid, split) for split in (False, True)]
    costs = [sum(choosing_bits(levels, tables) for levels in sets) for sets in options]
    split = int(costs[1] < costs[0])
    coder.encode_bits(np.array([split]), np.array([1]))
    for levels in options[split]:
        coder.encode_choosing(levels, tables)


def encode_residual(levels: np.ndarray, coder: SymbolRangeEncoder, tables: Sequence[Table]) -> None:
    """Append ``levels`` ((rows, cols, 3, 4, 4) int) to ``coder``, under ``tables``."""
    rows, cols = levels.shape[:2]
    scans = levels.reshape(-1, 3, 16)[:, :, ZIGZAG].astype(np.int64)
    for k in range(3):
        scan = scans[:, k]
        coded = np.abs(scan).sum(1) > 0
        groups = _groups(coded, rows, cols)
        coder.encode_flags(groups.ravel())
        inside = _in_coded_groups(groups, rows, cols).reshape(rows, cols)
        grid = coded.reshape(rows, cols)
        for mask in _flag_sets(inside, None) + _flag_sets(inside, grid):
            coder.encode_flags(grid[mask])
        encode_levels(scan[coded], grid, coder, tables)


def decode_residual(
    coder: SymbolRangeDecoder, rows: int, cols: int, tables: Sequence[Table], models: Sequence[Any], source: str
) -> Residual:
    """The levels :func:`encode_residual` appended, for a (rows, cols) grid of 4x4 blocks."""
    coded_blocks, scans = [], []  # per component: its coded blocks and their levels in zigzag order
    with naming(source):
        for _ in range(3):
            shape = (-(-rows // GROUP_SIDE), -(-cols // GROUP_SIDE))
            groups = coder.decode_flags(shape[0] * shape[1]).reshape(shape)
            inside = _in_coded_groups(groups, rows, cols).reshape(rows, cols)
            grid = np.zeros((rows, cols), bool)
            for known in (None, grid):
                for mask in _flag_sets(inside, known):
                    grid[mask] = coder.decode_flags(int(mask.sum()))
            coded = np.flatnonzero(grid)
            scan = np.zeros((len(coded), 16), np.int32)
            earlier = np.zeros(len(coded), np.int64)
            near = _near(grid, bool(coder.decode_bits(np.array([1]))[0]))
            for group in GROUPS:
                width = len(range(16)[group])
                order, counts = _context_sets(near, earlier)
                levels = np.zeros((len(coded), width), np.int64)
                for start, n in zip(np.cumsum(counts) - counts, counts, strict=True):
                    if n:
                        symbols = coder.decode_chosen(int(n) * width, tables, models)
                        if np.abs(symbols).max(initial=0) > MAX_LEVEL:
                            raise CodecError(f"a residual level beyond {MAX_LEVEL}")
                        levels[order[start : start + n]] = symbols.reshape(n, width)
                scan[:, group] = levels
                earlier += np.abs(levels).sum(1)
            coded_blocks.append(coded)
            scans.append(scan)
    blocks = np.unique(np.concatenate(coded_blocks))
    raster = np.zeros((len(blocks), 3, 16), np.int32)
    for k, (coded, scan) in enumerate(zip(coded_blocks, scans, strict=True)):
        raster[np.searchsorted(blocks, coded)[:, None], k, ZIGZAG] = scan  # each level at its raster position
    return Residual(rows, cols, blocks, raster.reshape(-1, 3, 4, 4))
