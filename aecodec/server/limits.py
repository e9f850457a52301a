"""What bounds a client's hold on the server: slots for streams and downloads, taken before the
server waits on the client, at most a share of them per peer, and a reaper that cancels calls
whose client stopped moving.

A call is *stalled* while its client neither sends nor takes a message (a full flow-control window,
a first frame that never comes); a call waiting on the server's own work (an encode) is touched as
it waits, so it is never stalled. When the slots, or a peer's share of them, are full, a new call
takes the slot of the longest-stalled call there (stalled at least ``EVICT_AFTER_S``) instead of
being refused, so clients that open streams and stop reading cannot keep a slot from one that reads.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import grpc

log = logging.getLogger("aecodec.server")
EVICT_AFTER_S = 0.5  # a call stalled this long gives its slot to a new call rather than have it refused


def peer_address(context: grpc.ServicerContext) -> str:
    """The client's address without its port (``ipv4:10.0.0.7:51234`` -> ``ipv4:10.0.0.7``): the
    connections of one host count as one peer."""
    peer = context.peer() or "unknown"
    if peer.startswith(("ipv4:", "ipv6:")):
        return peer.rsplit(":", 1)[0]
    return peer


class Watch:
    """One call under the reaper's eye: ``touch()`` whenever the client moved, or while the server works for it."""

    def __init__(self, context: grpc.ServicerContext, timeout: float, peer: str = "") -> None:
        self.context, self.timeout, self.peer = context, timeout, peer
        self.touched = time.monotonic()
        self.expired = False  # cancelled by the reaper or evicted

    def touch(self) -> None:
        self.touched = time.monotonic()

    @property
    def deadline(self) -> float:
        return self.touched + self.timeout

    def stalled_for(self, now: float) -> float:
        return now - self.touched


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
    def watch(self, context: grpc.ServicerContext, timeout: float, peer: str = "") -> Iterator[Watch]:
        watch = Watch(context, timeout, peer)
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


class Slots:
    """At most ``limit`` calls of one kind at once, at most ``per_peer`` of them from one peer. One
    more takes the slot of the longest-stalled call (of its own peer when that peer is at its
    share), or is refused at once when none is stalled; it is never queued."""

    def __init__(self, limit: int, what: str, reaper: Reaper, timeout: float, per_peer: int | None = None) -> None:
        self.limit, self.what, self.reaper, self.timeout = limit, what, reaper, timeout
        self.per_peer = min(limit, per_peer or limit)
        self.held: set[Watch] = set()
        self.lock = threading.Lock()

    def can_take(self) -> bool:
        """Whether a call from a new peer would be let in now."""
        with self.lock:
            return len(self.held) < self.limit or self._stalled(self.held) is not None

    def _stalled(self, among: Iterable[Watch]) -> Watch | None:
        now = time.monotonic()
        stalled = [w for w in among if not w.expired and w.stalled_for(now) >= EVICT_AFTER_S]
        return max(stalled, key=lambda w: w.stalled_for(now), default=None)

    @contextmanager
    def hold(self, context: grpc.ServicerContext) -> Iterator[Watch]:
        """A slot for this call, and its watch: ``touch()`` it whenever the call moves."""
        peer = peer_address(context)
        with self.lock:
            own = [w for w in self.held if w.peer == peer]
            victim, refusal = None, None
            if len(own) >= self.per_peer:
                victim = self._stalled(own)
                refusal = f"server is at its limit of {self.per_peer} {self.what} from one client"
            elif len(self.held) >= self.limit:
                victim = self._stalled(self.held)
                refusal = f"server is at its limit of {self.limit} {self.what}"
            if victim is not None:
                victim.expired = True
                self.held.discard(victim)
            elif refusal is not None:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal)
        if victim is not None:
            stalled = round(victim.stalled_for(time.monotonic()), 2)
            log.info(json.dumps({"event": "evicted", "peer": victim.peer, "stalled_s": stalled, "for": peer}))
            victim.context.cancel()
        with self.reaper.watch(context, self.timeout, peer) as watch:
            with self.lock:
                self.held.add(watch)
            try:
                yield watch
            finally:
                with self.lock:
                    self.held.discard(watch)
