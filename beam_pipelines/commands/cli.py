"""The ``sigforge`` command line.

    sigforge recipes                                     (the registered recipes: g2net, tce, ...)
    sigforge make-sample RECIPE OUT --n N --seed S [--signals-per-source K]
    sigforge run --config run_configs/g2net.yaml --input RAW --output OUT [--set k=v ...] [-- BEAM OPTIONS]
    sigforge build | split | analyze | normalize | filter ...   (one stage on an existing OUT)
    sigforge audit OUT [--group-column source_id] [--skew [--skew-threshold D] [--skew-alpha A]]
    sigforge report OUT                                  (OUT/report/index.html + PNGs; `run` writes it too)
    sigforge train --data OUT --config run_configs/train_g2net.yaml --out RUNS
    sigforge predict --run RUNS/<run> --input RAW_NPY_OR_DIR [--out scores.csv]
    sigforge baseline matched-filter --data RAW --psd design|estimated --out SCORES_DIR

Everything after a bare ``--`` goes to Beam unchanged (``--runner``, ``--project``, ``--direct_num_workers``...).
Without ``--runner`` sigforge runs locally on Beam's FnApiRunner (never the Prism download).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import textwrap
from collections.abc import Callable, Sequence
from typing import NoReturn

from beam_pipelines.runtime import process  # first: its exit handler must run last
from transforms.recipes import REGISTRY

_LOG = logging.getLogger("sigforge")

EPILOG = textwrap.dedent(
    """\
    Stages and outputs (see README "Dataset layout"):
      build      raw inputs -> OUT/tfrecords/raw_shard_NNNN-TOTAL.tfrecord + data_tbl_*.csv, OUT/rejected/
      split      -> OUT/split/{train,val,test}/ by sha256(target_id); a target is in exactly one split
      analyze    -> OUT/stats/ tf.Transform statistics on the train split only (transform_fn, npz)
      normalize  -> OUT/norm/{split}/norm_{split}_shard_*.tfrecord, the same transform_fn on every split
      filter     -> OUT/filtered/ declarative conditions from the config's `filter:` block
      run        all of the above in order; audit checks the result

    Beam options follow a bare `--`, e.g. Beam's own worker processes, started for every pipeline:
      sigforge run --config run_configs/g2net.yaml --input raw --output ds \\
          -- --direct_running_mode=multi_processing --direct_num_workers=2
    """
)


def _split_beam_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    argv = list(argv)
    if "--" in argv:
        cut = argv.index("--")
        return argv[:cut], argv[cut + 1 :]
    return argv, []


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
        "--profile",
        default=None,
        metavar="YAML",
        help="runner profile whose Beam options come before those after `--` (which win), e.g. "
        "run_configs/local_multiprocess.yaml (Beam's worker processes, one per core: `-- --direct_num_workers=N` "
        "to pin), "
        "portable.yaml, dataflow.yaml, flink.yaml",
    )


def build_parser() -> argparse.ArgumentParser:
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
    sample.set_defaults(handler=_cmd_make_sample)

    recipes = commands.add_parser("recipes", help="list the registered recipes (data domains), one line each")
    recipes.set_defaults(handler=_cmd_recipes)

    build = commands.add_parser(
        "build",
        help="raw inputs -> raw TFRecord shards + data tables (validation, the recipe's preprocessing, rejects)",
        description="Build stage: the config's recipe reads its raw inputs, validates and preprocesses each, and "
        "writes raw shards, data tables and OUT/rejected/build.csv.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_stage_args(build, needs_input=True)
    build.set_defaults(handler=_cmd_build)

    for name, text in STAGE_HELP.items():
        stage = commands.add_parser(name, help=text, description=text)
        _add_stage_args(stage, needs_input=False)
        stage.set_defaults(handler=_cmd_stage, stage=name)

    run = commands.add_parser(
        "run",
        help="build, split, analyze, normalize (and filter when configured) as one command",
        description="Run every stage into OUT. Refuses an existing OUT unless --overwrite.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_stage_args(run, needs_input=True)
    run.add_argument("--no-report", action="store_true", help="do not write OUT/report/ (see `sigforge report`)")
    run.set_defaults(handler=_cmd_run)

    report = commands.add_parser(
        "report",
        help="write OUT/report/index.html: stages, rejections, splits, the recipe's figures, split skew",
    )
    report.add_argument("out", type=path_arg, help="dataset folder OUT")
    _add_skew_args(report)
    report.set_defaults(handler=_cmd_report)

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
    audit.set_defaults(handler=_cmd_audit)

    train = commands.add_parser(
        "train", help="train the Keras model on OUT/norm (same as python -m model.train)", add_help=False
    )
    train.set_defaults(handler=_cmd_train)

    predict = commands.add_parser(
        "predict",
        help="score raw .npy files with a trained run through the training preprocessing (= python -m model.predict)",
        add_help=False,
    )
    predict.set_defaults(handler=_cmd_predict)

    baseline = commands.add_parser("baseline", help="score raw data with a recipe's classical baseline")
    kinds = baseline.add_subparsers(dest="baseline_kind", required=True, metavar="KIND")
    for name in REGISTRY:
        for kind, module_name in REGISTRY[name].baselines.items():
            module = importlib.import_module(module_name)
            parser_ = kinds.add_parser(kind, help=module.HELP, description=module.DESCRIPTION)
            module.add_arguments(parser_)
            parser_.set_defaults(handler=_cmd_baseline, baseline_main=module.main)
    return parser


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


STAGE_RUNNERS = {
    "split": "beam_pipelines.stages.split:run_split",
    "analyze": "beam_pipelines.stages.analyze:run_analyze",
    "normalize": "beam_pipelines.stages.normalize:run_normalize",
    "filter": "beam_pipelines.stages.filter:run_filter",
}


def _stage_runner(name: str):
    from transforms.recipes import resolve

    return resolve(STAGE_RUNNERS[name])


def _cmd_stage(args, beam_args: list[str]) -> int:
    config = _load_dataset_config(args)
    result = _stage_runner(args.stage)(config, args.output, beam_args, overwrite=args.overwrite)
    _log_stage(args.stage, result["stages"][args.stage], args.output)
    return 0


def _log_stage(name: str, stage: dict, out: str) -> None:
    counts = {k: stage[k] for k in ("seen", "written", "rejected") if k in stage}
    _LOG.info("%s done in %.1f s %s -> %s", name, stage.get("seconds", 0.0), counts, out)


def _cmd_run(args, beam_args: list[str]) -> int:
    from beam_pipelines.stages.run_all import run_all

    config = _load_dataset_config(args)
    run_all(config, args.input, args.output, beam_args, overwrite=args.overwrite)
    if not args.no_report:
        from beam_pipelines.commands.report import run_report

        run_report(args.output)
    return 0


def _cmd_report(args, beam_args: list[str]) -> int:
    from beam_pipelines.commands.report import run_report

    run_report(args.out, args.skew_threshold, args.skew_alpha)
    return 0


def _cmd_audit(args, beam_args: list[str]) -> int:
    from beam_pipelines.commands.audit import run_audit

    code = run_audit(args.out, group_column=args.group_column, beam=args.beam, beam_args=beam_args)
    if args.skew:
        from beam_pipelines.commands.report import run_skew_check

        code = max(code, run_skew_check(args.out, args.skew_threshold, args.skew_alpha))
    return code


def _cmd_train(args, beam_args: list[str]) -> int:
    from model.train import main as train_main

    return train_main(args.delegated_args)


def _cmd_predict(args, beam_args: list[str]) -> int:
    from model.predict import main as predict_main

    return predict_main(args.delegated_args)


def _cmd_baseline(args, beam_args: list[str]) -> int:
    return args.baseline_main(args)


def _cmd_recipes(args, beam_args: list[str]) -> int:
    width = max(len(name) for name in REGISTRY)
    for name in REGISTRY:
        print(f"{name:<{width}}  {REGISTRY[name].summary}")  # noqa: T201  (the command's output)
    return 0


def _load_dataset_config(args):
    from transforms.config import DatasetConfig, load_config

    return load_config(DatasetConfig, args.config, args.overrides)


def _parse_priors(items: list[str]) -> dict[str, object]:
    """``KEY=VALUE`` strings -> dict, each value parsed as YAML (``[4, 20]`` a list, ``null`` None)."""
    import yaml

    priors = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise _UsageError(f"--prior {item!r} is not KEY=VALUE")
        priors[key.strip()] = yaml.safe_load(value)
    return priors


def _cmd_make_sample(args, beam_args: list[str]) -> int:
    if args.n < 1:
        raise _UsageError("--n must be at least 1")
    if args.signals_per_source < 1:
        raise _UsageError("--signals-per-source must be at least 1")
    options = {"signals_per_source": args.signals_per_source}
    if args.prior:
        options["priors"] = _parse_priors(args.prior)
    try:
        summary = REGISTRY[args.kind].make_sample(args.out, args.n, args.seed, **options)
    except ValueError as error:
        raise _UsageError(str(error)) from None
    _LOG.info("sample written to %s: %s", args.out, {k: v for k, v in summary.items() if k != "paths"})
    return 0


def _cmd_build(args, beam_args: list[str]) -> int:
    from beam_pipelines.stages.build import run_build

    config = _load_dataset_config(args)
    result = run_build(config, args.input, args.output, beam_args, overwrite=args.overwrite)
    stage = result["stages"]["build"]
    _LOG.info("build done: %d written, %d rejected -> %s/tfrecords", stage["written"], stage["rejected"], args.output)
    return 0


# Commands that load TensorFlow anyway: imported up front, without its C++ start-up lines (logsetup).
_TF_COMMANDS = frozenset(("run", "build", "report", "audit", *STAGE_HELP))


class _UsageError(ValueError):
    pass


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter; set before it loads
    argv = list(sys.argv[1:] if argv is None else argv)
    command_at = next((i for i, arg in enumerate(argv) if not arg.startswith("-")), len(argv))
    if argv[command_at : command_at + 1] in (["train"], ["predict"]):  # model.train / .predict own their flags
        own_args, beam_args, delegated = argv[: command_at + 1], [], argv[command_at + 1 :]
        if any(arg in ("-v", "--verbose") for arg in own_args[:-1]):
            delegated = ["--log-level", "DEBUG", *delegated]
    else:
        (own_args, beam_args), delegated = _split_beam_args(argv), []
    args = build_parser().parse_args(own_args)
    args.delegated_args = delegated
    from beam_pipelines.runtime.logsetup import configure_logging, import_tensorflow_quietly

    configure_logging(args.verbose)
    from beam_pipelines.dataset.errors import StageError
    from transforms.config import ConfigError

    try:
        if getattr(args, "profile", None) is not None:
            from beam_pipelines.runtime.options import with_profile

            beam_args = with_profile(args.profile, beam_args)
    except ConfigError as error:
        return _refused(error)
    if not args.verbose and args.command in _TF_COMMANDS:
        import_tensorflow_quietly()
    if _EXECUTABLE:
        process.freeze_loaded_objects()
    handler: Callable[..., int] = args.handler
    try:
        return handler(args, beam_args)
    except (ConfigError, StageError, _UsageError) as error:
        return _refused(error)


def _refused(error: Exception) -> int:
    """Logs a refused config, stage or usage as one line (never a traceback); exit code 2."""
    _LOG.error("%s", " ".join(line.strip() for line in str(error).splitlines()))
    return 2


# Set by entry: main runs as the executable (not called in-process, as tests do).
_EXECUTABLE: list[bool] = []


def entry(argv: Sequence[str] | None = None) -> NoReturn:
    """The ``sigforge`` executable (and ``python -m beam_pipelines.commands.cli``): ``main``, then the fast exit
    of ``beam_pipelines/runtime/process.py``."""
    process.defer_collection()
    _EXECUTABLE.append(True)
    process.finish(main(argv))


if __name__ == "__main__":
    entry()
