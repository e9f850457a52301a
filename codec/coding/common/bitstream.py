"""The ``.aec`` container: one header, then one self-delimiting chunk per frame. Nothing here
knows about networks; it reads and writes bytes and says exactly which field is wrong.

The 64-byte header (little-endian):

    magic "AEC\\x00" | version u16 | flags u16 | bundle sha256 (32 bytes) | width u16 | height u16
    | fps numerator u32 | fps denominator u32 | frames u32 | gop u16 | quality u8 | reserved u8
    | crc32 of the preceding 60 bytes u32

A chunk (a 17-byte head, then the payload):

    sync "AF" | frame index u32 | type u8 | payload length u32 | check u16 | crc32 u32 | payload

Types: 0 = I (the intra latent), 1 = P (the latent's difference from the previous frame's, kept for
``--p-mode latent``), 2 = M (motion-compensated from the previous decoded frame plus an integer
residual: codec.coding.common.inter_frame). Version 3 added M, version 4 its 32x32 blocks that move as one or
as four 16x16 ones, version 5 an I-frame's latent in two checkerboard halves, the second under
spatial contexts, version 6 in five passes under spatial contexts, coded one block per table
(codec.coding.common.context), and the M-frames' residual levels under contexts, version 7 an I-frame's
latent length and an integer refinement after it (codec.coding.common.intra_refinement); an older stream
is refused, naming its version.

The chunk's crc32 covers its sync, index, type, length and check fields and the payload, so any damage
to a chunk is caught, and a reader that lost its place can scan for the next sync whose crc32 holds.
A gRPC ``EncodedFrame`` carries exactly one chunk's fields.

The check is :func:`frame_check` of the encoder's own reconstruction of the frame: the (H,W,3) uint8
frame a decoder outputs. Encoder and decoder run float networks, and two machines can round a pixel
differently; once P-frames are predicted from decoded frames such a difference propagates through
the GOP. The check makes it detected, never silent. It is the low 16 bits of the frame's zlib crc32:
16 bits, because a chunk is ~200 bytes at small sizes and 4 would cost 2% of the stream; a frame that
differs passes with probability 2^-16, and a drift persists from frame to frame, so it is caught within
a frame or two. zlib's crc32 runs at memory speed (~1 ms for a 1280x720 frame, where a table-driven
CRC-16 takes ~15 ms, a noticeable share of a frame's decode on a GPU).
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import numpy as np

from codec.coding.common.spancrc import SpanCrc
from codec.errors import CodecError
from codec.io.limits import MAX_FPS, MAX_FPS_DENOMINATOR, MAX_SIDE, MIN_FPS

MAGIC = b"AEC\x00"
VERSION = 7
SYNC = b"AF"
I_FRAME, P_FRAME, M_FRAME = 0, 1, 2
FRAME_TYPES = {I_FRAME: "I", P_FRAME: "P", M_FRAME: "M"}
WORD = 4  # a payload is the range coder's 32-bit words, at least one
MAX_PAYLOAD = 64 << 20
MAX_CHECK = 0xFFFF

_HEADER = struct.Struct("<4sHH32sHHIIIHBB")
HEADER_SIZE = _HEADER.size + 4  # 64: the fields and their crc32
_CHUNK = struct.Struct("<2sIBIH")
CHUNK_HEAD_SIZE = _CHUNK.size + 4  # 17: sync, index, type, length, check and the crc32
MIN_CHUNK_SIZE = CHUNK_HEAD_SIZE + WORD  # the least a frame takes in a stream
SCAN = 1 << 16  # bytes a reader that lost its place looks through at a time, at most
FIRST_SCAN = 64  # its first look, doubled at each one after: a resync reads about twice its distance


@dataclass(frozen=True)
class Header:
    """What a decoder must know before the first chunk."""

    bundle_sha256: str
    width: int
    height: int
    fps: Fraction
    frames: int
    gop: int
    quality: int

    def check(self, source: str) -> None:
        """Refuse what no reader should act on, whatever the crc32 says: a size, count or level the
        header cannot hold, a zero size or count, or a frame rate outside MIN_FPS..MAX_FPS."""
        for name, value, low, high in (
            ("width", self.width, 1, MAX_SIDE),
            ("height", self.height, 1, MAX_SIDE),
            ("frames", self.frames, 1, (1 << 32) - 1),
            ("gop", self.gop, 1, (1 << 16) - 1),
            ("quality", self.quality, 0, 255),
        ):
            if not low <= value <= high:
                raise CodecError(f"{source}: header field {name} is {value}, not {low} to {high}")
        if not MIN_FPS <= self.fps <= MAX_FPS or self.fps.denominator > MAX_FPS_DENOMINATOR:
            raise CodecError(
                f"{source}: frame rate {self.fps} is outside {MIN_FPS} to {MAX_FPS} fps "
                f"(with a denominator of at most {MAX_FPS_DENOMINATOR})"
            )

    def pack(self) -> bytes:
        self.check("cannot write the .aec header")
        body = _HEADER.pack(
            MAGIC,
            VERSION,
            0,
            bytes.fromhex(self.bundle_sha256),
            self.width,
            self.height,
            self.fps.numerator,
            self.fps.denominator,
            self.frames,
            self.gop,
            self.quality,
            0,
        )
        return body + struct.pack("<I", zlib.crc32(body))

    @classmethod
    def unpack(cls, data: bytes, source: str) -> Header:
        if len(data) < HEADER_SIZE:
            raise CodecError(f"{source}: truncated header ({len(data)} of {HEADER_SIZE} bytes)")
        body, (crc,) = data[: _HEADER.size], struct.unpack_from("<I", data, _HEADER.size)
        magic, version, _flags, sha, width, height, num, den, frames, gop, quality, _ = _HEADER.unpack(body)
        if magic != MAGIC:
            raise CodecError(f"{source}: not an .aec stream (magic {magic!r})")
        if version != VERSION:
            raise CodecError(
                f"{source}: .aec format version {version} is not supported: this aecodec reads version {VERSION}; "
                "re-encode the source"
            )
        if zlib.crc32(body) != crc:
            raise CodecError(f"{source}: header crc32 mismatch; the header is damaged")
        if den == 0:
            raise CodecError(f"{source}: header field fps denominator is 0")
        header = cls(sha.hex(), width, height, Fraction(num, den), frames, gop, quality)
        header.check(source)
        return header


def frame_check(frame: np.ndarray) -> int:
    """The reconstruction check of an (H,W,3) uint8 frame: the low 16 bits of the crc32 of its bytes."""
    return zlib.crc32(np.ascontiguousarray(frame)) & MAX_CHECK


@dataclass(frozen=True)
class Chunk:
    """One coded frame: its index, I or P, the :func:`frame_check` of its reconstruction, and its payload."""

    index: int
    frame_type: int
    check: int
    payload: bytes

    @property
    def crc32(self) -> int:
        head = _CHUNK.pack(SYNC, self.index, self.frame_type, len(self.payload), self.check)
        return zlib.crc32(self.payload, zlib.crc32(head))

    @property
    def size(self) -> int:
        """Bytes this chunk takes in a stream: its head (CHUNK_HEAD_SIZE) and its payload."""
        return CHUNK_HEAD_SIZE + len(self.payload)

    def pack(self) -> bytes:
        head = _CHUNK.pack(SYNC, self.index, self.frame_type, len(self.payload), self.check)
        return head + struct.pack("<I", self.crc32) + self.payload


@dataclass(frozen=True)
class Damage:
    """A stretch of the stream that could not be read as a chunk: where it starts, how many bytes
    it spans (up to the next valid chunk or the end) and why."""

    offset: int
    length: int
    reason: str


def write_stream(out: BinaryIO, header: Header, chunks: Iterable[Chunk]) -> int:
    """Write ``header`` and then each chunk as it comes, so no stream is held in memory whole; the
    header is then written again with the number of chunks as its frame count (``out`` must be
    seekable). Returns the bytes written."""
    start = out.tell()
    written = out.write(header.pack())
    frames = 0
    for chunk in chunks:
        written += out.write(chunk.pack())
        frames += 1
    if frames >= 1 << 32:
        raise CodecError(f"{frames} frames: more than a stream header can count")
    end = out.tell()
    out.seek(start)
    out.write(replace(header, frames=frames).pack())
    out.seek(end)
    return written


def chunk_fields_problem(index: int, frame_type: int, check: int, length: int) -> str | None:
    """Why no chunk can have these head fields (a chunk received over the network as much as one
    read from a file), or None: an unknown type, a check beyond 16 bits, a payload that is not 1 to
    MAX_PAYLOAD / WORD words."""
    if frame_type not in FRAME_TYPES:
        return f"frame {index}: unknown frame type {frame_type}"
    if not 0 <= check <= MAX_CHECK:
        return f"frame {index}: reconstruction check {check} is not 16 bits"
    if length % WORD or not WORD <= length <= MAX_PAYLOAD:
        return f"frame {index}: payload length {length} is not 1 to {MAX_PAYLOAD // WORD} 32-bit words"
    return None


def open_stream_file(path: Path) -> BinaryIO:
    """The stream file ``path``, open for reading; a missing or unreadable file is a CodecError."""
    if not path.is_file():
        raise CodecError(f"{path}: no such file")
    try:
        return path.open("rb")
    except OSError as exc:
        raise CodecError(f"{path}: cannot be read ({exc.strerror})") from None


def read_stream_file(path: Path) -> bytes:
    """The bytes of the stream file ``path``, for what needs them whole; a missing or unreadable file
    is a CodecError."""
    with open_stream_file(path) as file:
        return StreamReader(file, str(path)).read(0, -1)


class StreamReader:
    """An ``.aec`` stream read where asked: its bytes, or a seekable binary file (its caller keeps it
    open), so that reading its chunks holds one chunk's payload at a time however long the file is."""

    def __init__(self, stream: bytes | BinaryIO, source: str) -> None:
        self.file = io.BytesIO(stream) if isinstance(stream, bytes | bytearray) else stream
        self.source = source
        self.size = self.file.seek(0, io.SEEK_END)

    def read(self, pos: int, count: int) -> bytes:
        """Up to ``count`` bytes from ``pos`` (all of them to the end with -1); an error of the file
        system is a CodecError."""
        try:
            self.file.seek(pos)
            return self.file.read(count)
        except OSError as exc:
            raise CodecError(f"{self.source}: cannot be read ({exc.strerror})") from None

    def chunks(self, resync: bool = False) -> Iterator[Chunk | Damage]:
        """The chunks after the header, read as they are asked for.

        Without ``resync`` the first damaged chunk raises a CodecError naming the frame and field.
        With it, a :class:`Damage` is yielded instead and reading resumes at the next sync marker
        whose chunk is whole and passes its crc32. Resynchronising reads each byte a bounded number
        of times, however many false sync markers claim long payloads, wherever they stand.
        """
        pos = HEADER_SIZE
        spans: SpanCrc | None = None  # made at the first damage
        while pos < self.size:
            parsed = self._chunk(pos, spans)
            if isinstance(parsed, Chunk):
                yield parsed
                pos += parsed.size
                continue
            if not resync:
                raise CodecError(f"{self.source}: at byte {pos}: {parsed}")
            spans = spans or SpanCrc(self.read, pos)
            resume = self._next_chunk(pos + 1, spans)
            yield Damage(pos, resume - pos, parsed)
            pos = resume

    def _head(self, head: bytes, pos: int) -> tuple[int, int, int, int, int] | str:
        """Index, type, payload length, check and crc32 of the chunk head ``head`` read at ``pos``
        if it passes every check short of the crc32 (the payload is whole), or the reason it does not."""
        if len(head) < CHUNK_HEAD_SIZE:
            return f"truncated chunk head ({len(head)} bytes left)"
        sync, index, frame_type, length, check = _CHUNK.unpack_from(head)
        (crc,) = struct.unpack_from("<I", head, _CHUNK.size)
        if sync != SYNC:
            return f"no chunk sync marker (found {sync!r})"
        if problem := chunk_fields_problem(index, frame_type, check, length):
            return problem
        if pos + CHUNK_HEAD_SIZE + length > self.size:
            return f"frame {index}: truncated payload ({self.size - pos - CHUNK_HEAD_SIZE} of {length} bytes)"
        return index, frame_type, length, check, crc

    def _chunk(self, pos: int, spans: SpanCrc | None = None) -> Chunk | str:
        """The chunk at ``pos``, or the reason there is no valid chunk there; its payload is read
        only once its head has bounded it and, once resynchronising (``spans``), its crc32 holds:
        a false head after each good chunk would otherwise have its claimed payload read every time."""
        raw = self.read(pos, CHUNK_HEAD_SIZE)
        head = self._head(raw, pos)
        if isinstance(head, str):
            return head
        index, frame_type, length, check, crc = head
        if spans is not None:
            spans.forget(pos)
            start = pos + CHUNK_HEAD_SIZE
            if spans.crc32(start, start + length, zlib.crc32(raw[: _CHUNK.size])) != crc:
                return f"frame {index}: crc32 mismatch"
        chunk = Chunk(index, frame_type, check, self.read(pos + CHUNK_HEAD_SIZE, length))
        if chunk.crc32 != crc:
            return f"frame {index}: crc32 mismatch"
        return chunk

    def _next_chunk(self, pos: int, spans: SpanCrc) -> int:
        """Where the first valid chunk at or after ``pos`` starts (the end of the stream if none does),
        looked for FIRST_SCAN bytes, then twice as many at each look up to SCAN: the cheap checks of
        the head first, then the crc32 from ``spans`` without reading the payload."""
        step = FIRST_SCAN  # growing to SCAN, so that a chunk just ahead costs a short read
        while pos < self.size:
            spans.forget(pos)
            block = self.read(pos, step + CHUNK_HEAD_SIZE - 1)  # the head of a marker in the last byte too
            hit = block.find(SYNC)
            while 0 <= hit < step:
                head = block[hit : hit + CHUNK_HEAD_SIZE]
                fields = self._head(head, pos + hit)
                if not isinstance(fields, str):
                    _, _, length, _, crc = fields
                    start = pos + hit + CHUNK_HEAD_SIZE
                    if spans.crc32(start, start + length, zlib.crc32(head[: _CHUNK.size])) == crc:
                        return pos + hit
                hit = block.find(SYNC, hit + 1)
            pos += step
            step = min(2 * step, SCAN)
        return self.size


def read_chunks(stream: bytes | BinaryIO, source: str, resync: bool = False) -> Iterator[Chunk | Damage]:
    """Yield the chunks after the header of ``stream`` (its bytes or a seekable binary file), as
    :meth:`StreamReader.chunks` reads them."""
    return StreamReader(stream, source).chunks(resync)
