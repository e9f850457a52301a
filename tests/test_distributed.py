"""Training in two CPU processes over gloo, launched the way a user would."""

from __future__ import annotations

import json
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
