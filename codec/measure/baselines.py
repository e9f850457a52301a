"""Standard codecs through PyAV (libx264, libx265, libsvtav1), on the same source frames as aecodec.

Each point encodes yuv420p frames at one CRF, counts the real packet bytes, and decodes them back
to RGB24 with PyAV. The frames are the source's own decoded yuv420p frames where the source is
8-bit yuv420p (:func:`codec.io.video.iter_source_yuv420p`), else its RGB24 frames converted by
:func:`to_yuv420p`; either is decoded afresh for each point, so no point holds the clip, and the
output is measured frame by frame as it is decoded. Presets: medium for x264 and x265, 8 for
SVT-AV1. Four variants each (:data:`VARIANTS`): the encoder's default tuning or its PSNR tuning
(x264/x265 ``tune=psnr``: no psychovisual optimisation, no adaptive quantisation; SVT-AV1
``tune=1``), each with B-frames or without (low-delay: x264/x265 ``bframes=0``, SVT-AV1
``pred-struct=1``), like aecodec's P-frames-only coding.
"""

from __future__ import annotations

import io
import itertools
import os
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from codec.errors import CodecError
from codec.io.colour import Colour, frame_to_rgb, rgb_to_frame
from codec.io.frame_store import FrameStore
from codec.io.video import exact_rate
from codec.measure.points import Point, Timed, measure_frames

Options = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Variant:
    """One curve of a standard codec: PSNR tuning on or off, B-frames on or off."""

    name: str
    psnr: bool
    low_delay: bool


VARIANTS = (
    Variant("default", psnr=False, low_delay=False),
    Variant("low-delay", psnr=False, low_delay=True),
    Variant("psnr", psnr=True, low_delay=False),
    Variant("psnr low-delay", psnr=True, low_delay=True),
)


@dataclass(frozen=True)
class Baseline:
    """One standard codec: its FFmpeg encoder, base options, CRF sweep, and the options that make
    a variant PSNR-tuned or low-delay."""

    name: str
    encoder: str
    options: Options
    crfs: tuple[int, ...]
    psnr: Options
    low_delay: Options

    def encoder_options(self, crf: int, variant: Variant) -> dict[str, str]:
        """FFmpeg options of one point; ``*-params`` values of the parts are joined with ``:``, so a
        variant adds to the base's encoder parameters instead of replacing them."""
        parts = self.options + (self.psnr if variant.psnr else ()) + (self.low_delay if variant.low_delay else ())
        options = {"crf": str(crf)}
        for key, value in parts:
            joined = key.endswith("-params") and key in options
            options[key] = f"{options[key]}:{value}" if joined else value
        return options


BASELINES = {
    "x264": Baseline(
        "x264",
        "libx264",
        (("preset", "medium"),),
        (23, 30, 37, 44, 51),
        (("tune", "psnr"),),
        (("x264-params", "bframes=0"),),
    ),
    "x265": Baseline(
        "x265",
        "libx265",
        (("preset", "medium"), ("x265-params", "log-level=none")),
        (23, 30, 37, 44, 51),
        (("tune", "psnr"),),  # FFmpeg's option: x265-params ignores tune
        (("x265-params", "bframes=0"),),
    ),
    "svtav1": Baseline(
        "svtav1",
        "libsvtav1",
        (("preset", "8"),),
        (35, 45, 55, 63),
        (("svtav1-params", "tune=1"),),  # libsvtav1 4.1's default too; pinned against a change of default
        (("svtav1-params", "pred-struct=1"),),
    ),
}


def parse_baselines(text: str) -> list[Baseline]:
    """The baselines named in ``--baselines`` (comma-separated keys of :data:`BASELINES`)."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise CodecError(f"--baselines: unknown {', '.join(unknown)}; choose from {', '.join(BASELINES)}")
    return [BASELINES[n] for n in names]


def to_yuv420p(frames: Iterable[np.ndarray], colour: Colour) -> Iterator[av.VideoFrame]:
    """RGB24 frames as the yuv420p frames the baselines encode (with the source's matrix and range),
    for a source that is not yuv420p; converted as they are consumed."""
    return (rgb_to_frame(rgb, "yuv420p", colour) for rgb in frames)


def add_encoder(
    out: av.container.OutputContainer,
    baseline: Baseline,
    crf: int,
    variant: Variant,
    rate: Fraction | int,
    width: int,
    height: int,
) -> av.VideoStream:
    """``baseline``'s yuv420p stream in ``out`` at ``crf`` in ``variant``, threaded by frames as the
    encoders' own command lines run them: FFmpeg's default, slice threads, made libx264 cut every
    frame into a slice per thread (two on 2 CPUs), which cost it 3-17% more bits on the suite's clips."""
    stream = out.add_stream(baseline.encoder, rate=rate, options=baseline.encoder_options(crf, variant))
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.codec_context.thread_type = "FRAME"
    return stream


def encoder_record(stream: bytes) -> str | None:
    """The settings x264 or x265 wrote into ``stream`` (their SEI's ``options: ...``), or None."""
    found = re.search(rb"options: ([ -~]+)", stream)
    return found.group(1).decode() if found else None


def encode_point(
    frames: Iterable[av.VideoFrame],
    fps: float,
    baseline: Baseline,
    crf: int,
    variant: Variant,
    colour: Colour,
    source: FrameStore | Sequence[np.ndarray],
    ms_ssim: bool = False,
) -> Point:
    """Encode the yuv420p ``frames`` (in the source's ``colour``, as many as ``source`` has) with
    ``baseline`` at ``crf`` in ``variant``; decode them back to RGB24 with the same colour, as every
    codec is compared, and measure each against ``source``'s frame as it is decoded. The stream is
    tagged with the colour, so its output means what the source's frames mean; its packet bytes are
    counted by presentation index. Only the coded stream is held in memory, never the frames."""
    what = f"{baseline.name} crf {crf}"
    count = len(source)
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise CodecError(f"{what}: no frames to encode")
    width, height = first.width, first.height
    if width % 2 or height % 2:
        raise CodecError(f"baselines code yuv420p, which needs an even frame size, not {width}x{height}")
    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its configuration at info level otherwise
    buffer = io.BytesIO()
    frame_bytes = [0] * count
    encode_s = 0.0
    with av.open(buffer, "w", format="matroska") as out:
        stream = add_encoder(out, baseline, crf, variant, exact_rate(fps), width, height)
        colour.tag(stream.codec_context)
        for index, frame in enumerate(itertools.chain([first], frames, [None])):  # None flushes the encoder
            if frame is not None:
                frame.pts = index
            started = time.perf_counter()
            for packet in stream.encode(frame):
                frame_bytes[min(max(int(packet.pts or 0), 0), count - 1)] += packet.size
                out.mux(packet)
            encode_s += time.perf_counter() - started
    buffer.seek(0)
    with av.open(buffer) as inp:
        decoded = Timed(frame_to_rgb(frame, colour) for frame in inp.decode(video=0))
        metrics = measure_frames(decoded, source, colour.matrix, ms_ssim, what)
    setting, record = f"crf {crf}", encoder_record(buffer.getvalue())
    return Point(
        baseline.name, variant.name, setting, frame_bytes, metrics, encode_s, decoded.seconds, encoder_options=record
    )
