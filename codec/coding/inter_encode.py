"""Motion-compensated P-frames, the encoder's side: the rate-constrained motion search against the
encoder's own previous reconstruction (the uint8 frame the decoder will hold), the residual's levels
at a QP, and the payload codec.coding.inter_frame decodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from codec.coding.entropy_coding import SymbolRangeEncoder
from codec.coding.inter_frame import BLOCK, CHROMA_QP_OFFSET, QP_BITS, add_residual, inter_tables
from codec.coding.motion import Reference
from codec.coding.motion_coding import SPLIT, coarse_grid, encode_motion, expand
from codec.coding.motion_search import choose_splits, search
from codec.coding.residual_coding import encode_residual
from codec.coding.transform import MAX_QP, component_qps, residual_levels

QP_PLUS_PSNR = 71  # QP + the PSNR of the I-frame before it, at step 1: calibrated on bikes


def residual_qp(intra_psnr: float, step: float) -> int:
    """The M-frames' QP after an I-frame of RGB PSNR ``intra_psnr`` coded at quantization ``step``:
    about that quality (H.264's step doubles every 6 QP, about 6 dB), 1.5 finer for each level the
    step is finer (the latent's step grows by sqrt 2 a level), so one quality level picks one point
    and the levels spread over a wider range than the I-frames alone (on bikes, a QP chosen this way
    lies on the best curve any of QP + PSNR = 62 ... 77 gives)."""
    return int(np.clip(round(QP_PLUS_PSNR + 3 * math.log2(step) - intra_psnr), 0, MAX_QP))


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
    """One coded M-frame: its payload, the frame a decoder rebuilds from it, its vectors and which
    32x32 blocks are split."""

    payload: bytes
    reconstruction: np.ndarray
    vectors: np.ndarray
    split: np.ndarray


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


DEFAULT_INTER = InterOptions()


def encode_inter(frame: np.ndarray, previous: np.ndarray, qp: int, options: InterOptions = DEFAULT_INTER) -> InterFrame:
    """Code ``frame`` ((H, W, 3) uint8) as motion from ``previous`` (the reconstruction a decoder
    holds) plus its residual at ``qp``."""
    if not 0 <= qp <= MAX_QP:
        raise ValueError(f"QP {qp} is not 0..{MAX_QP}")
    reference = Reference(previous, BLOCK)
    lam = options.lambda_scale * motion_lambda(qp)
    if options.blocks == "32":
        coarse = search(frame, Reference(previous, BLOCK * SPLIT), lam, precision=options.precision)
        vectors = expand(coarse, reference.rows, reference.cols)
        split = np.zeros(coarse.shape[:2], bool)
    else:
        vectors = search(frame, reference, lam, precision=options.precision)
        split = np.ones(coarse_grid(reference.rows, reference.cols), bool)
        if options.blocks == "32/16":
            vectors, split = choose_splits(frame, reference, vectors, lam)
    prediction = reference.predict(vectors)
    levels = residual_levels(frame.astype(np.int32) - prediction, component_qps(qp, CHROMA_QP_OFFSET))
    if not options.residual:
        levels[:] = 0
    payload = pack_inter(qp, vectors, split, levels)
    return InterFrame(payload, add_residual(prediction, levels, qp), vectors, split)


def pack_inter(qp: int, vectors: np.ndarray, split: np.ndarray, levels: np.ndarray) -> bytes:
    """The M-frame payload of ``qp``, the (rows, cols, 2) ``vectors`` with their 32x32 blocks'
    ``split`` flags, and the residual ``levels``."""
    tables, _ = inter_tables()
    coder = SymbolRangeEncoder()
    coder.encode_bits(np.array([qp]), np.array([QP_BITS]))
    encode_motion(vectors, split, coder, tables)
    encode_residual(levels, coder, tables)
    return coder.finish()
