"""The model summary that ``codec train`` prints at the end and ``codec info`` prints on demand."""

from __future__ import annotations

from typing import Any


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def summary(meta: dict[str, Any]) -> dict[str, Any]:
    """The figures a user asks of a bundle, flat and JSON-ready, read from its meta.json."""
    src, model, train, onnx = meta["source"], meta["model"], meta["training"], meta["onnx"]
    this_run = train["this_run"]
    return {
        "source": src["name"],
        "source_size": f"{src['width']}x{src['height']}",
        "source_frames": src["frames"],
        "source_fps": round(src["fps"], 3),
        "latent_channels": model["latent_channels"],
        "stride": model["stride"],
        "width": model["width"],
        "latent_shape": model["latent_shape"],
        "latent_values_per_pixel": model["latent_channels"] / model["stride"] ** 2,
        "encoder_params": model["encoder_params"],
        "decoder_params": model["decoder_params"],
        "decoder_bytes": model["decoder_bytes"],
        "decoder_bytes_xz": model["decoder_bytes_xz"],
        "encoder_macs_per_pixel": model["encoder_macs_per_pixel"],
        "decoder_macs_per_pixel": model["decoder_macs_per_pixel"],
        "device": train["device"],
        "steps": train["steps"],
        "train_seconds": round(train["seconds"], 1),
        "steps_per_s": round(this_run["steps_per_s"], 3),
        "pixels_per_s": round(this_run["pixels_per_s"]),
        "psnr": round(train["psnr"], 3),
        "bpp_estimate": round(train["bpp_estimate"], 5),
        "holdout_frames": train["frames_held_out"],
        "holdout_psnr": _rounded(train["holdout_psnr"], 3),
        "holdout_bpp_estimate": _rounded(train["holdout_bpp_estimate"], 5),
        "peak_memory_mib": round(train["peak_memory_mib"]),
        "onnx_parity_max_abs_diff": onnx["decoder_max_abs_diff"],
        "onnx_parity_size": f"{onnx['width']}x{onnx['height']}",
        "quant_step": meta["coding"]["quant_step"],
        "gop": meta["coding"]["gop"],
    }


LABELS = {
    "source": "source",
    "source_size": "frame size",
    "source_frames": "frames",
    "source_fps": "fps",
    "latent_shape": "latent shape (C, h, w)",
    "latent_values_per_pixel": "latent values / pixel",
    "encoder_params": "encoder parameters",
    "decoder_params": "decoder parameters",
    "decoder_bytes": "decoder.onnx bytes",
    "decoder_bytes_xz": "decoder.onnx bytes (xz)",
    "encoder_macs_per_pixel": "encoder MACs / pixel",
    "decoder_macs_per_pixel": "decoder MACs / pixel",
    "device": "trained on",
    "steps": "steps",
    "train_seconds": "training seconds",
    "steps_per_s": "steps / s (last run)",
    "pixels_per_s": "pixels / s (last run)",
    "psnr": "RGB PSNR, seen frames (dB)",
    "bpp_estimate": "bpp, seen frames (estimate)",
    "holdout_frames": "held-out frames",
    "holdout_psnr": "RGB PSNR, held-out frames (dB)",
    "holdout_bpp_estimate": "bpp, held-out (estimate)",
    "peak_memory_mib": "peak memory (MiB)",
    "onnx_parity_max_abs_diff": "ONNX vs torch max |diff|",
    "onnx_parity_size": "ONNX parity checked at",
    "gop": "GOP",
}


def format_summary(values: dict[str, Any]) -> str:
    """Aligned ``label  value`` lines of the summary, skipping figures that do not apply."""
    rows = []
    for key, label in LABELS.items():
        value = values.get(key)
        if value is None or (key == "holdout_frames" and value == 0):
            continue
        if isinstance(value, float):
            value = f"{value:.3g}" if abs(value) < 1e-2 else f"{value:,.3f}".rstrip("0").rstrip(".")
        elif isinstance(value, int):
            value = f"{value:,}"
        elif isinstance(value, list):
            value = " x ".join(map(str, value))
        rows.append((label, str(value)))
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)
