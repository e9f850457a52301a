"""The model bundle: a directory holding encoder.onnx, decoder.onnx, entropy.json, checkpoint.pt
and meta.json, which describes the rest and names the sha256 of every file.

Reading a bundle needs no torch; ``codec info`` and the decode side use only this module.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codec.errors import CodecError
from codec.io.colour import Colour
from codec.io.files import sha256_file
from codec.io.limits import MAX_SIDE

META_FILE = "meta.json"
ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"
DECODER_WEIGHTS_FILE = "decoder.weights"
ENTROPY_FILE = "entropy.json"
CHECKPOINT_FILE = "checkpoint.pt"
DECODING_FILES = (DECODER_FILE, DECODER_WEIGHTS_FILE, ENTROPY_FILE)  # all that decoding reads besides meta.json
HELD_FILES = (ENCODER_FILE, *DECODING_FILES)  # what coding reads: kept in memory as verified (a few MB)
SHIPPED_FILES = (*DECODING_FILES, META_FILE)  # what a server sends a client to decode with
FORMAT = "aecodec-bundle"
FORMAT_VERSION = 3
STRIDES = (4, 8, 16, 32, 64)  # what codec.train.model builds: a power of two from its 4x4 stem to 64


def read_file(path: Path) -> bytes:
    """The bytes of ``path``; a file that cannot be read is a CodecError."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CodecError(f"{path}: unreadable ({exc.strerror})") from None


def file_entry(path: Path) -> dict[str, Any]:
    return {"bytes": path.stat().st_size, "sha256": sha256_file(path)}


def check_model_dir(model_dir: Path, resume: bool, force: bool) -> None:
    """Make sure training may write into ``model_dir`` without losing anything unasked.

    Nothing is created here: the directory appears only when there is a bundle to write."""
    if model_dir.exists() and not model_dir.is_dir():
        raise CodecError(f"{model_dir}: exists and is not a directory")
    if resume:
        if not (model_dir / CHECKPOINT_FILE).is_file():
            raise CodecError(f"{model_dir}: --resume needs a checkpoint, and {CHECKPOINT_FILE} is not there")
        return
    if model_dir.exists() and any(model_dir.iterdir()) and not force:
        raise CodecError(f"{model_dir}: directory is not empty; use --resume to continue it or --force to replace it")


_SHA256 = re.compile(r"[0-9a-f]{64}")
_KINDS = {int: "an integer", float: "a finite number", str: "a string", list: "a list", dict: "an object"}


def _value(raw: Any, path: str, kind: type, where: str, default: Any = ...) -> Any:
    """meta.json's value at the dotted ``path``, which must be a ``kind`` (a key of _KINDS; an int
    does for a float, a bool for neither); ``default`` where it is absent, if one is given."""
    value = raw
    for key in path.split("."):
        if not isinstance(value, dict):
            raise CodecError(f"{where}: gives no {path}")
        if key not in value:
            if default is ...:
                raise CodecError(f"{where}: gives no {path}")
            return default
        value = value[key]
    kinds = (int, float) if kind is float else kind
    if isinstance(value, bool) or not isinstance(value, kinds) or (kind is float and not math.isfinite(value)):
        raise CodecError(f"{where}: {path} is not {_KINDS[kind]}")
    return float(value) if kind is float else value


def _count(raw: Any, path: str, where: str, low: int = 0) -> int:
    """An integer of at least ``low`` at ``path``."""
    value = _value(raw, path, int, where)
    if value < low:
        raise CodecError(f"{where}: {path} {value} is below {low}")
    return value


def _sha256(value: Any, what: str, where: str) -> str:
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise CodecError(f"{where}: the sha256 of {what} is not 64 lowercase hex digits")
    return value


def _file_name(value: Any, where: str) -> str:
    """A plain file name: nothing meta.json names may lead outside the folder it is looked for in."""
    if not isinstance(value, str) or Path(value).name != value or value in ("", ".", ".."):
        raise CodecError(f"{where}: names {str(value)[:64]!r}, which is not a file name inside the bundle")
    return value


@dataclass(frozen=True)
class SourceMeta:
    """The video a model was made for."""

    name: str  # its file name
    size: tuple[int, int]  # (width, height): the largest frames the model takes
    fps: float
    frames: int
    bytes: int
    sha256: str
    colour: Colour  # what its streams are decoded to; the size rule's if the bundle predates recording it
    path: Path | None  # the absolute path it was trained from; None if the bundle predates recording it

    @classmethod
    def parse(cls, raw: Any, where: str) -> SourceMeta:
        """meta.json's ``source``, checked."""
        size = _value(raw, "source.size", list, where)
        if len(size) != 2 or any(isinstance(v, bool) or not isinstance(v, int) for v in size):
            raise CodecError(f"{where}: source.size is not [width, height]")
        width, height = size
        if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
            raise CodecError(f"{where}: source size {width}x{height} is not 1 to {MAX_SIDE} a side")
        fps = _value(raw, "source.fps", float, where)
        if fps <= 0:
            raise CodecError(f"{where}: source fps {fps:g} is not positive")
        colour = _value(raw, "source.colour", dict, where, None)
        path = _value(raw, "source.path", str, where, None)
        if path is not None and not Path(path).is_absolute():
            raise CodecError(f"{where}: source.path {path[:64]!r} is not an absolute path")
        return cls(
            name=_file_name(_value(raw, "source.name", str, where), where),
            size=(width, height),
            fps=fps,
            frames=_count(raw, "source.frames", where, low=1),
            bytes=_count(raw, "source.bytes", where),
            sha256=_sha256(_value(raw, "source.sha256", str, where), "the source", where),
            colour=Colour.for_size(width, height) if colour is None else Colour.from_dict(colour, where),
            path=None if path is None else Path(path),
        )


@dataclass(frozen=True)
class ModelMeta:
    """The networks' shape and cost."""

    stride: int  # pixels per latent position, each way
    latent_channels: int
    decoder_params: int
    encoder_macs_per_pixel: float
    decoder_macs_per_pixel: float

    @classmethod
    def parse(cls, raw: Any, where: str) -> ModelMeta:
        """meta.json's ``model``, checked: its stride and channels size the decoder's buffers."""
        stride, channels = _value(raw, "model.stride", int, where), _value(raw, "model.latent_channels", int, where)
        if stride not in STRIDES or not 1 <= channels < 3 * stride**2:
            raise CodecError(f"{where}: model stride {stride} with {channels} latent channels is not a model")
        return cls(
            stride=stride,
            latent_channels=channels,
            decoder_params=_count(raw, "model.decoder_params", where),
            encoder_macs_per_pixel=_value(raw, "model.encoder_macs_per_pixel", float, where),
            decoder_macs_per_pixel=_value(raw, "model.decoder_macs_per_pixel", float, where),
        )


REFINED_LEVELS = 4  # quality levels above the latent ones: see CodingMeta


@dataclass(frozen=True)
class CodingMeta:
    """How streams are coded by default, and the quality levels: first one per latent step (0 the
    coarsest), then REFINED_LEVELS more that code the latent at the default level's step and refine
    each I-frame with an integer residual, finer at each level (codec.coding.common.intra_refinement)."""

    quality_steps: tuple[float, ...]  # the quantization step of each latent level
    default_quality: int
    gop: int

    @property
    def default_step(self) -> float:
        """The quantization step of the default quality level."""
        return self.quality_steps[self.default_quality]

    @property
    def levels(self) -> int:
        """How many quality levels a stream may be coded at."""
        return len(self.quality_steps) + REFINED_LEVELS

    def latent_level(self, level: int) -> int:
        """The latent level (an index of ``quality_steps``) quality ``level`` codes its latents at;
        a level the bundle does not have is a CodecError."""
        if not 0 <= level < self.levels:
            raise CodecError(f"quality {level} is not one of the bundle's levels 0..{self.levels - 1}")
        return level if level < len(self.quality_steps) else self.default_quality

    def refinement(self, level: int) -> int:
        """0 for a latent level, k for the k-th refined level (1 .. REFINED_LEVELS)."""
        return max(0, level - len(self.quality_steps) + 1)

    @classmethod
    def parse(cls, raw: Any, where: str) -> CodingMeta:
        """meta.json's ``coding``, checked."""
        steps = _value(raw, "coding.quality_steps", list, where)
        if not steps or any(
            isinstance(s, bool) or not isinstance(s, int | float) or not 0 < s < math.inf for s in steps
        ):
            raise CodecError(f"{where}: coding.quality_steps is not a list of positive numbers")
        default = _value(raw, "coding.default_quality", int, where)
        if not 0 <= default < len(steps):
            raise CodecError(f"{where}: coding.default_quality {default} is not one of the {len(steps)} levels")
        gop = _count(raw, "coding.gop", where, low=1)
        if gop >= 1 << 16:
            raise CodecError(f"{where}: coding.gop {gop} is above 65535")
        return cls(tuple(float(s) for s in steps), default, gop)


@dataclass(frozen=True)
class TrainingMeta:
    """How the model was trained: the figures reports quote."""

    device: str
    steps: int
    frames_seen: int  # the frames trained on (the rest of the source was held out)
    steps_per_s: float  # of the last run
    pixels_per_s: float  # of the last run
    precision: str | None  # the last run's arithmetic; None if the bundle predates recording it

    @classmethod
    def parse(cls, raw: Any, where: str) -> TrainingMeta:
        """meta.json's ``training``, checked."""
        return cls(
            device=_value(raw, "training.device", str, where),
            steps=_count(raw, "training.steps", where),
            frames_seen=_count(raw, "training.frames_seen", where),
            steps_per_s=_value(raw, "training.this_run.steps_per_s", float, where),
            pixels_per_s=_value(raw, "training.this_run.pixels_per_s", float, where),
            precision=_value(raw, "training.this_run.precision", str, where, None),
        )


@dataclass(frozen=True)
class FileMeta:
    """The size and sha256 meta.json gives for one bundle file."""

    bytes: int
    sha256: str


def _files(raw: Any, where: str) -> dict[str, FileMeta]:
    listed = _value(raw, "files", dict, where)
    files = {}
    for name, entry in listed.items():
        _file_name(name, where)
        if (
            not isinstance(entry, dict)
            or isinstance(entry.get("bytes"), bool)
            or not isinstance(entry.get("bytes"), int)
        ):
            raise CodecError(f"{where}: does not give the size and sha256 of {name}")
        files[name] = FileMeta(entry["bytes"], _sha256(entry.get("sha256"), name, where))
    for name in DECODING_FILES:
        if name not in files:
            raise CodecError(f"{where}: does not give the size and sha256 of {name}")
    return files


@dataclass(frozen=True)
class BundleMeta:
    """meta.json, parsed and checked: it may come from a server, and no sha256 covers it."""

    source: SourceMeta
    model: ModelMeta
    coding: CodingMeta
    training: TrainingMeta
    files: dict[str, FileMeta]  # every bundle file but meta.json, by name

    @classmethod
    def parse(cls, raw: Any, where: str) -> BundleMeta:
        """The parsed meta.json ``raw``; anything missing or out of range is a CodecError naming ``where``."""
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise CodecError(f"{where}: not an aecodec bundle description")
        if raw.get("format_version") != FORMAT_VERSION:
            raise CodecError(
                f"{where}: bundle format version {str(raw.get('format_version'))[:16]} is not supported "
                f"(this aecodec reads version {FORMAT_VERSION})"
            )
        return cls(
            source=SourceMeta.parse(raw, where),
            model=ModelMeta.parse(raw, where),
            coding=CodingMeta.parse(raw, where),
            training=TrainingMeta.parse(raw, where),
            files=_files(raw, where),
        )


@dataclass(frozen=True)
class Bundle:
    """A model bundle on disk, its meta.json parsed and every listed file's sha256 checked.

    The coding files (HELD_FILES) that were verified are kept as the bytes that were hashed, and
    everything that codes, decodes or serves reads them through :meth:`read`: a file replaced on disk
    afterwards (a retrained model copied over a served one) is never mixed with the rest."""

    path: Path
    meta: BundleMeta
    raw: dict[str, Any]  # meta.json as read: only for printing all of it (codec info)
    meta_bytes: int  # meta.json's size as read
    contents: dict[str, bytes] = field(default_factory=dict)  # verified bytes of the HELD_FILES checked

    def file(self, name: str) -> Path:
        return self.path / name

    def read(self, name: str) -> bytes:
        """The bytes of the bundle file ``name``: as verified when the bundle was loaded, else as on disk now."""
        held = self.contents.get(name)
        return held if held is not None else read_file(self.file(name))

    @property
    def decoder_sha256(self) -> str:
        """What a stream names: sha256 over the sha256 of decoder.onnx, decoder.weights and
        entropy.json, the files a client needs to decode."""
        text = "\n".join(f"{n} {self.meta.files[n].sha256}" for n in DECODING_FILES)
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def shipped_bytes(self) -> int:
        """What a client downloads to decode this bundle's streams: the decoding files and meta.json
        (as stored here; the server sends it a few bytes shorter, without the source's path)."""
        return sum(self.meta.files[n].bytes for n in DECODING_FILES) + self.meta_bytes

    def check_frame_size(self, width: int, height: int, source: str) -> None:
        """Refuse frames of no size or larger on either side than the video the model was made for
        (meta.json's source size): before any session or buffer is sized by what a peer claims."""
        model_width, model_height = self.meta.source.size
        if width < 1 or height < 1:
            raise CodecError(f"{source}: frame size {width}x{height} is empty")
        if width > model_width or height > model_height:
            raise CodecError(
                f"{source}: frame size {width}x{height} exceeds the {model_width}x{model_height} "
                f"of the video model {self.path.name} was made for"
            )

    def entropy(self) -> dict[str, Any]:
        """The parsed entropy.json: the learned priors and the integer coding tables."""
        try:
            return json.loads(self.read(ENTROPY_FILE))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise CodecError(f"{self.file(ENTROPY_FILE)}: unreadable ({exc})") from None


def find_source(bundle: Bundle) -> Path | None:
    """The bundle's source video: the file of its name inside the bundle's folder or beside it, else
    the file it was trained from (meta.json's source path) if that still has its size and sha256.

    A file found by name is taken as it is (a server looks up every source at start-up, and hashing
    large videos there would be slow); the recorded path is hashed, and only when its size is right."""
    source = bundle.meta.source
    for candidate in (bundle.path / source.name, bundle.path.parent / source.name):
        if candidate.is_file():
            return candidate
    try:
        if source.path is not None and source.path.is_file() and source.path.stat().st_size == source.bytes:
            return source.path if sha256_file(source.path) == source.sha256 else None
    except OSError:  # there but unreadable: not a source this process can use
        pass
    return None


def load_bundle(model_dir: str | os.PathLike, verify: bool = True, files: tuple[str, ...] | None = None) -> Bundle:
    """Read ``model_dir``'s meta.json; with ``verify``, check the size and sha256 of each of
    ``files`` (default: every file meta.json lists) against it."""
    path = Path(model_dir)
    meta_path = path / META_FILE
    if not path.is_dir():
        raise CodecError(f"{path}: no such model directory")
    if not meta_path.is_file():
        raise CodecError(f"{path}: not a model bundle ({META_FILE} is missing)")
    try:
        text = meta_path.read_text()
        raw = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CodecError(f"{meta_path}: unreadable ({exc})") from None
    meta = BundleMeta.parse(raw, str(meta_path))
    contents: dict[str, bytes] = {}
    if verify:
        for name in meta.files if files is None else files:
            entry, file = meta.files.get(name), path / name
            if entry is None:
                raise CodecError(f"{meta_path}: does not give the size and sha256 of {name}")
            if not file.is_file():
                raise CodecError(f"{path}: {name} is missing")
            if file.stat().st_size != entry.bytes:
                raise CodecError(f"{file}: size differs from meta.json; the bundle is damaged or was edited")
            if name in HELD_FILES:
                contents[name] = read_file(file)
                digest = hashlib.sha256(contents[name]).hexdigest()
            else:
                digest = sha256_file(file)
            if digest != entry.sha256:
                raise CodecError(f"{file}: sha256 differs from meta.json; the bundle is damaged or was edited")
    return Bundle(path=path, meta=meta, raw=raw, meta_bytes=len(text.encode()), contents=contents)
