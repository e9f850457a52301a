"""The model bundle: a directory holding encoder.onnx, decoder.onnx, entropy.json, checkpoint.pt
and meta.json, which describes the rest and names the sha256 of every file.

Reading a bundle needs no torch; ``codec info`` and the decode side use only this module.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codec.errors import CodecError
from codec.io.colour import Colour
from codec.io.files import sha256_file
from codec.io.limits import MAX_SIDE

META_FILE = "meta.json"
ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"
ENTROPY_FILE = "entropy.json"
CHECKPOINT_FILE = "checkpoint.pt"
DECODING_FILES = (DECODER_FILE, ENTROPY_FILE)  # all that decoding reads besides meta.json
SHIPPED_FILES = (*DECODING_FILES, META_FILE)  # what a server sends a client to decode with
FORMAT = "aecodec-bundle"
FORMAT_VERSION = 1
STRIDES = (4, 8, 16, 32, 64)  # what codec.train.model builds: a power of two from its 4x4 stem to 64


def compressed_size(path: Path) -> int:
    """Bytes of ``path`` after xz (LZMA preset 9): what a client downloads for it."""
    return len(lzma.compress(path.read_bytes(), preset=9))


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


@dataclass(frozen=True)
class Bundle:
    """A model bundle on disk, its meta.json parsed and every listed file's sha256 checked."""

    path: Path
    meta: dict[str, Any]

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def decoder_sha256(self) -> str:
        """What a stream names: sha256 over the sha256 of decoder.onnx and of entropy.json, the
        two files a client needs to decode."""
        files = self.meta["files"]
        text = "\n".join(f"{n} {files[n]['sha256']}" for n in DECODING_FILES)
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def source_size(self) -> tuple[int, int]:
        """(width, height) of the video the model was made for: the largest frames it takes."""
        width, height = self.meta["source"]["size"]
        return int(width), int(height)

    @property
    def colour(self) -> Colour:
        """The colour of the video the model was made for (meta.json's source colour), which its
        streams are decoded to: decoded frames are converted to YUV outputs with it."""
        source = self.meta["source"]
        if "colour" not in source:  # written before bundles recorded it: what probe assumes for the size
            return Colour.for_size(*self.source_size)
        return Colour.from_dict(source["colour"], str(self.file(META_FILE)))

    def check_frame_size(self, width: int, height: int, source: str) -> None:
        """Refuse frames of no size or larger on either side than the video the model was made for
        (meta.json's source size): before any session or buffer is sized by what a peer claims."""
        model_width, model_height = self.source_size
        if width < 1 or height < 1:
            raise CodecError(f"{source}: frame size {width}x{height} is empty")
        if width > model_width or height > model_height:
            raise CodecError(
                f"{source}: frame size {width}x{height} exceeds the {model_width}x{model_height} "
                f"of the video model {self.path.name} was made for"
            )

    @property
    def default_step(self) -> float:
        """The quantization step of the bundle's default quality level."""
        coding = self.meta["coding"]
        return float(coding["quality_steps"][coding["default_quality"]])

    def entropy(self) -> dict[str, Any]:
        """The parsed entropy.json: the learned priors and the integer coding tables."""
        path = self.file(ENTROPY_FILE)
        try:
            return json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise CodecError(f"{path}: unreadable ({exc})") from None


def find_source(bundle: Bundle) -> Path | None:
    """The bundle's source video, inside its folder or beside it, if it is there."""
    name = bundle.meta["source"]["name"]
    for candidate in (bundle.path / name, bundle.path.parent / name):
        if candidate.is_file():
            return candidate
    return None


def _check_shapes(meta: dict[str, Any], meta_path: Path) -> None:
    """The numbers that size the decoder's buffers, checked before anything is sized by them:
    meta.json may come from a server, and a sha256 over the decoder does not cover it."""
    try:
        stride, channels = int(meta["model"]["stride"]), int(meta["model"]["latent_channels"])
        width, height = (int(v) for v in meta["source"]["size"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CodecError(f"{meta_path}: no model stride, latent channels or source size ({exc!r})") from None
    if stride not in STRIDES or not 1 <= channels < 3 * stride**2:
        raise CodecError(f"{meta_path}: model stride {stride} with {channels} latent channels is not a model")
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise CodecError(f"{meta_path}: source size {width}x{height} is not 1 to {MAX_SIDE} a side")


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
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CodecError(f"{meta_path}: unreadable ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CodecError(f"{meta_path}: not an aecodec bundle description")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CodecError(
            f"{meta_path}: bundle format version {meta.get('format_version')} is not supported "
            f"(this aecodec reads version {FORMAT_VERSION})"
        )
    _check_shapes(meta, meta_path)
    if verify:
        listed = meta.get("files")
        if not isinstance(listed, dict):
            raise CodecError(f"{meta_path}: lists no files")
        for name in listed if files is None else files:
            if Path(name).name != name or name in (".", ".."):
                raise CodecError(f"{meta_path}: lists {name[:64]!r}, which is not a file name inside the bundle")
            entry, file = listed.get(name), path / name
            if not isinstance(entry, dict) or not isinstance(entry.get("bytes"), int) or "sha256" not in entry:
                raise CodecError(f"{meta_path}: does not give the size and sha256 of {name}")
            if not file.is_file():
                raise CodecError(f"{path}: {name} is missing")
            if file.stat().st_size != entry["bytes"] or sha256_file(file) != entry["sha256"]:
                raise CodecError(f"{file}: sha256 differs from meta.json; the bundle is damaged or was edited")
    return Bundle(path=path, meta=meta)
