"""``codec decode``: an ``.aec`` stream back to frames with the bundle's ONNX decoder.

The whole decode path is onnxruntime, numpy, constriction and PyAV: torch is never imported.

Nothing a stream claims is acted on before it is bounded: its frame size by the bundle's video
(:meth:`~codec.io.bundle.Bundle.check_frame_size`), each payload by what its latent needs at the
least. With ``conceal``, a frame whose chunk was lost, and every P- or M-frame after it until the next
I-frame, is replaced by the last good frame (mid-grey before the first one), and the output stays
in proportion to the input:

- a gap of k missing frames must lie behind at least k * MIN_CHUNK_SIZE damaged bytes, as much as
  k chunks take at the least; a chunk whose index jumps further is an error, not k repeats;
- nothing is concealed beyond the header's frame count or after the last chunk: a stream that ends
  early ends there;
- a stream whose damaged bytes outnumber its good ones, or of which no frame decodes, is an error.

Every decoded frame's :func:`~codec.coding.common.bitstream.frame_check` is compared with its chunk's: a
frame that differs from the encoder's reconstruction (the networks computed differently here) is an
error, or with ``conceal`` is treated like damage from that frame until the next I-frame, since a
P- or M-frame predicted from a frame that drifted would drift too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from codec.coding import kernels
from codec.coding.common.bitstream import (
    HEADER_SIZE,
    I_FRAME,
    M_FRAME,
    MIN_CHUNK_SIZE,
    Chunk,
    Damage,
    Header,
    StreamReader,
    frame_check,
    open_stream_file,
)
from codec.coding.common.entropy_coding import CodingTables
from codec.coding.common.inter_frame import parse_inter, predict_inter
from codec.coding.common.intra_refinement import Refinement, split_intra
from codec.coding.common.latent_codec import LatentUnpacker
from codec.coding.common.runtime import Networks, latent_shape
from codec.coding.decoder.pipeline import ahead, behind
from codec.errors import CodecError, naming
from codec.io.bundle import Bundle
from codec.io.files import check_output, replacing_output
from codec.io.video import VideoWriter

LOOKAHEAD = 8  # chunks parsed (and I-frames synthesised) ahead of the frame loop
WRITE_BEHIND = 4  # frames queued for the output's conversion and writing


@dataclass
class DecodeStats:
    """What a decode produced; ``concealed`` counts frames repeated in place of damaged ones."""

    header: Header
    bytes: int
    frames: int = 0
    concealed: int = 0
    damage: list[str] = field(default_factory=list)
    seconds: float = 0.0
    provider: str = ""

    def to_dict(self) -> dict[str, object]:
        h = self.header
        bits = self.bytes * 8
        return {
            "frames": self.frames,
            "size": f"{h.width}x{h.height}",
            "fps": float(h.fps),
            "quality": h.quality,
            "gop": h.gop,
            "bytes": self.bytes,
            "bpp": bits / max(1, self.frames * h.width * h.height),
            "concealed": self.concealed,
            "damage": self.damage,
            "decode_fps": self.frames / self.seconds if self.seconds else 0.0,
            "provider": self.provider,
        }


@dataclass(frozen=True)
class LevelChange:
    """Among the chunks a player decodes: the chunks after it are coded at quality level ``quality``
    (it comes just before an I-frame, where a player that follows its network switches level)."""

    quality: int


def open_stream(data: bytes, bundle: Bundle, source: str) -> Header:
    """Parse the header and check that the stream was made by this bundle, for frames it can decode."""
    header = Header.unpack(data, source)
    if header.bundle_sha256 != bundle.decoder_sha256:
        raise CodecError(
            f"{source}: made by bundle {header.bundle_sha256[:12]}..., not by {bundle.path} "
            f"({bundle.decoder_sha256[:12]}...)"
        )
    bundle.check_frame_size(header.width, header.height, source)
    return header


def decode_frames(
    items: Iterable[Chunk | Damage | LevelChange],
    bundle: Bundle,
    source: str,
    stats: DecodeStats,
    *,
    conceal: bool = False,
    redo: Callable[[int], None] | None = None,
) -> Iterator[np.ndarray]:
    """Decode the chunks of the stream whose header is ``stats.header`` (read from a file by
    :func:`~codec.coding.common.bitstream.read_chunks`, or received over the network) into (H,W,3) uint8 frames.

    Without ``conceal`` any damage, and any frame whose reconstruction differs from the encoder's, is
    a CodecError naming the frame or field. With it, both are concealed within the limits the module
    describes, and noted in ``stats.damage``. With ``redo``, a frame that differs is asked for again
    instead: ``redo(index)`` makes ``items`` send that frame anew, as an I-frame, next (or raises to
    give up), and nothing is output for it until then. A :class:`LevelChange` among the items sets
    the level the latent frames after it are decoded at (the header's until then).
    """
    header = stats.header
    bundle.check_frame_size(header.width, header.height, source)  # the header may come from a peer
    kernels.warm()
    shape = latent_shape(bundle, header.width, header.height)
    coding = bundle.meta.coding
    with naming(source):
        tables = CodingTables.from_bundle(bundle)

        def unpacker_at(quality: int) -> LatentUnpacker:
            return LatentUnpacker(tables, coding.latent_level(quality), shape)

        unpacker = unpacker_at(header.quality)
    nets = Networks(bundle, header.width, header.height, need_encoder=False)
    stats.provider = nets.provider
    step = unpacker.level.step
    last = np.full((header.height, header.width, 3), 128, np.uint8)
    reference: np.ndarray | None = None  # the last frame decoded since damage, which an M-frame moves
    expected = 0
    lost = damaged = 0  # damaged bytes since the last good chunk, and in all
    started = time.perf_counter()

    def forget() -> None:
        nonlocal reference
        unpacker.reset()
        reference = None

    def fill(upto: int, reason: str) -> Iterator[np.ndarray]:
        nonlocal expected
        if not conceal:
            raise CodecError(f"{source}: frame {expected}: {reason}")
        stats.damage.append(f"frame {expected}: {reason}, concealed")
        forget()
        while expected < upto:
            stats.concealed += 1
            expected += 1
            yield last

    prepare = _Prepare(unpacker_at(header.quality), unpacker_at, nets, header, source)
    for item, outcome in ahead(items, prepare, 0 if redo else LOOKAHEAD):
        if isinstance(item, LevelChange):
            with naming(source):
                unpacker = unpacker_at(item.quality)
            step = unpacker.level.step
            continue
        if isinstance(item, Damage):
            stats.damage.append(f"byte {item.offset}: {item.reason}")
            forget()
            lost += item.length
            damaged += item.length
            if 2 * damaged > stats.bytes:
                raise CodecError(f"{source}: {damaged} of its {stats.bytes} bytes are damaged; it is mostly garbage")
            continue
        chunk: Chunk = item
        if chunk.index >= header.frames or chunk.index < expected:
            if not conceal:
                raise CodecError(
                    f"{source}: frame {chunk.index} out of order or beyond the header's {header.frames} frames"
                )
            stats.damage.append(f"frame {chunk.index}: out of order, skipped")
            continue
        missing = chunk.index - expected
        if missing:
            if conceal and lost < missing * MIN_CHUNK_SIZE:
                raise CodecError(
                    f"{source}: frame {chunk.index}: {missing} frames missing before it, but only {lost} "
                    f"damaged bytes, too few to have held them"
                )
            yield from fill(chunk.index, "missing from the stream")
        lost = 0
        if chunk.frame_type == M_FRAME:
            if reference is None:
                yield from fill(chunk.index + 1, "M-frame without its reference")
                continue
            frame = predict_inter(outcome.get(), reference)
            unpacker.reset()  # a latent P-frame cannot follow an M-frame
        else:
            if unpacker.previous is None and chunk.frame_type != I_FRAME:
                yield from fill(chunk.index + 1, "P-frame without its reference")
                continue
            if chunk.frame_type == I_FRAME:
                q, frame = outcome.get()
                unpacker.follow_intra(q)
            else:
                with naming(source):
                    frame = nets.reconstruct(unpacker.unpack(chunk), step)
        if frame_check(frame) != chunk.check:
            if redo is not None:
                redo(chunk.index)
                forget()
                continue
            if not conceal:
                raise CodecError(
                    f"{source}: reconstruction differs from the encoder's from frame {chunk.index}: "
                    "the decoder's networks compute differently here than where it was encoded"
                )
            yield from fill(chunk.index + 1, "reconstruction differs from the encoder's")
            continue
        last = reference = frame
        expected += 1
        stats.frames += 1
        yield last
    if expected < header.frames:
        reason = f"stream ends early: the header declares {header.frames} frames"
        if not conceal:
            raise CodecError(f"{source}: frame {expected}: {reason}")
        stats.damage.append(f"frame {expected}: {reason}; nothing after it is invented")
    if not stats.frames:
        raise CodecError(f"{source}: no frame could be decoded, so none can stand in for the damaged ones")
    stats.frames += stats.concealed
    stats.seconds = time.perf_counter() - started


class _Prepare:
    """What the decoder works out ahead of its frame loop, one item at a time and in order, from
    nothing but the item: an I-frame's latent and refined pixels (its network run included), an
    M-frame's fields (:func:`parse_inter`); nothing for the rest. It follows the level changes
    among the items with a latent unpacker of its own."""

    def __init__(
        self,
        unpacker: LatentUnpacker,
        unpacker_at: Callable[[int], LatentUnpacker],
        nets: Networks,
        header: Header,
        source: str,
    ) -> None:
        self.unpacker, self.unpacker_at = unpacker, unpacker_at
        self.nets, self.header, self.source = nets, header, source

    def __call__(self, item: Chunk | Damage | LevelChange) -> object:
        h, w, where = self.header.height, self.header.width, f"frame {getattr(item, 'index', '?')}"
        if isinstance(item, LevelChange):  # a level beyond the bundle's is refused by the loop itself
            self.unpacker = self.unpacker_at(item.quality)
        elif isinstance(item, Chunk) and item.frame_type == M_FRAME:
            with naming(self.source):
                return parse_inter(item.payload, h, w, where)
        elif isinstance(item, Chunk) and item.frame_type == I_FRAME:
            with naming(self.source):
                q = self.unpacker.unpack_intra(item)
                frame = self.nets.reconstruct(q, self.unpacker.level.step)
                refinement = Refinement.decode(split_intra(item.payload, where)[1], h, w, where)
                return q, refinement.apply(frame)
        return None


def decode_stream(
    stream: bytes | BinaryIO, bundle: Bundle, source: str, *, conceal: bool = False
) -> tuple[Iterator[np.ndarray], DecodeStats]:
    """Decode the whole ``.aec`` stream ``stream``, its bytes or a seekable binary file read a chunk at
    a time (kept open until the iterator is exhausted): its header is checked here, its frames are
    decoded as the returned iterator is consumed, and the stats are complete once it is exhausted.
    With ``conceal``, reading resynchronises after damage and the damage is concealed (see the module)."""
    reader = StreamReader(stream, source)
    stats = DecodeStats(header=open_stream(reader.read(0, HEADER_SIZE), bundle, source), bytes=reader.size)
    return decode_frames(reader.chunks(resync=conceal), bundle, source, stats, conceal=conceal), stats


def decode_file(stream: Path, bundle: Bundle, out: Path, *, force: bool = False, conceal: bool = False) -> DecodeStats:
    """Decode ``stream`` into the video file or PNG folder ``out``, replacing it only with ``force``;
    the stream is read a chunk at a time, so no more than one chunk of it is held."""
    check_output(out, force)
    with open_stream_file(stream) as file:
        frames, stats = decode_stream(file, bundle, str(stream), conceal=conceal)
        header = stats.header
        with (
            replacing_output(out, force) as tmp,
            VideoWriter(tmp, header.width, header.height, header.fps, bundle.meta.source.colour) as writer,
            behind(writer.write, WRITE_BEHIND) as put,
        ):
            for frame in frames:
                put(frame)
    return stats
