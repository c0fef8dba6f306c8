"""DRIT's training loop in numbers: which iterations are full updates, its learning rate per epoch, and
where its run ends (HsinYingLee/DRIT src/train.py, src/networks.py get_scheduler; facts in docs/baselines.md).

The reference's loop, for epoch ep in 0 .. n_ep - 1 over a shuffled loader of ceil(n / batch) batches
(n = max(|A|, |B|), the smaller domain drawn at random):
  - a short last batch is skipped (`continue`);
  - batch `it` updates the content discriminator alone unless (it + 1) % d_iter == 0 or it is one of
    the loader's last two batches (`it < len(train_loader) - 2` fails): then it is a full update
    (the image and content discriminators, then encoders and generators);
  - after each epoch a LambdaLR sets the rate for the next: epoch ep trains at
    1 - max(0, ep - n_ep_decay) / (n_ep - n_ep_decay + 1) of it (n_ep 1200, n_ep_decay 600);
  - when its count of full updates reaches 500,000 it calls `saver.write_model(-1, model)` with a
    missing argument and crashes: the final model is its last save, made at the end of every 10th
    epoch (`(ep + 1) % model_save_freq == 0`) that finished before the cap.
Here an epoch is the loader's complete batches (a skipped batch costs no iteration), and
`final_model` chooses between that last save (the reference's, default) and the model at the cap.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from bench.core.schedule import EpochDecay

SAVE_EVERY_EPOCHS = 10   # src/options.py --model_save_freq


@dataclass(frozen=True)
class DritEpochs:
    images: int        # n = max(|A|, |B|): the loader's length in images
    batch_size: int
    d_iter: int = 3

    @property
    def loader_batches(self) -> int:
        return -(-self.images // self.batch_size)

    @property
    def length(self) -> int:
        """Iterations per epoch here: the loader's complete batches."""
        return max(1, self.images // self.batch_size)

    def is_full_update(self, step: int) -> bool:
        it = step % self.length
        return (it + 1) % self.d_iter == 0 or it >= self.loader_batches - 2

    @cached_property
    def full_updates_per_epoch(self) -> int:
        return sum(self.is_full_update(it) for it in range(self.length))

    def cap_step(self, cap: int) -> int:
        """The 0-based iteration of the `cap`-th full update."""
        epochs, remainder = divmod(cap, self.full_updates_per_epoch)
        if remainder == 0:
            epochs, remainder = epochs - 1, self.full_updates_per_epoch
        seen = 0
        for it in range(self.length):
            seen += self.is_full_update(it)
            if seen == remainder:
                return epochs * self.length + it
        raise AssertionError("unreachable: the epoch holds full_updates_per_epoch full updates")

    def run_length(self, epochs: int, cap: int, final_model: str) -> int:
        """Iterations of the reference's run: all its epochs, or up to the cap when the cap comes first;
        with final_model "last_save", only up to the last 10-epoch save before the crash at the cap (the
        updates after it are lost in the reference; the model at the cap when no save precedes it)."""
        if epochs * self.full_updates_per_epoch < cap:
            return epochs * self.length
        at_cap = self.cap_step(cap)
        if final_model == "cap":
            return at_cap + 1
        saved_epochs = (at_cap // self.length) // SAVE_EVERY_EPOCHS * SAVE_EVERY_EPOCHS
        return saved_epochs * self.length if saved_epochs else at_cap + 1

    def schedule(self, total_steps: int, epochs: int, reference_length: int) -> EpochDecay:
        """The learning rate per epoch: at the reference's length, its own n_ep epochs (the cap may stop the
        run before they end); a run of another length keeps the epoch length and decays over its second
        half of epochs."""
        if total_steps == reference_length:
            return EpochDecay(self.length, epochs, epochs // 2, extra=1)
        return EpochDecay.scaled(total_steps, self.length, epochs, epochs // 2, extra=1)
