"""What ``codec train`` is asked for: the training options, their defaults and their checks. No torch."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from codec.errors import CodecError
from codec.train.devices import DEVICES, PRECISIONS

# The decoder's residual block at each scale (codec.train.model builds it; the CLI offers the
# choice without importing torch): two 3x3 convs, depthwise 3x3 + pointwise 1x1 pairs (about 8x
# fewer multiply-accumulates at width 64), or none.
DECODER_BLOCKS = ("full", "separable", "none")

# Quantization steps of the quality levels, coarsest (quality 0) to finest; one model serves all.
QUALITY_STEPS = (2.83, 2.0, 1.41, 1.0, 0.71, 0.5)


@dataclass
class TrainOptions:
    """What ``codec train`` was asked for; stored in the checkpoint and meta.json."""

    minutes: float | None = 8.0
    steps: int | None = None
    lmbda: float = 0.0014
    lr: float = 1e-3
    batch: int = 4
    crop: int = 128
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    holdout: float = 0.0
    per_frames: int | None = None  # --minutes and --steps are per this many frames trained on
    gop: int = 30
    quality_steps: tuple[float, ...] = QUALITY_STEPS

    def __post_init__(self) -> None:
        if self.minutes is None and self.steps is None:
            raise CodecError("give a training budget: --minutes and/or --steps")
        if self.minutes is not None and self.minutes <= 0:
            raise CodecError(f"--minutes must be positive, not {self.minutes}")
        if self.steps is not None and self.steps < 1:
            raise CodecError(f"--steps must be at least 1, not {self.steps}")
        if self.per_frames is not None and self.per_frames < 1:
            raise CodecError(f"--per-frames must be at least 1, not {self.per_frames}")
        if not 0 <= self.holdout < 1:
            raise CodecError(f"--holdout must be in [0, 1), not {self.holdout}")
        self.quality_steps = tuple(float(s) for s in self.quality_steps)
        if self.lmbda <= 0 or self.lr <= 0 or not all(s > 0 for s in self.quality_steps):
            raise CodecError("--lmbda, --lr and the quantization steps must be positive")
        if self.gop < 1 or self.batch < 1 or self.crop < 16:
            raise CodecError("--gop and --batch must be at least 1, --crop at least 16")
        if self.device not in DEVICES:
            raise CodecError(f"--device must be one of {', '.join(DEVICES)}, not {self.device}")
        if self.precision not in PRECISIONS:
            raise CodecError(f"--precision must be one of {', '.join(PRECISIONS)}, not {self.precision}")

    def budget_for(self, frames: int) -> TrainOptions:
        """These options with the budget of a run on ``frames`` frames: as given, or with
        ``per_frames`` grown in proportion to the frames (a longer video, a longer run)."""
        if self.per_frames is None:
            return self
        scale = frames / self.per_frames
        minutes = None if self.minutes is None else self.minutes * scale
        steps = None if self.steps is None else max(1, math.ceil(self.steps * scale))
        return replace(self, minutes=minutes, steps=steps)

    @property
    def default_quality(self) -> int:
        """The level whose step is closest to 1, the scale the priors were initialised for."""
        steps = self.quality_steps
        return min(range(len(steps)), key=lambda k: abs(math.log(steps[k])))

    def crop_size(self, height: int, width: int, stride: int) -> tuple[int, int]:
        """(h, w) of the training crops of a ``height`` x ``width`` frame: ``crop`` or the frame's
        side if smaller, rounded down to the stride; a side smaller than the stride is taken whole."""

        def side(n: int) -> int:
            return min(self.crop, n) // stride * stride or n

        return side(height), side(width)
