"""Abuse aecodec as an attacker would, on loopback only, bounded in count and time: a real
`codec serve` against idle, slow and lying clients and against its bundle's files replaced under
it; `codec play` against a lying, a silent and a vanished server and crafted decoder weights;
`codec decode` against crafted files. Prints health latency throughout, the server's memory before
and after, and what each abuse got (with each client process's peak memory).

Usage: python benchmarks/abuse.py MODELS_DIR NAME [--idle 24] [--sizes 200] [--stall 5]
MODELS_DIR/NAME/ is a bundle with its source video beside it (see `codec serve --help`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent import futures
from fractions import Fraction
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from aecodec.client.player import play
from aecodec.server.catalog import Entry, decoder_pieces, load_catalog, shipped_bytes
from aecodec.server.local import LocalServer
from aecodec.server.stored import StreamStore, identity
from aecodec.v1 import codec_pb2, codec_pb2_grpc
from codec.coding.common.bitstream import HEADER_SIZE, Chunk, Header
from codec.coding.common.decoder_weights import MAX_WEIGHTS, QuantizedTensor, pack, unpack
from codec.coding.common.entropy_coding import Table
from codec.coding.common.runtime import Networks
from codec.coding.encoder.encode import StreamEncoder
from codec.errors import CodecError
from codec.io.bundle import (
    DECODER_WEIGHTS_FILE,
    META_FILE,
    SHIPPED_FILES,
    Bundle,
    BundleMeta,
    find_source,
    load_bundle,
)
from codec.io.video import iter_frames

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from clips import write_clip
from crafted import craft, noise_payload, plant_entry, range_coded, weights_file, weights_head, write_record
from throttle import ThrottledProxy

MAX_STREAMS = 4
CLIENT_ADDRESS_SPACE = 4 << 30
DECODE_LIMIT_S = 30
PLAY_LIMIT_S = 120
# Runs `codec ARGS` with its address space capped at argv[1] bytes (a client that tries to allocate
# from a crafted number fails there instead of taking the machine) and prints its own peak memory
# (VmHWM: a child's ru_maxrss counts its parent's peak from before exec) on stderr as it exits.
PEAK_WRAPPER = (
    "import atexit, resource, sys\n"
    "cap = int(sys.argv.pop(1))\n"
    "resource.setrlimit(resource.RLIMIT_AS, (cap, cap))\n"
    "hwm = lambda: [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
    "atexit.register(lambda: print(f'peak {int(hwm()) // 1024} MiB', file=sys.stderr))\n"
    "from codec.cli import main\nmain()"
)


def run_codec(args: list[str], limit: float, cache: str | None = None) -> str:
    """`codec ARGS` in a process of its own, its address space capped (and its cache ``cache``): its
    exit code, error line and peak memory, and how long it took."""
    started = time.perf_counter()
    env = {**os.environ, **({"AECODEC_CACHE": cache} if cache else {})}
    try:
        proc = subprocess.run(
            [sys.executable, "-c", PEAK_WRAPPER, str(CLIENT_ADDRESS_SPACE), *args],
            capture_output=True,
            text=True,
            timeout=limit,
            env=env,
        )
        said = [line for line in proc.stderr.strip().splitlines() if line.startswith(("error:", "peak"))]
        outcome = f"exit {proc.returncode}, {'; '.join(said) or 'no output'}"
    except subprocess.TimeoutExpired:
        outcome = f"still running after {limit:g} s, killed (!)"
    return f"{outcome}; {time.perf_counter() - started:.2f} s"


class HealthProbe:
    """Checks health every 50 ms on one port until stopped; keeps every latency (inf: no answer)."""

    def __init__(self, port: int) -> None:
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.latencies: list[float] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        stub = health_pb2_grpc.HealthStub(self.channel)
        while not self.stopping.wait(0.05):
            started = time.perf_counter()
            try:
                stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
                self.latencies.append(time.perf_counter() - started)
            except grpc.RpcError:
                self.latencies.append(float("inf"))

    def stop(self) -> str:
        self.stopping.set()
        self.thread.join()
        self.channel.close()
        ms = sorted(1000 * x for x in self.latencies)
        p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))]
        return f"{len(ms)} checks, median {statistics.median(ms):.1f} ms, p95 {p95:.1f} ms, max {ms[-1]:.1f} ms"


def _codes(calls: list[Callable[[], Any]], parallel: int = 0) -> Counter:
    """Run the calls, ``parallel`` at a time (0: all at once); count how each ended (OK or its status)."""
    results: Counter = Counter()

    def run(call: Callable[[], Any]) -> None:
        try:
            call()
            results["OK"] += 1
        except grpc.RpcError as exc:
            results[exc.code().name] += 1

    with futures.ThreadPoolExecutor(parallel or len(calls)) as pool:
        list(pool.map(run, calls))
    return results


def abuse_server(models: Path, name: str, idle: int, sizes: int, stall: float) -> None:
    limits = ("--max-streams", str(MAX_STREAMS), "--max-streams-per-peer", str(MAX_STREAMS))  # one address: all slots
    server = LocalServer(models, *limits, "--stall-timeout", str(stall), "--health-port", "0", log=False)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    stub = codec_pb2_grpc.VideoCodecStub(channel)
    try:
        (video,) = [v for v in stub.ListVideos(codec_pb2.ListVideosRequest(), timeout=10).videos if v.name == name]
        list(stub.StreamVideo(codec_pb2.StreamVideoRequest(name=name), timeout=600))  # warm up: sessions loaded
        start = server.memory_mib()
        print(f"server: {video.width}x{video.height}, --max-streams {MAX_STREAMS}, --stall-timeout {stall} s")
        print(f"server memory after one real stream: {start:.0f} MiB")
        probes = {"main port": HealthProbe(server.port), "probe port": HealthProbe(server.health_port)}
        gate = threading.Event()

        def silent() -> Iterator[codec_pb2.RawFrame]:
            gate.wait(stall * 4)
            yield from ()

        def one_frame_then_silent() -> Iterator[codec_pb2.RawFrame]:
            yield codec_pb2.RawFrame(
                name=name, width=video.width, height=video.height, rgb24=bytes(video.width * video.height * 3)
            )
            gate.wait(stall * 4)

        started = time.perf_counter()
        calls = [lambda: list(stub.Encode(silent(), timeout=stall * 4)) for _ in range(idle)]
        calls += [lambda: list(stub.Encode(one_frame_then_silent(), timeout=stall * 4)) for _ in range(2)]
        print(f"{idle} idle + 2 stalled Encode callers: {dict(_codes(calls))} in {time.perf_counter() - started:.1f} s")

        shapes = [
            (video.width - 1 - i % video.width, video.height - i // video.width % video.height) for i in range(sizes)
        ]
        shapes += [(video.width + 1, video.height), (16384, 16384), (2**31 - 1, 1)]
        started = time.perf_counter()
        before = server.memory_mib()
        burst = [
            lambda w=w, h=h: list(stub.Encode(iter([codec_pb2.RawFrame(name=name, width=w, height=h)]), timeout=30))
            for w, h in shapes
        ]
        got = dict(_codes(burst, parallel=MAX_STREAMS))
        grown = server.memory_mib() - before
        print(
            f"{len(shapes)} frame sizes in empty frames: {got}, server {grown:+.0f} MiB, "
            f"{time.perf_counter() - started:.1f} s"
        )

        frame = codec_pb2.RawFrame(
            name=name, width=video.width, height=video.height, rgb24=bytes(video.width * video.height * 3)
        )
        absurd = {
            "gop 70000": lambda: list(stub.Encode(iter([codec_pb2.RawFrame(gop=70000, **_fields(frame))]), timeout=30)),
            "quality 255": lambda: list(
                stub.StreamVideo(codec_pb2.StreamVideoRequest(name=name, quality=255), timeout=30)
            ),
            "frames [2^31, 0)": lambda: list(
                stub.StreamVideo(codec_pb2.StreamVideoRequest(name=name, start_frame=2**31), timeout=30)
            ),
            "100 KB name": lambda: list(stub.StreamVideo(codec_pb2.StreamVideoRequest(name="x" * 100_000), timeout=30)),
            "3 MB name": lambda: list(stub.GetDecoder(codec_pb2.GetDecoderRequest(name="x" * (3 << 20)), timeout=30)),
            "frame of another size mid-stream": lambda: list(
                stub.Encode(
                    iter([frame, codec_pb2.RawFrame(name=name, width=8, height=8, rgb24=bytes(192))]), timeout=30
                )
            ),
        }
        for what, call in absurd.items():
            print(f"{what}: {dict(_codes([call]))}")
        gate.set()
        time.sleep(stall + 1)  # every call the reaper is watching has ended by now
        for where, probe in probes.items():
            print(f"health on the {where} throughout: {probe.stop()}")
        end = server.memory_mib()
        print(
            f"server memory after the abuse: {end:.0f} MiB ({end - start:+.0f} MiB), "
            f"peak {server.memory_mib('VmHWM'):.0f} MiB"
        )
        served = sum(1 for _ in stub.StreamVideo(codec_pb2.StreamVideoRequest(name=name), timeout=600))
        print(f"and it still serves: {served} frames")
    finally:
        channel.close()
        server.drain()


def _fields(message: codec_pb2.RawFrame) -> dict[str, Any]:
    return {"name": message.name, "width": message.width, "height": message.height, "rgb24": message.rgb24}


def listed(bundle: Bundle, sha256: str, frames: int) -> codec_pb2.Video:
    """The listing of a video ``v`` of ``bundle``'s size and levels, under ``sha256``."""
    width, height = bundle.meta.source.size
    coding = bundle.meta.coding
    return codec_pb2.Video(
        name="v",
        width=width,
        height=height,
        fps=25,
        frames=frames,
        quality_levels=coding.levels,
        default_quality=coding.default_quality,
        gop=coding.gop,
        bundle_sha256=sha256,
    )


class LyingServer(codec_pb2_grpc.VideoCodecServicer):
    """Lists one video with the real bundle's size and frames, then lies in the way ``lie`` names."""

    def __init__(self, bundle_dir: Path, lie: str, outside: Path) -> None:
        self.bundle, self.lie, self.outside = load_bundle(bundle_dir), lie, outside

    def ListVideos(self, request: Any, context: Any) -> codec_pb2.ListVideosResponse:
        sha = {
            "absolute path": str(self.outside),
            "../ path": f"../{self.outside.name}",
        }.get(self.lie, self.bundle.decoder_sha256 if self.lie != "other bundle" else "0" * 64)
        return codec_pb2.ListVideosResponse(videos=[listed(self.bundle, sha, frames=2)])

    def GetDecoder(self, request: Any, context: Any) -> Iterator[codec_pb2.DecoderChunk]:
        for piece in decoder_pieces(self.bundle):
            size, offset, data, sha = piece.size, piece.offset, piece.data, piece.sha256
            if self.lie == "2^40-byte file":
                size = 1 << 40
            elif self.lie == "piece beyond its file":
                offset = size + 1000
            elif self.lie == "damaged piece":
                data = bytes(len(data))
            yield codec_pb2.DecoderChunk(file=piece.file, size=size, sha256=sha, offset=offset, data=data)


def abuse_player(models: Path, name: str) -> None:
    lies = ("absolute path", "../ path", "2^40-byte file", "piece beyond its file", "damaged piece", "other bundle")
    for lie in lies:
        with tempfile.TemporaryDirectory() as tmp:
            outside = Path(tmp) / "planted"
            server = grpc.server(futures.ThreadPoolExecutor(2))
            codec_pb2_grpc.add_VideoCodecServicer_to_server(LyingServer(models / name, lie, outside), server)
            port = server.add_insecure_port("127.0.0.1:0")
            server.start()
            started = time.perf_counter()
            try:
                play(f"grpc://127.0.0.1:{port}/v", Path(tmp) / "out.mkv", cache=Path(tmp) / "cache", retries=0)
                outcome = "played (!)"
            except CodecError as exc:
                outcome = f"refused: {exc}"
            finally:
                server.stop(0)
            planted = "planted a file outside the cache (!)" if outside.exists() else "nothing outside the cache"
            print(f"lying server, {lie}: {outcome[:150]} [{time.perf_counter() - started:.2f} s, {planted}]")


def abuse_decoder(models: Path, name: str) -> None:
    bundle = load_bundle(models / name)
    width, height = bundle.meta.source.size
    valid = Header(bundle.decoder_sha256, width, height, Fraction(25), 1, 8, 0).pack()
    tiny, far = Chunk(0, 0, 0, b"\0" * 4).pack(), Chunk(10**6, 0, 0, b"\0" * 4).pack()
    first = next(iter_frames(find_source(bundle), max_frames=1))
    real = StreamEncoder(bundle, width=width, height=height, quality=0).encode(first, 0).chunk.pack()  # a real I-frame
    crafted = {  # every header's crc32 holds
        "16384x16384, 2^32-1 frames": craft(valid + tiny, width=16384, height=16384, frames=2**32 - 1),
        "own size, a 4-byte I-frame": valid + tiny,
        "a real I-frame, 2^32-1 frames, then chunk 10^6 (--conceal)": craft(valid + real + far, frames=2**32 - 1),
        "quality 255": craft(valid + tiny, quality=255),
        "fps 1/4294967295": craft(valid + tiny, fps_num=1, fps_den=2**32 - 1),
        "gop 0": craft(valid + tiny, gop=0),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for what, data in crafted.items():
            stream, out = Path(tmp) / "x.aec", Path(tmp) / "x.y4m"
            stream.write_bytes(data)
            args = ["decode", str(stream), "-m", str(models / name), "-o", str(out), "--force"]
            args += ["--conceal"] if "conceal" in what else []
            outcome = run_codec(args, DECODE_LIMIT_S)
            written = out.stat().st_size if out.exists() else 0
            print(f"crafted .aec, {what} ({len(data)} bytes): {outcome}, {written} bytes written")
            out.unlink(missing_ok=True)


def crafted_weights(bundle: Bundle) -> dict[str, bytes]:
    """decoder.weights files a lying server signs as its decoder's: each would pass every sha256."""
    tensors = unpack(bundle.read(DECODER_WEIGHTS_FILE), "weights")
    peaked, escapes = (1, 65533, 1, 1), (1, 1, 1, 65533)  # a zero nearly free; an escape nearly free
    most = weights_head((1024, MAX_WEIGHTS // 1024), [0.1] * 1024)
    return {
        "2^26 weights declared, 4-byte payload": weights_file([Table.from_grid(10).frequencies], [most], bytes(4)),
        "2^26 zeros under a table that makes them free (4 KB)": weights_file(
            [peaked], [most], range_coded(np.zeros(MAX_WEIGHTS, np.int8), peaked)
        ),
        "2^26 weights, every one an escape (44 MiB)": weights_file(
            [escapes], [most], range_coded(np.full(MAX_WEIGHTS, 2, np.int8), escapes)
        ),
        "payload of noise": noise_payload(pack(tensors)),
        "one tensor twice": pack([*tensors, tensors[0]]),
        "steps of 3e38": pack([QuantizedTensor(t.name, t.q, t.steps * 0 + 3e38) for t in tensors]),
    }


def signed(bundle: Bundle, weights: bytes) -> tuple[dict[str, bytes], str]:
    """The shipped files of ``bundle`` with ``weights`` for its decoder.weights and a meta.json that
    names its size and sha256, and the bundle_sha256 that then checks out."""
    raw = json.loads(json.dumps(bundle.raw))
    raw["files"][DECODER_WEIGHTS_FILE] = {"bytes": len(weights), "sha256": hashlib.sha256(weights).hexdigest()}
    files = {name: shipped_bytes(bundle, name) for name in SHIPPED_FILES}
    files[DECODER_WEIGHTS_FILE], files[META_FILE] = weights, json.dumps(raw).encode()
    return files, Bundle(Path(), BundleMeta.parse(raw, "meta.json"), raw, 0).decoder_sha256


class ServedFiles(codec_pb2_grpc.VideoCodecServicer):
    """Lists one video of ``bundle`` under ``sha256`` and sends ``files`` as its decoder; its streams
    send nothing until the client goes."""

    def __init__(self, bundle: Bundle, files: dict[str, bytes], sha256: str) -> None:
        self.bundle, self.files, self.sha256 = bundle, files, sha256

    def ListVideos(self, request: Any, context: Any) -> codec_pb2.ListVideosResponse:
        return codec_pb2.ListVideosResponse(videos=[listed(self.bundle, self.sha256, frames=8)])

    def GetDecoder(self, request: Any, context: Any) -> Iterator[codec_pb2.DecoderChunk]:
        for name, data in self.files.items():
            sha = hashlib.sha256(data).hexdigest()
            for offset in range(0, max(len(data), 1), 1 << 20):
                chunk = data[offset : offset + (1 << 20)]
                yield codec_pb2.DecoderChunk(file=name, size=len(data), sha256=sha, offset=offset, data=chunk)

    def StreamVideo(self, request: Any, context: Any) -> Iterator[codec_pb2.EncodedFrame]:
        gone = threading.Event()
        context.add_callback(gone.set)
        gone.wait(PLAY_LIMIT_S)
        yield from ()


def _play_from(servicer: codec_pb2_grpc.VideoCodecServicer, cache: str, *options: str) -> str:
    """`codec play` of servicer's video, in a process of its own whose cache is ``cache``."""
    server = grpc.server(futures.ThreadPoolExecutor(4))
    codec_pb2_grpc.add_VideoCodecServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"grpc://127.0.0.1:{port}/v"
            args = ["play", url, "-o", f"{tmp}/out.mkv", *options]
            return run_codec(args, PLAY_LIMIT_S, cache) + (", wrote a video" if Path(f"{tmp}/out.mkv").exists() else "")
    finally:
        server.stop(0)


def abuse_player_weights(models: Path, name: str) -> None:
    bundle = load_bundle(models / name)
    for what, weights in crafted_weights(bundle).items():
        with tempfile.TemporaryDirectory() as cache:
            files, sha = signed(bundle, weights)
            outcome = _play_from(ServedFiles(bundle, files, sha), cache, "--retries", "0", "--timeout", "60")
            left = sorted(p.name[:12] for p in Path(cache).iterdir() if p.name != "frames")
            print(f"decoder.weights, {what} ({len(weights)} bytes): {outcome}; cache holds {left or 'nothing'}")


def abuse_player_silence(models: Path, name: str) -> None:
    bundle = load_bundle(models / name)
    files = {n: shipped_bytes(bundle, n) for n in SHIPPED_FILES}
    silent = ServedFiles(bundle, files, bundle.decoder_sha256)
    with tempfile.TemporaryDirectory() as cache:
        outcome = _play_from(silent, cache, "--timeout", "2", "--retries", "2")
    print(f"silent server, --timeout 2 --retries 2: {outcome}")
    server = LocalServer(models, "--pace", log=False)
    try:
        with Blackhole(server.port) as hole, tempfile.TemporaryDirectory() as tmp:
            url = f"grpc://127.0.0.1:{hole.port}/{name}"
            play(url, Path(tmp) / "warm.mkv", cache=Path(tmp) / "cache", end=2)  # the decoder is cached
            hole.freeze_after(4096)  # then the connection goes dead without closing, mid-stream
            args = ["play", url, "-o", f"{tmp}/out.mkv", "--retries", "0", "--timeout", "600", "--keepalive", "10"]
            outcome = run_codec(args, PLAY_LIMIT_S, f"{tmp}/cache")
            print(f"half-open connection mid-stream, --keepalive 10 --timeout 600: {outcome}")
    finally:
        server.drain()


def abuse_changed_bundle(models: Path, name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        served = Path(tmp) / "models"
        shutil.copytree(models / name, served / name)  # its source: in it, or where it was trained from
        bundle = served / name
        server = LocalServer(served, log=True)
        try:
            url, old = server.url(name), Path(tmp) / "old-client"
            play(url, Path(tmp) / "a.mkv", cache=old, end=8)
            entropy = json.loads((bundle / "entropy.json").read_text())
            for level in entropy["levels"]:
                level["intra_centre"] = [c + 3 for c in level["intra_centre"]]
            tensors = unpack((bundle / DECODER_WEIGHTS_FILE).read_bytes(), "w")
            retrained = {
                "entropy.json": json.dumps(entropy).encode(),
                DECODER_WEIGHTS_FILE: pack([QuantizedTensor(t.name, t.q, t.steps * np.float32(1.5)) for t in tensors]),
            }
            meta = json.loads((bundle / META_FILE).read_text())
            for file, data in retrained.items():  # each replaced atomically, as a deploy copies files
                meta["files"][file] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                (bundle / f".{file}.new").write_bytes(data)
                (bundle / f".{file}.new").replace(bundle / file)
            (bundle / ".meta.new").write_text(json.dumps(meta))
            (bundle / ".meta.new").replace(bundle / META_FILE)
            for client in (old, Path(tmp) / "new-client"):
                try:
                    result = play(url, Path(tmp) / f"{client.name}.mkv", cache=client, end=8)
                    outcome = f"played {result['frames']} frames, {result['resumes']} restarts"
                except CodecError as exc:
                    outcome = f"failed: {exc}"
                print(f"bundle files replaced under the server, {client.name}: {outcome}")
        finally:
            log = server.stop()
        changed = [line for line in log.splitlines() if "bundle_changed" in line]
        print(f"the server logged {len(changed)} bundle_changed line(s): {changed[0][:160] if changed else ''}")


def play_json(url: str, cache: str, *options: str) -> dict[str, Any] | str:
    """`codec play URL --json` in a process of its own: its JSON result, or its error line."""
    with tempfile.TemporaryDirectory() as tmp:
        args = [sys.executable, "-m", "codec.cli", "play", url, "-o", f"{tmp}/out.mkv", "--json", *options]
        try:
            proc = subprocess.run(
                args, capture_output=True, text=True, timeout=PLAY_LIMIT_S, env={**os.environ, "AECODEC_CACHE": cache}
            )
        except subprocess.TimeoutExpired:
            return f"still running after {PLAY_LIMIT_S} s, killed (!)"
    if proc.returncode:
        return f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ''}"
    return json.loads(proc.stdout)


def _served_store(cache: Path, models: Path, name: str) -> tuple[StreamStore, Entry]:
    """The stream store a server on ``cache`` keeps (its folder, its key) and the video's entry."""
    entry = load_catalog(models)[name]
    return StreamStore(cache, lambda e: Networks(e.bundle, e.info.width, e.info.height)), entry


def _sign(store: StreamStore, record_path: Path, **fields: Any) -> None:
    """A record with ``fields``, signed with the server's own key: the worst a peer with the key writes."""
    record = {"identity": {}, "bytes": HEADER_SIZE + 1, "sha256": "0" * 64, "frames": 0, "psnr": 40.0}
    write_record(record_path, {**record, **fields}, store.key)


def abuse_stream_cache(models: Path, name: str) -> None:
    """Items planted in the stream cache: a consistent entry of other frames, files of another user,
    a FIFO, a link to /dev/zero, a record of absurd values; then a source that is not the bundle's."""
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "streams"
        store, entry = _served_store(cache, models, name)
        level = entry.bundle.meta.coding.default_quality
        others = [q for q in range(entry.quality_levels) if q != level]
        other_key, other_user, fifo, zero, fifo_record, huge = others[:6]
        source = str(entry.source)
        plant_entry(store, entry, level, (255 - f for f in iter_frames(entry.source)), None)
        plant_entry(store, entry, other_key, (255 - f for f in iter_frames(entry.source)), bytes(32))
        if os.geteuid() == 0:  # signed with the server's own key, but another user's files
            plant_entry(store, entry, other_user, (255 - f for f in iter_frames(entry.source)), store.key)
            for path in store.paths(entry, other_user):
                os.chown(path, 12345, 12345)
        stream, record = store.paths(entry, fifo)
        os.mkfifo(stream)
        _sign(store, record, identity=identity(entry, fifo), bytes=10**6, frames=entry.frames)
        stream, record = store.paths(entry, zero)
        stream.symlink_to("/dev/zero")
        _sign(store, record, identity=identity(entry, zero), bytes=10**9, frames=entry.frames)
        os.mkfifo(store.paths(entry, fifo_record)[1])
        _sign(store, store.paths(entry, huge)[1], identity=identity(entry, huge), bytes=2**64 - 1, frames=entry.frames)
        server = LocalServer(models, "--stream-cache", str(cache), "--health-port", "0", log=True)
        try:
            probe = HealthProbe(server.health_port)
            with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                stub = codec_pb2_grpc.VideoCodecStub(channel)
                started = time.perf_counter()
                listed = stub.ListVideos(codec_pb2.ListVideosRequest(), timeout=10)
                ladder = [r.bytes for r in listed.videos[0].ladder]
                ms = 1000 * (time.perf_counter() - started)
                print(f"stream cache planted; ListVideos in {ms:.0f} ms, ladder {ladder}")
            url = server.url(name)
            plays = {
                f"level {level}, a consistent entry of inverted frames, unsigned": level,
                f"level {other_key}, the same signed with another key": other_key,
                f"level {other_user}, signed with the server's key, another user's files": other_user,
                f"level {fifo}, the stream a FIFO": fifo,
                f"level {zero}, the stream a link to /dev/zero, record of 1 GB": zero,
                f"level {fifo_record}, the record a FIFO": fifo_record,
                f"level {huge}, a signed record of 2^64-1 bytes": huge,
            }
            for what, quality in plays.items():
                if "another user" in what and os.geteuid() != 0:
                    continue
                got = play_json(url, f"{tmp}/client", "--quality", str(quality), "--reference", source)
                outcome = f"{got['psnr_rgb']:.2f} dB" if isinstance(got, dict) else got
                print(f"{what}: played at {outcome}")
            honest = play_json(url, f"{tmp}/client", "--quality", str(level), "--reference", source)
            print(
                f"level {level} once more (from the entry now stored): {honest['psnr_rgb']:.2f} dB"
                if isinstance(honest, dict)
                else honest
            )
            memory = f"server memory {server.memory_mib():.0f} MiB, peak {server.memory_mib('VmHWM'):.0f} MiB"
            print(f"health throughout: {probe.stop()}; {memory}")
        finally:
            log = server.stop()
        refused = sum('"stored_stream_refused"' in line for line in log.splitlines())
        print(f"the server logged {refused} stored_stream_refused line(s); tracebacks: {log.count('Traceback')}")


def abuse_wrong_source(models: Path, name: str) -> None:
    """A source file that is not the one the bundle was trained on, then the right one back."""
    with tempfile.TemporaryDirectory() as tmp:
        served = Path(tmp) / "models"
        shutil.copytree(models / name, served / name)
        bundle = load_bundle(served / name)
        source = served / name / bundle.meta.source.name
        shutil.copyfile(find_source(load_bundle(models / name)), source)
        right = source.read_bytes()
        frames = np.stack(list(iter_frames(source)))
        write_clip(source, 255 - frames, codec="ffv1", pix_fmt="yuv444p")
        env = {"AECODEC_CACHE": f"{tmp}/server-cache"}  # no decoded copy of the right file
        server = LocalServer(served, prelude=f"import os; os.environ.update({env!r})", log=True)
        try:
            url = server.url(name)
            got = play_json(url, f"{tmp}/client", "--quality", "0", "--retries", "0")
            print(f"source replaced by another video, play level 0: {got if isinstance(got, str) else 'played (!)'}")
            source.write_bytes(right)
            got = play_json(url, f"{tmp}/client", "--quality", "0", "--reference", str(source))
            print(f"the right source back, play level 0: {got['psnr_rgb']:.2f} dB" if isinstance(got, dict) else got)
        finally:
            log = server.stop()
        failed = [json.loads(line)["error"] for line in log.splitlines() if '"store_failed"' in line]
        print(f"the server logged: {failed[0][:140] if failed else 'nothing'}")


def _hostile(port: int, name: str, stopping: threading.Event, every: float, opened: list[str]) -> None:
    """One connection that opens a stream, takes one frame and then nothing (a 1 KiB flow-control
    window), and opens another as soon as the server ends it, looking every ``every`` seconds;
    ``opened`` gets how each stream began (``stalled`` once it had its frame, else its status)."""
    options = [("grpc.http2.lookahead_bytes", 1024), ("grpc.http2.bdp_probe", 0), ("grpc.use_local_subchannel_pool", 1)]
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        stub = codec_pb2_grpc.VideoCodecStub(channel)
        while not stopping.is_set():
            call = stub.StreamVideo(codec_pb2.StreamVideoRequest(name=name), timeout=600)
            try:
                next(call)
                opened.append("stalled")
            except grpc.RpcError as exc:
                opened.append(exc.code().name)
                stopping.wait(every)
                continue
            while call.running() and not stopping.wait(every):
                pass
            call.cancel()


def _viewers(url: str, cache: str, count: int, seconds: float) -> list[dict[str, Any] | str]:
    """What ``count`` viewers playing ``url`` again and again for ``seconds`` got, a play each."""
    until = time.monotonic() + seconds
    results: list[dict[str, Any] | str] = []

    def viewer(_: int) -> None:
        while time.monotonic() < until:
            results.append(play_json(url, cache))

    with futures.ThreadPoolExecutor(count) as pool:
        list(pool.map(viewer, range(count)))
    return results


def abuse_stalled_streams(models: Path, name: str, connections: int, every: float, seconds: float) -> None:
    """``connections`` hostile connections (from another address, then from the viewers' own)
    against honest `codec play` processes, two at a time, for ``seconds``."""
    for source in ("127.0.0.2", "127.0.0.1"):
        server = LocalServer(models, "--prepare", "--health-port", "0", log=False)
        proxy = ThrottledProxy(server.port, None, source=source)
        stopping = threading.Event()
        opened: list[str] = []
        try:
            with tempfile.TemporaryDirectory() as cache:
                play_json(server.url(name), cache, "--end", "2")  # the decoder is cached
                for _ in range(connections):
                    args = (proxy.port, name, stopping, every, opened)
                    threading.Thread(target=_hostile, args=args, daemon=True).start()
                time.sleep(2)
                probes = {"main port": HealthProbe(server.port), "probe port": HealthProbe(server.health_port)}
                results = _viewers(server.url(name), cache, 2, seconds)
            ok = [r for r in results if isinstance(r, dict)]
            failed = Counter(r.split(": ")[-1][:80] for r in results if isinstance(r, str))
            health = {where: probe.stop() for where, probe in probes.items()}
            print(
                f"{connections} connections from {source} stopping after one frame, re-opening every {every:g} s "
                f"({len(opened)} streams opened: {dict(Counter(opened))}): honest plays {len(ok)} of {len(results)} "
                f"({100 * len(ok) / max(1, len(results)):.0f}%), restarts {sum(r['resumes'] for r in ok)}; "
                f"failures {dict(failed) or 'none'}"
            )
            for where, line in health.items():
                print(f"  health on the {where}: {line}")
            print(f"  server memory {server.memory_mib():.0f} MiB, peak {server.memory_mib('VmHWM'):.0f} MiB")
        finally:
            stopping.set()
            proxy.close()
            server.drain()


def abuse_cold_cache(models: Path, name: str) -> None:
    """Every level asked for at once from an empty stream cache, one encoder, no --prepare: with the
    default share of slots per client address (every viewer here is 127.0.0.1), then with all of them."""
    levels = load_bundle(models / name).meta.coding.levels
    for share in ((), ("--max-streams-per-peer", "16")):
        with tempfile.TemporaryDirectory() as tmp:
            args = ("--stall-timeout", "10", "--stream-cache", f"{tmp}/streams", *share)
            server = LocalServer(models, *args, log=False)
            try:
                url = server.url(name)
                play_json(url, f"{tmp}/client", "--end", "1", "--quality", "0")  # the decoder is cached
                started = time.perf_counter()
                options = ("--timeout", "10", "--retries", "2")
                plays = [(url, f"{tmp}/client", "--quality", str(q), *options) for q in range(levels)]
                with futures.ThreadPoolExecutor(levels) as pool:
                    results = list(pool.map(lambda args: play_json(*args), plays))
                ok = [r for r in results if isinstance(r, dict)]
                errors = Counter(r.split(": ")[-1][:80] for r in results if isinstance(r, str))
                print(
                    f"cold cache, levels 0-{levels - 1} at once ({' '.join(args[:2] + share)}; play "
                    f"{' '.join(options)}): {len(ok)} of {levels} played in {time.perf_counter() - started:.1f} s, "
                    f"restarts {sum(r['resumes'] for r in ok)}; failures {dict(errors) or 'none'}"
                )
            finally:
                server.drain()


class Blackhole:
    """A TCP relay on 127.0.0.1 to ``port`` that can go dead without closing, as a connection whose
    peer vanished does: after :meth:`freeze_after` it stops relaying in both directions, sockets open."""

    def __init__(self, port: int) -> None:
        self.target, self.budget = port, -1
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stopping = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def freeze_after(self, nbytes: int) -> None:
        self.budget = nbytes

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        while not self.stopping.is_set():
            try:
                data = a.recv(1 << 16)
            except OSError:
                return
            if not data:
                return
            if self.budget >= 0:
                self.budget -= len(data)
                if self.budget < 0:
                    self.stopping.wait(PLAY_LIMIT_S)  # dead: nothing more is relayed, nothing closed
                    return
            b.sendall(data)

    def __enter__(self) -> Blackhole:
        return self

    def __exit__(self, *_: Any) -> None:
        self.stopping.set()
        self.listener.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path)
    parser.add_argument("name")
    parser.add_argument("--idle", type=int, default=24, help="idle Encode callers at once")
    parser.add_argument("--sizes", type=int, default=200, help="distinct frame sizes in the burst")
    parser.add_argument("--stall", type=float, default=5.0, help="the server's --stall-timeout")
    parser.add_argument("--hostile", type=int, default=64, help="connections that open streams and stop reading")
    parser.add_argument("--every", type=float, default=0.2, help="how often each of them re-opens its stream")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long honest viewers play beside them")
    args = parser.parse_args()
    abuse_stream_cache(args.models, args.name)
    abuse_wrong_source(args.models, args.name)
    abuse_stalled_streams(args.models, args.name, args.hostile, args.every, args.seconds)
    abuse_cold_cache(args.models, args.name)
    abuse_server(args.models, args.name, args.idle, args.sizes, args.stall)
    abuse_changed_bundle(args.models, args.name)
    abuse_player(args.models, args.name)
    abuse_player_weights(args.models, args.name)
    abuse_player_silence(args.models, args.name)
    abuse_decoder(args.models, args.name)


if __name__ == "__main__":
    main()
