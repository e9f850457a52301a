"""aecodec's side of the bench: its points through the real bitstream at every quality level, and
its speed figures (training as recorded in the bundle, onnxruntime as measured on those points,
torch inference measured here)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from codec.coding.common.bitstream import read_chunks
from codec.coding.common.runtime import active_provider
from codec.coding.decoder.decode import decode_stream
from codec.coding.encoder.encode import encode_video
from codec.io.bundle import Bundle
from codec.io.frame_store import FrameStore
from codec.measure.points import Point, Timed, measure_frames

TORCH_SPEED_FRAMES = 20


def aecodec_points(bundle: Bundle, video: Path, clip: FrameStore, tmp: Path, ms_ssim: bool) -> list[Point]:
    """Encode and decode ``video`` (whose frames ``clip`` holds) through the real bitstream at every
    quality level of ``bundle`` (variant ``low-delay``), and once more at the default level with
    scene-aware keyframes (variant ``auto-keyframes``), measuring each frame as it is decoded."""
    points = []
    coding = bundle.meta.coding
    runs = [(q, "fixed") for q in range(coding.levels)] + [(coding.default_quality, "auto")]
    for quality, keyframes in runs:
        out = tmp / f"q{quality}-{keyframes}.aec"
        stats = encode_video(video, bundle, out, quality=quality, force=True, keyframes=keyframes)
        data = out.read_bytes()
        decoded = Timed(decode_stream(data, bundle, str(out))[0])
        metrics = measure_frames(decoded, clip, clip.info.colour.matrix, ms_ssim, str(out))
        frame_bytes = [c.size for c in read_chunks(data, str(out))]
        frame_bytes[0] += len(data) - sum(frame_bytes)  # the stream header goes with the first frame
        step, refined = coding.quality_steps[coding.latent_level(quality)], coding.refinement(quality)
        points.append(
            Point(
                "aecodec",
                "low-delay" if keyframes == "fixed" else "auto-keyframes",
                f"quality {quality} (step {step:g}{f', refined {refined}' if refined else ''})",
                frame_bytes,
                metrics,
                stats.seconds,
                decoded.seconds,
                extra_bytes=bundle.shipped_bytes,
            )
        )
    return points


def speed_figures(bundle: Bundle, clip: FrameStore, aecodec_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The report's ``speed``: training, onnxruntime (from ``aecodec_rows``, the low-delay rows by
    quality) and torch speed figures of the model, with this process's peak memory."""
    import torch

    from codec.train.checkpoint import load_checkpoint
    from codec.train.model import AutoEncoder, ModelConfig
    from codec.train.ops import pad_to_stride, quantize, to_tensor
    from codec.train.pipeline import peak_memory_mib

    meta = bundle.meta
    ckpt = load_checkpoint(bundle.file("checkpoint.pt"))
    model = AutoEncoder(ModelConfig(**ckpt["config"])).eval()
    model.load_state_dict(ckpt["model"])
    frames = [clip[i] for i in range(min(TORCH_SPEED_FRAMES, len(clip)))]
    with torch.inference_mode():
        started = time.perf_counter()
        latents = [model.encoder(pad_to_stride(to_tensor([f], torch.device("cpu")), model.cfg.stride)) for f in frames]
        torch_encode = len(frames) / (time.perf_counter() - started)
        started = time.perf_counter()
        for y in latents:
            model.decoder(quantize(y, meta.coding.default_step))
        torch_decode = len(frames) / (time.perf_counter() - started)
    default = aecodec_rows[meta.coding.default_quality]
    return {
        "train_steps_per_s": meta.training.steps_per_s,
        "train_pixels_per_s": meta.training.pixels_per_s,
        "train_device": meta.training.device,
        "train_precision": meta.training.precision,
        "onnxruntime_encode_fps": default["encode_fps"],
        "onnxruntime_decode_fps": default["decode_fps"],
        "torch_encode_fps": torch_encode,
        "torch_decode_fps": torch_decode,
        "decoder_macs_per_pixel": meta.model.decoder_macs_per_pixel,
        "encoder_macs_per_pixel": meta.model.encoder_macs_per_pixel,
        "peak_memory_mib": peak_memory_mib(),
        "onnxruntime_provider": active_provider(bundle),
    }
