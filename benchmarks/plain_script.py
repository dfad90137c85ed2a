"""The "plain script" baseline: the work of ``sigforge run`` as one single-process numpy + TensorFlow loop.

    python benchmarks/plain_script.py --config run_configs/demo.yaml --input RAW --output OUT

The pipeline itself is the tests' oracle, ``tests/oracles/plain_pipeline.py`` (what it does, step by step, and
how it differs from sigforge on purpose); this is its command line. It prints the run's summary (per-step
seconds, counts, statistics, as in ``OUT/plain_summary.json``) with the total seconds, as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository root

from tests.oracles.plain_pipeline import run  # noqa: E402
from transforms.config import DatasetConfig, load_config  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="run_configs/demo.yaml")
    parser.add_argument("--input", required=True, help="G2Net-layout raw folder")
    parser.add_argument("--output", required=True, help="output folder (must not exist or be empty)")
    args = parser.parse_args(argv)
    if os.path.isdir(args.output) and os.listdir(args.output):
        parser.error(f"--output {args.output} is not empty")
    os.makedirs(args.output, exist_ok=True)
    started = time.monotonic()
    summary = run(load_config(DatasetConfig, args.config), args.input, args.output)
    total = time.monotonic() - started
    print(json.dumps({**summary, "total_seconds": round(total, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
