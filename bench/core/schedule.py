"""Learning-rate schedules shared by the methods, as a multiplier of the base rate per iteration."""

from __future__ import annotations

from bench.core.config import TrainConfig


def resolve_schedule(train: TrainConfig, method_reference: str) -> str:
    """The schedule to use: the experiment's, or the method's reference one when it says "method"."""
    return method_reference if train.schedule == "method" else train.schedule


def lr_multiplier(step: int, total_steps: int, schedule: str, decay_start: float = 0.5,
                  step_size: int = 100_000, gamma: float = 0.5) -> float:
    """Multiplier of the base learning rate for 0-based iteration `step` of `total_steps`.

    "constant": 1 throughout.
    "linear_decay": 1 for the first `decay_start * total_steps` iterations, then down by an equal
    amount each iteration, reaching 0 at the last one (U-GAT-IT, Appendix B.2: constant until 500k
    of 1M iterations, then linearly decayed; the official PyTorch code subtracts lr / (N/2) before
    each 1-based iteration t > N/2, which is this formula with t = step + 1).
    "step": multiplied by `gamma` every `step_size` iterations (UNIT's StepLR, stepped at the start of
    each iteration: 0.5 ** ((step + 1) // 100000)).
    """
    if schedule == "constant":
        return 1.0
    if schedule == "linear_decay":
        decay_from = int(decay_start * total_steps)
        decay_steps = total_steps - decay_from
        if decay_steps <= 0:
            return 1.0
        return max(0.0, 1.0 - max(0, step + 1 - decay_from) / decay_steps)
    if schedule == "step":
        return gamma ** ((step + 1) // step_size)
    raise ValueError(f"unknown learning-rate schedule {schedule!r}; allowed: constant, linear_decay, step")


def epoch_linear_decay(step: int, total_steps: int, epoch_length: int, decay_start: float = 0.5) -> float:
    """Multiplier for 0-based iteration `step` when the rate is set once per epoch of `epoch_length`
    iterations, as the official TF U-GAT-IT does (UGATIT.train): with N = ceil(total / epoch_length)
    epochs and D = int(decay_start * N), epoch e uses 1 while e < D, then (N - e) / (N - D): it never
    reaches 0 (the last epoch trains at 1 / (N - D) of the rate; 1/50 for the paper's 100 epochs)."""
    epochs = max(1, -(-total_steps // epoch_length))
    decay_epoch = int(decay_start * epochs)
    epoch = min(step // epoch_length, epochs - 1)
    if epoch < decay_epoch:
        return 1.0
    return (epochs - epoch) / (epochs - decay_epoch)


def set_learning_rate(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
