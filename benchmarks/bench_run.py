"""Throughput and peak memory of ``sigforge run`` against the plain-script baseline, on generated G2Net data.

    python benchmarks/bench_run.py --n 4000 16000 [--workers] [--threads] [--one-thread] [--repeat 1]
                                   [--keep] [--results PATH]
                                   [--raw-root DIR]

For each size N the sample (``transforms.recipes.g2net.sample.write_g2net_sample``, ``signals_per_source=3``) is
generated once into a temporary folder, or kept in and reused from ``--raw-root`` (not timed). Then, one after
another, each variant runs as its own subprocess:

- ``sigforge``: ``python -m beam_pipelines.commands.cli run --config run_configs/demo.yaml --no-report`` (in-memory
  FnApiRunner; the plain script draws no report, so ``sigforge report OUT`` is timed on its own afterwards and
  printed apart from the ratios);
- ``plain``: ``python benchmarks/plain_script.py`` (same config, same numeric functions, one process);
- ``sigforge-2w`` (with ``--workers``): sigforge with ``-- --direct_running_mode=multi_processing
  --direct_num_workers=2`` (2 worker processes);
- ``sigforge-mt2`` (with ``--threads``): sigforge with ``-- --direct_running_mode=multi_threading
  --direct_num_workers=2`` (Beam's 2 worker threads; the stages read files whole, since Beam's splittable
  sources lost records under several threads);
- ``sigforge-1t`` (with ``--one-thread``): sigforge with ``--set build.numeric_threads=1``: the build's numerics
  on the DoFn's own thread, without the process-wide numeric pool.

Measured per variant: wall time of the whole subprocess (interpreter start and TensorFlow/Beam imports
included), the time inside the stages (``OUT/manifest.json`` ``stages.*.seconds`` for sigforge,
``plain_summary.json`` for the plain script), examples/s from both, and two memory figures: ``max_rss`` (the
largest single process of the tree, from ``os.wait4``'s rusage) and ``tree_rss`` (the largest sum of RSS over
the process and all its descendants, sampled every 0.2 s from /proc; shared pages are counted once per
process, so it over-counts forked workers). The statistics and split counts of sigforge and the plain script
are compared, so a faster baseline that does different work would show up.

Prints a table and writes its figures as JSON to ``--results`` (``make bench`` folds them into
``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = "run_configs/demo.yaml"
PAGE = os.sysconf("SC_PAGE_SIZE")
STAGE_ORDER = ("build", "split", "analyze", "normalize", "filter")
MT_ARGS = ["--", "--direct_running_mode=multi_threading", "--direct_num_workers=2"]
WORKER_ARGS = ["--", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]
ONE_THREAD_ARGS = ["--set", "build.numeric_threads=1"]


# Process-tree memory sampling -----------------------------------------------------------------------------


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(name))
    return children


def tree_rss_bytes(root: int) -> int:
    """Sum of the resident set sizes of ``root`` and all its descendants (bytes; 0 once it is gone)."""
    children = _children_map()
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        try:
            with open(f"/proc/{pid}/statm") as handle:
                total += int(handle.read().split()[1]) * PAGE
        except OSError:
            pass
        stack.extend(children.get(pid, []))
    return total


def measure(cmd: list[str], log_path: str, env: dict[str, str]) -> dict:
    """Runs ``cmd`` from the repo root; returns wall seconds, exit code and peak memory (MiB)."""
    peak = [0]
    done = threading.Event()
    with open(log_path, "wb") as log:
        started = time.monotonic()
        process = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], tree_rss_bytes(process.pid))
                done.wait(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.monotonic() - started
        done.set()
        sampler.join()
        process.returncode = os.waitstatus_to_exitcode(status)
    return {
        "rc": process.returncode,
        "wall_s": round(wall, 2),
        # Linux reports ru_maxrss in KiB: the largest RSS of the child or any descendant it waited for.
        "max_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "tree_rss_mib": round(peak[0] / 2**20, 1),
        "cpu_user_s": round(usage.ru_utime, 1),
        "cpu_sys_s": round(usage.ru_stime, 1),
    }


# Variants -------------------------------------------------------------------------------------------------


def sigforge_cmd(raw: str, out: str, variant: str) -> list[str]:
    # --no-report: the plain script draws no report; `sigforge report` is timed on its own (report_cmd)
    cmd = [
        sys.executable,
        "-m",
        "beam_pipelines.commands.cli",
        "run",
        "--config",
        CONFIG,
        "--input",
        raw,
        "--output",
        out,
    ]
    cmd.append("--no-report")
    extra = {"sigforge": [], "sigforge-2w": WORKER_ARGS, "sigforge-mt2": MT_ARGS, "sigforge-1t": ONE_THREAD_ARGS}
    return cmd + extra[variant]


def report_cmd(out: str) -> list[str]:
    return [sys.executable, "-m", "beam_pipelines.commands.cli", "report", out]


def plain_cmd(raw: str, out: str) -> list[str]:
    return [sys.executable, "benchmarks/plain_script.py", "--config", CONFIG, "--input", raw, "--output", out]


def sigforge_figures(out: str) -> dict:
    with open(os.path.join(out, "manifest.json")) as handle:
        stages = json.load(handle)["stages"]
    analyze = stages.get("analyze", {})
    return {
        "stages_s": {name: stages[name].get("seconds") for name in STAGE_ORDER if name in stages},
        "written": stages.get("normalize", {}).get("written"),
        "splits": {s: v["examples"] for s, v in stages.get("split", {}).get("splits", {}).items()},
        "channel_std": analyze.get("channel_std"),
        "psd_examples": analyze.get("psd_examples"),
    }


def plain_figures(out: str) -> dict:
    with open(os.path.join(out, "plain_summary.json")) as handle:
        summary = json.load(handle)
    return {
        "stages_s": summary["seconds"],
        "written": summary["written"],
        "splits": summary["splits"],
        "channel_std": summary["channel_std"],
        "psd_examples": summary["psd_examples"],
    }


def du_mib(path: str) -> float:
    total = 0
    for folder, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(folder, f)) for f in files)
    return round(total / 2**20, 1)


def run_variant(name: str, raw: str, work: str, env: dict[str, str], keep: bool) -> dict:
    out = os.path.join(work, f"out-{name}")
    if name == "plain":
        cmd, figures = plain_cmd(raw, out), plain_figures
    else:
        cmd, figures = sigforge_cmd(raw, out, name), sigforge_figures
    log = os.path.join(work, f"{name}.log")
    load_before = os.getloadavg()[0]
    result = {"variant": name, "cmd": " ".join(cmd), **measure(cmd, log, env)}
    result["loadavg_1m_before"] = round(load_before, 2)
    if result["rc"] != 0:
        with open(log, errors="replace") as handle:
            tail = handle.read()[-3000:]
        print(f"!! {name} failed (rc={result['rc']}), log {log}:\n{tail}", file=sys.stderr)
        return result
    result.update(figures(out))
    result["stage_total_s"] = round(sum(v for v in result["stages_s"].values() if v), 2)
    result["output_mib"] = du_mib(out)
    if name == "sigforge":  # what `sigforge run` adds without --no-report, measured apart from the comparison
        timed = measure(report_cmd(out), os.path.join(work, "report.log"), env)
        result["report"] = {k: timed[k] for k in ("rc", "wall_s", "cpu_user_s", "cpu_sys_s", "max_rss_mib")}
    if not keep:
        shutil.rmtree(out, ignore_errors=True)
    return result


# Report ---------------------------------------------------------------------------------------------------


def agreement(a: dict, b: dict) -> str:
    """Whether two variants produced the same split counts and per-channel std (to 1e-6 relative)."""
    if a.get("rc") or b.get("rc"):
        return "n/a (a run failed)"
    same_splits = a["splits"] == b["splits"] and a["psd_examples"] == b["psd_examples"]
    rel = max(abs(x - y) / abs(y) for x, y in zip(a["channel_std"], b["channel_std"], strict=True))
    return f"splits {'equal' if same_splits else 'DIFFER'}, channel_std max rel diff {rel:.1e}"


def print_size(n: int, runs: list[dict]) -> None:
    ok = [r for r in runs if r["rc"] == 0]
    print(f"\n== N = {n} examples ==")
    header = f"{'variant':<14}{'wall s':>8}{'ex/s':>8}{'stages s':>10}{'ex/s*':>8}{'max RSS':>9}{'tree RSS':>10}"
    header += f"{'cpu s':>8}{'load':>6}"
    print(header)
    for r in runs:
        if r["rc"] != 0:
            print(f"{r['variant']:<14} FAILED rc={r['rc']}")
            continue
        print(
            f"{r['variant']:<14}{r['wall_s']:>8.1f}{n / r['wall_s']:>8.1f}{r['stage_total_s']:>10.1f}"
            f"{n / r['stage_total_s']:>8.1f}{r['max_rss_mib']:>8.0f}M{r['tree_rss_mib']:>9.0f}M"
            f"{r['cpu_user_s'] + r['cpu_sys_s']:>8.0f}{r['loadavg_1m_before']:>6.1f}"
        )
    print("(ex/s = N / wall incl. interpreter start + imports; ex/s* = N / time inside the stages)")
    plain = next((r for r in ok if r["variant"] == "plain"), None)
    for r in ok:
        if r["variant"] == "plain" or plain is None:
            continue
        print(
            f"{r['variant']}/plain throughput: {plain['wall_s'] / r['wall_s']:.2f} (wall), "
            f"{plain['stage_total_s'] / r['stage_total_s']:.2f} (stages); "
            f"{_cpu(plain) / _cpu(r):.2f} (CPU s); i.e. {r['wall_s'] / plain['wall_s']:.1f}x the plain script's "
            f"wall time; {agreement(r, plain)}"
        )
    default = next((r for r in ok if r["variant"] == "sigforge"), None)
    for r in ok:
        if default is not None and r["variant"] in ("sigforge-2w", "sigforge-mt2", "sigforge-1t"):
            print(
                f"{r['variant']}/sigforge (default) throughput: {default['wall_s'] / r['wall_s']:.2f} (wall), "
                f"{default['stage_total_s'] / r['stage_total_s']:.2f} (stages), CPU s {_cpu(r):.0f} vs "
                f"{_cpu(default):.0f}; {agreement(r, default)}"
            )
    if default is not None and default.get("report"):
        rep = default["report"]
        print(
            f"sigforge report (not in the ratios: the plain script draws none): {rep['wall_s']:.1f} s wall, "
            f"{rep['cpu_user_s'] + rep['cpu_sys_s']:.1f} CPU s, rc {rep['rc']}"
        )
    for r in ok:
        stages = ", ".join(f"{k} {v:.1f} ({v / r['wall_s']:.0%})" for k, v in r["stages_s"].items() if v is not None)
        other = r["wall_s"] - r["stage_total_s"]
        print(
            f"  {r['variant']:<13} stages s (share of wall): {stages}; "
            f"startup/other {other:.1f} ({other / r['wall_s']:.0%})"
        )


def _cpu(run: dict) -> float:
    return run["cpu_user_s"] + run["cpu_sys_s"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[4000, 16000], help="sample sizes (default 4000 16000)")
    parser.add_argument("--workers", action="store_true", help="also run sigforge with 2 worker processes")
    parser.add_argument("--threads", action="store_true", help="also run sigforge with Beam's 2 worker threads")
    parser.add_argument(
        "--one-thread", action="store_true", help="also run sigforge with build.numeric_threads=1 (no numeric pool)"
    )
    parser.add_argument("--no-plain", action="store_true", help="skip the plain-script baseline")
    parser.add_argument("--repeat", type=int, default=1, help="runs per variant (each is reported)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None, help="parent of the temporary folder (default: system temp)")
    parser.add_argument("--keep", action="store_true", help="keep the generated data and outputs")
    parser.add_argument(
        "--raw-root", default=None, help="keep generated samples in RAW_ROOT/g2net-N-seedS and reuse them on later runs"
    )
    parser.add_argument("--results", default=os.path.join(tempfile.gettempdir(), "sigforge_bench_run.json"))
    args = parser.parse_args(argv)

    sys.path.insert(0, REPO)
    from transforms.recipes.g2net import sample as gw_sample

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": REPO}
    variants = (["plain"] if not args.no_plain else []) + ["sigforge"]
    variants += (["sigforge-2w"] if args.workers else []) + (["sigforge-mt2"] if args.threads else [])
    variants += ["sigforge-1t"] if args.one_thread else []
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "config": CONFIG,
        "sizes": args.n,
        "runs": {},
    }
    for n in args.n:
        work = tempfile.mkdtemp(prefix=f"sigforge-bench-{n}-", dir=args.workdir)
        raw = os.path.join(args.raw_root or work, f"g2net-{n}-seed{args.seed}" if args.raw_root else "raw")
        started = time.monotonic()
        if not os.path.exists(os.path.join(raw, "training_labels.csv")):  # written last: a complete sample
            gw_sample.write_g2net_sample(raw, n=n, seed=args.seed, signals_per_source=3, overwrite=True)
        generated = time.monotonic() - started
        print(f"sample of {n} ready in {generated:.1f} s (not timed) -> {raw} ({du_mib(raw):.0f} MiB)", flush=True)
        runs = []
        for repeat in range(args.repeat):
            for name in variants:
                print(f"  running {name} (repeat {repeat + 1}/{args.repeat}) ...", flush=True)
                result = run_variant(name, raw, work, env, args.keep and repeat == args.repeat - 1)
                result["repeat"] = repeat
                runs.append(result)
                if result["rc"] == 0:
                    print(f"    {result['wall_s']:.1f} s, max RSS {result['max_rss_mib']:.0f} MiB", flush=True)
        print_size(n, runs)
        report["runs"][str(n)] = {"generate_s": round(generated, 1), "results": runs}
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")
        # Written after every size so an interrupted benchmark still leaves its figures.
        with open(args.results, "w") as handle:
            json.dump(report, handle, indent=2)
    print(f"\nresults written to {args.results}")
    return 0 if all(r["rc"] == 0 for size in report["runs"].values() for r in size["results"]) else 1


if __name__ == "__main__":
    sys.exit(main())
