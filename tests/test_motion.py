"""Block motion: the prediction is H.264's integer interpolation, sample for sample (checked against a
plain transcription of the standard's formulas), bounded whatever the vectors, and the search finds
a known motion to the quarter pixel."""

from __future__ import annotations

import constriction
import numpy as np
import pytest

from codec.coding.common.entropy_coding import SymbolRangeDecoder, SymbolRangeEncoder, Table
from codec.coding.common.motion import MAX_VECTOR, QPEL, Reference, check_vectors, median_predictor
from codec.coding.common.motion_coding import coarse_grid, decode_motion, encode_motion, expand
from codec.coding.encoder.motion_search import search, vector_bits
from codec.errors import CodecError


def _sample(frame: np.ndarray, y: int, x: int, c: int) -> int:
    """The integer sample at (y, x), edges replicated."""
    h, w = frame.shape[:2]
    return int(frame[min(max(y, 0), h - 1), min(max(x, 0), w - 1), c])


def _six(values: list[int]) -> int:
    return values[0] - 5 * values[1] + 20 * values[2] + 20 * values[3] - 5 * values[4] + values[5]


def _clip(v: int) -> int:
    return min(max(v, 0), 255)


def h264_sample(frame: np.ndarray, qy: int, qx: int, c: int) -> int:
    """The sample at quarter-pixel position (qy, qx), written out from H.264's luma interpolation
    (8.4.2.2.1), one sample at a time."""
    y, fy, x, fx = qy >> 2, qy & 3, qx >> 2, qx & 3

    def g(dy: int, dx: int) -> int:
        return _sample(frame, y + dy, x + dx, c)

    def b1(dy: int) -> int:  # horizontal half between (y+dy, x) and (y+dy, x+1), unrounded
        return _six([g(dy, k) for k in range(-2, 4)])

    def h1(dx: int) -> int:  # vertical half between (y, x+dx) and (y+1, x+dx), unrounded
        return _six([g(k, dx) for k in range(-2, 4)])

    b, s = _clip((b1(0) + 16) >> 5), _clip((b1(1) + 16) >> 5)
    h, m = _clip((h1(0) + 16) >> 5), _clip((h1(1) + 16) >> 5)
    j = _clip((_six([b1(k) for k in range(-2, 4)]) + 512) >> 10)
    full = {(0, 0): g(0, 0), (0, 2): b, (2, 0): h, (2, 2): j}
    if (fy, fx) in full:
        return full[(fy, fx)]
    pairs = {
        (0, 1): (g(0, 0), b), (0, 3): (g(0, 1), b), (1, 0): (g(0, 0), h), (3, 0): (g(1, 0), h),
        (1, 2): (b, j), (3, 2): (j, s), (2, 1): (h, j), (2, 3): (j, m),
        (1, 1): (b, h), (1, 3): (b, m), (3, 1): (h, s), (3, 3): (m, s),
    }  # fmt: skip
    a, z = pairs[(fy, fx)]
    return (a + z + 1) >> 1


def test_the_prediction_is_h264_interpolation_sample_for_sample() -> None:
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (21, 27, 3), dtype=np.uint8)  # sides not multiples of the block
    reference = Reference(frame, 8)
    vectors = rng.integers(-40, 41, (reference.rows, reference.cols, 2)).astype(np.int32)
    vectors[0, 0] = (MAX_VECTOR, -MAX_VECTOR)  # reaches far beyond the frame: replicated edges
    predicted = reference.predict(vectors)
    assert predicted.shape == frame.shape and predicted.dtype == np.uint8
    for y in range(frame.shape[0]):
        for x in range(frame.shape[1]):
            vy, vx = vectors[y // 8, x // 8]
            for c in range(3):
                assert predicted[y, x, c] == h264_sample(frame, QPEL * y + vy, QPEL * x + vx, c), (y, x, c)


def test_a_reference_shared_across_block_sizes_predicts_as_its_own_would() -> None:
    rng = np.random.default_rng(9)
    frame = rng.integers(0, 256, (37, 45, 3), dtype=np.uint8)
    shared = Reference(frame, 16, extent=32).with_block(8)
    own = Reference(frame, 8)
    vectors = rng.integers(-MAX_VECTOR, MAX_VECTOR + 1, (own.rows, own.cols, 2)).astype(np.int32)
    assert (shared.rows, shared.cols) == (own.rows, own.cols)
    assert np.array_equal(shared.predict(vectors), own.predict(vectors))
    with pytest.raises(ValueError, match="does not divide"):
        shared.with_block(24)


def test_vectors_from_a_peer_are_bounded() -> None:
    good = np.zeros((2, 3, 2), np.int64)
    assert check_vectors(good, 2, 3, "s").dtype == np.int32
    with pytest.raises(CodecError, match="beyond 64 pixels"):
        check_vectors(good + MAX_VECTOR + 1, 2, 3, "s")
    with pytest.raises(CodecError, match="for 2x4 blocks"):
        check_vectors(good, 2, 4, "s")
    reference = Reference(np.zeros((16, 24, 3), np.uint8), 8)  # origins() clamps what it is handed
    far = np.array([[10**6, -(10**6)]])
    top, left, _, _ = reference.origins(np.array([1]), np.array([2]), far)
    assert top[0] >= 0 and top[0] + 8 + 5 <= reference.full.shape[0] and 0 <= left[0] + 8 + 5 <= reference.full.shape[1]


def test_the_search_finds_a_known_motion_to_the_quarter_pixel() -> None:
    """A smooth frame moved by (3.25, -5.5) pixels, made with the prediction itself."""
    rng = np.random.default_rng(4)
    coarse = rng.integers(0, 256, (12, 16, 3)).astype(np.float64)
    smooth = np.kron(coarse, np.ones((16, 16, 1)))
    for axis in (0, 1):  # a few box blurs: smooth enough for sub-pixel positions to be told apart
        for _ in range(4):
            smooth = (np.roll(smooth, 1, axis) + smooth + np.roll(smooth, -1, axis)) / 3
    reference = Reference(smooth.astype(np.uint8), 16)
    moved = np.full((reference.rows, reference.cols, 2), (13, -22), np.int32)
    frame = reference.predict(moved)
    found = search(frame, reference, lam=4.0)
    inner = found[1:-1, 1:-1].reshape(-1, 2)  # blocks whose content stays in the frame
    assert (inner == (13, -22)).all(axis=1).mean() > 0.9
    assert (search(smooth.astype(np.uint8), reference, lam=4.0) == 0).all()  # nothing moved: no vector


def test_vectors_are_priced_by_their_difference_from_the_median() -> None:
    assert vector_bits(np.array([0, 0])) == 2 and vector_bits(np.array([1, -1])) == 6
    field = np.zeros((2, 3, 2), np.int32)
    field[0, 1] = field[1, 0] = (4, 8)
    assert (median_predictor(field)[1, 1] == (4, 8)).all()  # left (4, 8), top (4, 8), top-right 0


def _motion_tables() -> list[Table]:
    return [Table.from_grid(i) for i in (0, 24, 48, 72)]


def test_a_motion_field_round_trips_through_the_range_coder() -> None:
    rng = np.random.default_rng(8)
    field = np.cumsum(rng.integers(-3, 4, (9, 13, 2)), axis=1).astype(np.int32)  # smooth along rows
    field[4, 6] = (MAX_VECTOR, -MAX_VECTOR)  # the extremes, and a jump the predictor cannot foresee
    split = rng.random(coarse_grid(9, 13)) < 0.5
    split[2, 3] = True  # the extremes' 32x32 block
    field = np.where(expand(split, 9, 13)[..., None], field, expand(field[::2, ::2], 9, 13))  # unsplit: one vector
    tables = _motion_tables()
    coder = SymbolRangeEncoder()
    encode_motion(field, split, coder, tables)
    decoder = SymbolRangeDecoder(coder.finish())
    back = decode_motion(decoder, 9, 13, tables, [t.model() for t in tables], "s")
    assert np.array_equal(back, field)
    with pytest.raises(ValueError, match="unsplit"):
        encode_motion(field + rng.integers(0, 2, field.shape), np.zeros_like(split), SymbolRangeEncoder(), tables)
    still = SymbolRangeEncoder()
    encode_motion(np.zeros((17, 40, 2), np.int32), np.zeros(coarse_grid(17, 40), bool), still, tables)
    assert len(still.finish()) <= 16  # a field that does not move costs next to nothing


def test_a_crafted_motion_field_is_refused_not_followed() -> None:
    """A validly coded field whose vectors lie beyond MAX_VECTOR, and one whose differences claim more
    bits than any vector has: each refused in one line."""
    tables = _motion_tables()
    models = [t.model() for t in tables]
    far = SymbolRangeEncoder()
    encode_motion(np.full((2, 3, 2), 2 * MAX_VECTOR, np.int32), np.zeros((1, 2), bool), far, tables)
    with pytest.raises(CodecError, match="beyond 64 pixels"):
        decode_motion(SymbolRangeDecoder(far.finish()), 2, 3, tables, models, "s")
    wide = SymbolRangeEncoder()
    wide.encode_flags(np.ones(2, bool))  # both 32x32 blocks of a 2x3 field moved
    wide.coder.encode(np.array([3], np.int32), constriction.stream.model.Uniform(len(tables)))
    wide.encode_block(np.full(2, 20, np.int64), tables[3], models[3])  # 20-bit differences
    with pytest.raises(CodecError, match="difference beyond"):
        decode_motion(SymbolRangeDecoder(wide.finish()), 2, 3, tables, models, "s")
