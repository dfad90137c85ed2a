"""`python -m model.evaluate --background/--glitch-background` with a baseline: efficiencies at the background's
thresholds with intervals, unresolvable FAPs refused, the sensitive-distance ratio from the data tables' distances,
glitch false-alarm rates, the search plot. Backgrounds are scores CSVs here (the raw-folder path goes through
``model.predict``, run end to end by benchmarks/bench_science.py)."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import csv  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from model import evaluate as evaluate_module  # noqa: E402
from model import train as train_module  # noqa: E402
from model.search_eval import read_background_csv  # noqa: E402
from model.synthetic import write_fake_dataset  # noqa: E402
from tests.support.paths import REPO  # noqa: E402
from tests.support.run_artifacts import read_scores_csv  # noqa: E402
from transforms.evaluation import fap  # noqa: E402

TINY = [
    "train.epochs=1",
    "model.filters=[4, 4, 8, 8]",
    "model.kernel_sizes=[16, 16, 8, 8]",
    "model.dense_units=[8, 4]",
    "data.batch_size=32",
    "data.eval_batch_size=32",
    "train.verbose=0",
    "evaluation.snr_bins=3",
    "data.injection.enabled=false",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A fake dataset whose test tables also carry distance_mpc (= 1000 / snr), and a one-epoch run on it."""
    data = Path(write_fake_dataset(str(tmp_path_factory.mktemp("search_data")), seed=4))
    for path in (data / "norm" / "test").glob("data_tbl_*.csv"):
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            columns, rows = list(reader.fieldnames or []), list(reader)
        for row in rows:
            row["distance_mpc"] = f"{1000.0 / float(row['snr'])!r}" if float(row["snr"] or 0) > 0 else ""
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=[*columns, "distance_mpc"], lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
    overrides = [*TINY, "evaluation.injection_snr_range=null"]
    run = train_module.train(
        str(data),
        str(REPO / "run_configs" / "train_g2net.yaml"),
        str(tmp_path_factory.mktemp("r")),
        overrides=overrides,
    )
    return data, Path(run)


def _write(path: Path, rows) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "label", "score"])
        writer.writerows(rows)


def test_evaluate_reports_search_metrics_against_the_backgrounds(tiny_run, tmp_path):
    data, run = tiny_run
    rng = np.random.default_rng(0)
    # CNN background: 3000 noise scores; 1e-2 resolvable (30 above), 1e-3 (3) and 1e-4 not: floor 10/3000.
    cnn_noise = rng.uniform(0.0, 1.0, size=3000)
    _write(tmp_path / "cnn_bg.csv", [(f"bg{i}", 0, repr(float(s))) for i, s in enumerate(cnn_noise)])
    _write(
        tmp_path / "cnn_glitch.csv", [(f"gl{i}", 0, repr(float(s))) for i, s in enumerate(rng.uniform(0.5, 1.0, 500))]
    )
    # Baseline folder: scores.csv of the test split (positives loud) plus its own backgrounds.
    base_dir = tmp_path / "mf"
    base_dir.mkdir()
    table = {}
    for path in (data / "norm" / "test").glob("data_tbl_*.csv"):
        with open(path, newline="") as handle:
            table.update({row["uid"]: row for row in csv.DictReader(handle)})
    _write(base_dir / "scores.csv", [(u, r["label"], 100.0 if r["label"] == "1" else 1.0) for u, r in table.items()])
    base_noise = rng.normal(5.0, 1.0, size=2000)
    _write(base_dir / "background_scores.csv", [(f"bg{i}", 0, repr(float(s))) for i, s in enumerate(base_noise)])
    _write(
        base_dir / "glitch_background_scores.csv", [(f"gl{i}", 0, repr(float(s))) for i in range(500) for s in [5.0]]
    )

    out = tmp_path / "eval"
    argv = ["--data", str(data), "--run", str(run), "--out", str(out), "--baseline", str(base_dir / "scores.csv")]
    argv += ["--background", str(tmp_path / "cnn_bg.csv"), "--glitch-background", str(tmp_path / "cnn_glitch.csv")]
    assert evaluate_module.main(argv) == 0
    search = json.loads((out / f"{run.name}_eval_test_metrics.json").read_text())["search"]

    assert search["background"] == {
        "source": str(tmp_path / "cnn_bg.csv"),
        "n_noise": 3000,
        "min_resolvable_fap": pytest.approx(10 / 3000),
    }
    uids, labels, scores = read_scores_csv(str(out / "scores_test.csv"))
    cnn = search["cnn"]["faps"]
    assert cnn["0.01"]["resolvable"] and cnn["0.01"]["false_alarms"] == 30
    threshold = cnn["0.01"]["threshold"]
    assert np.sum(cnn_noise >= threshold) == 30
    assert cnn["0.01"]["n_detected"] == int(np.sum(scores[labels == 1] >= threshold))
    low, high = cnn["0.01"]["efficiency_interval"]
    assert (low, high) == pytest.approx(fap.binomial_interval(cnn["0.01"]["n_detected"], int(labels.sum())))
    for key in ("0.001", "0.0001"):
        assert cnn[key]["resolvable"] is False and "efficiency" not in cnn[key]
    # Baseline on the same positives, thresholds from its own background (2000 noise: floor 0.005).
    base = search["baseline"]
    assert base["n_noise"] == 2000 and base["background_source"].endswith("background_scores.csv")
    assert base["faps"]["0.01"]["efficiency"] == 1.0
    ratio = search["cnn_vs_baseline"]["0.01"]
    assert ratio["efficiency_ratio"] == pytest.approx(cnn["0.01"]["efficiency"])
    # Distances from the tables, drawn "uniform in volume" here (injection_snr_range null): V ~ fraction detected.
    assert ratio["distance_ratio"] == pytest.approx(cnn["0.01"]["efficiency"] ** (1 / 3))
    assert search["cnn_vs_baseline"]["0.001"] == {"resolvable": False}
    # Glitches at the clean thresholds: the CNN's glitchy scores sit in the top half; the baseline's at the median.
    glitches = search["glitches"]
    assert glitches["cnn"]["0.01"]["other"] > 0.0
    assert glitches["baseline"]["0.01"]["other"] == 0.0
    assert (out / "plots" / f"{run.name}_eval_test_search_efficiency.png").read_bytes()[:4] == b"\x89PNG"


def test_split_noise_is_the_default_background(tiny_run, tmp_path):
    data, run = tiny_run
    out = tmp_path / "eval"
    assert evaluate_module.main(["--data", str(data), "--run", str(run), "--out", str(out)]) == 0
    search = json.loads((out / f"{run.name}_eval_test_metrics.json").read_text())["search"]
    assert search["background"]["source"] == "the test split's noise examples"
    assert search["background"]["n_noise"] == 16
    assert all(entry["resolvable"] is False for entry in search["cnn"]["faps"].values())


def test_background_csv_keeps_noise_rows_with_scores(tmp_path):
    path = tmp_path / "bg.csv"
    path.write_text("id,path,score,error\na,x,0.5,\nb,y,,unreadable_npy: bad\n")
    assert read_background_csv(str(path)).scores.tolist() == [0.5]
    labelled = tmp_path / "labelled.csv"
    labelled.write_text("id,label,score\na,0,0.1\nb,1,0.9\n")
    assert read_background_csv(str(labelled)).uids == ["a"]
