"""Training's steps per second against its own start: a run that other work on the machine slows
far below the pace it began at says so in its progress line. No torch; the caller gives the time."""

from __future__ import annotations

from collections import deque


class Pace:
    """The steps/s over ``start`` seconds after a ``warmup`` (the first steps allocate and tune),
    against the steps/s over the last ``window`` seconds. Costs a comparison or two a step: the
    recent rate is measured between marks taken about once a second."""

    def __init__(self, warmup: float = 5.0, start: float = 20.0, window: float = 10.0, below: float = 1 / 3) -> None:
        self.warmup, self.start, self.window, self.below = warmup, start, window, below
        self.marks: deque[tuple[float, int]] = deque()  # (seconds, steps), about a second apart
        self.first: tuple[float, int] | None = None  # where the start's measurement began
        self.baseline: float | None = None  # steps/s over the start

    def slowed(self, seconds: float, steps: int) -> float | None:
        """Given the seconds since training began and the steps done by then: the recent steps/s as
        a fraction of the start's when it is below ``below``, else None."""
        if seconds < self.warmup:
            return None
        if self.first is None:
            self.first = (seconds, steps)
        if not self.marks or seconds - self.marks[-1][0] >= 1:
            self.marks.append((seconds, steps))
        while len(self.marks) > 1 and self.marks[1][0] <= seconds - self.window:
            self.marks.popleft()  # the oldest mark kept is the newest one at least a window back
        if self.baseline is None:
            began, done = self.first
            if seconds - began < self.start:
                return None
            self.baseline = (steps - done) / (seconds - began)
        then, done = self.marks[0]
        if self.baseline <= 0 or seconds - then < self.window:
            return None
        ratio = (steps - done) / (seconds - then) / self.baseline
        return ratio if ratio < self.below else None
