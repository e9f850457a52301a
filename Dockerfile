# aecodec images. Two targets:
#   docker build --target server -t aecodec-server .   onnxruntime + the gRPC service, no torch
#   docker build --target train  -t aecodec-train  .   torch for `codec train` / `codec bench`
# Both install the package as the README does: torch pinned first where it is wanted, then aecodec.
# PyPI's Linux x86_64 torch carries CUDA, so the train image trains on GPUs (docker run --gpus all)
# and on the CPU alike; it is several GB, while the server's packages take about 300 MB.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS base
# Each stage compiles the numba kernels into the __pycache__ beside them at build time, which
# codec/coding/kernels/cache.py reads under a read-only root too; what that lacks (a host of another
# CPU model than the builder's) is compiled at run time and cached in NUMBA_CACHE_DIR: /tmp stays
# writable under a read-only root. onnxruntime would warn at every start that it cannot write ~/.cache.
ENV PYTHONDONTWRITEBYTECODE=1 \
    NUMBA_CACHE_DIR=/tmp/numba \
    ORT_DISABLE_TELEMETRY=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --uid 10001 aecodec
WORKDIR /src
COPY pyproject.toml README.md ./
COPY codec ./codec
COPY aecodec ./aecodec

FROM base AS server
RUN pip install --no-cache-dir .
# hadolint ignore=DL3059
RUN env -u NUMBA_CACHE_DIR python -I -c "from codec.coding import kernels; kernels.warm()"
USER 10001
WORKDIR /home/aecodec
VOLUME ["/models"]
# 50051: the service (TLS + bearer token); 50052: health checks alone, in plaintext, for probes.
EXPOSE 50051 50052
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "aecodec.server.healthcheck", "127.0.0.1:50052"]
ENTRYPOINT ["codec", "serve", "--models", "/models", "--host", "0.0.0.0", "--port", "50051", "--health-port", "50052"]
# Secure by default: mount the token and the TLS pair here (docker secrets, Kubernetes Secrets).
# Behind a proxy that terminates TLS and checks tokens, replace this with "--insecure".
CMD ["--token-file", "/run/secrets/aecodec-token", "--tls-cert", "/run/secrets/aecodec-tls.crt", "--tls-key", "/run/secrets/aecodec-tls.key"]

FROM base AS train
RUN pip install --no-cache-dir torch==2.13.0 && pip install --no-cache-dir "/src[bench]"
# hadolint ignore=DL3059
RUN env -u NUMBA_CACHE_DIR python -I -c "from codec.coding import kernels; kernels.warm()"
USER 10001
WORKDIR /home/aecodec
VOLUME ["/work"]
ENTRYPOINT ["codec"]
CMD ["--help"]
