""".aec headers as an attacker writes them: any field values, with a crc32 that holds.

The layout is spelled out here from README's format table, independently of codec.coding.bitstream.
"""

from __future__ import annotations

import struct
import zlib

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
