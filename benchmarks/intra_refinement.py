"""What an integer residual refinement of the I-frame would buy (#29), measured before building it.

For frames spread over the clip, at every quality level: the I-frame alone (the autoencoder's
reconstruction of its range-coded latent), and the I-frame plus the M-frame coder run against that
reconstruction (block motion, which finds almost nothing to move, and an integer-transform residual)
at several QPs: a frame = dec(q) + residual, its bytes the latent's plus the residual's. Real
payload bytes and RGB PSNR, averaged over the frames.

Usage: python benchmarks/intra_refinement.py MODEL_DIR [--frames 6] [--qps 22,27,32,37]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from codec.coding.bitstream import I_FRAME
from codec.coding.entropy_coding import CodingTables
from codec.coding.inter_encode import encode_inter
from codec.coding.latent_codec import LatentPacker
from codec.coding.runtime import Networks
from codec.io.bundle import find_source, load_bundle
from codec.io.psnr import psnr
from codec.io.video import iter_frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--qps", default="22,27,32,37")
    args = parser.parse_args()
    qps = [int(q) for q in args.qps.split(",")]
    bundle = load_bundle(args.model)
    frames = list(iter_frames(find_source(bundle)))
    picked = [frames[i] for i in np.linspace(0, len(frames) - 1, args.frames).round().astype(int)]
    h, w = picked[0].shape[:2]
    nets, tables = Networks(bundle, w, h), CodingTables.from_bundle(bundle)
    print(f"{args.model.name}: {w}x{h}, {len(picked)} frames; bpp and RGB PSNR, averaged")
    for level, step in enumerate(bundle.meta.coding.quality_steps):
        rows = []
        for frame in picked:
            q = np.rint(nets.analyse(frame[None])[0] / step).astype(np.int64)
            base = nets.reconstruct(q, step)
            row = [len(LatentPacker(tables, level).pack(q, 0, I_FRAME, 0).payload), psnr(base, frame)]
            for qp in qps:
                refined = encode_inter(frame, base, qp)
                row += [row[0] + len(refined.payload), psnr(refined.reconstruction, frame)]
            rows.append(row)
        mean = np.mean(rows, 0)
        cells = [f"{8 * mean[2 * k] / (w * h):.4f} bpp {mean[2 * k + 1]:.2f} dB" for k in range(len(qps) + 1)]
        print(
            f"  level {level}: I alone {cells[0]} | "
            + " | ".join(f"+ QP {qp}: {c}" for qp, c in zip(qps, cells[1:], strict=True))
        )


if __name__ == "__main__":
    main()
