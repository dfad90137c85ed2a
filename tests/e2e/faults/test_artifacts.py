"""Readers respect the dataset lock, and a run's artifacts are verified before they run.

* ``train``, ``predict``, ``evaluate``, ``audit`` and ``report`` refuse (exit 2, code ``locked``) a dataset a live
  process holds, or warn and go on with ``--ignore-lock``; a stale lock (its holder gone) is read with a warning.
* Training records the sha256 of every dataset artifact it depends on (``manifest.json``, every file under
  ``stats/``: the transform graph's ``saved_model.pb`` and ``variables/``, metadata, statistics) and of its own
  model and weights in ``RUN/digests.json``; ``predict`` and ``evaluate`` refuse any change, addition or removal
  (code ``artifact_mismatch``, naming the file) unless ``--trust-artifacts`` (a warning).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from beam_pipelines.commands import cli
from beam_pipelines.dataset import lock
from beam_pipelines.stages.run_all import run_all
from model import evaluate as evaluate_module
from model import guards
from model import predict as predict_module
from model import train as train_module
from model.errors import DatasetError
from tests.support.run_artifacts import read_scores_csv
from transforms.config import DatasetConfig, load_config
from transforms.recipes.g2net import sample as gw_sample

REPO = Path(__file__).resolve().parents[3]
TINY = [
    "train.epochs=1",
    "model.filters=[8, 8, 8, 8]",
    "model.kernel_sizes=[16, 16, 8, 8]",
    "model.dense_units=[8]",
    "data.batch_size=16",
    "data.eval_batch_size=24",
    "train.verbose=0",
    "data.injection.bank_size=8",
]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """40 raw samples, their dataset (the real stages) and a tiny trained run."""
    root = tmp_path_factory.mktemp("faults_artifacts")
    raw, data, runs = root / "raw", root / "ds", root / "runs"
    gw_sample.write_g2net_sample(str(raw), n=40, seed=7, signals_per_source=2)
    overrides = ["build.examples_per_shard=20", "split.examples_per_shard=10"]
    run_all(load_config(DatasetConfig, "run_configs/demo.yaml", overrides), str(raw), str(data))
    run_dir = train_module.train(
        str(data), str(REPO / "run_configs" / "train_g2net.yaml"), str(runs), name="tiny", overrides=TINY
    )
    npy = gw_sample.sample_path(str(raw), read_scores_csv(str(Path(run_dir) / "scores_test.csv"))[0][0])
    return {"raw": raw, "data": data, "run": Path(run_dir), "npy": npy}


@pytest.fixture
def data_copy(chain, tmp_path):
    copy = tmp_path / "ds"
    shutil.copytree(chain["data"], copy)
    return copy


@pytest.fixture
def live_holder():
    """A lock record naming a live process on this host (a sleeping child), as another run's lock would."""
    child = subprocess.Popen(["sleep", "300"])
    try:
        yield {
            "host": socket.gethostname(),
            "pid": child.pid,
            "started": "2026-01-01T00:00:00+00:00",
            "command": "sigforge run (another run)",
            "token": "theirs",
        }
    finally:
        child.kill()
        child.wait()


def _lock(folder: Path, record: dict) -> None:
    (folder / lock.LOCK_FILE).write_text(json.dumps(record))


def _predict(chain, data: Path, *extra: str) -> int:
    return predict_module.main(["--run", str(chain["run"]), "--input", chain["npy"], "--data", str(data), *extra])


# ---- readers and the lock ---------------------------------------------------------------------------------------


def test_readers_refuse_a_dataset_a_live_run_holds(chain, data_copy, live_holder, caplog):
    _lock(data_copy, live_holder)
    with caplog.at_level(logging.ERROR):
        codes = {
            "audit": cli.main(["audit", str(data_copy)]),
            "report": cli.main(["report", str(data_copy)]),
            "predict": _predict(chain, data_copy),
            "evaluate": evaluate_module.main(["--data", str(data_copy), "--run", str(chain["run"])]),
            "train": train_module.main(
                ["--data", str(data_copy), "--config", "run_configs/train_g2net.yaml", "--out", str(data_copy / "r")]
            ),
        }
    assert codes == dict.fromkeys(codes, 2)
    refusals = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(refusals) == 5 and all(f"pid {live_holder['pid']}" in line for line in refusals), refusals
    assert not (data_copy / "report").exists() and not (data_copy / "r").exists()
    assert json.loads((data_copy / lock.LOCK_FILE).read_text())["token"] == "theirs"  # not taken over


def test_ignore_lock_warns_and_reads(chain, data_copy, live_holder, monkeypatch, caplog):
    _lock(data_copy, live_holder)

    def stop(*args, **kwargs):
        raise DatasetError("stopped after the lock check")

    monkeypatch.setattr(train_module, "check_dataset", stop)
    with caplog.at_level(logging.WARNING):
        assert cli.main(["audit", "--ignore-lock", str(data_copy)]) == 0
        assert cli.main(["report", "--ignore-lock", str(data_copy)]) == 0
        assert _predict(chain, data_copy, "--ignore-lock", "--out", str(data_copy.parent / "s.csv")) == 0
        config = ["--config", "run_configs/train_g2net.yaml", "--out", str(data_copy.parent / "r")]
        assert train_module.main(["--data", str(data_copy), *config, "--ignore-lock"]) == 2
    warnings = [
        r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "--ignore-lock" in r.getMessage()
    ]
    assert len(warnings) == 4, warnings
    assert "stopped after the lock check" in caplog.text
    assert json.loads((data_copy / lock.LOCK_FILE).read_text())["token"] == "theirs"


def test_a_stale_lock_does_not_stop_readers(chain, data_copy, caplog):
    child = subprocess.Popen(["true"])
    child.wait()  # a pid that no longer runs
    _lock(data_copy, {"host": socket.gethostname(), "pid": child.pid, "command": "sigforge run (killed)"})
    with caplog.at_level(logging.WARNING):
        assert cli.main(["audit", str(data_copy)]) == 0
        assert _predict(chain, data_copy, "--out", str(data_copy.parent / "s.csv")) == 0
    assert "stale lock" in caplog.text and f"pid {child.pid}" in caplog.text


# ---- artifact digests -------------------------------------------------------------------------------------------


def test_the_run_records_every_artifact_it_depends_on(chain):
    digests = json.loads((chain["run"] / guards.DIGESTS).read_text())
    stats = sorted(str(p.relative_to(chain["data"])) for p in (chain["data"] / "stats").rglob("*") if p.is_file())
    assert sorted(digests["dataset"]) == sorted(["manifest.json", *stats])
    assert any(name.endswith("transform_fn/saved_model.pb") for name in digests["dataset"])
    assert "stats/transformed_metadata/schema.pbtxt" in digests["dataset"]
    # This graph has no variables (variables/ is empty): a file added there is found as added (below).
    prefix = chain["run"].name
    assert sorted(digests["run"]) == [f"{prefix}.keras", f"{prefix}_weights.npz"]


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        ("flip_saved_model", "saved_model.pb changed"),
        ("add_asset", "transform_fn/assets/extra.txt was added"),
        ("add_variables", "transform_fn/variables/variables.index was added"),
        ("remove_schema", "transformed_metadata/schema.pbtxt is missing"),
        ("flip_stats", "changed"),
        ("edit_manifest", "manifest.json changed"),
    ],
)
def test_predict_refuses_a_changed_dataset_artifact(chain, data_copy, damage, named, caplog):
    transform_fn = data_copy / "stats" / "transform_fn"
    if damage == "flip_saved_model":
        _flip_a_byte(transform_fn / "saved_model.pb")
    elif damage == "add_asset":
        (transform_fn / "assets").mkdir(exist_ok=True)
        (transform_fn / "assets" / "extra.txt").write_text("not from analyze")
    elif damage == "add_variables":
        (transform_fn / "variables").mkdir(exist_ok=True)
        (transform_fn / "variables" / "variables.index").write_bytes(b"\x00planted")
    elif damage == "remove_schema":
        (data_copy / "stats" / "transformed_metadata" / "schema.pbtxt").unlink()
    elif damage == "flip_stats":
        _flip_a_byte(sorted(p for p in (data_copy / "stats").glob("*") if p.is_file())[0])
    else:
        data = json.loads((data_copy / "manifest.json").read_text())
        data["config"]["g2net"]["bandpass"]["low_hz"] = 100.0
        (data_copy / "manifest.json").write_text(json.dumps(data))
    with caplog.at_level(logging.ERROR):
        assert _predict(chain, data_copy) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and named in errors[0] and "--trust-artifacts" in errors[0], errors
    with pytest.raises(guards.ArtifactMismatch) as info:
        predict_module.Predictor(str(chain["run"]), str(data_copy))
    assert info.value.code == "artifact_mismatch"


def test_trust_artifacts_overrides_with_a_warning(chain, data_copy, caplog):
    (data_copy / "stats" / "transform_fn" / "assets").mkdir(exist_ok=True)
    (data_copy / "stats" / "transform_fn" / "assets" / "extra.txt").write_text("not from analyze")
    with caplog.at_level(logging.WARNING):
        assert _predict(chain, data_copy, "--trust-artifacts", "--out", str(data_copy.parent / "s.csv")) == 0
    assert "--trust-artifacts" in caplog.text and "extra.txt was added" in caplog.text


@pytest.mark.parametrize("suffix", [".keras", "_weights.npz"])
def test_predict_and_evaluate_refuse_a_changed_model(chain, tmp_path, suffix, caplog):
    run = tmp_path / chain["run"].name
    shutil.copytree(chain["run"], run)
    _flip_a_byte(run / f"{run.name}{suffix}")
    with caplog.at_level(logging.ERROR):
        assert predict_module.main(["--run", str(run), "--input", chain["npy"]]) == 2
        assert evaluate_module.main(["--data", str(chain["data"]), "--run", str(run)]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2 and all(f"{run.name}{suffix} changed" in line for line in errors), errors


def test_a_run_without_digests_is_not_trusted_blindly(chain, tmp_path, caplog):
    run = tmp_path / chain["run"].name
    shutil.copytree(chain["run"], run)
    (run / guards.DIGESTS).unlink()
    with caplog.at_level(logging.WARNING):
        assert predict_module.main(["--run", str(run), "--input", chain["npy"]]) == 2
        assert "records no digests" in caplog.text
        out = tmp_path / "s.csv"
        assert (
            predict_module.main(["--run", str(run), "--input", chain["npy"], "--trust-artifacts", "--out", str(out)])
            == 0
        )


def test_evaluate_verifies_the_dataset_too(chain, data_copy, caplog):
    _flip_a_byte(sorted(p for p in (data_copy / "stats").glob("*") if p.is_file())[0])
    with caplog.at_level(logging.ERROR):
        assert (
            evaluate_module.main(
                ["--data", str(data_copy), "--run", str(chain["run"]), "--out", str(data_copy.parent / "e")]
            )
            == 2
        )
    assert "changed" in caplog.text and "--trust-artifacts" in caplog.text
    assert os.path.exists(chain["run"])
