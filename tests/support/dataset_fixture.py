"""A small complete dataset folder for the audit and filter tests (build, split, analyze, normalize).

build and split are the real stages. analyze and normalize are stand-ins that write the contract's files
(``stats/*.npz``; ``norm/{split}/norm_{split}_shard_NNNN-TOTAL.tfrecord`` with a float_list ``strain`` of
3*4096 values, plus data tables) through the real publish protocol, so these tests do not depend on the
tf.Transform stages. The dataset is built once per session and copied by each test that damages it.
"""

from __future__ import annotations

import csv
import hashlib
import math
import shutil
from pathlib import Path

import numpy as np
from tensorflow.core.example import example_pb2

from beam_pipelines.dataset import manifest
from beam_pipelines.io.tables import format_table
from transforms.config import DatasetConfig, load_config
from transforms.contract import (
    BASE_COLUMNS,
    NORM_DIR,
    SPLIT_DIR,
    SPLITS,
    STRAIN,
    TABLE_PATTERN,
    decode_array,
    decode_example,
    norm_prefix,
    shard_name,
    shard_pattern,
    split_prefix,
    table_name,
)
from transforms.tfrecord import read_record, write_record

NORM_PER_SHARD = 4
_CACHE: dict[str, Path] = {}


def num_shards_for(count: int, examples_per_shard: int) -> int:
    return max(1, math.ceil(count / examples_per_shard))


def shard_of(uid: str, total: int) -> int:
    return int.from_bytes(hashlib.sha256(uid.encode("utf-8")).digest()[:8], "big") % total


def read_records(path) -> list[bytes]:
    records = []
    with open(path, "rb") as handle:
        while (record := read_record(handle)) is not None:
            records.append(record)
    return records


def write_records(path, records) -> None:
    with open(path, "wb") as handle:
        for record in records:
            write_record(handle, record)


def read_table(path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames), list(reader)


def write_table(path, columns, rows) -> None:
    Path(path).write_text(format_table(rows, columns))


def norm_example(serialized: bytes) -> bytes:
    """A normalize-stage example from a split example: ``strain`` as a float_list of 3*4096 scaled values."""
    raw = decode_example(serialized)
    strain = decode_array(raw, STRAIN, (3, 4096)).astype(np.float64)
    scaled = (strain / strain.std(axis=1, keepdims=True)).astype(np.float32)
    example = example_pb2.Example()
    for key in ("uid", "target_id", "label"):
        example.features.feature[key].CopyFrom(raw.features.feature[key])
    example.features.feature[STRAIN].float_list.value.extend(scaled.ravel())
    return example.SerializeToString()


def write_stand_in_stages(out: Path) -> None:
    """analyze -> stats/*.npz and normalize -> norm/, from ``out/split``, each published like a real stage."""
    run = manifest.begin_stage(str(out), "analyze", overwrite=False, requires="split")
    stats = Path(run.tmp_path("stats"))
    stats.mkdir(parents=True)
    rng = np.random.default_rng(0)
    np.savez(stats / "train_stats.npz", mean=np.zeros(3), std=np.full(3, 2.5e-22), count=np.array(38))
    np.savez(stats / "avg_psd.npz", avg_psd=rng.uniform(1e-47, 1e-45, size=(3, 2049)), freqs=np.arange(2049.0))
    manifest.finish_stage(run, {"splits_used": ["train"]})

    run = manifest.begin_stage(str(out), "normalize", overwrite=False, requires="analyze")
    counts = {}
    for split in SPLITS:
        source = out / SPLIT_DIR / split
        records = [r for shard in sorted(source.glob(shard_pattern(split_prefix(split)))) for r in read_records(shard)]
        columns, rows = [], []
        for table in sorted(source.glob(TABLE_PATTERN)):
            columns, table_rows = read_table(table)
            rows += table_rows
        by_uid = {row["uid"]: row for row in rows}
        total = num_shards_for(len(records), NORM_PER_SHARD)
        folder = Path(run.tmp_path(f"{NORM_DIR}/{split}"))
        folder.mkdir(parents=True)
        shards: list[list[tuple[str, bytes]]] = [[] for _ in range(total)]
        for record in records:
            uid = decode_example(record).features.feature["uid"].bytes_list.value[0].decode()
            shards[shard_of(uid, total)].append((uid, norm_example(record)))
        prefix = norm_prefix(split)
        for index, members in enumerate(shards):
            members.sort()
            name = shard_name(prefix, index, total)
            write_records(folder / name, [example for _, example in members])
            table_rows = [{**by_uid[uid], "shard": name} for uid, _ in members]
            write_table(folder / table_name(index, total), columns or list(BASE_COLUMNS), table_rows)
        counts[split] = len(records)
    total_seen = sum(counts.values())
    summary = {
        "seen": total_seen,
        "written": total_seen,
        "rejected": 0,
        "splits": {s: {"examples": n} for s, n in counts.items()},
    }
    manifest.finish_stage(run, summary)


def build_dataset(raw: Path, out: Path, recipe: str = "run_configs/demo.yaml", normalize: bool = True) -> Path:
    """Runs build + split (+ the stand-in analyze/normalize) on ``raw`` into ``out``."""
    from beam_pipelines.stages.build import run_build
    from beam_pipelines.stages.split import run_split

    config = load_config(DatasetConfig, recipe, ["build.examples_per_shard=20", "split.examples_per_shard=10"])
    run_build(config, str(raw), str(out))
    run_split(config, str(out))
    if normalize:
        write_stand_in_stages(out)
    return out


def clean_dataset(tmp_path_factory, g2net_raw) -> Path:
    """The session's clean demo dataset (built on first use); treat it as read-only, copy it to damage it."""
    if "clean" not in _CACHE:
        _CACHE["clean"] = build_dataset(g2net_raw, tmp_path_factory.mktemp("clean") / "ds")
    return _CACHE["clean"]


def copy_dataset(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest)
    return dest
