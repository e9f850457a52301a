"""iter_frames_from: frames [start, end) exactly as iter_frames gives them, seeking to a keyframe
where the stream's packet index can be trusted, decoding from the first frame where it cannot."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from clips import synthetic_frames, write_clip

from codec.errors import CodecError
from codec.io.video import iter_frames, iter_frames_from

GOP = 12


@pytest.fixture(scope="module")
def bframes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 frames of H.264 in mp4, with B-frames and a keyframe every GOP frames."""
    path = tmp_path_factory.mktemp("seek") / "bframes.mp4"
    return write_clip(
        path, synthetic_frames(40, 64, 48, seed=1), options={"g": str(GOP), "bf": "2", "sc_threshold": "0"}
    )


@pytest.fixture(scope="module")
def ffv1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 frames of lossless FFV1 in mkv (which declares no frame count), every one a keyframe."""
    path = tmp_path_factory.mktemp("seek") / "ffv1.mkv"
    return write_clip(path, synthetic_frames(30, 64, 48, seed=2), codec="ffv1", pix_fmt="yuv444p", options={"g": "1"})


class Counter:
    """An ``active`` callback counting its calls (one per decoded frame); false from call ``stop``."""

    def __init__(self, stop: int | None = None) -> None:
        self.calls, self.stop = 0, stop

    def __call__(self) -> bool:
        self.calls += 1
        return self.stop is None or self.calls < self.stop


def assert_same(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    assert len(got) == len(want)
    assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))


# (fixture, keyframe interval: None for one keyframe only, at frame 0)
CLIPS = [("carphone", None), ("bframes", GOP), ("ffv1", 1)]


@pytest.mark.parametrize(("clip", "gop"), CLIPS, ids=[c[0] for c in CLIPS])
def test_frames_equal_iter_frames_and_seek_to_a_keyframe(
    request: pytest.FixtureRequest, clip: str, gop: int | None
) -> None:
    path: Path = request.getfixturevalue(clip)
    frames = list(iter_frames(path))
    n = len(frames)
    for start in [0, 1, 2 * GOP - 1, 2 * GOP, 2 * GOP + 1, n - 1]:
        for end in sorted({start + 1, start + 3, n}):
            active = Counter()
            assert_same(list(iter_frames_from(path, start, end, active, frames=n)), frames[start:end])
            # one active() call a decoded frame (end may be past the last): from the keyframe at or
            # before start where the stream has any, else from the first frame
            first = start // gop * gop if gop else 0
            assert active.calls == min(end, n) - first, (start, end)


def test_untrusted_index_decodes_from_the_first_frame(ffv1: Path, bframes: Path, tmp_path: Path) -> None:
    # mkv declares no frame count: without the caller's, the index is not trusted
    frames = list(iter_frames(ffv1))
    active = Counter()
    assert_same(list(iter_frames_from(ffv1, 20, 25, active)), frames[20:25])
    assert active.calls == 25
    # a count the packets do not match
    frames = list(iter_frames(bframes))
    for wrong in (len(frames) - 1, len(frames) + 1):
        active = Counter()
        assert_same(list(iter_frames_from(bframes, 30, 40, active, frames=wrong)), frames[30:])
        assert active.calls == 40
    # 3000 fps in mkv's millisecond time base: keyframes sharing their pts (0, 0, 1, 1, 1, 2, ...)
    crowded = write_clip(
        tmp_path / "crowded.mkv",
        synthetic_frames(20, 64, 48),
        codec="ffv1",
        pix_fmt="yuv444p",
        fps=3000,
        options={"g": "1"},
    )
    frames = list(iter_frames(crowded))
    active = Counter()
    assert_same(list(iter_frames_from(crowded, 10, 20, active, frames=20)), frames[10:])
    assert active.calls == 20


def test_truncated_file_gives_what_iter_frames_gives(tmp_path: Path) -> None:
    """An mp4 whose index (moov) names 40 frames and whose data is cut a third short."""
    full = write_clip(
        tmp_path / "full.mp4",
        synthetic_frames(40, 96, 64, seed=3),
        options={"g": str(GOP), "bf": "2", "sc_threshold": "0"},
        container_options={"movflags": "faststart"},
    )
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size * 2 // 3])

    def outcome(frames: Iterator[np.ndarray]) -> list[np.ndarray] | str:
        try:
            return list(frames)
        except CodecError as exc:
            return str(exc)

    for start, end in [(5, 10), (13, 20), (26, 30), (30, 40)]:
        want = outcome(itertools.islice(iter_frames(cut, max_frames=end), start, None))
        got = outcome(iter_frames_from(cut, start, end))
        if isinstance(want, str):
            assert got == want and "truncated" in want and "\n" not in want
        else:
            assert_same(got, want)


def test_missing_file_is_a_codec_error(tmp_path: Path) -> None:
    with pytest.raises(CodecError, match="no such file"):
        next(iter_frames_from(tmp_path / "nope.mp4", 3, 5))


# (fixture, start, how many frames are decoded before the first yielded)
CANCELLED = [("carphone", 100, 100), ("bframes", 26, 2), ("ffv1", 20, 0)]


@pytest.mark.parametrize(("clip", "start", "skipped"), CANCELLED, ids=[c[0] for c in CANCELLED])
def test_inactive_stops_within_one_frame(request: pytest.FixtureRequest, clip: str, start: int, skipped: int) -> None:
    path: Path = request.getfixturevalue(clip)
    n = len(list(iter_frames(path)))
    # cancelled before the first frame yielded, while skipping the frames before start if any
    active = Counter(stop=skipped // 2 + 1)
    assert list(iter_frames_from(path, start, n, active, frames=n)) == []
    assert active.calls == active.stop
    # cancelled mid-stream: nothing is decoded after the call that said false
    active = Counter()
    frames = iter_frames_from(path, start, n, active, frames=n)
    next(frames)
    assert active.calls == skipped + 1
    active.stop = active.calls + 1
    assert list(frames) == []
    assert active.calls == active.stop
