"""Search-grade science benchmark: trainer stability over seeds, CNN vs matched filter at low false-alarm
probability against a large noise-only background, and the false-alarm rates on glitchy noise.

    python benchmarks/bench_science.py [--n 4000] [--background 20000] [--glitch-background 2000] [--seeds 3] \
        [--demo-n 1200] [--epochs E] [--train-set K=V ...] [--psd estimated] [--templates 256] [--workers W] \
        [--workdir DIR] [--results JSON]

Protocol (``make bench-science`` runs it at full size; docs/gravitational-waves.md, "Search-grade evaluation"):

1. ``make demo`` (``beam_pipelines.commands.demo``) with ``--seeds`` sample seeds at ``--demo-n`` samples: every
   epoch's val ROC-AUC and val loss, and the epochs that collapsed (val AUC <= 0.55 with val loss > 2);
2. a fresh ``--n``-sample G2Net set (3 signals per source, SNR U(4, 20)) -> ``sigforge run`` (demo recipe);
   a ``--background``-sample noise-only set and a ``--glitch-background``-sample glitchy noise-only set
   (``--glitch-rate`` per detector, SNR U(6, 30) sine-Gaussians and blips), different seeds;
3. the default ``run_configs/train_g2net.yaml`` trained with ``--seeds`` trainer seeds: every epoch's val AUC;
4. ``sigforge baseline matched-filter --psd estimated --background BG --glitch-background GL`` on the raw set;
5. ``python -m model.evaluate --baseline --background BG --glitch-background GL`` for every default-config run: CNN
   and MF efficiency at FAP 1e-2, 1e-3, 1e-4 with Clopper-Pearson 95 % intervals (FAPs with fewer than 10
   background false alarms refused), SNR at 50/90 % efficiency, the sensitive-distance ratio CNN / MF, and the
   glitch false-alarm ratio (glitchy / clean) of both at the clean thresholds.

The issue's goals are checked and printed: no collapsed epoch in any of the ``2 x seeds`` trainings, CNN efficiency
>= 0.95 x MF efficiency at FAP 1e-3. Everything goes into one JSON (``--results``, default WORKDIR/science.json).
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import math
import os
import platform
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLAPSE_AUC, COLLAPSE_LOSS = 0.55, 2.0
GOAL_FAP, GOAL_RATIO = "0.001", 0.95


def _fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"


def _eff(entry: dict) -> str:
    low, high = entry["interval"]
    return f"{_fmt(entry['efficiency'])} [{_fmt(low)}, {_fmt(high)}]"


def _history(run_dir: str) -> dict:
    """Per-epoch val AUC and loss of a run (its metrics JSON), with the collapsed epochs (1-based)."""
    (path,) = glob.glob(os.path.join(run_dir, "*_metrics.json"))
    with open(path) as handle:
        training = json.load(handle)["training"]
    history = training["history"]
    auc, loss = history.get("val_auc", []), history.get("val_loss", [])
    collapsed = [
        i + 1 for i, (a, lo) in enumerate(zip(auc, loss, strict=False)) if a <= COLLAPSE_AUC and lo > COLLAPSE_LOSS
    ]
    return {
        "run_dir": run_dir,
        "val_auc": auc,
        "val_loss": loss,
        "collapsed_epochs": collapsed,
        "best_epoch": training["best_epoch"],
        "seconds": training["seconds"],
    }


def _demo_runs(args, workdir: str) -> list[dict]:
    from beam_pipelines.commands import demo

    out = []
    for seed in range(args.seeds):
        folder = os.path.join(workdir, f"demo_seed{seed}")
        argv = ["--out", folder, "--n", str(args.demo_n), "--seed", str(seed), "--epochs", str(args.demo_epochs)]
        if demo.main(argv) != 0:
            raise SystemExit(f"make demo failed for seed {seed}")
        (run_dir,) = [os.path.dirname(p) for p in glob.glob(os.path.join(folder, "runs", "*", "*_metrics.json"))]
        out.append({"sample_seed": seed, **_history(run_dir)})
    return out


def _search_row(search: dict, key: str) -> dict:
    """CNN and MF efficiency (with intervals), SNR at 50/90 %, distance ratio at one FAP."""
    cnn, mf = search["cnn"]["faps"].get(key, {}), search.get("baseline", {}).get("faps", {}).get(key, {})
    ratio = search.get("cnn_vs_baseline", {}).get(key, {})
    row = {"resolvable": bool(cnn.get("resolvable") and mf.get("resolvable"))}
    if not row["resolvable"]:
        row["reason"] = cnn.get("reason") or mf.get("reason")
        return row
    for name, entry in (("cnn", cnn), ("mf", mf)):
        row[name] = {
            "efficiency": entry["efficiency"],
            "interval": entry["efficiency_interval"],
            "snr_at_50pct": entry.get("snr_at_50pct"),
            "snr_at_90pct": entry.get("snr_at_90pct"),
        }
    row["efficiency_ratio"] = ratio.get("efficiency_ratio")
    row["distance_ratio"] = ratio.get("distance_ratio")
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=4000, help="generated samples (default 4000)")
    parser.add_argument("--background", type=int, default=20000, help="noise-only background samples (default 20000)")
    parser.add_argument("--glitch-background", type=int, default=2000, help="glitchy noise-only samples (default 2000)")
    parser.add_argument("--glitch-rate", type=float, default=0.1, help="glitch probability per detector (default 0.1)")
    parser.add_argument(
        "--seeds", type=int, default=3, help="trainer seeds of the default config and demo sample seeds"
    )
    parser.add_argument("--demo-n", type=int, default=1200, help="samples of each make demo (default 1200; 0: skip)")
    parser.add_argument("--demo-epochs", type=int, default=3, help="epochs of each make demo (default 3)")
    parser.add_argument("--sample-seed", type=int, default=1, help="seed of the --n set (default 1)")
    parser.add_argument(
        "--epochs", type=int, default=None, help="epoch budget of the default config (default: its own)"
    )
    parser.add_argument("--train-set", action="append", default=[], metavar="KEY=VALUE", help="trainer override")
    parser.add_argument("--psd", choices=["design", "estimated"], default="estimated", help="matched-filter PSD")
    parser.add_argument("--templates", type=int, default=256, help="matched-filter bank size (default 256)")
    parser.add_argument("--workers", type=int, default=1, help="matched-filter Beam worker processes (default 1)")
    parser.add_argument("--workdir", default=None, help="work folder (default: a temporary one, kept)")
    parser.add_argument("--results", default=None, help="JSON output (default WORKDIR/science.json)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%X")
    logging.getLogger("absl").setLevel(logging.WARNING)
    os.chdir(REPO)
    sys.path.insert(0, REPO)

    from beam_pipelines.recipes.g2net.baseline import run_matched_filter
    from beam_pipelines.stages.run_all import run_all
    from model.evaluate import evaluate
    from model.train import train
    from transforms.config import DatasetConfig, load_config
    from transforms.evaluation.metrics import jsonable
    from transforms.recipes.g2net import sample as gw_sample
    from transforms.recipes.g2net.glitches import GlitchSpec

    workdir = args.workdir or tempfile.mkdtemp(prefix="sigforge_science_")
    raw, bg, gl, dataset, runs, mf_dir = (
        os.path.join(workdir, name) for name in ("raw", "background", "glitchy", "dataset", "runs", "mf")
    )
    seconds: dict[str, float] = {}

    def step(name, fn):
        started = time.monotonic()
        result = fn()
        seconds[name] = time.monotonic() - started
        logging.info("bench_science: %s done in %.1f s", name, seconds[name])
        return result

    demo = step("make_demo", lambda: _demo_runs(args, workdir)) if args.demo_n else []
    step("make_sample", lambda: gw_sample.write_g2net_sample(raw, args.n, args.sample_seed, 3, overwrite=True))
    step(
        "make_background",
        lambda: gw_sample.write_g2net_sample(
            bg, args.background, args.sample_seed + 100, positive_fraction=0.0, overwrite=True
        ),
    )
    glitches = GlitchSpec(rate=args.glitch_rate)
    step(
        "make_glitch_background",
        lambda: gw_sample.write_g2net_sample(
            gl, args.glitch_background, args.sample_seed + 200, positive_fraction=0.0, glitches=glitches, overwrite=True
        ),
    )
    step(
        "sigforge_run",
        lambda: run_all(load_config(DatasetConfig, "run_configs/demo.yaml"), raw, dataset, overwrite=True),
    )
    overrides = ([f"train.epochs={args.epochs}"] if args.epochs else []) + list(args.train_set)
    default_runs = []
    for seed in range(args.seeds):
        run_dir = step(
            f"train_seed{seed}",
            lambda seed=seed: train(
                dataset,
                "run_configs/train_g2net.yaml",
                runs,
                name=f"seed{seed}",
                overrides=[f"seed={seed}", *overrides],
            ),
        )
        default_runs.append({"trainer_seed": seed, **_history(run_dir)})
    mf = step(
        "matched_filter",
        lambda: run_matched_filter(
            raw,
            mf_dir,
            psd=args.psd,
            n_templates=args.templates,
            seed=args.sample_seed,
            overwrite=True,
            workers=args.workers,
            background=bg,
            glitch_background=gl,
        ),
    )
    for run in default_runs:
        payload = step(
            f"evaluate_seed{run['trainer_seed']}",
            lambda run=run: evaluate(
                dataset,
                run["run_dir"],
                "test",
                baseline=os.path.join(mf_dir, "scores.csv"),
                background=bg,
                glitch_background=gl,
            ),
        )
        search = payload["search"]
        run["search"] = {key: _search_row(search, key) for key in search["cnn"]["faps"]}
        run["glitch_false_alarm_ratio"] = {
            name: {
                key: round(entry["ratio"], 2) if entry.get("resolvable") else None
                for key, entry in search.get("glitches", {}).get(name, {}).items()
            }
            for name in ("cnn", "baseline")
        }
        run["test_roc_auc"] = payload["splits"]["test"]["roc_auc"]

    trainings = demo + default_runs
    collapsed = sum(bool(r["collapsed_epochs"]) for r in trainings)
    goal_rows = [r["search"].get(GOAL_FAP, {}) for r in default_runs]
    goal = [row.get("efficiency_ratio") for row in goal_rows if row.get("resolvable")]
    summary = {
        "n": args.n,
        "background": args.background,
        "glitch_background": args.glitch_background,
        "glitch_rate": args.glitch_rate,
        "seeds": args.seeds,
        "demo_n": args.demo_n,
        "mf_psd": args.psd,
        "mf_templates": args.templates,
        "mf_minimal_match": mf["bank"]["minimal_match"],
        "demo_runs": demo,
        "default_runs": default_runs,
        "goals": {
            "trainings_with_a_collapsed_epoch": collapsed,
            "no_collapse": collapsed == 0,
            f"cnn_over_mf_efficiency_at_fap_{GOAL_FAP}": goal,
            "cnn_at_least_0.95_mf": bool(goal)
            and len(goal) == len(default_runs)
            and all(g >= GOAL_RATIO for g in goal),
        },
        "seconds": seconds,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()[0]},
    }
    lines = ["", f"science benchmark: N={args.n}, background {args.background}, glitchy {args.glitch_background}"]
    for r in trainings:
        label = (
            f"demo sample seed {r['sample_seed']}"
            if "sample_seed" in r
            else f"default trainer seed {r['trainer_seed']}"
        )
        lines.append(
            f"{label}: val AUC per epoch {[round(v, 3) for v in r['val_auc']]}, val loss "
            f"{[round(v, 2) for v in r['val_loss']]}, collapsed epochs {r['collapsed_epochs'] or 'none'}"
        )
    for r in default_runs:
        lines.append(f"seed {r['trainer_seed']}: test ROC-AUC {_fmt(r['test_roc_auc'])}")
        for key, row in r["search"].items():
            if not row["resolvable"]:
                lines.append(f"  FAP {key}: unresolvable: {row['reason']}")
                continue
            c, m = row["cnn"], row["mf"]
            lines.append(
                f"  FAP {key}: efficiency CNN {_eff(c)} MF {_eff(m)}, ratio {_fmt(row['efficiency_ratio'])}; "
                f"SNR50 {_fmt(c['snr_at_50pct'], 1)}/{_fmt(m['snr_at_50pct'], 1)}, "
                f"SNR90 {_fmt(c['snr_at_90pct'], 1)}/{_fmt(m['snr_at_90pct'], 1)}; "
                f"distance ratio {_fmt(row['distance_ratio'])}"
            )
        ratios = r["glitch_false_alarm_ratio"]
        lines.append(f"  glitch false-alarm ratio (glitchy / clean) CNN {ratios['cnn']}, MF {ratios['baseline']}")
    lines.append(f"goals: {json.dumps(jsonable(summary['goals']))}")
    lines.append("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()))
    print("\n".join(lines))
    results = args.results or os.path.join(workdir, "science.json")
    with open(results, "w") as handle:
        json.dump(jsonable(summary), handle, indent=2)
    print(f"results: {results}\nwork folder: {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
