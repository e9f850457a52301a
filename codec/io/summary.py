"""The model summary that ``codec train`` prints at the end and ``codec info`` prints on demand."""

from __future__ import annotations

from typing import Any


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def summary(meta: dict[str, Any]) -> dict[str, Any]:
    """The figures a user asks of a bundle, flat and JSON-ready, read from its meta.json."""
    src, model, train, onnx = meta["source"], meta["model"], meta["training"], meta["onnx"]
    this_run = train["this_run"]
    quality = meta["coding"]["default_quality"]
    level = train["levels"][quality]
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
        "decoder_bytes_float32": model["decoder_bytes_float32"],
        "decoder_bytes": model["decoder_bytes"],
        "decoder_bits_per_weight": round(model["decoder_bits_per_weight"], 3),
        "decoder_quantization_loss_db": round(max(model["decoder_quantization_loss_db"]), 4),
        "encoder_macs_per_pixel": model["encoder_macs_per_pixel"],
        "decoder_macs_per_pixel": model["decoder_macs_per_pixel"],
        "device": train["device"],
        "precision": this_run.get("precision"),  # None in bundles trained before it was recorded
        "steps": train["steps"],
        "train_seconds": round(train["seconds"], 1),
        "steps_per_s": round(this_run["steps_per_s"], 3),
        "pixels_per_s": round(this_run["pixels_per_s"]),
        "default_quality": quality,
        "psnr": round(level["psnr"], 3),
        "bpp_estimate": round(level["bpp_estimate"], 5),
        "frames_evaluated": train.get("frames_evaluated"),  # None in bundles that predate the sample
        "holdout_frames": train["frames_held_out"],
        "holdout_psnr": _rounded(level["holdout_psnr"], 3),
        "holdout_bpp_estimate": _rounded(level["holdout_bpp_estimate"], 5),
        "peak_memory_mib": round(train["peak_memory_mib"]),
        "onnx_parity_max_abs_diff": onnx["decoder_max_abs_diff"],
        "onnx_parity_size": f"{onnx['width']}x{onnx['height']}",
        "gop": meta["coding"]["gop"],
        "levels": [
            {
                "quality": lv["quality"],
                "step": lv["step"],
                "psnr": round(lv["psnr"], 3),
                "bpp_estimate": round(lv["bpp_estimate"], 5),
                "holdout_psnr": _rounded(lv["holdout_psnr"], 3),
            }
            for lv in train["levels"]
        ],
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
    "decoder_bytes_float32": "decoder bytes as float32",
    "decoder_bytes": "decoder bytes (quantized, shipped)",
    "decoder_bits_per_weight": "decoder bits / weight",
    "decoder_quantization_loss_db": "quantization loss, worst level (dB)",
    "encoder_macs_per_pixel": "encoder MACs / pixel",
    "decoder_macs_per_pixel": "decoder MACs / pixel",
    "device": "trained on",
    "precision": "training arithmetic",
    "steps": "steps",
    "train_seconds": "training seconds",
    "steps_per_s": "steps / s (last run)",
    "pixels_per_s": "pixels / s (last run)",
    "default_quality": "default quality level",
    "psnr": "RGB PSNR, seen frames (dB)",
    "bpp_estimate": "bpp, seen frames (estimate)",
    "frames_evaluated": "seen frames evaluated",
    "holdout_frames": "held-out frames",
    "holdout_psnr": "RGB PSNR, held-out frames (dB)",
    "holdout_bpp_estimate": "bpp, held-out (estimate)",
    "peak_memory_mib": "peak memory (MiB)",
    "onnx_parity_max_abs_diff": "ONNX vs torch max |diff|",
    "onnx_parity_size": "ONNX parity checked at",
    "gop": "GOP",
    "onnxruntime_provider": "encodes/decodes on",
}


def format_value(value: Any) -> str:
    """A figure as people read it: thousands separated, small floats in 3 significant digits."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e-2 else f"{value:,.3f}".rstrip("0").rstrip(".")
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list):
        return " x ".join(map(str, value))
    return str(value)


def format_rows(rows: list[tuple[str, Any]]) -> str:
    """Aligned ``label  value`` lines."""
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {format_value(value)}" for label, value in rows)


def format_summary(values: dict[str, Any]) -> str:
    """The summary as aligned lines, skipping figures that do not apply, then one line per level."""
    rows: list[tuple[str, Any]] = [
        (label, values[key])
        for key, label in LABELS.items()
        if values.get(key) is not None and not (key == "holdout_frames" and values[key] == 0)
    ]
    for lv in values.get("levels", []):
        held = f", held-out {lv['holdout_psnr']:.2f} dB" if lv["holdout_psnr"] is not None else ""
        text = f"{lv['psnr']:.2f} dB @ {lv['bpp_estimate']:.4f} bpp (estimate){held}"
        rows.append((f"quality {lv['quality']} (step {lv['step']:g})", text))
    return format_rows(rows)
