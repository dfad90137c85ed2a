"""``sigforge audit OUT``: the dataset audit (``transforms.audit``) over Beam ``FileSystems``, for the CLI.

With ``--beam`` the per-shard record checks (``transforms.audit_values.scan_shard``, the same function the trainer's
pre-flight check runs in-process) are mapped over the shards by a Beam pipeline (``ScanShards``), so a large
dataset is read by as many workers as the runner gives; the results come back as JSON lines.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid

import apache_beam as beam

from beam_pipelines.dataset import fs
from beam_pipelines.dataset.lock import check_unlocked
from beam_pipelines.runtime.options import make_pipeline_options
from transforms import audit, audit_provenance, audit_values
from transforms.audit_values import ShardScan, scan_shard

_LOG = logging.getLogger(__name__)


class ScanShards(beam.PTransform):
    """Shard paths -> ``ShardScan`` per shard, each read record by record on a worker."""

    def expand(self, paths):
        return paths | "Reshuffle" >> beam.Reshuffle() | "ScanShard" >> beam.Map(lambda path: scan_shard(path, fs))


class BeamScanner:
    """A ``scanner(paths, fs)`` for ``audit_dataset`` that runs ``ScanShards`` in a pipeline; its JSON-lines
    results are written under ``work_dir`` and read back (then deleted)."""

    def __init__(self, work_dir: str, beam_args: list[str] | None = None):
        self._work_dir = work_dir
        self._beam_args = beam_args

    def __call__(self, paths: list[str], _fs) -> list[ShardScan]:
        if not paths:
            return []
        prefix = fs.join(self._work_dir, f"audit-{uuid.uuid4().hex}")
        with beam.Pipeline(options=make_pipeline_options(self._beam_args)) as pipeline:
            _ = (
                pipeline
                | "Paths" >> beam.Create(paths)
                | "ScanShards" >> ScanShards()
                | "ToJson" >> beam.Map(lambda scan: json.dumps(dataclasses.asdict(scan)))
                | "Write" >> beam.io.WriteToText(prefix, file_name_suffix=".jsonl")
            )
        outputs = fs.glob(prefix + "*")
        scans = []
        for path in outputs:
            for line in fs.read_text(path).splitlines():
                data = json.loads(line)
                data["keys"] = [tuple(key) for key in data["keys"]]
                scans.append(ShardScan(**data))
        fs.delete_files(outputs)
        return sorted(scans, key=lambda scan: scan.path)


def run_audit(
    out: str,
    group_column: str | None = None,
    beam: bool = False,
    beam_args: list[str] | None = None,
    inputs: bool = False,
    ignore_lock: bool = False,
) -> int:
    """CLI helper: logs every problem and returns 1 when there are any, else 0. Besides ``audit_dataset``, the
    published files are checked against their fingerprints and, with ``inputs``, the raw input set against the
    one the build recorded (``transforms.audit_provenance``). Refuses (DatasetBusy, code ``locked``) a folder a
    live run holds, unless ``ignore_lock`` (a WARNING)."""
    check_unlocked(out, "audit", ignore_lock)
    scanner = BeamScanner(fs.join(out, ".tmp_audit"), beam_args) if beam else audit_values.in_process
    try:
        problems = audit.audit_dataset(out, group_column, fs=fs, scanner=scanner)
    finally:
        if beam:
            fs.delete_tree(fs.join(out, ".tmp_audit"))
    data = audit.read_manifest(fs, out)
    if data.get("stages"):
        problems += audit_provenance.check_fingerprints(fs, out, data)
        if inputs:
            problems += audit_provenance.check_inputs(fs, out, data)
    for problem in problems:
        _LOG.error("audit: %s", problem)
    if problems:
        _LOG.error("audit: %d problems in %s", len(problems), out)
        return 1
    _LOG.info("audit: %s is clean", out)
    return 0
