"""DRIT (Lee, Tseng, Huang, Singh and Yang, ECCV 2018; DRIT++, IJCV 2020), reimplemented on this harness.

Written from the facts about the authors' code (HsinYingLee/DRIT, which has no licence: nothing of it
may be reused) in docs/baselines.md. This is the reference's default `concat` variant: the attribute
code is tiled and concatenated to the generator's features. Mode seeking (DRIT++'s regulariser, on
by default in the reference since April 2019) is on; `mode_seeking: false` gives the ECCV 2018
objective.

Code (vs. paper, vs. reference code):
    content_a, content_b, content_shared   E^c_X, E^c_Y (last block shared)   enc_c
    attribute_a, attribute_b               E^a_X, E^a_Y                         enc_a
    generator_shared, generator_a/_b       G_X, G_Y (first block shared)      gen
    dis_a, dis_b                           D_X, D_Y on translations with encoded attributes   disA, disB
    dis_a2, dis_b2                         the same on translations with prior attributes     disA2, disB2
    dis_content                            D^c, the content discriminator                       disContent

Networks (in baselines/drit_networks.py; reflection padding, biases everywhere; reference width 64):
  content encoder  7x7 conv 3 -> 64 (no norm, LeakyReLU 0.01); 3x3 stride-2 convs to 128 and 256 (IN,
           ReLU); 3 residual blocks (IN); then, shared by both domains, one residual block and Gaussian
           noise N(0, 1) added in training. Content code: 256 x H/4 x W/4.
  attribute encoder  4x4 stride-2 conv 3 -> 64; pre-activation blocks (LeakyReLU 0.2, 3x3 convs,
           2x2 average pool; shortcut: pool, 1x1 conv) to 128, 192, 256; LeakyReLU 0.2; global average
           pool; two linear heads, mu and log-variance of the 8-dim attribute z = mu + sigma * eps.
  generator  a shared residual block on the content; per domain: z tiled and concatenated (264 ch),
           3 residual blocks; z again (272), 3x3 stride-2 transposed conv to 136, LN, ReLU; z again
           (144), to 72, LN, ReLU; z again (80), 1x1 transposed conv to 3, tanh. LN is over (C, H, W)
           with a per-channel affine (weight 1, bias 0 at the start).
           Content encoders, attribute encoders and generators of both domains: 21,270,982 parameters.
  image discriminators  four, each UNIT's multi-scale patch discriminator (baselines/blocks.py) with
           LeakyReLU 0.01; 8,271,171 parameters each.
  content discriminator  on the content code: three 7x7 stride-2 convs (reflection padding 1), a 4x4
           conv, LeakyReLU 0.01, no norm; a 1x1 conv to a logit. 10,683,649 parameters.
Losses (paper Sec. 3, eq. numbers of the ECCV paper), all GAN terms sigmoid + binary cross-entropy:
  content adversarial  D^c learns domain A -> 0, B -> 1 (eq. 1); the encoders are pushed to 0.5 for both
  domain adversarial   1 * [D_X(G_X(c_y, z_x)) -> 1] + 1 * [D_X2(G_X(c_y, z_r)) -> 1]  (+ the mode-seeking
                       sample), summed over scales (eq. 3); both domains
  cross-cycle          10 * |G_X(E^c_Y(v), E^a_X(u)) - x| with u = G_X(c_y, z_x), v = G_Y(c_x, z_y)  (eq. 4)
  self-reconstruction  10 * |G_X(c_x, z_x) - x|
  KL                   0.01 * -1/2 sum(1 + logvar - mu^2 - exp(logvar))  (a sum over the code, eq. 5)
  content L2           0.01 * mean(c^2)
  latent regression    10 * |mu(E^a_X(G_X(c_y, z_r))) - z_r|  (eq. 6)
  mode seeking         1 / (mean|G(c, z_r2) - G(c, z_r)| / mean|z_r2 - z_r| + 1e-5) per direction (DRIT++)
Per iteration (the reference's d_iter = 3): two iterations of three update only D^c (on their own
batch); the third updates the four image discriminators and D^c, then encoders and generators with the
terms above, then content encoders and generators once more with the prior-attribute terms (adversarial
on D_X2/D_Y2, latent regression, mode seeking); the attribute encoders take no gradient from those.
Optimisation: Adam 1e-4, betas (0.5, 0.999), weight decay 1e-4 everywhere; D^c at 1e-4 / 2.5 with its
gradient norm clipped to 5. Batch 2 per domain: the first image is encoded, the second is the real
image D_X2/D_Y2 see. Conv weights N(0, 0.02); conv biases, linear layers and LN at torch's defaults.
Length, rate per epoch, which iterations are full updates and the end at 500,000 full updates (the
reference's last 10-epoch save, `final_model: last_save`, or the model at the cap): the reference's
loop, baselines/drit_schedule.py.
Data: the reference's pipeline (`drit`): bicubic resize to the size, random crop 216/256 of it, flip;
test images are the centre crop, so translations are 216 px at 256. The networks are built for that crop.
Test time: see bench/core/multimodal.py; an exemplar's attribute is its mu (the reference samples it).

Differences from the reference, all stated:
  - The second update's gradients are taken at the same parameters as the first's (both before any
    step), then the two Adam steps follow in the reference's order. The reference back-propagates the
    second loss through the graph of the first forward pass after stepping, which modern PyTorch
    refuses (its issue 48); recomputing the forward would instead change the mathematics more.
  - With batch size 1 the real image of D_X2/D_Y2 is the encoded one (the reference's batch is 2); the
    KL sum is averaged over the batch (the same at the reference's 1 encoded image per batch).
  - Below 256 px the content discriminator keeps only the 7x7 stride-2 convs its input can take, and
    the image discriminators use fewer scales below 64 px (each scale needs 16 px).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from baselines.blocks import MIN_SCALE_SIZE, MultiScaleDiscriminator, ResBlock, discriminator_scales
from baselines.conventions import image_size_problems, reimplementation_note
from baselines.drit_networks import (CONTENT_DOWN_LAYERS, AttributeEncoder, ConcatGenerator, content_discriminator,
                                     content_down_layers, content_encoder)
from baselines.drit_schedule import DritEpochs
from bench.core.config import TrainConfig
from bench.core.gan import adam
from bench.core.methods import register_method
from bench.core.multimodal import MultimodalMethod, settings_notes, settings_problems
from bench.core.schedule import lr_multiplier, resolve_schedule, set_learning_rate
from bench.data.reference_pipelines import drit_crop_size


@dataclass(frozen=True)
class DRITOptions:
    width: int = 64                   # channels of the first content conv; the content code has 4x as many
    attribute_dim: int = 8            # nz
    n_res: int = 3                    # per-domain residual blocks in the content encoder and the generator
    n_scales: int = 3                 # image discriminator scales (fewer below 64 px)
    mode_seeking: bool = True         # DRIT++'s regulariser (reference default; false: the ECCV 2018 objective)
    d_iter: int = 3                   # one full update every d_iter iterations; D^c alone on the others
    adversarial_weight: float = 1.0
    content_adversarial_weight: float = 1.0
    cross_cycle_weight: float = 10.0
    self_recon_weight: float = 10.0
    kl_weight: float = 0.01
    content_l2_weight: float = 0.01
    latent_weight: float = 10.0
    mode_seeking_weight: float = 1.0
    lr: float = 1e-4                  # train.lr overrides it
    content_lr_ratio: float = 2.5     # D^c learns at lr / 2.5
    content_clip: float = 5.0         # D^c gradient norm clip
    weight_decay: float = 1e-4
    epochs: int = 1200                # reference length, of max(|A|, |B|) / 2 batches ...
    max_full_updates: int = 500_000   # ... capped at this many full updates
    final_model: Literal["last_save", "cap"] = "last_save"   # at the cap: the reference's last 10-epoch save, or the model there
    test_style: Literal["random", "mean", "exemplar"] = "random"   # bench/core/multimodal.py
    test_samples: int = 1
    test_seed: int = 0


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    """Binary cross-entropy of sigmoid(logits) against a constant target, mean over the map, in float32."""
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


# The departures from the authors' code that hold for every run (docs/baselines.md), for the tables' footnotes.
DEPARTURES = ("the prior-attribute update's gradients taken before the first update's step (the reference's "
              "order fails in current PyTorch)", "one seeded attribute per test image (its test script: 5 random ones)")


@register_method("drit")
class DRITMethod(MultimodalMethod):
    """DRIT (concat variant); see the module docstring."""

    Options = DRITOptions
    reference_schedule = "per_epoch"

    @classmethod
    def data_pipeline(cls, options: DRITOptions) -> str:
        return "drit"

    @classmethod
    def check_settings(cls, options: DRITOptions, train: TrainConfig) -> list[str]:
        problems = settings_problems(options)
        problems += image_size_problems(train.image_size, MIN_SCALE_SIZE)
        if drit_crop_size(train.image_size) < MIN_SCALE_SIZE:
            problems.append(f"image size {train.image_size}: DRIT's crop (216/256 of it, {drit_crop_size(train.image_size)} px) "
                            f"must be at least {MIN_SCALE_SIZE} px; use 20 px or more")
        if train.batch_size > 1 and train.batch_size % 2:
            problems.append(f"batch size {train.batch_size} must be 1 or even (half encoded, half the real images of "
                            "the prior-attribute discriminators)")
        if min(options.width, options.attribute_dim, options.n_scales, options.d_iter, options.epochs,
               options.max_full_updates) < 1 or options.n_res < 0:
            problems.append("width, attribute_dim, n_scales, d_iter, epochs and max_full_updates must be at least 1, "
                            "n_res at least 0")
        return problems

    @classmethod
    def default_label(cls, options: DRITOptions) -> str:
        return "DRIT"

    @classmethod
    def reference_iterations(cls, options: DRITOptions, train_images: tuple[int, int] | None) -> int | None:
        if train_images is None:
            return None
        epochs = DritEpochs(max(train_images), 2, options.d_iter)   # the reference's batches of 2
        return epochs.run_length(options.epochs, options.max_full_updates, options.final_model)

    @classmethod
    def deviations(cls, options: DRITOptions, train: TrainConfig) -> list[str]:
        notes = [reimplementation_note("DRIT", DEPARTURES)]
        if options.final_model == "cap":
            notes.append("DRIT's final model at its cap of full updates (final_model: cap; the reference crashes there "
                         "and keeps its last 10-epoch save)")
        if (options.width, options.n_res, options.attribute_dim) != (64, 3, 8):
            notes.append(f"reduced DRIT: width {options.width}, {options.n_res} residual blocks, attribute {options.attribute_dim} "
                         "(reference: 64, 3, 8)")
        if not options.mode_seeking:
            notes.append("DRIT without mode seeking (the ECCV 2018 objective; the reference code has it on)")
        if train.batch_size == 1:
            notes.append("DRIT at batch size 1: the prior-attribute discriminators see the encoded images (reference: 2)")
        size = drit_crop_size(train.image_size)
        layers = content_down_layers(size)
        if layers != CONTENT_DOWN_LAYERS:
            notes.append(f"DRIT content discriminator with {layers} of its 3 stride-2 convs at {size} px")
        scales = discriminator_scales(size, options.n_scales)
        if scales != 3:
            notes.append(f"DRIT image discriminators with {scales} scale(s) (reference: 3)")
        return notes + settings_notes("DRIT", options, "reference: z ~ N(0, I)")

    def __init__(self, options: DRITOptions, train: TrainConfig, device: torch.device):
        super().__init__(options, train, device)
        w, nz, r = options.width, options.attribute_dim, options.n_res
        self.code_dim = nz
        self.content_a, self.content_b = content_encoder(w, r), content_encoder(w, r)
        self.content_shared = ResBlock(w * 4)
        self.attribute_a, self.attribute_b = AttributeEncoder(w, nz), AttributeEncoder(w, nz)
        self.generator_shared = ResBlock(w * 4)
        self.generator_a, self.generator_b = ConcatGenerator(w * 4, nz, r), ConcatGenerator(w * 4, nz, r)
        # Built for the reference's crop (216 of 256), which its pipeline feeds; larger inputs fit them too.
        scales = discriminator_scales(drit_crop_size(train.image_size), options.n_scales)
        self.dis_a, self.dis_b, self.dis_a2, self.dis_b2 = (MultiScaleDiscriminator(w, scales, slope=0.01) for _ in range(4))
        self.dis_content = content_discriminator(w * 4, content_down_layers(drit_crop_size(train.image_size)))
        content_and_generators = nn.ModuleDict({
            "content_a": self.content_a, "content_b": self.content_b, "content_shared": self.content_shared,
            "generator_shared": self.generator_shared, "generator_a": self.generator_a, "generator_b": self.generator_b})
        attributes = nn.ModuleDict({"attribute_a": self.attribute_a, "attribute_b": self.attribute_b})
        image_discriminators = nn.ModuleDict({"dis_a": self.dis_a, "dis_b": self.dis_b, "dis_a2": self.dis_a2, "dis_b2": self.dis_b2})
        everything = nn.ModuleDict({**content_and_generators, **attributes, **image_discriminators,
                                    "dis_content": self.dis_content})
        self._initialise(everything)
        self.networks = everything.to(self.device)
        self.g_parameters = list(content_and_generators.parameters())
        self.attribute_parameters = list(attributes.parameters())
        self.d_parameters = list(image_discriminators.parameters())
        self.content_d_parameters = list(self.dis_content.parameters())
        self.base_lr = train.lr if train.lr is not None else options.lr
        self.g_optim = adam(self.g_parameters, lr=self.base_lr, weight_decay=options.weight_decay)
        self.attribute_optim = adam(self.attribute_parameters, lr=self.base_lr, weight_decay=options.weight_decay)
        self.d_optim = adam(self.d_parameters, lr=self.base_lr, weight_decay=options.weight_decay)
        self.content_d_optim = adam(self.content_d_parameters, lr=self.base_lr / options.content_lr_ratio,
                                    weight_decay=options.weight_decay)
        self.schedule = resolve_schedule(train, self.reference_schedule)
        self._epochs: tuple | None = None   # (train_images, DritEpochs, its EpochDecay), made on first use
        self.step = 0
        self.last_full_losses: dict[str, torch.Tensor] = {}

    @staticmethod
    def _initialise(module: nn.Module) -> None:
        """The reference's: conv and transposed-conv weights N(0, 0.02); their biases, linear layers and
        LN affines keep torch's defaults."""
        with torch.no_grad():
            for layer in module.modules():
                if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
                    layer.weight.normal_(0.0, 0.02)

    # -- learning rate ---------------------------------------------------------------------------
    def epochs(self) -> DritEpochs:
        """The reference's epochs over this run's training set (when it is unknown, as for a method built
        outside a run, one epoch spans the run: full updates every d_iter iterations)."""
        t = self.train_config
        if self._epochs is None or self._epochs[0] != self.train_images:
            images = max(self.train_images) if self.train_images else (t.iterations + 2) * t.batch_size
            epochs = DritEpochs(images, t.batch_size, self.options.d_iter)
            reference = self.reference_iterations(self.options, self.train_images)
            self._epochs = (self.train_images, epochs, epochs.schedule(t.iterations, self.options.epochs, reference))
        return self._epochs[1]

    def set_step(self, step: int) -> None:
        self.step = step
        if self.schedule == "per_epoch":
            self.epochs()
            multiplier = self._epochs[2].multiplier(step)
        else:
            multiplier = lr_multiplier(step, self.train_config.iterations, self.schedule, self.train_config.decay_start)
        for optimizer in (self.g_optim, self.attribute_optim, self.d_optim):
            set_learning_rate(optimizer, self.base_lr * multiplier)
        set_learning_rate(self.content_d_optim, self.base_lr / self.options.content_lr_ratio * multiplier)

    def extra_stats(self) -> dict[str, float]:
        return {"lr": self.g_optim.param_groups[0]["lr"]}

    # -- the networks as functions ---------------------------------------------------------------
    def encode_content(self, images: torch.Tensor, domain: str, noise: bool) -> torch.Tensor:
        """E^c: the domain's layers, the shared block, and N(0, 1) noise in training."""
        content = self.content_shared((self.content_a if domain == "a" else self.content_b)(images))
        return content + torch.randn_like(content) if noise else content

    def encode_attribute(self, images: torch.Tensor, domain: str) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.attribute_a if domain == "a" else self.attribute_b)(images)

    @staticmethod
    def sample_attribute(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def generate(self, domain: str, content: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return (self.generator_a if domain == "a" else self.generator_b)(self.generator_shared(content), z)

    # -- training --------------------------------------------------------------------------------
    def _update_content_discriminator(self, content_a: torch.Tensor, content_b: torch.Tensor) -> torch.Tensor:
        """D^c: domain A's codes -> 0, B's -> 1 (codes detached); gradient norm clipped."""
        loss = bce(self.dis_content(content_a.detach()), 0.0) + bce(self.dis_content(content_b.detach()), 1.0)
        self.content_d_optim.zero_grad(set_to_none=True)
        loss.backward(inputs=self.content_d_parameters)
        torch.nn.utils.clip_grad_norm_(self.content_d_parameters, self.options.content_clip)
        self.content_d_optim.step()
        return loss.detach()

    def train_step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, Any]:
        # The first half of each batch is encoded; the second half is what D_X2 / D_Y2 see as real.
        half = max(real_a.shape[0] // 2, 1)
        x_a, x_b = real_a[:half], real_b[:half]
        random_a, random_b = (real_a[half:], real_b[half:]) if real_a.shape[0] > 1 else (real_a, real_b)
        if not self.epochs().is_full_update(self.step):   # D^c alone (reference: src/train.py)
            with torch.no_grad():
                content_a, content_b = self.encode_content(x_a, "a", True), self.encode_content(x_b, "b", True)
            return {"loss_D_content": self._update_content_discriminator(content_a, content_b), **self.last_full_losses}
        self.last_full_losses = self._full_update(x_a, x_b, random_a, random_b)
        return dict(self.last_full_losses)

    def _full_update(self, x_a, x_b, random_a, random_b) -> dict[str, torch.Tensor]:
        o = self.options
        n = x_a.shape[0]
        # The reference's forward pass.
        content_a, content_b = self.encode_content(x_a, "a", True), self.encode_content(x_b, "b", True)
        (mu_a, logvar_a), (mu_b, logvar_b) = self.encode_attribute(x_a, "a"), self.encode_attribute(x_b, "b")
        z_a, z_b = self.sample_attribute(mu_a, logvar_a), self.sample_attribute(mu_b, logvar_b)
        priors = [torch.randn(n, o.attribute_dim, device=x_a.device, dtype=x_a.dtype) for _ in range(2 if o.mode_seeking else 1)]
        k = len(priors)
        out_a = self.generate("a", torch.cat([content_b, content_a] + [content_b] * k), torch.cat([z_a, z_a, *priors]))
        out_b = self.generate("b", torch.cat([content_a, content_b] + [content_a] * k), torch.cat([z_b, z_b, *priors]))
        fake_a, recon_a, randoms_a = out_a[:n], out_a[n:2 * n], out_a[2 * n:].split(n)   # u = G_X(c_y, z_x), ...
        fake_b, recon_b, randoms_b = out_b[:n], out_b[n:2 * n], out_b[2 * n:].split(n)   # v = G_Y(c_x, z_y), ...
        # Cross-cycle: encode the translations and swap back.
        content_of_fake_a, content_of_fake_b = self.encode_content(fake_a, "a", True), self.encode_content(fake_b, "b", True)
        z_fake_a = self.sample_attribute(*self.encode_attribute(fake_a, "a"))
        z_fake_b = self.sample_attribute(*self.encode_attribute(fake_b, "b"))
        cycle_a = self.generate("a", content_of_fake_b, z_fake_a)   # G_X(E^c_Y(v), E^a_X(u))
        cycle_b = self.generate("b", content_of_fake_a, z_fake_b)
        # Latent regression: the attribute means of the prior-attribute translations.
        regressed_a = self.encode_attribute(randoms_a[0], "a")[0]
        regressed_b = self.encode_attribute(randoms_b[0], "b")[0]

        # Discriminators: the four image discriminators, then D^c, on this forward pass's outputs.
        d_loss = torch.zeros((), device=self.device)
        for discriminator, real, fakes in ((self.dis_a, x_a, [fake_a]), (self.dis_b, x_b, [fake_b]),
                                           (self.dis_a2, random_a, randoms_a), (self.dis_b2, random_b, randoms_b)):
            for fake in fakes:
                for real_logits, fake_logits in zip(discriminator(real), discriminator(fake.detach())):
                    d_loss = d_loss + bce(real_logits, 1.0) + bce(fake_logits, 0.0)
        self.d_optim.zero_grad(set_to_none=True)
        d_loss.backward(inputs=self.d_parameters)
        self.d_optim.step()
        content_d_loss = self._update_content_discriminator(content_a, content_b)

        # Encoders and generators (backward_EG in the reference).
        content_adversarial = bce(self.dis_content(content_a), 0.5) + bce(self.dis_content(content_b), 0.5)
        adversarial = (sum(bce(logits, 1.0) for logits in self.dis_a(fake_a))
                       + sum(bce(logits, 1.0) for logits in self.dis_b(fake_b)))
        cross_cycle = F.l1_loss(cycle_a, x_a) + F.l1_loss(cycle_b, x_b)
        self_recon = F.l1_loss(recon_a, x_a) + F.l1_loss(recon_b, x_b)
        kl = sum(-0.5 * (1 + logvar - mu.square() - logvar.exp()).sum(dim=1).mean() for mu, logvar in ((mu_a, logvar_a), (mu_b, logvar_b)))
        content_l2 = content_a.square().mean() + content_b.square().mean()
        eg_loss = (o.content_adversarial_weight * content_adversarial + o.adversarial_weight * adversarial
                   + o.cross_cycle_weight * cross_cycle + o.self_recon_weight * self_recon + o.kl_weight * kl
                   + o.content_l2_weight * content_l2)
        # Content encoders and generators alone (backward_G_alone): prior-attribute terms.
        adversarial_random = sum(bce(logits, 1.0) for fake in randoms_a for logits in self.dis_a2(fake)) + \
            sum(bce(logits, 1.0) for fake in randoms_b for logits in self.dis_b2(fake))
        priors_target = priors[0]
        latent = F.l1_loss(regressed_a, priors_target) + F.l1_loss(regressed_b, priors_target)
        mode_seeking = torch.zeros((), device=self.device)
        if o.mode_seeking:
            code_distance = (priors[1] - priors[0]).abs().mean()
            for randoms in (randoms_a, randoms_b):
                mode_seeking = mode_seeking + 1 / ((randoms[1] - randoms[0]).abs().mean() / code_distance + 1e-5)
        g_alone_loss = o.adversarial_weight * adversarial_random + o.latent_weight * latent + o.mode_seeking_weight * mode_seeking

        # Both gradients at the parameters of this forward pass, then the reference's two steps.
        eg_parameters = self.g_parameters + self.attribute_parameters
        eg_gradients = torch.autograd.grad(eg_loss, eg_parameters, retain_graph=True, allow_unused=True)
        alone_gradients = torch.autograd.grad(g_alone_loss, self.g_parameters, allow_unused=True)
        for parameter, gradient in zip(eg_parameters, eg_gradients):
            parameter.grad = gradient
        self.g_optim.step()
        self.attribute_optim.step()
        for parameter, gradient in zip(self.g_parameters, alone_gradients):
            parameter.grad = gradient
        self.g_optim.step()
        self.g_optim.zero_grad(set_to_none=True)
        self.attribute_optim.zero_grad(set_to_none=True)
        return {"loss_D": d_loss.detach(), "loss_D_content": content_d_loss,
                "loss_G": (eg_loss + g_alone_loss).detach(), "G_adversarial": (adversarial + adversarial_random).detach(),
                "G_content_adversarial": content_adversarial.detach(), "G_cross_cycle": cross_cycle.detach(),
                "G_self_recon": self_recon.detach(), "G_kl": kl.detach(), "G_latent": latent.detach(),
                "G_mode_seeking": mode_seeking.detach()}

    # -- test time -------------------------------------------------------------------------------
    @torch.no_grad()
    def translate_with_codes(self, images: torch.Tensor, direction: str, codes: torch.Tensor) -> torch.Tensor:
        """G_Y(E^c_X(x), z) without the training noise."""
        source, target = ("a", "b") if direction == "a2b" else ("b", "a")
        return self.generate(target, self.encode_content(images, source, noise=False), codes)

    @torch.no_grad()
    def encode_codes(self, images: torch.Tensor, domain: str) -> torch.Tensor:
        """An exemplar's attribute: the mean of its code (deterministic)."""
        return self.encode_attribute(images, domain)[0]

    def state_dict(self) -> dict[str, Any]:
        return {"networks": self.networks.state_dict(), "G_optim": self.g_optim.state_dict(),
                "attribute_optim": self.attribute_optim.state_dict(), "D_optim": self.d_optim.state_dict(),
                "content_D_optim": self.content_d_optim.state_dict(),
                "last_full_losses": {k: v.detach().cpu() for k, v in self.last_full_losses.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.networks.load_state_dict(state["networks"])
        self.g_optim.load_state_dict(state["G_optim"])
        self.attribute_optim.load_state_dict(state["attribute_optim"])
        self.d_optim.load_state_dict(state["D_optim"])
        self.content_d_optim.load_state_dict(state["content_D_optim"])
        self.last_full_losses = {k: v.to(self.device) for k, v in state["last_full_losses"].items()}
