"""What UNIT and MUNIT share from their reference's common trainer and loader: their data pipeline
(`unit`), Kaiming-initialised generators and N(0, 0.02) discriminators, one Adam with weight decay per group, the learning rate halved every
step_size iterations, the multi-scale LSGAN discriminator loss, and the checkpoint layout."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from bench.core.gan import adam, initialise_kaiming, initialise_normal, lsgan
from bench.core.schedule import lr_multiplier, resolve_schedule, set_learning_rate


class SharedTrainer:
    """A mixin for a Method whose options have lr, weight_decay, step_size, gamma and gan_weight."""

    reference_schedule = "step"   # x gamma every step_size iterations

    @classmethod
    def data_pipeline(cls, options: Any) -> str:
        """Their get_data_loader_folder: flip, shorter side to the size, random crop (bench/data/reference_pipelines.py)."""
        return "unit"

    def setup_training(self, generators: nn.ModuleDict, discriminators: nn.ModuleDict) -> None:
        """Initialise both groups as the reference does, move them to the device, build the optimisers."""
        options, train = self.options, self.train_config
        initialise_kaiming(generators)             # init: kaiming (LN gamma keeps its U[0, 1) start)
        initialise_normal(discriminators, 0.02)    # the reference re-initialises its discriminators N(0, 0.02)
        self.networks = nn.ModuleDict({**generators, **discriminators}).to(self.device)
        self.g_parameters = list(generators.parameters())
        self.d_parameters = list(discriminators.parameters())
        self.base_lr = train.lr if train.lr is not None else options.lr
        self.g_optim = adam(self.g_parameters, lr=self.base_lr, weight_decay=options.weight_decay)
        self.d_optim = adam(self.d_parameters, lr=self.base_lr, weight_decay=options.weight_decay)
        self.schedule = resolve_schedule(train, self.reference_schedule)

    def discriminator_step(self, pairs: list[tuple[nn.Module, torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """One update of the discriminators on (discriminator, real, fake) triples: the sum over scales of
        mean(D(fake)^2) + mean((D(real) - 1)^2), times gan_w. Real and fake share one call per scale."""
        loss = torch.zeros((), device=self.device)
        for discriminator, real, fake in pairs:
            n = real.shape[0]
            for logits in discriminator(torch.cat([real, fake])):
                loss = loss + lsgan(logits[n:], 0.0) + lsgan(logits[:n], 1.0)
        loss = self.options.gan_weight * loss
        self.d_optim.zero_grad(set_to_none=True)
        loss.backward(inputs=self.d_parameters)
        self.d_optim.step()
        return loss.detach()

    def set_step(self, step: int) -> None:
        o = self.options
        lr = self.base_lr * lr_multiplier(step, self.train_config.iterations, self.schedule, self.train_config.decay_start,
                                          step_size=o.step_size, gamma=o.gamma)
        set_learning_rate(self.g_optim, lr)
        set_learning_rate(self.d_optim, lr)

    def extra_stats(self) -> dict[str, float]:
        return {"lr": self.g_optim.param_groups[0]["lr"]}

    def state_dict(self) -> dict[str, Any]:
        return {"networks": self.networks.state_dict(), "G_optim": self.g_optim.state_dict(), "D_optim": self.d_optim.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.networks.load_state_dict(state["networks"])
        self.g_optim.load_state_dict(state["G_optim"])
        self.d_optim.load_state_dict(state["D_optim"])
