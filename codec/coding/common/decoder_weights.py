"""The decoder's weights as a client receives them: quantized per output channel and range-coded.

``decoder.onnx`` holds the decoder's graph, its biases and small constants; every convolution
weight in it is an external tensor whose data is not in any file. ``decoder.weights`` holds those
weights as integers: the integer frequency tables they are coded with (Laplace tables of
codec.coding.common.entropy_coding's grid, chosen when the file is written, stored as integers so that no
float enters the decoder's models), for each tensor its name, shape, table and one float32 step per
output channel, then one range-coded payload of all of them. The float weights are
``float32(q) * step``, one IEEE multiplication per weight, so every machine rebuilds the same
network, and the encoder, which opens its decoder the same way, reconstructs what the client does.

    "AECW" | version u8 | tables u16 | per table: entries u16, frequencies u16 x entries |
    tensors u16 | per tensor: name (u8 length, utf-8), ndim u8, dims u32 x ndim, table u16,
    steps f32 x dims[0] | payload length u32 | payload

Every count and size in a file is bounded before anything is allocated or decoded from it: at most
MAX_WEIGHTS weights, each tensor named once, and a payload long enough to hold them at their tables'
cheapest cost. Tensors are decoded one at a time into int32 (a weight's integer is below 2**23), so a
file of MAX_WEIGHTS weights, every one an escape, takes about 6 bytes a weight while it is decoded,
and a step that would make a weight infinite is refused. onnxruntime then checks each tensor's name,
shape and type against the graph.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from codec.coding.common.entropy_coding import (
    SymbolRangeDecoder,
    SymbolRangeEncoder,
    Table,
    fitted_table,
    least_payload,
)
from codec.errors import CodecError, naming

MAGIC = b"AECW"
VERSION = 1
MAX_TENSORS = 1024
MAX_DIM = 1 << 16
MAX_WEIGHTS = 1 << 26  # 64 M weights, 256 MB as float32: far beyond any decoder this codec builds
MAX_NDIM = 8
MAX_TABLE_ENTRIES = 4096  # the grid's widest table has 1,068


def _per_channel(steps: np.ndarray, ndim: int) -> np.ndarray:
    """``steps`` (one per output channel) shaped to broadcast over a tensor of ``ndim`` dimensions."""
    return steps.astype(np.float32).reshape((-1,) + (1,) * (ndim - 1))


@dataclass(frozen=True)
class QuantizedTensor:
    """One weight tensor: integers ``q`` (dims[0] output channels first) and a step per output channel."""

    name: str
    q: np.ndarray
    steps: np.ndarray  # float32, one per output channel

    def weights(self) -> np.ndarray:
        """The float32 weights the decoder runs with: float32(q) times the channel's step."""
        out = self.q.astype(np.float32)
        out *= _per_channel(self.steps, self.q.ndim)  # in place: one float32 copy of the tensor, no more
        return out

    @property
    def size(self) -> int:
        return int(self.q.size)


def quantize_tensor(name: str, weights: np.ndarray, steps: np.ndarray) -> QuantizedTensor:
    """``weights`` (float32, output channels first) rounded to multiples of their channel's step."""
    steps = np.asarray(steps, np.float32)
    if steps.shape != (weights.shape[0],) or not (np.isfinite(steps).all() and (steps > 0).all()):
        raise CodecError(f"{name}: needs one positive finite step per output channel")
    q = np.rint(weights.astype(np.float32) / _per_channel(steps, weights.ndim)).astype(np.int64)
    return QuantizedTensor(name, q, steps)


def pack(tensors: list[QuantizedTensor]) -> bytes:
    """The ``decoder.weights`` file of ``tensors``."""
    chosen = [fitted_table(t.q) for t in tensors]
    position = {index: k for k, index in enumerate(sorted(set(chosen)))}  # grid index -> the file's table
    tables = [Table.from_grid(index) for index in position]
    head = bytearray(MAGIC + struct.pack("<BH", VERSION, len(tables)))
    for table in tables:
        head += struct.pack(f"<H{len(table.frequencies)}H", len(table.frequencies), *table.frequencies)
    head += struct.pack("<H", len(tensors))
    encoder = SymbolRangeEncoder()
    for t, index in zip(tensors, chosen, strict=True):
        table = tables[position[index]]
        name = t.name.encode()
        head += struct.pack("<B", len(name)) + name + struct.pack("<B", t.q.ndim)
        head += struct.pack(f"<{t.q.ndim}I", *t.q.shape) + struct.pack("<H", position[index])
        head += t.steps.astype("<f4").tobytes()
        encoder.encode_block(t.q, table, table.model())
    payload = encoder.finish()
    return bytes(head) + struct.pack("<I", len(payload)) + payload


class _Reader:
    def __init__(self, data: bytes, source: str) -> None:
        self.data, self.source, self.at = data, source, 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise CodecError(f"{self.source}: ends inside its header (byte {self.at} of {len(self.data)})")
        out = self.data[self.at : self.at + n]
        self.at += n
        return out

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))


def decode_weights(data: bytes, source: str) -> Iterator[QuantizedTensor]:
    """The tensors of a ``decoder.weights`` file, decoded one at a time as they are iterated (int32
    integers, four bytes a weight, so a caller that turns each into float32 weights at once never
    holds them all twice). The whole header is parsed and bounded first, here: a malformed file, or
    a payload too short to hold what the header declares, is a CodecError before anything is decoded;
    a payload that does not decode, or a step that would make a weight infinite, is one as the
    tensor is reached."""
    heads, tables, payload = _parse(data, source)
    least = least_payload(sum(math.prod(dims) * tables[index].min_bits for _, dims, index, _ in heads))
    if len(payload) < least:  # the coder would decode the rest from its padding, not fail
        raise CodecError(f"{source}: payload of {len(payload)} bytes cannot hold its weights (at least {least} bytes)")
    return _decode(heads, tables, payload, source)


def unpack(data: bytes, source: str) -> list[QuantizedTensor]:
    """Every tensor of a ``decoder.weights`` file (see :func:`decode_weights`)."""
    return list(decode_weights(data, source))


_Head = tuple[str, tuple[int, ...], int, np.ndarray]  # name, dims, table, steps


def _parse(data: bytes, source: str) -> tuple[list[_Head], list[Table], memoryview]:
    """The tensors' heads, the tables and the payload of a ``decoder.weights`` file, every count and
    size bounded."""
    r = _Reader(data, source)
    if r.take(4) != MAGIC:
        raise CodecError(f"{source}: not a decoder weights file")
    version, n_tables = r.unpack("<BH")
    if version != VERSION:
        raise CodecError(f"{source}: decoder weights version {version}; this aecodec reads version {VERSION}")
    if n_tables > MAX_TENSORS:
        raise CodecError(f"{source}: claims {n_tables} tables, more than {MAX_TENSORS}")
    tables = []
    for k in range(n_tables):
        (entries,) = r.unpack("<H")
        if entries > MAX_TABLE_ENTRIES:
            raise CodecError(f"{source}: table {k} claims {entries} entries, more than {MAX_TABLE_ENTRIES}")
        table = Table(r.unpack(f"<{entries}H"))
        if not table.valid:
            raise CodecError(f"{source}: table {k} is not a valid frequency table")
        tables.append(table)
    (count,) = r.unpack("<H")
    if count > MAX_TENSORS:
        raise CodecError(f"{source}: claims {count} tensors, more than {MAX_TENSORS}")
    heads: list[_Head] = []
    names: set[str] = set()
    total = 0
    for _ in range(count):
        (length,) = r.unpack("<B")
        try:
            name = r.take(length).decode()
        except UnicodeDecodeError:
            raise CodecError(f"{source}: a tensor name is not utf-8") from None
        if name in names:
            raise CodecError(f"{source}: names tensor {name[:40]!r} twice")
        names.add(name)
        (ndim,) = r.unpack("<B")
        if not 1 <= ndim <= MAX_NDIM:
            raise CodecError(f"{source}: tensor {name[:40]!r} has {ndim} dimensions")
        dims = r.unpack(f"<{ndim}I")
        if not all(1 <= d <= MAX_DIM for d in dims):
            raise CodecError(f"{source}: tensor {name[:40]!r} has a dimension outside 1..{MAX_DIM}")
        total += math.prod(dims)
        if total > MAX_WEIGHTS:
            raise CodecError(f"{source}: claims more than {MAX_WEIGHTS} weights")
        (index,) = r.unpack("<H")
        if index >= len(tables):
            raise CodecError(f"{source}: tensor {name[:40]!r} names table {index}; the file has {len(tables)}")
        steps = np.frombuffer(r.take(4 * dims[0]), "<f4").astype(np.float32)
        if not (np.isfinite(steps).all() and (steps > 0).all()):
            raise CodecError(f"{source}: tensor {name[:40]!r} has a step that is not positive and finite")
        heads.append((name, dims, index, steps))
    (length,) = r.unpack("<I")
    if length != len(data) - r.at:
        raise CodecError(f"{source}: payload of {len(data) - r.at} bytes where its header says {length}")
    return heads, tables, memoryview(data)[r.at :]


def _decode(heads: list[_Head], tables: list[Table], payload: memoryview, source: str) -> Iterator[QuantizedTensor]:
    decoder = SymbolRangeDecoder(payload)
    models = [table.model() for table in tables]
    for name, dims, index, steps in heads:
        q = np.empty(dims, np.int32)
        with naming(f"{source}: tensor {name[:40]!r}"):
            decoder.decode_into(q.reshape(-1), tables[index], models[index])
        rows = q.reshape(dims[0], -1)
        peak = np.maximum(rows.max(axis=1), -rows.min(axis=1).astype(np.int64)).astype(np.float32)
        with np.errstate(over="ignore"):
            if not np.isfinite(peak * steps).all():  # the largest weight of each channel, as the client computes it
                raise CodecError(f"{source}: tensor {name[:40]!r} has a weight beyond float32's range")
        yield QuantizedTensor(name, q, steps)
