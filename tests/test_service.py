"""The gRPC service against a real `codec serve` process on 127.0.0.1."""

from __future__ import annotations

import datetime
import filecmp
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import grpc
import numpy as np
import pytest
from conftest import Server, restarted, rewrite_bundle_file, run_cli
from grpc_health.v1 import health_pb2, health_pb2_grpc

from aecodec.client.player import Connection, ServerChunks, Target, Transfer, play, received_chunk
from aecodec.v1 import codec_pb2, codec_pb2_grpc
from codec.coding.common.bitstream import I_FRAME, Header
from codec.coding.common.decoder_weights import QuantizedTensor, pack, unpack
from codec.coding.decoder.decode import DecodeStats, decode_frames, decode_stream
from codec.errors import CodecError
from codec.io.bundle import load_bundle
from codec.io.video import read_clip

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def server(models: Path) -> Iterator[Server]:
    srv = Server(models, "--grace", "2")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def offline(models: Path, tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """The 24 frames as offline `codec encode` + `codec decode` reconstruct them (lossless mkv)."""
    out = tmp_path_factory.mktemp("offline")
    bundle = models / "short"
    assert run_cli("encode", bundle / "short.mkv", "-m", bundle, "-o", out / "s.aec")[0] == 0
    assert run_cli("decode", out / "s.aec", "-m", bundle, "-o", out / "s.mkv")[0] == 0
    return np.stack(read_clip(out / "s.mkv").frames)


def _frames(path: Path) -> np.ndarray:
    return np.stack(read_clip(path).frames)


def _starts(chunks: list) -> set[int]:
    """Where a received stream (re)started: its I-frames (an I-frame of the GOP's own starts nothing new)."""
    return {c.index for c in chunks if c.frame_type == I_FRAME}


def test_play_equals_offline_decode(server: Server, offline: np.ndarray, models: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    result = play(server.url(), tmp_path / "p.mkv", reference=models / "short" / "short.mkv", cache=cache)
    assert result["frames"] == 24 and result["resumes"] == 0 and result["bytes"] > 0
    assert 5 < result["psnr_rgb"] < 60
    assert np.array_equal(_frames(tmp_path / "p.mkv"), offline)
    # The decoder came once and is cached by its sha256; the files are the bundle's own.
    (cached,) = cache.iterdir()
    assert filecmp.cmp(cached / "decoder.onnx", models / "short" / "decoder.onnx", shallow=False)
    # A start inside a GOP is decoded from the GOP's stored I-frame: the frames of the unbroken stream.
    seek = play(server.url(), tmp_path / "p2.mkv", cache=cache, start=5, end=20)
    assert seek["frames"] == 15 and seek["lead_in_frames"] == 5
    assert np.array_equal(_frames(tmp_path / "p2.mkv"), offline[5:20])


def test_play_command_line(server: Server, models: Path, tmp_path: Path) -> None:
    env_cache = {"AECODEC_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "codec.cli",
            "play",
            server.url(),
            "-o",
            str(tmp_path / "p.mp4"),
            "--json",
            "--reference",
            str(models / "short" / "short.mkv"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env_cache},
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["frames"] == 24 and result["psnr_rgb"] > 5 and result["fps"] > 0
    proc = subprocess.run(
        [sys.executable, "-m", "codec.cli", "play", server.url("nope"), "-o", str(tmp_path / "n.mp4")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env_cache},
    )
    assert proc.returncode == 2 and "no video named 'nope'" in proc.stderr and "Traceback" not in proc.stderr


def test_eight_concurrent_clients_get_identical_complete_streams(server: Server, offline: np.ndarray, tmp_path: Path):
    results: dict[int, object] = {}

    def client(i: int) -> None:
        try:
            results[i] = play(server.url(), tmp_path / f"c{i}.mkv", cache=tmp_path / "cache")
        except Exception as exc:  # reported below with the client's number
            results[i] = exc

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(isinstance(r, dict) and r["frames"] == 24 for r in results.values()) and len(results) == 8, results
    for i in range(8):
        assert np.array_equal(_frames(tmp_path / f"c{i}.mkv"), offline)


def _stub(port: int) -> tuple[grpc.Channel, codec_pb2_grpc.VideoCodecStub]:
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    return channel, codec_pb2_grpc.VideoCodecStub(channel)


def test_errors_have_the_right_status(server: Server) -> None:
    channel, stub = _stub(server.port)
    with channel:
        cases = [
            (codec_pb2.StreamVideoRequest(name="nope"), grpc.StatusCode.NOT_FOUND),
            (codec_pb2.StreamVideoRequest(name="short", start_frame=30), grpc.StatusCode.INVALID_ARGUMENT),
            (codec_pb2.StreamVideoRequest(name="short", start_frame=5, end_frame=5), grpc.StatusCode.INVALID_ARGUMENT),
            (codec_pb2.StreamVideoRequest(name="short", quality=99), grpc.StatusCode.INVALID_ARGUMENT),
        ]
        for request, status in cases:
            with pytest.raises(grpc.RpcError) as err:
                list(stub.StreamVideo(request, timeout=30))
            assert err.value.code() == status, request
        bad = codec_pb2.RawFrame(name="short", width=8, height=8, rgb24=b"\0" * 10)
        with pytest.raises(grpc.RpcError) as err:
            list(stub.Encode(iter([bad]), timeout=30))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "frame 0" in err.value.details()


def test_health_reflection_and_listing(server: Server, models: Path) -> None:
    channel, stub = _stub(server.port)
    with channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "aecodec.v1.VideoCodec"):
            status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status
            assert status == health_pb2.HealthCheckResponse.SERVING
        from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        reply = next(reflect.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
        names = {s.name for s in reply.list_services_response.service}
        assert {"aecodec.v1.VideoCodec", "grpc.health.v1.Health"} <= names
        (video,) = stub.ListVideos(codec_pb2.ListVideosRequest(), timeout=10).videos
        assert (video.name, video.width, video.height, video.frames, video.gop) == ("short", 176, 144, 24, 8)
        assert video.bundle_sha256 == load_bundle(models / "short").decoder_sha256
        pieces = list(stub.GetDecoder(codec_pb2.GetDecoderRequest(name="short"), timeout=30))
        assert all(len(p.SerializeToString()) < 1 << 20 for p in pieces)
        meta = json.loads(b"".join(p.data for p in pieces if p.file == "meta.json"))
        assert "path" in load_bundle(models / "short").raw["source"] and "path" not in meta["source"]
        assert meta["source"]["sha256"] == load_bundle(models / "short").meta.source.sha256  # the rest as written


def _raw(frames: np.ndarray, **first: object) -> Iterator[codec_pb2.RawFrame]:
    for i, frame in enumerate(frames):
        extra = first if i == 0 else {}
        yield codec_pb2.RawFrame(
            name="short", width=frame.shape[1], height=frame.shape[0], rgb24=frame.tobytes(), **extra
        )


def test_live_encode_round_trip(server: Server, models: Path, offline: np.ndarray) -> None:
    source = _frames(models / "short" / "short.mkv")
    channel, stub = _stub(server.port)
    with channel:
        replies = list(stub.Encode(_raw(source), timeout=60))
    assert [r.index for r in replies] == list(range(24))
    bundle = load_bundle(models / "short")
    header = Header(bundle.decoder_sha256, 176, 144, Fraction(25), 24, 8, bundle.meta.coding.default_quality)
    frames, _ = decode_stream(header.pack() + b"".join(received_chunk(r).pack() for r in replies), bundle, "live")
    decoded = np.stack(list(frames))
    assert np.array_equal(decoded, offline)


def test_stream_limit_and_cancellation_free_the_worker(models: Path) -> None:
    srv = Server(models, "--max-streams", "1")
    gate = threading.Event()
    try:
        channel, stub = _stub(srv.port)
        with channel:
            source = _frames(models / "short" / "short.mkv")

            def slow_source() -> Iterator[codec_pb2.RawFrame]:
                yield from _raw(source[:1])
                gate.wait(60)  # hold the stream open without sending more

            held = stub.Encode(slow_source())
            assert next(held).index == 0  # the one slot is in use
            with pytest.raises(grpc.RpcError) as err:
                list(stub.StreamVideo(codec_pb2.StreamVideoRequest(name="short"), timeout=30))
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            held.cancel()  # the source stays open: the server sees a cancellation, not an end of input
            deadline = time.monotonic() + 10
            while True:  # the cancelled stream's slot comes back at once
                try:
                    frames = list(stub.StreamVideo(codec_pb2.StreamVideoRequest(name="short"), timeout=30))
                    break
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and time.monotonic() < deadline
                    time.sleep(0.1)
            assert len(frames) == 24
    finally:
        gate.set()
        log = srv.stop()
    outcomes = [json.loads(line)["outcome"] for line in log.splitlines() if '"event": "stream"' in line]
    assert "cancelled" in outcomes and "ok" in outcomes


def test_client_resumes_after_the_connection_drops(models: Path, offline: np.ndarray, tmp_path: Path) -> None:
    srv = Server(models, "--pace")  # real time, ~1 s for 24 frames: the cut lands mid-stream
    port = srv.port
    conn = Connection(Target.parse(srv.url()))
    transfer = Transfer()
    chunks = []
    try:
        for chunk in ServerChunks(conn, 0, 24, None, transfer, retries=8):
            chunks.append(chunk)
            if len(chunks) == 5:  # cut the connection mid-stream: the server dies and comes back
                srv.stop()
                srv = Server(models, "--pace", port=port)
    finally:
        conn.close()
        srv.stop()
    assert [c.index for c in chunks] == list(range(24)) and transfer.resumes >= 1
    bundle = load_bundle(models / "short")
    header = Header(bundle.decoder_sha256, 176, 144, Fraction(25), 24, 8, bundle.meta.coding.default_quality)
    stats = DecodeStats(header=header, bytes=0)
    decoded = np.stack(list(decode_frames(iter(chunks), bundle, "resumed", stats)))
    assert np.array_equal(decoded, restarted(models / "short", _starts(chunks), 24))


class _Logged:
    """A server whose log lines are collected as it writes them (a thread reads its stderr)."""

    def __init__(self, srv: Server) -> None:
        self.srv, self.lines = srv, []
        self.reader = threading.Thread(target=lambda: self.lines.extend(srv.proc.stderr), daemon=True)
        self.reader.start()

    def streams_started(self) -> int:
        return sum('"event": "stream_start"' in line for line in list(self.lines))


def test_round_robin_over_two_servers_survives_losing_one(
    models: Path, offline: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two real servers behind one round-robin target: the one serving the stream is killed mid-stream,
    and the client finishes on the other with the offline reconstruction, frame for frame."""
    servers = [_Logged(Server(models, "--pace")) for _ in range(2)]  # ~1 s for 24 frames
    url = f"grpc://127.0.0.1:{servers[0].srv.port},127.0.0.1:{servers[1].srv.port}/short"
    conn = Connection(Target.parse(url), lb="round-robin")
    transfer, chunks, killed = Transfer(), [], None
    try:
        for chunk in ServerChunks(conn, 0, 24, None, transfer, retries=8):
            chunks.append(chunk)
            if len(chunks) == 5:
                (killed,) = [s for s in servers if s.streams_started()]
                killed.srv.proc.kill()
        survivor = next(s for s in servers if s is not killed)
        assert survivor.streams_started() >= 1  # the rest of the stream came from the other server
        # The CLI with the same target: the dead server is skipped.
        monkeypatch.setenv("AECODEC_CACHE", str(tmp_path / "cache"))
        code, out, err = run_cli("play", url, "--lb", "round-robin", "-o", tmp_path / "played.mkv", "--json")
        assert code == 0, err
        assert json.loads(out)["frames"] == 24
    finally:
        conn.close()
        for s in servers:
            s.srv.proc.kill()
            s.srv.proc.wait(30)
    assert [c.index for c in chunks] == list(range(24)) and transfer.resumes >= 1
    bundle = load_bundle(models / "short")
    header = Header(bundle.decoder_sha256, 176, 144, Fraction(25), 24, 8, bundle.meta.coding.default_quality)
    decoded = np.stack(list(decode_frames(iter(chunks), bundle, "failed over", DecodeStats(header=header, bytes=0))))
    assert np.array_equal(decoded, restarted(models / "short", _starts(chunks), 24))
    assert np.array_equal(np.stack(read_clip(tmp_path / "played.mkv").frames), offline)


def test_bundle_files_replaced_under_a_running_server_are_not_served(
    models: Path, offline: np.ndarray, tmp_path: Path
) -> None:
    """A retrained model copied over a served one: the server goes on serving and coding with the
    files it verified at start (clients old and new decode every frame), and says so in one log line."""
    served = tmp_path / "models"
    shutil.copytree(models, served)
    bundle = served / "short"
    srv = _Logged(Server(served))
    try:
        old_client = tmp_path / "old-client"
        play(srv.srv.url(), tmp_path / "before.mkv", cache=old_client)
        entropy = json.loads((bundle / "entropy.json").read_text())
        for level in entropy["levels"]:
            level["step"] *= 2
            level["intra_centre"] = [c + 3 for c in level["intra_centre"]]
        tensors = unpack((bundle / "decoder.weights").read_bytes(), "w")
        retrained = [QuantizedTensor(t.name, t.q, t.steps * np.float32(1.5)) for t in tensors]
        rewrite_bundle_file(bundle, "entropy.json", json.dumps(entropy).encode())
        rewrite_bundle_file(bundle, "decoder.weights", pack(retrained))
        for client in (old_client, tmp_path / "new-client"):
            result = play(srv.srv.url(), tmp_path / f"{client.name}.mkv", cache=client)
            assert result["frames"] == 24 and result["resumes"] == 0
            assert np.array_equal(np.stack(read_clip(tmp_path / f"{client.name}.mkv").frames), offline)
    finally:
        srv.srv.stop()
        srv.reader.join(timeout=10)
    changed = [json.loads(line) for line in srv.lines if '"event": "bundle_changed"' in line]
    assert len(changed) == 1 and changed[0]["serving"] == load_bundle(models / "short").decoder_sha256


def test_sigterm_drains_in_flight_streams(models: Path) -> None:
    srv = Server(models, "--grace", "5")
    source = _frames(models / "short" / "short.mkv")
    channel, stub = _stub(srv.port)
    with channel:
        gate = threading.Event()

        def paced() -> Iterator[codec_pb2.RawFrame]:
            yield from _raw(source[:1])
            gate.wait(30)
            yield from _raw(source[1:4])

        call = stub.Encode(paced(), timeout=60)
        assert next(call).index == 0
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        health = health_pb2_grpc.HealthStub(channel)
        status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING
        gate.set()
        assert [r.index for r in call] == [1, 2, 3]  # the stream in flight finishes
    assert srv.proc.wait(30) == 0
    assert '"event": "stopped"' in srv.stop()


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_tls_and_bearer_token(models: Path, offline: np.ndarray, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    wrong = tmp_path / "wrong"
    wrong.write_text("guess")
    srv = Server(models, "--tls-cert", str(cert), "--tls-key", str(key), "--token-file", str(token))
    try:
        url = srv.url(scheme="grpcs", host="localhost")
        cache = tmp_path / "cache"
        for token_file in (None, wrong):
            with pytest.raises(Exception, match="UNAUTHENTICATED"):
                play(url, tmp_path / "x.mkv", ca=cert, token_file=token_file, cache=cache)
        result = play(url, tmp_path / "ok.mkv", ca=cert, token_file=token, cache=cache)
        assert result["frames"] == 24 and np.array_equal(_frames(tmp_path / "ok.mkv"), offline)
        with pytest.raises(Exception, match="UNAVAILABLE"):  # plaintext against a TLS port
            play(srv.url(), tmp_path / "y.mkv", token_file=token, cache=cache, retries=0)
    finally:
        srv.stop()


def test_generated_stubs_are_current(tmp_path: Path) -> None:
    """The committed stubs equal what `make proto` generates from the .proto today."""
    from grpc_tools import protoc

    args = ["protoc", f"-I{ROOT}", f"--python_out={tmp_path}", f"--pyi_out={tmp_path}"]
    args += [f"--grpc_python_out={tmp_path}", str(ROOT / "aecodec/v1/codec.proto")]
    assert protoc.main(args) == 0
    for name in ("codec_pb2.py", "codec_pb2.pyi", "codec_pb2_grpc.py"):
        fresh = (tmp_path / "aecodec/v1" / name).read_text()
        assert fresh == (ROOT / "aecodec/v1" / name).read_text(), f"{name} is stale: run `make proto`"


def test_play_into_a_png_folder_replaces_it_only_when_whole(
    server: Server, offline: np.ndarray, odd_clip: Path, tmp_path: Path
) -> None:
    out, cache = tmp_path / "frames", tmp_path / "cache"
    assert play(server.url(), out, cache=cache)["frames"] == 24
    assert len(list(out.glob("frame_*.png"))) == 24
    with pytest.raises(CodecError, match="--force"):
        play(server.url(), out, cache=cache)
    with pytest.raises(CodecError, match="of another size"):  # fails after frames were written
        play(server.url(), out, cache=cache, reference=odd_clip, force=True)
    assert len(list(out.glob("frame_*.png"))) == 24 and sorted(p.name for p in tmp_path.iterdir()) == [
        "cache",
        "frames",
    ]
    assert play(server.url(), out, cache=cache, start=20, force=True)["frames"] == 4
    assert len(list(out.glob("frame_*.png"))) == 4
