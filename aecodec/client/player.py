"""``codec play``: fetch a video's decoder once (cached by sha256), stream its codes, decode locally.

Decoding is the library's own (onnxruntime, no torch); this module only speaks gRPC: it checks
every chunk's fields and crc32, and when the connection drops, a chunk arrives damaged, the server
sends nothing for the message timeout, or a frame decodes differently from the server's
reconstruction (its check), it restarts the stream from that frame with bounded retries and
exponential backoff. A server at its limit of streams (RESOURCE_EXHAUSTED) is asked again the same
way, and one that says a level is being prepared (UNAVAILABLE with a RETRY_AFTER_KEY trailer) after
the time it names, which is no failure. Whatever happens, the player gives up once it has received
nothing for the give-up time. Keepalive pings find a connection that died without closing (a
half-open TCP connection, a replica that vanished) even while the server has nothing to send.
"""

from __future__ import annotations

import ipaddress
import itertools
import random
import re
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import grpc
import numpy as np

from aecodec.client.abr import Abr, Playback, parse_bitrate
from aecodec.client.decoder_cache import cached_decoder, check_sha256
from aecodec.v1 import codec_pb2, codec_pb2_grpc
from codec.coding.common.bitstream import Chunk, Header, chunk_fields_problem
from codec.coding.decoder.decode import WRITE_BEHIND, DecodeStats, LevelChange, decode_frames
from codec.coding.decoder.pipeline import behind
from codec.errors import CodecError
from codec.io.bundle import Bundle
from codec.io.files import check_output, replacing_output
from codec.io.frame_store import cache_dir
from codec.io.limits import MAX_FPS, MAX_SIDE
from codec.io.psnr import psnr
from codec.io.video import VideoWriter, exact_rate, iter_frames
from codec.net import RETRY_AFTER_KEY, is_loopback, read_secret, read_token

# Reconnect quickly after a drop; ServerChunks does its own bounded backoff on top.
CHANNEL_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 1000)]
# What the server may take to send a stream's next message (the first included): a silent replica
# costs this much before the stream restarts on another, so several such restarts fit in GIVE_UP_S.
MESSAGE_TIMEOUT_S = 15.0
# The longest the player goes without receiving anything, retries and waits included. With the
# decoder download's own deadline it stays within decoder_cache.STALE_INCOMING_S, hence the bound.
GIVE_UP_S, MAX_GIVE_UP_S = 60.0, 1800.0
RETRIES = 5  # failures in a row before giving up
BACKOFF_S, MAX_BACKOFF_S = 0.2, 4.0  # the wait after the first failure in a row, doubling up to the cap
RETRY_AFTER_S = (0.1, 30.0)  # the range a server's RETRY_AFTER_KEY is held to
KEEPALIVE_S = 20.0  # a ping every this often during a call
MIN_KEEPALIVE_S = 10.0  # gRPC's own floor; codec serve accepts a ping every 5 s
DECODER_DEADLINE_S = 300.0  # a whole decoder download (decoder_cache.STALE_INCOMING_S assumes it)
KEEPALIVE_ACK_S = 10.0  # an unanswered ping closes the connection after this
# A server's CANCELLED is its reaper or its eviction of a stalled call (the player's own is Silent).
RESUMABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.CANCELLED,
}
# What a server says is bounded before use. A catalog is a folder of bundle folders, named after
# them: far fewer than MAX_VIDEOS, and no file system allows a name past MAX_NAME.
MAX_VIDEOS = 10_000
MAX_NAME = 255
MAX_DETAILS = 300  # characters of a server's error message that are shown


LB_POLICIES = {"pick-first": "pick_first", "round-robin": "round_robin"}
MAX_ADDRESSES = 64


def _endpoint(text: str, url: str) -> tuple[str, int]:
    parts = urlparse(f"//{text}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if not host or not port:
        raise CodecError(f"{url}: expected grpc://HOST:PORT/NAME")
    return host, port


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _ip_version(host: str) -> int | None:
    try:
        return ipaddress.ip_address(host).version
    except ValueError:
        return None


@dataclass(frozen=True)
class Target:
    """Where to play from: ``grpc://HOST:PORT/NAME`` (``grpcs://`` for TLS). HOST is resolved through
    DNS and may name several servers (a headless Service); HOST:PORT may also be a comma-separated
    list of IP addresses of servers of the same catalogue."""

    endpoints: tuple[tuple[str, int], ...]
    name: str
    tls: bool

    @classmethod
    def parse(cls, url: str) -> Target:
        scheme, sep, rest = url.partition("://")
        authority, _, path = rest.partition("/")
        name = path.strip("/")
        if scheme not in ("grpc", "grpcs") or not sep or not authority or not name:
            raise CodecError(f"{url}: expected grpc://HOST:PORT/NAME")
        pieces = authority.split(",")
        if len(pieces) > MAX_ADDRESSES:
            raise CodecError(f"{url}: more than {MAX_ADDRESSES} addresses")
        endpoints = tuple(_endpoint(piece, url) for piece in pieces)
        versions = {_ip_version(host) for host, _ in endpoints}
        if len(endpoints) > 1 and (None in versions or len(versions) > 1):
            raise CodecError(
                f"{url}: a list of servers takes IP addresses of one family; for names, give one DNS "
                "name whose records list them all"
            )
        return cls(endpoints, name, scheme == "grpcs")

    @property
    def address(self) -> str:
        return ",".join(_host_port(*endpoint) for endpoint in self.endpoints)

    @property
    def loopback(self) -> bool:
        """Whether every server named is on this machine."""
        return all(is_loopback(host) for host, _ in self.endpoints)

    @property
    def channel_target(self) -> str:
        """The gRPC target: ``dns:///HOST:PORT`` for one name (every address DNS returns is a
        server), ``ipv4:A:P,B:Q`` (or ipv6) for a list."""
        if len(self.endpoints) == 1:
            return f"dns:///{self.address}"
        family = "ipv6" if ":" in self.endpoints[0][0] else "ipv4"
        return f"{family}:{self.address}"


class Connection:
    """A channel and stub with the call options every request needs (auth metadata, TLS), and the
    player's patience: ``timeout`` for each message, ``give_up`` seconds without receiving anything.

    A bearer token goes over plaintext only to a loopback host, or with ``insecure`` and a warning."""

    def __init__(
        self,
        target: Target,
        ca: Path | None = None,
        token: str | None = None,
        insecure: bool = False,
        lb: str = "pick-first",
        timeout: float = MESSAGE_TIMEOUT_S,
        keepalive: float = KEEPALIVE_S,
        give_up: float = GIVE_UP_S,
    ) -> None:
        self.target = target
        tls = target.tls or ca is not None
        if lb not in LB_POLICIES:
            raise CodecError(f"--lb must be one of {', '.join(LB_POLICIES)}, not {lb}")
        if not 0 < timeout <= 86_400:
            raise CodecError(f"--timeout must be above 0 and at most a day, not {timeout:g}")
        if keepalive and not MIN_KEEPALIVE_S <= keepalive <= 86_400:
            raise CodecError(f"--keepalive must be 0 (off) or {MIN_KEEPALIVE_S:g} s to a day, not {keepalive:g}")
        if not 0 < give_up <= MAX_GIVE_UP_S:
            raise CodecError(f"--give-up must be above 0 and at most {MAX_GIVE_UP_S:g} s, not {give_up:g}")
        self.timeout, self.give_up = timeout, give_up
        self.progressed()
        options = [*CHANNEL_OPTIONS, ("grpc.lb_policy_name", LB_POLICIES[lb])]
        if keepalive:  # a ping every `keepalive` s however long the server is silent, each answered in time
            every, ack = int(keepalive * 1000), int(KEEPALIVE_ACK_S * 1000)
            options += [
                ("grpc.keepalive_time_ms", every),
                ("grpc.http2.min_time_between_pings_ms", every),
                ("grpc.http2.max_pings_without_data", 0),  # else it stops after two
                ("grpc.keepalive_timeout_ms", ack),
                ("grpc.http2.ping_timeout_ms", ack),  # else an unanswered ping waits a minute
            ]
        if len(target.endpoints) > 1:  # the name TLS checks and HTTP/2 sends: the first server's
            options.append(("grpc.default_authority", _host_port(*target.endpoints[0])))
        if token and not tls and not target.loopback:
            if not insecure:
                raise CodecError(
                    f"{target.address}: will not send the bearer token unencrypted to a host that is not loopback; "
                    "use grpcs:// (or --ca), or --insecure to send it anyway"
                )
            print(f"warning: sending the bearer token unencrypted to {target.address} (--insecure)", file=sys.stderr)
        if tls:
            roots = read_secret(ca, "CA certificate") if ca is not None else None
            credentials = grpc.ssl_channel_credentials(root_certificates=roots)
            self.channel = grpc.secure_channel(target.channel_target, credentials, options=options)
        else:
            self.channel = grpc.insecure_channel(target.channel_target, options=options)
        self.stub = codec_pb2_grpc.VideoCodecStub(self.channel)
        self.metadata = [("authorization", f"Bearer {token}")] if token else []

    @property
    def where(self) -> str:
        """The video played, as errors name it."""
        return f"{self.target.address}/{self.target.name}"

    def progressed(self) -> None:
        """Something arrived: the give-up time starts again."""
        self._since = time.monotonic()

    def left(self) -> float:
        """Seconds until the give-up time has passed without anything received."""
        return self._since + self.give_up - time.monotonic()

    def wait(self) -> float:
        """How long the next message may take: the message timeout, within what is left of the give-up time."""
        return max(0.0, min(self.timeout, self.left()))

    def pause(self, exc: Exception, failures: int, retries: int, what: str) -> int:
        """After ``exc`` ended a call (``failures`` in a row before it): wait until it is worth making
        again and return the failures in a row, a server's retry-after not one of them. Raise a
        one-line CodecError instead for an error that will not pass, past ``retries`` failures, or
        once the give-up time passes without anything received; ``what`` says what is given up."""
        reason = _reason(exc)
        if isinstance(exc, grpc.RpcError) and exc.code() not in RESUMABLE:
            raise CodecError(f"{self.where}: {reason}") from None
        delay = _retry_after(exc)
        if delay is None:
            failures += 1
            if failures > retries:
                raise CodecError(f"{self.where}: gave up {what} after {retries} retries ({reason})")
            doubled = BACKOFF_S * 2 ** min(failures - 1, 16)  # the exponent bounded: retries may be any number
            delay = min(MAX_BACKOFF_S, doubled) * random.uniform(0.9, 1.1)
        left = self.left()
        time.sleep(max(0.0, min(delay, left)))
        if delay >= left:
            raise CodecError(f"{self.where}: gave up {what} after {self.give_up:g} s without progress ({reason})")
        return failures

    def call(self, method: str, request: Any, retries: int, what: str) -> Any:
        """A unary call, each try ended after the message timeout and made again as :meth:`pause` says."""
        failures = 0
        while True:
            try:
                reply = getattr(self.stub, method)(request, metadata=self.metadata, timeout=self.wait())
            except grpc.RpcError as exc:
                failures = self.pause(exc, failures, retries, what)
            else:
                self.progressed()
                return reply

    def messages(self, method: str, request: Any, total: float | None = None) -> Iterator[Any]:
        """A server-streaming call's messages as they come, started when first asked for and ended
        after ``total`` seconds if given: a server that sends nothing for :meth:`wait` seconds while
        it is waited on is a :class:`Silent` error, any other gRPC error is raised as it is. A caller
        that stops reading early ends the call."""
        responses = getattr(self.stub, method)(request, metadata=self.metadata, timeout=total)
        watch = _Watch(responses)
        try:
            while True:
                wait = self.wait()
                watch.deadline = time.monotonic() + wait
                try:
                    message = next(responses)
                except StopIteration:
                    return
                except grpc.RpcError:
                    if watch.expired:
                        raise Silent(f"the server sent nothing for {round(wait, 1):g} s") from None
                    raise
                watch.deadline = None
                self.progressed()
                yield message
        finally:
            watch.stop()
            responses.cancel()

    def stream(self, method: str, request: Any, total: float, retries: int, what: str) -> Iterator[Any]:
        """:meth:`messages`, the call made again as :meth:`pause` says while it has sent nothing;
        every error a one-line CodecError."""
        failures, sent = 0, False
        while True:
            try:
                for message in self.messages(method, request, total):
                    sent = True
                    yield message
                return
            except (grpc.RpcError, Silent) as exc:
                if sent:
                    raise CodecError(f"{self.where}: {_reason(exc)}") from None
                failures = self.pause(exc, failures, retries, what)

    def close(self) -> None:
        self.channel.close()


class Silent(CodecError):
    """The server sent nothing for the message timeout: handled like a dropped connection."""


class _Watch:
    """Cancels ``call`` once a wait for its next message passes ``deadline`` (None while the caller
    holds a message). One thread a call, ending with it."""

    POLL_S = 0.05

    def __init__(self, call: Any) -> None:
        self.call = call
        self.deadline: float | None = None
        self.expired = False
        self.done = threading.Event()
        threading.Thread(target=self._run, name="message-timeout", daemon=True).start()

    def _run(self) -> None:
        while not self.done.wait(self.POLL_S):
            deadline = self.deadline
            if deadline is not None and time.monotonic() > deadline:
                self.expired = True
                self.call.cancel()
                return

    def stop(self) -> None:
        self.done.set()


def _reason(exc: Exception) -> str:
    """What ended a call, on one bounded line: a gRPC status and the server's words on it, or what
    the player found."""
    if isinstance(exc, grpc.RpcError):
        return f"{exc.code().name}: {' '.join(str(exc.details()).split())[:MAX_DETAILS]}"
    return str(exc)


def _retry_after(exc: Exception) -> float | None:
    """The seconds an UNAVAILABLE answer says to wait before asking again (its RETRY_AFTER_KEY
    trailer, decimal milliseconds), held to RETRY_AFTER_S; None where it says nothing usable."""
    if not isinstance(exc, grpc.RpcError) or exc.code() != grpc.StatusCode.UNAVAILABLE:
        return None
    values = [value for key, value in exc.trailing_metadata() or () if key == RETRY_AFTER_KEY]
    if len(values) != 1 or not isinstance(values[0], str) or not re.fullmatch("[0-9]{1,9}", values[0]):
        return None
    low, high = RETRY_AFTER_S
    return min(high, max(low, int(values[0]) / 1000))


def find_video(conn: Connection, retries: int = RETRIES) -> Any:
    """The server's description of the video the target names, checked before anything uses it."""
    origin = conn.target.address
    videos = conn.call("ListVideos", codec_pb2.ListVideosRequest(), retries, "listing its videos").videos
    if len(videos) > MAX_VIDEOS:
        raise CodecError(f"{origin}: lists {len(videos)} videos; a client reads at most {MAX_VIDEOS}")
    if any(len(video.name) > MAX_NAME for video in videos):
        raise CodecError(f"{origin}: lists a video name longer than {MAX_NAME} characters")
    for video in videos:
        if video.name == conn.target.name:
            return _checked(video, origin)
    raise CodecError(f"{origin}: has no video named {conn.target.name!r}")


def _checked(video: Any, origin: str) -> Any:
    """``video`` if its identity, frame size and rate are usable."""
    where = f"{origin}/{video.name}"
    check_sha256(video.bundle_sha256, where, "bundle_sha256")
    if not (0 < video.width <= MAX_SIDE and 0 < video.height <= MAX_SIDE):
        raise CodecError(f"{where}: frame size {video.width}x{video.height} is not 1 to {MAX_SIDE} pixels a side")
    if not (0 < video.fps <= MAX_FPS and exact_rate(video.fps) > 0):  # NaN fails the first test
        raise CodecError(f"{where}: frame rate {video.fps} is not above 0 and at most {MAX_FPS}")
    return video


def fetch_decoder(conn: Connection, video: Any, cache: Path, retries: int = RETRIES) -> Bundle:
    """The decoding half of the video's bundle, from ``cache/<sha256>`` or, once, from the server."""
    request = codec_pb2.GetDecoderRequest(name=video.name)
    pieces = conn.stream("GetDecoder", request, DECODER_DEADLINE_S, retries, "fetching the decoder")
    return cached_decoder(cache, video.bundle_sha256, pieces, conn.target.address)


@dataclass
class Transfer:
    """What crossed the network: payload bytes, and restarts of the stream (after a dropped connection,
    a damaged chunk, or a frame decoded differently from the server's reconstruction)."""

    bytes: int = 0
    resumes: int = 0


class DamagedChunk(CodecError):
    """A chunk that arrived wrong; the player handles it like a dropped connection."""


def received_chunk(message: codec_pb2.EncodedFrame) -> Chunk:
    """The ``.aec`` chunk an ``EncodedFrame`` carries, once its fields are within the format's ranges
    and its crc32 holds; anything else is a DamagedChunk."""
    if problem := chunk_fields_problem(message.index, message.type, message.check, len(message.payload)):
        raise DamagedChunk(problem)
    chunk = Chunk(message.index, message.type, message.check, message.payload)
    if chunk.crc32 != message.crc32:
        raise DamagedChunk(f"frame {message.index}: crc32 mismatch")
    return chunk


class ServerChunks:
    """The chunks of frames [start, end) from the server, in order, as they are iterated.

    The first request asks for the stream from the last I-frame at or before ``start``
    (``from_keyframe``), so the server sends stored chunks only; the frames before ``start`` are
    for the decoder and the caller drops them (:attr:`first` says where the stream began).

    A request is read up to its end and no further: the call ends once the chunk before it arrives.

    A dropped connection, a server silent for the message timeout or at its limit of streams, a
    damaged chunk, or a frame the client decoded differently from the server (:meth:`redo`) restarts
    the stream at the first frame still needed (the server starts every stream with an I-frame), as
    :meth:`Connection.pause` says: after 0.2 s, 0.4 s, ..., or the time a server preparing the level
    names; more than ``retries`` restarts in a row, or before ``window`` frames (a GOP) have come
    since the last restart, give up with a CodecError. So a server whose every P-frame is wrong
    fails after ``retries`` restarts instead of sending each frame as an I-frame, while a long play
    over a flaky network may restart as often as it needs, a GOP apart.

    With ``abr``, the frames are asked for a GOP (``window`` frames, from I-frame to I-frame) at a
    time; each is a throughput sample and, where the rule says so, the next is asked for at another
    level, announced by a :class:`~codec.coding.decoder.decode.LevelChange` before its first chunk."""

    def __init__(
        self,
        conn: Connection,
        start: int,
        end: int,
        quality: int | None,
        transfer: Transfer,
        retries: int = RETRIES,
        window: int = 1,
        abr: Abr | None = None,
    ) -> None:
        self.conn, self.start, self.end = conn, start, end
        self.quality = abr.level if abr is not None else quality
        self.transfer, self.retries, self.window, self.abr = transfer, retries, max(1, window), abr
        self.first: int | None = None  # the index of the first chunk received
        self.switches: list[tuple[int, int, int]] = []  # (frame, from level, to level)
        self._redo: int | None = None

    def redo(self, index: int) -> None:
        """Have frames from ``index`` on (the last one iterated, or one before it) sent again, by a new stream."""
        self._redo = index

    def _request(self, start: int, stop: int) -> codec_pb2.StreamVideoRequest:
        request = codec_pb2.StreamVideoRequest(
            name=self.conn.target.name, start_frame=start, end_frame=stop, from_keyframe=self.first is None
        )
        if self.quality is not None:
            request.quality = self.quality
        return request

    def _stop(self, index: int) -> int:
        """Where a request from frame ``index`` ends: the end, or with ``abr`` the next I-frame
        boundary, so that no more than a GOP is in flight when the level changes (as players fetch
        segments) and no bytes of a level left behind crowd a slow link."""
        return min(self.end, (index // self.window + 1) * self.window) if self.abr is not None else self.end

    def _choose(self, abr: Abr, index: int, bits: float, waited: float) -> None:
        """At I-frame boundary ``index``, after a GOP of ``bits`` received in ``waited`` seconds of
        waiting: the level of the next GOP."""
        abr.sample(bits, waited)
        level = abr.choose()
        if level != self.quality:
            self.switches.append((index, self.quality, level))
            self.quality = level

    def __iter__(self) -> Iterator[Chunk | LevelChange]:
        conn, end = self.conn, self.end
        next_index, failures, restarted_at = self.start, 0, self.start
        announced = self.quality
        while next_index < end:
            stop = self._stop(next_index)
            responses = conn.messages("StreamVideo", self._request(next_index, stop))
            bits = waited = 0.0
            try:
                since = time.monotonic()
                for message in responses:
                    waited += time.monotonic() - since
                    chunk = received_chunk(message)
                    # The first chunk of all may be the I-frame before ``start``, at most a GOP before.
                    lead_in = self.first is None and next_index - self.window < chunk.index <= next_index
                    if chunk.index != next_index and not lead_in:
                        raise DamagedChunk(f"frame {chunk.index} out of order, expected {next_index}")
                    if self.first is None:
                        self.first = chunk.index
                    if announced != self.quality and self.quality is not None:
                        announced = self.quality
                        yield LevelChange(self.quality)
                    self.transfer.bytes += len(chunk.payload)
                    bits += 8 * len(chunk.payload)
                    next_index = chunk.index + 1
                    yield chunk
                    if self._redo is not None:
                        next_index, self._redo = self._redo, None
                        raise DamagedChunk(f"frame {next_index}: reconstruction differs from the server's")
                    if next_index - restarted_at >= self.window:
                        failures = 0
                    if next_index == stop:
                        break  # whatever a server sends past the request's end is not read
                    since = time.monotonic()
                if next_index < stop:
                    raise DamagedChunk(f"stream ended at frame {next_index} of {stop}")
                if self.abr is not None and next_index < end:
                    self._choose(self.abr, next_index, bits, waited)
            except (grpc.RpcError, DamagedChunk, Silent) as exc:
                failures = conn.pause(exc, failures, self.retries, f"at frame {next_index}")
                self.transfer.resumes += 1
                restarted_at = next_index
            finally:
                responses.close()


START = re.compile(r"(?P<frame>[0-9]+)|(?P<seconds>[0-9]+\.?[0-9]*|\.[0-9]+)s?")
MAX_OPTION = 40  # characters of a number on the command line
MAX_FRAMES = 1 << 32  # a video's frames, as the protocol counts them
MAX_LEVEL = 1 << 31  # a --quality level is below this, and then one of its decoder's


def parse_start(text: str | int) -> int | float:
    """``--start``: a frame number (``300``) as an int, or seconds with a point or an ``s``
    (``12.5``, ``12s``) as a float."""
    text = str(text).strip()
    match = START.fullmatch(text) if len(text) <= MAX_OPTION else None
    if match is None:
        raise CodecError(f"--start takes a frame (300) or seconds (12.5, 12s), not {text[:MAX_OPTION]!r}")
    return int(text) if match["frame"] else float(match["seconds"])


def start_frame(start: str | int | float, fps: float, where: str) -> int:
    """The frame ``start`` (text for :func:`parse_start`, or what it returns) names at ``fps``."""
    start = parse_start(start) if isinstance(start, str) else start
    if isinstance(start, int):
        return start
    frame = start * fps + 1e-9
    if frame >= MAX_FRAMES:
        raise CodecError(f"{where}: --start {start:g} s is past its end")
    return int(frame)


def parse_quality(quality: str | int | None) -> str | int | None:
    """``--quality``: None (the bundle's default), ``"auto"``, or a level, in ASCII decimal below
    MAX_LEVEL (whether the bundle has it is known once its decoder is fetched)."""
    if quality is None or quality == "auto":
        return quality
    text = str(quality)
    if not (re.fullmatch("[0-9]{1,10}", text) and int(text) < MAX_LEVEL):
        raise CodecError(f"--quality takes a level (0, 1, ...) or auto, not {text[:MAX_OPTION]!r}")
    return int(text)


def ladder(video: Any, levels: int, where: str) -> dict[int, float]:
    """The server's bitrate ladder: bits/s of each stored level (levels not stored yet are left out),
    each one of the ``levels`` of the video's decoder."""
    qualities = [r.quality for r in video.ladder]
    if len(set(qualities)) < len(qualities):
        raise CodecError(f"{where}: its ladder lists a level twice")
    if beyond := [q for q in qualities if q >= levels]:
        raise CodecError(f"{where}: its ladder names level {beyond[0]}, beyond its decoder's {levels} levels")
    return {r.quality: r.bytes * 8 * video.fps / video.frames for r in video.ladder if r.bytes}


def play(
    url: str,
    out: Path,
    reference: Path | None = None,
    quality: int | str | None = None,
    start: int | str = 0,
    end: int = 0,
    ca: Path | None = None,
    token_file: Path | None = None,
    cache: Path | None = None,
    force: bool = False,
    retries: int = RETRIES,
    insecure: bool = False,
    lb: str = "pick-first",
    timeout: float = MESSAGE_TIMEOUT_S,
    keepalive: float = KEEPALIVE_S,
    max_bitrate: str | None = None,
    give_up: float = GIVE_UP_S,
) -> dict[str, Any]:
    """Stream ``url`` into the video file ``out``; returns frames, bytes, bpp, fps, PSNR and the
    playback's stalls. ``quality`` is a level, None for the decoder's default, or ``"auto"`` to
    follow the network (:mod:`aecodec.client.abr`), at most ``max_bitrate`` bits/s (500k, 2M);
    ``start`` a frame or seconds (:func:`parse_start`). ``insecure`` lets the token go unencrypted to
    a host that is not loopback; ``lb`` spreads the calls over every server the URL names
    (round-robin) or keeps to one (pick-first); ``timeout`` is the longest the server may take to
    send its next message, ``give_up`` the longest the player goes without receiving anything,
    ``keepalive`` the seconds between pings (0: none). Every option is checked before any call."""
    check_output(out, force)
    level, begin = parse_quality(quality), parse_start(start)
    if end < 0:
        raise CodecError(f"--end takes a frame (0: the end), not {end}")
    if retries < 0:
        raise CodecError(f"--retries must be 0 or more, not {retries}")
    if max_bitrate is not None and isinstance(level, int):
        raise CodecError("--max-bitrate chooses the level, so it goes with --quality auto (or none), not a level")
    cap = parse_bitrate(max_bitrate) if max_bitrate is not None else None
    auto = level == "auto" or cap is not None
    token = read_token(token_file) if token_file is not None else None
    conn = Connection(Target.parse(url), ca, token, insecure, lb, timeout, keepalive, give_up)
    try:
        video = find_video(conn, retries)
        first = start_frame(begin, video.fps, url)
        end = end or video.frames
        if not 0 <= first < end <= video.frames:
            raise CodecError(f"{url}: frames [{first}, {end}) are not within its {video.frames} frames")
        bundle = fetch_decoder(conn, video, cache or cache_dir(), retries)
        levels, default = bundle.meta.coding.levels, bundle.meta.coding.default_quality
        if isinstance(level, int) and level >= levels:
            raise CodecError(f"{url}: --quality {level} is not one of its levels 0..{levels - 1}")
        rates = ladder(video, levels, url) if auto else {}
        if auto and not rates:
            print(f"warning: {url}: no level is stored yet, so none is chosen by bitrate", file=sys.stderr)
        abr = Abr.for_ladder(rates, default, cap) if rates else None
        q = abr.level if abr else level if isinstance(level, int) else default
        fps = exact_rate(video.fps)
        transfer = Transfer()
        received = ServerChunks(conn, first, end, q, transfer, retries, window=video.gop, abr=abr)
        items = iter(received)
        head = next(items, None)  # opens the stream: its first chunk says where it begins
        base = received.first if received.first is not None else first
        chunks = itertools.chain([head] if head is not None else [], items)
        numbered = (replace(c, index=c.index - base) if isinstance(c, Chunk) else c for c in chunks)
        header = Header(video.bundle_sha256, video.width, video.height, fps, end - base, video.gop, q)
        stats = DecodeStats(header=header, bytes=0)
        refs = itertools.islice(iter_frames(reference), first, None) if reference is not None else None
        psnrs: list[float] = []
        playback = Playback(float(fps))
        started = time.perf_counter()
        written = 0
        with (
            replacing_output(out, force) as tmp,
            VideoWriter(tmp, video.width, video.height, fps, bundle.meta.source.colour) as writer,
            behind(writer.write, WRITE_BEHIND) as put,
        ):
            frames = decode_frames(numbered, bundle, url, stats, redo=lambda index: received.redo(base + index))
            for index, frame in enumerate(frames, base):
                if index < first:
                    continue  # the lead-in from the I-frame before the start
                playback.ready(written)
                put(frame)
                written += 1
                if refs is not None:
                    ref = next(refs, None)
                    if ref is None or ref.shape != frame.shape:
                        raise CodecError(f"{reference}: frame {index} is missing or of another size")
                    psnrs.append(psnr(frame, ref))
        seconds = time.perf_counter() - started
    finally:
        conn.close()
    result: dict[str, Any] = {
        "frames": written,
        "bytes": transfer.bytes,
        "bpp": transfer.bytes * 8 / (written * video.width * video.height),
        "fps": written / seconds if seconds else 0.0,
        "resumes": transfer.resumes,
        "quality": "auto" if abr else q,
        "start_frame": first,
        "lead_in_frames": first - base,
        "stalls": playback.stalls,
        "stalled_s": round(playback.stalled, 3),
        "longest_stall_s": round(playback.longest, 3),
        "decoder_cached_at": str(bundle.path),
    }
    if abr is not None:
        result["levels"] = {"start": q, "end": received.quality, "switches": received.switches}
        result["estimate_bps"] = round(abr.estimate)
    if psnrs:
        result["psnr_rgb"] = float(np.mean(psnrs))
    return result
