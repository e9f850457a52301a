"""Stored streams: every catalogued video at every quality level, encoded once and served many times.

Layout: ``CACHE/<bundle sha256>/q<level>-g<gop>.aec`` is the stream exactly as ``codec encode``
writes it, and ``q<level>-g<gop>.json`` beside it records what it was encoded from (the format
version, the sha256 of the encoder, of the decoding files and of the source video), its size,
sha256, frames and mean PSNR, and an HMAC-SHA256 tag over all of that under the server's key
(``--stream-key``, else ``CACHE/.key``, made once). Both are written under a temporary name and
renamed, the record last, so an entry without its record is incomplete.

The cache trusts only what it could have written itself: the folder must be this user's and
writable by no one else; each file is opened without following a link or blocking and used only if
it is a regular file with one name, owned by this user, within its size bound (a record 64 KiB,
a stream the size its record names, at most 1 GiB). An entry is served only if its record's tag
holds, it names what this server would encode now, and the file's size, sha256, header and every
chunk's crc32 agree; anything else is absent, and encoded again.

A stream that is not stored yet is encoded once, in the background, however many requests want it:
they all follow its chunks as they come (:class:`Stream`), so its first viewer waits for one frame,
not for the whole encode.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import os
import secrets
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aecodec.server.catalog import Entry
from codec.coding.common.bitstream import HEADER_SIZE, I_FRAME, VERSION, Chunk, Header, read_chunks
from codec.coding.common.runtime import Networks
from codec.coding.encoder.encode import StreamEncoder
from codec.errors import CodecError
from codec.io.bundle import ENCODER_FILE
from codec.io.files import atomic_path, open_own, read_own, write_atomic
from codec.io.psnr import psnr

log = logging.getLogger("aecodec.server")
STALE_PARTIAL_S = 3600  # a partial file this old was left by a server that died writing it
RESIDENT_BYTES = 512 << 20  # complete streams kept in memory, least recently used dropped first
WAIT_S = 0.25  # how often a reader waiting for a frame looks whether its client is still there
RECORD_LIMIT = 64 << 10  # bytes a record may hold (the store writes about 500)
MAX_STORED_BYTES = 1 << 30  # the largest stream file the store reads whole
KEY_FILE = ".key"
KEY_BYTES = 32
RETRY_S = (1.0, 5.0, 30.0)  # when to ask again for a frame being encoded: at least, unknown, at most


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
        self.begun: float | None = None  # when its encode started (it may wait for an encoder first)
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

    def eta(self, index: int) -> float:
        """Seconds until chunk ``index`` is likely there, from the encode's pace so far (1 to 30;
        5 while the encode has not started)."""
        least, unknown, most = RETRY_S
        with self.changed:
            done, begun = len(self.chunks), self.begun
        if begun is None or not done:
            return unknown
        rate = done / max(time.monotonic() - begun, 1e-3)
        return min(most, max(least, (index + 1 - done) / rate))

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


def check_folder(folder: Path) -> None:
    """Make ``folder`` (mode 0700) if missing; refuse one that is a link, another user's, or
    writable by anyone else, since whoever can write there could plant entries."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(folder)
    except OSError as exc:
        raise CodecError(f"{folder}: cannot use it as the stream cache ({exc.strerror})") from None
    if not stat.S_ISDIR(st.st_mode):
        raise CodecError(f"{folder}: the stream cache is not a folder (a link is not followed)")
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise CodecError(
            f"{folder}: the stream cache must be this user's and writable by no one else "
            f"(owner uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):o}); chmod go-w it or choose another"
        )


def own_key(folder: Path) -> bytes:
    """The key in ``folder/.key``, made once (32 random bytes, mode 0600); refused if it is not a
    file this user wrote."""
    path = folder / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        pass
    except OSError as exc:
        raise CodecError(f"{path}: cannot make the stream cache's key ({exc.strerror})") from None
    else:
        with open(fd, "wb") as f:
            f.write(secrets.token_bytes(KEY_BYTES))
    for _ in range(20):  # another server may have created it a moment ago and be writing it
        key = read_own(path, KEY_BYTES)
        if key is not None and len(key) == KEY_BYTES:
            return key
        time.sleep(0.05)
    raise CodecError(
        f"{path}: not a key this server wrote (a link, another user's, or not {KEY_BYTES} bytes); remove it"
    )


def _own_size(path: Path) -> int | None:
    """The size of ``path`` if it is a file the store could have written (see :func:`open_own`)."""
    fd = open_own(path)
    if fd is None:
        return None
    try:
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def record_tag(key: bytes, record: dict[str, Any]) -> str:
    """The HMAC-SHA256 of ``record``'s fields (all but its tag) under ``key``, in hex."""
    fields = {k: v for k, v in record.items() if k != "tag"}
    return hmac.new(key, json.dumps(fields, sort_keys=True).encode(), hashlib.sha256).hexdigest()


def _usable(record: Any, key: bytes) -> bool:
    """Whether ``record`` is one the store wrote with ``key``, every field within its bounds."""
    if not isinstance(record, dict) or not isinstance(record.get("tag"), str):
        return False
    if not hmac.compare_digest(record["tag"], record_tag(key, record)):
        return False
    size, frames, psnr_db, sha = (record.get(k) for k in ("bytes", "frames", "psnr", "sha256"))
    return (
        type(size) is int
        and HEADER_SIZE < size <= MAX_STORED_BYTES
        and type(frames) is int
        and type(psnr_db) is float
        and math.isfinite(psnr_db)
        and isinstance(sha, str)
    )


class StreamStore:
    """Stored streams under ``folder``, loaded, verified and kept in memory as they are asked for,
    encoded (at most ``workers`` at once) where missing. ``nets(entry)`` gives the networks to encode
    with; ``key`` signs the records (default: the folder's own, see :func:`own_key`)."""

    def __init__(
        self, folder: Path, nets: Callable[[Entry], Networks], workers: int = 1, key: bytes | None = None
    ) -> None:
        check_folder(folder)
        self.folder, self.nets = folder, nets
        self.key = key if key is not None else own_key(folder)
        self.encoders = threading.BoundedSemaphore(max(1, workers))
        self.lock = threading.Lock()  # held only to look up and change the maps, never across disk reads
        self.streams: OrderedDict[tuple[str, int], Stream] = OrderedDict()
        self.loading: dict[tuple[str, int], threading.Lock] = {}  # one per entry: one load or encode of it at once
        self._remove_partial()

    def paths(self, entry: Entry, quality: int) -> tuple[Path, Path]:
        """The stream file and its record."""
        stem = f"q{quality}-g{entry.bundle.meta.coding.gop}"
        folder = self.folder / entry.bundle.decoder_sha256
        return folder / f"{stem}.aec", folder / f"{stem}.json"

    def _resident(self, key: tuple[str, int]) -> Stream | None:
        stream = self.streams.get(key)
        if stream is not None and stream.error is None:
            self.streams.move_to_end(key)
            return stream
        return None

    def get(self, entry: Entry, quality: int) -> Stream:
        """``entry``'s stream at ``quality``: from memory, from the cache once verified, or being
        encoded (started here if no other request started it). Reading one entry from disk holds up
        no other entry's requests."""
        key = (entry.name, quality)
        with self.lock:
            if (stream := self._resident(key)) is not None:
                return stream
            loading = self.loading.setdefault(key, threading.Lock())
        with loading:
            with self.lock:
                if (stream := self._resident(key)) is not None:
                    return stream
            loaded = self._load(entry, quality)
            with self.lock:
                stream = loaded or Stream(quality)
                if loaded is None:
                    threading.Thread(
                        target=self._record, args=(entry, stream), name=f"encode-{key}", daemon=True
                    ).start()
                self.streams[key] = stream
                self._evict()
                return stream

    def responsive(self, timeout: float) -> bool:
        """Whether the store's lock can be had within ``timeout`` s (a stuck store cannot serve)."""
        if not self.lock.acquire(timeout=timeout):
            return False
        self.lock.release()
        return True

    def rungs(self, entry: Entry) -> list[Rung]:
        """Every level of ``entry`` with its stored size and PSNR (0 where not stored yet, or where
        its record or file is not one the store can use); encodes nothing."""
        rungs = []
        for quality in range(entry.quality_levels):
            record = self._record_of(entry, quality)
            stored = record is not None and _own_size(self.paths(entry, quality)[0]) == record["bytes"]
            rungs.append(Rung(quality, record["bytes"], record["psnr"]) if stored else Rung(quality, 0, 0.0))
        return rungs

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
        """The record of a stored stream if the store wrote it, it is within bounds and it names what
        ``entry`` encodes now."""
        data = read_own(self.paths(entry, quality)[1], RECORD_LIMIT)
        try:
            record = json.loads(data) if data is not None else None
        except (ValueError, RecursionError):
            return None
        if not _usable(record, self.key) or record.get("identity") != identity(entry, quality):
            return None
        return record if record["frames"] == entry.frames else None

    def _load(self, entry: Entry, quality: int) -> Stream | None:
        """The stored stream, if complete, current and intact; None otherwise (it is encoded again)."""
        record = self._record_of(entry, quality)
        path, record_path = self.paths(entry, quality)
        if record is None:
            if os.path.lexists(record_path):  # said once per load; the listing reads records silently
                reason = f"{record_path}: not a record of this server's for what it serves now"
                log.warning(json.dumps({"event": "stored_stream_refused", "video": entry.name, "reason": reason}))
            return None
        try:
            data = read_own(path, record["bytes"])
            if data is None:
                raise CodecError(f"{path}: missing, a link, not a file of this server's, or over its record's size")
            if len(data) != record["bytes"]:
                raise CodecError(f"{path}: {len(data)} bytes, its record says {record['bytes']}")
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
                stream.begun = time.monotonic()
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
        path.parent.mkdir(mode=0o700, exist_ok=True)
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
        record["tag"] = record_tag(self.key, record)
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
