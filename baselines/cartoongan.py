"""CartoonGAN (Chen, Lai and Liu, CVPR 2018), reimplemented on this harness: photo (A) -> cartoon (B) only.

Written from the facts about the authors' Lua Torch training code (no licence: nothing of it may be
reused) in docs/baselines.md; no code of theirs is used.

Code (vs. paper, vs. reference code):
    generator       G     netG
    discriminator   D     netD
    vgg             VGG19 conv4_4 (baselines/vgg.py), frozen

Networks (reference defaults; affine IN with scale ~ U(0, 1), shift 0):
  generator  reflect-pad 3, 7x7 conv to 64, IN, ReLU; twice [3x3 stride-2 conv, 3x3 conv, IN, ReLU] to
             128 and 256; 8 residual blocks [reflect-pad, 3x3 conv, IN, ReLU, reflect-pad, 3x3 conv, IN]
             + x; twice [3x3 stride-2 transposed conv, 3x3 conv, IN, ReLU] to 128 and 64; reflect-pad 3,
             7x7 conv to RGB, tanh. 11,129,667 parameters.
  discriminator  3x3 convs (zero padding 1): 3 -> 32, 64 (stride 2), 128 (IN), 128 (stride 2), 256 (IN),
             256 (IN), each LeakyReLU 0.2; a 3x3 conv to one logit map. 1,129,665 parameters.
Losses (paper Sec. 3.2, eqs. 1-4; least squares as in the reference code, where the paper writes the
log-likelihood GAN):
  discriminator  (D(c) - 1)^2 + D(e)^2 + D(G(p))^2 for cartoons c, edge-smoothed cartoons e
                 (baselines/edge_smoothing.py) and pooled generated images (an image pool of 50)
  generator      (D(G(p)) - 1)^2 + omega 10 * |VGG(G(p)) - VGG(p)|_1 (content loss, conv4_4 before ReLU)
Phases: initialisation (content loss only, generator alone; paper Sec. 3.3) for the reference's
10 + 10 epochs at 2e-4, then adversarial training at 1e-5 for 100 + 100 epochs; the generator's Adam
state carries over. The rate is set once per epoch, as train.lua's UpdateLearningRate: within a phase
of N epochs, epoch k trains at 1 - max(0, k - N/2) / (N/2) of its rate (the last one at 1/10 and
1/100 of it). An epoch is ceil(|photos| / batch) iterations (batch 8); a shorter run keeps that
length and gives the initialisation 20/220 of its epochs (at least one when it has two).
Bias-free in effect: the reference zeroes every conv and transposed-conv bias of G and D at the start
of each update (util.BiasZero at the top of its G and D closures, both phases); so does this one.
The biases then take one Adam step, which the next update zeroes again: a saved model carries the
last step's biases, as the reference's do.
Image pool: the reference's ImagePool:Query stores and swaps whole batches (50 batches of 8).
Optimisation: Adam, betas (0.5, 0.999), no weight decay; conv weights N(0, 0.02), biases 0.
Data: the reference's pipeline (`cartoongan`: resize to the size, flip, no crop) for photos, cartoons
and edge-smoothed cartoons. Edge-smoothed batches are drawn independently of the cartoon batches
(a seeded stream of their own, so a resumed run continues exactly).

Differences from the reference, all stated:
  - VGG19 from torchvision (RGB in [0, 1], ImageNet mean and std) at the image's own size; the
    reference fed the Caffe weights a 224 px, mean-subtracted 0-255 BGR image (its loader turns every
    image to BGR, so its whole model trains in BGR).
  - Each generator step runs the discriminator afresh on the current fake. The reference's generator
    closure reuses the discriminator's output from its last forward pass, which was on the pooled
    fakes (old generator outputs half of the time once the pool is full), and back-propagates that
    gradient into the current generator output: a gradient of another image. A fresh pass costs one
    discriminator forward and gives the gradient the paper's loss defines.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from baselines.conventions import image_size_problems, reimplementation_note
from baselines.cyclegan import ImagePool
from baselines.vgg import RANDOM_WEIGHTS, VGG_WEIGHTS_ENV, VGGContent, resolve_vgg_weights
from bench.core.config import TrainConfig
from bench.core.gan import adam, lsgan
from bench.core.methods import Method, check_direction, register_method
from bench.core.schedule import EpochDecay, epoch_length, lr_multiplier, resolve_schedule, set_learning_rate


@dataclass(frozen=True)
class CartoonGANOptions:
    width: int = 64                  # generator width
    n_blocks: int = 8
    dis_width: int = 32
    content_weight: float = 10.0     # omega
    init_epochs: int = 20            # content-only initialisation: 10 constant + 10 decaying (reference)
    epochs: int = 200                # adversarial training: 100 constant + 100 decaying
    init_lr: float = 2e-4
    lr: float = 1e-5                 # adversarial phase; train.lr overrides it
    pool_size: int = 50
    vgg_weights: str | None = None   # path, "random", or null: $UGATIT_BENCH_VGG19, else torchvision's


def instance_norm(channels: int) -> nn.InstanceNorm2d:
    norm = nn.InstanceNorm2d(channels, affine=True)
    with torch.no_grad():
        norm.weight.uniform_(0, 1)   # the reference's texture_nets IN: scale ~ U(0, 1), shift 0
        norm.bias.zero_()
    return norm


def conv(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride, 1)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, 1, 1, padding_mode="reflect"), instance_norm(channels),
                                  nn.ReLU(inplace=True), nn.Conv2d(channels, channels, 3, 1, 1, padding_mode="reflect"),
                                  instance_norm(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def generator(width: int, n_blocks: int) -> nn.Sequential:
    w = width
    return nn.Sequential(
        nn.Conv2d(3, w, 7, 1, 3, padding_mode="reflect"), instance_norm(w), nn.ReLU(inplace=True),
        conv(w, w * 2, 2), conv(w * 2, w * 2), instance_norm(w * 2), nn.ReLU(inplace=True),
        conv(w * 2, w * 4, 2), conv(w * 4, w * 4), instance_norm(w * 4), nn.ReLU(inplace=True),
        *[ResidualBlock(w * 4) for _ in range(n_blocks)],
        nn.ConvTranspose2d(w * 4, w * 2, 3, 2, 1, output_padding=1), conv(w * 2, w * 2), instance_norm(w * 2), nn.ReLU(inplace=True),
        nn.ConvTranspose2d(w * 2, w, 3, 2, 1, output_padding=1), conv(w, w), instance_norm(w), nn.ReLU(inplace=True),
        nn.Conv2d(w, 3, 7, 1, 3, padding_mode="reflect"), nn.Tanh())


def discriminator(width: int) -> nn.Sequential:
    w = width
    lrelu = lambda: nn.LeakyReLU(0.2, inplace=True)  # noqa: E731
    return nn.Sequential(conv(3, w), lrelu(), conv(w, w * 2, 2), lrelu(), conv(w * 2, w * 4), instance_norm(w * 4), lrelu(),
                         conv(w * 4, w * 4, 2), lrelu(), conv(w * 4, w * 8), instance_norm(w * 8), lrelu(),
                         conv(w * 8, w * 8), instance_norm(w * 8), lrelu(), conv(w * 8, 1))


def vgg_identity(options: CartoonGANOptions) -> str:
    """The content network's weights as they enter a run's identity: torchvision's file is the same
    computation wherever it lies and before it is downloaded; another file is named by its sha256."""
    requested = options.vgg_weights or os.environ.get(VGG_WEIGHTS_ENV)
    if requested == RANDOM_WEIGHTS:
        return "random-seed0"
    if not requested:
        return "torchvision-imagenet"   # torch's hub copy, its sha256 prefix checked when downloaded
    weights = resolve_vgg_weights(requested)
    return "torchvision-imagenet" if weights.official else f"sha256:{weights.identity}"


# The departures from the authors' code that hold for every run (docs/baselines.md), for the tables' footnotes.
DEPARTURES = ("the generator's adversarial loss on a fresh discriminator pass over its current output (the "
              "reference reuses the pass over the pooled fakes)", "RGB throughout (its loader feeds BGR)")


@register_method("cartoongan")
class CartoonGANMethod(Method):
    """CartoonGAN; see the module docstring."""

    Options = CartoonGANOptions
    reference_schedule = "per_epoch"        # within each phase: constant, then down once per epoch
    directions = ("a2b",)                    # photo (A) -> cartoon (B)
    sample_columns = ("input", "translation")

    @classmethod
    def check_settings(cls, options: CartoonGANOptions, train: TrainConfig) -> list[str]:
        problems = []
        problems += image_size_problems(train.image_size, 16)
        if min(options.width, options.dis_width, options.epochs) < 1 or options.n_blocks < 0 or options.init_epochs < 0:
            problems.append("width, dis_width and epochs must be at least 1, n_blocks and init_epochs at least 0")
        return problems

    @classmethod
    def data_pipeline(cls, options: CartoonGANOptions) -> str:
        return "cartoongan"

    @classmethod
    def identity_options(cls, options: CartoonGANOptions, train) -> dict[str, Any]:
        plain = super().identity_options(options, train)
        plain["vgg_weights"] = vgg_identity(options)
        return plain

    @classmethod
    def default_label(cls, options: CartoonGANOptions) -> str:
        return "CartoonGAN"

    @classmethod
    def reference_iterations(cls, options: CartoonGANOptions, train_images: tuple[int, int] | None) -> int | None:
        if not train_images:
            return None
        return (options.init_epochs + options.epochs) * -(-train_images[0] // 8)   # batches of 8 photos

    @classmethod
    def deviations(cls, options: CartoonGANOptions, train: TrainConfig) -> list[str]:
        notes = [reimplementation_note("CartoonGAN", DEPARTURES)]
        identity = vgg_identity(options)
        if identity.startswith("random"):
            notes.append("CartoonGAN content loss from a RANDOM stand-in VGG19: not CartoonGAN's content loss")
        elif identity == "torchvision-imagenet":
            notes.append("CartoonGAN content loss from torchvision's ImageNet VGG19 (the reference used the Caffe weights)")
        else:
            notes.append(f"CartoonGAN content loss from non-standard VGG19 weights ({identity[:19]}...)")
        if (options.width, options.n_blocks, options.dis_width) != (64, 8, 32):
            notes.append(f"reduced CartoonGAN: width {options.width}, {options.n_blocks} residual blocks, discriminator "
                         f"width {options.dis_width} (reference: 64, 8, 32)")
        if train.batch_size != 8:
            notes.append(f"CartoonGAN at batch size {train.batch_size} (reference: 8)")
        return notes

    def __init__(self, options: CartoonGANOptions, train: TrainConfig, device: torch.device):
        super().__init__(options, train, device)
        self.generator = generator(options.width, options.n_blocks)
        self.discriminator = discriminator(options.dis_width)
        self.networks = nn.ModuleDict({"generator": self.generator, "discriminator": self.discriminator})
        with torch.no_grad():
            for layer in self.networks.modules():
                if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
                    layer.weight.normal_(0.0, 0.02)
                    layer.bias.zero_()
        self.networks.to(self.device)
        self.vgg = VGGContent(resolve_vgg_weights(options.vgg_weights)).to(self.device)
        self.main_lr = train.lr if train.lr is not None else options.lr
        self.g_optim = adam(self.generator.parameters(), lr=options.init_lr)
        self.d_optim = adam(self.discriminator.parameters(), lr=self.main_lr)
        self.pool = ImagePool(options.pool_size, whole_batches=True)
        self.edge_smoothed = None
        self.step = 0
        self.set_step(0)

    def prepare_training(self, dataset_dir, settings) -> None:
        """The edge-smoothed cartoons (made once per dataset, cached beside it) as a seeded stream."""
        from baselines.edge_smoothing import smoothed_folder
        from bench.data.pipeline import DomainStream

        self.edge_smoothed = DomainStream(smoothed_folder(dataset_dir / "trainB"), "B_smoothed", settings)

    # -- phases and learning rate ----------------------------------------------------------------
    def phases(self) -> tuple[int, EpochDecay, EpochDecay]:
        """(the initialisation's length in iterations, its schedule, the adversarial phase's schedule)."""
        o, t = self.options, self.train_config
        photos = self.train_images[0] if self.train_images else None
        length = epoch_length(photos, t.batch_size, t.iterations, o.init_epochs + o.epochs)
        epochs = -(-t.iterations // length)
        init_epochs = round(epochs * o.init_epochs / (o.init_epochs + o.epochs))
        if o.init_epochs and epochs >= 2:
            init_epochs = max(init_epochs, 1)
        init_steps = min(init_epochs * length, t.iterations)
        init = EpochDecay.scaled(max(init_steps, 1), length, max(o.init_epochs, 1), o.init_epochs // 2)
        main = EpochDecay.scaled(max(t.iterations - init_steps, 1), length, o.epochs, o.epochs // 2)
        return init_steps, init, main

    @property
    def initialising(self) -> bool:
        return self.step < self.init_steps

    def set_step(self, step: int) -> None:
        """Within each phase: constant for its first half of epochs, then down once per epoch (the reference's)."""
        self.step = step
        self.init_steps, init, main = self.phases()
        schedule = resolve_schedule(self.train_config, self.reference_schedule)
        phase, local, length = (init, step, self.init_steps) if self.initialising else \
            (main, step - self.init_steps, self.train_config.iterations - self.init_steps)
        if schedule == "per_epoch":
            multiplier = phase.multiplier(local)
        else:   # constant, or linear_decay per iteration within each phase
            multiplier = lr_multiplier(local, length, schedule, 0.5)
        if self.initialising:
            set_learning_rate(self.g_optim, self.options.init_lr * multiplier)
            set_learning_rate(self.d_optim, self.main_lr)   # not trained in this phase
        else:
            set_learning_rate(self.g_optim, self.main_lr * multiplier)
            set_learning_rate(self.d_optim, self.main_lr * multiplier)

    def zero_biases(self) -> None:
        """util.BiasZero on G and D, at the start of each update of the reference (both phases)."""
        with torch.no_grad():
            for layer in self.networks.modules():
                if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
                    layer.bias.zero_()

    def extra_stats(self) -> dict[str, float]:
        return {"lr": self.g_optim.param_groups[0]["lr"], "initialising": float(self.initialising)}

    # -- training --------------------------------------------------------------------------------
    def _smoothed_batch(self, n: int) -> torch.Tensor:
        if self.edge_smoothed is None:
            raise RuntimeError("CartoonGAN needs its edge-smoothed cartoons: call prepare_training(dataset_dir, settings) "
                               "before training (the runner does)")
        return torch.stack([self.edge_smoothed[self.step * n + i] for i in range(n)]).to(self.device)

    def _content_loss(self, photos: torch.Tensor, fakes: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.vgg(photos)
        return F.l1_loss(self.vgg(fakes), target)

    def train_step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, Any]:
        o = self.options
        if self.initialising:   # content loss only: the generator learns to reconstruct the photo's content
            self.zero_biases()
            content = self._content_loss(real_a, self.generator(real_a))
            loss = o.content_weight * content
            self.g_optim.zero_grad(set_to_none=True)
            loss.backward(inputs=list(self.generator.parameters()))
            self.g_optim.step()
            return {"loss_G": loss.detach(), "G_content": content.detach()}

        smoothed = self._smoothed_batch(real_b.shape[0])
        self.zero_biases()
        with torch.no_grad():
            pooled = self.pool.query(self.generator(real_a))
        logits = self.discriminator(torch.cat([real_b, smoothed, pooled]))
        m = real_b.shape[0]
        d_loss = lsgan(logits[:m], 1.0) + lsgan(logits[m:2 * m], 0.0) + lsgan(logits[2 * m:], 0.0)
        self.d_optim.zero_grad(set_to_none=True)
        d_loss.backward(inputs=list(self.discriminator.parameters()))
        self.d_optim.step()

        self.zero_biases()
        fake = self.generator(real_a)
        adversarial = lsgan(self.discriminator(fake), 1.0)
        content = self._content_loss(real_a, fake)
        g_loss = adversarial + o.content_weight * content
        self.g_optim.zero_grad(set_to_none=True)
        g_loss.backward(inputs=list(self.generator.parameters()))
        self.g_optim.step()
        return {"loss_D": d_loss.detach(), "loss_G": g_loss.detach(), "G_adversarial": adversarial.detach(),
                "G_content": content.detach()}

    # -- test time -------------------------------------------------------------------------------
    @torch.no_grad()
    def translate(self, images: torch.Tensor, direction: str) -> torch.Tensor:
        check_direction(direction)
        if direction != "a2b":
            raise ValueError("CartoonGAN translates photos (A) to cartoons (B) only: direction a2b")
        return self.generator(images)

    @torch.no_grad()
    def sample_sheet(self, real_a: torch.Tensor, real_b: torch.Tensor) -> torch.Tensor:
        """One row per photo: input | translation."""
        from torchvision.utils import make_grid

        rows = torch.stack([real_a, self.generator(real_a)], dim=1).flatten(0, 1)
        return make_grid((rows.float().cpu() + 1) / 2, nrow=2, padding=2, pad_value=1.0).clamp(0, 1)

    def state_dict(self) -> dict[str, Any]:
        return {"networks": self.networks.state_dict(), "G_optim": self.g_optim.state_dict(),
                "D_optim": self.d_optim.state_dict(), "pool": self.pool.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.networks.load_state_dict(state["networks"])
        self.g_optim.load_state_dict(state["G_optim"])
        self.d_optim.load_state_dict(state["D_optim"])
        self.pool.load_state_dict(state["pool"], self.device)
