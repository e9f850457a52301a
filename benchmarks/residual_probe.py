"""What motion compensation plus H.264's integer residual would give a P-frame, before it is in the
format: one GOP coded in closed loop (each P-frame predicted from the previous reconstruction),
every block coded (no skip or mode decisions yet). The I-frame is the bundle's own reconstruction at
its default level (or, without --bundle, the source frame itself, which flatters the P-frames).

Rates are real range-coded bytes: the vectors' (codec.coding.motion_coding) and the levels'
(codec.coding.residual_coding), each under the same eight Laplace tables of the grid.

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

from codec.coding.encode import StreamEncoder
from codec.coding.entropy_coding import SymbolRangeEncoder
from codec.coding.motion import Reference
from codec.coding.motion_search import search
from codec.coding.residual_coding import encode_residual
from codec.coding.transform import forward, from_ycocg, quantize, reconstruct, to_ycocg
from codec.io.bundle import load_bundle
from codec.io.psnr import psnr
from codec.io.video import iter_frames


def motion_lambda(qp: int) -> float:
    """x264's motion lambda at ``qp`` (0.85 x 2^((QP - 12) / 6) per bit of SAD), in luma-proxy units (x4)."""
    return 4 * 0.85 * 2 ** ((qp - 12) / 6)


def _to_blocks(plane: np.ndarray) -> np.ndarray:
    """(H, W, 3) with sides multiples of 4 -> (H/4, W/4, 3, 4, 4)."""
    h, w = plane.shape[:2]
    return plane.reshape(h // 4, 4, w // 4, 4, 3).transpose(0, 2, 4, 1, 3)


def _from_blocks(blocks: np.ndarray) -> np.ndarray:
    rows, cols = blocks.shape[:2]
    return blocks.transpose(0, 3, 1, 4, 2).reshape(rows * 4, cols * 4, 3)


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
    pad = ((0, -h % 4), (0, -w % 4), (0, 0))
    residual = np.pad(to_ycocg(current.astype(np.int32) - prediction), pad, mode="edge")
    coefficients = forward(_to_blocks(residual))
    qps = (qp, qp + chroma_offset, qp + chroma_offset)
    levels = np.stack([quantize(coefficients[:, :, k], q) for k, q in enumerate(qps)], 2)
    rebuilt = np.stack([reconstruct(levels[:, :, k], q) for k, q in enumerate(qps)], 2)
    decoded = from_ycocg(_from_blocks(rebuilt))[:h, :w]
    frame = np.clip(prediction + decoded, 0, 255).astype(np.uint8)
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
