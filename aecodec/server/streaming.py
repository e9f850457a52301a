"""Server-side streaming, independent of gRPC: what a request for frames of a catalogued video is sent."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from aecodec.server.catalog import Entry
from aecodec.server.stored import Stream
from codec.coding.common.bitstream import I_FRAME, Chunk
from codec.coding.common.runtime import Networks
from codec.coding.encoder.encode import StreamEncoder
from codec.errors import CodecError


def check_quality(entry: Entry, quality: int | None) -> None:
    """Refuse a quality level the entry's model does not have (None: its default)."""
    if quality is not None and not 0 <= quality < entry.quality_levels:
        raise CodecError(f"{entry.name}: quality {quality} is not one of its levels 0..{entry.quality_levels - 1}")


def check_range(entry: Entry, start: int, end: int, quality: int | None) -> tuple[int, int]:
    """Validate a request for frames [start, end) (end 0: to the end); returns (start, end)."""
    frames = entry.frames
    end = end or frames
    if not 0 <= start < end <= frames:
        raise CodecError(f"{entry.name}: frames [{start}, {end}) are not within its {frames} frames")
    check_quality(entry, quality)
    return start, end


def served_chunks(
    entry: Entry,
    stream: Stream,
    start: int,
    end: int,
    nets: Callable[[], Networks],
    from_keyframe: bool,
    active: Callable[[], bool] = lambda: True,
) -> Iterator[Chunk]:
    """The chunks a StreamVideo request for frames ``[start, end)`` is sent, all read from the stored
    ``stream`` but for one case. With ``from_keyframe`` they start at the last I-frame at or before
    ``start``, for the client to decode up to ``start``. Without it (a client from before stored
    streams) the first is frame ``start`` as an I-frame: where ``start`` is no I-frame of the stored
    stream, the frames up to its next one are encoded afresh, as every request was served before,
    and the rest read from storage (an I-frame depends on nothing before it, so the two join);
    ``nets()`` gives the networks to encode them with."""
    first = stream.keyframe(start, active) if from_keyframe else start
    if first is None:
        return
    head = stream.chunk(first, active)
    if head is None or head.frame_type == I_FRAME:
        yield from stream.read(first, end, active)
        return
    encoder = StreamEncoder(
        entry.bundle, width=entry.info.width, height=entry.info.height, quality=stream.quality, nets=nets()
    )
    for index, frame in enumerate(entry.frames_from(start, end, active), start):
        stored = stream.chunk(index, active)
        if stored is None:
            return
        if index > start and stored.frame_type == I_FRAME:
            yield from stream.read(index, end, active)
            return
        yield encoder.encode(frame, index).chunk


def paced(chunks: Iterator[Chunk], fps: float, active: Callable[[], bool] = lambda: True) -> Iterator[Chunk]:
    """``chunks`` no faster than real time, counted from the first, as for a live broadcast."""
    started, first = time.monotonic(), None
    for chunk in chunks:
        first = chunk.index if first is None else first
        time.sleep(max(0.0, started + (chunk.index - first) / fps - time.monotonic()))
        if not active():
            return
        yield chunk
