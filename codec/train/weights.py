"""Quantization of the decoder's weights, chosen by what it costs in PSNR, before the bundle is written.

Every convolution weight of the decoder is rounded to a multiple of its output channel's step,
``relative_step`` times that channel's RMS, and the decoder then runs with exactly those values
(float32(q) * step), in torch for the bundle's evaluation and in onnxruntime for every encode and
decode (codec.coding.common.decoder_weights codes the integers). The relative step is the coarsest of
RELATIVE_STEPS whose PSNR loss against the float decoder, on a sample of the video's frames, is
at most MAX_LOSS_DB at every quality level. Biases stay float32 in the graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from codec.io.frame_store import FrameStore
from codec.io.psnr import psnr_from_mse
from codec.train.ops import pad_to_stride, to_tensor

RELATIVE_STEPS = (1 / 4, 1 / 8, 1 / 16, 1 / 32, 1 / 64)  # coarsest first
MAX_LOSS_DB = 0.05
SAMPLE_FRAMES = 8


@dataclass
class WeightQuantization:
    """What was chosen: the relative step, each weight's per-channel steps, and the PSNR lost at each
    quality level on the sample frames (float decoder minus quantized decoder, dB)."""

    relative_step: float
    steps: dict[str, np.ndarray]
    loss_db: list[float]


def _quantizable(decoder: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p for name, p in decoder.named_parameters() if p.ndim == 4}


def channel_steps(weight: torch.Tensor, relative_step: float) -> np.ndarray:
    """Per output channel: ``relative_step`` times the channel's RMS (float32, never zero)."""
    rms = weight.detach().float().flatten(1).pow(2).mean(1).sqrt().clamp(min=1e-8)
    return (rms * relative_step).cpu().numpy().astype(np.float32)


@torch.no_grad()
def _apply(decoder: nn.Module, steps: dict[str, np.ndarray]) -> None:
    """Replace each quantizable weight by float32(round(w / step)) * step, as the client computes it."""
    for name, p in _quantizable(decoder).items():
        s = torch.from_numpy(steps[name]).to(p.device).view(-1, 1, 1, 1)
        p.copy_(torch.round(p.float() / s) * s)


@torch.no_grad()
def _psnrs(decoder: nn.Module, latents: list[torch.Tensor], x: torch.Tensor) -> list[float]:
    """PSNR of the sample ``x`` decoded from each level's ``latents``, one frame at a time (a frame's
    activations, not the sample's, are what a 4K source costs)."""
    h, w = x.shape[-2:]
    out = []
    for y in latents:
        squared = sum(
            float(((torch.round(decoder(y[i : i + 1])[..., :h, :w].clamp(0, 1) * 255) - x[i] * 255) ** 2).sum())
            for i in range(len(x))
        )
        out.append(psnr_from_mse(squared / x.numel() / 255**2, 1.0))
    return out


@torch.no_grad()
def quantize_decoder(
    model: nn.Module, frames: Sequence[np.ndarray] | FrameStore, quality_steps: tuple[float, ...], device: torch.device
) -> WeightQuantization:
    """Choose the relative step on up to SAMPLE_FRAMES of ``frames`` (spread over them) and quantize
    ``model.decoder``'s weights in place with it."""
    model.eval()
    decoder = model.decoder
    picks = np.linspace(0, len(frames) - 1, min(SAMPLE_FRAMES, len(frames))).round().astype(int)
    x = to_tensor([frames[i] for i in picks], device)
    y = torch.cat([model.encoder(pad_to_stride(x[i : i + 1], model.cfg.stride)).float() for i in range(len(x))])
    latents = [torch.round(y / step) * step for step in quality_steps]
    reference = _psnrs(decoder, latents, x)
    float_state = {k: v.clone() for k, v in decoder.state_dict().items()}
    for relative in RELATIVE_STEPS:
        decoder.load_state_dict(float_state)
        steps = {name: channel_steps(p, relative) for name, p in _quantizable(decoder).items()}
        _apply(decoder, steps)
        loss = [r - q for r, q in zip(reference, _psnrs(decoder, latents, x), strict=True)]
        if max(loss) <= MAX_LOSS_DB:
            break
    return WeightQuantization(relative, steps, loss)  # the finest, if none was within the bound
