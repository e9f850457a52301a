"""``codec encode``: a video through the bundle's ONNX encoder and the entropy coder into ``.aec``.

No torch: onnxruntime, numpy and constriction only, the same path the streaming server takes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codec.coding import kernels
from codec.coding.common.bitstream import I_FRAME, M_FRAME, Chunk, Header, frame_check, write_stream
from codec.coding.common.entropy_coding import CodingTables, estimate_bits
from codec.coding.common.intra_refinement import refine
from codec.coding.common.latent_codec import LatentPacker
from codec.coding.common.runtime import Networks
from codec.coding.decoder.pipeline import Outcome, Value, ahead
from codec.coding.encoder.inter_encode import (
    DEFAULT_INTER,
    InterFrame,
    InterOptions,
    encode_inter,
    mode_lambda,
    refinement_qp,
    residual_qp,
)
from codec.coding.encoder.keyframes import KeyframePolicy
from codec.errors import CodecError
from codec.io.bundle import Bundle
from codec.io.files import check_output, replacing_output
from codec.io.psnr import mse, psnr, psnr_from_mse
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
    decoder_bytes: int  # what a client downloads to decode, once per video
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
            "decoder_bytes": self.decoder_bytes,
            "total_bpp": (bits + 8 * self.decoder_bytes) / self.pixels,
            "encode_fps": self.frames / self.seconds if self.seconds else 0.0,
            "provider": self.provider,
        }


P_MODES = ("motion", "latent")
READ_AHEAD = 2  # source frames decoded ahead of the encode, on a thread of their own


@dataclass
class CodedFrame:
    """One coded frame: its chunk, the bits it was estimated at (the priors' estimate for a latent,
    plus the real bits of an I-frame's refinement; the real bits of an M-frame), the frame
    exactly as a decoder will reconstruct it (whose check the chunk carries) and its mean squared
    error against the source (measured once: the encoder's decisions and its report share it)."""

    chunk: Chunk
    estimated_bits: float
    reconstruction: np.ndarray
    mse: float


class StreamEncoder:
    """The frames of one stream to its chunks, with one bundle at one quality level.

    With ``p_mode="motion"`` (the default) a frame the keyframe policy does not force intra is first
    coded as an M-frame: motion from the previous reconstruction plus an integer residual at a QP
    set by the last I-frame's PSNR; it is kept unless the policy prefers an I-frame at that cost.
    With ``p_mode="latent"`` P-frames code the intra latent's difference from the previous frame's.
    An I-frame is the analysis network, rounding and range coding of the latent, and at a refined
    level (above the bundle's latent levels) an integer residual refinement of its reconstruction.

    It keeps the stream's state (the previous reconstruction and latent, the policy's), so it codes
    frames in order. The first frame it sees is an I-frame, so a stream may start anywhere. ``nets``
    shares networks (their sessions may serve several threads); without it they are opened here.
    """

    def __init__(
        self,
        bundle: Bundle,
        *,
        width: int,
        height: int,
        quality: int | None = None,
        gop: int | None = None,
        nets: Networks | None = None,
        keyframes: str = "fixed",
        p_mode: str = "motion",
        inter: InterOptions = DEFAULT_INTER,
    ) -> None:
        if p_mode not in P_MODES:
            raise CodecError(f"--p-mode must be one of {', '.join(P_MODES)}, not {p_mode}")
        coding = bundle.meta.coding
        self.quality = coding.default_quality if quality is None else quality
        self.gop = coding.gop if gop is None else gop
        if not 1 <= self.gop < 1 << 16:
            raise CodecError(f"GOP must be from 1 to 65535, not {self.gop}")
        self.packer = LatentPacker(CodingTables.from_bundle(bundle), coding.latent_level(self.quality))
        kernels.warm()  # a live encode's first M-frame waits for no compiler
        self.refinement = coding.refinement(self.quality)
        self.step = self.packer.level.step
        self.prior = bundle.entropy()["prior"]
        self.keyframes = KeyframePolicy(keyframes, self.gop, self.prior, self.step)
        self.nets = nets or Networks(bundle, width, height)
        self.p_mode, self.inter = p_mode, inter
        self.reference: np.ndarray | None = None  # the previous reconstruction, for M-frames
        self.qp, self.lam = 0, 0.0  # the M-frames' residual QP and mode lambda, set by each I-frame

    def encode(self, frame: np.ndarray, index: int) -> CodedFrame:
        """Code ``frame`` (H,W,3 uint8) as frame ``index`` of the stream, with the check of its reconstruction."""
        if not self._inter_due(index):
            return self._settle(frame, index, None)
        inter = encode_inter(frame, self.reference, self.qp, self.inter)
        return self._settle(frame, index, self._inter(index, frame, inter))

    def encode_frames(self, frames: Iterable[np.ndarray]) -> Iterator[CodedFrame]:
        """What :meth:`encode` gives for each of ``frames`` in turn (frame 0 on), over two threads:
        an M-frame is packed (payload, error, check) on a thread of its own while this one searches
        the next frame from its reconstruction, on the guess that it pays; where it does not (it is
        coded intra after all) that search is dropped and made again. Errors come in order."""
        with ThreadPoolExecutor(1, "encode-pack") as packer:
            pending: tuple[int, np.ndarray, InterFrame, Future[CodedFrame]] | None = None
            for index, got in enumerate(_outcomes(frames)):
                guess = None
                if pending is not None and got.error is None and self._inter_due(index):  # due if pending pays
                    guess = _attempt(encode_inter, got.value, pending[2].reconstruction, self.qp, self.inter)
                if pending is not None:
                    coded = self._settle(pending[1], pending[0], pending[3].result())
                    yield coded
                    guess, pending = guess if coded.chunk.frame_type == M_FRAME else None, None
                frame = got.get()
                if not self._inter_due(index):
                    yield self._settle(frame, index, None)
                    continue
                inter = guess.get() if guess else encode_inter(frame, self.reference, self.qp, self.inter)
                pending = (index, frame, inter, packer.submit(self._inter, index, frame, inter))
            if pending is not None:
                yield self._settle(pending[1], pending[0], pending[3].result())

    def _inter_due(self, index: int) -> bool:
        """Whether frame ``index`` is tried as an M-frame first, as the stream stands."""
        return self.p_mode == "motion" and self.reference is not None and not self.keyframes.intra_due(index)

    @staticmethod
    def _inter(index: int, frame: np.ndarray, inter: InterFrame) -> CodedFrame:
        """``frame`` coded as the M-frame ``inter``: its payload packed, error and check measured."""
        error = mse(inter.reconstruction, frame)
        chunk = Chunk(index, M_FRAME, frame_check(inter.reconstruction), inter.payload)
        return CodedFrame(chunk, 8.0 * len(inter.payload), inter.reconstruction, error)

    def _settle(self, frame: np.ndarray, index: int, inter: CodedFrame | None) -> CodedFrame:
        """Frame ``index``: the M-frame ``inter`` if it pays, else (or without one) a latent frame;
        the stream's state moves past it."""
        if inter is not None and self.keyframes.inter_pays(len(inter.chunk.payload), inter.mse * frame.size, self.lam):
            self.reference = inter.reconstruction
            return inter
        coded = self._encode_latent(frame, index, None if self.p_mode == "latent" else I_FRAME)
        if coded.chunk.frame_type == I_FRAME:
            self.keyframes.intra_coded(index, len(coded.chunk.payload), coded.mse * frame.size)
            self.qp = residual_qp(psnr_from_mse(coded.mse), self.step)
            self.lam = mode_lambda(self.qp)
        self.reference = coded.reconstruction
        return coded

    def _encode_latent(self, frame: np.ndarray, index: int, frame_type: int | None) -> CodedFrame:
        """``frame`` coded as an I-frame or a latent P-frame: ``frame_type``, or the policy's choice."""
        previous = self.packer.previous
        q = np.rint(self.nets.analyse(frame[None])[0] / self.step).astype(np.int64)
        if frame_type is None:
            frame_type = self.keyframes.decide_frame_type(q, previous, index)
        reconstruction = self.nets.reconstruct(q, self.step)
        bits = float(estimate_bits(q, previous, frame_type, self.prior, self.step).sum())
        refined = b""
        if frame_type == I_FRAME and self.refinement:
            qp = refinement_qp(psnr(reconstruction, frame), self.step, self.refinement)
            refinement = refine(frame, reconstruction, qp)
            refined, reconstruction = refinement.encode(), refinement.apply(reconstruction)
            bits += 8 * len(refined)
        chunk = self.packer.pack(q, index, frame_type, frame_check(reconstruction), refined)
        return CodedFrame(chunk, bits, reconstruction, mse(reconstruction, frame))


def _outcomes(items: Iterable[Value]) -> Iterator[Outcome[Value]]:
    """Each of ``items`` as an :class:`Outcome`, then an error iterating them as the last one."""
    try:
        for item in items:
            yield Outcome(item)
    except Exception as exc:
        yield Outcome(error=exc)


def _attempt(work: Callable[..., Value], *args: object) -> Outcome[Value]:
    """``work(*args)`` as an :class:`Outcome`: its value, or the error it raised, kept for later."""
    try:
        return Outcome(work(*args))
    except Exception as exc:
        return Outcome(error=exc)


def encode_video(
    video: Path,
    bundle: Bundle,
    out: Path,
    *,
    quality: int | None = None,
    gop: int | None = None,
    force: bool = False,
    on_frame: Callable[[int, np.ndarray], None] = lambda i, f: None,
    keyframes: str = "fixed",
    p_mode: str = "motion",
) -> EncodeStats:
    """Encode ``video`` into ``out``; ``on_frame`` sees each reconstructed frame as the decoder will."""
    check_output(out, force)  # before the work; written through replacing_output at the end
    info = probe(video)
    bundle.check_frame_size(info.width, info.height, str(video))
    encoder = StreamEncoder(
        bundle,
        width=info.width,
        height=info.height,
        quality=quality,
        gop=gop,
        keyframes=keyframes,
        p_mode=p_mode,
    )
    # Checked before any frame is coded, so no decoder is handed a header it must refuse.
    fps = exact_rate(info.fps)
    header = Header(bundle.decoder_sha256, info.width, info.height, fps, 1, encoder.gop, encoder.quality)
    header.check(str(video))
    started = time.perf_counter()
    estimated = 0.0
    psnrs: list[float] = []
    i_frames = 0

    def chunks() -> Iterator[Chunk]:
        nonlocal estimated, i_frames
        frames = (frame for frame, _ in ahead(iter_frames(video), lambda frame: None, READ_AHEAD))
        for index, coded in enumerate(encoder.encode_frames(frames)):
            i_frames += coded.chunk.frame_type == I_FRAME
            estimated += coded.estimated_bits
            psnrs.append(psnr_from_mse(coded.mse))
            on_frame(index, coded.reconstruction)
            yield coded.chunk

    with replacing_output(out, force) as tmp, open(tmp, "wb") as f:
        size = write_stream(f, header, chunks())
    seconds = time.perf_counter() - started
    return EncodeStats(
        frames=len(psnrs),
        width=info.width,
        height=info.height,
        quality=encoder.quality,
        step=encoder.step,
        gop=encoder.gop,
        bytes=size,
        estimated_bits=estimated,
        psnr=float(np.mean(psnrs)),
        decoder_bytes=bundle.shipped_bytes,
        source_bytes=info.file_bytes,
        seconds=seconds,
        provider=encoder.nets.provider,
        i_frames=i_frames,
    )
