"""The bundle's networks through onnxruntime: uint8 RGB frames in, latents out, and back. No torch."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from pathlib import Path

import numpy as np
import onnxruntime as ort

from codec.coding import kernels
from codec.coding.common.decoder_weights import QuantizedTensor, decode_weights
from codec.cpus import thread_count
from codec.errors import CodecError
from codec.io.bundle import DECODER_FILE, DECODER_WEIGHTS_FILE, ENCODER_FILE, Bundle, read_file


def providers() -> list[str]:
    """CUDA when this onnxruntime build has it, the CPU always."""
    available = ort.get_available_providers()
    if "CUDAExecutionProvider" in available:
        _preload_cuda()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


@cache
def _preload_cuda() -> None:
    """Load CUDA and cuDNN from the nvidia-* wheels (``onnxruntime-gpu[cuda,cudnn]``, or a CUDA
    build of torch) so that onnxruntime-gpu finds them where the system has none."""
    if hasattr(ort, "preload_dlls"):
        ort.preload_dlls()


def active_provider(bundle: Bundle) -> str:
    """The provider onnxruntime really runs ``bundle``'s decoder on: CUDA can be built in yet fail to
    load its libraries, and then the CPU takes over."""
    return open_decoder(bundle).get_providers()[0]


def open_session(
    model: Path | Bundle,
    name: str = ENCODER_FILE,
    cpu_only: bool = False,
    initializers: Iterable[QuantizedTensor] = (),
    options: ort.SessionOptions | None = None,
) -> ort.InferenceSession:
    """A quiet onnxruntime session of the model file ``name`` of a bundle (the bytes it verified when
    it was loaded, so files replaced since do not matter) or of a folder (the file as it is now), on
    :func:`providers` (or the CPU alone with ``cpu_only``), its external tensors given by
    ``initializers`` (each turned into float32 weights as it comes), with onnxruntime's defaults but
    as many threads as this process may use CPUs (:func:`codec.cpus.thread_count`; onnxruntime alone
    takes the machine's cores, whatever its cgroup allows), unless ``options`` says
    otherwise; a file onnxruntime cannot load, or tensors that do not fit its graph, are a CodecError."""
    path, data = _read(model, name)
    if options is None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = thread_count()
    options.log_severity_level = 3
    try:
        names, values = [], []
        for t in initializers:
            names.append(t.name)
            values.append(ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(t.weights())))
        if names:
            options.add_external_initializers(names, values)
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"] if cpu_only else providers())
    except CodecError:
        raise
    except Exception as exc:  # onnxruntime raises its own exception types for a bad model file
        raise CodecError(f"{path}: onnxruntime cannot load it ({' '.join(str(exc).split())[:200]})") from None


def _read(model: Path | Bundle, name: str) -> tuple[Path, bytes]:
    """The path and bytes of file ``name`` of a bundle (as verified) or of a bundle folder (as it is now)."""
    if isinstance(model, Bundle):
        return model.file(name), model.read(name)
    return model / name, read_file(model / name)


def open_decoder(
    model: Path | Bundle, cpu_only: bool = False, options: ort.SessionOptions | None = None
) -> ort.InferenceSession:
    """The decoder of a bundle (or of the bundle folder ``model``): decoder.onnx's graph with the
    weights decoded from decoder.weights. Encoder and client both open it here, so both run the same
    float network."""
    path, data = _read(model, DECODER_WEIGHTS_FILE)
    return open_session(model, DECODER_FILE, cpu_only, decode_weights(data, str(path)), options)


def latent_size(height: int, width: int, stride: int) -> tuple[int, int]:
    """Rows and columns of the latent of a height x width frame: the frame padded up to a multiple of ``stride``."""
    return -(-height // stride), -(-width // stride)


def latent_shape(bundle: Bundle, width: int, height: int) -> tuple[int, int, int]:
    """(C, h, w) of the latent of a width x height frame under ``bundle``'s model."""
    model = bundle.meta.model
    return model.latent_channels, *latent_size(height, width, model.stride)


def to_frames(output: np.ndarray, height: int, width: int) -> np.ndarray:
    """The decoder's (N,3,H',W') output in [0,1] to (N,height,width,3) uint8 frames: cropped, rounded,
    then clipped to 0..255 (a kernel: :func:`codec.coding.kernels.reference.to_pixels`)."""
    return kernels.to_pixels(output, height, width)


class Sessions:
    """A bundle's onnxruntime sessions. Their inputs have dynamic sizes, so one pair serves frames
    of every size and every stream of the bundle; onnxruntime sessions may run in several threads."""

    def __init__(self, bundle: Bundle, need_encoder: bool = True) -> None:
        self.encoder = open_session(bundle) if need_encoder else None
        self.decoder = open_decoder(bundle)


class Networks:
    """A bundle's analysis (frames to latents, encoder.onnx) and synthesis (latents to frames,
    decoder.onnx) networks, for frames of one size.

    Frames are padded (edge replication) up to a multiple of the stride before analysis and the
    synthesised frames are cropped back, so any width and height work. ``sessions`` shares already
    opened sessions of the same bundle; without it they are opened here.
    """

    def __init__(
        self, bundle: Bundle, width: int, height: int, need_encoder: bool = True, sessions: Sessions | None = None
    ) -> None:
        self.stride = bundle.meta.model.stride
        self.width, self.height = width, height
        self.latent_shape = latent_shape(bundle, width, height)
        sessions = sessions or Sessions(bundle, need_encoder)
        self._analysis, self._synthesis = sessions.encoder, sessions.decoder

    @property
    def provider(self) -> str:
        return self._synthesis.get_providers()[0]

    def analyse(self, frames: np.ndarray) -> np.ndarray:
        """(N,H,W,3) uint8 frames to (N,C,h,w) float32 latents."""
        if self._analysis is None:
            raise CodecError("this runtime was opened for decoding only")
        _, h, w = self.latent_shape
        pad = ((0, 0), (0, h * self.stride - self.height), (0, w * self.stride - self.width), (0, 0))
        x = np.pad(frames, pad, mode="edge").transpose(0, 3, 1, 2).astype(np.float32) / 255
        return self._analysis.run(None, {"frames": x})[0]

    def synthesise(self, latents: np.ndarray) -> np.ndarray:
        """(N,C,h,w) float32 (quantized, times the step) to (N,H,W,3) uint8 frames of the frame size."""
        x = self._synthesis.run(None, {"latent": latents.astype(np.float32, copy=False)})[0]
        return to_frames(x, self.height, self.width)

    def reconstruct(self, q: np.ndarray, step: float) -> np.ndarray:
        """The (H,W,3) uint8 frame of the integer latent ``q`` (C,h,w) at quantization ``step``: what
        the decoder outputs, and what the encoder checksums into the frame's chunk. Both call this,
        so the two cannot compute it differently."""
        return self.synthesise((q * step).astype(np.float32)[None])[0]
