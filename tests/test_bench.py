"""`codec bench` on a tiny clip with a tiny model: the JSON schema, the plot, and BD-rate sanity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from clips import synthetic_frames, write_clip
from conftest import run_cli

from codec.baselines import BASELINES, encode_point
from codec.bench import bd_figures

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
    assert "BD-rate" in out and "x265" in out
    return json.loads((root / "r.json").read_text()), root / "r.png"


def test_json_holds_every_field_of_the_schema(report) -> None:
    data, _ = report
    assert data["schema"] == "aecodec-bench/1"
    assert {"name", "width", "height", "frames", "fps", "source_bytes", "frames_seen"} <= data["clip"].keys()
    assert data["clip"]["frames"] == 12 and data["clip"]["frames_seen"] == 9
    assert data["speed"].keys() >= SPEED_KEYS and data["speed"]["torch_decode_fps"] > 0
    assert {"path", "bundle_sha256", "trained_here_minutes", "default_quality", "decoder_bytes_xz"} <= data[
        "model"
    ].keys()
    codecs = {(p["codec"], p["variant"]) for p in data["points"]}
    baselines = {(b, v) for b in BASELINES for v in ("default", "low-delay")}
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
    assert len(data["bd"]) == 3 * 2 * 2
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


def test_baseline_bytes_are_real_packets() -> None:
    frames = list(synthetic_frames(6, 64, 48))
    point = encode_point(frames, 25.0, BASELINES["x264"], 30, low_delay=True)
    assert point.bytes == sum(point.frame_bytes) > 0 and len(point.frames) == 6
    assert point.frames[0].shape == (48, 64, 3)
    assert np.abs(point.frames[2].astype(int) - frames[2]).mean() < 20
