"""Slurm launcher: one job per training run, submitted as one job array through submitit.

Each job calls `bench.harness.jobs.run_job` with its `RunJob` (the same function the local workers call),
with `launcher.threads` torch threads, as every launcher: the same numbers as a local run. A job that
nears its time limit, or is preempted, gets submitit's signal: `SlurmRun.checkpoint` resubmits the same
run, which resumes from its last checkpoint on disk (every `train.checkpoint_every` iterations), up to
`launcher.slurm.max_requeues` times. Each run folder gets `slurm.json` (job id, log folder) for `--status`; the tables are written
by `--wait` once the jobs end, or later by `--tables-only`.

Runs that are complete, locked by a live worker, or already queued in a job that Slurm still knows
are not submitted again, so running the same command twice never doubles the work. Before anything is
submitted the request is compared with the partition's nodes (bench/harness/slurm_cluster.py); an sbatch
that refuses the jobs anyway is one line with its own message. `--wait` says every minute how many jobs
pend, run, are done or failed, and stops when Slurm gives a pending reason that waiting cannot resolve.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from bench.core.config import Experiment, SlurmConfig
from bench.core.schema import ConfigError
from bench.harness.jobs import FAILED, RunJob, RunReport, configure_worker, run_job
from bench.harness.locks import lock_owner
from bench.harness.plan import Plan
from bench.harness.slurm_cluster import QueuedJob, SlurmRequestError, check_request, never_starts, read_queue
from safeio.files import atomic_write_json, read_json

log = logging.getLogger("bench")

JOB_FILE = "slurm.json"
# squeue states in which a job will still run (or is running)
ACTIVE_STATES = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
                 "RESIZING", "SUSPENDED", "STAGE_OUT", "SIGNALING"}


def logs_folder(experiment: Experiment) -> Path:
    return Path(experiment.launcher.slurm.logs or Path(experiment.output_dir) / "slurm").resolve()


def sbatch_options(slurm: SlurmConfig) -> dict[str, Any]:
    """`launcher.slurm` as submitit's SlurmExecutor parameters (each becomes one #SBATCH line)."""
    extra: dict[str, Any] = {"chdir": os.getcwd()}   # relative paths of the experiment mean what they mean here
    for option in slurm.sbatch:
        key, _, value = option[2:].partition("=")
        extra[key.replace("-", "_")] = value if value else True
    parameters = {"time": slurm.time_min, "cpus_per_task": slurm.cpus_per_job, "ntasks_per_node": 1, "nodes": 1,
                  "array_parallelism": slurm.array_parallelism, "job_name": "ugatit-bench",
                  "signal_delay_s": min(120, max(30, slurm.time_min * 60 // 10)), "additional_parameters": extra}
    if slurm.gpus_per_job:
        parameters["gpus_per_node"] = slurm.gpus_per_job
    for key, value in (("partition", slurm.partition), ("constraint", slurm.constraint), ("account", slurm.account),
                       ("qos", slurm.qos), ("mem", f"{slurm.mem_gb:g}GB" if slurm.mem_gb else None)):
        if value is not None:
            parameters[key] = value
    return parameters


def describe_resources(experiment: Experiment, jobs: int) -> str:
    slurm = experiment.launcher.slurm
    shown = {k: v for k, v in sbatch_options(slurm).items() if k not in ("additional_parameters", "job_name")}
    extra = " ".join(slurm.sbatch)
    where = "submitit's LocalExecutor on this machine (no cluster)" if slurm.executor == "local" else "Slurm"
    return (f"{where}: {jobs} job(s) as one array; per job " + ", ".join(f"{k}={v}" for k, v in shown.items())
            + (f", {extra}" if extra else "") + f"; requeued up to {slurm.max_requeues} times; logs in {logs_folder(experiment)}")


class SlurmRun:
    """The callable a Slurm job runs; checkpointable: at a time limit or a preemption, submitit calls
    `checkpoint`, which resubmits the same run (the training resumes from its checkpoint file)."""

    def __init__(self, job: RunJob, threads: int):
        self.job, self.threads = job, threads

    def __call__(self) -> RunReport:
        configure_worker(self.threads)
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
        return run_job(self.job)

    def checkpoint(self, *args, **kwargs):
        import submitit

        return submitit.helpers.DelayedSubmission(SlurmRun(self.job, self.threads))


def _executor(experiment: Experiment):
    import submitit

    slurm = experiment.launcher.slurm
    folder = logs_folder(experiment) / "%j"   # the job id (<array>_<task> in an array)
    if slurm.executor == "local":
        executor = submitit.LocalExecutor(folder=folder, max_num_timeout=slurm.max_requeues)
        executor.update_parameters(timeout_min=slurm.time_min, gpus_per_node=slurm.gpus_per_job)
        return executor
    if shutil.which("sbatch") is None:
        raise ConfigError("launcher slurm: there is no Slurm here (sbatch is not on PATH). Submit from a login node "
                          "of the cluster, or run on this machine with --launcher local --jobs N")
    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=slurm.max_requeues)
    executor.update_parameters(**sbatch_options(slurm))
    return executor


@dataclass
class Submission:
    jobs: list[Any]                 # submitit jobs, in the order of `runs`
    runs: list[RunJob]
    skipped: list[tuple[RunJob, str]]   # not submitted, and why
    on_cluster: bool = True         # False for submitit's LocalExecutor: no squeue to ask


def _pickle_imported_files_by_value() -> None:
    """Methods an experiment imports from .py files (`imports:`) live in modules no job process can import by
    name: submitit's cloudpickle sends those modules' code with the jobs instead."""
    import sys

    import cloudpickle

    for name, module in list(sys.modules.items()):
        if name.startswith("_ugatit_bench_imports_"):
            cloudpickle.register_pickle_by_value(module)


@contextlib.contextmanager
def _sbatch_errors():
    """sbatch's refusal as one line with its own message (submitit raises it with the whole stderr, and prints it)."""
    from submitit.core.utils import FailedJobError

    printed = io.StringIO()
    try:
        with contextlib.redirect_stderr(printed):
            yield
    except FailedJobError as error:
        lines = [line.strip() for line in (str(error) or printed.getvalue()).splitlines() if line.strip()]
        said = [line for line in lines if "error" in line.lower()] or lines or ["no message"]
        raise SlurmRequestError(f"sbatch refused the jobs: {' '.join(said)[:400]}. Nothing was submitted") from None
    finally:
        sys.stderr.write("".join(line + "\n" for line in printed.getvalue().splitlines()
                                 if "error" not in line.lower()))   # anything else submitit printed


def submit(plan: Plan, eval_only: bool = False, is_complete=None) -> Submission:
    """Submit one job per selected run that still has work, as one array."""
    from bench.harness.runner import selected_jobs

    experiment = plan.experiment
    candidates = selected_jobs(plan, eval_only, progress=False)
    recorded = {job.training.run_id: (read_json(job.training.run_dir / JOB_FILE) or {}).get("job_id") for job in candidates}
    queue = read_queue([j for j in recorded.values() if j]) or {}
    states = {job_id: queued.state for job_id, queued in queue.items()}
    runs, skipped = [], []
    for job in candidates:
        owner = lock_owner(job.training.run_dir)
        queued = recorded[job.training.run_id]
        if is_complete is not None and is_complete(job.training):
            skipped.append((job, "complete"))
        elif owner and owner.get("alive") is not False:
            skipped.append((job, f"running elsewhere ({owner.get('host')}:{owner.get('pid')})"))
        elif queued and states.get(queued) in ACTIVE_STATES:
            skipped.append((job, f"already queued as job {queued} ({states[queued]})"))
        else:
            runs.append(job)
    if not runs:
        return Submission([], [], skipped)
    executor = _executor(experiment)
    _pickle_imported_files_by_value()
    threads = experiment.launcher.threads
    if experiment.launcher.slurm.executor == "slurm":
        check_request(experiment.launcher.slurm)
        with _sbatch_errors():
            with executor.batch():
                jobs = [executor.submit(SlurmRun(run, threads)) for run in runs]
    else:   # LocalExecutor has no arrays
        jobs = [executor.submit(SlurmRun(run, threads)) for run in runs]
    for job, run in zip(jobs, runs):
        atomic_write_json(run.training.run_dir / JOB_FILE, {"job_id": str(job.job_id), "logs": str(logs_folder(experiment)),
                                                           "executor": experiment.launcher.slurm.executor,
                                                           "submitted": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return Submission(jobs, runs, skipped, on_cluster=experiment.launcher.slurm.executor == "slurm")


PROGRESS_EVERY_S = 60   # --wait's line of counts
QUEUE_EVERY_S = 10      # how often --wait asks squeue for states and pending reasons
RUNNING_STATES = {"RUNNING", "COMPLETING", "CONFIGURING", "SIGNALING", "STAGE_OUT", "RESIZING"}


class JobsNeverStart(SlurmRequestError):
    """Slurm keeps a job pending for a reason that waiting does not resolve (bench.harness.slurm_cluster)."""


def _never_starts_text(submission: Submission, stuck: list[tuple[int, QueuedJob]]) -> str:
    index, queued = stuck[0]
    run, job_id = submission.runs[index].training, str(submission.jobs[index].job_id)
    arrays = sorted({str(submission.jobs[i].job_id).split("_")[0] for i, _ in stuck})
    return (f"Slurm will not start job {job_id} ({run.variant} on {run.dataset.name}, seed {run.seed}"
            + (f", and {len(stuck) - 1} more" if len(stuck) > 1 else "") + f"): it pends with reason {queued.reason}, "
            f"{never_starts(queued.reason)}. Stopped waiting; the jobs stay queued: scancel {' '.join(arrays)} removes "
            "them; change the setting and submit again")


def wait(submission: Submission, progress: bool = True, progress_every_s: float = PROGRESS_EVERY_S,
         queue_every_s: float = QUEUE_EVERY_S) -> list[RunReport]:
    """Wait for every job; a job that failed (or was cancelled) is reported with the tail of its log. Every
    `progress_every_s` a line counts the jobs pending, running, done and failed; a pending reason that waiting
    does not resolve stops the wait (JobsNeverStart, one line)."""
    reports: dict[int, RunReport] = {}
    bar = tqdm(total=len(submission.jobs), desc="jobs", unit="job", disable=not progress)
    pending = dict(enumerate(submission.jobs))
    on_cluster = submission.on_cluster
    last_line = last_queue = -math.inf
    queue: dict[str, QueuedJob] = {}
    while pending:
        for index, job in list(pending.items()):
            if not job.done():
                continue
            run = submission.runs[index]
            try:
                reports[index] = job.result()
            except Exception as error:  # the job died: its log says why
                reports[index] = RunReport(run.training, FAILED, error=f"Slurm job {job.job_id} failed: "
                                           f"{str(error).strip().splitlines()[-1][:300] if str(error).strip() else type(error).__name__}",
                                           log_path=Path(str(job.paths.stderr)))
            del pending[index]
            bar.update(1)
            r = reports[index]
            bar.write(f"[{len(reports)}/{len(submission.jobs)}] job {job.job_id} {r.status}: {run.training.variant} on "
                      f"{run.training.dataset.name}, seed {run.training.seed}")
        now = time.monotonic()
        if pending and on_cluster and now - last_queue >= queue_every_s:
            last_queue = now
            queue = read_queue([str(job.job_id) for job in pending.values()]) or {}
            stuck = [(i, queue[str(job.job_id)]) for i, job in pending.items()
                     if str(job.job_id) in queue and queue[str(job.job_id)].state == "PENDING"
                     and never_starts(queue[str(job.job_id)].reason)]
            if stuck:
                bar.close()
                raise JobsNeverStart(_never_starts_text(submission, stuck))
        if now - last_line >= progress_every_s:
            last_line = now
            running = sum(queue.get(str(job.job_id), QueuedJob("", "")).state in RUNNING_STATES for job in pending.values())
            failed = sum(report.status == FAILED for report in reports.values())
            bar.write(f"{time.strftime('%H:%M:%S')} jobs: {len(pending) - running} pending, {running} running, "
                      f"{len(reports) - failed} done, {failed} failed")
        if pending:
            time.sleep(2)
    bar.close()
    return [reports[i] for i in range(len(submission.jobs))]
