"""Long videos in bounded memory: a clip larger than the memory a process is allowed still trains
and encodes, because every stage reads frames one at a time from the frame cache on disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from clips import write_long_clip
from conftest import TINY

from codec.coding.common.bitstream import read_chunks, read_stream_file
from codec.io.frame_store import cache_entries, open_store
from codec.io.video import probe

WIDTH, HEIGHT, FRAMES = 640, 360, 1000  # 691 MB as RGB24
HEADROOM = 450 << 20  # what a process may allocate beyond its imports: less than the clip

# Run in a fresh process: import what the command needs, then cap the data segment (every private
# writable mapping, numpy's arrays included) at what the imports took plus HEADROOM, then run it.
LIMITED = """
import resource, sys
import codec.cli, codec.coding.encoder.encode, codec.errors, codec.io.video, codec.train.pipeline

def data_bytes():
    line = next(l for l in open("/proc/self/status") if l.startswith("VmData:"))
    return int(line.split()[1]) * 1024

limit = data_bytes() + int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
if sys.argv[2] == "read_clip":
    try:
        codec.io.video.read_clip(sys.argv[3])
    except codec.errors.CodecError as exc:
        sys.exit(3 if "out of memory" in str(exc) else 4)
    sys.exit(0)
sys.argv = ["codec", *sys.argv[2:]]
codec.cli.cli()
"""


def _limited(*args: object) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", LIMITED, str(HEADROOM), *map(str, args)]
    env = {**os.environ, "MALLOC_ARENA_MAX": "2", "OMP_NUM_THREADS": "2"}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_long_clip(tmp_path_factory.mktemp("long") / "long.mp4", FRAMES, WIDTH, HEIGHT)


def test_a_clip_larger_than_the_memory_allowed_trains_and_encodes(long_clip: Path, tmp_path: Path) -> None:
    raw = FRAMES * WIDTH * HEIGHT * 3
    assert raw > HEADROOM * 1.4
    # the ceiling bites: the clip held in memory, as every stage once did, does not fit under it
    assert _limited("read_clip", long_clip).returncode == 3

    model = tmp_path / "model"
    trained = _limited("train", long_clip, "-o", model, "--steps", "3", "--json", *TINY)
    assert trained.returncode == 0, trained.stderr[-2000:]
    meta = json.loads((model / "meta.json").read_text())
    assert meta["source"]["frames"] == FRAMES
    assert meta["training"]["frames_evaluated"] == 300  # ten whole GOPs spread over the clip, not all 1,000
    entry = next(e for e in cache_entries() if e.source == long_clip.name)
    assert entry.frames == FRAMES and entry.bytes == raw  # decoded once, to disk

    stream = tmp_path / "long.aec"
    encoded = _limited("encode", long_clip, "-m", model, "-o", stream, "--json")
    assert encoded.returncode == 0, encoded.stderr[-2000:]
    figures = json.loads(encoded.stdout)
    assert figures["frames"] == FRAMES and figures["bytes"] == stream.stat().st_size
    chunks = list(read_chunks(read_stream_file(stream), str(stream)))
    assert [c.index for c in chunks] == list(range(FRAMES))


def test_frame_store_reads_what_the_decoder_gives(long_clip: Path) -> None:
    from codec.io.video import iter_frames

    store = open_store(long_clip)
    assert len(store) == FRAMES and (store.width, store.height) == (probe(long_clip).width, HEIGHT)
    decoded = iter_frames(long_clip, max_frames=60)
    for i, frame in enumerate(decoded):
        assert (store[i] == frame).all()
    tail = store.span(FRAMES - 50, FRAMES)
    assert len(tail) == 50 and (tail[0] == store[FRAMES - 50]).all()
    assert (store.crop(7, 100, 200, 64, 96) == store[7][100:164, 200:296]).all()
    with pytest.raises(IndexError):
        tail[50]


def test_evaluation_codes_whole_gops_spread_over_a_long_clip() -> None:
    from codec.train.loop import EVAL_FRAMES, eval_indices

    assert eval_indices(250, 30) == list(range(250))  # a short clip: every frame, as before
    picks = eval_indices(100_000, 30)
    assert len(picks) == EVAL_FRAMES and picks[0] == 0 and picks[-1] >= 99_960 - 30
    spans = [picks[i : i + 30] for i in range(0, len(picks), 30)]
    assert all(s[0] % 30 == 0 and s == list(range(s[0], s[0] + 30)) for s in spans)  # I-frame first, whole
    assert len(eval_indices(100_000, 1000)) == EVAL_FRAMES  # a GOP longer than the sample: its head
    assert eval_indices(301, 400) == list(range(300))


def test_per_frames_grows_the_budget_with_the_video(short_clip: Path, tmp_path: Path) -> None:
    from conftest import run_cli

    code, _, err = run_cli("train", short_clip, "-o", tmp_path / "m", "--steps", "2", "--per-frames", "4", *TINY[:-1])
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    assert code == 0 and meta["training"]["steps"] == 5  # 10 frames at 2 steps per 4 frames, rounded up
    assert "5 steps (2.5 x the budget given per 4 frames)" in err
    assert meta["training"]["options"]["per_frames"] == 4 and meta["training"]["options"]["steps"] == 2
    code, _, err = run_cli("train", short_clip, "-o", tmp_path / "n", "--steps", "2", "--per-frames", "0", *TINY)
    assert code == 2 and "--per-frames must be at least 1" in err
