"""The training loop every method shares: resume, iterate, log, checkpoint.

A run folder holds `checkpoints/latest.pt` and `stats.jsonl`. A checkpoint is a plain dict
(`torch.load(path, weights_only=True)` reads it):

    format         CHECKPOINT_FORMAT
    method         registered method name
    step           iterations completed
    method_state   Method.state_dict(): networks, optimizers, anything else to continue exactly
    rng            torch CPU/CUDA and Python `random` generator states
    config         the run's resolved configuration (plain JSON-like data)
    versions       package versions that wrote it

Data order needs no saved state: sample i of each domain depends only on (seed, i) (bench.data),
so a run resumed at iteration k continues with batch k, and produces the same losses at every later
step as a run that never stopped (on the CPU; GPU kernels may not be bitwise deterministic).
"""

from __future__ import annotations

import io
import json
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

from bench.config import TrainConfig
from bench.data import UnpairedTrainingSet, training_batches
from bench.environment import atomic_torch_save, atomic_write_bytes, package_versions
from bench.methods import Method

CHECKPOINT_FORMAT = "ugatit-bench-checkpoint/1"


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass(frozen=True)
class TrainingOutcome:
    steps_total: int                 # iterations completed, including those before a resume
    resumed_from: int | None         # the step the run resumed at, or None for a fresh start
    seconds: float                   # wall time of this call


def checkpoint_path(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints" / "latest.pt"


def load_checkpoint(path: Path) -> dict[str, Any]:
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a checkpoint of this harness (format {checkpoint.get('format') if isinstance(checkpoint, dict) else '?'!r})")
    return checkpoint


def save_checkpoint(path: Path, method: Method, step: int, run_config: dict[str, Any]) -> None:
    atomic_torch_save(path, {
        "format": CHECKPOINT_FORMAT,
        "method": method.name,
        "step": step,
        "method_state": method.state_dict(),
        "rng": _rng_state(),
        "config": run_config,
        "versions": package_versions(),
    })


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
    """Drop log lines written after the checkpoint we resume from, so that no step appears twice."""
    if not stats_path.exists():
        return
    kept = [line for line in stats_path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= last_step]
    atomic_write_bytes(stats_path, "".join(line + "\n" for line in kept).encode())


def _as_floats(losses: dict[str, Any]) -> dict[str, float]:
    return {name: float(value) for name, value in losses.items()}


def save_sample_sheet(sheet: torch.Tensor, path: Path) -> None:
    """A 3 x H x W image in [0, 1] -> PNG, written atomically."""
    array = (sheet.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
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

    # Resume from the last checkpoint, if there is one.
    step, resumed_from = 0, None
    if checkpoint_path(run_dir).exists():
        checkpoint = load_checkpoint(checkpoint_path(run_dir))
        method.load_state_dict(checkpoint["method_state"])
        _restore_rng(checkpoint["rng"])
        step = resumed_from = int(checkpoint["step"])
        _truncate_stats(stats_path, step)
    if step >= total:
        return TrainingOutcome(step, resumed_from, time.perf_counter() - started)

    # Train.
    batches = training_batches(dataset, train_config.batch_size, start_step=step, steps=total - step,
                               num_workers=train_config.num_workers, pin_memory=device.type == "cuda")
    bar = tqdm(total=total, initial=step, desc=f"train {run_dir.name}", unit="it", disable=not progress, leave=False)
    last_log_time, last_log_step = time.perf_counter(), step
    with open(stats_path, "a", encoding="utf-8") as stats:
        for real_a, real_b in batches:
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
                stats.write(json.dumps(record) + "\n")
                stats.flush()
                bar.set_postfix({k: f"{v:.3g}" for k, v in list(values.items())[:3]})
                last_log_time, last_log_step = now, step
            if is_sample_step:
                sheet = method.sample_sheet(sample_images[0].to(device), sample_images[1].to(device))
                save_sample_sheet(sheet, run_dir / "samples" / f"step_{step:07d}.png")
            if is_checkpoint_step:
                save_checkpoint(checkpoint_path(run_dir), method, step, run_config)
    bar.close()
    return TrainingOutcome(step, resumed_from, time.perf_counter() - started)
