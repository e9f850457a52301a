"""Threads sized from what the process may use: affinity and the cgroup CPU quota (read from fake
cgroup trees), AECODEC_THREADS over both, the pools that follow it (onnxruntime, torch, the
libraries' variables), and the progress line's note when training slows far below its start."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from conftest import run_cli

from codec.coding.common.runtime import open_decoder, open_session
from codec.cpus import OVERRIDE, POOL_VARIABLES, limit_threads, thread_count, usable_cpus
from codec.errors import CodecError
from codec.io.bundle import load_bundle
from codec.train.devices import use_cpus
from codec.train.pace import Pace

AFFINITY = len(os.sched_getaffinity(0))


@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No override from the caller's environment, and no count kept from another test."""
    monkeypatch.delenv(OVERRIDE, raising=False)
    thread_count.cache_clear()
    yield
    thread_count.cache_clear()


def tree(root: Path, cgroup: str, files: dict[str, str]) -> Path:
    """A fake root: /proc/self/cgroup holding ``cgroup`` and each of ``files`` (a path under
    sys/fs/cgroup -> its text)."""
    (root / "proc/self").mkdir(parents=True)
    (root / "proc/self/cgroup").write_text(cgroup)
    for name, text in files.items():
        (root / "sys/fs/cgroup" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "sys/fs/cgroup" / name).write_text(text)
    return root


def test_a_v2_quota_of_two_cpus_is_two_threads(tmp_path: Path) -> None:
    root = tree(tmp_path, "0::/kubepods/pod1/c1\n", {"kubepods/pod1/c1/cpu.max": "200000 100000\n"})
    assert usable_cpus(root) == min(AFFINITY, 2)


def test_a_quota_rounds_up_to_whole_cpus(tmp_path: Path) -> None:
    root = tree(tmp_path, "0::/job\n", {"job/cpu.max": "50000 100000\n"})
    assert usable_cpus(root) == 1


def test_no_quota_leaves_the_affinity(tmp_path: Path) -> None:
    root = tree(tmp_path, "0::/job\n", {"job/cpu.max": "max 100000\n"})
    assert usable_cpus(root) == AFFINITY
    assert usable_cpus(tmp_path / "nothing-here") == AFFINITY


def test_a_tighter_parent_wins_over_its_child(tmp_path: Path) -> None:
    files = {"pod/cpu.max": "100000 100000\n", "pod/c1/cpu.max": "400000 100000\n", "pod/c1/x/cpu.max": "max 100000"}
    assert usable_cpus(tree(tmp_path, "0::/pod/c1/x\n", files)) == 1


def test_a_path_beyond_the_mount_reads_the_mount_root(tmp_path: Path) -> None:
    """Without a cgroup namespace the path names the host's cgroup, absent from the container's
    mount; the mount's own root is the container's cgroup."""
    assert usable_cpus(tree(tmp_path, "0::/docker/abc\n", {"cpu.max": "100000 100000\n"})) == 1
    assert usable_cpus(tree(tmp_path / "b", "0::/../../host\n", {"cpu.max": "100000 100000\n"})) == 1


def test_a_v1_quota_counts(tmp_path: Path) -> None:
    cgroup = "12:memory:/x\n3:cpu,cpuacct:/docker/abc\n0::/\n"
    files = {
        "cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "150000\n",
        "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
    }
    assert usable_cpus(tree(tmp_path, cgroup, files)) == min(AFFINITY, 2)
    unlimited = {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}
    assert usable_cpus(tree(tmp_path / "b", "2:cpu:/\n", unlimited)) == AFFINITY
    assert usable_cpus(tree(tmp_path / "c", "2:cpu:/\n", {**unlimited, "cpu/cpu.cfs_quota_us": "50000"})) == 1


@pytest.mark.parametrize("text", ["", "max", "lots 100000", "200000 0", "-5 100000", "1 2 3", "\xff\xfe"])
def test_a_malformed_quota_sets_no_limit(tmp_path: Path, text: str) -> None:
    (tmp_path / "sys/fs/cgroup/job").mkdir(parents=True)
    (tmp_path / "sys/fs/cgroup/job/cpu.max").write_bytes(text.encode("latin-1"))
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/cgroup").write_text("0::/job\n")
    assert usable_cpus(tmp_path) == AFFINITY


def test_a_malformed_cgroup_list_or_an_unreadable_file_sets_no_limit(tmp_path: Path) -> None:
    assert usable_cpus(tree(tmp_path, "garbage\n::\n0::/\n", {"cpu.max": "100000 100000"})) == 1
    root = tree(tmp_path / "b", "0::/job\n", {})
    (root / "sys/fs/cgroup/job/cpu.max").mkdir(parents=True)  # a folder where a file should be
    assert usable_cpus(root) == AFFINITY


def test_the_override_wins_and_a_bad_one_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tree(tmp_path, "0::/\n", {"cpu.max": "100000 100000"})
    monkeypatch.setenv(OVERRIDE, "6")
    assert usable_cpus(root) == 6
    for bad in ("0", "-2", "two", "1.5", "²"):
        monkeypatch.setenv(OVERRIDE, bad)
        with pytest.raises(CodecError, match=OVERRIDE) as caught:
            usable_cpus(root)
        assert "\n" not in str(caught.value)


def test_a_bad_override_is_one_error_line_from_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OVERRIDE, "many")
    code, _, stderr = run_cli("cache")
    assert code == 2 and stderr == f"error: {OVERRIDE} must be a positive whole number of threads, not 'many'\n"


def test_the_libraries_variables_follow_and_a_users_value_stays(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in POOL_VARIABLES:
        monkeypatch.setenv(name, "")  # so that the test's end restores the variable's absence
        monkeypatch.delenv(name)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv(OVERRIDE, "3")
    assert limit_threads() == 3
    assert [os.environ[n] for n in POOL_VARIABLES] == ["1", "3", "3", "3"]


def test_onnxruntime_sessions_take_the_count(carphone_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OVERRIDE, "3")
    bundle = load_bundle(carphone_bundle)
    for session in (open_session(bundle, cpu_only=True), open_decoder(bundle, cpu_only=True)):
        assert session.get_session_options().intra_op_num_threads == 3


def test_cpu_training_takes_its_share_of_the_count(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    monkeypatch.setenv(OVERRIDE, "5")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # torchrun's processes on this machine
    try:
        assert use_cpus(torch.device("cpu")) == 2 and torch.get_num_threads() == 2
        assert use_cpus(torch.device("meta")) is None and torch.get_num_threads() == 2
        monkeypatch.setenv("OMP_NUM_THREADS", "1")  # torchrun's, for processes sharing a machine
        assert use_cpus(torch.device("cpu")) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_the_pace_notes_a_slowdown_to_under_a_third_of_the_start() -> None:
    """Ten steps a second for the first minute, then one a second: said once the last ten
    seconds are all slow, and not before; a return to the start's pace clears it."""
    pace = Pace(warmup=5, start=20, window=10)
    said = {}
    for tenth in range(1200):
        t = tenth / 10
        steps = tenth if t <= 60 else 600 + int(t - 60) + 1
        said[t] = pace.slowed(t, steps)
    assert all(said[t] is None for t in said if t < 64)  # the warm-up, the start, then still mixed
    assert pace.baseline == pytest.approx(10, rel=0.01)
    assert all(said[t] == pytest.approx(0.1, abs=0.02) for t in said if t >= 72)
    for k in range(1, 200):  # fast again
        last = pace.slowed(120 + k / 10, 660 + k)
    assert last is None


def test_the_pace_says_nothing_of_a_steady_or_short_run() -> None:
    steady, short = Pace(), Pace()
    assert all(steady.slowed(s / 4, s) is None for s in range(2000))
    assert all(short.slowed(s / 4, s) is None for s in range(80))
    assert short.baseline is None
