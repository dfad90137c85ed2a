"""Byte-identical reruns: the same inputs and config give the same bytes in every shard (normalized included),
every data table and bit-identical statistics."""

from __future__ import annotations

import hashlib

import numpy as np

from beam_pipelines.stages import normalize
from beam_pipelines.stages.normalize import deterministic_bytes
from beam_pipelines.stages.run_all import run_all
from transforms.config import DatasetConfig, load_config

_OVERRIDES = [
    "build.examples_per_shard=16",
    "split.examples_per_shard=12",
    "split.fractions={train: 0.6, val: 0.2, test: 0.2}",
]


def _digests(out):
    skip = {"manifest.json"}
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name not in skip
    }


def test_reruns_write_identical_bytes(g2net_raw_k3, tmp_path):
    """Two runs: every file byte-identical (shards, tables, rejections, transform_fn, npz statistics); and
    normalize re-run on the same statistics rewrites identical normalized shards."""
    config = load_config(DatasetConfig, "run_configs/demo.yaml", _OVERRIDES)
    first, second = tmp_path / "a", tmp_path / "b"
    run_all(config, str(g2net_raw_k3), str(first))
    run_all(config, str(g2net_raw_k3), str(second))
    a, b = _digests(first), _digests(second)
    assert sorted(a) == sorted(b)
    assert any(n.startswith("norm/train/norm_train_shard_") for n in a) and "stats/train_stats.npz" in a
    assert [n for n in a if a[n] != b[n]] == []
    for name in ("train_stats.npz", "avg_psd.npz"):
        with np.load(first / "stats" / name) as x, np.load(second / "stats" / name) as y:
            for key in x.files:
                assert x[key].tobytes() == y[key].tobytes(), (name, key)
    normalize.run_normalize(config, str(first), overwrite=True)
    again = _digests(first)
    assert [n for n in a if n.startswith("norm/") and again[n] != a[n]] == []


def test_deterministic_bytes_fixes_the_feature_map_order():
    from tensorflow.core.example import example_pb2

    example = example_pb2.Example()
    for name in ("z", "a", "m", "uid", "label"):
        example.features.feature[name].float_list.value.append(1.0)
    once = deterministic_bytes(example.SerializeToString())
    assert deterministic_bytes(once) == once
    reordered = example_pb2.Example()
    for name in ("label", "uid", "m", "a", "z"):
        reordered.features.feature[name].float_list.value.append(1.0)
    assert deterministic_bytes(reordered.SerializeToString()) == once
