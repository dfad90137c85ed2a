"""Dataset paths on a non-local Beam filesystem: ``memfs://`` (tests/support/memfs.py), an in-memory object store with
the semantics of ``gs://`` (no folders; a "folder" exists when an object lies below it).

Any step that only works on local disk (``os`` calls, a folder checked with ``FileSystems.exists``) fails here.
The analyze and normalize stages are not run: tf.Transform writes through ``tf.io.gfile``, which knows ``gs://``
but not a test scheme registered with Beam only.
"""

from __future__ import annotations

import csv
import re
import threading
from pathlib import Path

import pytest
import tensorflow as tf

from beam_pipelines.dataset import fs, lock, manifest
from beam_pipelines.dataset.errors import DatasetLocked, StageError
from beam_pipelines.stages import split
from beam_pipelines.stages.build import run_build
from tests.support import memfs
from transforms.audit import audit_dataset
from transforms.config import DatasetConfig, load_config
from transforms.contract import example_keys
from transforms.splitting import SPLITS

OVERRIDES = [
    "build.examples_per_shard=16",
    "split.examples_per_shard=12",
    "split.fractions={train: 0.6, val: 0.2, test: 0.2}",
]


@pytest.fixture
def bucket():
    memfs.clear()
    yield "memfs://bucket"
    memfs.clear()


def _upload(local: Path, url: str) -> None:
    for path in sorted(local.rglob("*")):
        if path.is_file():
            memfs.write(f"{url}/{path.relative_to(local).as_posix()}", path.read_bytes())


def _relative(url: str) -> dict[str, bytes]:
    return {path[len(url) + 1 :]: memfs.read(path) for path in memfs.paths(url + "/")}


def _local_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_fs_helpers_treat_prefixes_as_folders(bucket):
    memfs.write(f"{bucket}/a/b/one.txt", b"1")
    memfs.write(f"{bucket}/a/b/c/two.txt", b"2")
    memfs.write(f"{bucket}/a/bc.txt", b"3")
    assert fs.exists(f"{bucket}/a/b") and fs.exists(f"{bucket}/a/b/") and fs.exists(f"{bucket}/a/b/one.txt")
    assert not fs.exists(f"{bucket}/a/x") and not fs.exists(f"{bucket}/a/b/one")
    assert fs.list_tree(f"{bucket}/a/b") == [f"{bucket}/a/b/c/two.txt", f"{bucket}/a/b/one.txt"]
    fs.makedirs(f"{bucket}/new/folder")  # nothing to create on an object store
    assert memfs.paths() == [f"{bucket}/a/b/c/two.txt", f"{bucket}/a/b/one.txt", f"{bucket}/a/bc.txt"]
    fs.publish(f"{bucket}/a/b", f"{bucket}/published")
    assert memfs.paths() == [f"{bucket}/a/bc.txt", f"{bucket}/published/c/two.txt", f"{bucket}/published/one.txt"]
    fs.delete_tree(f"{bucket}/a/bc.txt")  # a single object
    fs.delete_tree(f"{bucket}/published")
    fs.delete_tree(f"{bucket}/missing")
    assert memfs.paths() == []


def test_concurrent_lock_takers_on_an_object_store_leave_one_holder(bucket, monkeypatch):
    """Two runs reach the create at the same moment on memfs://; its registered create-if-absent lets one in."""
    both_ready = threading.Barrier(2)

    def create_when_both_ready(path, data):
        both_ready.wait(timeout=10)
        return memfs.create_if_absent(path, data)

    monkeypatch.setitem(lock._STORES, memfs.SCHEME, lock._STORES[memfs.SCHEME])  # restored after the test
    lock.register_create_if_absent(memfs.SCHEME, create_when_both_ready)
    out = f"{bucket}/race/ds"
    outcome: dict[str, str] = {}

    def take(name):
        try:
            lock.acquire(out, name)
            outcome[name] = "held"
        except DatasetLocked:
            outcome[name] = "refused"

    threads = [threading.Thread(target=take, args=(name,), name=name) for name in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcome.values()) == ["held", "refused"]
    winner = next(name for name, result in outcome.items() if result == "held")
    assert lock.read_holder(out)["command"] == winner
    assert memfs.paths() == [f"{out}/{lock.LOCK_FILE}"]


def _by_uid(folder: Path) -> tuple[dict[str, dict], dict[str, bytes]]:
    """uid -> data-table row (without the shard column) and uid -> serialized example, over a shard folder."""
    rows = {}
    for path in sorted(folder.glob("data_tbl_*.csv")):
        rows.update({r.pop("uid"): {k: v for k, v in r.items() if k != "shard"} for r in csv.DictReader(path.open())})
    files = sorted(str(p) for p in folder.glob("*.tfrecord"))
    records = {example_keys(r)[0]: r for r in tf.data.TFRecordDataset(files).as_numpy_iterator()}
    return rows, records


@pytest.mark.slow
def test_build_and_split_on_an_object_store(bucket, g2net_raw, tmp_path, monkeypatch):
    config = load_config(DatasetConfig, "run_configs/demo.yaml", OVERRIDES)
    # The same stages on local disk, for the expected content.
    local = tmp_path / "local_ds"
    run_build(config, str(g2net_raw), str(local))
    split.run_split(config, str(local))
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)  # a stray local write of a memfs path (e.g. "memfs:/bucket/...") lands here
    raw, out = f"{bucket}/raw", f"{bucket}/datasets/ds"
    _upload(Path(g2net_raw), raw)

    run_build(config, raw, out)
    split.run_split(config, out)

    assert list(workdir.iterdir()) == [] and not Path("/bucket").exists()  # nothing went to local disk
    remote = _relative(out)
    folders = sorted({name.rsplit("/", 1)[0] for name in remote if "/" in name})
    assert folders == ["provenance", "rejected", "split/test", "split/train", "split/val", "tfrecords"]
    assert "manifest.json" in remote and "rejected/build.csv" in remote
    leftovers = [
        n for n in remote if not re.fullmatch(r"(.+_shard|data_tbl)_\d{4}-\d{4}\.(tfrecord|csv)", n.split("/")[-1])
    ]
    assert sorted(leftovers) == [
        ".sigforge",
        "manifest.json",
        "provenance/inputs.csv",
        "rejected/build.csv",
    ]  # no .tmp_ or Beam temp file
    assert audit_dataset(out, group_column="source_id", fs=fs) == []
    # The same examples and data-table rows as on local disk.
    downloaded = tmp_path / "downloaded"
    for name, data in remote.items():
        (downloaded / name).parent.mkdir(parents=True, exist_ok=True)
        (downloaded / name).write_bytes(data)
    for folder in ["tfrecords", *(f"split/{s}" for s in SPLITS)]:
        rows, records = _by_uid(downloaded / folder)
        assert rows and (rows, records) == _by_uid(local / folder), folder
    assert remote["rejected/build.csv"] == (local / "rejected" / "build.csv").read_bytes()

    # Existing outputs are found (they are prefixes, not objects): refused without --overwrite ...
    with pytest.raises(StageError) as info:
        run_build(config, raw, out)
    assert info.value.code == "output_exists" and "tfrecords/" in str(info.value)
    # ... and replaced with it, dropping the now stale split.
    run_build(config, raw, out, overwrite=True)
    assert not [name for name in _relative(out) if name.startswith("split/")]
    assert set(manifest.read_manifest(out)["stages"]) == {"build"}
    assert [name for name in _relative(out) if name.startswith("tfrecords/")]
