"""The integer residual coder's arithmetic: H.264's transform and quantization, integers only."""

from __future__ import annotations

import numpy as np
import pytest

from codec.coding.common.entropy_coding import (
    SymbolRangeDecoder,
    SymbolRangeEncoder,
    Table,
    best_table,
    choosing_bits,
    table_bits,
)
from codec.coding.common.residual_coding import MAX_LEVEL, ZIGZAG, _level_sets, decode_residual, encode_residual
from codec.coding.common.transform import (
    MAX_QP,
    dequantize,
    forward,
    from_ycocg,
    inverse,
    quantize,
    reconstruct,
    to_ycocg,
)
from codec.errors import CodecError


def test_ycocg_r_is_lossless_on_any_integers() -> None:
    rgb = np.random.default_rng(5).integers(-510, 511, (4096, 3))
    assert np.array_equal(from_ycocg(to_ycocg(rgb)), rgb)


def test_the_transform_matches_h264s_matrices_and_its_inverse_undoes_it() -> None:
    """The forward transform is Cf X Cf^T; dequantizing at QP 0..5 and the inverse butterfly bring a
    residual back within the quantizer's own error, and the inverse of a DC-only block is flat."""
    x = np.random.default_rng(6).integers(-255, 256, (2000, 4, 4))
    cf = np.array([[1, 1, 1, 1], [2, 1, -1, -2], [1, -1, -1, 1], [1, -2, 2, -1]])
    assert np.array_equal(forward(x), cf @ x @ cf.T)
    assert np.abs(reconstruct(quantize(forward(x), 0), 0) - x).max() <= 1
    flat = np.zeros((4, 4), np.int32)
    flat[0, 0] = 64 * 16  # a DC of 16 (a scaled coefficient is 64 times the sample)
    assert (inverse(flat) == 16).all()


def test_coarser_quantization_keeps_fewer_levels_and_errs_more() -> None:
    x = np.random.default_rng(7).integers(-64, 65, (2000, 4, 4))
    coefficients = forward(x)
    kept, errors = [], []
    for qp in range(0, MAX_QP + 1, 6):  # the step doubles every 6
        levels = quantize(coefficients, qp)
        kept.append(np.count_nonzero(levels))
        errors.append(float(np.square(reconstruct(levels, qp) - x).mean()))
    assert kept == sorted(kept, reverse=True) and errors == sorted(errors)
    assert dequantize(np.ones((4, 4), np.int32), 6)[0, 0] == 2 * dequantize(np.ones((4, 4), np.int32), 0)[0, 0]
    with pytest.raises(ValueError, match="QP 52"):
        quantize(coefficients, 52)


def _tables() -> list[Table]:
    return [Table.from_grid(i) for i in range(0, 96, 12)]


def test_residual_levels_round_trip_through_the_range_coder() -> None:
    rng = np.random.default_rng(9)
    levels = quantize(forward(rng.integers(-40, 41, (9, 11, 3, 4, 4))), 24)
    levels[2:5] = 0  # blocks without any level
    levels[0, 0, 0, 0, 0] = MAX_LEVEL
    tables = _tables()
    coder = SymbolRangeEncoder()
    encode_residual(levels, coder, tables)
    back = decode_residual(SymbolRangeDecoder(coder.finish()), 9, 11, tables, [t.model() for t in tables], "s")
    assert back.levels.dtype == np.int32 and np.array_equal(back.dense(), levels)
    assert np.array_equal(back.blocks, np.flatnonzero(levels.reshape(99, 48).any(1)))  # only the blocks with levels
    empty = SymbolRangeEncoder()
    encode_residual(np.zeros((68, 160, 3, 4, 4), np.int32), empty, tables)
    assert len(empty.finish()) <= 64  # a frame the prediction got right costs next to nothing


def test_the_best_table_is_the_one_table_bits_prices_lowest() -> None:
    """The encoder's choice of table, from a cost matrix, agrees with pricing every table one by
    one, escapes of either sign included."""
    rng = np.random.default_rng(5)
    tables = _tables()
    for scale in (0.3, 2, 30, 3000):
        symbols = np.rint(rng.laplace(0, scale, 200)).astype(np.int64)
        bits = [table_bits(symbols, t) for t in tables]
        choice, cost = best_table(symbols, tables)
        assert choice == int(np.argmin(bits)) and cost == pytest.approx(min(bits))


def test_levels_split_by_context_where_that_is_shorter() -> None:
    """Busy blocks beside quiet ones: the component's levels are split by context, which codes them
    shorter than one set per group would, and still decode exactly; sparse random levels are not."""
    rng = np.random.default_rng(4)
    tables = _tables()
    sparse = rng.integers(-2, 3, (12, 16, 3, 4, 4)) * (rng.random((12, 16, 3, 4, 4)) < 0.05)
    busy = sparse.copy()
    busy[:, :6] = rng.integers(-20, 21, (12, 6, 3, 4, 4))
    for levels, split in ((sparse, False), (busy, True)):
        grid = np.abs(levels[:, :, 0]).sum((2, 3)) > 0
        scans = levels[:, :, 0].reshape(-1, 16)[:, ZIGZAG][grid.ravel()]
        costs = [sum(choosing_bits(s, tables) for s in _level_sets(scans, grid, k)) for k in (False, True)]
        assert (costs[1] < costs[0]) == split
        coder = SymbolRangeEncoder()
        encode_residual(levels, coder, tables)
        back = decode_residual(SymbolRangeDecoder(coder.finish()), 12, 16, tables, [t.model() for t in tables], "s")
        assert np.array_equal(back.dense(), levels)


def test_a_level_beyond_the_bound_is_refused() -> None:
    tables = _tables()
    coder = SymbolRangeEncoder()
    levels = np.zeros((1, 2, 3, 4, 4), np.int64)
    levels[0, 1, 2, 3, 3] = MAX_LEVEL + 1  # validly coded, beyond what a residual quantizes to
    encode_residual(levels, coder, tables)
    with pytest.raises(CodecError, match="beyond 4096"):
        decode_residual(SymbolRangeDecoder(coder.finish()), 1, 2, tables, [t.model() for t in tables], "s")
