"""Exit 0 when a server answers SERVING on grpc.health.v1, 1 otherwise: the container HEALTHCHECK.

Usage: python -m aecodec.server.healthcheck [HOST:PORT]   (default 127.0.0.1:50051)
"""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def healthy(address: str, timeout: float = 3.0) -> bool:
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


if __name__ == "__main__":
    sys.exit(0 if healthy(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051") else 1)
