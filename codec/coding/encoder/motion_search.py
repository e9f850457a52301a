"""Rate-constrained block motion search, encoder side: for each block of a frame, the vector into
the previous decoded frame (a :class:`~codec.coding.common.motion.Reference`) of least cost = SAD +
lambda x the vector's bits, as x264's search prices its vectors.

Distortion is the SAD of a luma proxy (R + 2G + B, integers). The search is coarse to fine, every
stage vectorised over all blocks at once: an exhaustive search of a 4x downsampled frame within
``reach`` pixels, then full pixels within 2 of that and of the zero vector, then the eight half-pixel
and the eight quarter-pixel neighbours of the best. A vector's bits are estimated as signed
exponential-Golomb lengths of its difference from the median of the left, top and top-right
blocks' vectors of the stage before (the predictor a coder would use), so a field that moves as
one costs little.
"""

from __future__ import annotations

import numpy as np

from codec.coding import kernels
from codec.coding.common.motion import MAX_VECTOR, QPEL, Reference, median_predictor
from codec.coding.common.motion_coding import SPLIT, children, coarse_grid, coarse_vectors, expand
from codec.coding.kernels.reference import luma

COARSE = 4  # downsampling of the coarse stage
DIAMOND = np.array([(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)])  # a vector and its four nearest steps


def vector_bits(difference: np.ndarray) -> np.ndarray:
    """Signed exp-Golomb bits of each component of ``difference`` (quarter pixels), summed over the last axis."""
    code = 2 * np.abs(difference) - (difference > 0)  # 0, 1, -1, 2, -2 ... -> 0, 1, 2, 3, 4 ...
    return (2 * np.floor(np.log2(code + 1)) + 1).sum(-1)


def _neighbours(vectors: np.ndarray) -> np.ndarray:
    """(rows, cols, 4, 2): each block's left, right, top and bottom neighbours' vectors (its own at the edges)."""
    p = np.pad(vectors, ((1, 1), (1, 1), (0, 0)), mode="edge")
    return np.stack([p[1:-1, :-2], p[1:-1, 2:], p[:-2, 1:-1], p[2:, 1:-1]], 2)


def _padded(frame: np.ndarray, reference: Reference) -> np.ndarray:
    """``frame`` extended by its edges to whole blocks of ``reference``."""
    h, w = frame.shape[:2]
    pad = ((0, reference.rows * reference.block - h), (0, reference.cols * reference.block - w), (0, 0))
    return np.pad(frame, pad, mode="edge")


def search(
    frame: np.ndarray,
    reference: Reference,
    lam: float,
    reach: int = 32,
    precision: int = 2,
    start: np.ndarray | None = None,
) -> np.ndarray:
    """The (rows, cols, 2) quarter-pixel vectors, one per block of ``reference.block``, that predict
    ``frame`` (H, W, 3 uint8) from ``reference`` at least SAD + ``lam`` x bits; within ``reach``
    pixels (at most MAX_VECTOR) of the coarse stage, 2 pixels and a sub-pixel step beyond it.
    ``precision`` 0, 1 or 2 stops at whole, half or quarter pixels. ``start`` (rows, cols, 2), a
    field found with larger blocks, takes the coarse stage's place."""
    rows, cols = reference.rows, reference.cols
    reach = min(reach, MAX_VECTOR // QPEL - 3)
    padded = _padded(frame, reference)
    current = luma(padded)
    by, bx = np.divmod(np.arange(rows * cols), cols)

    def best(candidates: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        candidates = np.clip(candidates.reshape(rows * cols, -1, 2), -MAX_VECTOR, MAX_VECTOR)
        predictor = median_predictor(vectors).reshape(-1, 1, 2)
        return _best(candidates, current, by, bx, reference, predictor, lam).reshape(rows, cols, 2)

    coarse = QPEL * _coarse(padded, reference, lam, reach) if start is None else start.astype(np.int64)
    # whole pixels: a step around the coarse vector, zero and the neighbours' coarse vectors, then
    # the four nearest steps around the best of those (the coarse stage places a vector within 2 pixels)
    around = _offsets(QPEL, 1)
    zero = np.zeros((rows, cols, 1, 2), np.int64)
    vectors = best(np.concatenate([coarse[..., None, :] + around, zero, _neighbours(coarse)], 2), coarse)
    vectors = best(vectors[..., None, :] + DIAMOND * QPEL, vectors)
    # a block whose own search went astray takes a neighbour's vector where it fits
    vectors = best(np.concatenate([vectors[..., None, :], _neighbours(vectors)], 2), vectors)
    for step in (QPEL // 2, 1)[:precision]:  # the half-pixel, then the quarter-pixel neighbours
        vectors = best(vectors[..., None, :] + _offsets(step, 1), vectors)
    return vectors


def _offsets(step: int, radius: int) -> np.ndarray:
    """(K, 2): every (dy, dx) of the square of ``radius`` steps of ``step``."""
    span = step * np.arange(-radius, radius + 1)
    return np.stack(np.meshgrid(span, span, indexing="ij"), -1).reshape(-1, 2)


def _best(
    candidates: np.ndarray,
    current: np.ndarray,
    by: np.ndarray,
    bx: np.ndarray,
    reference: Reference,
    predictor: np.ndarray,
    lam: float,
) -> np.ndarray:
    """Per block (by[i], bx[i]) of ``current``, the candidate vector (of (N, K, 2)) of least SAD + lam x bits."""
    n, k = candidates.shape[:2]
    sad = reference.luma_sads(current, np.repeat(by, k), np.repeat(bx, k), candidates.reshape(-1, 2)).reshape(n, k)
    cost = sad + lam * vector_bits(candidates - predictor)
    return candidates[np.arange(n), cost.argmin(1)]


def _coarse(padded: np.ndarray, reference: Reference, lam: float, reach: int) -> np.ndarray:
    """Whole-pixel vectors (rows, cols, 2) from an exhaustive search of the frames downsampled COARSE
    times (``padded``: the frame extended to whole blocks), within ``reach`` pixels, each offset
    priced from zero."""
    block = reference.block
    small = block // COARSE
    rows, cols = reference.rows, reference.cols
    span = reach // COARSE
    m, r = reference.margin, span * COARSE
    here = kernels.luma_sums(padded, COARSE)
    there = kernels.luma_sums(reference.full[m - r : m + rows * block + r, m - r : m + cols * block + r], COARSE)
    side = 2 * span + 1
    offsets = np.arange(-span, span + 1) * COARSE * QPEL
    price = lam * vector_bits(np.stack(np.meshgrid(offsets, offsets, indexing="ij"), -1))  # (side, side)
    best = kernels.coarse_best(here, there, price, small, COARSE)
    return np.stack(np.divmod(best, side), -1).astype(np.int32) * COARSE - span * COARSE


def choose_splits(
    frame: np.ndarray, reference: Reference, vectors: np.ndarray, coarse: np.ndarray, lam: float
) -> tuple[np.ndarray, np.ndarray]:
    """Which 2x2 groups of blocks (codec.coding.common.motion_coding's coarse blocks) move as one: per group,
    the least SAD + ``lam`` x bits of its own four ``vectors`` (split: a coarse vector, then each
    one's difference from it) or of one vector for all four, one of those four or the group's own
    in ``coarse`` (a search with the group's size). Returns the field with the unsplit groups'
    vector set, and the (coarse rows, coarse cols) split flags."""
    rows, cols = reference.rows, reference.cols
    r, c = coarse_grid(rows, cols)
    current = luma(_padded(frame, reference))
    n = SPLIT * SPLIT
    kids = children(vectors).reshape(r * c, n, 2)
    candidates = np.concatenate([kids, coarse.reshape(r * c, 1, 2)], 1)  # candidate i < n: block i's own
    # each candidate on each block of its group: SAD where the block exists
    cy, cx = np.divmod(np.arange(n), SPLIT)
    gy, gx = np.divmod(np.arange(r * c), c)
    by = (gy[:, None] * SPLIT + cy).clip(max=rows - 1)  # (groups, blocks of a group)
    bx = (gx[:, None] * SPLIT + cx).clip(max=cols - 1)
    exists = (gy[:, None] * SPLIT + cy < rows) & (gx[:, None] * SPLIT + cx < cols)
    shape = (r * c, n + 1, n)
    sad = (
        reference.luma_sads(
            current,
            np.broadcast_to(by[:, None], shape).ravel(),
            np.broadcast_to(bx[:, None], shape).ravel(),
            np.broadcast_to(candidates[:, :, None], (*shape, 2)).reshape(-1, 2),
        ).reshape(shape)
        * exists[:, None]
    )
    median = coarse_vectors(vectors, np.ones((r, c), bool)).reshape(-1, 2)
    predictor = median_predictor(median.reshape(r, c, 2)).reshape(-1, 1, 2)
    whole = sad.sum(2) + lam * vector_bits(candidates - predictor)  # (groups, candidates)
    apart = sad[:, np.arange(n), np.arange(n)].sum(1) + lam * (
        vector_bits(median - predictor[:, 0]) + (vector_bits(kids - median[:, None]) * exists).sum(1)
    )
    split = (apart < whole.min(1)).reshape(r, c)
    chosen = candidates[np.arange(r * c), whole.argmin(1)].reshape(r, c, 2)
    return np.where(expand(split, rows, cols)[..., None], vectors, expand(chosen, rows, cols)), split
