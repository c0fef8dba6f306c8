"""Two tiny methods that exercise the whole pipeline without a real model.

- `identity`: returns its input. As a table row it is the "no translation" reference: the KID of
  source images against the target domain, which any trained translator should beat.
- `dummy`: a learned per-channel affine colour map per direction (y = x * scale + shift), trained to
  match each channel's mean and standard deviation to the target batch. It has parameters, an
  optimizer, losses and a schedule, so checkpoints, resumption and records are tested for real, at
  almost no cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from bench.core.config import TrainConfig
from bench.core.methods import Method, check_direction, register_method
from bench.core.schedule import lr_multiplier, resolve_schedule, set_learning_rate


@register_method("identity")
class IdentityMethod(Method):
    """No translation at all: translate(x) = x."""

    @classmethod
    def default_label(cls, options: Any) -> str:
        return "Identity (no translation)"

    @classmethod
    def reference_iterations(cls, options: Any, train_images: tuple[int, int] | None) -> int:
        return 1   # nothing to learn

    @classmethod
    def deviations(cls, options: Any, train: TrainConfig) -> list[str]:
        return ["Identity: a reference row (the untranslated source images), not a method of the paper"]

    def train_step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, Any]:
        return {}

    def translate(self, images: torch.Tensor, direction: str) -> torch.Tensor:
        check_direction(direction)
        return images

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"identity has no state, got keys {sorted(state)}")


def _channel_moments(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    flat = images.transpose(0, 1).reshape(images.shape[1], -1)  # C x (N*H*W)
    return flat.mean(dim=1), flat.std(dim=1)


@register_method("dummy")
class DummyColourMethod(Method):
    """Per-channel affine colour matching; see the module docstring."""

    @dataclass(frozen=True)
    class Options:
        lr: float = 1e-2                     # its own default learning rate (train.lr overrides)

    @classmethod
    def reference_iterations(cls, options: Any, train_images: tuple[int, int] | None) -> int:
        return 1000

    @classmethod
    def deviations(cls, options: Any, train: TrainConfig) -> list[str]:
        return ["Dummy colour matching: a pipeline check (per-channel colour statistics), not a method of the paper"]

    def __init__(self, options: Options, train: TrainConfig, device: torch.device):
        super().__init__(options, train, device)
        # One (scale, shift) pair per direction and channel: a2b is row 0, b2a row 1.
        self.scale = torch.ones(2, 3, device=self.device, requires_grad=True)
        self.shift = torch.zeros(2, 3, device=self.device, requires_grad=True)
        self.base_lr = train.lr if train.lr is not None else options.lr
        self.optimizer = torch.optim.Adam([self.scale, self.shift], lr=self.base_lr)
        self.schedule = resolve_schedule(train, self.reference_schedule)

    def set_step(self, step: int) -> None:
        factor = lr_multiplier(step, self.train_config.iterations, self.schedule, self.train_config.decay_start)
        set_learning_rate(self.optimizer, self.base_lr * factor)

    def extra_stats(self) -> dict[str, float]:
        return {"lr": self.optimizer.param_groups[0]["lr"]}

    def _apply(self, images: torch.Tensor, row: int) -> torch.Tensor:
        return images * self.scale[row].view(1, 3, 1, 1) + self.shift[row].view(1, 3, 1, 1)

    def train_step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, Any]:
        losses = {}
        total = 0.0
        for row, (source, target, name) in enumerate(((real_a, real_b, "a2b"), (real_b, real_a, "b2a"))):
            fake_mean, fake_std = _channel_moments(self._apply(source, row))
            real_mean, real_std = _channel_moments(target)
            loss = (fake_mean - real_mean).pow(2).sum() + (fake_std - real_std).pow(2).sum()
            losses[f"moments_{name}"] = loss.detach()
            total = total + loss
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        return losses

    @torch.no_grad()
    def translate(self, images: torch.Tensor, direction: str) -> torch.Tensor:
        check_direction(direction)
        return self._apply(images, 0 if direction == "a2b" else 1).clamp(-1.0, 1.0)

    def state_dict(self) -> dict[str, Any]:
        return {
            "scale": self.scale.detach().clone(),
            "shift": self.shift.detach().clone(),
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.scale.copy_(state["scale"])
            self.shift.copy_(state["shift"])
        self.optimizer.load_state_dict(state["optimizer"])
