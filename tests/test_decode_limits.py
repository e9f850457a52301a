"""The decoder (and `codec info`) against crafted input: every size and count a stream claims is
bounded before it is acted on, bad input is one line on stderr and exit code 2, fast and in bounded
memory, and memory does not grow with the file's length."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from clips import synthetic_frames, write_clip
from conftest import run_cli
from crafted import craft

from codec.coding.common.bitstream import (
    CHUNK_HEAD_SIZE,
    HEADER_SIZE,
    I_FRAME,
    P_FRAME,
    SYNC,
    WORD,
    Chunk,
    Header,
    read_chunks,
)
from codec.coding.common.entropy_coding import CodingTables
from codec.coding.common.intra_refinement import join_intra
from codec.coding.common.latent_codec import LatentPacker, LatentUnpacker
from codec.coding.decoder.decode import decode_file
from codec.errors import CodecError
from codec.io.bundle import load_bundle

# A decode of this 176x144 stream peaks near 90 MB (interpreter, numpy, onnxruntime, PyAV); the
# header-driven allocations these tests guard against reached 0.9 to 17 GB.
PEAK_BYTES = 400 << 20
SECONDS = 10
# Address space the measured process may map at all, so that a regression fails the test with a
# MemoryError instead of taking the machine's memory (onnxruntime alone maps about 450 MB).
GUARD_BYTES = 4 << 30

_MEASURED = """
import atexit, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({guard}, {guard}))

def peak():  # VmHWM is this process's own peak; ru_maxrss would include the parent's from before exec
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    open({report!r}, "w").write(status["VmHWM"].split()[0])

atexit.register(peak)
from codec.cli import main
sys.argv = ["codec", *sys.argv[1:]]
main()
"""


def run_measured(tmp_path: Path, *args: object) -> tuple[int, str, int, float]:
    """The real ``codec ARGS`` in a fresh process: (exit code, stderr, peak RSS in bytes, seconds)."""
    report = tmp_path / "peak_kb"
    script = _MEASURED.format(guard=GUARD_BYTES, report=str(report))
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stderr, int(report.read_text()) << 10, time.perf_counter() - started


def _one_line_error(code: int, err: str, message: str) -> bool:
    lines = err.strip().splitlines()
    return code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def _chunks(stream: Path) -> list[Chunk]:
    return list(read_chunks(stream.read_bytes(), "s"))


def _header(stream: Path) -> bytes:
    return stream.read_bytes()[:HEADER_SIZE]


def _pack(chunks: list[Chunk]) -> bytes:
    return b"".join(c.pack() for c in chunks)


# name: (header fields, what follows the header, extra options, expected exit code, expected message)
CRAFTED = {
    "16384x16384, 2^32-1 frames, no chunk": (
        {"width": 16384, "height": 16384, "frames": 2**32 - 1},
        "none",
        [],
        2,
        "frame size 16384x16384 exceeds the 176x144",
    ),
    "16384x16384 and a 4-byte payload": (
        {"width": 16384, "height": 16384, "frames": 1},
        "4 bytes",
        [],
        2,
        "frame size 16384x16384 exceeds the 176x144",
    ),
    "a pixel wider than the model's video": ({"width": 177}, "all", [], 2, "frame size 177x144 exceeds"),
    "a pixel taller than the model's video": ({"height": 145}, "all", [], 2, "frame size 176x145 exceeds"),
    "frames 0": ({"frames": 0}, "all", [], 2, "header field frames is 0"),
    "frames 2^32-1": ({"frames": 2**32 - 1}, "all", [], 2, "stream ends early: the header declares 4294967295"),
    "frames 2^32-1, concealed": ({"frames": 2**32 - 1}, "all", ["--conceal"], 0, ""),
    "gop 0": ({"gop": 0}, "all", [], 2, "header field gop is 0"),
    "gop 65535": ({"gop": 65535}, "all", [], 0, ""),
    "quality 10 of levels 0..9": ({"quality": 10}, "all", [], 2, "quality 10 is not one of the bundle's levels 0..9"),
    "quality 255": ({"quality": 255}, "all", [], 2, "quality 255 is not one of"),
    "fps 0": ({"fps_num": 0}, "all", [], 2, "frame rate 0 is outside"),
    "fps 2^32-1": ({"fps_num": 2**32 - 1, "fps_den": 1}, "all", [], 2, "frame rate 4294967295 is outside"),
    "fps 1/(2^32-1)": ({"fps_num": 1, "fps_den": 2**32 - 1}, "all", [], 2, "frame rate 1/4294967295 is outside"),
}


@pytest.mark.parametrize("case", CRAFTED)
def test_crafted_headers_fail_in_one_line_fast_and_in_bounded_memory(
    carphone_bundle: Path, encoded, tmp_path: Path, case: str
) -> None:
    fields, body, options, expected_code, message = CRAFTED[case]
    stream = encoded[0]
    data = stream.read_bytes()
    tail = {"none": b"", "4 bytes": Chunk(0, 0, 0, data[-4:]).pack(), "all": data[HEADER_SIZE:]}[body]
    crafted = tmp_path / "crafted.aec"
    crafted.write_bytes(craft(data[:HEADER_SIZE], **fields) + tail)
    out = tmp_path / "out.y4m"
    code, err, peak, seconds = run_measured(tmp_path, "decode", crafted, "-m", carphone_bundle, "-o", out, *options)
    if expected_code == 0:
        assert code == 0 and out.stat().st_size > 0, err
    else:
        assert _one_line_error(code, err, message), err
        assert not out.exists()
    assert peak < PEAK_BYTES, f"peak RSS {peak >> 20} MB"
    assert seconds < SECONDS


def test_the_encoder_refuses_what_its_decoder_would(carphone_bundle: Path, tmp_path: Path) -> None:
    wide = write_clip(tmp_path / "wide.mkv", synthetic_frames(2, 192, 144), codec="ffv1", pix_fmt="yuv444p")
    code, _, err = run_cli("encode", wide, "-m", carphone_bundle, "-o", tmp_path / "wide.aec")
    assert _one_line_error(code, err, "frame size 192x144 exceeds the 176x144"), err
    fast = write_clip(tmp_path / "fast.mkv", synthetic_frames(2, 32, 32), codec="ffv1", fps=2000)
    code, _, err = run_cli("encode", fast, "-m", carphone_bundle, "-o", tmp_path / "fast.aec")
    assert _one_line_error(code, err, "frame rate 2000 is outside"), err
    assert not (tmp_path / "wide.aec").exists() and not (tmp_path / "fast.aec").exists()


@pytest.mark.parametrize(
    ("cut", "message"),
    [
        (lambda p: p[:4], "frame 0: I-frame latent of {words} words does not fit its payload of 4 bytes"),
        (lambda p: join_intra(p[4:8], b""), "frame 0: latent of 4 bytes is too short for its 4x18x22 values"),
        (lambda p: join_intra(p[4:8], p[8:]), "frame 0: latent of 4 bytes is too short for its 4x18x22 values"),
    ],
)
def test_a_payload_too_short_for_its_latent_is_refused(
    carphone_bundle: Path, encoded, tmp_path: Path, cut: Callable[[bytes], bytes], message: str
) -> None:
    """An I-frame's latent length beyond its payload, and a latent too short for its values (with or
    without bytes after it that would pass for a refinement)."""
    stream = encoded[0]
    chunks = _chunks(stream)
    short = replace(chunks[0], payload=cut(chunks[0].payload))
    bad = tmp_path / "short.aec"
    bad.write_bytes(_header(stream) + short.pack() + _pack(chunks[1:]))
    code, _, err = run_cli("decode", bad, "-m", carphone_bundle, "-o", tmp_path / "out.y4m")
    words = int.from_bytes(chunks[0].payload[:4], "little")
    assert _one_line_error(code, err, message.format(words=words)), err


def test_the_payload_bound_admits_every_real_payload(carphone_bundle: Path) -> None:
    """Down to the cheapest latents of all (every symbol its table's likeliest), at every level, I and P."""
    tables = CodingTables.from_bundle(load_bundle(carphone_bundle))
    shape = (4, 9, 11)
    noise = np.random.default_rng(0).integers(-3, 4, shape)
    for quality, level in enumerate(tables.levels):
        cheapest = np.asarray(level.intra_centre)[:, None, None] + np.zeros(shape, np.int64)
        packer, unpacker = LatentPacker(tables, quality), LatentUnpacker(tables, quality, shape)
        frames = [(cheapest, I_FRAME), (cheapest, P_FRAME), (cheapest + noise, P_FRAME), (cheapest + noise, I_FRAME)]
        for index, (q, frame_type) in enumerate(frames):
            assert np.array_equal(unpacker.unpack(packer.pack(q, index, frame_type, 0)), q)


def test_garbage_payloads_fail_in_one_line(carphone_bundle: Path) -> None:
    """Payloads of every length that pass the bound, filled with noise: decoded or one CodecError."""
    tables = CodingTables.from_bundle(load_bundle(carphone_bundle))
    rng = np.random.default_rng(0)
    refused = 0
    for quality in range(len(tables.levels)):
        unpacker = LatentUnpacker(tables, quality, (4, 18, 22))
        for index in range(100):
            unpacker.previous = unpacker.previous_residual = np.zeros((4, 18, 22), np.int64)
            payload = rng.integers(0, 256, 4 * int(rng.integers(1, 60)), np.uint8).tobytes()
            if index % 2 == I_FRAME:  # a latent length that fits: the noise reaches the latent's decoder
                payload = join_intra(payload, b"")
            try:
                unpacker.unpack(Chunk(index, index % 2, 0, payload))
            except CodecError as exc:
                assert re.match(f"frame {index}: (payload |latent of)", str(exc)) and "\n" not in str(exc)
                refused += 1
    assert refused


def _conceal(tmp_path: Path, bundle: Path, data: bytes, name: str = "out") -> tuple[int, dict, str]:
    """``codec decode --conceal --json`` of ``data``: exit code, figures, stderr; output only on success."""
    bad, out = tmp_path / f"{name}.aec", tmp_path / f"{name}.y4m"
    bad.write_bytes(data)
    code, stdout, err = run_cli("decode", bad, "-m", bundle, "-o", out, "--conceal", "--json")
    assert out.is_file() == (code == 0)
    return code, json.loads(stdout) if code == 0 else {}, err


def test_concealment_needs_damaged_bytes_for_every_missing_frame(carphone_bundle: Path, encoded, tmp_path):
    stream = encoded[0]
    chunks = _chunks(stream)
    before, after = _header(stream) + _pack(chunks[:3]), _pack(chunks[7:])
    # Chunks 3 to 6 overwritten: their bytes stand for them. Frame 7, a P-frame, loses its reference.
    code, result, err = _conceal(tmp_path, carphone_bundle, before + bytes(len(_pack(chunks[3:7]))) + after)
    assert code == 0 and (result["frames"], result["concealed"]) == (10, 5), err
    # The same gap behind 20 bytes, which cannot have held four chunks: an error, not four repeats.
    code, _, err = _conceal(tmp_path, carphone_bundle, before + bytes(20) + after, "short")
    assert _one_line_error(code, err, "frame 7: 4 frames missing before it, but only 20 damaged bytes"), err


def test_a_far_frame_index_conceals_nothing(carphone_bundle: Path, encoded, tmp_path: Path) -> None:
    """83 bytes once wrote 2 GB of y4m: every frame up to the index a single chunk claimed."""
    stream = encoded[0]
    first = _chunks(stream)[0]
    lone = replace(first, index=500).pack()
    data = craft(_header(stream), frames=2**32 - 1) + lone
    started = time.perf_counter()
    code, _, err = _conceal(tmp_path, carphone_bundle, data)
    assert _one_line_error(code, err, "frame 500: 500 frames missing before it, but only 0 damaged bytes"), err
    assert time.perf_counter() - started < SECONDS


def test_a_stream_of_mostly_garbage_is_an_error(carphone_bundle: Path, encoded, tmp_path: Path) -> None:
    data = encoded[0].read_bytes()
    noise = np.random.default_rng(1).integers(0, 256, 2 * len(data), np.uint8).tobytes()
    code, _, err = _conceal(tmp_path, carphone_bundle, data + noise)
    assert _one_line_error(code, err, f"{len(noise)} of its {len(data) + len(noise)} bytes are damaged"), err


def test_a_stream_without_one_decodable_frame_is_an_error(carphone_bundle: Path, encoded, tmp_path: Path) -> None:
    stream = encoded[0]
    p_frames = [replace(c, index=i) for i, c in enumerate(_chunks(stream)[1:4])]
    code, _, err = _conceal(tmp_path, carphone_bundle, craft(_header(stream), frames=3) + _pack(p_frames))
    assert _one_line_error(code, err, "no frame could be decoded"), err


MANY = 200_000  # of the smallest chunks (4.2 MB), every crc32 valid
GROWTH = 8 << 20


def _tiny_chunks(path: Path, count: int) -> Path:
    """A stream of ``count`` chunks of the least a chunk takes, as a crafted file may hold millions."""
    header = Header("ab" * 32, 176, 144, Fraction(25), count, 30, 0)
    path.write_bytes(header.pack() + Chunk(0, P_FRAME, 0, bytes(WORD)).pack() * count)
    return path


@pytest.mark.parametrize("options", [[], ["--json"], ["--chunks", "--json"]])
def test_info_memory_does_not_grow_with_the_chunk_count(tmp_path: Path, options: list[str]) -> None:
    """`codec info` held a row per chunk: 1.0 GiB (2.6 GiB with --json) on 1.6 M chunks of 21 bytes.
    It keeps totals and writes each row, when asked for, as it is read: 200,000 chunks cost what one does."""
    peaks = []
    for count in (1, MANY):
        code, err, peak, _ = run_measured(tmp_path, "info", _tiny_chunks(tmp_path / f"{count}.aec", count), *options)
        assert code == 0, err
        peaks.append(peak)
    assert peaks[1] - peaks[0] < GROWTH, f"peak RSS {peaks[0] >> 20} MiB for one chunk, {peaks[1] >> 20} MiB for {MANY}"


@pytest.mark.parametrize("conceal", [False, True])
def test_decode_reads_the_stream_a_chunk_at_a_time(
    carphone_bundle: Path, encoded, tmp_path: Path, conceal: bool
) -> None:
    """`codec decode` read the whole file before its first frame. 8 MiB of junk after the last chunk
    (with a false head in it whose payload would span nearly all of it, for --conceal to look past)
    costs nothing."""
    bundle, stream = load_bundle(carphone_bundle), encoded[0]
    junk = bytearray(8 << 20)
    junk[100 : 100 + CHUNK_HEAD_SIZE] = SYNC + struct.pack("<IBIHI", 10, P_FRAME, len(junk) - 4096, 0, 0)
    junked = tmp_path / "junk.aec"
    junked.write_bytes(stream.read_bytes() + junk)
    message = "bytes are damaged; it is mostly garbage" if conceal else "no chunk sync marker"
    peaks = []
    for path, outcome in ((stream, nullcontext()), (junked, pytest.raises(CodecError, match=message))):
        tracemalloc.start()
        try:
            with outcome:
                decode_file(path, bundle, tmp_path / "out.y4m", force=True, conceal=conceal)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    assert peaks[1] - peaks[0] < 1 << 20, f"peak {peaks[0] >> 10} KiB clean, {peaks[1] >> 10} KiB with the junk"


def test_decode_memory_does_not_grow_with_the_stream_length(carphone_bundle: Path, encoded, tmp_path: Path) -> None:
    """The decoder's threads hold a bounded number of frames: a stream of one GOP and one of that GOP
    repeated 40 times peak alike (were every frame kept, the long one would hold 12 MB more)."""
    bundle, stream = load_bundle(carphone_bundle), encoded[0]
    gop = _chunks(stream)[:4]
    assert gop[0].frame_type == I_FRAME
    peaks = []
    for repeats in (1, 40):
        chunks = [replace(c, index=n * len(gop) + c.index) for n in range(repeats) for c in gop]
        path = tmp_path / f"{repeats}.aec"
        path.write_bytes(craft(_header(stream), frames=len(chunks)) + _pack(chunks))
        tracemalloc.start()
        try:
            stats = decode_file(path, bundle, tmp_path / "out.y4m", force=True)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert stats.frames == len(chunks)
    assert peaks[1] - peaks[0] < 2 << 20, f"peak {peaks[0] >> 10} KiB for 4 frames, {peaks[1] >> 10} KiB for 160"
