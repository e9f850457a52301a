"""M-frames: the decoder rebuilds exactly the encoder's reconstruction from the payload and the
previous frame, and refuses a crafted payload (valid range coding, absurd fields) in one line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from clips import synthetic_frames

from codec.coding.common import inter_frame
from codec.coding.common.entropy_coding import SymbolRangeEncoder
from codec.coding.common.inter_frame import BLOCK, QP_BITS, TABLES_FILE, decode_inter, inter_tables, residual_grid
from codec.coding.common.motion import MAX_VECTOR
from codec.coding.common.motion_coding import coarse_grid
from codec.coding.common.residual_coding import MAX_LEVEL
from codec.coding.encoder.inter_encode import InterOptions, encode_inter, inter_table_frequencies, pack_inter
from codec.errors import CodecError

TABLES = Path(inter_frame.__file__).with_name(TABLES_FILE)
HEIGHT, WIDTH = 72, 88  # sides that are multiples of neither the block nor 16


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return synthetic_frames(4, WIDTH, HEIGHT, seed=3)


def _grid() -> tuple[int, int]:
    return -(-HEIGHT // BLOCK), -(-WIDTH // BLOCK)


@pytest.mark.parametrize("blocks", ["32/16", "16", "32"])
def test_the_decoder_rebuilds_the_encoders_reconstruction_exactly(frames: np.ndarray, blocks: str) -> None:
    previous = frames[0]
    for qp, frame in zip((0, 30, 51), frames[1:], strict=True):
        coded = encode_inter(frame, previous, qp, InterOptions(blocks=blocks))
        decoded = decode_inter(coded.payload, previous, "s")
        assert np.array_equal(decoded, coded.reconstruction)
        assert coded.split.all() if blocks == "16" else not coded.split.any() if blocks == "32" else True
        previous = decoded
    if blocks != "32/16":
        return
    fine = encode_inter(frames[1], frames[0], 10)
    coarse = encode_inter(frames[1], frames[0], 45)
    skip = encode_inter(frames[1], frames[0], 10, InterOptions(residual=False))
    assert len(fine.payload) > len(coarse.payload) > len(skip.payload)
    errors = [np.abs(c.reconstruction.astype(int) - frames[1]).mean() for c in (fine, coarse, skip)]
    assert errors[0] < errors[1] <= errors[2] + 0.5


def _crafted(qp: int, vectors: np.ndarray | None = None, levels: np.ndarray | None = None) -> bytes:
    vectors = np.zeros((*_grid(), 2), np.int64) if vectors is None else vectors
    levels = np.zeros((*residual_grid(HEIGHT, WIDTH), 3, 4, 4), np.int64) if levels is None else levels
    if qp <= 51:
        return pack_inter(qp, vectors, np.ones(coarse_grid(*_grid()), bool), levels)
    coder = SymbolRangeEncoder()  # a QP the encoder would never write, in the field's 6 bits
    coder.encode_bits(np.array([qp]), np.array([QP_BITS]))
    return coder.finish()


def test_crafted_payloads_are_refused_in_one_line(frames: np.ndarray) -> None:
    far = np.full((*_grid(), 2), 2 * MAX_VECTOR, np.int64)
    refined = np.zeros((*_grid(), 2), np.int64)
    refined[1, 2] = (0, 2 * MAX_VECTOR)  # its 32x32 block's vector is in bounds, its own difference is not
    loud = np.zeros((*residual_grid(HEIGHT, WIDTH), 3, 4, 4), np.int64)
    loud[1, 2, 0, 0, 0] = 4 * MAX_LEVEL
    cases = {
        "QP": (_crafted(63), "residual QP 63 is beyond 51"),
        "vectors": (_crafted(30, vectors=far), "beyond 64 pixels"),
        "refined vectors": (_crafted(30, vectors=refined), "beyond 64 pixels"),
        "levels": (_crafted(30, levels=loud), f"beyond {MAX_LEVEL}"),
        "words": (b"\x01\x02\x03", "not a whole number of 32-bit words"),
    }
    for name, (payload, message) in cases.items():
        with pytest.raises(CodecError) as caught:
            decode_inter(payload, frames[0], "frame 7")
        text = str(caught.value)
        assert text.startswith("frame 7: ") and message in text and "\n" not in text, name


def test_any_payload_decodes_to_a_bounded_frame_or_a_one_line_error(frames: np.ndarray) -> None:
    """Random words and truncations of a real payload: never more work than the frame size allows,
    never an exception other than CodecError, always a frame of the right shape."""
    real = encode_inter(frames[1], frames[0], 20).payload
    rng = np.random.default_rng(5)
    payloads = [real[: 4 * k] for k in range(1, len(real) // 4)]
    payloads += [rng.integers(0, 256, 4 * rng.integers(1, 64), dtype=np.uint8).tobytes() for _ in range(40)]
    for payload in payloads:
        try:
            frame = decode_inter(payload, frames[0], "f")
        except CodecError as exc:
            assert "\n" not in str(exc)
        else:
            assert frame.shape == frames[0].shape and frame.dtype == np.uint8


def test_the_shipped_tables_are_the_ones_the_encoder_describes() -> None:
    """inter_tables.json holds exactly inter_table_frequencies(), integers summing to the coder's
    total; ``AECODEC_REGENERATE_GOLDEN=1`` rewrites it (a change of the format, like the golden stream)."""
    computed = inter_table_frequencies()
    if os.environ.get("AECODEC_REGENERATE_GOLDEN") == "1":
        obj = json.loads(TABLES.read_text())
        TABLES.write_text(json.dumps({"about": obj["about"], "tables": computed}, separators=(",", ":")) + "\n")
        pytest.skip(f"regenerated {TABLES.name}")
    tables, models = inter_tables()
    assert len(tables) == len(models) == 25 and all(t.valid for t in tables)
    assert [list(t.frequencies) for t in tables] == computed


def test_a_stream_that_opens_with_an_m_frame_is_refused_or_concealed(carphone_bundle, encoded, tmp_path) -> None:
    """An M-frame moves the previous decoded frame: with none (the stream's first chunk, or after
    damage), it is an error naming the frame, or with --conceal it is concealed until the next I-frame."""
    from conftest import run_cli

    from codec.coding.common.bitstream import HEADER_SIZE, M_FRAME, Chunk, read_chunks

    data = encoded[0].read_bytes()
    chunks = list(read_chunks(data, "s"))
    assert chunks[1].frame_type == M_FRAME
    opened = [Chunk(0, M_FRAME, chunks[1].check, chunks[1].payload), *chunks[1:]]
    stream = tmp_path / "m.aec"
    stream.write_bytes(data[:HEADER_SIZE] + b"".join(c.pack() for c in opened))
    code, _, err = run_cli("decode", stream, "-m", carphone_bundle, "-o", tmp_path / "x.y4m")
    assert code == 2 and err.strip().endswith("frame 0: M-frame without its reference"), err
    code, out, err = run_cli("decode", stream, "-m", carphone_bundle, "-o", tmp_path / "c.y4m", "--conceal", "--json")
    assert code == 0, err
    assert json.loads(out)["concealed"] == 4  # frames 0 to 3; frame 4 is an I-frame
