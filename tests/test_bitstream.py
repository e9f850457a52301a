"""The .aec container on its own: layout, documentation and resynchronisation. No model needed."""

from __future__ import annotations

import io
import json
import re
import struct
import subprocess
import sys
import time
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from crafted import craft, field_spans
from hypothesis import given, settings
from hypothesis import strategies as st

import codec.coding.common.bitstream
from codec.coding.common.bitstream import (
    CHUNK_HEAD_SIZE,
    FIRST_SCAN,
    HEADER_SIZE,
    MIN_CHUNK_SIZE,
    SCAN,
    SYNC,
    VERSION,
    WORD,
    Chunk,
    Damage,
    Header,
    read_chunks,
)
from codec.coding.common.intra_refinement import LATENT_WORDS, join_intra
from codec.coding.common.spancrc import CHECKPOINT, SpanCrc
from codec.errors import CodecError
from codec.io.limits import MAX_SIDE

FORMAT_DOC = Path(__file__).parents[1] / "docs" / "format.md"


def _format_tables() -> list[int]:
    """The sum of the bytes column of each table in docs/format.md's `.aec` section (payloads and the
    I-frame payload's parts of variable length excluded)."""
    section = FORMAT_DOC.read_text().split("## The `.aec` format")[1].split("\n## ")[0]
    sums: list[int] = []
    for block in re.split(r"\n\s*\n", section):
        rows = [line.split("|")[2].strip() for line in block.splitlines() if line.startswith("| ")]
        sizes = [cell for cell in rows[1:] if re.fullmatch(r"[\d +]+", cell)]
        if sizes:
            sums.append(sum(int(n) for cell in sizes for n in cell.split("+")))
    return sums


def test_format_documents_agree_with_the_code() -> None:
    header = Header("ab" * 32, 176, 144, Fraction(30000, 1001), 10, 30, 2)
    chunk = Chunk(3, 1, 0xBEEF, b"\x01\x02\x03\x04")
    assert len(header.pack()) == HEADER_SIZE
    assert len(chunk.pack()) == chunk.size == CHUNK_HEAD_SIZE + 4
    assert _format_tables() == [HEADER_SIZE, CHUNK_HEAD_SIZE, LATENT_WORDS.size]
    assert f"k x {MIN_CHUNK_SIZE} damaged bytes (the smallest chunk)" in " ".join(FORMAT_DOC.read_text().split())
    for text in (FORMAT_DOC.read_text(), codec.coding.common.bitstream.__doc__):
        assert {int(n) for n in re.findall(r"(\d+)-byte (?:chunk )?head\b", text)} == {CHUNK_HEAD_SIZE}
        assert {int(n) for n in re.findall(r"(\d+)-byte header", text)} == {HEADER_SIZE}


def test_chunk_offsets_follow_from_the_format_constants() -> None:
    header = Header("cd" * 32, 32, 32, Fraction(25), 3, 30, 0)
    chunks = [Chunk(i, 0 if i == 0 else 1, i, bytes(4 * (i + 1))) for i in range(3)]
    data = header.pack() + b"".join(c.pack() for c in chunks)
    offset = HEADER_SIZE
    for chunk in chunks:
        assert data[offset : offset + len(SYNC)] == SYNC
        offset += CHUNK_HEAD_SIZE + len(chunk.payload)
    assert offset == len(data)
    assert list(read_chunks(data, "s")) == chunks


HEADER = Header("ab" * 32, 176, 144, Fraction(30000, 1001), 10, 30, 2)


def _flip(data: bytes, pos: int) -> bytes:
    return data[:pos] + bytes([data[pos] ^ 0x10]) + data[pos + 1 :]


def test_header_crc_guards_every_field() -> None:
    packed = HEADER.pack()
    assert Header.unpack(packed, "h") == HEADER
    spans = field_spans()
    assert max(end for _, end in spans.values()) == HEADER_SIZE - 4
    spans["crc32"] = (HEADER_SIZE - 4, HEADER_SIZE)
    checked_first = {"magic": "not an .aec stream", "version": "format version"}  # read before the crc
    for name, (start, end) in spans.items():
        for pos in range(start, end):
            with pytest.raises(CodecError, match=checked_first.get(name, "header crc32 mismatch")):
                Header.unpack(_flip(packed, pos), "h")


ABSURD = {
    "width 0": ({"width": 0}, "header field width is 0"),
    "height 0": ({"height": 0}, "height is 0"),
    "too wide": ({"width": MAX_SIDE + 1}, f"width is {MAX_SIDE + 1}, not 1 to {MAX_SIDE}"),
    "frames 0": ({"frames": 0}, "frames is 0"),
    "gop 0": ({"gop": 0}, "gop is 0"),
    "fps 0": ({"fps_num": 0}, "frame rate 0 "),
    "fps denominator 0": ({"fps_den": 0}, "fps denominator is 0"),
    "fps 2^32-1": ({"fps_num": 2**32 - 1, "fps_den": 1}, "frame rate 4294967295 "),
    "fps 1/(2^32-1)": ({"fps_num": 1, "fps_den": 2**32 - 1}, "frame rate 1/4294967295 "),
    "fps near 1 from huge terms": ({"fps_num": 2**32 - 1, "fps_den": 2**32 - 2}, "frame rate 4294967295/4294967294 "),
}


@pytest.mark.parametrize("case", ABSURD)
def test_absurd_header_fields_are_refused_though_the_crc_holds(case: str) -> None:
    values, message = ABSURD[case]
    with pytest.raises(CodecError, match=re.escape(message)) as caught:
        Header.unpack(craft(HEADER.pack(), **values), "h")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "values",
    [{"gop": 65535}, {"frames": 2**32 - 1}, {"quality": 255}, {"fps_num": 1000, "fps_den": 1}, {"fps_den": 3600}],
)
def test_extreme_but_valid_header_fields_round_trip(values: dict[str, int]) -> None:
    header = Header.unpack(craft(HEADER.pack(), **values), "h")
    assert Header.unpack(header.pack(), "h") == header


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"fps": Fraction(2000)}, "frame rate 2000 "),
        ({"fps": Fraction(1, 7200)}, "frame rate 1/7200 "),
        ({"fps": Fraction(1, 1_000_003)}, "frame rate 1/1000003 "),
        ({"frames": 0}, "frames is 0"),
        ({"frames": 2**32}, "frames is 4294967296"),
        ({"gop": 65536}, "gop is 65536"),
        ({"width": MAX_SIDE + 1}, f"width is {MAX_SIDE + 1}"),
    ],
)
def test_the_writer_refuses_what_the_reader_would(change: dict[str, object], message: str) -> None:
    fields = {**HEADER.__dict__, **change}
    with pytest.raises(CodecError, match=re.escape(message)):
        Header(**fields).pack()


def _fake_heads(size: int, seed: int) -> bytes:
    """``size`` bytes of noise with a fake chunk head every 24 bytes that passes every check but the
    crc32: the sync marker, a frame type, and a payload length in whole words that ends inside the data."""
    rng = np.random.default_rng(seed)
    data = bytearray(rng.integers(0, 256, size, np.uint8).tobytes())
    for pos in range(0, size - MIN_CHUNK_SIZE, 24):
        length = WORD * int(rng.integers(1, (size - pos - CHUNK_HEAD_SIZE) // WORD + 1))
        data[pos : pos + CHUNK_HEAD_SIZE] = SYNC + struct.pack("<IBIHI", 7, 1, length, 0, 0)
    return bytes(data)


def _resync_seconds(garbage: bytes) -> float:
    good = [Chunk(0, 0, 0, bytes(range(40))), Chunk(1, 1, 0, bytes(8))]
    data = HEADER.pack() + good[0].pack() + garbage + good[1].pack()
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        items = list(read_chunks(data, "s", resync=True))
        best = min(best, time.perf_counter() - started)
    assert items[0] == good[0] and items[2] == good[1]
    assert isinstance(items[1], Damage) and items[1].length == len(garbage)
    return best


def test_resynchronisation_is_linear_in_the_damaged_span() -> None:
    """Every fake head claims a payload running far on; reading each from every head was quadratic
    (64 KiB: 0.1 s, 512 KiB: 6 s). Eight times the span may take at most twenty times as long."""
    small, large = (_resync_seconds(_fake_heads(kib << 10, seed=kib)) for kib in (64, 512))
    assert large < 20 * small + 0.05, f"64 KiB: {small:.3f} s, 512 KiB: {large:.3f} s"


class _CountedReads(io.BytesIO):
    """A file that counts the bytes read from it."""

    read_bytes = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.read_bytes += len(data)
        return data


def _reads_per_byte(pairs: int) -> float:
    """Bytes read per byte of a stream of ``pairs`` good chunks, each followed by a head that passes
    every check but the crc32 and claims a payload to the end of the file, read with resync."""
    good = Chunk(5, 1, 0, bytes(8)).pack()
    size = HEADER_SIZE + pairs * (len(good) + CHUNK_HEAD_SIZE + 6)
    data = bytearray(HEADER.pack())
    for _ in range(pairs):
        data += good
        length = WORD * ((size - len(data) - CHUNK_HEAD_SIZE) // WORD)
        data += SYNC + struct.pack("<IBIHI", 7, 1, length, 0, 0) + bytes(6)
    stream = _CountedReads(bytes(data))
    items = list(read_chunks(stream, "s", resync=True))
    assert sum(isinstance(i, Chunk) for i in items) == pairs and len(items) == 2 * pairs
    return stream.read_bytes / size


def test_false_heads_after_good_chunks_cost_reads_linear_in_the_file() -> None:
    """Each false head's payload used to be read whole after every good chunk, and each resync read
    64 KiB ahead however near the next chunk: 970 bytes read per byte of a 96 KB file, growing with it."""
    small, large = _reads_per_byte(500), _reads_per_byte(4000)
    assert large < 1.5 * small and large < 100, f"{small:.0f} and {large:.0f} bytes read per byte"


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=5 * CHECKPOINT),
    a=st.integers(0, 5 * CHECKPOINT),
    b=st.integers(0, 5 * CHECKPOINT),
    origin=st.integers(0, 5 * CHECKPOINT),
)
def test_span_crc_equals_zlibs(data: bytes, a: int, b: int, origin: int) -> None:
    """From any start, and after the marks behind a span's start are forgotten."""
    start, end = sorted((min(a, len(data)), min(b, len(data))))
    spans = SpanCrc(lambda pos, count: data[pos : pos + count], min(origin, start))
    for value in (0, 0xFFFFFFFF, zlib.crc32(data)):
        assert spans.crc32(start, end, value) == zlib.crc32(data[start:end], value)
        spans.forget(start)


def _look_ends(limit: int) -> list[int]:
    """Where the reader's looks for the next chunk end, counted from where it starts looking."""
    ends, pos, step = [], 0, FIRST_SCAN
    while pos < limit:
        pos += step
        ends.append(pos)
        step = min(2 * step, SCAN)
    return ends


LOOK_ENDS = _look_ends(2 * SCAN)


@pytest.mark.parametrize("gap", sorted({end + d for end in LOOK_ENDS[:2] + LOOK_ENDS[-2:] for d in range(-1, 4)}))
def test_resynchronisation_finds_a_sync_marker_across_its_reads(gap: int) -> None:
    """The reader looks for the next chunk FIRST_SCAN bytes at first, then twice as many at each look
    up to SCAN: one whose marker starts in the last byte of a look, or just after it, is found all the same."""
    good = Chunk(0, 0, 0, bytes(8))
    data = HEADER.pack() + bytes(gap) + good.pack()
    assert list(read_chunks(data, "s", resync=True)) == [
        Damage(HEADER_SIZE, gap, "no chunk sync marker (found b'\\x00\\x00')"),
        good,
    ]


def test_info_shows_the_header_the_totals_and_on_request_each_chunk(tmp_path: Path) -> None:
    intra = join_intra(bytes(24), bytes(12))  # 40 bytes: the latent's length, 6 words of latent, a refinement
    chunks = [Chunk(0, 0, 0x0A0B, intra), Chunk(1, 1, 0xFFFF, bytes(8)), Chunk(2, 2, 0, bytes(12))]
    header = Header("ab" * 32, 32, 16, Fraction(30000, 1001), 3, 30, 2)
    stream = tmp_path / "s.aec"
    stream.write_bytes(header.pack() + b"".join(c.pack() for c in chunks))
    code, out, err = run_cli("info", stream, "--json", "--chunks")
    assert code == 0, err
    info = json.loads(out)
    assert info["header"] == {
        "version": VERSION,
        "bundle_sha256": "ab" * 32,
        "size": "32x16",
        "fps": "30000/1001",
        "frames": 3,
        "gop": 30,
        "quality": 2,
    }
    assert [(c["index"], c["type"], c["bytes"], c["check"], c["crc_ok"]) for c in info["chunks"]] == [
        (0, "I", CHUNK_HEAD_SIZE + 40, "0a0b", True),
        (1, "P", CHUNK_HEAD_SIZE + 8, "ffff", True),
        (2, "M", CHUNK_HEAD_SIZE + 12, "0000", True),
    ]
    assert info["chunks"][0]["refinement_bytes"] == 12 and "refinement_bytes" not in info["chunks"][1]
    assert [c["offset"] for c in info["chunks"]] == [HEADER_SIZE, HEADER_SIZE + 57, HEADER_SIZE + 82]
    size = stream.stat().st_size
    assert info["totals"] == {
        "bytes": size,
        "chunks": 3,
        "i_frames": 1,
        "p_frames": 2,
        "frame_types": {"I": 1, "P": 1, "M": 1},
        "mean_bytes": {"I": CHUNK_HEAD_SIZE + 40, "P": CHUNK_HEAD_SIZE + 8, "M": CHUNK_HEAD_SIZE + 12},
        "refinement_bytes": 12,
        "damaged": 0,
        "damaged_bytes": 0,
        "bpp": size * 8 / (3 * 32 * 16),
    }
    code, out, _ = run_cli("info", stream, "--json")
    assert code == 0 and json.loads(out) == {"header": info["header"], "totals": info["totals"]}
    code, text, _ = run_cli("info", stream, "--chunks")
    assert code == 0 and "bundle sha256   " + "ab" * 32 in text and "30000/1001" in text
    assert re.search(r"^\s+1\s+121\s+P\s+25\s+ffff\s+yes$", text, re.MULTILINE), text
    assert "3 (1 I, 1 P, 1 M)" in text and "I 57, P 25, M 29" in text
    assert re.search(r"^\s+0\s+64\s+I\s+57\s+0a0b\s+yes\s+12$", text, re.MULTILINE), text
    head, table, totals = text.split("\n\n")
    code, text, _ = run_cli("info", stream)
    assert code == 0 and text.split("\n\n") == [head, totals] and len(table.splitlines()) == 4


def test_info_names_an_i_frame_whose_latent_length_does_not_fit(tmp_path: Path) -> None:
    """A crafted I-frame (valid crc32) whose latent length runs past its payload: listed, not trusted."""
    header = Header("ab" * 32, 32, 16, Fraction(25), 1, 30, 0)
    stream = tmp_path / "s.aec"
    stream.write_bytes(header.pack() + Chunk(0, 0, 0, (1000).to_bytes(4, "little") + bytes(8)).pack())
    code, out, _ = run_cli("info", stream, "--json", "--chunks")
    info = json.loads(out)
    assert code == 0 and info["chunks"][0]["refinement_bytes"] is None and info["totals"]["refinement_bytes"] == 0
    code, text, _ = run_cli("info", stream, "--chunks")
    assert code == 0 and re.search(r"\s+I\s+29\s+0000\s+yes\s+latent length does not fit$", text, re.MULTILINE), text


def test_info_lists_damaged_chunks_as_not_ok(tmp_path: Path) -> None:
    good = [Chunk(i, 0 if i == 0 else 1, i, bytes(range(4 * (i + 1)))) for i in range(4)]
    data = HEADER.pack() + b"".join(c.pack() for c in good)
    third = HEADER_SIZE + good[0].size + good[1].size
    stream = tmp_path / "damaged.aec"
    stream.write_bytes(_flip(data, third + CHUNK_HEAD_SIZE) + _fake_heads(4096, seed=3))
    code, out, err = run_cli("info", stream, "--json", "--chunks")
    assert code == 0, err
    rows = json.loads(out)["chunks"]
    assert [(r["index"], r["crc_ok"]) for r in rows] == [(0, True), (1, True), (None, False), (3, True), (None, False)]
    assert rows[2]["damage"] == "frame 2: crc32 mismatch" and rows[2]["bytes"] == good[2].size
    assert rows[4]["bytes"] == 4096 and json.loads(out)["totals"]["damaged_bytes"] == good[2].size + 4096
    code, text, _ = run_cli("info", stream, "--chunks")
    assert code == 0 and "no  (frame 2: crc32 mismatch)" in text
    code, text, _ = run_cli("info", stream)
    assert code == 0 and re.search(rf"^damaged\s+2 \({good[2].size + 4096:,} bytes\)$", text, re.MULTILINE), text


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not an aec stream at all" * 8,
        HEADER.pack()[:40],
        craft(HEADER.pack(), width=0),
        craft(HEADER.pack(), fps_num=2**32 - 1, fps_den=1),
        _flip(HEADER.pack(), 50) + Chunk(0, 0, 0, bytes(4)).pack(),
    ],
)
def test_info_refuses_what_is_not_an_aec_stream_in_one_line(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.aec"
    path.write_bytes(content)
    code, out, err = run_cli("info", path)
    assert code == 2 and not out and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err


def test_info_lists_chunks_only_of_a_stream(tmp_path: Path) -> None:
    code, out, err = run_cli("info", tmp_path, "--chunks")
    assert (
        code == 2
        and not out
        and err.strip() == f"error: {tmp_path}: not a stream file; --chunks lists a stream's chunks"
    )


def test_info_on_a_stream_needs_no_torch(tmp_path: Path) -> None:
    stream = tmp_path / "s.aec"
    stream.write_bytes(HEADER.pack() + Chunk(0, 0, 0, bytes(4)).pack())
    script = (
        "import sys; sys.modules['torch'] = None\n"  # any 'import torch' now raises ImportError
        f"from codec.cli import main; sys.argv = ['codec', 'info', {str(stream)!r}, '--chunks']; main()\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "crc ok" in proc.stdout, proc.stderr


@pytest.mark.parametrize("version", [1, 2, 3, 4, 5, 6])
def test_an_older_stream_is_refused_naming_its_version(tmp_path: Path, version: int) -> None:
    """Version 1 chunks had no reconstruction check, version 2 P-frames coded latent differences under
    other rules, version 3 M-frames one vector per 16x16 block, version 4 I-frames without spatial contexts,
    version 5 I-frames in two checkerboard halves and M-frame levels without contexts, version 6 I-frames
    without their latent's length (nor a refinement): such a stream must be re-encoded, not misread."""
    old = craft(HEADER.pack(), version=version)
    message = (
        f"old.aec: .aec format version {version} is not supported: this aecodec reads version 7; re-encode the source"
    )
    with pytest.raises(CodecError) as caught:
        Header.unpack(old, "old.aec")
    assert str(caught.value) == message
    stream = tmp_path / "old.aec"
    stream.write_bytes(old + b"AF" + bytes(17))
    code, out, err = run_cli("info", stream)
    assert code == 2 and not out and err.strip() == f"error: {stream}: {message.split(': ', 1)[1]}", err
