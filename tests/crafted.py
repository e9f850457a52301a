""".aec headers, decoder.weights files and stream cache entries as an attacker writes them: any
field values, with a crc32 that holds, payloads range-coded by the real coder under any table, and
entries whose every check holds.

The layouts are spelled out here from the formats' documentation, independently of
codec.coding.common.bitstream and codec.coding.common.decoder_weights.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from aecodec.server.catalog import Entry
from aecodec.server.stored import StreamStore, identity, record_tag
from codec.coding.common.entropy_coding import SymbolRangeEncoder, Table
from codec.coding.encoder.encode import StreamEncoder

# (field, struct code) in header order; the crc32 of these bytes follows them.
FIELDS = (
    ("magic", "4s"),
    ("version", "H"),
    ("flags", "H"),
    ("bundle_sha256", "32s"),
    ("width", "H"),
    ("height", "H"),
    ("fps_num", "I"),
    ("fps_den", "I"),
    ("frames", "I"),
    ("gop", "H"),
    ("quality", "B"),
    ("reserved", "B"),
)
LAYOUT = struct.Struct("<" + "".join(code for _, code in FIELDS))


def field_spans() -> dict[str, tuple[int, int]]:
    """Each field's [start, end) byte range in the header."""
    spans, pos = {}, 0
    for name, code in FIELDS:
        size = struct.calcsize("<" + code)
        spans[name] = (pos, pos + size)
        pos += size
    return spans


def craft(stream: bytes, **values: int | bytes) -> bytes:
    """``stream`` with the named header fields replaced and the header crc32 made to hold again."""
    fields = dict(zip((name for name, _ in FIELDS), LAYOUT.unpack_from(stream), strict=True))
    unknown = values.keys() - fields.keys()
    assert not unknown, f"no such header fields: {unknown}"
    body = LAYOUT.pack(*{**fields, **values}.values())
    return body + struct.pack("<I", zlib.crc32(body)) + stream[LAYOUT.size + 4 :]


def weights_head(dims: tuple[int, ...], steps: list[float], name: bytes = b"w", table: int = 0) -> bytes:
    """One tensor's entry in a decoder.weights header."""
    head = struct.pack("<B", len(name)) + name + struct.pack(f"<B{len(dims)}I", len(dims), *dims)
    return head + struct.pack("<H", table) + struct.pack(f"<{len(steps)}f", *steps)


def weights_file(tables: list[tuple[int, ...]], heads: list[bytes], payload: bytes) -> bytes:
    """A decoder.weights file: version 1, ``tables`` (frequencies), the tensors' ``heads``, ``payload``."""
    out = b"AECW" + struct.pack("<BH", 1, len(tables))
    for f in tables:
        out += struct.pack(f"<H{len(f)}H", len(f), *f)
    return out + struct.pack("<H", len(heads)) + b"".join(heads) + struct.pack("<I", len(payload)) + payload


def range_coded(symbols: np.ndarray, frequencies: tuple[int, ...], blocks: int = 1) -> bytes:
    """``symbols`` range-coded ``blocks`` times under the table of ``frequencies``, as the coder writes them."""
    table = Table(frequencies)
    encoder = SymbolRangeEncoder()
    for _ in range(blocks):
        encoder.encode_block(symbols, table, table.model())
    return encoder.finish()


def noise_payload(weights: bytes) -> bytes:
    """The decoder.weights file ``weights`` with its payload (the last n bytes, n given just before
    them) replaced by as many bytes of 0xff."""
    n = next(n for n in range(4, len(weights), 4) if int.from_bytes(weights[-n - 4 : -n], "little") == n)
    return weights[:-n] + b"\xff" * n


def write_record(path: Path, record: dict[str, Any], key: bytes | None) -> None:
    """A stream cache record of ``record``'s fields, signed with ``key`` (None: unsigned)."""
    if key is not None:
        record = {**record, "tag": record_tag(key, record)}
    path.write_text(json.dumps(record))


def plant_entry(
    store: StreamStore, entry: Entry, quality: int, frames: Iterable[np.ndarray], key: bytes | None
) -> None:
    """``frames`` encoded with the served bundle at ``quality`` under the honest header, and a record
    whose identity, size, sha256 and frame count agree, signed with ``key``: an entry every check of
    which holds but the signature, unless ``key`` is the server's own."""
    encoder = StreamEncoder(entry.bundle, width=entry.info.width, height=entry.info.height, quality=quality)
    chunks = [encoder.encode(frame, i).chunk for i, frame in enumerate(frames)]
    data = entry.header(quality, len(chunks)).pack() + b"".join(c.pack() for c in chunks)
    path, record_path = store.paths(entry, quality)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_bytes(data)
    record = {
        "identity": identity(entry, quality),
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "frames": len(chunks),
        "psnr": 30.0,
    }
    write_record(record_path, record, key)
