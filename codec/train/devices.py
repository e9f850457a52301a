"""What training can run on and in, without importing torch (the CLI offers these as choices)."""

from __future__ import annotations

from pathlib import Path

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
