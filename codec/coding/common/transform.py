"""The integer residual coder's arithmetic, as H.264 does it: a reversible colour transform, the 4x4
integer core transform, quantization by a QP (the step doubles every 6) and the exact inverse, all
in integers, so every machine reconstructs the same pixels.

- Colour: YCoCg-R, lossless on integers (Malvar and Sullivan, JVT-I014), applied to the RGB residual.
- Transform: H.264's forward core transform Cf X Cf^T; quantization level = sign(W) x ((|W| x MF +
  f) >> (15 + QP // 6)), with MF by QP % 6 and the coefficient's position class and f a third of
  the quantizer's unit (a sixth: rounding towards zero, as H.264's inter blocks use, with
  ``inter``); dequantization W' = level x V x 2^(QP // 6); the inverse by H.264's integer butterfly
  (halves by shifts) and (x + 32) >> 6.
"""

from __future__ import annotations

import numpy as np

MAX_QP = 51
_MF = np.array(  # QP % 6 -> position classes a (even, even), b (odd, odd), c (the rest)
    [
        [13107, 5243, 8066],
        [11916, 4660, 7490],
        [10082, 4194, 6554],
        [9362, 3647, 5825],
        [8192, 3355, 5243],
        [7282, 2893, 4559],
    ]
)
_V = np.array([[10, 16, 13], [11, 18, 14], [13, 20, 16], [14, 23, 18], [16, 25, 20], [18, 29, 23]])
_CLASS = np.array([[0, 2, 0, 2], [2, 1, 2, 1], [0, 2, 0, 2], [2, 1, 2, 1]])


def to_ycocg(rgb: np.ndarray) -> np.ndarray:
    """YCoCg-R of integer (..., 3) RGB values (any range, e.g. a residual), as int32 (..., 3): Y, Co, Cg."""
    r, g, b = (rgb[..., k].astype(np.int32) for k in range(3))
    co = r - b
    t = b + (co >> 1)
    cg = g - t
    return np.stack([t + (cg >> 1), co, cg], -1)


def from_ycocg(ycocg: np.ndarray) -> np.ndarray:
    """The exact inverse of :func:`to_ycocg`."""
    y, co, cg = (ycocg[..., k].astype(np.int32) for k in range(3))
    t = y - (cg >> 1)
    g = cg + t
    b = t - (co >> 1)
    return np.stack([b + co, g, b], -1)


def _forward_butterfly(x: np.ndarray, axis: int) -> np.ndarray:
    x0, x1, x2, x3 = (x.take(k, axis) for k in range(4))
    a, b, c, d = x0 + x3, x1 + x2, x1 - x2, x0 - x3
    return np.stack([a + b, 2 * d + c, a - b, d - 2 * c], axis)


def forward(blocks: np.ndarray) -> np.ndarray:
    """H.264's 4x4 core transform Cf X Cf^T of integer (..., 4, 4) blocks (int32), by its butterfly."""
    return _forward_butterfly(_forward_butterfly(blocks.astype(np.int32), -1), -2)


def _scale(qp: int, table: np.ndarray) -> np.ndarray:
    if not 0 <= qp <= MAX_QP:
        raise ValueError(f"QP {qp} is not 0..{MAX_QP}")
    return table[qp % 6][_CLASS]


def quantizer(qp: int, inter: bool = True) -> tuple[np.ndarray, int, int]:
    """How :func:`quantize` rounds at ``qp``: the (4, 4) multipliers MF, the shift and the offset."""
    bits = 15 + qp // 6
    return _scale(qp, _MF), bits, (1 << bits) // (6 if inter else 3)


def quantize(coefficients: np.ndarray, qp: int, inter: bool = True) -> np.ndarray:
    """The integer levels of (..., 4, 4) transform coefficients at ``qp`` (int32)."""
    scale, bits, offset = quantizer(qp, inter)
    magnitude = (np.abs(coefficients).astype(np.int64) * scale + offset) >> bits
    return (np.sign(coefficients) * magnitude).astype(np.int32)


def dequantize(levels: np.ndarray, qp: int) -> np.ndarray:
    """H.264's rescaling of (..., 4, 4) levels (int32)."""
    return (levels.astype(np.int32) * _scale(qp, _V)) << (qp // 6)


def _butterfly(w: np.ndarray, axis: int) -> np.ndarray:
    w0, w1, w2, w3 = (w.take(k, axis) for k in range(4))
    e, f, g, h = w0 + w2, w0 - w2, (w1 >> 1) - w3, w1 + (w3 >> 1)
    return np.stack([e + h, f + g, f - g, e - h], axis)


def inverse(scaled: np.ndarray) -> np.ndarray:
    """H.264's inverse 4x4 transform of dequantized (..., 4, 4) coefficients: the residual blocks (int32)."""
    x = _butterfly(_butterfly(scaled.astype(np.int32), -1), -2)
    return (x + 32) >> 6


def reconstruct(levels: np.ndarray, qp: int) -> np.ndarray:
    """The residual blocks a decoder rebuilds from ``levels`` at ``qp``."""
    return inverse(dequantize(levels, qp))


def to_blocks(plane: np.ndarray) -> np.ndarray:
    """(H, W, 3) with sides multiples of 4 -> (H/4, W/4, 3, 4, 4): per 4x4 block, per component."""
    h, w = plane.shape[:2]
    return plane.reshape(h // 4, 4, w // 4, 4, 3).transpose(0, 2, 4, 1, 3)


def from_blocks(blocks: np.ndarray) -> np.ndarray:
    """The inverse of :func:`to_blocks`."""
    rows, cols = blocks.shape[:2]
    return blocks.transpose(0, 3, 1, 4, 2).reshape(rows * 4, cols * 4, 3)


def component_qps(qp: int, chroma_offset: int) -> tuple[int, int, int]:
    """The QPs of Y, Co and Cg: Co and Cg ``chroma_offset`` coarser, within MAX_QP."""
    chroma = min(qp + chroma_offset, MAX_QP)
    return qp, chroma, chroma


def residual_levels(residual: np.ndarray, qps: tuple[int, int, int]) -> np.ndarray:
    """The (ceil(H/4), ceil(W/4), 3, 4, 4) levels of an integer RGB residual (H, W, 3; extended to
    multiples of 4 by edge replication), in YCoCg-R, each component quantized at its QP (rounding
    towards zero, as inter blocks do)."""
    h, w = residual.shape[:2]
    residual = np.pad(residual, ((0, -h % 4), (0, -w % 4), (0, 0)), mode="edge")
    coefficients = forward(to_blocks(to_ycocg(residual)))
    return np.stack([quantize(coefficients[:, :, k], q) for k, q in enumerate(qps)], 2)


def residual_from_levels(levels: np.ndarray, qps: tuple[int, int, int]) -> np.ndarray:
    """The integer RGB residual (H, W, 3) a decoder rebuilds from :func:`residual_levels`' levels."""
    rows, cols = levels.shape[:2]
    flat = levels.reshape(rows * cols, 3, 4, 4)
    coded = np.flatnonzero(flat.any((1, 2, 3)))  # a block without levels rebuilds to zero
    rebuilt = np.zeros(flat.shape, np.int32)
    rebuilt[coded] = np.stack([reconstruct(flat[coded, k], q) for k, q in enumerate(qps)], 1)
    return from_ycocg(from_blocks(rebuilt.reshape(levels.shape)))
