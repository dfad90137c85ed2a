"""The exclusive dataset lock and --overwrite that never deletes before it can write."""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import subprocess
import sys
import time

import pytest

from beam_pipelines.commands import cli
from beam_pipelines.dataset import fs, lock, manifest
from beam_pipelines.dataset.errors import DatasetLocked, StageError
from tests.support.dataset_fixture import clean_dataset
from tests.support.paths import REPO


@pytest.fixture(scope="module")
def clean(tmp_path_factory, g2net_raw):
    return clean_dataset(tmp_path_factory, g2net_raw)


def test_lock_names_its_holder_and_is_reentrant(tmp_path):
    out = str(tmp_path / "ds")
    with lock.dataset_lock(out, "sigforge run"):
        holder = lock.read_holder(out)
        assert holder["pid"] > 0 and holder["host"] and holder["started"] and holder["command"] == "sigforge run"
        with lock.dataset_lock(out):  # a stage inside the run re-takes it
            assert lock.read_holder(out)["token"] == holder["token"]
        assert lock.read_holder(out) is not None  # still held by the outer run
    assert lock.read_holder(out) is None


def test_a_lock_held_by_another_process_refuses_with_the_holder(tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    (out / lock.LOCK_FILE).write_text(
        json.dumps({"host": "worker-7", "pid": 4242, "started": "2026-01-01T00:00:00+00:00", "command": "sigforge run"})
    )
    with pytest.raises(DatasetLocked) as info:
        lock.acquire(str(out))
    message = str(info.value)
    assert info.value.code == "locked" and "worker-7" in message and "4242" in message and "2026-01-01" in message


def test_second_run_into_a_locked_folder_is_refused_and_touches_nothing(clean, tmp_path, g2net_raw, caplog):
    """A first run (another process, holding the lock) is in progress; a second `sigforge run --overwrite` and a
    single stage are refused naming it, and not one file changes."""
    out = tmp_path / "ds"
    shutil.copytree(clean, out)
    before = {p.relative_to(out): p.stat().st_mtime_ns for p in out.rglob("*")}
    ready = tmp_path / "ready"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(out), str(ready)], cwd=str(REPO))
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ready.exists(), "the first run never took the lock"
        args = ["run", "--config", "run_configs/demo.yaml", "--input", str(g2net_raw), "--output", str(out)]
        with caplog.at_level(logging.ERROR):
            assert cli.main([*args, "--overwrite"]) == 2
            assert cli.main(["split", "--config", "run_configs/demo.yaml", "--output", str(out), "--overwrite"]) == 2
        refusals = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert [r.code for r in refusals] == ["locked", "locked"]
        assert all(f"pid {holder.pid}" in r.getMessage() for r in refusals)
    finally:
        holder.kill()
        holder.wait()
    after = {p.relative_to(out): p.stat().st_mtime_ns for p in out.rglob("*") if p.name != lock.LOCK_FILE}
    assert after == {k: v for k, v in before.items() if k.name != lock.LOCK_FILE}


_HOLD_LOCK = """
import pathlib, sys, time
from beam_pipelines.dataset import lock
lock.acquire(sys.argv[1], "sigforge run (the first run)")
pathlib.Path(sys.argv[2]).write_text("held")
time.sleep(120)
"""


def test_a_stale_lock_is_cleared_by_deleting_it(tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    (out / lock.LOCK_FILE).write_text("{}")
    with pytest.raises(DatasetLocked) as info:
        lock.acquire(str(out))
    assert info.value.code == "locked"
    (out / lock.LOCK_FILE).unlink()  # what the message tells the user to do
    with lock.dataset_lock(str(out)):
        assert lock.read_holder(str(out))["pid"] == os.getpid()


def test_overwrite_into_an_unwritable_norm_deletes_nothing(clean, tmp_path, monkeypatch):
    """A read-only norm/ (simulated: root ignores chmod) refuses --overwrite of normalize before any delete."""
    out = tmp_path / "ds"
    shutil.copytree(clean, out)
    files_before = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    manifest_before = (out / "manifest.json").read_text()
    real_write = fs.write_bytes

    def write_bytes(path, data):
        if "/norm/" in path:
            raise PermissionError(13, "Permission denied", path)
        real_write(path, data)

    monkeypatch.setattr(fs, "write_bytes", write_bytes)
    with pytest.raises(StageError) as info:
        manifest.begin_stage(str(out), "normalize", overwrite=True, requires="analyze")
    assert info.value.code == "not_writable"
    assert sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file()) == files_before
    assert (out / "manifest.json").read_text() == manifest_before  # still true: normalize's files are all there


def test_overwrite_drops_manifest_entries_before_deleting(clean, tmp_path, monkeypatch):
    """If deleting fails half-way, the manifest no longer claims the stages whose files may be gone."""
    out = tmp_path / "ds"
    shutil.copytree(clean, out)

    def failing_delete(folder):
        raise OSError("disk went away")

    monkeypatch.setattr(fs, "delete_tree", failing_delete)
    with pytest.raises(OSError):
        manifest.begin_stage(str(out), "analyze", overwrite=True, requires="split")
    stages = json.loads((out / "manifest.json").read_text())["stages"]
    assert "analyze" not in stages and "normalize" not in stages and "split" in stages


@pytest.mark.parametrize("stage", ["split", "analyze", "normalize", "filter"])
def test_a_refused_stage_leaves_no_new_folder(stage, tmp_path, caplog):
    """The lock creates OUT to hold its file; a stage refused under it (no prerequisite) removes what it made."""
    out = tmp_path / "new" / "ds"
    with caplog.at_level(logging.ERROR):
        code = cli.main([stage, "--config", "run_configs/demo.yaml", "--output", str(out)])
    refusal = caplog.records[-1]  # filter: the demo config has no filter section, checked first
    assert code == 2 and refusal.code == ("config" if stage == "filter" else "missing_stage")
    assert not (tmp_path / "new").exists()


def test_a_refused_build_leaves_no_new_folder(tmp_path, g2net_raw, caplog):
    """A build refused under the lock (its output exists, no --overwrite) keeps the folder but adds nothing;
    a build refused before it (missing input) creates nothing."""
    out = tmp_path / "ds"
    args = ["build", "--config", "run_configs/demo.yaml", "--output", str(out), "--input"]
    assert cli.main([*args, str(tmp_path / "nope")]) == 2
    assert not out.exists()
    (out / "tfrecords").mkdir(parents=True)
    assert cli.main([*args, str(g2net_raw)]) == 2
    assert sorted(p.name for p in out.rglob("*")) == ["tfrecords"]


def test_a_lock_refused_by_its_holder_keeps_the_holders_folder(tmp_path):
    out = tmp_path / "ds"
    with lock.dataset_lock(str(out)):
        assert out.is_dir()
        with pytest.raises(DatasetLocked) as info:
            threading_acquire(str(out))
        assert info.value.code == "locked"
        assert out.is_dir() and (out / lock.LOCK_FILE).exists()
    assert not out.exists()  # the lock created it and nothing was written: gone with the lock


def threading_acquire(out: str) -> None:
    """``lock.acquire`` from another thread (the lock is re-entrant within one), re-raising its error."""
    import threading

    errors: list[BaseException] = []

    def take():
        try:
            lock.acquire(out)
        except BaseException as error:  # noqa: BLE001  (handed back to the test thread)
            errors.append(error)

    thread = threading.Thread(target=take)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


class _FakeGcs:
    """A google-cloud-storage client with the generation preconditions of GCS: ``client.bucket(b).blob(n)``."""

    def __init__(self):
        self.objects: dict[tuple[str, str], tuple[bytes, int]] = {}  # (bucket, name) -> (data, generation)
        self.calls: list[tuple[str, str, dict]] = []  # (operation, name, keyword arguments)
        self.generations = iter(range(1000, 2000))

    def bucket(self, bucket):
        return _FakeBlobFactory(self, bucket)


class _FakeBlobFactory:
    def __init__(self, client, bucket):
        self.client, self.bucket = client, bucket

    def blob(self, name):
        return _FakeBlob(self.client, self.bucket, name)


class _FakeBlob:
    def __init__(self, client, bucket, name):
        self.client, self.key, self.name, self.generation = client, (bucket, name), name, None

    def _check(self, if_generation_match):
        from google.api_core.exceptions import PreconditionFailed

        current = self.client.objects.get(self.key, (b"", 0))[1]
        if if_generation_match is not None and if_generation_match != current:
            raise PreconditionFailed(f"{self.name}: generation {current}, not {if_generation_match}")

    def upload_from_string(self, data, content_type=None, if_generation_match=None):
        self.client.calls.append(("upload", self.name, {"if_generation_match": if_generation_match}))
        self._check(if_generation_match)
        self.generation = next(self.client.generations)
        self.client.objects[self.key] = (bytes(data), self.generation)

    def download_as_bytes(self):
        from google.api_core.exceptions import NotFound

        if self.key not in self.client.objects:
            raise NotFound(self.name)
        return self.client.objects[self.key][0]

    def delete(self, if_generation_match=None):
        from google.api_core.exceptions import NotFound

        self.client.calls.append(("delete", self.name, {"if_generation_match": if_generation_match}))
        if self.key not in self.client.objects:
            raise NotFound(self.name)
        self._check(if_generation_match)
        del self.client.objects[self.key]


@pytest.fixture
def fake_gcs(monkeypatch):
    client = _FakeGcs()
    monkeypatch.setattr(lock, "_gcs_client", lambda: client)
    return client


def test_a_gs_lock_is_created_and_released_under_generation_preconditions(fake_gcs):
    """GCS refuses a second creator (``if_generation_match=0``); release deletes only the generation it made."""
    out = "gs://bucket/datasets/ds"
    name = f"datasets/ds/{lock.LOCK_FILE}"
    with lock.dataset_lock(out, "sigforge run"):
        assert fake_gcs.calls == [("upload", name, {"if_generation_match": 0})]
        generation = fake_gcs.objects[("bucket", name)][1]
        assert lock.read_holder(out)["command"] == "sigforge run"
        lock.verify(out)  # still ours
        with pytest.raises(DatasetLocked, match=f"pid {os.getpid()}"):
            threading_acquire(out)  # a second acquirer
        assert fake_gcs.calls[-1] == ("upload", name, {"if_generation_match": 0})
        assert fake_gcs.objects[("bucket", name)][1] == generation  # the refused upload changed nothing
    assert fake_gcs.calls[-1] == ("delete", name, {"if_generation_match": generation})
    assert fake_gcs.objects == {}


def test_a_gs_lock_retaken_by_another_run_is_not_deleted_on_release(fake_gcs):
    out = "gs://bucket/ds"
    key = ("bucket", f"ds/{lock.LOCK_FILE}")
    lock.acquire(out, "sigforge split")
    fake_gcs.objects[key] = (json.dumps({"host": "other", "pid": 7, "token": "theirs"}).encode(), 4242)
    with pytest.raises(DatasetLocked, match="no longer holds"):
        lock.verify(out)
    lock.release(out)
    assert fake_gcs.calls[-1][0] == "delete" and fake_gcs.calls[-1][2]["if_generation_match"] != 4242
    assert json.loads(fake_gcs.objects[key][0])["token"] == "theirs"  # theirs is left alone


def test_a_filesystem_without_create_if_absent_is_refused(monkeypatch):
    """A scheme with no registered create-if-absent is refused naming it, before anything is written."""
    from tests.support import memfs

    memfs.clear()
    monkeypatch.delitem(lock._STORES, memfs.SCHEME)
    with pytest.raises(StageError, match="memfs://") as info:
        lock.acquire(f"{memfs.PREFIX}bucket/ds")
    assert info.value.code == "lock_unsupported" and not isinstance(info.value, DatasetLocked)
    assert memfs.paths() == []


def test_a_run_that_lost_its_lock_neither_deletes_nor_publishes(clean, tmp_path):
    """The lock file is replaced under a holding run (another writer, or deleted by hand and retaken): --overwrite
    refuses before deleting, and a finished stage refuses before publishing."""
    out = tmp_path / "ds"
    shutil.copytree(clean, out)
    files_before = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    owner_check = functools.partial(lock.verify, str(out))  # what the stage runner hands the manifest
    with lock.dataset_lock(str(out), "sigforge split"):
        (out / lock.LOCK_FILE).write_text(json.dumps({"host": "other", "pid": 7, "token": "theirs"}))
        with pytest.raises(DatasetLocked) as info:
            manifest.begin_stage(str(out), "split", overwrite=True, requires="build", owner_check=owner_check)
        assert info.value.code == "lock_lost"
        files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file() and p.name != lock.LOCK_FILE)
        assert files == files_before
        run = manifest.StageRun(str(out), "filter", owner_check)
        (out / ".tmp_filter").mkdir()
        with pytest.raises(DatasetLocked) as info:
            manifest.finish_stage(run, {"seen": 0})
        assert info.value.code == "lock_lost"
        assert "filter" not in json.loads((out / "manifest.json").read_text())["stages"]
    assert json.loads((out / lock.LOCK_FILE).read_text())["token"] == "theirs"  # theirs is left alone
