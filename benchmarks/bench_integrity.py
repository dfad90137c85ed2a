"""Costs of two integrity steps on an existing G2Net dataset folder (issue #11: they were unmeasured).

    python benchmarks/bench_integrity.py OUT [--repeat 3]

1. **The uid-order shard rewrite at finalize** (``beam_pipelines.shards.write_sorted_by_uid``): every shard of
   ``OUT/tfrecords``, ``OUT/split/*`` and ``OUT/norm/*`` is copied to a part file and rewritten in uid order,
   against the step it replaced (one rename of the part file). Reported per folder kind and in total, in seconds
   and as a share of the stage's own time in ``OUT/manifest.json``.
2. **The trainer's pre-flight check** (``model.data.check_dataset`` with ``run_configs/train_g2net.yaml``): the
   whole call, and the part of it that is the record audit (``transforms.audit.audit_dataset``), timed alone.

The folder is left as it was (the rewrites go to a temporary copy). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

SHARD_FOLDERS = {"build": ["tfrecords"], "split": ["split/train", "split/val", "split/test"],
                 "normalize": ["norm/train", "norm/val", "norm/test"]}  # fmt: skip


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def time_rewrite(out: Path, repeat: int) -> dict:
    from beam_pipelines.shards import write_sorted_by_uid

    stages = json.loads((out / "manifest.json").read_text())["stages"]
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        for stage, folders in SHARD_FOLDERS.items():
            shards = [p for folder in folders for p in sorted((out / folder).glob("*.tfrecord"))]
            size = sum(p.stat().st_size for p in shards)

            def rewrite(shards=shards):
                for shard in shards:
                    part = os.path.join(tmp, "part.tfrecord")
                    shutil.copyfile(shard, part)
                    write_sorted_by_uid(part, os.path.join(tmp, "final.tfrecord"))

            def rename_only(shards=shards):
                for shard in shards:
                    part = os.path.join(tmp, "part.tfrecord")
                    shutil.copyfile(shard, part)
                    os.replace(part, os.path.join(tmp, "final.tfrecord"))

            with_sort, plain = _best(rewrite, repeat), _best(rename_only, repeat)
            result[stage] = {
                "shards": len(shards),
                "mb": round(size / 1e6, 1),
                "rewrite_s": round(with_sort - plain, 3),
                "stage_s": stages[stage]["seconds"],
                "share_of_stage": round((with_sort - plain) / stages[stage]["seconds"], 3),
            }
    result["total_rewrite_s"] = round(sum(v["rewrite_s"] for v in result.values()), 3)
    return result


def time_preflight(out: Path, repeat: int) -> dict:
    from model.config import TrainerConfig, load_trainer_config
    from model.data import check_dataset
    from transforms.audit import audit_dataset

    config: TrainerConfig = load_trainer_config("run_configs/train_g2net.yaml")
    full = _best(lambda: check_dataset(str(out), config), repeat)
    audit = _best(lambda: audit_dataset(str(out)), repeat)
    return {"check_dataset_s": round(full, 2), "of_which_audit_s": round(audit, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(json.dumps({"rewrite": time_rewrite(args.out, args.repeat),  # noqa: T201
                      "preflight": time_preflight(args.out, args.repeat)}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
