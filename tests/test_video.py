"""Video input through PyAV: containers, codecs, pixel formats, odd sizes, and every kind of bad file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from clips import synthetic_frames, write_clip

from codec.errors import CodecError
from codec.io.video import probe, read_clip

QUIET_X265 = {"x265-params": "log-level=none"}
FORMATS = [
    ("clip.mp4", "libx264", "yuv420p", {}),
    ("clip.mkv", "libx265", "yuv444p", QUIET_X265),
    ("clip.webm", "libvpx-vp9", "yuv420p", {}),
    ("clip.avi", "mpeg4", "yuv420p", {}),
    ("clip.y4m", "rawvideo", "yuv420p", {}),
    ("clip10.mkv", "libx264", "yuv420p10le", {}),
    ("clip10.mp4", "libx265", "yuv420p10le", QUIET_X265),
]


@pytest.mark.parametrize(("name", "codec", "pix_fmt", "options"), FORMATS, ids=[f"{f[0]}:{f[2]}" for f in FORMATS])
def test_reads_containers_codecs_and_pixel_formats(
    tmp_path: Path, name: str, codec: str, pix_fmt: str, options: dict[str, str]
) -> None:
    frames = synthetic_frames(6, 64, 48)
    path = write_clip(tmp_path / name, frames, codec=codec, pix_fmt=pix_fmt, options=options)
    clip = read_clip(path)
    assert len(clip) == 6
    assert clip.frames[0].shape == (48, 64, 3) and clip.frames[0].dtype == np.uint8
    # Lossy codecs at default settings keep a smooth synthetic frame close to the original.
    err = np.abs(clip.frames[3].astype(int) - frames[3].astype(int)).mean()
    assert err < 12, f"{name}: mean abs error {err}"
    assert clip.info.pixel_format == pix_fmt


def test_audio_stream_is_ignored(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "with_audio.mp4", synthetic_frames(10, 64, 48), audio=True)
    clip = read_clip(path)
    assert len(clip) == 10 and clip.width == 64 and clip.height == 48


def test_odd_size_and_unknown_frame_count(odd_clip: Path) -> None:
    info = probe(odd_clip)
    assert (info.width, info.height) == (45, 37)
    assert info.declared_frames == 0  # Matroska does not declare a count: frames are counted by decoding
    clip = read_clip(odd_clip)
    assert len(clip) == 12 and clip.frames[0].shape == (37, 45, 3)


def _truncated_mid_stream(tmp_path: Path) -> Path:
    """An mp4 whose index (moov) is up front and whose frame data is cut short."""
    full = write_clip(
        tmp_path / "full.mp4", synthetic_frames(40, 96, 64, seed=3), container_options={"movflags": "faststart"}
    )
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])
    return cut


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    text = tmp_path / "notes.mp4"
    text.write_text("these are not the frames you are looking for\n" * 50)
    audio = tmp_path / "tone.wav"
    import av

    with av.open(str(audio), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        out.mux(stream.encode(frame))
        out.mux(stream.encode())
    empty = tmp_path / "empty.mp4"
    empty.touch()
    head_cut = tmp_path / "head.mp4"
    head_cut.write_bytes(write_clip(tmp_path / "src.mp4", synthetic_frames(5, 32, 32)).read_bytes()[:300])
    return {
        "missing": (tmp_path / "nope.mp4", "no such file"),
        "directory": (tmp_path, "is a directory"),
        "empty": (empty, "empty file"),
        "not a video": (text, "not a readable video"),
        "no video stream": (audio, "has no video stream"),
        "cut short": (head_cut, "not a readable video, or truncated"),
        "truncated mid-stream": (_truncated_mid_stream(tmp_path), "truncated"),
    }


def test_bad_inputs_raise_one_clear_error(tmp_path: Path) -> None:
    for case, (path, reason) in _bad_inputs(tmp_path).items():
        with pytest.raises(CodecError) as err:
            read_clip(path)
        message = str(err.value)
        assert str(path) in message and reason in message, f"{case}: {message}"
        assert "\n" not in message


def test_bad_inputs_exit_2_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    """Through the real console entry point, in a fresh process, as a user would see it."""
    for case, (path, reason) in _bad_inputs(tmp_path).items():
        proc = subprocess.run(
            [sys.executable, "-m", "codec.cli", "train", str(path), "-o", str(tmp_path / "out"), "--steps", "1"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 2, f"{case}: {proc.returncode} {proc.stderr}"
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        error = lines.pop()
        assert error.startswith("error: ") and reason in error, f"{case}: {proc.stderr}"
        # a file found bad only while it is decoded into the frame cache: the plan and the bar came first
        assert all(line.startswith((f"{path.name}: decoding once", "decoding frames")) for line in lines), case
        assert "Traceback" not in proc.stderr
        assert not (tmp_path / "out").exists(), f"{case}: a bad input left an output directory behind"
