"""A deliberately broken autoencoder for ``codec inspect sweep`` only: a skip connection from the
encoder's first stage to the decoder's last one bypasses the code. It reconstructs nearly
perfectly while its code carries almost nothing, which is the identity trap the real model's
configuration check refuses. ``codec train`` can never build it.
"""

from __future__ import annotations

import torch
from torch import nn

from codec.train.model import RGB, STEM, AutoEncoder, ModelConfig


class SkipAutoEncoder(AutoEncoder):
    """AutoEncoder plus a path from the input, at 1/4 resolution, straight into the decoder's head."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self.skip = nn.Sequential(nn.PixelUnshuffle(STEM), nn.Conv2d(RGB * STEM**2, cfg.width, 3, padding=1))

    def reconstruct(self, x: torch.Tensor, y_hat: torch.Tensor) -> torch.Tensor:
        body, head = self.decoder.net[:-2], self.decoder.net[-2:]
        out = head(body(y_hat) + self.skip(x - 0.5)) + 0.5
        return out if self.training else out.clamp(0.0, 1.0)
