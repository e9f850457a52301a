"""Quality metrics computed the same way for every codec, from RGB24 frames.

Every codec's output is decoded by PyAV to RGB24 once; the metrics compare it with the source's
RGB24 frames (also decoded once). Y, U and V come from one conversion of both RGB images with
the source's matrix (BT.601 unless given; full range, 4:4:4), so no codec is favoured by its own
colour handling. MS-SSIM uses
pytorch-msssim on RGB with the standard 11-pixel window where the frame is large enough.
Video figures are means over frames of the per-frame figure. Frames are measured as each codec's
output is decoded, one at a time; only the per-frame figures are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from codec.io.colour import yuv_weights
from codec.io.psnr import mse, psnr, psnr_from_mse


@dataclass
class FrameMetrics:
    """Running per-frame metrics of one decoded video against its source, whose YUV has ``matrix``
    (a key of :data:`codec.io.colour.MATRICES`)."""

    matrix: str = "bt601"
    rgb: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    u: list[float] = field(default_factory=list)
    v: list[float] = field(default_factory=list)
    ms_ssim: dict[int, float] = field(default_factory=dict)  # by frame, on the frames it was measured on

    def __post_init__(self) -> None:
        self._yuv = yuv_weights(self.matrix).T

    def add(self, decoded: np.ndarray, source: np.ndarray, with_ms_ssim: bool = True) -> None:
        """Measure one (H,W,3) uint8 ``decoded`` frame against ``source``."""
        self.rgb.append(psnr(decoded, source))
        dy, sy = decoded.astype(np.float64) @ self._yuv, source.astype(np.float64) @ self._yuv
        for plane, values in enumerate((self.y, self.u, self.v)):
            values.append(psnr_from_mse(mse(dy[..., plane], sy[..., plane])))
        value = ms_ssim(decoded, source) if with_ms_ssim else None
        if value is not None:
            self.ms_ssim[len(self.rgb) - 1] = value

    def __len__(self) -> int:
        return len(self.rgb)

    def summary(self, lo: int = 0, hi: int | None = None) -> dict[str, float | None]:
        """Means over frames ``[lo, hi)`` (all by default)."""
        hi = len(self) if hi is None else hi
        y, u, v = (float(np.mean(p[lo:hi])) for p in (self.y, self.u, self.v))
        structural = [value for i, value in self.ms_ssim.items() if lo <= i < hi]
        return {
            "psnr_rgb": float(np.mean(self.rgb[lo:hi])),
            "psnr_y": y,
            "psnr_u": u,
            "psnr_v": v,
            "psnr_yuv": (6 * y + u + v) / 8,
            "ms_ssim_rgb": float(np.mean(structural)) if structural else None,
        }


def ms_ssim_window(height: int, width: int) -> int:
    """The standard 11-pixel Gaussian window, or the largest odd one (down to 3) that lets all
    five MS-SSIM scales fit a small frame: the smaller side must exceed 16 x (window - 1)."""
    return next(w for w in (11, 9, 7, 5, 3) if min(height, width) > 16 * (w - 1) or w == 3)


def ms_ssim(decoded: np.ndarray, source: np.ndarray) -> float | None:
    """MS-SSIM on RGB (pytorch-msssim, 5 scales); None for frames of 32 pixels a side or less."""
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    height, width = decoded.shape[:2]
    window = ms_ssim_window(height, width)
    if min(height, width) <= 16 * (window - 1):
        return None
    x = torch.from_numpy(np.ascontiguousarray(decoded)).permute(2, 0, 1)[None].float()
    y = torch.from_numpy(np.ascontiguousarray(source)).permute(2, 0, 1)[None].float()
    return float(_ms_ssim(x, y, data_range=255, win_size=window))
