"""Coding-time entropy coder: integer frequency tables and constriction's range coder.

The decoding side builds every probability model from integers stored in the bundle (frequency
tables summing to 2**16, table indices, integer centres), never from a float computed by a network
or by a transcendental function, so a stream decodes bit-exactly on any machine.

An I-frame codes each latent channel as a block of symbols under one table; a P-frame codes each
channel in one block per temporal context bucket (codec.coding.common.context), in raster order within it:

    I-frame:  s = q - centre[c]          table intra[c]
    P-frame:  s = q_t - q_(t-1)          table inter[c][bucket], bucket from the previous residual

A table covers the symbols -R..R plus an escape; an escaped symbol's value is then coded exactly
with uniform models (sign, bit length, remaining bits), so nothing is ever clipped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import constriction
import numpy as np

from codec.coding.common.bitstream import I_FRAME, WORD
from codec.coding.common.context import CONTEXTS, MIN_SAMPLES, PREDICTED_PASSES, intra_histograms, residual_histograms
from codec.errors import CodecError
from codec.io.bundle import ENTROPY_FILE, Bundle

PRECISION = 16
TOTAL = 1 << PRECISION
# Laplace scales, in units of the quantization step, that tables are built for: log-spaced.
SCALE_MIN, SCALE_MAX, SCALE_BINS = 0.04, 64.0, 96
TAIL_BITS = 12  # the table's range -R..R leaves at most ~2**-12 of the mass to the escape
MAX_MAGNITUDE_BITS = 22  # |symbol| < 2**22; larger latents are refused
DECODE_CHUNK = 1 << 20  # symbols decoded at once
SLACK_WORDS = 2  # what a payload may fall short of its symbols' least information, at most


def least_payload(bits: float) -> int:
    """The fewest bytes a payload can have whose symbols hold at least ``bits`` bits of information
    (the sum of each symbol's cheapest cost): less SLACK_WORDS for the coder's rounding, and at
    least one word. A shorter payload would be decoded from the coder's padding, not refused."""
    return WORD * max(1, math.floor(bits / (8 * WORD)) - SLACK_WORDS)


def laplace_bits(x: np.ndarray, loc: np.ndarray | float, scale: np.ndarray, step: float) -> np.ndarray:
    """-log2 of the mass a Laplace(loc, scale) puts on [x - step/2, x + step/2], elementwise: the
    model's estimate of the bits, in numpy (the differentiable twin is codec.train.prior.laplace_bits)."""
    z = np.abs(x - loc)
    half = step / 2
    with np.errstate(over="ignore", invalid="ignore"):
        outer = math.log(0.5) - (z - half) / scale + np.log(-np.expm1(-step / scale))
        inner_mass = 1 - 0.5 * (np.exp(-np.maximum(half - z, 0) / scale) + np.exp(-(half + z) / scale))
        inner = np.log(np.maximum(inner_mass, 1e-9))
    log_p = np.maximum(np.where(z >= half, outer, inner), math.log(1e-9))
    return -log_p / math.log(2)


def estimate_bits(
    q: np.ndarray, previous: np.ndarray | None, frame_type: int, prior: dict[str, list[float]], step: float
) -> np.ndarray:
    """The model's estimate of a frame's bits: the continuous priors, before snapping to tables."""
    if frame_type == I_FRAME or previous is None:
        loc = np.asarray(prior["intra_loc"])[:, None, None]
        return laplace_bits(q * step, loc, np.asarray(prior["intra_scale"])[:, None, None], step)
    return laplace_bits((q - previous) * step, 0.0, np.asarray(prior["inter_scale"])[:, None, None], step)


def scale_grid() -> np.ndarray:
    return np.exp(np.linspace(math.log(SCALE_MIN), math.log(SCALE_MAX), SCALE_BINS))


def scale_index(scale: float) -> int:
    """Nearest table scale (in log space) for a Laplace scale in quantization-step units."""
    pos = (
        (math.log(max(scale, SCALE_MIN)) - math.log(SCALE_MIN))
        / (math.log(SCALE_MAX) - math.log(SCALE_MIN))
        * (SCALE_BINS - 1)
    )
    return int(min(SCALE_BINS - 1, max(0, round(pos))))


def laplace_frequencies(scale: float) -> list[int]:
    """Integer frequencies (sum 2**16, each >= 1) of a zero-centred discretized Laplace over
    -R..R followed by one escape entry. Built once when a bundle is written."""
    radius = max(1, math.ceil(scale * TAIL_BITS * math.log(2)))
    k = np.arange(-radius, radius + 1, dtype=np.float64)
    upper = np.where(k >= 0, 1 - 0.5 * np.exp(-(k + 0.5) / scale), 0.5 * np.exp((k + 0.5) / scale))
    lower = np.where(k - 1 >= 0, 1 - 0.5 * np.exp(-(k - 0.5) / scale), 0.5 * np.exp((k - 0.5) / scale))
    return _integer_frequencies(np.append(upper - lower, 2 * 0.5 * math.exp(-(radius + 0.5) / scale)))


def _integer_frequencies(pmf: np.ndarray) -> list[int]:
    """``pmf`` (the symbols, then the escape) as integer frequencies summing to 2**16, each >= 1."""
    freqs = np.maximum(1, np.floor(pmf / pmf.sum() * (TOTAL - len(pmf)))).astype(np.int64)
    freqs[int(np.argmax(freqs))] += TOTAL - int(freqs.sum())
    return freqs.tolist()


def zero_deflated_frequencies(zero: float, ratio: float) -> list[int]:
    """Integer frequencies (as :func:`laplace_frequencies`) of a symbol that is 0 with probability
    ``zero`` and otherwise +-k with probability falling by ``ratio`` per step from k = 1: the shape of
    a residual's DC level in a block that is coded at all, which no Laplace fits."""
    radius = max(2, math.ceil(1 + TAIL_BITS * math.log(2) / -math.log(ratio)))
    side = (1 - zero) / 2 * (1 - ratio) * ratio ** np.arange(radius, dtype=np.float64)
    return _integer_frequencies(np.concatenate([side[::-1], [zero], side, [(1 - zero) * ratio**radius]]))


@cache
def _code_lengths(span: int) -> np.ndarray:
    """(SCALE_BINS, 2 span + 1): bits of each residual -span..span under each table of the grid,
    escapes priced as the coder codes them."""
    values = np.arange(-span, span + 1)
    lengths = np.empty((SCALE_BINS, len(values)))
    for i, scale in enumerate(scale_grid()):
        freqs = np.asarray(laplace_frequencies(float(scale)), np.float64)
        radius = (len(freqs) - 2) // 2
        inside = np.abs(values) <= radius
        excess = np.maximum(np.abs(values) - radius, 1)
        escape = -np.log2(freqs[-1] / TOTAL) + 1 + math.log2(MAX_MAGNITUDE_BITS + 1) + np.floor(np.log2(excess))
        index = np.clip(values + radius, 0, len(freqs) - 1)
        lengths[i] = np.where(inside, -np.log2(freqs[index] / TOTAL), escape)
    return lengths


def fitted_table(symbols: np.ndarray, span: int = 1024) -> int:
    """The grid table that codes ``symbols`` in the fewest bits (escapes priced as coded)."""
    cells = np.clip(np.asarray(symbols, np.int64).ravel(), -span, span) + span
    counts = np.bincount(cells, minlength=2 * span + 1).astype(np.float64)
    return int((_code_lengths(span) @ counts).argmin())


def _fitted_inter_tables(latents: np.ndarray, step: float, gop: int, learned: list[int]) -> list[list[int]]:
    """Per channel and context bucket, the grid table that codes the P residuals of ``latents``
    quantized with ``step`` shortest. A GOP at a time: no P residual crosses an I-frame, so the counts
    are the whole video's, in the memory of one GOP's integers."""
    span = 1024
    counts = sum(
        residual_histograms(np.rint(latents[t : t + gop] / step).astype(np.int64), gop, span)
        for t in range(0, len(latents), gop)
    )
    return _best_tables(counts, span, learned)


def _best_tables(counts: np.ndarray, span: int, learned: list[int]) -> list[list[int]]:
    """Per channel and bucket of ``counts`` (C, buckets, 2 span + 1), the grid table that codes them
    in the fewest bits; a bucket seen fewer than MIN_SAMPLES times keeps its channel's ``learned`` one."""
    best = np.einsum("ckv,sv->cks", counts.astype(np.float64), _code_lengths(span)).argmin(-1)
    return [
        [int(best[c, k]) if counts[c, k].sum() >= MIN_SAMPLES else learned[c] for k in range(counts.shape[1])]
        for c in range(len(learned))
    ]


def _fitted_intra_tables(latents: np.ndarray, step: float, centre: list[int], learned: list[int]) -> list[list[int]]:
    """Per channel, I-frame pass (after the first) and spatial bucket, the grid table that codes the
    predicted symbols of the I-frame latents of ``latents`` quantized with ``step`` shortest (16
    frames at a time)."""
    span = 1024
    centres = np.asarray(centre, np.int64)
    counts = sum(
        intra_histograms(np.rint(latents[t : t + 16] / step).astype(np.int64), centres, span)
        for t in range(0, len(latents), 16)
    )
    return _best_tables(counts, span, learned)


@dataclass(frozen=True)
class Table:
    """One integer table: symbols -radius..radius, then the escape."""

    frequencies: tuple[int, ...]

    @property
    def radius(self) -> int:
        return (len(self.frequencies) - 2) // 2

    @property
    def min_bits(self) -> float:
        """A lower bound on what any symbol costs under this table: the likeliest symbol's bits, its
        frequency raised by one per entry for the coder's own fixed-point rounding."""
        return -math.log2(min(TOTAL, max(self.frequencies) + len(self.frequencies)) / TOTAL)

    @property
    def valid(self) -> bool:
        """Symbols -R..R and the escape, every frequency at least 1, summing to 2**16."""
        f = self.frequencies
        return len(f) >= 4 and len(f) % 2 == 0 and sum(f) == TOTAL and min(f) >= 1

    @classmethod
    def from_grid(cls, index: int) -> Table:
        """The Laplace table of the grid's scale ``index``."""
        return cls(tuple(laplace_frequencies(float(scale_grid()[index]))))

    def model(self) -> Any:
        probabilities = np.asarray(self.frequencies, dtype=np.float64) / TOTAL
        return constriction.stream.model.Categorical(probabilities, perfect=False)


@dataclass(frozen=True)
class Level:
    """One quality level: its quantization step and, per channel, integer coding parameters."""

    step: float
    intra_table: tuple[int, ...]  # an I-frame's first pass
    intra_centre: tuple[int, ...]
    inter_table: tuple[tuple[int, ...], ...]  # per channel, per temporal context bucket
    # An I-frame's later passes: per channel, per pass and spatial bucket (pass-major). None for a
    # bundle written without them, whose I-frames code each channel whole under its own table.
    intra_pass_table: tuple[tuple[int, ...], ...] | None

    def table_indices(self) -> set[int]:
        return set(self.intra_table).union(*self.inter_table, *(self.intra_pass_table or ()))


@dataclass(frozen=True)
class CodingTables:
    """Everything the entropy coder needs, as stored in the bundle's entropy.json."""

    levels: tuple[Level, ...]
    tables: dict[int, Table]

    @classmethod
    def build(
        cls, prior: dict[str, list[float]], steps: list[float], latents: np.ndarray | None = None, gop: int = 1
    ) -> CodingTables:
        """Snap the learned priors to integer tables, for each quantization step. With ``latents``
        (T, C, h, w, the video's unquantized latents), each channel's P table per temporal context
        bucket is the one that codes the video's own P residuals in the fewest bits (I-frames every
        ``gop``), and its I-frame table per later pass and spatial bucket the one that codes the
        video's own predicted I-frame symbols in the fewest; without them, or for a bucket the video
        hardly uses, it is the channel's learned one (as the I-frame's first pass always is)."""
        levels, used = [], set()
        for step in steps:
            learned = [scale_index(s / step) for s in prior["inter_scale"]]
            intra = [scale_index(s / step) for s in prior["intra_scale"]]
            centre = [round(loc / step) for loc in prior["intra_loc"]]
            inter = [[i] * CONTEXTS for i in learned]
            spatial = [[i] * (PREDICTED_PASSES * CONTEXTS) for i in intra]
            if latents is not None and len(latents) > 1:
                inter = _fitted_inter_tables(latents, step, gop, learned)
            if latents is not None and len(latents):
                spatial = _fitted_intra_tables(latents, step, centre, intra)
            level = Level(
                step=float(step),
                intra_table=tuple(intra),
                intra_centre=tuple(centre),
                inter_table=tuple(tuple(row) for row in inter),
                intra_pass_table=tuple(tuple(row) for row in spatial),
            )
            used.update(level.table_indices())
            levels.append(level)
        tables = {i: Table.from_grid(i) for i in sorted(used)}
        return cls(tuple(levels), tables)

    def to_json(self) -> dict[str, Any]:
        return {
            "precision": PRECISION,
            "levels": [
                {
                    "step": lv.step,
                    "intra_table": list(lv.intra_table),
                    "intra_centre": list(lv.intra_centre),
                    "inter_table": [list(row) for row in lv.inter_table],
                    **({"intra_pass_table": [list(r) for r in lv.intra_pass_table]} if lv.intra_pass_table else {}),
                }
                for lv in self.levels
            ],
            "tables": {str(i): list(t.frequencies) for i, t in self.tables.items()},
        }

    @classmethod
    def from_bundle(cls, bundle: Bundle) -> CodingTables:
        """The tables of ``bundle``'s entropy.json."""
        return cls.from_json(bundle.entropy(), str(bundle.file(ENTROPY_FILE)))

    @classmethod
    def from_json(cls, obj: dict[str, Any], source: str) -> CodingTables:
        """Read and check the tables; anything malformed is a CodecError naming the field."""
        try:
            if obj["precision"] != PRECISION:
                raise CodecError(f"{source}: table precision {obj['precision']} is not {PRECISION}")
            tables = {int(i): Table(tuple(int(f) for f in freqs)) for i, freqs in obj["tables"].items()}
            levels = tuple(
                Level(
                    float(lv["step"]),
                    tuple(int(i) for i in lv["intra_table"]),
                    tuple(int(c) for c in lv["intra_centre"]),
                    _rows(lv["inter_table"]),
                    _rows(lv["intra_pass_table"]) if "intra_pass_table" in lv else None,
                )
                for lv in obj["levels"]
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CodecError(f"{source}: malformed entropy tables ({type(exc).__name__}: {exc})") from None
        for i, table in tables.items():
            if not 0 <= i < SCALE_BINS:  # numbers of the grid's tables, which index a frame's blocks
                raise CodecError(f"{source}: table number {i} is not one of the grid's 0..{SCALE_BINS - 1}")
            if not table.valid:
                raise CodecError(f"{source}: table {i} is not a valid frequency table")
        for k, lv in enumerate(levels):
            spatial = lv.intra_pass_table or ()
            if (
                len(lv.inter_table) != len(lv.intra_table)
                or (lv.intra_pass_table is not None and len(spatial) != len(lv.intra_table))
                or any(len(row) != CONTEXTS for row in lv.inter_table)
                or any(len(row) != PREDICTED_PASSES * CONTEXTS for row in spatial)
            ):
                raise CodecError(
                    f"{source}: quality level {k} does not give {CONTEXTS} P tables and "
                    f"{PREDICTED_PASSES} x {CONTEXTS} I-frame pass tables for every channel"
                )
            if lv.table_indices() - tables.keys() or not lv.step > 0:
                raise CodecError(f"{source}: quality level {k} refers to missing tables or has a bad step")
        return cls(levels, tables)


def _rows(raw: Any) -> tuple[tuple[int, ...], ...]:
    """A per channel, per bucket table of table indices from entropy.json."""
    return tuple(tuple(int(i) for i in row) for row in raw)


def bit_split(magnitudes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positive integers m (below 2**MAX_MAGNITUDE_BITS) as (n, low), m = 2**n + low, 0 <= low < 2**n
    (exact: log2 of such an integer is far from rounding across a power of two)."""
    m = np.asarray(magnitudes, np.int64)
    n = np.floor(np.log2(m)).astype(np.int64)
    return n, m - (1 << n)


def _escape_parts(values: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split escaped symbols v into (sign, n, low) with |v| - radius = 2**n + low, 0 <= low < 2**n."""
    n, low = bit_split(np.abs(values) - radius)
    return (values < 0).astype(np.int32), n.astype(np.int32), low


def table_bits(symbols: np.ndarray, table: Table) -> float:
    """What ``symbols`` cost under ``table``, an escape at a rough 24 bits: for an encoder choosing a
    table, whose choice the decoder reads rather than recomputes."""
    f = np.asarray(table.frequencies, np.float64)
    inside = np.abs(symbols) <= table.radius
    index = np.where(inside, symbols + table.radius, len(f) - 1)
    return float(-np.log2(f[index] / TOTAL).sum() + 24 * np.count_nonzero(~inside))


_COSTS: dict[int, tuple[Sequence[Table], np.ndarray]] = {}  # by id of the (kept) sequence of tables


def _costs(tables: Sequence[Table]) -> np.ndarray:
    """(len(tables), 2 R + 2): :func:`table_bits` of each value -R..R (R the widest table's radius),
    then of any beyond, under each of ``tables``; computed once per sequence."""
    entry = _COSTS.get(id(tables))
    if entry is None or entry[0] is not tables:
        radius = max(t.radius for t in tables)
        values = np.arange(-radius, radius + 2)  # the last stands for every value beyond R
        costs = np.array([[table_bits(np.array([v]), t) for v in values] for t in tables])
        entry = _COSTS[id(tables)] = (tables, costs)
    return entry[1]


def best_table(symbols: np.ndarray, tables: Sequence[Table]) -> tuple[int, float]:
    """The one of ``tables`` that codes ``symbols`` shortest, and its :func:`table_bits`."""
    costs = _costs(tables)
    radius = (costs.shape[1] - 2) // 2
    flat = np.asarray(symbols, np.int64).ravel()
    cells = np.where(np.abs(flat) > radius, 2 * radius + 1, flat + radius)
    bits = costs @ np.bincount(cells, minlength=costs.shape[1])
    choice = int(np.argmin(bits))
    return choice, float(bits[choice])


def choosing_bits(symbols: np.ndarray, tables: Sequence[Table]) -> float:
    """What :meth:`SymbolRangeEncoder.encode_choosing` spends on ``symbols``: the number of the table
    that codes them shortest, then them under it (nothing for no symbols)."""
    if not symbols.size:
        return 0.0
    return math.log2(len(tables)) + best_table(symbols, tables)[1]


# The probabilities of a 0 a set of flags may be coded under, in 4096ths: 4096 x sigmoid of 32 even
# steps of the log-odds from -8 to 8, rounded (a set names its step in 5 bits). Integers, written
# here, so no decoder computes one.
FLAG_ZEROS = (
    1, 2, 4, 6, 11, 18, 30, 50, 84, 138, 226, 366, 578, 884, 1293, 1785,
    2311, 2803, 3212, 3518, 3730, 3870, 3958, 4012, 4046, 4066, 4078, 4085, 4090, 4092, 4094, 4095,
)  # fmt: skip


@cache
def _flag_models() -> tuple[Any, ...]:
    """The binary model of each of FLAG_ZEROS."""
    return tuple(
        constriction.stream.model.Categorical(np.array([z, 4096 - z], np.float64) / 4096, perfect=False)
        for z in FLAG_ZEROS
    )


def _flag_step(flags: np.ndarray) -> int:
    """The step of FLAG_ZEROS that codes ``flags`` shortest."""
    zeros = np.asarray(FLAG_ZEROS, np.float64) / 4096
    ones = int(np.count_nonzero(flags))
    return int(np.argmin(-(flags.size - ones) * np.log2(zeros) - ones * np.log2(1 - zeros)))


class SymbolRangeEncoder:
    """Range-codes the blocks of integer symbols that make up one frame's payload."""

    def __init__(self) -> None:
        self.coder = constriction.stream.queue.RangeEncoder()

    def encode_flags(self, flags: np.ndarray) -> None:
        """Binary ``flags`` under the one of FLAG_ZEROS that codes them shortest, named first in 5
        bits; an empty set costs nothing (the decoder knows how many flags it reads)."""
        if flags.size:
            step = _flag_step(flags)
            self.coder.encode(np.array([step], np.int32), constriction.stream.model.Uniform(len(FLAG_ZEROS)))
            self.coder.encode(flags.astype(np.int32), _flag_models()[step])

    def encode_choosing(self, symbols: np.ndarray, tables: Sequence[Table]) -> None:
        """``symbols`` under whichever of ``tables`` codes them shortest, its number first."""
        choice = best_table(symbols, tables)[0]
        self.coder.encode(np.array([choice], np.int32), constriction.stream.model.Uniform(len(tables)))
        self.encode_block(symbols, tables[choice], tables[choice].model())

    def encode_block(self, symbols: np.ndarray, table: Table, model: Any) -> None:
        symbols = symbols.astype(np.int64).ravel()
        radius = table.radius
        if symbols.size and int(np.abs(symbols).max()) >= 1 << MAX_MAGNITUDE_BITS:
            raise CodecError(f"latent value {int(np.abs(symbols).max())} is out of the coder's range")
        escaped = np.abs(symbols) > radius
        index = np.where(escaped, 2 * radius + 1, symbols + radius).astype(np.int32)
        self.coder.encode(index, model)
        if escaped.any():
            sign, n, low = _escape_parts(symbols[escaped], radius)
            self.coder.encode(sign, constriction.stream.model.Uniform(2))
            self.coder.encode(n, constriction.stream.model.Uniform(MAX_MAGNITUDE_BITS + 1))
            self.encode_bits(low, n)

    def encode_bits(self, low: np.ndarray, n: np.ndarray) -> None:
        """Each ``low[i]`` in ``n[i]`` uniform bits (none where ``n[i]`` is 0)."""
        wide = n > 0
        if wide.any():
            self.coder.encode(
                low[wide].astype(np.int32), constriction.stream.model.Uniform(), (1 << n[wide]).astype(np.int32)
            )

    def finish(self) -> bytes:
        return self.coder.get_compressed().astype("<u4").tobytes()


class SymbolRangeDecoder:
    """Range-decodes the symbol blocks of one frame's payload, in the order they were encoded.

    A block is decoded DECODE_CHUNK symbols at a time into an int32 array, so a block of any length
    takes four bytes a symbol and bounded temporaries, however many of its symbols are escapes.
    Data that no message encodes to is a CodecError."""

    def __init__(self, payload: bytes | memoryview) -> None:
        if len(payload) % 4:
            raise CodecError(f"payload of {len(payload)} bytes is not a whole number of 32-bit words")
        words = np.frombuffer(payload, dtype="<u4").astype(np.uint32, copy=False)
        self.coder = constriction.stream.queue.RangeDecoder(words)

    def decode_flags(self, count: int) -> np.ndarray:
        """``count`` binary flags :meth:`SymbolRangeEncoder.encode_flags` coded (bool)."""
        if not count:
            return np.zeros(0, bool)
        try:
            step = int(self.coder.decode(constriction.stream.model.Uniform(len(FLAG_ZEROS)), 1)[0])
            return np.asarray(self.coder.decode(_flag_models()[step], count), bool)
        except UNDECODABLE as exc:
            raise _undecodable(exc) from None

    def decode_chosen(self, count: int, tables: Sequence[Table], models: Sequence[Any]) -> np.ndarray:
        """``count`` symbols :meth:`SymbolRangeEncoder.encode_choosing` coded, ``models`` being ``tables``'."""
        try:
            choice = int(self.coder.decode(constriction.stream.model.Uniform(len(tables)), 1)[0])
        except UNDECODABLE as exc:
            raise _undecodable(exc) from None
        return self.decode_block(count, tables[choice], models[choice])

    def decode_block(self, count: int, table: Table, model: Any) -> np.ndarray:
        """The next ``count`` symbols, coded under ``table`` (int64)."""
        if count > DECODE_CHUNK:
            out = np.empty(count, np.int32)
            self.decode_into(out, table, model)
            return out.astype(np.int64)
        try:  # a plain try: a frame decodes hundreds of blocks
            return self._decode(count, table, model)
        except UNDECODABLE as exc:
            raise _undecodable(exc) from None

    def decode_into(self, out: np.ndarray, table: Table, model: Any) -> None:
        """Fill the flat int32 array ``out`` with the next ``out.size`` symbols, coded under ``table``,
        DECODE_CHUNK symbols at a time."""
        try:
            if out.size <= DECODE_CHUNK:
                out[:] = self._decode(out.size, table, model)
            else:
                self._decode_chunks(out, table, model)
        except UNDECODABLE as exc:
            raise _undecodable(exc) from None

    def _decode(self, count: int, table: Table, model: Any) -> np.ndarray:
        """``count`` symbols in one pass (int64)."""
        radius = table.radius
        symbols = np.asarray(self.coder.decode(model, count), dtype=np.int64)
        where = np.flatnonzero(symbols == 2 * radius + 1)
        symbols -= radius
        if where.size:
            signs = self._uniform(where.size, 2)
            self._escaped(symbols, where, signs, self._uniform(where.size, MAX_MAGNITUDE_BITS + 1), radius)
        return symbols

    def _decode_chunks(self, out: np.ndarray, table: Table, model: Any) -> None:
        """:meth:`decode_into` a chunk at a time: the indices, then the escapes' signs and bit lengths
        (one byte each), then each chunk's escapes put in place with their low bits."""
        radius, escape = table.radius, 2 * table.radius + 1
        n_escaped = 0
        for at in range(0, out.size, DECODE_CHUNK):
            part = out[at : at + DECODE_CHUNK]
            part[:] = self.coder.decode(model, part.size)
            n_escaped += int(np.count_nonzero(part == escape))
        signs = self._uniform(n_escaped, 2)
        lengths = self._uniform(n_escaped, MAX_MAGNITUDE_BITS + 1)
        done = 0
        for at in range(0, out.size, DECODE_CHUNK):
            part = out[at : at + DECODE_CHUNK]
            where = np.flatnonzero(part == escape)
            part -= radius
            if where.size:
                self._escaped(part, where, signs[done : done + where.size], lengths[done : done + where.size], radius)
                done += where.size

    def decode_bits(self, n: np.ndarray) -> np.ndarray:
        """What :meth:`SymbolRangeEncoder.encode_bits` coded in ``n[i]`` bits each (int64)."""
        try:
            return self._bits(n)
        except UNDECODABLE as exc:
            raise _undecodable(exc) from None

    def _bits(self, n: np.ndarray) -> np.ndarray:
        low = np.zeros(len(n), np.int64)
        wide = n > 0
        if wide.any():
            low[wide] = self.coder.decode(constriction.stream.model.Uniform(), (1 << n[wide]).astype(np.int32))
        return low

    def _uniform(self, count: int, size: int) -> np.ndarray:
        """``count`` symbols of the uniform model over 0..size-1, as int8 (size <= 128)."""
        out = np.empty(count, np.int8)
        for at in range(0, count, DECODE_CHUNK):
            out[at : at + DECODE_CHUNK] = self.coder.decode(
                constriction.stream.model.Uniform(size), min(DECODE_CHUNK, count - at)
            )
        return out

    def _escaped(self, out: np.ndarray, where: np.ndarray, signs: np.ndarray, lengths: np.ndarray, radius: int) -> None:
        """Put the escaped symbols at ``where`` of ``out``, their low bits decoded now: an escape of
        bit length n, low bits l and sign s is -/+(radius + 2**n + l)."""
        n = lengths.astype(np.int64)
        magnitude = (1 << n) + self._bits(n) + radius
        out[where] = np.where(signs == 1, -magnitude, magnitude)


# What constriction raises for data no message encodes to (mostly an AssertionError).
UNDECODABLE = (AssertionError, ValueError, RuntimeError, OverflowError)


def _undecodable(exc: Exception) -> CodecError:
    return CodecError(f"payload does not decode ({exc})")
