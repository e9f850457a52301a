"""Load on a real `codec serve` process over loopback: stored streams to many real-time viewers,
against live encoding.

Stored: the server stores every level first (`--prepare`, timed), then CLIENTS viewers start at
once, each at a random frame (from its GOP's I-frame), reading one frame every 1/fps seconds as a
player with a small buffer does; they check every chunk's crc32 but do not decode (decoding is
each viewer's own CPU, not the server's). Measured: server CPU per frame served, resident memory
per stream, first-frame latency (from the request to the first chunk), how late any frame came
against the viewer's clock, and the latency of health checks on the probe port throughout.

Live: LIVE clients send raw frames to `Encode` as fast as it answers (one frame in flight, decoded
on arrival), the only path that still encodes per client: frames/s, server CPU per frame, and the
end-to-end latency per frame.

Usage: python benchmarks/serve_load.py MODELS_DIR NAME [--clients 32] [--live 2] [--seconds 10]
MODELS_DIR/NAME/ is a bundle with its source video beside it (see `codec serve --help`).
"""

from __future__ import annotations

import argparse
import os
import queue
import random
import statistics
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from aecodec.client.player import received_chunk
from aecodec.server.local import LocalServer
from aecodec.v1 import codec_pb2, codec_pb2_grpc
from codec.coding.common.bitstream import Header
from codec.coding.decoder.decode import DecodeStats, decode_frames
from codec.io.bundle import find_source, load_bundle
from codec.io.video import iter_frames

MAX_CLIENTS = 1024


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ms(values: list[float]) -> str:
    a = np.array(values) * 1000
    return f"median {statistics.median(a):.1f} ms, p95 {np.percentile(a, 95):.1f} ms, max {a.max():.1f} ms"


class Viewer(threading.Thread):
    """One real-time viewer of frames [start, start + frames) from the GOP's I-frame on."""

    def __init__(self, port: int, name: str, start: int, frames: int, fps: float) -> None:
        super().__init__(daemon=True)
        self.port, self.name, self.start_frame, self.frames, self.fps = port, name, start, frames, fps
        self.first = 0.0  # seconds from the request to the first chunk
        self.late = 0.0  # the latest any chunk came against the viewer's clock
        self.received = 0
        self.error = ""

    def run(self) -> None:
        request = codec_pb2.StreamVideoRequest(
            name=self.name, start_frame=self.start_frame, end_frame=self.start_frame + self.frames, from_keyframe=True
        )
        try:
            with grpc.insecure_channel(f"127.0.0.1:{self.port}") as channel:
                asked = time.monotonic()
                clock = None
                for i, message in enumerate(codec_pb2_grpc.VideoCodecStub(channel).StreamVideo(request, timeout=600)):
                    now = time.monotonic()
                    received_chunk(message)  # fields and crc32 checked, as a player does
                    self.received += 1
                    if clock is None:
                        self.first, clock = now - asked, now
                    self.late = max(self.late, now - (clock + i / self.fps))
                    time.sleep(max(0.0, clock + (i + 1) / self.fps - time.monotonic()))
        except grpc.RpcError as exc:
            self.error = exc.code().name


def health_probe(port: int, stop: threading.Event, out: list[float]) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while not stop.wait(0.1):
            started = time.perf_counter()
            stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
            out.append(time.perf_counter() - started)


def stored_load(server: LocalServer, name: str, clients: int, seconds: float, video: codec_pb2.Video) -> None:
    frames = min(video.frames, int(seconds * video.fps))
    rng = random.Random(0)
    viewers = [
        Viewer(server.port, name, rng.randrange(0, video.frames - frames + 1), frames, video.fps)
        for _ in range(clients)
    ]
    time.sleep(1.0)  # what preparing left to free is freed
    idle, stop, health = server.memory_mib(), threading.Event(), []
    prober = threading.Thread(target=health_probe, args=(server.health_port, stop, health), daemon=True)
    prober.start()
    cpu0 = cpu_seconds(server.proc.pid)
    for viewer in viewers:
        viewer.start()
    time.sleep(frames / video.fps / 2)
    busy = server.memory_mib()
    for viewer in viewers:
        viewer.join()
    cpu = cpu_seconds(server.proc.pid) - cpu0
    stop.set()
    prober.join()
    time.sleep(1.0)
    after = server.memory_mib()  # the same server with no stream: the streams' own share is the difference
    served = sum(v.received for v in viewers)
    errors = [v.error for v in viewers if v.error]
    kept = sum(v.late <= video.gop / video.fps and not v.error for v in viewers)
    print(
        f"stored, {clients} real-time viewers of {frames} frames each: {served} frames served, server CPU "
        f"{1000 * cpu / max(served, 1):.2f} ms per frame ({cpu:.1f} s in all); memory {idle:.0f} MiB before, "
        f"{busy:.0f} MiB at mid-run ({(busy - idle) / clients * 1024:.0f} KiB per stream), {after:.0f} MiB after; "
        f"{kept}/{clients} kept real time "
        f"(no frame later than a GOP, {video.gop / video.fps:.2f} s); errors: {errors or 'none'}"
    )
    print(f"  first frame: {ms([v.first for v in viewers])}")
    print(f"  latest frame against the viewer's clock: {ms([v.late for v in viewers])}")
    print(f"  health checks during the load ({len(health)}): {ms(health)}")


def lazy_start(models: Path, name: str) -> None:
    """One request for a level not stored yet, on an empty cache: when its first frame comes, and how
    fast the rest follows the background encode."""
    with tempfile.TemporaryDirectory() as cache:
        server = LocalServer(models, "--stream-cache", cache, log=False)
        try:
            with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                asked = time.monotonic()
                replies = codec_pb2_grpc.VideoCodecStub(channel).StreamVideo(
                    codec_pb2.StreamVideoRequest(name=name), timeout=600
                )
                first, count = None, 0
                for _ in replies:
                    first = first or time.monotonic() - asked
                    count += 1
                total = time.monotonic() - asked
        finally:
            server.drain()
    print(
        f"a level not stored yet (encoded on the first request): first frame after {1000 * (first or 0):.0f} ms, "
        f"all {count} frames after {total:.1f} s ({count / total:.1f} frames/s)"
    )


def start_costs(server: LocalServer, name: str, video: codec_pb2.Video, tries: int = 8) -> None:
    """Starting mid-GOP both ways, one request at a time up to the next I-frame: from the GOP's stored
    I-frame (``from_keyframe``: the frames before the start travel and are decoded, nothing is encoded)
    or at the start itself, the frames up to the next I-frame encoded afresh (a client that predates
    stored streams)."""
    rng = random.Random(1)
    starts = [
        rng.randrange(1, video.gop) + video.gop * rng.randrange(video.frames // video.gop - 1) for _ in range(tries)
    ]
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = codec_pb2_grpc.VideoCodecStub(channel)
        for keyed in (True, False):
            firsts, cpu0, sent = [], cpu_seconds(server.proc.pid), 0
            for start in starts:
                end = (start // video.gop + 1) * video.gop
                request = codec_pb2.StreamVideoRequest(name=name, start_frame=start, end_frame=end, from_keyframe=keyed)
                asked = time.monotonic()
                replies = stub.StreamVideo(request, timeout=600)
                next(replies)
                firsts.append(time.monotonic() - asked)
                sent += 1 + sum(1 for _ in replies)
            cpu = cpu_seconds(server.proc.pid) - cpu0
            how = "from the GOP's stored I-frame" if keyed else "at the frame, encoded up to the next I-frame"
            print(
                f"start mid-GOP {how}: first frame {ms(firsts)}; {sent / tries:.1f} frames sent a start, "
                f"server CPU {1000 * cpu / tries:.0f} ms a start"
            )


def live_client(port: int, name: str, bundle_dir: Path, frames: list[np.ndarray], out: list[float]) -> None:
    """Sends ``frames`` to Encode one at a time, decoding each reply; appends per-frame latencies."""
    bundle = load_bundle(bundle_dir)
    h, w = frames[0].shape[:2]
    gop, quality = bundle.meta.coding.gop, bundle.meta.coding.default_quality
    stats = DecodeStats(Header(bundle.decoder_sha256, w, h, Fraction(25), len(frames), gop, quality), bytes=0)
    outbox: queue.Queue[codec_pb2.RawFrame | None] = queue.Queue()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        replies = codec_pb2_grpc.VideoCodecStub(channel).Encode(iter(outbox.get, None), timeout=600)
        decoded = decode_frames(map(received_chunk, replies), bundle, "live", stats)
        for frame in frames:
            start = time.perf_counter()
            outbox.put(codec_pb2.RawFrame(name=name, width=w, height=h, rgb24=frame.tobytes()))
            next(decoded)
            out.append(time.perf_counter() - start)
        outbox.put(None)


def live_load(server: LocalServer, name: str, bundle_dir: Path, clients: int, frames: list[np.ndarray]) -> None:
    latencies: list[list[float]] = [[] for _ in range(clients)]
    threads = [
        threading.Thread(target=live_client, args=(server.port, name, bundle_dir, frames, out), daemon=True)
        for out in latencies
    ]
    cpu0, started = cpu_seconds(server.proc.pid), time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, cpu = time.perf_counter() - started, cpu_seconds(server.proc.pid) - cpu0
    total = sum(len(x) for x in latencies)
    print(
        f"live Encode, {clients} client(s) of {len(frames)} frames: {total / wall:.1f} frames/s in all, server CPU "
        f"{1000 * cpu / total:.1f} ms per frame; end-to-end latency per frame {ms([x for xs in latencies for x in xs])}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path)
    parser.add_argument("name")
    parser.add_argument("--clients", type=int, default=32, help="real-time viewers of the stored stream")
    parser.add_argument("--live", type=int, default=2, help="live Encode clients (0: none)")
    parser.add_argument("--seconds", type=float, default=10.0, help="what each viewer watches")
    parser.add_argument("--cache", type=Path, help="stream cache to keep between runs (default: a temporary one)")
    args = parser.parse_args()
    if not 1 <= args.clients <= MAX_CLIENTS or not 0 <= args.live <= 64 or not 0 < args.seconds <= 600:
        parser.error(f"--clients 1..{MAX_CLIENTS}, --live 0..64 and --seconds up to 600")
    bundle_dir = args.models / args.name
    lazy_start(args.models, args.name)
    with tempfile.TemporaryDirectory() as scratch:
        cache = str(args.cache or scratch)
        started = time.perf_counter()
        limit = str(args.clients + args.live + 4)
        server = LocalServer(
            args.models, "--prepare", "--stream-cache", cache, "--max-streams", limit, "--health-port", "0", log=False
        )
        print(f"{args.name}: every level stored in {time.perf_counter() - started:.1f} s (`codec serve --prepare`)")
        try:
            with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                videos = codec_pb2_grpc.VideoCodecStub(channel).ListVideos(codec_pb2.ListVideosRequest()).videos
            video = next(v for v in videos if v.name == args.name)
            stored_load(server, args.name, args.clients, args.seconds, video)
            start_costs(server, args.name, video)
            if args.live:
                source = find_source(load_bundle(bundle_dir))  # the server found it, so it is there
                frames = list(iter_frames(source))[: int(args.seconds * video.fps)]
                live_load(server, args.name, bundle_dir, 1, frames)
                if args.live > 1:
                    live_load(server, args.name, bundle_dir, args.live, frames)
        finally:
            server.drain()


if __name__ == "__main__":
    main()
