"""Wall time and numbers of an experiment under three ways of using the cores, in one run.

    python benchmarks/launchers.py [--experiment experiments/smoke.yaml] [--jobs 2] [--set KEY=VALUE ...]

Runs the experiment three times, one after the other (never side by side), each as a first run on a
clean clone would: its own empty output, results, data and cache folders (so each generates the
synthetic data, the Inception stand-in and the feature cache):
  threads   one run after another, each with every core as torch threads (`--jobs 1 --threads N`)
  serial    one run after another, the default one torch thread each (`--jobs 1`)
  workers   N runs at once, one torch thread each (`--jobs N`)
Prints the wall times, their ratios, and the largest difference between the tables' KID values: zero
between serial and workers (the same thread count), and the size of the thread count's effect between
threads and workers. Last, one JSON line.
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


def run(experiment: str, jobs: int, overrides: list[str], folder: Path, threads: int = 1) -> float:
    env = {**os.environ, "UGATIT_BENCH_CACHE": str(folder / "cache"), "UGATIT_BENCH_RUN_INDEX": str(folder / "index.json")}
    command = [sys.executable, str(ROOT / "run_bench.py"), experiment, "--no-progress", "--jobs", str(jobs),
               "--threads", str(threads),
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
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an override for every run")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    times, kids = {}, {}
    with tempfile.TemporaryDirectory(prefix="launchers-") as temporary:
        for name, jobs, threads in (("threads", 1, cores), ("serial", 1, 1), ("workers", args.jobs, 1)):
            folder = Path(temporary) / name
            times[name] = run(args.experiment, jobs, args.set, folder, threads)
            kids[name] = kid_values(folder)
            print(f"{name:8s} --jobs {jobs} --threads {threads}: {times[name]:8.1f} s", flush=True)
    side_by_side = pd.DataFrame(kids).droplevel("seed")
    print("KID x100 of each run:\n" + side_by_side.round(3).to_string())
    same = float((kids["serial"] - kids["workers"]).abs().max())
    effect = float((kids["threads"] - kids["workers"]).abs().max())
    print(f"--jobs {args.jobs} over one run after another: {times['serial'] / times['workers']:.2f}x with one thread each, "
          f"{times['threads'] / times['workers']:.2f}x against {cores} threads per run")
    print(f"largest KID x100 difference over {len(kids['serial'])} scores: serial vs workers (both 1 thread) {same:.4f}; "
          f"{cores} threads vs 1 thread {effect:.4f}")
    print(json.dumps({"benchmark": "launchers", "experiment": args.experiment, "overrides": args.set, "jobs": args.jobs,
                      "cores": cores, "threads_s": round(times["threads"], 1), "serial_s": round(times["serial"], 1),
                      "workers_s": round(times["workers"], 1), "max_kid_x100_difference_same_threads": same,
                      "max_kid_x100_difference_other_threads": effect}))


if __name__ == "__main__":
    main()
