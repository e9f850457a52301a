"""Server-side streaming, independent of gRPC: frames of a catalogued video encoded live."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from aecodec.server.catalog import Entry
from codec.coding.encode import CodedFrame, StreamEncoder
from codec.coding.runtime import Networks
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


def stream_frames(
    entry: Entry,
    start: int,
    end: int,
    quality: int | None,
    nets: Networks,
    active: Callable[[], bool] = lambda: True,
    pace: bool = False,
) -> Iterator[CodedFrame]:
    """Encode frames [start, end) of ``entry``; the first is an I-frame. Stops as soon as
    ``active()`` turns false, so a cancelled client costs at most the frame in progress. With
    ``pace``, no frame leaves before its presentation time (counted from the stream's start), as
    for a live broadcast; otherwise frames go as fast as they are encoded."""
    encoder = StreamEncoder(entry.bundle, width=entry.info.width, height=entry.info.height, quality=quality, nets=nets)
    started = time.monotonic()
    for index, frame in enumerate(entry.frames_from(start, end, active), start):
        if not active():
            return
        coded = encoder.encode(frame, index)
        if pace:
            time.sleep(max(0.0, started + (index - start) / entry.info.fps - time.monotonic()))
        yield coded
