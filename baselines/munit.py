"""MUNIT (Huang, Liu, Belongie and Kautz, ECCV 2018), reimplemented on this harness.

Written from the facts about the authors' code (NVlabs/MUNIT, CC BY-NC-SA) in docs/baselines.md; no
code of theirs is used. The losses and weights are those of the reference's
summer2winter_yosemite256 configuration: of its four configurations it is the one for 256 px
unaligned photographs, as the paper's datasets are (edges2shoes/edges2handbags switch the cycle term
off for sketch-to-photo; synthia2cityscape is 512 px with a VGG loss).

Code (vs. paper, vs. reference code):
    content_a, content_b   E^c_1, E^c_2   content encoders       gen_a.enc_content, gen_b.enc_content
    style_a, style_b       E^s_1, E^s_2   style encoders         gen_a.enc_style, gen_b.enc_style
    mlp_a, mlp_b           MLP            style -> AdaIN params  gen_a.mlp, gen_b.mlp
    decoder_a, decoder_b   G_1, G_2       decoders               gen_a.dec, gen_b.dec
    dis_a, dis_b           D_1, D_2       (UNIT's multi-scale discriminators, baselines/blocks.py)

Networks (reflection padding, biases everywhere, ReLU):
  content encoder  UNIT's encoder: 7x7 conv 3 -> 64, 4x4 stride-2 convs to 128 and 256, IN; 4 residual
           blocks (IN). The content code c is 256 x H/4 x W/4.
  style encoder  no normalisation (style statistics must survive): 7x7 conv to 64, four 4x4 stride-2
           convs to 128, 256, 256, 256; global average pool; 1x1 conv to the 8-dim style code s.
           Prior p(s) = N(0, I).
  MLP      8 -> 256 -> 256 (ReLU) -> 4096 = 8 AdaIN layers x (256 shifts + 256 scales).
  decoder  4 residual blocks [3x3 conv, AdaIN, ReLU, 3x3 conv, AdaIN] + x; nearest x2 and 5x5 conv,
           LN, ReLU, twice; 7x7 conv to RGB, tanh. AdaIN(x) = gamma * IN(x) + beta with gamma, beta from
           the MLP (Huang and Belongie 2017; the paper's eq. for AdaIN in Sec. 3.2).
           A generator (both encoders, MLP, decoder) has 15,026,187 parameters.
Losses per iteration (paper Sec. 3.2, eqs. 1-5; the summer2winter256 config's weights), s_1, s_2 ~ N(0, I):
  image reconstruction   recon_x_w 10 * |G_1(E^c_1(x_1), E^s_1(x_1)) - x_1|  (both domains)
  adversarial            gan_w 1 * LSGAN on x_21 = G_1(c_2, s_1) and x_12 = G_2(c_1, s_2)
  latent reconstruction  recon_s_w 1 * |E^s_1(x_21) - s_1| + recon_c_w 1 * |E^c_1(x_21) - c_2|  (both)
                         (the content target is not detached, as in the reference)
  style-augmented cycle  recon_x_cyc_w 10 * |G_1(E^c_2(x_12), E^s_1(x_1)) - x_1|  (both)
  discriminators         sum over scales of mean(D(fake)^2) + mean((D(real) - 1)^2), times gan_w
  update order           discriminators first (fresh codes, fakes detached), then generators (fresh codes).
Optimisation: Adam 1e-4, betas (0.5, 0.999), weight decay 1e-4 (coupled); x0.5 every 100k iterations;
1M iterations, batch 1; generators (with the MLP) Kaiming-normal, discriminators N(0, 0.02), biases 0,
LN gamma ~ U[0, 1).
Test time: see bench/core/multimodal.py (one seeded random style per image by default; the reference's test
script draws 10 per image and stretches each output's range, which this harness does not).

Differences from the reference, all stated:
  - Data: the reference's pipeline (`unit`, as UNIT's: flip, shorter side to the size, random crop;
    only flips on square images); each domain is reshuffled after each pass of its own (the reference
    zips two shuffled loaders).
  - AdaIN parameters are passed to the decoder explicitly instead of being written into its modules
    before each call; the split order (per layer, in module order: 256 shifts, then 256 scales; scale
    used raw) is the reference's.
  - Each decoder decodes its within-domain reconstruction and its translation in one batched call (IN,
    AdaIN and LN are per image: the same result); the generator update computes no discriminator
    gradients.
  - Noise comes from torch's generator in another order than the reference's.
  - At image sizes below 64 px the discriminators use fewer scales (each scale needs 16 px).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from baselines.blocks import (MIN_SCALE_SIZE, MultiScaleDiscriminator, content_encoder, conv_block,
                              discriminator_scales, upsampling_head)
from baselines.conventions import image_size_problems, reimplementation_note
from baselines.shared_trainer import SharedTrainer
from bench.core.config import TrainConfig
from bench.core.gan import lsgan
from bench.core.methods import register_method
from bench.core.multimodal import MultimodalMethod, settings_notes, settings_problems


@dataclass(frozen=True)
class MUNITOptions:
    width: int = 64                  # gen.dim = dis.dim
    style_dim: int = 8               # gen.style_dim
    mlp_dim: int = 256               # gen.mlp_dim
    n_res: int = 4                   # residual blocks in the content encoder and the decoder
    n_scales: int = 3                # discriminator scales (fewer below 64 px)
    gan_weight: float = 1.0          # gan_w
    recon_weight: float = 10.0       # recon_x_w
    style_weight: float = 1.0        # recon_s_w
    content_weight: float = 1.0      # recon_c_w
    cycle_weight: float = 10.0       # recon_x_cyc_w (summer2winter256; 0 in the edges2* configs)
    lr: float = 1e-4                 # train.lr overrides it
    weight_decay: float = 1e-4
    step_size: int = 100_000         # the learning rate is multiplied by gamma every step_size iterations
    gamma: float = 0.5
    test_style: Literal["random", "mean", "exemplar"] = "random"   # bench/core/multimodal.py
    test_samples: int = 1
    test_seed: int = 0


def adaptive_instance_norm(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """gamma * (x - mean) / sqrt(var + eps) + beta per image and channel (biased variance); gamma, beta: N x C."""
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = x.var(dim=(2, 3), keepdim=True, unbiased=False)
    return (x - mean) * torch.rsqrt(var + eps) * gamma[:, :, None, None] + beta[:, :, None, None]


class AdaINResBlock(nn.Module):
    """[3x3 conv, AdaIN, ReLU, 3x3 conv, AdaIN] + x: the decoder's residual block, two AdaIN layers."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1, padding_mode="reflect")
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, padding_mode="reflect")

    def forward(self, x: torch.Tensor, params: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        (beta1, gamma1), (beta2, gamma2) = params
        h = F.relu(adaptive_instance_norm(self.conv1(x), gamma1, beta1))
        return x + adaptive_instance_norm(self.conv2(h), gamma2, beta2)


def split_adain_parameters(mlp_output: torch.Tensor, layers: int, channels: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The MLP's output (N x layers*2*channels) as (beta, gamma) per AdaIN layer in module order: for each
    layer the next `channels` values are its shift beta, the following `channels` its scale gamma (raw)."""
    chunks = mlp_output.view(mlp_output.shape[0], layers, 2, channels)
    return [(chunks[:, layer, 0], chunks[:, layer, 1]) for layer in range(layers)]


class AdaINDecoder(nn.Module):
    def __init__(self, width: int, n_res: int):
        super().__init__()
        self.channels = width * 4
        self.blocks = nn.ModuleList(AdaINResBlock(self.channels) for _ in range(n_res))
        self.head = upsampling_head(width)

    @property
    def adain_layers(self) -> int:
        return 2 * len(self.blocks)

    def forward(self, content: torch.Tensor, mlp_output: torch.Tensor) -> torch.Tensor:
        params = split_adain_parameters(mlp_output, self.adain_layers, self.channels)
        x = content
        for index, block in enumerate(self.blocks):
            x = block(x, params[2 * index:2 * index + 2])
        return self.head(x)


def style_encoder(width: int, style_dim: int) -> nn.Sequential:
    """No normalisation: 7x7 conv, four 4x4 stride-2 convs (channels doubling to 4*width), average pool, 1x1 conv."""
    return nn.Sequential(conv_block(3, width, 7, 1, 3, "none", "relu"), conv_block(width, width * 2, 4, 2, 1, "none", "relu"),
                         conv_block(width * 2, width * 4, 4, 2, 1, "none", "relu"),
                         conv_block(width * 4, width * 4, 4, 2, 1, "none", "relu"),
                         conv_block(width * 4, width * 4, 4, 2, 1, "none", "relu"),
                         nn.AdaptiveAvgPool2d(1), nn.Conv2d(width * 4, style_dim, 1), nn.Flatten())


def style_mlp(style_dim: int, hidden: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(style_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
                         nn.Linear(hidden, outputs))


# The departures from the authors' code that hold for every run (docs/baselines.md), for the tables' footnotes.
DEPARTURES = ("each domain reshuffled after each pass of its own (the reference zips two shuffled loaders)",
              "one seeded style per test image and outputs clamped (its test script: 10 styles, stretched)")


@register_method("munit")
class MUNITMethod(SharedTrainer, MultimodalMethod):
    """MUNIT; see the module docstring."""

    Options = MUNITOptions

    @classmethod
    def check_settings(cls, options: MUNITOptions, train: TrainConfig) -> list[str]:
        problems = settings_problems(options)
        problems += image_size_problems(train.image_size, MIN_SCALE_SIZE)
        if min(options.width, options.style_dim, options.mlp_dim, options.n_scales, options.step_size) < 1 or options.n_res < 0:
            problems.append("width, style_dim, mlp_dim, n_scales and step_size must be at least 1, n_res at least 0")
        return problems

    @classmethod
    def default_label(cls, options: MUNITOptions) -> str:
        return "MUNIT"

    @classmethod
    def reference_iterations(cls, options: MUNITOptions, train_images: tuple[int, int] | None) -> int:
        return 1_000_000   # max_iter of the reference configs

    @classmethod
    def deviations(cls, options: MUNITOptions, train: TrainConfig) -> list[str]:
        notes = [reimplementation_note("MUNIT", DEPARTURES)]
        if (options.width, options.n_res, options.style_dim, options.mlp_dim) != (64, 4, 8, 256):
            notes.append(f"reduced MUNIT: width {options.width}, {options.n_res} residual blocks, style {options.style_dim}, "
                         f"MLP {options.mlp_dim} (reference: 64, 4, 8, 256)")
        scales = discriminator_scales(train.image_size, options.n_scales)
        if scales != 3:
            notes.append(f"MUNIT discriminators with {scales} scale(s) (reference: 3)")
        return notes + settings_notes("MUNIT", options, "reference: z ~ N(0, I)")

    def __init__(self, options: MUNITOptions, train: TrainConfig, device: torch.device):
        super().__init__(options, train, device)
        w, r, self.code_dim = options.width, options.n_res, options.style_dim
        self.content_a, self.content_b = content_encoder(w, r), content_encoder(w, r)
        self.style_a, self.style_b = style_encoder(w, self.code_dim), style_encoder(w, self.code_dim)
        self.decoder_a, self.decoder_b = AdaINDecoder(w, r), AdaINDecoder(w, r)
        adain_outputs = self.decoder_a.adain_layers * 2 * self.decoder_a.channels
        self.mlp_a, self.mlp_b = style_mlp(self.code_dim, options.mlp_dim, adain_outputs), style_mlp(self.code_dim, options.mlp_dim, adain_outputs)
        scales = discriminator_scales(train.image_size, options.n_scales)
        self.dis_a, self.dis_b = MultiScaleDiscriminator(w, scales), MultiScaleDiscriminator(w, scales)
        generators = nn.ModuleDict({"content_a": self.content_a, "style_a": self.style_a, "mlp_a": self.mlp_a,
                                    "decoder_a": self.decoder_a, "content_b": self.content_b, "style_b": self.style_b,
                                    "mlp_b": self.mlp_b, "decoder_b": self.decoder_b})
        discriminators = nn.ModuleDict({"dis_a": self.dis_a, "dis_b": self.dis_b})
        self.setup_training(generators, discriminators)

    def _domain(self, domain: str):
        return (self.content_a, self.style_a, self.mlp_a, self.decoder_a) if domain == "a" else \
            (self.content_b, self.style_b, self.mlp_b, self.decoder_b)

    def decode(self, domain: str, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        _, _, mlp, decoder = self._domain(domain)
        return decoder(content, mlp(style))

    def _prior(self, n: int, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(n, self.code_dim, device=like.device, dtype=like.dtype)

    def train_step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, Any]:
        o = self.options
        n = real_a.shape[0]

        # Discriminators first, on translations with fresh prior codes (no generator gradients needed).
        with torch.no_grad():
            fake_ba = self.decode("a", self.content_b(real_b), self._prior(n, real_a))
            fake_ab = self.decode("b", self.content_a(real_a), self._prior(n, real_b))
        d_loss = self.discriminator_step([(self.dis_a, real_a, fake_ba), (self.dis_b, real_b, fake_ab)])

        # Generators: encode, reconstruct within the domain and translate with new prior codes (one decoder call each).
        prior_a, prior_b = self._prior(n, real_a), self._prior(n, real_b)
        content_a, style_a = self.content_a(real_a), self.style_a(real_a)
        content_b, style_b = self.content_b(real_b), self.style_b(real_b)
        out_a = self.decode("a", torch.cat([content_a, content_b]), torch.cat([style_a, prior_a]))   # [x_11, x_21]
        out_b = self.decode("b", torch.cat([content_b, content_a]), torch.cat([style_b, prior_b]))   # [x_22, x_12]
        recon_a, fake_ba = out_a[:n], out_a[n:]
        recon_b, fake_ab = out_b[:n], out_b[n:]
        # Latent reconstruction: re-encode each translation in its new domain.
        content_b_again, prior_a_again = self.content_a(fake_ba), self.style_a(fake_ba)
        content_a_again, prior_b_again = self.content_b(fake_ab), self.style_b(fake_ab)
        # Style-augmented cycle: the re-encoded content with the input's own style.
        cycle = torch.zeros((), device=self.device)
        if o.cycle_weight > 0:
            cycle = (F.l1_loss(self.decode("a", content_a_again, style_a), real_a)
                     + F.l1_loss(self.decode("b", content_b_again, style_b), real_b))

        adversarial = sum(lsgan(logits, 1.0) for logits in self.dis_a(fake_ba)) + sum(lsgan(logits, 1.0) for logits in self.dis_b(fake_ab))
        reconstruction = F.l1_loss(recon_a, real_a) + F.l1_loss(recon_b, real_b)
        style = F.l1_loss(prior_a_again, prior_a) + F.l1_loss(prior_b_again, prior_b)
        content = F.l1_loss(content_b_again, content_b) + F.l1_loss(content_a_again, content_a)
        g_loss = (o.gan_weight * adversarial + o.recon_weight * reconstruction + o.style_weight * style
                  + o.content_weight * content + o.cycle_weight * cycle)
        self.g_optim.zero_grad(set_to_none=True)
        g_loss.backward(inputs=self.g_parameters)
        self.g_optim.step()
        return {"loss_D": d_loss.detach(), "loss_G": g_loss.detach(), "G_adversarial": adversarial.detach(),
                "G_reconstruction": reconstruction.detach(), "G_style": style.detach(), "G_content": content.detach(),
                "G_cycle": cycle.detach()}

    @torch.no_grad()
    def translate_with_codes(self, images: torch.Tensor, direction: str, codes: torch.Tensor) -> torch.Tensor:
        """x_12 = G_2(E^c_1(x_1), s) with the given style codes s."""
        source, target = ("a", "b") if direction == "a2b" else ("b", "a")
        return self.decode(target, self._domain(source)[0](images), codes)

    @torch.no_grad()
    def encode_codes(self, images: torch.Tensor, domain: str) -> torch.Tensor:
        return self._domain(domain)[1](images)
