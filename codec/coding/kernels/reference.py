"""The kernels' numpy reference twins: the specification each compiled kernel must match exactly."""

from __future__ import annotations

import numpy as np

from codec.coding.transform import residual_from_levels


def add_residual(prediction: np.ndarray, levels: np.ndarray, qps: tuple[int, int, int]) -> np.ndarray:
    """The (H, W, 3) uint8 frame: ``prediction`` plus the residual its (ceil(H/4), ceil(W/4), 3, 4, 4)
    ``levels`` rebuild at the components' ``qps`` (dequantized, inverse transformed, YCoCg-R to RGB),
    clipped to 0..255."""
    h, w = prediction.shape[:2]
    residual = residual_from_levels(levels, qps)[:h, :w]
    return np.clip(prediction.astype(np.int32) + residual, 0, 255).astype(np.uint8)
