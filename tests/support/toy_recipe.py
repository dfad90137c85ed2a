"""A toy third recipe that lives only in the test folder: proof that a domain is one module + one registration.

Raw input: ``series.csv`` with ``id,group,label,v0..v{L-1}`` (one short series per row). Build: parse and
validate each row (a non-finite value or a bad label is rejected with its reason). Analyze: one tf.Transform
pass z-scoring the series with the train mean and std. No stage module knows about it.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping
from typing import Any

import apache_beam as beam
import numpy as np
from pydantic import Field

from beam_pipelines.io.inputs import csv_source, parse_csv_line
from beam_pipelines.io.readers import ReadWholeFiles, read_table_lines
from beam_pipelines.io.records import ShardRecord
from beam_pipelines.io.rejects import REJECTED, reject
from beam_pipelines.recipes.base import BuildOutputs, RecipeBuild
from transforms.config import _Strict
from transforms.contract import LABEL, TARGET_ID, UID, RejectedInput, encode_example
from transforms.recipes.base import AnalysisPass, default_check_train_split

NAME = "toy"
FEATURE = "series"
STAT_NAMES = ("series_mean", "series_std")


class ToyConfig(_Strict):
    csv: str = "series.csv"
    length: int = Field(8, ge=2)


def parse_row(row: Mapping[str, str], length: int) -> tuple[str, str, int, np.ndarray]:
    """(uid, group, label, series) of one CSV row; RejectedInput with the reason otherwise."""
    if row["label"] not in ("0", "1"):
        raise RejectedInput("bad_label", f"label {row['label']!r} is not 0 or 1")
    values = np.array([float(row[f"v{i}"]) for i in range(length)])
    if not np.isfinite(values).all():
        raise RejectedInput("non_finite", "series has NaN/inf")
    return row["id"], row["group"], int(row["label"]), values


class _ParseFn(beam.DoFn):
    def __init__(self, header, length):
        self._header = header
        self._length = length

    def process(self, line: str):
        try:
            uid, group, label, values = parse_row(parse_csv_line(line, self._header), self._length)
        except RejectedInput as error:
            yield reject("build", line[:40], error.reason, error.detail)
            return
        example = encode_example(uid, group, label, {FEATURE: values})
        yield ShardRecord(uid, example, {"uid": uid, "target_id": group, "label": label})


class BuildToy(RecipeBuild):
    @classmethod
    def plan(cls, config: Any, input_dir: str):
        return csv_source(input_dir, config.section.csv, f"{NAME}.csv")

    @classmethod
    def table_columns(cls, plan) -> list[str]:
        return []

    def examples(self, pipeline) -> BuildOutputs:
        lines = pipeline | "ReadCsv" >> ReadWholeFiles(self._plan.path, read_table_lines, literal=True)
        parsed = lines | "Parse" >> beam.ParDo(_ParseFn(self._plan.header, self._config.section.length)).with_outputs(
            REJECTED, main="records"
        )
        return BuildOutputs(parsed.records, parsed[REJECTED], lines)


def toy_preprocessing_fn(inputs, length: int):
    """z-score the series with its train mean and std (float64 until the cast)."""
    import tensorflow as tf
    import tensorflow_transform as tft

    x = tf.cast(tf.reshape(tf.io.decode_raw(inputs[FEATURE], tf.float32), [-1, length]), tf.float64)
    mean, std = tft.mean(x), tf.sqrt(tft.var(x))
    tf.identity(mean, name="series_mean")
    tf.identity(std, name="series_std")
    return {
        FEATURE: tf.cast((x - mean) / std, tf.float32),
        **{k: tf.identity(inputs[k]) for k in (UID, TARGET_ID, LABEL)},
    }


class ToyRecipe:
    name = NAME
    summary = "toy series from one CSV (test-only recipe)"
    config_class = ToyConfig
    build_transform = "tests.support.toy_recipe:BuildToy"
    cap_group_columns = ("target_id",)
    default_trainer_config = None
    baselines: dict[str, str] = {}
    serving = None

    def raw_feature_spec(self, config):
        import tensorflow as tf

        return {
            UID: tf.io.FixedLenFeature([], tf.string),
            TARGET_ID: tf.io.FixedLenFeature([], tf.string),
            LABEL: tf.io.FixedLenFeature([], tf.int64),
            FEATURE: tf.io.FixedLenFeature([], tf.string),
        }

    def analysis_passes(self, config):
        fn = functools.partial(toy_preprocessing_fn, length=config.section.length)
        return [AnalysisPass("zscore", lambda _: fn, STAT_NAMES)]

    def check_train_split(self, config, train_split):
        return default_check_train_split(train_split)

    def stats_files(self, config, stats):
        return {"train_stats.npz": dict(stats)}

    def stats_summary(self, config, stats):
        return {name: float(stats[name]) for name in STAT_NAMES}

    def make_sample(self, out: str, n: int, seed: int, **options) -> dict[str, Any]:
        """``n`` rows in ``n // 2`` groups; label 1 rows carry a sine. Row 0 has a NaN (rejected)."""
        rng = np.random.default_rng(seed)
        length = ToyConfig().length
        os.makedirs(out, exist_ok=True)
        lines = ["id,group,label," + ",".join(f"v{i}" for i in range(length))]
        for i in range(n):
            label = i % 2
            values = rng.normal(size=length) + label * np.sin(np.arange(length))
            if i == 0:
                values[0] = math.nan
            lines.append(f"s{i:04d},g{i // 2:04d},{label}," + ",".join(f"{v:.6f}" for v in values))
        with open(os.path.join(out, "series.csv"), "w") as handle:
            handle.write("\n".join(lines) + "\n")
        return {"rows": n}


RECIPE = ToyRecipe()
