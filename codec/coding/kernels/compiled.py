"""The kernels compiled with numba: the same signatures and integers as :mod:`.reference`."""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np

from codec.coding.common.transform import dequantize, quantizer
from codec.coding.kernels.reference import LUMA_TOP


def _jit(function: Callable) -> Callable:
    """``function`` compiled without the GIL (so a decode pipeline's threads can use both cores),
    cached on disk where numba finds a writable place, else compiled afresh in each process."""
    try:
        return numba.njit(cache=True, nogil=True)(function)
    except RuntimeError:  # numba found no writable cache folder (a read-only install, no NUMBA_CACHE_DIR)
        return numba.njit(nogil=True)(function)


@_jit
def _add_residual(
    prediction: np.ndarray, blocks: np.ndarray, levels: np.ndarray, scales: np.ndarray, out: np.ndarray
) -> None:
    """Per 4x4 block of ``blocks``: its levels x scales, H.264's inverse butterfly along rows then
    columns, (x + 32) >> 6, YCoCg-R to RGB, added to the prediction and clipped into ``out``, which
    holds the prediction already (the other blocks add nothing)."""
    h, w = prediction.shape[0], prediction.shape[1]
    cols = -(-w // 4)
    block = np.empty((3, 4, 4), np.int64)
    for n in range(blocks.shape[0]):
        top, left = 4 * (blocks[n] // cols), 4 * (blocks[n] % cols)
        bottom, right = min(top + 4, h), min(left + 4, w)
        for k in range(3):
            for i in range(4):
                w0 = np.int64(levels[n, k, i, 0]) * scales[k, i, 0]
                w1 = np.int64(levels[n, k, i, 1]) * scales[k, i, 1]
                w2 = np.int64(levels[n, k, i, 2]) * scales[k, i, 2]
                w3 = np.int64(levels[n, k, i, 3]) * scales[k, i, 3]
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


def add_residual(
    prediction: np.ndarray, blocks: np.ndarray, levels: np.ndarray, qps: tuple[int, int, int]
) -> np.ndarray:
    """See :func:`codec.coding.kernels.reference.add_residual`."""
    scales = np.stack([dequantize(np.ones((4, 4), np.int32), qp) for qp in qps]).astype(np.int64)
    prediction = np.ascontiguousarray(prediction, np.uint8)
    out = prediction.copy()
    _add_residual(
        prediction, np.ascontiguousarray(blocks, np.int64), np.ascontiguousarray(levels, np.int32), scales, out
    )
    return out


# The planes a block's samples come from: G the integer samples, B the half samples right of them,
# H those below them, J the centres, each indexed by the integer sample's row and column in the block.
G, B, H, J = range(4)
# Per quarter-pixel phase fy * 4 + fx: (plane, row offset, column offset) of its first source and
# of its second (the rounded-up mean of the two), or the first alone where the second plane is -1:
# reference.interpolate's table.
_SOURCES = {
    (0, 0): ((G, 0, 0), (-1, 0, 0)), (0, 1): ((G, 0, 0), (B, 0, 0)), (0, 2): ((B, 0, 0), (-1, 0, 0)),
    (0, 3): ((G, 0, 1), (B, 0, 0)), (1, 0): ((G, 0, 0), (H, 0, 0)), (2, 0): ((H, 0, 0), (-1, 0, 0)),
    (3, 0): ((G, 1, 0), (H, 0, 0)), (2, 2): ((J, 0, 0), (-1, 0, 0)), (1, 2): ((B, 0, 0), (J, 0, 0)),
    (3, 2): ((J, 0, 0), (B, 1, 0)), (2, 1): ((H, 0, 0), (J, 0, 0)), (2, 3): ((J, 0, 0), (H, 0, 1)),
    (1, 1): ((B, 0, 0), (H, 0, 0)), (1, 3): ((B, 0, 0), (H, 0, 1)), (3, 1): ((H, 0, 0), (B, 1, 0)),
    (3, 3): ((H, 0, 1), (B, 1, 0)),
}  # fmt: skip
PHASES = np.array([[*_SOURCES[(fy, fx)][0], *_SOURCES[(fy, fx)][1]] for fy in range(4) for fx in range(4)], np.int64)


@_jit
def _six_down(source: np.ndarray, y: int, dst: np.ndarray, width: int, shift: int, start: int = 0) -> None:
    """``dst[x]``: the 6-tap filter down rows y..y+5 of ``source`` at column start + x, rounded off
    by ``shift`` bits and clipped to 0..255, for x below ``width``."""
    a, b, c, d = source[y, start:], source[y + 1, start:], source[y + 2, start:], source[y + 3, start:]
    e, f = source[y + 4, start:], source[y + 5, start:]
    for x in range(width):
        s = np.int32(a[x]) + f[x] - 5 * (np.int32(b[x]) + e[x]) + 20 * (np.int32(c[x]) + d[x])
        dst[x] = min(max((s + (1 << (shift - 1))) >> shift, 0), 255)


@_jit
def _six_rows(line: np.ndarray, dst: np.ndarray, count: int, shift: int) -> None:
    """``dst[x]`` for x below ``count``: the 6-tap filter along ``line`` (interleaved samples, so
    neighbours are 3 apart) from x, rounded off by ``shift`` bits and clipped (no rounding or
    clipping with ``shift`` 0: the unrounded sums)."""
    for x in range(count):
        s = (
            np.int32(line[x])
            + line[x + 15]
            - 5 * (np.int32(line[x + 3]) + line[x + 12])
            + 20 * (np.int32(line[x + 6]) + line[x + 9])
        )
        dst[x] = s if shift == 0 else min(max((s + (1 << (shift - 1))) >> shift, 0), 255)


@_jit
def _predict_frame(frame: np.ndarray, vectors: np.ndarray, block: int, limit: int, out: np.ndarray) -> None:
    """Each block of ``out`` ((H, 3W) uint8, rows of interleaved R, G and B, as ``frame``) from its
    own window of ``frame``: read in place where it lies inside the frame, else copied with edge
    replication; a whole-pixel vector copies, any other phase makes the half-sample planes it reads
    for that block alone (none of a still block's work is done for the frame)."""
    height, width = frame.shape[0], frame.shape[1] // 3
    n = block + 5
    window = np.empty((n, 3 * n), np.uint8)
    planes = np.empty((4, block + 1, 3 * (block + 1)), np.int32)
    sums = np.empty((n, 3 * block), np.int32)
    for r in range(vectors.shape[0]):
        for c in range(vectors.shape[1]):
            vy = min(max(vectors[r, c, 0], -limit), limit)
            vx = min(max(vectors[r, c, 1], -limit), limit)
            y0, x0 = r * block + (vy >> 2) - 2, c * block + (vx >> 2) - 2  # the window's first sample
            if y0 >= 0 and x0 >= 0 and y0 + n <= height and x0 + n <= width:
                src, sy, sx = frame, y0, 3 * x0
            else:
                for i in range(n):
                    y = min(max(y0 + i, 0), height - 1)
                    for j in range(n):
                        x = 3 * min(max(x0 + j, 0), width - 1)
                        window[i, 3 * j], window[i, 3 * j + 1], window[i, 3 * j + 2] = (
                            frame[y, x],
                            frame[y, x + 1],
                            frame[y, x + 2],
                        )
                src, sy, sx = window, 0, 0
            rows, span = min(block, height - r * block), 3 * min(block, width - c * block)
            top, left = r * block, 3 * c * block
            p1, r1, c1, p2, r2, c2 = PHASES[(vy & 3) * 4 + (vx & 3)]
            if p2 < 0 and p1 == G:
                for i in range(rows):
                    out[top + i, left : left + span] = src[sy + 2 + i, sx + 6 : sx + 6 + span]
                continue
            if p1 == G or p2 == G:
                for i in range(block + 1):
                    planes[G, i, :] = src[sy + 2 + i, sx + 6 : sx + 9 + 3 * block]
            if p1 == B or p2 == B:
                for i in range(block + 1):
                    _six_rows(src[sy + 2 + i, sx:], planes[B, i], 3 * block, 5)
            if p1 == H or p2 == H:
                for i in range(block):
                    _six_down(src, sy + i, planes[H, i], 3 * block + 3, 5, sx + 6)
            if p1 == J or p2 == J:
                for y in range(n):
                    _six_rows(src[sy + y, sx:], sums[y], 3 * block, 0)
                for i in range(block):
                    _six_down(sums, i, planes[J, i], 3 * block, 10)
            for i in range(rows):
                first, line = planes[p1, i + r1, 3 * c1 :], out[top + i, left:]
                if p2 < 0:
                    for x in range(span):
                        line[x] = first[x]
                else:
                    second = planes[p2, i + r2, 3 * c2 :]
                    for x in range(span):
                        line[x] = (first[x] + second[x] + 1) >> 1


def predict_frame(frame: np.ndarray, vectors: np.ndarray, block: int, limit: int) -> np.ndarray:
    """See :func:`codec.coding.kernels.reference.predict_frame`."""
    height, width = frame.shape[:2]
    out = np.empty((height, width, 3), np.uint8)
    rows = np.ascontiguousarray(frame, np.uint8).reshape(height, 3 * width)
    _predict_frame(rows, np.ascontiguousarray(vectors, np.int64), block, limit, out.reshape(height, 3 * width))
    return out


@_jit
def _from_medians(differences: np.ndarray, rows: int, cols: int, vectors: np.ndarray) -> None:
    above = np.zeros(cols + 1, np.int64)  # the row above, with the zero beyond its right end
    for k in range(2):
        above[:] = 0
        for r in range(rows):
            left = 0
            for c in range(cols):
                a, b, d = left, above[c], above[c + 1]
                left = max(min(a, b), min(max(a, b), d)) + differences[r * cols + c, k]  # the middle one, plus
                vectors[r, c, k] = left
            for c in range(cols):
                above[c] = vectors[r, c, k]


def from_medians(differences: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """See :func:`codec.coding.kernels.reference.from_medians`."""
    vectors = np.empty((rows, cols, 2), np.int64)
    _from_medians(np.ascontiguousarray(differences, np.int64), rows, cols, vectors)
    return vectors


@_jit
def _intra_context(
    plane: np.ndarray,
    stride: int,
    phases: np.ndarray,
    offsets: np.ndarray,
    limit: int,
    bucket_of: np.ndarray,
    buckets: np.ndarray,
    prediction: np.ndarray,
) -> None:
    channels, h, w = plane.shape
    count, top = offsets.shape[0], bucket_of.shape[0] - 1
    for k in range(channels):
        i = 0
        for p in range(phases.shape[0]):
            for y in range(phases[p, 0], h, stride):
                for x in range(phases[p, 1], w, stride):
                    inside = total = magnitude = 0
                    low, high = limit, -limit
                    for o in range(count):
                        ny, nx = y + offsets[o, 0], x + offsets[o, 1]
                        value = 0  # a neighbour beyond the frame counts as 0
                        if 0 <= ny < h and 0 <= nx < w:
                            value = min(max(plane[k, ny, nx], -limit), limit)
                            inside += 1
                        total += value
                        magnitude += abs(value)
                        low, high = min(low, value), max(high, value)
                    if inside == count:
                        prediction[k, i] = (total - low - high + 1) // 2
                        activity = (magnitude + 2 * (high - low)) // 2
                    else:
                        edge = max(inside, 1)
                        prediction[k, i] = (total + edge // 2) // edge
                        activity = magnitude * 4 // edge
                    buckets[k, i] = bucket_of[min(activity, top)]
                    i += 1


def intra_context(
    plane: np.ndarray,
    stride: int,
    phases: tuple[tuple[int, int], ...],
    offsets: tuple[tuple[int, int], ...],
    limit: int,
    bucket_of: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """See :func:`codec.coding.kernels.reference.intra_context`."""
    channels, h, w = plane.shape
    n = sum(len(range(a, h, stride)) * len(range(b, w, stride)) for a, b in phases)
    buckets, prediction = np.empty((channels, n), np.int64), np.empty((channels, n), np.int64)
    _intra_context(
        np.ascontiguousarray(plane, np.int64),
        stride,
        np.array(phases, np.int64).reshape(-1, 2),
        np.array(offsets, np.int64).reshape(-1, 2),
        limit,
        np.ascontiguousarray(bucket_of, np.int64),
        buckets,
        prediction,
    )
    return buckets, prediction


@_jit
def _to_pixels(output: np.ndarray, out: np.ndarray) -> None:
    scale, top = np.float32(255), np.float32(255)
    for n in range(out.shape[0]):
        for k in range(3):
            plane = output[n, k]
            for y in range(out.shape[1]):
                row, dst = plane[y], out[n, y]
                for x in range(out.shape[2]):
                    dst[x, k] = np.uint8(min(max(np.rint(row[x] * scale), np.float32(0)), top))


def to_pixels(output: np.ndarray, height: int, width: int) -> np.ndarray:
    """See :func:`codec.coding.kernels.reference.to_pixels`; the frames come out contiguous."""
    out = np.empty((output.shape[0], height, width, 3), np.uint8)
    _to_pixels(np.ascontiguousarray(output, np.float32), out)
    return out


# The encoder's kernels: the motion search's planes and costs, the residual's levels.


@_jit
def _six_taps(
    a: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    d: np.ndarray,
    e: np.ndarray,
    f: np.ndarray,
    dst: np.ndarray,
    shift: int,
) -> None:
    """``dst[x]``: the 6-tap filter over a[x] .. f[x], rounded off by ``shift`` bits and clipped to
    0..LUMA_TOP (no rounding or clipping with ``shift`` 0: the sums). Rows or row offsets of a
    plane, so the loop runs over contiguous samples (vectorized)."""
    for x in range(dst.shape[0]):
        s = a[x] + f[x] - 5 * (b[x] + e[x]) + 20 * (c[x] + d[x])
        dst[x] = s if shift == 0 else min(max((s + (1 << (shift - 1))) >> shift, 0), LUMA_TOP)


@_jit
def _luma_planes(full: np.ndarray, planes: np.ndarray) -> None:
    """``planes`` (4, H - 6, W - 6) from ``full`` ((H, 3W) uint8, rows of interleaved R, G, B), row
    by row: the luma proxy's rows and their unrounded 6-tap sums (for J) kept in rings of 8 rows,
    each made once, so the scratch stays in cache."""
    width, cols = full.shape[1] // 3, planes.shape[2]
    proxy, sums = np.empty((8, width), np.int32), np.empty((8, cols), np.int32)

    def fill(y: int) -> None:
        src, dst = full[y], proxy[y % 8]
        for x in range(width):
            dst[x] = np.int32(src[3 * x]) + 2 * np.int32(src[3 * x + 1]) + src[3 * x + 2]
        _six_taps(dst[1:], dst[2:], dst[3:], dst[4:], dst[5:], dst[6:], sums[y % 8], 0)

    for y in range(1, 6):
        fill(y)
    for y in range(planes.shape[1]):
        fill(y + 6)
        line = proxy[(y + 3) % 8]
        planes[0, y, :] = line[3 : 3 + cols]  # G
        _six_taps(line[1:], line[2:], line[3:], line[4:], line[5:], line[6:], planes[1, y], 5)  # B: along the row
        p = [proxy[(y + k) % 8, 3:] for k in range(1, 7)]
        _six_taps(p[0], p[1], p[2], p[3], p[4], p[5], planes[2, y], 5)  # H: down the columns
        q = [sums[(y + k) % 8] for k in range(1, 7)]
        _six_taps(q[0], q[1], q[2], q[3], q[4], q[5], planes[3, y], 10)  # J: down the row sums


def luma_planes(full: np.ndarray) -> np.ndarray:
    """See :func:`codec.coding.kernels.reference.luma_planes`."""
    rows, cols = full.shape[:2]
    planes = np.empty((4, rows - 6, cols - 6), np.int16)
    _luma_planes(np.ascontiguousarray(full, np.uint8).reshape(rows, 3 * cols), planes)
    return planes


@_jit
def _luma_sads(
    planes: np.ndarray,
    current: np.ndarray,
    by: np.ndarray,
    bx: np.ndarray,
    top: np.ndarray,
    left: np.ndarray,
    phase: np.ndarray,
    block: int,
    out: np.ndarray,
) -> None:
    for i in range(top.shape[0]):
        p1, r1, c1, p2, r2, c2 = PHASES[phase[i]]
        y0, x0 = by[i] * block, bx[i] * block
        y1, x1, y2, x2 = top[i] + r1, left[i] + c1, top[i] + r2, left[i] + c2
        total = 0
        for r in range(block):
            target, first = current[y0 + r, x0 : x0 + block], planes[p1, y1 + r, x1 : x1 + block]
            if p2 < 0:
                for x in range(block):
                    total += abs(np.int32(target[x]) - first[x])
            else:
                second = planes[p2, y2 + r, x2 : x2 + block]
                for x in range(block):
                    total += abs(np.int32(target[x]) - ((np.int32(first[x]) + second[x] + 1) >> 1))
        out[i] = total


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
    """See :func:`codec.coding.kernels.reference.luma_sads`; reads outside either plane are refused."""
    top, left, phase, by, bx = (np.ascontiguousarray(a, np.int64) for a in (top, left, phase, by, bx))
    out = np.empty(len(top), np.int32)
    if not len(top):
        return out
    if (
        min(top.min(), left.min(), by.min(), bx.min(), phase.min()) < 0
        or phase.max() > 15
        or top.max() + block >= planes.shape[1]
        or left.max() + block >= planes.shape[2]
        or (by.max() + 1) * block > current.shape[0]
        or (bx.max() + 1) * block > current.shape[1]
    ):
        raise ValueError("luma_sads: a block reaches outside its plane")
    planes, current = np.ascontiguousarray(planes, np.int16), np.ascontiguousarray(current, np.int16)
    _luma_sads(planes, current, by, bx, top, left, phase, block, out)
    return out


@_jit
def _forward_residual(
    frame: np.ndarray,
    prediction: np.ndarray,
    scales: np.ndarray,
    shifts: np.ndarray,
    offsets: np.ndarray,
    out: np.ndarray,
) -> None:
    """Per 4x4 block of ``out``: the residual (rows and columns beyond the frame its last ones'),
    YCoCg-R, H.264's forward butterfly along rows then columns, and each coefficient quantized."""
    h, w = frame.shape[0], frame.shape[1] // 3
    block = np.empty((3, 4, 4), np.int64)
    for r in range(out.shape[0]):
        for c in range(out.shape[1]):
            for i in range(4):
                y = min(4 * r + i, h - 1)
                for j in range(4):
                    x = 3 * min(4 * c + j, w - 1)
                    red = np.int64(frame[y, x]) - prediction[y, x]
                    green = np.int64(frame[y, x + 1]) - prediction[y, x + 1]
                    blue = np.int64(frame[y, x + 2]) - prediction[y, x + 2]
                    co = red - blue
                    t = blue + (co >> 1)
                    cg = green - t
                    block[0, i, j], block[1, i, j], block[2, i, j] = t + (cg >> 1), co, cg
            for k in range(3):
                for i in range(4):
                    x0, x1, x2, x3 = block[k, i, 0], block[k, i, 1], block[k, i, 2], block[k, i, 3]
                    a, b, d, e = x0 + x3, x1 + x2, x1 - x2, x0 - x3
                    block[k, i, 0], block[k, i, 1], block[k, i, 2], block[k, i, 3] = a + b, 2 * e + d, a - b, e - 2 * d
                for j in range(4):
                    x0, x1, x2, x3 = block[k, 0, j], block[k, 1, j], block[k, 2, j], block[k, 3, j]
                    a, b, d, e = x0 + x3, x1 + x2, x1 - x2, x0 - x3
                    block[k, 0, j], block[k, 1, j], block[k, 2, j], block[k, 3, j] = a + b, 2 * e + d, a - b, e - 2 * d
                for i in range(4):
                    for j in range(4):
                        v = block[k, i, j]
                        level = (abs(v) * scales[k, i, j] + offsets[k]) >> shifts[k]
                        out[r, c, k, i, j] = -level if v < 0 else level


def forward_residual(frame: np.ndarray, prediction: np.ndarray, qps: tuple[int, int, int]) -> np.ndarray:
    """See :func:`codec.coding.kernels.reference.forward_residual`."""
    h, w = frame.shape[:2]
    scales, shifts, offsets = zip(*(quantizer(qp) for qp in qps), strict=True)
    out = np.empty((-(-h // 4), -(-w // 4), 3, 4, 4), np.int32)
    _forward_residual(
        np.ascontiguousarray(frame, np.uint8).reshape(h, 3 * w),
        np.ascontiguousarray(prediction, np.uint8).reshape(h, 3 * w),
        np.stack(scales).astype(np.int64),
        np.array(shifts, np.int64),
        np.array(offsets, np.int64),
        out,
    )
    return out


@_jit
def _coarse_best(
    here: np.ndarray, there: np.ndarray, price: np.ndarray, small: int, scale: int, best: np.ndarray
) -> None:
    """Offset after offset, the absolute differences of whole rows (contiguous: vectorized), summed
    per block; a block keeps an offset only if it costs strictly less (the first of equal costs)."""
    h, w = here.shape
    rows, cols = best.shape
    side = price.shape[0]
    least = np.full((rows, cols), np.inf)
    difference = np.empty(w, np.int32)
    sads = np.empty((rows, cols), np.int64)
    for dy in range(side):
        for dx in range(side):
            sads[:] = 0
            for y in range(h):
                window, row = there[y + dy, dx : dx + w], here[y]
                for x in range(w):
                    difference[x] = abs(window[x] - row[x])
                for c in range(cols):
                    total = 0
                    for x in range(c * small, (c + 1) * small):
                        total += difference[x]
                    sads[y // small, c] += total
            for r in range(rows):
                for c in range(cols):
                    cost = np.float64(sads[r, c] * scale) + price[dy, dx]
                    if cost < least[r, c]:
                        least[r, c], best[r, c] = cost, dy * side + dx


def coarse_best(here: np.ndarray, there: np.ndarray, price: np.ndarray, small: int, scale: int) -> np.ndarray:
    """See :func:`codec.coding.kernels.reference.coarse_best`."""
    side = price.shape[0]
    if there.shape != (here.shape[0] + side - 1, here.shape[1] + side - 1):
        raise ValueError(f"coarse_best: a {there.shape} window for a {here.shape} plane and {side} offsets")
    best = np.zeros((here.shape[0] // small, here.shape[1] // small), np.int64)
    _coarse_best(
        np.ascontiguousarray(here, np.int32),
        np.ascontiguousarray(there, np.int32),
        np.ascontiguousarray(price, np.float64),
        small,
        scale,
        best,
    )
    return best


@_jit
def _luma_sums(frame: np.ndarray, scale: int, out: np.ndarray) -> None:
    """Row by row: the row's luma proxy (contiguous: vectorized), then its blocks' sums added to ``out``."""
    width = out.shape[1] * scale
    line = np.empty(width, np.int32)
    for y in range(out.shape[0] * scale):
        src, sums = frame[y], out[y // scale]
        for x in range(width):
            line[x] = np.int32(src[3 * x]) + 2 * np.int32(src[3 * x + 1]) + src[3 * x + 2]
        for c in range(out.shape[1]):
            total = 0
            for x in range(c * scale, (c + 1) * scale):
                total += line[x]
            sums[c] += total


def luma_sums(frame: np.ndarray, scale: int) -> np.ndarray:
    """See :func:`codec.coding.kernels.reference.luma_sums`."""
    h, w = frame.shape[:2]
    out = np.zeros((h // scale, w // scale), np.int32)
    _luma_sums(np.ascontiguousarray(frame, np.uint8).reshape(h, 3 * w), scale, out)
    return out
