"""Normalisation layers of the U-GAT-IT decoder, and the ablation variants of Table 1.

AdaLIN (Eq. 1):  AdaLIN(a, gamma, beta) = gamma * (rho * a_I + (1 - rho) * a_L) + beta, where a_I is
a normalised by its instance (per-channel) statistics and a_L by its layer (all-channel) statistics,
rho is learned and kept in [0, 1], and gamma, beta come from the generator's MLP. LIN is the same
with gamma and beta learned per channel instead (the up-sampling blocks).

Decoder normalisation variants (`norm` option; "residual blocks" are the 4 decoder blocks that the
MLP's gamma/beta modulate, "up-sampling" the 2 blocks after them):

| norm   | residual blocks                                 | up-sampling blocks                 | gamma/beta MLP |
|--------|-------------------------------------------------|------------------------------------|----------------|
| adalin | AdaLIN, rho learned (paper)                     | LIN, rho learned from 0            | yes            |
| adain  | AdaIN: IN (no affine) * gamma + beta from MLP   | IN with learned per-channel affine | yes            |
| in     | IN with learned per-channel affine              | IN with learned per-channel affine | no             |
| ln     | LN over (C, H, W), learned per-channel affine   | same                               | no             |
| gn     | GN, learned per-channel affine (groups below)   | same                               | no             |

`adain` is AdaLIN with rho fixed at 1; `in`, `ln` and `gn` are plain non-adaptive normalisations
(the paper's Fig. 3 (c, d, f): "only using IN / LN / GN in decoder"), so their generator has no
gamma/beta MLP. GN uses 32 groups (Wu & He's default) or, for channel counts 32 does not divide,
the largest divisor of the channel count below 32. IN/LN/GN use PyTorch's modules (biased variance,
eps 1e-5).

Statistics are computed in one pass: the instance mean and variance of each channel, from which the
layer statistics follow exactly (law of total variance), since every channel has the same H x W
count. The AdaLIN/LIN output is then one multiply-add with per-(sample, channel) coefficients.
"""

from __future__ import annotations

import torch
import torch.nn as nn


def layer_instance_coefficients(x: torch.Tensor, rho: torch.Tensor, eps: float, unbiased: bool
                                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-(sample, channel) (mean_I, scale, offset) with
    rho * (x - mean_I) / std_I + (1 - rho) * (x - mean_L) / std_L == (x - mean_I) * scale + offset.

    `unbiased` uses n - 1 in both variances (the official PyTorch code's torch.var); otherwise n
    (the official TensorFlow code's moments). Statistics are taken in float32 even under autocast.
    """
    x32 = x.float()
    var_i, mean_i = torch.var_mean(x32, dim=(2, 3), keepdim=True, correction=0)   # N x C x 1 x 1
    mean_l = mean_i.mean(dim=1, keepdim=True)                                       # N x 1 x 1 x 1
    var_l = (var_i + (mean_i - mean_l).square()).mean(dim=1, keepdim=True)          # total variance
    if unbiased:
        count_i = x.shape[2] * x.shape[3]
        count_l = count_i * x.shape[1]
        var_i = var_i * (count_i / max(count_i - 1, 1))
        var_l = var_l * (count_l / max(count_l - 1, 1))
    inv_std_i = torch.rsqrt(var_i + eps)
    inv_std_l = torch.rsqrt(var_l + eps)
    layer_part = (1.0 - rho) * inv_std_l
    scale = rho * inv_std_i + layer_part
    offset = layer_part * (mean_i - mean_l)
    return mean_i, scale, offset


class AdaLIN(nn.Module):
    """Adaptive Layer-Instance Normalisation (Eq. 1); gamma, beta (N x C) are given to forward().

    `rho_smoothing` s > 0 uses clip(rho - s, 0, 1) in place of rho in the forward pass, as the official
    TensorFlow code does with its default `--smoothing True` (s = 0.1: an AdaLIN that starts at rho = 1
    starts with a tenth of layer normalisation)."""

    def __init__(self, channels: int, rho_init: float, unbiased: bool, eps: float = 1e-5, rho_smoothing: float = 0.0):
        super().__init__()
        self.rho = nn.Parameter(torch.full((1, channels, 1, 1), float(rho_init)))
        self.unbiased, self.eps, self.rho_smoothing = unbiased, eps, rho_smoothing

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        rho = (self.rho - self.rho_smoothing).clamp(0.0, 1.0) if self.rho_smoothing else self.rho
        mean_i, scale, offset = layer_instance_coefficients(x, rho, self.eps, self.unbiased)
        gamma, beta = gamma[:, :, None, None].float(), beta[:, :, None, None].float()
        return ((x - mean_i) * (scale * gamma) + (offset * gamma + beta)).to(x.dtype)


class LIN(nn.Module):
    """Layer-Instance Normalisation with learned per-channel gamma, beta (the up-sampling blocks)."""

    def __init__(self, channels: int, rho_init: float, unbiased: bool, eps: float = 1e-5):
        super().__init__()
        self.rho = nn.Parameter(torch.full((1, channels, 1, 1), float(rho_init)))
        self.gamma = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.unbiased, self.eps = unbiased, eps

    def forward(self, x: torch.Tensor, gamma: torch.Tensor | None = None, beta: torch.Tensor | None = None) -> torch.Tensor:
        mean_i, scale, offset = layer_instance_coefficients(x, self.rho, self.eps, self.unbiased)
        return ((x - mean_i) * (scale * self.gamma) + (offset * self.gamma + self.beta)).to(x.dtype)


class AdaIN(nn.Module):
    """Instance normalisation without affine, then gamma * x + beta from the MLP (AdaLIN with rho = 1)."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        normalised = nn.functional.instance_norm(x, eps=self.eps)
        return normalised * gamma[:, :, None, None].to(x.dtype) + beta[:, :, None, None].to(x.dtype)


class PlainNorm(nn.Module):
    """A non-adaptive normalisation in the decoder's (x, gamma, beta) call shape; gamma/beta are unused."""

    def __init__(self, norm: nn.Module):
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor, gamma: torch.Tensor | None = None, beta: torch.Tensor | None = None) -> torch.Tensor:
        return self.norm(x)


def group_count(channels: int, preferred: int = 32) -> int:
    """32 groups, or the largest divisor of `channels` below 32 when 32 does not divide it."""
    if channels % preferred == 0:
        return preferred
    return max(d for d in range(1, min(preferred, channels) + 1) if channels % d == 0)


def plain_norm(kind: str, channels: int) -> PlainNorm:
    if kind == "in":
        return PlainNorm(nn.InstanceNorm2d(channels, affine=True))
    if kind == "ln":
        return PlainNorm(nn.GroupNorm(1, channels, affine=True))   # one group = LayerNorm over (C, H, W)
    if kind == "gn":
        return PlainNorm(nn.GroupNorm(group_count(channels), channels, affine=True))
    raise ValueError(f"unknown plain normalisation {kind!r}")


NORMS = ("adalin", "adain", "in", "ln", "gn")
ADAPTIVE_NORMS = ("adalin", "adain")   # these read gamma/beta from the generator's MLP


def residual_norm(kind: str, channels: int, rho_init: float, unbiased: bool, rho_smoothing: float = 0.0) -> nn.Module:
    """The normalisation of a decoder residual block for a `norm` variant (see the module docstring)."""
    if kind == "adalin":
        return AdaLIN(channels, rho_init, unbiased, rho_smoothing=rho_smoothing)
    if kind == "adain":
        return AdaIN(channels)
    return plain_norm(kind, channels)


def upsampling_norm(kind: str, channels: int, unbiased: bool) -> nn.Module:
    """The normalisation of a decoder up-sampling block for a `norm` variant."""
    if kind == "adalin":
        return LIN(channels, rho_init=0.0, unbiased=unbiased)   # rho starts at 0 (paper, Sec. 2.1.1)
    if kind == "adain":
        return plain_norm("in", channels)
    return plain_norm(kind, channels)


def clamp_rho_(rhos: list[torch.Tensor]) -> None:
    """rho <- clip_[0,1](rho) (Eq. 1), on every rho tensor at once (no Python loop per parameter)."""
    if rhos:
        with torch.no_grad():
            torch._foreach_clamp_min_(rhos, 0.0)
            torch._foreach_clamp_max_(rhos, 1.0)



class TFSpectralNorm(nn.Module):
    """Spectral normalisation as the official TensorFlow code computes it (ops.spectral_norm), as a
    parametrization: W / sigma(W) with sigma from one power iteration per call from a stored vector u
    (size out, drawn from N(0, 1), no iterations at construction):
        v = normalize(W^T u),  u' = normalize(W v),  sigma = u'^T W v,  u <- u' (training only)
    where W is the weight as (out, rest). torch's own spectral_norm also stores v, updates u before v
    and runs 15 iterations at construction. l2-normalisation divides by sqrt(max(sum x^2, 1e-12)) as
    tf.nn.l2_normalize does."""

    def __init__(self, out_features: int):
        super().__init__()
        self.register_buffer("u", torch.randn(out_features))

    @staticmethod
    def _normalize(x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.square().sum().clamp_min(1e-12))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        matrix = weight.reshape(weight.shape[0], -1)
        with torch.no_grad():
            v = self._normalize(matrix.t() @ self.u)
            u = self._normalize(matrix @ v)
            if self.training:
                self.u.copy_(u)
        sigma = torch.dot(u, matrix @ v)
        return weight / sigma


def tf_spectral_norm(module: nn.Module) -> nn.Module:
    from torch.nn.utils import parametrize

    parametrize.register_parametrization(module, "weight", TFSpectralNorm(module.weight.shape[0]))
    return module
