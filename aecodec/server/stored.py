"""Stored streams: every catalogued video at every quality level, encoded once and served many times.

Layout: ``CACHE/<bundle sha256>/q<level>-g<gop>.aec`` is the stream exactly as ``codec encode``
writes it, and ``q<level>-g<gop>.json`` beside it records what it was encoded from (the format
version, the sha256 of the encoder, of the decoding files and of the source video), its size,
sha256, frames and mean PSNR. Both are written under a temporary name and renamed, the record
last, so an entry without its record is incomplete. An entry is served only if its record names
what this server would encode now and the file's size, sha256 and every chunk's crc32 hold;
anything else is encoded again.

A stream that is not stored yet is encoded once, in the background, however many requests want it:
they all follow its chunks as they come (:class:`Stream`), so its first viewer waits for one frame,
not for the whole encode.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aecodec.server.catalog import Entry
from codec.coding.bitstream import HEADER_SIZE, I_FRAME, VERSION, Chunk, Header, read_chunks
from codec.coding.encode import StreamEncoder
from codec.coding.runtime import Networks
from codec.errors import CodecError
from codec.io.bundle import ENCODER_FILE
from codec.io.files import atomic_path, write_atomic
from codec.io.psnr import psnr

log = logging.getLogger("aecodec.server")
STALE_PARTIAL_S = 3600  # a partial file this old was left by a server that died writing it
RESIDENT_BYTES = 512 << 20  # complete streams kept in memory, least recently used dropped first
WAIT_S = 0.25  # how often a reader waiting for a frame looks whether its client is still there


@dataclass(frozen=True)
class Rung:
    """One quality level of a video as stored: what a player needs to choose it."""

    quality: int
    bytes: int  # the whole stream's, header included; 0 while not stored
    psnr: float


class Stream:
    """The chunks of one stored stream: complete when read from the cache, growing while encoded.
    Readers wait for a chunk that is not there yet; every method is thread-safe."""

    def __init__(self, quality: int, chunks: list[Chunk] | None = None) -> None:
        self.quality = quality
        self.chunks: list[Chunk] = list(chunks or [])
        self.complete = chunks is not None
        self.error: str | None = None
        self.bytes = HEADER_SIZE + sum(c.size for c in self.chunks)
        self.changed = threading.Condition()
        self.settled = threading.Event()  # set once the stream is in the cache, or failed to get there
        if self.complete:
            self.settled.set()

    def add(self, chunk: Chunk) -> None:
        with self.changed:
            self.chunks.append(chunk)
            self.bytes += chunk.size
            self.changed.notify_all()

    def finish(self, error: str | None = None) -> None:
        with self.changed:
            self.complete, self.error = True, error
            self.changed.notify_all()

    def chunk(self, index: int, active: Callable[[], bool] = lambda: True) -> Chunk | None:
        """Chunk ``index``, waiting while it is being encoded; None past the end or once ``active()``
        turns false. A failed encode is a CodecError."""
        with self.changed:
            while index >= len(self.chunks) and not self.complete:
                if not active():
                    return None
                self.changed.wait(WAIT_S)
            if self.error is not None and index >= len(self.chunks):
                raise CodecError(self.error)
            return self.chunks[index] if index < len(self.chunks) else None

    def keyframe(self, index: int, active: Callable[[], bool] = lambda: True) -> int | None:
        """The last I-frame at or before frame ``index`` (None if the stream is shorter)."""
        if self.chunk(index, active) is None:
            return None
        return next(i for i in range(index, -1, -1) if self.chunks[i].frame_type == I_FRAME)

    def read(self, start: int, end: int, active: Callable[[], bool] = lambda: True) -> Iterator[Chunk]:
        """Chunks ``[start, end)`` as they become available."""
        for index in range(start, end):
            chunk = self.chunk(index, active)
            if chunk is None:
                return
            yield chunk


def identity(entry: Entry, quality: int) -> dict[str, Any]:
    """What a stored stream must have been encoded from to be served for ``entry`` at ``quality``."""
    files = entry.bundle.meta.files
    return {
        "format": VERSION,
        "bundle": entry.bundle.decoder_sha256,
        "encoder": files[ENCODER_FILE].sha256,
        "source": entry.bundle.meta.source.sha256,
        "quality": quality,
        "gop": entry.bundle.meta.coding.gop,
    }


class StreamStore:
    """Stored streams under ``folder``, loaded, verified and kept in memory as they are asked for,
    encoded (at most ``workers`` at once) where missing. ``nets(entry)`` gives the networks to encode with."""

    def __init__(self, folder: Path, nets: Callable[[Entry], Networks], workers: int = 1) -> None:
        self.folder, self.nets = folder, nets
        self.encoders = threading.BoundedSemaphore(max(1, workers))
        self.lock = threading.Lock()
        self.streams: OrderedDict[tuple[str, int], Stream] = OrderedDict()
        self._remove_partial()

    def paths(self, entry: Entry, quality: int) -> tuple[Path, Path]:
        """The stream file and its record."""
        stem = f"q{quality}-g{entry.bundle.meta.coding.gop}"
        folder = self.folder / entry.bundle.decoder_sha256
        return folder / f"{stem}.aec", folder / f"{stem}.json"

    def get(self, entry: Entry, quality: int) -> Stream:
        """``entry``'s stream at ``quality``: from memory, from the cache once verified, or being
        encoded (started here if no other request started it)."""
        key = (entry.name, quality)
        with self.lock:
            stream = self.streams.get(key)
            if stream is not None and stream.error is None:
                self.streams.move_to_end(key)
                return stream
            stream = self._load(entry, quality)
            if stream is None:
                stream = Stream(quality)
                threading.Thread(target=self._record, args=(entry, stream), name=f"encode-{key}", daemon=True).start()
            self.streams[key] = stream
            self._evict()
            return stream

    def rungs(self, entry: Entry) -> list[Rung]:
        """Every level of ``entry`` with its stored size and PSNR (0 where not stored yet); encodes nothing."""
        records = [self._record_of(entry, quality) for quality in range(entry.quality_levels)]
        return [Rung(q, r["bytes"], r["psnr"]) if r else Rung(q, 0, 0.0) for q, r in enumerate(records)]

    def prepare(self, entry: Entry, report: Callable[[str], None] = lambda s: None) -> None:
        """Store every level of ``entry`` that is not stored yet, one after another."""
        for quality in range(entry.quality_levels):
            started = time.perf_counter()
            stream = self.get(entry, quality)
            stream.chunk(entry.frames)  # returns once the encode is complete, raises if it failed
            stream.settled.wait()
            seconds = time.perf_counter() - started
            report(f"{entry.name} level {quality}: {stream.bytes} bytes, {len(stream.chunks)} frames ({seconds:.1f} s)")

    def _record_of(self, entry: Entry, quality: int) -> dict[str, Any] | None:
        """The record of a stored stream if it names what ``entry`` encodes now."""
        path = self.paths(entry, quality)[1]
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("identity") != identity(entry, quality):
            return None
        if not all(isinstance(record.get(k), int) for k in ("bytes", "frames")) or record["frames"] != entry.frames:
            return None
        return record if isinstance(record.get("sha256"), str) and isinstance(record.get("psnr"), float) else None

    def _load(self, entry: Entry, quality: int) -> Stream | None:
        """The stored stream, if complete, current and intact; None otherwise (it is encoded again)."""
        record = self._record_of(entry, quality)
        if record is None:
            return None
        path = self.paths(entry, quality)[0]
        try:
            if path.stat().st_size != record["bytes"]:
                raise CodecError(f"{path}: {path.stat().st_size} bytes, its record says {record['bytes']}")
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != record["sha256"]:
                raise CodecError(f"{path}: sha256 differs from its record's")
            header = Header.unpack(data, str(path))
            if header != entry.header(quality, entry.frames):
                raise CodecError(f"{path}: its header is not this video's at level {quality}")
            chunks = [c for c in read_chunks(data, str(path)) if isinstance(c, Chunk)]
            if [c.index for c in chunks] != list(range(entry.frames)) or chunks[0].frame_type != I_FRAME:
                raise CodecError(f"{path}: its frames are not 0..{entry.frames - 1} from an I-frame")
        except (OSError, CodecError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            log.warning(json.dumps({"event": "stored_stream_refused", "video": entry.name, "reason": reason}))
            return None
        return Stream(quality, chunks)

    def _record(self, entry: Entry, stream: Stream) -> None:
        """Encode ``entry`` at the stream's level into ``stream`` and then into the cache."""
        quality, started = stream.quality, time.perf_counter()
        psnrs: list[float] = []
        try:
            with self.encoders:
                info = entry.info
                encoder = StreamEncoder(
                    entry.bundle, width=info.width, height=info.height, quality=quality, nets=self.nets(entry)
                )
                for index, frame in enumerate(entry.frames_from(0, entry.frames)):
                    coded = encoder.encode(frame, index)
                    psnrs.append(psnr(coded.reconstruction, frame))
                    stream.add(coded.chunk)
            if len(stream.chunks) != entry.frames:
                raise CodecError(f"{entry.name}: its source gave {len(stream.chunks)} of {entry.frames} frames")
        except Exception as exc:  # every reader must learn that the encode failed
            message = str(exc) if isinstance(exc, CodecError) else f"{entry.name}: encoding failed ({exc!r})"
            log.error(json.dumps({"event": "store_failed", "video": entry.name, "quality": quality, "error": message}))
            stream.finish(message)
            stream.settled.set()
            return
        stream.finish()
        try:
            self._write(entry, stream, float(np.mean(psnrs)))
            seconds = round(time.perf_counter() - started, 2)
            log.info(json.dumps({"event": "stored", "video": entry.name, "quality": quality, "seconds": seconds}))
        except OSError as exc:  # served from memory all the same
            log.warning(json.dumps({"event": "store_unwritable", "video": entry.name, "error": exc.strerror}))
        finally:
            stream.settled.set()

    def _write(self, entry: Entry, stream: Stream, mean_psnr: float) -> None:
        """The stream file, then its record: whole or not at all."""
        path, record_path = self.paths(entry, stream.quality)
        path.parent.mkdir(parents=True, exist_ok=True)
        # What write_stream writes, held whole: the stream is in memory already, and its sha256 is of these bytes.
        data = entry.header(stream.quality, len(stream.chunks)).pack() + b"".join(c.pack() for c in stream.chunks)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        record = {
            "identity": identity(entry, stream.quality),
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "frames": len(stream.chunks),
            "psnr": mean_psnr,
        }
        write_atomic(record_path, (json.dumps(record, indent=2) + "\n").encode())

    def _remove_partial(self) -> None:
        """Delete what a server killed while writing an entry left behind (another one sharing the
        folder may be writing its own right now, so only old ones)."""
        cutoff = time.time() - STALE_PARTIAL_S
        for path in self.folder.glob("*/.*-partial*"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except OSError:
                pass

    def _evict(self) -> None:
        """Drop the least recently used complete streams past RESIDENT_BYTES (their readers keep theirs)."""
        total = sum(s.bytes for s in self.streams.values())
        for key in list(self.streams):
            if total <= RESIDENT_BYTES:
                return
            stream = self.streams[key]
            if stream.complete:
                total -= stream.bytes
                del self.streams[key]
