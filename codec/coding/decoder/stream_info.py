"""``codec info STREAM.aec``: a stream's header and chunks as the checked reader sees them.

No bundle and no network is needed. The header must be whole and valid (anything else is a
CodecError); after it, every stretch the reader cannot take as a chunk is damaged, with the reason,
and reading resumes at the next valid chunk, as ``codec decode --conceal`` does. The stream is read a
chunk at a time and only totals are kept, so memory does not grow with its length; the chunks' rows,
when asked for, are written as they are read.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from codec.coding.common.bitstream import FRAME_TYPES, HEADER_SIZE, I_FRAME, VERSION, Chunk, Header, StreamReader
from codec.coding.common.intra_refinement import split_intra
from codec.errors import CodecError
from codec.io.summary import format_rows

HEADER_LABELS = {
    "version": "format version",
    "bundle_sha256": "bundle sha256",
    "size": "size",
    "fps": "fps",
    "frames": "frames",
    "gop": "GOP",
    "quality": "quality",
}


def stream_info_lines(
    stream: bytes | BinaryIO, source: str, *, chunks: bool = False, as_json: bool = False
) -> Iterator[str]:
    """The lines of ``codec info`` on the ``.aec`` stream ``stream`` (its bytes or a seekable binary
    file), each as soon as it is known: the header (checked before the first line, so that a bad one
    is a CodecError and nothing is written), with ``chunks`` one row per chunk or damaged stretch,
    then the totals. As aligned text, or with ``as_json`` one JSON document: ``header``, ``chunks``
    (with ``chunks``) and ``totals``, as :func:`_chunk_rows` and :meth:`_Totals.to_dict` make them."""
    reader = StreamReader(stream, source)
    header = Header.unpack(reader.read(0, HEADER_SIZE), source)
    totals = _Totals()
    rows = map(totals.add, _chunk_rows(reader))
    head = {
        "version": VERSION,
        "bundle_sha256": header.bundle_sha256,
        "size": f"{header.width}x{header.height}",
        "fps": str(header.fps),
        "frames": header.frames,
        "gop": header.gop,
        "quality": header.quality,
    }
    if as_json:
        yield "{"
        yield f'  "header": {_nested(head)},'
        if chunks:
            yield '  "chunks": ['
            yield from _items((f"    {json.dumps(row)}" for row in rows), ",")
            yield "  ],"
    else:
        yield format_rows([(HEADER_LABELS[key], value) for key, value in head.items()])
        if chunks:
            yield ""
            yield f"{'frame':>7}  {'offset':>10}  type  {'bytes':>9}  check  crc ok  refinement"
            yield from map(_format_row, rows)
        yield ""
    for _ in rows:  # whatever was not listed still counts
        pass
    values = totals.to_dict(header, reader.size)
    if as_json:
        yield f'  "totals": {_nested(values)}'
        yield "}"
    else:
        yield format_rows(
            [
                ("total bytes", values["bytes"]),
                ("chunks", f"{values['chunks']} ({', '.join(f'{n} {t}' for t, n in values['frame_types'].items())})"),
                ("mean bytes", ", ".join(f"{t} {b:,.0f}" for t, b in values["mean_bytes"].items())),
                ("I-frame refinement bytes", f"{values['refinement_bytes']:,}"),
                ("damaged", f"{values['damaged']} ({values['damaged_bytes']:,} bytes)"),
                ("bpp", values["bpp"]),
            ]
        )


def _chunk_rows(reader: StreamReader) -> Iterator[dict[str, Any]]:
    """One JSON-ready row per chunk or damaged stretch after the header, read as it is asked for: its
    offset, index, type, bytes, the reconstruction check in 4 hex digits and crc_ok; an I-frame's
    refinement bytes (None where its latent length does not fit), a damaged stretch's reason."""
    offset = HEADER_SIZE
    for item in reader.chunks(resync=True):
        if isinstance(item, Chunk):
            row = {
                "index": item.index,
                "type": FRAME_TYPES[item.frame_type],
                "bytes": item.size,
                "check": f"{item.check:04x}",
                "crc_ok": True,
            }
            if item.frame_type == I_FRAME:
                row["refinement_bytes"] = _refinement_bytes(item)
        else:
            row = {
                "index": None,
                "type": None,
                "bytes": item.length,
                "check": None,
                "crc_ok": False,
                "damage": item.reason,
            }
        yield {"offset": offset, **row}
        offset += row["bytes"]


@dataclass
class _Totals:
    """The stream's totals, kept as its rows go by: chunks and bytes by type, the I-frames'
    refinement bytes, damaged stretches and their bytes."""

    chunks: Counter[str] = field(default_factory=Counter)
    bytes: Counter[str] = field(default_factory=Counter)
    refinement_bytes: int = 0
    damaged: int = 0
    damaged_bytes: int = 0

    def add(self, row: dict[str, Any]) -> dict[str, Any]:
        """Count ``row`` and return it."""
        if row["crc_ok"]:
            self.chunks[row["type"]] += 1
            self.bytes[row["type"]] += row["bytes"]
            self.refinement_bytes += row.get("refinement_bytes") or 0
        else:
            self.damaged += 1
            self.damaged_bytes += row["bytes"]
        return row

    def to_dict(self, header: Header, size: int) -> dict[str, Any]:
        """JSON-ready: the stream's ``size``, chunks and their mean bytes (head included) by type, the
        I-frames' refinement bytes, the damage, and the bpp of all its bytes over the header's frames."""
        intact = sum(self.chunks.values())
        i_frames = self.chunks[FRAME_TYPES[I_FRAME]]
        types = [name for name in FRAME_TYPES.values() if self.chunks[name]]
        return {
            "bytes": size,
            "chunks": intact,
            "i_frames": i_frames,
            "p_frames": intact - i_frames,  # predicted: latent P and motion M
            "frame_types": {name: self.chunks[name] for name in types},
            "mean_bytes": {name: self.bytes[name] / self.chunks[name] for name in types},
            "refinement_bytes": self.refinement_bytes,
            "damaged": self.damaged,
            "damaged_bytes": self.damaged_bytes,
            "bpp": size * 8 / (header.frames * header.width * header.height),
        }


def _refinement_bytes(chunk: Chunk) -> int | None:
    """The bytes of an I-frame's payload that refine its latent's reconstruction."""
    try:
        return len(split_intra(chunk.payload, "")[1])
    except CodecError:
        return None


def _format_row(c: dict[str, Any]) -> str:
    """A row of :func:`_chunk_rows` as a line of the chunk table."""
    index = "-" if c["index"] is None else c["index"]
    line = (
        f"{index:>7}  {c['offset']:>10}  {c['type'] or '-':>4}  {c['bytes']:>9}  {c['check'] or '-':>5}  "
        f"{'yes' if c['crc_ok'] else 'no'}"
    )
    if c["crc_ok"] and c["type"] == FRAME_TYPES[I_FRAME]:
        refined = c["refinement_bytes"]
        line += f"  {'latent length does not fit' if refined is None else f'{refined:>10}'}"
    return line + ("" if c["crc_ok"] else f"  ({c['damage']})")


def _nested(value: dict[str, Any]) -> str:
    """``value`` as indented JSON, to stand as a member of the top-level object."""
    return json.dumps(value, indent=2).replace("\n", "\n  ")


def _items(lines: Iterable[str], separator: str) -> Iterator[str]:
    """``lines`` with ``separator`` after each but the last."""
    previous = None
    for line in lines:
        if previous is not None:
            yield previous + separator
        previous = line
    if previous is not None:
        yield previous
