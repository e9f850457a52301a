"""The VideoCodec servicer: translates gRPC messages to and from calls of the codec library."""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from aecodec.server.catalog import Entry, decoder_pieces
from aecodec.server.limits import Reaper, Slots, Watch
from aecodec.server.stored import Stream, StreamStore
from aecodec.server.streaming import check_quality, check_range, paced, served_chunks
from aecodec.v1 import codec_pb2, codec_pb2_grpc
from codec.coding.common.bitstream import Chunk
from codec.coding.common.runtime import Networks, Sessions
from codec.coding.encoder.encode import StreamEncoder
from codec.errors import CodecError
from codec.net import RETRY_AFTER_KEY

log = logging.getLogger("aecodec.server")
CANCEL_NOTICE_S = 0.2  # how long a live Encode whose input ended waits to learn whether it was cancelled
SHOWN_NAME = 64  # characters of a requested name echoed back in an error
PREPARING_WAIT_S = 5.0  # how long a request waits for a level being encoded before it is told to come back


@contextmanager
def _invalid_argument(context: grpc.ServicerContext) -> Iterator[None]:
    """A CodecError raised while checking a request becomes INVALID_ARGUMENT with its message."""
    try:
        yield
    except CodecError as exc:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))


def _message(chunk: Chunk, fps: float) -> codec_pb2.EncodedFrame:
    return codec_pb2.EncodedFrame(
        index=chunk.index,
        type=chunk.frame_type,
        payload=chunk.payload,
        crc32=chunk.crc32,
        pts=chunk.index / fps,
        check=chunk.check,
    )


class VideoCodecServicer(codec_pb2_grpc.VideoCodecServicer):
    """Serves the videos of a catalog from the streams stored under ``cache`` (encoded there once,
    at most ``encoders`` at a time); encoding runs on onnxruntime, never torch."""

    def __init__(
        self,
        catalog: dict[str, Entry],
        max_streams: int,
        cache: Path,
        pace: bool = False,
        stall_timeout: float = 30.0,
        encoders: int = 1,
        per_peer: int | None = None,
        stream_key: bytes | None = None,
    ) -> None:
        self.catalog = catalog
        self.sessions: dict[str, Sessions] = {}  # one pair per catalogued bundle, whatever the frame size
        self.sessions_lock = threading.Lock()
        self.store = StreamStore(cache, self._source_networks, encoders, stream_key)
        self.pace = pace
        self.stall_timeout = stall_timeout
        self.reaper = Reaper()
        # Decoder downloads count as streams.
        self.streams = Slots(max_streams, "streams", self.reaper, stall_timeout, per_peer)
        self.changed: set[str] = set()  # videos whose bundle changed on disk, logged once each

    def _entry(self, name: str, context: grpc.ServicerContext) -> Entry:
        entry = self.catalog.get(name)
        if entry is None:
            shown = name if len(name) <= SHOWN_NAME else f"{name[:SHOWN_NAME]}... ({len(name)} characters)"
            context.abort(grpc.StatusCode.NOT_FOUND, f"no video named {shown!r}")
        if entry.name not in self.changed and entry.changed_on_disk():
            self.changed.add(entry.name)
            record = {
                "event": "bundle_changed",
                "video": entry.name,
                "path": str(entry.bundle.path),
                "serving": entry.bundle.decoder_sha256,
                "action": "still serving the files verified at start; restart the server to serve the new ones",
            }
            log.warning(json.dumps(record))
        return entry

    def _networks(self, entry: Entry, width: int, height: int) -> Networks:
        """The entry's networks for frames of this size, on sessions shared by all its streams."""
        with self.sessions_lock:
            if entry.name not in self.sessions:
                self.sessions[entry.name] = Sessions(entry.bundle)
            sessions = self.sessions[entry.name]
        return Networks(entry.bundle, width, height, sessions=sessions)

    def _source_networks(self, entry: Entry) -> Networks:
        """The entry's networks for frames of its source's size: what its stored streams are encoded with."""
        return self._networks(entry, entry.info.width, entry.info.height)

    def ready(self) -> bool:
        """Whether a new stream would be served now: a slot free (or held by a stalled call) and
        the stream store not stuck."""
        return self.streams.can_take() and self.store.responsive(1.0)

    def ListVideos(self, request: Any, context: grpc.ServicerContext) -> codec_pb2.ListVideosResponse:
        videos = [
            codec_pb2.Video(
                name=e.name,
                width=e.info.width,
                height=e.info.height,
                fps=e.info.fps,
                frames=e.frames,
                quality_levels=e.quality_levels,
                default_quality=e.bundle.meta.coding.default_quality,
                gop=e.bundle.meta.coding.gop,
                bundle_sha256=e.bundle.decoder_sha256,
                source_bytes=e.info.file_bytes,
                ladder=[codec_pb2.Rung(quality=r.quality, bytes=r.bytes, psnr=r.psnr) for r in self.store.rungs(e)],
            )
            for e in self.catalog.values()
        ]
        return codec_pb2.ListVideosResponse(videos=videos)

    def GetDecoder(self, request: Any, context: grpc.ServicerContext) -> Iterator[codec_pb2.DecoderChunk]:
        entry = self._entry(request.name, context)
        with self.streams.hold(context) as watch:
            for piece in decoder_pieces(entry.bundle):
                yield codec_pb2.DecoderChunk(
                    file=piece.file, size=piece.size, sha256=piece.sha256, offset=piece.offset, data=piece.data
                )
                watch.touch()

    def StreamVideo(self, request: Any, context: grpc.ServicerContext) -> Iterator[codec_pb2.EncodedFrame]:
        entry = self._entry(request.name, context)
        quality = request.quality if request.HasField("quality") else None
        with _invalid_argument(context):
            start, end = check_range(entry, request.start_frame, request.end_frame, quality)
        level = entry.bundle.meta.coding.default_quality if quality is None else quality
        with self.streams.hold(context) as watch, _StreamLog(context, entry.name) as record:
            working = _working(watch, context)
            stream = self.store.get(entry, level)
            try:
                _wait_until_prepared(stream, start, level, working, context)
                nets = functools.partial(self.store.nets, entry)  # called only if the request encodes
                chunks = served_chunks(entry, stream, start, end, nets, request.from_keyframe, working)
                if self.pace:
                    chunks = paced(chunks, entry.info.fps, working)
                for chunk in chunks:
                    record.add(chunk)
                    yield _message(chunk, entry.info.fps)
                    watch.touch()
            except CodecError as exc:  # the stream's encode failed: the server's fault, said in one line
                context.abort(grpc.StatusCode.INTERNAL, str(exc))

    def Encode(
        self, request_iterator: Iterator[Any], context: grpc.ServicerContext
    ) -> Iterator[codec_pb2.EncodedFrame]:
        # The slot is taken before waiting on the client, and the reaper ends a call whose client
        # sends nothing (not even its first frame) for the stall timeout.
        with self.streams.hold(context) as watch:
            first = next(request_iterator, None)
            if first is None:
                return
            watch.touch()
            entry = self._entry(first.name, context)
            width, height = first.width, first.height
            quality = first.quality if first.HasField("quality") else None
            with _invalid_argument(context):
                check_quality(entry, quality)
                entry.bundle.check_frame_size(width, height, entry.name)
                encoder = StreamEncoder(
                    entry.bundle,
                    width=width,
                    height=height,
                    quality=quality,
                    gop=first.gop or None,
                    nets=self._networks(entry, width, height),
                )
            terminated = threading.Event()
            context.add_callback(terminated.set)
            with _StreamLog(context, entry.name) as record:
                for index, message in enumerate(_chain(first, request_iterator)):
                    watch.touch()
                    if not context.is_active():
                        break
                    if (message.width, message.height) != (width, height) or len(message.rgb24) != width * height * 3:
                        context.abort(
                            grpc.StatusCode.INVALID_ARGUMENT,
                            f"frame {index}: expected {width}x{height} RGB24 ({width * height * 3} bytes), "
                            f"got {message.width}x{message.height} with {len(message.rgb24)} bytes",
                        )
                    frame = np.frombuffer(message.rgb24, np.uint8).reshape(height, width, 3)
                    chunk = encoder.encode(frame, index).chunk
                    record.add(chunk)
                    yield _message(chunk, entry.info.fps)
                    watch.touch()
                else:
                    # The input ended: the client half-closed, or it cancelled and grpc ended the
                    # request stream a moment before marking the call cancelled. Only a cancelled call
                    # ends before this handler returns, so a short wait tells the two apart for the log.
                    terminated.wait(CANCEL_NOTICE_S)


def _working(watch: Watch, context: grpc.ServicerContext) -> Callable[[], bool]:
    """``context.is_active`` for the server's own waits (an encode, a decode, pacing), touching the
    call's watch as it goes: a call the server keeps waiting is not stalled."""

    def active() -> bool:
        watch.touch()
        return context.is_active()

    return active


def _wait_until_prepared(
    stream: Stream, index: int, level: int, active: Callable[[], bool], context: grpc.ServicerContext
) -> None:
    """Return once frame ``index`` of ``stream`` is there (or the stream is complete); if its encode
    leaves it missing after PREPARING_WAIT_S, end the call with UNAVAILABLE, saying when to ask
    again (in words and in the RETRY_AFTER_KEY trailer), rather than keep the client waiting."""
    deadline = time.monotonic() + PREPARING_WAIT_S
    if stream.chunk(index, lambda: active() and time.monotonic() < deadline) is not None or stream.complete:
        return
    if not context.is_active():
        return
    seconds = stream.eta(index)
    context.set_trailing_metadata(((RETRY_AFTER_KEY, str(round(seconds * 1000))),))
    context.abort(grpc.StatusCode.UNAVAILABLE, f"level {level} is being prepared, retry in {seconds:.0f} s")


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


class _StreamLog:
    """Structured log lines: one when a stream starts (peer, video), one when it ends (peer, video,
    frames, bytes, duration, outcome)."""

    def __init__(self, context: grpc.ServicerContext, video: str) -> None:
        self.context, self.video = context, video
        self.frames = self.bytes = 0
        self.started = time.perf_counter()

    def __enter__(self) -> _StreamLog:
        log.info(json.dumps({"event": "stream_start", "peer": self.context.peer(), "video": self.video}))
        return self

    def add(self, chunk: Chunk) -> None:
        self.frames += 1
        self.bytes += len(chunk.payload)

    def __exit__(self, exc_type: Any, exc: Any, _tb: Any) -> None:
        if not self.context.is_active() or exc_type is GeneratorExit:
            outcome = "cancelled"
        else:
            outcome = "ok" if exc_type is None else "error"
        record = {
            "event": "stream",
            "peer": self.context.peer(),
            "video": self.video,
            "frames": self.frames,
            "bytes": self.bytes,
            "duration_s": round(time.perf_counter() - self.started, 3),
            "outcome": outcome,
        }
        log.info(json.dumps(record))
