"""`--status`: where every run of an experiment stands, from the files in its folder alone.

Nothing is built or loaded (no network, no Inception, no image): the lock record (bench/harness/locks.py),
`failure.json` (bench/harness/jobs.py), `training.json` and `config.json` (the torch threads), the last
line of `stats.jsonl`, the translation manifests, `result.json` and `slurm.json` (bench/harness/slurm.py),
plus one `squeue` call for the Slurm states and pending reasons. Fast enough to call in a loop (`watch -n 30 python run_bench.py X --status`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tabulate import tabulate

from bench.core import methods as method_registry
from bench.core.multimodal import evaluation_key
from bench.core.train import cpu_threads_label
from bench.core.translate import read_manifest
from bench.harness.jobs import FAILURE_FILE
from bench.harness.locks import lock_owner
from bench.harness.plan import RESULT_FILE, Plan, TrainingRun
from bench.harness.reuse import TRAINED_MARKER
from bench.harness.slurm import JOB_FILE
from bench.harness.slurm_cluster import never_starts, read_queue
from safeio.files import read_json

NOT_STARTED, TRAINING, STOPPED, TRAINED, TRANSLATED, SCORED, FAILED, LOCKED = (
    "not started", "training", "stopped", "trained", "translated", "scored", "failed", "locked")


def score_settings_key(plan: Plan) -> str:
    from bench.harness.execute import Scoring

    return Scoring(plan.experiment, progress=False).settings_key


def last_stats_line(path: Path, tail_bytes: int = 8192) -> dict[str, Any] | None:
    """The last complete record of stats.jsonl, reading only the end of the file."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - tail_bytes))
            lines = handle.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except ValueError:
            continue   # torn, or cut by the tail window
        if isinstance(record, dict) and "step" in record:
            return record
    return None


def evaluation_keys(training: TrainingRun) -> list[str]:
    settings = method_registry.method_class(training.method.name).test_settings(training.method.options)
    return [evaluation_key(direction, settings) for direction in training.dataset.directions]


@dataclass
class RunState:
    training: TrainingRun
    state: str
    step: int | None = None
    total: int | None = None
    seconds_per_iteration: float | None = None
    detail: str = ""                 # failure text and log path, lock owner
    slurm_job: str | None = None
    slurm_state: str | None = None
    slurm_reason: str | None = None  # why a pending job pends, as squeue says it
    threads: str = ""                # torch threads it trained with ('1', '1+2' after a resume with 2, 'gpu')

    @property
    def eta_seconds(self) -> float | None:
        if self.step is None or self.total is None or not self.seconds_per_iteration:
            return None
        return max(self.total - self.step, 0) * self.seconds_per_iteration


def run_state(training: TrainingRun, settings_key: str) -> RunState:
    run_dir = training.run_dir
    total = training.train.iterations if training.train else None
    marker = read_json(run_dir / TRAINED_MARKER)
    stats = last_stats_line(run_dir / "stats.jsonl")
    step = marker["steps"] if marker else (int(stats["step"]) if stats else None)
    speed = stats.get("seconds_per_iteration") if stats else None
    keys = evaluation_keys(training)
    result = (read_json(run_dir / RESULT_FILE) or {}).get("directions", {})
    scored = marker is not None and all(settings_key in result.get(k, {}).get("scores", {}) and
                                        result[k].get("step") == marker["steps"] for k in keys)
    translated = marker is not None and all((read_manifest(run_dir / "translations" / k) or {}).get("step") == marker["steps"]
                                            for k in keys)
    trained = marker is not None and (training.method.pretrained is not None or total is None or marker["steps"] >= total)
    state = RunState(training, NOT_STARTED, step, total, speed)
    owner = lock_owner(run_dir)
    failure = read_json(run_dir / FAILURE_FILE)
    if owner and owner.get("alive") is not False:
        state.state = TRAINING if not trained else "scoring" if translated else "translating"
        state.detail = f"locked by {owner.get('host')}:{owner.get('pid')}" + \
                       (f" (Slurm job {owner['slurm_job']})" if owner.get("slurm_job") else "")
    elif failure:
        state.state, state.detail = FAILED, f"{failure.get('error', '?')} (log: {run_dir / 'log.txt'})"
    elif scored and trained:
        state.state = SCORED
    elif translated and trained:
        state.state = TRANSLATED
    elif trained:
        state.state = TRAINED
    elif step:
        state.state = STOPPED   # resumable from its checkpoint
    if owner and owner.get("alive") is False:
        state.detail = (state.detail + "; " if state.detail else "") + \
                       f"stale lock of dead process {owner.get('host')}:{owner.get('pid')} (taken over at the next start)"
    origin = (marker or {}).get("reused_from") or training.reuse_from
    if origin:   # where the trained model came from (bench/harness/reuse.py)
        state.detail = (state.detail + "; " if state.detail else "") + \
                       f"{'reused' if marker else 'will reuse'} the run trained in {origin}"
    job = read_json(run_dir / JOB_FILE)
    if job:
        state.slurm_job = job.get("job_id")
    state.threads = threads_text(marker, read_json(run_dir / "config.json") if step else None)
    return state


def threads_text(marker: dict[str, Any] | None, config: dict[str, Any] | None) -> str:
    """The torch threads a run trained with: from training.json once trained, else from the config record of
    its last start (a run stopped part-way, or training now)."""
    if marker is not None and "trained_with" in marker:
        stretches = marker["trained_with"]
        on_gpu = bool(stretches) and all(str(part.get("device")) == "cuda" for part in stretches)
        return cpu_threads_label(stretches) or ("gpu" if on_gpu else "")   # '' too for a stretch of unknown device
    if config is not None and "torch_threads" in config:
        return "gpu" if str(config.get("device", "")).startswith("cuda") else str(config["torch_threads"])
    return ""


def is_complete(training: TrainingRun, settings_key: str) -> bool:
    return run_state(training, settings_key).state == SCORED


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h" if seconds < 86400 * 2 else f"{seconds / 86400:.1f} d"


def collect_states(plan: Plan) -> list[RunState]:
    key = score_settings_key(plan)
    states = [run_state(t, key) for t in plan.selected_trainings]
    queue = read_queue([s.slurm_job for s in states if s.slurm_job])
    for state in states:
        if state.slurm_job and queue is not None:
            queued = queue.get(state.slurm_job)
            state.slurm_state = queued.state if queued else "ended"   # squeue lists only jobs that have not ended
            if queued and queued.state == "PENDING" and queued.reason not in ("", "None"):
                state.slurm_reason = queued.reason
    return states


def format_status(plan: Plan) -> str:
    states = collect_states(plan)
    rows = []
    for s in states:
        progress = f"{s.step or 0:,} of {s.total:,}" if s.total else ""
        speed = f"{s.seconds_per_iteration:.3g}" if s.seconds_per_iteration else ""
        eta = _duration(s.eta_seconds) if s.state == TRAINING else ""
        job = f"{s.slurm_job} {s.slurm_state or ''}".strip() if s.slurm_job else ""
        if s.slurm_reason:
            job += f" ({s.slurm_reason})"
        detail = s.detail
        if s.slurm_reason and never_starts(s.slurm_reason):
            detail = (detail + "; " if detail else "") + f"Slurm will not start it: {never_starts(s.slurm_reason)}"
        rows.append([s.training.variant, s.training.dataset.name, s.training.seed, s.state, progress, speed, eta, s.threads,
                     job, detail or str(s.training.run_dir)])
    counts: dict[str, int] = {}
    for s in states:
        counts[s.state] = counts.get(s.state, 0) + 1
    summary = ", ".join(f"{n} {state}" for state, n in counts.items())
    return "\n".join([f"Experiment {plan.experiment.name}: {len(states)} run(s): {summary}",
                      tabulate(rows, headers=["variant", "dataset", "seed", "state", "iterations", "s/it", "ETA",
                                              "threads", "Slurm job", "lock / failure / origin / folder"])])
