"""Multi-process training on torch.distributed: NCCL between GPUs, gloo between CPU processes.

Launch with ``codec train --nproc N ...`` (which runs torchrun) or ``torchrun --nproc_per_node=N
-m codec.cli train ...``; over several machines, the same ``codec train --nnodes M --rdzv-endpoint
HOST:PORT ...`` on each (torchrun's c10d rendezvous). Every process trains on its own frames and
crops; only rank 0 evaluates and writes the bundle.
"""

from __future__ import annotations

import gc
import hashlib
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
    """Leave the process group so that none of its threads outlives it. A process that exits while
    a gloo worker thread still holds the work of its last collective aborts ("terminate called
    without an active exception"): the thread frees the work's tensors, which needs the interpreter,
    and the interpreter is already shutting down. So: a barrier, which returns once every earlier
    collective of every process is done; then a collection, which frees the run's
    DistributedDataParallel wrapper (caught in reference cycles, it would keep the group alive until
    shutdown); then the group is destroyed and its threads joined while the interpreter still runs."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        gc.collect()
        dist.destroy_process_group()


def train_command(
    nproc: int,
    video: str,
    model_dir: str,
    flags: dict[str, bool],
    settings: dict[str, Any],
    nnodes: int = 1,
    endpoint: str | None = None,
) -> list[str]:
    """The torchrun command that runs ``codec train video -o model_dir`` in ``nproc`` processes on
    this machine, with the switches in ``flags`` that are on and the ``settings`` that are given.
    With ``nnodes`` > 1 every machine runs the same command and the processes of all of them meet
    at the c10d rendezvous ``endpoint`` (HOST:PORT, one of the machines)."""
    if nnodes < 1:
        raise CodecError(f"--nnodes must be at least 1, not {nnodes}")
    if nnodes == 1 and endpoint:
        raise CodecError("--rdzv-endpoint is for a run over several machines (--nnodes 2 or more)")
    if nnodes > 1 and not endpoint:
        raise CodecError(f"--nnodes {nnodes} needs --rdzv-endpoint HOST:PORT, where the machines meet")
    if nproc < (1 if nnodes > 1 else 2):
        raise CodecError(f"--nproc must be at least {1 if nnodes > 1 else 2} to launch processes, not {nproc}")
    args = [video, "-o", model_dir, *(f"--{name}" for name, on in flags.items() if on)]
    for key, value in settings.items():
        if value is not None:
            args += [f"--{key.replace('_', '-')}", str(value)]
    torchrun = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}"]
    if nnodes == 1:
        torchrun.append("--standalone")
    else:
        # Every machine derives the same run id from the same command line.
        run_id = hashlib.sha256(f"{video}\0{model_dir}".encode()).hexdigest()[:16]
        torchrun += [f"--nnodes={nnodes}", "--rdzv_backend=c10d", f"--rdzv_endpoint={endpoint}", f"--rdzv_id={run_id}"]
    return [*torchrun, "-m", "codec.cli", "train", *args]


def launch(command: list[str]) -> None:
    """Run a :func:`train_command` and wait for its processes; one that fails is a CodecError."""
    result = subprocess.run(command, check=False)
    if result.returncode:
        raise CodecError(f"distributed training failed in one of its processes (exit {result.returncode})")
