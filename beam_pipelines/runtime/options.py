"""Beam pipeline options: runner profiles, user options passed through, and never a Prism download locally.

Beam's default ``DirectRunner`` first tries the Prism runner, which downloads a binary. sigforge maps "no
runner given" and ``--runner=DirectRunner`` to the in-process ``FnApiRunner`` (in memory, or Beam's own
workers with ``--direct_running_mode=multi_processing|multi_threading --direct_num_workers=N``). Every other option and
runner (Dataflow, Flink, Portable) goes to Beam exactly as given.

A *runner profile* (``run_configs/local.yaml``, ``local_multiprocess.yaml``, ``portable.yaml``,
``dataflow.yaml``, ``flink_local.yaml``, ``flink.yaml``) is a YAML file of Beam options::

    description: Dataflow (fill in the CHANGE_ME values or pass them after --)
    options:                      # Beam option name (no dashes) -> value; checked against Beam's options
      runner: DataflowRunner
      project: CHANGE_ME-project
      max_num_workers: 50
      experiments: [a, b]         # a list repeats the flag: --experiments=a --experiments=b
      use_public_ips: true        # true -> a bare --use_public_ips
    beam_args: [--some_plugin_flag=x]   # raw flags, passed unchecked (options of plugins Beam cannot see here)

``with_profile(path, beam_args)`` puts the profile's flags *before* the user's (``-- ...`` on the command line),
so a flag given on the command line wins. A value still containing ``CHANGE_ME`` that the command line does not
override is refused before any work, naming the option.

A relative job-server jar in a profile (``flink_job_server_jar``, ``spark_job_server_jar``) is taken from the
sigforge checkout, where ``make install`` assembles Beam's Flink job server (``.cache/flink-job-server/``,
engines/flink/pom.xml), so the Flink profiles work from any current directory; a jar the profile names that is
not there is refused before any work. The same flag after ``--`` is passed to Beam as given.
"""

from __future__ import annotations

import difflib
import functools
import logging
import os
import re
from pathlib import Path

from apache_beam.options.pipeline_options import (
    PipelineOptions,
    SetupOptions,
    StandardOptions,
    TypeOptions,
)
from pydantic import BaseModel, ConfigDict, field_validator

from transforms.config import ConfigError, load_config

_LOG = logging.getLogger(__name__)

FN_API_RUNNER = "apache_beam.runners.portability.fn_api_runner.FnApiRunner"
_LOCAL_ALIASES = {None, "", "directrunner", "direct", "fnapirunner", "switchingdirectrunner"}
PLACEHOLDER = "CHANGE_ME"
_OPTION_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

OptionValue = str | int | float | bool | list[str | int | float]

CHECKOUT = Path(__file__).resolve().parents[2]  # the sigforge checkout: setup.py, the Makefile's .cache/
JOB_SERVER_JARS = ("flink_job_server_jar", "spark_job_server_jar")


def _from_checkout(name: str, value: OptionValue) -> OptionValue:
    """A job-server jar option's relative local path, made absolute against the sigforge checkout."""
    if name in JOB_SERVER_JARS and isinstance(value, str) and "://" not in value and not os.path.isabs(value):
        return str(CHECKOUT / value)
    return value


class RunnerProfile(BaseModel):
    """A runner profile YAML: Beam options as a mapping (checked) and/or raw flags (passed as they are)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = ""
    options: dict[str, OptionValue] = {}
    beam_args: list[str] = []

    @field_validator("options")
    @classmethod
    def _known_options(cls, value: dict[str, OptionValue]) -> dict[str, OptionValue]:
        known = _known_beam_options()
        for name, setting in value.items():
            if not _OPTION_NAME.match(name):
                raise ValueError(f"option '{name}': write the Beam option name without dashes, e.g. 'runner'")
            if name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise ValueError(f"option '{name}' is not a Beam pipeline option{hint}; raw flags go in beam_args")
            if setting is False:
                raise ValueError(f"option '{name}': false cannot be passed as a flag; leave the option out")
        return value

    @field_validator("beam_args")
    @classmethod
    def _flags(cls, value: list[str]) -> list[str]:
        bad = [arg for arg in value if not arg.startswith("--")]
        if bad:
            raise ValueError(f"beam_args must be flags starting with '--', got {bad}")
        return value

    def flags(self) -> list[str]:
        """The profile as Beam command-line flags: the ``options`` mapping first, then ``beam_args``."""
        result = []
        for name, value in self.options.items():
            value = _from_checkout(name, value)
            for item in value if isinstance(value, list) else [value]:
                result.append(f"--{name}" if item is True else f"--{name}={item}")
        return result + list(self.beam_args)


@functools.lru_cache(maxsize=1)
def _known_beam_options() -> frozenset[str]:
    """Every option name Beam's registered ``PipelineOptions`` classes define (standard, GCP, worker, Flink...)."""
    return frozenset(PipelineOptions([]).get_all_options())


def load_profile(path: str) -> list[str]:
    """The Beam flags of the runner profile at ``path``; raises ConfigError naming a bad key or option."""
    return load_config(RunnerProfile, path).flags()


def _overrides(flag_name: str, beam_args: list[str]) -> bool:
    return any(arg == f"--{flag_name}" or arg.startswith(f"--{flag_name}=") for arg in beam_args)


def with_profile(path: str | None, beam_args: list[str] | None = None) -> list[str]:
    """``path``'s flags followed by ``beam_args`` (later flags win); refuses placeholders left unset.

    Raises ConfigError when a profile value still holds ``CHANGE_ME`` and ``beam_args`` does not override it.
    """
    user = list(beam_args or [])
    if path is None:
        return user
    profile = load_config(RunnerProfile, path)
    for name, value in profile.options.items():
        if PLACEHOLDER in str(value) and not _overrides(name, user):
            raise ConfigError(
                f"runner profile {path}: option '{name}' is still the placeholder {value!r}; edit the profile "
                f"or pass it after --, e.g. -- --{name}=...",
                code="placeholder",
            )
    for name in JOB_SERVER_JARS:
        jar = _from_checkout(name, profile.options.get(name, ""))
        if jar and "://" not in str(jar) and not os.path.exists(str(jar)) and not _overrides(name, user):
            raise ConfigError(
                f"runner profile {path}: {name} {jar} does not exist; `make install` (or `make engines`) "
                f"assembles Beam's job server there with Maven and Java, or pass -- --{name}=PATH"
            )
    unset = [arg for arg in profile.beam_args if PLACEHOLDER in arg and not _overrides(arg[2:].split("=")[0], user)]
    if unset:
        raise ConfigError(
            f"runner profile {path}: beam_args {unset} still hold the placeholder {PLACEHOLDER}", code="placeholder"
        )
    flags = profile.flags() + user
    _LOG.info("runner profile %s: %s", path, " ".join(flags))
    return flags


_WARNED_LISTENING: list[bool] = []


def _warn_if_listening(options: PipelineOptions) -> None:
    """Once per process: Beam's FnApiRunner with worker threads or processes serves them over gRPC on every
    interface (``[::]:0``, hard-coded in Beam, no option to bind loopback; docs/reliability.md, "Network")."""
    mode = options.get_all_options().get("direct_running_mode")
    if mode in ("multi_processing", "multi_threading") and not _WARNED_LISTENING:
        _WARNED_LISTENING.append(True)
        _LOG.warning(
            "--direct_running_mode=%s: Beam's runner listens for its workers on every network interface "
            "(ephemeral ports, no authentication) while a pipeline runs; use it on a trusted or firewalled host "
            "(docs/reliability.md, Network)",
            mode,
        )


def make_pipeline_options(beam_args: list[str] | None = None) -> PipelineOptions:
    """Builds ``PipelineOptions`` from raw Beam flags, forcing the FnApiRunner for local runs."""
    flags = list(beam_args or [])
    options = PipelineOptions(flags)
    standard = options.view_as(StandardOptions)
    runner = standard.runner
    name = runner.rsplit(".", 1)[-1].lower() if isinstance(runner, str) else runner
    if name in _LOCAL_ALIASES:
        standard.runner = FN_API_RUNNER
        _LOG.debug("local run: using the FnApiRunner (no Prism download); requested runner=%r", runner)
        if not (_overrides("pipeline_type_check", flags) or _overrides("no_pipeline_type_check", flags)):
            # Beam's construction-time type check of sigforge's own, fixed pipelines: the tests run it
            # (tests/e2e/test_runners.py builds the whole chain with it and requires the same dataset); a local run
            # skips it and saves part of each pipeline's construction (benchmarks/RESULTS.md). Outputs are
            # byte-identical; remote runners keep Beam's default. --pipeline_type_check turns it on.
            options.view_as(TypeOptions).pipeline_type_check = False
        _warn_if_listening(options)
    # Workers on remote runners need the main session's imports only through setup.py, never pickled state.
    options.view_as(SetupOptions).save_main_session = False
    return options
