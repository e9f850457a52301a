"""Where a stream's I-frames go (``--keyframes``).

``fixed``: at every multiple of the GOP. ``auto``: wherever the code jumps, that is wherever the
priors price the frame's latent coded afresh below its residual from the previous frame, or its
residual at more than JUMP times the median of the last few P-frames' (a scene cut); and at the
latest GOP frames after the last I-frame. Either way the first frame a policy sees is an I-frame.

Motion-compensated P-frames (M) are coded first and judged by their real cost: under either mode a
frame whose M-frame costs more than the last I-frame did, in squared error + lambda x bits, is coded
intra instead (a P-frame is never worse than its intra choice), and under ``auto`` one whose bytes
are over JUMP times the median of the last few M-frames' too (a scene cut).
"""

from __future__ import annotations

import numpy as np

from codec.coding.common.bitstream import I_FRAME, P_FRAME
from codec.coding.common.entropy_coding import estimate_bits
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
        self.last_intra_bytes, self.last_intra_error = 0, 0.0
        self.recent_inter: list[float] = []

    def intra_due(self, index: int) -> bool:
        """Whether frame ``index`` must be an I-frame whatever it would cost as a P-frame: the first
        a policy sees, a multiple of the GOP (``fixed``) or GOP frames after the last I-frame (``auto``)."""
        if self.last_intra_bytes == 0:  # none yet
            return True
        return index % self.gop == 0 if self.mode == "fixed" else index - self.last_intra >= self.gop

    def inter_pays(self, inter_bytes: int, inter_error: float, lam: float) -> bool:
        """Whether an M-frame of ``inter_bytes`` and squared error ``inter_error`` (summed over its
        samples) is kept rather than recoded as an I-frame, costs weighed with ``lam`` per bit; a
        frame recoded is then passed to :meth:`intra_coded`."""
        recent = self.recent_inter[-JUMP_HISTORY:]
        jump = self.mode == "auto" and len(recent) >= 3 and inter_bytes > JUMP * float(np.median(recent))
        dearer = inter_error + lam * 8 * inter_bytes > self.last_intra_error + lam * 8 * self.last_intra_bytes
        if dearer or jump:
            return False
        self.recent_inter.append(inter_bytes)
        return True

    def intra_coded(self, index: int, intra_bytes: int, intra_error: float) -> None:
        """Note that frame ``index`` was coded as an I-frame of ``intra_bytes`` and squared error ``intra_error``."""
        self.last_intra, self.last_intra_bytes, self.last_intra_error = index, intra_bytes, intra_error
        self.recent_inter = []

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
