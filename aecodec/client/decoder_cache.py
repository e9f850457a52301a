"""The decoders ``codec play`` fetched, kept by identity: ``CACHE/<bundle sha256>/`` holds the
decoder.onnx, decoder.weights, entropy.json and meta.json a server sent.

Nothing the server says is trusted. The folder's name must be a sha256; each piece is checked
against its file's declared size before it is written; the files go to a temporary folder inside
the cache (``.incoming-*``), which takes its place in one rename only once every file's sha256 and
the bundle's identity check out and the decoder opens (its network and its tables), so a decoder
that cannot decode never enters the cache. A failed fetch leaves nothing behind; a fetch killed
midway leaves its temporary folder, which the next fetch removes once it is older than any fetch
may last (and ``codec cache --clear`` at once). An entry that no longer opens (stored by another
version, or damaged on disk) is removed and fetched again.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import Any, BinaryIO

from codec.coding.common.entropy_coding import CodingTables
from codec.coding.common.runtime import open_decoder
from codec.errors import CodecError
from codec.io.bundle import DECODING_FILES, SHIPPED_FILES, Bundle, load_bundle

# The three files of one decoder together. The default model's decoder.onnx is about 2 MiB, one
# eight times as wide (--width 512) about 130 MiB; a server that declares more is refused unread.
MAX_DECODER_BYTES = 256 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")


def check_sha256(value: str, origin: str, what: str) -> str:
    """``value`` if it is exactly 64 lowercase hex digits, else a CodecError naming ``origin``."""
    if not _SHA256.fullmatch(value):
        raise CodecError(f"{origin}: {what} {value[:80]!r} is not a sha256 (64 lowercase hex digits)")
    return value


INCOMING = ".incoming-"
STALE_INCOMING_S = 3600  # older than any fetch lasts (GetDecoder's deadline is 300 s)


def cached_decoder(cache: Path, bundle_sha256: str, pieces: Iterable[Any], origin: str) -> Bundle:
    """Bundle ``bundle_sha256``'s decoder from ``cache``, stored there first from the server's
    ``pieces`` (DecoderChunk messages, consumed only if the cache lacks it, or holds it unusable).
    ``origin`` names the server."""
    folder = cache / check_sha256(bundle_sha256, origin, "bundle_sha256")
    if folder.exists():
        try:
            return _usable(folder, bundle_sha256)
        except CodecError as exc:
            print(f"warning: {exc}; removed it from the cache to fetch it again", file=sys.stderr)
            shutil.rmtree(folder, ignore_errors=True)
    _fetch(folder, pieces, origin)
    try:
        return _usable(folder, bundle_sha256)
    except CodecError as exc:  # another client placed it first, damaged
        shutil.rmtree(folder, ignore_errors=True)
        raise CodecError(f"{exc} (removed that cache entry; play again to fetch it anew)") from None


def _usable(folder: Path, bundle_sha256: str) -> Bundle:
    """The decoder in ``folder`` if its files check out, it is bundle ``bundle_sha256``'s, and its
    network and tables open."""
    bundle = load_bundle(folder, files=DECODING_FILES)
    if bundle.decoder_sha256 != bundle_sha256:
        raise CodecError(f"{folder}: holds another decoder than bundle {bundle_sha256[:12]}")
    return _opens(bundle)


def _opens(bundle: Bundle) -> Bundle:
    """``bundle`` once its decoder network and its coding tables open."""
    open_decoder(bundle, cpu_only=True)
    CodingTables.from_bundle(bundle)
    return bundle


def remove_incoming(cache: Path, older_than: float = 0.0) -> int:
    """Delete the temporary folders of fetches that never finished, those older than ``older_than``
    seconds; returns the bytes freed."""
    freed = 0
    for path in cache.glob(f"{INCOMING}*") if cache.is_dir() else ():
        try:
            if path.is_symlink() or not path.is_dir() or time.time() - path.lstat().st_mtime < older_than:
                continue
            freed += sum(f.lstat().st_size for f in path.iterdir())
        except OSError:
            continue
        shutil.rmtree(path, ignore_errors=True)
    return freed


def _fetch(folder: Path, pieces: Iterable[Any], origin: str) -> None:
    """Receive and verify the decoder in a temporary folder beside ``folder``, then rename it there."""
    cache = folder.parent
    try:
        cache.mkdir(parents=True, exist_ok=True)
        remove_incoming(cache, STALE_INCOMING_S)
        incoming = Path(tempfile.mkdtemp(prefix=INCOMING, dir=cache))
    except OSError as exc:
        raise CodecError(f"{cache}: cannot store decoders there ({exc.strerror or exc})") from None
    try:
        _receive(pieces, incoming, origin)
        try:
            received = load_bundle(incoming, files=DECODING_FILES)
        except CodecError as exc:
            raise CodecError(f"{origin}: sent an unusable decoder ({exc})") from None
        sent = received.decoder_sha256
        if sent != folder.name:
            raise CodecError(f"{origin}: sent bundle {sent[:12]}'s decoder, not the {folder.name[:12]} it advertised")
        try:
            _opens(received)
        except CodecError as exc:
            raise CodecError(f"{origin}: sent an unusable decoder ({exc})") from None
        try:
            incoming.rename(folder)
        except OSError as exc:
            if not folder.is_dir():  # else a concurrent client placed it first; the caller verifies it
                raise CodecError(f"{folder}: cannot store the decoder there ({exc.strerror or exc})") from None
    finally:
        shutil.rmtree(incoming, ignore_errors=True)


def _receive(pieces: Iterable[Any], folder: Path, origin: str) -> None:
    """Write the pieces' files into ``folder``, each piece checked before it is written."""
    files: dict[str, _Incoming] = {}
    with ExitStack() as opened:
        for piece in pieces:
            incoming = files.get(piece.file)
            if incoming is None:
                room = MAX_DECODER_BYTES - sum(f.size for f in files.values())
                incoming = files[piece.file] = _start(piece, folder, origin, room, opened)
            incoming.add(piece)
        missing = [name for name in SHIPPED_FILES if name not in files]
        if missing:
            raise CodecError(f"{origin}: sent no {', '.join(missing)}")
        for incoming in files.values():
            incoming.finish()


def _start(piece: Any, folder: Path, origin: str, room: int, opened: ExitStack) -> _Incoming:
    """The file ``piece`` begins, if its name, sha256 and size (at most ``room`` bytes) are acceptable."""
    if piece.file not in SHIPPED_FILES:
        raise CodecError(f"{origin}: sent a file named {piece.file[:80]!r}, not one of {', '.join(SHIPPED_FILES)}")
    where = f"{origin}: {piece.file}"
    check_sha256(piece.sha256, where, "sha256")
    if piece.size > room:
        raise CodecError(
            f"{where}: declared {piece.size} bytes; a decoder may take {MAX_DECODER_BYTES >> 20} MiB in all"
        )
    return _Incoming(opened.enter_context(open(folder / piece.file, "xb")), piece.size, piece.sha256, where)


class _Incoming:
    """One file as its pieces arrive: in order, each starting where the last ended, hashed on the way."""

    def __init__(self, out: BinaryIO, size: int, sha256: str, where: str) -> None:
        self.out, self.size, self.sha256, self.where = out, size, sha256, where
        self.received, self.complete = 0, False
        self.digest = hashlib.sha256()

    def add(self, piece: Any) -> None:
        if (piece.size, piece.sha256) != (self.size, self.sha256):
            raise CodecError(f"{self.where}: its pieces disagree on the file's size or sha256")
        if piece.offset != self.received:
            raise CodecError(
                f"{self.where}: a piece at byte {piece.offset} where byte {self.received} was due "
                "(pieces must follow each other without gaps or overlaps)"
            )
        if self.complete or (self.size and not piece.data) or piece.offset + len(piece.data) > self.size:
            raise CodecError(
                f"{self.where}: a piece of {len(piece.data)} bytes at byte {piece.offset} of a {self.size}-byte file"
            )
        self.out.write(piece.data)
        self.digest.update(piece.data)
        self.received += len(piece.data)
        self.complete = self.received == self.size

    def finish(self) -> None:
        if not self.complete:
            raise CodecError(f"{self.where}: ended at byte {self.received} of {self.size}")
        if self.digest.hexdigest() != self.sha256:
            raise CodecError(f"{self.where}: arrived damaged (sha256 mismatch)")
