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

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

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


def _six(x: np.ndarray, axis: int, n: int) -> np.ndarray:
    """The 6-tap sums along ``axis``: out[i] filters x[i..i+5] (the half sample between x[i+2] and
    x[i+3]), for i < n; as (a + f) - 5 (b + e) + 20 (c + d)."""

    def at(k: int) -> np.ndarray:
        index = [slice(None)] * x.ndim
        index[axis] = slice(k, k + n)
        return x[tuple(index)]

    return at(0) + at(5) - 5 * (at(1) + at(4)) + 20 * (at(2) + at(3))


def _interpolate(w: np.ndarray, fy: int, fx: int, top: int, halves: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Samples at quarter-pixel phase (fy, fx) from a window of integer samples (int32, its last two
    axes rows and columns) whose rows and columns 2..-3 are the integer grid G, two samples before it
    and three after: H.264's interpolation, ``top`` its clipping bound (255 for a sample). ``halves``
    keeps the half-sample planes between calls on the same window."""
    rows, cols = w.shape[-2] - 5, w.shape[-1] - 5
    halves = {} if halves is None else halves

    def grid(dy: int = 0, dx: int = 0) -> np.ndarray:
        return w[..., 2 + dy : 2 + dy + rows, 2 + dx : 2 + dx + cols]

    def clip(x: np.ndarray, shift: int) -> np.ndarray:
        return np.clip((x + (1 << (shift - 1))) >> shift, 0, top)

    def half(kind: str) -> np.ndarray:
        if kind not in halves:
            if kind == "b":  # right of each G sample, for G's rows and the row below them
                halves[kind] = clip(_six(w[..., 2 : 3 + rows, :], -1, cols), 5)
            elif kind == "h":  # below each G sample, for G's columns and the column right of them
                halves[kind] = clip(_six(w[..., 2 : 3 + cols], -2, rows), 5)
            else:  # the centre, from the unrounded horizontal sums
                halves[kind] = clip(_six(_six(w, -1, cols), -2, rows), 10)
        return halves[kind]

    def b(dy: int = 0) -> np.ndarray:  # the half sample right of G's, in G's row dy below
        return half("b")[..., dy : dy + rows, :]

    def h(dx: int = 0) -> np.ndarray:  # the half sample below G's, in G's column dx right
        return half("h")[..., dx : dx + cols]

    def j() -> np.ndarray:
        return half("j")

    sources = {
        (0, 0): lambda: (grid(),), (0, 1): lambda: (grid(), b()), (0, 2): lambda: (b(),),
        (0, 3): lambda: (grid(0, 1), b()), (1, 0): lambda: (grid(), h()), (2, 0): lambda: (h(),),
        (3, 0): lambda: (grid(1, 0), h()), (2, 2): lambda: (j(),), (1, 2): lambda: (b(), j()),
        (3, 2): lambda: (j(), b(1)), (2, 1): lambda: (h(), j()), (2, 3): lambda: (j(), h(1)),
        (1, 1): lambda: (b(), h()), (1, 3): lambda: (b(), h(1)), (3, 1): lambda: (h(), b(1)),
        (3, 3): lambda: (h(1), b(1)),
    }[(fy, fx)]()  # fmt: skip
    return sources[0] if len(sources) == 1 else (sources[0] + sources[1] + 1) >> 1


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
        self._set_block(block)
        below, right = -self.height % self.extent, -self.width % self.extent
        pad = ((_MARGIN, _MARGIN + below), (_MARGIN, _MARGIN + right), (0, 0))
        self.full = np.pad(frame, pad, mode="edge")
        self._planes = np.moveaxis(self.full, -1, 0)  # (3, rows, columns): a view
        self._proxy: np.ndarray | None = None
        self._proxy_halves: dict[str, np.ndarray] = {}
        self._lumas: dict[tuple[int, int], np.ndarray] = {}

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
            self._lumas[key] = _interpolate(self._proxy, fy, fx, 1020, self._proxy_halves).astype(np.int16)
        return self._lumas[key]

    def blocks(self, by: np.ndarray, bx: np.ndarray, vectors: np.ndarray, of_luma: bool = False) -> np.ndarray:
        """The (N, block, block, 3) int16 predictions of blocks (by[i], bx[i]) moved by vectors[i]
        (quarter pixels, within MAX_VECTOR: clamped there, never read beyond the extended frame);
        with ``of_luma``, the (N, block, block) luma proxies of them, from the search's planes."""
        v = np.clip(vectors.astype(np.int64), -MAX_VECTOR, MAX_VECTOR)
        fy, fx = v[:, 0] & 3, v[:, 1] & 3
        top = _MARGIN - 3 + by.astype(np.int64) * self.block + (v[:, 0] >> 2)  # in the grid's coordinates
        left = _MARGIN - 3 + bx.astype(np.int64) * self.block + (v[:, 1] >> 2)
        size = self.block + (0 if of_luma else 5)  # a prediction's window holds its taps' samples too
        shape = (len(v), self.block, self.block) + (() if of_luma else (3,))
        out = np.empty(shape, np.int16)
        windows = sliding_window_view(self._planes, (size, size), axis=(1, 2))  # a view
        for phase in set(zip(fy.tolist(), fx.tolist(), strict=True)):
            which = np.flatnonzero((fy == phase[0]) & (fx == phase[1]))
            if of_luma:
                out[which] = sliding_window_view(self.luma(*phase), (size, size))[top[which], left[which]]
                continue
            picked = windows[:, top[which] + 1, left[which] + 1].astype(np.int32)  # (3, n, size, size)
            out[which] = np.moveaxis(_interpolate(picked, *phase, 255), 0, -1)
        return out

    def predict(self, vectors: np.ndarray) -> np.ndarray:
        """The (height, width, 3) uint8 frame predicted by one vector per block ((rows, cols, 2))."""
        vectors = check_vectors(vectors, self.rows, self.cols, "motion")
        by, bx = np.divmod(np.arange(self.rows * self.cols), self.cols)
        tiles = self.blocks(by, bx, vectors.reshape(-1, 2))
        frame = tiles.reshape(self.rows, self.cols, self.block, self.block, 3).transpose(0, 2, 1, 3, 4)
        frame = frame.reshape(self.rows * self.block, self.cols * self.block, 3)
        return frame[: self.height, : self.width].astype(np.uint8)
