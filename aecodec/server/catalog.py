"""The videos a server offers: every model bundle under a directory, with its source video.

Layout: ``DIR/NAME/`` is a bundle (meta.json, encoder.onnx, ...) and its source video is the file
named in its meta.json's ``source.name``, inside ``DIR/NAME/`` or beside it in ``DIR``, else the file
it was trained from (``source.path``) if its sha256 still matches. NAME is what clients ask for.

A source found by name is hashed before the server encodes from it (:func:`checked_source`), and
its identity checked again once the encode has read it: a stream is never encoded from a file other
than the one the bundle was trained on, which the stored stream's record names.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codec.coding.common.bitstream import Header
from codec.errors import CodecError
from codec.io.bundle import HELD_FILES, META_FILE, SHIPPED_FILES, Bundle, find_source, load_bundle
from codec.io.frame_store import FrameStore, cached
from codec.io.video import VideoInfo, exact_rate, iter_frames_from, probe

PIECE = 512 * 1024
CHECKED_SOURCES = 256  # identities of hashed sources kept; past that they are hashed again
_checked: dict[tuple[int, int, int, int], str] = {}  # sources hashed: (device, inode, size, mtime) -> sha256
_checked_lock = threading.Lock()


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def checked_source(path: Path, sha256: str) -> tuple[int, int, int, int]:
    """The identity (device, inode, size, mtime) of ``path`` once its bytes are known to hash to
    ``sha256`` (hashed through one descriptor, once per identity); a CodecError if they do not, or if
    the file changed while it was hashed."""
    try:
        with open(path, "rb") as f:
            before = _identity(os.fstat(f.fileno()))
            with _checked_lock:
                digest = _checked.get(before)
            if digest is None:
                hasher = hashlib.sha256()
                for block in iter(lambda: f.read(1 << 20), b""):
                    hasher.update(block)
                digest = hasher.hexdigest()
                if _identity(os.fstat(f.fileno())) != before or _identity(os.stat(path)) != before:
                    raise CodecError(f"{path}: the source video changed while it was read")
                with _checked_lock:
                    if len(_checked) >= CHECKED_SOURCES:
                        _checked.clear()
                    _checked[before] = digest
    except OSError as exc:
        raise CodecError(f"{path}: cannot read the source video ({exc.strerror})") from None
    if digest != sha256:
        raise CodecError(
            f"{path}: not the video the bundle was trained on (its sha256 differs); nothing is encoded from it"
        )
    return before


def _signature(bundle: Bundle) -> tuple[tuple[int, int, int] | None, ...]:
    """What a replaced bundle file changes: each coding file's and meta.json's inode, size and mtime."""
    stamps = []
    for name in (*HELD_FILES, META_FILE):
        try:
            st = bundle.file(name).stat()
            stamps.append((st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            stamps.append(None)
    return tuple(stamps)


@dataclass(frozen=True)
class Entry:
    """One servable video: its bundle, its source file, what the source's header says, and its
    decoded frames where the frame cache holds them (a stream then starts at any frame at once).

    The bundle's coding files are served and coded from the bytes verified at start-up
    (:meth:`~codec.io.bundle.Bundle.read`), never re-read from disk, so files replaced under a running
    server are never mixed with the ones its clients hold; :meth:`changed_on_disk` tells the server
    to say so."""

    name: str
    bundle: Bundle
    source: Path
    info: VideoInfo
    store: FrameStore | None = None
    signature: tuple[tuple[int, int, int] | None, ...] = ()

    def changed_on_disk(self) -> bool:
        """Whether a file of the bundle was replaced or edited since the server verified it."""
        return _signature(self.bundle) != self.signature

    def frames_from(self, start: int, end: int, active: Callable[[], bool] = lambda: True) -> Iterator[np.ndarray]:
        """Frames ``[start, end)`` of the video: read from the cache, or decoded from the source
        (from the last keyframe at or before ``start`` where its timestamps allow, else from its
        first frame), stopping as soon as ``active()`` turns false. A source that is not the
        bundle's, or changes meanwhile, is a CodecError."""
        if self.store is not None and len(self.store) >= end:
            return (self.store[i] for i in range(start, end))
        return self._source_frames(start, end, active)

    def _source_frames(self, start: int, end: int, active: Callable[[], bool]) -> Iterator[np.ndarray]:
        """:meth:`frames_from` the source file, once it is known to be the bundle's (see the module)."""
        before = checked_source(self.source, self.bundle.meta.source.sha256)
        yield from iter_frames_from(self.source, start, end, active, frames=self.frames)
        try:
            after = _identity(os.stat(self.source))
        except OSError:
            after = None
        if after != before:
            raise CodecError(f"{self.source}: the source video changed while it was encoded")

    @property
    def frames(self) -> int:
        return self.bundle.meta.source.frames

    @property
    def quality_levels(self) -> int:
        return self.bundle.meta.coding.levels

    def header(self, quality: int, frames: int) -> Header:
        """The .aec header of a stream of ``frames`` frames of this video at ``quality``."""
        fps = exact_rate(self.info.fps)
        gop = self.bundle.meta.coding.gop
        return Header(self.bundle.decoder_sha256, self.info.width, self.info.height, fps, frames, gop, quality)


def load_catalog(models_dir: Path) -> dict[str, Entry]:
    """Every bundle under ``models_dir`` whose source video is present, by name."""
    if not models_dir.is_dir():
        raise CodecError(f"{models_dir}: no such directory")
    entries = {}
    for meta in sorted(models_dir.glob(f"*/{META_FILE}")):
        bundle = load_bundle(meta.parent)
        source = find_source(bundle)
        if source is None:
            name = bundle.meta.source.name
            raise CodecError(
                f"{meta.parent}: source video {name} is not in the bundle, beside it or where it was trained from"
            )
        info = probe(source)
        store = cached(info, bundle.meta.source.sha256)
        entries[meta.parent.name] = Entry(meta.parent.name, bundle, source, info, store, _signature(bundle))
    if not entries:
        raise CodecError(f"{models_dir}: holds no model bundles (expected DIR/NAME/{META_FILE})")
    return entries


@dataclass(frozen=True)
class Piece:
    """Part of one bundle file, as sent to a client that has no model yet."""

    file: str
    size: int
    sha256: str
    offset: int
    data: bytes


def shipped_bytes(bundle: Bundle, name: str) -> bytes:
    """What a client receives of the bundle's file ``name``: the file itself, except that meta.json
    goes without the path the model was trained from (a folder of the server's own, nothing a
    decoder needs); no sha256 a stream names covers meta.json, so nothing else changes."""
    if name != META_FILE:
        return bundle.read(name)
    raw = copy.deepcopy(bundle.raw)
    raw.get("source", {}).pop("path", None)
    return (json.dumps(raw, indent=2) + "\n").encode()


def decoder_pieces(bundle: Bundle) -> Iterator[Piece]:
    """decoder.onnx, entropy.json and meta.json in pieces of at most 512 KiB each."""
    for name in SHIPPED_FILES:
        data = shipped_bytes(bundle, name)
        sha = hashlib.sha256(data).hexdigest()
        for offset in range(0, max(len(data), 1), PIECE):
            yield Piece(name, len(data), sha, offset, data[offset : offset + PIECE])
