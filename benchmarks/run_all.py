"""``make bench``: the pipeline benchmark (plain script vs sigforge, in memory, with the ``local_multiprocess``
profile, with Beam's 2 worker processes per pipeline, with Beam's 2 worker threads and without the numeric pool
(``--one-thread``), at N = 4000 and 16000: throughput ratios, 2-worker speed-up, peak RSS, the share of each
stage), the light-curve benchmark (CPU-s per 17-quarter star and peak RSS at 8 and 32 stars), then the
trainer's input pipeline vs training step. Generated samples can be reused with ``--raw-root``.

    python benchmarks/run_all.py                 # make bench: N = 4000 and 16000, --pool --workers --threads
                                                 #   --one-thread
    python benchmarks/run_all.py --quick         # N = 2000 and 4000, in memory only, no trainer benchmark
    python benchmarks/run_all.py --n 1000        # any sizes

Figures are printed and written to benchmarks/results.json and benchmarks/results_tce.json (see
benchmarks/README.md); benchmarks/RESULTS.md holds the last recorded figures, copied by hand.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_run  # noqa: E402

QUICK_SIZES = [2000, 4000]
FULL_SIZES = [4000, 16000]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--quick", action="store_true", help=f"sizes {QUICK_SIZES}, in memory only, no trainer")
    sizes.add_argument("--n", type=int, nargs="+", help="explicit sizes")
    sizes.add_argument("--full", action="store_true", help=f"sizes {FULL_SIZES} (the default; kept for old commands)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--raw-root", default=None, help="reuse generated G2Net samples kept here (bench_run.py)")
    args = parser.parse_args(argv)
    chosen = args.n or (QUICK_SIZES if args.quick else FULL_SIZES)
    forwarded = ["--n", *map(str, chosen), "--repeat", str(args.repeat)]
    if args.raw_root:
        forwarded += ["--raw-root", args.raw_root]
    if not args.quick:
        forwarded += ["--pool", "--workers", "--threads", "--one-thread"]
    print(f"bench_run.py {' '.join(forwarded)}", flush=True)
    code = bench_run.main(forwarded)
    if code != 0 or args.quick:
        return code
    import bench_tce

    print("bench_tce.py --stars 8 32", flush=True)
    code = bench_tce.main(["--stars", "8", "32"])
    if code != 0:
        return code
    import bench_trainer

    print("bench_trainer.py --n 512 --batches 10", flush=True)
    return bench_trainer.main(["--n", "512", "--batches", "10"])


if __name__ == "__main__":
    sys.exit(main())
