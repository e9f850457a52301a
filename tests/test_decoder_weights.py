"""The decoder a client downloads: quantized, range-coded weights, rebuilt without torch, within its
PSNR bound of the float decoder, and refused whole when a file is crafted to mislead."""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import rewrite_bundle_file, run_cli
from crafted import range_coded, weights_file, weights_head

from codec.coding.common import entropy_coding
from codec.coding.common.decoder_weights import MAX_WEIGHTS, QuantizedTensor, pack, quantize_tensor, unpack
from codec.coding.common.entropy_coding import Table
from codec.coding.common.runtime import open_decoder
from codec.errors import CodecError
from codec.io.bundle import DECODER_FILE, DECODER_WEIGHTS_FILE, load_bundle
from codec.io.psnr import psnr
from codec.io.video import read_clip
from codec.train.checkpoint import load_checkpoint
from codec.train.model import AutoEncoder, ModelConfig
from codec.train.ops import pad_to_stride, to_tensor
from codec.train.weights import MAX_LOSS_DB, RELATIVE_STEPS, quantize_decoder


def _tensors() -> list[QuantizedTensor]:
    rng = np.random.default_rng(1)
    a = rng.normal(0, 0.05, (6, 4, 3, 3)).astype(np.float32)
    b = rng.laplace(0, 0.2, (3, 6, 3, 3)).astype(np.float32)
    steps_a, steps_b = np.full(6, 0.004, np.float32), np.full(3, 0.01, np.float32)
    return [quantize_tensor("a", a, steps_a), quantize_tensor("b", b, steps_b)]


def test_weights_round_trip_exactly() -> None:
    tensors = _tensors()
    back = unpack(pack(tensors), "w")
    for t, u in zip(tensors, back, strict=True):
        assert t.name == u.name and np.array_equal(t.q, u.q) and np.array_equal(t.steps, u.steps)
        assert np.array_equal(t.weights(), u.weights())
        assert u.weights().dtype == np.float32


def test_a_tensor_decoded_in_chunks_round_trips_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tensor longer than the decoder's chunk, escapes in every chunk and across their boundaries,
    decodes to the integers coded: the chunks change what is held, not what is read."""
    monkeypatch.setattr(entropy_coding, "DECODE_CHUNK", 1000)
    rng = np.random.default_rng(2)
    q = rng.laplace(0, 3, (7, 1001)).round().astype(np.int64)
    q[:, ::97] = rng.integers(-(1 << 21), 1 << 21, q[:, ::97].shape)  # escapes, some wide
    tensor = QuantizedTensor("w", q, np.full(7, 0.01, np.float32))
    (back,) = unpack(pack([tensor]), "w")
    assert back.q.dtype == np.int32 and np.array_equal(back.q, q)


def _table(frequencies: tuple[int, ...] | None = None) -> bytes:
    f = Table.from_grid(10).frequencies if frequencies is None else frequencies
    return struct.pack(f"<H{len(f)}H", len(f), *f)


def test_the_weights_format_is_pinned() -> None:
    """The bytes of a fixed set of tensors: a change to the format must change VERSION and this."""
    data = pack(_tensors())
    assert len(data) == 1423
    assert hashlib.sha256(data).hexdigest() == "f510fff5de6a4d07d4729497cd1ba74f091da541953ff3766136ea953f26916f"


def _header(
    count: int = 1,
    dims: tuple[int, ...] = (2, 2),
    table: int = 0,
    steps: list[float] | None = None,
    tables: bytes | None = None,
) -> bytes:
    name = b"w"
    steps = [0.1] * dims[0] if steps is None else steps
    tables = struct.pack("<H", 1) + _table() if tables is None else tables
    return (
        b"AECW"
        + struct.pack("<B", 1)
        + tables
        + struct.pack("<H", count)
        + struct.pack("<B", len(name))
        + name
        + struct.pack("<B", len(dims))
        + struct.pack(f"<{len(dims)}I", *dims)
        + struct.pack("<H", table)
        + struct.pack(f"<{len(steps)}f", *steps)
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"ONNX" + bytes(8), "not a decoder weights file"),
        (b"AECW" + struct.pack("<BH", 9, 1), "version 9"),
        (b"AECW" + struct.pack("<BH", 1, 60000), "claims 60000 tables"),
        (b"AECW" + struct.pack("<BHH", 1, 1, 5000), "claims 5000 entries"),
        (_header(tables=struct.pack("<H", 1) + _table((1, 2, 3, 4))), "not a valid frequency table"),
        (_header(count=60000), "claims 60000 tensors"),
        (_header(dims=(65536, 65536, 65536)), f"more than {MAX_WEIGHTS} weights"),  # sides allowed
        (_header(dims=(70000, 2)), "outside 1..65536"),
        (_header(dims=(4096, 4096, 4096), steps=[0.1] * 4096), f"more than {MAX_WEIGHTS} weights"),
        (_header(dims=(2, 0)), "outside 1..65536"),
        (_header(table=500), "names table 500; the file has 1"),
        (_header(steps=[0.1, float("nan")]), "not positive and finite"),
        (_header(steps=[0.1, -1.0]), "not positive and finite"),
        (_header() + struct.pack("<I", 1 << 30) + bytes(8), "where its header says 1073741824"),
        (_header()[:-3], "ends inside its header"),
    ],
)
def test_crafted_weight_files_are_refused_before_anything_is_allocated(data: bytes, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        unpack(data, "w")


GRID = Table.from_grid(10).frequencies
PEAKED = (1, 65533, 1, 1)  # a valid table under which a zero costs almost nothing


def _coded(symbols: np.ndarray, frequencies: tuple[int, ...] = GRID, blocks: int = 1) -> bytes:
    """A payload of ``symbols`` coded ``blocks`` times, with its length before it."""
    payload = range_coded(symbols, frequencies, blocks)
    return struct.pack("<I", len(payload)) + payload


def _twice() -> bytes:
    """Two tensors of the same name, each valid on its own."""
    heads = [weights_head((2, 2), [0.1, 0.1])] * 2
    return weights_file([GRID], heads, range_coded(np.ones(4, np.int64), GRID, blocks=2))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        # 2^26 weights declared, 4 bytes of payload: decoding them from the coder's padding took 1.1 GiB
        (_header(dims=(1024, 65536), steps=[0.1] * 1024) + struct.pack("<I", 4) + bytes(4), "cannot hold its weights"),
        (_header() + struct.pack("<I", 64) + b"\xff" * 64, "tensor 'w': payload does not decode"),  # noise
        (_twice(), "names tensor 'w' twice"),  # onnxruntime: "already been added", as a traceback
        (_header(steps=[3e38, 3e38]) + _coded(np.full(4, 100, np.int64)), "beyond float32's range"),  # inf weights
    ],
    ids=["padding", "noise", "twice", "infinite"],
)
def test_crafted_payloads_are_refused_in_one_line(data: bytes, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        unpack(data, "w")


# Decode a crafted file in a fresh process whose data segment is capped at what its imports took
# plus HEADROOM: the integers of MAX_WEIGHTS weights take 256 MiB as int32 (they took 1.1 GiB as int64).
WEIGHTS_HEADROOM = 400 << 20
LIMITED_UNPACK = """
import resource, sys
from codec.coding.common.decoder_weights import unpack

def data_bytes():
    line = next(l for l in open("/proc/self/status") if l.startswith("VmData:"))
    return int(line.split()[1]) * 1024

data = open(sys.argv[2], "rb").read()
limit = data_bytes() + int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
tensors = unpack(data, sys.argv[2])
print(sum(t.size for t in tensors), tensors[0].q.dtype)
"""


def test_the_most_weights_a_file_may_declare_decode_in_bounded_memory(tmp_path: Path) -> None:
    """A 4 KB file declaring MAX_WEIGHTS weights under a table whose likeliest symbol is nearly free:
    valid, so it decodes, in four bytes a weight."""
    dims = (1024, MAX_WEIGHTS // 1024)
    data = weights_file(
        [PEAKED], [weights_head(dims, [0.1] * 1024)], range_coded(np.zeros(MAX_WEIGHTS, np.int8), PEAKED)
    )
    assert len(data) < 8192
    (tmp_path / "w").write_bytes(data)
    command = [sys.executable, "-c", LIMITED_UNPACK, str(WEIGHTS_HEADROOM), str(tmp_path / "w")]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "MALLOC_ARENA_MAX": "2"})
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.split() == [str(MAX_WEIGHTS), "int32"]


def test_weights_that_do_not_fit_the_graph_are_a_one_line_error(carphone_bundle: Path, tmp_path: Path) -> None:
    folder = tmp_path / "bundle"
    shutil.copytree(carphone_bundle, folder)
    tensors = unpack((folder / DECODER_WEIGHTS_FILE).read_bytes(), "w")
    first = tensors[0]
    wrong = QuantizedTensor(first.name, first.q[:, :1], first.steps)  # a valid file, one tensor narrowed
    rewrite_bundle_file(folder, DECODER_WEIGHTS_FILE, pack([wrong, *tensors[1:]]))
    with pytest.raises(CodecError, match="onnxruntime cannot load it"):
        open_decoder(folder)
    missing = folder.parent / "missing"
    shutil.copytree(carphone_bundle, missing)
    rewrite_bundle_file(missing, DECODER_WEIGHTS_FILE, pack(tensors[1:]))  # one weight left out
    code, _, err = run_cli("info", missing)
    assert code == 2 and "onnxruntime cannot load it" in err and len(err.strip().splitlines()) == 1, err


def test_the_graph_holds_no_weight_and_the_bundle_counts_what_it_ships(carphone_bundle: Path) -> None:
    bundle = load_bundle(carphone_bundle)
    model = bundle.raw["model"]
    graph = (carphone_bundle / DECODER_FILE).stat().st_size
    weights = (carphone_bundle / DECODER_WEIGHTS_FILE).stat().st_size
    assert model["decoder_bytes"] == graph + weights < model["decoder_bytes_float32"]
    count = sum(t.size for t in unpack((carphone_bundle / DECODER_WEIGHTS_FILE).read_bytes(), "w"))
    assert graph < 4 * count  # the weights are not in the graph
    assert model["decoder_bits_per_weight"] == pytest.approx(8 * weights / count)
    shipped = sum((carphone_bundle / n).stat().st_size for n in ("decoder.onnx", "decoder.weights", "entropy.json"))
    assert bundle.shipped_bytes == shipped + (carphone_bundle / "meta.json").stat().st_size


def test_the_quantized_decoder_stays_within_its_bound_of_the_float_one(carphone_bundle: Path, carphone: Path) -> None:
    ckpt = load_checkpoint(carphone_bundle / "checkpoint.pt")
    model = AutoEncoder(ModelConfig(**ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    model.eval()
    frames = read_clip(carphone).frames[:6]
    steps = tuple(ckpt["options"]["quality_steps"])

    def psnrs() -> list[float]:
        with torch.no_grad():
            x = to_tensor(frames, torch.device("cpu"))
            y = model.encoder(pad_to_stride(x, model.cfg.stride))
            out = []
            for step in steps:
                decoded = model.decoder(torch.round(y / step) * step)[..., : x.shape[2], : x.shape[3]]
                pixels = (decoded.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
                out.append(float(np.mean([psnr(p, f) for p, f in zip(pixels, frames, strict=True)])))
        return out

    before = psnrs()
    chosen = quantize_decoder(model, frames, steps, torch.device("cpu"))
    after = psnrs()
    assert chosen.relative_step in RELATIVE_STEPS
    assert max(chosen.loss_db) <= MAX_LOSS_DB or chosen.relative_step == RELATIVE_STEPS[-1]
    assert max(b - a for b, a in zip(before, after, strict=True)) <= 0.1
    for name, p in model.decoder.named_parameters():  # every weight is on its channel's grid
        if name in chosen.steps:
            s = torch.from_numpy(chosen.steps[name]).view(-1, 1, 1, 1)
            assert torch.equal(torch.round(p / s) * s, p)
