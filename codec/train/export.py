"""ONNX export of encoder and decoder, checked with onnx.checker and against torch with onnxruntime."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from onnx.external_data_helper import set_external_data

from codec.coding.common.decoder_weights import pack, quantize_tensor
from codec.coding.common.runtime import open_decoder, open_session
from codec.errors import CodecError
from codec.io.bundle import DECODER_FILE, DECODER_WEIGHTS_FILE, ENCODER_FILE
from codec.train.model import AutoEncoder
from codec.train.ops import quantize, to_tensor

OPSET = 17
EXTERNAL_LOCATION = "decoder.weights.float32"  # never written: decoder.weights holds the weights, coded
PARITY_LIMIT = 1e-3


def export_onnx(model: AutoEncoder, out_dir: Path, weight_steps: dict[str, np.ndarray]) -> int:
    """Write encoder.onnx (frames -> latent) and the decoder (latent -> frames) with dynamic N, H, W.

    The decoder's weights named in ``weight_steps`` (already quantized to those per-channel steps)
    go to decoder.weights as integers and are external tensors of decoder.onnx, which keeps the
    graph and the biases. Returns the bytes the decoder would take as one float32 ONNX file."""
    model = model.cpu().eval()
    cfg = model.cfg
    side = cfg.stride * 2
    _export(model.encoder, torch.zeros(1, 3, side, side), "frames", "latent", out_dir / ENCODER_FILE)
    full = out_dir / DECODER_FILE
    _export(model.decoder, torch.zeros(1, cfg.latent_channels, 2, 2), "latent", "frames", full)
    graph = onnx.load(str(full))
    float_bytes = full.stat().st_size
    tensors = []
    for tensor in graph.graph.initializer:
        if tensor.name in weight_steps:
            weights = numpy_helper.to_array(tensor)
            quantized = quantize_tensor(tensor.name, weights, weight_steps[tensor.name])
            if not np.array_equal(quantized.weights(), weights):
                raise CodecError(f"decoder weight {tensor.name} is not on its quantization grid")
            tensors.append(quantized)
            set_external_data(tensor, location=EXTERNAL_LOCATION, length=weights.nbytes)
            tensor.ClearField("raw_data")
            tensor.data_location = onnx.TensorProto.EXTERNAL
    if len(tensors) != len(weight_steps):
        raise CodecError(f"only {len(tensors)} of the decoder's {len(weight_steps)} quantized weights are in its graph")
    full.write_bytes(graph.SerializeToString())
    (out_dir / DECODER_WEIGHTS_FILE).write_bytes(pack(tensors))
    return float_bytes


def _export(module: torch.nn.Module, example: torch.Tensor, inp: str, out: str, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            str(path),
            dynamo=False,
            input_names=[inp],
            output_names=[out],
            dynamic_axes={inp: {0: "n", 2: "h", 3: "w"}, out: {0: "n", 2: "h", 3: "w"}},
            opset_version=OPSET,
        )
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)


def parity_size(stride: int, avoid: set[tuple[int, int]]) -> tuple[int, int]:
    """A (height, width), multiples of ``stride``, that differ from every size in ``avoid``."""
    h, w = stride * 5, stride * 7
    while (h, w) in avoid:
        h, w = h + stride, w + stride
    return h, w


def check_parity(model: AutoEncoder, out_dir: Path, frame: np.ndarray, size: tuple[int, int], step: float) -> dict:
    """Compare the exported ONNX halves with torch on ``frame`` cropped/padded to ``size``.

    Returns the max absolute differences: encoder latent, decoder output on [0,1] pixels (on the
    same quantized latent), and the whole ONNX path against the whole torch path.
    """
    model = model.cpu().eval()
    h, w = size
    crop = frame[:h, :w]
    crop = np.pad(crop, ((0, h - crop.shape[0]), (0, w - crop.shape[1]), (0, 0)), mode="edge")
    x = to_tensor([crop], torch.device("cpu"))
    enc = open_session(out_dir, ENCODER_FILE, cpu_only=True)
    dec = open_decoder(out_dir, cpu_only=True)
    with torch.inference_mode():
        y = model.encoder(x)
        y_hat = quantize(y, step)
        x_hat = model.decoder(y_hat).numpy()
    y_ort = enc.run(None, {"frames": x.numpy()})[0]
    x_hat_ort = dec.run(None, {"latent": y_hat.numpy()})[0]
    x_hat_path = dec.run(None, {"latent": (np.round(y_ort / step) * step).astype(np.float32)})[0]
    return {
        "height": h,
        "width": w,
        "encoder_max_abs_diff": float(np.abs(y_ort - y.numpy()).max()),
        "decoder_max_abs_diff": float(np.abs(x_hat_ort - x_hat).max()),
        "end_to_end_max_abs_diff": float(np.abs(x_hat_path - x_hat).max()),
        "limit": PARITY_LIMIT,
    }
