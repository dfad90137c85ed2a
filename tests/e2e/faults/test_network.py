"""What a local multi-worker run exposes on the network: every listening TCP socket of the command and its children,
sampled from /proc while ``sigforge build -- --direct_running_mode=multi_processing --direct_num_workers=2`` runs.

Sigforge itself starts no server. Beam's FnApiRunner, in its multi-processing and multi-threading modes, starts
four gRPC servers (control, data, state, logging) in the command's process for its workers, and binds them to
``[::]:0`` (``apache_beam/runners/portability/fn_api_runner/worker_handlers.py: GrpcServer``): every interface,
not loopback, with no option to change it. The workers connect to ``localhost``. The control server also serves
Beam's artifact-retrieval service. This test asserts that truth (and that nothing else listens, the workers
included); docs/reliability.md says what it means and how to run safely. If Beam (or sigforge) ever binds them to
loopback, the first assertion fails: turn it into ``assert not exposed``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from transforms.recipes.g2net import sample as gw_sample

REPO = Path(__file__).resolve().parents[3]
LOOPBACK = ("127.0.0.1", "::1", "::ffff:127.0.0.1")


def _children(root: int) -> set[int]:
    """``root`` and every process below it."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        tree.add(pid)
        todo += parents.get(pid, [])
    return tree


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    except OSError:
        pass
    return inodes


def _address(hex_address: str) -> tuple[str, int]:
    import ipaddress

    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        ip = ipaddress.IPv4Address(raw[::-1])
    else:  # four little-endian 32-bit words
        ip = ipaddress.IPv6Address(b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4)))
    return str(ip), int(port, 16)


def _listening() -> dict[str, tuple[str, int]]:
    """inode -> (address, port) of every LISTEN TCP socket on this host."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                found[fields[9]] = _address(fields[1])
    return found


@pytest.mark.slow
def test_what_a_multi_worker_run_listens_on(tmp_path):
    raw = tmp_path / "raw"
    gw_sample.write_g2net_sample(str(raw), n=24, seed=1)
    command = [sys.executable, "-m", "beam_pipelines.commands.cli", "build", "--config", "run_configs/demo.yaml"]
    beam = ["--", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]
    proc = subprocess.Popen(
        [*command, "--input", str(raw), "--output", str(tmp_path / "ds"), *beam],
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: set[tuple[int, str, int]] = set()  # (pid, address, port)
    workers: set[int] = set()
    deadline = time.monotonic() + 540
    while proc.poll() is None and time.monotonic() < deadline:
        listening = _listening()
        tree = _children(proc.pid)
        workers |= tree - {proc.pid}
        for pid in tree:
            for inode in _socket_inodes(pid) & listening.keys():
                seen.add((pid, *listening[inode]))
        time.sleep(0.1)
    if proc.poll() is None:
        proc.kill()
    _, stderr = proc.communicate()
    assert proc.returncode == 0, stderr[-3000:]
    assert workers, "no worker process was seen: the sampling did not watch a multi-worker run"
    assert seen, "no listening socket was seen"
    exposed = {(pid, address, port) for pid, address, port in seen if address not in LOOPBACK}
    # The truth today: Beam's four gRPC servers in the command's own process, on every interface ([::]).
    assert exposed and {address for _, address, _ in exposed} <= {"::", "0.0.0.0"}, seen
    assert {pid for pid, _, _ in exposed} == {proc.pid}, seen  # the workers listen on nothing
    assert len({port for _, _, port in exposed}) >= 4, seen  # control, data, state, logging
    warned = [line for line in stderr.splitlines() if "listens for its workers on every network interface" in line]
    assert len(warned) == 1, stderr[-3000:]  # said once, in the command's own log
