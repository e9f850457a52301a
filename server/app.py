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
from aecodec.server.servicer import VideoCodecServicer
from aecodec.v1 import codec_pb2, codec_pb2_grpc
from codec.catalog import load_catalog
from codec.errors import CodecError

SERVICE = codec_pb2.DESCRIPTOR.services_by_name["VideoCodec"].full_name
DRAIN_NOTICE_S = 1.0
log = logging.getLogger("aecodec.server")


def _read(path: Path | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CodecError(f"{path}: cannot read the {what} ({exc.strerror})") from None


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
) -> None:
    """Serve every bundle under ``models`` until SIGTERM or SIGINT, then drain and return."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if (tls_cert is None) != (tls_key is None):
        raise CodecError("--tls-cert and --tls-key go together")
    if max_streams < 1:
        raise CodecError(f"--max-streams must be at least 1, not {max_streams}")
    catalog = load_catalog(models)
    token = _read(token_file, "token file")
    if token is not None and not token.strip():
        raise CodecError(f"{token_file}: the token file is empty")
    interceptors = [BearerTokenInterceptor(token.decode().strip())] if token else []
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_streams + 8), interceptors=interceptors)
    codec_pb2_grpc.add_VideoCodecServicer_to_server(VideoCodecServicer(catalog, max_streams, pace), server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    address = f"{host}:{port}"
    if tls_cert is not None:
        credentials = grpc.ssl_server_credentials([(_read(tls_key, "TLS key"), _read(tls_cert, "TLS certificate"))])
        bound = server.add_secure_port(address, credentials)
    else:
        bound = server.add_insecure_port(address)
    if not bound:
        raise CodecError(f"cannot listen on {address}")
    server.start()
    for name in ("", SERVICE):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    print(f"listening on {host}:{bound} ({len(catalog)} videos: {', '.join(catalog)})", flush=True)

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
    log.info(json.dumps({"event": "stopped"}))
