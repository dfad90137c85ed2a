"""Trainer throughput: the tf.data input pipeline's examples/s against the model's training-step examples/s.

    python benchmarks/bench_trainer.py [--data OUT] [--n 1024] [--batches 20]

Without ``--data`` it writes a contract-shaped dataset (strain (3, 4096) float32 norm shards, the layout the
normalize stage produces) with ``model.synthetic.write_fake_dataset``. It then measures, in one process:

* input: iterating ``model.data.make_dataset(..., training=True)`` (interleave, shuffle, batch-then-parse,
  prefetch) with no model attached, after one warm-up epoch through the cache;
* train step: ``model.train_on_batch`` of the configured G2Net CNN on batches already in memory;
* fit: ``model.fit`` on the real input pipeline for one epoch (what training actually achieves).

The input pipeline must outrun the training step (ratio > 1), or the accelerator/CPU would wait on data.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None, help="an existing dataset folder (default: generate one)")
    parser.add_argument("--n", type=int, default=1024, help="train examples of the generated dataset")
    parser.add_argument("--batches", type=int, default=20, help="timed batches per measurement")
    parser.add_argument("--config", default="run_configs/train_g2net.yaml")
    args = parser.parse_args(argv)

    import keras
    import numpy as np

    from model.config import load_trainer_config
    from model.data import check_dataset, make_dataset
    from model.networks import build_model
    from model.synthetic import write_fake_dataset
    from model.train import compile_model, make_optimizer

    config = load_trainer_config(args.config, ["data.cache=true"])
    data_dir = args.data
    if data_dir is None:
        data_dir = tempfile.mkdtemp(prefix="sigforge-bench-trainer-")
        write_fake_dataset(
            data_dir, {"strain": (3, 4096)}, {"train": args.n, "val": 64, "test": 64}, shards_per_split=4
        )
    info = check_dataset(data_dir, config)
    batch = config.data.batch_size

    dataset = make_dataset(info, "train", config, training=True)
    for _ in dataset:  # warm-up epoch: fills the cache, as every epoch after the first reads from it
        pass
    started, seen = time.perf_counter(), 0
    for _ in range(max(1, args.batches // max(1, info.splits["train"].n_examples // batch))):
        for features, _labels in dataset:
            seen += int(features["strain"].shape[0])
    input_rate = seen / (time.perf_counter() - started)

    network = build_model(dict(info.input_spec), config.model)
    compile_model(network, make_optimizer(config.train, steps_per_epoch=args.batches))
    features, labels = next(iter(dataset))
    network.train_on_batch(features, labels)  # compile/trace outside the timing
    started = time.perf_counter()
    for _ in range(args.batches):
        network.train_on_batch(features, labels)
    step_rate = args.batches * int(labels.shape[0]) / (time.perf_counter() - started)

    started = time.perf_counter()
    network.fit(dataset, epochs=1, verbose=0)
    fit_rate = info.splits["train"].n_examples / (time.perf_counter() - started)

    result = {
        "input_examples_per_s": round(input_rate, 1),
        "train_step_examples_per_s": round(step_rate, 1),
        "fit_examples_per_s": round(fit_rate, 1),
        "input_over_step": round(input_rate / step_rate, 1),
        "batch_size": batch,
        "train_examples": info.splits["train"].n_examples,
        "cpu_count": os.cpu_count(),
        "keras_backend": keras.backend.backend(),
        "params": int(np.sum([np.prod(w.shape) for w in network.weights])),
    }
    print(json.dumps(result, indent=2))
    print(
        f"input pipeline {input_rate:,.0f} ex/s vs training step {step_rate:,.0f} ex/s "
        f"(ratio {input_rate / step_rate:.1f}); model.fit on the pipeline: {fit_rate:,.0f} ex/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
