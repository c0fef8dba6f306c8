"""One training run as a job: what every launcher (serial, local workers, Slurm) calls.

`run_job(job)` needs only the `RunJob` (picklable, built from the plan) and writes only inside the
run's folder: it takes the folder's lock (bench/harness/locks.py), logs to `log.txt`, trains or resumes,
translates and scores (bench/harness/execute.py), and records a failure in `failure.json` (removed when the
run later succeeds). It returns a `RunReport` and raises only for a full disk, which stops everything.
Tables and figures are written afterwards, from the records, by the process that launched the jobs.

`configure_worker` gives a worker process its torch threads (`launcher.threads`, the same under every
launcher: README, Thread counts) and, when several GPUs are visible, one of them.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.core.config import Experiment
from bench.core.methods import import_user_methods
from bench.harness.execute import RunNotTrained, Scoring, execute_training, failure_text, run_logger
from bench.harness.locks import RunLock, RunLocked, describe_owner, slurm_job_id
from bench.harness.plan import TrainingRun
from safeio.files import DiskFullError, InputError, atomic_write_json, disk_full_path, is_disk_full

log = logging.getLogger("bench")

FAILURE_FILE = "failure.json"   # the last failure of a run, until it succeeds

# RunReport.status values
DONE, FAILED, NOT_TRAINED, RUNNING_ELSEWHERE = "done", "failed", "not trained", "running elsewhere"


@dataclass(frozen=True)
class RunJob:
    """Everything a worker needs to execute one training run."""

    experiment: Experiment
    training: TrainingRun
    eval_only: bool = False
    progress: bool = True


@dataclass
class RunReport:
    training: TrainingRun
    status: str                    # DONE, FAILED, NOT_TRAINED (--eval-only without a checkpoint) or RUNNING_ELSEWHERE
    seconds: float = 0.0
    error: str = ""
    log_path: Path | None = None
    work: list[str] = field(default_factory=list)   # what was computed: train, translate a2b, score b2a, ...
    worker: str = ""               # where it ran: host:pid, and the Slurm job id
    known: bool = False            # FAILED with a known problem (safeio.files.InputError): a bad file, image or setting


def cpu_count() -> int:
    """The cores this process may use: Slurm's allocation, else the CPU affinity mask."""
    slurm_cpus = os.environ.get("SLURM_CPUS_PER_TASK")
    if slurm_cpus and slurm_cpus.isdigit():
        return int(slurm_cpus)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # not Linux
        return os.cpu_count() or 1


def configure_worker(threads: int, gpu: str | None = None) -> None:
    """Set this process's torch threads and, before CUDA starts, the one GPU it sees."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    import torch

    torch.set_num_threads(threads)


@contextmanager
def torch_threads(threads: int):
    """This process's torch threads set to `threads` for the block, then put back (a notebook or a test that
    runs an experiment in its own process keeps its own count)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


_scoring_cache: dict[int, Scoring] = {}


def _scoring_for(experiment: Experiment, progress: bool) -> Scoring:
    """One Scoring (one Inception network) per worker process and experiment, reused across its runs."""
    key = hash((experiment.eval, experiment.data.on_bad_image, experiment.train.device))
    if key not in _scoring_cache:
        _scoring_cache.clear()
        _scoring_cache[key] = Scoring(experiment, progress)
    return _scoring_cache[key]


def _log_to_file(handler: logging.Handler, message: str) -> None:
    """Write to the run's log file alone (a traceback: the terminal gets the one-line failure)."""
    handler.handle(log.makeRecord(log.name, logging.ERROR, __file__, 0, message, (), None))


def run_job(job: RunJob, scoring: Scoring | None = None) -> RunReport:
    """Lock the run folder, then train or resume, translate and score; a failure is reported, not raised."""
    import_user_methods(job.experiment.imports)   # a fresh process (a Slurm job) knows the experiment's own methods
    training, started = job.training, time.perf_counter()
    worker = describe_owner({"host": socket.gethostname(), "pid": os.getpid(), "slurm_job": slurm_job_id()})
    lock = RunLock(training.run_dir)
    try:
        lock.acquire()
    except RunLocked as locked:
        log.info("skipping %s: %s", training.run_dir, locked)
        return RunReport(training, RUNNING_ELSEWHERE, error=f"locked by {describe_owner(locked.owner)}",
                         worker=describe_owner(locked.owner))
    handler = run_logger(training.run_dir)
    try:
        work = execute_training(job.experiment, training, scoring or _scoring_for(job.experiment, job.progress),
                                eval_only=job.eval_only, progress=job.progress)
        (training.run_dir / FAILURE_FILE).unlink(missing_ok=True)
        return RunReport(training, DONE, time.perf_counter() - started, log_path=training.run_dir / "log.txt",
                         work=work, worker=worker)
    except RunNotTrained as error:
        return RunReport(training, NOT_TRAINED, time.perf_counter() - started, error=str(error), worker=worker)
    except Exception as error:  # one failing run must not stop the others
        if is_disk_full(error):   # ... but a full disk stops every run: nothing more can be written
            raise error if isinstance(error, DiskFullError) else DiskFullError(disk_full_path(error, training.run_dir)) from None
        text, known = failure_text(error), isinstance(error, InputError)
        log_path = training.run_dir / "log.txt"
        if not known:   # an unexpected exception: its traceback goes to the run's log, not to the terminal
            _log_to_file(handler, f"traceback of the failure:\n{traceback.format_exc()}")
        log.error("run failed: %s (log: %s)", text, log_path)
        try:
            atomic_write_json(training.run_dir / FAILURE_FILE, {"error": text, "worker": worker,
                                                                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        except OSError:
            pass   # the report still says it failed
        return RunReport(training, FAILED, time.perf_counter() - started, error=text, log_path=log_path, worker=worker,
                         known=known)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
        lock.release()
