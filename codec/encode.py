"""``codec encode``: a video through the bundle's ONNX encoder and the entropy coder into ``.aec``.

No torch: onnxruntime, numpy and constriction only, the same path the streaming server takes.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from codec.bitstream import I_FRAME, P_FRAME, Chunk, Header, write_stream
from codec.bundle import Bundle
from codec.entropy_coding import laplace_bits
from codec.errors import CodecError
from codec.latent_codec import LatentEncoder
from codec.runtime import Networks
from codec.video import iter_frames, probe

BATCH = 4


@dataclass
class EncodeStats:
    """Real sizes and quality of one encode."""

    frames: int
    width: int
    height: int
    quality: int
    step: float
    gop: int
    bytes: int
    estimated_bits: float
    psnr: float
    decoder_bytes_xz: int
    source_bytes: int
    seconds: float
    provider: str

    @property
    def pixels(self) -> int:
        return self.frames * self.width * self.height

    def to_dict(self) -> dict[str, float | int | str]:
        """The figures ``codec encode`` prints: stream-only and total (with the decoder) rates."""
        bits = self.bytes * 8
        return {
            "frames": self.frames,
            "size": f"{self.width}x{self.height}",
            "quality": self.quality,
            "step": self.step,
            "gop": self.gop,
            "bytes": self.bytes,
            "bpp": bits / self.pixels,
            "estimated_bpp": self.estimated_bits / self.pixels,
            "real_over_estimate": bits / self.estimated_bits if self.estimated_bits else math.inf,
            "ratio_vs_rgb24": self.pixels * 3 / self.bytes,
            "ratio_vs_source": self.source_bytes / self.bytes,
            "psnr_rgb": self.psnr,
            "decoder_bytes_xz": self.decoder_bytes_xz,
            "total_bpp": (bits + 8 * self.decoder_bytes_xz) / self.pixels,
            "encode_fps": self.frames / self.seconds if self.seconds else 0.0,
            "provider": self.provider,
        }


def frame_types(count: int | None, gop: int) -> Iterator[int]:
    """I every ``gop`` frames, P between."""
    index = 0
    while count is None or index < count:
        yield I_FRAME if index % gop == 0 else P_FRAME
        index += 1


def _batches(frames: Iterator[np.ndarray], size: int) -> Iterator[np.ndarray]:
    batch: list[np.ndarray] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


def check_output(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise CodecError(f"{path}: exists; use --force to overwrite it")
    if not path.parent.is_dir():
        raise CodecError(f"{path.parent}: no such directory")


def encode_video(
    video: Path,
    bundle: Bundle,
    out: Path,
    quality: int | None = None,
    gop: int | None = None,
    force: bool = False,
    on_frame: Callable[[int, np.ndarray], None] = lambda i, f: None,
) -> EncodeStats:
    """Encode ``video`` into ``out``; ``on_frame`` sees each reconstructed frame as the decoder will."""
    check_output(out, force)
    tables = bundle.coding_tables()
    quality = bundle.meta["coding"]["default_quality"] if quality is None else quality
    gop = bundle.meta["coding"]["gop"] if gop is None else gop
    if not 1 <= gop < 1 << 16:
        raise CodecError(f"--gop must be from 1 to 65535, not {gop}")
    encoder = LatentEncoder(tables, quality)
    level = encoder.level
    prior = bundle.entropy()["prior"]
    info = probe(video)
    nets = Networks(bundle, info.width, info.height)
    started = time.perf_counter()
    types = frame_types(None, gop)
    estimated = 0.0
    squared_error = []
    chunks: list[Chunk] = []
    previous: np.ndarray | None = None
    for batch in _batches(iter_frames(video), BATCH):
        q_batch = np.rint(nets.encode(batch) / level.step).astype(np.int64)
        for frame, q in zip(batch, q_batch, strict=True):
            frame_type = next(types)
            index = len(chunks)
            chunks.append(encoder.encode(q, index, frame_type))
            estimated += float(estimate_bits(q, previous, frame_type, prior, level.step).sum())
            previous = q
            recon = nets.decode((q * level.step)[None])[0]
            squared_error.append(np.mean((recon.astype(np.float64) - frame) ** 2))
            on_frame(index, recon)
    seconds = time.perf_counter() - started
    header = Header(
        bundle.decoder_sha256,
        info.width,
        info.height,
        Fraction(info.fps).limit_denominator(1001 * 1000),
        len(chunks),
        gop,
        quality,
    )
    tmp = out.with_name(f".{out.name}.partial")
    try:
        with open(tmp, "wb") as f:
            size = write_stream(f, header, iter(chunks))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    psnrs = [10 * math.log10(255**2 / max(e, 1e-10)) for e in squared_error]
    return EncodeStats(
        frames=len(chunks),
        width=info.width,
        height=info.height,
        quality=quality,
        step=level.step,
        gop=gop,
        bytes=size,
        estimated_bits=estimated,
        psnr=float(np.mean(psnrs)),
        decoder_bytes_xz=bundle.meta["model"]["decoder_bytes_xz"],
        source_bytes=info.file_bytes,
        seconds=seconds,
        provider=nets.provider,
    )


def estimate_bits(
    q: np.ndarray, previous: np.ndarray | None, frame_type: int, prior: dict[str, list[float]], step: float
) -> np.ndarray:
    """The model's estimate of a frame's bits: the continuous priors, before snapping to tables."""
    if frame_type == I_FRAME or previous is None:
        loc = np.asarray(prior["intra_loc"])[:, None, None]
        return laplace_bits(q * step, loc, np.asarray(prior["intra_scale"])[:, None, None], step)
    return laplace_bits((q - previous) * step, 0.0, np.asarray(prior["inter_scale"])[:, None, None], step)
