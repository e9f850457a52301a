"""The kernels compiled with numba: the same signatures and integers as :mod:`.reference`."""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np

from codec.coding.transform import dequantize


def _jit(function: Callable) -> Callable:
    """``function`` compiled without the GIL (so a decode pipeline's threads can use both cores),
    cached on disk where numba finds a writable place, else compiled afresh in each process."""
    try:
        return numba.njit(cache=True, nogil=True)(function)
    except RuntimeError:  # numba found no writable cache folder (a read-only install, no NUMBA_CACHE_DIR)
        return numba.njit(nogil=True)(function)


@_jit
def _add_residual(prediction: np.ndarray, levels: np.ndarray, scales: np.ndarray, out: np.ndarray) -> None:
    """Per 4x4 block with levels: levels x scales, H.264's inverse butterfly along rows then columns,
    (x + 32) >> 6, YCoCg-R to RGB, added to the prediction and clipped into ``out``, which holds the
    prediction already (a block without levels adds nothing)."""
    h, w = prediction.shape[0], prediction.shape[1]
    block = np.empty((3, 4, 4), np.int64)
    for r in range(levels.shape[0]):
        for c in range(levels.shape[1]):
            top, left = 4 * r, 4 * c
            bottom, right = min(top + 4, h), min(left + 4, w)
            coded = False
            for k in range(3):
                for i in range(4):
                    for j in range(4):
                        coded |= levels[r, c, k, i, j] != 0
            if not coded:
                continue
            for k in range(3):
                for i in range(4):
                    w0 = np.int64(levels[r, c, k, i, 0]) * scales[k, i, 0]
                    w1 = np.int64(levels[r, c, k, i, 1]) * scales[k, i, 1]
                    w2 = np.int64(levels[r, c, k, i, 2]) * scales[k, i, 2]
                    w3 = np.int64(levels[r, c, k, i, 3]) * scales[k, i, 3]
                    e, f, g, q = w0 + w2, w0 - w2, (w1 >> 1) - w3, w1 + (w3 >> 1)
                    block[k, i, 0], block[k, i, 1], block[k, i, 2], block[k, i, 3] = e + q, f + g, f - g, e - q
                for j in range(4):
                    w0, w1, w2, w3 = block[k, 0, j], block[k, 1, j], block[k, 2, j], block[k, 3, j]
                    e, f, g, q = w0 + w2, w0 - w2, (w1 >> 1) - w3, w1 + (w3 >> 1)
                    block[k, 0, j] = (e + q + 32) >> 6
                    block[k, 1, j] = (f + g + 32) >> 6
                    block[k, 2, j] = (f - g + 32) >> 6
                    block[k, 3, j] = (e - q + 32) >> 6
            for i in range(bottom - top):
                for j in range(right - left):
                    t = block[0, i, j] - (block[2, i, j] >> 1)
                    green = block[2, i, j] + t
                    blue = t - (block[1, i, j] >> 1)
                    rgb = (blue + block[1, i, j], green, blue)
                    for k in range(3):
                        value = np.int64(prediction[top + i, left + j, k]) + rgb[k]
                        out[top + i, left + j, k] = min(max(value, 0), 255)


def add_residual(prediction: np.ndarray, levels: np.ndarray, qps: tuple[int, int, int]) -> np.ndarray:
    """See :func:`codec.coding.kernels.reference.add_residual`."""
    scales = np.stack([dequantize(np.ones((4, 4), np.int32), qp) for qp in qps]).astype(np.int64)
    prediction = np.ascontiguousarray(prediction, np.uint8)
    out = prediction.copy()
    _add_residual(prediction, np.ascontiguousarray(levels, np.int32), scales, out)
    return out
