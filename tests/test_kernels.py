"""Every compiled kernel against its numpy reference twin: identical integers on random, edge and
real inputs (codec.coding.kernels)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from codec.coding.common.bitstream import HEADER_SIZE, I_FRAME, M_FRAME, Header, read_chunks
from codec.coding.common.context import _BUCKET_OF, INTRA_PASSES, NEIGHBOUR_LIMIT
from codec.coding.common.entropy_coding import CodingTables
from codec.coding.common.inter_frame import CHROMA_QP_OFFSET, parse_inter, residual_for
from codec.coding.common.latent_codec import LatentUnpacker
from codec.coding.common.motion import MAX_VECTOR, Reference, median_predictor
from codec.coding.common.residual_coding import MAX_LEVEL, Residual
from codec.coding.common.runtime import latent_shape, open_decoder
from codec.coding.common.transform import MAX_QP, component_qps
from codec.coding.kernels import NAMES, compiled, reference
from codec.io.bundle import load_bundle
from codec.io.video import read_clip


def _same(name: str, *args: object, dtype: type) -> Any:
    """Kernel ``name``'s two twins on ``args``: arrays (each of a tuple) of ``dtype``, of one shape,
    with the same values; the compiled twin's result."""
    got, expected = getattr(compiled, name)(*args), getattr(reference, name)(*args)
    for g, e in zip(got, expected, strict=True) if isinstance(got, tuple) else [(got, expected)]:
        assert g.dtype == e.dtype == dtype and g.shape == e.shape
        np.testing.assert_array_equal(g, e)
    return got


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
        assert _same("add_residual", prediction, blocks, held, qps, dtype=np.uint8).shape == prediction.shape


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
    """``frame`` predicted by one vector per block (``vectors``, (rows, cols, 2); those beyond the
    bound clamped), by both twins."""
    assert _same("predict_frame", frame, vectors, block, MAX_VECTOR, dtype=np.uint8).shape == frame.shape


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
            _same("from_medians", differences, rows, cols, dtype=np.int64)


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
            _same("intra_context", *args, dtype=np.int64)


# The encoder's kernels


def test_luma_planes_give_interpolate_at_every_phase() -> None:
    """The four planes' QUARTER combinations are the luma proxy interpolated at each of the 16
    phases (the search's planes before), so the search ranks vectors as it did."""
    rng = np.random.default_rng(0)
    full = rng.integers(0, 256, (30, 41, 3), np.uint8)
    planes = reference.luma_planes(full)
    proxy = reference.luma(full).astype(np.int32)[1:, 1:]
    h, w = planes.shape[1] - 1, planes.shape[2] - 1
    for phase in range(16):
        expected = reference.interpolate(proxy, *divmod(phase, 4), reference.LUMA_TOP)[:h, :w]
        np.testing.assert_array_equal(reference._quarter(planes, phase), expected)


def _same_luma_planes(full: np.ndarray) -> np.ndarray:
    got = _same("luma_planes", full, dtype=np.int16)
    assert got.shape == (4, full.shape[0] - 6, full.shape[1] - 6)
    return got


@pytest.mark.parametrize("size", [(7, 7), (7, 30), (30, 7), (12, 13)])
def test_luma_planes_on_edges(size: tuple[int, int]) -> None:
    """The smallest frames (one grid sample), thin and odd ones, black and white side by side and
    all white (the filters' clipping at 0 and at LUMA_TOP)."""
    stripes = np.where(np.indices((*size, 3)).sum(0) % 2, 255, 0).astype(np.uint8)
    for full in (stripes, np.full((*size, 3), 255, np.uint8), stripes[::-1].copy()):
        _same_luma_planes(full)


def _same_luma_sads(planes: np.ndarray, current: np.ndarray, block: int, *where: np.ndarray) -> None:
    """Both twins on the pairs ``where`` names: by, bx, top, left, phase."""
    _same("luma_sads", planes, current, *where, block, dtype=np.int32)


@pytest.mark.parametrize("seed", range(8))
def test_luma_planes_and_sads_on_random_inputs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    h, w = (int(n) for n in rng.integers(7, 90, 2))
    planes = _same_luma_planes(rng.integers(0, 256, (h, w, 3), np.uint8))
    block = int(rng.choice([1, 2, 4, 8, 16]))
    block = min(block, h - 7, w - 7) or 1
    if block + 1 >= min(planes.shape[1:]):
        return
    rows, cols = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    current = rng.integers(0, 1021, (rows * block, cols * block)).astype(np.int16)
    n = 50
    by, bx = rng.integers(0, rows, n), rng.integers(0, cols, n)
    top = rng.integers(0, planes.shape[1] - block - 1, n)
    left = rng.integers(0, planes.shape[2] - block - 1, n)
    _same_luma_sads(planes, current, block, by, bx, top, left, rng.integers(0, 16, n))


@pytest.mark.parametrize("size", [(1, 1), (7, 5), (33, 17)])
def test_luma_sads_on_edges(size: tuple[int, int]) -> None:
    """Frames of 1x1 and sizes no multiple of the block, every block moved by every phase of vectors
    at the bound each way (the extension's far edges), black and white samples side by side."""
    h, w = size
    frame = np.where(np.indices((h, w, 3)).sum(0) % 2, 255, 0).astype(np.uint8)
    for block in (1, 4, 16):
        ref = Reference(frame, block)
        current = reference.luma(np.full((ref.rows * block, ref.cols * block, 3), 255, np.uint8))
        by, bx = np.divmod(np.arange(ref.rows * ref.cols), ref.cols)
        steps = (-MAX_VECTOR, -MAX_VECTOR + 1, -MAX_VECTOR + 3, -1, 0, 2, MAX_VECTOR - 1, MAX_VECTOR)
        vectors = np.array(list(itertools.product(steps, steps)))
        by, bx, vectors = np.repeat(by, len(vectors)), np.repeat(bx, len(vectors)), np.tile(vectors, (len(by), 1))
        top, left, fy, fx = ref.origins(by, bx, vectors)
        _same_luma_sads(_same_luma_planes(ref.full), current, block, by, bx, top, left, 4 * fy + fx)


def test_luma_sads_refuse_reads_outside_the_planes() -> None:
    planes = compiled.luma_planes(np.zeros((20, 20, 3), np.uint8))  # a 14x14 grid
    one = np.zeros(1, np.int64)
    for top, left in ((-1, 0), (0, -1), (10, 0), (0, 10)):
        with pytest.raises(ValueError, match="outside"):
            compiled.luma_sads(planes, np.zeros((4, 4), np.int16), one, one, one + top, one + left, one, 4)


def test_luma_planes_and_sads_on_real_frames(carphone: Path) -> None:
    """Carphone's blocks of 16 and 32 against the frame before moved by random vectors within the bound."""
    frames = read_clip(carphone, max_frames=3).frames
    rng = np.random.default_rng(0)
    for previous, frame in itertools.pairwise(frames):
        for block in (16, 32):
            ref = Reference(previous, block)
            planes = _same_luma_planes(ref.full)
            pad = ((0, ref.rows * block - 144), (0, ref.cols * block - 176), (0, 0))
            current = reference.luma(np.pad(frame, pad, mode="edge"))
            by, bx = np.divmod(np.repeat(np.arange(ref.rows * ref.cols), 20), ref.cols)
            top, left, fy, fx = ref.origins(by, bx, rng.integers(-MAX_VECTOR, MAX_VECTOR + 1, (len(by), 2)))
            _same_luma_sads(planes, current, block, by, bx, top, left, 4 * fy + fx)


def _same_levels(frame: np.ndarray, prediction: np.ndarray, qps: tuple[int, int, int]) -> None:
    _same("forward_residual", frame, prediction, qps, dtype=np.int32)


@pytest.mark.parametrize("seed", range(8))
def test_forward_residual_on_random_inputs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    h, w = (int(n) for n in rng.integers(1, 70, 2))
    frame, prediction = rng.integers(0, 256, (2, h, w, 3), np.uint8)
    _same_levels(frame, prediction, tuple(int(q) for q in rng.integers(0, MAX_QP + 1, 3)))


@pytest.mark.parametrize("size", [(1, 1), (1, 7), (5, 7), (4, 4), (3, 9), (16, 16)])
@pytest.mark.parametrize("qp", [0, 1, 25, MAX_QP])
def test_forward_residual_on_edges(size: tuple[int, int], qp: int) -> None:
    """QP 0 and 51, the largest residuals each way, sizes no multiple of 4 (edge-replicated), 1x1."""
    h, w = size
    black, white = np.zeros((h, w, 3), np.uint8), np.full((h, w, 3), 255, np.uint8)
    stripes = np.where(np.indices((h, w, 3)).sum(0) % 2, 255, 0).astype(np.uint8)
    for frame, prediction in ((white, black), (black, white), (stripes, black), (stripes, 255 - stripes)):
        _same_levels(frame, prediction, component_qps(qp, CHROMA_QP_OFFSET))


def test_forward_residual_on_real_frames(carphone: Path) -> None:
    frames = read_clip(carphone, max_frames=4).frames
    for previous, frame in itertools.pairwise(frames):
        for qp in (12, 20, 28, 40):
            _same_levels(frame, previous, component_qps(qp, CHROMA_QP_OFFSET))


def _same_coarse_best(here: np.ndarray, there: np.ndarray, price: np.ndarray, small: int) -> None:
    _same("coarse_best", here, there, price, small, 4, dtype=np.int64)


@pytest.mark.parametrize("seed", range(8))
def test_coarse_best_on_random_and_edge_inputs(seed: int) -> None:
    """Random planes and prices, 1x1 blocks and one offset, and flat planes where every offset
    ties (the first of equal costs wins) with prices flat or all but one equal."""
    rng = np.random.default_rng(seed)
    small, rows, cols, side = (
        int(rng.choice([1, 2, 4, 8])),
        *(int(n) for n in rng.integers(1, 6, 2)),
        2 * int(rng.integers(0, 5)) + 1,
    )
    here = rng.integers(0, 16 * 1021, (rows * small, cols * small))
    there = rng.integers(0, 16 * 1021, (rows * small + side - 1, cols * small + side - 1))
    price = rng.random((side, side)) * 1000
    _same_coarse_best(here, there, price, small)
    _same_coarse_best(here[:small, :small], there[:small, :small], price[:1, :1], small)
    flat = np.zeros(price.shape)
    flat[side // 2, side - 1] = -1e-9
    for tie in (np.zeros(price.shape), flat):
        _same_coarse_best(np.zeros_like(here), np.zeros_like(there), tie, small)


def test_coarse_best_on_real_frames(carphone: Path) -> None:
    """Carphone's frames downsampled 4 times as the search does, 16x16 and 32x32 blocks within 32 pixels."""
    frames = read_clip(carphone, max_frames=3).frames

    def shrink(plane: np.ndarray) -> np.ndarray:
        return plane.reshape(36, 4, 44, 4).sum((1, 3))

    for previous, frame in itertools.pairwise(frames):
        here, there = shrink(reference.luma(frame)), np.pad(shrink(reference.luma(previous)), 8, mode="edge")
        price = 4.0 * np.add.outer(np.abs(np.arange(-8, 9)), np.abs(np.arange(-8, 9)))
        for small in (4, 8):
            crop = here[: 36 // small * small, : 44 // small * small]
            _same_coarse_best(crop, there[: crop.shape[0] + 16, : crop.shape[1] + 16], price, small)


@pytest.mark.parametrize("seed", range(4))
def test_luma_sums_on_random_and_edge_frames(seed: int) -> None:
    """Random sizes (no multiple of the scale), a strided view (the search's window), the extremes."""
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 256, (int(rng.integers(1, 40)), int(rng.integers(1, 40)), 3), np.uint8)
    for scale in (1, 4, 5):
        for plane in (frame, frame[1:-1, 2:], np.full_like(frame, 255), np.zeros_like(frame)):
            _same("luma_sums", plane, scale, dtype=np.int32)


def test_luma_sums_on_real_frames(carphone: Path) -> None:
    for frame in read_clip(carphone, max_frames=2).frames:
        _same("luma_sums", frame, 4, dtype=np.int32)


@pytest.mark.parametrize("seed", range(4))
def test_to_pixels_on_random_and_edge_outputs(seed: int) -> None:
    """Network outputs of a frame or two, cropped to sizes no multiple of the stride, 1x1, with
    values beyond 0..1 both ways, exactly between two levels (rounded half to even) and not finite."""
    rng = np.random.default_rng(seed)
    for n, (h, w) in ((1, (16, 24)), (2, (9, 17)), (1, (1, 1))):
        output = (rng.standard_normal((n, 3, h + 7, w + 5)) * 0.7 + 0.5).astype(np.float32)
        output.reshape(-1)[:8] = [-1.0, 2.0, 0.5 / 255, 1.5 / 255, 254.5 / 255, np.inf, -np.inf, 0.0]
        for height, width in ((h, w), (h + 7, w + 5), (1, 1)):
            got = _same("to_pixels", output, height, width, dtype=np.uint8)
            assert got.flags.c_contiguous and got.shape == (n, height, width, 3)


def test_decoder_kernels_on_a_real_stream(carphone_bundle: Path, encoded) -> None:
    """A real stream's own inputs: each I-frame's latent (every predicted pass's contexts) and its
    network output, each M-frame's vector field as differences from its median predictors."""
    bundle = load_bundle(carphone_bundle)
    header = Header.unpack(encoded[0].read_bytes()[:HEADER_SIZE], "s")
    shape = latent_shape(bundle, header.width, header.height)
    unpacker = LatentUnpacker(CodingTables.from_bundle(bundle), bundle.meta.coding.latent_level(header.quality), shape)
    decoder = open_decoder(bundle, cpu_only=True)
    kinds = set()
    for chunk in read_chunks(encoded[0].read_bytes(), "s"):
        kinds.add(chunk.frame_type)
        if chunk.frame_type == I_FRAME:
            q = unpacker.unpack_intra(chunk)
            centred = q - np.asarray(unpacker.level.intra_centre)[:, None, None]
            for intra_pass in INTRA_PASSES[1:]:
                args = (intra_pass.stride, intra_pass.phases, intra_pass.offsets, NEIGHBOUR_LIMIT, _BUCKET_OF)
                _same("intra_context", centred, *args, dtype=np.int64)
            output = decoder.run(None, {"latent": (q * unpacker.level.step).astype(np.float32)[None]})[0]
            _same("to_pixels", output, header.height, header.width, dtype=np.uint8)
        elif chunk.frame_type == M_FRAME:
            vectors = parse_inter(chunk.payload, header.height, header.width, "s").vectors.astype(np.int64)
            differences = (vectors - median_predictor(vectors)).reshape(-1, 2)
            field = _same("from_medians", differences, *vectors.shape[:2], dtype=np.int64)
            np.testing.assert_array_equal(field, vectors)
    assert kinds >= {I_FRAME, M_FRAME}
