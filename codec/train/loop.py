"""Fit the autoencoder and its prior to one video: rate-distortion training on frame pairs.

Each step draws a batch of consecutive frame pairs (t, t+1), cropped at the same place, and
minimises

    loss = lmbda * 255^2 * MSE  +  bpp,     bpp = (intra bits / gop + inter bits * (gop-1)/gop) / pixels

where intra bits price frame t's latent as an I-frame and inter bits price frame t+1's latent as
the residual from frame t's quantized latent (a P-frame), both on uniform-noise-perturbed latents
under :class:`~codec.train.prior.LatentPrior`. The decoder sees the rounded latent (straight-through).
So the encoder learns codes that are cheap to code as the codec codes them: temporally stable.
Each step quantizes with a step drawn from the quality levels, so one model serves them all.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from codec.io.frame_store import FrameStore
from codec.io.psnr import psnr_from_mse
from codec.train.devices import resolve_precision
from codec.train.model import AutoEncoder
from codec.train.ops import pad_to_stride, straight_through_round, to_tensor
from codec.train.options import TrainOptions
from codec.train.pace import Pace
from codec.train.prior import LatentPrior
from codec.train.state import TrainState

EVAL_FRAMES = 300  # frames evaluation codes at most: ten GOPs of the default 30
EVAL_PIXELS = 1 << 20  # frames evaluated together up to this many pixels in all (one at a time above)


@dataclass
class Progress:
    """One progress report: shown live by the CLI while training runs."""

    step: int
    fraction: float
    psnr: float
    bpp: float
    slowed: float | None = None  # recent steps/s as a fraction of the start's, when far below it


@dataclass
class EvalResult:
    """Full-frame results with real rounding: mean RGB PSNR of 8-bit output and estimated bpp."""

    frames: int
    psnr: float
    bpp_estimate: float


def learning_rate(peak: float, fraction: float) -> float:
    """Short linear warm-up, then cosine decay to 5% of the peak over the run's budget."""
    warm = 0.02
    if fraction < warm:
        return peak * (0.1 + 0.9 * fraction / warm)
    t = min(1.0, (fraction - warm) / (1 - warm))
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))


def _sample_pairs(frames: FrameStore, opts: TrainOptions, stride: int, rng: np.random.Generator) -> np.ndarray:
    """A (2, B, h, w, 3) uint8 batch: B crops of frames t and t+1 at the same place, read from disk."""
    h, w = frames.height, frames.width
    ch, cw = opts.crop_size(h, w, stride)
    last = max(len(frames) - 2, 0)
    out = np.empty((2, opts.batch, ch, cw, 3), np.uint8)
    for b in range(opts.batch):
        t = int(rng.integers(0, last + 1))
        top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        out[0, b] = frames.crop(t, top, left, ch, cw)
        out[1, b] = frames.crop(min(t + 1, len(frames) - 1), top, left, ch, cw)
    return out


def _gop_bpp(intra: torch.Tensor, inter: torch.Tensor, gop: int, pixels: int) -> torch.Tensor:
    """Bits per pixel of a GOP made of one I-frame priced ``intra`` and gop-1 P-frames priced ``inter``."""
    return (intra / gop + inter * (gop - 1) / gop) / pixels


class RateDistortion(nn.Module):
    """Autoencoder and prior as one module with the training loss as its forward, so that
    DistributedDataParallel can keep both in step across processes."""

    def __init__(self, model: AutoEncoder, prior: LatentPrior, opts: TrainOptions, bf16: bool = False) -> None:
        super().__init__()
        self.model, self.prior, self.opts, self.bf16 = model, prior, opts, bf16

    def forward(self, x: torch.Tensor, step: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Loss of a pair batch at quantization ``step``: frames t in the first half of ``x``, t+1 in
        the second. Returns (loss, mse, bpp), bpp pricing the rounded latents as they are coded."""
        prior, opts = self.prior, self.opts
        autocast = torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.bf16)
        with autocast:
            y = self.model.encoder(x).float()
        y0, y1 = y.chunk(2)
        y_hat = straight_through_round(y, step)
        y0_hat, y1_hat = y_hat.chunk(2)
        noise = torch.empty_like(y).uniform_(-step / 2, step / 2)
        intra = prior.intra_bits(y0 + noise[: len(y0)], step).sum()
        inter = prior.inter_bits(y1 + noise[len(y0) :] - y0_hat, step).sum()
        with autocast:
            x_hat = self.model.reconstruct(x, y_hat)
        mse = F.mse_loss(x_hat.float(), x)
        pixels = len(y0) * x.shape[-2] * x.shape[-1]
        loss = opts.lmbda * 255**2 * mse + _gop_bpp(intra, inter, opts.gop, pixels)
        with torch.no_grad():
            coded = _gop_bpp(
                prior.intra_bits(y0_hat, step).sum(), prior.inter_bits(y1_hat - y0_hat, step).sum(), opts.gop, pixels
            )
        return loss, mse.detach(), coded


def fit(
    state: TrainState,
    frames: FrameStore,
    opts: TrainOptions,
    device: torch.device,
    report: Callable[[Progress], None] = lambda p: None,
) -> dict[str, float | None]:
    """Train ``state`` on ``frames`` within the budget in ``opts``; returns speed figures of this run.

    Under torch.distributed (launched by torchrun or ``codec train --nproc``) the loss module runs
    in DistributedDataParallel: each process draws its own frames and crops, gradients are averaged,
    and the time budget ends every process at the same step."""
    model, prior, optimizer = state.model, state.prior, state.optimizer
    model.train()
    stride = model.cfg.stride
    precision = resolve_precision(opts.precision, device)
    net: nn.Module = RateDistortion(model, prior, opts, bf16=precision == "bf16")
    distributed = dist.is_available() and dist.is_initialized()
    if distributed:
        net = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    losses: list[float] = []
    budget_s = opts.minutes * 60 if opts.minutes is not None else math.inf
    started = time.perf_counter()
    steps_done = 0
    pixels = 0
    ema_mse = ema_bpp = None
    pace = Pace()
    while True:
        elapsed = time.perf_counter() - started
        slowed = pace.slowed(elapsed, steps_done)
        fraction = max(elapsed / budget_s, steps_done / opts.steps if opts.steps else 0.0)
        if distributed:  # every process stops at the same step: the furthest along decides
            shared = torch.tensor([fraction], device=device)
            dist.all_reduce(shared, op=dist.ReduceOp.MAX)
            fraction = float(shared)
        if fraction >= 1:
            break
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(opts.lr, fraction)
        pairs = _sample_pairs(frames, opts, stride, state.rng)
        x = pad_to_stride(to_tensor(pairs.reshape(-1, *pairs.shape[2:]), device), stride)
        x = x.contiguous(memory_format=torch.channels_last)
        step = opts.quality_steps[int(state.rng.integers(len(opts.quality_steps)))]
        loss, mse_t, bpp_t = net(x, step)
        mse, bpp = float(mse_t), float(bpp_t)
        losses.append(float(loss.detach()))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([*model.parameters(), *prior.parameters()], 1.0)
        optimizer.step()
        steps_done += 1
        state.step += 1
        pixels += x[0].numel() // 3 * len(x)
        ema_mse = mse if ema_mse is None else 0.95 * ema_mse + 0.05 * mse
        ema_bpp = bpp if ema_bpp is None else 0.95 * ema_bpp + 0.05 * bpp
        report(Progress(state.step, min(fraction, 1.0), psnr_from_mse(ema_mse, 1.0), ema_bpp, slowed))
    wall = time.perf_counter() - started
    report(Progress(state.step, 1.0, psnr_from_mse(ema_mse or 1.0, 1.0), ema_bpp or 0.0))
    state.seconds += wall
    model.eval()
    return {
        "steps": steps_done,
        "precision": precision,
        "wall_s": wall,
        "steps_per_s": steps_done / wall if wall else 0.0,
        "pixels_per_s": pixels / wall if wall else 0.0,
        "loss_start": float(np.mean(losses[:10])) if losses else None,
        "loss_end": float(np.mean(losses[-10:])) if losses else None,
    }


def eval_indices(n: int, gop: int, limit: int = EVAL_FRAMES) -> list[int]:
    """Which of ``n`` frames evaluation codes: all of them up to ``limit``, else whole GOPs (I-frame
    first) spread evenly over the clip, at most ``limit`` frames in all, so that evaluating a film
    takes what evaluating a short clip does and still sees all of it."""
    if n <= limit:
        return list(range(n))
    length = min(gop, limit)
    gops = max(1, n // gop)
    starts = np.unique(np.linspace(0, gops - 1, min(gops, limit // length)).round().astype(int)) * gop
    return [int(s) + i for s in starts for i in range(length) if s + i < n]


@torch.inference_mode()
def evaluate(
    state: TrainState,
    frames: FrameStore,
    opts: TrainOptions,
    device: torch.device,
    keep_latents: int = 0,
) -> tuple[list[EvalResult], np.ndarray]:
    """Code the frames :func:`eval_indices` picks from ``frames`` as the codec will (I-frames where a
    GOP starts or the picks jump, P-frames between, rounded latents) at every quality level and measure
    each: mean RGB PSNR of the 8-bit output and the priors' estimate of the bits. Also returns the
    unquantized latents (N, C, h, w) of the first ``keep_latents`` picks (whole GOPs from their
    I-frame), which the P tables are fitted on. One frame's activations at a time above EVAL_PIXELS."""
    model, prior = state.model, state.prior
    model.eval()
    steps = opts.quality_steps
    h, w = frames.height, frames.width
    batch = max(1, min(4, EVAL_PIXELS // (h * w)))
    picks = eval_indices(len(frames), opts.gop)
    psnrs: list[list[float]] = [[] for _ in steps]
    bits = [0.0 for _ in steps]
    previous: list[torch.Tensor | None] = [None for _ in steps]
    latents: list[np.ndarray] = []
    for start in range(0, len(picks), batch):
        indices = picks[start : start + batch]
        x = to_tensor([frames[i] for i in indices], device)
        y = model.encoder(pad_to_stride(x, model.cfg.stride)).float()
        kept = max(0, min(len(indices), keep_latents - start))
        latents += [y[:kept].cpu().numpy()] if kept else []
        for k, step in enumerate(steps):
            q = torch.round(y / step)
            for i, index in enumerate(indices):
                follows = start + i > 0 and picks[start + i - 1] == index - 1
                if index % opts.gop == 0 or not follows or previous[k] is None:
                    bits[k] += float(prior.intra_bits(q[i] * step, step).sum())
                else:
                    bits[k] += float(prior.inter_bits((q[i] - previous[k]) * step, step).sum())
                previous[k] = q[i]
            out = torch.round(model.decoder(q * step)[..., :h, :w] * 255)
            mse = ((out - x * 255) ** 2).flatten(1).mean(1) / 255**2
            psnrs[k] += [psnr_from_mse(float(m), 1.0) for m in mse]
    pixels = len(picks) * h * w
    results = [EvalResult(len(picks), float(np.mean(p)), b / pixels) for p, b in zip(psnrs, bits, strict=True)]
    empty = np.zeros((0, *model.cfg.latent_shape(h, w)), np.float32)
    return results, np.concatenate(latents) if latents else empty
