"""What training can run on and in. The choices import without torch (the CLI offers them); resolving
a choice to a present device imports torch when it is called."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from codec.cpus import thread_count
from codec.errors import CodecError

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")
# CPU feature flags (/proc/cpuinfo) of native bfloat16 arithmetic: x86 AVX512-BF16 or AMX, Arm BF16.
CPU_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (read from /proc/cpuinfo; False where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = (line.partition(":")[2].split() for line in text.splitlines() if line.startswith(("flags", "Features")))
    return any(CPU_BF16_FLAGS.intersection(f) for f in flags)


def resolve_device(name: str) -> torch.device:
    """Map ``auto|cpu|cuda|mps`` to a present device; asking for an absent one is an error."""
    import torch

    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise CodecError("--device cuda: no CUDA GPU is visible to this torch build")
    if name == "mps" and not has_mps:
        raise CodecError("--device mps: Apple's Metal backend is not available here")
    return torch.device(name)


def use_cpus(device: torch.device) -> int | None:
    """Training on the CPU, size torch's threads at this process's share of the CPUs it may use
    (split among the processes torchrun started on this machine), at most ``OMP_NUM_THREADS``
    where that is set (torchrun sets 1 for processes that share a machine), and return it; None
    elsewhere."""
    import torch

    if device.type != "cpu":
        return None
    threads = max(1, thread_count() // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    omp = os.environ.get("OMP_NUM_THREADS", "")
    if omp.isdigit() and int(omp) > 0:
        threads = min(threads, int(omp))
    torch.set_num_threads(threads)
    return threads


def resolve_precision(name: str, device: torch.device) -> str:
    """Map ``auto|fp32|bf16`` to what the training step computes in on ``device``.

    auto takes bfloat16 autocast where the hardware has it (CUDA GPUs from Ampere on, CPUs with
    AVX512-BF16/AMX/Arm BF16), float32 elsewhere; the latents, the prior and the loss stay float32."""
    import torch

    if name == "bf16" and device.type not in ("cpu", "cuda"):
        raise CodecError(f"--precision bf16: supported on cpu and cuda, not {device.type}")
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_bf16() else "fp32"
