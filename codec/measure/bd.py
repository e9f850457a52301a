"""Bjøntegaard deltas that say what they were computed on, and refuse where the curves barely meet.

Every figure comes with its overlap: the interval of the integration axis that both curves cover
(RGB PSNR in dB for BD-rate, log10 of the rate for BD-PSNR) and its fraction of the test curve's
range, of the anchor's, and of both together. The ``bjontegaard`` package measures overlap the last
way and warns below 75% by default; here a figure below :data:`MIN_OVERLAP` is null with the reason
(no extrapolation, and no figure averaged over a sliver of one curve). BD-rate over the test
curve's own PSNR range is reported beside it, over the part of that range the anchor covers (never
extrapolated) and only where that part is at least :data:`MIN_OWN_RANGE` of it; the interval goes
with the figure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from codec.measure.baselines import VARIANTS

MIN_OVERLAP = 0.75  # the bjontegaard package's own default min_overlap, on the same measure
MIN_OWN_RANGE = 0.5  # the least fraction of the test's PSNR range BD-rate over its own range covers


def curve(rows: list[dict[str, Any]], rate_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Rates and RGB PSNRs by rising rate, keeping only the points that also raise PSNR (the
    interpolation needs a monotone curve; a point that costs more and gives less is no part of it)."""
    rates: list[float] = []
    psnrs: list[float] = []
    for r in sorted(rows, key=lambda r: r[rate_key]):
        if not psnrs or (r["psnr_rgb"] > psnrs[-1] and r[rate_key] > rates[-1]):
            rates.append(r[rate_key])
            psnrs.append(r["psnr_rgb"])
    return np.array(rates), np.array(psnrs)


def overlap(test: np.ndarray, anchor: np.ndarray) -> dict[str, Any]:
    """The interval both axes cover (null when none), and its fraction of each one's range and of
    their union (``of_both``, the package's measure and the one :data:`MIN_OVERLAP` applies to)."""
    lo, hi = max(test.min(), anchor.min()), min(test.max(), anchor.max())
    width = max(hi - lo, 0.0)
    union = max(test.max(), anchor.max()) - min(test.min(), anchor.min())
    return {
        "interval": [float(lo), float(hi)] if width > 0 else None,
        "of_test": float(width / np.ptp(test)),
        "of_anchor": float(width / np.ptp(anchor)),
        "of_both": float(width / union),
    }


def _reason(
    span: dict[str, Any], axis: str, names: tuple[str, str], shown: Callable[[float, float], str]
) -> str | None:
    """Why a figure integrated over ``span`` is not given, or None when it may be."""
    test, anchor = names
    if span["interval"] is None:
        return f"n/a: the curves' {axis} ranges do not overlap"
    if span["of_both"] < MIN_OVERLAP:
        return (
            f"n/a: curves overlap over {shown(*span['interval'])}, {span['of_test']:.0%} of {test}'s {axis} range "
            f"and {span['of_anchor']:.0%} of {anchor}'s ({span['of_both']:.0%} of both together), "
            f"below the {MIN_OVERLAP:.0%} threshold"
        )
    return None


def bd_figures(
    test: list[dict[str, Any]], anchor: list[dict[str, Any]], rate_key: str, names: tuple[str, str]
) -> dict[str, Any]:
    """BD-rate (%) and BD-PSNR (dB, RGB) of ``test`` against ``anchor`` with their overlaps, and BD-rate
    over ``test``'s own PSNR range; ``names`` (test, anchor) word the reasons of null figures."""
    import bjontegaard

    (rt, dt), (ra, da) = curve(test, rate_key), curve(anchor, rate_key)
    if len(rt) < 2 or len(ra) < 2:
        note = f"n/a: {names[0] if len(rt) < 2 else names[1]}'s curve has fewer than 2 points that raise rate and PSNR"
        figures = (
            "bd_rate_pct",
            "bd_rate_overlap",
            "bd_psnr_db",
            "bd_psnr_overlap",
            "bd_rate_own_range_pct",
            "bd_rate_own_range_interval",
        )
        return dict.fromkeys(figures) | dict.fromkeys(("note_rate", "note_psnr", "note_own_range"), note)
    by_psnr, by_rate = overlap(dt, da), overlap(np.log10(rt), np.log10(ra))
    rate_reason = _reason(by_psnr, "PSNR", names, lambda lo, hi: f"{lo:.2f}-{hi:.2f} dB")
    psnr_reason = _reason(by_rate, "rate", names, lambda lo, hi: f"{10**lo:.4g}-{10**hi:.4g} bpp")
    call = {"method": "pchip", "require_matching_points": False, "min_overlap": MIN_OVERLAP}
    own_range, own_interval = _own_range(rt, dt, ra, da)
    own_reason = (
        f"n/a: {names[1]} ({da.min():.2f}-{da.max():.2f} dB) covers less than {MIN_OWN_RANGE:.0%} of "
        f"{names[0]}'s PSNR range ({dt.min():.2f}-{dt.max():.2f} dB) without extrapolating"
    )
    return {
        "bd_rate_pct": None if rate_reason else float(bjontegaard.bd_rate(ra, da, rt, dt, **call)),
        "bd_rate_overlap": by_psnr,
        "note_rate": rate_reason,
        "bd_psnr_db": None if psnr_reason else float(bjontegaard.bd_psnr(ra, da, rt, dt, **call)),
        "bd_psnr_overlap": by_rate,
        "note_psnr": psnr_reason,
        "bd_rate_own_range_pct": own_range,
        "bd_rate_own_range_interval": own_interval,
        "note_own_range": None if own_range is not None else own_reason,
    }


def _own_range(
    rt: np.ndarray, dt: np.ndarray, ra: np.ndarray, da: np.ndarray
) -> tuple[float | None, list[float] | None]:
    """BD-rate (%) over the part of the test curve's PSNR range the anchor covers, and that interval
    (dB), where it is at least MIN_OWN_RANGE of the test's range; else (None, None)."""
    from bjontegaard.interpolation import interpolate

    lo, hi = max(dt.min(), da.min()), min(dt.max(), da.max())
    if hi - lo < MIN_OWN_RANGE * np.ptp(dt):
        return None, None

    def mean_log_rate(psnrs: np.ndarray, rates: np.ndarray) -> float:
        return interpolate(psnrs, np.log10(rates), "pchip").integrate(lo, hi) / (hi - lo)

    return float((10 ** (mean_log_rate(dt, rt) - mean_log_rate(da, ra)) - 1) * 100), [float(lo), float(hi)]


def strongest_variant(points: list[dict[str, Any]], codec: str) -> dict[str, Any]:
    """The variant of ``codec`` whose curve needs the fewest bits: the lowest BD-rate (stream bpp)
    against ``codec``'s default variant, among those whose BD-rate against it is given (the
    default's own is 0). It depends on ``codec``'s curves alone, never on aecodec's."""
    curves = {v.name: [r for r in points if r["codec"] == codec and r["variant"] == v.name] for v in VARIANTS}
    scores = {
        name: bd_figures(rows, curves["default"], "bpp", (f"{codec} {name}", f"{codec} default"))["bd_rate_pct"]
        for name, rows in curves.items()
    }
    ranked = {name: score for name, score in scores.items() if score is not None} or {"default": 0.0}
    return {"variant": min(ranked, key=ranked.__getitem__), "bd_rate_vs_default_pct": scores}


def compare(points: list[dict[str, Any]], codecs: list[str]) -> dict[str, Any]:
    """The report's ``bd`` (aecodec, stream-only and total, against every variant of ``codecs``) and
    ``strongest`` (each codec's strongest variant)."""
    aecodec = [r for r in points if r["codec"] == "aecodec" and r["variant"] == "low-delay"]
    bd = []
    for codec in codecs:
        for variant in VARIANTS:
            anchor = [r for r in points if r["codec"] == codec and r["variant"] == variant.name]
            name = f"{codec} {variant.name}"
            for rate in ("bpp", "total_bpp"):
                figures = bd_figures(aecodec, anchor if rate == "bpp" else _as_total(anchor), rate, ("aecodec", name))
                bd.append({"anchor": name, "codec": codec, "variant": variant.name, "aecodec_rate": rate, **figures})
    return {"bd": bd, "strongest": {codec: strongest_variant(points, codec) for codec in codecs}}


def _as_total(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Baseline rows with total_bpp = bpp (their decoders are already on every client)."""
    return [{**r, "total_bpp": r["bpp"]} for r in rows]
