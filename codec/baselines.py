"""Standard codecs through PyAV (libx264, libx265, libsvtav1), on the same RGB frames as aecodec.

Each point encodes the frames as yuv420p at one CRF, counts the real packet bytes, and decodes
them back to RGB24 with PyAV. Presets: medium for x264 and x265, 8 for SVT-AV1. The low-delay
variant has no B-frames (x264/x265 ``bframes=0``, SVT-AV1 ``pred-struct=1``), like aecodec's
P-frames-only coding.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import av
import numpy as np

from codec.errors import CodecError
from codec.video import exact_rate


@dataclass(frozen=True)
class Baseline:
    """One standard codec: its FFmpeg encoder, options, CRF sweep and low-delay options."""

    name: str
    encoder: str
    options: tuple[tuple[str, str], ...]
    crfs: tuple[int, ...]
    low_delay: tuple[tuple[str, str], ...]


BASELINES = {
    "x264": Baseline("x264", "libx264", (("preset", "medium"),), (23, 30, 37, 44, 51), (("x264-params", "bframes=0"),)),
    "x265": Baseline(
        "x265",
        "libx265",
        (("preset", "medium"), ("x265-params", "log-level=none")),
        (23, 30, 37, 44, 51),
        (("x265-params", "log-level=none:bframes=0"),),
    ),
    "svtav1": Baseline(
        "svtav1", "libsvtav1", (("preset", "8"),), (35, 45, 55, 63), (("svtav1-params", "pred-struct=1"),)
    ),
}


@dataclass
class BaselinePoint:
    """One encode: real bytes, timings, and the frames as decoded back to RGB24."""

    codec: str
    variant: str
    crf: int
    bytes: int
    encode_s: float
    decode_s: float
    frames: list[np.ndarray]
    frame_bytes: list[int]  # packet bytes by presentation index


def parse_baselines(text: str) -> list[Baseline]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise CodecError(f"--baselines: unknown {', '.join(unknown)}; choose from {', '.join(BASELINES)}")
    return [BASELINES[n] for n in names]


def encode_point(frames: list[np.ndarray], fps: float, baseline: Baseline, crf: int, low_delay: bool) -> BaselinePoint:
    """Encode ``frames`` with ``baseline`` at ``crf``; decode them back."""
    height, width = frames[0].shape[:2]
    if width % 2 or height % 2:
        raise CodecError(f"baselines code yuv420p, which needs an even frame size, not {width}x{height}")
    options = {**dict(baseline.options), "crf": str(crf), **dict(baseline.low_delay if low_delay else ())}
    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its configuration at info level otherwise
    buffer = io.BytesIO()
    frame_bytes = [0] * len(frames)
    started = time.perf_counter()
    with av.open(buffer, "w", format="matroska") as out:
        stream = out.add_stream(baseline.encoder, rate=exact_rate(fps), options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for packets in _encode(stream, frames):
            for packet in packets:
                frame_bytes[min(max(int(packet.pts or 0), 0), len(frames) - 1)] += packet.size
                out.mux(packet)
    encode_s = time.perf_counter() - started
    buffer.seek(0)
    started = time.perf_counter()
    with av.open(buffer) as inp:
        decoded = [frame.to_ndarray(format="rgb24") for frame in inp.decode(video=0)]
    decode_s = time.perf_counter() - started
    if len(decoded) != len(frames):
        raise CodecError(f"{baseline.name} crf {crf}: decoded {len(decoded)} of {len(frames)} frames")
    variant = "low-delay" if low_delay else "default"
    return BaselinePoint(baseline.name, variant, crf, sum(frame_bytes), encode_s, decode_s, decoded, frame_bytes)


def _encode(stream: av.video.stream.VideoStream, frames: list[np.ndarray]) -> Iterator[list[av.Packet]]:
    for index, rgb in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        frame.pts = index
        yield stream.encode(frame)
    yield stream.encode()
