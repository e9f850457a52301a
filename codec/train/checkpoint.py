"""The bundle's checkpoint: the training state written for ``--resume`` and read back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from codec.errors import CodecError
from codec.io.files import atomic_path
from codec.train.distributed import rank
from codec.train.state import TrainState


def save_checkpoint(state: TrainState, path: Path, extra: dict[str, Any]) -> None:
    """Write everything ``--resume`` needs (weights, optimizer, step, RNG states) plus ``extra``."""
    payload = {
        "model": state.model.state_dict(),
        "prior": state.prior.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "step": state.step,
        "seconds": state.seconds,
        "numpy_rng": state.rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        **extra,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint at ``path``, its tensors on the CPU; a damaged file is a CodecError."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for a damaged file
        raise CodecError(f"{path}: unreadable checkpoint ({exc})") from None


def restore(state: TrainState, ckpt: dict[str, Any], seed: int) -> None:
    """Load a checkpoint's weights, optimizer, step count and RNG states into ``state``.

    The checkpoint holds the random streams of the process that wrote it (rank 0). In a
    distributed run the other processes draw fresh streams of their own, from ``seed``, their rank
    and the step count, so that they keep sampling frames, crops and noise unlike rank 0's."""
    state.model.load_state_dict(ckpt["model"])
    state.prior.load_state_dict(ckpt["prior"])
    state.optimizer.load_state_dict(ckpt["optimizer"])
    state.step = ckpt["step"]
    state.seconds = ckpt["seconds"]
    if rank() == 0:
        state.rng.bit_generator.state = ckpt["numpy_rng"]
        torch.set_rng_state(ckpt["torch_rng"])
        if ckpt.get("cuda_rng") and torch.cuda.is_available():  # noise drawn on the GPU continues too
            torch.cuda.set_rng_state_all(ckpt["cuda_rng"])
    else:
        state.rng = np.random.default_rng([seed, rank(), state.step])
        torch.manual_seed(int(state.rng.integers(2**62)))
