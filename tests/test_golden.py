"""A golden .aec stream: fixed integer tables, latents and reconstructed frames must code to the same
bytes (the chunks' reconstruction checks included), and those bytes decode back exactly; its
M-frames (fixed vectors and residual levels, moving fixed frames) and the refinement its second
I-frame carries (fixed levels on a fixed base) decode to the same pixels. A failure
here means streams written before no longer decode (or the other way round): a change of the format,
of the check or of constriction's coder, not of a test.

Regenerate deliberately, with ``AECODEC_REGENERATE_GOLDEN=1``: it rewrites tests/expected/golden.aec
(golden_entropy.json stays as it is; format 6 gave it the I-frame pass tables, each pass its
channel's format 5 row rotated by the pass) and says which GOLDEN_SHA256 and DECODED_SHA256 to put
here.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import os
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from codec.coding.common.bitstream import (
    I_FRAME,
    M_FRAME,
    P_FRAME,
    Chunk,
    Header,
    frame_check,
    read_chunks,
    write_stream,
)
from codec.coding.common.entropy_coding import MAX_MAGNITUDE_BITS, CodingTables
from codec.coding.common.inter_frame import decode_inter, residual_grid
from codec.coding.common.intra_refinement import Refinement, split_intra
from codec.coding.common.latent_codec import LatentPacker, LatentUnpacker
from codec.coding.common.motion import MAX_VECTOR
from codec.coding.common.motion_coding import expand
from codec.coding.common.residual_coding import Residual
from codec.coding.encoder.inter_encode import pack_inter

EXPECTED = Path(__file__).parent / "expected"
GOLDEN, TABLES = EXPECTED / "golden.aec", EXPECTED / "golden_entropy.json"
GOLDEN_SHA256 = "e5f73e5f5a9113468a870d9e7f785d962a98409828557f493fab7b7b72bd4fb6"
DECODED_SHA256 = "4b82dc1e42a2092d527e7a636274666e2f00ab49ad845a746a6da98084b58e69"  # of the decoded pixels
REGENERATE = os.environ.get("AECODEC_REGENERATE_GOLDEN") == "1"

SHAPE = (3, 4, 5)  # latent channels, rows, columns: an 80x64 frame at stride 16
QUALITY = 1  # of the two levels in golden_entropy.json (its P tables and its I-frame pass tables
# differ by bucket and pass, so the stream pins which bucket each symbol is coded in)
TYPES = [I_FRAME, P_FRAME, P_FRAME, I_FRAME, P_FRAME]
M_QPS = [0, 30, 51]  # the M-frames after them, each at its QP
REFINED = 3  # the I-frame that carries a refinement, at REFINED_QP
REFINED_QP = 20


def _latents() -> list[np.ndarray]:
    """Integer latents from numpy's legacy RandomState, whose streams are frozen, with escapes:
    values beyond every table's range, up to the largest the coder takes."""
    rng = np.random.RandomState(2024)
    q = rng.randint(-6, 7, SHAPE).astype(np.int64)
    frames = []
    for _ in TYPES:
        q = q + rng.randint(-2, 3, SHAPE)
        frames.append(q)
    frames[0][0, 0, 0] = 1000
    frames[1][1, 2, 3] = -(2**21)
    frames[3][2, 3, 4] = (1 << MAX_MAGNITUDE_BITS) - 100
    return frames


def _checks() -> list[int]:
    """The reconstruction check of each frame: of 80x64 uint8 frames from a frozen RandomState stream."""
    rng = np.random.RandomState(7)
    return [frame_check(rng.randint(0, 256, (64, 80, 3)).astype(np.uint8)) for _ in TYPES]


def _reference() -> np.ndarray:
    """The frame the first M-frame moves: 80x64 uint8, smooth enough to interpolate, from a frozen stream."""
    coarse = np.random.RandomState(11).randint(0, 256, (8, 10, 3)).astype(np.float64)
    return np.kron(coarse, np.ones((8, 8, 1))).astype(np.uint8)


def _inter_payloads() -> list[bytes]:
    """M-frame payloads of fixed vectors (the bounds included, some 32x32 blocks split) and sparse
    levels (escapes included), the second's dense on the left, so that its levels are coded split
    by context and the others' not."""
    rng = np.random.RandomState(12)
    payloads = []
    for qp in M_QPS:
        split = rng.rand(2, 3) < 0.5  # the 32x32 blocks (the last column's half outside the frame)
        split[0, 0] = split[1, 2] = True
        vectors = rng.randint(-40, 41, (4, 5, 2))
        vectors[0, 0], vectors[3, 4] = (MAX_VECTOR, -MAX_VECTOR), (-MAX_VECTOR, 3)
        vectors = np.where(expand(split, 4, 5)[..., None], vectors, expand(vectors[::2, ::2], 4, 5))
        levels = rng.randint(-3, 4, (*residual_grid(64, 80), 3, 4, 4)) * (rng.rand(16, 20, 3, 4, 4) < 0.1)
        levels[2, 3, 0, 0, 0] = 900
        if qp == M_QPS[1]:  # busy on the left, quiet on the right: coded split by context
            levels[:, :8] = rng.randint(-12, 13, (16, 8, 3, 4, 4))
        payloads.append(pack_inter(qp, vectors, split, levels))
    return payloads


def _refinement() -> Refinement:
    """Sparse levels (an escape among them) that refine the I-frame REFINED, dense in its top rows."""
    rng = np.random.RandomState(13)
    levels = rng.randint(-4, 5, (*residual_grid(64, 80), 3, 4, 4)) * (rng.rand(16, 20, 3, 4, 4) < 0.15)
    levels[:4] = rng.randint(-9, 10, (4, 20, 3, 4, 4))
    levels[9, 9, 1, 0, 0] = -700
    return Refinement(REFINED_QP, Residual.of(levels))


def _decoded(payloads: list[bytes], refinement: bytes) -> list[np.ndarray]:
    """The M-frames' pixels, moving the reference frame, then the reference refined by ``refinement``."""
    frames, previous = [], _reference()
    for index, payload in enumerate(payloads):
        previous = decode_inter(payload, previous, f"M-frame {index}")
        frames.append(previous)
    return [*frames, Refinement.decode(refinement, 64, 80, "refinement").apply(_reference())]


def _stream(tables: CodingTables, latents: list[np.ndarray]) -> bytes:
    packer = LatentPacker(tables, QUALITY)
    frames = zip(latents, TYPES, _checks(), strict=True)
    refined = _refinement().encode()
    chunks = [
        packer.pack(q, index, kind, check, refined if index == REFINED else b"")
        for index, (q, kind, check) in enumerate(frames)
    ]
    payloads = _inter_payloads()
    for payload, frame in zip(payloads, _decoded(payloads, refined)[: len(M_QPS)], strict=True):
        chunks.append(Chunk(len(chunks), M_FRAME, frame_check(frame), payload))
    names = hashlib.sha256(json.dumps(tables.to_json(), sort_keys=True).encode()).hexdigest()
    header = Header(names, 80, 64, Fraction(30000, 1001), len(chunks), 3, QUALITY)
    out = io.BytesIO()
    write_stream(out, header, iter(chunks))
    return out.getvalue()


def test_golden_stream() -> None:
    latents = _latents()
    tables = CodingTables.from_json(json.loads(TABLES.read_text()), str(TABLES))
    stream = _stream(tables, latents)
    sha = hashlib.sha256(stream).hexdigest()
    decoded_sha = hashlib.sha256(b"".join(_pixels(list(read_chunks(stream, "golden"))))).hexdigest()
    if REGENERATE:
        GOLDEN.write_bytes(stream)
        pytest.skip(f"regenerated {GOLDEN.name}: GOLDEN_SHA256 = {sha!r}, DECODED_SHA256 = {decoded_sha!r}")
    assert sha == GOLDEN_SHA256, "these latents, vectors and levels no longer code to the golden stream's bytes"
    golden = GOLDEN.read_bytes()
    assert hashlib.sha256(golden).hexdigest() == GOLDEN_SHA256
    unpacker = LatentUnpacker(tables, Header.unpack(golden, GOLDEN.name).quality, SHAPE)
    chunks = list(read_chunks(golden, GOLDEN.name))
    decoded = [unpacker.unpack(chunk) for chunk in chunks[: len(TYPES)]]
    assert len(decoded) == len(latents) and all(np.array_equal(d, q) for d, q in zip(decoded, latents, strict=True))
    assert [chunk.check for chunk in chunks[: len(TYPES)]] == _checks()
    pixels = _pixels(chunks)
    assert hashlib.sha256(b"".join(pixels)).hexdigest() == DECODED_SHA256, "no longer decodes to these pixels"
    assert [chunk.check for chunk in chunks[len(TYPES) :]] == [frame_check(f) for f in pixels[: len(M_QPS)]]
    refinement = Refinement.decode(split_intra(chunks[REFINED].payload, "golden")[1], 64, 80, "golden")
    assert refinement.qp == REFINED_QP and np.array_equal(refinement.levels.dense(), _refinement().levels.dense())
    assert all(
        split_intra(chunks[k].payload, "golden")[1] == b""
        for k in range(len(TYPES))
        if TYPES[k] == I_FRAME and k != REFINED
    )


def _pixels(chunks: list[Chunk]) -> list[np.ndarray]:
    """What the golden ``chunks`` decode to that has no network in it: the M-frames and the refinement."""
    return _decoded(
        [chunk.payload for chunk in chunks[len(TYPES) :]], split_intra(chunks[REFINED].payload, "golden")[1]
    )


def test_constriction_is_pinned_to_the_version_that_made_the_golden_stream() -> None:
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert re.findall(r'"constriction==([\w.]+)"', pyproject) == [importlib.metadata.version("constriction")]
