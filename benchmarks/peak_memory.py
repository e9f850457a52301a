"""Peak memory of `codec train` on a long 1280x720 clip.

Writes a synthetic 1280x720 clip of --frames frames (default 300) with libx264, trains a few steps
on it, and prints the peak resident memory of the training process next to the size of the
decoded frames themselves. Usage: python benchmarks/peak_memory.py [--frames 300] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from codec.io.colour import Colour, rgb_to_frame


def write_clip(path: Path, frames: int, width: int, height: int) -> None:
    yy, xx = np.mgrid[0:height, 0:width]
    colour = Colour.for_size(width, height)  # untagged, so converted as a reader will assume
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"preset": "ultrafast", "crf": "23"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for t in range(frames):
            img = np.stack([(xx + 4 * t) % 256, (yy + 2 * t) % 256, (xx + yy + t) % 256], -1).astype(np.uint8)
            frame = rgb_to_frame(img, "yuv420p", colour)
            frame.pts, frame.time_base = t, Fraction(1, 25)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    width, height = 1280, 720
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "long720p.mp4"
        write_clip(clip, args.frames, width, height)
        cmd = ["codec", "train", str(clip), "-o", str(Path(tmp) / "model"), "--steps", str(args.steps), "--json", "-q"]
        result = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    frames_mib = args.frames * width * height * 3 / 2**20
    print(f"clip {width}x{height}x{args.frames}: decoded RGB24 frames {frames_mib:.0f} MiB")
    print(f"peak memory of codec train (--steps {args.steps}): {result['peak_memory_mib']} MiB")


if __name__ == "__main__":
    sys.exit(main())
