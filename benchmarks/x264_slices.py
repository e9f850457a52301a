"""How much the suite's x264 figures move now that x264 codes one slice a frame (frame threads, as
its own command line runs) instead of FFmpeg's default slice threading (two slices on 2 CPUs).

Usage: python benchmarks/x264_slices.py [SUITE_DIR]   (default docs/bench-suite)
For each clip of the suite, every x264 point of the stored report (each variant and CRF) is
measured again with today's baselines, on the same source the bench feeds, and aecodec's stored
points are compared with both: the stored report's x264 bytes and BD figures (two slices) beside
the new ones (one slice). The aecodec points are the report's own (no model is trained); the
report is not rewritten. PSNR only: MS-SSIM is not measured again.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from machine import cpu_name

from codec.io.frame_store import open_store
from codec.io.video import codes_as_yuv420p, iter_source_yuv420p
from codec.measure.baselines import BASELINES, VARIANTS, encode_point, to_yuv420p
from codec.measure.bd import compare
from codec.measure.bench import suite_clips
from codec.measure.points import point_row


def _x264_rows(video: Path, seen: int) -> list[dict]:
    """Every x264 point of the bench, measured now, as the report's rows."""
    clip = open_store(video)
    own, colour, rows = codes_as_yuv420p(clip.info), clip.info.colour, []
    for variant in VARIANTS:
        for crf in BASELINES["x264"].crfs:
            fed = iter_source_yuv420p(video) if own else to_yuv420p(clip, colour)
            point = encode_point(fed, clip.info.fps, BASELINES["x264"], crf, variant, colour, clip)
            rows.append(point_row(point, clip, seen))
    return rows


def _x264_figures(report: dict) -> dict[str, tuple]:
    """Per x264 variant: aecodec's BD-rate, BD-rate over aecodec's range and BD-PSNR against it
    (stream bpp; None where the curves overlap too little, as the report's rule says)."""
    return {
        b["variant"]: (b["bd_rate_pct"], b["bd_rate_own_range_pct"], b["bd_psnr_db"])
        for b in report["bd"]
        if b["codec"] == "x264" and b["aecodec_rate"] == "bpp"
    }


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1f}%"


def main(folder: Path) -> None:
    print(f"CPU: {cpu_name()}")
    for name, video in suite_clips().items():
        report = json.loads((folder / f"{name}.json").read_text())
        stored = [r for r in report["points"] if r["codec"] == "x264"]
        fresh = _x264_rows(video, report["clip"]["frames_seen"])
        rows = [r for r in report["points"] if r["codec"] != "x264"] + fresh
        before, after = _x264_figures(report), _x264_figures(compare(rows, ["x264"]))
        ratio = sum(r["bytes"] for r in fresh) / sum(r["bytes"] for r in stored)
        print(f"{name}: x264 bytes over all its points, one slice / two: {ratio:.3f}")
        for variant, old in before.items():
            new = after[variant]
            rates = f"BD-rate {_pct(old[0])} -> {_pct(new[0])}, over aecodec's range {_pct(old[1])} -> {_pct(new[1])}"
            print(f"  aecodec vs x264 {variant}: {rates}, BD-PSNR {old[2]} -> {new[2]} dB")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/bench-suite"))
