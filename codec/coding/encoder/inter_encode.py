"""Motion-compensated P-frames, the encoder's side: the rate-constrained motion search against the
encoder's own previous reconstruction (the uint8 frame the decoder will hold), the residual's levels
at a QP, and the payload codec.coding.common.inter_frame decodes.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from codec.coding.common.entropy_coding import SymbolRangeEncoder, Table, zero_deflated_frequencies
from codec.coding.common.inter_frame import BLOCK, add_residual, encode_qp, inter_tables, residual_for
from codec.coding.common.motion import Reference
from codec.coding.common.motion_coding import SPLIT, encode_motion, expand
from codec.coding.common.residual_coding import Residual, encode_residual
from codec.coding.common.transform import MAX_QP
from codec.coding.encoder.motion_search import choose_splits, search

LAPLACE_TABLES = range(0, 96, 6)  # the shipped Laplace tables: these indices of the scale grid
ZERO_DEFLATED_TABLES = [(zero, ratio) for zero in (0.05, 0.15, 0.35) for ratio in (0.2, 0.45, 0.7)]
QP_PLUS_PSNR = 67  # QP + the PSNR of the I-frame before it, at step 1 ...
STEP_QP = 6  # ... and its rise per doubling of the step: calibrated on bikes and carphone


def inter_table_frequencies() -> list[list[int]]:
    """The tables inter_tables.json ships, computed: the Laplace grid's at LAPLACE_TABLES, then the
    zero-deflated ones of ZERO_DEFLATED_TABLES (on bikes, 7% fewer bytes of residual levels than the
    Laplace tables alone: a coded block's DC level is rarely 0, which no Laplace fits)."""
    laplace = [list(Table.from_grid(i).frequencies) for i in LAPLACE_TABLES]
    return laplace + [zero_deflated_frequencies(zero, ratio) for zero, ratio in ZERO_DEFLATED_TABLES]


def residual_qp(intra_psnr: float, step: float) -> int:
    """The M-frames' QP after an I-frame of RGB PSNR ``intra_psnr`` coded at quantization ``step``:
    a little finer than that quality at the default level (H.264's step doubles every 6 QP, about
    6 dB), 3 finer for each level the step is finer (the latent's step grows by sqrt 2 a level), so
    one quality level picks one point and the levels spread over a much wider range than the
    I-frames alone: at the fine levels the M-frames climb well above their I-frame. On bikes and
    carphone this lies on or above the best curve any of QP + PSNR = 63 ... 75 at 3 QP a level gives
    (most at the fine levels: +0.4 dB on bikes at 0.11 bpp, +0.6 on carphone at 0.065)."""
    return int(np.clip(round(QP_PLUS_PSNR + STEP_QP * math.log2(step) - intra_psnr), 0, MAX_QP))


REFINE_FIRST, REFINE_STEP = 12, 4  # the first refined level's QP below residual_qp's, and each next one's


def refinement_qp(base_psnr: float, step: float, refinement: int) -> int:
    """The QP of an I-frame's refinement at the ``refinement``-th refined level (>= 1), after a base
    dec(q) of RGB PSNR ``base_psnr`` at latent ``step``: REFINE_FIRST below the QP the M-frames would
    take after that base alone, REFINE_STEP lower at each level. The M-frames after it then follow
    the refined frame's PSNR by :func:`residual_qp`. On bikes (an 8-minute model, 250 frames) the
    first refined level lands 1.4 dB above the finest latent level and each next one 1.3 to 1.7 dB
    higher; REFINE_FIRST 9 put it level with the finest latent level, at fewer bits."""
    return int(np.clip(residual_qp(base_psnr, step) - REFINE_FIRST - REFINE_STEP * (refinement - 1), 0, MAX_QP))


def mode_lambda(qp: int) -> float:
    """H.264's mode-decision lambda at ``qp`` (0.85 x 2^((QP - 12) / 3) per bit of squared luma
    error), for squared error summed over R, G and B (three samples a pixel)."""
    return 3 * 0.85 * 2 ** ((qp - 12) / 3)


def motion_lambda(qp: int) -> float:
    """x264's motion lambda at ``qp`` (0.85 x 2^((QP - 12) / 6) per bit of SAD), in units of the
    search's luma proxy R + 2G + B (4 times a luma sample)."""
    return 4 * 0.85 * 2 ** ((qp - 12) / 6)


@dataclass(frozen=True)
class InterFrame:
    """One M-frame as decided: its ``qp``, vectors, which 32x32 blocks are split, the residual's
    levels and the frame a decoder rebuilds from them; its payload is packed on first use."""

    qp: int
    vectors: np.ndarray
    split: np.ndarray
    levels: np.ndarray
    reconstruction: np.ndarray

    @functools.cached_property
    def payload(self) -> bytes:
        return pack_inter(self.qp, self.vectors, self.split, self.levels)


@dataclass(frozen=True)
class InterOptions:
    """How the encoder searches and codes M-frames; the defaults are the codec's, the others are for
    the ablation: ``precision`` 0, 1, 2 searches whole, half or quarter pixels; without ``residual``
    every block is a skip (prediction only); ``lambda_scale`` weighs the vectors' bits; ``blocks``
    "32/16" moves each 32x32 block as one or as four 16x16 ones, whichever costs less, "16" always as
    four, "32" always as one."""

    precision: int = 2
    residual: bool = True
    lambda_scale: float = 1.0
    blocks: str = "32/16"

    def __post_init__(self) -> None:
        if self.blocks not in ("32/16", "16", "32") or self.precision not in (0, 1, 2):
            raise ValueError(f"not a way to code M-frames: {self}")


DEFAULT_INTER = InterOptions()


def encode_inter(frame: np.ndarray, previous: np.ndarray, qp: int, options: InterOptions = DEFAULT_INTER) -> InterFrame:
    """Decide ``frame`` ((H, W, 3) uint8) as motion from ``previous`` (the reconstruction a decoder
    holds) plus its residual at ``qp``, and reconstruct it; the payload is left to :attr:`InterFrame.payload`."""
    if not 0 <= qp <= MAX_QP:
        raise ValueError(f"QP {qp} is not 0..{MAX_QP}")
    coarse = Reference(previous, BLOCK * SPLIT)  # 32x32 blocks; with_block shares its planes
    reference = coarse.with_block(BLOCK)
    lam = options.lambda_scale * motion_lambda(qp)
    if options.blocks == "16":
        vectors = search(frame, reference, lam, precision=options.precision)
        split = np.ones((coarse.rows, coarse.cols), bool)
    else:
        whole = search(frame, coarse, lam, precision=options.precision)
        vectors = expand(whole, reference.rows, reference.cols)
        split = np.zeros((coarse.rows, coarse.cols), bool)
        if options.blocks == "32/16":  # the 16x16 search starts from the 32x32 field
            vectors = search(frame, reference, lam, precision=options.precision, start=vectors)
            vectors, split = choose_splits(frame, reference, vectors, whole, lam)
    prediction = reference.predict(vectors)
    levels = residual_for(frame, prediction, qp)
    if not options.residual:
        levels[:] = 0
    return InterFrame(qp, vectors, split, levels, add_residual(prediction, Residual.of(levels), qp))


def pack_inter(qp: int, vectors: np.ndarray, split: np.ndarray, levels: np.ndarray) -> bytes:
    """The M-frame payload of ``qp``, the (rows, cols, 2) ``vectors`` with their 32x32 blocks'
    ``split`` flags, and the residual ``levels``."""
    tables, _ = inter_tables()
    coder = SymbolRangeEncoder()
    encode_qp(coder, qp)
    encode_motion(vectors, split, coder, tables)
    encode_residual(levels, coder, tables)
    return coder.finish()
