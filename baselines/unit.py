"""UNIT (Liu, Breuel and Kautz, NIPS 2017), reimplemented on this harness.

Written from the facts about the authors' code (mingyuliutw/UNIT, master branch, CC BY-NC-SA) in
docs/baselines.md; no code of theirs is used.

Code (vs. paper, vs. reference code):
    encoder_a, decoder_a   E_1, G_1 (domain A)     gen_a.enc, gen_a.dec
    encoder_b, decoder_b   E_2, G_2 (domain B)     gen_b.enc, gen_b.dec
    dis_a, dis_b           D_1, D_2                dis_a, dis_b
The shared latent space is imposed through the losses (cross-domain decoding, cycle, KL), with no
weight sharing, as in the reference's master branch.

Networks (reflection padding, biases everywhere):
  encoder  7x7 conv 3 -> 64, IN, ReLU; 4x4 stride-2 convs to 128 and 256, IN, ReLU; 4 residual blocks
           [3x3 conv, IN, ReLU, 3x3 conv, IN] + x. The code is the 256 x H/4 x W/4 map, the mean of a
           unit-variance Gaussian: z = mu + n with n ~ N(0, I) when training, z = mu at test time.
  decoder  4 residual blocks (IN); nearest x2 up-sampling and a 5x5 conv to 128, LN, ReLU; again to 64;
           7x7 conv to 3, tanh. LN is the reference's: per image, mean and unbiased std over (C, H, W),
           (x - mean) / (std + 1e-5), per-channel gamma ~ U[0, 1) and beta = 0.
           A generator (encoder + decoder) has 11,140,483 parameters.
  discriminator  3 scales, each: 4x4 stride-2 convs 3 -> 64 -> 128 -> 256 -> 512 with LeakyReLU 0.2 and
           no norm, then a 1x1 conv to 1; the image is average-pooled (3x3, stride 2, padding 1, padding
           not counted) between scales. 8,271,171 parameters per domain.
Losses per iteration (the reference configs' weights: the paper's divided by 10):
  discriminators  sum over scales of mean(D(fake)^2) + mean((D(real) - 1)^2), times gan_w = 1
  generators      gan_w 1 * LSGAN on the translations + recon_x_w 10 * L1(G_1(z_1), x_1) (both domains)
                  + recon_kl_w 0.01 * mean(mu^2) + recon_x_cyc_w 10 * L1 of the cycle
                  x_121 = G_1(E_2(G_2(z_1)) + n) (both domains) + recon_kl_cyc_w 0.01 * mean(mu'^2)
  update order    discriminators first (on fakes of their own, detached), then generators.
Optimisation: Adam 1e-4, betas (0.5, 0.999), weight decay 1e-4 (coupled, generators and
discriminators); learning rate x0.5 every 100k iterations; 1M iterations, batch 1; generators
Kaiming-normal, discriminators N(0, 0.02), biases 0.

Differences from the reference, all stated:
  - Data: the reference's pipeline (`unit`: flip, shorter side to the size, random crop, so only flips
    on square images; test: shorter side to the size); its two loaders are shuffled and zipped (an
    epoch ends with the smaller domain), here each domain is reshuffled after each pass of its own.
  - The same mathematics with less work: each decoder decodes its within-domain reconstruction and its
    translation in one batched call, and the generator update computes no discriminator gradients.
  - Noise is drawn from torch's generator in another order than the reference's, so runs are
    statistically, not bit for bit, alike.
  - At image sizes below 64 px the discriminators use fewer scales (each scale needs 16 px).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from baselines.blocks import (MIN_SCALE_SIZE, MultiScaleDiscriminator, ResBlock, content_encoder, discriminator_scales,
                              upsampling_head)
from baselines.conventions import image_size_problems, reimplementation_note
from baselines.shared_trainer import SharedTrainer
from bench.core.config import TrainConfig
from bench.core.gan import lsgan
from bench.core.methods import Method, check_direction, register_method


@dataclass(frozen=True)
class UNITOptions:
    width: int = 64                  # gen.dim = dis.dim
    n_res: int = 4                   # residual blocks in the encoder and in the decoder
    n_scales: int = 3                # discriminator scales (fewer below 64 px)
    gan_weight: float = 1.0          # gan_w
    recon_weight: float = 10.0       # recon_x_w
    kl_weight: float = 0.01          # recon_kl_w
    cycle_weight: float = 10.0       # recon_x_cyc_w
    cycle_kl_weight: float = 0.01    # recon_kl_cyc_w
    lr: float = 1e-4                 # train.lr overrides it
    weight_decay: float = 1e-4
    step_size: int = 100_000         # StepLR: the learning rate is multiplied by gamma every step_size iterations
    gamma: float = 0.5


def decoder(width: int, n_res: int) -> nn.Sequential:
    """Residual blocks (IN), then the shared up-sampling head (nearest x2, 5x5 conv, LN, ReLU; twice; 7x7 conv, tanh)."""
    return nn.Sequential(*[ResBlock(width * 4) for _ in range(n_res)], *upsampling_head(width))



# The departures from the authors' code that hold for every run (docs/baselines.md), for the tables' footnotes.
DEPARTURES = ("each domain reshuffled after each pass of its own (the reference zips two shuffled loaders)",
              "non-square test images centre-cropped after the shorter-side resize",
              "outputs clamped, not stretched to their range as its test script does")


@register_method("unit")
class UNITMethod(SharedTrainer, Method):
    """UNIT; see the module docstring."""

    Options = UNITOptions

    @classmethod
    def check_settings(cls, options: UNITOptions, train: TrainConfig) -> list[str]:
        problems = []
        problems += image_size_problems(train.image_size, MIN_SCALE_SIZE)
        if options.width < 1 or options.n_res < 0 or options.n_scales < 1 or options.step_size < 1:
            problems.append("width, n_scales and step_size must be at least 1, n_res at least 0")
        return problems

    @classmethod
    def default_label(cls, options: UNITOptions) -> str:
        return "UNIT"

    @classmethod
    def reference_iterations(cls, options: UNITOptions, train_images: tuple[int, int] | None) -> int:
        return 1_000_000   # max_iter of the reference configs

    @classmethod
    def deviations(cls, options: UNITOptions, train: TrainConfig) -> list[str]:
        notes = [reimplementation_note("UNIT", DEPARTURES)]
        if options.width != 64 or options.n_res != 4:
            notes.append(f"reduced UNIT: width {options.width}, {options.n_res} residual blocks (reference: 64, 4)")
        scales = discriminator_scales(train.image_size, options.n_scales)
        if scales != 3:
            notes.append(f"UNIT discriminators with {scales} scale(s) (reference: 3)")
        return notes

    def __init__(self, options: UNITOptions, train: TrainConfig, device: torch.device):
        super().__init__(options, train, device)
        w, r = options.width, options.n_res
        self.encoder_a, self.encoder_b = content_encoder(w, r), content_encoder(w, r)
        self.decoder_a, self.decoder_b = decoder(w, r), decoder(w, r)
        scales = discriminator_scales(train.image_size, options.n_scales)
        self.dis_a, self.dis_b = MultiScaleDiscriminator(w, scales), MultiScaleDiscriminator(w, scales)
        generators = nn.ModuleDict({"encoder_a": self.encoder_a, "decoder_a": self.decoder_a,
                                    "encoder_b": self.encoder_b, "decoder_b": self.decoder_b})
        discriminators = nn.ModuleDict({"dis_a": self.dis_a, "dis_b": self.dis_b})
        self.setup_training(generators, discriminators)

    @staticmethod
    def _sample(mu: torch.Tensor) -> torch.Tensor:
        """z = mu + n, n ~ N(0, I): the code of a unit-variance Gaussian with mean mu."""
        return mu + torch.randn_like(mu)

    def train_step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, Any]:
        o = self.options
        n = real_a.shape[0]

        # Discriminators first, on translations of their own (no gradients needed for the generators).
        with torch.no_grad():
            fake_ba = self.decoder_a(self._sample(self.encoder_b(real_b)))
            fake_ab = self.decoder_b(self._sample(self.encoder_a(real_a)))
        d_loss = self.discriminator_step([(self.dis_a, real_a, fake_ba), (self.dis_b, real_b, fake_ab)])

        # Generators: within-domain reconstruction and translation from one sampled code each.
        mu_a, mu_b = self.encoder_a(real_a), self.encoder_b(real_b)
        z_a, z_b = self._sample(mu_a), self._sample(mu_b)
        out_a = self.decoder_a(torch.cat([z_a, z_b]))            # [x_aa, x_ba]
        out_b = self.decoder_b(torch.cat([z_b, z_a]))            # [x_bb, x_ab]
        recon_a, fake_ba = out_a[:n], out_a[n:]
        recon_b, fake_ab = out_b[:n], out_b[n:]
        # Cycle: re-encode each translation with its domain's encoder and decode back.
        mu_a_cycle, mu_b_cycle = self.encoder_b(fake_ab), self.encoder_a(fake_ba)
        cycle_a = self.decoder_a(self._sample(mu_a_cycle))
        cycle_b = self.decoder_b(self._sample(mu_b_cycle))

        adversarial = sum(lsgan(logits, 1.0) for logits in self.dis_a(fake_ba)) + sum(lsgan(logits, 1.0) for logits in self.dis_b(fake_ab))
        reconstruction = F.l1_loss(recon_a, real_a) + F.l1_loss(recon_b, real_b)
        kl = mu_a.square().mean() + mu_b.square().mean()          # KL to N(0, I) of a unit-variance Gaussian, up to constants
        cycle = F.l1_loss(cycle_a, real_a) + F.l1_loss(cycle_b, real_b)
        cycle_kl = mu_a_cycle.square().mean() + mu_b_cycle.square().mean()
        g_loss = (o.gan_weight * adversarial + o.recon_weight * reconstruction + o.kl_weight * kl
                  + o.cycle_weight * cycle + o.cycle_kl_weight * cycle_kl)
        self.g_optim.zero_grad(set_to_none=True)
        g_loss.backward(inputs=self.g_parameters)
        self.g_optim.step()
        return {"loss_D": d_loss.detach(), "loss_G": g_loss.detach(), "G_adversarial": adversarial.detach(),
                "G_reconstruction": reconstruction.detach(), "G_kl": kl.detach(), "G_cycle": cycle.detach(),
                "G_cycle_kl": cycle_kl.detach()}

    @torch.no_grad()
    def translate(self, images: torch.Tensor, direction: str) -> torch.Tensor:
        """Deterministic: the mean code, no noise (the reference's test time)."""
        check_direction(direction)
        encode, decode = (self.encoder_a, self.decoder_b) if direction == "a2b" else (self.encoder_b, self.decoder_a)
        return decode(encode(images))
