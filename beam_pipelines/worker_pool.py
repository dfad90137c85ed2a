"""Warm local workers: SDK worker processes started once per command and kept across all its pipelines.

Beam's multi-processing FnApiRunner starts fresh worker processes for every pipeline, and each imports
TensorFlow and tf.Transform again before it does any work (a ``sigforge run`` has five pipelines). Here the
``warm_workers`` option (``run_configs/local_multiprocess.yaml``) starts N processes once. The ``sigforge``
executable forks them (``WorkerPool.fork``) as soon as it has loaded TensorFlow, tf.Transform and the stage
modules, while it still runs one thread, so they start with everything loaded and share its pages (the
libraries' own native threads at that point, OpenBLAS's and jemalloc's, handle fork; TensorFlow starts none
until it runs). Anywhere else (``cli.main`` called in a process that may run threads, as in tests, or the first
pipeline that asks) they are spawned and import all of it themselves (~2.9 CPU-s each). Each serves Beam's own
external worker pool (``worker_pool_main.BeamFnExternalWorkerPoolServicer``, SDK harnesses as threads in that
process) on localhost only: whoever can call ``StartWorker`` makes the process run the code a pipeline sends.

The command's pipelines run on the FnApiRunner with an EXTERNAL environment whose address is a small dispatcher
in this process: it hands the FnApiRunner's N ``StartWorker`` requests of each pipeline round-robin to the N
processes, so each pipeline has one SDK harness in each process and the FnApiRunner splits every stage's input
between them; when the pipeline has run, the dispatcher stops its harnesses. This is how Flink and Spark run
Python workers beside their task managers (``--environment_type=EXTERNAL`` against a worker pool), on one
machine.

A worker process ends when its lifeline closes (its standard input when spawned, watched from its first
instruction; a pipe only the command holds when forked), so the processes never outlive the command, whether it
ends normally, by an error or by a signal; they ignore Ctrl-C, which stops the command itself. A worker that
ends otherwise is logged with its exit code when the command stops the pool. Elements, counters, heartbeats and
the stage's files are those of an in-memory run (the processes share this machine's file system); which examples
share a shard and the last bits of float sums may differ, as with any worker count (tests/test_runners.py).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import NoReturn

_LOG = logging.getLogger(__name__)
_READY = "sigforge-worker-pool "  # + the address: the one line a worker process writes to its stdout pipe
READY_TIMEOUT_S = 600.0  # a worker process that has not served by then is taken for hung
# FnApiRunner warns, for every pipeline, that direct_num_workers > 1 needs another direct_running_mode: it does
# not know that the external environment's workers run elsewhere.
_RUNNING_MODE_WARNING = "direct_running_mode should be"
_FN_RUNNER_LOGGER = "apache_beam.runners.portability.fn_api_runner.fn_runner"


class WorkerPool:
    """N warm worker processes and the dispatcher that the FnApiRunner's EXTERNAL environment points at."""

    def __init__(self, workers: int):
        self.workers = workers
        self.processes: list[subprocess.Popen] = []
        self._server = None
        self._channels: list = []
        self.dispatcher: _Dispatcher | None = None
        self.address = ""

    def spawn(self) -> WorkerPool:
        """Starts the processes; they load their libraries while this process goes on (``start`` waits)."""
        if not self.processes:
            # ~2.7 s and 2.9 CPU-s until a process serves, alone on 2 cores (~770 MiB resident each). The process
            # imports from this one's sys.path (PYTHONPATH), so it runs the same code, installed or from a checkout;
            # -P: nothing else goes first (not its working directory)
            path = os.pathsep.join(entry for entry in sys.path if entry)
            env = {**os.environ, "PYTHONPATH": path}
            env["TF_CPP_MIN_LOG_LEVEL"] = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")
            command = [sys.executable, "-P", "-m", "beam_pipelines.worker_pool", str(_LOG.getEffectiveLevel())]
            self.processes = [
                subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
                for _ in range(self.workers)
            ]
        return self

    def fork(self) -> WorkerPool:
        """Forks the processes from this one, which must have loaded the worker modules (``load_worker_modules``)
        and must run no thread but its main one: a forked process keeps only the forking thread, so another one
        could leave a lock held in it. (The native threads that numpy's and scipy's OpenBLAS and pyarrow's
        jemalloc start as they load handle fork themselves; TensorFlow starts none until it runs.) A forked
        process serves within milliseconds and shares this one's loaded pages until either writes them; a
        spawned one loads everything again (~2.9 CPU-s, while this process loads too)."""
        if self.processes:
            return self
        if threading.active_count() != 1:
            raise RuntimeError("warm workers are forked only from a single-threaded process; spawn them instead")
        pipes = [(*os.pipe(), *os.pipe()) for _ in range(self.workers)]  # lifeline r, w; ready r, w
        sys.stdout.flush()
        sys.stderr.flush()
        for lifeline_r, lifeline_w, ready_r, ready_w in pipes:
            pid = os.fork()
            if pid == 0:
                inherited = [fd for fds in pipes for fd in fds if fd not in (lifeline_r, ready_w)]
                _forked_worker(lifeline_r, ready_w, inherited)
            self.processes.append(_ForkedProcess(pid, lifeline_w, ready_r))
        for lifeline_r, _, _, ready_w in pipes:  # the workers' ends
            os.close(lifeline_r)
            os.close(ready_w)
        return self

    def start(self) -> WorkerPool:
        """Spawns the processes if need be, waits until each serves, and starts the dispatcher."""
        import grpc
        from apache_beam.portability.api import beam_fn_api_pb2_grpc
        from apache_beam.utils import thread_pool_executor

        self.spawn()
        deadline = time.monotonic() + READY_TIMEOUT_S
        addresses = [self._ready_address(process, deadline) for process in self.processes]
        self._channels = [grpc.insecure_channel(address) for address in addresses]
        stubs = [beam_fn_api_pb2_grpc.BeamFnExternalWorkerPoolStub(channel) for channel in self._channels]
        self.dispatcher = _Dispatcher(stubs)
        self._server = grpc.server(thread_pool_executor.shared_unbounded_instance())
        port = self._server.add_insecure_port("localhost:0")
        beam_fn_api_pb2_grpc.add_BeamFnExternalWorkerPoolServicer_to_server(self.dispatcher, self._server)
        self._server.start()
        self.address = f"localhost:{port}"
        _LOG.debug("worker pool: %d warm worker processes %s behind %s", self.workers, addresses, self.address)
        return self

    def _ready_address(self, process: subprocess.Popen, deadline: float) -> str:
        """The address the process serves on, from its ready line; StageError (the pool stopped, the command
        refuses in one line) when it ends or stays silent until ``deadline``."""
        line, readable = "", False
        if process.stdout is not None:
            readable = bool(select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))[0])
            line = process.stdout.readline() if readable else ""
        if not line.startswith(_READY):
            from beam_pipelines.manifest import StageError

            self.stop()
            what = "did not serve in time" if not readable else "wrote no ready line" if line else "ended early"
            raise StageError(
                f"a warm worker process {what} (exit code {process.returncode}; see its lines above); nothing was "
                "run. Without the option --warm_workers the stage runs in this process"
            )
        return line[len(_READY) :].strip()

    def environment(self):
        from apache_beam.transforms.environments import ExternalEnvironment

        return ExternalEnvironment(self.address)

    def stop(self) -> None:
        """Closes every process's lifeline and waits for it (killed after 10 s), then the dispatcher."""
        for process in self.processes:
            with contextlib.suppress(OSError, ValueError):
                process.stdin.close()  # the worker's lifeline: it exits on end of input
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.returncode != 0:  # it did not end by its lifeline: it crashed, or hung and was killed
                _LOG.warning("warm worker %d ended with exit code %s", process.pid, process.returncode)
            if process.stdout is not None:
                process.stdout.close()
        if self._server is not None:
            self._server.stop(grace=None)
            self._server = None
        for channel in self._channels:
            channel.close()
        self._channels = []


class _ForkedProcess:
    """What the pool uses of ``subprocess.Popen``, for a forked worker: its lifeline (``stdin``, written by
    nobody: the worker exits when it closes), its ready pipe (``stdout``), ``wait``, ``kill`` and ``returncode``."""

    def __init__(self, pid: int, lifeline: int, ready: int):
        self.pid = pid
        self.stdin = os.fdopen(lifeline, "w")
        self.stdout = os.fdopen(ready, "r")
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"warm worker {self.pid}", timeout)
            time.sleep(0.01)
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


class _Dispatcher:
    """Beam's ``BeamFnExternalWorkerPool`` service, forwarding each ``StartWorker`` to the next warm process.
    ``stop_all`` ends the harnesses a pipeline started (the FnApiRunner does not send ``StopWorker`` for an
    external environment), so a process does not keep every finished pipeline's harness."""

    def __init__(self, stubs):
        self._stubs = stubs
        self._next = itertools.count()
        self._owner: dict[str, int] = {}
        self._lock = threading.Lock()

    def StartWorker(self, request, context):  # noqa: N802 (gRPC method name)
        with self._lock:
            index = next(self._next) % len(self._stubs)
            self._owner[request.worker_id] = index
        return self._stubs[index].StartWorker(request)

    def StopWorker(self, request, context):  # noqa: N802
        with self._lock:
            index = self._owner.pop(request.worker_id, 0)
        return self._stubs[index].StopWorker(request)

    def stop_all(self) -> None:
        from apache_beam.portability.api import beam_fn_api_pb2

        with self._lock:
            owned, self._owner = self._owner, {}
        for worker_id, index in owned.items():
            with contextlib.suppress(Exception):  # a harness that already ended
                self._stubs[index].StopWorker(beam_fn_api_pb2.StopWorkerRequest(worker_id=worker_id))


_POOLS: dict[int, WorkerPool] = {}
_POOLS_LOCK = threading.Lock()


def spawn_pool(workers: int, fork: bool = False) -> WorkerPool:
    """The command's pool of ``workers`` warm processes, started now and stopped at exit; ``shared_pool`` waits
    for it. Spawned, they load while the command goes on; ``fork`` (see ``WorkerPool.fork``) forks them from
    this process, which has loaded the worker modules."""
    with _POOLS_LOCK:
        pool = _POOLS.get(workers)
        if pool is None:
            how = "forked from this one" if fork else "spawned"
            _LOG.info("starting %d warm worker processes (%s; kept for every pipeline of this command)", workers, how)
            pool = WorkerPool(workers)
            _POOLS[workers] = pool.fork() if fork else pool.spawn()
            if len(_POOLS) == 1:
                import atexit

                atexit.register(stop_pools)
        return pool


def shared_pool(workers: int) -> WorkerPool:
    """The command's pool of ``workers`` warm processes, serving (spawned here if ``spawn_pool`` was not)."""
    pool = spawn_pool(workers)
    with _POOLS_LOCK:
        if not pool.address:
            pool.start()
        return pool


def pools() -> list[WorkerPool]:
    """The command's pools (spawned or serving)."""
    with _POOLS_LOCK:
        return list(_POOLS.values())


def stop_pools() -> None:
    with _POOLS_LOCK:
        for pool in _POOLS.values():
            pool.stop()
        _POOLS.clear()


class _DropRunningModeWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return _RUNNING_MODE_WARNING not in record.getMessage()


@contextlib.contextmanager
def pool_runner(workers: int) -> Iterator[object]:
    """An FnApiRunner whose workers are the shared pool's processes (its warning about the running mode,
    which does not apply to an external environment, is dropped meanwhile)."""
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    pool = shared_pool(workers)
    logger = logging.getLogger(_FN_RUNNER_LOGGER)
    quiet = _DropRunningModeWarning()
    logger.addFilter(quiet)
    try:
        yield FnApiRunner(default_environment=pool.environment())
    finally:
        logger.removeFilter(quiet)
        if pool.dispatcher is not None:
            pool.dispatcher.stop_all()  # the pipeline has run: its harnesses end


@contextlib.contextmanager
def local_or_pool_pipeline(beam_args: list[str] | None) -> Iterator[object]:
    """A ``beam.Pipeline`` with the options of ``beam_args`` (``options.make_pipeline_options``), run on the warm
    worker pool when they ask for one (``--warm_workers``); runs when the block exits."""
    import apache_beam as beam

    from beam_pipelines.options import make_pipeline_options, warm_workers

    options = make_pipeline_options(beam_args)
    workers = warm_workers(options)
    runner = pool_runner(workers) if workers is not None else contextlib.nullcontext(None)
    with runner as fn_runner, beam.Pipeline(runner=fn_runner, options=options) as pipeline:
        yield pipeline


def _exit_when_closed(fd: int) -> None:
    while os.read(fd, 4096):  # until the command that started this process closes the pipe or ends
        pass
    os._exit(0)


def load_worker_modules() -> None:
    """Imports what a stage's DoFns need (TensorFlow, tf.Transform, Beam's worker pool, the stages); a recipe's
    own modules load when its DoFns unpickle."""
    from beam_pipelines.logsetup import import_tensorflow_quietly

    import_tensorflow_quietly()
    import tensorflow_transform.beam  # noqa: F401
    from apache_beam.runners.worker import worker_pool_main  # noqa: F401

    import beam_pipelines.pipeline  # noqa: F401


def _serve_until_closed(ready) -> None:
    """Serves Beam's worker pool on localhost, writes the ready line to ``ready`` and waits (the lifeline thread
    ends the process)."""
    import grpc
    from apache_beam.portability.api import beam_fn_api_pb2_grpc
    from apache_beam.runners.worker.worker_pool_main import BeamFnExternalWorkerPoolServicer
    from apache_beam.utils import thread_pool_executor

    # Beam's BeamFnExternalWorkerPoolServicer.start would listen on every interface; this process listens on
    # localhost only, with the same keep-alive options.
    options = [("grpc.http2.max_pings_without_data", 0), ("grpc.http2.max_ping_strikes", 0)]
    server = grpc.server(thread_pool_executor.shared_unbounded_instance(), options=options)
    port = server.add_insecure_port("localhost:0")
    servicer = BeamFnExternalWorkerPoolServicer(use_process=False, state_cache_size=0, data_buffer_time_limit_ms=-1)
    beam_fn_api_pb2_grpc.add_BeamFnExternalWorkerPoolServicer_to_server(servicer, server)
    server.start()
    ready.write(f"{_READY}localhost:{port}\n")
    ready.close()
    threading.Event().wait()


def _detach(lifeline: int) -> None:
    """What every warm worker process does first: ignore Ctrl-C (it stops the command, whose exit closes the
    lifeline); make fd 1 the command's stderr, so nothing a library or a DoFn prints can fill a pipe that nobody
    reads; and end the process when ``lifeline`` closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.dup2(2, 1)
    threading.Thread(target=_exit_when_closed, args=(lifeline,), name="sigforge-lifeline", daemon=True).start()


def serve(level: int = logging.WARNING) -> None:
    """A spawned warm worker process: loads what a stage's DoFns need, serves Beam's worker pool on localhost,
    writes its address as the one line of its stdout pipe and runs until its standard input closes."""
    import gc

    ready = os.fdopen(os.dup(1), "w")  # the ready line's own channel, before fd 1 becomes the command's stderr
    _detach(0)  # standard input is the lifeline
    gc.disable()  # as in cli.entry: what is loaded now lives as long as the process
    from beam_pipelines.logsetup import configure_logging

    configure_logging(verbose=level <= logging.DEBUG)
    load_worker_modules()
    gc.freeze()
    gc.enable()
    _serve_until_closed(ready)


def _forked_worker(lifeline: int, ready: int, inherited: list[int]) -> NoReturn:
    """A forked warm worker process (``WorkerPool.fork``): it has the command's modules already, so it only
    serves; never returns into the command's code."""
    try:
        for fd in inherited:  # the command's ends of every pool pipe: only the command may hold a lifeline open
            os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        _detach(lifeline)
        _serve_until_closed(os.fdopen(ready, "w"))
    except BaseException:  # noqa: BLE001 (a forked child must never unwind into the command's stack)
        import traceback

        traceback.print_exc()
    finally:
        os._exit(1)


if __name__ == "__main__":
    serve(int(sys.argv[1]) if len(sys.argv) > 1 else logging.WARNING)
