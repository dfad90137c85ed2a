"""Cost of an integrity step on an existing G2Net dataset folder.

    python benchmarks/bench_integrity.py OUT [--repeat 3]

**The trainer's pre-flight check** (``model.data.check_dataset`` with ``run_configs/train_g2net.yaml``): the
whole call, and the part of it that is the record audit (``transforms.audit.audit_dataset``), timed alone.

The folder is left as it was. Prints one JSON object (the last recorded figures: benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def time_preflight(out: Path, repeat: int) -> dict:
    from model.config import TrainerConfig, load_trainer_config
    from model.data import check_dataset
    from transforms.audit import audit_dataset

    config: TrainerConfig = load_trainer_config("run_configs/train_g2net.yaml")
    full = _best(lambda: check_dataset(str(out), config), repeat)
    audit = _best(lambda: audit_dataset(str(out)), repeat)
    return {"check_dataset_s": round(full, 2), "of_which_audit_s": round(audit, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(json.dumps({"preflight": time_preflight(args.out, args.repeat)}, indent=2))  # noqa: T201


if __name__ == "__main__":
    main()
