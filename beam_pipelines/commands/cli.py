"""The ``sigforge`` command line.

    sigforge recipes                                     (the registered recipes: g2net, tce, ...)
    sigforge make-sample RECIPE OUT --n N --seed S [--signals-per-source K] [--noise-only] [--glitch-rate P]
    sigforge run --config run_configs/g2net.yaml --input RAW --output OUT [--set k=v ...] [-- BEAM OPTIONS]
    sigforge build | split | analyze | normalize | filter ...   (one stage on an existing OUT)
    sigforge audit OUT [--group-column source_id] [--skew [--skew-threshold D] [--skew-alpha A]] [--inputs]
    sigforge report OUT                                  (OUT/report/index.html + PNGs; `run` writes it too)
    sigforge train --data OUT --config run_configs/train_g2net.yaml --out RUNS
    sigforge predict --run RUNS/<run> --input RAW_NPY_OR_DIR [--out scores.csv]
    sigforge baseline matched-filter --data RAW --psd design|estimated --out SCORES_DIR [--background BG]

Everything after a bare ``--`` goes to Beam unchanged (``--runner``, ``--project``, ``--direct_num_workers``...).
Without ``--runner`` sigforge runs locally on Beam's FnApiRunner (never the Prism download).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from beam_pipelines.runtime import process  # first: its exit handler must run last

# isort: split
from beam_pipelines.commands.parser import STAGE_HELP, Handler, build_parser
from transforms.errors import SigforgeError, interruption, os_fault, raise_on_signals
from transforms.recipes import REGISTRY

_LOG = logging.getLogger("sigforge")


def _split_beam_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    argv = list(argv)
    if "--" in argv:
        cut = argv.index("--")
        return argv[:cut], argv[cut + 1 :]
    return argv, []


STAGE_RUNNERS = {
    "split": "beam_pipelines.stages.split:run_split",
    "analyze": "beam_pipelines.stages.analyze_folds:run_analyze_stage",
    "normalize": "beam_pipelines.stages.normalize_folds:run_normalize_stage",
    "filter": "beam_pipelines.stages.filter:run_filter",
}


def _stage_runner(name: str):
    from transforms.recipes import resolve

    return resolve(STAGE_RUNNERS[name])


def _cmd_stage(args, beam_args: list[str]) -> int:
    config = _load_dataset_config(args)
    result = _stage_runner(args.stage)(config, args.output, beam_args, overwrite=args.overwrite)
    if not args.dry_run:
        _log_stage(args.stage, result["stages"][args.stage], args.output)
    return 0


def _log_stage(name: str, stage: dict, out: str) -> None:
    counts = {k: stage[k] for k in ("seen", "written", "rejected") if k in stage}
    _LOG.info("%s done in %.1f s %s -> %s", name, stage.get("seconds", 0.0), counts, out)


def _cmd_run(args, beam_args: list[str]) -> int:
    from beam_pipelines.stages.run_all import run_all

    config = _load_dataset_config(args)
    run_all(config, args.input, args.output, beam_args, overwrite=args.overwrite)
    if not args.no_report and not args.dry_run:
        from beam_pipelines.commands.report import run_report

        run_report(args.output)
    return 0


def _cmd_report(args, beam_args: list[str]) -> int:
    from beam_pipelines.commands.report import run_report

    run_report(args.out, args.skew_threshold, args.skew_alpha, ignore_lock=args.ignore_lock)
    return 0


def _cmd_audit(args, beam_args: list[str]) -> int:
    from beam_pipelines.commands.audit import run_audit

    code = run_audit(
        args.out,
        group_column=args.group_column,
        beam=args.beam,
        beam_args=beam_args,
        inputs=args.inputs,
        ignore_lock=args.ignore_lock,
    )
    if args.skew:
        from beam_pipelines.commands.report import run_skew_check

        code = max(code, run_skew_check(args.out, args.skew_threshold, args.skew_alpha))
    return code


def _delegate(module: str, argv: list[str]) -> int:
    """Runs ``module.main(argv)`` of the trainer package, imported by name when the command runs: the CLI calls
    the trainer, but ``beam_pipelines`` has no import edge to ``model`` (docs/ARCHITECTURE.md section 1)."""
    return importlib.import_module(module).main(argv)


def _cmd_train(args, beam_args: list[str]) -> int:
    return _delegate("model.train", args.delegated_args)


def _cmd_predict(args, beam_args: list[str]) -> int:
    return _delegate("model.predict", args.delegated_args)


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
    options: dict[str, object] = {"signals_per_source": args.signals_per_source}
    if args.prior:
        options["priors"] = _parse_priors(args.prior)
    if args.noise_only:
        options["positive_fraction"] = 0.0
    glitches = {
        key: value
        for key, value in (
            ("rate", args.glitch_rate),
            ("snr_range", tuple(args.glitch_snr) if args.glitch_snr else None),
            ("kinds", tuple(k.strip() for k in args.glitch_kinds.split(",")) if args.glitch_kinds else None),
        )
        if value
    }
    if glitches:
        options["glitches"] = glitches
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
    if not args.dry_run:
        _LOG.info(
            "build done: %d written, %d rejected -> %s/tfrecords", stage["written"], stage["rejected"], args.output
        )
    return 0


def _handlers() -> dict[str, Handler]:
    """Each command's handler by name, looked up when ``main`` builds the parser (tests replace them)."""
    return {
        "make-sample": _cmd_make_sample,
        "recipes": _cmd_recipes,
        "build": _cmd_build,
        "stage": _cmd_stage,
        "run": _cmd_run,
        "report": _cmd_report,
        "audit": _cmd_audit,
        "train": _cmd_train,
        "predict": _cmd_predict,
        "baseline": _cmd_baseline,
    }


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
    args = build_parser(_handlers()).parse_args(own_args)
    args.delegated_args = delegated
    from beam_pipelines.runtime.logsetup import configure_logging, import_tensorflow_quietly

    configure_logging(args.verbose)
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
    handler: Handler = args.handler
    try:
        with _dry_run_session(args, beam_args) as beam_args:
            return handler(args, beam_args)
    except (SigforgeError, _UsageError) as error:  # ConfigError, StageError, DatasetBusy...
        return _refused(error)
    except (OSError, RuntimeError, KeyboardInterrupt) as error:
        fault = interruption(error) or os_fault(error, getattr(args, "output", None) or getattr(args, "out", None))
        if fault is None:
            raise  # a bug: its traceback is what a maintainer needs
        return _refused(fault)


@contextlib.contextmanager
def _dry_run_session(args, beam_args: list[str]):
    """The stage commands' dry run (``--dry-run``, or Beam's ``--dry_run=True`` after ``--``): the Beam options
    ask for it, and one session writes every stage's plans (``beam_pipelines/runtime/dry_run.py``)."""
    if not hasattr(args, "dry_run"):
        yield beam_args
        return
    from beam_pipelines.runtime import dry_run

    args.dry_run = args.dry_run or dry_run.requested(beam_args)
    if not args.dry_run:
        if args.plans_dir is not None:
            raise _UsageError("--plans-dir is for --dry-run")
        yield beam_args
        return
    with dry_run.session(args.output, args.plans_dir):
        yield beam_args if dry_run.requested(beam_args) else dry_run.with_flag(beam_args)


def _refused(error: Exception) -> int:
    """Logs a refused config, stage or usage, an OS fault (code ``os_error``) or an interruption (SIGINT/SIGTERM,
    code ``interrupted``) as one line (never a traceback), the error's ``code`` on the log record
    (``record.code``; None for a usage error); exit code 2."""
    message = " ".join(line.strip() for line in str(error).splitlines())
    _LOG.error("%s", message, extra={"code": getattr(error, "code", None)})
    return 2


# Set by entry: main runs as the executable (not called in-process, as tests do).
_EXECUTABLE: list[bool] = []


def entry(argv: Sequence[str] | None = None) -> NoReturn:
    """The ``sigforge`` executable (and ``python -m beam_pipelines.commands.cli``): ``main``, then the fast exit
    of ``beam_pipelines/runtime/process.py``."""
    process.defer_collection()
    raise_on_signals()  # SIGTERM and SIGINT unwind through every finally: lock released, .tmp_ folder removed
    _EXECUTABLE.append(True)
    process.finish(main(argv))


if __name__ == "__main__":
    entry()
