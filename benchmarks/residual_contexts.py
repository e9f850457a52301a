"""What format 6's contexts for the M-frames' residual levels save, in real coded bytes: a bundle's
video coded at every quality level with the default encoder, each M-frame's levels read back from
its payload and coded again the way format 5 coded them (one set per component and group of
positions), the rest of the payload (QP, vectors, flags) unchanged; with the time to decode an
M-frame.

Usage: python benchmarks/residual_contexts.py MODEL_DIR [--frames 60]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from codec.coding.common.bitstream import M_FRAME
from codec.coding.common.entropy_coding import SymbolRangeDecoder, SymbolRangeEncoder
from codec.coding.common.inter_frame import QP_BITS, decode_inter, inter_tables, residual_grid
from codec.coding.common.motion import Reference
from codec.coding.common.motion_coding import decode_motion
from codec.coding.common.residual_coding import GROUPS, ZIGZAG, decode_residual, encode_levels
from codec.coding.encoder.encode import StreamEncoder
from codec.io.bundle import find_source, load_bundle
from codec.io.video import iter_frames


def level_bytes(levels: np.ndarray, contexts: bool) -> int:
    """Bytes of a frame's (rows, cols, 3, 4, 4) ``levels`` alone, with format 6's contexts or format 5's sets."""
    tables, _ = inter_tables()
    coder = SymbolRangeEncoder()
    rows, cols = levels.shape[:2]
    for k in range(3):
        scans = levels[:, :, k].reshape(-1, 16)[:, ZIGZAG].astype(np.int64)
        coded = np.abs(scans).sum(1) > 0
        if contexts:
            encode_levels(scans[coded], coded.reshape(rows, cols), coder, tables)
        else:
            for group in GROUPS:
                coder.encode_choosing(scans[coded, group].ravel(), tables)
    return len(coder.finish())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--frames", type=int, default=60)
    args = parser.parse_args()
    bundle = load_bundle(args.model)
    frames = list(iter_frames(find_source(bundle), args.frames))
    h, w = frames[0].shape[:2]
    tables, models = inter_tables()
    print(f"{args.model.name}: {w}x{h}, the first {len(frames)} frames, every level")
    for quality in range(len(bundle.meta.coding.quality_steps)):
        encoder = StreamEncoder(bundle, width=w, height=h, quality=quality)
        payload = new = old = 0
        seconds, m_frames, previous = 0.0, 0, None
        for index, frame in enumerate(frames):
            coded = encoder.encode(frame, index)
            chunk = coded.chunk
            if chunk.frame_type == M_FRAME:
                started = time.perf_counter()
                decode_inter(chunk.payload, previous, "benchmark")
                seconds += time.perf_counter() - started
                coder = SymbolRangeDecoder(chunk.payload)
                coder.decode_bits(np.array([QP_BITS]))
                reference = Reference(previous, 16)
                decode_motion(coder, reference.rows, reference.cols, tables, models, "benchmark")
                levels = decode_residual(coder, *residual_grid(h, w), tables, models, "benchmark").dense()
                payload += len(chunk.payload)
                new += level_bytes(levels, True)
                old += level_bytes(levels, False)
                m_frames += 1
            previous = coded.reconstruction
        before = payload - new + old
        print(
            f"  level {quality}: {m_frames} M-frames, {before / m_frames:,.0f} -> {payload / m_frames:,.0f} bytes each "
            f"({100 * (payload / before - 1):+.1f}%; levels alone {100 * (new / old - 1):+.1f}%, "
            f"{100 * old / before:.0f}% of the payload before); decoding an M-frame {1000 * seconds / m_frames:.1f} ms"
        )


if __name__ == "__main__":
    main()
