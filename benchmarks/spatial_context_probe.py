"""What a spatial context model could save on a model's I-frame latents, before building one.

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

Usage: python benchmarks/spatial_context_probe.py MODEL_DIR [--frames 24]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from codec.coding.bitstream import I_FRAME
from codec.coding.encode import StreamEncoder
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
