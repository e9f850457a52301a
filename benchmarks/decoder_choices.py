"""Decoder architectures side by side on one clip, to choose the default from: decoder bytes as
shipped, parameters, MAC/pixel, the network's decode speed at 640x272 and 1280x720, RGB PSNR and
bpp (stream / total) at the default level, and BD-rate (stream and total bpp) against the first
bundle given and against the strongest x264 variant of a `codec bench` report on the same clip.

Usage: python benchmarks/decoder_choices.py [--estimate] [--no-speed] VIDEO BENCH_JSON MODEL_DIR [MODEL_DIR ...]

Rates are real bytes at every quality level (an encode per level), or with ``--estimate`` the
priors' estimate from the bundle's own full-clip evaluation at training time (no encoding; real
streams come out 10-17% smaller). ``--no-speed`` leaves out the timing, for a busy machine.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from decode_speed import median_ms, random_latents

from codec.coding.common.runtime import open_decoder
from codec.coding.encoder.encode import encode_video
from codec.io.bundle import Bundle, load_bundle
from codec.measure.bd import bd_figures, strongest_variant

SIZES = {"640x272": (272, 640), "1280x720": (720, 1280)}


def _levels(video: Path, bundle: Bundle, estimate: bool) -> list[dict[str, Any]]:
    """bpp, total_bpp and psnr_rgb at every quality level of the bundle."""
    if estimate:
        width, height = bundle.meta.source.size
        shipped = bundle.shipped_bytes * 8 / (bundle.raw["source"]["frames"] * width * height)
        return [
            {"bpp": lv["bpp_estimate"], "total_bpp": lv["bpp_estimate"] + shipped, "psnr_rgb": lv["psnr"]}
            for lv in bundle.raw["training"]["levels"]
        ]
    with tempfile.TemporaryDirectory() as tmp:
        return [
            encode_video(video, bundle, Path(tmp) / f"q{quality}.aec", quality=quality).to_dict()
            for quality in range(len(bundle.meta.coding.quality_steps))
        ]


def _bd(test: list[dict[str, Any]], anchor: list[dict[str, Any]], rate: str) -> str:
    """BD-rate with its overlap, else BD-rate over the test curve's range; with BD-PSNR where given."""
    f = bd_figures(test, anchor, rate, ("this", "anchor"))
    if f["bd_rate_pct"] is not None:
        text = f"{f['bd_rate_pct']:+.1f}% ({f['bd_rate_overlap']['of_both']:.0%} overlap)"
    else:
        own = f["bd_rate_own_range_pct"]
        text = "n/a" if own is None else f"{own:+.1f}% over its range"
    return text if f["bd_psnr_db"] is None else f"{text}, {f['bd_psnr_db']:+.2f} dB"


def main(video: Path, bench_json: Path, model_dirs: list[Path], estimate: bool, speed: bool) -> None:
    report = json.loads(bench_json.read_text())
    variant = strongest_variant(report["points"], "x264")["variant"]
    x264 = [r | {"total_bpp": r["bpp"]} for r in report["points"] if r["codec"] == "x264" and r["variant"] == variant]
    columns = ["decoder", "steps", "decoder bytes", "params", "MAC/px", *(f"fps {k}" for k in SIZES)]
    columns += ["default level", "BD-rate vs first (stream / total)", f"vs x264 {variant} (stream / total)"]
    print("| " + " | ".join(columns) + " |")
    print("|" + " --- |" * len(columns))
    first: list[dict[str, Any]] | None = None
    for model_dir in model_dirs:
        bundle = load_bundle(model_dir)
        model = bundle.raw["model"]
        fps = ["-"] * len(SIZES)
        if speed:
            session = open_decoder(model_dir, cpu_only=True)
            latents = random_latents(model["latent_channels"], model["stride"], SIZES)
            fps = [f"{1000 / median_ms(session, latents[k]):.1f}" for k in SIZES]
        rows = _levels(video, bundle, estimate)
        default = rows[bundle.meta.coding.default_quality]
        first = rows if first is None else first
        cells = [f"{model.get('decoder_block', 'full')} w{model['width']}", f"{bundle.raw['training']['steps']:,}"]
        cells += [f"{model['decoder_bytes']:,}", f"{model['decoder_params']:,}"]
        cells += [f"{model['decoder_macs_per_pixel']:,.0f}", *fps]
        cells += [f"{default['psnr_rgb']:.2f} dB @ {default['bpp']:.4f} / {default['total_bpp']:.4f}"]
        cells += [" / ".join(_bd(rows, anchor, rate) for rate in ("bpp", "total_bpp")) for anchor in (first, x264)]
        print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--estimate", action="store_true", help="rates from the bundles' own evaluation")
    parser.add_argument("--no-speed", dest="speed", action="store_false", help="leave out the timing")
    parser.add_argument("video", type=Path)
    parser.add_argument("bench_json", type=Path)
    parser.add_argument("model_dirs", type=Path, nargs="+")
    args = parser.parse_args()
    main(args.video, args.bench_json, args.model_dirs, args.estimate, args.speed)
