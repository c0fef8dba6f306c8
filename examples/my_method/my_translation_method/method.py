"""TinyCycle: a small CycleGAN-like method, written as a user of ugatit-bench writes their own.

Two residual generators of two 3x3 convolutions (A -> B and B -> A) and two PatchGAN-like discriminators,
trained with least-squares adversarial losses and an L1 cycle-consistency loss (weight 10), Adam.
It only needs the public names of `bench`; the harness trains, translates, scores and tables it like
the paper's methods. Use it through an experiment's `imports: [my_translation_method/method.py]`, or
install this folder (`pip install -e examples/my_method`) and its entry point makes `tinycycle` known to
every experiment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench import Method, TrainConfig, register_method


def generator(width: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1, padding_mode="reflect"), nn.ReLU(),
                         nn.Conv2d(width, 3, 3, padding=1, padding_mode="reflect"))


def discriminator(width: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
                         nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
                         nn.Conv2d(2 * width, 1, 3, padding=1))


@register_method("tinycycle")
class TinyCycle(Method):
    """A residual generator per direction: translation = tanh(x + G(x))."""

    @dataclass(frozen=True)
    class Options:
        width: int = 16                  # channels of the generators and discriminators
        cycle_weight: float = 10.0       # lambda of the L1 cycle loss
        lr: float = 2e-4                 # Adam's learning rate (train.lr overrides it)

    @classmethod
    def reference_iterations(cls, options: Options, train_images: tuple[int, int] | None) -> int:
        return 10_000

    @classmethod
    def deviations(cls, options: Options, train: TrainConfig) -> list[str]:
        return ["TinyCycle: an example method of docs/your-method.md, not a method of the paper"]

    def __init__(self, options: Options, train: TrainConfig, device: torch.device):
        super().__init__(options, train, device)
        lr = train.lr if train.lr is not None else options.lr
        self.networks = nn.ModuleDict({"gen_a2b": generator(options.width), "gen_b2a": generator(options.width),
                                       "dis_a": discriminator(options.width), "dis_b": discriminator(options.width)}).to(self.device)
        generators = [*self.networks["gen_a2b"].parameters(), *self.networks["gen_b2a"].parameters()]
        discriminators = [*self.networks["dis_a"].parameters(), *self.networks["dis_b"].parameters()]
        self.g_optimizer = torch.optim.Adam(generators, lr=lr, betas=(0.5, 0.999))
        self.d_optimizer = torch.optim.Adam(discriminators, lr=lr, betas=(0.5, 0.999))

    def _translate(self, images: torch.Tensor, direction: str) -> torch.Tensor:
        return torch.tanh(images + self.networks[f"gen_{direction}"](images))

    def train_step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, Any]:
        fake_b, fake_a = self._translate(real_a, "a2b"), self._translate(real_b, "b2a")
        # Generators: fool the discriminators, and come back (cycle consistency).
        adversarial = sum(F.mse_loss(d(fake), torch.ones_like(d(fake))) for d, fake in
                          ((self.networks["dis_b"], fake_b), (self.networks["dis_a"], fake_a)))
        cycle = F.l1_loss(self._translate(fake_b, "b2a"), real_a) + F.l1_loss(self._translate(fake_a, "a2b"), real_b)
        g_loss = adversarial + self.options.cycle_weight * cycle
        self.g_optimizer.zero_grad(set_to_none=True)
        g_loss.backward()
        self.g_optimizer.step()
        # Discriminators: real images 1, translations 0.
        d_loss = 0.0
        for d, real, fake in ((self.networks["dis_b"], real_b, fake_b), (self.networks["dis_a"], real_a, fake_a)):
            real_score, fake_score = d(real), d(fake.detach())
            d_loss = d_loss + F.mse_loss(real_score, torch.ones_like(real_score)) + F.mse_loss(fake_score, torch.zeros_like(fake_score))
        self.d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_optimizer.step()
        return {"g_adversarial": adversarial.detach(), "cycle": cycle.detach(), "d": d_loss.detach()}

    @torch.no_grad()
    def translate(self, images: torch.Tensor, direction: str) -> torch.Tensor:
        was_training = self.networks.training
        self.networks.eval()
        try:
            return self._translate(images, direction)
        finally:
            self.networks.train(was_training)

    def state_dict(self) -> dict[str, Any]:
        return {"networks": self.networks.state_dict(), "g_optimizer": self.g_optimizer.state_dict(),
                "d_optimizer": self.d_optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.networks.load_state_dict(state["networks"])
        self.g_optimizer.load_state_dict(state["g_optimizer"])
        self.d_optimizer.load_state_dict(state["d_optimizer"])
