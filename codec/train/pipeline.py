"""``codec train``: read one video, fit the autoencoder to it, export and verify the model bundle."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from codec import __version__
from codec.coding.entropy_coding import CodingTables
from codec.errors import CodecError
from codec.io.bundle import (
    CHECKPOINT_FILE,
    DECODER_FILE,
    ENCODER_FILE,
    ENTROPY_FILE,
    FORMAT,
    FORMAT_VERSION,
    META_FILE,
    check_model_dir,
    compressed_size,
    file_entry,
)
from codec.io.files import sha256_file, write_json
from codec.io.video import probe, read_clip
from codec.train.checkpoint import load_checkpoint, restore, save_checkpoint
from codec.train.devices import resolve_device
from codec.train.distributed import join, leave, rank, world_size
from codec.train.export import OPSET, PARITY_LIMIT, check_parity, export_onnx, parity_size
from codec.train.loop import Progress, evaluate, fit
from codec.train.model import ModelConfig, macs_per_pixel, parameter_count
from codec.train.options import TrainOptions
from codec.train.state import new_state

MODEL_FIELDS = {f.name for f in fields(ModelConfig)}
OPTION_FIELDS = {f.name for f in fields(TrainOptions)}
DEFAULT_MINUTES = TrainOptions.minutes


def _split(n: int, holdout: float) -> int:
    """Number of leading frames to train on; the rest are held out."""
    if holdout == 0:
        return n
    held = max(1, round(n * holdout))
    if n - held < 1:
        raise CodecError(f"--holdout {holdout}: the clip has {n} frames, too few to hold any out")
    return n - held


def _settings(
    model_args: dict[str, Any], option_args: dict[str, Any], ckpt: dict[str, Any] | None
) -> tuple[ModelConfig, TrainOptions]:
    """Merge what was given on the command line with the checkpoint's settings (on resume)."""
    given_model = {k: v for k, v in model_args.items() if v is not None}
    given = {k: v for k, v in option_args.items() if v is not None}
    if ckpt is None:
        cfg = ModelConfig(**given_model)
        base: dict[str, Any] = {}
    else:
        cfg = ModelConfig(**ckpt["config"])
        clash = {k: v for k, v in given_model.items() if getattr(cfg, k) != v}
        if clash:
            names = ", ".join(f"--{k.replace('_', '-')}" for k in clash)
            raise CodecError(f"--resume: {names} differ from the checkpoint's model; start a new model instead")
        base = {k: v for k, v in ckpt["options"].items() if k not in ("minutes", "steps")}
    if "minutes" not in given and "steps" not in given:
        given["minutes"] = DEFAULT_MINUTES
    given.setdefault("minutes", None)
    given.setdefault("steps", None)
    return cfg, TrainOptions(**{**base, **given})


def train_video(
    video: Path,
    model_dir: Path,
    model_args: dict[str, Any],
    option_args: dict[str, Any],
    resume: bool = False,
    force: bool = False,
    report: Callable[[Progress], None] = lambda p: None,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any] | None:
    """Train on ``video`` into the bundle ``model_dir`` and return its meta.json content (None in
    the processes other than rank 0 of a distributed run: they train but do not write)."""
    started = time.perf_counter()
    check_model_dir(model_dir, resume, force)
    ckpt = load_checkpoint(model_dir / CHECKPOINT_FILE) if resume else None
    cfg, opts = _settings(model_args, option_args, ckpt)
    info = probe(video)
    device = join(resolve_device(opts.device))
    main_process = rank() == 0  # in a distributed run only rank 0 talks, evaluates and writes
    if ckpt is not None and (info.width, info.height) != tuple(ckpt["source"]["size"]):
        raise CodecError(
            f"{video}: is {info.width}x{info.height}, the checkpoint was trained on "
            f"{ckpt['source']['name']} at {ckpt['source']['size'][0]}x{ckpt['source']['size'][1]}"
        )

    clip = read_clip(video)
    n_train = _split(len(clip), opts.holdout)
    seen, unseen = clip.frames[:n_train], clip.frames[n_train:]
    if main_process:
        log(f"{clip.name}: {len(clip)} frames {clip.width}x{clip.height} @ {info.fps:.3f} fps; training on {device}")

    state = new_state(cfg, opts, device)
    if ckpt is not None:
        restore(state, ckpt, opts.seed)
    speed = fit(state, seen, opts, device, report if main_process else lambda p: None)
    leave()
    if not main_process:
        return None
    log("evaluating full frames")
    seen_eval = evaluate(state, seen, opts, device)
    unseen_eval = evaluate(state, unseen, opts, device) if unseen else [None] * len(seen_eval)
    default_quality = opts.default_quality

    processes = world_size()
    runs = [
        *(ckpt["runs"] if ckpt else []),
        {**speed, "device": str(device), "processes": processes, "steps_after": state.step},
    ]
    source = {
        "name": clip.name,
        "size": [clip.width, clip.height],
        "sha256": sha256_file(video),
        "colour": info.colour.to_dict(),
    }
    model_dir.mkdir(parents=True, exist_ok=True)
    extra = {"config": cfg.to_dict(), "options": asdict(opts), "source": source, "runs": runs}
    save_checkpoint(state, model_dir / CHECKPOINT_FILE, extra)
    export_onnx(state.model, model_dir)
    padded = (-(-clip.height // cfg.stride) * cfg.stride, -(-clip.width // cfg.stride) * cfg.stride)
    parity = check_parity(
        state.model,
        model_dir,
        clip.frames[0],
        parity_size(cfg.stride, {opts.crop_size(clip.height, clip.width, cfg.stride), padded}),
        opts.quality_steps[default_quality],
    )
    prior = state.prior.tables()
    tables = CodingTables.build(prior, list(opts.quality_steps))
    write_json(model_dir / ENTROPY_FILE, {"family": "laplace", "prior": prior, **tables.to_json()})

    model = state.model
    files = {name: file_entry(model_dir / name) for name in (ENCODER_FILE, DECODER_FILE, ENTROPY_FILE, CHECKPOINT_FILE)}
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "aecodec_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": {
            **source,
            "width": clip.width,
            "height": clip.height,
            "fps": info.fps,
            "frames": len(clip),
            "codec": info.codec,
            "pixel_format": info.pixel_format,
            "bytes": info.file_bytes,
        },
        "model": {
            **cfg.to_dict(),
            "latent_shape": list(cfg.latent_shape(clip.height, clip.width)),
            "encoder_params": parameter_count(model.encoder),
            "decoder_params": parameter_count(model.decoder),
            "encoder_macs_per_pixel": macs_per_pixel(model.encoder, cfg, decoder=False),
            "decoder_macs_per_pixel": macs_per_pixel(model.decoder, cfg, decoder=True),
            "decoder_bytes": files[DECODER_FILE]["bytes"],
            "decoder_bytes_xz": compressed_size(model_dir / DECODER_FILE),
        },
        "coding": {"quality_steps": list(opts.quality_steps), "default_quality": default_quality, "gop": opts.gop},
        "training": {
            "options": asdict(opts),
            "device": str(device),
            "processes": processes,
            "steps": state.step,
            "seconds": state.seconds,
            "frames_seen": len(seen),
            "frames_held_out": len(unseen),
            "levels": [
                {
                    "quality": k,
                    "step": step,
                    "psnr": fit_eval.psnr,
                    "bpp_estimate": fit_eval.bpp_estimate,
                    "holdout_psnr": held_eval.psnr if held_eval else None,
                    "holdout_bpp_estimate": held_eval.bpp_estimate if held_eval else None,
                }
                for k, (step, fit_eval, held_eval) in enumerate(
                    zip(opts.quality_steps, seen_eval, unseen_eval, strict=True)
                )
            ],
            "this_run": speed,
            "runs": runs,
            "peak_memory_mib": peak_memory_mib(),
            "wall_s": time.perf_counter() - started,
        },
        "onnx": {"opset": OPSET, **parity},
        "files": files,
    }
    write_json(model_dir / META_FILE, meta)
    if not parity["decoder_max_abs_diff"] <= PARITY_LIMIT:  # also catches NaN
        raise CodecError(
            f"{model_dir}: ONNX decoder differs from torch by {parity['decoder_max_abs_diff']:.2e} "
            f"(limit {PARITY_LIMIT:g}); the bundle was written but should not be used"
        )
    return meta


def peak_memory_mib() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
