"""What the P-frames' temporal contexts save, in real coded bytes: the bundle's video's latents at
every quality level, packed once with one P table per channel (the learned priors) and once with
tables per channel and context bucket fitted on the first FIT frames (default: all), as
``codec train`` fits them. The latents, and so the decoded frames, are the same in both.

Usage: python benchmarks/context_gain.py MODEL_DIR VIDEO [FIT]
"""

from __future__ import annotations

import sys

import numpy as np

from codec.coding.common.bitstream import I_FRAME, P_FRAME
from codec.coding.common.entropy_coding import CodingTables
from codec.coding.common.latent_codec import LatentPacker
from codec.coding.common.runtime import Networks
from codec.io.bundle import load_bundle
from codec.io.video import read_clip


def _bytes(tables: CodingTables, quality: int, q: np.ndarray, gop: int) -> tuple[int, int]:
    """(P bytes, I bytes) of the payloads of the integer latents ``q``."""
    packer, sizes = LatentPacker(tables, quality), {I_FRAME: 0, P_FRAME: 0}
    for t, latent in enumerate(q):
        kind = I_FRAME if t % gop == 0 else P_FRAME
        sizes[kind] += len(packer.pack(latent, t, kind, 0).payload)
    return sizes[P_FRAME], sizes[I_FRAME]


def main(model_dir: str, video: str, fit: int | None) -> None:
    bundle = load_bundle(model_dir)
    clip = read_clip(video)
    nets = Networks(bundle, clip.width, clip.height)
    latents = np.concatenate([nets.analyse(np.stack(clip.frames[i : i + 8])) for i in range(0, len(clip), 8)])
    prior, steps, gop = bundle.entropy()["prior"], bundle.meta.coding.quality_steps, bundle.meta.coding.gop
    per_channel = CodingTables.build(prior, steps)
    contexts = CodingTables.build(prior, steps, latents[:fit], gop)
    print(f"{clip.name}: {len(clip)} frames, GOP {gop}, context tables fitted on {len(latents[:fit])} frames")
    print("| quality | step | P bytes, one table a channel | P bytes, context tables | P saving | stream saving |")
    print("| --- | --- | --- | --- | --- | --- |")
    for quality, step in enumerate(steps):
        q = np.rint(latents / step).astype(np.int64)
        (p_one, i_bytes), (p_ctx, _) = _bytes(per_channel, quality, q, gop), _bytes(contexts, quality, q, gop)
        print(
            f"| {quality} | {step:g} | {p_one:,} | {p_ctx:,} | {1 - p_ctx / p_one:.1%} "
            f"| {1 - (p_ctx + i_bytes) / (p_one + i_bytes):.1%} |"
        )


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) == 4 else None)
