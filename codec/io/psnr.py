"""PSNR of frames, the one distortion figure every part reports: the encoder of its reconstruction,
the player against a reference, training on its batches, the benchmark for every codec."""

from __future__ import annotations

import math

import numpy as np


def psnr_from_mse(mse: float, peak: float = 255.0) -> float:
    return 10 * math.log10(peak**2 / max(mse, 1e-10))


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def psnr(decoded: np.ndarray, source: np.ndarray) -> float:
    """PSNR in dB of one 8-bit image against another (all channels together: RGB PSNR for RGB24)."""
    return psnr_from_mse(mse(decoded, source))
