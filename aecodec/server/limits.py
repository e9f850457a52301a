"""What bounds a client's hold on the server: slots for streams and downloads, taken before the
server waits on the client, and a reaper that cancels calls whose client stopped moving."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import grpc


class Slots:
    """At most ``limit`` calls of one kind at once; one more is refused at once, never queued."""

    def __init__(self, limit: int, what: str) -> None:
        self.limit, self.what = limit, what
        self.active = 0
        self.lock = threading.Lock()

    @contextmanager
    def hold(self, context: grpc.ServicerContext) -> Iterator[None]:
        with self.lock:
            full = self.active >= self.limit
            if not full:
                self.active += 1
        if full:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"server is at its limit of {self.limit} {self.what}")
        try:
            yield
        finally:
            with self.lock:
                self.active -= 1


class Watch:
    """One call under the reaper's eye: ``touch()`` whenever the client moved."""

    def __init__(self, context: grpc.ServicerContext, timeout: float) -> None:
        self.context, self.timeout = context, timeout
        self.deadline = time.monotonic() + timeout
        self.expired = False

    def touch(self) -> None:
        self.deadline = time.monotonic() + self.timeout


class Reaper:
    """Cancels any watched call whose client has neither sent nor taken a message for its timeout:
    a client that never sends its first frame, stalls mid-stream, or stops reading its replies
    frees its slot and its worker thread within ``timeout`` plus one tick. One thread serves all."""

    def __init__(self, tick: float = 0.25) -> None:
        self.tick = tick
        self.watches: set[Watch] = set()
        self.lock = threading.Lock()
        threading.Thread(target=self._run, name="reaper", daemon=True).start()

    @contextmanager
    def watch(self, context: grpc.ServicerContext, timeout: float) -> Iterator[Watch]:
        watch = Watch(context, timeout)
        with self.lock:
            self.watches.add(watch)
        try:
            yield watch
        finally:
            with self.lock:
                self.watches.discard(watch)

    def _run(self) -> None:
        while True:
            time.sleep(self.tick)
            now = time.monotonic()
            with self.lock:
                overdue = [w for w in self.watches if w.deadline < now and not w.expired]
            for watch in overdue:
                watch.expired = True
                watch.context.cancel()
