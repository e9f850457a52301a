"""``codec inspect walk``: what one direction of the latent code does to a frame.

Every frame's code y_t (C x h x w, from encoder.onnx) is a point in latent space. For a unit
direction d (a latent channel, spread evenly over its positions, or a principal component of the
video's codes), the video's frames project to p_t = <y_t, d>. The walk holds frame N's code fixed
except along d, sweeping it across the observed range of p:  y = y_N + (a - p_N) d,
a from min(p) to max(p), and decodes each step with decoder.onnx. No torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codec.coding.common.runtime import Networks
from codec.errors import CodecError
from codec.io.bundle import Bundle
from codec.io.video import iter_frames, probe, write_png

MAX_CELL_WIDTH = 320


def video_latents(nets: Networks, video: Path) -> tuple[np.ndarray, np.ndarray]:
    """(frames, unquantized codes) of every frame of ``video``: (N,H,W,3) uint8 and (N,C,h,w) float32."""
    frames, codes = [], []
    for frame in iter_frames(video):
        frames.append(frame)
        codes.append(nets.analyse(frame[None])[0])
    return np.stack(frames), np.stack(codes)


def pca_directions(codes: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` leading principal directions of the per-frame codes, as (k, C, h, w) unit vectors."""
    flat = codes.reshape(len(codes), -1).astype(np.float64)
    centred = flat - flat.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    k = min(k, len(vt))
    return vt[:k].reshape(k, *codes.shape[1:])


def channel_directions(shape: tuple[int, ...], channels: list[int]) -> np.ndarray:
    """Unit directions that move every position of one channel by the same amount."""
    c, h, w = shape
    bad = [ch for ch in channels if not 0 <= ch < c]
    if bad:
        raise CodecError(f"--channels: the latent has channels 0..{c - 1}, not {bad}")
    dirs = np.zeros((len(channels), c, h, w))
    for i, ch in enumerate(channels):
        dirs[i, ch] = 1 / np.sqrt(h * w)
    return dirs


@dataclass
class Walk:
    """The decoded grid: rows[direction][step] frames, plus the original and its reconstruction."""

    original: np.ndarray
    reconstruction: np.ndarray
    rows: list[list[np.ndarray]]
    ranges: list[tuple[float, float]]


def walk(bundle: Bundle, video: Path, frame: int, directions: str, steps: int) -> Walk:
    """Walk frame ``frame``'s code along each direction (``"pca:K"`` or ``"channels:c1,c2"``)."""
    if steps < 2:
        raise CodecError(f"--steps must be at least 2, not {steps}")
    info = probe(video)
    nets = Networks(bundle, info.width, info.height)
    frames, codes = video_latents(nets, video)
    if not 0 <= frame < len(frames):
        raise CodecError(f"--frame {frame}: {video} has frames 0..{len(frames) - 1}")
    kind, _, arg = directions.partition(":")
    if kind == "pca":
        dirs = pca_directions(codes, int(arg))
    else:
        dirs = channel_directions(codes.shape[1:], [int(c) for c in arg.split(",") if c.strip()])
    step = bundle.meta.coding.default_step
    y = codes[frame].astype(np.float64)
    reconstruction = nets.synthesise((np.round(y / step) * step)[None].astype(np.float32))[0]
    rows, ranges = [], []
    for d in dirs:
        p = np.tensordot(codes.astype(np.float64), d, axes=3)
        lo, hi = float(p.min()), float(p.max())
        batch = np.stack([y + (a - p[frame]) * d for a in np.linspace(lo, hi, steps)]).astype(np.float32)
        rows.append([nets.synthesise(b[None])[0] for b in batch])
        ranges.append((lo, hi))
    return Walk(frames[frame], reconstruction, rows, ranges)


def _shrink(image: np.ndarray) -> np.ndarray:
    factor = -(-image.shape[1] // MAX_CELL_WIDTH)
    return image[::factor, ::factor]


def grid_image(result: Walk, gap: int = 4) -> np.ndarray:
    """One image: a row per direction of [original | reconstruction | step 1 ... step S]."""
    cells = [[result.original, result.reconstruction, *row] for row in result.rows]
    cells = [[_shrink(c) for c in row] for row in cells]
    ch, cw = cells[0][0].shape[:2]
    n_rows, n_cols = len(cells), len(cells[0])
    image = np.full((n_rows * (ch + gap) - gap, n_cols * (cw + gap) - gap, 3), 255, np.uint8)
    for r, row in enumerate(cells):
        for c, cell in enumerate(row):
            image[r * (ch + gap) : r * (ch + gap) + ch, c * (cw + gap) : c * (cw + gap) + cw] = cell
    return image


def write_walk(result: Walk, path: Path) -> tuple[int, int]:
    """Write the grid PNG; returns its (rows, columns) of cells."""
    write_png(path, grid_image(result))
    return len(result.rows), len(result.rows[0]) + 2
