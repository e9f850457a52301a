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

import numpy as np

from codec.errors import CodecError

QPEL = 4  # vector units per pixel
MAX_VECTOR = 64 * QPEL  # quarter pixels each way: 64 pixels
TAPS = (1, -5, 20, 20, -5, 1)
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


def _taps(x: np.ndarray, axis: int) -> np.ndarray:
    """The 6-tap sums along ``axis``: out[i] filters x[i..i+5], the half sample between x[i+2] and x[i+3]."""
    n = x.shape[axis] - 5
    return sum(t * x.take(np.arange(k, k + n), axis=axis) for k, t in enumerate(TAPS))


def _clip(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0, 255)


class Reference:
    """A decoded frame as a motion-compensation reference: its 16 quarter-pixel phases, each an
    int16 plane of the edge-extended frame, computed when first needed. ``block`` is the size of the
    square blocks vectors move; frames whose sides are not a multiple of it are extended too."""

    def __init__(self, frame: np.ndarray, block: int) -> None:
        self.height, self.width = frame.shape[:2]
        self.block, self.margin = block, _MARGIN  # margin: pixels of edge replication before the frame
        self.rows, self.cols = -(-self.height // block), -(-self.width // block)
        below, right = self.rows * block - self.height, self.cols * block - self.width
        pad = ((_MARGIN, _MARGIN + below), (_MARGIN, _MARGIN + right), (0, 0))
        self.full = np.pad(frame, pad, mode="edge").astype(np.int32)
        self._phases: dict[tuple[int, int], np.ndarray] = {}
        self._lumas: dict[tuple[int, int], np.ndarray] = {}
        self._half: dict[str, np.ndarray] | None = None

    def _half_pels(self) -> dict[str, np.ndarray]:
        """H.264's half samples on the grid of the integer samples G = full[3:-3, 3:-3]: b right of
        each, h below it, j diagonally, s = b of the row below, m = h of the column right."""
        if self._half is None:
            p = self.full
            across, down = _taps(p, 1), _taps(p, 0)  # across[y, i]: between p[y, i+2] and p[y, i+3]
            centre = _taps(across, 0)
            self._half = {
                "b": _clip((across[3:-3, 1:] + 16) >> 5),
                "s": _clip((across[4:-2, 1:] + 16) >> 5),
                "h": _clip((down[1:, 3:-3] + 16) >> 5),
                "m": _clip((down[1:, 4:-2] + 16) >> 5),
                "j": _clip((centre[1:, 1:] + 512) >> 10),
            }
        return self._half

    def phase(self, fy: int, fx: int) -> np.ndarray:
        """The plane of quarter-pixel phase (fy, fx), 0..3 each: sample [y, x] is the frame's at
        (y + fy/4, x + fx/4) in the coordinates of the extended integer grid ``self.full[3:-3, 3:-3]``."""
        key = (fy, fx)
        if key not in self._phases:
            self._phases[key] = self._compute(fy, fx).astype(np.int16)
        return self._phases[key]

    def luma(self, fy: int, fx: int) -> np.ndarray:
        """The luma proxy R + 2G + B of :meth:`phase` (fy, fx), what the motion search compares."""
        key = (fy, fx)
        if key not in self._lumas:
            self._lumas[key] = luma(self.phase(fy, fx))
        return self._lumas[key]

    def _compute(self, fy: int, fx: int) -> np.ndarray:
        g = self.full[3:-3, 3:-3]
        if (fy, fx) == (0, 0):
            return g
        half = self._half_pels()
        b, h, j, s, m = (half[k] for k in "bhjsm")
        right, below = self.full[3:-3, 4:-2], self.full[4:-2, 3:-3]  # H and M in H.264's figure
        samples = {
            (0, 1): (g, b), (0, 2): (b,), (0, 3): (right, b),
            (1, 0): (g, h), (2, 0): (h,), (3, 0): (below, h),
            (2, 2): (j,), (1, 2): (b, j), (3, 2): (j, s), (2, 1): (h, j), (2, 3): (j, m),
            (1, 1): (b, h), (1, 3): (b, m), (3, 1): (h, s), (3, 3): (m, s),
        }[(fy, fx)]  # fmt: skip
        return samples[0] if len(samples) == 1 else (samples[0] + samples[1] + 1) >> 1

    def blocks(self, by: np.ndarray, bx: np.ndarray, vectors: np.ndarray, of_luma: bool = False) -> np.ndarray:
        """The (N, block, block, 3) int16 predictions of blocks (by[i], bx[i]) moved by vectors[i]
        (quarter pixels, within MAX_VECTOR: clamped there, never read beyond the extended frame);
        with ``of_luma``, the (N, block, block) luma proxies of them."""
        v = np.clip(vectors.astype(np.int64), -MAX_VECTOR, MAX_VECTOR)
        fy, fx = v[:, 0] & 3, v[:, 1] & 3
        top = _MARGIN - 3 + by.astype(np.int64) * self.block + (v[:, 0] >> 2)
        left = _MARGIN - 3 + bx.astype(np.int64) * self.block + (v[:, 1] >> 2)
        span = np.arange(self.block)
        out = np.empty((len(v), self.block, self.block) + (() if of_luma else (3,)), np.int16)
        source = self.luma if of_luma else self.phase
        for phase in set(zip(fy.tolist(), fx.tolist(), strict=True)):
            which = np.flatnonzero((fy == phase[0]) & (fx == phase[1]))
            rows = (top[which, None] + span)[:, :, None]
            cols = (left[which, None] + span)[:, None, :]
            out[which] = source(*phase)[rows, cols]
        return out

    def predict(self, vectors: np.ndarray) -> np.ndarray:
        """The (height, width, 3) uint8 frame predicted by one vector per block ((rows, cols, 2))."""
        vectors = check_vectors(vectors, self.rows, self.cols, "motion")
        by, bx = np.divmod(np.arange(self.rows * self.cols), self.cols)
        tiles = self.blocks(by, bx, vectors.reshape(-1, 2))
        frame = tiles.reshape(self.rows, self.cols, self.block, self.block, 3).transpose(0, 2, 1, 3, 4)
        frame = frame.reshape(self.rows * self.block, self.cols * self.block, 3)
        return frame[: self.height, : self.width].astype(np.uint8)
