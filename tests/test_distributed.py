"""Training in two CPU processes over gloo, launched the way a user would."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY

from codec.io.bundle import load_bundle


def _train(*args: str | Path) -> None:
    cmd = [sys.executable, "-m", "codec.cli", "train", *map(str, args), "--nproc", "2", "--lr", "0.003", *TINY]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_two_processes_train_one_bundle_and_resume(carphone: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    _train(carphone, "-o", out, "--steps", "40")
    bundle = load_bundle(out)  # every file present and matching meta.json
    train = bundle.raw["training"]
    assert train["processes"] == 2 and train["steps"] == 40
    assert train["this_run"]["loss_end"] < train["this_run"]["loss_start"]
    assert json.loads((out / "entropy.json").read_text())["levels"]
    # Resumed in two processes: rank 0 takes the checkpoint's random streams, rank 1 fresh ones.
    _train(carphone, "-o", out, "--steps", "10", "--resume")
    train = load_bundle(out).raw["training"]
    assert train["steps"] == 50 and [r["steps_after"] for r in train["runs"]] == [40, 50]


def test_the_torchrun_command_passes_switches_and_given_settings_on() -> None:
    from codec.errors import CodecError
    from codec.train.distributed import train_command

    flags = {"resume": True, "force": False, "quiet": True, "json": False}
    cmd = train_command(2, "in.mp4", "out", flags, {"steps": 5, "latent_channels": 4, "lr": None})
    assert "--nproc_per_node=2" in cmd
    args = ["train", "in.mp4", "-o", "out", "--resume", "--quiet", "--steps", "5", "--latent-channels", "4"]
    assert cmd[cmd.index("codec.cli") + 1 :] == args
    with pytest.raises(CodecError, match="--nproc must be at least 2"):
        train_command(1, "in.mp4", "out", flags, {})


def test_the_multi_node_command_meets_at_one_rendezvous() -> None:
    from codec.errors import CodecError
    from codec.train.distributed import train_command

    flags = {"quiet": True}
    cmd = train_command(1, "/models/v.mp4", "/models/v", flags, {}, nnodes=2, endpoint="train-0.train:29500")
    assert {"--nproc_per_node=1", "--nnodes=2", "--rdzv_backend=c10d", "--rdzv_endpoint=train-0.train:29500"} <= set(
        cmd
    )
    assert "--standalone" not in cmd
    # Every machine runs the same command line, so every one derives the same run id.
    assert cmd == train_command(1, "/models/v.mp4", "/models/v", flags, {}, nnodes=2, endpoint="train-0.train:29500")
    with pytest.raises(CodecError, match="needs --rdzv-endpoint"):
        train_command(1, "v.mp4", "v", flags, {}, nnodes=2)
    with pytest.raises(CodecError, match="several machines"):
        train_command(2, "v.mp4", "v", flags, {}, endpoint="h:1")


def test_two_machines_train_one_bundle_through_a_c10d_rendezvous(carphone: Path, tmp_path: Path) -> None:
    """Two `codec train --nnodes 2` launches, as two pods of the training Job would run them, meet at
    a rendezvous on 127.0.0.1 and train one model; only one of them writes it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "nodes"
    cmd = [sys.executable, "-m", "codec.cli", "train", str(carphone), "-o", str(out), "--steps", "6", *TINY]
    cmd += ["--nnodes", "2", "--rdzv-endpoint", f"127.0.0.1:{port}"]
    # One core each, as each machine would have its own: two processes of two threads each on two
    # cores spin against each other in every gradient exchange (torchrun sets this itself only
    # for several processes on one machine).
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    nodes = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)
    ]
    for node in nodes:
        _, err = node.communicate(timeout=600)
        assert node.returncode == 0, err[-3000:]
    train = load_bundle(out).raw["training"]
    assert train["processes"] == 2 and train["steps"] == 6
