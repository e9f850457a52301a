"""The crc32 of any span of one buffer, at a cost independent of the span's length.

zlib's crc32 register is linear over GF(2). With Z(p) the crc32 of the buffer's first p bytes,
``zlib.crc32(data[a:b], c) == Z(b) ^ zeros(c ^ Z(a), b - a)``, where zeros(r, n) is the register r
after n zero bytes: a linear map, applied with one set of byte tables per set bit of n. Z is kept
every CHECKPOINT bytes from a single pass, so a span costs at most 2 * CHECKPOINT bytes of zlib,
however long it is.
"""

from __future__ import annotations

import zlib
from functools import cache

CHECKPOINT = 1024
_MASK = 0xFFFFFFFF

_Tables = tuple[tuple[int, ...], ...]


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
    """Running crc32s of ``data`` every CHECKPOINT bytes, from which any span's crc32 follows."""

    def __init__(self, data: bytes) -> None:
        self.view = memoryview(data)
        self.marks = [0]
        for start in range(0, len(data), CHECKPOINT):
            self.marks.append(zlib.crc32(self.view[start : start + CHECKPOINT], self.marks[-1]))

    def _prefix(self, end: int) -> int:
        base = end - end % CHECKPOINT
        return zlib.crc32(self.view[base:end], self.marks[base // CHECKPOINT])

    def crc32(self, start: int, end: int, value: int = 0) -> int:
        """``zlib.crc32(data[start:end], value)``, reading at most 2 * CHECKPOINT bytes."""
        return self._prefix(end) ^ append_zeros(value ^ self._prefix(start), end - start)
