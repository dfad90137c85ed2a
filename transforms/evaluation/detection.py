"""Detection-style metrics on top of :mod:`transforms.evaluation.metrics`: thresholds at a fixed false-alarm
probability (FAP), detection efficiency per injected-SNR bin at those thresholds, and sensitivity ratios between
two searches.

numpy only (no TensorFlow), so the matched-filter baseline and the trainer's evaluation share it. Conventions
as in :mod:`transforms.evaluation.metrics`: ``labels`` 0/1 (n,), ``scores`` (n,) larger = more signal-like,
``snr`` (n,) the injected SNR (NaN or 0 where unknown / noise), detection = ``score >= threshold``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from transforms.evaluation import metrics as M

DEFAULT_FAPS = (1e-1, 1e-2, 1e-3)
EFFICIENCY_LEVEL = 0.5


def fap_key(fap: float) -> str:
    """JSON key of a false-alarm probability: ``0.01``, ``0.001``."""
    return f"{fap:g}"


def fap_threshold(noise_scores, fap: float) -> dict[str, Any]:
    """The lowest threshold at which at most ``floor(fap * n_noise)`` noise scores are ``>= threshold``.

    With ``k = floor(fap * n)`` allowed false alarms the threshold sits just above the (k+1)-th largest noise
    score (``numpy.nextafter``), so the achieved FAP is ``<= fap`` (ties can make it smaller). When
    ``fap * n < 1`` no false alarm is allowed: the threshold is just above the loudest noise score and
    ``resolution_limited`` is True (the measured FAP can only be said to be below ``1 / n``).

    Returns ``{"fap", "threshold", "n_noise", "false_alarms", "achieved_fap", "resolution_limited"}``;
    threshold NaN without noise scores.
    """
    if not 0.0 < fap < 1.0:
        raise ValueError(f"false-alarm probability must be in (0, 1), got {fap}")
    noise = np.sort(np.asarray(noise_scores, dtype=np.float64).reshape(-1))[::-1]
    if not np.all(np.isfinite(noise)):
        raise ValueError("noise scores contain NaN or inf")
    n = int(noise.size)
    if n == 0:
        return {
            "fap": fap,
            "threshold": math.nan,
            "n_noise": 0,
            "false_alarms": 0,
            "achieved_fap": math.nan,
            "resolution_limited": True,
        }
    allowed = int(math.floor(fap * n + 1e-9))
    threshold = float(np.nextafter(noise[min(allowed, n - 1)], np.inf))
    false_alarms = int(np.sum(noise >= threshold))
    return {
        "fap": fap,
        "threshold": threshold,
        "n_noise": n,
        "false_alarms": false_alarms,
        "achieved_fap": false_alarms / n,
        "resolution_limited": fap * n < 1.0,
    }


def efficiency_at_fap(
    labels,
    scores,
    snr=None,
    faps: Sequence[float] = DEFAULT_FAPS,
    bins: int | Sequence[float] = 6,
) -> dict[str, dict[str, Any]]:
    """Per FAP: the noise threshold (:func:`fap_threshold`), the efficiency over all positives and, when ``snr``
    is given, :func:`transforms.evaluation.metrics.efficiency_vs_snr` at that threshold (``bins``: a count of
    equal-count bins over the positives' SNR, or explicit edges, so that two searches can share bins) and the SNR
    at 50 % efficiency (:func:`snr_at_efficiency`).

    Returns ``{fap_key(fap): {..threshold fields.., "efficiency", "n_positive", "efficiency_vs_snr",
    "snr_at_50pct"}}``.
    """
    y = np.asarray(labels).astype(np.int64).reshape(-1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.size} vs {s.size}")
    out: dict[str, dict[str, Any]] = {}
    for fap in faps:
        entry = fap_threshold(s[y == 0], fap)
        positives = s[y == 1]
        threshold = entry["threshold"]
        entry["n_positive"] = int(positives.size)
        entry["efficiency"] = (
            float(np.mean(positives >= threshold)) if positives.size and math.isfinite(threshold) else math.nan
        )
        if snr is not None and math.isfinite(threshold):
            entry["efficiency_vs_snr"] = M.efficiency_vs_snr(y, s, snr, threshold, bins)
            entry["snr_at_50pct"] = snr_at_efficiency(entry["efficiency_vs_snr"]["bins"], EFFICIENCY_LEVEL)
        out[fap_key(fap)] = entry
    return out


def snr_at_efficiency(bins: Sequence[Mapping[str, Any]], level: float = EFFICIENCY_LEVEL) -> float:
    """The injected SNR at which the binned efficiency curve first reaches ``level``: linear interpolation in
    each bin's median SNR between the last bin below ``level`` and the first at or above it.

    ``bins``: the ``efficiency_vs_snr(...)["bins"]`` rows (``snr_median``, ``efficiency``), in increasing SNR;
    empty bins are skipped. NaN when the curve never reaches ``level`` or already starts at or above it (the
    crossing lies outside the measured SNR range).
    """
    points = [
        (float(b["snr_median"]), float(b["efficiency"]))
        for b in bins
        if b.get("n_positive") and math.isfinite(b["snr_median"]) and math.isfinite(b["efficiency"])
    ]
    for (x0, e0), (x1, e1) in zip(points, points[1:], strict=False):
        if e0 < level <= e1:
            return float(x0 + (level - e0) * (x1 - x0) / (e1 - e0))
    return math.nan


def sensitivity_ratio(
    numerator: Mapping[str, Mapping[str, Any]], denominator: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Efficiency ratio numerator / denominator per FAP, overall and per SNR bin (bins must be the same).

    Inputs are :func:`efficiency_at_fap` results. A ratio is NaN where the denominator's efficiency is 0 or
    undefined. ``snr_at_50pct_ratio`` is numerator / denominator of the SNR at 50 % efficiency (> 1: the
    numerator needs louder signals). Returns ``{fap_key: {"overall", "snr_at_50pct", "snr_at_50pct_ratio",
    "bins": [{snr_low, snr_high, snr_median, n_positive, numerator, denominator, ratio}]}}``.
    """
    out: dict[str, dict[str, Any]] = {}
    for key, num in numerator.items():
        den = denominator.get(key)
        if den is None:
            continue
        rows = []
        num_bins = (num.get("efficiency_vs_snr") or {}).get("bins", [])
        den_bins = (den.get("efficiency_vs_snr") or {}).get("bins", [])
        if len(num_bins) != len(den_bins):
            raise ValueError(f"FAP {key}: the two efficiency curves have different bins")
        for a, b in zip(num_bins, den_bins, strict=True):
            if (a["snr_low"], a["snr_high"]) != (b["snr_low"], b["snr_high"]):
                raise ValueError(f"FAP {key}: SNR bins differ ({a['snr_low']}-{a['snr_high']} vs {b['snr_low']})")
            rows.append(
                {
                    "snr_low": a["snr_low"],
                    "snr_high": a["snr_high"],
                    "snr_median": a["snr_median"],
                    "n_positive": a["n_positive"],
                    "numerator": a["efficiency"],
                    "denominator": b["efficiency"],
                    "ratio": _ratio(a["efficiency"], b["efficiency"]),
                }
            )
        snr50 = (num.get("snr_at_50pct", math.nan), den.get("snr_at_50pct", math.nan))
        out[key] = {
            "overall": _ratio(num.get("efficiency"), den.get("efficiency")),
            "snr_at_50pct": list(snr50),
            "snr_at_50pct_ratio": _ratio(*snr50),
            "bins": rows,
        }
    return out


def _ratio(a: float | None, b: float | None) -> float:
    if a is None or b is None or not math.isfinite(a) or not math.isfinite(b) or b == 0.0:
        return math.nan
    return float(a / b)
