"""What the I-frames' refinement buys (format 7's refined levels), against the same M-frame QPs
without it.

For each refined level of a bundle: the stream as `codec encode --quality LEVEL` codes it (I-frames
= dec(q) + an integer refinement, M-frames at the QP the refined I-frame sets), then the ablation:
the default level's stream (the same latents, no refinement) with its M-frames forced to the median
QP the refined stream's M-frames used. Real bytes and RGB PSNR of the whole streams, and the
BD-rate of the refined curve against the ablation's over their overlap (with BD-PSNR).

Usage: python benchmarks/intra_refinement.py MODEL_DIR [--frames N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from codec.coding.common.bitstream import CHUNK_HEAD_SIZE, I_FRAME, M_FRAME
from codec.coding.common.runtime import Networks
from codec.coding.encoder.encode import CodedFrame, StreamEncoder
from codec.coding.encoder.inter_encode import mode_lambda
from codec.io.bundle import find_source, load_bundle
from codec.io.psnr import psnr
from codec.io.video import iter_frames
from codec.measure.bd import bd_figures


class _ForcedInterQP(StreamEncoder):
    """A StreamEncoder whose M-frames all take ``inter_qp``, whatever its I-frames' PSNR."""

    def __init__(self, *args: object, inter_qp: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.inter_qp = inter_qp

    def encode(self, frame: np.ndarray, index: int) -> CodedFrame:
        coded = super().encode(frame, index)
        if coded.chunk.frame_type == I_FRAME:
            self.qp, self.lam = self.inter_qp, mode_lambda(self.inter_qp)
        return coded


def _run(encoder: StreamEncoder, frames: list[np.ndarray]) -> dict[str, float]:
    """Code ``frames``: bpp (chunks with their heads), mean RGB PSNR, the M-frames' median QP."""
    size, qualities, qps = 0, [], []
    for index, frame in enumerate(frames):
        coded = encoder.encode(frame, index)
        size += CHUNK_HEAD_SIZE + len(coded.chunk.payload)
        qualities.append(psnr(coded.reconstruction, frame))
        if coded.chunk.frame_type == M_FRAME:
            qps.append(encoder.qp)
    h, w = frames[0].shape[:2]
    return {"bpp": 8 * size / (len(frames) * h * w), "psnr_rgb": float(np.mean(qualities)), "qp": float(np.median(qps))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--frames", type=int, default=None, help="the first N frames (default: all)")
    args = parser.parse_args()
    bundle = load_bundle(args.model)
    frames = list(iter_frames(find_source(bundle), args.frames))
    h, w = frames[0].shape[:2]
    nets, coding = Networks(bundle, w, h), bundle.meta.coding
    print(f"{args.model.name}: {w}x{h}, {len(frames)} frames, GOP {coding.gop}")
    print("| level | refined: bpp | dB | M-frames' median QP | unrefined at that QP: bpp | dB |")
    print("| --- | --- | --- | --- | --- | --- |")
    refined, ablation = [], []
    for level in range(len(coding.quality_steps), coding.levels):
        coded = _run(StreamEncoder(bundle, width=w, height=h, quality=level, nets=nets), frames)
        forced = _ForcedInterQP(bundle, width=w, height=h, nets=nets, inter_qp=int(coded["qp"]))
        plain = _run(forced, frames)
        refined.append(coded)
        ablation.append(plain)
        print(
            f"| {level} | {coded['bpp']:.4f} | {coded['psnr_rgb']:.2f} | {coded['qp']:g} "
            f"| {plain['bpp']:.4f} | {plain['psnr_rgb']:.2f} |"
        )
    figures = bd_figures(refined, ablation, "bpp", ("refined", "unrefined"))
    rate, quality = figures["bd_rate_pct"], figures["bd_psnr_db"]
    print("refined against unrefined, BD-rate: " + (figures["note_rate"] if rate is None else f"{rate:+.1f}%"))
    print("BD-PSNR: " + (figures["note_psnr"] if quality is None else f"{quality:+.2f} dB"))
    own, interval = figures["bd_rate_own_range_pct"], figures["bd_rate_own_range_interval"]
    print(
        "BD-rate over the refined levels' range: "
        + (figures["note_own_range"] if own is None else f"{own:+.1f}% ({interval[0]:.2f}-{interval[1]:.2f} dB)")
    )


if __name__ == "__main__":
    main()
