"""The training state: model, prior, optimizer, step count and random streams."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from codec.train.distributed import rank
from codec.train.model import AutoEncoder, ModelConfig
from codec.train.options import TrainOptions
from codec.train.prior import LatentPrior


@dataclass
class TrainState:
    """Everything a resumed run needs, saved as the bundle's checkpoint."""

    model: AutoEncoder
    prior: LatentPrior
    optimizer: torch.optim.Optimizer
    step: int = 0
    seconds: float = 0.0
    rng: np.random.Generator = field(default_factory=np.random.default_rng)


def new_state(
    cfg: ModelConfig, opts: TrainOptions, device: torch.device, model_class: type[AutoEncoder] = AutoEncoder
) -> TrainState:
    """A fresh model and prior on ``device`` with their optimizer, seeded from ``opts.seed``: the same
    initial weights in every process, then random streams of each process's own."""
    torch.manual_seed(opts.seed)  # the same initial weights in every process
    # channels_last on every device: faster convolutions on GPUs and on oneDNN CPUs alike
    model = model_class(cfg).to(device, memory_format=torch.channels_last)
    prior = LatentPrior(cfg.latent_channels).to(device)
    optimizer = torch.optim.Adam([*model.parameters(), *prior.parameters()], lr=opts.lr)
    seed = opts.seed + rank()  # then each process its own frames, crops and noise
    torch.manual_seed(seed)
    return TrainState(model, prior, optimizer, rng=np.random.default_rng(seed))
