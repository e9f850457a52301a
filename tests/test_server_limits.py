"""A real `codec serve` on 127.0.0.1 against hostile clients: idle and slow callers, bursts of
frame sizes, huge names and values, plaintext where secrets would travel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import numpy as np
import pytest
from clips import synthetic_frames, write_clip
from conftest import TINY, Server, run_cli
from grpc_health.v1 import health_pb2, health_pb2_grpc
from test_service import _raw, _self_signed
from throttle import ThrottledProxy

from aecodec.v1 import codec_pb2, codec_pb2_grpc
from codec.io.bundle import SHIPPED_FILES
from codec.io.video import read_clip
from codec.net import RETRY_AFTER_KEY


def _health_latency(channel: grpc.Channel) -> float:
    started = time.perf_counter()
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    return time.perf_counter() - started


@contextmanager
def _serving(models: Path, *args: str) -> Iterator[tuple[Server, codec_pb2_grpc.VideoCodecStub]]:
    """A real `codec serve` with ARGS and a stub on a plaintext channel to it, both closed after."""
    srv = Server(models, *args)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            yield srv, codec_pb2_grpc.VideoCodecStub(channel)
    finally:
        srv.stop()


def _refused(call: Callable[[], object]) -> grpc.RpcError:
    """The error ``call`` must end in."""
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value


def _silent(gate: threading.Event) -> Iterator[codec_pb2.RawFrame]:
    """A client that opens Encode and never sends a frame."""
    gate.wait(60)
    yield from ()


def test_idle_callers_starve_nothing_and_are_cancelled(models: Path) -> None:
    srv = Server(
        models, "--max-streams", "2", "--max-streams-per-peer", "2", "--stall-timeout", "2", "--health-port", "0"
    )
    gate = threading.Event()
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{srv.port}")
        stub = codec_pb2_grpc.VideoCodecStub(channel)
        idle = [stub.Encode(_silent(gate), timeout=30) for _ in range(12)]  # 6x the stream limit
        time.sleep(1.0)
        # Health and listing answer at once, on the main port and on the probe port.
        probe = grpc.insecure_channel(f"127.0.0.1:{srv.health_port}")
        assert max(_health_latency(channel), _health_latency(probe)) < 1.0
        assert stub.ListVideos(codec_pb2.ListVideosRequest(), timeout=2).videos[0].name == "short"
        # Ten of the twelve were refused at once; the two holding the slots are cancelled after the
        # stall timeout, and then the slots serve a real stream.
        codes = []
        for call in idle:
            codes.append(_refused(lambda call=call: list(call)).code())
        assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 10
        assert codes.count(grpc.StatusCode.CANCELLED) == 2, codes
        assert len(list(stub.StreamVideo(codec_pb2.StreamVideoRequest(name="short"), timeout=30))) == 24
        channel.close()
        probe.close()
    finally:
        gate.set()
        srv.stop()


def test_a_burst_of_frame_sizes_costs_no_memory(models: Path) -> None:
    with _serving(models) as (srv, stub):

        def empty_frame(width: int, height: int) -> grpc.StatusCode:
            request = codec_pb2.RawFrame(name="short", width=width, height=height)
            return _refused(lambda: list(stub.Encode(iter([request]), timeout=30))).code()

        assert empty_frame(176, 144) == grpc.StatusCode.INVALID_ARGUMENT  # the first builds the sessions
        before = srv.memory_mib()
        sizes = [(w, h) for w in range(100, 176, 4) for h in (64, 144)]  # 38 sizes the model takes
        assert {empty_frame(w, h) for w, h in sizes} == {grpc.StatusCode.INVALID_ARGUMENT}
        # Larger than the model's source, or absurd: refused before anything is allocated.
        for w, h in ((177, 144), (16384, 16384), (0, 10), (2**31 - 1, 1)):
            assert empty_frame(w, h) == grpc.StatusCode.INVALID_ARGUMENT
        grown = srv.memory_mib() - before
    assert grown < 20, f"server grew {grown:.0f} MiB over {len(sizes)} frame sizes"


def test_absurd_values_get_invalid_argument_or_not_found(models: Path) -> None:
    with _serving(models) as (_, stub):
        frame = read_clip(models / "short" / "short.mkv", max_frames=1).frames[0]
        err = _refused(lambda: list(stub.Encode(_raw(frame[None], gop=70000), timeout=30)))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "65535" in err.details()
        long_name = "x" * 100_000
        err = _refused(lambda: list(stub.StreamVideo(codec_pb2.StreamVideoRequest(name=long_name), timeout=30)))
        assert err.code() == grpc.StatusCode.NOT_FOUND and "100000 characters" in err.details()
        assert len(err.details()) < 200
        huge = codec_pb2.GetDecoderRequest(name="x" * (3 << 20))  # larger than any message the server takes
        assert _refused(lambda: list(stub.GetDecoder(huge, timeout=30))).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert stub.ListVideos(codec_pb2.ListVideosRequest(), timeout=5).videos  # and it still serves


def test_live_encode_takes_a_1080p_frame(tmp_path: Path) -> None:
    """gRPC's default 4 MiB message limit would refuse one 1920x1080 RGB24 frame (6.2 MB)."""
    root = tmp_path / "models"
    root.mkdir()
    frames = synthetic_frames(2, 1920, 1080)
    source = write_clip(root / "hd.mkv", frames, codec="ffv1", pix_fmt="yuv444p")
    code, _, err = run_cli("train", source, "-o", root / "hd", "--steps", "1", *TINY)
    assert code == 0, err
    srv = Server(root)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            stub = codec_pb2_grpc.VideoCodecStub(channel)
            frames = [codec_pb2.RawFrame(name="hd", width=1920, height=1080, rgb24=frames[0].tobytes())]
            (reply,) = list(stub.Encode(iter(frames), timeout=120))
        assert reply.index == 0 and reply.type == 0 and len(reply.payload) > 0
    finally:
        srv.stop()


def _serve(models: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "codec.cli", "serve", "--models", str(models), "--port", "0", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_a_public_address_needs_tls_and_a_token(models: Path, tmp_path: Path) -> None:
    proc = _serve(models, "--host", "0.0.0.0")
    assert proc.returncode == 2 and "without TLS and a token" in proc.stderr and "--insecure" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    token = tmp_path / "token"
    token.write_text("t")
    proc = _serve(models, "--host", "0.0.0.0", "--token-file", str(token))  # a token in clear text
    assert proc.returncode == 2 and "without TLS and a token" in proc.stderr
    # With --insecure it serves, and says so in its log.
    srv = Server(models, "--host", "0.0.0.0", "--insecure")
    try:
        assert len(list(_stub(srv.port).ListVideos(codec_pb2.ListVideosRequest(), timeout=10).videos)) == 1
    finally:
        log = srv.stop()
    assert '"event": "insecure"' in log


def _stub(port: int, credentials: grpc.ChannelCredentials | None = None) -> codec_pb2_grpc.VideoCodecStub:
    target = f"127.0.0.1:{port}"
    channel = grpc.secure_channel(target, credentials) if credentials else grpc.insecure_channel(target)
    return codec_pb2_grpc.VideoCodecStub(channel)


def test_every_rpc_needs_the_token(models: Path, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    srv = Server(models, "--tls-cert", str(cert), "--tls-key", str(key), "--token-file", str(token))
    frames = np.stack(read_clip(models / "short" / "short.mkv", max_frames=2).frames)
    calls = {
        "ListVideos": lambda stub, md: stub.ListVideos(codec_pb2.ListVideosRequest(), metadata=md, timeout=30),
        "GetDecoder": lambda stub, md: list(
            stub.GetDecoder(codec_pb2.GetDecoderRequest(name="short"), metadata=md, timeout=30)
        ),
        "StreamVideo": lambda stub, md: list(
            stub.StreamVideo(codec_pb2.StreamVideoRequest(name="short", end_frame=2), metadata=md, timeout=30)
        ),
        "Encode": lambda stub, md: list(stub.Encode(_raw(frames), metadata=md, timeout=30)),
    }
    try:
        stub = _stub(srv.port, grpc.ssl_channel_credentials(cert.read_bytes()))
        for name, call in calls.items():
            for metadata in ((), (("authorization", "Bearer guess"),), (("authorization", "s3cret"),)):
                with pytest.raises(grpc.RpcError) as err:
                    call(stub, metadata)
                assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, (name, metadata)
            assert call(stub, (("authorization", "Bearer s3cret"),)), name
    finally:
        srv.stop()


BLOCK_TORCH = "import sys; sys.modules['torch'] = None"  # any 'import torch' now raises ImportError


def test_serve_and_play_need_no_torch(models: Path, tmp_path: Path) -> None:
    srv = Server(models, prelude=BLOCK_TORCH)
    try:
        script = f"{BLOCK_TORCH}\nfrom codec.cli import main\nmain()"
        out = tmp_path / "p.mkv"
        proc = subprocess.run(
            [sys.executable, "-c", script, "play", srv.url(), "-o", str(out), "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "AECODEC_CACHE": str(tmp_path / "cache")},
        )
        assert proc.returncode == 0, proc.stderr
        assert len(read_clip(out)) == 24  # every frame's check matched the encoder's reconstruction
        cached = {p.name for p in (tmp_path / "cache").rglob("*") if p.is_file()}
        assert cached == set(SHIPPED_FILES)  # decoded from what GetDecoder sends, nothing more
    finally:
        log = srv.stop()
    assert '"outcome": "ok"' in log and "torch" not in log


def test_secret_files_that_are_missing_or_malformed_are_one_line_errors(models: Path, tmp_path: Path) -> None:
    two_lines = tmp_path / "two-lines"
    two_lines.write_text("first\nsecond\n")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    missing = tmp_path / "missing"
    url = "grpc://127.0.0.1:1/short"  # nothing is contacted: the files are read first
    cases = [
        (("play", url, "-o", tmp_path / "o.mkv", "--token-file", missing), "cannot read the token file"),
        (("play", url, "-o", tmp_path / "o.mkv", "--token-file", two_lines), "one token of printable ASCII"),
        (("play", url, "-o", tmp_path / "o.mkv", "--ca", missing), "cannot read the CA certificate"),
        (("serve", "--models", models, "--token-file", empty), "one token of printable ASCII"),
        (("serve", "--models", models, "--tls-cert", missing, "--tls-key", missing), "cannot read the TLS key"),
    ]
    for args, message in cases:
        code, _, err = run_cli(*args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (args, err)


ZERO_WINDOW = [
    ("grpc.http2.lookahead_bytes", 1024),  # a 1 KiB flow-control window, never widened
    ("grpc.http2.bdp_probe", 0),
    ("grpc.use_local_subchannel_pool", 1),  # a connection of its own
]


def _stop_reading(port: int, request: codec_pb2.StreamVideoRequest) -> grpc.Call:
    """A stream whose client takes one frame and then nothing: its window fills and the server's send blocks."""
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=ZERO_WINDOW)
    call = codec_pb2_grpc.VideoCodecStub(channel).StreamVideo(request, timeout=60)
    next(call)
    call.add_done_callback(lambda _: channel.close())
    return call


def _events(log: str, event: str) -> list[dict]:
    return [json.loads(line) for line in log.splitlines() if f'"event": "{event}"' in line]


def test_a_reader_that_stops_taking_a_long_stream_gives_its_slot_to_the_next(ladder_models: Path) -> None:
    """The slow-reader path: a client reads one frame of a stream larger than its flow-control window,
    then nothing. The server's send blocks once the window is full; the next request takes the stalled
    call's slot (it used to be refused until the stall timeout) and gets every frame."""
    with _serving(ladder_models, "--max-streams", "1", "--stall-timeout", "30", "--prepare") as (srv, stub):
        call = _stop_reading(srv.port, codec_pb2.StreamVideoRequest(name="long", quality=5))
        time.sleep(1.0)
        started = time.monotonic()
        frames = len(list(stub.StreamVideo(codec_pb2.StreamVideoRequest(name="long"), timeout=30)))
        assert frames == 120 and time.monotonic() - started < 10
        assert _refused(lambda: list(call)).code() == grpc.StatusCode.CANCELLED
        log = srv.stop()
    ended = [e for e in _events(log, "stream") if e["outcome"] == "cancelled"]
    assert ended and ended[0]["frames"] < 10 and ended[0]["bytes"] < 4096, ended
    assert len(_events(log, "evicted")) == 1


def test_a_moving_stream_is_never_evicted(ladder_models: Path) -> None:
    """At the limit with every slot moving, a new request is refused at once, and readiness says so."""
    with _serving(ladder_models, "--max-streams", "1", "--pace", "--prepare", "--health-port", "0") as (srv, stub):
        request = codec_pb2.StreamVideoRequest(name="long", quality=0)
        paced: list[int] = []
        reader = threading.Thread(target=lambda: paced.append(len(list(stub.StreamVideo(request, timeout=60)))))
        reader.start()
        with grpc.insecure_channel(f"127.0.0.1:{srv.health_port}") as probe:
            health = health_pb2_grpc.HealthStub(probe)

            def status(service: str) -> int:
                return health.Check(health_pb2.HealthCheckRequest(service=service), timeout=2).status

            time.sleep(1.5)
            busy = _refused(lambda: list(stub.StreamVideo(codec_pb2.StreamVideoRequest(name="long"), timeout=5)))
            assert busy.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert status("aecodec.v1.VideoCodec") == health_pb2.HealthCheckResponse.NOT_SERVING
            assert status("") == health_pb2.HealthCheckResponse.SERVING  # alive all the same
            reader.join(60)
            time.sleep(1.0)
            assert status("aecodec.v1.VideoCodec") == health_pb2.HealthCheckResponse.SERVING
        assert paced == [120]


def test_one_client_address_cannot_hold_every_slot(ladder_models: Path) -> None:
    """Eight streams from another address that stop reading, re-opened as soon as they end, used to
    hold every slot; now that address holds at most half of them, so honest streams all get through."""
    with _serving(ladder_models, "--max-streams", "4", "--stall-timeout", "30", "--prepare") as (srv, stub):
        proxy = ThrottledProxy(srv.port, None, source="127.0.0.2")
        stopping = threading.Event()
        request = codec_pb2.StreamVideoRequest(name="long", quality=5)

        def hostile() -> None:
            while not stopping.is_set():
                try:
                    call = _stop_reading(proxy.port, request)
                except grpc.RpcError:
                    continue
                while not stopping.wait(0.05) and call.running():
                    pass
                call.cancel()

        attackers = [threading.Thread(target=hostile, daemon=True) for _ in range(8)]
        for thread in attackers:
            thread.start()
        time.sleep(2.0)
        try:
            honest = [
                len(list(stub.StreamVideo(codec_pb2.StreamVideoRequest(name="long"), timeout=30))) for _ in range(3)
            ]
        finally:
            stopping.set()
            for thread in attackers:
                thread.join(10)
            proxy.close()
        log = srv.stop()
    assert honest == [120] * 3
    evicted = _events(log, "evicted")
    assert evicted and all(e["peer"] == "ipv4:127.0.0.2" for e in evicted)  # no honest stream was


def test_viewers_of_a_level_being_prepared_are_told_when_to_come_back(ladder_models: Path, tmp_path: Path) -> None:
    """Ten levels asked for at once from a cold cache, one encoder: a request still waiting for its
    level after a few seconds is answered UNAVAILABLE with when to retry, and none is cancelled by the
    server's own stall reaper (they used to be: CANCELLED, or a client timeout)."""
    args = ("--stall-timeout", "1", "--max-streams", "10", "--max-streams-per-peer", "10")
    # A request waits 1.5 s for its level (5 s in service): longer than the stall timeout, and shorter
    # than the nine encodes ahead of the last level take on any machine.
    wait = "import aecodec.server.servicer as s; s.PREPARING_WAIT_S = 1.5"
    srv = Server(ladder_models, *args, "--stream-cache", str(tmp_path / "streams"), prelude=wait)
    with grpc.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
        stub = codec_pb2_grpc.VideoCodecStub(channel)
        outcomes: dict[int, object] = {}

        def watch(level: int) -> None:
            request = codec_pb2.StreamVideoRequest(name="long", quality=level, end_frame=8, from_keyframe=True)
            call = stub.StreamVideo(request, timeout=60)
            try:
                outcomes[level] = len(list(call))
            except grpc.RpcError as exc:
                trailer = dict(exc.trailing_metadata() or ())
                outcomes[level] = (exc.code(), exc.details(), trailer.get(RETRY_AFTER_KEY))

        viewers = [threading.Thread(target=watch, args=(level,)) for level in range(10)]
        for thread in viewers:
            thread.start()
        for thread in viewers:
            thread.join(60)
    srv.stop()
    served = [v for v in outcomes.values() if v == 8]
    told = [v for v in outcomes.values() if isinstance(v, tuple)]
    assert len(served) + len(told) == 10, outcomes
    assert served and told, outcomes
    for code, details, retry_ms in told:
        assert code == grpc.StatusCode.UNAVAILABLE and "is being prepared, retry in" in details
        assert 1000 <= int(retry_ms) <= 30000
