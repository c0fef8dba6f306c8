"""AGGAN, unsupervised attention-guided translation (Mejjati, Richardt, Tompkin, Cosker and Kim,
NeurIPS 2018), reimplemented on this harness.

Written from the facts about the authors' TensorFlow code (MIT licence) in docs/baselines.md; no
code of theirs is used.

Code (vs. paper, vs. reference code):
    gen_a2b, gen_b2a      F_S->T, F_T->S   generators       G_A, G_B
    attention_a, _b       A_S, A_T         attention nets   att_A (used with G_A), att_B
    dis_a, dis_b          D_S, D_T         discriminators   D_A (judges A), D_B (judges B)

Networks (reference defaults):
  generator  ngf 32: zero-pad 3, 7x7 conv to 32, two 3x3 stride-2 convs to 64 and 128, 9 residual
             blocks whose sum goes through a ReLU (zero padding), two 3x3 stride-2 transposed convs,
             7x7 conv to RGB, tanh; affine IN after every hidden conv. 2,855,811 parameters.
  attention  reflect-pad 3, 7x7 stride-2 conv to 32, a 3x3 stride-2 conv to 64, one residual block
             (reflection padding), nearest x2 and a 1x1 conv to 64, nearest x2 and a 1x1 conv to 32
             (the reference's "3x3/7x7" calls are 1x1: its conv helper reads one kernel dimension),
             1x1 conv to one channel, sigmoid. 104,001 parameters.
  compositing  s = A(x); y = s * F(x) + (1 - s) * x (paper eq. 1); the cycle composites the same way
             with the other attention net and generator.
  discriminator  zero-pad 2 and 4x4 convs 3 -> 64 -> 128 -> 256 (stride 2) -> 512 (stride 1), affine
             IN and LeakyReLU 0.2, then a 4x4 stride-1 conv to a logit map. 2,766,657 parameters.
Losses: LSGAN; each generator minimises its adversarial term plus 10 x both cycle L1 terms (paper
eq. 4-5); the discriminators 0.5 * [(D(real) - 1)^2 + D(pooled fake)^2] on an image pool of 50 fakes
stored with their attention masks.
Two phases (paper Sec. 3.2): until the switch, the attention nets learn with their generators,
tau = 0 (the discriminators see whole images) and the discriminators use IN. After it the attention
nets are frozen, each discriminator sees x * 1[s >= tau], tau = 0.1, with s the attention of the
image (real) or of the source of the fake, and its IN is off (the parameters stay).
Per iteration, in the reference's order: G_A with att_A, then D_B, then G_B with att_B (on a fresh
forward pass through the updated G_A), then D_A.
Padding as TensorFlow's "SAME" (`tf_padding`, on by default): the reference's stride-2 3x3 convs pad
one row and column after, none before, and its stride-2 transposed convs keep the first 2H rows of
the full output (baselines/blocks.py); torch's symmetric padding samples the grid one pixel earlier.
Optimisation: Adam, betas (0.5, 0.999), no weight decay; batch 1; conv weights truncated N(0, 0.02),
biases 0, IN scales truncated N(1, 0.02). The reference code's defaults: lr 2e-4, 200 epochs of
max(|A|, |B|) iterations, the rate set at each epoch's start: constant for the first half, then
lr * (1 - (epoch - half) / half) (the last epoch at lr / half); switch at epoch 30. Its per-dataset
configurations (configs/exp_*.json) change lr and epochs: horse2zebra, apple2orange and lion2tiger 1e-4
and 100 epochs, summer2winter the defaults; the paper's other datasets have none (the defaults apply),
and experiments/main.yaml sets horse2zebra's. A shorter run keeps the epoch length and puts the
switch and the decay at the same fractions of its epochs.
Data: the reference's pipeline (`aggan`): fixed rows (A[i mod |A|], B[i mod |B|]) in order, TF1 bilinear
resize to 286/256 of the size, one random flip and crop per row for both images.
Test time: one output per image, soft attention compositing; the attention map is drawn beside it.

Differences from the reference, all stated:
  - Tests resize to the image size (TF1 bilinear) instead of the reference test loader's random crop
    from 286, which would make a score depend on a crop draw.
  - Adam's bias corrections are per optimiser (the reference's TF1 Adam shares them between its four
    updates; the difference fades within a few hundred iterations).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from baselines.blocks import TFSameConv2d, TFSameConvTranspose2d
from baselines.conventions import image_size_problems, reimplementation_note
from baselines.cyclegan import ImagePool
from bench.core.config import TrainConfig
from bench.core.gan import adam, lsgan
from bench.core.methods import Method, check_direction, register_method
from bench.core.schedule import EpochDecay, epoch_length, lr_multiplier, resolve_schedule, set_learning_rate


@dataclass(frozen=True)
class AGGANOptions:
    width: int = 32                  # ngf
    n_blocks: int = 9                # generator residual blocks
    dis_width: int = 64              # ndf
    cycle_weight: float = 10.0       # lambda_A = lambda_B
    threshold: float = 0.1           # tau after the switch
    switch_epoch: int = 30           # the attention nets freeze after this many epochs ...
    epochs: int = 200                # ... of this many (the reference length, of max(|A|, |B|) iterations)
    pool_size: int = 50
    lr: float = 2e-4                 # train.lr overrides it
    tf_padding: bool = True          # TensorFlow "SAME" padding of the stride-2 convs (reference); false: torch's symmetric


def instance_norm(channels: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(channels, affine=True)


class ResidualBlock(nn.Module):
    """pad, 3x3 conv, IN, ReLU, pad, 3x3 conv, IN; ReLU(x + block(x))."""

    def __init__(self, channels: int, padding_mode: str):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, padding_mode=padding_mode), instance_norm(channels),
                                  nn.ReLU(inplace=True), nn.Conv2d(channels, channels, 3, padding=1, padding_mode=padding_mode),
                                  instance_norm(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


def conv_in_relu(in_channels: int, out_channels: int, kernel: int, stride: int = 1, padding: int = 0,
                 padding_mode: str = "zeros") -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, kernel, stride, padding, padding_mode=padding_mode),
            instance_norm(out_channels), nn.ReLU(inplace=True)]


def down_in_relu(in_channels: int, out_channels: int, tf_padding: bool) -> list[nn.Module]:
    """The reference's 3x3 stride-2 "SAME" conv, IN, ReLU."""
    conv = TFSameConv2d(in_channels, out_channels, 3, 2) if tf_padding else nn.Conv2d(in_channels, out_channels, 3, 2, 1)
    return [conv, instance_norm(out_channels), nn.ReLU(inplace=True)]


def up_in_relu(in_channels: int, out_channels: int, tf_padding: bool) -> list[nn.Module]:
    """The reference's 3x3 stride-2 "SAME" transposed conv, IN, ReLU."""
    conv = (TFSameConvTranspose2d(in_channels, out_channels, 3, 2) if tf_padding
            else nn.ConvTranspose2d(in_channels, out_channels, 3, 2, 1, output_padding=1))
    return [conv, instance_norm(out_channels), nn.ReLU(inplace=True)]


def generator(width: int, n_blocks: int, tf_padding: bool = True) -> nn.Sequential:
    layers = [*conv_in_relu(3, width, 7, padding=3), *down_in_relu(width, width * 2, tf_padding),
              *down_in_relu(width * 2, width * 4, tf_padding), *[ResidualBlock(width * 4, "zeros") for _ in range(n_blocks)],
              *up_in_relu(width * 4, width * 2, tf_padding), *up_in_relu(width * 2, width, tf_padding)]
    return nn.Sequential(*layers, nn.Conv2d(width, 3, 7, padding=3), nn.Tanh())


def attention_network(tf_padding: bool = True) -> nn.Sequential:
    """x -> s in (0, 1), N x 1 x H x W (the reference's widths: 32, 64)."""
    return nn.Sequential(*conv_in_relu(3, 32, 7, 2, 3, "reflect"), *down_in_relu(32, 64, tf_padding), ResidualBlock(64, "reflect"),
                         nn.Upsample(scale_factor=2, mode="nearest"), *conv_in_relu(64, 64, 1),
                         nn.Upsample(scale_factor=2, mode="nearest"), *conv_in_relu(64, 32, 1),
                         nn.Conv2d(32, 1, 1), nn.Sigmoid())


class Discriminator(nn.Module):
    """The reference's PatchGAN whose instance norm can be switched off (the second phase)."""

    def __init__(self, width: int):
        super().__init__()
        channels = [3, width, width * 2, width * 4, width * 8]
        self.convs = nn.ModuleList(nn.Conv2d(channels[i], channels[i + 1], 4, 2 if i < 3 else 1, 2) for i in range(4))
        self.norms = nn.ModuleList(instance_norm(c) for c in channels[1:])
        self.out = nn.Conv2d(width * 8, 1, 4, 1, 2)
        self.use_norm = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, norm in zip(self.convs, self.norms):
            x = conv(x)
            x = F.leaky_relu(norm(x) if self.use_norm else x, 0.2)
        return self.out(x)


def composite(attention: torch.Tensor, translated: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """s * F(x) + (1 - s) * x: the foreground from the generator, the background copied from the input."""
    return attention * translated + (1 - attention) * source


# The departures from the authors' code that hold for every run (docs/baselines.md), for the tables' footnotes.
DEPARTURES = ("test images resized, not randomly cropped from 286 as its test loader does",
              "one Adam per update (TF1's shared bias corrections)")


@register_method("aggan")
class AGGANMethod(Method):
    """AGGAN; see the module docstring."""

    Options = AGGANOptions
    reference_schedule = "per_epoch"

    @classmethod
    def data_pipeline(cls, options: AGGANOptions) -> str:
        return "aggan"
    sample_columns = ("input", "attention", "translation", "cycle")
    attention_is_probability = True   # its attention maps are drawn on their own [0, 1] scale, not stretched

    @classmethod
    def check_settings(cls, options: AGGANOptions, train: TrainConfig) -> list[str]:
        problems = []
        problems += image_size_problems(train.image_size, 16)
        if min(options.width, options.dis_width, options.epochs) < 1 or options.n_blocks < 0 or options.pool_size < 0:
            problems.append("width, dis_width and epochs must be at least 1, n_blocks and pool_size at least 0")
        if not 0 <= options.switch_epoch <= options.epochs:
            problems.append(f"switch_epoch must be between 0 and epochs ({options.epochs}), got {options.switch_epoch}")
        if not 0 <= options.threshold <= 1:
            problems.append(f"threshold is an attention value in [0, 1], got {options.threshold}")
        return problems

    @classmethod
    def default_label(cls, options: AGGANOptions) -> str:
        return "AGGAN"

    @classmethod
    def reference_iterations(cls, options: AGGANOptions, train_images: tuple[int, int] | None) -> int | None:
        return options.epochs * max(train_images) if train_images else None   # batch 1: an epoch is max(|A|, |B|)

    @classmethod
    def deviations(cls, options: AGGANOptions, train: TrainConfig) -> list[str]:
        notes = [reimplementation_note("AGGAN", DEPARTURES)]
        if not options.tf_padding:
            notes.append("AGGAN with torch's symmetric padding (tf_padding: false; the reference pads as TensorFlow's SAME)")
        if (options.width, options.n_blocks, options.dis_width) != (32, 9, 64):
            notes.append(f"reduced AGGAN: width {options.width}, {options.n_blocks} residual blocks, discriminator width "
                         f"{options.dis_width} (reference: 32, 9, 64)")
        return notes

    def __init__(self, options: AGGANOptions, train: TrainConfig, device: torch.device):
        super().__init__(options, train, device)
        self.gen_a2b, self.gen_b2a = (generator(options.width, options.n_blocks, options.tf_padding) for _ in range(2))
        self.attention_a, self.attention_b = attention_network(options.tf_padding), attention_network(options.tf_padding)
        self.dis_a, self.dis_b = Discriminator(options.dis_width), Discriminator(options.dis_width)
        self.networks = nn.ModuleDict({"gen_a2b": self.gen_a2b, "gen_b2a": self.gen_b2a, "attention_a": self.attention_a,
                                       "attention_b": self.attention_b, "dis_a": self.dis_a, "dis_b": self.dis_b})
        self._initialise()
        self.networks.to(self.device)
        self.base_lr = train.lr if train.lr is not None else options.lr
        # One optimiser per update of the reference: G_A with att_A, G_B with att_B, D_A, D_B.
        self.optim_a2b = adam([*self.gen_a2b.parameters(), *self.attention_a.parameters()], lr=self.base_lr)
        self.optim_b2a = adam([*self.gen_b2a.parameters(), *self.attention_b.parameters()], lr=self.base_lr)
        self.optim_dis_a = adam(self.dis_a.parameters(), lr=self.base_lr)
        self.optim_dis_b = adam(self.dis_b.parameters(), lr=self.base_lr)
        self.schedule = resolve_schedule(train, self.reference_schedule)
        self.pool_a, self.pool_b = ImagePool(options.pool_size), ImagePool(options.pool_size)
        self.set_step(0)

    def _initialise(self) -> None:
        with torch.no_grad():
            for layer in self.networks.modules():
                if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
                    nn.init.trunc_normal_(layer.weight, std=0.02, a=-0.04, b=0.04)   # TF's truncation at 2 std
                    nn.init.zeros_(layer.bias)
                elif isinstance(layer, nn.InstanceNorm2d):
                    nn.init.trunc_normal_(layer.weight, mean=1.0, std=0.02, a=0.96, b=1.04)
                    nn.init.zeros_(layer.bias)

    # -- phases and learning rate ----------------------------------------------------------------
    def set_step(self, step: int) -> None:
        """The learning rate, and the phase: attention learning (tau = 0, discriminators with IN) before
        the switch step, frozen attention and masked discriminator inputs (tau, no IN) from it on."""
        epochs = self.epoch_schedule()
        self.switch_step = min(round(epochs.epochs * self.options.switch_epoch / self.options.epochs) * epochs.epoch_length,
                               self.train_config.iterations)
        if self.schedule == "per_epoch":
            lr = self.base_lr * epochs.multiplier(step)
        else:
            lr = self.base_lr * lr_multiplier(step, self.train_config.iterations, self.schedule, self.train_config.decay_start)
        for optimizer in (self.optim_a2b, self.optim_b2a, self.optim_dis_a, self.optim_dis_b):
            set_learning_rate(optimizer, lr)
        self.attention_frozen = step >= self.switch_step
        self.tau = self.options.threshold if self.attention_frozen else 0.0
        self.dis_a.use_norm = self.dis_b.use_norm = not self.attention_frozen

    def epoch_schedule(self) -> EpochDecay:
        """main.py's: epochs of max(|A|, |B|) rows; lr * (1 - (epoch - half) / half) from half of the epochs."""
        t = self.train_config
        length = epoch_length(max(self.train_images) if self.train_images else None, t.batch_size, t.iterations,
                              self.options.epochs)
        return EpochDecay.scaled(t.iterations, length, self.options.epochs, self.options.epochs // 2)

    def extra_stats(self) -> dict[str, float]:
        return {"lr": self.optim_a2b.param_groups[0]["lr"], "attention_frozen": float(self.attention_frozen)}

    # -- training --------------------------------------------------------------------------------
    def _translate(self, direction: str, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the composited translation, the attention map of `images`)."""
        gen, attention = (self.gen_a2b, self.attention_a) if direction == "a2b" else (self.gen_b2a, self.attention_b)
        s = attention(images)
        return composite(s, gen(images), images), s

    def _gate(self, images: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        """x * 1[s >= tau]: whole images before the switch (tau = 0), attended pixels after."""
        return images * (attention >= self.tau).to(images.dtype)

    def _generator_loss(self, direction: str, real_a: torch.Tensor, real_b: torch.Tensor):
        """One generator's objective on a fresh forward pass: its LSGAN term plus both cycle terms.
        Returns (loss, its fake, the fake's source attention, the losses to log)."""
        o = self.options
        fake_b, attention_a = self._translate("a2b", real_a)
        fake_a, attention_b = self._translate("b2a", real_b)
        cycle_a = F.l1_loss(self._translate("b2a", fake_b)[0], real_a)
        cycle_b = F.l1_loss(self._translate("a2b", fake_a)[0], real_b)
        if direction == "a2b":
            fake, mask, discriminator = fake_b, attention_a, self.dis_b
        else:
            fake, mask, discriminator = fake_a, attention_b, self.dis_a
        adversarial = lsgan(discriminator(self._gate(fake, mask)), 1.0)
        loss = adversarial + o.cycle_weight * (cycle_a + cycle_b)
        return loss, fake, mask, {"adversarial": adversarial, "cycle": cycle_a + cycle_b}

    def _discriminator_step(self, discriminator, optimizer, pool, real, fake, fake_mask, real_attention) -> torch.Tensor:
        pooled = pool.query(torch.cat([fake, fake_mask], dim=1))   # fakes are pooled with their masks
        n = real.shape[0]
        logits = discriminator(torch.cat([self._gate(real, real_attention), self._gate(pooled[:, :3], pooled[:, 3:])]))
        loss = 0.5 * (lsgan(logits[:n], 1.0) + lsgan(logits[n:], 0.0))
        optimizer.zero_grad(set_to_none=True)
        loss.backward(inputs=list(discriminator.parameters()))
        optimizer.step()
        return loss.detach()

    def _generator_step(self, direction: str, real_a: torch.Tensor, real_b: torch.Tensor):
        loss, fake, mask, parts = self._generator_loss(direction, real_a, real_b)
        gen, attention, optimizer = ((self.gen_a2b, self.attention_a, self.optim_a2b) if direction == "a2b"
                                     else (self.gen_b2a, self.attention_b, self.optim_b2a))
        parameters = list(gen.parameters()) + ([] if self.attention_frozen else list(attention.parameters()))
        optimizer.zero_grad(set_to_none=True)
        loss.backward(inputs=parameters)
        optimizer.step()
        return loss.detach(), fake.detach(), mask.detach(), parts

    def train_step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, Any]:
        # The attention of the real images gates what each discriminator sees of them (no gradient flows
        # through the hard threshold).
        with torch.no_grad():
            attention_real_a, attention_real_b = self.attention_a(real_a), self.attention_b(real_b)
        loss_a2b, fake_b, mask_a, parts_a2b = self._generator_step("a2b", real_a, real_b)
        d_b = self._discriminator_step(self.dis_b, self.optim_dis_b, self.pool_b, real_b, fake_b, mask_a, attention_real_b)
        loss_b2a, fake_a, mask_b, parts_b2a = self._generator_step("b2a", real_a, real_b)
        d_a = self._discriminator_step(self.dis_a, self.optim_dis_a, self.pool_a, real_a, fake_a, mask_b, attention_real_a)
        return {"loss_D": d_a + d_b, "loss_G": loss_a2b + loss_b2a,
                "G_adversarial": (parts_a2b["adversarial"] + parts_b2a["adversarial"]).detach(),
                "G_cycle": parts_b2a["cycle"].detach(), "attention_mean": mask_a.mean()}

    # -- test time -------------------------------------------------------------------------------
    @torch.no_grad()
    def translate(self, images: torch.Tensor, direction: str) -> torch.Tensor:
        check_direction(direction)
        return self._translate(direction, images)[0]

    @torch.no_grad()
    def translate_with_attention(self, images: torch.Tensor, direction: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The translation and its attention map s in [0, 1] (drawn as it is, not rescaled)."""
        check_direction(direction)
        return self._translate(direction, images)

    def sample_sheet(self, real_a: torch.Tensor, real_b: torch.Tensor) -> torch.Tensor:
        """One row per image and direction: input | attention | translation | cycle."""
        from torchvision.utils import make_grid

        from bench.core.visual import overlay, to_unit

        rows = []
        with torch.no_grad():
            for real, forward, backward in ((real_a, "a2b", "b2a"), (real_b, "b2a", "a2b")):
                fake, attention = self._translate(forward, real)
                cycle = self._translate(backward, fake)[0]
                rows.append(torch.stack([to_unit(real), overlay(real, attention, scale=False), to_unit(fake), to_unit(cycle)],
                                        dim=1).flatten(0, 1))
        return make_grid(torch.cat(rows).float().cpu(), nrow=4, padding=2, pad_value=1.0).clamp(0, 1)

    def state_dict(self) -> dict[str, Any]:
        return {"networks": self.networks.state_dict(), "optim_a2b": self.optim_a2b.state_dict(),
                "optim_b2a": self.optim_b2a.state_dict(), "optim_dis_a": self.optim_dis_a.state_dict(),
                "optim_dis_b": self.optim_dis_b.state_dict(), "pool_a": self.pool_a.state_dict(),
                "pool_b": self.pool_b.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.networks.load_state_dict(state["networks"])
        for name in ("optim_a2b", "optim_b2a", "optim_dis_a", "optim_dis_b"):
            getattr(self, name).load_state_dict(state[name])
        self.pool_a.load_state_dict(state["pool_a"], self.device)
        self.pool_b.load_state_dict(state["pool_b"], self.device)
