"""The I-frame's spatial contexts (format 6): what they save in real coded bytes, and what the
models before them could, measured on a model's own video.

Real bytes: every frame's integer latent at every level is coded as an I-frame with format 6's five
passes (codec.coding.common.context.INTRA_PASSES), under tables fitted to the video's latents as `codec
train` fits them, and with one learned table per channel (format 4's I-frame, what a bundle without
pass tables still codes), the same latents and so the same decoded frames; with the time to decode
each.

Bounds: the latents (at every quality level, on frames spread over the clip) in empirical entropy,
per channel, under three models of increasing context:

- one distribution per channel (what the per-channel tables approach);
- checkerboard (format 5): the anchors ((y + x) even) as above, the other half as its difference
  from the mean of its four anchor neighbours, one distribution per (channel, bucket), the bucket
  from the neighbours' summed magnitudes;
- the five passes of format 6: the same for every pass after the first, one distribution per
  (channel, pass, bucket).

Every model's distributions are fitted on the very latents they code, so these are bounds that
favour each model alike, not coded bytes. Then the default level's real stream says what share of
its bytes are I-frames: what a spatial context can act on.

Usage: python benchmarks/spatial_context.py MODEL_DIR [--frames 24]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from codec.coding.common.bitstream import I_FRAME
from codec.coding.common.context import CONTEXTS, CROSS, INTRA_PASSES, WHOLE, IntraPass
from codec.coding.common.entropy_coding import CodingTables
from codec.coding.common.latent_codec import LatentPacker, LatentUnpacker
from codec.coding.common.runtime import Networks
from codec.coding.encoder.encode import StreamEncoder
from codec.io.bundle import find_source, load_bundle
from codec.io.video import iter_frames


def entropy_bits(values: np.ndarray) -> float:
    """Bits to code ``values`` under their own empirical distribution."""
    if values.size == 0:
        return 0.0
    _, counts = np.unique(values, return_counts=True)
    return float(-(counts * np.log2(counts / counts.sum())).sum())


def predicted_bits(r: np.ndarray, passes: tuple[IntraPass, ...]) -> float:
    """Bits of the centred latents ``r`` (T, C, h, w): the first of ``passes`` per channel, each later
    one as differences from its prediction, per channel and bucket."""
    bits = sum(entropy_bits(values) for values in passes[0].take(r.transpose(1, 0, 2, 3)))
    for intra_pass in passes[1:]:
        pairs = [intra_pass.context(frame) for frame in r]
        buckets = np.stack([b for b, _ in pairs])
        residual = np.stack([intra_pass.take(frame) for frame in r]) - np.stack([p for _, p in pairs])
        for c in range(r.shape[1]):
            for k in range(CONTEXTS):
                bits += entropy_bits(residual[:, c][buckets[:, c] == k])
    return bits


CHECKERBOARD = (IntraPass(2, ((0, 0), (1, 1))), IntraPass(2, ((0, 1), (1, 0)), CROSS))  # format 5's halves


def context_bits(r: np.ndarray) -> dict[str, float]:
    """Bits of the centred latents ``r`` (T, C, h, w) under each model."""
    return {
        "per channel": predicted_bits(r, (WHOLE,)),
        "checkerboard (format 5)": predicted_bits(r, CHECKERBOARD),
        "five passes (format 6)": predicted_bits(r, INTRA_PASSES),
    }


def real_bytes(tables: CodingTables, plain: CodingTables, quality: int, q: np.ndarray) -> tuple[int, int, float, float]:
    """(format 6 bytes, one-table-per-channel bytes, ms to decode a frame in each) of the I-frame
    latents ``q``: under ``tables`` fitted to the video, and under ``plain``'s learned tables."""
    out = []
    for chosen in (tables, plain):
        packer, unpacker = LatentPacker(chosen, quality), LatentUnpacker(chosen, quality, q.shape[1:])
        chunks = [packer.pack(frame, i, I_FRAME, 0) for i, frame in enumerate(q)]
        started = time.perf_counter()
        for chunk in chunks:
            unpacker.unpack(chunk)
        out.append((sum(len(c.payload) for c in chunks), 1000 * (time.perf_counter() - started) / len(q)))
    (new, new_ms), (old, old_ms) = out
    return new, old, new_ms, old_ms


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
    prior = bundle.entropy()["prior"]
    tables = CodingTables.build(prior, steps, y, bundle.meta.coding.gop)
    learned = CodingTables.build(prior, steps)
    plain = CodingTables(tuple(replace(lv, intra_pass_table=None) for lv in learned.levels), learned.tables)
    for level, step in enumerate(steps):
        new, old, new_ms, old_ms = real_bytes(tables, plain, level, np.rint(y / step).astype(np.int64))
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
