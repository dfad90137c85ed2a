"""Configs are parsed with limits, and a refusal never echoes a file that is not a sigforge config.

Limits (``transforms/config.py``, every YAML a command reads: dataset configs and their ``extends:`` bases,
``--set`` values, runner profiles, trainer configs): YAML aliases are refused (a "billion laughs" file of 2 KB
would expand to 10^9 nodes), nesting is capped, a config file must be a regular file (a FIFO would block, a
device never end) of at most 1 MiB. Each is one line, exit 2, a stable error code, well under a second.

Echo: an error quotes a key only from a file that parsed as a sigforge config (a mapping with a top-level key of
the schema being loaded, or with only near-misses of such keys); any other file is refused naming its path only.
A YAML syntax error names the line and column, never the line's text.
"""

from __future__ import annotations

import logging
import os
import pickle
import resource
import select
import signal
import time
from typing import NamedTuple

import pytest

from beam_pipelines.commands import cli
from transforms.config import ConfigError, DatasetConfig, load_config

G2NET = "run_configs/g2net.yaml"
SECRETS = ("hunter2", "AKIAZZZZSECRET", "s3cr3t-token-value", "db_password", "aws_secret_access_key", "'root'")
SECRET_FILE = (
    "root: $6$saltsalt$hunter2hash\n"
    "db_password: hunter2\n"
    "aws_secret_access_key: AKIAZZZZSECRET\n"
    "api: {token: s3cr3t-token-value}\n"
)
SECRET_NOT_YAML = "db_password = hunter2\naws_secret_access_key: AKIAZZZZSECRET\n"


def billion_laughs(levels: int = 9) -> str:
    """The classic: each level lists the previous one 9 times (9**levels leaves), about 2 KB of YAML."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _timed(call, limit_s: float = 5.0):
    """``call()``'s error (or None) and its seconds, run in a forked child under a time and memory cap, so that
    a config that hangs or explodes (before the fix: 17 GB in minutes) fails the test instead of the machine."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: run, report, exit without running any pytest teardown
        os.close(read_end)
        try:
            soft, hard = resource.getrlimit(resource.RLIMIT_AS)
            used = int(open("/proc/self/statm").read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            resource.setrlimit(resource.RLIMIT_AS, (used + (2 << 30), hard))
            started = time.monotonic()
            value = None
            try:
                value = call()
                error = None
            except BaseException as caught:  # noqa: BLE001
                error = caught
            seconds = time.monotonic() - started
            report = (
                type(error).__name__ if error is not None else None,
                getattr(error, "code", None),
                str(error),
                isinstance(error, ConfigError),
                value,
                seconds,
            )
            os.write(write_end, pickle.dumps(report))
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], limit_s)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            pytest.fail(f"still running after {limit_s} s")
        data = b""
        while chunk := os.read(read_end, 65536):
            data += chunk
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    assert data, "the child died without a report (memory cap?)"
    name, code, message, is_config_error, value, seconds = pickle.loads(data)
    return Outcome(name, code, message, is_config_error, value), seconds


class Outcome(NamedTuple):
    name: str | None
    code: str | None
    message: str
    is_config_error: bool
    value: object = None


def _cli_lines(args) -> tuple[int, list[tuple[int, str, bool]]]:
    """``cli.main(args)``'s exit code and log records (level, message, has a traceback): for ``_timed``."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    root = logging.getLogger()
    root.addHandler(Keep())
    code = cli.main(args)
    return code, [(r.levelno, r.getMessage(), r.exc_info is not None) for r in records]


def _refused_code(call) -> str:
    error, seconds = _timed(call)
    assert error.is_config_error, error
    assert seconds < 1.0
    return error.code


def _cli_refused(caplog, capsys, args):
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        code = cli.main(args)
    captured = capsys.readouterr()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert code == 2
    assert len(errors) == 1 and "\n" not in errors[0].getMessage() and errors[0].exc_info is None
    everything = captured.out + captured.err + "\n".join(r.getMessage() for r in caplog.records)
    return errors[0].getMessage(), everything


def _run_args(config, tmp_path, g2net_raw, *extra):
    return ["run", "--config", str(config), "--input", str(g2net_raw), "--output", str(tmp_path / "ds"), *extra]


# ---- limits -----------------------------------------------------------------------------------------------------


def test_billion_laughs_config_refused_fast(tmp_path):
    path = _write(tmp_path, "lol.yaml", billion_laughs())
    assert os.path.getsize(path) < 2500
    assert _refused_code(lambda: load_config(DatasetConfig, path)) == "yaml_alias"


def test_billion_laughs_config_one_line_exit_2(tmp_path, g2net_raw):
    import tensorflow  # noqa: F401  (loaded here, before the fork: the child's memory cap is for the config)

    path = _write(tmp_path, "lol.yaml", billion_laughs())
    outcome, _ = _timed(lambda: _cli_lines(_run_args(path, tmp_path, g2net_raw)), limit_s=60)
    assert outcome.name is None, outcome
    code, records = outcome.value
    errors = [(message, traceback) for level, message, traceback in records if level >= logging.ERROR]
    assert code == 2 and len(errors) == 1
    message, traceback = errors[0]
    assert path in message and "\n" not in message and not traceback
    assert not (tmp_path / "ds").exists()


def test_billion_laughs_in_an_extends_base_refused_fast(tmp_path):
    _write(tmp_path, "base.yaml", billion_laughs())
    path = _write(tmp_path, "c.yaml", "extends: base.yaml\nrecipe: g2net\n")
    assert _refused_code(lambda: load_config(DatasetConfig, path)) == "yaml_alias"


def test_billion_laughs_in_a_set_value_refused_fast():
    value = "{" + billion_laughs(7).replace("\n", ", ").rstrip(", ") + "}"
    assert _refused_code(lambda: load_config(DatasetConfig, G2NET, [f"g2net.bandpass={value}"])) == "yaml_alias"


def test_billion_laughs_runner_profile_refused_fast(tmp_path):
    from beam_pipelines.runtime.options import load_profile

    path = _write(tmp_path, "profile.yaml", billion_laughs())
    assert _refused_code(lambda: load_profile(path)) == "yaml_alias"


def test_billion_laughs_trainer_config_refused_fast(tmp_path):
    from model.config import load_trainer_config

    path = _write(tmp_path, "train.yaml", billion_laughs())
    assert _refused_code(lambda: load_trainer_config(path)) == "yaml_alias"


def test_a_plain_alias_is_refused_not_expanded(tmp_path):
    """A merge key (``<<: *base``) or any alias is refused too: no expansion budget to reason about."""
    path = _write(
        tmp_path,
        "merge.yaml",
        "split: &s {salt: x}\nanalyze:\n  <<: *s\n",
    )
    assert _refused_code(lambda: load_config(DatasetConfig, path)) == "yaml_alias"


def test_deeply_nested_yaml_refused_not_a_recursion_error(tmp_path):
    path = _write(tmp_path, "deep.yaml", "name: " + "[" * 5000 + "]" * 5000 + "\n")
    assert _refused_code(lambda: load_config(DatasetConfig, path)) == "yaml_too_deep"


def test_deeply_nested_set_value_refused():
    assert _refused_code(lambda: load_config(DatasetConfig, G2NET, ["name=" + "[" * 5000])) == "yaml_too_deep"


def test_oversized_config_file_refused_fast(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("recipe: g2net\n" + "# padding\n" * 300_000)  # 3 MB of comments
    assert _refused_code(lambda: load_config(DatasetConfig, str(path))) == "config_too_large"


def test_fifo_as_config_refused_without_blocking(tmp_path):
    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)
    try:
        assert _refused_code(lambda: load_config(DatasetConfig, str(fifo))) == "not_a_regular_file"
    finally:  # unblock a reader left waiting by a failed run
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass


def test_character_device_as_config_refused(tmp_path):
    assert _refused_code(lambda: load_config(DatasetConfig, "/dev/zero")) == "not_a_regular_file"


def test_plain_configs_still_load():
    """The shipped configs use no aliases and stay well inside the limits."""
    assert load_config(DatasetConfig, "run_configs/demo.yaml").g2net.group_column == "source_id"


# ---- no echo of a file that is not a config ----------------------------------------------------------------------


def _assert_no_secret(text):
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, leaked


def test_secret_file_as_config_refused_without_echo(caplog, capsys, tmp_path, g2net_raw):
    secret = _write(tmp_path, "shadow", SECRET_FILE)
    message, everything = _cli_refused(caplog, capsys, _run_args(secret, tmp_path, g2net_raw))
    assert secret in message
    _assert_no_secret(everything.replace(str(tmp_path), ""))
    assert _refused_code(lambda: load_config(DatasetConfig, secret)) == "not_a_config"


def test_secret_file_as_extends_base_refused_without_echo(caplog, capsys, tmp_path, g2net_raw):
    secret = _write(tmp_path, "shadow", SECRET_FILE)
    config = _write(tmp_path, "c.yaml", f"extends: {secret}\nrecipe: g2net\n")
    message, everything = _cli_refused(caplog, capsys, _run_args(config, tmp_path, g2net_raw))
    assert secret in message
    _assert_no_secret(everything.replace(str(tmp_path), ""))
    assert _refused_code(lambda: load_config(DatasetConfig, config)) == "not_a_config"


def test_secret_file_as_runner_profile_refused_without_echo(caplog, capsys, tmp_path, g2net_raw):
    from beam_pipelines.runtime.options import load_profile

    secret = _write(tmp_path, "shadow", SECRET_FILE)
    message, everything = _cli_refused(caplog, capsys, _run_args(G2NET, tmp_path, g2net_raw, "--profile", secret))
    assert secret in message
    _assert_no_secret(everything.replace(str(tmp_path), ""))
    assert _refused_code(lambda: load_profile(secret)) == "not_a_config"


def test_secret_file_as_trainer_config_refused_without_echo(tmp_path):
    from model.config import load_trainer_config

    secret = _write(tmp_path, "shadow", SECRET_FILE)
    error, _ = _timed(lambda: load_trainer_config(secret))
    assert error.is_config_error and error.code == "not_a_config"
    _assert_no_secret(error.message.replace(str(tmp_path), ""))


@pytest.mark.parametrize("how", ["config", "extends"])
def test_secret_file_that_is_not_yaml_refused_without_echo(how, caplog, capsys, tmp_path, g2net_raw):
    """A YAML syntax error names the line and column, not the line (PyYAML's message quotes it)."""
    secret = _write(tmp_path, "env", SECRET_NOT_YAML)
    config = secret if how == "config" else _write(tmp_path, "c.yaml", f"extends: {secret}\n")
    message, everything = _cli_refused(caplog, capsys, _run_args(config, tmp_path, g2net_raw))
    assert "line 2" in message
    _assert_no_secret(everything.replace(str(tmp_path), ""))


def test_a_config_with_a_typo_still_names_the_key(tmp_path):
    """The rule leaves real configs alone: a misspelled top-level key next to real ones, or alone, is named."""
    alone = _write(tmp_path, "alone.yaml", "biuld: {examples_per_shard: 3}\n")
    with pytest.raises(ConfigError, match="did you mean 'build'"):
        load_config(DatasetConfig, alone)
    beside = _write(tmp_path, "beside.yaml", "recipe: g2net\nspilt: {salt: x}\n")
    with pytest.raises(ConfigError, match="did you mean 'split'"):
        load_config(DatasetConfig, beside)
