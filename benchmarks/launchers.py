"""Wall time of an experiment run serially against the same experiment on N local workers, in one run.

    python benchmarks/launchers.py [--experiment experiments/smoke.yaml] [--jobs 2] [--set KEY=VALUE ...]

Runs the experiment twice, one after the other (never side by side), each as a first run on a clean
clone would: its own empty output, results, data and cache folders (so both generate the synthetic
data, the Inception stand-in and the feature cache). First serially in one process with torch's
default threads (`--jobs 1`), then with `--jobs N` (each worker its share of the cores). Prints both
wall times, their ratio, the largest difference between the two tables' KID values (the thread counts
differ, so the last digits may too) and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent


def run(experiment: str, jobs: int, overrides: list[str], folder: Path) -> float:
    env = {**os.environ, "UGATIT_BENCH_CACHE": str(folder / "cache"), "UGATIT_BENCH_RUN_INDEX": str(folder / "index.json")}
    command = [sys.executable, str(ROOT / "run_bench.py"), experiment, "--no-progress", "--jobs", str(jobs),
               "--set", f"output_dir={folder / 'runs'}", "--set", f"results_dir={folder / 'results'}",
               "--set", f"data.root={folder / 'data'}", *[f"--set={o}" for o in overrides]]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"jobs={jobs} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds


def kid_values(folder: Path) -> pd.DataFrame:
    [path] = list((folder / "results").glob("*/scores.csv"))
    frame = pd.read_csv(path).drop_duplicates(["model", "seed", "task"])   # a row per table it appears in
    return frame.set_index(["model", "seed", "task"])["kid"].sort_index()   # already x100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", default=str(ROOT / "experiments" / "smoke.yaml"))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an override for both runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="launchers-") as temporary:
        serial_dir, workers_dir = Path(temporary) / "serial", Path(temporary) / "workers"
        serial = run(args.experiment, 1, args.set, serial_dir)
        print(f"serial, one process, {os.cpu_count()} cores: {serial:8.1f} s", flush=True)
        workers = run(args.experiment, args.jobs, args.set, workers_dir)
        print(f"--jobs {args.jobs}:                         {workers:8.1f} s", flush=True)
        a, b = kid_values(serial_dir), kid_values(workers_dir)
        difference = float((a - b).abs().max())
        side_by_side = pd.DataFrame({"serial": a, f"jobs {args.jobs}": b}).droplevel("seed")
        print("KID x100 of each run:\n" + side_by_side.unstack("task").round(2).to_string())
    ratio = serial / workers
    print(f"speed-up of --jobs {args.jobs} over the serial run: {ratio:.2f}x; largest KID x100 difference between "
          f"their tables: {difference:.3f} ({len(a)} scores)")
    print(json.dumps({"benchmark": "launchers", "experiment": args.experiment, "overrides": args.set, "jobs": args.jobs,
                      "serial_s": round(serial, 1), "workers_s": round(workers, 1), "speedup": round(ratio, 3),
                      "max_kid_x100_difference": difference}))


if __name__ == "__main__":
    main()
