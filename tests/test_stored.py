"""Stored streams: each video at each level encoded once, kept whole or not at all, checked before
it is served, and sent byte for byte as `codec encode` writes it, to old and new clients alike."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import stat
import struct
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest
from clips import write_clip
from conftest import Server, run_cli
from crafted import plant_entry, write_record

from aecodec.server.catalog import Entry, load_catalog
from aecodec.server.stored import Rung, Stream, StreamStore
from aecodec.v1 import codec_pb2, codec_pb2_grpc
from codec.coding.common.bitstream import CHUNK_HEAD_SIZE, HEADER_SIZE, I_FRAME, Chunk, read_chunks, read_stream_file
from codec.coding.common.runtime import Networks
from codec.coding.encoder.encode import StreamEncoder, encode_video
from codec.errors import CodecError
from codec.io.bundle import load_bundle
from codec.io.video import read_clip


def _store(folder: Path, models: Path) -> tuple[StreamStore, Entry]:
    entry = load_catalog(models)["short"]
    return StreamStore(folder, lambda e: Networks(e.bundle, e.info.width, e.info.height)), entry


def _complete(stream: Stream) -> list[Chunk]:
    """The stream's chunks, once encoded and in the cache."""
    stream.chunk(1 << 30)  # returns once the encode is complete
    assert stream.settled.wait(60)
    return stream.chunks


def _fields(chunks: list[Chunk]) -> list[tuple[int, int, int, bytes]]:
    return [(c.index, c.frame_type, c.check, c.payload) for c in chunks]


def _stream(port: int, **request: object) -> list[codec_pb2.EncodedFrame]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = codec_pb2_grpc.VideoCodecStub(channel)
        return list(stub.StreamVideo(codec_pb2.StreamVideoRequest(name="short", **request), timeout=60))


def _as_chunks(messages: list[codec_pb2.EncodedFrame]) -> list[Chunk]:
    chunks = [Chunk(m.index, m.type, m.check, m.payload) for m in messages]
    assert [c.crc32 for c in chunks] == [m.crc32 for m in messages]
    return chunks


def test_prepare_stores_every_level_as_codec_encode_writes_it(models: Path, tmp_path: Path) -> None:
    cache = tmp_path / "streams"
    srv = Server(models, "--prepare", "--stream-cache", str(cache))
    try:
        bundle = load_bundle(models / "short")
        levels = bundle.meta.coding.levels
        stored = sorted(cache.glob("*/*.aec"))
        assert [p.name for p in stored] == [f"q{q}-g8.aec" for q in range(levels)]
        with grpc.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            video = codec_pb2_grpc.VideoCodecStub(channel).ListVideos(codec_pb2.ListVideosRequest()).videos[0]
        for q, path in enumerate(stored):
            encoded = tmp_path / f"q{q}.aec"
            encode_video(models / "short" / "short.mkv", bundle, encoded, quality=q)
            assert path.read_bytes() == encoded.read_bytes()  # byte for byte
            assert video.ladder[q].quality == q and video.ladder[q].bytes == path.stat().st_size
            assert 10 < video.ladder[q].psnr < 60
            # A request as clients sent it before stored streams (no from_keyframe) gets those chunks.
            served = _as_chunks(_stream(srv.port, quality=q))
            assert _fields(served) == _fields(list(read_chunks(encoded.read_bytes(), "x")))
    finally:
        srv.stop()


def test_a_start_inside_a_gop(models: Path, tmp_path: Path) -> None:
    srv = Server(models, "--stream-cache", str(tmp_path / "streams"))
    try:
        whole = _as_chunks(_stream(srv.port))
        # New clients: from the GOP's I-frame, every chunk the stored one.
        keyed = _as_chunks(_stream(srv.port, start_frame=13, end_frame=20, from_keyframe=True))
        assert keyed[0].index == 8 and keyed[0].frame_type == I_FRAME
        assert _fields(keyed) == _fields(whole[8:20])
        # Old clients: frame 13 as an I-frame, as before (a stream encoded from 13), then stored chunks.
        old = _as_chunks(_stream(srv.port, start_frame=13))
        bundle = load_bundle(models / "short")
        frames = read_clip(models / "short" / "short.mkv").frames
        encoder = StreamEncoder(bundle, width=176, height=144)
        before = [encoder.encode(frames[i], i).chunk for i in range(13, 24)]
        assert _fields(old) == _fields(before)
        assert _fields(old[3:]) == _fields(whole[16:])  # from the next I-frame on, the stored chunks
    finally:
        srv.stop()


def _damage_payload(data: bytearray) -> None:
    """One payload byte changed and the chunk's crc32 made to hold again: only the sha256 tells."""
    (length,) = struct.unpack_from("<I", data, HEADER_SIZE + 7)
    data[HEADER_SIZE + CHUNK_HEAD_SIZE] ^= 0x55
    start, end = HEADER_SIZE, HEADER_SIZE + CHUNK_HEAD_SIZE - 4
    crc = zlib.crc32(
        bytes(data[HEADER_SIZE + CHUNK_HEAD_SIZE : HEADER_SIZE + CHUNK_HEAD_SIZE + length]), zlib.crc32(data[start:end])
    )
    struct.pack_into("<I", data, end, crc)


def _rewrite(path: Path, change: Callable[[bytearray], None], fix_record: bool) -> None:
    data = bytearray(path.read_bytes())
    change(data)
    path.write_bytes(bytes(data))
    if fix_record:  # a record that agrees with the damaged file, so only the chunks' crc32 can tell
        record_path = path.with_suffix(".json")
        record = json.loads(record_path.read_text())
        record.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
        record_path.write_text(json.dumps(record))


DAMAGE = {
    "payload byte, chunk crc32 holding": lambda p: _rewrite(p, _damage_payload, fix_record=False),
    "payload byte, record agreeing": lambda p: _rewrite(p, lambda d: d.__setitem__(-1, d[-1] ^ 1), fix_record=True),
    "truncated": lambda p: _rewrite(p, lambda d: d.__delitem__(slice(-10, None)), fix_record=False),
    "frame count lowered, record agreeing": lambda p: _rewrite(p, lambda d: d.__delitem__(slice(-200, None)), True),
    "record missing (an interrupted write)": lambda p: p.with_suffix(".json").unlink(),
    "record of another encoder": lambda p: p.with_suffix(".json").write_text(
        p.with_suffix(".json").read_text().replace('"encoder": "', '"encoder": "0')
    ),
    "record not JSON": lambda p: p.with_suffix(".json").write_text('{"bytes": 1e999'),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_or_stale_entry_is_encoded_again_never_served(
    models: Path, tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    store, entry = _store(tmp_path, models)
    good = _fields(_complete(store.get(entry, 2)))
    path, record = store.paths(entry, 2)
    original = path.read_bytes()
    DAMAGE[damage](path)
    fresh, _ = _store(tmp_path, models)  # a restarted server: nothing in memory
    with caplog.at_level(logging.INFO, logger="aecodec.server"):
        assert _fields(_complete(fresh.get(entry, 2))) == good
    assert any('"event": "stored"' in r.message for r in caplog.records)  # encoded again
    assert path.read_bytes() == original and json.loads(record.read_text())["bytes"] == len(original)


def test_many_requests_for_a_missing_stream_encode_it_once(
    models: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, entry = _store(tmp_path, models)
    streams: list[Stream] = []
    with caplog.at_level(logging.INFO, logger="aecodec.server"):
        threads = [threading.Thread(target=lambda: streams.append(store.get(entry, 1))) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        chunks = _complete(streams[0])
        assert all(s is streams[0] for s in streams) and len(chunks) == entry.frames
    assert sum('"event": "stored"' in r.message for r in caplog.records) == 1
    assert read_stream_file(store.paths(entry, 1)[0])[HEADER_SIZE:] == b"".join(c.pack() for c in chunks)


def test_partial_files_left_by_a_killed_server_are_removed_once_old(models: Path, tmp_path: Path) -> None:
    folder = tmp_path / ("a" * 64)
    folder.mkdir()
    old, fresh = folder / ".q0-g8-0badc0de-partial.aec", folder / ".q1-g8-0badc0de-partial.aec"
    for path in (old, fresh):
        path.write_bytes(b"AEC")
    os.utime(old, (0, 0))
    _store(tmp_path, models)
    assert not old.exists() and fresh.exists()  # the fresh one may be another server's, being written


@pytest.mark.parametrize("key", ["none", "another server's"])
def test_a_planted_entry_whose_every_check_holds_is_not_served(
    models: Path, tmp_path: Path, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    """It used to be served: inverted colours at 5 dB, nothing logged."""
    store, entry = _store(tmp_path, models)
    honest = _fields(_complete(store.get(entry, 2)))
    inverted = [255 - f for f in read_clip(models / "short" / "short.mkv").frames]
    plant_entry(store, entry, 2, inverted, None if key == "none" else bytes(32))
    fresh, _ = _store(tmp_path, models)
    assert fresh.rungs(entry)[2].bytes == 0  # not listed either
    with caplog.at_level(logging.INFO, logger="aecodec.server"):
        assert _fields(_complete(fresh.get(entry, 2))) == honest
    assert any('"event": "stored"' in r.message for r in caplog.records)  # encoded again


def _signed_record(store: StreamStore, entry: Entry, quality: int, **fields: object) -> None:
    """Rewrite the record of ``quality`` with ``fields`` and sign it with the store's own key: the
    worst a peer holding the key could write."""
    record_path = store.paths(entry, quality)[1]
    record = {k: v for k, v in json.loads(record_path.read_text()).items() if k != "tag"}
    write_record(record_path, {**record, **fields}, store.key)


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _link(path: Path, target: str) -> None:
    path.unlink()
    path.symlink_to(target)


def _copy_link(path: Path) -> None:
    path.with_name("copy.aec").write_bytes(path.read_bytes())
    _link(path, "copy.aec")


def _hard_link(path: Path) -> None:
    os.link(path, path.with_name("elsewhere.aec"))


def _foreign(path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root")
    os.chown(path, 12345, 12345)


NOT_OURS = {
    "stream a FIFO": lambda p: _fifo(p),
    "record a FIFO": lambda p: _fifo(p.with_suffix(".json")),
    "stream a link to /dev/zero, record of 1 GB": lambda p: _link(p, "/dev/zero"),
    "stream a link to an honest copy": lambda p: (
        p.with_name("copy.aec").write_bytes(p.read_bytes()),
        _link(p, "copy.aec"),
    ),
    "stream with a second name": _hard_link,
    "stream another user's": _foreign,
    "record another user's": lambda p: _foreign(p.with_suffix(".json")),
}


@pytest.mark.parametrize("case", NOT_OURS)
def test_an_entry_that_is_not_the_stores_own_file_is_absent_in_bounded_time(
    models: Path, tmp_path: Path, case: str
) -> None:
    """A FIFO used to hold the store-wide lock forever; a link to /dev/zero grew the server to a MemoryError."""
    store, entry = _store(tmp_path, models)
    honest = _fields(_complete(store.get(entry, 1)))
    path = store.paths(entry, 1)[0]
    if "1 GB" in case:
        _signed_record(store, entry, 1, bytes=10**9)
    NOT_OURS[case](path)
    fresh, _ = _store(tmp_path, models)
    found: list[Stream] = []
    worker = threading.Thread(target=lambda: found.append(fresh.get(entry, 1)), daemon=True)
    worker.start()
    worker.join(10)
    assert found, "the store hung on a file that is not its own"
    assert _fields(_complete(found[0])) == honest  # encoded again, and stored in its place
    assert path.is_file() and not path.is_symlink() and fresh.rungs(entry)[1].bytes == path.stat().st_size


@pytest.mark.parametrize(
    "fields",
    [{"bytes": -1}, {"bytes": 2**64}, {"bytes": True}, {"psnr": float("nan")}, {"psnr": 1e999}, {"frames": 2**70}],
    ids=["bytes -1", "bytes 2^64", "bytes true", "psnr NaN", "psnr inf", "frames 2^70"],
)
def test_a_signed_record_out_of_bounds_is_absent(models: Path, tmp_path: Path, fields: dict) -> None:
    """bytes -1 or 2^64 used to break ListVideos for every client."""
    store, entry = _store(tmp_path, models)
    honest = _fields(_complete(store.get(entry, 0)))
    _signed_record(store, entry, 0, **fields)
    fresh, _ = _store(tmp_path, models)
    assert fresh.rungs(entry)[0] == Rung(0, 0, 0.0)
    assert _fields(_complete(fresh.get(entry, 0))) == honest


def test_the_ladder_lists_only_entries_that_exist(models: Path, tmp_path: Path) -> None:
    store, entry = _store(tmp_path, models)
    _complete(store.get(entry, 0))
    assert store.rungs(entry)[0].bytes > 0
    store.paths(entry, 0)[0].unlink()  # the record alone
    assert store.rungs(entry)[0] == Rung(0, 0, 0.0)


def test_a_bad_record_does_not_break_the_listing_of_a_real_server(models: Path, tmp_path: Path) -> None:
    cache = tmp_path / "streams"
    srv = Server(models, "--stream-cache", str(cache))
    try:
        assert len(_stream(srv.port, quality=0)) == 24
        store, entry = StreamStore(cache, lambda e: None), load_catalog(models)["short"]
        for _ in range(100):  # the server writes the entry once the stream is whole
            if store.paths(entry, 0)[1].exists():
                break
            time.sleep(0.1)
        _signed_record(store, entry, 0, bytes=2**64)
        with grpc.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            video = codec_pb2_grpc.VideoCodecStub(channel).ListVideos(codec_pb2.ListVideosRequest(), timeout=10)
        assert video.videos[0].ladder[0].bytes == 0
    finally:
        log = srv.stop()
    assert "Traceback" not in log


@pytest.mark.parametrize("mode", [0o777, 0o770])
def test_a_stream_cache_others_can_write_is_refused(models: Path, tmp_path: Path, mode: int) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(mode)
    code, _, err = run_cli("serve", "--models", models, "--port", "0", "--stream-cache", folder)
    assert code == 2 and "writable by no one else" in err and len(err.strip().splitlines()) == 1


def test_a_key_that_is_not_the_stores_own_is_refused(models: Path, tmp_path: Path) -> None:
    folder = tmp_path / "streams"
    folder.mkdir(mode=0o700)
    (tmp_path / "secret").write_bytes(bytes(32))
    (folder / ".key").symlink_to(tmp_path / "secret")
    with pytest.raises(CodecError, match="not a key this server wrote"):
        _store(folder, models)
    (folder / ".key").unlink()
    key = _store(folder, models)[0].key  # made once, kept, and the same for the next server
    assert len(key) == 32 and _store(folder, models)[0].key == key
    assert stat.S_IMODE((folder / ".key").stat().st_mode) == 0o600


def test_a_stream_key_file_signs_records_shared_by_servers(models: Path, tmp_path: Path) -> None:
    """Two servers given one --stream-key use each other's entries; without it, they would not."""
    key = tmp_path / "stream.key"
    key.write_text("a shared secret of enough bytes\n")
    cache = tmp_path / "streams"
    srv = Server(models, "--stream-cache", str(cache), "--stream-key", str(key), "--prepare")
    srv.stop()
    second = Server(models, "--stream-cache", str(cache), "--stream-key", str(key))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{second.port}") as channel:
            video = codec_pb2_grpc.VideoCodecStub(channel).ListVideos(codec_pb2.ListVideosRequest(), timeout=10)
        assert all(r.bytes > 0 for r in video.videos[0].ladder)
    finally:
        second.stop()
    code, _, err = run_cli("serve", "--models", models, "--port", "0", "--stream-key", tmp_path / "missing")
    assert code == 2 and "cannot read the stream key" in err


def test_a_source_that_is_not_the_bundles_is_never_encoded(
    models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream encoded once from the wrong file used to be served as current after the right file was back."""
    monkeypatch.setenv("AECODEC_CACHE", str(tmp_path / "frames"))  # no decoded copy: the source is read
    copy = tmp_path / "models"
    shutil.copytree(models, copy)
    source = copy / "short" / "short.mkv"
    right = source.read_bytes()
    frames = np.stack(read_clip(source).frames)
    write_clip(source, 255 - frames, codec="ffv1", pix_fmt="yuv444p")
    store, entry = _store(tmp_path / "streams", copy)
    with pytest.raises(CodecError, match="not the video the bundle was trained on"):
        _complete(store.get(entry, 0))
    assert not store.paths(entry, 0)[0].exists() and store.rungs(entry)[0].bytes == 0
    source.write_bytes(right)  # the right file is back: encoded from it
    assert len(_complete(store.get(entry, 0))) == entry.frames
