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
) -> None:
    """Serve every bundle under ``models`` until SIGTERM or SIGINT, then drain and return. Streams
    are stored under ``stream_cache`` (default: the user's cache folder); with ``prepare`` every
    level of every video is stored before the server listens."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if (tls_cert is None) != (tls_key is None):
        raise CodecError("--tls-cert and --tls-key go together")
    if max_streams < 1:
        raise CodecError(f"--max-streams must be at least 1, not {max_streams}")
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
    servicer = VideoCodecServicer(catalog, max_streams, cache, pace, stall_timeout, encoders)
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
    health_note = f"; health on {host}:{probe_port}" if prober is not None else ""
    print(f"listening on {host}:{bound} ({len(catalog)} videos: {', '.join(catalog)}){health_note}", flush=True)

    stopping = threading.Event()
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
