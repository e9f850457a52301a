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
from numpy.lib.stride_tricks import sliding_window_view

from codec.coding import kernels
from codec.coding.kernels.reference import interpolate
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


def luma(frame: np.ndarray) -> np.ndarray:
    """R + 2G + B of an (..., 3) array of samples, as int16 (0..1020): the search's luma proxy."""
    frame = frame.astype(np.int16)
    return frame[..., 0] + 2 * frame[..., 1] + frame[..., 2]


class Reference:
    """A decoded frame as a motion-compensation reference, edge-extended so that no vector within
    MAX_VECTOR reads outside it. ``block`` is the size of the square blocks vectors move; frames
    whose sides are not a multiple of it are extended too.

    A prediction interpolates each block's own samples (:meth:`blocks`). The search compares many
    candidates per block, so for it the luma proxy's 16 quarter-pixel phases are whole planes
    (:meth:`luma`), interpolated from the proxy itself: close to the proxy of the interpolated
    samples, good enough to rank vectors, never used for a prediction."""

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
        self._proxy: np.ndarray | None = None
        self._proxy_halves: dict[str, np.ndarray] = {}
        self._lumas: dict[tuple[int, int], np.ndarray] = {}

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

    def luma(self, fy: int, fx: int) -> np.ndarray:
        """The luma proxy's plane of quarter-pixel phase (fy, fx), 0..3 each (int16): sample [y, x]
        is at (y + fy/4, x + fx/4) in the coordinates of the extended grid ``self.full[3:-3, 3:-3]``."""
        key = (fy, fx)
        if key not in self._lumas:
            if self._proxy is None:
                self._proxy = luma(self.full).astype(np.int32)[1:, 1:]  # the grid from its row and column 2
            self._lumas[key] = interpolate(self._proxy, fy, fx, 1020, self._proxy_halves).astype(np.int16)
        return self._lumas[key]

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

    def blocks(self, by: np.ndarray, bx: np.ndarray, vectors: np.ndarray, of_luma: bool = False) -> np.ndarray:
        """The (N, block, block, 3) int16 predictions of blocks (by[i], bx[i]) moved by vectors[i]
        (quarter pixels, within MAX_VECTOR: clamped there, never read beyond the extended frame);
        with ``of_luma``, the (N, block, block) luma proxies of them, from the search's planes."""
        top, left, fy, fx = self.origins(by, bx, vectors)
        if not of_luma:
            return kernels.predict_blocks(self.full, top, left, fy, fx, self.block)
        out = np.empty((len(top), self.block, self.block), np.int16)
        for phase in set(zip(fy.tolist(), fx.tolist(), strict=True)):
            which = np.flatnonzero((fy == phase[0]) & (fx == phase[1]))
            out[which] = sliding_window_view(self.luma(*phase), (self.block, self.block))[top[which], left[which]]
        return out

    def predict(self, vectors: np.ndarray) -> np.ndarray:
        """The (height, width, 3) uint8 frame predicted by one vector per block ((rows, cols, 2))."""
        vectors = check_vectors(vectors, self.rows, self.cols, "motion")
        return kernels.predict_frame(self.frame, vectors, self.block, MAX_VECTOR)
