"""The encoder's two threads (StreamEncoder.encode_frames): the chunks encode() gives frame by frame,
where an M-frame does not pay (its speculative successor searched again) too, and errors in order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from codec.coding.common.bitstream import I_FRAME, M_FRAME
from codec.coding.encoder.encode import StreamEncoder
from codec.errors import CodecError
from codec.io.bundle import load_bundle
from codec.io.video import read_clip


@pytest.fixture(scope="module")
def frames(short_clip: Path) -> list[np.ndarray]:
    """short_clip with a frame of noise at 4: no M-frame pays there, nor right after it."""
    frames = list(read_clip(short_clip).frames)
    frames[4] = np.random.default_rng(4).integers(0, 256, frames[0].shape, np.uint8)
    return frames


def _encoder(bundle: Path, keyframes: str) -> StreamEncoder:
    return StreamEncoder(load_bundle(bundle), width=176, height=144, gop=8, keyframes=keyframes)


@pytest.mark.parametrize("keyframes", ["fixed", "auto"])
def test_encode_frames_gives_what_encode_gives(carphone_bundle: Path, frames: list[np.ndarray], keyframes: str) -> None:
    one = _encoder(carphone_bundle, keyframes)
    alone = [one.encode(frame, index).chunk for index, frame in enumerate(frames)]
    together = [coded.chunk for coded in _encoder(carphone_bundle, keyframes).encode_frames(frames)]
    assert together == alone
    types = [chunk.frame_type for chunk in alone]
    assert types[4] == I_FRAME and M_FRAME in types[1:4]  # an M-frame tried and dropped at 4


def test_encode_frames_raises_in_order(carphone_bundle: Path, frames: list[np.ndarray]) -> None:
    def failing() -> Iterator[np.ndarray]:
        yield from frames[:3]
        raise CodecError("the source broke")

    got = []
    with pytest.raises(CodecError, match="the source broke"):
        for coded in _encoder(carphone_bundle, "fixed").encode_frames(failing()):
            got.append(coded.chunk.index)
    assert got == [0, 1, 2]
    got = []
    with pytest.raises(ValueError):  # a frame the search refuses, met while frame 2 is packed
        for coded in _encoder(carphone_bundle, "fixed").encode_frames([*frames[:3], frames[3][:, :100]]):
            got.append(coded.chunk.index)
    assert got == [0, 1, 2]
