"""Real bytes at every quality level of a bundle (its refined levels included): stream-only and
total bpp, RGB PSNR, how far the real size is from the priors' estimate, and encode/decode frames
per second.

Usage: python benchmarks/rate_quality.py MODEL_DIR VIDEO
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from codec.coding.decoder.decode import decode_stream
from codec.coding.encoder.encode import encode_video
from codec.io.bundle import load_bundle


def main(model_dir: str, video: str) -> None:
    bundle = load_bundle(model_dir)
    columns = ["quality", "step", "bytes", "bpp (stream)", "bpp (total)", "RGB PSNR dB", "real / estimate"]
    columns += ["encode fps", "decode fps"]
    print("| " + " | ".join(columns) + " |")
    print("|" + " --- |" * len(columns))
    with tempfile.TemporaryDirectory() as tmp:
        for quality in range(bundle.meta.coding.levels):
            out = Path(tmp) / f"q{quality}.aec"
            e = encode_video(Path(video), bundle, out, quality=quality).to_dict()
            frames, _ = decode_stream(out.read_bytes(), bundle, str(out))
            started = time.perf_counter()
            decode_fps = sum(1 for _ in frames) / (time.perf_counter() - started)
            print(
                f"| {quality} | {e['step']:g} | {e['bytes']:,} | {e['bpp']:.4f} | {e['total_bpp']:.4f} "
                f"| {e['psnr_rgb']:.2f} | {e['real_over_estimate']:.4f} | {e['encode_fps']:.1f} | {decode_fps:.1f} |"
            )


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(*sys.argv[1:])
