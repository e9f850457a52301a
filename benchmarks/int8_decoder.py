"""What int8 inference would give the decoder: the bundle's decoder (quantized weights rebuilt as
float32) statically quantized by onnxruntime (QDQ, per-channel int8 weights, uint8 activations
calibrated on the video's own latents), timed beside the float network, with the PSNR it costs at
the default level and whether two runs of it agree bit for bit.

Usage: python benchmarks/int8_decoder.py MODEL_DIR VIDEO
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from decode_speed import median_ms, random_latents
from onnx import numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from codec.coding.common.decoder_weights import unpack
from codec.coding.common.runtime import Networks, open_decoder, to_frames
from codec.io.bundle import DECODER_FILE, DECODER_WEIGHTS_FILE, load_bundle
from codec.io.psnr import psnr
from codec.io.video import read_clip

SIZES = {"640x272": (272, 640), "1280x720": (720, 1280)}
CALIBRATION_FRAMES = 16


class _Latents(CalibrationDataReader):
    def __init__(self, latents: list[np.ndarray]) -> None:
        self._items = iter([{"latent": y[None]} for y in latents])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._items, None)


def _float_model(model_dir: Path, out: Path) -> None:
    """decoder.onnx with decoder.weights' tensors written into it as initializers."""
    model = onnx.load(str(model_dir / DECODER_FILE), load_external_data=False)
    weights = {t.name: t.weights() for t in unpack((model_dir / DECODER_WEIGHTS_FILE).read_bytes(), "w")}
    kept = [t for t in model.graph.initializer if t.name not in weights]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept + [numpy_helper.from_array(w, name) for name, w in weights.items()])
    onnx.save(model, str(out))


def main(model_dir: str, video: str) -> None:
    bundle = load_bundle(model_dir)
    clip = read_clip(Path(video))
    frames = np.stack(clip.frames)
    height, width = frames.shape[1:3]
    nets = Networks(bundle, width, height)
    step = bundle.meta.coding.default_step
    picks = np.linspace(0, len(frames) - 1, CALIBRATION_FRAMES).round().astype(int)
    latents = [np.rint(nets.analyse(frames[i : i + 1])[0] / step) * step for i in picks]
    with tempfile.TemporaryDirectory() as tmp:
        plain, int8 = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        _float_model(Path(model_dir), plain)
        quantize_static(
            str(plain),
            str(int8),
            _Latents(latents),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            weight_type=QuantType.QInt8,
            activation_type=QuantType.QUInt8,
        )
        sessions = {"float32": open_decoder(Path(model_dir), cpu_only=True)}
        sessions["int8"] = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"])
        model = bundle.meta.model
        timing = random_latents(model.latent_channels, model.stride, SIZES)
        print("| network | " + " | ".join(f"fps {k}" for k in SIZES) + " | RGB PSNR, default level |")
        print("| --- |" + " --- |" * (len(SIZES) + 1))
        outputs = {}
        for name, session in sessions.items():
            fps = [f"{1000 / median_ms(session, timing[k]):.1f}" for k in SIZES]
            out = [session.run(None, {"latent": y[None].astype(np.float32)})[0] for y in latents]
            pixels = [to_frames(o, height, width)[0] for o in out]
            outputs[name] = out
            score = np.mean([psnr(p, frames[i]) for p, i in zip(pixels, picks, strict=True)])
            print(f"| {name} | " + " | ".join(fps) + f" | {score:.2f} dB on {len(picks)} frames |")
        again = [sessions["int8"].run(None, {"latent": y[None].astype(np.float32)})[0] for y in latents]
        same = all(np.array_equal(a, b) for a, b in zip(again, outputs["int8"], strict=True))
        print(f"\nint8 output identical on a second run in the same process: {same}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(*sys.argv[1:])
