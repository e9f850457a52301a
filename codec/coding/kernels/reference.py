"""The kernels' numpy reference twins: the specification each compiled kernel must match exactly."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from codec.coding.common.transform import residual_from_levels


def add_residual(prediction: np.ndarray, levels: np.ndarray, qps: tuple[int, int, int]) -> np.ndarray:
    """The (H, W, 3) uint8 frame: ``prediction`` plus the residual its (ceil(H/4), ceil(W/4), 3, 4, 4)
    ``levels`` rebuild at the components' ``qps`` (dequantized, inverse transformed, YCoCg-R to RGB),
    clipped to 0..255."""
    h, w = prediction.shape[:2]
    residual = residual_from_levels(levels, qps)[:h, :w]
    return np.clip(prediction.astype(np.int32) + residual, 0, 255).astype(np.uint8)


def six(x: np.ndarray, axis: int, n: int) -> np.ndarray:
    """The 6-tap sums along ``axis``: out[i] filters x[i..i+5] (the half sample between x[i+2] and
    x[i+3]), for i < n; as (a + f) - 5 (b + e) + 20 (c + d)."""

    def at(k: int) -> np.ndarray:
        index = [slice(None)] * x.ndim
        index[axis] = slice(k, k + n)
        return x[tuple(index)]

    return at(0) + at(5) - 5 * (at(1) + at(4)) + 20 * (at(2) + at(3))


def interpolate(w: np.ndarray, fy: int, fx: int, top: int, halves: dict[str, np.ndarray] | None = None) -> np.ndarray:
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
                halves[kind] = clip(six(w[..., 2 : 3 + rows, :], -1, cols), 5)
            elif kind == "h":  # below each G sample, for G's columns and the column right of them
                halves[kind] = clip(six(w[..., 2 : 3 + cols], -2, rows), 5)
            else:  # the centre, from the unrounded horizontal sums
                halves[kind] = clip(six(six(w, -1, cols), -2, rows), 10)
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


def predict_blocks(
    full: np.ndarray, top: np.ndarray, left: np.ndarray, fy: np.ndarray, fx: np.ndarray, block: int
) -> np.ndarray:
    """The (N, block, block, 3) int16 motion-compensated blocks from ``full`` (an edge-extended
    (H, W, 3) uint8 frame): block i's integer samples start at full[top[i] + 3, left[i] + 3], at
    quarter-pixel phase (fy[i], fx[i]), interpolated by :func:`interpolate` (H.264's luma filter on
    each of R, G and B); each window reaches 2 samples before and 3 after the block."""
    size = block + 5
    out = np.empty((len(top), block, block, 3), np.int16)
    windows = sliding_window_view(np.moveaxis(full, -1, 0), (size, size), axis=(1, 2))  # a view
    for phase in set(zip(fy.tolist(), fx.tolist(), strict=True)):
        which = np.flatnonzero((fy == phase[0]) & (fx == phase[1]))
        picked = windows[:, top[which] + 1, left[which] + 1].astype(np.int32)  # (3, n, size, size)
        out[which] = np.moveaxis(interpolate(picked, *phase, 255), 0, -1)
    return out


def predict_frame(frame: np.ndarray, vectors: np.ndarray, block: int, limit: int) -> np.ndarray:
    """The (H, W, 3) uint8 frame predicted from ``frame`` (H, W, 3 uint8) by one quarter-pixel vector
    per ``block`` x ``block`` block ((ceil(H/block), ceil(W/block), 2), each component clamped to
    +-``limit``): each block by :func:`predict_blocks` from the frame extended by edge replication
    (a sample beyond the frame is its nearest edge sample), cropped to the frame."""
    height, width = frame.shape[:2]
    rows, cols = vectors.shape[:2]
    margin = limit // 4 + 8
    below, right = rows * block - height, cols * block - width
    full = np.pad(frame, ((margin, margin + below), (margin, margin + right), (0, 0)), mode="edge")
    v = np.clip(vectors.reshape(-1, 2).astype(np.int64), -limit, limit)
    by, bx = np.divmod(np.arange(rows * cols), cols)
    top = margin - 3 + by * block + (v[:, 0] >> 2)
    left = margin - 3 + bx * block + (v[:, 1] >> 2)
    tiles = predict_blocks(full, top, left, v[:, 0] & 3, v[:, 1] & 3, block)
    out = tiles.reshape(rows, cols, block, block, 3).transpose(0, 2, 1, 3, 4).reshape(rows * block, cols * block, 3)
    return out[:height, :width].astype(np.uint8)
