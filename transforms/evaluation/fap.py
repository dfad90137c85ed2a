"""Detection at low false-alarm probability (FAP): thresholds from a noise-only background, efficiencies with
binomial confidence intervals, the SNR at 50 % and 90 % efficiency, sensitive volume and distance, and the
refusal of a FAP the background cannot resolve.

numpy and scipy only (no TensorFlow), shared by the trainer's evaluation and the matched-filter baseline.

Conventions: ``noise`` (n_noise,) are the scores of noise-only examples (the background), ``positives``
(n_pos,) the scores of injections with their injected network ``snr`` and luminosity ``distance`` (Mpc) where
known; larger score = more signal-like, detected = ``score >= threshold``.

* Threshold at a FAP: :func:`transforms.evaluation.detection.fap_threshold` (at most ``floor(fap * n_noise)``
  noise scores at or above it).
* Resolution: a FAP is measured only when the background puts at least ``min_false_alarms`` (default 10) noise
  examples at or above its threshold; otherwise it is reported as unresolvable, with the smallest FAP the
  background supports, ``min_false_alarms / n_noise`` (10 in 20,000 noise examples: 5e-4). With ten false alarms
  the achieved FAP is known to within a factor ~2 (its Clopper-Pearson 95 % interval is about [0.48, 1.84] times
  the estimate), and the threshold is set by more than one extreme noise example.
* Intervals: binomial, two-sided, ``confidence`` (default 0.95): Clopper-Pearson (exact, from the beta
  distribution; the default) or Wilson score. They cover the sampling of the injections at a fixed threshold; the
  threshold's own uncertainty shows in the achieved FAP's interval.
* Sensitive volume (:func:`sensitive_volume`): an importance-sampled integral of the efficiency over distance,
  for injections whose SNR was drawn uniformly (what ``sigforge make-sample g2net`` does by default) or whose
  distance was drawn uniformly in volume. The sensitive-distance ratio of two searches is the cube root of their
  volume ratio.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from transforms.evaluation import metrics as M
from transforms.evaluation.detection import fap_key, fap_threshold, snr_at_efficiency

SEARCH_FAPS = (1e-2, 1e-3, 1e-4)
MIN_FALSE_ALARMS = 10
CONFIDENCE = 0.95
EFFICIENCY_LEVELS = (0.5, 0.9)
INTERVAL_METHODS = ("clopper_pearson", "wilson")


def binomial_interval(
    k: int, n: int, confidence: float = CONFIDENCE, method: str = "clopper_pearson"
) -> tuple[float, float]:
    """Two-sided ``confidence`` interval of a binomial proportion ``k / n``; (nan, nan) when ``n == 0``.

    ``clopper_pearson``: ``[B(a/2; k, n-k+1), B(1-a/2; k+1, n-k)]`` with ``B`` the beta quantile (0 for k = 0,
    1 for k = n), as ``scipy.stats.binomtest(k, n).proportion_ci(method="exact")``. ``wilson``: the score
    interval ``(p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)``, ``z`` the normal ``1 - a/2``
    quantile.
    """
    if method not in INTERVAL_METHODS:
        raise ValueError(f"interval method must be one of {INTERVAL_METHODS}, got {method!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    k, n = int(k), int(n)
    if n < 0 or not 0 <= k <= max(n, 0):
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return math.nan, math.nan
    from scipy import stats

    alpha = 1.0 - confidence
    if method == "clopper_pearson":
        low = 0.0 if k == 0 else float(stats.beta.ppf(alpha / 2.0, k, n - k + 1))
        high = 1.0 if k == n else float(stats.beta.ppf(1.0 - alpha / 2.0, k + 1, n - k))
        return low, high
    z = float(stats.norm.ppf(1.0 - alpha / 2.0))
    p = k / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2.0 * n)) / denominator
    half = z * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def min_resolvable_fap(n_noise: int, min_false_alarms: int = MIN_FALSE_ALARMS) -> float:
    """The smallest FAP a background of ``n_noise`` examples resolves: ``min_false_alarms / n_noise`` (nan
    without noise)."""
    return min_false_alarms / n_noise if n_noise > 0 else math.nan


def sensitive_volume(
    detected,
    distance,
    snr=None,
    snr_range: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Sensitive volume (Mpc^3 where known) of a search from its detections of a set of injections.

    ``detected`` (n,) bool, ``distance`` (n,) luminosity distances (Mpc), ``snr`` (n,) injected network SNRs.
    Injections with a non-finite or non-positive distance (or SNR, when needed) are left out.

    * ``snr_range = (lo, hi)``: each injection's SNR was drawn uniform in ``[lo, hi]`` and its distance solved,
      ``d = A / rho`` with ``A = rho d`` fixed by the source (masses, sky, orientation). Its distance density is
      then ``A / ((hi - lo) d^2)`` on ``[A/hi, A/lo]``, so one injection estimates
      ``V_i = (4 pi / 3) (A / hi)^3 + detected * 4 pi d^2 / p(d) = (4 pi / 3) (A / hi)^3 + detected * 4 pi (hi - lo)
      d^3 / rho``: the ball closer than SNR ``hi`` (taken as detected: efficiencies are ~1 there) plus the
      importance-weighted shell. ``V = mean_i V_i`` in Mpc^3.
    * ``snr_range = None``: distances drawn uniform in volume (equal weights), ``V = V_max * fraction detected``
      where ``V_max = (4 pi / 3) max(distance)^3`` (a common factor: only ratios are meaningful).

    Returns ``{"volume_mpc3", "distance_mpc" ((3 V / 4 pi)^(1/3)), "n_injections", "n_detected", "weighting"}``.
    """
    found = np.asarray(detected, dtype=bool).reshape(-1)
    d = np.asarray(distance, dtype=np.float64).reshape(-1)
    if d.shape != found.shape:
        raise ValueError(f"detected and distance differ in length: {found.size} vs {d.size}")
    usable = np.isfinite(d) & (d > 0)
    if snr_range is not None:
        lo, hi = (float(v) for v in snr_range)
        if not 0.0 < lo <= hi:
            raise ValueError(f"snr_range must satisfy 0 < lo <= hi, got {snr_range}")
        if snr is None:
            raise ValueError("SNR-uniform injections need their snr")
        rho = np.asarray(snr, dtype=np.float64).reshape(-1)
        usable &= np.isfinite(rho) & (rho > 0)
        d, rho, found = d[usable], rho[usable], found[usable]
        amplitude = rho * d
        per_injection = (4.0 * math.pi / 3.0) * (amplitude / hi) ** 3 + found * 4.0 * math.pi * (hi - lo) * d**3 / rho
        weighting = f"snr uniform in [{lo:g}, {hi:g}]"
    else:
        d, found = d[usable], found[usable]
        v_max = (4.0 * math.pi / 3.0) * float(d.max()) ** 3 if d.size else math.nan
        per_injection = found * v_max
        weighting = "uniform in volume (relative: V_max from the largest distance)"
    volume = float(np.mean(per_injection)) if d.size else math.nan
    return {
        "volume_mpc3": volume,
        "distance_mpc": (3.0 * volume / (4.0 * math.pi)) ** (1.0 / 3.0) if math.isfinite(volume) else math.nan,
        "n_injections": int(d.size),
        "n_detected": int(found.sum()),
        "weighting": weighting,
    }


def efficiency_bins_with_intervals(
    noise, positives, snr, threshold: float, bins, confidence: float, method: str
) -> dict[str, Any]:
    """:func:`transforms.evaluation.metrics.efficiency_vs_snr` of ``positives`` against ``noise`` at
    ``threshold``, each bin with ``n_detected`` and its binomial ``interval``."""
    noise = np.asarray(noise, dtype=np.float64).reshape(-1)
    positives = np.asarray(positives, dtype=np.float64).reshape(-1)
    labels = np.r_[np.zeros(noise.size, dtype=np.int64), np.ones(positives.size, dtype=np.int64)]
    snr_all = np.r_[np.zeros(noise.size), np.asarray(snr, dtype=np.float64).reshape(-1)]
    curve = M.efficiency_vs_snr(labels, np.r_[noise, positives], snr_all, threshold, bins)
    for row in curve["bins"]:
        k = int(round(row["efficiency"] * row["n_positive"])) if row["n_positive"] else 0
        row["n_detected"] = k
        row["interval"] = list(binomial_interval(k, row["n_positive"], confidence, method))
    return curve


def detection_at_faps(
    noise,
    positives,
    snr=None,
    distance=None,
    faps: Sequence[float] = SEARCH_FAPS,
    bins: int | Sequence[float] = 6,
    *,
    snr_range: tuple[float, float] | None = None,
    min_false_alarms: int = MIN_FALSE_ALARMS,
    confidence: float = CONFIDENCE,
    method: str = "clopper_pearson",
) -> dict[str, Any]:
    """Per FAP: threshold, efficiency with its interval, efficiency per SNR bin, SNR at 50 %/90 % efficiency and
    the sensitive volume, or the refusal of an unresolvable FAP (module doc).

    Returns ``{"n_noise", "n_positive", "min_resolvable_fap", "min_false_alarms", "confidence",
    "interval_method", "faps": {fap_key: entry}}``. A resolvable entry has ``resolvable: True``, the threshold
    fields of ``fap_threshold``, ``achieved_fap_interval``, ``efficiency``, ``n_detected``,
    ``efficiency_interval``, ``efficiency_vs_snr`` (when ``snr`` is given), ``snr_at_50pct``, ``snr_at_90pct``
    and ``sensitive_volume`` (when ``distance`` is given); an unresolvable one has ``resolvable: False``,
    ``reason`` and ``min_resolvable_fap``, and no efficiency.
    """
    noise = np.asarray(noise, dtype=np.float64).reshape(-1)
    positives = np.asarray(positives, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(positives)):
        raise ValueError("positive scores contain NaN or inf")
    snr = None if snr is None else np.asarray(snr, dtype=np.float64).reshape(-1)
    distance = None if distance is None else np.asarray(distance, dtype=np.float64).reshape(-1)
    for name, values in (("snr", snr), ("distance", distance)):
        if values is not None and values.shape != positives.shape:
            raise ValueError(f"{name} has {values.size} values for {positives.size} positives")
    n_noise = int(noise.size)
    floor_fap = min_resolvable_fap(n_noise, min_false_alarms)
    injected = snr is not None and bool(np.any(np.isfinite(snr) & (snr > 0)))
    edges = M.snr_bin_edges(snr[np.isfinite(snr) & (snr > 0)], bins) if injected else None
    out: dict[str, Any] = {}
    for fap in faps:
        entry: dict[str, Any] = dict(fap_threshold(noise, fap))
        entry["min_resolvable_fap"] = floor_fap
        if entry["false_alarms"] < min_false_alarms or fap * n_noise < min_false_alarms:
            entry["resolvable"] = False
            entry["reason"] = (
                f"the background of {n_noise} noise examples puts {entry['false_alarms']} at or above the FAP "
                f"{fap:g} threshold (fewer than {min_false_alarms}); the smallest FAP it resolves is {floor_fap:.3g}"
            )
            out[fap_key(fap)] = entry
            continue
        entry["resolvable"] = True
        entry["achieved_fap_interval"] = list(binomial_interval(entry["false_alarms"], n_noise, confidence, method))
        threshold = entry["threshold"]
        found = positives >= threshold
        k = int(found.sum())
        entry["n_positive"] = int(positives.size)
        entry["n_detected"] = k
        entry["efficiency"] = k / positives.size if positives.size else math.nan
        entry["efficiency_interval"] = list(binomial_interval(k, positives.size, confidence, method))
        if injected:
            curve = efficiency_bins_with_intervals(noise, positives, snr, threshold, edges, confidence, method)
            entry["efficiency_vs_snr"] = curve
            for level in EFFICIENCY_LEVELS:
                entry[f"snr_at_{round(100 * level)}pct"] = snr_at_efficiency(curve["bins"], level)
        if distance is not None:
            entry["sensitive_volume"] = sensitive_volume(found, distance, snr, snr_range)
        out[fap_key(fap)] = entry
    return {
        "n_noise": n_noise,
        "n_positive": int(positives.size),
        "min_resolvable_fap": floor_fap,
        "min_false_alarms": min_false_alarms,
        "confidence": confidence,
        "interval_method": method,
        "faps": out,
    }


def distance_ratio(numerator: Mapping[str, Any], denominator: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per FAP resolvable in both :func:`detection_at_faps` results: the sensitive-distance ratio
    ``(V_num / V_den)^(1/3)``, the efficiency ratio and both SNRs at 50 % and 90 % efficiency."""
    out: dict[str, dict[str, Any]] = {}
    for key, num in numerator["faps"].items():
        den = denominator["faps"].get(key)
        if den is None or not num.get("resolvable") or not den.get("resolvable"):
            out[key] = {"resolvable": False}
            continue
        row: dict[str, Any] = {"resolvable": True, "efficiency_ratio": _ratio(num["efficiency"], den["efficiency"])}
        if "sensitive_volume" in num and "sensitive_volume" in den:
            volume = _ratio(num["sensitive_volume"]["volume_mpc3"], den["sensitive_volume"]["volume_mpc3"])
            row["volume_ratio"] = volume
            row["distance_ratio"] = volume ** (1.0 / 3.0) if math.isfinite(volume) else math.nan
        for level in EFFICIENCY_LEVELS:
            name = f"snr_at_{round(100 * level)}pct"
            row[name] = [num.get(name, math.nan), den.get(name, math.nan)]
        out[key] = row
    return out


def false_alarm_rates(
    noise, other, faps: Sequence[float] = SEARCH_FAPS, min_false_alarms: int = MIN_FALSE_ALARMS
) -> dict[str, dict[str, Any]]:
    """False-alarm fractions of ``other`` (e.g. glitchy noise) at the thresholds set on ``noise`` (clean noise).

    Per FAP resolvable on ``noise`` (at least ``min_false_alarms`` clean examples at or above the threshold, as in
    :func:`detection_at_faps`): ``threshold``, ``clean`` (the achieved FAP on ``noise``), ``other`` (fraction of
    ``other`` at or above the threshold), its Clopper-Pearson 95 % interval, counts, and ``ratio = other / clean``.
    Otherwise ``{"resolvable": False, "reason", "min_resolvable_fap"}``.
    """
    noise = np.asarray(noise, dtype=np.float64).reshape(-1)
    other = np.asarray(other, dtype=np.float64).reshape(-1)
    floor_fap = min_resolvable_fap(int(noise.size), min_false_alarms)
    out: dict[str, dict[str, Any]] = {}
    for fap in faps:
        entry = fap_threshold(noise, fap)
        if entry["false_alarms"] < min_false_alarms or not other.size:
            out[fap_key(fap)] = {
                "resolvable": False,
                "reason": f"{entry['false_alarms']} of {entry['n_noise']} clean examples at or above the FAP {fap:g} "
                f"threshold (fewer than {min_false_alarms}), or no other examples",
                "min_resolvable_fap": floor_fap,
            }
            continue
        k = int(np.sum(other >= entry["threshold"]))
        out[fap_key(fap)] = {
            "resolvable": True,
            "threshold": entry["threshold"],
            "clean": entry["achieved_fap"],
            "n_clean": entry["n_noise"],
            "clean_false_alarms": entry["false_alarms"],
            "other": k / other.size,
            "n_other": int(other.size),
            "other_false_alarms": k,
            "other_interval": list(binomial_interval(k, other.size)),
            "ratio": _ratio(k / other.size, entry["achieved_fap"]),
        }
    return out


def _ratio(a: float | None, b: float | None) -> float:
    if a is None or b is None or not math.isfinite(a) or not math.isfinite(b) or b == 0.0:
        return math.nan
    return float(a / b)
