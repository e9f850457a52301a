"""Decoder architectures side by side on one clip, to choose the default from: shipped decoder bytes,
parameters, MAC/pixel, the network's decode speed at 640x272 and 1280x720, PSNR at the default level,
and BD-rate (stream and total bpp, real bytes at every level) against the first bundle given and
against the strongest x264 variant of a `codec bench` report on the same clip.

Usage: python benchmarks/decoder_choices.py VIDEO BENCH_JSON MODEL_DIR [MODEL_DIR ...]
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from decode_speed import median_ms, random_latents

from codec.coding.encode import encode_video
from codec.coding.runtime import open_decoder
from codec.io.bundle import load_bundle
from codec.measure.bd import bd_figures, strongest_variant

SIZES = {"640x272": (272, 640), "1280x720": (720, 1280)}


def _levels(video: Path, model_dir: Path) -> list[dict[str, Any]]:
    """Real bytes and RGB PSNR at every quality level of the bundle."""
    bundle = load_bundle(model_dir)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for quality in range(len(bundle.meta.coding.quality_steps)):
            rows.append(encode_video(video, bundle, Path(tmp) / f"q{quality}.aec", quality=quality).to_dict())
    return rows


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1f}%"


def _bd(test: list[dict[str, Any]], anchor: list[dict[str, Any]], rate: str, names: tuple[str, str]) -> str:
    f = bd_figures(test, anchor, rate, names)
    if f["bd_rate_pct"] is not None:
        return f"{_pct(f['bd_rate_pct'])} ({f['bd_rate_overlap']['of_both']:.0%} overlap)"
    return f"{_pct(f['bd_rate_own_range_pct'])} over its range"


def main(video: str, bench_json: str, *model_dirs: str) -> None:
    report = json.loads(Path(bench_json).read_text())
    variant = strongest_variant(report["points"], "x264")["variant"]
    x264 = [r | {"total_bpp": r["bpp"]} for r in report["points"] if r["codec"] == "x264" and r["variant"] == variant]
    columns = ["decoder", "steps", "shipped bytes", "params", "MAC/px", *(f"fps {k}" for k in SIZES)]
    columns += ["default level", "BD-rate vs first (stream / total)", f"vs x264 {variant} (stream / total)"]
    print("| " + " | ".join(columns) + " |")
    print("|" + " --- |" * len(columns))
    first: list[dict[str, Any]] | None = None
    for model_dir in map(Path, model_dirs):
        bundle = load_bundle(model_dir)
        model = bundle.raw["model"]
        session = open_decoder(model_dir, cpu_only=True)
        latents = random_latents(model["latent_channels"], model["stride"], SIZES)
        fps = [f"{1000 / median_ms(session, latents[k]):.1f}" for k in SIZES]
        rows = _levels(Path(video), model_dir)
        default = rows[bundle.meta.coding.default_quality]
        first = rows if first is None else first
        vs_first = " / ".join(_bd(rows, first, rate, ("this", "first")) for rate in ("bpp", "total_bpp"))
        vs_x264 = " / ".join(_bd(rows, x264, rate, ("this", "x264")) for rate in ("bpp", "total_bpp"))
        name = f"{model.get('decoder_block', 'full')} w{model['width']}"
        cells = [name, f"{bundle.raw['training']['steps']:,}", f"{model['decoder_bytes']:,}"]
        cells += [f"{model['decoder_params']:,}", f"{model['decoder_macs_per_pixel']:,.0f}", *fps]
        cells += [
            f"{default['psnr_rgb']:.2f} dB @ {default['bpp']:.4f} / {default['total_bpp']:.4f}",
            vs_first,
            vs_x264,
        ]
        print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
