"""Layers shared by UNIT, MUNIT and DRIT, whose reference codes build on the same pieces: reflection-padded
conv blocks, the residual block with instance norm, their own layer norm, and the multi-scale patch
discriminator (MUNIT's is UNIT's; DRIT's differs only in its LeakyReLU slope and in being trained with
BCE instead of least squares). See docs/baselines.md.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

MIN_SCALE_SIZE = 16   # four stride-2 convs with reflection padding need 16 px at the smallest scale


class UNITLayerNorm(nn.Module):
    """UNIT's and MUNIT's LayerNorm: (x - mean) / (std + eps) over (C, H, W), unbiased std, gamma ~ U[0, 1)."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.rand(channels))
        self.beta = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        mean = flat.mean(dim=1).view(-1, 1, 1, 1)
        std = flat.std(dim=1).view(-1, 1, 1, 1)
        return (x - mean) / (std + self.eps) * self.gamma.view(1, -1, 1, 1) + self.beta.view(1, -1, 1, 1)


def activation(name: str, slope: float = 0.2) -> nn.Module:
    return {"relu": nn.ReLU(inplace=True), "lrelu": nn.LeakyReLU(slope, inplace=True), "tanh": nn.Tanh(),
            "none": nn.Identity()}[name]


def conv_block(in_channels: int, out_channels: int, kernel: int, stride: int, padding: int, norm: str,
               act: str, slope: float = 0.2) -> nn.Sequential:
    """Reflection pad, conv (with bias), optional norm ("in", "ln", "none"), activation: the reference's
    Conv2dBlock (the notes' C<kernel>-<stride>-<padding>)."""
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel, stride, padding, padding_mode="reflect")]
    if norm == "in":
        layers.append(nn.InstanceNorm2d(out_channels))
    elif norm == "ln":
        layers.append(UNITLayerNorm(out_channels))
    layers.append(activation(act, slope))
    return nn.Sequential(*layers)


class ResBlock(nn.Module):
    """[3x3 conv, IN, ReLU, 3x3 conv, IN] + x, reflection padding, no activation after the sum."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(conv_block(channels, channels, 3, 1, 1, "in", "relu"),
                                  conv_block(channels, channels, 3, 1, 1, "in", "none"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def content_encoder(width: int, n_res: int) -> nn.Sequential:
    """UNIT's encoder, MUNIT's content encoder: 7x7 conv to `width`, two 4x4 stride-2 convs (IN, ReLU),
    `n_res` residual blocks; a 4*width x H/4 x W/4 map."""
    return nn.Sequential(conv_block(3, width, 7, 1, 3, "in", "relu"), conv_block(width, width * 2, 4, 2, 1, "in", "relu"),
                         conv_block(width * 2, width * 4, 4, 2, 1, "in", "relu"), *[ResBlock(width * 4) for _ in range(n_res)])


def upsampling_head(width: int) -> nn.Sequential:
    """UNIT's and MUNIT's decoder after its residual blocks: nearest x2 and a 5x5 conv, LN, ReLU, twice;
    then a 7x7 conv to RGB and tanh."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv_block(width * 4, width * 2, 5, 1, 2, "ln", "relu"),
                         nn.Upsample(scale_factor=2, mode="nearest"), conv_block(width * 2, width, 5, 1, 2, "ln", "relu"),
                         conv_block(width, 3, 7, 1, 3, "none", "tanh"))


class MultiScaleDiscriminator(nn.Module):
    """`n_scales` patch discriminators (separate weights), each 4x4 stride-2 convs 3 -> w -> 2w -> 4w -> 8w
    with LeakyReLU and no norm, then a 1x1 conv to one logit map; the image is average-pooled (3x3,
    stride 2, padding 1, padding not counted) between scales. Returns one map per scale."""

    def __init__(self, width: int, n_scales: int, slope: float = 0.2):
        super().__init__()
        self.scales = nn.ModuleList(
            nn.Sequential(conv_block(3, width, 4, 2, 1, "none", "lrelu", slope),
                          conv_block(width, width * 2, 4, 2, 1, "none", "lrelu", slope),
                          conv_block(width * 2, width * 4, 4, 2, 1, "none", "lrelu", slope),
                          conv_block(width * 4, width * 8, 4, 2, 1, "none", "lrelu", slope), nn.Conv2d(width * 8, 1, 1))
            for _ in range(n_scales))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for index, scale in enumerate(self.scales):
            if index:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            outputs.append(scale(x))
        return outputs


def discriminator_scales(image_size: int, wanted: int) -> int:
    """The wanted number of scales, or fewer when the smallest image would be under 16 px."""
    scales, size = 0, image_size
    while scales < wanted and size >= MIN_SCALE_SIZE:
        scales += 1
        size = (size + 1) // 2
    return scales


def tf_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "SAME" padding of one axis: (before, after). The total makes ceil(size / stride)
    outputs; the smaller half goes before. With a 3x3 kernel and stride 2 on an even size: (0, 1), where
    torch's padding=1 gives (1, 1) and samples the grid one pixel earlier."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class TFSameConv2d(nn.Conv2d):
    """A convolution with TensorFlow's "SAME" zero padding (same parameters as nn.Conv2d)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int):
        super().__init__(in_channels, out_channels, kernel, stride, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = tf_same_padding(x.shape[-2], self.kernel_size[0], self.stride[0])
        left, right = tf_same_padding(x.shape[-1], self.kernel_size[1], self.stride[1])
        return super().forward(F.pad(x, (left, right, top, bottom)))


class TFSameConvTranspose2d(nn.ConvTranspose2d):
    """TensorFlow's conv2d_transpose with "SAME": stride x the input size, the full transposed convolution
    ((H - 1) * stride + kernel rows) cut by (kernel - stride) // 2 rows before and the rest after. With 3x3
    and stride 2 that is none before and one after, where torch's padding=1, output_padding=1 cuts one
    before: the output grid is shifted by one pixel."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int):
        super().__init__(in_channels, out_channels, kernel, stride, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        full = super().forward(x)
        height, width = x.shape[-2] * self.stride[0], x.shape[-1] * self.stride[1]
        top, left = max(self.kernel_size[0] - self.stride[0], 0) // 2, max(self.kernel_size[1] - self.stride[1], 0) // 2
        return full[..., top:top + height, left:left + width]
