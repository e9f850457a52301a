"""Stored streams: each video at each level encoded once, kept whole or not at all, checked before
it is served, and sent byte for byte as `codec encode` writes it, to old and new clients alike."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import threading
import zlib
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from conftest import Server

from aecodec.server.catalog import Entry, load_catalog
from aecodec.server.stored import Stream, StreamStore
from aecodec.v1 import codec_pb2, codec_pb2_grpc
from codec.coding.bitstream import CHUNK_HEAD_SIZE, HEADER_SIZE, I_FRAME, Chunk, read_chunks, read_stream_file
from codec.coding.encode import StreamEncoder, encode_video
from codec.coding.runtime import Networks
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
