"""Video input through PyAV: any container, codec and pixel format FFmpeg decodes, as RGB24 frames.

Every failure (missing file, not a video, no video stream, truncated or corrupt data) is raised
as a :class:`~codec.errors.CodecError` whose message names the file and the reason.
"""

from __future__ import annotations

import bisect
import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from codec.errors import CodecError
from codec.io.colour import Colour, frame_to_rgb, rgb_to_frame
from codec.io.limits import MAX_FPS_DENOMINATOR

DEFAULT_FPS = 25.0


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about its first video stream, before decoding."""

    path: Path
    width: int
    height: int
    fps: float
    declared_frames: int  # 0 where the container does not say
    codec: str
    pixel_format: str
    file_bytes: int
    colour: Colour  # what its frames are converted to RGB with (see Colour.of_stream)


class DecodedVideo:
    """What any holder of a video's decoded frames says of it: its file name and frame size, from the
    ``info`` its stream was described with (a :class:`Clip` in memory, a frame store on disk)."""

    info: VideoInfo

    @property
    def name(self) -> str:
        return self.info.path.name

    @property
    def width(self) -> int:
        return self.info.width

    @property
    def height(self) -> int:
        return self.info.height


@dataclass
class Clip(DecodedVideo):
    """A decoded video held as RGB24 frames, one ``H x W x 3`` uint8 array each, and no other copy."""

    info: VideoInfo
    frames: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.frames)


def _check_path(path: Path) -> None:
    if not path.exists():
        raise CodecError(f"{path}: no such file")
    if path.is_dir():
        raise CodecError(f"{path}: is a directory, not a video file")
    if not os.access(path, os.R_OK):
        raise CodecError(f"{path}: permission denied")
    if path.stat().st_size == 0:
        raise CodecError(f"{path}: empty file, not a video")


def _open(path: Path) -> av.container.InputContainer:
    _check_path(path)
    try:
        return av.open(str(path), mode="r")
    except av.FFmpegError as exc:
        raise CodecError(f"{path}: not a readable video, or truncated ({_reason(exc)})") from None


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split()) or type(exc).__name__


def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    raise CodecError(f"{path}: has no video stream")


def _fps(stream: av.video.stream.VideoStream) -> float:
    rate: Fraction | None = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else DEFAULT_FPS


def exact_rate(fps: float) -> Fraction:
    """``fps`` as the rational frame rate written to streams and .aec headers (30000/1001, not 29.97...)."""
    return Fraction(fps).limit_denominator(MAX_FPS_DENOMINATOR)


def probe(path: str | os.PathLike) -> VideoInfo:
    """Read the header of ``path`` and describe its first video stream (nothing is decoded)."""
    path = Path(path)
    with _open(path) as container:
        return _describe(container, path)


def _describe(container: av.container.InputContainer, path: Path) -> VideoInfo:
    stream = _video_stream(container, path)
    ctx = stream.codec_context
    if not ctx.width or not ctx.height:
        raise CodecError(f"{path}: video stream has no frame size")
    return VideoInfo(
        path=path,
        width=ctx.width,
        height=ctx.height,
        fps=_fps(stream),
        declared_frames=int(stream.frames or 0),
        codec=ctx.name,
        pixel_format=ctx.format.name if ctx.format else "unknown",
        file_bytes=path.stat().st_size,
        colour=Colour.of_stream(ctx, str(path)),
    )


def iter_frames(path: str | os.PathLike, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Yield the frames of ``path`` as ``H x W x 3`` uint8 RGB arrays, in display order, converted
    with the colour :func:`probe` reports for it.

    Raises CodecError when the file cannot be decoded, yields no frame, or ends before the frame
    count its container declares (a truncated file).
    """
    yield from _from_start(Path(path), 0, max_frames)


def iter_frames_from(
    path: str | os.PathLike,
    start: int,
    end: int,
    active: Callable[[], bool] = lambda: True,
    frames: int | None = None,
) -> Iterator[np.ndarray]:
    """Yield frames ``[start, end)`` of ``path``: the frames ``islice(iter_frames(path,
    max_frames=end), start, None)`` yields, with the same CodecErrors for what it decodes, but
    without converting the frames before ``start`` to RGB, nor decoding those before the last
    keyframe at or before ``start``.

    To seek, it demuxes (without decoding) the stream's packets into an index, kept for the last few
    files read: a frame's display position is its pts's rank among the packets'. The index is used
    only if every packet has a pts, no two the same, and there are as many packets as the video has
    frames: ``frames`` (what an earlier full decode counted) or else the count its container
    declares; with neither it is not used. Each frame decoded after the seek is identified by its
    pts. A frame whose pts is not in the index, that is out of sequence, or that comes after
    ``start`` when ``start`` has not come, makes it decode again from the video's first frame,
    yielding from the first frame not yet yielded.

    ``active()`` is called before each decoded frame is used, skipped ones too; once it is false
    this returns, so a cancelled caller costs at most one more frame's decode.
    """
    if start < 0:
        raise ValueError(f"start {start} is negative")
    path = Path(path)
    wanted = start
    with _open(path) as container:
        info = _describe(container, path)
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        index = _packet_index(path, frames or info.declared_frames) if 0 < start < end else None
        key = _seek(container, stream, index, start) if index is not None else None
        if index is not None and key is not None:
            previous: int | None = None
            for frame in _decode(container, stream, info, first=key):
                if not active():
                    return
                position = index.positions.get(frame.pts)
                if position is None or position > wanted or previous not in (None, position - 1):
                    break
                previous = position
                if position == wanted:
                    yield _rgb(frame, info, position)
                    wanted += 1
                    if wanted == end:
                        return
            else:  # the stream ended, every frame since the keyframe in its place
                if previous == len(index.pts) - 1:
                    _check_count(info, len(index.pts))
                    return
    yield from _from_start(path, wanted, end, active)


def _from_start(
    path: Path, start: int, end: int | None, active: Callable[[], bool] = lambda: True
) -> Iterator[np.ndarray]:
    """Frames ``[start, end)`` of ``path`` (to its last where ``end`` is None), decoding it from its
    first frame and converting only those to RGB; returns as soon as ``active()`` is false."""
    with _open(path) as container:
        info = _describe(container, path)
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        count = 0
        for count, frame in enumerate(_decode(container, stream, info), 1):
            if not active():
                return
            if count > start:
                yield _rgb(frame, info, count - 1)
            if end is not None and count >= end:
                return
        _check_count(info, count)


def _check_count(info: VideoInfo, count: int) -> None:
    """Raise CodecError where a video that ended after ``count`` frames is truncated or corrupt."""
    if count == 0:
        raise CodecError(f"{info.path}: no frame could be decoded (truncated or corrupt)")
    if info.declared_frames and count < info.declared_frames:
        raise CodecError(
            f"{info.path}: truncated: decoded {count} of the {info.declared_frames} frames its container declares"
        )


def _decode(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, info: VideoInfo, first: int = 0
) -> Iterator[av.VideoFrame]:
    """The decoded frames of ``stream``, from where ``container`` stands (frame ``first``), each
    checked to be of the stream's size; decoding errors are CodecErrors naming the frame."""
    count = first
    try:
        for frame in container.decode(stream):
            if (frame.width, frame.height) != (info.width, info.height):
                raise CodecError(
                    f"{info.path}: frame {count} is {frame.width}x{frame.height}, the stream is "
                    f"{info.width}x{info.height}; size changes mid-stream are not supported"
                )
            yield frame
            count += 1
    except MemoryError:  # FFmpeg's ENOMEM too: the machine's limit, not the file's fault
        raise CodecError(f"{info.path}: out of memory decoding frame {count}") from None
    except av.FFmpegError as exc:
        raise CodecError(f"{info.path}: corrupt or truncated at frame {count} ({_reason(exc)})") from None


def _rgb(frame: av.VideoFrame, info: VideoInfo, number: int) -> np.ndarray:
    """Frame ``number`` of the video ``info`` describes, converted to RGB (see frame_to_rgb)."""
    try:
        return frame_to_rgb(frame, info.colour)
    except MemoryError:
        raise CodecError(f"{info.path}: out of memory decoding frame {number}") from None
    except av.FFmpegError as exc:
        raise CodecError(f"{info.path}: corrupt or truncated at frame {number} ({_reason(exc)})") from None


@dataclass(frozen=True)
class _PacketIndex:
    """A video stream's packets in display order: their pts (display position -> pts), the
    reverse, and the display positions of the keyframes, ascending."""

    pts: list[int]
    positions: dict[int, int]
    keyframes: list[int]


def _packet_index(path: Path, frames: int) -> _PacketIndex | None:
    """The packet index of ``path``'s video stream if it has ``frames`` packets, each with its own
    pts and none flagged corrupt or to be discarded; else None (it is not to be trusted)."""
    stat = path.stat()
    index = _read_packet_index(path, stat.st_size, stat.st_mtime_ns)
    return index if index is not None and len(index.pts) == frames else None


@functools.lru_cache(maxsize=8)
def _read_packet_index(path: Path, size: int, mtime_ns: int) -> _PacketIndex | None:
    """Demux (not decode) every packet of ``path``'s video stream; ``size`` and ``mtime_ns`` key
    the cache, so that a rewritten file is read again."""
    packets = []
    try:
        with av.open(str(path), mode="r") as container:
            for packet in container.demux(_video_stream(container, path)):
                if packet.size:  # not the empty packet that ends the demuxing
                    if packet.pts is None or packet.is_corrupt or packet.is_discard:
                        return None
                    packets.append((packet.pts, packet.is_keyframe))
    except (av.FFmpegError, CodecError):
        return None
    pts = sorted(p for p, _ in packets)
    positions = {p: i for i, p in enumerate(pts)}
    if len(positions) < len(pts):
        return None
    return _PacketIndex(pts, positions, sorted(positions[p] for p, key in packets if key))


def _seek(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, index: _PacketIndex, start: int
) -> int | None:
    """Seek ``container`` to the last keyframe at or before display position ``start``; its
    position, or None where there is no such keyframe or the seek fails."""
    found = bisect.bisect_right(index.keyframes, start)
    if found == 0:
        return None
    key = index.keyframes[found - 1]
    try:
        container.seek(index.pts[key], stream=stream, backward=True, any_frame=False)
    except av.FFmpegError:
        return None
    return key


def read_clip(path: str | os.PathLike, max_frames: int | None = None) -> Clip:
    """Decode ``path`` (or its first ``max_frames`` frames) into memory as a :class:`Clip`."""
    info = probe(path)
    return Clip(info=info, frames=list(iter_frames(path, max_frames)))


def write_png(path: Path, image: np.ndarray) -> None:
    """Write one (H,W,3) uint8 RGB image as a lossless PNG."""
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    with av.open(str(path), mode="w", format="image2", options={"update": "1"}) as out:
        stream = out.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = image.shape[1], image.shape[0], "rgb24"
        out.mux(stream.encode(frame))
        out.mux(stream.encode())


OUTPUT_KINDS = {".mp4": "H.264 mp4", ".mkv": "lossless FFV1 mkv", ".y4m": "raw YUV 4:4:4 y4m", "": "PNG folder"}


class VideoWriter:
    """Writes RGB24 frames to ``.mp4`` (H.264, CRF 12), ``.mkv`` (lossless FFV1 RGB), ``.y4m``
    (raw YUV 4:4:4) or, for a path without a suffix, a folder of lossless PNGs.

    YUV outputs are converted with ``colour``'s matrix and range. The stream is tagged with
    ``colour`` (see :meth:`~codec.io.colour.Colour.tag`) as far as the format holds it: mp4 keeps all
    four; mkv, being RGB, its primaries and transfer; y4m only the range, so a reader guesses its
    matrix from the frame size. PNGs are left untagged."""

    def __init__(self, path: Path, width: int, height: int, fps: Fraction, colour: Colour) -> None:
        suffix = path.suffix.lower()
        if suffix not in OUTPUT_KINDS:
            raise CodecError(f"{path}: output must end in .mp4, .mkv or .y4m, or have no suffix for a PNG folder")
        self.path = path
        if suffix == "":
            path.mkdir()
            target, fmt = str(path / "frame_%06d.png"), "image2"
            codec, pix_fmt, options = "png", "rgb24", {}
        else:
            target, fmt = str(path), None
            codec, pix_fmt, options = {
                ".mp4": ("libx264", "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p", {"crf": "12"}),
                ".mkv": ("ffv1", "bgr0", {}),
                ".y4m": ("rawvideo", "yuv444p", {}),
            }[suffix]
        self.container = av.open(target, mode="w", format=fmt)
        self.stream = self.container.add_stream(codec, rate=fps, options=options)
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, pix_fmt
        if suffix:
            colour.tag(self.stream.codec_context)
        self.colour = colour
        self.count = 0

    def write(self, frame: np.ndarray) -> None:
        video_frame = rgb_to_frame(frame, self.stream.pix_fmt, self.colour)
        video_frame.pts = self.count
        self.count += 1
        self.container.mux(self.stream.encode(video_frame))

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        try:
            if exc_type is None:
                self.container.mux(self.stream.encode())  # flush the encoder's delayed frames
        finally:
            self.container.close()


def codes_as_yuv420p(info: VideoInfo) -> bool:
    """Whether the stream ``info`` describes is 8-bit yuv420p of an even size (what the standard
    codecs encode), so that they can be fed its own planes."""
    return info.pixel_format == "yuv420p" and info.width % 2 == 0 and info.height % 2 == 0


def iter_source_yuv420p(path: str | os.PathLike) -> Iterator[av.VideoFrame]:
    """The frames of the yuv420p video ``path`` (see :func:`codes_as_yuv420p`) as its decoder gives
    them, one at a time. Each is a fresh frame holding only the planes (an encoder would obey a
    decoded frame's picture type); their colour is the source's, from probe. A frame in another
    format or size is a CodecError."""
    path = Path(path)
    count = 0
    with _open(path) as container:
        stream = _video_stream(container, path)
        try:
            for decoded in container.decode(stream):
                if decoded.format.name != "yuv420p" or decoded.width % 2 or decoded.height % 2:
                    raise CodecError(f"{path}: frame {count} is not yuv420p of an even size like the stream's first")
                yield av.VideoFrame.from_ndarray(decoded.to_ndarray(), format="yuv420p")
                count += 1
        except av.FFmpegError as exc:
            raise CodecError(f"{path}: corrupt or truncated at frame {count} ({_reason(exc)})") from None
