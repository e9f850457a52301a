"""The decoder's two helper threads: parsing ahead of the frame loop and writing behind it.

Each runs beside the loop through a bounded queue, so a decode holds a fixed number of frames
whatever the stream's length, and the cores overlap: while the loop reconstructs M-frames (compiled
kernels, without the GIL), the thread ahead range-decodes the next chunks and runs the next I-frame's
network, and the thread behind converts and writes the frames already made. Results and errors come
out in the stream's order: an error is raised where the sequential decode would have raised it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

Item = TypeVar("Item")
Value = TypeVar("Value")
_POLL = 0.1  # seconds between a blocked thread's looks at whether it should stop


@dataclass
class Outcome(Generic[Value]):
    """What preparing one item gave: its value, or the exception it raised (raised again by :meth:`get`)."""

    value: Value | None = None
    error: Exception | None = None

    def get(self) -> Value | None:
        if self.error is not None:
            raise self.error
        return self.value


def _outcome(prepare: Callable[[Item], Value], item: Item) -> Outcome[Value]:
    try:
        return Outcome(prepare(item))
    except Exception as exc:  # kept for the loop, which raises it only if it uses this item
        return Outcome(error=exc)


@dataclass
class _Failure:
    error: BaseException


_END = object()


def _put(q: queue.Queue, value: object, stop: threading.Event) -> bool:
    """Put ``value`` on the bounded ``q``, waiting for room; False if told to ``stop`` meanwhile."""
    while not stop.is_set():
        try:
            q.put(value, timeout=_POLL)
            return True
        except queue.Full:
            continue
    return False


def ahead(items: Iterable[Item], prepare: Callable[[Item], Value], depth: int) -> Iterator[tuple[Item, Outcome[Value]]]:
    """Each of ``items`` with the :class:`Outcome` of ``prepare(item)``, in order. With ``depth`` > 0
    a thread iterates the items and prepares them, at most ``depth`` ahead of the consumer; with 0
    it all happens here, item by item. An error iterating the items is raised when the consumer
    reaches it; closing this iterator early stops the thread."""
    if depth <= 0:
        for item in items:
            yield item, _outcome(prepare, item)
        return
    done: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def work() -> None:
        try:
            for item in items:
                if not _put(done, (item, _outcome(prepare, item)), stop):
                    return
        except BaseException as exc:  # re-raised in the consumer, in order
            _put(done, _Failure(exc), stop)
            return
        _put(done, _END, stop)

    worker = threading.Thread(target=work, name="decode-ahead", daemon=True)
    worker.start()
    try:
        while (got := done.get()) is not _END:
            if isinstance(got, _Failure):
                raise got.error
            yield got
    finally:
        stop.set()
        worker.join()


@contextmanager
def behind(write: Callable[[Item], object], depth: int) -> Iterator[Callable[[Item], None]]:
    """A ``put`` that hands each item to ``write`` on a thread of its own, at most ``depth`` items
    behind; every item put is written, in order, before the block ends, and an error of ``write``
    is raised by the next ``put`` or at the block's end. If the block raises, the items still
    queued are dropped."""
    pending: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    failed: list[BaseException] = []

    def work() -> None:
        while (item := pending.get()) is not _END:
            if failed or stop.is_set():
                continue  # drain, so that put never waits on a writer that gave up
            try:
                write(item)
            except BaseException as exc:
                failed.append(exc)

    writer = threading.Thread(target=work, name="decode-behind", daemon=True)
    writer.start()

    def put(item: Item) -> None:
        if failed:
            raise failed[0]
        pending.put(item)

    try:
        yield put
    except BaseException:
        stop.set()
        raise
    finally:
        pending.put(_END)
        writer.join()
    if failed:
        raise failed[0]
