"""The kernels' numpy reference twins: the specification each compiled kernel must match exactly."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from codec.coding.common.transform import residual_from_levels, residual_levels


def add_residual(
    prediction: np.ndarray, blocks: np.ndarray, levels: np.ndarray, qps: tuple[int, int, int]
) -> np.ndarray:
    """The (H, W, 3) uint8 frame: ``prediction`` plus the residual that the ``levels`` ((n, 3, 4, 4))
    of the 4x4 blocks ``blocks`` ((n,) distinct raster indices of the frame's (ceil(H/4), ceil(W/4))
    grid; none elsewhere) rebuild at the components' ``qps`` (dequantized, inverse transformed,
    YCoCg-R to RGB), clipped to 0..255."""
    h, w = prediction.shape[:2]
    rows, cols = -(-h // 4), -(-w // 4)
    dense = np.zeros((rows * cols, 3, 4, 4), np.int32)
    dense[blocks] = levels
    residual = residual_from_levels(dense.reshape(rows, cols, 3, 4, 4), qps)[:h, :w]
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


def from_medians(differences: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """The (rows, cols, 2) int64 vector field whose differences ((rows * cols, 2), raster order) from
    their median predictors (:func:`codec.coding.common.motion.median_predictor`: left, top and
    top-right neighbours, zero beyond the frame) are ``differences``."""
    vectors = np.empty((rows, cols, 2), np.int64)
    for k in (0, 1):  # block after block, in Python integers: the median of three is the middle one
        d = differences[:, k].reshape(rows, cols).tolist()
        above = [0] * (cols + 1)  # the row above, with the zero beyond its right end
        for r in range(rows):
            row, left = [], 0
            for c in range(cols):
                left = sorted((left, above[c], above[c + 1]))[1] + d[r][c]
                row.append(left)
            vectors[r, :, k] = row
            above = [*row, 0]
    return vectors


def shifted(plane: np.ndarray, offsets: tuple[tuple[int, int], ...]) -> list[np.ndarray]:
    """For a (..., h, w) ``plane``, the planes of each element's neighbour at each offset (0 outside)."""
    reach = max(max(abs(dy), abs(dx)) for dy, dx in offsets)
    pad = [(0, 0)] * (plane.ndim - 2) + [(reach, reach)] * 2
    padded = np.pad(plane, pad)
    h, w = plane.shape[-2:]
    return [padded[..., reach + dy : reach + dy + h, reach + dx : reach + dx + w] for dy, dx in offsets]


def pass_grids(plane: np.ndarray, stride: int, phases: tuple[tuple[int, int], ...]) -> list[np.ndarray]:
    """The views of a (..., h, w) ``plane`` at (y, x) with (y % stride, x % stride) each of ``phases``."""
    return [plane[..., a::stride, b::stride] for a, b in phases]


def intra_context(
    plane: np.ndarray,
    stride: int,
    phases: tuple[tuple[int, int], ...],
    offsets: tuple[tuple[int, int], ...],
    limit: int,
    bucket_of: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(C, n) int64 each: the bucket and prediction of every element of an I-frame pass (the
    elements of :func:`pass_grids`, phase after phase, each in raster order) from the (C, h, w)
    ``plane``'s values at its four neighbours' ``offsets``, each clipped to +-``limit``. With all four
    inside: the mean of the middle two, rounded half up, and the activity (sum of magnitudes + 2 x
    (largest - smallest)) / 2; at the frame's edge, the mean of those inside and their summed
    magnitudes scaled to four. The bucket is ``bucket_of[min(activity, len(bucket_of) - 1)]``
    (see :meth:`codec.coding.common.context.IntraPass.context`)."""

    def take(x: np.ndarray) -> np.ndarray:
        return np.concatenate([g.reshape(len(x), -1) for g in pass_grids(x, stride, phases)], axis=1)

    h, w = plane.shape[1:]
    clipped = np.clip(plane.astype(np.int64), -limit, limit)
    near = [take(n) for n in shifted(clipped, offsets)]
    inside = sum(take(n) for n in shifted(np.ones((1, h, w), np.int64), offsets))
    total, magnitude = sum(near), sum(np.abs(n) for n in near)
    low, high = np.minimum.reduce(near), np.maximum.reduce(near)
    whole = inside == len(offsets)
    edge = np.maximum(inside, 1)
    prediction = np.where(whole, (total - low - high + 1) // 2, (total + edge // 2) // edge)
    activity = np.where(whole, (magnitude + 2 * (high - low)) // 2, magnitude * 4 // edge)
    return bucket_of[np.minimum(activity, len(bucket_of) - 1)], prediction


def to_pixels(output: np.ndarray, height: int, width: int) -> np.ndarray:
    """The decoder network's (N, 3, H', W') float32 output in [0, 1] as (N, height, width, 3) uint8
    frames: cropped, times 255 (in float32), rounded half to even, then clipped to 0..255 (a cast
    of a value beyond uint8 differs between machines)."""
    x = output[:, :, :height, :width]
    return np.clip(np.rint(x * np.float32(255)), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


# The encoder's kernels: the motion search's planes and costs, the residual's levels.

LUMA_TOP = 1020  # the luma proxy's largest value, its interpolation's clipping bound
# Per quarter-pixel phase (fy, fx): the planes of luma_planes (0 G, 1 B, 2 H, 3 J) and the (row,
# column) offsets of its one source, or of the two it is the rounded-up mean of: interpolate's table.
QUARTER = {
    (0, 0): ((0, 0, 0),), (0, 1): ((0, 0, 0), (1, 0, 0)), (0, 2): ((1, 0, 0),),
    (0, 3): ((0, 0, 1), (1, 0, 0)), (1, 0): ((0, 0, 0), (2, 0, 0)), (2, 0): ((2, 0, 0),),
    (3, 0): ((0, 1, 0), (2, 0, 0)), (2, 2): ((3, 0, 0),), (1, 2): ((1, 0, 0), (3, 0, 0)),
    (3, 2): ((3, 0, 0), (1, 1, 0)), (2, 1): ((2, 0, 0), (3, 0, 0)), (2, 3): ((3, 0, 0), (2, 0, 1)),
    (1, 1): ((1, 0, 0), (2, 0, 0)), (1, 3): ((1, 0, 0), (2, 0, 1)), (3, 1): ((2, 0, 0), (1, 1, 0)),
    (3, 3): ((2, 0, 1), (1, 1, 0)),
}  # fmt: skip


def luma(frame: np.ndarray) -> np.ndarray:
    """R + 2G + B of an (..., 3) array of samples, as int16 (0..1020): the motion search's luma proxy."""
    frame = frame.astype(np.int16)
    return frame[..., 0] + 2 * frame[..., 1] + frame[..., 2]


def luma_planes(full: np.ndarray) -> np.ndarray:
    """(4, H - 6, W - 6) int16: the motion search's planes of the luma proxy of ``full`` (an edge-
    extended (H, W, 3) uint8 frame) on the grid full[3:-3, 3:-3]: G its samples, and by
    :func:`interpolate` (clipped to LUMA_TOP) B the half samples right of them, H those below them,
    J the centres between four. Every quarter-pixel phase is one of them or the mean of two (QUARTER)."""
    proxy = luma(full).astype(np.int32)[1:, 1:]  # the grid from its row and column 2
    halves: dict[str, np.ndarray] = {}
    phases = ((0, 0), (0, 2), (2, 0), (2, 2))
    return np.stack([interpolate(proxy, fy, fx, LUMA_TOP, halves) for fy, fx in phases]).astype(np.int16)


def _quarter(planes: np.ndarray, phase: int) -> np.ndarray:
    """The (H - 1, W - 1) plane of the luma proxy at quarter-pixel ``phase`` (fy * 4 + fx) from
    :func:`luma_planes`' planes (H, W)."""
    h, w = planes.shape[1] - 1, planes.shape[2] - 1
    sources = [planes[p, dy : dy + h, dx : dx + w].astype(np.int32) for p, dy, dx in QUARTER[divmod(phase, 4)]]
    return sources[0] if len(sources) == 1 else (sources[0] + sources[1] + 1) >> 1


def luma_sads(
    planes: np.ndarray,
    current: np.ndarray,
    by: np.ndarray,
    bx: np.ndarray,
    top: np.ndarray,
    left: np.ndarray,
    phase: np.ndarray,
    block: int,
) -> np.ndarray:
    """(N,) int32: per pair i, the sum of absolute differences between block (by[i], bx[i]) of
    ``current`` (a luma proxy plane, int16, its sides multiples of ``block``) and the block of
    :func:`luma_planes`' ``planes`` at quarter-pixel ``phase[i]`` (fy * 4 + fx) whose first sample
    is at (top[i], left[i]) on their grid. Every read lies inside both planes."""
    targets = sliding_window_view(current, (block, block))[by * block, bx * block].astype(np.int32)
    out = np.empty(len(top), np.int32)
    for p in np.unique(phase).tolist():
        which = np.flatnonzero(phase == p)
        fetched = sliding_window_view(_quarter(planes, p), (block, block))[top[which], left[which]]
        out[which] = np.abs(fetched - targets[which]).sum((1, 2))
    return out


def forward_residual(frame: np.ndarray, prediction: np.ndarray, qps: tuple[int, int, int]) -> np.ndarray:
    """The (ceil(H/4), ceil(W/4), 3, 4, 4) int32 levels of ``frame`` minus ``prediction`` (both
    (H, W, 3) uint8) at the components' ``qps``: :func:`codec.coding.common.transform.residual_levels`."""
    return residual_levels(frame.astype(np.int32) - prediction, qps)


def coarse_best(here: np.ndarray, there: np.ndarray, price: np.ndarray, small: int, scale: int) -> np.ndarray:
    """(rows, cols) int64: per ``small`` x ``small`` block of ``here`` (an integer plane), the offset
    (dy, dx), as dy * side + dx, of least SAD x ``scale`` + price[dy, dx] (float) against the window
    of ``there`` (side - 1 samples larger each way) at that offset; the first of equal costs."""
    side = price.shape[0]
    rows, cols = here.shape[0] // small, here.shape[1] // small
    windows = sliding_window_view(there, here.shape)  # (side, side, h, w), a view
    cost = np.empty((side, side, rows, cols))
    for dy in range(side):  # a row of offsets at a time bounds the temporaries
        sad = np.abs(windows[dy] - here).reshape(side, rows, small, cols, small).sum((2, 4))
        cost[dy] = sad * scale + price[dy][:, None, None]
    return cost.reshape(side * side, rows, cols).argmin(0)


def luma_sums(frame: np.ndarray, scale: int) -> np.ndarray:
    """(H // scale, W // scale) int32: the luma proxy of ``frame`` ((H, W, 3) uint8) summed over each
    ``scale`` x ``scale`` block, rows and columns past the last whole block left out: the coarse
    stage's downsampled frames."""
    h, w = frame.shape[0] // scale, frame.shape[1] // scale
    plane = luma(frame[: h * scale, : w * scale]).astype(np.int32)
    return plane.reshape(h, scale, w, scale).sum((1, 3), dtype=np.int32)
