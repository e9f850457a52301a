"""The crc32 of any span of a file, at a cost independent of the span's length.

zlib's crc32 register is linear over GF(2). With Z(p) the crc32 of the bytes from some origin up to
p, ``zlib.crc32(data[a:b], c) == Z(b) ^ zeros(c ^ Z(a), b - a)``, where zeros(r, n) is the register r
after n zero bytes: a linear map, applied with one set of byte tables per set bit of n. Z is kept
every CHECKPOINT bytes, read forward once as far as a span reaches and dropped behind where spans
may start, so a span costs at most 2 * CHECKPOINT bytes of zlib, however long it is, each byte is
read into a mark at most once, and the marks held span no more than the longest span asked for.
"""

from __future__ import annotations

import zlib
from array import array
from collections.abc import Callable
from functools import cache

CHECKPOINT = 1024
GROUP = 64  # checkpoints read at a time
_MASK = 0xFFFFFFFF

_Tables = tuple[tuple[int, ...], ...]
Read = Callable[[int, int], bytes]  # (position, count) -> the bytes there


def _apply(tables: _Tables, register: int) -> int:
    low, mid, high, top = tables
    return low[register & 255] ^ mid[register >> 8 & 255] ^ high[register >> 16 & 255] ^ top[register >> 24]


@cache
def _zeros_tables(k: int) -> _Tables:
    """The map 'append 2**k zero bytes', as four tables: its value on each byte of the register."""
    if k == 0:
        return tuple(tuple(zlib.crc32(b"\0", b << 8 * j ^ _MASK) ^ _MASK for b in range(256)) for j in range(4))
    half = _zeros_tables(k - 1)
    return tuple(tuple(_apply(half, _apply(half, b << 8 * j)) for b in range(256)) for j in range(4))


def append_zeros(register: int, count: int) -> int:
    """The crc32 register ``register`` after ``count`` zero bytes."""
    k = 0
    while count:
        if count & 1:
            register = _apply(_zeros_tables(k), register)
        count >>= 1
        k += 1
    return register


class SpanCrc:
    """Running crc32s of a file every CHECKPOINT bytes from ``start``, read through ``read`` as far
    as the spans asked for reach, from which any span's crc32 follows."""

    def __init__(self, read: Read, start: int = 0) -> None:
        self.read = read
        self.base = start  # where marks[0] is
        self.marks = array("I", [0])  # Z at base + i * CHECKPOINT

    def forget(self, pos: int) -> None:
        """No span starts before ``pos`` from now on: drop the marks behind it (all of them, and count
        from ``pos`` afresh, where none reaches it)."""
        behind = (pos - self.base) // CHECKPOINT
        if behind >= len(self.marks):
            self.base, self.marks = pos, array("I", [0])
        elif behind > 0:
            self.base += behind * CHECKPOINT
            del self.marks[:behind]

    def _mark(self, k: int) -> int:
        """Z at base + k * CHECKPOINT, the marks up to it read first."""
        while (have := len(self.marks) - 1) < k:
            count = min(k - have, GROUP)
            block = memoryview(self.read(self.base + have * CHECKPOINT, count * CHECKPOINT))
            for i in range(count):
                self.marks.append(zlib.crc32(block[i * CHECKPOINT : (i + 1) * CHECKPOINT], self.marks[-1]))
        return self.marks[k]

    def _prefix(self, end: int) -> int:
        k = (end - self.base) // CHECKPOINT
        mark = self.base + k * CHECKPOINT
        return zlib.crc32(self.read(mark, end - mark), self._mark(k))

    def crc32(self, start: int, end: int, value: int = 0) -> int:
        """``zlib.crc32`` of the file's bytes ``start:end`` from ``value`` (``start`` at or after the
        last :meth:`forget`), reading at most 2 * CHECKPOINT bytes besides the marks."""
        return self._prefix(end) ^ append_zeros(value ^ self._prefix(start), end - start)
