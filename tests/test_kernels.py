"""Every compiled kernel against its numpy reference twin: identical integers on random, edge and
real inputs (codec.coding.kernels)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from codec.coding.common.context import _BUCKET_OF, INTRA_PASSES, NEIGHBOUR_LIMIT
from codec.coding.common.inter_frame import CHROMA_QP_OFFSET, residual_for
from codec.coding.common.motion import MAX_VECTOR, Reference
from codec.coding.common.residual_coding import MAX_LEVEL, Residual
from codec.coding.common.transform import MAX_QP, component_qps
from codec.coding.kernels import NAMES, compiled, reference
from codec.io.video import read_clip


def test_every_kernel_has_both_twins() -> None:
    for name in NAMES:
        assert callable(getattr(compiled, name)) and callable(getattr(reference, name))


def _levels(rng: np.random.Generator, h: int, w: int, density: float, top: int) -> np.ndarray:
    shape = (-(-h // 4), -(-w // 4), 3, 4, 4)
    levels = rng.integers(-top, top + 1, shape).astype(np.int32)
    return np.where(rng.random(shape) < density, levels, 0).astype(np.int32)


def _same_residual(prediction: np.ndarray, levels: np.ndarray, qps: tuple[int, int, int]) -> None:
    """Both twins on the blocks of the dense ``levels`` that hold any, and again with every block
    listed (as a crafted stream may flag blocks whose levels are all zero)."""
    residual = Residual.of(levels)
    every = np.arange(residual.rows * residual.cols)
    for blocks, held in ((residual.blocks, residual.levels), (every, residual.dense().reshape(-1, 3, 4, 4))):
        expected = reference.add_residual(prediction, blocks, held, qps)
        got = compiled.add_residual(prediction, blocks, held, qps)
        assert got.dtype == np.uint8 and got.shape == prediction.shape
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("seed", range(12))
def test_add_residual_on_random_inputs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    h, w = (int(n) for n in rng.integers(1, 70, 2))
    prediction = rng.integers(0, 256, (h, w, 3), np.uint8)
    qps = tuple(int(q) for q in rng.integers(0, MAX_QP + 1, 3))
    _same_residual(prediction, _levels(rng, h, w, float(rng.random()), int(rng.choice([1, 8, 300, MAX_LEVEL]))), qps)


@pytest.mark.parametrize("size", [(1, 1), (1, 7), (5, 7), (4, 4), (3, 9), (16, 16)])
@pytest.mark.parametrize("qp", [0, 1, 25, MAX_QP])
@pytest.mark.parametrize("extreme", [MAX_LEVEL, -MAX_LEVEL, "alternating"])
def test_add_residual_on_edges(size: tuple[int, int], qp: int, extreme: object) -> None:
    """QP 0 and 51, every level at the decoder's bound, frames that are no multiple of 4, 1x1;
    predictions black and white so that the clip bites both ways."""
    h, w = size
    shape = (-(-h // 4), -(-w // 4), 3, 4, 4)
    if extreme == "alternating":
        levels = np.where(np.indices(shape).sum(0) % 2, MAX_LEVEL, -MAX_LEVEL).astype(np.int32)
    else:
        levels = np.full(shape, extreme, np.int32)
    qps = component_qps(qp, CHROMA_QP_OFFSET)
    for value in (0, 255, 128):
        _same_residual(np.full((h, w, 3), value, np.uint8), levels, qps)


def test_add_residual_on_real_frames(carphone: Path) -> None:
    """Residual levels of carphone's frames against the frame before, at the QPs the encoder uses."""
    frames = read_clip(carphone, max_frames=6).frames
    for previous, frame in itertools.pairwise(frames):
        for qp in (12, 20, 28, 40):
            levels = residual_for(frame, previous, qp)
            assert levels.any()
            _same_residual(previous, levels, component_qps(qp, CHROMA_QP_OFFSET))


def _same_prediction(frame: np.ndarray, block: int, vectors: np.ndarray) -> None:
    """Every block of ``frame`` moved by ``vectors`` ((rows, cols, 2)), by both twins of the block
    kernel and of the whole frame's (which clamps vectors beyond the bound itself)."""
    ref = Reference(frame, block)
    by, bx = np.divmod(np.arange(ref.rows * ref.cols), ref.cols)
    args = (ref.full, *ref.origins(by, bx, vectors.reshape(-1, 2)), block)
    np.testing.assert_array_equal(compiled.predict_blocks(*args), reference.predict_blocks(*args))
    expected = reference.predict_frame(frame, vectors, block, MAX_VECTOR)
    got = compiled.predict_frame(frame, vectors, block, MAX_VECTOR)
    assert got.dtype == np.uint8 and got.shape == frame.shape
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("seed", range(10))
def test_prediction_on_random_inputs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    h, w = (int(n) for n in rng.integers(1, 80, 2))
    block = int(rng.choice([4, 8, 16, 32]))
    frame = rng.integers(0, 256, (h, w, 3), np.uint8)
    reach = MAX_VECTOR + int(rng.choice([0, 100]))  # beyond the bound: clamped
    vectors = rng.integers(-reach, reach + 1, (-(-h // block), -(-w // block), 2))
    _same_prediction(frame, block, vectors)


@pytest.mark.parametrize("size", [(1, 1), (7, 5), (16, 16), (33, 17)])
def test_prediction_on_edges(size: tuple[int, int]) -> None:
    """Every quarter-pixel phase, vectors at the bound each way (reading the extension's far edges),
    frames of 1x1 and sizes no multiple of the block, black and white samples side by side (the
    filters' clipping bites both ways)."""
    h, w = size
    frame = np.where(np.indices((h, w, 3)).sum(0) % 2, 255, 0).astype(np.uint8)
    for block in (4, 16):
        rows, cols = -(-h // block), -(-w // block)
        for dy in (-MAX_VECTOR, -MAX_VECTOR + 1, -1, 0, 1, 2, 3, MAX_VECTOR - 1, MAX_VECTOR):
            for dx in (-MAX_VECTOR, -3, -2, 0, 1, 2, 3, MAX_VECTOR):
                _same_prediction(frame, block, np.tile(np.array([dy, dx]), (rows, cols, 1)))


def test_prediction_on_real_frames(carphone: Path) -> None:
    """Carphone's frames moved by every phase and by random vectors, 16x16 and 32x32 blocks."""
    frames = read_clip(carphone, max_frames=3).frames
    rng = np.random.default_rng(0)
    for frame in frames:
        for block in (16, 32):
            rows, cols = -(-144 // block), -(-176 // block)
            _same_prediction(frame, block, rng.integers(-40, 41, (rows, cols, 2)))


@pytest.mark.parametrize("seed", range(8))
def test_from_medians_on_random_and_edge_fields(seed: int) -> None:
    """Fields of 1x1, one row, one column and random sizes, differences small and at the decoder's
    widest (a field beyond the vector bound is refused after, by check_vectors, not here)."""
    rng = np.random.default_rng(seed)
    for rows, cols in ((1, 1), (1, 9), (9, 1), tuple(int(n) for n in rng.integers(1, 70, 2))):
        for reach in (1, 8, 2 * MAX_VECTOR):
            differences = rng.integers(-reach, reach + 1, (rows * cols, 2))
            expected = reference.from_medians(differences, rows, cols)
            got = compiled.from_medians(differences, rows, cols)
            assert got.dtype == expected.dtype == np.int64
            np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("seed", range(6))
def test_intra_context_on_random_and_edge_latents(seed: int) -> None:
    """Every predicted pass of an I-frame over latents of 1x1, thin, odd and random sizes, with values
    small, around the neighbour limit and far beyond it (clipped), both signs."""
    rng = np.random.default_rng(seed)
    sizes = ((1, 1), (1, 7), (6, 1), (5, 5), tuple(int(n) for n in rng.integers(1, 40, 2)))
    for (h, w), spread in itertools.product(sizes, (3, NEIGHBOUR_LIMIT, 50 * NEIGHBOUR_LIMIT)):
        plane = rng.integers(-spread, spread + 1, (int(rng.integers(1, 5)), h, w))
        for intra_pass in INTRA_PASSES[1:]:
            args = (plane, intra_pass.stride, intra_pass.phases, intra_pass.offsets, NEIGHBOUR_LIMIT, _BUCKET_OF)
            for got, expected in zip(compiled.intra_context(*args), reference.intra_context(*args), strict=True):
                assert got.dtype == expected.dtype == np.int64
                np.testing.assert_array_equal(got, expected)
