"""`codec train` and `codec info` end to end: real clips, real training steps, real ONNX export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from conftest import TINY, run_cli

from codec.coding.common.runtime import open_decoder
from codec.io.bundle import load_bundle
from codec.io.files import sha256_file
from codec.train.export import PARITY_LIMIT
from codec.train.model import AutoEncoder, ModelConfig, macs_per_pixel


def test_bundle_is_complete_and_verified(carphone_bundle: Path) -> None:
    for name in ("encoder.onnx", "decoder.onnx", "entropy.json", "meta.json", "checkpoint.pt"):
        assert (carphone_bundle / name).is_file(), name
    meta = json.loads((carphone_bundle / "meta.json").read_text())
    assert meta["source"]["name"] == "carphone_pristine.mp4"
    assert (meta["source"]["width"], meta["source"]["height"], meta["source"]["frames"]) == (176, 144, 120)
    assert meta["model"]["latent_shape"] == [4, 18, 22]  # 144/8 = 18, 176/8 = 22
    for name, entry in meta["files"].items():
        assert entry["sha256"] == sha256_file(carphone_bundle / name)
    text = (carphone_bundle / "entropy.json").read_text()
    assert text.count("\n") == 1 and ", " not in text  # compact: every client downloads it
    entropy = json.loads(text)
    prior = entropy["prior"]
    assert len(prior["intra_scale"]) == len(prior["inter_scale"]) == 4
    assert all(s > 0 for s in prior["intra_scale"] + prior["inter_scale"])
    # The coder's side: integer tables, one level per quantization step, every table a distribution.
    assert [lv["step"] for lv in entropy["levels"]] == meta["coding"]["quality_steps"]
    assert all(sum(freqs) == 2**16 and min(freqs) >= 1 for freqs in entropy["tables"].values())


def test_onnx_parity_at_an_unseen_resolution(carphone_bundle: Path) -> None:
    onnx = json.loads((carphone_bundle / "meta.json").read_text())["onnx"]
    assert (onnx["height"], onnx["width"]) not in {(64, 64), (144, 176)}  # crops and padded frames
    assert onnx["decoder_max_abs_diff"] <= PARITY_LIMIT
    assert onnx["encoder_max_abs_diff"] < 1e-3


def test_onnx_models_take_any_batch_and_size(carphone_bundle: Path) -> None:
    enc = ort.InferenceSession(str(carphone_bundle / "encoder.onnx"), providers=["CPUExecutionProvider"])
    dec = open_decoder(carphone_bundle, cpu_only=True)
    stride = json.loads((carphone_bundle / "meta.json").read_text())["model"]["stride"]
    for n, h, w in [(1, 32, 48), (3, 96, 64)]:
        y = enc.run(None, {"frames": np.random.rand(n, 3, h, w).astype(np.float32)})[0]
        assert y.shape == (n, 4, h // stride, w // stride)
        x = dec.run(None, {"latent": np.round(y)})[0]
        assert x.shape == (n, 3, h, w) and x.min() >= 0 and x.max() <= 1


def test_info_text_and_json(carphone_bundle: Path) -> None:
    code, text, _ = run_cli("info", carphone_bundle)
    assert code == 0
    for label in ("decoder parameters", "decoder MACs / pixel", "latent shape", "RGB PSNR", "ONNX vs torch"):
        assert label in text
    code, out, _ = run_cli("info", carphone_bundle, "--json")
    values = json.loads(out)
    assert values["steps"] == 8 and values["latent_shape"] == [4, 18, 22]
    assert values["decoder_params"] > 0 and values["decoder_macs_per_pixel"] > 0
    assert values["onnx_parity_max_abs_diff"] <= PARITY_LIMIT
    assert len(values["bundle_sha256"]) == 64
    assert values["onnxruntime_provider"] in ("CUDAExecutionProvider", "CPUExecutionProvider")


def test_holdout_reports_psnr_on_unseen_tail(carphone_bundle: Path) -> None:
    train = json.loads((carphone_bundle / "meta.json").read_text())["training"]
    assert train["frames_seen"] == 90 and train["frames_held_out"] == 30
    for level in train["levels"]:
        assert 5 < level["holdout_psnr"] < 60 and level["holdout_bpp_estimate"] > 0
        assert 5 < level["psnr"] < 60 and level["bpp_estimate"] > 0


def test_info_refuses_a_damaged_bundle(carphone_bundle: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(carphone_bundle, copy)
    data = bytearray((copy / "decoder.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "decoder.onnx").write_bytes(bytes(data))
    code, _, err = run_cli("info", copy)
    assert code == 2 and "decoder.onnx: sha256 differs" in err
    assert load_bundle(copy, verify=False).meta.files


def test_resume_continues_the_step_count(carphone: Path, tmp_path: Path) -> None:
    out = tmp_path / "m"
    assert run_cli("train", carphone, "-o", out, "--steps", "3", *TINY)[0] == 0
    code, stdout, stderr = run_cli("train", carphone, "-o", out, "--steps", "2", "--resume", "--json", *TINY)
    assert code == 0, stderr
    assert json.loads(stdout)["steps"] == 5
    meta = json.loads((out / "meta.json").read_text())
    assert [r["steps_after"] for r in meta["training"]["runs"]] == [3, 5]
    # A different model on resume is refused rather than silently ignored.
    code, _, err = run_cli("train", carphone, "-o", out, "--steps", "1", "--resume", "--latent-channels", "8")
    assert code == 2 and "--latent-channels" in err


def test_same_seed_same_model(carphone: Path, tmp_path: Path) -> None:
    weights = []
    for run in ("a", "b"):
        assert run_cli("train", carphone, "-o", tmp_path / run, "--steps", "3", "--seed", "7", *TINY)[0] == 0
        weights.append(torch.load(tmp_path / run / "checkpoint.pt", weights_only=False)["model"])
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_odd_sized_synthetic_clip(odd_clip: Path, tmp_path: Path) -> None:
    code, stdout, stderr = run_cli("train", odd_clip, "-o", tmp_path / "odd", "--steps", "3", "--json", *TINY)
    assert code == 0, stderr
    values = json.loads(stdout)
    assert values["source_size"] == "45x37" and values["latent_shape"] == [4, 5, 6]  # ceil(37/8), ceil(45/8)
    assert values["onnx_parity_max_abs_diff"] <= PARITY_LIMIT


@pytest.mark.parametrize("block", ["separable", "none"])
def test_lighter_decoders_train_export_and_decode(short_clip: Path, tmp_path: Path, block: str) -> None:
    """A decoder with depthwise-separable or no residual blocks goes through the whole path: export,
    quantized weights, and a stream the player decodes to the encoder's reconstruction (crc-checked)."""
    out = tmp_path / block
    code, stdout, err = run_cli(
        "train", short_clip, "-o", out, "--steps", "2", "--json", "--decoder-block", block, *TINY
    )
    assert code == 0, err
    assert json.loads(stdout)["onnx_parity_max_abs_diff"] <= PARITY_LIMIT
    meta = load_bundle(out).raw["model"]
    full = ModelConfig(latent_channels=meta["latent_channels"], width=meta["width"], stride=meta["stride"])
    assert meta["decoder_block"] == block
    assert meta["decoder_macs_per_pixel"] < macs_per_pixel(AutoEncoder(full).decoder, full, decoder=True)
    assert run_cli("encode", short_clip, "-m", out, "-o", tmp_path / "s.aec")[0] == 0
    code, _, err = run_cli("decode", tmp_path / "s.aec", "-m", out, "-o", tmp_path / "s.mkv")
    assert code == 0, err


def test_output_directory_is_not_overwritten_without_force(carphone: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    code, _, err = run_cli("train", carphone, "-o", out, "--steps", "1", *TINY)
    assert code == 2 and "not empty" in err
    assert (out / "precious.txt").read_text() == "keep me"
    code, _, err = run_cli("train", carphone, "-o", tmp_path / "fresh", "--steps", "1", "--resume", *TINY)
    assert code == 2 and "checkpoint" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--latent-channels", "48", "--stride", "4"], "identity trap"),
        (["--latent-channels", "768"], "identity trap"),
        (["--stride", "12"], "power of two"),
        (["--holdout", "1.5"], "--holdout"),
        (["--minutes", "0"], "--minutes"),
    ],
)
def test_bad_settings_are_refused(carphone: Path, tmp_path: Path, args: list[str], message: str) -> None:
    code, _, err = run_cli("train", carphone, "-o", tmp_path / "x", "--steps", "1", *args)
    assert code == 2 and message in err and "\n" not in err.strip()
    assert not (tmp_path / "x").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a missing GPU")
def test_absent_device_is_a_clear_error(carphone: Path, tmp_path: Path) -> None:
    code, _, err = run_cli("train", carphone, "-o", tmp_path / "x", "--steps", "1", "--device", "cuda")
    assert code == 2 and "no CUDA GPU" in err


def test_precision_is_engaged_and_recorded(carphone: Path, tmp_path: Path) -> None:
    weights = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / precision
        args = ("train", carphone, "-o", out, "--steps", "4", "--seed", "3", "--precision", precision, "--json")
        code, stdout, stderr = run_cli(*args, *TINY)
        assert code == 0, stderr
        values = json.loads(stdout)
        assert values["precision"] == precision and 5 < values["psnr"] < 60
        weights[precision] = torch.load(out / "checkpoint.pt", weights_only=False)["model"]
    # Same seed, same crops: only the arithmetic differs, so bf16 autocast really ran.
    assert any(not torch.equal(weights["fp32"][k], weights["bf16"][k]) for k in weights["fp32"])


def test_auto_precision_follows_the_hardware() -> None:
    from codec.errors import CodecError
    from codec.train.devices import cpu_has_bf16, resolve_precision

    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == ("bf16" if cpu_has_bf16() else "fp32")
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(CodecError, match="--precision bf16"):
        resolve_precision("bf16", torch.device("mps"))
