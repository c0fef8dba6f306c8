"""From an experiment to tables: plan, check, train, translate, score, tabulate, draw.

    plan     bench/plan.py     the training runs of an experiment, their identities and folders
    execute  bench/execute.py  one training run: train or resume, translate, score (skipping what is done)
    report   bench/report.py   records -> rows -> tables (CSV, markdown) and figures

`run_plan` runs the selected training runs one after another (a failing run is reported and the
others continue), then writes the results; `format_reports` summarises what each run did.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from tabulate import tabulate

from bench.data import DataError
from bench.execute import RunNotTrained, Scoring, execute_training, failure_text, run_logger
from bench.files import DiskFullError, is_disk_full
from bench.plan import Plan, TrainingRun
from bench.report import write_results

log = logging.getLogger("bench")


@dataclass
class RunReport:
    training: TrainingRun
    status: str                    # "done", "failed" or "not trained" (--eval-only without a checkpoint)
    seconds: float = 0.0
    error: str = ""
    log_path: Path | None = None
    work: list[str] = field(default_factory=list)   # what was computed: train, translate a2b, score b2a, ...


def run_plan(plan: Plan, progress: bool = True, eval_only: bool = False) -> list[RunReport]:
    """Execute the selected training runs; a failing run is reported and the others continue.
    Then score the external results and write the tables and figures."""
    if plan.data_problems:
        raise DataError("some inputs are missing; nothing was run:\n  " + "\n  ".join(plan.data_problems))
    scoring = Scoring(plan.experiment, progress)
    _ = scoring.scorer   # find the Inception weights before any training, so that a problem stops nothing midway
    reports = []
    selected = [t for t in plan.trainings if t.run_id in set(plan.selected)]
    for number, training in enumerate(selected, start=1):
        print(f"[{number}/{len(selected)}] {training.variant} on {training.dataset.name}, seed {training.seed}: {training.run_dir}", flush=True)
        handler = run_logger(training.run_dir)
        started = time.perf_counter()
        try:
            work = execute_training(plan, training, scoring, eval_only=eval_only, progress=progress)
            reports.append(RunReport(training, "done", time.perf_counter() - started, log_path=training.run_dir / "log.txt", work=work))
        except RunNotTrained as error:
            reports.append(RunReport(training, "not trained", time.perf_counter() - started, error=str(error)))
        except Exception as error:  # one failing run must not stop the others
            if is_disk_full(error):   # ... but a full disk stops every run: nothing more can be written
                log.error("run stopped: %s", error)
                raise error if isinstance(error, DiskFullError) else DiskFullError(training.run_dir) from None
            log.error("run failed: %s\n%s", error, traceback.format_exc())
            reports.append(RunReport(training, "failed", time.perf_counter() - started,
                                     error=failure_text(error), log_path=training.run_dir / "log.txt"))
        finally:
            logging.getLogger().removeHandler(handler)
            handler.close()
    write_results(plan, scoring, progress)
    return reports


def format_reports(reports: list[RunReport], plan: Plan) -> str:
    rows = [[r.training.variant, r.training.dataset.name, r.training.seed, r.status, f"{r.seconds:.1f}",
             ", ".join(r.work) or ("nothing to do" if r.status == "done" else ""), r.error or str(r.training.run_dir)]
            for r in reports]
    lines = [tabulate(rows, headers=["variant", "dataset", "seed", "status", "seconds", "work", "folder / error"])]
    for report in reports:
        if report.status == "failed":
            lines.append(f"FAILED {report.training.variant} on {report.training.dataset.name}: see {report.log_path}")
    for method in plan.missing_methods:
        lines.append(f"Not run: {method.label} ({method.name}) is not implemented yet")
    return "\n".join(lines)
