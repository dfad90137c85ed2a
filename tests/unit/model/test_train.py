"""End to end: `python -m model.train` on a tiny fake dataset, every artifact, then `python -m model.evaluate`."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import datetime as dt  # noqa: E402
import hashlib  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from model import evaluate as evaluate_module  # noqa: E402
from model import metrics as M  # noqa: E402
from model import train as train_module  # noqa: E402
from model.artifacts import make_run_dir, read_history_csv  # noqa: E402
from model.config import load_trainer_config  # noqa: E402
from model.synthetic import write_fake_dataset  # noqa: E402
from tests.support.paths import REPO  # noqa: E402
from tests.support.run_artifacts import load_weights_npz, read_scores_csv  # noqa: E402

PLOTS = ("dashboard", "learning_curves", "roc_curve", "pr_curve", "confusion_matrix", "score_hist", "efficiency_vs_snr")
TINY = [
    "train.epochs=3",
    "model.filters=[8, 8, 16, 16]",
    "model.kernel_sizes=[16, 16, 8, 8]",
    "model.dense_units=[16, 8]",
    "data.batch_size=16",
    "data.eval_batch_size=24",
    "train.learning_rate=3e-3",
    "train.lr_schedule=cosine",
    "train.class_weight=balanced",
    "data.augment.time_shift_max=64",
    "data.augment.sign_flip_prob=0.5",
    "data.augment.detector_swap_prob=0.5",
    "train.verbose=0",
    "data.injection.enabled=false",  # the fake dataset has no G2Net statistics to whiten a bank with
]


@pytest.fixture(scope="module")
def g2net_data(tmp_path_factory):
    """64 train / 32 val / 32 test examples of strain (3, 4096) (the contract shape), signal in positives."""
    return Path(write_fake_dataset(str(tmp_path_factory.mktemp("g2net_data")), seed=0))


@pytest.fixture(scope="module")
def g2net_run(g2net_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    argv = ["--data", str(g2net_data), "--config", str(REPO / "run_configs" / "train_g2net.yaml"), "--out", str(out)]
    for item in TINY:
        argv += ["--set", item]
    assert train_module.main([*argv, "--name", "tiny"]) == 0
    (run_dir,) = out.iterdir()
    return run_dir


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_run_folder_holds_every_artifact(g2net_run):
    prefix = g2net_run.name
    assert prefix.startswith("tiny_") and len(prefix) == len("tiny_YYYYMMDD_HHMM")
    files = [
        f"{prefix}.keras",
        f"{prefix}_weights.npz",
        f"{prefix}_config.json",
        f"{prefix}_metrics.json",
        "history.csv",
        "scores_val.csv",
        "scores_test.csv",
        *(f"plots/{prefix}_{name}.png" for name in PLOTS),
    ]
    for name in files:
        path = g2net_run / name
        assert path.is_file() and path.stat().st_size > 0, name
    for name in PLOTS:
        assert (g2net_run / "plots" / f"{prefix}_{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tensorboard_logs(g2net_run):
    if importlib.util.find_spec("tensorboard") is None:
        pytest.skip("tensorboard is not installed (TensorFlow >= 2.21 does not pull it in)")
    assert any((g2net_run / "tensorboard").rglob("events.out.tfevents.*"))


def test_config_json_records_data_and_resolved_config(g2net_run, g2net_data):
    saved = _json(g2net_run / f"{g2net_run.name}_config.json")
    assert saved["data_dir"] == str(g2net_data)
    assert saved["manifest"]["sha256"] == hashlib.sha256((g2net_data / "manifest.json").read_bytes()).hexdigest()
    expected = load_trainer_config(str(REPO / "run_configs" / "train_g2net.yaml"), TINY)
    assert saved["config"] == expected.model_dump(mode="json")
    assert saved["input_spec"] == {"strain": [3, 4096]}
    assert saved["dataset"]["train"]["examples"] == 64 and saved["steps_per_epoch"] == 4
    assert saved["class_weight"] == {"0": 1.0, "1": 1.0}


def test_metrics_use_the_val_threshold_and_match_the_scores(g2net_run):
    saved = _json(g2net_run / f"{g2net_run.name}_metrics.json")
    _, val_labels, val_scores = read_scores_csv(str(g2net_run / "scores_val.csv"))
    threshold = saved["threshold"]["value"]
    assert saved["threshold"]["chosen_on"] == "val" and saved["threshold"]["method"] == "max_f1"
    assert threshold == pytest.approx(M.choose_threshold(val_labels, val_scores, "max_f1"), rel=1e-6)
    uids, labels, scores = read_scores_csv(str(g2net_run / "scores_test.csv"))
    assert len(set(uids)) == 32 and labels.sum() == 16
    test = saved["splits"]["test"]
    assert test["threshold"] == threshold
    recomputed = M.binary_metrics(labels, scores, threshold)
    for key in ("roc_auc", "pr_auc", "accuracy", "precision", "recall", "f1"):
        assert test[key] == pytest.approx(recomputed[key], abs=1e-6), key
    assert test["confusion_matrix"] == recomputed["confusion_matrix"]
    assert np.sum(test["confusion_matrix"]) == 32
    # The planted signal is learnable: the tiny model separates it after 3 epochs.
    assert test["roc_auc"] > 0.8
    efficiency = test["efficiency_vs_snr"]
    assert efficiency["n_positive_with_snr"] == 16 and sum(b["n_positive"] for b in efficiency["bins"]) == 16
    assert all(0.0 <= b["efficiency"] <= 1.0 for b in efficiency["bins"])
    training = saved["training"]
    assert training["epochs_run"] == 3 and 1 <= training["best_epoch"] <= 3


def test_history_csv_has_one_row_per_epoch(g2net_run):
    history = read_history_csv(str(g2net_run / "history.csv"))
    for key in ("loss", "val_loss", "auc", "val_auc", "pr_auc", "val_pr_auc", "accuracy", "learning_rate"):
        assert len(history[key]) == 3, key
    # Cosine schedule: the learning rate decays epoch over epoch.
    assert history["learning_rate"][0] > history["learning_rate"][1] > history["learning_rate"][2]


def test_weights_npz_matches_the_saved_model(g2net_run):
    network = keras.saving.load_model(str(g2net_run / f"{g2net_run.name}.keras"), compile=False)
    arrays = load_weights_npz(str(g2net_run / f"{g2net_run.name}_weights.npz"))
    assert len(arrays) == len(network.weights)
    for array, variable in zip(arrays, network.weights, strict=True):
        np.testing.assert_array_equal(array, variable.numpy())


def test_evaluate_reproduces_the_saved_test_metrics(g2net_run, g2net_data):
    assert evaluate_module.main(["--data", str(g2net_data), "--run", str(g2net_run), "--split", "test"]) == 0
    out = g2net_run / "eval_test"
    payload = _json(out / f"{g2net_run.name}_eval_test_metrics.json")
    saved = _json(g2net_run / f"{g2net_run.name}_metrics.json")["splits"]["test"]
    assert payload["reproduces_saved"] is True and payload["manifest_matches_run"] is True
    new = payload["splits"]["test"]
    for key in ("roc_auc", "pr_auc", "accuracy", "precision", "recall", "f1", "log_loss", "threshold"):
        assert new[key] == pytest.approx(saved[key], abs=1e-6), key
    assert new["confusion_matrix"] == saved["confusion_matrix"]
    new_bins, saved_bins = new["efficiency_vs_snr"]["bins"], saved["efficiency_vs_snr"]["bins"]
    assert len(new_bins) == len(saved_bins) > 0
    for new_bin, saved_bin in zip(new_bins, saved_bins, strict=True):
        assert new_bin == pytest.approx(saved_bin)
    assert (out / "scores_test.csv").stat().st_size > 0
    for name in PLOTS:
        assert (out / "plots" / f"{g2net_run.name}_eval_test_{name}.png").stat().st_size > 0, name


def test_run_folder_name_gets_a_suffix_when_taken(tmp_path):
    now = dt.datetime(2024, 5, 6, 7, 8)
    first = make_run_dir(str(tmp_path), "demo", now)
    second = make_run_dir(str(tmp_path), "demo", now)
    assert (Path(first.run_dir).name, second.prefix) == ("demo_20240506_0708", "demo_20240506_0708_2")
    assert second.weights.endswith("demo_20240506_0708_2/demo_20240506_0708_2_weights.npz")


def test_class_weights():
    cfg = load_trainer_config(None, ["train.class_weight=balanced"]).train
    assert train_module.class_weights(cfg, 10, 2) == {0: 10 / 16, 1: 10 / 4}
    assert train_module.class_weights(load_trainer_config(None).train, 10, 2) is None
    explicit = load_trainer_config(None, ["train.class_weight={0: 1.0, 1: 3.0}"]).train
    assert train_module.class_weights(explicit, 10, 2) == {0: 1.0, 1: 3.0}
    with pytest.raises(ValueError, match="both labels"):
        train_module.class_weights(cfg, 10, 0)


def test_help_explains_every_flag():
    text = train_module.build_parser().format_help()
    for flag in ("--data", "--config", "--out", "--set", "--name", "--log-level"):
        assert flag in text
    text = evaluate_module.build_parser().format_help()
    for flag in ("--data", "--run", "--split", "--out"):
        assert flag in text


def test_multibranch_tce_training_end_to_end(tmp_path):
    spec = {"global_view": (301,), "local_view": (31,), "period": ()}
    data = write_fake_dataset(str(tmp_path / "tce"), spec, {"train": 32, "val": 16, "test": 16}, seed=2)
    overrides = [
        "model.views=[{feature: global_view, filters: [4], length: 301}, {feature: local_view, filters: [4]}]",
        "model.scalar_features=[period]",
        "model.head_units=[8]",
        "train.epochs=1",
        "train.verbose=0",
        "data.verify_shards=head",  # example counts for the cosine schedule then come from the data tables
    ]
    run_dir = Path(
        train_module.train(
            data, str(REPO / "run_configs" / "train_tce.yaml"), str(tmp_path / "runs"), overrides=overrides
        )
    )
    assert run_dir.name.startswith("tce_multibranch_")
    metrics = _json(run_dir / f"{run_dir.name}_metrics.json")
    assert metrics["splits"]["test"]["n_examples"] == 16
    network = keras.saving.load_model(str(run_dir / f"{run_dir.name}.keras"), compile=False)
    assert sorted(network.input) == ["global_view", "local_view", "period"]
    assert (run_dir / "plots" / f"{run_dir.name}_dashboard.png").stat().st_size > 0
