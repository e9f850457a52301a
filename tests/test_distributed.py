"""Training in two CPU processes over gloo, launched the way a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import TINY

from codec.bundle import load_bundle


def test_two_processes_train_one_bundle(carphone: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "codec.cli",
            "train",
            str(carphone),
            "-o",
            str(out),
            "--nproc",
            "2",
            "--steps",
            "40",
            "--lr",
            "0.003",
            *TINY,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    bundle = load_bundle(out)  # every file present and matching meta.json
    train = bundle.meta["training"]
    assert train["processes"] == 2 and train["steps"] == 40
    assert train["this_run"]["loss_end"] < train["this_run"]["loss_start"]
    assert json.loads((out / "entropy.json").read_text())["levels"]
