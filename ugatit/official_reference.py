"""A re-statement of the official UGATIT-pytorch networks and training iteration, for comparison only.

Written from the facts in docs/ugatit.md and the paper, in the official
module layout and parameter names (DownBlock, FC, UpBlock1_k, UpBlock2, model, conv; the old
`torch.nn.utils.spectral_norm` with weight_orig/weight_u/weight_v), with the official behaviour:
PyTorch default initialisation, no generator biases, unbiased variances in AdaLIN/LIN, rho 0.9 and
0, CAM by concatenating [x * w_gap, x * w_gmp] with the discriminator reading `weight_orig`, and an
iteration that runs the generators six times and back-propagates the discriminator loss through them.

It exists so that (1) tests can build state dicts in the official key layout and the outputs the
official networks give for them (ugatit.compat must reproduce those), and (2)
benchmarks/train_step.py can time the official iteration beside this project's on the same weights
and inputs. Nothing trains with it.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn as nn
import torch.nn.functional as F


class OfficialAdaLIN(nn.Module):
    def __init__(self, channels: int, rho: float = 0.9, learned_affine: bool = False, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.rho = nn.Parameter(torch.full((1, channels, 1, 1), rho))
        if learned_affine:                                    # ILN of the up-sampling blocks
            self.gamma = nn.Parameter(torch.ones(1, channels, 1, 1))
            self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x, gamma=None, beta=None):
        instance = (x - x.mean(dim=[2, 3], keepdim=True)) / torch.sqrt(x.var(dim=[2, 3], keepdim=True) + self.eps)
        layer = (x - x.mean(dim=[1, 2, 3], keepdim=True)) / torch.sqrt(x.var(dim=[1, 2, 3], keepdim=True) + self.eps)
        mixed = self.rho * instance + (1 - self.rho) * layer
        if gamma is None:
            return mixed * self.gamma + self.beta
        return mixed * gamma[:, :, None, None] + beta[:, :, None, None]


class OfficialResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, 1, 0, bias=False), nn.InstanceNorm2d(channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, 1, 0, bias=False), nn.InstanceNorm2d(channels))

    def forward(self, x):
        return x + self.conv_block(x)


class OfficialAdaResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.pad1, self.pad2 = nn.ReflectionPad2d(1), nn.ReflectionPad2d(1)
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 0, bias=False)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 0, bias=False)
        self.norm1, self.norm2 = OfficialAdaLIN(channels), OfficialAdaLIN(channels)

    def forward(self, x, gamma, beta):
        out = F.relu(self.norm1(self.conv1(self.pad1(x)), gamma, beta))
        return x + self.norm2(self.conv2(self.pad2(out)), gamma, beta)


def _cam(x, gap_fc, gmp_fc, conv1x1, negative_slope):
    gap_logit = gap_fc(F.adaptive_avg_pool2d(x, 1).flatten(1))
    gmp_logit = gmp_fc(F.adaptive_max_pool2d(x, 1).flatten(1))
    gap_weight = next(iter(gap_fc.parameters()))      # with the old spectral_norm: weight_orig
    gmp_weight = next(iter(gmp_fc.parameters()))
    attended = torch.cat([x * gap_weight[:, :, None, None], x * gmp_weight[:, :, None, None]], dim=1)
    features = F.leaky_relu(conv1x1(attended), negative_slope)
    return features, torch.cat([gap_logit, gmp_logit], dim=1), features.sum(dim=1, keepdim=True)


class OfficialGenerator(nn.Module):
    def __init__(self, ngf: int = 64, n_blocks: int = 4, img_size: int = 256, light: bool = False):
        super().__init__()
        self.light, self.n_blocks = light, n_blocks
        channels = ngf * 4
        down = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7, 1, 0, bias=False), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
        for multiplier in (1, 2):
            down += [nn.ReflectionPad2d(1), nn.Conv2d(ngf * multiplier, ngf * multiplier * 2, 3, 2, 0, bias=False),
                     nn.InstanceNorm2d(ngf * multiplier * 2), nn.ReLU(True)]
        down += [OfficialResBlock(channels) for _ in range(n_blocks)]
        self.DownBlock = nn.Sequential(*down)
        self.gap_fc = nn.Linear(channels, 1, bias=False)
        self.gmp_fc = nn.Linear(channels, 1, bias=False)
        self.conv1x1 = nn.Conv2d(channels * 2, channels, 1, 1, bias=True)
        first = channels if light else (img_size // 4) * (img_size // 4) * channels
        self.FC = nn.Sequential(nn.Linear(first, channels, bias=False), nn.ReLU(True),
                                nn.Linear(channels, channels, bias=False), nn.ReLU(True))
        self.gamma = nn.Linear(channels, channels, bias=False)
        self.beta = nn.Linear(channels, channels, bias=False)
        for index in range(n_blocks):
            setattr(self, f"UpBlock1_{index + 1}", OfficialAdaResBlock(channels))
        up = []
        for divisor in (1, 2):
            width = channels // divisor
            up += [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1),
                   nn.Conv2d(width, width // 2, 3, 1, 0, bias=False), OfficialAdaLIN(width // 2, rho=0.0, learned_affine=True), nn.ReLU(True)]
        up += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7, 1, 0, bias=False), nn.Tanh()]
        self.UpBlock2 = nn.Sequential(*up)

    def forward(self, x):
        x = self.DownBlock(x)
        x, cam_logit, heatmap = _cam(x, self.gap_fc, self.gmp_fc, self.conv1x1, 0.0)
        summary = F.adaptive_avg_pool2d(x, 1).flatten(1) if self.light else x.flatten(1)
        hidden = self.FC(summary)
        gamma, beta = self.gamma(hidden), self.beta(hidden)
        for index in range(self.n_blocks):
            x = getattr(self, f"UpBlock1_{index + 1}")(x, gamma, beta)
        return self.UpBlock2(x), cam_logit, heatmap


class OfficialDiscriminator(nn.Module):
    def __init__(self, ndf: int = 64, n_layers: int = 5):
        super().__init__()
        sn = torch.nn.utils.spectral_norm
        model = [nn.ReflectionPad2d(1), sn(nn.Conv2d(3, ndf, 4, 2, 0, bias=True)), nn.LeakyReLU(0.2, True)]
        channels = ndf
        for _ in range(1, n_layers - 2):
            model += [nn.ReflectionPad2d(1), sn(nn.Conv2d(channels, channels * 2, 4, 2, 0, bias=True)), nn.LeakyReLU(0.2, True)]
            channels *= 2
        model += [nn.ReflectionPad2d(1), sn(nn.Conv2d(channels, channels * 2, 4, 1, 0, bias=True)), nn.LeakyReLU(0.2, True)]
        channels *= 2
        self.model = nn.Sequential(*model)
        self.gap_fc = sn(nn.Linear(channels, 1, bias=False))
        self.gmp_fc = sn(nn.Linear(channels, 1, bias=False))
        self.conv1x1 = nn.Conv2d(channels * 2, channels, 1, 1, bias=True)
        self.pad = nn.ReflectionPad2d(1)
        self.conv = sn(nn.Conv2d(channels, 1, 4, 1, 0, bias=False))

    def forward(self, x):
        x, cam_logit, heatmap = _cam(self.model(x), self.gap_fc, self.gmp_fc, self.conv1x1, 0.2)
        return self.conv(self.pad(x)), cam_logit, heatmap


def official_networks(ngf: int = 64, n_blocks: int = 4, img_size: int = 256, light: bool = False,
                      global_layers: int = 7, local_layers: int = 5) -> dict[str, nn.Module]:
    """The six networks as the official code builds them (Discriminator n_layers 7 and 5)."""
    return {
        "genA2B": OfficialGenerator(ngf, n_blocks, img_size, light),
        "genB2A": OfficialGenerator(ngf, n_blocks, img_size, light),
        "disGA": OfficialDiscriminator(ngf, global_layers),
        "disGB": OfficialDiscriminator(ngf, global_layers),
        "disLA": OfficialDiscriminator(ngf, local_layers),
        "disLB": OfficialDiscriminator(ngf, local_layers),
    }


def official_optimizers(nets: dict[str, nn.Module], lr: float = 1e-4, weight_decay: float = 1e-4):
    g = torch.optim.Adam(itertools.chain(nets["genA2B"].parameters(), nets["genB2A"].parameters()),
                         lr=lr, betas=(0.5, 0.999), weight_decay=weight_decay)
    d = torch.optim.Adam(itertools.chain(*(nets[k].parameters() for k in ("disGA", "disGB", "disLA", "disLB"))),
                         lr=lr, betas=(0.5, 0.999), weight_decay=weight_decay)
    return g, d


def _gradients(nets: dict[str, nn.Module], prefix: str) -> dict[str, dict[str, torch.Tensor]]:
    return {name: {key: p.grad.clone() for key, p in net.named_parameters() if p.grad is not None}
            for name, net in nets.items() if name.startswith(prefix)}


def official_train_step(nets: dict[str, nn.Module], g_optim, d_optim, real_a, real_b,
                        weights=(1.0, 10.0, 10.0, 1000.0), gradients: dict | None = None) -> tuple[float, float]:
    """One iteration as the official code runs it: D update with undetached fakes, then a G update
    that recomputes every translation, then the rho clip. Returns (D loss, G loss).

    `gradients`, if given, receives the discriminators' gradients of the D update ("dis") and the
    generators' gradients of the G update ("gen"), for comparisons."""
    adv, cycle_w, identity_w, cam_w = weights
    gen_a2b, gen_b2a = nets["genA2B"], nets["genB2A"]
    mse, l1, bce = F.mse_loss, F.l1_loss, F.binary_cross_entropy_with_logits

    def d_terms(discriminator, real, fake):
        real_logit, real_cam, _ = discriminator(real)
        fake_logit, fake_cam, _ = discriminator(fake)
        return (mse(real_logit, torch.ones_like(real_logit)) + mse(fake_logit, torch.zeros_like(fake_logit))
                + mse(real_cam, torch.ones_like(real_cam)) + mse(fake_cam, torch.zeros_like(fake_cam)))

    def g_terms(discriminator, fake):
        logit, cam, _ = discriminator(fake)
        return mse(logit, torch.ones_like(logit)) + mse(cam, torch.ones_like(cam))

    d_optim.zero_grad()
    fake_a2b, _, _ = gen_a2b(real_a)
    fake_b2a, _, _ = gen_b2a(real_b)
    d_loss = adv * (d_terms(nets["disGA"], real_a, fake_b2a) + d_terms(nets["disLA"], real_a, fake_b2a)
                    + d_terms(nets["disGB"], real_b, fake_a2b) + d_terms(nets["disLB"], real_b, fake_a2b))
    d_loss.backward()
    if gradients is not None:
        gradients["dis"] = _gradients(nets, "dis")
    d_optim.step()

    g_optim.zero_grad()
    fake_a2b, cam_a2b, _ = gen_a2b(real_a)
    fake_b2a, cam_b2a, _ = gen_b2a(real_b)
    fake_a2b2a, _, _ = gen_b2a(fake_a2b)
    fake_b2a2b, _, _ = gen_a2b(fake_b2a)
    fake_a2a, cam_a2a, _ = gen_b2a(real_a)
    fake_b2b, cam_b2b, _ = gen_a2b(real_b)
    g_loss_a = (adv * (g_terms(nets["disGA"], fake_b2a) + g_terms(nets["disLA"], fake_b2a))
                + cycle_w * l1(fake_a2b2a, real_a) + identity_w * l1(fake_a2a, real_a)
                + cam_w * (bce(cam_b2a, torch.ones_like(cam_b2a)) + bce(cam_a2a, torch.zeros_like(cam_a2a))))
    g_loss_b = (adv * (g_terms(nets["disGB"], fake_a2b) + g_terms(nets["disLB"], fake_a2b))
                + cycle_w * l1(fake_b2a2b, real_b) + identity_w * l1(fake_b2b, real_b)
                + cam_w * (bce(cam_a2b, torch.ones_like(cam_a2b)) + bce(cam_b2b, torch.zeros_like(cam_b2b))))
    g_loss = g_loss_a + g_loss_b
    g_loss.backward()
    if gradients is not None:
        gradients["gen"] = _gradients(nets, "gen")
    g_optim.step()

    for generator in (gen_a2b, gen_b2a):
        for module in generator.modules():
            if hasattr(module, "rho"):
                module.rho.data = module.rho.data.clamp(0, 1)
    return float(d_loss.detach()), float(g_loss.detach())
