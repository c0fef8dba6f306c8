"""Kill an experiment at random moments until it finishes, and check that nothing was lost or mixed up.

    python benchmarks/kill_resume.py [--kills 30] [--seed 0] [--jobs 1] [--keep DIR]

A small experiment (the dummy method, a tiny U-GAT-IT and a tiny CycleGAN on the synthetic shapes,
32 px, checkpoints every 5 iterations) runs once without interruption; then its runs, results and
cached features are deleted and it runs again, from the same file, with `run_bench.py` killed by
SIGKILL after a random delay, restarted, killed again, ... until it finishes. Rounds of this (from a
clean slate each) repeat until `--kills` kills were made. Printed, last:
  kills survived / tried   a kill is survived when the next start resumes and the run still finishes
  iterations lost, most    per kill, the most iterations logged but not checkpointed (work redone)
  leftovers                temporary files or folders left anywhere under the run, data and results folders
  tables                   whether every table (CSV and markdown) equals the uninterrupted run's, byte for byte
With `--jobs 1` each kill hits the whole process group. With `--jobs N` (N local worker processes) only
run_bench itself is killed, as the kernel's OOM killer or a `kill -9 PID` would: its workers must notice
and end alone before the restart (printed: the longest they took).
Each start uses the machine's 2 threads (one command, or its workers' share); nothing else should run
on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

EXPERIMENT = """
name: kill
datasets: [{{name: shapes}}]
methods:
  - {{name: dummy}}
  - {{name: ugatit, options: {{light: true, width: 4, n_res: 1}}}}
  - {{name: cyclegan, options: {{width: 4, n_blocks: 1}}}}
output_dir: {root}/runs
results_dir: {root}/results
data: {{root: {data}}}
train: {{iterations: 300, image_size: 32, checkpoint_every: 5, log_every: 1, sample_every: 20, num_workers: 0}}
eval: {{inception_weights: random, cache_dir: {root}/cache}}
tables: [table1, table3]
launcher: {{jobs: {jobs}, threads: {threads}}}
"""
TEMPORARY = re.compile(r"(\.tmp$|\.partial|-installing|-generating|\.old\.|\.part$)")


def write_experiment(root: Path, jobs: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "kill.yaml"
    path.write_text(EXPERIMENT.format(root=root, data=root / "data", jobs=jobs, threads=max(1, 2 // jobs)))
    return path


def wait_for_group_to_end(group: int, limit: float) -> float | None:
    """Seconds until no process of the group is left (its workers ended alone), or None past `limit`."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return time.perf_counter() - started
        time.sleep(0.05)
    return None


def start(experiment: Path) -> subprocess.Popen:
    environment = dict(os.environ, OMP_NUM_THREADS="2", MKL_NUM_THREADS="2")
    return subprocess.Popen([sys.executable, str(ROOT / "run_bench.py"), str(experiment), "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=environment, start_new_session=True)


def iterations_at_risk(root: Path) -> int:
    """The most iterations, over runs, that were logged but are not in the run's checkpoint."""
    import torch

    from safeio.files import read_step_records

    worst = 0
    for run in (root / "runs").glob("*/*"):
        stats, checkpoint = run / "stats.jsonl", run / "checkpoints" / "latest.pt"
        if not stats.exists():
            continue
        steps = [record["step"] for record in read_step_records(stats)]   # a line torn by the kill is skipped
        saved = int(torch.load(checkpoint, weights_only=True)["step"]) if checkpoint.exists() else 0
        worst = max(worst, max(steps, default=0) - saved)
    return worst


def leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if TEMPORARY.search(p.name))


def tables(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / "results" / "kill").glob("table*"))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=30, help="how many kills to try")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random kill delays")
    parser.add_argument("--max-delay", type=float, default=20.0, help="longest wait before a kill, in seconds")
    parser.add_argument("--jobs", type=int, default=1, help="local worker processes (launcher.jobs)")
    parser.add_argument("--keep", help="keep the work folder here instead of a temporary one")
    args = parser.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="kill-resume-"))
    rng = random.Random(args.seed)

    started = time.perf_counter()
    experiment = write_experiment(work, args.jobs)
    subprocess.run([sys.executable, str(ROOT / "run_bench.py"), str(experiment), "--no-progress"], check=True,
                   stdout=subprocess.DEVNULL, env=dict(os.environ, OMP_NUM_THREADS="2"))
    print(f"uninterrupted run: {time.perf_counter() - started:.0f} s")
    reference = tables(work)

    kills = survived = rounds = 0
    worst_lost, slowest_end = 0, 0.0
    all_equal, left = True, []
    while kills < args.kills:
        rounds += 1
        for folder in ("runs", "results", "cache/features"):
            shutil.rmtree(work / folder, ignore_errors=True)
        finished = False
        while not finished:
            child = start(experiment)
            delay = rng.uniform(0.5, args.max_delay)
            try:
                child.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                if args.jobs == 1:
                    os.killpg(child.pid, signal.SIGKILL)
                    child.wait()
                else:   # the command only: its workers (same process group) must end alone
                    os.kill(child.pid, signal.SIGKILL)
                    child.wait()
                    took = wait_for_group_to_end(child.pid, limit=30.0)
                    if took is None:
                        os.killpg(child.pid, signal.SIGKILL)
                        print(f"kill {kills + 1}: workers still ran 30 s after their command was killed")
                        return 1
                    slowest_end = max(slowest_end, took)
                kills += 1
                worst_lost = max(worst_lost, iterations_at_risk(work))
                print(f"round {rounds}: kill {kills} after {delay:.1f} s", flush=True)
                continue
            _, error = child.communicate()
            if child.returncode != 0:
                print(f"a start after kill {kills} failed (exit {child.returncode}):\n"
                      f"{error.decode(errors='replace')[-2000:]}")
                return 1
            finished = True
        survived = kills
        all_equal = all_equal and bool(reference) and tables(work) == reference
        left += leftovers(work)
    same = all_equal
    print(f"kills survived / tried: {survived} / {kills} in {rounds} round(s)")
    print(f"iterations lost at most: {worst_lost} (checkpoints every 5)")
    if args.jobs > 1:
        print(f"workers ended alone after their command's kill within {slowest_end:.1f} s at most")
    print(f"leftovers after the run: {len(left)}" + (f" {left[:5]}" if left else ""))
    print(f"tables equal to the uninterrupted run's, byte for byte: {same}")
    print(f"total time: {time.perf_counter() - started:.0f} s; work folder: {work}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if same and not left else 1


if __name__ == "__main__":
    sys.exit(main())
