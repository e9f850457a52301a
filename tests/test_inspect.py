"""`codec inspect`: latent walk, latent map and bottleneck sweep on tiny models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from clips import synthetic_frames, write_clip
from conftest import TINY, run_cli

from codec.io.bundle import find_source, load_bundle


def _png_shape(path: Path) -> tuple[int, int]:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return matplotlib.image.imread(path).shape[:2]


def test_walk_grid_has_a_row_per_direction(carphone_bundle: Path, carphone: Path, tmp_path: Path) -> None:
    code, out, err = run_cli(
        "inspect",
        "walk",
        carphone_bundle,
        "--video",
        carphone,
        "--frame",
        "7",
        "--pca",
        "2",
        "--steps",
        "5",
        "-o",
        tmp_path / "walk.png",
        "--json",
    )
    assert code == 0, err
    values = json.loads(out)
    assert (values["rows"], values["columns"]) == (2, 7) and len(values["ranges"]) == 2
    assert _png_shape(tmp_path / "walk.png") == (2 * 144 + 4, 7 * 176 + 6 * 4)
    code, out, _ = run_cli(
        "inspect",
        "walk",
        carphone_bundle,
        "--video",
        carphone,
        "--channels",
        "0,1,3",
        "--steps",
        "3",
        "-o",
        tmp_path / "ch.png",
        "--json",
    )
    assert code == 0 and (json.loads(out)["rows"], json.loads(out)["columns"]) == (3, 5)
    code, _, err = run_cli(
        "inspect", "walk", carphone_bundle, "--video", carphone, "--channels", "9", "-o", tmp_path / "x.png"
    )
    assert code == 2 and "channels 0..3" in err


def test_walk_needs_no_torch(carphone_bundle: Path, carphone: Path, tmp_path: Path) -> None:
    argv = [
        "codec",
        "inspect",
        "walk",
        str(carphone_bundle),
        "--video",
        str(carphone),
        "--pca",
        "1",
        "--steps",
        "2",
        "-o",
        str(tmp_path / "w.png"),
    ]
    script = f"import sys; sys.modules['torch'] = None\nfrom codec.cli import main; sys.argv = {argv!r}; main()\n"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert _png_shape(tmp_path / "w.png") == (144, 4 * 176 + 3 * 4)


def test_latent_map(carphone_bundle: Path, carphone: Path, tmp_path: Path) -> None:
    code, _, err = run_cli(
        "inspect",
        "latents",
        carphone_bundle,
        "--video",
        carphone,
        "-o",
        tmp_path / "map.png",
        "--json",
        tmp_path / "map.json",
    )
    assert code == 0, err
    data = json.loads((tmp_path / "map.json").read_text())
    assert {"frames", "points", "explained_variance", "i_frames", "scene_cuts", "gop"} <= data.keys()
    assert data["frames"] == 120 and len(data["points"]) == 120 and data["i_frames"] == [0, 30, 60, 90]
    assert 0 <= sum(data["explained_variance"]) <= 1.0001
    height, width = _png_shape(tmp_path / "map.png")
    assert width > 400 and height > 400


@pytest.fixture
def trained_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(clip, bundle): a tiny model trained from clips/clip.mkv into models/clip, the clip in neither,
    both named relative to the working directory as in the README."""
    (tmp_path / "clips").mkdir()
    write_clip(tmp_path / "clips" / "clip.mkv", synthetic_frames(12, 64, 48), codec="ffv1", pix_fmt="yuv444p")
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli("train", "clips/clip.mkv", "-o", "models/clip", "--steps", "2", *TINY)
    assert code == 0, err
    return tmp_path / "clips" / "clip.mkv", tmp_path / "models" / "clip"


def test_walk_finds_the_video_the_bundle_was_trained_from(trained_elsewhere: tuple[Path, Path], tmp_path: Path) -> None:
    """As the README has it: train, then walk with no --video."""
    clip, bundle = trained_elsewhere
    assert load_bundle(bundle).meta.source.path == clip
    code, out, err = run_cli(
        "inspect", "walk", bundle, "--frame", "5", "--pca", "2", "-o", tmp_path / "w.png", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["rows"] == 2 and _png_shape(tmp_path / "w.png")[0] == 2 * 48 + 4
    meta = json.loads((bundle / "meta.json").read_text())
    del meta["source"]["path"]  # as bundles written before it was recorded: they load, and find it only by name
    (bundle / "meta.json").write_text(json.dumps(meta))
    assert load_bundle(bundle).meta.source.path is None and find_source(load_bundle(bundle)) is None


def test_a_changed_file_where_the_bundle_was_trained_is_not_its_source(
    trained_elsewhere: tuple[Path, Path], tmp_path: Path
) -> None:
    """The recorded path is only a hint: a file there of the right size but another sha256 is not used."""
    clip, bundle = trained_elsewhere
    data = bytearray(clip.read_bytes())
    data[len(data) // 2] ^= 0xFF
    clip.write_bytes(bytes(data))
    assert find_source(load_bundle(bundle)) is None
    code, _, err = run_cli("inspect", "walk", bundle, "-o", tmp_path / "w.png")
    assert code == 2 and "nor where it was trained; give --video" in err and not (tmp_path / "w.png").exists()


@pytest.fixture(scope="module")
def sweep_report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("sweep")
    frames = np.concatenate([synthetic_frames(6, 64, 64, seed=2), 255 - synthetic_frames(6, 64, 64, seed=9)])
    clip = write_clip(root / "clip.mkv", frames, codec="ffv1", pix_fmt="yuv444p")
    code, out, err = run_cli(
        "inspect", "sweep", clip, "--channels", "2,8", "--steps", "60", "-o", root / "s.json", "--plot", root / "s.png"
    )
    assert code == 0, err
    assert "identity trap" in out
    assert _png_shape(root / "s.png")[1] > 600
    return json.loads((root / "s.json").read_text())


def test_sweep_reports_every_width(sweep_report: dict) -> None:
    assert [r["channels"] for r in sweep_report["widths"]] == [2, 8]
    for row in sweep_report["widths"]:
        assert {"psnr", "bpp", "ablated_psnr", "ablation_drop_db", "latent_values_per_pixel"} <= row.keys()
        assert row["bpp"] > 0 and 5 < row["psnr"] < 60
    skip = sweep_report["skip_variant"]
    assert {"channels", "psnr", "bpp_code_only", "ablated_psnr", "ablation_drop_db", "note"} <= skip.keys()


def test_the_skip_connected_variant_shows_the_identity_trap(sweep_report: dict) -> None:
    """Its reconstruction barely depends on the code: swapping codes costs it far less than the real model."""
    bottlenecked = next(r for r in sweep_report["widths"] if r["channels"] == 8)
    skip = sweep_report["skip_variant"]
    assert skip["ablation_drop_db"] < bottlenecked["ablation_drop_db"] / 2
    assert skip["psnr"] > bottlenecked["psnr"]
