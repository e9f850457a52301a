"""The P-frame ablation: one bundle, the first FRAMES frames of its video, every quality level,
coded with each way of making P-frames, through the real bitstream (encoded, written, decoded).

Variants: ``latent`` (the latent's difference from the previous frame's, format 2's only way),
``skip`` (motion compensation only: every block a skip), ``whole-pel`` / ``half-pel`` (motion +
integer residual with vectors of that precision), ``blocks-16`` / ``blocks-32`` (every 32x32 block
split into 16x16 ones, or none), ``motion`` (the default: quarter-pixel vectors, 32x32 blocks split
where it pays, integer residual) and ``motion-gop-N`` (the default with an I-frame every N frames).

Per variant and level: bytes, bpp, RGB PSNR, the mean predicted frame's bytes over the mean
I-frame's, I-frames, and decode frames/s; per variant, BD-rate and BD-PSNR against ``latent``
(codec.measure.bd: null where the curves overlap too little, with the reason).

With ``--against BENCH.json`` (a ``codec bench`` report of the same video and frames), each variant
is also compared with that report's strongest x264 variant.

Usage: python benchmarks/p_modes.py MODEL_DIR VIDEO [--frames 60] [--variants latent,skip,...] [--gops 60]
       [--against BENCH.json]
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import statistics
import time
from pathlib import Path

import numpy as np

from codec.coding.common.bitstream import I_FRAME, Header, read_chunks, write_stream
from codec.coding.decoder.decode import decode_stream
from codec.coding.encoder.encode import StreamEncoder
from codec.coding.encoder.inter_encode import InterOptions
from codec.io.bundle import load_bundle
from codec.io.psnr import mse, psnr_from_mse
from codec.io.video import exact_rate, iter_frames, probe
from codec.measure.bd import bd_figures, strongest_variant

VARIANTS = {
    "latent": ("latent", InterOptions()),
    "skip": ("motion", InterOptions(residual=False)),
    "whole-pel": ("motion", InterOptions(precision=0)),
    "half-pel": ("motion", InterOptions(precision=1)),
    "blocks-16": ("motion", InterOptions(blocks="16")),
    "blocks-32": ("motion", InterOptions(blocks="32")),
    "motion": ("motion", InterOptions()),
}


def run(bundle, frames: list[np.ndarray], fps, quality: int, p_mode: str, options: InterOptions, gop: int) -> dict:
    """One encode and decode of ``frames``: its figures."""
    h, w = frames[0].shape[:2]
    encoder = StreamEncoder(bundle, width=w, height=h, quality=quality, gop=gop, p_mode=p_mode, inter=options)
    started = time.perf_counter()
    chunks = [encoder.encode(frame, index).chunk for index, frame in enumerate(frames)]
    encode_seconds = time.perf_counter() - started
    out = io.BytesIO()
    write_stream(out, Header(bundle.decoder_sha256, w, h, fps, len(chunks), gop, quality), iter(chunks))
    data = out.getvalue()
    decoded, stats = decode_stream(data, bundle, "ablation")
    errors = [mse(d, f) for d, f in zip(decoded, frames, strict=True)]
    sizes = {
        t: [c.size for c in read_chunks(data, "ablation") if (c.frame_type == I_FRAME) == (t == "I")] for t in "IP"
    }
    return {
        "bytes": len(data),
        "bpp": len(data) * 8 / (len(frames) * w * h),
        "psnr_rgb": statistics.mean(psnr_from_mse(e) for e in errors),
        "p_over_i": statistics.mean(sizes["P"]) / statistics.mean(sizes["I"]) if sizes["P"] else None,
        "i_frames": len(sizes["I"]),
        "encode_fps": len(frames) / encode_seconds,
        "decode_fps": stats.to_dict()["decode_fps"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("video", type=Path)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--gops", type=int, nargs="*", default=[], help="longer GOPs to try with the default")
    parser.add_argument("--against", type=Path, help="a codec bench JSON report of the same frames")
    args = parser.parse_args()
    bundle = load_bundle(args.model)
    frames = list(itertools.islice(iter_frames(args.video), args.frames))
    fps = exact_rate(probe(args.video).fps)
    gop = bundle.meta.coding.gop
    plan = [(name, *VARIANTS[name], gop) for name in args.variants.split(",")]
    plan += [(f"motion-gop-{g}", "motion", InterOptions(), g) for g in args.gops]
    curves: dict[str, list[dict]] = {}
    print("| variant | quality | bytes | bpp | RGB PSNR | P / I bytes | I-frames | encode fps | decode fps |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, p_mode, options, g in plan:
        for quality in range(len(bundle.meta.coding.quality_steps)):
            row = run(bundle, frames, fps, quality, p_mode, options, g)
            curves.setdefault(name, []).append(row)
            ratio = "-" if row["p_over_i"] is None else f"{row['p_over_i']:.2f}"
            print(
                f"| {name} | {quality} | {row['bytes']:,} | {row['bpp']:.4f} | {row['psnr_rgb']:.2f} | {ratio} | "
                f"{row['i_frames']} | {row['encode_fps']:.1f} | {row['decode_fps']:.1f} |",
                flush=True,
            )
    anchors = {}
    if "latent" in curves:
        anchors["latent"] = curves["latent"]
    if args.against is not None:
        report = json.loads(args.against.read_text())
        best = strongest_variant(report["points"], "x264")
        anchors[f"x264 {best['variant']}"] = [
            p for p in report["points"] if (p["codec"], p["variant"]) == ("x264", best["variant"])
        ]
    for anchor, anchor_rows in anchors.items():
        print(f"\n| variant | BD-rate vs {anchor} | BD-PSNR vs {anchor} | BD-rate over its own PSNR range |")
        print("| --- | --- | --- | --- |")
        for name, rows in curves.items():
            if name == anchor:
                continue
            bd = bd_figures(rows, anchor_rows, "bpp", (name, anchor))
            rate = "n/a" if bd["bd_rate_pct"] is None else f"{bd['bd_rate_pct']:+.1f}%"
            gain = "n/a" if bd["bd_psnr_db"] is None else f"{bd['bd_psnr_db']:+.2f} dB"
            own = "n/a" if bd["bd_rate_own_range_pct"] is None else f"{bd['bd_rate_own_range_pct']:+.1f}%"
            print(f"| {name} | {rate} | {gain} | {own} |")


if __name__ == "__main__":
    main()
