"""CycleGAN (Zhu, Park, Isola and Efros, ICCV 2017), reimplemented on this harness.

Written from the facts about the authors' PyTorch code (junyanz/pytorch-CycleGAN-and-pix2pix, BSD) in
docs/baselines.md; no code of theirs is used.

Code (vs. paper, vs. reference code):
    gen_a2b   G: X -> Y        netG_A
    gen_b2a   F: Y -> X        netG_B
    dis_b     D_Y, judges B    netD_A
    dis_a     D_X, judges A    netD_B

Networks (reference defaults):
  generator  resnet_9blocks: reflect-pad 3, 7x7 conv 3 -> 64, IN, ReLU; two 3x3 stride-2 convs (zero
             padding) to 128 and 256, IN, ReLU; 9 residual blocks [reflect-pad, 3x3 conv, IN, ReLU,
             reflect-pad, 3x3 conv, IN] + x; two 3x3 stride-2 transposed convs (output padding 1) to 128
             and 64, IN, ReLU; reflect-pad 3, 7x7 conv to 3, tanh. Biases everywhere; IN without affine.
             11,378,179 parameters.
  discriminator  70x70 PatchGAN: 4x4 convs 3 -> 64 (stride 2, no norm), 128, 256 (stride 2, IN), 512
             (stride 1, IN), each LeakyReLU 0.2, then a 4x4 stride-1 conv to 1 logit map; zero padding 1.
             2,764,737 parameters.
Losses per iteration (the same defaults for every dataset):
  generators     LSGAN (D(fake) -> 1) + 10 * L1 cycle per direction + 0.5 * 10 identity per direction
                 (lambda_identity is a multiplier of the cycle weight: an effective 5)
  discriminators 0.5 * [(D(real) - 1)^2 + D(fake from the image pool)^2]
  update order   generators first (discriminators frozen), then discriminators on pooled fakes.
Optimisation: Adam 2e-4, betas (0.5, 0.999), no weight decay; weights N(0, 0.02), biases 0; image pools
of 50 past fakes per discriminator; batch 1; 200 epochs of max(|A|, |B|) iterations.

Schedule: the reference's, set once per epoch (its LambdaLR, stepped after each epoch): epoch k (0-based)
trains at 1 - max(0, k + 1 - 100) / 101 of the rate, so the last epoch at 1/101. Epochs are of
max(|A|, |B|) / batch iterations; a shorter run keeps that length and the same half of constant epochs.
Data: the reference's pipeline (bench/data/reference_pipelines.py, `cyclegan`): bicubic resize to
286/256 of the size, random crop, flip; test: bicubic resize.

Differences from the reference, all stated:
  - The same mathematics with less work: each generator runs twice per iteration (translation and
    identity batched, then the cycle), not three times, and the generator update computes no
    discriminator gradients (the reference freezes them; here backward asks for generator
    gradients only). Real and pooled fake images share one discriminator call (IN is per image).
  - The pool draws its random numbers from torch's generator (saved in checkpoints) and keeps its
    images in the state dict, so a resumed run continues exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from baselines.conventions import image_size_problems, reimplementation_note
from bench.core.config import TrainConfig
from bench.core.gan import adam, initialise_normal, lsgan
from bench.core.methods import Method, check_direction, register_method
from bench.core.schedule import EpochDecay, epoch_length, lr_multiplier, resolve_schedule, set_learning_rate


@dataclass(frozen=True)
class CycleGANOptions:
    width: int = 64                  # ngf = ndf
    n_blocks: int = 9                # residual blocks (the paper uses 6 at 128 px)
    pool_size: int = 50              # past fakes per image pool (0: none)
    cycle_weight: float = 10.0       # lambda_A = lambda_B
    identity_weight: float = 0.5     # lambda_identity, a multiplier of the cycle weight (effective 5)
    lr: float = 2e-4                 # train.lr overrides it
    epochs: int = 200                # reference length: n_epochs + n_epochs_decay, of max(|A|, |B|) iterations


class ResnetBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels), nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)   # no activation after the sum


class ResnetGenerator(nn.Sequential):
    def __init__(self, width: int = 64, n_blocks: int = 9):
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(3, width, 7), nn.InstanceNorm2d(width), nn.ReLU(inplace=True)]
        for multiplier in (1, 2):                                            # down-sampling, zero padding
            layers += [nn.Conv2d(width * multiplier, width * multiplier * 2, 3, stride=2, padding=1),
                       nn.InstanceNorm2d(width * multiplier * 2), nn.ReLU(inplace=True)]
        layers += [ResnetBlock(width * 4) for _ in range(n_blocks)]
        for multiplier in (4, 2):                                            # up-sampling, transposed convs
            layers += [nn.ConvTranspose2d(width * multiplier, width * multiplier // 2, 3, stride=2, padding=1, output_padding=1),
                       nn.InstanceNorm2d(width * multiplier // 2), nn.ReLU(inplace=True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, 3, 7), nn.Tanh()]
        super().__init__(*layers)


class PatchDiscriminator(nn.Sequential):
    """The 70x70 PatchGAN (n_layers 3): a map of real/fake logits over overlapping patches."""

    def __init__(self, width: int = 64):
        super().__init__(
            nn.Conv2d(3, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, width * 2, 4, stride=2, padding=1), nn.InstanceNorm2d(width * 2), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width * 2, width * 4, 4, stride=2, padding=1), nn.InstanceNorm2d(width * 4), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width * 4, width * 8, 4, stride=1, padding=1), nn.InstanceNorm2d(width * 8), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width * 8, 1, 4, stride=1, padding=1),
        )


class ImagePool:
    """The reference's history of generated images (Shrivastava et al. 2017). Per image: while fewer than
    `size` are stored, store it and return it; afterwards, with probability 1/2 return a random stored
    image and store the new one in its place, else return the new one.

    `whole_batches`: the same rule with a whole batch as the unit (CartoonGAN's Lua pool, ImagePool:Query,
    stores up to `size` batches and swaps a stored batch for the new one as a whole)."""

    def __init__(self, size: int, whole_batches: bool = False):
        self.size = size
        self.whole_batches = whole_batches
        self.images: torch.Tensor | None = None   # size x (unit shape) once the first unit arrives
        self.count = 0

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        units = [images.detach()] if self.whole_batches else list(images.detach())
        returned = [self._exchange(unit) for unit in units]
        return returned[0] if self.whole_batches else torch.stack(returned)

    def _exchange(self, unit: torch.Tensor) -> torch.Tensor:
        if self.images is None:
            self.images = torch.empty((self.size, *unit.shape), dtype=unit.dtype, device=unit.device)
        if self.count < self.size:
            self.images[self.count] = unit
            self.count += 1
            return unit
        if torch.rand(()).item() > 0.5:
            index = int(torch.randint(self.size, ()).item())
            stored = self.images[index].clone()
            self.images[index] = unit
            return stored
        return unit

    def state_dict(self) -> dict[str, Any]:
        stored = self.images[:self.count].clone() if self.images is not None else torch.empty(0)
        return {"images": stored, "count": self.count}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        self.count = int(state["count"])
        self.images = None
        if self.count:
            stored = state["images"].to(device)
            self.images = torch.empty((self.size, *stored.shape[1:]), dtype=stored.dtype, device=stored.device)
            self.images[:self.count] = stored


# The departures from the authors' code that hold for every run (docs/baselines.md), for the tables' footnotes.
DEPARTURES = ("each domain reshuffled after each pass of its own (the reference draws B at random)",
              "the image pool draws from torch's generator")


@register_method("cyclegan")
class CycleGANMethod(Method):
    """CycleGAN; see the module docstring."""

    Options = CycleGANOptions
    reference_schedule = "per_epoch"        # the reference's LambdaLR, stepped once per epoch

    @classmethod
    def data_pipeline(cls, options: CycleGANOptions) -> str:
        return "cyclegan"

    @classmethod
    def check_settings(cls, options: CycleGANOptions, train: TrainConfig) -> list[str]:
        problems = []
        problems += image_size_problems(train.image_size, 32, "two stride-2 down-samplings, and the PatchGAN's three "
                                                              "stride-2 and two 4x4 stride-1 layers")
        if options.width < 1 or options.n_blocks < 0 or options.pool_size < 0 or options.epochs < 1:
            problems.append("width and epochs must be at least 1, n_blocks and pool_size at least 0")
        return problems

    @classmethod
    def default_label(cls, options: CycleGANOptions) -> str:
        return "CycleGAN"

    @classmethod
    def reference_iterations(cls, options: CycleGANOptions, train_images: tuple[int, int] | None) -> int | None:
        return options.epochs * max(train_images) if train_images else None   # batch 1: one epoch = max(|A|, |B|)

    @classmethod
    def deviations(cls, options: CycleGANOptions, train: TrainConfig) -> list[str]:
        notes = [reimplementation_note("CycleGAN", DEPARTURES)]
        if options.width != 64 or options.n_blocks != 9:
            notes.append(f"reduced CycleGAN: width {options.width}, {options.n_blocks} residual blocks (reference: 64, 9)")
        return notes

    def __init__(self, options: CycleGANOptions, train: TrainConfig, device: torch.device):
        super().__init__(options, train, device)
        self.gen_a2b = ResnetGenerator(options.width, options.n_blocks)
        self.gen_b2a = ResnetGenerator(options.width, options.n_blocks)
        self.dis_a = PatchDiscriminator(options.width)
        self.dis_b = PatchDiscriminator(options.width)
        self.networks = nn.ModuleDict({"gen_a2b": self.gen_a2b, "gen_b2a": self.gen_b2a,
                                       "dis_a": self.dis_a, "dis_b": self.dis_b})
        initialise_normal(self.networks, 0.02)
        self.networks.to(self.device)
        self.g_parameters = list(self.gen_a2b.parameters()) + list(self.gen_b2a.parameters())
        self.d_parameters = list(self.dis_a.parameters()) + list(self.dis_b.parameters())
        self.base_lr = train.lr if train.lr is not None else options.lr
        self.g_optim = adam(self.g_parameters, lr=self.base_lr)   # no weight decay (reference)
        self.d_optim = adam(self.d_parameters, lr=self.base_lr)
        self.schedule = resolve_schedule(train, self.reference_schedule)
        self.pool_a, self.pool_b = ImagePool(options.pool_size), ImagePool(options.pool_size)
        self.untrained_directions: set[str] = set()   # a released generator loaded for one direction only (bench.cli.released)

    def epoch_schedule(self) -> EpochDecay:
        """The reference's: n_epochs 100 constant, n_epochs_decay 100, 1 - max(0, k + 1 - 100) / 101."""
        t = self.train_config
        length = epoch_length(max(self.train_images) if self.train_images else None, t.batch_size, t.iterations,
                              self.options.epochs)
        return EpochDecay.scaled(t.iterations, length, self.options.epochs, self.options.epochs // 2, shift=1, extra=1)

    def set_step(self, step: int) -> None:
        if self.schedule == "per_epoch":
            lr = self.base_lr * self.epoch_schedule().multiplier(step)
        else:
            lr = self.base_lr * lr_multiplier(step, self.train_config.iterations, self.schedule, self.train_config.decay_start)
        set_learning_rate(self.g_optim, lr)
        set_learning_rate(self.d_optim, lr)

    def extra_stats(self) -> dict[str, float]:
        return {"lr": self.g_optim.param_groups[0]["lr"]}

    def train_step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, Any]:
        o = self.options
        n = real_a.shape[0]
        use_identity = o.identity_weight > 0

        # Generators. G sees [x_A (, x_B)]: the translation, and the identity G(y) ~ y.
        # F sees [x_B (, x_A), G(x_A)]: translation, identity, and the cycle F(G(x_A)); then G(F(x_B)).
        out_ab = self.gen_a2b(torch.cat([real_a, real_b]) if use_identity else real_a)
        fake_b = out_ab[:n]
        out_ba = self.gen_b2a(torch.cat([real_b, real_a, fake_b] if use_identity else [real_b, fake_b]))
        fake_a = out_ba[:n]
        cycle_a = out_ba[-n:]
        cycle_b = self.gen_a2b(fake_a)

        # Generator update: LSGAN against the current discriminators, cycle and identity L1 terms.
        adversarial = lsgan(self.dis_b(fake_b), 1.0) + lsgan(self.dis_a(fake_a), 1.0)
        cycle = o.cycle_weight * (F.l1_loss(cycle_a, real_a) + F.l1_loss(cycle_b, real_b))
        identity = torch.zeros((), device=self.device)
        if use_identity:
            identity = o.identity_weight * o.cycle_weight * (F.l1_loss(out_ab[n:], real_b) + F.l1_loss(out_ba[n:2 * n], real_a))
        g_loss = adversarial + cycle + identity
        self.g_optim.zero_grad(set_to_none=True)
        g_loss.backward(inputs=self.g_parameters)
        self.g_optim.step()

        # Discriminator update on real images and pooled, detached fakes.
        pooled_b, pooled_a = self.pool_b.query(fake_b), self.pool_a.query(fake_a)
        d_loss = torch.zeros((), device=self.device)
        for discriminator, real, pooled in ((self.dis_b, real_b, pooled_b), (self.dis_a, real_a, pooled_a)):
            logits = discriminator(torch.cat([real, pooled]))
            d_loss = d_loss + 0.5 * (lsgan(logits[:n], 1.0) + lsgan(logits[n:], 0.0))
        self.d_optim.zero_grad(set_to_none=True)
        d_loss.backward(inputs=self.d_parameters)
        self.d_optim.step()
        return {"loss_D": d_loss.detach(), "loss_G": g_loss.detach(), "G_adversarial": adversarial.detach(),
                "G_cycle": cycle.detach(), "G_identity": identity.detach()}

    @torch.no_grad()
    def translate(self, images: torch.Tensor, direction: str) -> torch.Tensor:
        check_direction(direction)
        if direction in self.untrained_directions:
            raise ValueError(f"no generator was loaded for {direction}: give its file to bench.core.released.load_released")
        generator = self.gen_a2b if direction == "a2b" else self.gen_b2a
        was_training = generator.training
        generator.eval()   # no dropout or running statistics here: eval and train modes give the same output
        try:
            return generator(images)
        finally:
            generator.train(was_training)

    def state_dict(self) -> dict[str, Any]:
        return {"networks": self.networks.state_dict(), "G_optim": self.g_optim.state_dict(),
                "D_optim": self.d_optim.state_dict(), "pool_a": self.pool_a.state_dict(), "pool_b": self.pool_b.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.networks.load_state_dict(state["networks"])
        self.g_optim.load_state_dict(state["G_optim"])
        self.d_optim.load_state_dict(state["D_optim"])
        self.pool_a.load_state_dict(state["pool_a"], self.device)
        self.pool_b.load_state_dict(state["pool_b"], self.device)
