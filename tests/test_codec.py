"""The real bitstream: encode with onnxruntime + constriction, decode without torch, bit-exact."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper
import pytest
from clips import write_clip
from conftest import TINY, rewrite_bundle_file, run_cli
from crafted import craft
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codec.coding.common.bitstream import (
    CHUNK_HEAD_SIZE,
    HEADER_SIZE,
    I_FRAME,
    M_FRAME,
    P_FRAME,
    Chunk,
    Header,
    read_chunks,
)
from codec.coding.common.runtime import latent_shape, latent_size
from codec.coding.decoder.decode import decode_stream, open_stream
from codec.coding.encoder.encode import encode_video
from codec.errors import CodecError
from codec.io.bundle import DECODER_FILE, SHIPPED_FILES, load_bundle
from codec.io.video import read_clip


def test_decoded_frames_equal_the_encoders_reconstruction(carphone_bundle: Path, encoded, tmp_path: Path) -> None:
    stream, stats, recon = encoded
    code, out, err = run_cli("decode", stream, "-m", carphone_bundle, "-o", tmp_path / "png", "--json")
    assert code == 0, err
    assert json.loads(out)["frames"] == 10 and json.loads(out)["concealed"] == 0
    pngs = sorted((tmp_path / "png").glob("frame_*.png"))
    assert len(pngs) == 10
    decoded = np.stack([read_clip(p).frames[0] for p in pngs])
    assert np.array_equal(decoded, recon)
    assert stats.bytes == stream.stat().st_size


def test_stream_layout(encoded, carphone_bundle: Path) -> None:
    stream, stats, _ = encoded
    data = stream.read_bytes()
    header = open_stream(data, load_bundle(carphone_bundle), "s")
    assert (header.width, header.height, header.frames, header.gop) == (176, 144, 10, 4)
    types = [c.frame_type for c in read_chunks(data, "s")]
    assert types == [I_FRAME, M_FRAME, M_FRAME, M_FRAME] * 2 + [I_FRAME, M_FRAME]
    values = stats.to_dict()
    assert values["bpp"] == pytest.approx(stats.bytes * 8 / (10 * 176 * 144))
    assert values["total_bpp"] > values["bpp"] and values["ratio_vs_rgb24"] > 1


def test_p_mode_latent_codes_latent_differences(carphone_bundle: Path, short_clip: Path, tmp_path: Path) -> None:
    """``--p-mode latent`` keeps format 2's P-frames (for the ablation); an unknown mode is refused."""
    out = tmp_path / "latent.aec"
    code, _, err = run_cli("encode", short_clip, "-m", carphone_bundle, "-o", out, "--gop", "4", "--p-mode", "latent")
    assert code == 0, err
    assert [c.frame_type for c in read_chunks(out.read_bytes(), "s")] == [I_FRAME, P_FRAME, P_FRAME, P_FRAME] * 2 + [
        I_FRAME,
        P_FRAME,
    ]
    code, _, err = run_cli("decode", out, "-m", carphone_bundle, "-o", tmp_path / "latent.y4m")
    assert code == 0, err
    code, _, err = run_cli("encode", short_clip, "-m", carphone_bundle, "-o", tmp_path / "x.aec", "--p-mode", "warp")
    assert code == 2 and "warp" in err


def test_info_describes_an_encoded_stream_without_its_bundle(encoded, carphone_bundle: Path) -> None:
    stream, stats, _ = encoded
    code, out, err = run_cli("info", stream, "--json", "--chunks")
    assert code == 0, err
    info = json.loads(out)
    assert info["header"]["bundle_sha256"] == load_bundle(carphone_bundle).decoder_sha256
    assert (info["header"]["size"], info["header"]["frames"], info["header"]["gop"]) == ("176x144", 10, 4)
    assert "".join(c["type"] for c in info["chunks"]) == "IMMMIMMMIM" and all(c["crc_ok"] for c in info["chunks"])
    totals = info["totals"]
    assert (totals["bytes"], totals["i_frames"], totals["p_frames"]) == (stats.bytes, stats.i_frames, 7)
    assert totals["bpp"] == pytest.approx(stats.to_dict()["bpp"])


def test_latent_size_pads_the_frame_up_to_the_stride(carphone_bundle: Path) -> None:
    assert (
        latent_size(144, 176, 16) == (9, 11) and latent_size(37, 45, 16) == (3, 3) and latent_size(32, 32, 16) == (2, 2)
    )
    bundle = load_bundle(carphone_bundle)
    assert list(latent_shape(bundle, 176, 144)) == bundle.raw["model"]["latent_shape"]  # as training recorded it


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".y4m"])
def test_decode_to_video_files(carphone_bundle: Path, encoded, tmp_path: Path, suffix: str) -> None:
    stream, _, recon = encoded
    out = tmp_path / f"out{suffix}"
    assert run_cli("decode", stream, "-m", carphone_bundle, "-o", out)[0] == 0
    clip = read_clip(out)
    assert len(clip) == 10 and (clip.width, clip.height) == (176, 144)
    if suffix == ".mkv":  # FFV1 in RGB is lossless
        assert np.array_equal(np.stack(clip.frames), recon)


def test_quality_levels_trade_size_for_quality(carphone_bundle: Path, short_clip: Path, tmp_path: Path) -> None:
    bundle = load_bundle(carphone_bundle)
    levels = bundle.meta.coding.levels
    assert levels >= 8
    sizes = [encode_video(short_clip, bundle, tmp_path / f"q{k}.aec", quality=k).bytes for k in range(levels)]
    assert sizes == sorted(sizes) and sizes[-1] > sizes[0]
    out = tmp_path / "x.aec"
    code, _, err = run_cli("encode", short_clip, "-m", carphone_bundle, "-o", out, "--quality", str(levels))
    assert code == 2 and f"quality {levels} is not one of the bundle's levels 0..{levels - 1}" in err


def test_decoding_needs_no_torch(carphone_bundle: Path, encoded, tmp_path: Path) -> None:
    stream, _, _ = encoded
    argv = ["codec", "decode", str(stream), "-m", str(carphone_bundle), "-o", str(tmp_path / "o.y4m")]
    script = (
        "import sys; sys.modules['torch'] = None\n"  # any 'import torch' now raises ImportError
        f"from codec.cli import main; sys.argv = {argv!r}; main()\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o.y4m").stat().st_size > 0


def test_decoding_needs_only_the_files_a_client_is_sent(carphone_bundle: Path, encoded, tmp_path: Path) -> None:
    stream, _, recon = encoded
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    for name in SHIPPED_FILES:
        shutil.copy(carphone_bundle / name, shipped / name)
    code, _, err = run_cli("decode", stream, "-m", shipped, "-o", tmp_path / "out.mkv")
    assert code == 0, err
    assert np.array_equal(np.stack(read_clip(tmp_path / "out.mkv").frames), recon)
    decoder = shipped / DECODER_FILE
    decoder.write_bytes(_flip(decoder.read_bytes(), decoder.stat().st_size // 2))
    code, _, err = run_cli("decode", stream, "-m", shipped, "-o", tmp_path / "again.mkv")
    assert code == 2 and f"{DECODER_FILE}: sha256 differs" in err


def test_outputs_are_not_overwritten_without_force(carphone_bundle: Path, encoded, short_clip: Path, tmp_path: Path):
    stream, _, _ = encoded
    precious = tmp_path / "precious.mp4"
    precious.write_bytes(b"mine")
    code, _, err = run_cli("decode", stream, "-m", carphone_bundle, "-o", precious)
    assert code == 2 and "--force" in err and precious.read_bytes() == b"mine"
    code, _, err = run_cli("encode", short_clip, "-m", carphone_bundle, "-o", precious)
    assert code == 2 and "--force" in err and precious.read_bytes() == b"mine"
    assert run_cli("decode", stream, "-m", carphone_bundle, "-o", precious, "--force")[0] == 0
    assert len(read_clip(precious)) == 10


def _relabel(data: bytes, frames: int) -> bytes:
    """The stream with its header's frame count replaced and the header crc recomputed: a liar."""
    header = Header.unpack(data, "x")
    body = Header(header.bundle_sha256, header.width, header.height, header.fps, frames, header.gop, header.quality)
    return body.pack() + data[HEADER_SIZE:]


def _offset(chunks: list[Chunk], k: int) -> int:
    """Where chunk ``k`` starts in the stream."""
    return HEADER_SIZE + sum(c.size for c in chunks[:k])


def _flip(data: bytes, pos: int) -> bytes:
    return data[:pos] + bytes([data[pos] ^ 0x10]) + data[pos + 1 :]


def test_damaged_streams_fail_with_one_line_naming_the_field(carphone_bundle: Path, encoded, tmp_path: Path) -> None:
    stream, _, _ = encoded
    data = stream.read_bytes()
    chunks = list(read_chunks(data, "s"))
    third = _offset(chunks, 2)
    cases = {
        "truncated": (data[: len(data) - 2], "frame 9: truncated payload"),  # a payload is at least a word
        "flipped bit": (_flip(data, third + CHUNK_HEAD_SIZE), "frame 2: crc32 mismatch"),
        "wrong magic": (b"XYZ\x00" + data[4:], "not an .aec stream"),
        "wrong version": (data[:4] + struct.pack("<H", 9) + data[6:], "format version 9"),
        "damaged header": (_flip(data, 50), "header crc32 mismatch"),
        "frame count too high": (_relabel(data, 12), "frame 10: stream ends early: the header declares 12 frames"),
        "frame count too low": (_relabel(data, 8), "frame 8 out of order or beyond the header's 8 frames"),
    }
    for case, (payload, message) in cases.items():
        bad = tmp_path / "bad.aec"
        bad.write_bytes(payload)
        code, _, err = run_cli("decode", bad, "-m", carphone_bundle, "-o", tmp_path / f"{case}.y4m")
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, f"{case}: {err}"
        assert not (tmp_path / f"{case}.y4m").exists(), f"{case}: partial output left behind"


def test_a_stream_from_another_bundle_is_refused(odd_clip: Path, encoded, tmp_path: Path) -> None:
    other = tmp_path / "other"
    assert run_cli("train", odd_clip, "-o", other, "--steps", "1", *TINY)[0] == 0
    code, _, err = run_cli("decode", encoded[0], "-m", other, "-o", tmp_path / "x.y4m")
    assert code == 2 and "made by bundle" in err


def test_conceal_repeats_the_last_good_frame_until_the_next_i_frame(carphone_bundle: Path, encoded, tmp_path: Path):
    stream, _, recon = encoded
    data = stream.read_bytes()
    chunks = list(read_chunks(data, "s"))
    bad = tmp_path / "bad.aec"
    bad.write_bytes(_flip(data, _offset(chunks, 5) + CHUNK_HEAD_SIZE))
    code, out, err = run_cli("decode", bad, "-m", carphone_bundle, "-o", tmp_path / "png", "--conceal", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["frames"] == 10 and result["concealed"] == 3  # frames 5, 6, 7; frame 8 is an I-frame
    decoded = np.stack([read_clip(p).frames[0] for p in sorted((tmp_path / "png").glob("*.png"))])
    assert np.array_equal(decoded[:5], recon[:5]) and np.array_equal(decoded[8:], recon[8:])
    assert all(np.array_equal(decoded[i], recon[4]) for i in (5, 6, 7))


MUTATIONS = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.integers(0, 10**6), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, 10**6), st.integers(1, 40)),
)


def _mutate(data: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
    for kind, where, value in mutations:
        pos = where % (len(data) + 1)
        if kind == "flip" and pos < len(data):
            data = data[:pos] + bytes([data[pos] ^ value]) + data[pos + 1 :]
        elif kind == "cut":
            data = data[:pos]
        elif kind == "insert":
            data = data[:pos] + bytes([value]) + data[pos:]
        elif kind == "delete":
            data = data[:pos] + data[pos + value :]
    return data


@pytest.fixture(scope="module")
def tiny_stream(carphone_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    rng = np.random.default_rng(0)
    clip = write_clip(
        tmp_path_factory.mktemp("tiny") / "t.mkv", rng.integers(0, 255, (5, 32, 32, 3), np.uint8), codec="ffv1"
    )
    out = tmp_path_factory.mktemp("tiny") / "t.aec"
    encode_video(clip, load_bundle(carphone_bundle), out, gop=3)
    return out.read_bytes()


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=st.lists(MUTATIONS, min_size=1, max_size=3), conceal=st.booleans())
def test_fuzzed_streams_decode_cleanly_or_fail_clearly(carphone_bundle: Path, tiny_stream: bytes, mutations, conceal):
    bundle = _bundle(carphone_bundle)
    data = _mutate(tiny_stream, mutations)
    try:
        decoded, stats = decode_stream(data, bundle, "fuzz", conceal=conceal)
        frames = list(decoded)
    except CodecError as exc:
        assert "\n" not in str(exc)
        return
    assert len(frames) == stats.frames <= stats.header.frames
    if not stats.damage:
        assert len(frames) == stats.header.frames and stats.concealed == 0
    assert all(f.shape == (stats.header.height, stats.header.width, 3) for f in frames)


_BUNDLES: dict[Path, object] = {}


def _bundle(path: Path):
    if path not in _BUNDLES:
        _BUNDLES[path] = load_bundle(path)
    return _BUNDLES[path]


def test_auto_keyframes_put_an_i_frame_at_a_hard_cut(tmp_path: Path) -> None:
    from clips import synthetic_frames

    dark, bright = synthetic_frames(10, 64, 64, seed=1) // 4, 255 - synthetic_frames(10, 64, 64, seed=7) // 4
    cut = np.concatenate([dark, bright])  # a hard cut at frame 10: the picture and its code jump
    clip = write_clip(tmp_path / "cut.mkv", cut, codec="ffv1", pix_fmt="yuv444p")
    # Cheap rate (high lmbda) so that even a 40-step model's code follows the picture.
    args = ["--steps", "40", "--gop", "100", "--lmbda", "0.05", "--lr", "0.003", *TINY]
    assert run_cli("train", clip, "-o", tmp_path / "m", *args)[0] == 0
    bundle = load_bundle(tmp_path / "m")
    types = {}
    for mode in ("fixed", "auto"):
        out = tmp_path / f"{mode}.aec"
        encode_video(clip, bundle, out, quality=5, keyframes=mode)
        types[mode] = [c.frame_type for c in read_chunks(out.read_bytes(), mode)]
    assert types["fixed"] == [I_FRAME] + [M_FRAME] * 19
    assert types["auto"][10] == I_FRAME and types["auto"].count(I_FRAME) <= 4


@pytest.fixture(scope="module")
def perturbed(carphone_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the bundle whose decoder adds 0.02 to its last convolution's bias, as a machine that
    computes a little differently would; meta.json names the new decoder.onnx, so the copy loads."""
    folder = tmp_path_factory.mktemp("perturbed") / "carphone"
    shutil.copytree(carphone_bundle, folder)
    model = onnx.load(folder / DECODER_FILE, load_external_data=False)  # the weights are in decoder.weights
    last_bias = [node for node in model.graph.node if node.op_type == "Conv"][-1].input[2]
    (bias,) = [t for t in model.graph.initializer if t.name == last_bias]
    bias.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(bias) + np.float32(0.02), bias.name))
    rewrite_bundle_file(folder, DECODER_FILE, model.SerializeToString())
    return folder


def test_a_decoder_that_computes_differently_is_caught_at_the_first_frame(perturbed: Path, encoded, tmp_path: Path):
    """The stream of the bundle, its header renamed to the perturbed copy so that the copy accepts it."""
    sha = bytes.fromhex(load_bundle(perturbed).decoder_sha256)
    stream = tmp_path / "renamed.aec"
    stream.write_bytes(craft(encoded[0].read_bytes(), bundle_sha256=sha))
    cases = (([], "reconstruction differs from the encoder's from frame 0:"), (["--conceal"], "no frame could be"))
    for options, message in cases:
        out = tmp_path / f"out{len(options)}.y4m"
        code, _, err = run_cli("decode", stream, "-m", perturbed, "-o", out, *options)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and not out.exists(), err


@pytest.mark.parametrize(("p_mode", "frame"), [("latent", 5), ("motion", 4)])
def test_a_frame_decoded_differently_is_an_error_or_concealed_until_the_next_i_frame(
    carphone_bundle: Path, perturbed: Path, short_clip: Path, tmp_path: Path, p_mode: str, frame: int
) -> None:
    """The stream as the perturbed copy encodes it, but one frame as the bundle encoded it: the same
    payload with another reconstruction check, as if that frame had been encoded on another machine.
    A latent P-frame (5) is caught at itself; with M-frames, which the decoder rebuilds exactly, the
    networks' difference is caught at the I-frame (4); either way concealed until the next I-frame (8)."""
    recon: list[np.ndarray] = []
    own, theirs_file = tmp_path / "own.aec", tmp_path / "theirs.aec"
    encode_video(short_clip, load_bundle(perturbed), own, gop=4, on_frame=lambda i, f: recon.append(f), p_mode=p_mode)
    encode_video(short_clip, load_bundle(carphone_bundle), theirs_file, gop=4, p_mode=p_mode)
    data = own.read_bytes()
    chunks, theirs = list(read_chunks(data, "own")), list(read_chunks(theirs_file.read_bytes(), "theirs"))
    assert chunks[frame].payload == theirs[frame].payload and chunks[frame].check != theirs[frame].check
    spliced = tmp_path / "spliced.aec"
    parts = [*chunks[:frame], theirs[frame], *chunks[frame + 1 :]]
    spliced.write_bytes(data[:HEADER_SIZE] + b"".join(c.pack() for c in parts))
    code, _, err = run_cli("decode", spliced, "-m", perturbed, "-o", tmp_path / "x.y4m")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"reconstruction differs from the encoder's from frame {frame}:" in err and not (tmp_path / "x.y4m").exists()
    code, out, err = run_cli("decode", spliced, "-m", perturbed, "-o", tmp_path / "png", "--conceal", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["frames"] == 10 and result["concealed"] == 8 - frame
    assert result["damage"][0] == f"frame {frame}: reconstruction differs from the encoder's, concealed"
    decoded = np.stack([read_clip(p).frames[0] for p in sorted((tmp_path / "png").glob("*.png"))])
    assert np.array_equal(decoded[:frame], np.stack(recon[:frame])) and np.array_equal(decoded[8:], np.stack(recon[8:]))
    assert all(np.array_equal(decoded[i], recon[frame - 1]) for i in range(frame, 8))
