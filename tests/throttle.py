"""A TCP proxy on 127.0.0.1 whose server-to-client direction is a token bucket of varying rate:
the network a player meets when its bandwidth drops and recovers; or, without a rate, a plain relay
whose connections reach the server from another loopback address: another host, as the server sees it."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable

PIECE = 1024  # bytes sent at a time: the bucket's depth


class ThrottledProxy:
    """Forwards connections on :attr:`port` to ``upstream`` (a port on 127.0.0.1). Bytes to the
    server pass as they come; bytes to the client leave at ``rate(forwarded)`` bytes/s, where
    ``forwarded`` counts the bytes already sent to clients, so the schedule follows the stream and
    not the speed of the machine running it. ``rate`` None forwards at full speed; ``source`` is the
    address the server sees the connections come from."""

    def __init__(self, upstream: int, rate: Callable[[int], float] | None, source: str = "127.0.0.1") -> None:
        self.upstream, self.rate, self.source = upstream, rate, source
        self.forwarded = 0
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream), source_address=(self.source, 0))
            self.sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            throttled = self.rate is not None
            threading.Thread(target=self._pump, args=(server, client, throttled), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, throttled: bool) -> None:
        try:
            while data := source.recv(PIECE if throttled else 65536):
                if throttled and self.rate is not None:
                    with self.lock:
                        rate = self.rate(self.forwarded)
                        self.forwarded += len(data)
                    time.sleep(len(data) / rate)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
