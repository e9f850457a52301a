"""A bench report's (:func:`codec.measure.bench.run_bench`) rate-distortion plot; matplotlib is
imported only when a plot is drawn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

VARIANT_STYLES = {"default": "-", "low-delay": ":", "psnr": "--", "psnr low-delay": "-."}
CODEC_COLOURS = {"aecodec": "black", "x264": "tab:blue", "x265": "tab:orange", "svtav1": "tab:green"}


def plot(report: dict[str, Any], path: Path) -> None:
    """RGB PSNR against bpp for every codec and variant (colour: codec, line: variant); aecodec
    stream-only (solid) and total (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 6), dpi=120)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in report["points"]:
        groups.setdefault((r["codec"], r["variant"]), []).append(r)
    for (codec, variant), rows in groups.items():
        rows = sorted(rows, key=lambda r: r["bpp"])
        aecodec = codec == "aecodec"
        ax.plot(
            [r["bpp"] for r in rows],
            [r["psnr_rgb"] for r in rows],
            "-" if aecodec else VARIANT_STYLES.get(variant, "-"),
            color=CODEC_COLOURS.get(codec),
            marker="s" if variant == "auto-keyframes" else "o",
            ms=3,
            label=f"{codec} {variant}" + (" (stream)" if aecodec else ""),
        )
        if aecodec:
            ax.plot(
                [r["total_bpp"] for r in rows],
                [r["psnr_rgb"] for r in rows],
                "--",
                color="grey",
                marker="x",
                ms=3,
                label=f"aecodec {variant} (stream + decoder)",
            )
    clip = report["clip"]
    ax.set_xscale("log")
    ax.set_xlabel("bits per pixel (log)")
    ax.set_ylabel("RGB PSNR (dB)")
    ax.set_title(f"{clip['name']} {clip['width']}x{clip['height']}, {clip['frames']} frames")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
