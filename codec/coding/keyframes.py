"""Where a stream's I-frames go (``--keyframes``).

``fixed``: at every multiple of the GOP. ``auto``: wherever the code jumps, that is wherever the
priors price the frame's latent coded afresh below its residual from the previous frame, or its
residual at more than JUMP times the median of the last few P-frames' (a scene cut); and at the
latest GOP frames after the last I-frame. Either way the first frame a policy sees is an I-frame.
"""

from __future__ import annotations

import numpy as np

from codec.coding.bitstream import I_FRAME, P_FRAME
from codec.coding.entropy_coding import estimate_bits
from codec.errors import CodecError

KEYFRAMES = ("fixed", "auto")
JUMP, JUMP_HISTORY = 1.5, 8  # scene cut: a residual over 1.5x the median of the last 8 P-frames' bits


class KeyframePolicy:
    """Decides I or P for each frame of one stream in turn, remembering what ``auto`` needs: where
    the last I-frame was and what the P-frames since it cost."""

    def __init__(self, mode: str, gop: int, prior: dict[str, list[float]], step: float) -> None:
        if mode not in KEYFRAMES:
            raise CodecError(f"--keyframes must be one of {', '.join(KEYFRAMES)}, not {mode}")
        self.mode, self.gop, self.prior, self.step = mode, gop, prior, step
        self.last_intra = 0
        self.recent_inter: list[float] = []

    def decide_frame_type(self, q: np.ndarray, previous: np.ndarray | None, index: int) -> int:
        """Decide I or P for frame ``index`` with integer latent ``q``, after ``previous`` (None:
        there is no reference), and advance the policy past it: call once per frame, in order."""
        if previous is None:
            frame_type = I_FRAME
        elif self.mode == "fixed":
            frame_type = I_FRAME if index % self.gop == 0 else P_FRAME
        else:
            frame_type = self._scene_aware_type(q, previous, index)
        if frame_type == I_FRAME:
            self.last_intra = index
        return frame_type

    def _scene_aware_type(self, q: np.ndarray, previous: np.ndarray, index: int) -> int:
        inter = float(estimate_bits(q, previous, P_FRAME, self.prior, self.step).sum())
        intra = float(estimate_bits(q, None, I_FRAME, self.prior, self.step).sum())
        recent = self.recent_inter[-JUMP_HISTORY:]
        jump = len(recent) >= 3 and inter > JUMP * float(np.median(recent))
        if intra < inter or jump or index - self.last_intra >= self.gop:
            self.recent_inter = []
            return I_FRAME
        self.recent_inter.append(inter)
        return P_FRAME
