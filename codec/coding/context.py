"""The temporal context of a P-frame's symbols, in integers only.

A P-frame codes s = q_t - q_(t-1) per latent element. How large s tends to be depends on how much
that part of the picture is moving, which the previous P-frame's residual already says: for each
element, the sum of |q_(t-1) - q_(t-2)| over its 3x3 neighbourhood in the same channel, cut into
CONTEXTS buckets by integer thresholds. Each (channel, bucket) has its own table, so still parts
are coded with narrow tables and moving parts with wide ones. Encoder and decoder both hold the
previous residual as exact integers (zeros after an I-frame), so they derive the same buckets on
every machine; no float enters the choice of table.
"""

from __future__ import annotations

import numpy as np

# Bucket k holds the activities a with THRESHOLDS[k-1] <= a < THRESHOLDS[k] (about 2 log2(a + 1)).
THRESHOLDS = np.array([1, 2, 3, 5, 7, 11, 16], np.int64)
CONTEXTS = len(THRESHOLDS) + 1
MIN_SAMPLES = 64  # a bucket seen fewer times than this in training takes its channel's learned table


def context_buckets(previous_residual: np.ndarray) -> np.ndarray:
    """Bucket (0..CONTEXTS-1) of every element of a (C, h, w) latent, from the previous residual."""
    activity = np.abs(previous_residual.astype(np.int64))
    padded = np.pad(activity, ((0, 0), (1, 1), (1, 1)))
    h, w = activity.shape[1:]
    total = sum(padded[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy in (-1, 0, 1) for dx in (-1, 0, 1))
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
        buckets = context_buckets(previous_residual)
        cell = np.clip(residual, -span, span) + span
        for c in range(channels):
            counts[c] += np.bincount(
                (buckets[c] * (2 * span + 1) + cell[c]).ravel(), minlength=CONTEXTS * (2 * span + 1)
            ).reshape(CONTEXTS, -1)
        previous_residual = residual
    return counts
