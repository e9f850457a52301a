"""Small synthetic clips written with PyAV, in any container, codec and pixel format the tests need."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from codec.io.colour import Colour, rgb_to_frame


def synthetic_frames(count: int, width: int, height: int, seed: int = 0) -> np.ndarray:
    """(count, height, width, 3) uint8: a drifting colour gradient with a moving square on it."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(0, 255, 3).astype(np.float32)
    frames = np.empty((count, height, width, 3), np.uint8)
    for t in range(count):
        img = np.stack(
            [
                (xx * 255 / max(width - 1, 1) + 3 * t + base[0]) % 256,
                (yy * 255 / max(height - 1, 1) + base[1]) % 256,
                np.full_like(xx, (base[2] + 5 * t) % 256),
            ],
            axis=-1,
        )
        side = max(2, min(width, height) // 3)
        top = (2 * t) % max(1, height - side)
        left = (3 * t) % max(1, width - side)
        img[top : top + side, left : left + side] = (250, 40, 40)
        frames[t] = img.astype(np.uint8)
    return frames


def write_clip(
    path: Path,
    frames: np.ndarray,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    fps: int = 25,
    audio: bool = False,
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
    colour: Colour | None = None,
) -> Path:
    """Encode ``frames`` into ``path`` (container from its suffix), optionally with a sine audio track.

    With ``colour`` the frames are converted with it and the stream is tagged with it; without, the
    stream is untagged and converted with the colour a reader assumes for its size."""
    height, width = frames.shape[1:3]
    conversion = colour or Colour.for_size(width, height)
    with av.open(str(path), mode="w", options=container_options or {}) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.options = options or {}
        if colour is not None:
            colour.tag(stream.codec_context)
        astream = out.add_stream("aac", rate=48000) if audio else None
        for i, img in enumerate(frames):
            frame = rgb_to_frame(img, pix_fmt, conversion)
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
        if astream is not None:
            samples = 48000 * len(frames) // fps
            tone = (0.2 * np.sin(np.arange(samples) * 2 * np.pi * 440 / 48000)).astype(np.float32)
            for start in range(0, samples, 1024):
                chunk = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], format="fltp", layout="mono")
                chunk.sample_rate = 48000
                chunk.pts = start
                out.mux(astream.encode(chunk))
            out.mux(astream.encode())
    return path


def write_long_clip(path: Path, count: int, width: int, height: int, block: int = 50) -> Path:
    """An H.264 clip of ``count`` frames written ``block`` at a time (each block its own synthetic
    scene), so that a clip larger than the memory the test allows is never held here either."""
    colour = Colour.for_size(width, height)
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=25, options={"preset": "ultrafast", "crf": "30"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for start in range(0, count, block):
            for i, img in enumerate(synthetic_frames(min(block, count - start), width, height, seed=start)):
                frame = rgb_to_frame(img, "yuv420p", colour)
                frame.pts, frame.time_base = start + i, Fraction(1, 25)
                out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path
