"""Learning-rate schedules shared by the methods, as a multiplier of the base rate per iteration."""

from __future__ import annotations

from dataclasses import dataclass

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
    raise ValueError(f"unknown learning-rate schedule {schedule!r}; allowed: constant, linear_decay, step "
                     "(per_epoch is computed by the methods whose reference has it: EpochDecay)")


@dataclass(frozen=True)
class EpochDecay:
    """A reference's learning rate set once per epoch: in 0-based epoch k the multiplier is
    1 - max(0, k + shift - decay_from) / (epochs - decay_from + extra), never below 0.

    The authors' codes differ only in `shift` and `extra` (at their own lengths):
      CycleGAN (LambdaLR, epoch_count 1, stepped after each epoch): 200 epochs, from 100, shift 1, extra 1
      DRIT (LambdaLR, stepped after each epoch):                  1200 epochs, from 600, shift 0, extra 1
      AGGAN, CartoonGAN, TF U-GAT-IT (lr set at each epoch's start): from N/2, shift 0, extra 0
    A run of another length keeps the reference's epoch length (from its training set) and the
    reference's fraction of constant epochs: `scaled` below."""

    epoch_length: int        # iterations per epoch
    epochs: int
    decay_from: int
    shift: int = 0
    extra: int = 0

    @classmethod
    def scaled(cls, total_steps: int, epoch_length: int, reference_epochs: int, reference_decay_from: int,
               shift: int = 0, extra: int = 0) -> "EpochDecay":
        """The schedule of a `total_steps` run: ceil(total / epoch_length) epochs (the last one may be
        short), decaying from int(epochs * reference_decay_from / reference_epochs): the reference's
        own numbers at its length."""
        epoch_length = max(1, epoch_length)
        epochs = max(1, -(-total_steps // epoch_length))
        return cls(epoch_length, epochs, int(epochs * reference_decay_from / reference_epochs), shift, extra)

    def epoch(self, step: int) -> int:
        return min(step // self.epoch_length, self.epochs - 1)

    def multiplier(self, step: int) -> float:
        denominator = self.epochs - self.decay_from + self.extra
        if denominator <= 0:
            return 1.0
        decayed = max(0, self.epoch(step) + self.shift - self.decay_from)
        return max(0.0, (denominator - decayed) / denominator)


def epoch_length(images: int | None, batch_size: int, total_steps: int, reference_epochs: int) -> int:
    """Iterations per epoch: the reference loader's batches over `images` (a short last batch counts),
    or, when the training set is unknown (a method built outside a run), the run cut into the
    reference's number of epochs."""
    if images is None:
        return max(1, total_steps // reference_epochs)
    return max(1, -(-images // batch_size))


def epoch_linear_decay(step: int, total_steps: int, epoch_length: int, decay_start: float = 0.5) -> float:
    """Multiplier for 0-based iteration `step` when the rate is set once per epoch of `epoch_length`
    iterations, as the official TF U-GAT-IT does (UGATIT.train): with N = ceil(total / epoch_length)
    epochs and D = int(decay_start * N), epoch e uses 1 while e < D, then (N - e) / (N - D): it never
    reaches 0 (the last epoch trains at 1 / (N - D) of the rate; 1/50 for the paper's 100 epochs)."""
    epochs = max(1, -(-total_steps // epoch_length))
    return EpochDecay(epoch_length, epochs, int(decay_start * epochs)).multiplier(step)


def set_learning_rate(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
