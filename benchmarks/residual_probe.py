"""What motion compensation plus H.264's integer residual gives a P-frame under settings the format
does not offer (the M-frame's block size is 16 and its chroma offset 6): one GOP coded in closed
loop (each P-frame predicted from the previous reconstruction), every block coded. The I-frame is
the bundle's own reconstruction at its default level (or, without --bundle, the source frame
itself, which flatters the P-frames).

Rates are real range-coded bytes: the vectors' (codec.coding.common.motion_coding) and the levels'
(codec.coding.common.residual_coding), each under the same eight Laplace tables of the grid.

Usage: python benchmarks/residual_probe.py VIDEO [--bundle DIR] [--start 0] [--frames 30] [--qp 24 28 32 36]
       [--chroma-offset 0] [--lambda-scale 1] [--block 16]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
from pathlib import Path

import numpy as np
from motion_probe import GRID_TABLES, motion_bytes

from codec.coding.common.entropy_coding import SymbolRangeEncoder
from codec.coding.common.motion import Reference
from codec.coding.common.residual_coding import encode_residual
from codec.coding.common.transform import component_qps, residual_from_levels, residual_levels
from codec.coding.encoder.encode import StreamEncoder
from codec.coding.encoder.inter_encode import motion_lambda
from codec.coding.encoder.motion_search import search
from codec.io.bundle import load_bundle
from codec.io.psnr import psnr
from codec.io.video import iter_frames


def code_p_frame(
    current: np.ndarray,
    previous: np.ndarray,
    qp: int,
    chroma_offset: int = 0,
    lambda_scale: float = 1.0,
    block: int = 16,
) -> tuple[np.ndarray, int, int]:
    """The reconstruction of ``current`` coded as motion from ``previous`` plus its quantized integer
    residual (Co and Cg at ``qp + chroma_offset``), and the bytes of its vectors and of its levels."""
    reference = Reference(previous, block)
    vectors = search(current, reference, lambda_scale * motion_lambda(qp))
    prediction = reference.predict(vectors).astype(np.int32)
    h, w = current.shape[:2]
    qps = component_qps(qp, chroma_offset)
    levels = residual_levels(current.astype(np.int32) - prediction, qps)
    frame = np.clip(prediction + residual_from_levels(levels, qps)[:h, :w], 0, 255).astype(np.uint8)
    coder = SymbolRangeEncoder()
    encode_residual(levels, coder, GRID_TABLES)
    return frame, motion_bytes(vectors), len(coder.finish())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("--bundle", type=Path)
    parser.add_argument("--start", type=int, default=0, help="the GOP's first frame")
    parser.add_argument("--frames", type=int, default=30, help="the GOP: one I-frame, then P-frames")
    parser.add_argument("--qp", type=int, nargs="+", default=[24, 28, 32, 36])
    parser.add_argument("--chroma-offset", type=int, default=0, help="Co and Cg are quantized at QP + this")
    parser.add_argument("--lambda-scale", type=float, default=1.0, help="times x264's motion lambda")
    parser.add_argument("--block", type=int, default=16, choices=(8, 16, 32), help="motion block size")
    args = parser.parse_args()
    frames = list(itertools.islice(iter_frames(args.video), args.start, args.start + args.frames))
    if args.bundle is not None:
        bundle = load_bundle(args.bundle)
        h, w = frames[0].shape[:2]
        coded = StreamEncoder(bundle, width=w, height=h).encode(frames[0], 0)
        first, i_bytes = coded.reconstruction, len(coded.chunk.payload)
        print(f"I-frame: the bundle's at its default level, {psnr(first, frames[0]):.2f} dB, {i_bytes} bytes")
    else:
        first = frames[0]
        print("I-frame: the source frame itself (flatters the P-frames)")
    print("| QP | P-frame PSNR mean (first / last) | P bytes (vectors + levels) | P bpp |")
    print("| --- | --- | --- | --- |")
    pixels = frames[0].shape[0] * frames[0].shape[1]
    for qp in args.qp:
        previous, psnrs, vectors, levels = first, [], [], []
        for current in frames[1:]:
            previous, vector_bytes, level_bytes = code_p_frame(
                current, previous, qp, args.chroma_offset, args.lambda_scale, args.block
            )
            psnrs.append(psnr(previous, current))
            vectors.append(vector_bytes)
            levels.append(level_bytes)
        per_frame = statistics.mean(vectors) + statistics.mean(levels)
        print(
            f"| {qp} | {statistics.mean(psnrs):.2f} ({psnrs[0]:.2f} / {psnrs[-1]:.2f}) | {per_frame:.0f} "
            f"({statistics.mean(vectors):.0f} + {statistics.mean(levels):.0f}) | {per_frame * 8 / pixels:.4f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
