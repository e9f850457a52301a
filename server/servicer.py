"""The VideoCodec servicer: translates gRPC messages to and from calls of the codec library."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import numpy as np

from aecodec.v1 import codec_pb2, codec_pb2_grpc
from codec.catalog import Entry, decoder_pieces
from codec.encode import EncodedFrame, VideoEncoder
from codec.errors import CodecError
from codec.runtime import Networks
from codec.streaming import check_quality, check_range, stream_frames

log = logging.getLogger("aecodec.server")
CANCEL_NOTICE_S = 0.2  # how long a live Encode whose input ended waits to learn whether it was cancelled


class StreamLimit:
    """At most ``limit`` streams at once; one more is refused rather than queued."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self.lock = threading.Lock()

    @contextmanager
    def slot(self, context: grpc.ServicerContext) -> Iterator[None]:
        with self.lock:
            if self.active >= self.limit:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"server is at its limit of {self.limit} streams")
            self.active += 1
        try:
            yield
        finally:
            with self.lock:
                self.active -= 1


def _message(coded: EncodedFrame, fps: float) -> codec_pb2.EncodedFrame:
    chunk = coded.chunk
    return codec_pb2.EncodedFrame(
        index=chunk.index, type=chunk.frame_type, payload=chunk.payload, crc32=chunk.crc32, pts=chunk.index / fps
    )


class VideoCodecServicer(codec_pb2_grpc.VideoCodecServicer):
    """Serves the videos of a catalog; encoding runs on onnxruntime, never torch."""

    def __init__(self, catalog: dict[str, Entry], max_streams: int, pace: bool = False) -> None:
        self.catalog = catalog
        self.pace = pace
        self.limit = StreamLimit(max_streams)
        self.nets: dict[str, Networks] = {}
        self.nets_lock = threading.Lock()

    def _entry(self, name: str, context: grpc.ServicerContext) -> Entry:
        entry = self.catalog.get(name)
        if entry is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no video named {name!r}")
        return entry

    def _networks(self, entry: Entry, width: int, height: int) -> Networks:
        """onnxruntime sessions, shared by every stream of the same model and frame size."""
        key = f"{entry.name}:{width}x{height}"
        with self.nets_lock:
            if key not in self.nets:
                self.nets[key] = Networks(entry.bundle, width, height)
            return self.nets[key]

    def ListVideos(self, request: Any, context: grpc.ServicerContext) -> codec_pb2.ListVideosResponse:
        videos = [
            codec_pb2.Video(
                name=e.name,
                width=e.info.width,
                height=e.info.height,
                fps=e.info.fps,
                frames=e.frames,
                quality_levels=e.quality_levels,
                default_quality=e.bundle.meta["coding"]["default_quality"],
                gop=e.bundle.meta["coding"]["gop"],
                bundle_sha256=e.bundle.decoder_sha256,
                source_bytes=e.info.file_bytes,
            )
            for e in self.catalog.values()
        ]
        return codec_pb2.ListVideosResponse(videos=videos)

    def GetDecoder(self, request: Any, context: grpc.ServicerContext) -> Iterator[codec_pb2.DecoderChunk]:
        for piece in decoder_pieces(self._entry(request.name, context).bundle):
            yield codec_pb2.DecoderChunk(
                file=piece.file, size=piece.size, sha256=piece.sha256, offset=piece.offset, data=piece.data
            )

    def StreamVideo(self, request: Any, context: grpc.ServicerContext) -> Iterator[codec_pb2.EncodedFrame]:
        entry = self._entry(request.name, context)
        quality = request.quality if request.HasField("quality") else None
        try:
            start, end = check_range(entry, request.start_frame, request.end_frame, quality)
        except CodecError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        with self.limit.slot(context), _StreamLog(context, entry.name) as record:
            nets = self._networks(entry, entry.info.width, entry.info.height)
            for coded in stream_frames(entry, start, end, quality, nets, context.is_active, self.pace):
                record.add(coded)
                yield _message(coded, entry.info.fps)

    def Encode(
        self, request_iterator: Iterator[Any], context: grpc.ServicerContext
    ) -> Iterator[codec_pb2.EncodedFrame]:
        first = next(request_iterator, None)
        if first is None:
            return
        entry = self._entry(first.name, context)
        width, height = first.width, first.height
        quality = first.quality if first.HasField("quality") else None
        try:
            check_quality(entry, quality)
        except CodecError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if not (0 < width <= 16384 and 0 < height <= 16384):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"frame size {width}x{height} is not usable")
        terminated = threading.Event()
        context.add_callback(terminated.set)
        with self.limit.slot(context), _StreamLog(context, entry.name) as record:
            nets = self._networks(entry, width, height)
            encoder = VideoEncoder(entry.bundle, width, height, quality, first.gop or None, nets)
            for index, message in enumerate(_chain(first, request_iterator)):
                if not context.is_active():
                    break
                if (message.width, message.height) != (width, height) or len(message.rgb24) != width * height * 3:
                    context.abort(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"frame {index}: expected {width}x{height} RGB24 ({width * height * 3} bytes), "
                        f"got {message.width}x{message.height} with {len(message.rgb24)} bytes",
                    )
                frame = np.frombuffer(message.rgb24, np.uint8).reshape(height, width, 3)
                coded = encoder.encode(frame, index)
                record.add(coded)
                yield _message(coded, entry.info.fps)
            else:
                # The input ended: the client half-closed, or it cancelled and grpc ended the request
                # stream a moment before marking the call cancelled. Only a cancelled call ends
                # before this handler returns, so a short wait tells the two apart for the log.
                terminated.wait(CANCEL_NOTICE_S)


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


class _StreamLog:
    """One structured log line per stream: peer, video, frames, bytes, duration, outcome."""

    def __init__(self, context: grpc.ServicerContext, video: str) -> None:
        self.context, self.video = context, video
        self.frames = self.bytes = 0
        self.started = time.perf_counter()

    def __enter__(self) -> _StreamLog:
        return self

    def add(self, coded: EncodedFrame) -> None:
        self.frames += 1
        self.bytes += len(coded.chunk.payload)

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
