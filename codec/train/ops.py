"""Small tensor helpers shared by training, evaluation, export and the measuring tools."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def to_tensor(frames: list[np.ndarray] | np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (N,H,W,3) RGB to float (N,3,H,W) in [0,1] on ``device``."""
    x = torch.from_numpy(np.ascontiguousarray(np.stack(frames) if isinstance(frames, list) else frames))
    return x.to(device).permute(0, 3, 1, 2).float().div_(255)


def pad_to_stride(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Replicate-pad (N,3,H,W) on the bottom/right so H and W are multiples of ``stride``."""
    h, w = x.shape[-2:]
    ph, pw = -h % stride, -w % stride
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x


def quantize(y: torch.Tensor, step: float) -> torch.Tensor:
    """``y`` rounded to the nearest multiple of ``step``, as the codec codes latents."""
    return torch.round(y / step) * step


def straight_through_round(y: torch.Tensor, step: float) -> torch.Tensor:
    """:func:`quantize` in the forward pass, the identity in the backward pass."""
    return y + (quantize(y, step) - y).detach()
