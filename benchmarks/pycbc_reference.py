"""An independent PyCBC matched filter, to check ``sigforge baseline matched-filter`` on the same samples.

    python benchmarks/pycbc_reference.py --data RAW --scores SCORES_DIR/scores.csv [--uids UIDS.txt] \\
        [--templates 256] [--seed 0] [--workers 2] [--out reference.csv]

Independent of ``transforms.recipes.g2net.matched_filter`` in everything but the template parameters (the bank
is placed with the same ``make_bank`` and seed, so both search the same templates): templates from
``pycbc.waveform.get_td_waveform`` (face-on ``h+``, cut 1.5 s before the merger and rolled so the merger sits
at sample 0), PSDs from ``pycbc.psd`` (aLIGOZeroDetHighPower, AdvVirgo), SNR time series from
``pycbc.filter.matched_filter`` per detector and template, and the network statistic written out here:
``max over templates and H1 merger times t in tc_range +- 21.3 ms of |z_H1(t)|^2 + max_{|dt| <= 10.0 ms + 1 sample}
|z_L1(t + dt)|^2 + max_{|dt| <= 27.3 ms + 1 sample} |z_V1(t + dt)|^2``. The data get the same Tukey(0.1) window.
Prints the ROC-AUC of both searches on the same uids and the largest score difference; writes id,label,score.
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import os
import sys
from multiprocessing import Pool

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FS, N, F_LOW, F_HIGH, TC_REF = 2048.0, 4096, 20.0, 1000.0, 1.5
_STATE: dict = {}


def _templates(params):
    from pycbc.types import TimeSeries
    from pycbc.waveform import get_td_waveform

    out = []
    for m1, m2, s1z, s2z in params:
        hp, _ = get_td_waveform(
            approximant="IMRPhenomD", mass1=m1, mass2=m2, spin1z=s1z, spin2z=s2z, delta_t=1 / FS, f_lower=F_LOW
        )
        times = hp.sample_times.numpy()
        keep = (times >= -TC_REF) & (times < N / FS - TC_REF)
        buf = np.zeros(N)
        idx = np.round(times[keep] * FS).astype(int) % N  # merger (t = 0) at index 0, the inspiral wrapped
        buf[idx] = hp.numpy()[keep]
        out.append(TimeSeries(buf, delta_t=1 / FS).to_frequencyseries())
    return out


def _init(params):
    import pycbc.psd

    _STATE["templates"] = _templates(params)
    _STATE["psds"] = [
        pycbc.psd.aLIGOZeroDetHighPower(N // 2 + 1, FS / N, F_LOW),
        pycbc.psd.aLIGOZeroDetHighPower(N // 2 + 1, FS / N, F_LOW),
        pycbc.psd.AdvVirgo(N // 2 + 1, FS / N, F_LOW),
    ]


def _windowed_max(x: np.ndarray, half: int) -> np.ndarray:
    return np.max(np.stack([np.roll(x, -s, axis=-1) for s in range(-half, half + 1)]), axis=0)


def _score(path: str) -> float:
    from pycbc.filter import matched_filter
    from pycbc.types import TimeSeries
    from scipy.signal.windows import tukey

    strain = np.load(path) * tukey(N, 0.1)
    data = [TimeSeries(row, delta_t=1 / FS).to_frequencyseries() for row in strain]
    h1_times = np.arange(math.floor((1.2 - 0.0213) * FS), math.ceil((1.8 + 0.0213) * FS) + 1)
    halves = [math.ceil((0.010012 + 1 / FS) * FS), math.ceil((0.027288 + 1 / FS) * FS)]
    best = 0.0
    for template in _STATE["templates"]:
        rho2 = [
            np.abs(matched_filter(template, d, psd=p, low_frequency_cutoff=F_LOW, high_frequency_cutoff=F_HIGH).numpy())
            ** 2
            for d, p in zip(data, _STATE["psds"], strict=True)
        ]
        total = rho2[0] + _windowed_max(rho2[1], halves[0]) + _windowed_max(rho2[2], halves[1])
        best = max(best, float(total[h1_times].max()))
    return math.sqrt(best)


def compare(
    data: str, scores_csv: str, uids_wanted=None, templates: int = 256, seed: int = 0, workers: int = 2, out=None
):
    """Scores ``uids_wanted`` (default: every uid of ``scores_csv``) with the reference and compares. Returns
    ``{"n", "auc_sigforge", "auc_reference", "score_diff_median", "score_diff_max", "minimal_match"}``."""
    sys.path.insert(0, REPO)
    from model.metrics import roc_auc
    from transforms.recipes.g2net import matched_filter as mf

    with open(scores_csv, newline="") as handle:
        ours = {r["id"]: r for r in csv.DictReader(handle)}
    uids = sorted(ours) if uids_wanted is None else sorted(set(uids_wanted) & set(ours))
    paths = [os.path.join(data, "train", u[0], u[1], u[2], f"{u}.npy") for u in uids]
    cfg = mf.MatchedFilterConfig()
    bank = mf.make_bank(templates, mf.design_psds(cfg)[0], cfg, seed=seed)
    logging.info("reference: %d samples, %d templates (minimal match %.3f)", len(uids), len(bank), bank.minimal_match)
    with Pool(workers, initializer=_init, initargs=(bank.params.tolist(),)) as pool:
        scores = pool.map(_score, paths, chunksize=4)
    labels = [int(ours[u]["label"]) for u in uids]
    if out:
        with open(out, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "label", "score"])
            writer.writerows(zip(uids, labels, (f"{s:.9g}" for s in scores), strict=True))
    mine = [float(ours[u]["score"]) for u in uids]
    diff = np.abs(np.array(mine) - np.array(scores))
    return {
        "n": len(uids),
        "auc_sigforge": roc_auc(labels, mine),
        "auc_reference": roc_auc(labels, scores),
        "score_diff_median": float(np.median(diff)),
        "score_diff_max": float(diff.max()),
        "minimal_match": bank.minimal_match,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--scores", required=True, help="scores.csv of sigforge baseline matched-filter")
    parser.add_argument("--uids", default=None, help="file with one uid per line (default: every scored uid)")
    parser.add_argument("--templates", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="reference_scores.csv")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s: %(message)s", datefmt="%X")
    wanted = None
    if args.uids:
        with open(args.uids) as handle:
            wanted = [line.strip() for line in handle if line.strip()]
    r = compare(args.data, args.scores, wanted, args.templates, args.seed, args.workers, args.out)
    print(
        f"{r['n']} samples: ROC-AUC sigforge {r['auc_sigforge']:.4f}, PyCBC reference {r['auc_reference']:.4f}; "
        f"|score difference| median {r['score_diff_median']:.2e}, max {r['score_diff_max']:.2e}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
