"""What an experiment will cost before it is spent: `--dry-run` prints the launcher and the hours.

The hours come from `benchmarks/measured_speed.csv`, seconds per training iteration measured by
`python benchmarks/method_speed.py --record` (method, image size, batch size, options, device). A run
is priced with the row of its method, image size and batch size, the one with its exact options when
there is one; GPU rows are preferred to CPU rows. Translation and scoring (minutes) are left out.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.harness.plan import Plan, TrainingRun
from safeio.environment import PROJECT_ROOT
from safeio.files import atomic_write_bytes

SPEED_TABLE = PROJECT_ROOT / "benchmarks" / "measured_speed.csv"
COLUMNS = ["method", "image_size", "batch_size", "options_key", "options", "device", "device_name", "threads",
           "seconds_per_iteration", "measured"]


def options_key(identity_options: dict[str, Any]) -> str:
    """A short hash of a method's identity options (bench.harness.plan.run_identity's "options")."""
    return hashlib.sha256(json.dumps(identity_options, sort_keys=True).encode()).hexdigest()[:10]


def load_speed_table(path: Path = SPEED_TABLE) -> list[dict[str, Any]]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError:
        return []
    for row in rows:
        row["image_size"], row["batch_size"] = int(row["image_size"]), int(row["batch_size"])
        row["seconds_per_iteration"] = float(row["seconds_per_iteration"])
    return rows


def record_measurements(results: list[dict[str, Any]], path: Path = SPEED_TABLE) -> None:
    """Add method_speed.py's results to the table; a row with the same key is replaced."""
    def key(row):
        return (row["method"], int(row["image_size"]), int(row["batch_size"]), row["options_key"], row["device_name"])

    rows = {key(row): row for row in load_speed_table(path)}
    today = time.strftime("%Y-%m-%d")
    for r in results:
        row = {"method": r["method"], "image_size": r["image_size"], "batch_size": r["batch_size"],
               "options_key": r["options_key"], "options": json.dumps(r["options"], sort_keys=True),
               "device": r["device"].split(":")[0], "device_name": r["device_name"], "threads": r["threads"],
               "seconds_per_iteration": f"{r['seconds_per_iteration']:.4g}", "measured": today}
        rows[key(row)] = row
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(sorted(rows.values(), key=lambda row: (row["device"], row["method"], row["image_size"])))
    atomic_write_bytes(path, buffer.getvalue().encode())


def run_shape(plan: Plan, training: TrainingRun) -> tuple[int | None, int, int]:
    """(iterations, image size, batch size) of a run; the iterations estimated from the paper's image
    counts while its dataset is missing (None when even that is unknown)."""
    from bench.core import methods as method_registry
    from bench.data.datasets import CATALOGUE

    train = training.train or training.method.train_config(plan.experiment.train)
    iterations = train.iterations
    if training.train is None and iterations is None:
        info = CATALOGUE.get(training.dataset.name)
        cls = method_registry.method_class(training.method.name)
        iterations = cls.reference_iterations(training.method.options, info.train_counts) if info and info.train_counts else None
    return iterations, train.image_size, train.batch_size


def price(training: TrainingRun, image_size: int, batch_size: int,
          table: list[dict[str, Any]]) -> tuple[dict[str, Any], bool] | None:
    """(the row that prices this run, whether its options are the run's own), or None."""
    rows = [r for r in table if r["method"] == training.method.name and r["image_size"] == image_size
            and r["batch_size"] == batch_size]
    if not rows:
        return None
    exact_key = options_key(training.identity["options"])
    # GPU rows first, then the run's own options, then the fastest device
    rows.sort(key=lambda r: (r["device"] != "cuda", r["options_key"] != exact_key, r["seconds_per_iteration"]))
    return rows[0], rows[0]["options_key"] == exact_key


def format_estimate(plan: Plan, table: list[dict[str, Any]] | None = None) -> str:
    table = load_speed_table() if table is None else table
    selected = plan.selected_trainings
    hours: dict[str, float] = defaultdict(float)
    devices: dict[str, set[str]] = defaultdict(set)
    unpriced, approximate = [], set()
    for training in selected:
        iterations, image_size, batch_size = run_shape(plan, training)
        found = price(training, image_size, batch_size, table) if iterations else None
        if found is None:
            size = f"{image_size} px, batch {batch_size}" if iterations else "length unknown"
            unpriced.append(f"{training.method.name} ({size})")
            continue
        row, exact = found
        hours[row["device"]] += iterations * row["seconds_per_iteration"] / 3600
        devices[row["device"]].add(f"{row['device_name']}, {row['threads']} threads, {row['measured']}"
                                   if row["device"] == "cpu" else f"{row['device_name']}, {row['measured']}")
        if not exact:
            approximate.add(training.method.name)
    if not table:
        return (f"Cost estimate: none; {SPEED_TABLE.relative_to(PROJECT_ROOT)} holds no measurement. Measure on the machine "
                "you will train on: python benchmarks/method_speed.py --size SIZE --record")
    lines = [] if hours else ["Cost estimate: no run of this experiment has a measurement"]
    for device, total in hours.items():
        unit = "GPU-hours" if device == "cuda" else "CPU-hours"
        lines.append(f"Cost estimate: {total:,.1f} {unit} of training for the runs priced on {device} "
                     f"(measured on {'; '.join(sorted(devices[device]))})")
    if "cuda" not in hours and hours:
        lines.append("  no GPU measurement for these runs: on a GPU, run python benchmarks/method_speed.py --size SIZE "
                     "--record there for GPU-hours")
    if approximate:
        lines.append(f"  measured with other options than this experiment's (an approximation): {', '.join(sorted(approximate))}")
    if unpriced:
        counts: dict[str, int] = defaultdict(int)
        for item in unpriced:
            counts[item] += 1
        lines.append(f"  {len(unpriced)} run(s) without a measurement: "
                     + ", ".join(f"{n} x {item}" if n > 1 else item for item, n in counts.items())
                     + "; measure them with python benchmarks/method_speed.py --methods M --size SIZE --record")
    return "\n".join(lines)


def format_launch(plan: Plan) -> str:
    """The launcher that would run the plan, and the estimate of its cost."""
    from bench.harness.local_workers import idle_cores_hint, resolve_jobs

    launcher = plan.experiment.launcher
    count = len(plan.selected)
    if launcher.name == "slurm":
        from bench.harness.slurm import describe_resources

        how = "Launcher: " + describe_resources(plan.experiment, count)
    else:
        workers = min(resolve_jobs(launcher, plan.experiment.train.device), max(count, 1))
        how = (f"Launcher: local, {workers} worker process(es), {launcher.threads} torch thread(s) each"
               if workers > 1 else f"Launcher: local, one run after another in this process, {launcher.threads} torch "
                                   "thread(s)")
        hint = idle_cores_hint(launcher, workers, count, plan.experiment.train.device)
        how += f"\n  {hint}" if hint else ""
    return how + "\n" + format_estimate(plan)
