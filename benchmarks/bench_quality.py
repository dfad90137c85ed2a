"""Detection quality of the CNN against the matched-filter baseline on the same generated G2Net data.

    python benchmarks/bench_quality.py [--n 4000] [--signals-per-source 3] [--epochs E] [--train-set K=V ...] \
        [--psd design] [--templates 256] [--reference] [--keep]

Steps (all in this process, each timed):

1. ``make-sample``: ``N`` G2Net-layout samples (``transforms.recipes.g2net.sample.write_g2net_sample``), half with
   an IMRPhenomD signal (aligned spins) at network SNR U(4, 20), ``--signals-per-source`` noise draws per waveform;
2. ``sigforge run`` (``beam_pipelines.stages.run_all.run_all``, ``run_configs/demo.yaml``: split by ``source_id``,
   injections joined into the data tables);
3. ``python -m model.train`` with the default ``run_configs/train_g2net.yaml`` (``--epochs`` overrides its budget,
   ``--train-set`` any other key);
4. ``sigforge baseline matched-filter`` on the same raw folder (``--psd``, ``--templates``);
5. ``python -m model.evaluate --baseline``: both searches on the test split's uids;
6. with ``--reference``: ``benchmarks/pycbc_reference.py``, an independent PyCBC matched filter, on the test uids.

Prints the CNN test ROC-AUC, the matched filter's ROC-AUC on the same test uids, their ratio, the efficiency of
both at false-alarm probabilities 0.1, 0.01, 0.001 overall and per SNR bin, the SNR at 50 % efficiency, and the
timings; writes the numbers as JSON to ``--results`` (default ``WORKDIR/quality.json``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import shutil
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _fmt(value) -> str:
    return "  n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:5.3f}"


def _test_uids(dataset: str) -> list[str]:
    import csv
    import glob

    uids = []
    for path in sorted(glob.glob(os.path.join(dataset, "norm", "test", "data_tbl_*.csv"))):
        with open(path, newline="") as handle:
            uids.extend(row["uid"] for row in csv.DictReader(handle))
    return uids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=4000, help="generated samples (default 4000)")
    parser.add_argument("--seed", type=int, default=1, help="sample seed (default 1)")
    parser.add_argument("--signals-per-source", type=int, default=3, help="noise draws per waveform (default 3)")
    parser.add_argument("--epochs", type=int, default=None, help="training epoch budget (default: the config's)")
    parser.add_argument(
        "--train-set", action="append", default=[], metavar="KEY=VALUE", help="trainer override (repeatable)"
    )
    parser.add_argument("--psd", choices=["design", "estimated"], default="design", help="matched-filter PSD")
    parser.add_argument("--templates", type=int, default=256, help="matched-filter bank size (default 256)")
    parser.add_argument("--reference", action="store_true", help="also run the independent PyCBC filter on test")
    parser.add_argument("--workdir", default=None, help="folder for raw/, dataset/, runs/, mf/ (default: temporary)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--results", default=None, help="JSON output (default WORKDIR/quality.json)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%X")
    logging.getLogger("absl").setLevel(logging.WARNING)
    os.chdir(REPO)
    sys.path.insert(0, REPO)

    from beam_pipelines.recipes.g2net.baseline import run_matched_filter
    from beam_pipelines.stages.run_all import run_all
    from model.evaluate import evaluate
    from model.metrics import jsonable
    from model.train import train
    from transforms.config import DatasetConfig, load_config
    from transforms.recipes.g2net import sample as gw_sample

    workdir = args.workdir or tempfile.mkdtemp(prefix="sigforge_quality_")
    raw, dataset, runs, mf_dir = (os.path.join(workdir, name) for name in ("raw", "dataset", "runs", "mf"))
    seconds: dict[str, float] = {}

    def step(name, fn):
        started = time.monotonic()
        result = fn()
        seconds[name] = time.monotonic() - started
        logging.info("bench_quality: %s done in %.1f s", name, seconds[name])
        return result

    keep = args.keep or args.workdir is not None
    epochs = ([f"train.epochs={args.epochs}"] if args.epochs else []) + list(args.train_set)
    step(
        "make_sample",
        lambda: gw_sample.write_g2net_sample(
            raw, n=args.n, seed=args.seed, signals_per_source=args.signals_per_source, overwrite=True
        ),
    )
    config = load_config(DatasetConfig, "run_configs/demo.yaml")
    step("sigforge_run", lambda: run_all(config, raw, dataset, overwrite=True))
    run_dir = step(
        "train",
        lambda: train(
            dataset,
            "run_configs/train_g2net.yaml",
            runs,
            overrides=epochs,
        ),
    )
    mf = step(
        "matched_filter",
        lambda: run_matched_filter(
            raw, mf_dir, psd=args.psd, n_templates=args.templates, seed=args.seed, overwrite=True
        ),
    )
    payload = step("evaluate", lambda: evaluate(dataset, run_dir, "test", baseline=os.path.join(mf_dir, "scores.csv")))
    reference = None
    if args.reference:
        sys.path.insert(0, os.path.join(REPO, "benchmarks"))
        from pycbc_reference import compare

        reference = step(
            "pycbc_reference",
            lambda: compare(raw, os.path.join(mf_dir, "scores.csv"), _test_uids(dataset), args.templates, args.seed),
        )

    entry = payload["baseline"]
    cnn_auc, mf_auc = entry["cnn"]["roc_auc"], entry["baseline"]["roc_auc"]
    with open(os.path.join(run_dir, f"{os.path.basename(run_dir)}_metrics.json")) as handle:
        training = json.load(handle)["training"]
    summary = {
        "n": args.n,
        "seed": args.seed,
        "signals_per_source": args.signals_per_source,
        "epochs_budget": args.epochs or "config",
        "train_overrides": list(args.train_set),
        "epochs_run": training["epochs_run"],
        "best_epoch": training["best_epoch"],
        "mf_psd": args.psd,
        "mf_templates": args.templates,
        "mf_minimal_match": mf["bank"]["minimal_match"],
        "mf_auc_all_samples": mf["roc_auc"],
        "mf_ms_per_sample": 1e3 * mf["seconds"]["per_sample"],
        "test_examples": entry["n_compared"],
        "test_missing_baseline": entry["n_missing_baseline"],
        "cnn_test_auc": cnn_auc,
        "mf_test_auc": mf_auc,
        "auc_fraction_cnn_over_mf": cnn_auc / mf_auc if mf_auc else None,
        "sensitivity_ratio": entry["sensitivity_ratio"],
        "cnn_efficiency_at_fap": entry["cnn"]["efficiency_at_fap"],
        "mf_efficiency_at_fap": entry["baseline"]["efficiency_at_fap"],
        "pycbc_reference_on_test": reference,
        "seconds": seconds,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()[0]},
    }
    lines = [
        "",
        f"quality benchmark: N={args.n}, SNR U(4, 20), {training['epochs_run']} epochs run "
        f"(best {training['best_epoch']}), MF {args.psd} PSD, {args.templates} templates "
        f"(minimal match {summary['mf_minimal_match']:.3f})",
        f"test examples compared: {entry['n_compared']} ({entry['n_positive']} signals, {entry['n_negative']} noise; "
        f"{entry['n_missing_baseline']} without a MF score)",
        f"CNN test ROC-AUC:                 {_fmt(cnn_auc)}",
        f"matched filter ROC-AUC (same uids): {_fmt(mf_auc)}",
        f"fraction CNN / MF:                {_fmt(summary['auc_fraction_cnn_over_mf'])}",
    ]
    if reference:
        lines.append(
            f"independent PyCBC filter on the {reference['n']} test uids: ROC-AUC {_fmt(reference['auc_reference'])} "
            f"vs sigforge {_fmt(reference['auc_sigforge'])}; max |score difference| {reference['score_diff_max']:.1e}"
        )
    for key, ratio in entry["sensitivity_ratio"].items():
        limited = entry["baseline"]["efficiency_at_fap"][key]["resolution_limited"]
        cnn_e = entry["cnn"]["efficiency_at_fap"][key]["efficiency"]
        mf_e = entry["baseline"]["efficiency_at_fap"][key]["efficiency"]
        snr50 = ratio["snr_at_50pct"]
        lines.append(
            f"FAP {key}{' (limited by the noise count)' if limited else ''}: efficiency CNN / MF {_fmt(cnn_e)} / "
            f"{_fmt(mf_e)} (ratio {_fmt(ratio['overall'])}); SNR at 50 %: {_fmt(snr50[0])} / {_fmt(snr50[1])}"
        )
        for b in ratio["bins"]:
            lines.append(
                f"  SNR {b['snr_low']:5.1f}-{b['snr_high']:5.1f} (n={b['n_positive']:3d}): "
                f"{_fmt(b['numerator'])} / {_fmt(b['denominator'])}  ratio {_fmt(b['ratio'])}"
            )
    lines.append(
        "seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()) + f"; MF {summary['mf_ms_per_sample']:.1f} "
        "ms/sample"
    )
    print("\n".join(lines))
    results = args.results or (os.path.join(workdir, "quality.json") if keep else None)
    if results:
        with open(results, "w") as handle:
            json.dump(jsonable(summary), handle, indent=2)
        print(f"results: {results}")
    if keep:
        print(f"work folder: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
