"""How fast the bundle's decoder runs, and what it costs where: onnxruntime settings, the share of
each operator type, entropy decoding beside the network, at the video's size and at 1280x720.

Usage: python benchmarks/decode_speed.py MODEL_DIR VIDEO
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnxruntime as ort

from codec.coding.common.bitstream import read_chunks
from codec.coding.common.entropy_coding import CodingTables
from codec.coding.common.latent_codec import LatentUnpacker
from codec.coding.common.runtime import latent_size, open_decoder
from codec.coding.decoder.decode import open_stream
from codec.coding.encoder.encode import encode_video
from codec.io.bundle import load_bundle

LEVELS = {
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
REPEATS = 20


def _options(level: str, threads: int, arena: bool, profile: str | None = None) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = LEVELS[level]
    options.intra_op_num_threads = threads
    options.enable_cpu_mem_arena = arena
    if profile:
        options.enable_profiling = True
        options.profile_file_prefix = profile
    return options


def median_ms(session: ort.InferenceSession, latent: np.ndarray) -> float:
    session.run(None, {"latent": latent})
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        session.run(None, {"latent": latent})
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def random_latents(channels: int, stride: int, sizes: dict[str, tuple[int, int]]) -> dict[str, np.ndarray]:
    """One integer latent per named (height, width), Laplace-distributed like a trained model's."""
    rng = np.random.default_rng(0)
    return {
        k: rng.laplace(0, 1, (1, channels, *latent_size(h, w, stride))).round().astype(np.float32)
        for k, (h, w) in sizes.items()
    }


def main(model_dir: str, video: str) -> None:
    bundle = load_bundle(model_dir)
    channels, stride = bundle.meta.model.latent_channels, bundle.meta.model.stride
    width, height = bundle.meta.source.size
    sizes = {f"{width}x{height}": (height, width), "1280x720": (720, 1280)}
    latents = random_latents(channels, stride, sizes)
    print("| graph optimization | threads | memory arena | " + " | ".join(f"ms/frame {k}" for k in sizes) + " |")
    print("| --- | --- | --- |" + " --- |" * len(sizes))
    for level in LEVELS:
        for threads in (1, 2):
            for arena in (True, False):
                session = open_decoder(bundle.path, cpu_only=True, options=_options(level, threads, arena))
                cells = [f"{median_ms(session, latents[k]):.1f}" for k in sizes]
                print(f"| {level} | {threads} | {'on' if arena else 'off'} | " + " | ".join(cells) + " |")
    with tempfile.TemporaryDirectory() as tmp:
        session = open_decoder(bundle.path, cpu_only=True, options=_options("all", 2, True, f"{tmp}/prof"))
        for _ in range(5):
            session.run(None, {"latent": latents[f"{width}x{height}"]})
        by_op: dict[str, float] = defaultdict(float)
        for event in json.loads(Path(session.end_profiling()).read_text()):
            if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
                by_op[event["args"]["op_name"]] += event["dur"]
        total = sum(by_op.values())
        print("\nShare of the network's time by operator (all optimizations, 2 threads):")
        for op, dur in sorted(by_op.items(), key=lambda kv: -kv[1]):
            print(f"- {op}: {100 * dur / total:.1f}%")
        stream = Path(tmp) / "s.aec"
        encode_video(Path(video), bundle, stream)
        data = stream.read_bytes()
        header = open_stream(data, bundle, str(stream))
        unpacker = LatentUnpacker(
            CodingTables.from_bundle(bundle), header.quality, (channels, *latent_size(height, width, stride))
        )
        started = time.perf_counter()
        frames = 0
        for chunk in read_chunks(data, str(stream), resync=False):
            unpacker.unpack(chunk)
            frames += 1
        print(
            f"\nEntropy decoding at the default level: {1000 * (time.perf_counter() - started) / frames:.1f} ms/frame"
        )


if __name__ == "__main__":
    main(*sys.argv[1:])
