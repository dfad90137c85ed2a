"""model.data: dataset checks (every bad input is a clear DatasetError before training) and the tf.data pipeline."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from model import train as train_module  # noqa: E402
from model.augment import augment_strain  # noqa: E402
from model.config import AugmentConfig, load_trainer_config  # noqa: E402
from model.data import check_dataset, make_dataset  # noqa: E402
from model.errors import CorruptShardError, DatasetError, FeatureSpecError  # noqa: E402
from model.synthetic import write_fake_dataset  # noqa: E402
from tests.support.paths import REPO  # noqa: E402

G2NET_YAML = str(REPO / "run_configs" / "train_g2net.yaml")
SMALL = ["model.input_shape=[3, 256]", "data.batch_size=8", "data.eval_batch_size=5"]


def config(*overrides):
    return load_trainer_config(G2NET_YAML, [*SMALL, *overrides])


@pytest.fixture(scope="module")
def base_dataset(tmp_path_factory):
    """16 train / 8 val / 8 test examples, strain (3, 256), 2 shards per split, data tables with snr."""
    out = tmp_path_factory.mktemp("data_small")
    return Path(write_fake_dataset(str(out), {"strain": (3, 256)}, {"train": 16, "val": 8, "test": 8}, seed=1))


@pytest.fixture
def dataset(base_dataset, tmp_path):
    """A private copy to break."""
    return Path(shutil.copytree(base_dataset, tmp_path / "data"))


def test_check_dataset_accepts_the_contract_layout(base_dataset):
    info = check_dataset(str(base_dataset), config())
    assert dict(info.input_spec) == {"strain": (3, 256)}
    assert {s: (i.n_examples, i.n_positive, len(i.shards), len(i.tables)) for s, i in info.splits.items()} == {
        "train": (16, 8, 2, 2),
        "val": (8, 4, 2, 2),
        "test": (8, 4, 2, 2),
    }
    assert len(info.manifest_sha256) == 64
    assert [Path(p).name for p in info.splits["train"].shards] == [
        "norm_train_shard_0001-0002.tfrecord",
        "norm_train_shard_0002-0002.tfrecord",
    ]


def test_check_dataset_without_a_config_checks_only_the_data(base_dataset, dataset):
    info = check_dataset(str(base_dataset))
    assert dict(info.input_spec) == {} and info.splits["test"].n_examples == 8
    shard = dataset / "norm" / "val" / "norm_val_shard_0001-0002.tfrecord"
    shard.write_bytes(shard.read_bytes()[:-10])
    _refused(check_dataset, str(dataset), code="corrupt_shard", named="norm_val_shard_0001-0002")


def test_head_verification_takes_counts_from_the_data_tables(base_dataset):
    info = check_dataset(str(base_dataset), config("data.verify_shards=head"))
    assert (info.splits["val"].n_examples, info.splits["val"].n_positive, info.splits["val"].counted) == (8, 4, False)


def test_eval_dataset_yields_every_example_once_with_shapes(base_dataset):
    cfg = config()
    info = check_dataset(str(base_dataset), cfg)
    batches = list(make_dataset(info, "test", cfg, with_uid=True))
    assert [int(b[1].shape[0]) for b in batches] == [5, 3]
    features, label, uid = batches[0]
    assert list(features) == ["strain"] and features["strain"].dtype == tf.float32
    assert tuple(features["strain"].shape) == (5, 3, 256) and tuple(label.shape) == (5, 1)
    uids = sorted(u.decode() for b in batches for u in b[2].numpy())
    assert uids == [f"test-{i:05d}" for i in range(8)]


def test_train_dataset_is_shuffled_reproducibly(base_dataset):
    cfg = config()
    info = check_dataset(str(base_dataset), cfg)

    def order(seed):
        ds = make_dataset(info, "train", cfg, training=True, with_uid=True, seed=seed)
        return [u.decode() for b in ds for u in b[2].numpy()]

    first = order(7)
    assert sorted(first) == [f"train-{i:05d}" for i in range(16)]
    assert order(7) == first
    assert order(8) != first
    assert first != sorted(first)


def test_augment_strain_roll_flip_swap():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 3, 32)).astype(np.float32)
    seed = tf.constant([3, 4], tf.int64)
    rolled = augment_strain(tf.constant(x), seed, AugmentConfig(time_shift_max=5)).numpy()
    shifts = []
    for original, out in zip(x, rolled, strict=True):
        matches = [s for s in range(-5, 6) if np.array_equal(np.roll(original, s, axis=-1), out)]
        assert len(matches) == 1
        shifts.extend(matches)
    assert len(set(shifts)) > 1  # shifts differ per example
    np.testing.assert_array_equal(augment_strain(tf.constant(x), seed, AugmentConfig(sign_flip_prob=1.0)), -x)
    swapped = augment_strain(tf.constant(x), seed, AugmentConfig(detector_swap_prob=1.0)).numpy()
    np.testing.assert_array_equal(swapped, x[:, [1, 0, 2]])
    np.testing.assert_array_equal(augment_strain(tf.constant(x), seed, AugmentConfig()), x)
    mixed = augment_strain(tf.constant(x), seed, AugmentConfig(sign_flip_prob=0.5)).numpy()
    assert all(np.array_equal(m, o) or np.array_equal(m, -o) for m, o in zip(mixed, x, strict=True))


def test_default_g2net_config_augments_the_train_split():
    augment = load_trainer_config(G2NET_YAML).data.augment
    assert augment.enabled and augment.time_shift_max == 256
    assert augment.sign_flip_prob == 0.5 and augment.detector_swap_prob == 0.5


def test_augmented_train_pipeline_changes_only_train(base_dataset):
    cfg = config("data.augment.time_shift_max=20", "data.augment.sign_flip_prob=0.5")
    info = check_dataset(str(base_dataset), cfg)
    plain = {
        u.decode(): f["strain"][i].numpy()
        for f, _, uids in make_dataset(info, "train", config(), with_uid=True)
        for i, u in enumerate(uids.numpy())
    }
    augmented = {
        u.decode(): f["strain"][i].numpy()
        for f, _, uids in make_dataset(info, "train", cfg, training=True, with_uid=True)
        for i, u in enumerate(uids.numpy())
    }
    assert augmented.keys() == plain.keys()
    assert sum(not np.array_equal(augmented[k], plain[k]) for k in plain) > 0
    # Eval splits are never augmented, even with augmentations configured.
    for (a, _, _), (b, _, _) in zip(
        make_dataset(info, "val", cfg, with_uid=True), make_dataset(info, "val", config(), with_uid=True), strict=True
    ):
        np.testing.assert_array_equal(a["strain"], b["strain"])


# ---- bad inputs: each a DatasetError naming what is wrong, raised by check_dataset -----------------------


_CLASS_OF_CODE = {"feature_spec": FeatureSpecError, "corrupt_shard": CorruptShardError}  # else DatasetError


def _refused(call, *args, code: str, named: str) -> None:
    """``call(*args)`` raises the DatasetError of ``code`` with that code, and its message names ``named``."""
    with pytest.raises(_CLASS_OF_CODE.get(code, DatasetError)) as info:
        call(*args)
    assert info.value.code == code and named in str(info.value)


def test_missing_split_folder(dataset):
    shutil.rmtree(dataset / "norm" / "val")
    _refused(check_dataset, str(dataset), config(), code="dataset", named="norm/val")


def test_empty_split_folder(dataset):
    for shard in (dataset / "norm" / "test").glob("*.tfrecord"):
        shard.unlink()
    _refused(check_dataset, str(dataset), config(), code="dataset", named="norm/test")


def test_missing_shard_of_a_numbered_set(dataset):
    (dataset / "norm" / "train" / "norm_train_shard_0002-0002.tfrecord").unlink()
    _refused(check_dataset, str(dataset), config(), code="missing_shard", named="norm/train")


def test_missing_transformed_metadata(dataset):
    shutil.rmtree(dataset / "stats" / "transformed_metadata")
    _refused(check_dataset, str(dataset), config(), code="dataset", named="stats/transformed_metadata")


def test_missing_manifest(dataset):
    (dataset / "manifest.json").unlink()
    _refused(check_dataset, str(dataset), config(), code="dataset", named="manifest.json")


def test_feature_missing_from_spec(base_dataset):
    whitened = config(
        "model.input_feature=whitened", "data.augment.feature=whitened", "data.injection.feature=whitened"
    )
    _refused(check_dataset, str(base_dataset), whitened, code="feature_spec", named="'whitened'")
    tce = load_trainer_config(str(REPO / "run_configs" / "train_tce.yaml"))
    _refused(check_dataset, str(base_dataset), tce, code="feature_spec", named="'global_view'")


def test_feature_shape_mismatch(base_dataset):
    wider = config("model.input_shape=[3, 4096]")
    _refused(check_dataset, str(base_dataset), wider, code="feature_spec", named="model.input_shape")


def test_label_feature_missing(base_dataset):
    _refused(
        check_dataset, str(base_dataset), config("data.label_feature=target"), code="feature_spec", named="'target'"
    )


def test_truncated_shard(dataset):
    shard = dataset / "norm" / "val" / "norm_val_shard_0002-0002.tfrecord"
    shard.write_bytes(shard.read_bytes()[:-100])
    _refused(check_dataset, str(dataset), config(), code="corrupt_shard", named="norm_val_shard_0002-0002.tfrecord")


def test_flipped_byte_fails_the_checksum(dataset):
    shard = dataset / "norm" / "train" / "norm_train_shard_0001-0002.tfrecord"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    _refused(check_dataset, str(dataset), config(), code="corrupt_shard", named="norm_train_shard_0001-0002.tfrecord")


def test_not_a_tfrecord_file(dataset):
    (dataset / "norm" / "test" / "norm_test_shard_0001-0002.tfrecord").write_text("uid,label\nx,1\n")
    config_head = config("data.verify_shards=head")
    _refused(check_dataset, str(dataset), config_head, code="corrupt_shard", named="norm_test_shard_0001-0002.tfrecord")


def test_data_table_disagrees_with_shards(dataset):
    table = dataset / "norm" / "train" / "data_tbl_0001-0002.csv"
    table.write_text("\n".join(table.read_text().splitlines()[:-1]) + "\n")
    _refused(check_dataset, str(dataset), config(), code="count_mismatch", named="norm/train")


def test_train_refuses_bad_data_before_creating_a_run(dataset, tmp_path):
    shutil.rmtree(dataset / "stats" / "transformed_metadata")
    out = tmp_path / "runs"
    _refused(train_module.train, str(dataset), config(), str(out), code="dataset", named="transformed_metadata")
    assert not out.exists()
    code = train_module.main(["--data", str(dataset), "--config", G2NET_YAML, "--out", str(out), "--set", SMALL[0]])
    assert code == 2 and not out.exists()


def test_dataset_failing_audit_is_refused_before_training(dataset):
    import json

    manifest = json.loads((dataset / "manifest.json").read_text())
    manifest["stages"]["normalize"]["seen"] += 3  # three inputs unaccounted for
    (dataset / "manifest.json").write_text(json.dumps(manifest))
    _refused(check_dataset, str(dataset), config(), code="audit_failed", named="normalize")
