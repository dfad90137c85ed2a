"""Every OS fault is one line and exit 2, never a traceback, and leaves nothing that blocks a rerun: no lock file,
no ``.tmp_`` folder. Tests run as root, for whom chmod changes nothing: permission faults are simulated by raising
PermissionError where the OS would (in-process), and one test runs the real command as user ``nobody``
(``setpriv``) against root-owned files. A full disk is a real 1 MiB tmpfs where ``mount`` works (root), and a
monkeypatched ENOSPC everywhere."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from beam_pipelines.commands import cli
from beam_pipelines.dataset import fs, lock, manifest
from beam_pipelines.io import sink
from beam_pipelines.stages import run_all as run_all_module
from tests.support.dataset_fixture import clean_dataset

REPO = Path(__file__).resolve().parents[3]
DEMO = "run_configs/demo.yaml"


@pytest.fixture(scope="module")
def clean(tmp_path_factory, g2net_raw):
    return clean_dataset(tmp_path_factory, g2net_raw)


def _errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def _left_behind(out: Path) -> list[str]:
    """What a failed command must not leave: the lock file or a .tmp_ folder."""
    if not out.exists():
        return []
    return sorted(p.name for p in out.iterdir() if p.name == lock.LOCK_FILE or p.name.startswith(".tmp_"))


def _build(raw, out, *extra):
    return cli.main(["build", "--config", DEMO, "--input", str(raw), "--output", str(out), *extra])


def _one_line_exit_2(caplog, code: int, *expected: str) -> str:
    assert code == 2
    errors = _errors(caplog)
    assert len(errors) == 1, errors
    assert "\n" not in errors[0] and all(text in errors[0] for text in expected), errors[0]
    return errors[0]


# ---- permission denied ------------------------------------------------------------------------------------------


def test_permission_denied_on_out_is_one_line(tmp_path, g2net_raw, monkeypatch, caplog):
    out = tmp_path / "ro" / "ds"
    real_makedirs = os.makedirs

    def makedirs(path, *args, **kwargs):
        if str(path).startswith(str(tmp_path / "ro")):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_makedirs(path, *args, **kwargs)

    monkeypatch.setattr(os, "makedirs", makedirs)
    with caplog.at_level(logging.ERROR):
        code = _build(g2net_raw, out)
    _one_line_exit_2(caplog, code, "Permission denied (EACCES)", str(tmp_path / "ro"))
    assert not (tmp_path / "ro").exists()


def test_permission_denied_publishing_into_a_read_only_dataset(clean, tmp_path, monkeypatch, caplog):
    """split --overwrite whose publish (a rename into OUT) is refused: one line, then the rerun works."""
    out = tmp_path / "ds"
    shutil.copytree(clean, out)
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if str(dst).startswith(str(out)):
            raise PermissionError(errno.EACCES, "Permission denied", str(dst))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    args = ["split", "--config", DEMO, "--output", str(out), "--overwrite"]
    with caplog.at_level(logging.ERROR):
        code = cli.main(args)
    _one_line_exit_2(caplog, code, "Permission denied (EACCES)", str(out / "split"))
    assert _left_behind(out) == []
    monkeypatch.undo()
    assert cli.main(args) == 0
    assert "split" in json.loads((out / "manifest.json").read_text())["stages"]


def test_permission_denied_on_the_labels_csv(tmp_path, g2net_raw, monkeypatch, caplog):
    from apache_beam.io.filesystems import FileSystems

    real_open = FileSystems.open

    def open_(path, *args, **kwargs):
        if str(path).endswith("training_labels.csv"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(FileSystems, "open", staticmethod(open_))
    out = tmp_path / "ds"
    with caplog.at_level(logging.ERROR):
        code = _build(g2net_raw, out)
    _one_line_exit_2(caplog, code, "Permission denied (EACCES)", "training_labels.csv")
    assert _left_behind(out) == []


def test_permission_denied_writing_the_report(clean, tmp_path, monkeypatch, caplog):
    out = tmp_path / "ds"
    shutil.copytree(clean, out)
    real_write = fs.write_bytes

    def write_bytes(path, data):
        if "/report/" in path:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        real_write(path, data)

    monkeypatch.setattr(fs, "write_bytes", write_bytes)
    with caplog.at_level(logging.ERROR):
        code = cli.main(["report", str(out)])
    _one_line_exit_2(caplog, code, "Permission denied (EACCES)", "report")
    assert _left_behind(out) == []
    monkeypatch.undo()
    # The rerun is not blocked (by a lock, or by the empty report/ the failure left). The stand-in statistics of
    # this dataset have no figures to draw, so the page itself is a stand-in too.
    from beam_pipelines.commands import report

    page = SimpleNamespace(path=str(out / "report" / "index.html"), figures=[], flagged=[])
    monkeypatch.setattr(report, "write_report", lambda *args: page)
    assert cli.main(["report", str(out)]) == 0


_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_real_permission_faults_as_user_nobody(clean, g2net_raw):
    """The real thing, as the unprivileged user nobody: a build into a root-owned folder, a build whose labels
    CSV is root-only, and a report into a root-owned dataset. Each: exit 2, one line, no traceback."""
    root = Path(tempfile.mkdtemp(prefix="sigforge_nobody_", dir="/tmp"))
    try:
        root.chmod(0o755)
        raw = root / "raw"
        shutil.copytree(g2net_raw, raw)
        for path in [raw, *raw.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        (raw / "training_labels.csv").chmod(0o600)  # root only
        data = root / "ds"
        shutil.copytree(clean, data)  # root-owned, not writable by nobody
        (root / "home").mkdir(mode=0o777)
        env = {
            **os.environ,
            "HOME": str(root / "home"),
            "MPLCONFIGDIR": str(root / "home"),
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
        python = [*_NOBODY, sys.executable, "-m", "beam_pipelines.commands.cli"]
        commands = {
            "out": [*python, "build", "--config", DEMO, "--input", str(raw), "--output", str(root / "locked" / "ds")],
            "labels": [*python, "build", "--config", DEMO, "--input", str(raw), "--output", str(root / "home" / "ds")],
            "report": [*python, "report", str(data)],
        }
        (root / "locked").mkdir(mode=0o755)
        for name, command in commands.items():
            done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
            errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
            assert done.returncode == 2, (name, done.stderr[-3000:])
            assert "Traceback" not in done.stderr and len(errors) == 1, (name, done.stderr[-3000:])
            assert "Permission denied (EACCES)" in errors[0], (name, errors)
        assert not (root / "home" / "ds" / lock.LOCK_FILE).exists()
        assert not (data / lock.LOCK_FILE).exists()
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---- full disk, too large a file ----------------------------------------------------------------------------------


def test_enospc_in_the_shard_writer_mid_stage(tmp_path, g2net_raw, monkeypatch, caplog):
    def full(handle, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sink, "write_record", full)
    out = tmp_path / "ds"
    with caplog.at_level(logging.ERROR):
        code = _build(g2net_raw, out)
    _one_line_exit_2(caplog, code, "No space left on device (ENOSPC)", str(out))
    assert _left_behind(out) == []
    monkeypatch.undo()
    assert _build(g2net_raw, out) == 0  # nothing blocks the rerun


def test_efbig_writing_the_manifest(tmp_path, g2net_raw, monkeypatch, caplog):
    def too_large(folder, data):
        raise OSError(errno.EFBIG, "File too large", os.path.join(folder, "manifest.json"))

    monkeypatch.setattr(manifest, "write_manifest", too_large)
    out = tmp_path / "ds"
    with caplog.at_level(logging.ERROR):
        code = _build(g2net_raw, out)
    _one_line_exit_2(caplog, code, "File too large (EFBIG)", "manifest.json")
    assert _left_behind(out) == []
    monkeypatch.undo()
    assert _build(g2net_raw, out) == 0


@pytest.fixture
def tiny_tmpfs(tmp_path):
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()}); the monkeypatched ENOSPC runs")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_real_full_disk_mid_stage(tiny_tmpfs, g2net_raw, caplog):
    """build into a 1 MiB tmpfs (the shards need more): one line, nothing left; grown, the rerun works."""
    out = tiny_tmpfs / "ds"
    with caplog.at_level(logging.ERROR):
        code = _build(g2net_raw, out)
    _one_line_exit_2(caplog, code, "No space left on device (ENOSPC)")
    assert _left_behind(out) == []
    subprocess.run(["mount", "-o", "remount,size=64M", str(tiny_tmpfs)], check=True)
    assert _build(g2net_raw, out) == 0


# ---- vanished input ---------------------------------------------------------------------------------------------


def test_an_input_folder_that_vanishes_after_planning(tmp_path, g2net_raw, monkeypatch, caplog):
    raw = tmp_path / "raw"
    shutil.copytree(g2net_raw, raw)
    real_plan = run_all_module.plan_build

    def plan_then_vanish(*args, **kwargs):
        planned = real_plan(*args, **kwargs)
        shutil.rmtree(raw)
        return planned

    monkeypatch.setattr(run_all_module, "plan_build", plan_then_vanish)
    out = tmp_path / "ds"
    with caplog.at_level(logging.ERROR):
        code = cli.main(["run", "--config", DEMO, "--input", str(raw), "--output", str(out), "--no-report"])
    assert code == 2 and len(_errors(caplog)) == 1, _errors(caplog)
    assert _left_behind(out) == []


def test_a_labels_csv_that_vanishes_after_planning(tmp_path, g2net_raw, monkeypatch, caplog):
    raw = tmp_path / "raw"
    shutil.copytree(g2net_raw, raw)
    real_plan = run_all_module.plan_build

    def plan_then_vanish(*args, **kwargs):
        planned = real_plan(*args, **kwargs)
        (raw / "training_labels.csv").unlink()
        return planned

    monkeypatch.setattr(run_all_module, "plan_build", plan_then_vanish)
    out = tmp_path / "ds"
    with caplog.at_level(logging.ERROR):
        code = cli.main(["run", "--config", DEMO, "--input", str(raw), "--output", str(out), "--no-report"])
    assert code == 2 and len(_errors(caplog)) == 1, _errors(caplog)
    assert "training_labels.csv" in _errors(caplog)[0]
    assert _left_behind(out) == []


# ---- stale leftovers of a killed run ------------------------------------------------------------------------------


def test_stale_tmp_folders_of_every_stage_are_removed(clean, tmp_path):
    """A SIGKILLed run leaves its .tmp_<stage>; the next stage on the folder removes every one of them."""
    out = tmp_path / "ds"
    shutil.copytree(clean, out)
    for stage in ("analyze", "filter", "build"):
        (out / f".tmp_{stage}" / "x").mkdir(parents=True)
    run = manifest.begin_stage(str(out), "normalize", overwrite=True, requires="analyze")
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".tmp_")) == [".tmp_normalize"]
    shutil.rmtree(run.tmp)


# ---- the trainer, predict and the demo ----------------------------------------------------------------------------


def test_train_reports_an_os_fault_as_one_line(tmp_path, monkeypatch, caplog):
    import tensorflow as tf

    from model import train as train_module

    for error in (
        PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "runs")),
        tf.errors.PermissionDeniedError(None, None, f"{tmp_path / 'runs'}; Permission denied"),
    ):

        def refuse(*args, error=error, **kwargs):
            raise error

        monkeypatch.setattr(train_module, "train", refuse)
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            code = train_module.main(["--data", "D", "--config", "C", "--out", str(tmp_path / "runs")])
        _one_line_exit_2(caplog, code, "Permission denied")


def test_predict_reports_an_os_fault_as_one_line(tmp_path, monkeypatch, caplog):
    from model import predict as predict_module

    def refuse(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "scores.csv"))

    monkeypatch.setattr(predict_module, "predict", refuse)
    with caplog.at_level(logging.ERROR):
        code = predict_module.main(["--run", "R", "--input", "x.npy", "--out", str(tmp_path / "scores.csv")])
    _one_line_exit_2(caplog, code, "No space left on device (ENOSPC)", "scores.csv")


def test_the_demo_reports_an_os_fault_as_one_line(tmp_path, monkeypatch, caplog):
    from beam_pipelines.commands import demo
    from transforms.recipes.g2net import sample as gw_sample

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "demo" / "raw"))

    monkeypatch.setattr(gw_sample, "write_g2net_sample", full)
    with caplog.at_level(logging.ERROR):
        code = demo.main(["--out", str(tmp_path / "demo")])
    _one_line_exit_2(caplog, code, "No space left on device (ENOSPC)")


def test_a_bug_still_shows_its_traceback(tmp_path, g2net_raw, monkeypatch):
    """Only OS faults and interrupts become one line: a programming error is raised on, for its maintainer."""

    def bug(*args, **kwargs):
        raise RuntimeError("an internal invariant broke")

    monkeypatch.setattr(run_all_module, "plan_build", bug)
    with pytest.raises(RuntimeError, match="invariant"):
        cli.main(["run", "--config", DEMO, "--input", str(g2net_raw), "--output", str(tmp_path / "ds")])


# ---- the lock a crashed run left ----------------------------------------------------------------------------------


def _record(pid: int, host: str | None = None) -> str:
    import socket

    host = host or socket.gethostname()
    return json.dumps({"host": host, "pid": pid, "started": "2026-01-01T00:00:00+00:00", "command": "sigforge run"})


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_a_lock_of_a_dead_process_on_this_host_is_taken_over(tmp_path, caplog):
    out = tmp_path / "ds"
    out.mkdir()
    pid = _dead_pid()
    (out / lock.LOCK_FILE).write_text(_record(pid))
    with caplog.at_level(logging.WARNING), lock.dataset_lock(str(out)):
        assert lock.read_holder(str(out))["pid"] == os.getpid()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and f"pid {pid}" in warnings[0] and "took over" in warnings[0], warnings
    assert not (out / lock.LOCK_FILE).exists() and sorted(p.name for p in out.iterdir()) == []


def test_a_zombie_holder_counts_as_gone(tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    child = subprocess.Popen(["true"])  # exits, and stays a zombie until waited for
    try:
        import time

        deadline = time.monotonic() + 30
        while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        (out / lock.LOCK_FILE).write_text(_record(child.pid))
        with lock.dataset_lock(str(out)):
            assert lock.read_holder(str(out))["pid"] == os.getpid()
    finally:
        child.wait()


@pytest.mark.parametrize("content", [b"", b'{"host": "h", "pi'], ids=["empty", "partial"])
def test_an_old_unreadable_lock_file_is_taken_over(content, tmp_path, caplog):
    out = tmp_path / "ds"
    out.mkdir()
    path = out / lock.LOCK_FILE
    path.write_bytes(content)
    old = path.stat().st_mtime - 10
    os.utime(path, (old, old))
    with caplog.at_level(logging.WARNING), lock.dataset_lock(str(out)):
        assert lock.read_holder(str(out))["pid"] == os.getpid()
    assert "unreadable" in caplog.text


def test_a_fresh_unreadable_lock_file_may_be_a_writer_and_is_respected(tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    (out / lock.LOCK_FILE).write_bytes(b"")
    with pytest.raises(lock.DatasetLocked):
        lock.acquire(str(out))
    assert (out / lock.LOCK_FILE).read_bytes() == b""


@pytest.mark.parametrize("holder", ["live_here", "dead_elsewhere"])
def test_a_live_or_foreign_holder_is_never_taken_over(holder, tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    child = subprocess.Popen(["sleep", "60"])
    try:
        record = _record(child.pid) if holder == "live_here" else _record(_dead_pid(), host="another-host")
        (out / lock.LOCK_FILE).write_text(record)
        with pytest.raises(lock.DatasetLocked):
            lock.acquire(str(out))
        assert (out / lock.LOCK_FILE).read_text() == record
    finally:
        child.kill()
        child.wait()


def test_taking_over_never_removes_a_fresh_lock_another_run_made_meanwhile(tmp_path):
    """Two runs saw the same stale lock; one took it over and made its own. The other's take-over finds other
    bytes than it saw, puts that lock back and is refused."""
    out = tmp_path / "ds"
    out.mkdir()
    path = out / lock.LOCK_FILE
    path.write_text(_record(os.getpid(), host="fresh-run"))
    assert lock._LOCAL.take_over(str(path), _record(_dead_pid()).encode()) is False
    assert json.loads(path.read_text())["host"] == "fresh-run"
    assert sorted(p.name for p in out.iterdir()) == [lock.LOCK_FILE]


def test_a_full_disk_while_creating_the_lock_leaves_no_empty_lock_file(tmp_path, g2net_raw, monkeypatch, caplog):
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, fd, mode):
            self._handle = real_fdopen(fd, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._handle.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdopen", Full)
    out = tmp_path / "new" / "ds"
    with caplog.at_level(logging.ERROR):
        code = _build(g2net_raw, out)
    _one_line_exit_2(caplog, code, "No space left on device (ENOSPC)")
    assert not (tmp_path / "new").exists()  # no 0-byte lock, and the folders the lock made are gone
