"""`codec bench` on a tiny clip with a tiny model: the JSON schema, the plot, BD figures and their
overlaps, the frames the baselines are fed, their variants' options, and the strongest-variant headline."""

from __future__ import annotations

import inspect
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import av
import bjontegaard
import numpy as np
import pytest
from clips import synthetic_frames, write_clip
from conftest import run_cli

from codec.errors import CodecError
from codec.io.colour import Colour
from codec.io.video import codes_as_yuv420p, iter_source_yuv420p, probe, read_clip
from codec.measure.baselines import BASELINES, VARIANTS, add_encoder, encode_point, encoder_record, to_yuv420p
from codec.measure.bd import MIN_OVERLAP, bd_figures, compare, strongest_variant
from codec.measure.tables import format_table, summary_markdown

POINT_KEYS = {
    "codec",
    "encoder_options",
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
    assert "BD-rate" in out and "x265 psnr low-delay" in out and "(strongest)" in out
    return json.loads((root / "r.json").read_text()), root / "r.png"


def test_json_holds_every_field_of_the_schema(report) -> None:
    data, _ = report
    assert data["schema"] == "aecodec-bench/2"
    assert {"name", "width", "height", "frames", "fps", "source_bytes", "frames_seen"} <= data["clip"].keys()
    assert data["clip"]["pixel_format"] == "yuv444p" and data["clip"]["baselines_fed"] == "rgb24 converted to yuv420p"
    assert data["clip"]["frames"] == 12 and data["clip"]["frames_seen"] == 9
    assert data["speed"].keys() >= SPEED_KEYS and data["speed"]["torch_decode_fps"] > 0
    assert {"path", "bundle_sha256", "trained_here_minutes", "default_quality", "decoder_bytes"} <= data["model"].keys()
    assert data["model"]["path"] is None  # trained by the run in a folder it removes: no path to name
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
        assert (point["encoder_options"] is not None) == (point["codec"] in ("x264", "x265"))
        if point["codec"] == "x264":
            assert "sliced_threads=0" in point["encoder_options"].split()  # one slice a frame, recorded
    aecodec = [p for p in data["points"] if p["codec"] == "aecodec"]
    assert all(p["total_bpp"] > p["bpp"] for p in aecodec)
    assert len(data["bd"]) == 3 * 4 * 2
    for b in data["bd"]:
        assert {"anchor", "codec", "variant", "aecodec_rate", "bd_rate_overlap", "bd_psnr_overlap"} <= b.keys()
        for figure, note in (
            ("bd_rate_pct", "note_rate"),
            ("bd_psnr_db", "note_psnr"),
            ("bd_rate_own_range_pct", "note_own_range"),
        ):
            assert (b[figure] is None) == (b[note] is not None), (b["anchor"], figure)
    for strongest in data["strongest"].values():
        assert (
            strongest["variant"] in {v.name for v in VARIANTS} and strongest["bd_rate_vs_default_pct"]["default"] == 0
        )


def test_plot_is_a_png(report) -> None:
    import matplotlib.image

    _, png = report
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width = matplotlib.image.imread(png).shape[:2]
    assert width > 400 and height > 300


def _curve(points: list[tuple[float, float]], **fields: object) -> list[dict]:
    return [{"bpp": bpp, "total_bpp": bpp, "psnr_rgb": psnr, **fields} for bpp, psnr in points]


ANCHOR = _curve([(0.02, 27.0), (0.04, 29.5), (0.08, 31.0), (0.16, 33.2)])
NAMES = ("aecodec", "x264 psnr")


def _package(test: list[dict], anchor: list[dict], delta, **options) -> float:
    """bjontegaard's own figure on the same curves, called its usual way."""
    rates = [[r["bpp"] for r in rows] for rows in (anchor, test)]
    psnrs = [[r["psnr_rgb"] for r in rows] for rows in (anchor, test)]
    return delta(rates[0], psnrs[0], rates[1], psnrs[1], method="pchip", **options)


def test_the_threshold_is_no_lower_than_the_packages_default() -> None:
    assert inspect.signature(bjontegaard.bd_rate).parameters["min_overlap"].default <= MIN_OVERLAP


def test_full_overlap_gives_the_packages_own_figures() -> None:
    shifted = _curve([(r["bpp"] * 0.5, r["psnr_rgb"]) for r in ANCHOR])
    figures = bd_figures(shifted, ANCHOR, "bpp", NAMES)
    assert figures["bd_rate_pct"] == pytest.approx(_package(shifted, ANCHOR, bjontegaard.bd_rate)) == -50
    assert figures["bd_rate_overlap"] == {"interval": [27.0, 33.2], "of_test": 1.0, "of_anchor": 1.0, "of_both": 1.0}
    assert figures["note_rate"] is None and figures["bd_rate_own_range_pct"] == pytest.approx(-50)
    itself = bd_figures(ANCHOR, ANCHOR, "bpp", NAMES)
    assert itself["bd_psnr_db"] == pytest.approx(0, abs=1e-9) == _package(ANCHOR, ANCHOR, bjontegaard.bd_psnr)


def test_a_sliver_of_overlap_gives_no_bd_rate_but_bd_psnr_with_its_overlap() -> None:
    # same rates, PSNR ranges meeting over 0.3 dB only: no BD-rate; the rate axes coincide: BD-PSNR stands
    sliver = _curve([(0.02, 32.9), (0.04, 35.0), (0.08, 37.5), (0.16, 40.0)])
    figures = bd_figures(sliver, ANCHOR, "bpp", NAMES)
    assert figures["bd_rate_pct"] is None
    span = figures["bd_rate_overlap"]
    assert span["interval"] == pytest.approx([32.9, 33.2]) and span["of_test"] == pytest.approx(0.3 / 7.1)
    assert span["of_anchor"] == pytest.approx(0.3 / 6.2) and span["of_both"] == pytest.approx(0.3 / 13)
    assert figures["note_rate"] == (
        "n/a: curves overlap over 32.90-33.20 dB, 4% of aecodec's PSNR range and 5% of x264 psnr's "
        "(2% of both together), below the 75% threshold"
    )
    assert figures["bd_psnr_db"] == pytest.approx(_package(sliver, ANCHOR, bjontegaard.bd_psnr))
    assert figures["bd_psnr_overlap"]["of_both"] == pytest.approx(1) and figures["note_psnr"] is None
    assert figures["bd_rate_own_range_pct"] is None and figures["bd_rate_own_range_interval"] is None
    assert figures["note_own_range"] == (
        "n/a: x264 psnr (27.00-33.20 dB) covers less than 50% of aecodec's PSNR range (32.90-40.00 dB) "
        "without extrapolating"
    )


def test_bd_rate_over_aecodecs_range_interpolates_the_anchor_only_where_it_covers_it() -> None:
    inside = _curve([(0.03, 28.0), (0.05, 28.5), (0.09, 29.0)])  # 16% of the anchor's PSNR range
    figures = bd_figures(inside, ANCHOR, "bpp", NAMES)
    assert figures["bd_rate_pct"] is None and "16% of both together" in figures["note_rate"]
    # over aecodec's whole range, which the anchor covers, the package integrates the same interval
    assert figures["bd_rate_own_range_pct"] == pytest.approx(
        _package(inside, ANCHOR, bjontegaard.bd_rate, min_overlap=0, require_matching_points=False)
    )
    assert figures["bd_rate_own_range_interval"] == [28.0, 29.0]
    # above the anchor's top: over the part of aecodec's range the anchor covers, named, if most of it
    beyond = _curve([(0.03, 29.0), (0.06, 31.0), (0.12, 33.0), (0.5, 35.0)])
    figures = bd_figures(beyond, ANCHOR, "bpp", NAMES)
    assert figures["bd_rate_own_range_interval"] == [29.0, 33.2]  # 70% of its 6 dB
    clipped = [r for r in beyond if r["psnr_rgb"] <= 33.2]
    within = _package(clipped, ANCHOR, bjontegaard.bd_rate, min_overlap=0, require_matching_points=False)
    assert figures["bd_rate_own_range_pct"] != pytest.approx(within)  # pchip through the point above 33.2 ...
    assert figures["bd_rate_own_range_pct"] == pytest.approx(within, abs=5)  # ... bends it a little
    apart = _curve([(r["bpp"], r["psnr_rgb"] + 20) for r in ANCHOR])
    figures = bd_figures(apart, ANCHOR, "bpp", NAMES)
    assert figures["bd_rate_pct"] is None and figures["bd_rate_overlap"]["interval"] is None
    assert figures["note_rate"] == "n/a: the curves' PSNR ranges do not overlap"


@pytest.fixture(scope="module")
def yuv420p_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A losslessly coded yuv420p clip tagged BT.709 (whose RGB24 frames PyAV converts by that tag)."""
    path = tmp_path_factory.mktemp("yuv") / "src.mkv"
    return write_clip(path, synthetic_frames(6, 64, 48), options={"qp": "0", "x264-params": "colormatrix=bt709"})


def test_baselines_encode_a_yuv420p_sources_own_planes(yuv420p_source: Path) -> None:
    clip, own = read_clip(yuv420p_source), list(iter_source_yuv420p(yuv420p_source))
    assert codes_as_yuv420p(clip.info) and len(own) == len(clip) and clip.info.colour.matrix == "bt709"
    assert all(f.pict_type == av.video.frame.PictureType.NONE for f in own)  # x264 would obey those
    colour = clip.info.colour
    converted = list(to_yuv420p(clip.frames, colour))
    assert not np.array_equal(converted[2].to_ndarray(), own[2].to_ndarray())  # RGB cannot give the planes back
    x264 = BASELINES["x264"]
    lossless = [encode_point(fed, 25.0, x264, 0, VARIANTS[0], colour, clip.frames) for fed in (own, converted)]
    # fed its own planes, lossless x264 gives back the very frames; fed the RGB round trip, it cannot
    assert min(lossless[0].metrics.rgb) > 140  # identical frames: PSNR of an MSE floored at 1e-10
    assert max(lossless[1].metrics.rgb) < 100


def test_a_source_that_is_not_yuv420p_is_converted(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "444.mkv", synthetic_frames(4, 64, 48), codec="ffv1", pix_fmt="yuv444p")
    assert not codes_as_yuv420p(probe(path))
    clip = read_clip(path)
    colour = clip.info.colour
    fed = to_yuv420p(clip.frames, colour)
    point = encode_point(fed, 25.0, BASELINES["x264"], 30, VARIANTS[1], colour, clip.frames, ms_ssim=True)
    assert sum(point.frame_bytes) > 0 and point.setting == "crf 30" and len(point.metrics) == 4
    assert 20 < point.metrics.summary()["psnr_rgb"] < 60
    with pytest.raises(CodecError, match="decoded 4 of 5 frames"):
        longer = clip.frames + clip.frames[:1]
        encode_point(to_yuv420p(clip.frames, colour), 25.0, BASELINES["x264"], 30, VARIANTS[1], colour, longer)


def _encoder_settings(codec: str, variant_name: str) -> str:
    """The settings x264 or x265 writes into its stream, when encoding with ``variant_name``'s options."""
    baseline, variant = BASELINES[codec], next(v for v in VARIANTS if v.name == variant_name)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="matroska") as out:
        stream = add_encoder(out, baseline, 30, variant, 25, 64, 48)
        for frame in to_yuv420p(list(synthetic_frames(4, 64, 48)), Colour()):
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return encoder_record(buffer.getvalue())


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
    assert {"psy=1", "bframes=3", "aq=1:1.00", "sliced_threads=0"} <= set(settings["x264", "default"])
    assert not any(s.startswith("slices=") for s in settings["x264", "default"])  # one slice a frame
    assert {"psy=0", "bframes=0", "aq=1:0.00"} <= set(settings["x264", "psnr low-delay"])
    assert {"psy-rd=2.00", "bframes=4", "aq-strength=1.00"} <= set(settings["x265", "default"])
    assert {"psy-rd=0.00", "bframes=0", "aq-strength=0.00"} <= set(settings["x265", "psnr low-delay"])
    rgb = list(synthetic_frames(6, 64, 48))
    default, psnr = (
        encode_point(to_yuv420p(rgb, Colour()), 25.0, BASELINES["x264"], 30, v, Colour(), rgb)
        for v in (VARIANTS[0], VARIANTS[2])
    )
    assert default.frame_bytes != psnr.frame_bytes and psnr.variant == "psnr"


def test_svtav1_low_delay_psnr_variant_reaches_the_encoder() -> None:
    """SVT-AV1 logs its tune and prediction structure (at info level, read once per process)."""
    script = (
        "from clips import synthetic_frames\n"
        "from codec.measure.baselines import BASELINES, VARIANTS, encode_point, to_yuv420p\n"
        "from codec.io.colour import Colour\n"
        "rgb = list(synthetic_frames(4, 64, 48))\n"
        "encode_point(to_yuv420p(rgb, Colour()), 25.0, BASELINES['svtav1'], 55, VARIANTS[3], Colour(), rgb)\n"
    )
    env = {**os.environ, "SVT_LOG": "3", "PYTHONPATH": str(Path(__file__).parent)}
    log = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert re.search(r"preset / tune / pred struct\s*: 8 / PSNR / low delay", log.stdout + log.stderr)


def _row(codec: str, variant: str, setting: str, bpp: float, psnr: float) -> dict:
    """A point as point_row writes it, with the fields the report's text reads."""
    total = bpp * 10 if codec == "aecodec" else None
    return {
        **{"codec": codec, "variant": variant, "setting": setting, "bpp": bpp, "total_bpp": total},
        **{"psnr_rgb": psnr, "psnr_yuv": psnr + 3, "ms_ssim_rgb": None, "encode_fps": 1.0, "decode_fps": 1.0},
    }


def _family(codec: str, scales: dict[str, float]) -> list[dict]:
    """``codec``'s curves: ANCHOR's, with the rate scaled by each variant's factor."""
    crfs = (51, 44, 37, 30)
    return [
        _row(codec, v, f"crf {c}", r["bpp"] * k, r["psnr_rgb"])
        for v, k in scales.items()
        for c, r in zip(crfs, ANCHOR, strict=True)
    ]


def test_strongest_variant_is_the_family_curve_needing_fewest_bits() -> None:
    points = _family("x264", {"default": 1.0, "low-delay": 1.2, "psnr": 0.8, "psnr low-delay": 0.9})
    strongest = strongest_variant(points, "x264")
    assert strongest["variant"] == "psnr"
    assert strongest["bd_rate_vs_default_pct"]["psnr"] == pytest.approx(-20)
    # a curve that only grazes the default's PSNR range is not ranked, however few bits it needs there
    grazing = [_row("x264", "psnr", "crf", r["bpp"] * 0.1, r["psnr_rgb"] + 6) for r in ANCHOR]
    points = [p for p in points if p["variant"] != "psnr"] + grazing
    strongest = strongest_variant(points, "x264")
    assert strongest["variant"] == "psnr low-delay" and strongest["bd_rate_vs_default_pct"]["psnr"] is None


def _report(aecodec: list[tuple[float, float]]) -> dict:
    """A report of aecodec's curve and two families whose strongest variants are x264 psnr low-delay
    and x265 default."""
    points = [_row("aecodec", "low-delay", f"quality {q}", *point) for q, point in enumerate(aecodec)]
    points += _family("x264", {"default": 1.0, "low-delay": 1.1, "psnr": 1.2, "psnr low-delay": 0.7})
    points += _family("x265", {"default": 0.6, "low-delay": 0.8, "psnr": 0.7, "psnr low-delay": 0.9})
    return {
        "machine": {"platform": "test", "cpus": 2},
        "speed": {"train_device": "cpu", "train_precision": "fp32"},
        "model": {"default_quality": 1},
        "clip": {"width": 64, "height": 48},
        "points": points,
        **compare(points, ["x264", "x265"]),
    }


def test_headlines_quote_the_strongest_variant_with_overlaps_and_reasons() -> None:
    inside = _report([(0.03, 28.0), (0.05, 28.5), (0.09, 29.0)])  # 16% of the anchors' PSNR range
    full = _report([(r["bpp"] * 2, r["psnr_rgb"]) for r in ANCHOR])  # the anchors' whole range
    assert {c: s["variant"] for c, s in inside["strongest"].items()} == {"x264": "psnr low-delay", "x265": "default"}
    summary = summary_markdown({"inside": inside, "full": full}, 1.0)
    rows = {line.split()[1]: line for line in summary.splitlines() if line.startswith("| ")}
    assert "0.0500 / 0.5000, 28.50 dB" in rows["inside"]
    assert "x264 psnr low-delay crf 37: 31.00 dB @ 0.0560" in rows["inside"]
    x264 = next(b for b in inside["bd"] if b["anchor"] == "x264 psnr low-delay" and b["aecodec_rate"] == "bpp")
    own = f"{x264['bd_rate_own_range_pct']:+.0f}% (28.00-29.00 dB)"
    assert f"**psnr low-delay**: BD-rate n/a [1]; over aecodec's range {own}; BD-PSNR n/a [2]" in rows["inside"]
    assert "**default**: BD-rate n/a [3]" in rows["inside"]
    assert f"[1] inside vs x264 psnr low-delay, BD-rate: {x264['note_rate']}" in summary
    assert "below the 75% threshold" in x264["note_rate"]
    # aecodec needs 2 / 0.7 and 2 / 0.6 times the bits of each strongest curve over their whole range
    assert "**psnr low-delay**: BD-rate +186% (100% overlap); over aecodec's range +186%" in rows["full"]
    assert "**default**: BD-rate +233% (100% overlap)" in rows["full"]
    table = format_table(inside)
    assert (
        "aecodec (stream-only) vs x264 psnr low-delay (strongest): BD-rate n/a [28.00-29.00 dB = 100% aecodec" in table
    )
    assert "x264 psnr (strongest)" not in table
