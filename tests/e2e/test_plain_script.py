"""The plain pipeline (``tests/oracles/plain_pipeline.py``, one process, numpy + TF; the benchmark's baseline,
``benchmarks/plain_script.py``) and ``sigforge run`` do the same work on the same data: the same examples in
each split, the same train statistics (to float64 round-off: the sums are merged in another order) and the same
normalized strain per uid. Without this, a faster sigforge in ``benchmarks/bench_run.py`` could be one that does
less."""

from __future__ import annotations

import pathlib

import numpy as np

from beam_pipelines.stages.run_all import run_all
from tests.oracles import plain_pipeline
from transforms.config import DatasetConfig, load_config
from transforms.contract import decode_example
from transforms.tfrecord import iter_records

_OVERRIDES = ["build.examples_per_shard=16", "split.examples_per_shard=12"]


def _normalized(folder: pathlib.Path) -> dict[str, dict[str, np.ndarray]]:
    """split -> uid -> normalized strain (float32) of every ``*.tfrecord`` under ``folder/{split}``."""
    result: dict[str, dict[str, np.ndarray]] = {}
    for split_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        examples = result.setdefault(split_dir.name, {})
        for shard in sorted(split_dir.glob("*.tfrecord")):
            with open(shard, "rb") as handle:
                for record in iter_records(handle):
                    feature = decode_example(record).features.feature
                    uid = feature["uid"].bytes_list.value[0].decode("utf-8")
                    examples[uid] = np.asarray(feature["strain"].float_list.value, dtype=np.float32)
    return result


def test_plain_script_and_sigforge_agree(g2net_raw_k3, tmp_path):
    config = load_config(DatasetConfig, "run_configs/demo.yaml", _OVERRIDES)
    plain = plain_pipeline.run(config, str(g2net_raw_k3), str(tmp_path / "plain"))
    run_all(config, str(g2net_raw_k3), str(tmp_path / "sigforge"))

    ours, theirs = _normalized(tmp_path / "sigforge" / "norm"), _normalized(tmp_path / "plain" / "norm")
    assert {s: sorted(u) for s, u in ours.items()} == {s: sorted(u) for s, u in theirs.items()}
    assert {s: len(u) for s, u in ours.items()} == plain["splits"]
    with np.load(tmp_path / "sigforge" / "stats" / "train_stats.npz") as stats:
        with np.load(tmp_path / "plain" / "plain_stats.npz") as reference:
            for key in ("avg_psd", "channel_mean", "channel_std"):
                atol = 1e-12 if key.startswith("channel_") else 0.0  # unit-scale moments; the mean is ~0
                np.testing.assert_allclose(stats[key], reference[key], rtol=1e-9, atol=atol, err_msg=key)
            assert int(stats["psd_examples"]) == plain["psd_examples"]
    # Same float32 strain per uid: the statistics differ at most in the last float64 bits, far below float32's.
    worst = max(float(np.max(np.abs(ours[split][uid] - theirs[split][uid]))) for split in ours for uid in ours[split])
    assert worst <= 1e-6, worst
    identical = sum(np.array_equal(ours[s][u], theirs[s][u]) for s in ours for u in ours[s])
    assert identical >= 0.9 * sum(len(u) for u in ours.values())
