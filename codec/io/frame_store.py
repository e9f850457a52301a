"""Decoded frames on disk: a video decoded once into a raw RGB24 file of the cache, then read back one
frame, or one crop, at a time. No stage holds a clip in memory, so a film trains, evaluates and
benches in the memory of a few frames; the disk holds what RAM would have (3 bytes a pixel).

The cache is ``$AECODEC_CACHE`` if set, else ``$XDG_CACHE_HOME/aecodec`` (``~/.cache/aecodec``). Each
video decodes to ``frames/SHA256.rgb`` (frame after frame, H x W x 3 uint8, no header) and
``frames/SHA256.json`` (size, frame count, colour, source name), keyed by the sha256 of the source
file's bytes, so a renamed copy hits and an edited file misses. The file is written under a temporary
name and renamed when whole, under a lock, so concurrent processes (the ranks of a distributed run)
decode once and no reader sees half a file. ``codec cache`` lists the entries; ``codec cache --clear``
deletes them; nothing is deleted on its own.

Reads are ``pread`` into fresh arrays, never a memory map: the pages sit in the kernel's page cache,
not in the process, so the resident size stays flat in the clip's length and a limit on the
process's memory does not count the file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codec.errors import CodecError
from codec.io.files import sha256_file, write_json
from codec.io.video import DecodedVideo, VideoInfo, iter_frames, probe

LAYOUT = "rgb24-v1"  # how frames are converted and laid out; a change re-decodes every entry
DISK_MARGIN = 256 << 20  # bytes a decode leaves free on the cache's disk


def cache_dir() -> Path:
    """Where decoded frames are kept (see the module)."""
    if os.environ.get("AECODEC_CACHE"):
        return Path(os.environ["AECODEC_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "aecodec"


def frames_dir() -> Path:
    return cache_dir() / "frames"


@dataclass(frozen=True)
class CacheEntry:
    """One decoded video in the cache."""

    sha256: str
    source: str
    width: int
    height: int
    frames: int
    bytes: int
    used: float  # when it was last opened (the file's access time is not reliable on every mount)

    @property
    def frame_bytes(self) -> int:
        return self.width * self.height * 3


def _entry(meta_path: Path) -> CacheEntry | None:
    """The entry ``meta_path`` describes, or None where it is damaged, of another layout, or its
    frames file does not hold exactly its frames."""
    try:
        raw = json.loads(meta_path.read_text())
        if raw.get("layout") != LAYOUT:
            return None
        entry = CacheEntry(
            sha256=str(raw["sha256"]),
            source=str(raw["source"]),
            width=int(raw["width"]),
            height=int(raw["height"]),
            frames=int(raw["frames"]),
            bytes=meta_path.with_suffix(".rgb").stat().st_size,
            used=meta_path.stat().st_mtime,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if entry.frames < 1 or entry.width < 1 or entry.height < 1 or entry.bytes != entry.frames * entry.frame_bytes:
        return None
    return entry


def cache_entries() -> list[CacheEntry]:
    """Every whole entry of the cache, least recently used first."""
    folder = frames_dir()
    entries = [e for p in sorted(folder.glob("*.json")) if (e := _entry(p))] if folder.is_dir() else []
    return sorted(entries, key=lambda e: e.used)


def clear_cache() -> int:
    """Delete every decoded video (and any partial one); returns the bytes freed."""
    folder = frames_dir()
    if not folder.is_dir():
        return 0
    freed = 0
    for path in folder.iterdir():
        if path.is_file():
            freed += path.stat().st_size
            path.unlink(missing_ok=True)
    return freed


class FrameStore(DecodedVideo):
    """The frames ``[start, stop)`` of one decoded video, read from its cache file on demand.

    ``store[i]`` is frame ``start + i`` as a fresh (H,W,3) uint8 array; :meth:`crop` reads only the
    rows a crop needs; :meth:`span` is a view of some of the frames (the training frames, the held-out
    tail) on the same file."""

    def __init__(self, info: VideoInfo, path: Path, frames: int, start: int = 0, stop: int | None = None) -> None:
        self.info, self.path, self.total = info, path, frames
        self.start, self.stop = start, frames if stop is None else stop
        self._fd = os.open(path, os.O_RDONLY)
        weakref.finalize(self, os.close, self._fd)

    @property
    def frame_bytes(self) -> int:
        return self.width * self.height * 3

    def __len__(self) -> int:
        return self.stop - self.start

    def _read(self, offset: int, shape: tuple[int, ...]) -> np.ndarray:
        out = np.empty(shape, np.uint8)
        if os.preadv(self._fd, [out], offset) != out.nbytes:
            raise CodecError(f"{self.path}: the cached frames end early; delete it with codec cache --clear")
        return out

    def _index(self, i: int) -> int:
        if not 0 <= i < len(self):
            raise IndexError(f"frame {i} of {len(self)}")
        return self.start + i

    def __getitem__(self, i: int) -> np.ndarray:
        return self._read(self._index(i) * self.frame_bytes, (self.height, self.width, 3))

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(len(self)))

    def crop(self, i: int, top: int, left: int, height: int, width: int) -> np.ndarray:
        """The ``height`` x ``width`` crop at (top, left) of frame ``i``, reading only its rows."""
        row = self.width * 3
        band = self._read(self._index(i) * self.frame_bytes + top * row, (height, self.width, 3))
        return band[:, left : left + width]

    def span(self, lo: int, hi: int) -> FrameStore:
        """Frames ``[lo, hi)`` of this store as a store of their own."""
        if not 0 <= lo <= hi <= len(self):
            raise IndexError(f"frames [{lo}, {hi}) of {len(self)}")
        return FrameStore(self.info, self.path, self.total, self.start + lo, self.start + hi)


def cached(info: VideoInfo, sha256: str) -> FrameStore | None:
    """The cache's store of the video ``info`` describes whose bytes hash to ``sha256``, if it is there."""
    meta = frames_dir() / f"{sha256}.json"
    entry = _entry(meta)
    if entry is None or (entry.width, entry.height) != (info.width, info.height):
        return None
    with contextlib.suppress(OSError):  # a read-only cache is still read
        os.utime(meta)  # last used
    return FrameStore(info, meta.with_suffix(".rgb"), entry.frames)


def open_store(
    video: str | os.PathLike,
    progress: Callable[[int, int], None] = lambda done, expected: None,
    sha256: str | None = None,
) -> FrameStore:
    """The frames of ``video``, decoded into the cache now unless they are there already.
    ``progress(done, expected)`` follows a decode (expected is 0 where the container does not say);
    ``sha256`` spares hashing the file when the caller has it. A decode that would not fit on the
    cache's disk is refused before it starts, naming what it needs."""
    info = probe(video)
    digest = sha256 or sha256_file(info.path)
    store = cached(info, digest)
    if store is not None:
        return store
    folder = frames_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = open(folder / f"{digest}.lock", "w")  # noqa: SIM115 (closed below, after the decode)
    except OSError as exc:
        raise CodecError(f"{folder}: cannot hold the decoded frames ({exc.strerror}); set AECODEC_CACHE") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be decoding this video: wait for it
        store = cached(info, digest)
        if store is None:
            _decode(info, digest, folder, progress)
            store = cached(info, digest)
    if store is None:
        raise CodecError(f"{folder}: the decoded frames of {info.path.name} could not be read back")
    return store


def check_disk(info: VideoInfo, folder: Path) -> None:
    """Refuse a decode of ``info``'s declared frames that would not leave DISK_MARGIN free in ``folder``."""
    need = info.declared_frames * info.width * info.height * 3
    free = shutil.disk_usage(folder).free
    if need and need + DISK_MARGIN > free:
        raise CodecError(
            f"{info.path}: its {info.declared_frames} decoded frames need {need / 2**30:.1f} GiB in {folder}, "
            f"which has {free / 2**30:.1f} GiB free; free some (codec cache --clear) or set AECODEC_CACHE"
        )


def _decode(info: VideoInfo, digest: str, folder: Path, progress: Callable[[int, int], None]) -> None:
    check_disk(info, folder)
    final = folder / f"{digest}.rgb"
    partial = folder / f"{digest}.rgb-partial"
    count = 0
    try:
        with open(partial, "wb") as out:
            for frame in iter_frames(info.path):
                out.write(np.ascontiguousarray(frame))
                count += 1
                progress(count, info.declared_frames)
        meta = {
            "layout": LAYOUT,
            "sha256": digest,
            "source": info.path.name,
            "width": info.width,
            "height": info.height,
            "frames": count,
            "colour": info.colour.to_dict(),
            "decoded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        os.replace(partial, final)
        write_json(folder / f"{digest}.json", meta)
    except OSError as exc:
        raise CodecError(f"{folder}: writing the decoded frames of {info.path.name} failed ({exc.strerror})") from None
    finally:
        partial.unlink(missing_ok=True)
