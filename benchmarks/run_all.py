"""``make bench``: every benchmark at sizes that finish in a few minutes on a 2-core machine.

    python benchmarks/run_all.py                 # N = 2000 and 4000, plain script vs sigforge (in-memory)
    python benchmarks/run_all.py --full          # N = 4000 and 16000
    python benchmarks/run_all.py --multiproc     # also sigforge with 2 multi-processing workers
    python benchmarks/run_all.py --n 1000        # any sizes

Figures are printed and written to benchmarks/results.json (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_run  # noqa: E402

DEFAULT_SIZES = [2000, 4000]
FULL_SIZES = [4000, 16000]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--full", action="store_true", help=f"sizes {FULL_SIZES} instead of {DEFAULT_SIZES}")
    sizes.add_argument("--n", type=int, nargs="+", help="explicit sizes")
    parser.add_argument("--multiproc", action="store_true", help="also time --direct_running_mode=multi_processing")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    chosen = args.n or (FULL_SIZES if args.full else DEFAULT_SIZES)
    forwarded = ["--n", *map(str, chosen), "--repeat", str(args.repeat)]
    if args.multiproc:
        forwarded.append("--multiproc")
    print(f"bench_run.py {' '.join(forwarded)}", flush=True)
    return bench_run.main(forwarded)


if __name__ == "__main__":
    sys.exit(main())
