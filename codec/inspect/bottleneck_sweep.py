"""``codec inspect sweep``: bottleneck width as a trade-off, and the identity trap shown.

One model per latent width, each on the same budget, measured through the real codec: RGB PSNR
and real bpp at the default quality, and a latent ablation: the PSNR of frame t decoded from the
code of frame t + N/2. A code that carries the picture makes the ablated PSNR collapse. A
deliberately skip-connected variant (codec.inspect.identity_trap) is trained beside them: it reconstructs
well while the ablation barely moves it, because its code carries nothing.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from codec.coding.common.runtime import Networks
from codec.coding.encoder.encode import encode_video
from codec.io.bundle import load_bundle
from codec.io.frame_store import FrameStore, open_store
from codec.io.psnr import psnr


def _mean_psnr(decoded: list[np.ndarray], frames: FrameStore) -> float:
    return float(np.mean([psnr(d, f) for d, f in zip(decoded, frames, strict=True)]))


def _partner(t: int, n: int) -> int:
    return (t + n // 2) % n if n > 1 else t


def measure_bundle(bundle_dir: Path, video: Path, clip: FrameStore, tmp: Path) -> dict[str, Any]:
    """Real bpp and PSNR at the default quality, and the PSNR when every code is another frame's."""
    bundle = load_bundle(bundle_dir)
    stats = encode_video(video, bundle, tmp / f"{bundle_dir.name}.aec", force=True).to_dict()
    step = bundle.meta.coding.default_step
    nets = Networks(bundle, clip.width, clip.height)
    q = [np.round(nets.analyse(f[None])[0] / step) * step for f in clip]
    n = len(q)
    swapped = [nets.synthesise(q[_partner(t, n)][None].astype(np.float32))[0] for t in range(n)]
    ablated = _mean_psnr(swapped, clip)
    return {"psnr": stats["psnr_rgb"], "bpp": stats["bpp"], "ablated_psnr": ablated}


def train_skip_variant(clip: FrameStore, channels: int, minutes: float | None, steps: int | None) -> dict[str, Any]:
    """Train the skip-connected variant on ``clip`` and measure it the same way, in torch."""
    import torch

    from codec.inspect.identity_trap import SkipAutoEncoder
    from codec.train.devices import resolve_device
    from codec.train.loop import fit
    from codec.train.model import ModelConfig
    from codec.train.ops import pad_to_stride, quantize, to_tensor
    from codec.train.options import TrainOptions
    from codec.train.state import new_state

    opts = TrainOptions(minutes=minutes, steps=steps)
    device = resolve_device("auto")
    state = new_state(ModelConfig(latent_channels=channels), opts, device, SkipAutoEncoder)
    fit(state, clip, opts, device)
    model, prior = state.model.eval(), state.prior
    step = 1.0
    h, w = clip.height, clip.width
    with torch.inference_mode():
        xs = [pad_to_stride(to_tensor([f], device), model.cfg.stride) for f in clip]
        ys = [quantize(model.encoder(x), step) for x in xs]
        n = len(xs)

        def decode(t: int, code: int) -> np.ndarray:
            out = model.reconstruct(xs[t], ys[code])[0, :, :h, :w]
            return torch.round(out * 255).byte().permute(1, 2, 0).cpu().numpy()

        own = _mean_psnr([decode(t, t) for t in range(n)], clip)
        ablated = _mean_psnr([decode(t, _partner(t, n)) for t in range(n)], clip)
        bits = sum(float(prior.intra_bits(y, step).sum()) for y in ys)
    return {
        "channels": channels,
        "psnr": own,
        "bpp_code_only": bits / (n * h * w),
        "ablated_psnr": ablated,
        "ablation_drop_db": own - ablated,
        "note": "a skip connection carries the frame past the code: its bits are not counted, and "
        "swapping codes barely changes the output. This is the identity trap; codec train refuses it.",
    }


def sweep(
    video: Path,
    channels: list[int],
    minutes: float | None,
    steps: int | None,
    progress: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """Train and measure one model per width in ``channels``, then the skip-connected variant."""
    from codec.train.pipeline import train_video

    clip = open_store(video)
    rows = []
    with tempfile.TemporaryDirectory(prefix="aecodec-sweep-") as tmp:
        for c in channels:
            progress(f"{c} latent channels: training")
            model_dir = Path(tmp) / f"c{c}"
            meta = train_video(video, model_dir, {"latent_channels": c}, {"minutes": minutes, "steps": steps})
            progress(f"{c} latent channels: measuring")
            row = measure_bundle(model_dir, video, clip, Path(tmp))
            rows.append(
                {
                    "channels": c,
                    "latent_values_per_pixel": c / meta["model"]["stride"] ** 2,
                    **row,
                    "ablation_drop_db": row["psnr"] - row["ablated_psnr"],
                    "training_steps": meta["training"]["steps"],
                }
            )
    progress("skip-connected variant: training")
    skip = train_skip_variant(clip, max(channels), minutes, steps)
    return {
        "video": clip.name,
        "frames": len(clip),
        "budget": {"minutes": minutes, "steps": steps},
        "widths": rows,
        "skip_variant": skip,
    }


def plot_sweep(report: dict[str, Any], path: Path) -> None:
    """PSNR, ablated PSNR and bpp against bottleneck width; the skip variant as a marked point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["widths"]
    c = [r["channels"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=110)
    left.plot(c, [r["psnr"] for r in rows], "o-", label="RGB PSNR, own code")
    left.plot(c, [r["ablated_psnr"] for r in rows], "s--", label="RGB PSNR, another frame's code")
    skip = report["skip_variant"]
    left.plot([skip["channels"]], [skip["psnr"]], "r*", ms=12, label="skip-connected: own code")
    left.plot([skip["channels"]], [skip["ablated_psnr"]], "rx", ms=10, label="skip-connected: another's code")
    left.set_xscale("log", base=2)
    left.set_xlabel("latent channels")
    left.set_ylabel("dB")
    left.legend(fontsize=7)
    left.grid(alpha=0.3)
    right.plot(c, [r["bpp"] for r in rows], "o-")
    right.set_xscale("log", base=2)
    right.set_xlabel("latent channels")
    right.set_ylabel("real bpp (stream)")
    right.grid(alpha=0.3)
    fig.suptitle(f"{report['video']}: bottleneck width (budget {report['budget']})")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
