"""Colour: a source's matrix and range are read, used for every RGB <-> YUV conversion, and tagged on outputs."""

from __future__ import annotations

import json
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from clips import synthetic_frames, write_clip

from codec.coding.decoder.decode import decode_file
from codec.errors import CodecError
from codec.io.bundle import META_FILE, load_bundle
from codec.io.colour import Colour, frame_to_rgb, yuv_weights
from codec.io.psnr import psnr
from codec.io.video import VideoWriter, iter_frames, probe
from codec.measure.metrics import FrameMetrics

BT709 = Colour("bt709", "tv", "bt709", "bt709")
LOSSLESS = {"qp": "0"}  # x264 at qp 0: the only loss left is the RGB <-> YUV rounding


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return synthetic_frames(3, 64, 48)


@pytest.fixture(scope="module")
def bt709_clip(tmp_path_factory: pytest.TempPathFactory, frames: np.ndarray) -> Path:
    """The frames as lossless H.264 4:4:4 in BT.709, the stream tagged so: small, so the size rule says BT.601."""
    path = tmp_path_factory.mktemp("bt709") / "bt709.mp4"
    return write_clip(path, frames, pix_fmt="yuv444p", options=LOSSLESS, colour=BT709)


def _read_as(path: Path, colour: Colour) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame_to_rgb(frame, colour) for frame in container.decode(video=0)]


def test_probe_reports_the_tagged_colour(bt709_clip: Path, tmp_path: Path, frames: np.ndarray) -> None:
    assert probe(bt709_clip).colour == BT709
    full = write_clip(tmp_path / "full.mp4", frames, colour=Colour("bt709", "pc", "bt709", "bt709"))
    assert probe(full).colour.range == "pc"


def test_frames_are_read_with_the_source_matrix(bt709_clip: Path, frames: np.ndarray) -> None:
    """Read as BT.709 the frames come back within rounding; read as BT.601 (the old default) they are far off."""
    ours = np.stack(list(iter_frames(bt709_clip)))
    as_601 = np.stack(_read_as(bt709_clip, Colour("bt601")))
    assert np.abs(ours.astype(int) - frames).mean() < 1
    assert psnr(ours, frames) > 45
    assert psnr(as_601, frames) < psnr(ours, frames) - 10
    assert np.abs(as_601.astype(int) - frames).mean() > 5


@pytest.mark.parametrize(
    ("size", "matrix"),
    [((64, 48), "bt601"), ((1279, 16), "bt601"), ((16, 719), "bt601"), ((1280, 16), "bt709"), ((16, 720), "bt709")],
)
def test_unspecified_matrix_follows_the_frame_size(tmp_path: Path, size: tuple[int, int], matrix: str) -> None:
    """An untagged stream is BT.709 when height >= 720 or width >= 1280, else BT.601; limited range."""
    width, height = size
    frames = synthetic_frames(1, width, height)  # converted as the size rule says, and not tagged
    path = write_clip(tmp_path / "untagged.mkv", frames, codec="ffv1", pix_fmt="yuv444p")
    assert probe(path).colour == Colour(matrix, "tv")
    assert np.abs(next(iter_frames(path)).astype(int) - frames[0]).mean() < 1


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("out.mp4", BT709),
        ("out.mkv", Colour("bt601", "tv", "bt709", "bt709")),  # RGB: primaries and transfer
        ("out.y4m", Colour("bt601", "tv")),  # y4m holds the range only
    ],
)
def test_writer_converts_with_and_tags_the_colour(tmp_path: Path, frames: np.ndarray, name: str, kept: Colour) -> None:
    path = tmp_path / name
    with VideoWriter(path, 64, 48, Fraction(25), BT709) as writer:
        for frame in frames:
            writer.write(frame)
    assert probe(path).colour == kept
    back = np.stack(_read_as(path, BT709))
    if name == "out.mkv":  # RGB: nothing is converted
        assert np.array_equal(back, frames)
        return
    assert psnr(back, frames) > psnr(np.stack(_read_as(path, Colour("bt601"))), frames) + 1
    if name == "out.y4m":  # lossless but for the RGB <-> YUV rounding
        assert np.abs(back.astype(int) - frames).mean() < 1


def test_decode_writes_the_bundle_source_colour(
    tmp_path: Path, carphone_bundle: Path, encoded: tuple[Path, object, np.ndarray]
) -> None:
    """meta.json's source colour is what a decode converts to YUV with and tags; a bundle without one
    (written before it was recorded) gets the size rule's."""
    bundle_dir = tmp_path / "bundle"
    shutil.copytree(carphone_bundle, bundle_dir)
    meta = json.loads((bundle_dir / META_FILE).read_text())
    assert meta["source"]["colour"] == Colour("bt601", "tv").to_dict()  # carphone: untagged, 176x144

    meta["source"]["colour"] = BT709.to_dict()
    (bundle_dir / META_FILE).write_text(json.dumps(meta))
    stream = encoded[0]
    decode_file(stream, load_bundle(bundle_dir), tmp_path / "out.mp4")
    assert probe(tmp_path / "out.mp4").colour == BT709

    del meta["source"]["colour"]
    (bundle_dir / META_FILE).write_text(json.dumps(meta))
    assert load_bundle(bundle_dir).meta.source.colour == Colour.for_size(176, 144)

    meta["source"]["colour"] = {**BT709.to_dict(), "matrix": "ycgco"}
    (bundle_dir / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(CodecError, match="colour matrix 'ycgco' is not known"):
        decode_file(stream, load_bundle(bundle_dir), tmp_path / "bad.mp4")


def test_yuv_psnr_is_measured_in_the_given_matrix(frames: np.ndarray) -> None:
    """BT.601 keeps the JPEG constants the metric always used; another matrix gives other figures."""
    old = [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]]
    assert np.allclose(yuv_weights("bt601"), old, atol=1e-6)
    assert np.allclose(yuv_weights("bt709")[0], [0.2126, 0.7152, 0.0722])
    assert np.allclose(yuv_weights("bt709")[1:].sum(axis=1), 0)  # grey has no chroma
    shifted = np.clip(frames[0].astype(int) + np.array([12, 0, 0]), 0, 255).astype(np.uint8)  # an error in red only
    by_matrix = {}
    for matrix in ("bt601", "bt709"):
        metrics = FrameMetrics(matrix)
        metrics.add(shifted, frames[0], with_ms_ssim=False)
        by_matrix[matrix] = metrics.summary()
    assert by_matrix["bt709"]["psnr_y"] > by_matrix["bt601"]["psnr_y"] + 2  # red weighs less in BT.709's luma
    with pytest.raises(CodecError, match="colour matrix"):
        FrameMetrics("bt2100")


def test_a_matrix_that_cannot_be_converted_is_one_clear_error(tmp_path: Path, frames: np.ndarray) -> None:
    path = write_clip(tmp_path / "ycgco.mp4", frames, options={"x264-params": "colormatrix=YCgCo"})
    with pytest.raises(CodecError, match=r"ycgco.mp4: colour matrix ycgco is not supported$"):
        probe(path)
