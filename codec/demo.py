"""``codec demo`` after training: encode and decode offline, then stream the same clip through a
local server to the client-side decoder, as a deployment would."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from codec.coding.decoder.decode import decode_file
from codec.coding.encoder.encode import encode_video
from codec.io.bundle import load_bundle


def code_and_stream(clip: Path, model_dir: Path, out: Path, force: bool, echo: Callable[[str], None]) -> dict[str, Any]:
    """Encode ``clip`` with the bundle, decode it, then serve and play it over gRPC on 127.0.0.1."""
    from aecodec.client.player import play
    from aecodec.server.local import LocalServer

    bundle = load_bundle(model_dir)
    stream, decoded, streamed = (
        out / f"{clip.stem}.aec",
        out / f"{clip.stem}-decoded.mp4",
        out / f"{clip.stem}-streamed.mp4",
    )
    echo(f"encoding {clip.name} -> {stream}")
    enc = encode_video(clip, bundle, stream, force=force).to_dict()
    echo(f"decoding {stream} -> {decoded} (onnxruntime, no torch)")
    dec = decode_file(stream, bundle, decoded, force=force).to_dict()
    shutil.copyfile(clip, model_dir / clip.name)  # the server serves a bundle beside its source
    server = LocalServer(model_dir.parent, log=False)
    try:
        url = server.url(model_dir.name)
        echo(f"streaming {url} -> {streamed} (the client fetches the decoder once, then only codes travel)")
        played = play(url, streamed, reference=clip, cache=out / "client-cache", force=force)
    finally:
        server.drain()
    keys = ("bytes", "bpp", "ratio_vs_rgb24", "ratio_vs_source", "psnr_rgb", "decoder_bytes", "total_bpp")
    return {
        **{k: enc[k] for k in keys},
        "encode_fps": enc["encode_fps"],
        "decode_fps": dec["decode_fps"],
        "streamed_frames": played["frames"],
        "streamed_bytes": played["bytes"],
        "streamed_psnr_rgb": played["psnr_rgb"],
        "streamed_fps": played["fps"],
    }
