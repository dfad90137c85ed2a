"""Beam pipeline options: pass user options through unchanged, but never let a local run download Prism.

Beam's default ``DirectRunner`` first tries the Prism runner, which downloads a binary. sigforge maps "no
runner given" and ``--runner=DirectRunner`` to the in-process ``FnApiRunner`` (in memory, or multi-processing
with ``--direct_running_mode=multi_processing --direct_num_workers=N``). Every other option and runner
(Dataflow, Flink, Portable) goes to Beam exactly as given.
"""

from __future__ import annotations

import logging

from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions, StandardOptions

_LOG = logging.getLogger(__name__)

FN_API_RUNNER = "apache_beam.runners.portability.fn_api_runner.FnApiRunner"
_LOCAL_ALIASES = {None, "", "directrunner", "direct", "fnapirunner", "switchingdirectrunner"}


def make_pipeline_options(beam_args: list[str] | None = None) -> PipelineOptions:
    """Builds ``PipelineOptions`` from raw Beam flags, forcing the FnApiRunner for local runs."""
    options = PipelineOptions(list(beam_args or []))
    standard = options.view_as(StandardOptions)
    runner = standard.runner
    name = runner.rsplit(".", 1)[-1].lower() if isinstance(runner, str) else runner
    if name in _LOCAL_ALIASES:
        standard.runner = FN_API_RUNNER
        _LOG.info("local run: using the FnApiRunner (no Prism download); requested runner=%r", runner)
    # Workers on remote runners need the main session's imports only through setup.py, never pickled state.
    options.view_as(SetupOptions).save_main_session = False
    return options
