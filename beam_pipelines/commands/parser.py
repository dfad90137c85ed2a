"""The ``sigforge`` argument parser: every command, its options and help. The command handlers live in
``cli.py``, which passes them in by command name (``build_parser(handlers)``).
"""

from __future__ import annotations

import argparse
import importlib
import textwrap
from collections.abc import Callable, Mapping

from transforms.recipes import REGISTRY

Handler = Callable[..., int]  # handler(args, beam_args) -> exit code

EPILOG = textwrap.dedent(
    """\
    Stages and outputs (see README "Dataset layout"):
      build      raw inputs -> OUT/tfrecords/raw_shard_NNNN-TOTAL.tfrecord + data_tbl_*.csv, OUT/rejected/
      split      -> OUT/split/{train,val,test}/ by sha256(target_id); a target is in exactly one split
                 (split.mode kfold: OUT/split/fold_NN/ + folds.json, stats/cv_NN/, norm/cv_NN/; temporal: by
                 time; docs/splits.md)
      analyze    -> OUT/stats/ tf.Transform statistics on the train split only (transform_fn, npz)
      normalize  -> OUT/norm/{split}/norm_{split}_shard_*.tfrecord, the same transform_fn on every split
      filter     -> OUT/filtered/ declarative conditions from the config's `filter:` block
      run        all of the above in order; audit checks the result

    Beam options follow a bare `--`, e.g. Beam's own worker processes, started for every pipeline:
      sigforge run --config run_configs/g2net.yaml --input raw --output ds \\
          -- --direct_running_mode=multi_processing --direct_num_workers=2
    """
)


def path_arg(value: str) -> str:
    """A folder argument with ``~`` and ``$VARS`` expanded (``transforms.paths.expand_path``, the one place; an
    unset variable is a usage error, never a folder named ``$VAR``)."""
    from transforms.config import ConfigError
    from transforms.paths import expand_path

    try:
        return expand_path(value, "path")
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _add_stage_args(parser: argparse.ArgumentParser, needs_input: bool) -> None:
    parser.add_argument("--config", required=True, help="dataset recipe YAML, e.g. run_configs/g2net.yaml")
    if needs_input:
        parser.add_argument("--input", required=True, type=path_arg, help="raw input folder (local path or gs://...)")
    parser.add_argument("--output", required=True, type=path_arg, help="dataset folder OUT (local path or gs://...)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set build.examples_per_shard=500 (repeatable; value parsed as YAML)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace this stage's existing output")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="build every pipeline for the chosen runner and write it to OUT/plans/ without running it (adds "
        "Beam's --dry_run=True; Dataflow builds the job and submits nothing); docs/running-at-scale.md",
    )
    parser.add_argument("--plans-dir", default=None, metavar="DIR", help="with --dry-run: write the plans here")
    parser.add_argument(
        "--profile",
        default=None,
        metavar="YAML",
        help="runner profile whose Beam options come before those after `--` (which win), e.g. "
        "run_configs/local_multiprocess.yaml (Beam's worker processes, one per core: `-- --direct_num_workers=N` "
        "to pin), "
        "portable.yaml, dataflow.yaml, flink.yaml",
    )


def build_parser(handlers: Mapping[str, Handler]) -> argparse.ArgumentParser:
    """The ``sigforge`` parser; each command's ``handler`` default is ``handlers[name]`` (``stage`` for the
    single stages, ``baseline`` for every recipe's baseline)."""
    parser = argparse.ArgumentParser(
        prog="sigforge",
        description="Turn raw time series into leakage-free, normalized TFRecord datasets with Beam + tf.Transform.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="debug logging, including Beam's and TensorFlow's own lines"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sample = commands.add_parser("make-sample", help="write realistic sample raw data (no download needed)")
    sample.add_argument(
        "kind",
        choices=list(REGISTRY),
        help="a registered recipe (`sigforge recipes` lists them): "
        + "; ".join(f"{name}: {REGISTRY[name].summary}" for name in REGISTRY),
    )
    sample.add_argument("out", help="output folder for the raw sample")
    sample.add_argument("--n", type=int, default=200, help="number of samples, or of targets for tce (default 200)")
    sample.add_argument("--seed", type=int, default=0, help="random seed; same seed -> identical files")
    sample.add_argument(
        "--signals-per-source",
        type=int,
        default=1,
        help="g2net: inject each waveform into K noise realizations sharing one source_id (the leakage trap)",
    )
    sample.add_argument(
        "--prior",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="g2net: generator setting or prior, e.g. approximant=IMRPhenomXPHM, spin_mode=precessing, "
        "snr_range=[4,20], mass_range=[10,50], psd_model=o3 (values are YAML; repeatable)",
    )
    sample.add_argument(
        "--noise-only",
        action="store_true",
        help="g2net: every sample is noise (label 0, no waveform generated): a background for low false-alarm "
        "probabilities (~30 ms a sample)",
    )
    sample.add_argument(
        "--glitch-rate",
        type=float,
        default=0.0,
        metavar="P",
        help="g2net: probability that a detector of a sample carries a glitch, independently per detector "
        "(default 0: none); truth in OUT/glitches.csv",
    )
    sample.add_argument(
        "--glitch-snr",
        type=float,
        nargs=2,
        default=None,
        metavar=("LO", "HI"),
        help="g2net: glitch single-detector optimal SNR, uniform in [LO, HI] (default 6 30)",
    )
    sample.add_argument(
        "--glitch-kinds",
        default=None,
        metavar="K1,K2",
        help="g2net: comma-separated glitch kinds among sine_gaussian, blip (default both)",
    )
    sample.set_defaults(handler=handlers["make-sample"])

    recipes = commands.add_parser("recipes", help="list the registered recipes (data domains), one line each")
    recipes.set_defaults(handler=handlers["recipes"])

    build = commands.add_parser(
        "build",
        help="raw inputs -> raw TFRecord shards + data tables (validation, the recipe's preprocessing, rejects)",
        description="Build stage: the config's recipe reads its raw inputs, validates and preprocesses each, and "
        "writes raw shards, data tables and OUT/rejected/build.csv.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_stage_args(build, needs_input=True)
    build.set_defaults(handler=handlers["build"])

    for name, text in STAGE_HELP.items():
        stage = commands.add_parser(name, help=text, description=text)
        _add_stage_args(stage, needs_input=False)
        stage.set_defaults(handler=handlers["stage"], stage=name)

    run = commands.add_parser(
        "run",
        help="build, split, analyze, normalize (and filter when configured) as one command",
        description="Run every stage into OUT. Refuses an existing OUT unless --overwrite.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_stage_args(run, needs_input=True)
    run.add_argument("--no-report", action="store_true", help="do not write OUT/report/ (see `sigforge report`)")
    run.set_defaults(handler=handlers["run"])

    report = commands.add_parser(
        "report",
        help="write OUT/report/index.html: stages, rejections, splits, the recipe's figures, split skew",
    )
    report.add_argument("out", type=path_arg, help="dataset folder OUT")
    _add_skew_args(report)
    _add_ignore_lock(report)
    report.set_defaults(handler=handlers["report"])

    audit = commands.add_parser("audit", help="check a dataset folder for leakage, losses and bad statistics")
    audit.add_argument("out", type=path_arg, help="dataset folder OUT")
    audit.add_argument(
        "--group-column",
        default=None,
        help="also require this data-table column (e.g. source_id) to be confined to one split",
    )
    audit.add_argument(
        "--skew",
        action="store_true",
        help="also compare every numeric data-table column of train with val and test (two-sample KS test); "
        "a flagged skew fails the audit",
    )
    _add_skew_args(audit)
    audit.add_argument(
        "--beam", action="store_true", help="read the shards' records in a Beam pipeline (large datasets)"
    )
    audit.add_argument(
        "--inputs",
        action="store_true",
        help="also hash the raw inputs again (from the build's input folder) and name every file that changed, "
        "appeared or vanished since the build",
    )
    _add_ignore_lock(audit)
    audit.set_defaults(handler=handlers["audit"])

    train = commands.add_parser(
        "train", help="train the Keras model on OUT/norm (same as python -m model.train)", add_help=False
    )
    train.set_defaults(handler=handlers["train"])

    predict = commands.add_parser(
        "predict",
        help="score raw .npy files with a trained run through the training preprocessing (= python -m model.predict)",
        add_help=False,
    )
    predict.set_defaults(handler=handlers["predict"])

    baseline = commands.add_parser("baseline", help="score raw data with a recipe's classical baseline")
    kinds = baseline.add_subparsers(dest="baseline_kind", required=True, metavar="KIND")
    for name in REGISTRY:
        for kind, module_name in REGISTRY[name].baselines.items():
            module = importlib.import_module(module_name)
            parser_ = kinds.add_parser(kind, help=module.HELP, description=module.DESCRIPTION)
            module.add_arguments(parser_)
            parser_.set_defaults(handler=handlers["baseline"], baseline_main=module.main)
    return parser


def _add_ignore_lock(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ignore-lock",
        action="store_true",
        help="go on (with a warning) even while another sigforge run holds OUT's lock and may be rewriting it "
        "(default: refuse, exit 2)",
    )


def _add_skew_args(parser: argparse.ArgumentParser) -> None:
    from transforms.report.skew import DEFAULT_ALPHA, DEFAULT_THRESHOLD

    parser.add_argument(
        "--skew-threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help=f"flag a column when its KS statistic D (0..1) exceeds this (default {DEFAULT_THRESHOLD}) ...",
    )
    parser.add_argument(
        "--skew-alpha",
        type=float,
        default=DEFAULT_ALPHA,
        help=f"... and its p-value is below this divided by the number of comparisons (default {DEFAULT_ALPHA})",
    )


STAGE_HELP = {
    "split": "raw shards -> train/val/test shards by sha256(target_id)",
    "analyze": "tf.Transform full-pass statistics on the train split -> OUT/stats",
    "normalize": "apply the train transform_fn to every split -> OUT/norm",
    "filter": "keep examples passing the config's filter conditions -> OUT/filtered",
}
