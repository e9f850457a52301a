"""How many CPUs this process may really use: its affinity and the CPU quota of its cgroup, or
``AECODEC_THREADS``. The thread pools of onnxruntime, torch, numba and BLAS are sized from it, so a
container limited to 2 CPUs on a 64-core machine starts 2 threads in each, not 64. Standard library only."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from codec.errors import CodecError

OVERRIDE = "AECODEC_THREADS"
# What OpenMP (torch), OpenBLAS, MKL (numpy) and numba read when they load: set before they do, and
# inherited by child processes (torchrun's).
POOL_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
CGROUP = "sys/fs/cgroup"
V1_CPU_MOUNTS = ("cpu,cpuacct", "cpu")  # where cgroup v1 mounts its cpu controller


def usable_cpus(root: Path = Path("/")) -> int:
    """The CPUs this process may use: ``AECODEC_THREADS`` when set (a positive whole number, else a
    CodecError), otherwise the fewest of its CPU affinity and the CPU quotas (cgroup v2 ``cpu.max``,
    v1 ``cpu.cfs_quota_us``) of its cgroup and every cgroup above it, read under ``root``; at least 1.
    A cgroup file that is missing, unreadable or malformed sets no limit."""
    override = os.environ.get(OVERRIDE, "").strip()
    if override:
        if not override.isdecimal() or int(override) < 1:
            raise CodecError(f"{OVERRIDE} must be a positive whole number of threads, not {override!r}")
        return int(override)
    return max(1, min([_affinity(), *_quotas(root)]))


@cache
def thread_count() -> int:
    """:func:`usable_cpus` of this process, worked out once."""
    return usable_cpus()


def limit_threads() -> int:
    """Size the thread pools of the libraries loaded from now on, and of child processes, at
    :func:`thread_count` (a pool variable the user set, such as ``OMP_NUM_THREADS``, stays); returns it."""
    count = thread_count()
    for name in POOL_VARIABLES:
        os.environ.setdefault(name, str(count))
    return count


def _affinity() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def _quotas(root: Path) -> Iterator[int]:
    """The CPU quota, rounded up to whole CPUs, of each cgroup from this process's up to the root
    that has one: v2 (the unified line ``0::/path``) and v1 (the line naming the cpu controller)."""
    for line in _read(root / "proc/self/cgroup").splitlines():
        number, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if number == "0" and not controllers:
            for folder in _upwards(root / CGROUP, path):
                fields = _read(folder / "cpu.max").split()
                if len(fields) == 2:
                    yield from _cpus(*fields)
        elif "cpu" in controllers.split(","):
            for mount in V1_CPU_MOUNTS:
                for folder in _upwards(root / CGROUP / mount, path):
                    yield from _cpus(_read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us"))


def _upwards(mount: Path, path: str) -> list[Path]:
    """The folders of cgroup ``path`` and of each cgroup above it, under ``mount``. A path outside
    this namespace's root (``/../x``) is not followed: its mount's root alone is read."""
    parts = [p for p in path.strip().split("/") if p]
    if ".." in parts:
        parts = []
    return [mount.joinpath(*parts[:n]) for n in range(len(parts), -1, -1)]


def _cpus(quota: str, period: str) -> Iterator[int]:
    """ceil(quota / period), or nothing for no limit (``max``, -1) or numbers that make no sense."""
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return
    if q > 0 and p > 0:
        yield math.ceil(q / p)


def _read(file: Path) -> str:
    try:
        return file.read_text()
    except (OSError, UnicodeDecodeError):
        return ""
