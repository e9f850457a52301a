"""Block motion compensation, shared by encoder and decoder: a frame predicted from the previous
decoded frame by one vector per block, in integer arithmetic only, so every machine computes the
same pixels and the prediction adds no drift of its own.

Vectors are in quarter pixels, (dy, dx), bounded by MAX_VECTOR each way. Sub-pixel samples follow
H.264's luma interpolation, applied to each of R, G and B: half-pixel samples by the 6-tap filter
(1, -5, 20, 20, -5, 1) with rounding ((x + 16) >> 5, the centre one from the unrounded horizontal
sums, (x + 512) >> 10), each clipped to 0..255; quarter-pixel samples as the rounded-up mean of the
two nearest integer or half-pixel samples ((a + b + 1) >> 1). The reference is extended by edge
replication far enough that no vector within the bound reads outside it.
"""

from __future__ import annotations

import copy
import functools

import numpy as np

from codec.coding import kernels
from codec.errors import CodecError

QPEL = 4  # vector units per pixel
MAX_VECTOR = 64 * QPEL  # quarter pixels each way: 64 pixels
_MARGIN = MAX_VECTOR // QPEL + 8  # pixels of edge replication around a reference: a vector's reach plus the taps'


def check_vectors(vectors: np.ndarray, rows: int, cols: int, source: str) -> np.ndarray:
    """``vectors`` as (rows, cols, 2) int32 quarter pixels if that is their shape and every component
    is within MAX_VECTOR; anything else (from a stream, a peer) is a CodecError."""
    if vectors.shape != (rows, cols, 2):
        raise CodecError(f"{source}: {vectors.shape} motion vectors for {rows}x{cols} blocks")
    if vectors.size and int(np.abs(vectors).max()) > MAX_VECTOR:
        raise CodecError(f"{source}: a motion vector beyond {MAX_VECTOR // QPEL} pixels")
    return vectors.astype(np.int32)


def median_predictor(vectors: np.ndarray) -> np.ndarray:
    """(rows, cols, 2): per block, the component-wise median of its left, top and top-right
    neighbours' vectors (zero beyond the frame), as H.264 predicts a vector."""
    padded = np.pad(vectors, ((1, 0), (1, 1), (0, 0)))
    left, top, top_right = padded[1:, :-2], padded[:-1, 1:-1], padded[:-1, 2:]
    return np.median(np.stack([left, top, top_right]), axis=0).astype(np.int32)


class Reference:
    """A decoded frame as a motion-compensation reference, edge-extended so that no vector within
    MAX_VECTOR reads outside it. ``block`` is the size of the square blocks vectors move; frames
    whose sides are not a multiple of it are extended too.

    A prediction interpolates each block's own samples (:meth:`blocks`). The search compares many
    candidates per block, so for it the luma proxy's half-sample planes are made once for the whole
    frame (:meth:`luma_sads`), interpolated from the proxy itself: close to the proxy of the
    interpolated samples, good enough to rank vectors, never used for a prediction."""

    def __init__(self, frame: np.ndarray, block: int, extent: int | None = None) -> None:
        """``extent`` (a multiple of ``block``): extend the frame for blocks that large too, so that
        :meth:`with_block` can share this one's planes with them."""
        self.height, self.width = frame.shape[:2]
        self.extent = extent or block
        if self.extent % block:
            raise ValueError(f"extent {self.extent} is not a multiple of block {block}")
        self.margin = _MARGIN  # pixels of edge replication before the frame
        self.frame = frame
        self._set_block(block)
        self._search: dict[str, np.ndarray] = {}  # the search's planes, shared with with_block's copies

    @functools.cached_property
    def full(self) -> np.ndarray:
        """The frame extended by edge replication (made on first use: a decoder's prediction reads
        the frame itself)."""
        below, right = -self.height % self.extent, -self.width % self.extent
        pad = ((_MARGIN, _MARGIN + below), (_MARGIN, _MARGIN + right), (0, 0))
        return np.pad(self.frame, pad, mode="edge")

    def _set_block(self, block: int) -> None:
        self.block, self.rows, self.cols = block, -(-self.height // block), -(-self.width // block)

    def with_block(self, block: int) -> Reference:
        """The same reference for blocks of ``block`` (a divisor of the extent), sharing the planes."""
        if self.extent % block:
            raise ValueError(f"block {block} does not divide the extent {self.extent}")
        other = copy.copy(self)
        other._set_block(block)
        return other

    def origins(
        self, by: np.ndarray, bx: np.ndarray, vectors: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Where blocks (by[i], bx[i]) moved by vectors[i] (quarter pixels, clamped to MAX_VECTOR)
        read: the rows and columns of ``self.full`` 3 before their integer samples, and the
        quarter-pixel phases (fy, fx), 0..3 each."""
        v = np.clip(vectors.astype(np.int64), -MAX_VECTOR, MAX_VECTOR)
        top = _MARGIN - 3 + by.astype(np.int64) * self.block + (v[:, 0] >> 2)  # in the grid's coordinates
        left = _MARGIN - 3 + bx.astype(np.int64) * self.block + (v[:, 1] >> 2)
        return top, left, v[:, 0] & 3, v[:, 1] & 3

    def luma_sads(self, current: np.ndarray, by: np.ndarray, bx: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """(N,) int32: the SAD of block (by[i], bx[i]) of ``current`` (a luma proxy plane whose sides
        are multiples of the block) against the luma proxy of the block moved by vectors[i], as
        :meth:`origins` clamps them, read from the search's planes (made on first use)."""
        if "luma" not in self._search:
            self._search["luma"] = kernels.luma_planes(self.full)
        top, left, fy, fx = self.origins(by, bx, vectors)
        return kernels.luma_sads(self._search["luma"], current, by, bx, top, left, 4 * fy + fx, self.block)

    def predict(self, vectors: np.ndarray) -> np.ndarray:
        """The (height, width, 3) uint8 frame predicted by one vector per block ((rows, cols, 2))."""
        vectors = check_vectors(vectors, self.rows, self.cols, "motion")
        return kernels.predict_frame(self.frame, vectors, self.block, MAX_VECTOR)
