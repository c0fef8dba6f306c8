"""Local launcher: the runs of an experiment in this process, or in N worker processes of this machine.

Each worker is a fresh Python process (spawned, not forked: no CUDA or thread-pool state is shared)
that sets its torch threads to `launcher.threads` (1 unless the user sets it: the same count as in a
serial run or a Slurm job, so every launcher computes the same numbers; the cores are used by running
one run per core, `jobs: auto`) and, when several GPUs are visible, sees one of them. Workers take runs longest first (by iterations times batch size), so that the last run to
finish is a short one. A worker that dies (killed for memory, say) fails the runs it held; they
resume from their checkpoints when the command runs again. A worker whose command dies (SIGKILL,
SIGTERM, a closed terminal: no chance to stop its workers) ends within a few seconds instead of
training on unseen, holding its run locks and the cores (`end_with_parent`; 3.4 s at most over 23
kills of `benchmarks/kill_resume.py --jobs 2`).
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import os
import sys
import threading
import time
from concurrent.futures.process import BrokenProcessPool

from tqdm.auto import tqdm

from bench.core.config import LauncherConfig
from bench.core.methods import import_user_methods
from bench.harness.execute import Scoring
from bench.harness.jobs import FAILED, RunJob, RunReport, configure_worker, cpu_count, run_job, torch_threads

log = logging.getLogger("bench")


def visible_gpus() -> list[str]:
    """The GPUs a worker may be given (indices or UUIDs, as CUDA_VISIBLE_DEVICES names them)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [item for item in listed.split(",") if item.strip() and item.strip() != "-1"]
    import torch

    return [str(index) for index in range(torch.cuda.device_count())]


def resolve_jobs(launcher: LauncherConfig, device: str) -> int:
    """`jobs: auto`: one worker per GPU when the runs use CUDA, else one per core."""
    if launcher.jobs != "auto":
        return launcher.jobs
    gpus = visible_gpus() if device != "cpu" else []
    return max(1, len(gpus) if gpus else cpu_count())


def idle_cores_hint(launcher: LauncherConfig, workers: int, runs: int, device: str) -> str | None:
    """For runs on the CPU (`device` as train.device names it): a line saying how to use the cores they leave
    idle, and what each way changes; None when every core is busy."""
    import torch

    on_cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    cores, busy = cpu_count(), workers * launcher.threads
    if not on_cpu or busy >= cores:
        return None
    text = (f"{busy} of this machine's {cores} cores train ({workers} run(s) at once, {launcher.threads} torch "
            f"thread(s) each).")
    if runs > workers:
        text += f" --jobs {min(runs, cores // launcher.threads)} runs more at once: the same numbers, sooner."
    return text + (f" --threads {max(1, cores // workers)} gives each run more threads: sooner, but other numbers "
                   "(README: Thread counts).")


def _work_estimate(job: RunJob) -> int:
    train = job.training.train
    return train.iterations * train.batch_size if train else 0


def run_serially(jobs: list[RunJob], scoring: Scoring, threads: int) -> list[RunReport]:
    reports = []
    with torch_threads(threads):
        for number, job in enumerate(jobs, start=1):
            t = job.training
            print(f"[{number}/{len(jobs)}] {t.variant} on {t.dataset.name}, seed {t.seed}: {t.run_dir}", flush=True)
            reports.append(run_job(job, scoring))
    return reports


PARENT_POLL_SECONDS = 1.0


def end_with_parent(parent: int, poll_seconds: float = PARENT_POLL_SECONDS) -> None:
    """Exit this process soon after its parent (pid `parent`, as the parent itself gave it: a worker
    still starting up when its parent died is an orphan already) is gone.

    A pool worker is not told when its parent is killed outright: it would go on training the run it
    holds, alone, its lock keeping a restarted command off that run, and nobody left to write the
    tables. A daemon thread compares this process's parent pid with `parent` every `poll_seconds` (an
    orphan is re-parented to init or a subreaper). Exiting mid-write is safe: every write is atomic, and a later start
    removes the temporary files of dead processes.
    """
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        log.warning("the command that started this worker (pid %d) is gone; stopping (the run resumes from its last "
                    "checkpoint when the command runs again)", parent)
        os._exit(1)

    threading.Thread(target=watch, name="end-with-parent", daemon=True).start()


def _start_worker(parent: int, slots, threads: int, gpus: list[str], imports: tuple[str, ...] = ()) -> None:
    """Pool initializer: follow the parent, take a worker slot, then this worker's threads, GPU and
    console logging, and the experiment's own methods (`imports:`), before any job is unpickled here."""
    end_with_parent(parent)
    import_user_methods(imports)
    slot = slots.get()
    configure_worker(threads, gpus[slot % len(gpus)] if gpus else None)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING)   # the console gets problems; the run's log.txt gets everything
    console.setFormatter(logging.Formatter(f"[worker {slot}] %(message)s"))
    logging.getLogger().addHandler(console)
    logging.getLogger().setLevel(logging.INFO)


def run_in_workers(jobs: list[RunJob], workers: int, threads: int, progress: bool) -> list[RunReport]:
    """Run the jobs in `workers` spawned processes; reports come back in the order of `jobs`."""
    gpus = visible_gpus() if any(job.experiment.train.device != "cpu" for job in jobs) else []
    imports = tuple(dict.fromkeys(entry for job in jobs for entry in job.experiment.imports))
    context = multiprocessing.get_context("spawn")
    slots = context.Queue()
    for slot in range(workers):
        slots.put(slot)
    gpu_text = f", GPUs {', '.join(gpus)} shared round-robin" if gpus else ""
    print(f"{len(jobs)} run(s) on {workers} local workers, {threads} torch thread(s) each{gpu_text}", flush=True)
    reports: dict[int, RunReport] = {}
    order = sorted(range(len(jobs)), key=lambda i: -_work_estimate(jobs[i]))
    bar = tqdm(total=len(jobs), desc="runs", unit="run", disable=not progress)
    executor = concurrent.futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                                                      initargs=(os.getpid(), slots, threads, gpus, imports))
    try:
        futures = {executor.submit(run_job, jobs[i]): i for i in order}
        for future in concurrent.futures.as_completed(futures):
            index = futures[future]
            training = jobs[index].training
            try:
                report = future.result()
            except BrokenProcessPool:
                report = RunReport(training, FAILED, error="its worker process died (killed, or out of memory); run the "
                                   "same command again to resume it from its last checkpoint")
            reports[index] = report
            bar.update(1)
            detail = ", ".join(report.work) or report.error or "nothing to do"
            bar.write(f"[{len(reports)}/{len(jobs)}] {report.status}: {training.variant} on {training.dataset.name}, "
                      f"seed {training.seed} ({report.seconds:.0f} s, {report.worker or 'no worker'}): {detail}")
    except BaseException:
        for process in list(getattr(executor, "_processes", {}).values()):   # do not wait for runs in flight
            process.terminate()
        executor.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        bar.close()
    executor.shutdown()
    return [reports[i] for i in range(len(jobs))]
