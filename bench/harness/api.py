"""Running an experiment from Python (a notebook, a script), as `python run_bench.py` does:

    import bench
    results = bench.run("experiments/smoke.yaml", only="U-GAT-IT", overrides=["train.iterations=50"])
    results.tables["table3"]          # pandas DataFrame, the rows of table3.csv
    results.scores                    # every seed's row (scores.csv)
    results.failed                    # the runs that failed, each with its one-line error and log

Everything the command line does happens here too (checks before any run, run folders, reuse, locks,
the tables, CSV and markdown, in the results folder); progress bars are off unless asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from bench.core.schema import ConfigError
from bench.harness.experiment_file import load_experiment
from bench.harness.jobs import DONE, RUNNING_ELSEWHERE, RunReport
from bench.harness.plan import plan_experiment
from bench.harness.runner import run_plan, write_results_locked


@dataclass
class ExperimentResults:
    tables: dict[str, pd.DataFrame]     # table1, table3: one row per (model, task), as the CSV files
    scores: pd.DataFrame                # every seed's scored evaluation (scores.csv)
    results_dir: Path                   # where the CSV, markdown and figures are
    reports: list[RunReport]            # what each selected run did (empty for tables_only)

    @property
    def failed(self) -> list[RunReport]:
        return [report for report in self.reports if report.status not in (DONE, RUNNING_ELSEWHERE)]


def run(experiment: str | Path, only: str | None = None, overrides: Sequence[str] = (), *, jobs: int | None = None,
        eval_only: bool = False, tables_only: bool = False, reuse: bool = True, progress: bool = False) -> ExperimentResults:
    """Run (or resume) the experiment file's runs, then write and return its tables. `only`, `overrides`
    (["train.iterations=50", ...]), `jobs`, `eval_only`, `tables_only` and `reuse` are the command line's
    --only, --set, --jobs, --eval-only, --tables-only and --no-reuse. Bad input raises the error the command
    line prints in one line (an InputError: ConfigError, DataError, WeightsError, ...)."""
    loaded = load_experiment(experiment, list(overrides))
    plan = plan_experiment(loaded, only, tuple(overrides), reuse=reuse)
    if not plan.selected and plan.trainings:
        raise ConfigError(f"only={only!r} matches no run of {experiment}")
    if tables_only:
        write_results_locked(plan, progress=progress)
        reports = []
    else:
        reports = run_plan(plan, progress=progress, eval_only=eval_only, jobs=jobs)
    tables = {name: pd.read_csv(plan.results_dir / f"{name}.csv") for name in loaded.tables
              if (plan.results_dir / f"{name}.csv").is_file()}
    scores_path = plan.results_dir / "scores.csv"
    scores = pd.read_csv(scores_path) if scores_path.is_file() else pd.DataFrame()
    return ExperimentResults(tables, scores, plan.results_dir, reports)
