"""Training-time entropy model: bits of noise-perturbed latents under discretized Laplace priors.

The same family codes the real bitstream (constriction's QuantizedLaplace), so what training
minimises is what is later coded. One prior per latent channel, its parameters learned with the
networks and stored in the bundle:

    I-frames:  q = round(y / step)                 ~ Laplace(loc_c / step, scale_c / step)
    P-frames:  q_t - q_(t-1)                       ~ Laplace(0, inter_scale_c / step)

This module is the differentiable path (uniform noise, likelihoods); real bits come from the
coding-time path, which reads these parameters from the bundle and never from a network output.
"""

from __future__ import annotations

import math

import torch
from torch import nn

MIN_SCALE = 0.01
MIN_LIKELIHOOD = 1e-9


def laplace_bits(x: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor, step: float) -> torch.Tensor:
    """-log2 of the mass a Laplace(loc, scale) puts on the bin [x - step/2, x + step/2], elementwise."""
    z = (x - loc).abs()
    half = step / 2
    # Outer bins: 0.5 * exp(-(z - h)/b) * (1 - exp(-step/b)), in log space to stay finite in the tails.
    outer = math.log(0.5) - (z - half) / scale + torch.log(-torch.expm1(-step / scale))
    # The bin that holds the mode: 1 - 0.5 * (exp(-(h - z)/b) + exp(-(h + z)/b)).
    inner_mass = 1 - 0.5 * (torch.exp(-(half - z).clamp(min=0) / scale) + torch.exp(-(half + z) / scale))
    inner = torch.log(inner_mass.clamp(min=MIN_LIKELIHOOD))
    log_p = torch.where(z >= half, outer, inner).clamp(min=math.log(MIN_LIKELIHOOD))
    return -log_p / math.log(2)


class LatentPrior(nn.Module):
    """Per-channel discretized Laplace priors for intra-coded latents and inter residuals."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.intra_loc = nn.Parameter(torch.zeros(channels))
        self.intra_log_scale = nn.Parameter(torch.zeros(channels))
        self.inter_log_scale = nn.Parameter(torch.full((channels,), -1.0))

    @staticmethod
    def _per_channel(v: torch.Tensor) -> torch.Tensor:
        return v.view(1, -1, 1, 1)

    def intra_scale(self) -> torch.Tensor:
        return self.intra_log_scale.exp().clamp(min=MIN_SCALE)

    def inter_scale(self) -> torch.Tensor:
        return self.inter_log_scale.exp().clamp(min=MIN_SCALE)

    def intra_bits(self, y: torch.Tensor, step: float) -> torch.Tensor:
        """Bits for latents ``y`` (N,C,h,w) of I-frames quantized with ``step``, elementwise."""
        loc = self._per_channel(self.intra_loc)
        return laplace_bits(y.float(), loc, self._per_channel(self.intra_scale()), step)

    def inter_bits(self, residual: torch.Tensor, step: float) -> torch.Tensor:
        """Bits for P-frame residuals y_t - y_hat_(t-1) quantized with ``step``, elementwise."""
        return laplace_bits(residual.float(), torch.zeros(()), self._per_channel(self.inter_scale()), step)

    def tables(self) -> dict[str, list[float]]:
        """The parameters the coder reads from the bundle, in latent units (before dividing by step)."""
        return {
            "intra_loc": self.intra_loc.detach().cpu().tolist(),
            "intra_scale": self.intra_scale().detach().cpu().tolist(),
            "inter_scale": self.inter_scale().detach().cpu().tolist(),
        }
