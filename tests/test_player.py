"""`codec play` against servers that lie: in-process fake servers on 127.0.0.1, built on the real
generated stubs and serving a real tiny bundle's files, honestly or not."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import grpc
import numpy as np
import pytest
from conftest import Server, restarted, run_cli
from crafted import noise_payload

from aecodec.client.decoder_cache import MAX_DECODER_BYTES
from aecodec.client.player import (
    MAX_NAME,
    MAX_VIDEOS,
    Connection,
    DamagedChunk,
    ServerChunks,
    Target,
    Transfer,
    fetch_decoder,
    find_video,
    play,
    received_chunk,
)
from aecodec.v1 import codec_pb2, codec_pb2_grpc
from codec.coding.common.bitstream import I_FRAME, Chunk
from codec.coding.common.decoder_weights import pack, unpack
from codec.coding.encoder.encode import StreamEncoder
from codec.errors import CodecError
from codec.io.bundle import SHIPPED_FILES, Bundle, BundleMeta, load_bundle
from codec.io.video import read_clip
from codec.net import RETRY_AFTER_KEY

PIECE = 4096  # small, so that decoder.onnx comes in several pieces


class FakeServer(codec_pb2_grpc.VideoCodecServicer):
    """Lists ``videos`` and sends ``pieces`` as any video's decoder; ``after_pieces`` runs before the
    decoder stream ends."""

    def __init__(self, videos: list[codec_pb2.Video], pieces: list[codec_pb2.DecoderChunk]) -> None:
        self.videos, self.pieces = videos, pieces
        self.after_pieces: Callable[[], None] = lambda: None
        self.decoder_calls = self.listings = 0

    def ListVideos(self, request: Any, context: grpc.ServicerContext) -> codec_pb2.ListVideosResponse:
        self.listings += 1
        return codec_pb2.ListVideosResponse(videos=self.videos)

    def GetDecoder(self, request: Any, context: grpc.ServicerContext) -> Iterator[codec_pb2.DecoderChunk]:
        self.decoder_calls += 1
        yield from self.pieces
        self.after_pieces()


@contextmanager
def serving(servicer: codec_pb2_grpc.VideoCodecServicer) -> Iterator[str]:
    """``servicer`` on a free port of 127.0.0.1; yields the URL of its video ``short``."""
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    codec_pb2_grpc.add_VideoCodecServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"grpc://127.0.0.1:{port}/short"
    finally:
        server.stop(None)


def honest(bundle_dir: Path) -> FakeServer:
    """A fake that tells the truth about ``bundle_dir``, its files in PIECE-byte pieces."""
    video = codec_pb2.Video(
        name="short", width=176, height=144, fps=25, frames=24, quality_levels=4, default_quality=1, gop=8
    )
    video.bundle_sha256 = load_bundle(bundle_dir).decoder_sha256
    pieces = []
    for name in SHIPPED_FILES:
        data = (bundle_dir / name).read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        for offset in range(0, len(data), PIECE):
            chunk = data[offset : offset + PIECE]
            pieces.append(codec_pb2.DecoderChunk(file=name, size=len(data), sha256=sha, offset=offset, data=chunk))
    return FakeServer([video], pieces)


def _of(fake: FakeServer, name: str) -> list[codec_pb2.DecoderChunk]:
    return [p for p in fake.pieces if p.file == name]


def _replace_file(fake: FakeServer, name: str, data: bytes) -> None:
    """Send ``data`` as file ``name``, with its true size and sha256, in one piece."""
    sha = hashlib.sha256(data).hexdigest()
    fake.pieces = [p for p in fake.pieces if p.file != name]
    fake.pieces.append(codec_pb2.DecoderChunk(file=name, size=len(data), sha256=sha, offset=0, data=data))


def _set(pieces: list[codec_pb2.DecoderChunk], **fields: Any) -> None:
    for piece in pieces:
        for key, value in fields.items():
            setattr(piece, key, value)


# Each lie, told by changing an honest fake; ``evil`` is an absolute path outside the cache.
LIES: dict[str, Callable[[FakeServer, Path], None]] = {
    "absolute bundle_sha256": lambda f, evil: setattr(f.videos[0], "bundle_sha256", str(evil)),
    "bundle_sha256 climbing out of the cache": lambda f, evil: setattr(f.videos[0], "bundle_sha256", "../../evil"),
    "uppercase bundle_sha256": lambda f, evil: setattr(f.videos[0], "bundle_sha256", f.videos[0].bundle_sha256.upper()),
    "a decoder that is not the advertised bundle": lambda f, evil: setattr(
        f.videos[0], "bundle_sha256", hashlib.sha256(b"another bundle").hexdigest()
    ),
    "a file named as a path": lambda f, evil: f.pieces.insert(
        0, codec_pb2.DecoderChunk(file=str(evil), size=1, sha256="0" * 64, offset=0, data=b"x")
    ),
    "an unknown file": lambda f, evil: f.pieces.append(
        codec_pb2.DecoderChunk(file="run.sh", size=1, sha256="0" * 64, offset=0, data=b"x")
    ),
    "a missing file": lambda f, evil: setattr(f, "pieces", [p for p in f.pieces if p.file != "entropy.json"]),
    "2^40 bytes claimed": lambda f, evil: _set(_of(f, "decoder.onnx"), size=2**40),
    "over the limit in all": lambda f, evil: (
        _set(_of(f, "decoder.onnx"), size=MAX_DECODER_BYTES // 2 + 1),
        _set(_of(f, "entropy.json"), size=MAX_DECODER_BYTES // 2),
    ),
    "a gap": lambda f, evil: _set(_of(f, "decoder.onnx")[1:2], offset=PIECE + 1),
    "an overlap": lambda f, evil: f.pieces.insert(2, _of(f, "decoder.onnx")[0]),
    "a piece beyond the declared size": lambda f, evil: _set(
        _of(f, "decoder.onnx")[-1:], data=_of(f, "decoder.onnx")[-1].data + b"x"
    ),
    "a piece after the last byte": lambda f, evil: f.pieces.append(
        codec_pb2.DecoderChunk(
            file="meta.json",
            size=_of(f, "meta.json")[0].size,
            sha256=_of(f, "meta.json")[0].sha256,
            offset=_of(f, "meta.json")[0].size,
            data=b"x",
        )
    ),
    "a flood of empty pieces": lambda f, evil: f.pieces.__setitem__(
        slice(0, 0), [codec_pb2.DecoderChunk(file="decoder.onnx", size=_of(f, "decoder.onnx")[0].size)] * 1000
    ),
    "a truncated file": lambda f, evil: f.pieces.remove(_of(f, "decoder.onnx")[-1]),
    "a damaged piece": lambda f, evil: _set(_of(f, "decoder.onnx")[1:2], data=b"\0" * PIECE),
    "pieces that disagree on the sha256": lambda f, evil: _set(_of(f, "decoder.onnx")[1:], sha256="1" * 64),
    "pieces that disagree on the size": lambda f, evil: _set(
        _of(f, "decoder.onnx")[1:], size=_of(f, "decoder.onnx")[0].size + 1
    ),
    "a sha256 that is not one": lambda f, evil: _set(_of(f, "entropy.json"), sha256="../../evil"),
    "a meta.json listing no files": lambda f, evil: _replace_file(
        f, "meta.json", b'{"format": "aecodec-bundle", "format_version": 1, "files": []}'
    ),
    "a meta.json nested too deep": lambda f, evil: _replace_file(f, "meta.json", b"[" * 100_000),
}


@pytest.mark.parametrize("lie", LIES)
def test_play_refuses_a_lying_server_and_stores_nothing(models: Path, tmp_path: Path, lie: str) -> None:
    fake, evil, cache = honest(models / "short"), tmp_path / "evil", tmp_path / "home" / "cache"
    LIES[lie](fake, evil)
    with serving(fake) as url, pytest.raises(CodecError) as err:
        play(url, tmp_path / "out.mkv", cache=cache)
    message = str(err.value)
    assert "\n" not in message and message.startswith(url.split("/")[2]), message
    assert not evil.exists() and not (tmp_path / "out.mkv").exists()
    assert not cache.exists() or not any(cache.iterdir())  # no folder, partial or hidden, is left


def test_play_command_line_refuses_a_lying_server(
    models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, evil, cache = honest(models / "short"), tmp_path / "evil", tmp_path / "cache"
    LIES["absolute bundle_sha256"](fake, evil)
    monkeypatch.setenv("AECODEC_CACHE", str(cache))
    with serving(fake) as url:
        code, out, err = run_cli("play", url, "-o", tmp_path / "out.mkv")
    assert code == 2 and out == "" and err.startswith("error: 127.0.0.1:") and err.count("\n") == 1, err
    assert "bundle_sha256" in err and not evil.exists() and not cache.exists()


def _video(**fields: Any) -> codec_pb2.Video:
    return codec_pb2.Video(**{"name": "x", "width": 16, "height": 16, "fps": 25, "bundle_sha256": "0" * 64, **fields})


LISTINGS: dict[str, Callable[[FakeServer], None]] = {
    "too many videos": lambda f: f.videos.extend([_video()] * MAX_VIDEOS),
    "an overlong name": lambda f: f.videos.insert(0, _video(name="n" * (MAX_NAME + 1))),
    "no width": lambda f: setattr(f.videos[0], "width", 0),
    "a huge height": lambda f: setattr(f.videos[0], "height", 1 << 20),
    "no frame rate": lambda f: setattr(f.videos[0], "fps", 0),
    "a NaN frame rate": lambda f: setattr(f.videos[0], "fps", math.nan),
    "an infinite frame rate": lambda f: setattr(f.videos[0], "fps", math.inf),
}


@pytest.mark.parametrize("listing", LISTINGS)
def test_a_listing_out_of_bounds_is_refused_before_use(models: Path, tmp_path: Path, listing: str) -> None:
    fake = honest(models / "short")
    LISTINGS[listing](fake)
    with serving(fake) as url, pytest.raises(CodecError) as err:
        play(url, tmp_path / "out.mkv", cache=tmp_path / "cache")
    assert "\n" not in str(err.value) and fake.decoder_calls == 0 and not (tmp_path / "cache").exists()


class Refusing(codec_pb2_grpc.VideoCodecServicer):
    """Refuses every listing with a long message of many lines."""

    def ListVideos(self, request: Any, context: grpc.ServicerContext) -> None:
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "no\nway\n" * 500)


def test_a_server_error_message_is_shown_on_one_bounded_line(tmp_path: Path) -> None:
    with serving(Refusing()) as url, pytest.raises(CodecError) as err:
        play(url, tmp_path / "out.mkv", cache=tmp_path / "cache")
    message = str(err.value)
    assert "PERMISSION_DENIED: no way no way" in message and "\n" not in message and len(message) < 400


def _sign(fake: FakeServer, name: str, data: bytes) -> None:
    """Send ``data`` as file ``name``, with meta.json and the advertised bundle_sha256 made to match it."""
    meta = json.loads(b"".join(p.data for p in _of(fake, "meta.json")))
    meta["files"][name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    _replace_file(fake, name, data)
    _replace_file(fake, "meta.json", json.dumps(meta).encode())
    fake.videos[0].bundle_sha256 = Bundle(Path(), BundleMeta.parse(meta, "meta.json"), meta, 0).decoder_sha256


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("entropy.json", b"[" * 100_000),
        ("decoder.onnx", b"no model"),
        ("decoder.weights", b"AECW" + bytes([1]) + (60000).to_bytes(2, "little")),  # absurd table count
        ("decoder.weights", "noise"),  # a valid header, 64 bytes of 0xff for its payload
        ("decoder.weights", "twice"),  # a valid file that names one tensor twice
    ],
)
def test_a_consistent_but_unusable_decoder_is_a_one_line_error_and_is_not_cached(
    models: Path, tmp_path: Path, name: str, data: bytes | str
) -> None:
    fake = honest(models / "short")
    if isinstance(data, str):
        tensors = unpack((models / "short" / name).read_bytes(), name)
        valid = pack([*tensors, tensors[0]] if data == "twice" else tensors)
        data = valid if data == "twice" else noise_payload(valid)
    _sign(fake, name, data)
    with serving(fake) as url, pytest.raises(CodecError) as err:
        play(url, tmp_path / "out.mkv", cache=tmp_path / "cache")
    assert name in str(err.value) and "\n" not in str(err.value) and not (tmp_path / "out.mkv").exists()
    assert list((tmp_path / "cache").iterdir()) == []


def test_an_unusable_decoder_cached_earlier_is_removed_not_used_again(models: Path, tmp_path: Path) -> None:
    """An entry an earlier version stored without opening it: its files match its name, but its
    weights do not decode. A play removes it and fetches again; what the server sends is refused."""
    fake, cache = honest(models / "short"), tmp_path / "cache"
    _sign(fake, "decoder.weights", noise_payload((models / "short" / "decoder.weights").read_bytes()))
    entry = cache / fake.videos[0].bundle_sha256
    entry.mkdir(parents=True)
    for name in SHIPPED_FILES:
        (entry / name).write_bytes(b"".join(p.data for p in _of(fake, name)))
    with serving(fake) as url, pytest.raises(CodecError, match="sent an unusable decoder") as err:
        play(url, tmp_path / "out.mkv", cache=cache)
    assert "\n" not in str(err.value) and fake.decoder_calls == 1 and list(cache.iterdir()) == []


def test_an_honest_decoder_is_fetched_once_and_cached_by_its_sha256(models: Path, tmp_path: Path) -> None:
    fake, cache = honest(models / "short"), tmp_path / "cache"
    with serving(fake) as url:
        conn = Connection(Target.parse(url))
        try:
            video = find_video(conn)
            first = fetch_decoder(conn, video, cache)
            again = fetch_decoder(conn, video, cache)
        finally:
            conn.close()
    assert first.path == again.path == cache / video.bundle_sha256 and fake.decoder_calls == 1
    assert [p.name for p in cache.iterdir()] == [video.bundle_sha256]  # no temporary folder is left
    for name in SHIPPED_FILES:
        assert (first.path / name).read_bytes() == (models / "short" / name).read_bytes()


def test_downloads_killed_midway_are_removed(models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client killed mid-fetch leaves its .incoming-* folder (up to 256 MiB): the next fetch removes
    those older than any fetch lasts, and codec cache --clear removes them all."""
    cache = tmp_path / "cache"
    stale, fresh = cache / ".incoming-stale", cache / ".incoming-fresh"
    for folder in (stale, fresh):
        folder.mkdir(parents=True)
        (folder / "decoder.onnx").write_bytes(bytes(1 << 20))
    os.utime(stale, (time.time() - 2 * 3600,) * 2)
    with serving(Drifting(models / "short", at=None, lies=0)) as url:  # honest throughout
        play(url, tmp_path / "out.mkv", cache=cache)
    assert not stale.exists() and fresh.exists()
    monkeypatch.setenv("AECODEC_CACHE", str(cache))
    code, out, err = run_cli("cache", "--clear")
    assert code == 0 and "1 MiB freed" in out, err
    assert [p.name for p in cache.iterdir() if p.name != "frames"] == [honest(models / "short").videos[0].bundle_sha256]


@pytest.mark.parametrize("intact", [True, False])
def test_a_decoder_another_client_placed_first_is_used_if_it_verifies(
    models: Path, tmp_path: Path, intact: bool
) -> None:
    """A concurrent client stores the same decoder while this one is still receiving it."""
    fake, cache = honest(models / "short"), tmp_path / "cache"
    placed = cache / fake.videos[0].bundle_sha256

    def place() -> None:
        shutil.copytree(models / "short", placed, ignore=shutil.ignore_patterns("*.mkv", "*.pt", "encoder.onnx"))
        if not intact:
            (placed / "entropy.json").write_text("{}")

    fake.after_pieces = place
    with serving(fake) as url:
        conn = Connection(Target.parse(url))
        try:
            if intact:
                assert fetch_decoder(conn, find_video(conn), cache).path == placed
            else:
                with pytest.raises(CodecError, match="removed that cache entry; play again"):
                    fetch_decoder(conn, find_video(conn), cache)
        finally:
            conn.close()
    assert [p.name for p in cache.iterdir()] == ([placed.name] if intact else [])


@contextmanager
def tunnel(port: int) -> Iterator[tuple[str, list[bytes]]]:
    """An HTTP CONNECT proxy on 127.0.0.1 that takes every tunnel to 127.0.0.1:``port``, standing in for
    the network: a host that is not loopback can be played while nothing leaves this machine. Yields
    the proxy's URL and the request lines it was sent."""
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[bytes] = []
    sockets = [listener]

    def pump(source: socket.socket, sink: socket.socket) -> None:
        with suppress(OSError):
            while data := source.recv(1 << 16):
                sink.sendall(data)

    def accept() -> None:
        with suppress(OSError):
            while True:
                client, _ = listener.accept()
                head = b""
                while b"\r\n\r\n" not in head:
                    head += client.recv(4096)
                seen.append(head.split(b"\r\n")[0])
                upstream = socket.create_connection(("127.0.0.1", port))
                sockets.extend((client, upstream))
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                for ends in ((client, upstream), (upstream, client)):
                    threading.Thread(target=pump, args=ends, daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", seen
    finally:
        for s in sockets:
            s.close()


@pytest.fixture
def token_server(models: Path, tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    """A real `codec serve` on 127.0.0.1 that wants a bearer token, over plaintext."""
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    srv = Server(models, "--token-file", str(token))
    yield srv, token
    srv.stop()


def test_a_token_goes_over_plaintext_to_loopback_without_asking(
    token_server: tuple[Server, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    srv, token = token_server
    for host in ("127.0.0.1", "localhost"):
        result = play(srv.url(host=host), tmp_path / f"{host}.mkv", token_file=token, cache=tmp_path / "cache")
        assert result["frames"] == 24
    assert capsys.readouterr().err == ""


def test_a_token_goes_over_plaintext_beyond_loopback_only_with_insecure(
    token_server: tuple[Server, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv, token = token_server
    url = f"grpc://video.invalid:{srv.port}/short"
    monkeypatch.setenv("AECODEC_CACHE", str(tmp_path / "cache"))
    with tunnel(srv.port) as (proxy, seen):
        monkeypatch.setenv("grpc_proxy", proxy)
        code, out, err = run_cli("play", url, "--token-file", token, "-o", tmp_path / "refused.mkv")
        assert code == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err, err
        assert (
            err.startswith(f"error: video.invalid:{srv.port}: will not send the bearer token") and "--insecure" in err
        )
        assert seen == [] and not (tmp_path / "refused.mkv").exists()  # nothing at all was sent
        code, out, err = run_cli(
            "play", url, "--token-file", token, "--insecure", "-o", tmp_path / "sent.mkv", "--json"
        )
    assert code == 0 and json.loads(out)["frames"] == 24, err
    assert err == f"warning: sending the bearer token unencrypted to video.invalid:{srv.port} (--insecure)\n"
    assert seen and set(seen) == {f"CONNECT video.invalid:{srv.port} HTTP/1.1".encode()}


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("grpc://server.example:50051/v", "dns:///server.example:50051"),
        ("grpc://127.0.0.1:1,127.0.0.2:2/v", "ipv4:127.0.0.1:1,127.0.0.2:2"),
        ("grpcs://[::1]:1,[2001:db8::1]:2/v", "ipv6:[::1]:1,[2001:db8::1]:2"),
    ],
)
def test_one_name_or_a_list_of_servers(url: str, target: str) -> None:
    assert Target.parse(url).channel_target == target
    Connection(Target.parse(url), lb="round-robin").close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("grpc://a.example:1,b.example:2/v", "IP addresses of one family"),
        ("grpc://127.0.0.1:1,[::1]:2/v", "IP addresses of one family"),
        ("grpc://127.0.0.1:1,/v", "expected grpc://HOST:PORT/NAME"),
        ("grpc://127.0.0.1:99999/v", "expected grpc://HOST:PORT/NAME"),
        ("grpc://" + ",".join(["127.0.0.1:1"] * 65) + "/v", "more than 64 addresses"),
    ],
)
def test_bad_lists_of_servers_are_refused(url: str, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        Target.parse(url)


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("grpc://127.0.0.1:1/v", True),
        ("grpc://127.8.9.10:1/v", True),
        ("grpc://localhost:1/v", True),
        ("grpc://[::1]:1/v", True),
        ("grpc://192.0.2.1:1/v", False),
        ("grpc://[2001:db8::1]:1/v", False),
        ("grpc://localhost.example:1/v", False),
    ],
)
def test_what_counts_as_loopback(url: str, loopback: bool) -> None:
    """Decided before any channel is used: nothing here connects anywhere."""
    target = Target.parse(url)
    assert target.loopback == loopback and target.address.endswith("]:1") == url.startswith("grpc://[")
    if loopback:
        Connection(target, token="t").close()
    else:
        with pytest.raises(CodecError, match="--insecure"):
            Connection(target, token="t")
        Connection(target, token="t", insecure=True).close()
        Connection(Target.parse(url.replace("grpc:", "grpcs:")), token="t").close()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m["model"].update(stride=0), "is not a model"),
        (lambda m: m["model"].update(latent_channels=3 * 16 * 16), "is not a model"),
        (lambda m: m["source"].update(size=[0, 144]), "source size 0x144"),
        (lambda m: m["model"].pop("stride"), "gives no model.stride"),
        (lambda m: m["model"].update(stride="16"), "model.stride is not an integer"),
        (lambda m: m.update(source=[]), "gives no source.size"),
        (lambda m: m["source"].update(size=[176, True]), r"source.size is not \[width, height\]"),
        (lambda m: m["source"].update(fps=float("nan")), "source.fps is not a finite number"),
        (lambda m: m["source"].update(name="../../etc/passwd"), "not a file name inside"),
        (lambda m: m["source"].update(path="video.mp4"), "is not an absolute path"),
        (lambda m: m["coding"].update(quality_steps=[1.0, -2.0]), "not a list of positive numbers"),
        (lambda m: m["coding"].update(default_quality=6), "default_quality 6 is not one of the 6 levels"),
        (lambda m: m["coding"].update(gop=0), "coding.gop 0 is below 1"),
        (lambda m: m["files"].update({"/etc/hostname": m["files"]["decoder.onnx"]}), "not a file name inside"),
        (lambda m: m["files"]["entropy.json"].update(sha256=None), "sha256 of entropy.json is not 64"),
        (lambda m: m["files"].pop("decoder.onnx"), "does not give the size and sha256 of decoder.onnx"),
    ],
)
def test_a_meta_json_that_sizes_nothing_real_is_refused(carphone_bundle: Path, tmp_path: Path, edit, message) -> None:
    """meta.json comes from the server too, and no sha256 covers it: its numbers are checked first."""
    folder = tmp_path / "b"
    shutil.copytree(carphone_bundle, folder)
    meta = json.loads((folder / "meta.json").read_text())
    edit(meta)
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CodecError, match=message) as err:
        load_bundle(folder)
    assert "\n" not in str(err.value)


class Drifting(FakeServer):
    """Streams the real chunks of ``short`` honestly, except that its first ``lies`` streams send frame
    ``at`` (every P-frame: None) with a reconstruction check one off (under a crc32 that holds): the
    client's decoder then seems to compute that frame differently from the server's. With
    ``past_end``, every stream ignores its end_frame and goes on to one frame past the video's end."""

    def __init__(self, bundle_dir: Path, at: int | None, lies: int, past_end: bool = False) -> None:
        fake = honest(bundle_dir)
        super().__init__(fake.videos, fake.pieces)
        self.bundle, self.at, self.lies, self.past_end = load_bundle(bundle_dir), at, lies, past_end
        self.frames = read_clip(bundle_dir / "short.mkv").frames
        self.starts: list[int] = []

    def StreamVideo(self, request: Any, context: grpc.ServicerContext) -> Iterator[codec_pb2.EncodedFrame]:
        self.starts.append(request.start_frame)
        lying = len(self.starts) <= self.lies
        encoder = StreamEncoder(self.bundle, width=176, height=144, quality=request.quality)
        last = len(self.frames) - 1
        for index in range(request.start_frame, last + 2 if self.past_end else request.end_frame):
            chunk = encoder.encode(self.frames[min(index, last)], index).chunk
            if lying and (index == self.at if self.at is not None else chunk.frame_type != I_FRAME):
                chunk = replace(chunk, check=chunk.check ^ 1)
            yield codec_pb2.EncodedFrame(
                index=index, type=chunk.frame_type, payload=chunk.payload, crc32=chunk.crc32, check=chunk.check
            )


def test_play_restarts_the_stream_at_a_frame_it_decodes_differently(models: Path, tmp_path: Path) -> None:
    fake = Drifting(models / "short", at=5, lies=1)
    with serving(fake) as url:
        result = play(url, tmp_path / "out.mkv", cache=tmp_path / "cache", quality=1)
    assert result["frames"] == 24 and result["resumes"] == 1 and fake.starts == [0, 5]
    expected = restarted(models / "short", {0, 5}, 24, quality=1)
    assert np.array_equal(np.stack(read_clip(tmp_path / "out.mkv").frames), expected)


def test_a_server_whose_frames_never_match_ends_in_one_line(models: Path, tmp_path: Path) -> None:
    fake = Drifting(models / "short", at=3, lies=10**6)
    with serving(fake) as url, pytest.raises(CodecError) as err:
        play(url, tmp_path / "out.mkv", cache=tmp_path / "cache", quality=1, retries=2)
    message = str(err.value)
    assert message.endswith("gave up at frame 3 after 2 retries (frame 3: reconstruction differs from the server's)")
    assert "\n" not in message and fake.starts == [0, 3, 3] and not (tmp_path / "out.mkv").exists()


def test_a_server_whose_every_p_frame_is_wrong_is_given_up_on(models: Path, tmp_path: Path) -> None:
    """Each restart begins with an I-frame that checks out, so restarts must be counted per GOP, not
    per good frame: the play used to finish, every frame sent twice, one restart a frame."""
    fake = Drifting(models / "short", at=None, lies=10**6)
    with serving(fake) as url, pytest.raises(CodecError, match=r"gave up at frame 6 after 5 retries \(frame 6:"):
        play(url, tmp_path / "out.mkv", cache=tmp_path / "cache", quality=1)
    assert fake.starts == [0, 1, 2, 3, 4, 5] and not (tmp_path / "out.mkv").exists()


class Mute(FakeServer):
    """Lists and ships ``short`` honestly; its streams (or its decoder download) send nothing until the
    client goes."""

    def __init__(self, bundle_dir: Path, mute_decoder: bool = False) -> None:
        fake = honest(bundle_dir)
        super().__init__(fake.videos, fake.pieces)
        self.mute_decoder, self.streams = mute_decoder, 0

    def GetDecoder(self, request: Any, context: grpc.ServicerContext) -> Iterator[codec_pb2.DecoderChunk]:
        if self.mute_decoder:
            _wait_until_gone(context)
            return
        yield from super().GetDecoder(request, context)

    def StreamVideo(self, request: Any, context: grpc.ServicerContext) -> Iterator[codec_pb2.EncodedFrame]:
        self.streams += 1
        _wait_until_gone(context)
        yield from ()


def _wait_until_gone(context: grpc.ServicerContext) -> None:
    gone = threading.Event()
    context.add_callback(gone.set)
    gone.wait(60)


@pytest.mark.parametrize("what", ["stream", "decoder"])
def test_a_server_that_sends_nothing_is_given_up_on_in_bounded_time(models: Path, tmp_path: Path, what: str) -> None:
    """It used to keep the player waiting until it was killed."""
    fake = Mute(models / "short", mute_decoder=what == "decoder")
    started = time.monotonic()
    with serving(fake) as url, pytest.raises(CodecError, match=r"sent nothing for 0\.5 s") as err:
        play(url, tmp_path / "out.mkv", cache=tmp_path / "cache", retries=1, timeout=0.5)
    assert time.monotonic() - started < 10 and "\n" not in str(err.value)
    assert fake.streams == (2 if what == "stream" else 0) and not (tmp_path / "out.mkv").exists()


def test_a_stream_from_a_silent_replica_fails_over_to_a_live_one(models: Path) -> None:
    """Round-robin over a replica that accepts streams but sends nothing and a real server: each
    stream the silent one takes restarts after the message timeout on the live one and completes."""
    mute = Mute(models / "short")
    live = Server(models)
    try:
        with serving(mute) as mute_url:
            url = f"grpc://127.0.0.1:{urlparse(mute_url).port},127.0.0.1:{live.port}/short"
            conn = Connection(Target.parse(url), lb="round-robin", timeout=1)
            try:
                for _ in range(2):  # both replicas connected: calls now alternate between them
                    find_video(conn)
                for _ in range(4):
                    transfer = Transfer()
                    indices = [c.index for c in ServerChunks(conn, 0, 24, None, transfer, window=8)]
                    assert indices == list(range(24))
                    if mute.streams:
                        break
            finally:
                conn.close()
    finally:
        live.stop()
    assert mute.streams >= 1 and transfer.resumes >= 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"type": 300}, "frame 2: unknown frame type 300"),
        ({"check": 1 << 16}, "frame 2: reconstruction check 65536 is not 16 bits"),
        ({"payload": b"abc"}, "frame 2: payload length 3 is not 1 to"),
        ({"crc32": 0}, "frame 2: crc32 mismatch"),
    ],
)
def test_a_received_chunk_is_checked_before_use(fields: dict[str, Any], message: str) -> None:
    frame = {"index": 2, "type": 1, "check": 0xFFFF, "payload": bytes(8)}
    frame["crc32"] = Chunk(2, 1, 0xFFFF, bytes(8)).crc32
    assert received_chunk(codec_pb2.EncodedFrame(**frame)) == Chunk(2, 1, 0xFFFF, bytes(8))
    with pytest.raises(DamagedChunk, match=re.escape(message)):
        received_chunk(codec_pb2.EncodedFrame(**{**frame, **fields}))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--start", "1e308"], "--start takes a frame"),
        (["--start", "²"], "--start takes a frame"),
        (["--start", "9" * 41], "--start takes a frame"),
        (["--quality", "²"], "--quality takes a level"),
        (["--quality", "4294967296"], "--quality takes a level"),
        (["--quality", "-1"], "--quality takes a level"),
        (["--end", "-1"], "--end takes a frame"),
        (["--retries", "-1"], "--retries must be 0 or more"),
        (["--give-up", "0"], "--give-up must be above 0"),
        (["--give-up", "nan"], "--give-up must be above 0"),
    ],
)
def test_bad_options_are_one_line_errors_before_any_call(
    models: Path, tmp_path: Path, options: list[str], message: str
) -> None:
    fake = honest(models / "short")
    with serving(fake) as url:
        code, out, err = run_cli("play", url, "-o", tmp_path / "out.mkv", *options)
    assert code == 2 and out == "" and err.startswith(f"error: {message}") and err.count("\n") == 1, err
    assert fake.listings == 0


@pytest.mark.parametrize(("start", "message"), [("99999999999999999999.5", "past its end"), ("5s", "not within")])
def test_a_start_past_the_end_is_refused_before_the_decoder_is_fetched(
    models: Path, tmp_path: Path, start: str, message: str
) -> None:
    fake = honest(models / "short")
    with serving(fake) as url, pytest.raises(CodecError, match=message):
        play(url, tmp_path / "out.mkv", cache=tmp_path / "cache", start=start)
    assert fake.listings == 1 and fake.decoder_calls == 0


def _rungs(levels: int) -> list[codec_pb2.Rung]:
    return [codec_pb2.Rung(quality=q, bytes=1000 * (q + 1), psnr=30.0) for q in range(levels)]


@pytest.mark.parametrize("quality", [1, "auto"])
def test_what_a_server_sends_past_the_requests_end_is_not_read(
    models: Path, tmp_path: Path, quality: int | str
) -> None:
    """It used to be read to the end of the call: the frame past the video's end failed the play after
    every frame was decoded, and auto quality, its first request answered with the whole video, never
    took a throughput sample."""
    fake = Drifting(models / "short", at=None, lies=0, past_end=True)
    fake.videos[0].ladder.extend(_rungs(load_bundle(models / "short").meta.coding.levels))
    with serving(fake) as url:
        result = play(url, tmp_path / "out.mkv", cache=tmp_path / "cache", quality=quality)
    assert result["frames"] == 24 and result["resumes"] == 0
    assert fake.starts == ([0, 8, 16] if quality == "auto" else [0])
    assert quality != "auto" or result["estimate_bps"] > 0


def test_levels_are_those_of_the_fetched_decoder_not_the_servers_claim(models: Path, tmp_path: Path) -> None:
    """A server claiming 1000 levels, and a default beyond the decoder's: a ladder or a --quality beyond
    the decoder's levels is refused before any stream, and the default is the decoder's."""
    fake = Drifting(models / "short", at=None, lies=0)
    levels = load_bundle(models / "short").meta.coding.levels
    fake.videos[0].quality_levels, fake.videos[0].default_quality = 1000, 999
    fake.videos[0].ladder.extend(_rungs(levels + 1))
    with serving(fake) as url:
        for quality, message in (
            (levels, f"--quality {levels} is not one of its levels 0..{levels - 1}"),
            ("auto", f"its ladder names level {levels}, beyond its decoder's {levels} levels"),
        ):
            with pytest.raises(CodecError, match=re.escape(message)):
                play(url, tmp_path / "out.mkv", cache=tmp_path / "cache", quality=quality)
        assert fake.starts == []
        result = play(url, tmp_path / "out.mkv", cache=tmp_path / "cache")
    assert result["frames"] == 24 and result["quality"] == load_bundle(models / "short").meta.coding.default_quality


def test_a_silent_server_is_given_up_on_after_the_give_up_time_whatever_the_timeout_and_retries(
    models: Path, tmp_path: Path
) -> None:
    """The give-up time bounds the time without anything received, not each wait: the default options
    used to wait 153 s for a silent server, 30 s a try."""
    fake = Mute(models / "short")
    with serving(fake) as url, pytest.raises(CodecError) as err:
        started = time.monotonic()
        play(url, tmp_path / "out.mkv", cache=tmp_path / "cache", retries=100, timeout=30, give_up=1.5)
    assert time.monotonic() - started < 4 and fake.streams == 1
    assert re.search(
        r"gave up at frame 0 after 1\.5 s without progress \(the server sent nothing for 1\.\d s\)$", str(err.value)
    )


class Busy(Drifting):
    """Streams ``short`` honestly once it has refused the first ``refusals[method]`` calls of each
    method with ``code`` and ``details``, and ``trailer`` as its RETRY_AFTER_KEY if given: a server at
    its limit of streams, or preparing a level."""

    def __init__(
        self,
        bundle_dir: Path,
        refusals: dict[str, int],
        code: grpc.StatusCode = grpc.StatusCode.RESOURCE_EXHAUSTED,
        details: str = "server is at its limit\nof 16 streams\n" * 20,
        trailer: str | None = None,
    ) -> None:
        super().__init__(bundle_dir, at=None, lies=0)
        self.refusals, self.code, self.details, self.trailer = refusals, code, details, trailer
        self.calls: dict[str, list[float]] = defaultdict(list)  # when each method was called

    def _refuse(self, method: str, context: grpc.ServicerContext) -> None:
        self.calls[method].append(time.monotonic())
        if len(self.calls[method]) <= self.refusals.get(method, 0):
            if self.trailer is not None:
                context.set_trailing_metadata(((RETRY_AFTER_KEY, self.trailer),))
            context.abort(self.code, self.details)

    def ListVideos(self, request: Any, context: grpc.ServicerContext) -> codec_pb2.ListVideosResponse:
        self._refuse("ListVideos", context)
        return super().ListVideos(request, context)

    def GetDecoder(self, request: Any, context: grpc.ServicerContext) -> Iterator[codec_pb2.DecoderChunk]:
        self._refuse("GetDecoder", context)
        yield from super().GetDecoder(request, context)

    def StreamVideo(self, request: Any, context: grpc.ServicerContext) -> Iterator[codec_pb2.EncodedFrame]:
        self._refuse("StreamVideo", context)
        yield from super().StreamVideo(request, context)


def test_a_server_at_its_limit_is_asked_again_after_a_backoff(models: Path, tmp_path: Path) -> None:
    """RESOURCE_EXHAUSTED used to end the play at once."""
    fake = Busy(models / "short", {"ListVideos": 2, "GetDecoder": 2, "StreamVideo": 2})
    with serving(fake) as url:
        result = play(url, tmp_path / "out.mkv", cache=tmp_path / "cache", quality=1, retries=2)
    assert result["frames"] == 24 and result["resumes"] == 2 and fake.starts == [0]
    for times in fake.calls.values():
        gaps = np.diff(times)
        assert len(times) == 3 and 0.15 < gaps[0] < 1 and 0.3 < gaps[1] < 1.5, gaps  # 0.2 s, 0.4 s, jittered


def test_a_server_always_at_its_limit_is_given_up_on_in_one_bounded_line(models: Path, tmp_path: Path) -> None:
    fake = Busy(models / "short", {"StreamVideo": 10**6})
    with serving(fake) as url, pytest.raises(CodecError) as err:
        play(url, tmp_path / "out.mkv", cache=tmp_path / "cache", retries=2)
    message = str(err.value)
    assert "gave up at frame 0 after 2 retries (RESOURCE_EXHAUSTED: server is at its limit of 16 streams" in message
    assert "\n" not in message and len(message) < 400 and len(fake.calls["StreamVideo"]) == 3


class Reaped(Drifting):
    """Honest, except that it cancels its first stream after three frames, as its stall reaper or an
    eviction does."""

    def StreamVideo(self, request: Any, context: grpc.ServicerContext) -> Iterator[codec_pb2.EncodedFrame]:
        for sent, message in enumerate(super().StreamVideo(request, context)):
            if len(self.starts) == 1 and sent == 3:
                context.cancel()
                return
            yield message


def test_a_stream_the_server_cancelled_is_resumed(models: Path, tmp_path: Path) -> None:
    fake = Reaped(models / "short", at=None, lies=0)
    with serving(fake) as url:
        result = play(url, tmp_path / "out.mkv", cache=tmp_path / "cache", quality=1, retries=1)
    assert result["frames"] == 24 and result["resumes"] == 1 and len(fake.starts) == 2


def _preparing(bundle_dir: Path, refusals: int, trailer: str) -> Busy:
    details = "level 1 is being prepared, retry in 0 s"
    return Busy(bundle_dir, {"StreamVideo": refusals}, grpc.StatusCode.UNAVAILABLE, details, trailer)


def test_a_level_being_prepared_is_asked_for_again_when_the_server_says_without_counting_a_failure(
    models: Path, tmp_path: Path
) -> None:
    fake = _preparing(models / "short", 3, "300")
    with serving(fake) as url:
        result = play(url, tmp_path / "out.mkv", cache=tmp_path / "cache", quality=1, retries=0)
    gaps = np.diff(fake.calls["StreamVideo"])
    assert result["frames"] == 24 and len(gaps) == 3 and all(0.29 < gap < 1.5 for gap in gaps), gaps


def test_a_level_never_prepared_is_given_up_on_at_the_give_up_time_with_the_servers_words(
    models: Path, tmp_path: Path
) -> None:
    """The server asks for 27 hours: the wait is held to 30 s, and to the 1.5 s left to give up."""
    fake = _preparing(models / "short", 10**6, "99999999")
    with serving(fake) as url, pytest.raises(CodecError) as err:
        started = time.monotonic()
        play(url, tmp_path / "out.mkv", cache=tmp_path / "cache", quality=1, give_up=1.5)
    assert time.monotonic() - started < 4 and len(fake.calls["StreamVideo"]) == 1
    assert str(err.value).endswith(
        "gave up at frame 0 after 1.5 s without progress (UNAVAILABLE: level 1 is being prepared, retry in 0 s)"
    )


@pytest.mark.parametrize("trailer", ["1e3", "-5", "0x10", "3000000000000"])
def test_a_retry_after_that_is_not_plain_milliseconds_is_a_failure_like_any_other(
    models: Path, tmp_path: Path, trailer: str
) -> None:
    fake = _preparing(models / "short", 10**6, trailer)
    with serving(fake) as url, pytest.raises(CodecError, match=r"gave up at frame 0 after 0 retries \(UNAVAILABLE"):
        play(url, tmp_path / "out.mkv", cache=tmp_path / "cache", quality=1, retries=0)
    assert len(fake.calls["StreamVideo"]) == 1
