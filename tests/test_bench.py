"""`codec bench` on a tiny clip with a tiny model: the JSON schema, the plot, and BD-rate sanity."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from clips import synthetic_frames, write_clip
from conftest import run_cli

from codec.baselines import BASELINES, VARIANTS, encode_point, to_yuv420p
from codec.bench import bd_figures
from codec.video import read_clip, read_source_yuv420p

POINT_KEYS = {
    "codec",
    "variant",
    "setting",
    "frames",
    "bytes",
    "bpp",
    "total_bpp",
    "ratio_vs_rgb24",
    "psnr_rgb",
    "psnr_y",
    "psnr_u",
    "psnr_v",
    "psnr_yuv",
    "ms_ssim_rgb",
    "encode_fps",
    "decode_fps",
    "seen",
    "unseen",
}
SPEED_KEYS = {
    "train_steps_per_s",
    "train_pixels_per_s",
    "train_device",
    "onnxruntime_encode_fps",
    "onnxruntime_decode_fps",
    "torch_encode_fps",
    "torch_decode_fps",
    "encoder_macs_per_pixel",
    "decoder_macs_per_pixel",
    "peak_memory_mib",
    "onnxruntime_provider",
}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    root = tmp_path_factory.mktemp("bench")
    clip = write_clip(root / "tiny.mkv", synthetic_frames(12, 112, 112), codec="ffv1", pix_fmt="yuv444p")
    code, out, err = run_cli(
        "bench",
        clip,
        "--train-minutes",
        "0.05",
        "--holdout",
        "0.25",
        "--json",
        root / "r.json",
        "--plot",
        root / "r.png",
    )
    assert code == 0, err
    assert "BD-rate" in out and "x265 psnr low-delay" in out
    return json.loads((root / "r.json").read_text()), root / "r.png"


def test_json_holds_every_field_of_the_schema(report) -> None:
    data, _ = report
    assert data["schema"] == "aecodec-bench/1"
    assert {"name", "width", "height", "frames", "fps", "source_bytes", "frames_seen"} <= data["clip"].keys()
    assert data["clip"]["pixel_format"] == "yuv444p" and data["clip"]["baselines_fed"] == "rgb24 converted to yuv420p"
    assert data["clip"]["frames"] == 12 and data["clip"]["frames_seen"] == 9
    assert data["speed"].keys() >= SPEED_KEYS and data["speed"]["torch_decode_fps"] > 0
    assert {"path", "bundle_sha256", "trained_here_minutes", "default_quality", "decoder_bytes_xz"} <= data[
        "model"
    ].keys()
    codecs = {(p["codec"], p["variant"]) for p in data["points"]}
    baselines = {(b, v.name) for b in BASELINES for v in VARIANTS}
    assert codecs == {("aecodec", "low-delay"), ("aecodec", "auto-keyframes")} | baselines
    for point in data["points"]:
        assert point.keys() >= POINT_KEYS, point["codec"]
        assert point["bytes"] > 0 and point["bpp"] > 0 and 5 < point["psnr_rgb"] < 100
        assert 0 < point["ms_ssim_rgb"] <= 1
        assert point["seen"]["frames"] == 9 and point["unseen"]["frames"] == 3
        assert point["seen"]["bytes"] + point["unseen"]["bytes"] == point["bytes"]
        assert (point["total_bpp"] is not None) == (point["codec"] == "aecodec")
    aecodec = [p for p in data["points"] if p["codec"] == "aecodec"]
    assert all(p["total_bpp"] > p["bpp"] for p in aecodec)
    assert len(data["bd"]) == 3 * 4 * 2
    for b in data["bd"]:
        assert {"anchor", "aecodec_rate", "bd_rate_pct", "bd_psnr_db", "psnr_overlap_db"} <= b.keys()
        assert b["bd_rate_pct"] is not None or "note_rate" in b


def test_plot_is_a_png(report) -> None:
    import matplotlib.image

    _, png = report
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width = matplotlib.image.imread(png).shape[:2]
    assert width > 400 and height > 300


def test_bd_rate_of_a_curve_against_itself_is_zero() -> None:
    rows = [{"bpp": b, "psnr_rgb": p} for b, p in [(0.02, 27.0), (0.04, 29.5), (0.08, 31.0), (0.16, 33.2)]]
    figures = bd_figures(rows, rows, "bpp")
    assert abs(figures["bd_rate_pct"]) < 1e-6 and abs(figures["bd_psnr_db"]) < 1e-6
    shifted = [{"bpp": r["bpp"] * 0.5, "psnr_rgb": r["psnr_rgb"]} for r in rows]
    assert bd_figures(shifted, rows, "bpp")["bd_rate_pct"] == pytest.approx(-50, abs=1e-6)
    apart = [{"bpp": r["bpp"], "psnr_rgb": r["psnr_rgb"] + 20} for r in rows]
    assert bd_figures(apart, rows, "bpp")["bd_rate_pct"] is None


@pytest.fixture(scope="module")
def yuv420p_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A losslessly coded yuv420p clip tagged BT.709 (whose RGB24 frames PyAV converts by that tag)."""
    path = tmp_path_factory.mktemp("yuv") / "src.mkv"
    return write_clip(path, synthetic_frames(6, 64, 48), options={"qp": "0", "x264-params": "colormatrix=bt709"})


def test_baselines_encode_a_yuv420p_sources_own_planes(yuv420p_source: Path) -> None:
    clip, own = read_clip(yuv420p_source), read_source_yuv420p(yuv420p_source)
    assert own is not None and len(own) == len(clip) and own[0].colorspace == 1  # BT.709
    assert all(f.pict_type == av.video.frame.PictureType.NONE for f in own)  # x264 would obey those
    converted = to_yuv420p(clip.frames)
    assert not np.array_equal(converted[2].to_ndarray(), own[2].to_ndarray())  # RGB cannot give the planes back
    lossless = [encode_point(fed, 25.0, BASELINES["x264"], 0, VARIANTS[0]) for fed in (own, converted)]
    # fed its own planes and tags, lossless x264 gives back the very frames; fed the RGB round trip, it cannot
    assert all(np.array_equal(d, s) for d, s in zip(lossless[0].frames, clip.frames, strict=True))
    assert not all(np.array_equal(d, s) for d, s in zip(lossless[1].frames, clip.frames, strict=True))


def test_a_source_that_is_not_yuv420p_is_converted(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "444.mkv", synthetic_frames(4, 64, 48), codec="ffv1", pix_fmt="yuv444p")
    assert read_source_yuv420p(path) is None
    point = encode_point(to_yuv420p(read_clip(path).frames), 25.0, BASELINES["x264"], 30, VARIANTS[1])
    assert point.bytes == sum(point.frame_bytes) > 0 and point.frames[0].shape == (48, 64, 3)


def _encoder_settings(codec: str, variant_name: str) -> str:
    """The settings x264 or x265 writes into its stream, when encoding with ``variant_name``'s options."""
    baseline, variant = BASELINES[codec], next(v for v in VARIANTS if v.name == variant_name)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="matroska") as out:
        stream = out.add_stream(baseline.encoder, rate=25, options=baseline.encoder_options(30, variant))
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for frame in to_yuv420p(list(synthetic_frames(4, 64, 48))):
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return re.search(rb"options: ([ -~]+)", buffer.getvalue()).group(1).decode()


def test_variant_options_reach_the_encoder() -> None:
    assert BASELINES["x265"].encoder_options(30, VARIANTS[3]) == {
        "crf": "30",
        "preset": "medium",
        "x265-params": "log-level=none:bframes=0",  # joined with the base's, not replacing it
        "tune": "psnr",
    }
    assert BASELINES["svtav1"].encoder_options(35, VARIANTS[3])["svtav1-params"] == "tune=1:pred-struct=1"
    settings = {
        (c, v): _encoder_settings(c, v).split() for c in ("x264", "x265") for v in ("default", "psnr low-delay")
    }
    assert {"psy=1", "bframes=3", "aq=1:1.00"} <= set(settings["x264", "default"])
    assert {"psy=0", "bframes=0", "aq=1:0.00"} <= set(settings["x264", "psnr low-delay"])
    assert {"psy-rd=2.00", "bframes=4", "aq-strength=1.00"} <= set(settings["x265", "default"])
    assert {"psy-rd=0.00", "bframes=0", "aq-strength=0.00"} <= set(settings["x265", "psnr low-delay"])
    frames = to_yuv420p(list(synthetic_frames(6, 64, 48)))
    default, psnr = (encode_point(frames, 25.0, BASELINES["x264"], 30, v) for v in (VARIANTS[0], VARIANTS[2]))
    assert default.frame_bytes != psnr.frame_bytes and psnr.variant == "psnr"


def test_svtav1_low_delay_psnr_variant_reaches_the_encoder() -> None:
    """SVT-AV1 logs its tune and prediction structure (at info level, read once per process)."""
    script = (
        "from clips import synthetic_frames\n"
        "from codec.baselines import BASELINES, VARIANTS, encode_point, to_yuv420p\n"
        "encode_point(to_yuv420p(list(synthetic_frames(4, 64, 48))), 25.0, BASELINES['svtav1'], 55, VARIANTS[3])\n"
    )
    env = {**os.environ, "SVT_LOG": "3", "PYTHONPATH": str(Path(__file__).parent)}
    log = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert re.search(r"preset / tune / pred struct\s*: 8 / PSNR / low delay", log.stdout + log.stderr)
