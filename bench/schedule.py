"""Learning-rate schedules shared by the methods, as a multiplier of the base rate per iteration."""

from __future__ import annotations

from bench.config import TrainConfig


def resolve_schedule(train: TrainConfig, method_reference: str) -> str:
    """The schedule to use: the experiment's, or the method's reference one when it says "method"."""
    return method_reference if train.schedule == "method" else train.schedule


def lr_multiplier(step: int, total_steps: int, schedule: str, decay_start: float = 0.5) -> float:
    """Multiplier of the base learning rate for 0-based iteration `step` of `total_steps`.

    "constant": 1 throughout.
    "linear_decay": 1 until `decay_start * total_steps`, then linear to 0 at `total_steps`
    (U-GAT-IT, Appendix B.2: constant until 500k of 1M iterations, then linearly decayed).
    """
    if schedule == "constant":
        return 1.0
    if schedule == "linear_decay":
        decay_from = decay_start * total_steps
        if step < decay_from:
            return 1.0
        return max(0.0, (total_steps - step) / max(total_steps - decay_from, 1e-12))
    raise ValueError(f"unknown learning-rate schedule {schedule!r}; allowed: constant, linear_decay")


def set_learning_rate(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
