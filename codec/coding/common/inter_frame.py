"""Motion-compensated P-frames (chunk type M), the side encoder and decoder share: a frame is the
previous decoded frame moved by one vector per BLOCK x BLOCK block (codec.coding.common.motion), plus an
integer residual (codec.coding.common.transform: YCoCg-R, H.264's 4x4 transform, Co and Cg quantized
CHROMA_QP_OFFSET coarser than Y). All of it is integer arithmetic: given the same previous frame,
every machine rebuilds the same pixels, so an M-frame adds no drift of its own.

The payload, one range-coded message under the shipped integer tables (inter_tables.json):

    QP (QP_BITS uniform bits, 0..MAX_QP) | motion field (codec.coding.common.motion_coding)
    | residual levels (codec.coding.common.residual_coding)

A 32x32 block that moves as one, by its neighbours' median vector, with an empty residual is a
skip: it costs one binary symbol for its vector, one for its split flag and, per component, one for
each of its 16x16 squares' residual, each under a probability the frame names. Everything decoded
is bounded (the QP, every vector, every level), and how much is decoded depends only on the frame
size, which the bundle bounds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import numpy as np

from codec.coding import kernels
from codec.coding.common.entropy_coding import SymbolRangeDecoder, SymbolRangeEncoder, Table
from codec.coding.common.motion import Reference
from codec.coding.common.motion_coding import decode_motion
from codec.coding.common.residual_coding import Residual, decode_residual
from codec.coding.common.transform import MAX_QP, component_qps
from codec.errors import CodecError, naming

BLOCK = 16  # motion block side, pixels
CHROMA_QP_OFFSET = 6  # Co and Cg quantized at QP + 6: on bikes, fewer bytes at the same RGB PSNR than + 0
QP_BITS = 6
TABLES_FILE = "inter_tables.json"


@cache
def inter_tables() -> tuple[tuple[Table, ...], tuple[Any, ...]]:
    """The shipped tables and their constriction models (built once per process)."""
    obj = json.loads(resources.files("codec.coding.common").joinpath(TABLES_FILE).read_text())
    tables = tuple(Table(tuple(int(f) for f in freqs)) for freqs in obj["tables"])
    if not tables or not all(t.valid for t in tables):
        raise CodecError(f"{TABLES_FILE}: not a set of valid frequency tables; reinstall aecodec")
    return tables, tuple(t.model() for t in tables)


def residual_grid(height: int, width: int) -> tuple[int, int]:
    """Rows and columns of 4x4 residual blocks that cover a frame (its sides rounded up to 4)."""
    return -(-height // 4), -(-width // 4)


def encode_qp(coder: SymbolRangeEncoder, qp: int) -> None:
    """Append a residual's ``qp`` (QP_BITS uniform bits)."""
    coder.encode_bits(np.array([qp]), np.array([QP_BITS]))


def decode_qp(coder: SymbolRangeDecoder, what: str) -> int:
    """The QP :func:`encode_qp` appended; one beyond MAX_QP is a CodecError naming ``what`` residual."""
    qp = int(coder.decode_bits(np.array([QP_BITS]))[0])
    if qp > MAX_QP:
        raise CodecError(f"{what} QP {qp} is beyond {MAX_QP}")
    return qp


def residual_for(frame: np.ndarray, prediction: np.ndarray, qp: int) -> np.ndarray:
    """The levels at ``qp`` of ``frame`` minus ``prediction`` (both (H, W, 3) uint8): what
    :func:`add_residual` rebuilds from (a kernel: :func:`codec.coding.kernels.reference.forward_residual`
    is its specification)."""
    return kernels.forward_residual(frame, prediction, component_qps(qp, CHROMA_QP_OFFSET))


def add_residual(prediction: np.ndarray, residual: Residual, qp: int) -> np.ndarray:
    """The (H, W, 3) uint8 frame: ``prediction`` plus what ``residual``'s levels rebuild at ``qp``,
    clipped (a kernel: :func:`codec.coding.kernels.reference.add_residual` is its specification)."""
    return kernels.add_residual(prediction, residual.blocks, residual.levels, component_qps(qp, CHROMA_QP_OFFSET))


@dataclass(frozen=True)
class InterFields:
    """An M-frame's fields as decoded from its payload: what :func:`predict_inter` rebuilds it from."""

    qp: int
    vectors: np.ndarray  # (rows, cols, 2) quarter pixels, one per BLOCK x BLOCK block
    residual: Residual


def parse_inter(payload: bytes, height: int, width: int, source: str) -> InterFields:
    """The fields of an M chunk's ``payload`` for a height x width frame; a payload that does not
    decode to bounded fields is a CodecError naming ``source``. Needs no earlier frame, so a
    decoder can parse ahead of its reconstruction."""
    tables, models = inter_tables()
    with naming(source):
        coder = SymbolRangeDecoder(payload)
        qp = decode_qp(coder, "residual")
    vectors = decode_motion(coder, -(-height // BLOCK), -(-width // BLOCK), tables, models, source)
    residual = decode_residual(coder, *residual_grid(height, width), tables, models, source)
    return InterFields(qp, vectors, residual)


def predict_inter(fields: InterFields, previous: np.ndarray) -> np.ndarray:
    """The frame ``fields`` code, predicted from ``previous`` (the decoded frame before it, (H, W, 3) uint8)."""
    return add_residual(Reference(previous, BLOCK).predict(fields.vectors), fields.residual, fields.qp)


def decode_inter(payload: bytes, previous: np.ndarray, source: str) -> np.ndarray:
    """The frame an M chunk's ``payload`` codes, predicted from ``previous``: :func:`parse_inter`
    then :func:`predict_inter`."""
    return predict_inter(parse_inter(payload, *previous.shape[:2], source), previous)
