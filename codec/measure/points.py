"""One rate-distortion point, whatever codec made it, and its row in the bench report: real bytes,
RGB/YUV PSNR and MS-SSIM (:mod:`codec.measure.metrics`, measured frame by frame as the point's
output is decoded, against the source frames read from the frame cache), speed, and, with a
holdout, the seen and unseen frames apart."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from codec.errors import CodecError
from codec.io.frame_store import FrameStore
from codec.measure.metrics import FrameMetrics

MS_SSIM_FRAMES = 24  # MS-SSIM is measured on at most this many evenly spaced frames per point


@dataclass
class Point:
    """One rate-distortion point as measured: per-frame bytes and per-frame metrics."""

    codec: str
    variant: str
    setting: str
    frame_bytes: list[int]
    metrics: FrameMetrics
    encode_s: float
    decode_s: float
    extra_bytes: int = 0  # what a client downloads once besides the stream (aecodec: the decoder)
    encoder_options: str | None = None  # the settings a baseline encoder wrote into its stream


class Timed:
    """An iterator that adds up the time spent producing its items (a decoder's time, not the
    time its consumer spends measuring them)."""

    def __init__(self, items: Iterable[Any]) -> None:
        self.items, self.seconds = iter(items), 0.0

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        started = time.perf_counter()
        try:
            return next(self.items)
        finally:
            self.seconds += time.perf_counter() - started


def measure_frames(
    decoded: Iterable[np.ndarray], source: FrameStore | Sequence[np.ndarray], matrix: str, ms_ssim: bool, what: str
) -> FrameMetrics:
    """Each of the ``decoded`` frames against ``source``'s frame of the same index, as they come;
    MS-SSIM on MS_SSIM_FRAMES of them. A count that is not the source's is an error naming ``what``."""
    metrics = FrameMetrics(matrix)
    n = len(source)
    ms_every = max(1, math.ceil(n / MS_SSIM_FRAMES))
    for i, frame in enumerate(decoded):
        if i >= n:
            raise CodecError(f"{what}: decoded more frames than the source's {n}")
        metrics.add(frame, source[i], ms_ssim and i % ms_every == 0)
    if len(metrics) != n:
        raise CodecError(f"{what}: decoded {len(metrics)} of {n} frames")
    return metrics


def point_row(point: Point, clip: FrameStore, seen: int) -> dict[str, Any]:
    """Every metric of ``point`` for the whole clip and, where ``seen`` is less than its length, for
    the seen and unseen frames apart (a report ``points`` row)."""
    pixels = clip.width * clip.height

    def part(lo: int, hi: int) -> dict[str, Any]:
        size = sum(point.frame_bytes[lo:hi])
        return {
            "frames": hi - lo,
            "bytes": size,
            "bpp": size * 8 / ((hi - lo) * pixels),
            **point.metrics.summary(lo, hi),
        }

    n = len(clip)
    whole = part(0, n)
    return {
        "codec": point.codec,
        "variant": point.variant,
        "setting": point.setting,
        **whole,
        "total_bpp": (whole["bytes"] + point.extra_bytes) * 8 / (n * pixels) if point.extra_bytes else None,
        "ratio_vs_rgb24": n * pixels * 3 / whole["bytes"],
        "encode_fps": n / point.encode_s,
        "decode_fps": n / point.decode_s,
        "encoder_options": point.encoder_options,
        "seen": part(0, seen) if seen < n else None,
        "unseen": part(seen, n) if seen < n else None,
    }
