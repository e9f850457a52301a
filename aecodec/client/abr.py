"""Adaptive quality for ``codec play --quality auto``: a throughput estimate and one switching rule.

Each GOP received is one throughput sample: its bits over the seconds the player spent waiting for
them (decoding excluded, so a fast network is not mistaken for a slow one while the decoder is
busy). The estimate is the smaller of the last sample and an average of all of them with a
half-life of 3 GOPs (after hls.js's EWMA bandwidth estimator; geometric, so one GOP that was
already buffered and "arrived" at a hundred times the real rate moves it as much as one that came
at a hundredth: it falls at once when the network does, and climbs back over a few GOPs). At every
I-frame (a GOP is this stream's segment, and only an I-frame lets the level change), the rule of
dash.js's ThroughputRule with hysteresis:

- down, at once, when the level playing needs more than ``SAFETY`` (0.9, the ThroughputRule's
  factor) of the estimate: to the highest level that needs at most that, else the lowest;
- up, one level at a time, when the next level needs at most ``HEADROOM`` (0.7) of the estimate and
  the level has held for ``HOLD`` GOPs; between 0.7 and 0.9 nothing changes, so a rate near a
  level's does not switch at every GOP.

A level's need is its stored stream's mean bitrate (the server's ladder). Levels above the cap
(``--max-bitrate``) are never chosen.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from codec.errors import CodecError

SAFETY = 0.9
HEADROOM = 0.7
HOLD = 2
HALF_LIFE_GOPS = 3.0
MIN_WAIT_S = 1e-3  # a GOP that was all there already counts as if it took this long


class Ewma:
    """A geometric (log-domain) exponentially weighted average, with a half-life in samples,
    bias-corrected like hls.js's."""

    def __init__(self, half_life: float) -> None:
        self.alpha = math.exp(math.log(0.5) / half_life)
        self.log_sum = 0.0
        self.weight = 0.0

    def add(self, sample: float) -> None:
        self.log_sum = self.alpha * self.log_sum + (1 - self.alpha) * math.log(sample)
        self.weight = self.alpha * self.weight + (1 - self.alpha)

    @property
    def estimate(self) -> float:
        return math.exp(self.log_sum / self.weight) if self.weight else 0.0


@dataclass
class Abr:
    """The level to play next, from the ladder ``rates`` (quality -> bits/s), starting at ``start``."""

    rates: dict[int, float]
    level: int
    held: int = 0
    average: Ewma = field(default_factory=lambda: Ewma(HALF_LIFE_GOPS))
    last: float = 0.0

    @classmethod
    def for_ladder(cls, rates: dict[int, float], preferred: int, cap: float | None) -> Abr:
        """The rule over the levels of ``rates`` within ``cap`` (all of them if none fits, the lowest
        only), starting at the highest one up to ``preferred``."""
        within = {q: r for q, r in rates.items() if cap is None or r <= cap}
        if not within:
            lowest = min(rates)
            within = {lowest: rates[lowest]}
        start = max((q for q in within if q <= preferred), default=min(within))
        return cls(within, start)

    @property
    def estimate(self) -> float:
        """Bits per second the network is believed to carry (0 before the first sample)."""
        return min(self.last, self.average.estimate)

    def sample(self, bits: float, waited: float) -> None:
        """One GOP's ``bits``, received in ``waited`` seconds of waiting for the network."""
        self.last = max(bits, 1.0) / max(waited, MIN_WAIT_S)
        self.average.add(self.last)

    def choose(self) -> int:
        """The level for the GOP about to start (called at each I-frame, after its sample)."""
        self.held += 1
        estimate = self.estimate
        levels = sorted(self.rates)
        if self.rates[self.level] > SAFETY * estimate:
            fitting = [q for q in levels if self.rates[q] <= SAFETY * estimate]
            return self._switch(fitting[-1] if fitting else levels[0])
        above = [q for q in levels if q > self.level]
        if above and self.held >= HOLD and self.rates[above[0]] <= HEADROOM * estimate:
            return self._switch(above[0])
        return self.level

    def _switch(self, level: int) -> int:
        if level != self.level:
            self.level, self.held = level, 0
        return level


@dataclass
class Playback:
    """A viewer's clock: playing starts when the first frame is ready, one frame every 1/fps
    seconds after; a frame ready after its time stalls the picture until it is."""

    fps: float
    started: float | None = None
    stalled: float = 0.0
    stalls: int = 0
    longest: float = 0.0

    def ready(self, frame: int, now: float | None = None) -> None:
        """Frame ``frame`` (counted from the first played) is decoded ``now``."""
        now = time.monotonic() if now is None else now
        if self.started is None:
            self.started = now
            return
        late = now - (self.started + frame / self.fps + self.stalled)
        if late > 0:
            self.stalled += late
            self.stalls += 1
            self.longest = max(self.longest, late)


def parse_bitrate(text: str) -> float:
    """Bits per second from ``500000``, ``500k``, ``2.5M`` (k and M are 1000 and 1000000)."""
    scale = {"k": 1e3, "m": 1e6}.get(text[-1:].lower(), 1.0)
    number = text[:-1] if scale != 1.0 else text
    try:
        value = float(number) * scale
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise CodecError(f"--max-bitrate must be a positive number of bits/s (500k, 2M), not {text!r}")
    return value
