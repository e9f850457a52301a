"""A bench report (:func:`codec.measure.bench.run_bench`) as text: the CLI's table and the suite's
markdown summary. Every BD figure is shown with the overlap it was computed on, or as n/a with its
reason; headlines quote each codec's strongest variant (:func:`codec.measure.bd.strongest_variant`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from codec.measure.bd import MIN_OVERLAP, MIN_OWN_RANGE

STRONGEST_RULE = (
    "each codec's strongest variant is the one with the lowest BD-rate against that codec's default "
    "variant (its own curves, stream bpp, same overlap threshold)"
)


def _span(span: dict[str, Any] | None, shown: Callable[[float, float], str]) -> str:
    """An overlap as ``28.41-29.30 dB = 26% aecodec, 6% anchor, 6% both``."""
    if span is None or span["interval"] is None:
        return "no overlap"
    fractions = f"{span['of_test']:.0%} aecodec, {span['of_anchor']:.0%} anchor, {span['of_both']:.0%} both"
    return f"{shown(*span['interval'])} = {fractions}" + (" < threshold" if span["of_both"] < MIN_OVERLAP else "")


def _figures(b: dict[str, Any]) -> str:
    """A ``bd`` entry's three figures, each with the overlap it was computed on."""
    rate = "n/a" if b["bd_rate_pct"] is None else f"{b['bd_rate_pct']:+.1f}%"
    own = _own_range(b, ".1f") or f"n/a (anchor covers less than {MIN_OWN_RANGE:.0%} of it)"
    psnr = "n/a" if b["bd_psnr_db"] is None else f"{b['bd_psnr_db']:+.2f} dB"
    db = _span(b["bd_rate_overlap"], lambda lo, hi: f"{lo:.2f}-{hi:.2f} dB")
    bpp = _span(b["bd_psnr_overlap"], lambda lo, hi: f"{10**lo:.4g}-{10**hi:.4g} bpp")
    return f"BD-rate {rate} [{db}]; over aecodec's PSNR range {own}; BD-PSNR {psnr} [{bpp}]"


def format_table(report: dict[str, Any]) -> str:
    """The points and BD figures as aligned text."""
    head = ("codec", "variant", "setting", "bpp", "total bpp", "RGB dB", "YUV dB", "MS-SSIM", "enc fps", "dec fps")
    lines = [head]
    for r in report["points"]:
        lines.append(
            (
                r["codec"],
                r["variant"],
                r["setting"],
                f"{r['bpp']:.4f}",
                "" if r["total_bpp"] is None else f"{r['total_bpp']:.4f}",
                f"{r['psnr_rgb']:.2f}",
                f"{r['psnr_yuv']:.2f}",
                "" if r["ms_ssim_rgb"] is None else f"{r['ms_ssim_rgb']:.4f}",
                f"{r['encode_fps']:.1f}",
                f"{r['decode_fps']:.1f}",
            )
        )
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in lines]
    text += [
        "",
        f"BD figures [overlap: interval, share of each curve's range and of both; {MIN_OVERLAP:.0%} of both needed]",
    ]
    for b in report["bd"]:
        label = "stream-only" if b["aecodec_rate"] == "bpp" else "total"
        mark = " (strongest)" if report["strongest"][b["codec"]]["variant"] == b["variant"] else ""
        text.append(f"aecodec ({label}) vs {b['anchor']}{mark}: {_figures(b)}")
    return "\n".join(text)


def summary_markdown(reports: dict[str, dict[str, Any]], train_minutes: float) -> str:
    """The suite's summary: per clip, aecodec at its default level, the strongest x264 variant at the
    nearest bpp, and aecodec's stream-only BD figures against each codec's strongest variant."""
    any_report = next(iter(reports.values()))
    codecs = list(any_report["strongest"])
    notes: list[str] = []

    def figure(value: str | None, span: dict[str, Any] | None, note: str | None, context: str) -> str:
        if value is None:
            notes.append(f"{context}: {note}")
            return f"n/a [{len(notes)}]"
        return value if span is None else f"{value} ({span['of_both']:.0%} overlap)"

    lines = [
        f"Machine: {any_report['machine']['platform']}, {any_report['machine']['cpus']} CPUs; "
        f"training budget {train_minutes:g} min per clip on {any_report['speed']['train_device']} "
        f"({any_report['speed']['train_precision']}).",
        "",
        f"BD figures: aecodec's stream against each codec's strongest variant; {STRONGEST_RULE}. BD-rate "
        f"and BD-PSNR need the curves to overlap over {MIN_OVERLAP:.0%} of both ranges together; "
        "'over aecodec's range' is BD-rate over the part of aecodec's PSNR range the anchor covers (in "
        f"parentheses), where that is at least {MIN_OWN_RANGE:.0%} of it.",
        "",
        "| clip | aecodec default level: bpp (stream / total), RGB PSNR | strongest x264 at the nearest bpp | "
        + " | ".join(codecs)
        + " |",
        "| --- | --- | --- |" + " --- |" * len(codecs),
    ]
    for name, report in reports.items():
        points = report["points"]
        best = [r for r in points if r["codec"] == "aecodec" and r["variant"] == "low-delay"][
            report["model"]["default_quality"]
        ]
        cells = [
            f"{name} {report['clip']['width']}x{report['clip']['height']}",
            f"{best['bpp']:.4f} / {best['total_bpp']:.4f}, {best['psnr_rgb']:.2f} dB",
            _nearest(report, "x264", best["bpp"]),
        ]
        for codec in codecs:
            variant = report["strongest"][codec]["variant"]
            b = next(
                b
                for b in report["bd"]
                if b["codec"] == codec and b["variant"] == variant and b["aecodec_rate"] == "bpp"
            )
            context = f"{name} vs {b['anchor']}"
            rate = figure(_pct(b["bd_rate_pct"]), b["bd_rate_overlap"], b["note_rate"], f"{context}, BD-rate")
            own = figure(_own_range(b, ".0f"), None, b["note_own_range"], f"{context}, BD-rate over aecodec's range")
            psnr = figure(
                None if b["bd_psnr_db"] is None else f"{b['bd_psnr_db']:+.2f} dB",
                b["bd_psnr_overlap"],
                b["note_psnr"],
                f"{context}, BD-PSNR",
            )
            cells.append(f"**{variant}**: BD-rate {rate}; over aecodec's range {own}; BD-PSNR {psnr}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *(f"[{i}] {note}" for i, note in enumerate(notes, 1))]
    return "\n".join(lines) + "\n"


def _own_range(b: dict[str, Any], digits: str) -> str | None:
    """A ``bd`` entry's BD-rate over aecodec's PSNR range, with the interval it covers (reports
    written before the interval was recorded covered aecodec's whole range)."""
    if b["bd_rate_own_range_pct"] is None:
        return None
    interval = b.get("bd_rate_own_range_interval")
    where = "" if interval is None else f" ({interval[0]:.2f}-{interval[1]:.2f} dB)"
    return f"{b['bd_rate_own_range_pct']:+{digits}}%{where}"


def _pct(value: float | None) -> str | None:
    return None if value is None else f"{value:+.0f}%"


def _nearest(report: dict[str, Any], codec: str, bpp: float) -> str:
    """The point of ``codec``'s strongest variant nearest ``bpp`` (in log rate), with its variant."""
    if codec not in report["strongest"]:
        return "n/a"
    variant = report["strongest"][codec]["variant"]
    rows = [r for r in report["points"] if r["codec"] == codec and r["variant"] == variant]
    near = min(rows, key=lambda r: abs(math.log(r["bpp"] / bpp)))
    return f"{codec} {variant} {near['setting']}: {near['psnr_rgb']:.2f} dB @ {near['bpp']:.4f}"
