"""DRIT's networks (concat variant): content encoders, attribute encoders, generators and the content
discriminator; the image discriminators are UNIT's multi-scale ones (baselines/blocks.py). The model,
its losses and its updates are in baselines/drit.py, whose docstring describes every layer."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from baselines.blocks import ResBlock, conv_block

CONTENT_DOWN_LAYERS = 3          # 7x7 stride-2 convs of the reference's content discriminator


class DRITLayerNorm(nn.Module):
    """Layer norm over (C, H, W) (biased variance, eps 1e-5) with a per-channel affine."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[1:]) * self.weight[:, None, None] + self.bias[:, None, None]


def up_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 stride-2 transposed conv (output padding 1), LN, ReLU: doubles the size."""
    return nn.Sequential(nn.ConvTranspose2d(in_channels, out_channels, 3, 2, 1, output_padding=1), DRITLayerNorm(out_channels),
                         nn.ReLU(inplace=True))


def with_code(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """x with the code z tiled over its height and width as extra channels."""
    return torch.cat([x, z[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])], dim=1)


class ConcatGenerator(nn.Module):
    """One domain's generator after the shared block: z concatenated before the residual blocks, before
    each up-sampling and before the output conv."""

    def __init__(self, channels: int, nz: int, n_res: int):
        super().__init__()
        c1 = channels + nz
        self.blocks = nn.Sequential(*[ResBlock(c1) for _ in range(n_res)])
        c2 = c1 + nz
        self.up1 = up_block(c2, c2 // 2)
        c3 = c2 // 2 + nz
        self.up2 = up_block(c3, c3 // 2)
        self.out = nn.ConvTranspose2d(c3 // 2 + nz, 3, 1)

    def forward(self, content: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        x = self.blocks(with_code(content, z))
        x = self.up1(with_code(x, z))
        x = self.up2(with_code(x, z))
        return torch.tanh(self.out(with_code(x, z)))


class PreActivationBlock(nn.Module):
    """LeakyReLU 0.2, 3x3 conv, LeakyReLU 0.2, 3x3 conv to `out`, 2x2 average pool; plus pool, 1x1 conv."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.main = nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(in_channels, in_channels, 3, 1, 1, padding_mode="reflect"),
                                  nn.LeakyReLU(0.2), nn.Conv2d(in_channels, out_channels, 3, 1, 1, padding_mode="reflect"),
                                  nn.AvgPool2d(2))
        self.shortcut = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(in_channels, out_channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) + self.shortcut(x)


class AttributeEncoder(nn.Module):
    """x -> (mu, logvar) of the attribute code (the reference's concat-variant encoder)."""

    def __init__(self, width: int, nz: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, width, 4, 2, 1, padding_mode="reflect"),
                                  PreActivationBlock(width, width * 2), PreActivationBlock(width * 2, width * 3),
                                  PreActivationBlock(width * 3, width * 4), nn.LeakyReLU(0.2), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten())
        self.mu = nn.Linear(width * 4, nz)
        self.logvar = nn.Linear(width * 4, nz)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.mu(h), self.logvar(h)


def content_down_layers(image_size: int) -> int:
    """How many of the content discriminator's 7x7 stride-2 convs (reflection padding 1) fit: the last
    4x4 conv needs a map of at least 4 (the reference's three fit from 216 px)."""
    size, layers = image_size // 4, 0
    while layers < CONTENT_DOWN_LAYERS and (size + 2 - 7) // 2 + 1 >= 4:
        size, layers = (size + 2 - 7) // 2 + 1, layers + 1
    return layers


def content_discriminator(channels: int, down_layers: int) -> nn.Sequential:
    return nn.Sequential(*[conv_block(channels, channels, 7, 2, 1, "none", "lrelu", 0.01) for _ in range(down_layers)],
                         nn.Conv2d(channels, channels, 4, 1, 0), nn.LeakyReLU(0.01, inplace=True),
                         nn.Conv2d(channels, 1, 1), nn.Flatten())


def content_encoder(width: int, n_res: int) -> nn.Sequential:
    """One domain's part of E^c (the last residual block is shared, see DRITMethod)."""
    return nn.Sequential(conv_block(3, width, 7, 1, 3, "none", "lrelu", 0.01), conv_block(width, width * 2, 3, 2, 1, "in", "relu"),
                         conv_block(width * 2, width * 4, 3, 2, 1, "in", "relu"), *[ResBlock(width * 4) for _ in range(n_res)])
