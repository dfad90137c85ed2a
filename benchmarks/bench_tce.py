"""Light curves at catalogue speed: CPU seconds per star and peak memory of the TCE build, at two catalogue sizes.

    python benchmarks/bench_tce.py --stars 8 32 [--quarters 17] [--days 88] [--stage build] [--results PATH]

Stars are generated once per size (``transforms.recipes.tce.sample.write_tce_sample``, not timed): Kepler-format
FITS, ``--quarters`` quarters of ``--days`` days each (17 x 88 d: a 4-year Kepler star, ~73k cadences), kinds
cycling multi (a 0.5-1.5 d planet plus 2-3 more planets and a false alarm), planet, eb, mixed. Measured:

- ``numerics``: in this process, read every FITS file and ``target.process_target`` each star (what one Beam call
  per star does): CPU seconds per star (``time.process_time``), best of ``--repeat``;
- ``sigforge build`` (or ``--stage run``) with ``run_configs/tce_kepler.yaml`` as a subprocess (bench_run.measure):
  CPU seconds (user + sys of the process tree) per star, wall time, peak RSS; the in-stage seconds from the
  manifest.

Prints, per size, examples per star, the CPU-s per star and peak RSS; then the RSS ratio of the largest size to
the smallest and the CPU-s per additional star of sigforge (the difference of the two runs' CPU over the
difference of their stars, so the fixed start-up, TensorFlow and Beam imports, cancels); writes
its figures as JSON to ``--results`` (``make bench`` folds them into ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import glob
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_run  # noqa: E402

REPO = bench_run.REPO
CONFIG = "run_configs/tce_kepler.yaml"
KINDS = ("multi", "planet", "eb", "mixed")


def numerics_cpu_per_star(raw: str, repeat: int) -> dict:
    """Best-of-``repeat`` CPU seconds per star of FITS reading + process_target, in this process."""
    from transforms.config import DatasetConfig, validate
    from transforms.recipes.tce import fits_io, target, tce_table

    cfg = validate(DatasetConfig, {"recipe": "tce", "tce": {}}).tce
    with open(os.path.join(raw, "tces.csv"), newline="") as handle:
        tces = [tce_table.parse_tce(row, cfg) for row in csv.DictReader(handle)]
    folders = sorted(f for f in glob.glob(os.path.join(raw, "*", "*")) if os.path.isdir(f))
    best, examples = float("inf"), 0
    for _ in range(repeat):
        started, examples = time.process_time(), 0
        for folder in folders:
            paths = sorted(glob.glob(os.path.join(folder, "*.fits")))
            curves = []
            for path in paths:
                with open(path, "rb") as handle:
                    curves.append(fits_io.read_light_curve(handle.read(), path, cfg))
            own = [t for t in tces if t.target_id == curves[0].target_id]
            examples += len(target.process_target(curves[0].target_id, curves, own, cfg)[0])
        best = min(best, time.process_time() - started)
    return {"cpu_s_per_star": round(best / len(folders), 4), "examples_per_star": round(examples / len(folders), 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stars", type=int, nargs="+", default=[8, 32], help="catalogue sizes (default 8 32)")
    parser.add_argument("--quarters", type=int, default=17)
    parser.add_argument("--days", type=float, default=88.0, help="days per quarter")
    parser.add_argument("--stage", choices=("build", "run"), default="build", help="sigforge command to measure")
    parser.add_argument("--repeat", type=int, default=2, help="repeats of the in-process numerics figure")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--results", default=os.path.join(tempfile.gettempdir(), "sigforge_bench_tce.json"))
    args = parser.parse_args(argv)

    sys.path.insert(0, REPO)
    from transforms.recipes.tce import sample as tce_sample

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": REPO}
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "quarters": args.quarters,
        "days_per_quarter": args.days,
        "kinds": KINDS,
        "stage": args.stage,
        "sizes": {},
    }
    for stars in args.stars:
        work = tempfile.mkdtemp(prefix=f"sigforge-bench-tce-{stars}-", dir=args.workdir)
        raw, out = os.path.join(work, "raw"), os.path.join(work, "out")
        summary = tce_sample.write_tce_sample(
            raw, n_targets=stars, seed=0, quarters=args.quarters, days_per_quarter=args.days, kinds=KINDS
        )
        numerics = numerics_cpu_per_star(raw, args.repeat)
        cmd = [sys.executable, "-m", "beam_pipelines.commands.cli", args.stage, "--config", CONFIG]
        cmd += ["--input", raw, "--output", out]
        load = os.getloadavg()[0]
        measured = bench_run.measure(cmd, os.path.join(work, "sigforge.log"), env)
        entry = {"files": summary["files"], "tces": summary["tces"], "numerics": numerics, "cmd": " ".join(cmd)}
        entry.update(measured, loadavg_1m_before=round(load, 2))
        if measured["rc"] == 0:
            with open(os.path.join(out, "manifest.json")) as handle:
                stages = json.load(handle)["stages"]
            entry["stages_s"] = {name: stage.get("seconds") for name, stage in stages.items()}
            entry["written"] = stages["build"]["written"]
            entry["cpu_s_per_star"] = round((measured["cpu_user_s"] + measured["cpu_sys_s"]) / stars, 3)
        else:
            print(f"!! sigforge {args.stage} failed (rc={measured['rc']}), log in {work}", file=sys.stderr)
        report["sizes"][str(stars)] = entry
        print(
            f"{stars:>4} stars ({summary['files']} files, {summary['tces']} TCEs): numerics "
            f"{numerics['cpu_s_per_star']:.3f} CPU-s/star ({numerics['examples_per_star']:.0f} examples/star); "
            f"sigforge {args.stage}: {entry.get('cpu_s_per_star', float('nan')):.3f} CPU-s/star incl. start-up, "
            f"wall {measured['wall_s']:.1f} s, stages {entry.get('stages_s')}, max RSS {measured['max_rss_mib']:.0f} "
            f"MiB, tree RSS {measured['tree_rss_mib']:.0f} MiB, load {load:.1f}",
            flush=True,
        )
        if measured["rc"] == 0:
            shutil.rmtree(work, ignore_errors=True)
    sizes = [report["sizes"][str(s)] for s in args.stars]
    ok = all(s["rc"] == 0 for s in sizes)
    if ok and len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        factor = args.stars[-1] / args.stars[0]
        ratio = large["max_rss_mib"] / small["max_rss_mib"]
        cpu = [s["cpu_user_s"] + s["cpu_sys_s"] for s in (small, large)]
        marginal = (cpu[1] - cpu[0]) / (args.stars[-1] - args.stars[0])
        report["rss_ratio"] = round(ratio, 3)
        report["marginal_cpu_s_per_star"] = round(marginal, 3)
        print(f"peak RSS at {factor:.0f}x the stars = {ratio:.2f}x that at 1x (max RSS of one process)")
        print(
            f"sigforge {args.stage}: {marginal:.3f} CPU-s per additional star (CPU of the {args.stars[-1]}-star run "
            f"minus the {args.stars[0]}-star run, over the extra stars: start-up and imports cancel)"
        )
    with open(args.results, "w") as handle:
        json.dump(report, handle, indent=2)
    print(f"results written to {args.results}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
