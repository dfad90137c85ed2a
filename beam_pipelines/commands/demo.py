"""``make demo``: sample data -> every stage (FnApiRunner) -> audit -> a short training run, then where it all is.

python -m beam_pipelines.commands.demo --out demo_out --n 1200
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import time

from beam_pipelines.runtime import process  # before any third-party import: its exit handler must run last

_LOG = logging.getLogger("sigforge.demo")
DEMO_MARKER = ".sigforge_demo"


def _is_demo_folder(out: str) -> bool:
    """True for a missing or empty folder, or one the demo made (its marker): the only ones it may replace."""
    if not os.path.exists(out):
        return True
    return os.path.isdir(out) and (not os.listdir(out) or os.path.isfile(os.path.join(out, DEMO_MARKER)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="demo_out", help="folder for raw/, dataset/ and runs/ (replaced)")
    parser.add_argument("--n", type=int, default=1200, help="number of generated G2Net samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=3, help="training epochs of the short demo run")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging, libraries included")
    args = parser.parse_args(argv)
    from beam_pipelines.runtime.logsetup import configure_logging, import_tensorflow_quietly

    configure_logging(args.verbose)
    if not args.verbose:
        import_tensorflow_quietly()
    from transforms.errors import SigforgeError, interruption, os_fault

    try:
        return _run(args)
    except SigforgeError as error:
        _LOG.error("%s", error)
        return 2
    except (OSError, RuntimeError, KeyboardInterrupt) as error:
        fault = interruption(error) or os_fault(error)
        if fault is None:
            raise
        _LOG.error("%s", fault)
        return 2


def _run(args: argparse.Namespace) -> int:
    from beam_pipelines.dataset import fs
    from beam_pipelines.stages.run_all import run_all
    from transforms.audit import audit_dataset
    from transforms.config import DatasetConfig, load_config
    from transforms.recipes.g2net import sample as gw_sample

    if __name__ == "__main__":  # as the sigforge executable (runtime/process.py)
        process.freeze_loaded_objects()

    started = time.monotonic()
    raw, dataset, runs = (os.path.join(args.out, name) for name in ("raw", "dataset", "runs"))
    if not _is_demo_folder(args.out):
        _LOG.error(
            "%s is not empty and was not made by the demo (no %s in it): the demo replaces its --out folder, so it "
            "runs only in a new or empty folder or its own; choose another --out",
            args.out,
            DEMO_MARKER,
        )
        return 2
    fs.delete_tree(args.out)
    os.makedirs(args.out)
    with open(os.path.join(args.out, DEMO_MARKER), "w") as handle:
        handle.write("made by sigforge's demo: replaced by the next `make demo`\n")
    _LOG.info("1/4 make-sample: %d G2Net samples, 3 signals per source -> %s", args.n, raw)
    gw_sample.write_g2net_sample(raw, n=args.n, seed=args.seed, signals_per_source=3)

    _LOG.info("2/4 sigforge run (build, split, analyze, normalize) -> %s", dataset)
    config = load_config(DatasetConfig, "run_configs/demo.yaml")
    run_all(config, raw, dataset)

    from beam_pipelines.commands.report import run_report

    report = run_report(dataset)

    _LOG.info("3/4 sigforge audit %s", dataset)
    problems = audit_dataset(dataset, group_column="source_id", fs=fs)
    for problem in problems:
        _LOG.error("audit: %s", problem)
    if problems:
        return 1

    _LOG.info("4/4 python -m model.train (%d epochs)", args.epochs)
    train_main = importlib.import_module("model.train").main  # by name: beam_pipelines has no edge to model
    code = train_main(
        [
            "--data",
            dataset,
            "--config",
            "run_configs/train_g2net.yaml",
            "--out",
            runs,
            "--set",
            f"train.epochs={args.epochs}",
            "--set",
            # Train-time injection's bank: the default 2000 waveforms would dominate a 3-epoch demo, which draws
            # ~1500 of them.
            "data.injection.bank_size=500",
        ]
    )
    if code != 0:
        return code
    run_dirs = sorted(fs.glob(os.path.join(runs, "*", "*_metrics.json")))
    run_dir = os.path.dirname(run_dirs[-1]) if run_dirs else runs
    _LOG.info("demo finished in %.0f s", time.monotonic() - started)
    summary = []
    if run_dirs:
        import json

        splits = json.loads(fs.read_text(run_dirs[-1]))["splits"]
        summary += [
            f"{split + ' metrics:':<18}ROC-AUC {m['roc_auc']:.3f}, PR-AUC {m['pr_auc']:.3f}, F1 {m['f1']:.3f} "
            f"({m['n_examples']} examples)"
            for split, m in splits.items()
        ]
    summary += [
        f"raw sample:       {raw}",
        f"dataset:          {dataset}  (manifest.json, tfrecords/, split/, stats/, norm/, rejected/)",
        f"model run:        {run_dir}",
        f"metrics:          {run_dirs[-1] if run_dirs else 'missing'}",
        f"plots:            {os.path.join(run_dir, 'plots')}",
        f"dataset report:   {report}  (open it in a browser)",
    ]
    sys.stdout.write("\n".join(["", "sigforge demo outputs:", *summary, ""]))
    return 0


if __name__ == "__main__":
    process.defer_collection()
    from transforms.errors import raise_on_signals

    raise_on_signals()
    process.finish(main())
