"""The .aec container on its own: layout, documentation and resynchronisation. No model needed."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import codec.bitstream
from codec.bitstream import CHUNK_HEAD_SIZE, HEADER_SIZE, SYNC, Chunk, Header, read_chunks

README = Path(__file__).parents[1] / "README.md"


def _format_tables() -> list[int]:
    """The sum of the bytes column of each table in README's `.aec` format section (payload excluded)."""
    section = README.read_text().split("### The `.aec` format")[1].split("\n## ")[0]
    sums: list[int] = []
    for block in re.split(r"\n\s*\n", section):
        rows = [line.split("|")[2].strip() for line in block.splitlines() if line.startswith("| ")]
        sizes = [cell for cell in rows[1:] if re.fullmatch(r"[\d +]+", cell)]
        if sizes:
            sums.append(sum(int(n) for cell in sizes for n in cell.split("+")))
    return sums


def test_format_documents_agree_with_the_code() -> None:
    header = Header("ab" * 32, 176, 144, Fraction(30000, 1001), 10, 30, 2)
    chunk = Chunk(3, 1, b"\x01\x02\x03\x04")
    assert len(header.pack()) == HEADER_SIZE
    assert len(chunk.pack()) == chunk.size == CHUNK_HEAD_SIZE + 4
    assert _format_tables() == [HEADER_SIZE, CHUNK_HEAD_SIZE]
    for text in (README.read_text(), codec.bitstream.__doc__):
        assert {int(n) for n in re.findall(r"(\d+)-byte (?:chunk )?head\b", text)} == {CHUNK_HEAD_SIZE}
        assert {int(n) for n in re.findall(r"(\d+)-byte header", text)} == {HEADER_SIZE}


def test_chunk_offsets_follow_from_the_format_constants() -> None:
    header = Header("cd" * 32, 32, 32, Fraction(25), 3, 30, 0)
    chunks = [Chunk(i, 0 if i == 0 else 1, bytes(4 * (i + 1))) for i in range(3)]
    data = header.pack() + b"".join(c.pack() for c in chunks)
    offset = HEADER_SIZE
    for chunk in chunks:
        assert data[offset : offset + len(SYNC)] == SYNC
        offset += CHUNK_HEAD_SIZE + len(chunk.payload)
    assert offset == len(data)
    assert list(read_chunks(data, "s")) == chunks
