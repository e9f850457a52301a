"""``codec inspect latents``: the video's per-frame codes projected to 2-D (PCA), coloured by time,
with the codec's I-frames and the scene cuts that ``--keyframes auto`` finds marked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from codec.coding.common.bitstream import I_FRAME
from codec.coding.common.runtime import Networks
from codec.coding.encoder.encode import StreamEncoder
from codec.inspect.latent_walk import pca_directions, video_latents
from codec.io.bundle import Bundle
from codec.io.video import probe


def latent_map(bundle: Bundle, video: Path, out: Path) -> dict[str, Any]:
    """Write the map PNG to ``out``; returns the projections, I-frames and scene cuts as JSON-ready data."""
    info = probe(video)
    nets = Networks(bundle, info.width, info.height)
    _, codes = video_latents(nets, video)
    gop = bundle.meta.coding.gop
    q = np.rint(codes / bundle.meta.coding.default_step).astype(np.int64)
    cutter = StreamEncoder(bundle, width=info.width, height=info.height, gop=1 << 15, nets=nets, keyframes="auto")
    cuts = [i for i in range(1, len(q)) if cutter.keyframes.decide_frame_type(q[i], q[i - 1], i) == I_FRAME]
    dirs = pca_directions(codes, 2)
    flat = codes.reshape(len(codes), -1).astype(np.float64)
    centred = flat - flat.mean(0)
    xy = centred @ dirs.reshape(len(dirs), -1).T
    total = float((centred**2).sum()) or 1.0
    explained = [float((xy[:, k] ** 2).sum() / total) for k in range(xy.shape[1])]
    i_frames = list(range(0, len(q), gop))
    _plot(xy, i_frames, cuts, explained, f"{info.path.name}: per-frame codes (PCA)", out)
    return {
        "frames": len(q),
        "points": xy.tolist(),
        "explained_variance": explained,
        "i_frames": i_frames,
        "scene_cuts": cuts,
        "gop": gop,
    }


def _plot(xy: np.ndarray, i_frames: list[int], cuts: list[int], explained: list[float], title: str, out: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 6), dpi=110)
    y = xy[:, 1] if xy.shape[1] > 1 else np.zeros(len(xy))
    ax.plot(xy[:, 0], y, color="0.8", lw=0.6, zorder=1)
    sc = ax.scatter(xy[:, 0], y, c=np.arange(len(xy)), cmap="viridis", s=12, zorder=2)
    ax.scatter(xy[i_frames, 0], y[i_frames], marker="s", facecolors="none", edgecolors="k", s=40, label="I-frame (GOP)")
    if cuts:
        ax.scatter(xy[cuts, 0], y[cuts], marker="x", color="red", s=60, label="scene cut (--keyframes auto)")
    fig.colorbar(sc, ax=ax, label="frame")
    ax.set_xlabel(f"PC 1 ({100 * explained[0]:.0f}% of variance)")
    ax.set_ylabel(f"PC 2 ({100 * explained[1]:.0f}% of variance)" if len(explained) > 1 else "")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
