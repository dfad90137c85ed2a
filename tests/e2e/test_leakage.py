"""Leakage demonstration: splitting by sample id lets a memorizer score well on test; splitting by source does not.

One raw sample (``sigforge make-sample g2net RAW --n 250 --seed 0 --signals-per-source 5``: every waveform is
injected into 5 noise draws sharing one ``source_id``) is built twice with the real pipeline
(``beam_pipelines.stages.run_all.run_all``), with the same split fractions:

* naive: ``run_configs/g2net.yaml`` (``g2net.group_column: id``), the split hashes the sample id, so the twins of
  a source scatter over train, val and test;
* grouped: ``run_configs/demo.yaml`` (``g2net.group_column: source_id``), a source lies in exactly one split.

The model is a deliberate memorizer, deterministic and fast: a template bank made of the normalized train
positives themselves. A test example's score is its largest normalized correlation with any train positive
(no time shifts, so only a waveform seen in train at the same place can match). It has learnt nothing that
generalizes, so on the grouped split its test ROC-AUC is at chance; on the naive split a test positive finds
its own twin in train and the AUC is inflated. ``sigforge audit --group-column source_id`` flags exactly that
overlap, while the sample-id audit alone (target_id = id) finds nothing wrong.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from beam_pipelines.commands import cli
from beam_pipelines.stages.run_all import run_all
from model.metrics import roc_auc
from transforms.audit import audit_dataset
from transforms.config import DatasetConfig, load_config

_LOG = logging.getLogger(__name__)

N_SAMPLES, SEED, SIGNALS_PER_SOURCE = 250, 0, 5
# A larger test split than the recipes' 10 % so the test AUC rests on ~50-60 examples, for both datasets.
FRACTIONS = "split.fractions={train: 0.6, val: 0.1, test: 0.3}"
RECIPES = {"naive": "run_configs/g2net.yaml", "grouped": "run_configs/demo.yaml"}
MIN_AUC_GAP = 0.15  # the gap this sample shows: docs/gravitational-waves.md, "Leakage demonstration"

_NORM_SPEC = {
    "uid": tf.io.FixedLenFeature([], tf.string),
    "label": tf.io.FixedLenFeature([], tf.int64),
    "strain": tf.io.FixedLenFeature([3, 4096], tf.float32),
}


def read_norm_split(out: Path, split: str) -> tuple[list[str], np.ndarray, np.ndarray, list[str]]:
    """(uids, labels (n,), strain (n, 3, 4096) float32, source ids) of one normalized split, in shard order."""
    shards = sorted(str(p) for p in (out / "norm" / split).glob("norm_*.tfrecord"))
    uids, labels, strains = [], [], []
    for batch in tf.data.TFRecordDataset(shards).batch(128).map(lambda r: tf.io.parse_example(r, _NORM_SPEC)):
        uids += [u.decode() for u in batch["uid"].numpy()]
        labels.append(batch["label"].numpy())
        strains.append(batch["strain"].numpy())
    source_of = {}
    for table in sorted((out / "norm" / split).glob("data_tbl_*.csv")):
        with open(table, newline="") as handle:
            source_of.update({row["uid"]: row["source_id"] for row in csv.DictReader(handle)})
    return uids, np.concatenate(labels), np.concatenate(strains), [source_of[u] for u in uids]


def _unit_rows(strain: np.ndarray) -> np.ndarray:
    flat = strain.reshape(len(strain), -1).astype(np.float64)
    return flat / np.linalg.norm(flat, axis=1, keepdims=True)


def memorizer_scores(out: Path) -> dict[str, object]:
    """Test scores of the template-bank memorizer fitted on the train split of the dataset folder ``out``.

    Returns the test labels, scores (max normalized correlation with a train positive), the test source ids,
    the source id of each test example's best-matching train positive, and the train source ids.
    """
    _, train_labels, train_strain, train_sources = read_norm_split(out, "train")
    _, test_labels, test_strain, test_sources = read_norm_split(out, "test")
    bank = _unit_rows(train_strain[train_labels == 1])
    bank_sources = np.array(train_sources)[train_labels == 1]
    correlation = _unit_rows(test_strain) @ bank.T  # (n_test, n_bank)
    best = correlation.argmax(axis=1)
    return {
        "labels": test_labels,
        "scores": correlation.max(axis=1),
        "test_sources": np.array(test_sources),
        "matched_sources": bank_sources[best],
        "train_sources": set(train_sources),
    }


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """The raw sample (made by the CLI) and its naive and grouped datasets, built by the real pipeline."""
    root = tmp_path_factory.mktemp("leakage")
    raw = root / "raw"
    args = ["make-sample", "g2net", str(raw), "--n", str(N_SAMPLES), "--seed", str(SEED)]
    assert cli.main([*args, "--signals-per-source", str(SIGNALS_PER_SOURCE)]) == 0
    outs = {}
    for name, recipe in RECIPES.items():
        config = load_config(DatasetConfig, recipe, [FRACTIONS])
        outs[name] = root / name
        run_all(config, str(raw), str(outs[name]))
    return outs


@pytest.fixture(scope="module")
def results(datasets):
    return {name: memorizer_scores(out) for name, out in datasets.items()}


def test_naive_split_inflates_test_auc(results):
    auc = {name: roc_auc(r["labels"], r["scores"]) for name, r in results.items()}
    for name, r in results.items():
        _LOG.info(
            "%s split: test ROC-AUC %.3f on %d examples (%d positive)",
            name,
            auc[name],
            len(r["labels"]),
            int(r["labels"].sum()),
        )
    for r in results.values():  # both test splits can measure an AUC on a useful number of examples
        assert len(r["labels"]) >= 40 and 10 <= r["labels"].sum() <= len(r["labels"]) - 10
    assert auc["naive"] - auc["grouped"] > MIN_AUC_GAP, auc
    assert auc["naive"] > 0.65, auc  # the memorizer "works" only where test sources were seen in train


def test_leak_is_the_twins(results):
    """Why the naive AUC is high: its test positives come from sources in train and match their own twins."""
    naive, grouped = results["naive"], results["grouped"]
    positives = naive["labels"] == 1
    leaked = np.array([s in naive["train_sources"] for s in naive["test_sources"]])
    twin_matched = positives & (naive["matched_sources"] == naive["test_sources"])
    _LOG.info(
        "naive split: %d of %d test positives have their source in train; %d match their own twin best",
        int((leaked & positives).sum()),
        int(positives.sum()),
        int(twin_matched.sum()),
    )
    assert (leaked & positives).mean() / positives.mean() > 0.9
    assert twin_matched.sum() >= positives.sum() / 3  # IMRPhenomD, seed 0: 16 of 35
    # Among naive test positives, those matched to a twin score higher than the rest.
    assert naive["scores"][twin_matched].mean() > naive["scores"][positives & ~twin_matched].mean()
    # The grouped split shares no source between train and test, so no twin can be matched.
    assert not any(s in grouped["train_sources"] for s in grouped["test_sources"])
    assert not np.any(grouped["matched_sources"] == grouped["test_sources"])


def test_audit_flags_the_naive_split_only(datasets, caplog):
    naive, grouped = str(datasets["naive"]), str(datasets["grouped"])
    # By its own group key (target_id = sample id) the naive split is clean: the leak is invisible there.
    assert audit_dataset(naive) == []
    with caplog.at_level(logging.ERROR, logger="beam_pipelines.commands.audit"):
        assert cli.main(["audit", naive, "--group-column", "source_id"]) == 1
    assert "source_id '" in caplog.text and "is in more than one split" in caplog.text
    problems = audit_dataset(naive, group_column="source_id")
    assert problems and all("source_id" in p for p in problems)
    caplog.clear()
    assert cli.main(["audit", grouped, "--group-column", "source_id"]) == 0
    assert "is in more than one split" not in caplog.text
