"""The I-frame's spatial contexts (format 5): what they save in real coded bytes, and what richer
models could, measured on a model's own video.

Real bytes: every frame's integer latent at every level is coded as an I-frame with format 5's
checkerboard contexts, under tables fitted to the video's latents as `codec train` fits them, and
with one table per channel (format 4's I-frame), the same latents and so the same decoded frames;
with the time to decode each.

Bounds, before building more:

The I-frame's integer latents q (at every quality level, on frames spread over the clip) are
measured in empirical entropy, per channel, under four models of increasing context:

- one distribution per channel (what today's per-channel tables approach);
- checkerboard: the anchors ((y + x) even) as today, the other half under one distribution per
  (channel, bucket), the bucket from the sum of |q - centre| of the four anchor neighbours in the
  same channel (integer thresholds, the temporal contexts' kind: decodable in two parallel passes);
- the same, the non-anchors coded as a difference from the mean of those four neighbours;
- the same, the anchors bucketed by the previous channel's 3x3 magnitudes (channels decoded in order).

Every model's distributions are fitted on the very latents they code, so these are bounds that
favour each model alike, not coded bytes. Then the default level's real stream says what share of
its bytes are I-frames: what a spatial context can act on.

Usage: python benchmarks/spatial_context.py MODEL_DIR [--frames 24]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from codec.coding.bitstream import I_FRAME
from codec.coding.encode import StreamEncoder
from codec.coding.entropy_coding import CodingTables, SymbolRangeDecoder, SymbolRangeEncoder
from codec.coding.latent_codec import LatentPacker, LatentUnpacker, _Models
from codec.coding.runtime import Networks
from codec.io.bundle import find_source, load_bundle
from codec.io.video import iter_frames

THRESHOLDS = np.array([1, 2, 3, 5, 7, 11, 16, 24, 36], np.int64)
BUCKETS = len(THRESHOLDS) + 1


def entropy_bits(values: np.ndarray) -> float:
    """Bits to code ``values`` under their own empirical distribution."""
    if values.size == 0:
        return 0.0
    _, counts = np.unique(values, return_counts=True)
    return float(-(counts * np.log2(counts / counts.sum())).sum())


def neighbours(a: np.ndarray, reach: int) -> np.ndarray:
    """Sum over the 4 neighbours (reach 1, a cross) or the 3x3 square (reach 2) of (T, C, h, w) ``a``."""
    p = np.pad(a, ((0, 0), (0, 0), (1, 1), (1, 1)))
    h, w = a.shape[2:]
    offsets = ((-1, 0), (1, 0), (0, -1), (0, 1)) if reach == 1 else [(y, x) for y in (-1, 0, 1) for x in (-1, 0, 1)]
    return sum(p[:, :, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in offsets)


def bucketed(values: np.ndarray, buckets: np.ndarray, where: np.ndarray) -> float:
    return sum(entropy_bits(values[where & (buckets == k)]) for k in range(BUCKETS))


def context_bits(r: np.ndarray) -> dict[str, float]:
    """Bits of the centred latents ``r`` (T, C, h, w) under each model."""
    _, channels, h, w = r.shape
    yy, xx = np.mgrid[0:h, 0:w]
    anchor = np.broadcast_to(((yy + xx) % 2 == 0)[None], (len(r), h, w))
    anchors = r * anchor[:, None]
    near = np.searchsorted(THRESHOLDS, neighbours(np.abs(anchors), 1), side="right")
    mean = np.floor_divide(neighbours(anchors, 1), 4)
    out = dict.fromkeys(("per channel", "checkerboard", "+ mean of the anchors", "+ anchors by previous channel"), 0.0)
    for c in range(channels):
        rc = r[:, c]
        out["per channel"] += entropy_bits(rc)
        plain = entropy_bits(rc[anchor])
        rest = bucketed(rc, near[:, c], ~anchor)
        out["checkerboard"] += plain + rest
        out["+ mean of the anchors"] += plain + bucketed(rc - mean[:, c], near[:, c], ~anchor)
        if c:
            above = np.searchsorted(THRESHOLDS, neighbours(np.abs(r[:, c - 1 : c]), 2)[:, 0], side="right")
            plain = bucketed(rc, above, anchor)
        out["+ anchors by previous channel"] += plain + rest
    return out


def real_bytes(tables: CodingTables, quality: int, q: np.ndarray) -> tuple[int, int, float, float]:
    """(format 5 bytes, format 4 bytes, ms to decode a frame in each) of the I-frame latents ``q``."""
    level, models = tables.levels[quality], _Models(tables)
    packer, unpacker = LatentPacker(tables, quality), LatentUnpacker(tables, quality, q.shape[1:])
    new = [packer.pack(frame, i, I_FRAME, 0) for i, frame in enumerate(q)]
    started = time.perf_counter()
    for chunk in new:
        unpacker.unpack(chunk)
    new_ms = 1000 * (time.perf_counter() - started) / len(q)
    old = []
    for frame in q:  # format 4: every channel whole under its own table
        coder = SymbolRangeEncoder()
        centred = frame - np.asarray(level.intra_centre, np.int64)[:, None, None]
        for c, table in enumerate(level.intra_table):
            coder.encode_block(centred[c], *models.get(table))
        old.append(coder.finish())
    started = time.perf_counter()
    for payload in old:
        decoder = SymbolRangeDecoder(payload)
        for table in level.intra_table:
            decoder.decode_block(q.shape[2] * q.shape[3], *models.get(table))
    old_ms = 1000 * (time.perf_counter() - started) / len(q)
    return sum(len(c.payload) for c in new), sum(len(p) for p in old), new_ms, old_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--frames", type=int, default=24)
    args = parser.parse_args()
    bundle = load_bundle(args.model)
    frames = list(iter_frames(find_source(bundle)))
    picked = np.stack([frames[i] for i in np.linspace(0, len(frames) - 1, args.frames).round().astype(int)])
    h, w = picked.shape[1:3]
    nets = Networks(bundle, w, h)
    y = np.concatenate([nets.analyse(picked[i : i + 4]) for i in range(0, len(picked), 4)])
    print(f"{args.model.name}: {w}x{h}, {len(picked)} frames' I-frame latents {y.shape[1:]}")
    steps = list(bundle.meta.coding.quality_steps)
    tables = CodingTables.build(bundle.entropy()["prior"], steps, y, bundle.meta.coding.gop)
    for level, step in enumerate(steps):
        new, old, new_ms, old_ms = real_bytes(tables, level, np.rint(y / step).astype(np.int64))
        print(
            f"  level {level}: real I-frame bytes {old / len(y):,.0f} -> {new / len(y):,.0f} a frame "
            f"({100 * (new / old - 1):+.1f}%); entropy decoding {old_ms:.1f} -> {new_ms:.1f} ms a frame"
        )
    print("  bounds (empirical entropies fitted on the same latents):")
    for level, step in enumerate(bundle.meta.coding.quality_steps):
        q = np.rint(y / step).astype(np.int64)
        r = q - np.median(q, axis=(0, 2, 3)).astype(np.int64)[None, :, None, None]
        bits = context_bits(r)
        base = bits.pop("per channel")
        gains = ", ".join(f"{name} {100 * (b / base - 1):+.1f}%" for name, b in bits.items())
        print(
            f"  level {level} (step {step}): {base / 8 / len(r):,.0f} bytes a frame, one distribution per channel; "
            f"{gains}"
        )
    encoder = StreamEncoder(bundle, width=w, height=h, nets=nets)
    sizes = [(c.chunk.frame_type, len(c.chunk.payload)) for c in (encoder.encode(f, i) for i, f in enumerate(frames))]
    intra = sum(n for t, n in sizes if t == I_FRAME)
    total = sum(n for _, n in sizes)
    count = sum(t == I_FRAME for t, _ in sizes)
    print(
        f"  default level, the real stream: {count} I-frames of {len(sizes)}, {intra:,} of {total:,} payload bytes "
        f"({100 * intra / total:.1f}%) are I-frames"
    )


if __name__ == "__main__":
    main()
