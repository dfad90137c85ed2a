"""Dry runs: every stage builds its pipelines for the chosen runner and writes them to ``OUT/plans/``; none runs.

``sigforge run|build|split|analyze|normalize|filter --dry-run`` adds Beam's own ``--dry_run=True`` to the Beam
options (giving ``-- --dry_run=True`` does the same). A dry run is a *session* (``session``): while it is active,

* ``StageContext.pipeline()`` builds each pipeline and hands it to ``Plans.record`` instead of running it. With
  the DataflowRunner the pipeline is run with Beam's ``dry_run`` option, which does everything a submission does
  on this machine (Dataflow's overrides and graph optimizations, ``setup.py sdist``, the Docker environment of
  ``--sdk_container_image``) and submits nothing; with other runners it is only serialized;
* tf.Transform's temporary folder is ``PLANS/tft_tmp`` (it writes each analysis phase's SavedModel there while
  the graph is built, and the graph names them);
* nothing an earlier stage would have written is read: ``ReadWholeFiles`` puts its glob patterns where the
  listed files would be, ``tables.table_columns`` gives the data-table columns this session's build planned (the
  base columns when it did not run), analyze builds its later passes with placeholder statistics and normalize
  reads no ``transform_fn`` (``beam_pipelines/stages/planning.py``);
* stages read no summary, check nothing, publish nothing and take no dataset lock; only the plans are written.

The plans folder (``OUT/plans`` unless given) holds, per pipeline ``<stage>[-<n>]`` (``analyze-2`` is analyze's
second pipeline): ``.json``, the pipeline proto (``Pipeline.to_runner_api()``, or for Dataflow the proto of the
job it would submit) as JSON; ``.txt``, its transform tree; and ``index.json``, one entry per pipeline (runner,
number of transforms, container image and staged files for Dataflow) plus what the dry run did not cover.
Files a runner would stage (Dataflow: ``workflow.tar.gz``, the sdist of ``--setup_file``) are copied to
``staging/`` and Beam's temporary folder that held them is removed. See docs/running-at-scale.md.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions, StandardOptions, TestOptions

from beam_pipelines.dataset import fs
from transforms.config import ConfigError
from transforms.contract import BASE_COLUMNS

_LOG = logging.getLogger(__name__)

PLANS_DIR = "plans"
INDEX = "index.json"
STAGING_DIR = "staging"
TFT_TMP_DIR = "tft_tmp"
_FALSE = frozenset(("", "false", "0", "no", "off", "none"))
_URNS = {
    "docker": "beam:env:docker:v1",
    "file": "beam:artifact:type:file:v1",
    "staging_to": "beam:artifact:role:staging_to:v1",
}


def requested(beam_args: Sequence[str] | None) -> bool:
    """True when the Beam options ask for a dry run (``--dry_run=True``; Beam keeps the value as a string)."""
    value = PipelineOptions(list(beam_args or [])).view_as(TestOptions).dry_run
    return str(value).strip().lower() not in _FALSE


def with_flag(beam_args: Sequence[str] | None) -> list[str]:
    """``beam_args`` asking for a dry run: Beam's ``--dry_run=True`` appended (the last flag wins)."""
    return [*(beam_args or []), "--dry_run=True"]


def runner_name(options: PipelineOptions) -> str:
    runner = options.view_as(StandardOptions).runner
    return str(runner if isinstance(runner, str) else type(runner).__name__).rsplit(".", 1)[-1]


def is_dataflow(options: PipelineOptions) -> bool:
    return runner_name(options).lower() in ("dataflowrunner", "dataflow")


@dataclass
class Plans:
    """One dry run: where its plans go, what its build planned, and one index entry per pipeline built."""

    folder: str
    table_columns: list[str] | None = None  # the data-table columns this session's build planned
    entries: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def columns(self) -> list[str]:
        """The data-table columns of every stage's tables (they keep the build's columns), as far as known."""
        if self.table_columns is None:
            self.note("data tables: the base columns stand in for the build's (build is not in this dry run)")
            return list(BASE_COLUMNS)
        return list(self.table_columns)

    def note(self, text: str) -> None:
        """Records a placeholder or a limit of this dry run (index.json ``notes``; logged once)."""
        if text not in self.notes:
            self.notes.append(text)
            _LOG.info("dry run: %s", text)

    def tft_temp_dir(self) -> str:
        """tf.Transform's temporary folder in a dry run. tf.Transform writes a SavedModel per analysis phase while
        it builds the graph (the workers load them from there), so a dry run writes them too: under the plans
        folder, where a run has ``OUT/.tmp_analyze/tft_tmp``."""
        return fs.join(self.folder, TFT_TMP_DIR)

    def names(self, stage: str) -> list[str]:
        return [entry["name"] for entry in self.entries if entry["stage"] == stage]

    def check_options(self, options: PipelineOptions) -> None:
        """Refuses options with which building the plan would act: ``prebuild_sdk_container_engine`` builds and
        pushes a container image before Beam looks at ``dry_run``."""
        if options.view_as(SetupOptions).prebuild_sdk_container_engine:
            raise ConfigError(
                "--dry-run with --prebuild_sdk_container_engine would build and push a container image; leave the "
                "option out of the dry run (the plan then shows the staged sdist instead)"
            )

    def record(self, stage: str, pipeline: Any, options: PipelineOptions) -> dict[str, Any]:
        """Writes ``pipeline`` (built, not run) as ``<stage>[-<n>].json`` and ``.txt``; returns its index entry."""
        number = len(self.names(stage)) + 1
        name = stage if number == 1 else f"{stage}-{number}"
        entry: dict[str, Any] = {"stage": stage, "name": name, "runner": runner_name(options)}
        if is_dataflow(options):
            options.view_as(TestOptions).dry_run = True  # never a submission, whatever the flags said
            result = pipeline.run()  # Beam's dry run: the job is built here (sdist included) and not submitted
            proto = result.job.proto_pipeline
            entry["job_name"] = result.job.proto.name
        else:
            proto = pipeline.to_runner_api(default_environment=_environment(options))
            # Beam makes this folder for every pipeline and removes it when the pipeline has run
            shutil.rmtree(getattr(pipeline, "local_tempdir", ""), ignore_errors=True)
        entry.update(self._environments(proto))
        entry["transforms"] = len(proto.components.transforms)
        from google.protobuf import json_format

        fs.write_text(fs.join(self.folder, f"{name}.json"), json_format.MessageToJson(proto, sort_keys=True) + "\n")
        fs.write_text(fs.join(self.folder, f"{name}.txt"), transform_tree(proto))
        self.entries.append(entry)
        _LOG.info(
            "dry run: %s pipeline %s (%d transforms) -> %s", entry["runner"], name, entry["transforms"], self.folder
        )
        return entry

    def _environments(self, proto: Any) -> dict[str, Any]:
        """The container image of each Docker environment, and the files each would stage (copied to
        ``staging/``; Beam's temporary folder that held them is removed)."""
        from apache_beam.portability.api import beam_runner_api_pb2 as api

        images, staged = [], {}
        for environment in proto.components.environments.values():
            if environment.urn == _URNS["docker"]:
                images.append(api.DockerPayload.FromString(environment.payload).container_image)
            for artifact in environment.dependencies:
                if artifact.type_urn != _URNS["file"] or artifact.role_urn != _URNS["staging_to"]:
                    continue
                path = api.ArtifactFilePayload.FromString(artifact.type_payload).path
                name = api.ArtifactStagingToRolePayload.FromString(artifact.role_payload).staged_name
                staged[name] = self._keep_staged(path, name)
        found: dict[str, Any] = {"environments": sorted({e.urn for e in proto.components.environments.values()})}
        if images:
            found["container_images"] = sorted(set(images))
        if staged:
            found["staged"] = staged
        return found

    def _keep_staged(self, path: str, name: str) -> str:
        target = fs.join(self.folder, STAGING_DIR, name)
        if os.path.isfile(path):
            with open(path, "rb") as handle:
                fs.write_bytes(target, handle.read())
            _remove_beam_temp(os.path.dirname(path))
        return f"{STAGING_DIR}/{name}"

    def write_index(self) -> None:
        index = {"plans": self.entries, "notes": self.notes, "table_columns": self.table_columns}
        fs.write_text(fs.join(self.folder, INDEX), json.dumps(index, indent=2, sort_keys=True) + "\n")


def _remove_beam_temp(folder: str) -> None:
    """Removes a folder Beam's stager made with ``tempfile.mkdtemp`` (and never removes), nothing else."""
    temp_root = os.path.realpath(tempfile.gettempdir())
    real = os.path.realpath(folder)
    if os.path.dirname(real) == temp_root and os.path.basename(real).startswith("tmp"):
        shutil.rmtree(real, ignore_errors=True)


def _environment(options: PipelineOptions) -> Any:
    """The default environment a portable runner (Flink, Spark, Portable) would give the pipeline; None (Beam's
    default) for the local FnApiRunner."""
    from beam_pipelines.runtime.options import FN_API_RUNNER

    if options.view_as(StandardOptions).runner == FN_API_RUNNER:
        return None
    from apache_beam.transforms import environments

    return environments.Environment.from_options(options)


def transform_tree(proto: Any) -> str:
    """The pipeline's transforms as an indented tree of names, each leaf with its URN."""
    transforms = proto.components.transforms
    lines: list[str] = []

    def walk(transform_id: str, depth: int) -> None:
        transform = transforms[transform_id]
        name = transform.unique_name.rsplit("/", 1)[-1]
        leaf = "" if transform.subtransforms else f"  [{transform.spec.urn or 'no urn'}]"
        lines.append(f"{'  ' * depth}{name}{leaf}")
        for sub in transform.subtransforms:
            walk(sub, depth + 1)

    for root in proto.root_transform_ids:
        walk(root, 0)
    return "\n".join(lines) + "\n"


_ACTIVE: contextvars.ContextVar[Plans | None] = contextvars.ContextVar("sigforge_dry_run", default=None)


def active() -> Plans | None:
    """The dry run in progress, or None."""
    return _ACTIVE.get()


@contextlib.contextmanager
def session(out: str, folder: str | None = None) -> Iterator[Plans]:
    """A dry run writing to ``folder`` (default ``OUT/plans``); inside one already active, that one.

    The files of an earlier dry run listed in the folder's index are removed first, so the index describes the
    folder. The index is written when the session ends, also after a stage failed to build."""
    current = _ACTIVE.get()
    if current is not None:
        yield current
        return
    plans = Plans(folder or fs.join(out, PLANS_DIR))
    _forget_earlier(plans.folder)
    token = _ACTIVE.set(plans)
    try:
        yield plans
    finally:
        _ACTIVE.reset(token)
        plans.write_index()
        _LOG.info("dry run: %d pipelines built, nothing run; plans in %s", len(plans.entries), plans.folder)


def _forget_earlier(folder: str) -> None:
    index = fs.join(folder, INDEX)
    if not fs.exists(index):
        return
    fs.delete_tree(fs.join(folder, TFT_TMP_DIR))
    earlier = json.loads(fs.read_text(index)).get("plans", [])
    doomed = [fs.join(folder, f"{entry['name']}{suffix}") for entry in earlier for suffix in (".json", ".txt")]
    doomed += [fs.join(folder, path) for entry in earlier for path in entry.get("staged", {}).values()]
    fs.delete_files(sorted({path for path in doomed if fs.exists(path)}) + [index])
