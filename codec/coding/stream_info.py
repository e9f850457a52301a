"""``codec info STREAM.aec``: a stream's header and chunks as the checked reader sees them.

No bundle and no network is needed. The header must be whole and valid (anything else is a
CodecError); after it, every stretch the reader cannot take as a chunk is listed as damaged, with
the reason, and reading resumes at the next valid chunk, as ``codec decode --conceal`` does.
"""

from __future__ import annotations

from typing import Any

from codec.coding.bitstream import FRAME_TYPES, HEADER_SIZE, I_FRAME, VERSION, Chunk, Header, read_chunks
from codec.coding.intra_refinement import split_intra
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


def stream_info(data: bytes, source: str) -> dict[str, Any]:
    """The header, one row per chunk or damaged stretch (offset, index, type, bytes, the reconstruction
    check in 4 hex digits, crc_ok; an I-frame's refinement bytes, None where its latent length does
    not fit) and the totals of the ``.aec`` stream ``data``, JSON-ready: chunks and their mean bytes
    (head included) by type, the I-frames' refinement bytes; bpp counts all its bytes over the
    header's frames."""
    header = Header.unpack(data, source)
    chunks: list[dict[str, Any]] = []
    offset = HEADER_SIZE
    for item in read_chunks(data, source, resync=True):
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
        chunks.append({"offset": offset, **row})
        offset += row["bytes"]
    intact = [c for c in chunks if c["crc_ok"]]
    i_frames = sum(c["type"] == FRAME_TYPES[I_FRAME] for c in intact)
    by_type = {name: [c["bytes"] for c in intact if c["type"] == name] for name in FRAME_TYPES.values()}
    return {
        "header": {
            "version": VERSION,
            "bundle_sha256": header.bundle_sha256,
            "size": f"{header.width}x{header.height}",
            "fps": str(header.fps),
            "frames": header.frames,
            "gop": header.gop,
            "quality": header.quality,
        },
        "chunks": chunks,
        "totals": {
            "bytes": len(data),
            "chunks": len(intact),
            "i_frames": i_frames,
            "p_frames": len(intact) - i_frames,  # predicted: latent P and motion M
            "frame_types": {name: len(sizes) for name, sizes in by_type.items() if sizes},
            "mean_bytes": {name: sum(sizes) / len(sizes) for name, sizes in by_type.items() if sizes},
            "refinement_bytes": sum(c.get("refinement_bytes") or 0 for c in intact),
            "damaged": len(chunks) - len(intact),
            "damaged_bytes": sum(c["bytes"] for c in chunks if not c["crc_ok"]),
            "bpp": len(data) * 8 / (header.frames * header.width * header.height),
        },
    }


def _refinement_bytes(chunk: Chunk) -> int | None:
    """The bytes of an I-frame's payload that refine its latent's reconstruction."""
    try:
        return len(split_intra(chunk.payload, "")[1])
    except CodecError:
        return None


def format_stream_info(info: dict[str, Any]) -> str:
    """:func:`stream_info` as aligned header lines, a chunk table and totals."""
    head, totals = info["header"], info["totals"]
    table = [f"{'frame':>7}  {'offset':>10}  type  {'bytes':>9}  check  crc ok  refinement"]
    for c in info["chunks"]:
        index = "-" if c["index"] is None else c["index"]
        line = (
            f"{index:>7}  {c['offset']:>10}  {c['type'] or '-':>4}  {c['bytes']:>9}  {c['check'] or '-':>5}  "
            f"{'yes' if c['crc_ok'] else 'no'}"
        )
        if c["crc_ok"] and c["type"] == FRAME_TYPES[I_FRAME]:
            refined = c["refinement_bytes"]
            line += f"  {'latent length does not fit' if refined is None else f'{refined:>10}'}"
        table.append(line + ("" if c["crc_ok"] else f"  ({c['damage']})"))
    rows = [
        ("total bytes", totals["bytes"]),
        ("chunks", f"{totals['chunks']} ({', '.join(f'{n} {t}' for t, n in totals['frame_types'].items())})"),
        ("mean bytes", ", ".join(f"{t} {b:,.0f}" for t, b in totals["mean_bytes"].items())),
        ("I-frame refinement bytes", f"{totals['refinement_bytes']:,}"),
        ("damaged", f"{totals['damaged']} ({totals['damaged_bytes']:,} bytes)"),
        ("bpp", totals["bpp"]),
    ]
    labels = [(HEADER_LABELS[key], value) for key, value in head.items()]
    return "\n\n".join([format_rows(labels), "\n".join(table), format_rows(rows)])
