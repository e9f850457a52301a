"""I-frame refinement: the levels and QP come back exactly, the pixels a decoder rebuilds are the
encoder's, hostile refinements and latent lengths fail in one line, and a real bundle's refined
quality levels rise above its latent ones, through `codec encode`, `codec decode` and `codec info`."""

from __future__ import annotations

import itertools
import json
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from clips import synthetic_frames
from conftest import run_cli

from codec.coding.common.entropy_coding import SymbolRangeEncoder
from codec.coding.common.inter_frame import QP_BITS, inter_tables, residual_grid
from codec.coding.common.intra_refinement import NO_REFINEMENT, Refinement, join_intra, refine, split_intra
from codec.coding.common.residual_coding import MAX_LEVEL, encode_residual
from codec.errors import CodecError
from codec.io.bundle import load_bundle
from codec.io.psnr import psnr
from codec.io.video import read_clip

HEIGHT, WIDTH = 70, 90  # sides that are not multiples of 4


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    """A frame and a blurred, shifted version of it standing in for the autoencoder's dec(q)."""
    frame = synthetic_frames(1, WIDTH, HEIGHT, seed=5)[0]
    base = ((frame.astype(np.int32) + np.roll(frame, 1, 1) + np.roll(frame, 1, 0) + 12) // 3).clip(0, 255)
    return frame, base.astype(np.uint8)


def test_a_refinement_decodes_to_the_encoders_levels_and_pixels(pair: tuple[np.ndarray, np.ndarray]) -> None:
    frame, base = pair
    qualities = []
    for qp in (51, 36, 22, 0):
        refinement = refine(frame, base, qp)
        decoded = Refinement.decode(refinement.encode(), HEIGHT, WIDTH, "frame 0")
        assert decoded.qp == qp and np.array_equal(decoded.levels.dense(), refinement.levels.dense())
        assert np.array_equal(decoded.apply(base), refinement.apply(base))
        qualities.append(psnr(decoded.apply(base), frame))
    assert qualities == sorted(qualities) and qualities[-1] > psnr(base, frame) + 15
    assert NO_REFINEMENT.encode() == b"" and Refinement.decode(b"", HEIGHT, WIDTH, "x") is NO_REFINEMENT
    assert NO_REFINEMENT.apply(base) is base


def _crafted(qp: int, levels: np.ndarray | None = None) -> bytes:
    """A refinement with a valid range coding whatever its fields say."""
    coder = SymbolRangeEncoder()
    coder.encode_bits(np.array([qp]), np.array([QP_BITS]))
    if levels is not None:
        encode_residual(levels, coder, inter_tables()[0])
    return coder.finish()


def test_hostile_refinements_fail_in_one_line_in_bounded_time(pair: tuple[np.ndarray, np.ndarray]) -> None:
    loud = np.zeros((*residual_grid(HEIGHT, WIDTH), 3, 4, 4), np.int64)
    loud[3, 4, 2, 1, 1] = 4 * MAX_LEVEL
    cases = {
        "QP": (_crafted(63), "refinement QP 63 is beyond 51"),
        "levels": (_crafted(20, loud), f"beyond {MAX_LEVEL}"),
        "words": (b"\x01\x02\x03", "not a whole number of 32-bit words"),
    }
    for name, (data, message) in cases.items():
        with pytest.raises(CodecError) as caught:
            Refinement.decode(data, HEIGHT, WIDTH, "frame 3")
        text = str(caught.value)
        assert text.startswith("frame 3: ") and message in text and "\n" not in text, name
    # Noise of every length: decoded to levels no larger than the bound, or one CodecError, each fast.
    rng = np.random.default_rng(1)
    for size in range(1, 200, 7):
        started = time.perf_counter()
        try:
            decoded = Refinement.decode(rng.integers(0, 256, 4 * size, np.uint8).tobytes(), HEIGHT, WIDTH, "f")
            assert (
                np.abs(decoded.levels.levels).max(initial=0) <= MAX_LEVEL
                and decoded.apply(pair[1]).shape == pair[1].shape
            )
        except CodecError as exc:
            assert "\n" not in str(exc)
        assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "I-frame payload of 0 bytes has no latent length"),
        (struct.pack("<I", 0) + bytes(8), "I-frame latent of 0 words does not fit its payload of 12 bytes"),
        (struct.pack("<I", 3) + bytes(8), "I-frame latent of 3 words does not fit its payload of 12 bytes"),
        (struct.pack("<I", 2**32 - 1) + bytes(8), "I-frame latent of 4294967295 words does not fit"),
    ],
)
def test_a_latent_length_that_does_not_fit_is_refused(payload: bytes, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        split_intra(payload, "frame 0")


def test_join_and_split_are_inverse() -> None:
    latent, refinement = bytes(range(8)), bytes(range(100, 112))
    assert split_intra(join_intra(latent, refinement), "f") == (latent, refinement)
    assert split_intra(join_intra(latent, b""), "f") == (latent, b"")


def test_refined_levels_rise_above_the_latent_ones(models: Path, tmp_path: Path) -> None:
    """A real (tiny) bundle: the last latent level and every refined level, encoded and decoded by the
    CLI (the decoder checks every frame against the encoder's reconstruction); each refined level is
    larger and better than the one below it, and `codec info` counts its refinement bytes."""
    bundle_dir = models / "short"
    source = bundle_dir / "short.mkv"
    coding = load_bundle(bundle_dir).meta.coding
    top = len(coding.quality_steps) - 1
    reference = np.stack(read_clip(source).frames)
    sizes, qualities, refined = [], [], []
    for level in range(top, coding.levels):
        stream, out = tmp_path / f"q{level}.aec", tmp_path / f"q{level}.y4m"
        assert run_cli("encode", source, "-m", bundle_dir, "-o", stream, "--quality", str(level))[0] == 0
        code, _, err = run_cli("decode", stream, "-m", bundle_dir, "-o", out)
        assert code == 0, err
        decoded = np.stack(read_clip(out).frames)
        sizes.append(stream.stat().st_size)
        qualities.append(np.mean([psnr(d, r) for d, r in zip(decoded, reference, strict=True)]))
        code, text, _ = run_cli("info", stream, "--json")
        info = json.loads(text)
        assert info["header"]["quality"] == level
        refined.append(info["totals"]["refinement_bytes"])
    assert refined[0] == 0 and all(r > 0 for r in refined[1:])
    assert refined == sorted(refined) and sizes == sorted(sizes)
    assert all(b > a for a, b in itertools.pairwise(qualities)), qualities
