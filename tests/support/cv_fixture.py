"""A small k-fold dataset in the layout the k-fold split/analyze/normalize stages will write (docs/splits.md),
for the trainer's cross-validation tests, made with today's stages since the k-fold stages do not exist yet.

The layout (the contract ``model/kfold.py`` reads)::

    OUT/split/folds.json             mode kfold, k, salt, stratify, rule, folds (examples, targets, positives),
                                     iterations (train, val, test folds)
    OUT/stats/cv_XX/                 iteration XX's statistics, like OUT/stats/ (transform_fn/, *.npz, ...)
    OUT/norm/cv_XX/{train,val,test}/ iteration XX's normalized shards and data tables, like OUT/norm/{split}/
    OUT/manifest.json                the split entry records mode "kfold" and k

How it is made, honestly:

1. the normal chain (``run_all``: build, split, analyze, normalize) runs once on a generated G2Net sample;
2. the split stage's examples (all three splits together) are assigned to k folds by target, stratified on
   whether the target has a positive (round robin over sha256 order), and iteration i gets test fold i, val
   fold i+1 and the rest as train;
3. for each iteration, a scratch dataset folder receives those folds as its ``split/{train,val,test}`` (the
   split stage's records and data-table rows, re-sharded) and the REAL analyze and normalize stages run on it:
   each iteration gets its own train statistics and transform_fn, and shards normalized with them;
4. the scratch folder's ``stats/`` and ``norm/{split}/`` are copied to ``OUT/stats/cv_XX`` and
   ``OUT/norm/cv_XX/{split}``; ``folds.json`` is written and the manifest's split entry gets mode and k.

What differs from the real k-fold stages: the fold rule (theirs is recorded in folds.json's ``rule``), and the
chain's own ``split/{train,val,test}``, ``stats/`` and ``norm/{train,val,test}`` stay in OUT, so that today's
dataset audit (which the trainer runs, and which the k-fold stages extend) still finds the folders its manifest
entries describe.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

from beam_pipelines.stages.run_all import run_all
from tests.support.dataset_fixture import write_records, write_table
from transforms.config import DatasetConfig, load_config
from transforms.contract import (
    shard_name,
)
from transforms.recipes.g2net import sample as gw_sample

K = 3
SALT = "cv-fixture"
OVERRIDES = [
    "build.examples_per_shard=16",
    "split.examples_per_shard=8",
    "split.fractions={train: 0.5, val: 0.25, test: 0.25}",
]


def dataset_config() -> DatasetConfig:
    return load_config(DatasetConfig, "run_configs/demo.yaml", OVERRIDES)


def _rank(target: str) -> str:
    return hashlib.sha256(f"{SALT}:{target}".encode()).hexdigest()


def assign_folds(rows: list[dict[str, str]], k: int) -> dict[str, int]:
    """target_id -> fold: targets with a positive, then the others, each in sha256 order, dealt round robin."""
    positive: dict[str, bool] = {}
    for row in rows:
        positive[row["target_id"]] = positive.get(row["target_id"], False) or row["label"] == "1"
    ordered = sorted((t for t in positive if positive[t]), key=_rank) + sorted(
        (t for t in positive if not positive[t]), key=_rank
    )
    return {target: index % k for index, target in enumerate(ordered)}


def plan(k: int) -> list[dict]:
    return [
        {"iteration": i, "train": [f for f in range(k) if f not in (i, (i + 1) % k)], "val": [(i + 1) % k], "test": [i]}
        for i in range(k)
    ]


def _write_split(folder: Path, split: str, members: list[tuple[bytes, dict[str, str]]], columns: list[str]) -> None:
    """``members`` (record, table row) as the split stage writes a split folder: shards of 8 and data tables."""
    folder.mkdir(parents=True)
    members = sorted(members, key=lambda m: m[1]["uid"])
    total = max(1, math.ceil(len(members) / 8))
    for index in range(total):
        chunk = members[index::total]
        name = shard_name(split, index, total)
        write_records(folder / name, [record for record, _ in chunk])
        write_table(
            folder / f"data_tbl_{index + 1:04d}-{total:04d}.csv", columns, [{**r, "shard": name} for _, r in chunk]
        )


def _split_entry(base: dict, by_split: dict[str, list[tuple[bytes, dict[str, str]]]]) -> dict:
    splits = {}
    for split, members in by_split.items():
        labels: dict[str, int] = {}
        for _, row in members:
            labels[row["label"]] = labels.get(row["label"], 0) + 1
        splits[split] = {
            "examples": len(members),
            "labels": labels,
            "targets": len({row["target_id"] for _, row in members}),
        }
    total = sum(len(m) for m in by_split.values())
    return {**base, "seen": total, "written": total, "splits": splits}


def build_kfold_dataset(root: Path, k: int = K, n: int = 48, seed: int = 3) -> dict[str, Path]:
    """Raw sample and the k-fold dataset ``root/ds`` the real chain writes (``split.mode: kfold``, stratified by
    label); returns their paths."""
    raw, out, scratch = root / "raw", root / "ds", root / "scratch"
    gw_sample.write_g2net_sample(str(raw), n=n, seed=seed, signals_per_source=2)
    overrides = [*OVERRIDES, "split.mode=kfold", f"split.k={k}", "split.stratify=true"]
    run_all(load_config(DatasetConfig, "run_configs/demo.yaml", overrides), str(raw), str(out))
    return {"raw": raw, "data": out, "scratch": scratch}


def _fingerprints(out: Path, manifest: dict) -> dict[str, str]:
    """The sha256 of every file under the recorded stages' outputs, as a stage records them when it publishes
    (the audit checks published files against them)."""
    import hashlib

    from transforms.contract import STAGE_OUTPUTS

    found = {}
    for stage in manifest.get("stages", {}):
        for rel in STAGE_OUTPUTS.get(stage, ()):
            path = out / rel.rstrip("/")
            files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
            for file in files:
                found[file.relative_to(out).as_posix()] = hashlib.sha256(file.read_bytes()).hexdigest()
    return found
