"""One rate-distortion point, whatever codec made it, and its row in the bench report: real bytes,
RGB/YUV PSNR and MS-SSIM (:mod:`codec.measure.metrics`), speed, and, with a holdout, the seen and
unseen frames apart."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from codec.io.video import Clip
from codec.measure.metrics import FrameMetrics

MS_SSIM_FRAMES = 24  # MS-SSIM is measured on at most this many evenly spaced frames per point


@dataclass
class Point:
    """One rate-distortion point as measured: its decoded RGB24 frames and per-frame bytes."""

    codec: str
    variant: str
    setting: str
    frame_bytes: list[int]
    frames: list[np.ndarray]
    encode_s: float
    decode_s: float
    extra_bytes: int = 0  # what a client downloads once besides the stream (aecodec: the decoder)


def point_row(point: Point, clip: Clip, seen: int, ms_ssim: bool) -> dict[str, Any]:
    """Every metric of ``point`` against ``clip``, for the whole clip and, where ``seen`` is less
    than its length, for the seen and unseen frames apart (a report ``points`` row)."""
    pixels = clip.width * clip.height
    ms_every = max(1, math.ceil(len(clip) / MS_SSIM_FRAMES))

    def part(lo: int, hi: int) -> dict[str, Any]:
        metrics = FrameMetrics(clip.info.colour.matrix)
        for i in range(lo, hi):
            metrics.add(point.frames[i], clip.frames[i], ms_ssim and i % ms_every == 0)
        size = sum(point.frame_bytes[lo:hi])
        return {"frames": hi - lo, "bytes": size, "bpp": size * 8 / ((hi - lo) * pixels), **metrics.summary()}

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
        "seen": part(0, seen) if seen < n else None,
        "unseen": part(seen, n) if seen < n else None,
    }
