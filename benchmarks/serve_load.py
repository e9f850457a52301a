"""Load on a real `codec serve` process over loopback: frames/s to 1 and to 8 concurrent clients,
server CPU seconds per stream, and end-to-end latency per frame (encode + transfer + decode).

Usage: python benchmarks/serve_load.py MODELS_DIR NAME [--clients 8]
MODELS_DIR/NAME/ is a bundle with its source video beside it (see `codec serve --help`).
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import threading
import time
from fractions import Fraction
from pathlib import Path

import grpc
import numpy as np

from aecodec.client.player import received_chunk
from aecodec.server.local import LocalServer
from aecodec.v1 import codec_pb2, codec_pb2_grpc
from codec.coding.bitstream import Header
from codec.coding.decode import DecodeStats, decode_frames
from codec.io.bundle import find_source, load_bundle
from codec.io.video import iter_frames


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stream_all(port: int, name: str) -> int:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = codec_pb2_grpc.VideoCodecStub(channel)
        return sum(1 for _ in stub.StreamVideo(codec_pb2.StreamVideoRequest(name=name), timeout=600))


def served_rate(port: int, name: str, clients: int, pid: int) -> tuple[float, float, int]:
    """(frames/s summed over clients, server CPU seconds per stream, frames per stream)."""
    counts: list[int] = []
    threads = [threading.Thread(target=lambda: counts.append(stream_all(port, name))) for _ in range(clients)]
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
    return sum(counts) / wall, cpu / clients, counts[0]


def latencies(port: int, name: str, bundle_dir: Path, source: Path) -> list[float]:
    """Seconds from sending a raw frame to holding its decoded pixels, one frame in flight."""
    bundle = load_bundle(bundle_dir)
    frames = list(iter_frames(source))
    h, w = frames[0].shape[:2]
    gop, quality = bundle.meta.coding.gop, bundle.meta.coding.default_quality
    stats = DecodeStats(Header(bundle.decoder_sha256, w, h, Fraction(25), len(frames), gop, quality), bytes=0)
    outbox: queue.Queue[codec_pb2.RawFrame | None] = queue.Queue()
    out: list[float] = []
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        replies = codec_pb2_grpc.VideoCodecStub(channel).Encode(iter(outbox.get, None), timeout=600)
        chunks = map(received_chunk, replies)
        decoded = decode_frames(chunks, bundle, "live", stats)
        for frame in frames:
            start = time.perf_counter()
            outbox.put(codec_pb2.RawFrame(name=name, width=w, height=h, rgb24=frame.tobytes()))
            next(decoded)
            out.append(time.perf_counter() - start)
        outbox.put(None)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path)
    parser.add_argument("name")
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    server = LocalServer(args.models, log=False)
    port, pid = server.port, server.proc.pid
    try:
        bundle_dir = args.models / args.name
        source = find_source(load_bundle(bundle_dir))  # the server found it, so it is there
        stream_all(port, args.name)  # warm up: sessions loaded, caches filled
        idle = server.memory_mib()
        print(f"{args.name}: server resident memory after one stream {idle:.0f} MiB")
        for clients in (1, args.clients):
            rate, cpu, frames = served_rate(port, args.name, clients, pid)
            peak = server.memory_mib("VmHWM")
            print(
                f"{clients} client(s): {rate:.1f} frames/s served in all, {rate / clients:.1f} per client; "
                f"server CPU {cpu:.2f} s per stream of {frames} frames ({1000 * cpu / frames:.1f} ms per frame); "
                f"peak memory {peak:.0f} MiB, {(peak - idle) / clients:.0f} MiB per stream above idle"
            )
        lat = np.array(latencies(port, args.name, bundle_dir, source)) * 1000
        print(
            f"end-to-end latency per frame (encode + loopback + decode): median {statistics.median(lat):.1f} ms, "
            f"p95 {np.percentile(lat, 95):.1f} ms over {len(lat)} frames"
        )
    finally:
        server.drain()


if __name__ == "__main__":
    main()
