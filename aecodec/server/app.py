"""``codec serve``: the gRPC server process, with health, reflection, TLS, auth and a graceful drain."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from aecodec.server.auth import BearerTokenInterceptor
from aecodec.server.catalog import Entry, load_catalog
from aecodec.server.servicer import VideoCodecServicer
from aecodec.v1 import codec_pb2, codec_pb2_grpc
from codec.errors import CodecError
from codec.io.frame_store import cache_dir
from codec.net import is_loopback, read_secret, read_token

SERVICE = codec_pb2.DESCRIPTOR.services_by_name["VideoCodec"].full_name
DRAIN_NOTICE_S = 1.0
RESERVED_WORKERS = 8  # worker threads no stream can take: health, listing, reflection
MESSAGE_SLACK = 64 << 10
MIN_KEY_BYTES = 16  # of a --stream-key file
READY_EVERY_S = 0.5  # how often readiness (the service's health) is worked out again
MIN_PING_INTERVAL_MS = 5000  # clients' keepalive pings may come this often (codec play sends one every 20 s)
log = logging.getLogger("aecodec.server")


def _message_limit(catalog: dict[str, Entry]) -> int:
    """The largest message a client may send: one RGB24 frame of the largest catalogued video
    (live Encode takes frames up to its model's source size), plus room for the other fields."""
    return max(w * h * 3 for w, h in (e.bundle.meta.source.size for e in catalog.values())) + MESSAGE_SLACK


def _health_server(health_servicer: health.HealthServicer, host: str, port: int) -> tuple[grpc.Server, int]:
    """grpc.health.v1 alone, in plaintext on its own port and threads: what orchestrators probe,
    answering however busy the main port is (it tells nothing but SERVING or NOT_SERVING)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), maximum_concurrent_rpcs=16)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if not bound:
        raise CodecError(f"cannot listen on {host}:{port} for health checks")
    return server, bound


def _readiness(servicer: VideoCodecServicer, health_servicer: health.HealthServicer, stopping: threading.Event) -> None:
    """Keep the service's health (what readiness probes ask; the server's own, "", stays SERVING
    while it runs) NOT_SERVING while it cannot take a stream: every slot held by a moving call, or
    its stream store stuck. Checked every READY_EVERY_S, so a probe's answer costs nothing."""
    serving = True
    while not stopping.wait(READY_EVERY_S):
        ready = servicer.ready()
        if ready != serving:
            serving = ready
            status = health_pb2.HealthCheckResponse.SERVING if ready else health_pb2.HealthCheckResponse.NOT_SERVING
            health_servicer.set(SERVICE, status)
            log.info(json.dumps({"event": "ready" if ready else "not_ready"}))


def serve(
    models: Path,
    host: str = "127.0.0.1",
    port: int = 50051,
    max_streams: int = 16,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    token_file: Path | None = None,
    grace: float = 10.0,
    pace: bool = False,
    health_port: int | None = None,
    stall_timeout: float = 30.0,
    insecure: bool = False,
    stream_cache: Path | None = None,
    prepare: bool = False,
    encoders: int = 1,
    max_streams_per_peer: int | None = None,
    stream_key: Path | None = None,
) -> None:
    """Serve every bundle under ``models`` until SIGTERM or SIGINT, then drain and return. Streams
    are stored under ``stream_cache`` (default: the user's cache folder), their records signed with
    the key in ``stream_key`` (default: one the cache keeps); with ``prepare`` every level of every
    video is stored before the server listens. One client address holds at most
    ``max_streams_per_peer`` streams (default: half of ``max_streams``, at least 1)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if (tls_cert is None) != (tls_key is None):
        raise CodecError("--tls-cert and --tls-key go together")
    if max_streams < 1:
        raise CodecError(f"--max-streams must be at least 1, not {max_streams}")
    per_peer = max_streams_per_peer if max_streams_per_peer is not None else max(1, max_streams // 2)
    if not 1 <= per_peer <= max_streams:
        raise CodecError(f"--max-streams-per-peer must be 1 to --max-streams ({max_streams}), not {per_peer}")
    if encoders < 1:
        raise CodecError(f"--encoders must be at least 1, not {encoders}")
    if not stall_timeout > 0:
        raise CodecError(f"--stall-timeout must be positive, not {stall_timeout}")
    if not is_loopback(host) and (tls_cert is None or token_file is None):
        if not insecure:
            raise CodecError(
                f"refusing to serve on {host} without TLS and a token (--tls-cert, --tls-key, --token-file); "
                "pass --insecure if a proxy in front of it provides them"
            )
        log.warning(json.dumps({"event": "insecure", "host": host, "tls": tls_cert is not None}))
    catalog = load_catalog(models)
    token = read_token(token_file) if token_file is not None else None
    interceptors = [BearerTokenInterceptor(token)] if token else []
    cache = stream_cache if stream_cache is not None else cache_dir() / "streams"
    key = read_secret(stream_key, "stream key").strip() if stream_key is not None else None
    if key is not None and len(key) < MIN_KEY_BYTES:
        raise CodecError(f"{stream_key}: a stream key must hold at least {MIN_KEY_BYTES} bytes")
    servicer = VideoCodecServicer(catalog, max_streams, cache, pace, stall_timeout, encoders, per_peer, key)
    # Each stream (StreamVideo, Encode, GetDecoder) holds a worker, at most max_streams of them, and
    # one more is refused at once; the rest of the pool is kept for health, listing and reflection.
    workers = max_streams + RESERVED_WORKERS
    limit = _message_limit(catalog)
    options = [
        ("grpc.max_receive_message_length", limit),
        ("grpc.max_send_message_length", limit),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", MIN_PING_INTERVAL_MS),
    ]
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers),
        interceptors=interceptors,
        options=options,
        maximum_concurrent_rpcs=2 * workers,
    )
    codec_pb2_grpc.add_VideoCodecServicer_to_server(servicer, server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    address = f"{host}:{port}"
    if tls_cert is not None:
        credentials = grpc.ssl_server_credentials(
            [(read_secret(tls_key, "TLS key"), read_secret(tls_cert, "TLS certificate"))]
        )
        bound = server.add_secure_port(address, credentials)
    else:
        bound = server.add_insecure_port(address)
    if not bound:
        raise CodecError(f"cannot listen on {address}")
    prober, probe_port = _health_server(health_servicer, host, health_port) if health_port is not None else (None, 0)
    server.start()
    if prober is not None:
        prober.start()
    # Alive at once; ready (the service SERVING, what readiness probes ask) once --prepare has stored
    # every stream, which can take longer than a startup probe waits.
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    if prepare:
        health_servicer.set(SERVICE, health_pb2.HealthCheckResponse.NOT_SERVING)
        for entry in catalog.values():
            servicer.store.prepare(entry, lambda line: log.info(json.dumps({"event": "prepared", "stream": line})))
    health_servicer.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
    stopping = threading.Event()
    threading.Thread(target=_readiness, args=(servicer, health_servicer, stopping), daemon=True).start()
    health_note = f"; health on {host}:{probe_port}" if prober is not None else ""
    print(f"listening on {host}:{bound} ({len(catalog)} videos: {', '.join(catalog)}){health_note}", flush=True)

    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    while not stopping.wait(3600):
        pass
    # Drain: report NOT_SERVING while still answering, so health checks and load balancers see it
    # and send no more; then refuse new calls and give the streams in flight their grace period.
    log.info(json.dumps({"event": "drain", "grace_s": grace}))
    health_servicer.enter_graceful_shutdown()
    time.sleep(min(DRAIN_NOTICE_S, grace))
    server.stop(grace).wait()
    if prober is not None:
        prober.stop(0).wait()
    log.info(json.dumps({"event": "stopped"}))
