"""Multi-process training on torch.distributed: NCCL between GPUs, gloo between CPU processes.

Launch with ``codec train --nproc N ...`` (which runs torchrun) or ``torchrun --nproc_per_node=N
-m codec.cli train ...``. Every process trains on its own frames and crops; only rank 0 evaluates
and writes the bundle.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import torch
import torch.distributed as dist

from codec.errors import CodecError


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def join(device: torch.device) -> torch.device:
    """Join the process group torchrun describes in the environment; returns this process's device."""
    if world_size() == 1:
        return device
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        dist.init_process_group("nccl")
        return torch.device("cuda", local)
    dist.init_process_group("gloo")
    return device


def leave() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def train_command(
    nproc: int, video: str, model_dir: str, flags: dict[str, bool], settings: dict[str, Any]
) -> list[str]:
    """The torchrun command that runs ``codec train video -o model_dir`` in ``nproc`` processes on
    this machine, with the switches in ``flags`` that are on and the ``settings`` that are given."""
    if nproc < 2:
        raise CodecError(f"--nproc must be at least 2 to launch processes, not {nproc}")
    args = [video, "-o", model_dir, *(f"--{name}" for name, on in flags.items() if on)]
    for key, value in settings.items():
        if value is not None:
            args += [f"--{key.replace('_', '-')}", str(value)]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    return [*torchrun, "-m", "codec.cli", "train", *args]


def launch(nproc: int, video: str, model_dir: str, flags: dict[str, bool], settings: dict[str, Any]) -> None:
    """Run :func:`train_command` and wait for its processes; one that fails is a CodecError."""
    result = subprocess.run(train_command(nproc, video, model_dir, flags, settings), check=False)
    if result.returncode:
        raise CodecError(f"distributed training failed in one of its {nproc} processes (exit {result.returncode})")
