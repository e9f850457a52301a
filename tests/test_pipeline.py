"""The decoder's threads (codec.coding.decoder.pipeline): order, bounded look-ahead, errors raised
where a sequential decode raises them, and no thread left behind."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from codec.coding.decoder.pipeline import ahead, behind
from codec.errors import CodecError


def _threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("decode-")}


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_ahead_keeps_order_and_each_items_error(depth: int) -> None:
    def prepare(n: int) -> int:
        if n == 3:
            raise CodecError("three is bad")
        return n * n

    got = []
    for item, outcome in ahead(range(6), prepare, depth):
        if item == 3:
            with pytest.raises(CodecError, match="three is bad"):
                outcome.get()
        else:
            got.append((item, outcome.get()))
    assert got == [(0, 0), (1, 1), (2, 4), (4, 16), (5, 25)]
    assert _threads() == set()


def test_ahead_prepares_at_most_depth_ahead() -> None:
    prepared: list[int] = []
    seen = []
    for item, _ in ahead(range(40), prepared.append, 4):
        time.sleep(0.01)  # a slow consumer: the thread must wait for room, not run on
        seen.append(item)
        assert len(prepared) <= item + 1 + 4 + 1  # the queue's 4, the one put waits with, this one
    assert seen == list(range(40))


def test_ahead_raises_an_error_of_the_items_where_it_came() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise CodecError("stream ends in the middle of a chunk")

    seen = []
    with pytest.raises(CodecError, match="middle of a chunk"):
        for item, _ in ahead(items(), lambda n: n, 2):
            seen.append(item)
    assert seen == [1, 2]
    assert _threads() == set()


def test_closing_ahead_early_stops_its_thread() -> None:
    endless = iter(int, 1)  # zeros for ever
    frames = ahead(endless, lambda n: n, 2)
    next(frames)
    frames.close()
    assert _threads() == set()


def test_behind_writes_everything_in_order() -> None:
    written = []
    with behind(written.append, 2) as put:
        for n in range(50):
            put(n)
    assert written == list(range(50))
    assert _threads() == set()


def test_an_error_of_the_writer_reaches_the_loop() -> None:
    def write(n: int) -> None:
        if n == 5:
            raise CodecError("disk full")

    with pytest.raises(CodecError, match="disk full"), behind(write, 2) as put:
        for n in range(1000):
            put(n)
    assert _threads() == set()


def test_an_error_of_the_loop_stops_the_writer() -> None:
    written = []
    with pytest.raises(CodecError, match="bad frame"), behind(written.append, 2) as put:
        put(1)
        raise CodecError("bad frame")
    assert written in ([], [1])
    assert _threads() == set()
