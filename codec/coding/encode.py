"""``codec encode``: a video through the bundle's ONNX encoder and the entropy coder into ``.aec``.

No torch: onnxruntime, numpy and constriction only, the same path the streaming server takes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from codec.coding.bitstream import I_FRAME, P_FRAME, Chunk, Header, write_stream
from codec.coding.entropy_coding import CodingTables, laplace_bits
from codec.coding.latent_codec import LatentEncoder
from codec.coding.runtime import Networks
from codec.errors import CodecError
from codec.io.bundle import Bundle
from codec.io.files import check_output, replacing_output
from codec.io.psnr import psnr
from codec.io.video import exact_rate, iter_frames, probe


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
    i_frames: int

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
            "i_frames": self.i_frames,
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


@dataclass
class EncodedFrame:
    """One coded frame: its chunk, its integer latent, the priors' estimate of its bits, and the
    frame exactly as a decoder will reconstruct it (when asked for)."""

    chunk: Chunk
    q: np.ndarray
    estimated_bits: float
    reconstruction: np.ndarray | None


KEYFRAMES = ("fixed", "auto")
JUMP, JUMP_HISTORY = 1.5, 8  # scene cut: a residual over 1.5x the median of the last 8 P-frames' bits


class VideoEncoder:
    """Frames to chunks with one bundle at one quality level: encoder network, rounding, latent
    prediction and entropy coding. An I-frame comes at every multiple of ``gop`` and at the first
    frame this encoder sees, so a stream may start anywhere; P-frames after it are the same
    bytes wherever the stream started, since q_t - q_(t-1) does not depend on how q_(t-1) was coded.

    With ``keyframes="auto"`` an I-frame comes instead where the code jumps: wherever the priors
    price the frame's latent coded afresh below its residual from the previous frame, or its residual
    at more than JUMP times the median of the last few P-frames' (a scene cut); and at the latest
    ``gop`` frames after the last I-frame.
    """

    def __init__(
        self,
        bundle: Bundle,
        width: int,
        height: int,
        quality: int | None,
        gop: int | None,
        nets: Networks | None = None,
        keyframes: str = "fixed",
    ) -> None:
        if keyframes not in KEYFRAMES:
            raise CodecError(f"--keyframes must be one of {', '.join(KEYFRAMES)}, not {keyframes}")
        self.keyframes = keyframes
        self.last_intra = 0
        self.recent_inter: list[float] = []
        coding = bundle.meta.coding
        self.quality = coding.default_quality if quality is None else quality
        self.gop = coding.gop if gop is None else gop
        if not 1 <= self.gop < 1 << 16:
            raise CodecError(f"GOP must be from 1 to 65535, not {self.gop}")
        self.latents = LatentEncoder(CodingTables.from_bundle(bundle), self.quality)
        self.step = self.latents.level.step
        self.prior = bundle.entropy()["prior"]
        self.nets = nets or Networks(bundle, width, height)  # sessions may be shared between threads

    def frame_type(self, q: np.ndarray, previous: np.ndarray | None, index: int) -> int:
        """I or P for frame ``index`` with integer latent ``q``, after ``previous``."""
        if previous is None:
            frame_type = I_FRAME
        elif self.keyframes == "fixed":
            frame_type = I_FRAME if index % self.gop == 0 else P_FRAME
        else:
            frame_type = self._scene_aware_type(q, previous, index)
        if frame_type == I_FRAME:
            self.last_intra = index
        return frame_type

    def _scene_aware_type(self, q: np.ndarray, previous: np.ndarray, index: int) -> int:
        inter = float(estimate_bits(q, previous, P_FRAME, self.prior, self.step).sum())
        intra = float(estimate_bits(q, None, I_FRAME, self.prior, self.step).sum())
        recent = self.recent_inter[-JUMP_HISTORY:]
        jump = len(recent) >= 3 and inter > JUMP * float(np.median(recent))
        if intra < inter or jump or index - self.last_intra >= self.gop:
            self.recent_inter = []
            return I_FRAME
        self.recent_inter.append(inter)
        return P_FRAME

    def encode(self, frame: np.ndarray, index: int, reconstruct: bool = False) -> EncodedFrame:
        """Code ``frame`` (H,W,3 uint8) as frame ``index`` of the stream."""
        previous = self.latents.previous
        q = np.rint(self.nets.encode(frame[None])[0] / self.step).astype(np.int64)
        frame_type = self.frame_type(q, previous, index)
        chunk = self.latents.encode(q, index, frame_type)
        bits = float(estimate_bits(q, previous, frame_type, self.prior, self.step).sum())
        recon = self.nets.decode((q * self.step)[None])[0] if reconstruct else None
        return EncodedFrame(chunk, q, bits, recon)


def encode_video(
    video: Path,
    bundle: Bundle,
    out: Path,
    quality: int | None = None,
    gop: int | None = None,
    force: bool = False,
    on_frame: Callable[[int, np.ndarray], None] = lambda i, f: None,
    keyframes: str = "fixed",
) -> EncodeStats:
    """Encode ``video`` into ``out``; ``on_frame`` sees each reconstructed frame as the decoder will."""
    check_output(out, force)  # before the work; written through replacing_output at the end
    info = probe(video)
    bundle.check_frame_size(info.width, info.height, str(video))
    encoder = VideoEncoder(bundle, info.width, info.height, quality, gop, keyframes=keyframes)
    # Checked before any frame is coded, so no decoder is handed a header it must refuse.
    fps = exact_rate(info.fps)
    header = Header(bundle.decoder_sha256, info.width, info.height, fps, 1, encoder.gop, encoder.quality)
    header.check(str(video))
    started = time.perf_counter()
    estimated = 0.0
    psnrs = []
    chunks: list[Chunk] = []
    for index, frame in enumerate(iter_frames(video)):
        coded = encoder.encode(frame, index, reconstruct=True)
        chunks.append(coded.chunk)
        estimated += coded.estimated_bits
        psnrs.append(psnr(coded.reconstruction, frame))
        on_frame(index, coded.reconstruction)
    seconds = time.perf_counter() - started
    header = replace(header, frames=len(chunks))
    with replacing_output(out, force) as tmp, open(tmp, "wb") as f:
        size = write_stream(f, header, iter(chunks))
    return EncodeStats(
        frames=len(chunks),
        width=info.width,
        height=info.height,
        quality=encoder.quality,
        step=encoder.step,
        gop=encoder.gop,
        bytes=size,
        estimated_bits=estimated,
        psnr=float(np.mean(psnrs)),
        decoder_bytes_xz=bundle.meta.model.decoder_bytes_xz,
        source_bytes=info.file_bytes,
        seconds=seconds,
        provider=encoder.nets.provider,
        i_frames=sum(c.frame_type == I_FRAME for c in chunks),
    )


def estimate_bits(
    q: np.ndarray, previous: np.ndarray | None, frame_type: int, prior: dict[str, list[float]], step: float
) -> np.ndarray:
    """The model's estimate of a frame's bits: the continuous priors, before snapping to tables."""
    if frame_type == I_FRAME or previous is None:
        loc = np.asarray(prior["intra_loc"])[:, None, None]
        return laplace_bits(q * step, loc, np.asarray(prior["intra_scale"])[:, None, None], step)
    return laplace_bits((q - previous) * step, 0.0, np.asarray(prior["inter_scale"])[:, None, None], step)
