"""The contexts that choose a latent symbol's table, in integers only: temporal for a P-frame's
symbols, spatial for an I-frame's.

A P-frame codes s = q_t - q_(t-1) per latent element. How large s tends to be depends on how much
that part of the picture is moving, which the previous P-frame's residual already says: for each
element, the sum of |q_(t-1) - q_(t-2)| over its 3x3 neighbourhood in the same channel, cut into
CONTEXTS buckets by integer thresholds. Each (channel, bucket) has its own table, so still parts
are coded with narrow tables and moving parts with wide ones. Encoder and decoder both hold the
previous residual as exact integers (zeros after an I-frame), so they derive the same buckets on
every machine; no float enters the choice of table.

An I-frame codes its latent in five passes over a hierarchy of grids (INTRA_PASSES): first one
element in every 4x4 (y and x multiples of 4), each channel under its own table; then the
centres of those squares, then the rest of the 2-grid, then the centres of the 2x2 squares, then
the other half of the checkerboard. Every element of a later pass has its four nearest neighbours
of earlier passes at the pass's offsets (diagonal or cross, 2 apart, then 1): it is coded as its
difference from a prediction made of them (the mean of the middle two), under the table of its
(channel, pass, bucket), the bucket cut by the same thresholds from their magnitudes and spread
(IntraPass.context). Each pass decodes as one block per table, and the neighbours are integers
the decoder already holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codec.coding import kernels
from codec.coding.kernels.reference import pass_grids, shifted

# Bucket k holds the activities a with THRESHOLDS[k-1] <= a < THRESHOLDS[k] (about 2 log2(a + 1)).
THRESHOLDS = np.array([1, 2, 3, 5, 7, 11, 16], np.int64)
CONTEXTS = len(THRESHOLDS) + 1
_BUCKET_OF = np.searchsorted(THRESHOLDS, np.arange(THRESHOLDS[-1] + 1), side="right")  # by activity
MIN_SAMPLES = 64  # a bucket seen fewer times than this in training takes its channel's learned table
NEIGHBOUR_LIMIT = 1 << 10  # anchors count at most this far from the centre, so predictions stay bounded


SQUARE = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1))  # an element and its 8 neighbours
CROSS = ((-1, 0), (1, 0), (0, -1), (0, 1))  # its 4 nearest: in a checkerboard, the other colour


def _bucket(activity: np.ndarray) -> np.ndarray:
    """The bucket (0..CONTEXTS-1) of each of the non-negative ``activity``."""
    return _BUCKET_OF[np.minimum(activity, THRESHOLDS[-1])]


def _histograms(buckets: np.ndarray, symbols: np.ndarray, span: int) -> np.ndarray:
    """Counts (C, CONTEXTS, 2 span + 1) of the symbols of each channel by bucket, those beyond
    ``span`` counted at its ends (``buckets`` and ``symbols``: (C, n) or (C, h, w))."""
    cells = np.clip(symbols, -span, span) + span
    return np.stack(
        [
            np.bincount((b * (2 * span + 1) + c).ravel(), minlength=CONTEXTS * (2 * span + 1)).reshape(CONTEXTS, -1)
            for b, c in zip(buckets, cells, strict=True)
        ]
    )


def context_buckets(previous_residual: np.ndarray) -> np.ndarray:
    """Bucket (0..CONTEXTS-1) of every element of a (C, h, w) latent, from the previous residual."""
    return _bucket(sum(shifted(np.abs(previous_residual.astype(np.int64)), SQUARE)))


def residual_histograms(q: np.ndarray, gop: int, span: int) -> np.ndarray:
    """Counts (C, CONTEXTS, 2 span + 1) of the P residuals -span..span of the integer latents ``q``
    (T, C, h, w) of a video coded with I-frames every ``gop`` frames, by channel and context bucket;
    residuals beyond ``span`` are counted at its ends."""
    channels = q.shape[1]
    counts = np.zeros((channels, CONTEXTS, 2 * span + 1), np.int64)
    previous_residual = np.zeros_like(q[0])
    for t in range(1, len(q)):
        if t % gop == 0:
            previous_residual = np.zeros_like(q[0])
            continue
        residual = q[t] - q[t - 1]
        counts += _histograms(context_buckets(previous_residual), residual, span)
        previous_residual = residual
    return counts


_DIAGONAL = ((-1, -1), (-1, 1), (1, -1), (1, 1))


@dataclass(frozen=True)
class IntraPass:
    """The elements of a latent at (y, x) with (y % stride, x % stride) in ``phases``, in the order
    they are coded (phase after phase, each in raster order), and their neighbours' ``offsets``."""

    stride: int
    phases: tuple[tuple[int, int], ...]
    offsets: tuple[tuple[int, int], ...] = ()

    def _grids(self, plane: np.ndarray) -> list[np.ndarray]:
        return pass_grids(plane, self.stride, self.phases)

    def size(self, h: int, w: int) -> int:
        """How many elements of an h x w plane it holds."""
        return sum(len(range(a, h, self.stride)) * len(range(b, w, self.stride)) for a, b in self.phases)

    def take(self, plane: np.ndarray) -> np.ndarray:
        """(C, n): its elements of a (C, h, w) ``plane``."""
        return np.concatenate([g.reshape(len(plane), -1) for g in self._grids(plane)], axis=1)

    def put(self, plane: np.ndarray, values: np.ndarray) -> None:
        """Set its elements of a (C, h, w) ``plane`` to ``values`` (C, n)."""
        start = 0
        for grid in self._grids(plane):
            n = grid[0].size
            grid[...] = values[:, start : start + n].reshape(grid.shape)
            start += n

    def context(self, plane: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(C, n) each: the bucket (0..CONTEXTS-1) and prediction of each of its elements from the
        (C, h, w) ``plane``'s values at its four neighbours (of earlier passes, so the decoder holds
        them), each counted at most +-NEIGHBOUR_LIMIT (so a prediction never takes a symbol far past
        the coder's range). With all four inside the frame: the mean of the middle two, rounded
        half up, and the activity (sum of magnitudes + 2 x (largest - smallest)) / 2, both robust
        to one neighbour across an edge; at the frame's edge, the mean of those inside and their
        summed magnitudes scaled to four."""
        return kernels.intra_context(plane, self.stride, self.phases, self.offsets, NEIGHBOUR_LIMIT, _BUCKET_OF)


WHOLE = IntraPass(1, ((0, 0),))  # a bundle without pass tables codes each channel whole
# A 4x4 grid, the centres of its squares, the rest of the 2x2 grid, the centres of its squares, the rest.
INTRA_PASSES = (
    IntraPass(4, ((0, 0),)),
    IntraPass(4, ((2, 2),), tuple((2 * dy, 2 * dx) for dy, dx in _DIAGONAL)),
    IntraPass(4, ((0, 2), (2, 0)), tuple((2 * dy, 2 * dx) for dy, dx in CROSS)),
    IntraPass(4, ((1, 1), (1, 3), (3, 1), (3, 3)), _DIAGONAL),
    IntraPass(4, tuple((y, x) for y in range(4) for x in range(4) if (y + x) % 2), CROSS),
)
PREDICTED_PASSES = len(INTRA_PASSES) - 1  # the passes coded under spatial contexts


def intra_histograms(q: np.ndarray, centre: np.ndarray, span: int) -> np.ndarray:
    """Counts (C, PREDICTED_PASSES * CONTEXTS, 2 span + 1) of the predicted symbols of the integer
    I-frame latents ``q`` (T, C, h, w) centred on ``centre`` (C,), by channel, pass and bucket."""
    counts = np.zeros((q.shape[1], PREDICTED_PASSES, CONTEXTS, 2 * span + 1), np.int64)
    for frame in q:
        r = frame - centre[:, None, None]
        for k, intra_pass in enumerate(INTRA_PASSES[1:]):
            buckets, prediction = intra_pass.context(r)
            counts[:, k] += _histograms(buckets, intra_pass.take(r) - prediction, span)
    return counts.reshape(len(counts), -1, 2 * span + 1)
