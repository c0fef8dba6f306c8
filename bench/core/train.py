"""The training loop every method shares: resume, iterate, log, checkpoint.

A run folder holds `checkpoints/latest.pt` and `stats.jsonl`. A checkpoint is a plain dict
(`torch.load(path, weights_only=True)` reads it):

    format         CHECKPOINT_FORMAT
    method         registered method name
    step           iterations completed
    method_state   Method.state_dict(): networks, optimizers, anything else to continue exactly
    rng            torch CPU/CUDA and Python `random` generator states
    config         the run's identity (bench.harness.plan.run_identity): a checkpoint copied into another
                   run's folder is refused on resume
    trained_with   the stretches of training up to `step`: [{from_step, to_step, device, threads}, ...], one per
                   start (a resume with another thread count adds one); the tables footnote runs whose CPU
                   thread counts differ (on a CPU the count changes the numbers: README, Thread counts)
    versions       package versions that wrote it

Data order needs no saved state: sample i of each domain depends only on (seed, i) (bench/data/pipeline.py),
so a run resumed at iteration k continues with batch k, and produces the same losses at every later
step as a run that never stopped (on the CPU; GPU kernels may not be bitwise deterministic).
"""

from __future__ import annotations

import io
import json
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from bench.core.config import TrainConfig
from bench.core.methods import Method
from bench.core.monitor import TensorBoardLog
from bench.core.visual import titled_sheet
from bench.data.pipeline import UnpairedTrainingSet, training_batches, without_worker_wrapping
from safeio.environment import package_versions
from safeio.files import (DiskFullError, InputError, atomic_torch_save, atomic_write_bytes, is_disk_full,
                          load_torch_file, read_step_records, remove_stale_temporaries)

CHECKPOINT_FORMAT = "ugatit-bench-checkpoint/1"

log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass(frozen=True)
class TrainingOutcome:
    steps_total: int                 # iterations completed, including those before a resume
    resumed_from: int | None         # the step the run resumed at, or None for a fresh start
    seconds: float                   # wall time of this call
    trained_with: list[dict[str, Any]]   # the checkpoint's `trained_with`: device and torch threads of each stretch


def cpu_thread_counts(trained_with: list[dict[str, Any]] | None) -> tuple[int, ...]:
    """The torch thread counts of a run's training stretches on the CPU, sorted (empty for a run trained on a
    GPU, where the count does not change the numbers, or one recorded before the counts were)."""
    return tuple(sorted({int(part["threads"]) for part in trained_with or ()
                         if part.get("device") == "cpu" and part.get("threads") and part["to_step"] > part["from_step"]}))


def cpu_threads_label(trained_with: list[dict[str, Any]] | None) -> str:
    """`cpu_thread_counts` as the records and tables show it: '1', '1+2' for a run resumed with another count,
    '' for none."""
    return "+".join(map(str, cpu_thread_counts(trained_with)))


def checkpoint_path(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints" / "latest.pt"


class CheckpointError(InputError, ValueError):
    """A file that is not a checkpoint of this harness, or the checkpoint of another run."""


def describe_identity(identity: dict[str, Any]) -> str:
    """One line saying which method, options, dataset and seed a run identity (bench.harness.plan) names."""
    text = f"method {identity.get('method')!r}"
    if identity.get("options"):
        text += f" with options {json.dumps(identity['options'], sort_keys=True)}"
    if "dataset" in identity:
        text += f" on {identity['dataset']}"
    if "seed" in identity:
        text += f", seed {identity['seed']}"
    return text


def describe_checkpoint(checkpoint: dict[str, Any]) -> str:
    identity = {"method": checkpoint.get("method"), **(checkpoint.get("config") or {})}
    return f"{describe_identity(identity)}, at step {checkpoint.get('step')}"


def _differences(found: Any, expected: Any, prefix: str = "") -> list[str]:
    if isinstance(found, dict) and isinstance(expected, dict):
        lines = []
        for key in sorted(set(found) | set(expected), key=str):
            lines += _differences(found.get(key, "(absent)"), expected.get(key, "(absent)"), f"{prefix}{key}.")
        return lines
    return [] if found == expected else [f"{prefix.rstrip('.')}: {found!r} in the checkpoint, {expected!r} in this run"]


def load_checkpoint(path: Path, expected_identity: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read a checkpoint with weights_only=True. With `expected_identity` (the run's identity, which
    every checkpoint records), a checkpoint of another run is refused with both identities named."""
    path = Path(path)
    return check_checkpoint(load_torch_file(path, "checkpoint"), path, expected_identity)


def is_harness_checkpoint(content: Any) -> bool:
    return isinstance(content, dict) and content.get("format") == CHECKPOINT_FORMAT


def check_checkpoint(checkpoint: Any, path: Path, expected_identity: dict[str, Any] | None = None) -> dict[str, Any]:
    """`checkpoint` (a file's content) when it is a checkpoint of this harness (of the run `expected_identity`
    names, if given); a CheckpointError naming `path` and what it holds otherwise."""
    if not is_harness_checkpoint(checkpoint):
        found = (f"keys {', '.join(sorted(map(str, checkpoint))[:8])}" if isinstance(checkpoint, dict)
                 else f"a {type(checkpoint).__name__}")
        raise CheckpointError(f"{path}: not a checkpoint of this harness (format {CHECKPOINT_FORMAT!r} expected; "
                              f"found {found})")
    if expected_identity is not None and checkpoint.get("config") != expected_identity:
        differences = _differences(checkpoint.get("config"), expected_identity)
        raise CheckpointError(
            f"{path} belongs to another run: it holds {describe_checkpoint(checkpoint)}; this run is "
            f"{describe_identity(expected_identity)}. "
            f"Differences: {'; '.join(differences[:6])}. Move the file back to its own run folder, or delete it to "
            "train this run from the start"
        )
    return checkpoint


def save_checkpoint(path: Path, method: Method, step: int, run_config: dict[str, Any],
                    trained_with: list[dict[str, Any]] = ()) -> None:
    atomic_torch_save(path, {
        "format": CHECKPOINT_FORMAT,
        "method": method.name,
        "step": step,
        "method_state": method.state_dict(),
        "rng": _rng_state(),
        "config": run_config,
        "trained_with": list(trained_with),
        "versions": package_versions(),
    })


def _with_this_stretch(earlier: list[dict[str, Any]], start: int, step: int, device: torch.device) -> list[dict[str, Any]]:
    """`trained_with` once this process has trained from `start` to `step`."""
    if step <= start:
        return list(earlier)
    return [*earlier, {"from_step": start, "to_step": step, "device": device.type, "threads": torch.get_num_threads()}]


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _truncate_stats(stats_path: Path, last_step: int) -> None:
    """Drop log lines written after the checkpoint we resume from, so that no step appears twice.
    A torn line (the process died, or the disk filled, while writing it) is dropped and reported."""
    if not stats_path.exists():
        return
    kept = [record for record in read_step_records(stats_path) if record["step"] <= last_step]
    atomic_write_bytes(stats_path, "".join(json.dumps(record) + "\n" for record in kept).encode())


def _as_floats(losses: dict[str, Any]) -> dict[str, float]:
    return {name: float(value) for name, value in losses.items()}


def save_sample_sheet(sheet: torch.Tensor, path: Path, columns: tuple[str, ...] = ()) -> None:
    """A 3 x H x W image in [0, 1] (a make_grid of len(columns) tiles a row) -> PNG, written atomically,
    enlarged and with the column titles above it when `columns` are given."""
    array = (sheet.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    image = titled_sheet(np.ascontiguousarray(array), list(columns)) if columns else Image.fromarray(np.ascontiguousarray(array))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())


def train(method: Method, dataset: UnpairedTrainingSet, run_dir: Path, train_config: TrainConfig,
          run_config: dict[str, Any], device: torch.device, progress: bool = True,
          sample_images: tuple[torch.Tensor, torch.Tensor] | None = None) -> TrainingOutcome:
    """Train `method` to `train_config.iterations`, resuming from the run folder's checkpoint if any.

    `sample_images` (a batch of fixed test images per domain) are drawn into
    `samples/step_<step>.png` every `sample_every` iterations and at the end.
    """
    started = time.perf_counter()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    total = train_config.iterations
    stats_path = run_dir / "stats.jsonl"

    # Resume from the last checkpoint of this run, if there is one; else start a fresh log.
    remove_stale_temporaries(checkpoint_path(run_dir).parent)
    step, resumed_from, earlier = 0, None, []
    if checkpoint_path(run_dir).exists():
        checkpoint = load_checkpoint(checkpoint_path(run_dir), expected_identity=run_config)
        method.load_state_dict(checkpoint["method_state"])
        _restore_rng(checkpoint["rng"])
        step = resumed_from = int(checkpoint["step"])
        # a checkpoint written before the thread counts were recorded: one stretch, device and threads unknown
        earlier = checkpoint.get("trained_with", [{"from_step": 0, "to_step": step, "device": None, "threads": None}])
        _truncate_stats(stats_path, step)
    elif stats_path.exists():
        log.info("%s: no checkpoint to resume from; the lines of an earlier start are dropped", stats_path)
        stats_path.unlink()
    if step >= total:
        return TrainingOutcome(step, resumed_from, time.perf_counter() - started, earlier)
    start = step

    # Train.
    batches = training_batches(dataset, train_config.batch_size, start_step=step, steps=total - step,
                               num_workers=train_config.num_workers, pin_memory=device.type == "cuda")
    board = TensorBoardLog(run_dir, resumed_from)
    bar = tqdm(total=total, initial=step, desc=f"train {run_dir.name}", unit="it", disable=not progress, leave=False)
    last_log_time, last_log_step = time.perf_counter(), step
    with open(stats_path, "a", encoding="utf-8") as stats, board:
        for real_a, real_b in without_worker_wrapping(batches):   # a bad image: its own one-line error
            method.set_step(step)
            losses = method.train_step(real_a.to(device, non_blocking=True), real_b.to(device, non_blocking=True))
            step += 1
            bar.update(1)

            is_log_step = step % train_config.log_every == 0 or step == total
            is_checkpoint_step = step % train_config.checkpoint_every == 0 or step == total
            is_sample_step = sample_images is not None and (step % train_config.sample_every == 0 or step == total)
            if not (is_log_step or is_checkpoint_step or is_sample_step):
                continue
            # Losses are read back from the device only here, not every step.
            values = _as_floats(losses)
            bad = [name for name, value in values.items() if not math.isfinite(value)]
            if bad:
                raise TrainingDiverged(
                    f"{run_dir}: loss {', '.join(bad)} is {values[bad[0]]} at step {step}; training stopped. "
                    f"The last good checkpoint is kept at {checkpoint_path(run_dir)}"
                )
            if is_log_step:
                now = time.perf_counter()
                record = {"step": step, **values, **method.extra_stats(),
                          "seconds_per_iteration": (now - last_log_time) / max(step - last_log_step, 1)}
                try:
                    stats.write(json.dumps(record) + "\n")
                    stats.flush()
                except OSError as error:   # a torn last line is dropped when the run resumes
                    raise DiskFullError(stats_path) if is_disk_full(error) else error
                board.scalars(step, record, set(values))
                bar.set_postfix({k: f"{v:.3g}" for k, v in list(values.items())[:3]})
                last_log_time, last_log_step = now, step
            if is_sample_step:
                sheet = method.sample_sheet(sample_images[0].to(device), sample_images[1].to(device))
                save_sample_sheet(sheet, run_dir / "samples" / f"step_{step:07d}.png", method.sample_columns)
                board.image(step, sheet)
            if is_checkpoint_step:
                save_checkpoint(checkpoint_path(run_dir), method, step, run_config,
                                _with_this_stretch(earlier, start, step, device))
    bar.close()
    return TrainingOutcome(step, resumed_from, time.perf_counter() - started, _with_this_stretch(earlier, start, step, device))
