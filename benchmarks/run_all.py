"""``make bench``: every benchmark in one run, its figures in one results file, ``benchmarks/RESULTS.md``.

1. the pipeline benchmark (``bench_run.py``: the plain script against sigforge in memory, with Beam's 2 worker
   processes, with Beam's 2 worker threads and without the numeric pool (``--one-thread``), at N = 4000 and
   16000: throughput ratios, the speed-up of each variant against the default, peak RSS, the share of each stage);
2. the light-curve benchmark (``bench_tce.py``: CPU-s per 17-quarter star and peak RSS at 8 and 32 stars);
3. the trainer's input pipeline against its training step (``bench_trainer.py``).

    python benchmarks/run_all.py                 # make bench: N = 4000 and 16000, every variant
    python benchmarks/run_all.py --quick         # N = 2000 and 4000, in memory only, no trainer benchmark
    python benchmarks/run_all.py --n 1000        # any sizes

Every ratio is measured within this one run. What each benchmark printed goes into RESULTS.md verbatim, with the
machine, the date and the JSON figures of each benchmark; nothing else is written. Generated samples can be
reused with ``--raw-root``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import os
import platform
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_run  # noqa: E402

QUICK_SIZES = [2000, 4000]
FULL_SIZES = [4000, 16000]
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")


class _Tee(io.TextIOBase):
    """Writes to the terminal and keeps a copy for the results file."""

    def __init__(self, stream):
        self.stream, self.copy = stream, io.StringIO()

    def write(self, text: str) -> int:
        self.stream.write(text)
        self.copy.write(text)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def _section(title: str, command: str, printed: str, figures_path: str | None) -> str:
    parts = [f"## {title}", "", f"`{command}`", "", "```text", printed.rstrip(), "```", ""]
    if figures_path and os.path.exists(figures_path):
        with open(figures_path) as handle:
            figures = json.load(handle)
        parts += ["<details><summary>figures (JSON)</summary>", "", "```json", json.dumps(figures, indent=1)]
        parts += ["```", "", "</details>", ""]
    return "\n".join(parts)


def _run(title: str, command: str, main, argv: list[str], figures_path: str | None, sections: list[str]) -> int:
    print(command, flush=True)
    tee = _Tee(sys.stdout)
    with contextlib.redirect_stdout(tee):
        code = main(argv)
    sections.append(_section(title, command, tee.copy.getvalue(), figures_path))
    return code


def write_results(sections: list[str], path: str = RESULTS) -> None:
    head = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`benchmarks/run_all.py`); every ratio below was measured within this one run.",
        f"Date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}; machine: "
        f"{os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}; load at the end: "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}.",
        "",
    ]
    with open(path, "w") as handle:
        handle.write("\n".join(head + sections))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--quick", action="store_true", help=f"sizes {QUICK_SIZES}, in memory only, no trainer")
    sizes.add_argument("--n", type=int, nargs="+", help="explicit sizes")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--raw-root", default=None, help="reuse generated G2Net samples kept here (bench_run.py)")
    parser.add_argument("--results", default=RESULTS, help="the results file (default benchmarks/RESULTS.md)")
    args = parser.parse_args(argv)
    chosen = args.n or (QUICK_SIZES if args.quick else FULL_SIZES)
    sections: list[str] = []
    with tempfile.TemporaryDirectory(prefix="sigforge-bench-figures-") as figures:
        run_json = os.path.join(figures, "run.json")
        forwarded = ["--n", *map(str, chosen), "--repeat", str(args.repeat), "--results", run_json]
        if args.raw_root:
            forwarded += ["--raw-root", args.raw_root]
        if not args.quick:
            forwarded += ["--workers", "--threads", "--one-thread"]
        title = "Pipeline throughput (G2Net)"
        code = _run(title, f"bench_run.py {' '.join(forwarded)}", bench_run.main, forwarded, run_json, sections)
        if code == 0 and not args.quick:
            import bench_tce

            tce_json = os.path.join(figures, "tce.json")
            tce_args = ["--stars", "8", "32", "--results", tce_json]
            code = _run("Light curves (TCE)", "bench_tce.py --stars 8 32", bench_tce.main, tce_args, tce_json, sections)
        if code == 0 and not args.quick:
            import bench_trainer

            trainer_args = ["--n", "512", "--batches", "10"]
            title = "Trainer input pipeline"
            code = _run(
                title, "bench_trainer.py --n 512 --batches 10", bench_trainer.main, trainer_args, None, sections
            )
        write_results(sections, args.results)
    print(f"results: {args.results}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
