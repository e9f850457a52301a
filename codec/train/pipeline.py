"""``codec train``: read one video, fit the autoencoder to it, export and verify the model bundle."""

from __future__ import annotations

import resource
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from codec import __version__
from codec.coding.common.entropy_coding import CodingTables
from codec.errors import CodecError
from codec.io.bundle import (
    CHECKPOINT_FILE,
    DECODER_FILE,
    DECODER_WEIGHTS_FILE,
    ENCODER_FILE,
    ENTROPY_FILE,
    FORMAT,
    FORMAT_VERSION,
    META_FILE,
    check_model_dir,
    file_entry,
)
from codec.io.files import sha256_file, write_json
from codec.io.frame_store import FrameStore, cached, frames_dir, open_store
from codec.io.video import VideoInfo, probe
from codec.train.checkpoint import load_checkpoint, restore, save_checkpoint
from codec.train.devices import resolve_device, use_cpus
from codec.train.distributed import join, leave, rank, world_size
from codec.train.export import OPSET, PARITY_LIMIT, check_parity, export_onnx, parity_size
from codec.train.loop import EvalResult, Progress, eval_indices, evaluate, fit
from codec.train.model import ModelConfig, macs_per_pixel, parameter_count
from codec.train.options import TrainOptions
from codec.train.state import TrainState, new_state
from codec.train.weights import WeightQuantization, quantize_decoder

MODEL_FIELDS = {f.name for f in fields(ModelConfig)}
OPTION_FIELDS = {f.name for f in fields(TrainOptions)}
DEFAULT_MINUTES = TrainOptions.minutes
LATENT_VALUES = 1 << 26  # latent values (256 MiB as float32) kept for fitting the P tables at most


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


def _prepare(
    video: Path, model_dir: Path, model_args: dict[str, Any], option_args: dict[str, Any], resume: bool, force: bool
) -> tuple[dict[str, Any] | None, ModelConfig, TrainOptions]:
    """Check that training may write ``model_dir`` and, on resume, that ``video`` fits its checkpoint;
    returns the checkpoint (None for a new model) and the settings to train with."""
    check_model_dir(model_dir, resume, force)
    ckpt = load_checkpoint(model_dir / CHECKPOINT_FILE) if resume else None
    cfg, opts = _settings(model_args, option_args, ckpt)
    info = probe(video)
    if ckpt is not None and (info.width, info.height) != tuple(ckpt["source"]["size"]):
        raise CodecError(
            f"{video}: is {info.width}x{info.height}, the checkpoint was trained on "
            f"{ckpt['source']['name']} at {ckpt['source']['size'][0]}x{ckpt['source']['size'][1]}"
        )
    return ckpt, cfg, opts


def _source(video: Path, clip: FrameStore, sha256: str) -> dict[str, Any]:
    """What the checkpoint records of its source video (``--resume`` checks the size)."""
    return {
        "name": clip.name,
        "size": [clip.width, clip.height],
        "sha256": sha256,
        "colour": clip.info.colour.to_dict(),
        "path": str(video.resolve()),  # where it was trained from, for find_source
    }


@dataclass
class Outcome:
    """One finished training run on one clip: what the bundle and its meta.json are written from."""

    clip: FrameStore
    source: dict[str, Any]
    cfg: ModelConfig
    opts: TrainOptions
    state: TrainState
    device: str
    processes: int
    speed: dict[str, Any]
    runs: list[dict[str, Any]]
    frames_seen: int
    seen_eval: list[EvalResult]
    unseen_eval: list[EvalResult | None]
    seen_latents: (
        np.ndarray
    )  # (N, C, h, w) of whole GOPs of the trained frames, unquantized: what the P tables are fitted on
    weights: WeightQuantization  # how the decoder's weights were quantized before the evaluation
    started: float


def train_video(
    video: Path,
    model_dir: Path,
    model_args: dict[str, Any],
    option_args: dict[str, Any],
    resume: bool = False,
    force: bool = False,
    report: Callable[[Progress], None] = lambda p: None,
    log: Callable[[str], None] = lambda s: None,
    decoding: Callable[[int, int], None] = lambda done, expected: None,
) -> dict[str, Any] | None:
    """Train on ``video`` into the bundle ``model_dir`` and return its meta.json content (None in
    the processes other than rank 0 of a distributed run: they train but do not write). The video
    is decoded once into the frame cache (``decoding(done, expected)`` follows it) and read from
    there; ``log`` says up front what that takes on disk and what the run will do."""
    started = time.perf_counter()
    ckpt, cfg, opts = _prepare(video, model_dir, model_args, option_args, resume, force)
    device = join(resolve_device(opts.device))
    use_cpus(device)
    main_process = rank() == 0  # in a distributed run only rank 0 talks, evaluates and writes
    digest = sha256_file(video)
    if main_process:
        log(disk_plan(probe(video), digest))
    clip = open_store(video, decoding if main_process else lambda done, expected: None, sha256=digest)
    n_train = _split(len(clip), opts.holdout)
    if main_process:
        log(time_plan(clip, n_train, opts, device))
    budget = opts.budget_for(n_train)
    state, speed = _fit(cfg, budget, device, ckpt, clip.span(0, n_train), report if main_process else lambda p: None)
    leave()
    if not main_process:
        return None
    log("quantizing the decoder's weights")
    weights = quantize_decoder(state.model, clip.span(0, n_train), opts.quality_steps, device)
    log("evaluating full frames")
    seen_eval, unseen_eval, seen_latents = _evaluate(state, clip, n_train, opts, device)
    processes = world_size()
    this_run = {**speed, "device": str(device), "processes": processes, "steps_after": state.step}
    outcome = Outcome(
        clip=clip,
        source=_source(video, clip, digest),
        cfg=cfg,
        opts=opts,
        state=state,
        device=str(device),
        processes=processes,
        speed=speed,
        runs=[*(ckpt["runs"] if ckpt else []), this_run],
        frames_seen=n_train,
        seen_eval=seen_eval,
        unseen_eval=unseen_eval,
        seen_latents=seen_latents,
        weights=weights,
        started=started,
    )
    return write_bundle(model_dir, outcome)


def _fit(
    cfg: ModelConfig,
    opts: TrainOptions,
    device: torch.device,
    ckpt: dict[str, Any] | None,
    frames: FrameStore,
    report: Callable[[Progress], None],
) -> tuple[TrainState, dict[str, Any]]:
    """A new model, or the checkpoint's, trained on ``frames``; returns it and the speed figures of the run."""
    state = new_state(cfg, opts, device)
    if ckpt is not None:
        restore(state, ckpt, opts.seed)
    return state, fit(state, frames, opts, device, report)


def _evaluate(
    state: TrainState, clip: FrameStore, n_train: int, opts: TrainOptions, device: torch.device
) -> tuple[list[EvalResult], list[EvalResult | None], np.ndarray]:
    """Every quality level's results on the first ``n_train`` frames of ``clip`` and on the frames
    held out after them (all None where none are), and the latents of the first of those
    :func:`~codec.train.loop.eval_indices` picks among the first ``n_train``, up to LATENT_VALUES."""
    per_frame = int(np.prod(state.model.cfg.latent_shape(clip.height, clip.width)))
    keep = max(2, LATENT_VALUES // per_frame)
    seen_eval, seen_latents = evaluate(state, clip.span(0, n_train), opts, device, keep_latents=keep)
    unseen = clip.span(n_train, len(clip))
    unseen_eval = evaluate(state, unseen, opts, device)[0] if len(unseen) else [None] * len(seen_eval)
    return seen_eval, unseen_eval, seen_latents


def disk_plan(info: VideoInfo, sha256: str) -> str:
    """What decoding ``info``'s video takes on disk, said before it starts (or that it is cached)."""
    hit = cached(info, sha256)
    if hit is not None:
        return (
            f"{info.path.name}: {len(hit)} decoded frames cached in {frames_dir()} ({_gib(len(hit) * hit.frame_bytes)})"
        )
    frame = info.width * info.height * 3
    size = f"{_gib(info.declared_frames * frame)} of disk" if info.declared_frames else f"{_gib(frame)} a frame"
    free = shutil.disk_usage(frames_dir() if frames_dir().is_dir() else Path.home()).free
    return f"{info.path.name}: decoding once into {frames_dir()}: {size} ({_gib(free)} free)"


def time_plan(clip: FrameStore, n_train: int, opts: TrainOptions, device: torch.device) -> str:
    """What the run will do and for how long, said before training starts."""
    run = opts.budget_for(n_train)
    budget = " or ".join(
        b for b in (f"{run.minutes:.3g} min" if run.minutes else "", f"{run.steps} steps" if run.steps else "") if b
    )
    if opts.per_frames:
        budget += f" ({n_train / opts.per_frames:.3g} x the budget given per {opts.per_frames} frames)"
    held = len(clip) - n_train
    evaluated = len(eval_indices(n_train, opts.gop)) + len(eval_indices(held, opts.gop))
    threads = torch.get_num_threads()
    where = f"{device} ({threads} thread{'' if threads == 1 else 's'})" if device.type == "cpu" else str(device)
    return (
        f"{clip.name}: {len(clip)} frames {clip.width}x{clip.height} @ {clip.info.fps:.3f} fps; training on "
        f"{n_train} for {budget} on {where}, then evaluating {evaluated} frames at "
        f"{len(opts.quality_steps)} quality levels and exporting"
    )


def _gib(size: int) -> str:
    return f"{size / 2**30:.2f} GiB" if size >= 1 << 30 else f"{size / 2**20:.0f} MiB"


def _parity_size(clip: FrameStore, cfg: ModelConfig, opts: TrainOptions) -> tuple[int, int]:
    """A frame size for the ONNX parity check that neither the training crops nor the whole source
    frame (padded to the stride) had."""
    _, h, w = cfg.latent_shape(clip.height, clip.width)
    padded = (h * cfg.stride, w * cfg.stride)
    return parity_size(cfg.stride, {opts.crop_size(clip.height, clip.width, cfg.stride), padded})


def write_bundle(model_dir: Path, outcome: Outcome) -> dict[str, Any]:
    """Write the bundle of ``outcome`` into ``model_dir``: checkpoint, ONNX halves (checked against
    torch), entropy.json and meta.json, whose content is returned. An ONNX decoder that differs from
    torch is a CodecError after the bundle is written."""
    state, opts = outcome.state, outcome.opts
    model_dir.mkdir(parents=True, exist_ok=True)
    extra = {"config": outcome.cfg.to_dict(), "options": asdict(opts), "source": outcome.source, "runs": outcome.runs}
    save_checkpoint(state, model_dir / CHECKPOINT_FILE, extra)
    float_bytes = export_onnx(state.model, model_dir, outcome.weights.steps)
    parity = check_parity(
        state.model,
        model_dir,
        outcome.clip[0],
        _parity_size(outcome.clip, outcome.cfg, opts),
        opts.quality_steps[opts.default_quality],
    )
    prior = state.prior.tables()
    tables = CodingTables.build(prior, list(opts.quality_steps), outcome.seen_latents, opts.gop)
    # Compact: every client downloads it (a third of the size of the indented form).
    write_json(model_dir / ENTROPY_FILE, {"family": "laplace", "prior": prior, **tables.to_json()}, compact=True)
    names = (ENCODER_FILE, DECODER_FILE, DECODER_WEIGHTS_FILE, ENTROPY_FILE, CHECKPOINT_FILE)
    files = {name: file_entry(model_dir / name) for name in names}
    meta = bundle_meta(outcome, parity, files, float_bytes)
    write_json(model_dir / META_FILE, meta)
    if not parity["decoder_max_abs_diff"] <= PARITY_LIMIT:  # also catches NaN
        raise CodecError(
            f"{model_dir}: ONNX decoder differs from torch by {parity['decoder_max_abs_diff']:.2e} "
            f"(limit {PARITY_LIMIT:g}); the bundle was written but should not be used"
        )
    return meta


def bundle_meta(
    outcome: Outcome, parity: dict[str, Any], files: dict[str, dict[str, Any]], float_bytes: int
) -> dict[str, Any]:
    """meta.json of the bundle written from ``outcome``, with the ONNX ``parity`` check's results, the
    ``files`` entries of the bundle's other files and the size of the decoder as float32 ONNX."""
    opts = outcome.opts
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "aecodec_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": _source_meta(outcome),
        "model": _model_meta(outcome, files, float_bytes),
        "coding": {"quality_steps": list(opts.quality_steps), "default_quality": opts.default_quality, "gop": opts.gop},
        "training": _training_meta(outcome),
        "onnx": {"opset": OPSET, **parity},
        "files": files,
    }


def _source_meta(outcome: Outcome) -> dict[str, Any]:
    """meta.json's ``source``: the checkpoint's source entry and more of what the container says."""
    clip, info = outcome.clip, outcome.clip.info
    return {
        **outcome.source,
        "width": clip.width,
        "height": clip.height,
        "fps": info.fps,
        "frames": len(clip),
        "codec": info.codec,
        "pixel_format": info.pixel_format,
        "bytes": info.file_bytes,
    }


def _model_meta(outcome: Outcome, files: dict[str, dict[str, Any]], float_bytes: int) -> dict[str, Any]:
    """meta.json's ``model``: the configuration, latent shape, sizes and costs of the networks, and
    how the decoder's weights were quantized and what that cost."""
    cfg, model, clip, weights = outcome.cfg, outcome.state.model, outcome.clip, outcome.weights
    quantized = sum(int(np.prod(p.shape)) for n, p in model.decoder.named_parameters() if n in weights.steps)
    return {
        **cfg.to_dict(),
        "latent_shape": list(cfg.latent_shape(clip.height, clip.width)),
        "encoder_params": parameter_count(model.encoder),
        "decoder_params": parameter_count(model.decoder),
        "encoder_macs_per_pixel": macs_per_pixel(model.encoder, cfg, decoder=False),
        "decoder_macs_per_pixel": macs_per_pixel(model.decoder, cfg, decoder=True),
        "decoder_bytes_float32": float_bytes,
        "decoder_bytes": files[DECODER_FILE]["bytes"] + files[DECODER_WEIGHTS_FILE]["bytes"],
        "decoder_bits_per_weight": 8 * files[DECODER_WEIGHTS_FILE]["bytes"] / max(1, quantized),
        "decoder_relative_step": weights.relative_step,
        "decoder_quantization_loss_db": weights.loss_db,
    }


def _training_meta(outcome: Outcome) -> dict[str, Any]:
    """meta.json's ``training``: the options, the runs so far and every quality level's results."""
    opts, state = outcome.opts, outcome.state
    levels = zip(opts.quality_steps, outcome.seen_eval, outcome.unseen_eval, strict=True)
    return {
        "options": asdict(opts),
        "device": outcome.device,
        "processes": outcome.processes,
        "steps": state.step,
        "seconds": state.seconds,
        "frames_seen": outcome.frames_seen,
        "frames_held_out": len(outcome.clip) - outcome.frames_seen,
        "frames_evaluated": outcome.seen_eval[0].frames,  # a sample of whole GOPs on long clips (eval_indices)
        "levels": [
            {
                "quality": k,
                "step": step,
                "psnr": fit_eval.psnr,
                "bpp_estimate": fit_eval.bpp_estimate,
                "holdout_psnr": held_eval.psnr if held_eval else None,
                "holdout_bpp_estimate": held_eval.bpp_estimate if held_eval else None,
            }
            for k, (step, fit_eval, held_eval) in enumerate(levels)
        ],
        "this_run": outcome.speed,
        "runs": outcome.runs,
        "peak_memory_mib": peak_memory_mib(),
        "wall_s": time.perf_counter() - outcome.started,
    }


def peak_memory_mib() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
