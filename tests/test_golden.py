"""A golden .aec stream: fixed integer tables, latents and reconstructed frames must code to the same
bytes (the chunks' reconstruction checks included), and those bytes decode back exactly. A failure
here means streams written before no longer decode (or the other way round): a change of the format,
of the check or of constriction's coder, not of a test.

Regenerate deliberately, with ``AECODEC_REGENERATE_GOLDEN=1``: it rewrites tests/expected/ and
says which GOLDEN_SHA256 to put here.
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

from codec.coding.bitstream import I_FRAME, P_FRAME, Header, frame_check, read_chunks, write_stream
from codec.coding.context import CONTEXTS
from codec.coding.entropy_coding import MAX_MAGNITUDE_BITS, CodingTables
from codec.coding.latent_codec import LatentPacker, LatentUnpacker

EXPECTED = Path(__file__).parent / "expected"
GOLDEN, TABLES = EXPECTED / "golden.aec", EXPECTED / "golden_entropy.json"
GOLDEN_SHA256 = "092720327e14bb9e8eeb7ff49aa6dbedfadabcb23adc4b3a77262b5478f34ff4"
REGENERATE = os.environ.get("AECODEC_REGENERATE_GOLDEN") == "1"

SHAPE = (3, 4, 5)  # latent channels, rows, columns: an 80x64 frame at stride 16
PRIOR = {"intra_loc": [0.0, 1.3, -2.6], "intra_scale": [0.2, 1.5, 9.0], "inter_scale": [0.05, 0.7, 4.0]}
STEPS, QUALITY = [2.0, 1.0], 1
# P tables per level, channel and temporal context bucket: wider for busier contexts, so the golden
# stream pins which bucket each P symbol is coded in.
INTER = [[[s / step * (0.5 + 0.25 * b) for b in range(CONTEXTS)] for s in PRIOR["inter_scale"]] for step in STEPS]
TYPES = [I_FRAME, P_FRAME, P_FRAME, I_FRAME, P_FRAME]


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


def _stream(tables: CodingTables, latents: list[np.ndarray]) -> bytes:
    packer = LatentPacker(tables, QUALITY)
    frames = zip(latents, TYPES, _checks(), strict=True)
    chunks = [packer.pack(q, index, kind, check) for index, (q, kind, check) in enumerate(frames)]
    names = hashlib.sha256(json.dumps(tables.to_json(), sort_keys=True).encode()).hexdigest()
    header = Header(names, 80, 64, Fraction(30000, 1001), len(chunks), 3, QUALITY)
    out = io.BytesIO()
    write_stream(out, header, iter(chunks))
    return out.getvalue()


def test_golden_stream() -> None:
    latents = _latents()
    if REGENERATE:
        TABLES.write_text(json.dumps(CodingTables.build(PRIOR, STEPS, INTER).to_json(), indent=1) + "\n")
    tables = CodingTables.from_json(json.loads(TABLES.read_text()), str(TABLES))
    stream = _stream(tables, latents)
    sha = hashlib.sha256(stream).hexdigest()
    if REGENERATE:
        GOLDEN.write_bytes(stream)
        pytest.skip(f"regenerated {GOLDEN.name} and {TABLES.name}: set GOLDEN_SHA256 = {sha!r}")
    assert sha == GOLDEN_SHA256, "these latents no longer code to the golden stream's bytes"
    golden = GOLDEN.read_bytes()
    assert hashlib.sha256(golden).hexdigest() == GOLDEN_SHA256
    unpacker = LatentUnpacker(tables, Header.unpack(golden, GOLDEN.name).quality, SHAPE)
    chunks = list(read_chunks(golden, GOLDEN.name))
    decoded = [unpacker.unpack(chunk) for chunk in chunks]
    assert len(decoded) == len(latents) and all(np.array_equal(d, q) for d, q in zip(decoded, latents, strict=True))
    assert [chunk.check for chunk in chunks] == _checks()


def test_constriction_is_pinned_to_the_version_that_made_the_golden_stream() -> None:
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert re.findall(r'"constriction==([\w.]+)"', pyproject) == [importlib.metadata.version("constriction")]
