"""From an experiment to tables: plan, check, launch the runs, tabulate, draw.

    plan     bench/harness/plan.py           the training runs of an experiment, their identities and folders
    job      bench/harness/jobs.py           one training run under its folder's lock (bench/harness/locks.py):
             bench/harness/execute.py        train or resume, translate, score, skipping what is done
    launch   bench/harness/local_workers.py  in this process, or in N local worker processes
             bench/harness/slurm.py          as a Slurm job array (submitit)
    report   bench/harness/report.py         records -> rows -> tables (CSV, markdown) and figures
    status   bench/harness/status.py         where every run stands, from the records alone

`run_plan` runs the selected training runs on this machine (a failing run is reported and the others
continue; a run another process is working on is skipped as running elsewhere), then writes the
results; `format_reports` summarises what each run did.
"""

from __future__ import annotations

import logging
from pathlib import Path

from tabulate import tabulate

from bench.harness.execute import Scoring, prepare_dataset
from bench.harness.jobs import FAILED, RUNNING_ELSEWHERE, RunJob, RunReport
from bench.harness.local_workers import idle_cores_hint, resolve_jobs, run_in_workers, run_serially
from bench.harness.plan import Plan
from bench.harness.report import write_results
from safeio.files import waiting_lock
from safeio.images import DataError

log = logging.getLogger("bench")

__all__ = ["RunReport", "run_plan", "format_reports", "selected_jobs", "write_results_locked"]


def selected_jobs(plan: Plan, eval_only: bool, progress: bool) -> list[RunJob]:
    return [RunJob(plan.experiment, t, eval_only, progress) for t in plan.selected_trainings]


def check_inputs(plan: Plan, progress: bool) -> Scoring:
    """Stop before any training when an input is missing or unusable: datasets (synthetic ones are
    generated here, once, not by each worker), the Inception weights (read and loaded into the network
    now, not after hours of training), the released weights of `pretrained:` entries and the files a
    method's options name (U-GAT-IT's `init_from`). Each problem is an InputError naming the file."""
    if plan.data_problems:
        raise DataError("some inputs are missing; nothing was run:\n  " + "\n  ".join(plan.data_problems))
    scoring = Scoring(plan.experiment, progress)
    _ = scoring.scorer.extractor.network
    check_named_files(plan)
    for dataset in {t.dataset.name: t.dataset for t in plan.selected_trainings}.values():
        prepare_dataset(dataset, plan.experiment.data.resolved_root(), plan.experiment.data.subset)
    return scoring


def check_named_files(plan: Plan) -> None:
    """Read every weights file the selected runs name, as their runs will (weights_only=True)."""
    from bench.core import methods as method_registry
    from bench.core.released import load_released

    checked = set()
    for training in plan.selected_trainings:
        method = training.method
        key = (method.name, repr(method.options), repr(method.pretrained))
        if key in checked:
            continue
        checked.add(key)
        if method.pretrained is not None:
            load_released(method.name, "cpu", image_size=plan.experiment.train.image_size, **method.pretrained)
        else:
            method_registry.method_class(method.name).check_files(method.options)


def write_results_locked(plan: Plan, scoring: Scoring | None = None, progress: bool = True) -> list[Path]:
    """Write the tables under the results folder's lock: invocations that finish together write one
    after the other, each from the records as they are then, so the last to finish writes them whole."""
    with waiting_lock(plan.results_dir.parent / f".{plan.results_dir.name}.lock"):
        return write_results(plan, scoring, progress)


def run_plan(plan: Plan, progress: bool = True, eval_only: bool = False, jobs: int | None = None) -> list[RunReport]:
    """Execute the selected training runs on this machine, then score the external results and write
    the tables and figures. `jobs` overrides the experiment's `launcher.jobs`."""
    launcher = plan.experiment.launcher
    scoring = check_inputs(plan, progress)
    run_jobs = selected_jobs(plan, eval_only, progress)
    workers = min(jobs or resolve_jobs(launcher, plan.experiment.train.device), max(len(run_jobs), 1))
    hint = idle_cores_hint(launcher, workers, len(run_jobs), plan.experiment.train.device)
    if hint and run_jobs and not eval_only:
        print(hint, flush=True)
    if workers <= 1:
        reports = run_serially(run_jobs, scoring, launcher.threads)
    else:
        quiet = [RunJob(j.experiment, j.training, j.eval_only, progress=False) for j in run_jobs]   # one bar per run would garble
        reports = run_in_workers(quiet, workers, launcher.threads, progress)
    write_results_locked(plan, scoring, progress)
    return reports


def format_reports(reports: list[RunReport], plan: Plan) -> str:
    rows = [[r.training.variant, r.training.dataset.name, r.training.seed, r.status, f"{r.seconds:.1f}",
             ", ".join(r.work) or ("nothing to do" if r.status == "done" else ""), r.error or str(r.training.run_dir)]
            for r in reports]
    lines = [tabulate(rows, headers=["variant", "dataset", "seed", "status", "seconds", "work", "folder / error"])]
    for report in reports:
        if report.status == FAILED:
            lines.append(f"FAILED {report.training.variant} on {report.training.dataset.name}: see {report.log_path}")
    elsewhere = [r for r in reports if r.status == RUNNING_ELSEWHERE]
    if elsewhere:
        lines.append(f"{len(elsewhere)} run(s) are running elsewhere ({', '.join(sorted({r.worker for r in elsewhere}))}); "
                     "the process that finishes last writes the complete tables. `--status` shows where each run stands")
    for method in plan.missing_methods:
        lines.append(f"Not run: {method.label} ({method.name}) is not implemented yet")
    return "\n".join(lines)
