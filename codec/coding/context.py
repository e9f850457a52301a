"""The contexts that choose a latent symbol's table, in integers only: temporal for a P-frame's
symbols, spatial for an I-frame's.

A P-frame codes s = q_t - q_(t-1) per latent element. How large s tends to be depends on how much
that part of the picture is moving, which the previous P-frame's residual already says: for each
element, the sum of |q_(t-1) - q_(t-2)| over its 3x3 neighbourhood in the same channel, cut into
CONTEXTS buckets by integer thresholds. Each (channel, bucket) has its own table, so still parts
are coded with narrow tables and moving parts with wide ones. Encoder and decoder both hold the
previous residual as exact integers (zeros after an I-frame), so they derive the same buckets on
every machine; no float enters the choice of table.

An I-frame codes its latent in two halves of a checkerboard: the anchors ((y + x) even) first,
each channel under its own table, then the other half, each symbol as its difference from the
mean (rounded down) of its four anchor neighbours, under the table of its (channel, bucket), the
bucket cut by the same thresholds from the sum of those neighbours' magnitudes. Both halves decode
as whole blocks, and the neighbours are integers the decoder already holds.
"""

from __future__ import annotations

import numpy as np

# Bucket k holds the activities a with THRESHOLDS[k-1] <= a < THRESHOLDS[k] (about 2 log2(a + 1)).
THRESHOLDS = np.array([1, 2, 3, 5, 7, 11, 16], np.int64)
CONTEXTS = len(THRESHOLDS) + 1
MIN_SAMPLES = 64  # a bucket seen fewer times than this in training takes its channel's learned table
NEIGHBOUR_LIMIT = 1 << 10  # anchors count at most this far from the centre, so predictions stay bounded


SQUARE = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1))  # an element and its 8 neighbours
CROSS = ((-1, 0), (1, 0), (0, -1), (0, 1))  # its 4 nearest: in a checkerboard, the other colour


def _neighbours(plane: np.ndarray, offsets: tuple[tuple[int, int], ...]) -> list[np.ndarray]:
    """For a (C, h, w) ``plane``, the planes of each element's neighbour at each offset (0 outside)."""
    padded = np.pad(plane, ((0, 0), (1, 1), (1, 1)))
    h, w = plane.shape[1:]
    return [padded[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in offsets]


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
    total = sum(_neighbours(np.abs(previous_residual.astype(np.int64)), SQUARE))
    return np.searchsorted(THRESHOLDS, total, side="right")


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


def anchors(h: int, w: int) -> np.ndarray:
    """(h, w) bool: the checkerboard half an I-frame codes first."""
    yy, xx = np.mgrid[0:h, 0:w]
    return (yy + xx) % 2 == 0


def spatial_context(anchor_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every element of a (C, h, w) latent whose anchors hold ``anchor_values`` (centred, zero
    elsewhere): its bucket (0..CONTEXTS-1) and its prediction, the mean of its four neighbours
    rounded down (a neighbour outside the frame counts as 0, one beyond +-NEIGHBOUR_LIMIT as that
    limit, so a prediction never takes a symbol far past the coder's range)."""
    near = _neighbours(np.clip(anchor_values.astype(np.int64), -NEIGHBOUR_LIMIT, NEIGHBOUR_LIMIT), CROSS)
    activity = sum(np.abs(n) for n in near)
    return np.searchsorted(THRESHOLDS, activity, side="right"), np.floor_divide(sum(near), 4)


def intra_histograms(q: np.ndarray, centre: np.ndarray, span: int) -> np.ndarray:
    """Counts (C, CONTEXTS, 2 span + 1) of the predicted non-anchor symbols of the integer I-frame
    latents ``q`` (T, C, h, w) centred on ``centre`` (C,), by channel and spatial bucket."""
    channels, h, w = q.shape[1:]
    counts = np.zeros((channels, CONTEXTS, 2 * span + 1), np.int64)
    anchor = anchors(h, w)
    for frame in q:
        r = frame - centre[:, None, None]
        buckets, prediction = spatial_context(r * anchor)
        counts += _histograms(buckets[:, ~anchor], (r - prediction)[:, ~anchor], span)
    return counts


def bucket_order(buckets: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The flat ``positions`` of a (h, w) plane grouped by their ``buckets`` (bucket 0 first, row
    order within each: the order the symbols are coded in), and how many fall in each bucket."""
    chosen = buckets.ravel()[positions]
    return positions[np.argsort(chosen, kind="stable")], np.bincount(chosen, minlength=CONTEXTS)
