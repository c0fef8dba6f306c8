"""U-GAT-IT's networks: the generator (Table 4) and the local and global discriminators (Tables 5, 6).

Code (vs. paper, vs. official PyTorch code):
    Generator(...) for A -> B   G_{s->t}: encoder E_s, auxiliary classifier eta_s, decoder G_t   genA2B
    Discriminator(global)       D_t with 286 x 286 receptive field (Table 6)                    disGA / disGB
    Discriminator(local)        D_t with 70 x 70 receptive field (Table 5)                      disLA / disLB
    ChannelAttention            the CAM block: eta (GAP and GMP logits), a(x) = w * E(x)        gap_fc, gmp_fc, conv1x1
    StyleMLP                    the gamma, beta MLP of Table 4                                  FC, gamma, beta

Both networks return (output, cam_logit, heatmap): the image (or patch logits), the auxiliary
classifier's logits [GAP, GMP] (N x 2), and the attention heatmap (channel sum of the attention
features, N x 1 x h x w), as the official code does; cam_logit and heatmap are None without CAM.

A `Preset` gathers the documented differences between the paper and the two official codes
(docs/ugatit.md; the README's preset table has one row per field): `paper` (the default),
`official_pytorch` (znxlwm/UGATIT-pytorch) and `official_tf` (taki0112/UGATIT, the code behind the
paper's numbers and its released checkpoints: ugatit/tf_released.py imports them). `paper` and
`official_pytorch` share, with the PyTorch code: the CAM classifier as two bias-free heads (GAP and
GMP; the paper and the TF code: one shared head with a bias), the encoder's instance norm without
learned affine (TF: with), symmetric padding, and spectral normalisation by
`torch.nn.utils.parametrizations` (15 power iterations at construction, then one per discriminator
call, u before v; the official code's old API does none at construction, v before u, and calls real
and fake separately, so the two estimates agree only once converged). The train-time resize keeps
the paper's 286/256 ratio at other sizes; the official code adds 30 pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from bench.core.gan import initialise_normal
from ugatit.normalization import ADAPTIVE_NORMS, residual_norm, tf_spectral_norm, upsampling_norm

NETWORK_NAMES = ("genA2B", "genB2A", "disGA", "disGB", "disLA", "disLB")   # the six networks, as the official code names them


@dataclass(frozen=True)
class Preset:
    name: str
    normal_init: bool                  # conv/linear weights ~ N(0, 0.02), biases 0; else PyTorch's default init
    adalin_rho_init: float             # rho of the decoder's AdaLIN at the start
    unbiased_variance: bool            # AdaLIN/LIN variances with n - 1 (torch.var) instead of n
    generator_bias: bool               # biases in the generator's convolutions and MLP (the 1x1 CAM conv always has one)
    decay_all_parameters: bool         # weight decay on every parameter, or on conv/linear weights only
    cam_weight_from_original: bool     # the discriminator's attention map uses the un-normalised CAM weight
    # The official TensorFlow code's graph (taki0112/UGATIT ops.py, UGATIT.py); False/0 in the other presets:
    encoder_norm_affine: bool = False  # the encoder's instance norms learn a scale and shift
    shared_cam_head: bool = False      # one CAM classifier with a bias for GAP and GMP; maps weighted by kernel + bias
    tf_padding: bool = False           # ops.conv pads (kernel - stride) odd asymmetrically: 3x3/2 top-left 1, 4x4/1 1 and 2
    rho_smoothing: float = 0.0         # AdaLIN's forward pass uses clip(rho - s, 0, 1)
    channels_last_flatten: bool = False  # full mode's MLP reads the map flattened as H, W, C (NHWC), not C, H, W
    discriminator_logit_bias: bool = False  # the discriminators' last 4x4 conv has a bias
    tf_spectral_norm: bool = False     # one power iteration per call from a stored u, none at construction
    epoch_schedule: bool = False       # learning rate set once per epoch (train.epoch_iterations), not per iteration
    data_pipeline: str = "paper"       # bench/data: the training augmentation and test resize


PRESETS = {
    "paper": Preset(
        name="paper",
        normal_init=True,              # Appendix B.2: "zero-centered normal distribution with a standard deviation of 0.02"
        adalin_rho_init=1.0,           # Sec. 2.1.1: rho "initialized to 1 in the residual blocks of the decoder"
        unbiased_variance=False,       # Eq. 1 standard deviations; the official TF code uses tf.nn.moments (biased)
        generator_bias=True,           # Table 4 lists plain CONV and MLP layers; the official TF code's default use_bias=True
        decay_all_parameters=False,    # B.2 weight decay 1e-4; the official TF code's L2 regulariser covers kernels only
        cam_weight_from_original=False,  # Sec. 2.1.2: a_D(x) = w_D * E_D(x) with the weight eta_D applies (spectrally normalised)
    ),
    "official_pytorch": Preset(
        name="official_pytorch",
        normal_init=False,             # notes: "Initialisation: PyTorch defaults, not N(0, 0.02)"
        adalin_rho_init=0.9,           # notes: "AdaLIN rho starts at 0.9 (paper: 1.0)"
        unbiased_variance=True,        # notes: "the *unbiased* variance (torch.var default)"
        generator_bias=False,          # notes: "the generator's convolutions and its gamma/beta MLP have no bias"
        decay_all_parameters=True,     # notes: "Adam's coupled L2 on every parameter, rho, gamma and beta included"
        cam_weight_from_original=True,  # notes: "multiplied by the *un-normalised* weight (weight_orig)"
    ),
    "official_tf": Preset(             # taki0112/UGATIT, the code behind the paper's numbers (docs/ugatit.md)
        name="official_tf",
        normal_init=True,              # ops.weight_init: N(0, 0.02) for every kernel; biases, u: constant 0, N(0, 1)
        adalin_rho_init=1.0,           # ops.adaptive_instance_layer_norm: rho constant_initializer(1.0)
        unbiased_variance=False,       # tf.nn.moments
        generator_bias=True,           # ops.conv, ops.fully_connected: use_bias=True
        decay_all_parameters=False,    # l2_regularizer(1e-4) on kernels only, added to the losses (= Adam's coupled decay)
        cam_weight_from_original=False,  # fully_connected_with_w: the spectrally normalised kernel
        encoder_norm_affine=True,      # ops.instance_norm: tf_contrib instance_norm(center=True, scale=True)
        shared_cam_head=True,          # fully_connected_with_w(scope='CAM_logit') twice, reuse=True; weights = w + b
        tf_padding=True,               # ops.conv: (kernel - stride) % 2 == 1 pads top/left `pad`, bottom/right the rest
        rho_smoothing=0.1,             # --smoothing True (default)
        channels_last_flatten=True,    # tf.layers.flatten of an NHWC tensor
        discriminator_logit_bias=True,  # conv(..., scope='D_logit') with use_bias=True
        tf_spectral_norm=True,         # ops.spectral_norm(iteration=1)
        epoch_schedule=True,           # UGATIT.train: lr set at the start of each epoch of --iteration 10,000 updates
        data_pipeline="tf_ugatit",     # utils.ImageData.image_processing, utils.load_test_data
    ),
}


def decayed_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The conv and linear weights (spectrally normalised ones included): what the paper preset decays."""
    weights = []
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            if parametrize.is_parametrized(layer, "weight"):
                weights.append(layer.parametrizations.weight.original)
            else:
                weights.append(layer.weight)
    return weights


# ----------------------------------------------------------------------------------------------
# Building blocks


class ResidualBlock(nn.Module):
    """Encoder bottleneck ResBlock-(N256, K3, S1, P1), IN, ReLU (Table 4); x + F(x)."""

    def __init__(self, channels: int, bias: bool, affine: bool = False):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, 1, 0, bias=bias), nn.InstanceNorm2d(channels, affine=affine),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, 1, 0, bias=bias), nn.InstanceNorm2d(channels, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class DecoderResidualBlock(nn.Module):
    """Decoder bottleneck AdaResBlock-(N256, K3, S1, P1), AdaLIN, ReLU (Table 4); norms per variant."""

    def __init__(self, channels: int, norm: str, rho_init: float, unbiased: bool, bias: bool, rho_smoothing: float = 0.0):
        super().__init__()
        self.pad1 = nn.ReflectionPad2d(1)
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 0, bias=bias)
        self.norm1 = residual_norm(norm, channels, rho_init, unbiased, rho_smoothing)
        self.pad2 = nn.ReflectionPad2d(1)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 0, bias=bias)
        self.norm2 = residual_norm(norm, channels, rho_init, unbiased, rho_smoothing)

    def forward(self, x: torch.Tensor, gamma: torch.Tensor | None, beta: torch.Tensor | None) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(self.pad1(x)), gamma, beta))
        out = self.norm2(self.conv2(self.pad2(out)), gamma, beta)
        return out + x


class ChannelAttention(nn.Module):
    """The CAM block of generator and discriminator (Sec. 2.1.1, 2.1.2; Tables 4-6).

    eta(x) = sigma(sum_k w^k sum_ij E^k_ij(x)) from global average and global max pooling; its
    weights w scale the feature maps, a(x) = w * E(x), the two attention maps are concatenated and a
    1x1 convolution with ReLU (generator) or LeakyReLU 0.2 (discriminator) fuses them.

    The official code concatenates [x * w_gap, x * w_gmp] (2C channels) and then applies the 1x1
    convolution W = [W1 | W2]. That equals one 1x1 convolution of x with W1 * w_gap + W2 * w_gmp, so
    this block folds the CAM weights into the convolution weight: the same mathematics, half the
    multiply-adds, and no 2C-channel tensor.
    """

    def __init__(self, channels: int, spectral: bool, weight_from_original: bool, negative_slope: float,
                 shared_head: bool = False):
        super().__init__()
        if shared_head:   # official TF: one classifier with a bias for both poolings; the maps are weighted by w + b
            self.cam_fc = nn.Linear(channels, 1, bias=True)
        else:
            self.gap_fc = nn.Linear(channels, 1, bias=False)
            self.gmp_fc = nn.Linear(channels, 1, bias=False)
        self.conv1x1 = nn.Conv2d(2 * channels, channels, kernel_size=1, stride=1, bias=True)
        self.spectral = spectral
        self.shared_head = shared_head
        self.weight_from_original = weight_from_original
        self.negative_slope = negative_slope

    def heads(self) -> tuple[nn.Linear, ...]:
        return (self.cam_fc,) if self.shared_head else (self.gap_fc, self.gmp_fc)

    def _cam_weight(self, fc: nn.Linear) -> torch.Tensor:
        if self.spectral and self.weight_from_original:
            return fc.parametrizations.weight.original     # official: the first of parameters(), i.e. weight_orig
        if self.shared_head:
            return fc.weight + fc.bias                      # official TF: tf.nn.bias_add(w, bias)
        return fc.weight                                    # the weight eta actually applies

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        channels = x.shape[1]
        gap_fc, gmp_fc = (self.cam_fc, self.cam_fc) if self.shared_head else (self.gap_fc, self.gmp_fc)
        gap_weight, gmp_weight = self._cam_weight(gap_fc), self._cam_weight(gmp_fc)            # 1 x C each
        gap_logit = gap_fc(x.mean(dim=(2, 3)))                                                 # N x 1
        gmp_logit = gmp_fc(x.amax(dim=(2, 3)))                                                 # N x 1
        fused = self.conv1x1.weight                                                            # C x 2C x 1 x 1
        weight = fused[:, :channels] * gap_weight.view(1, channels, 1, 1) + fused[:, channels:] * gmp_weight.view(1, channels, 1, 1)
        features = F.leaky_relu(F.conv2d(x, weight, self.conv1x1.bias), self.negative_slope)
        heatmap = features.sum(dim=1, keepdim=True)
        return features, torch.cat([gap_logit, gmp_logit], dim=1), heatmap


class StyleMLP(nn.Module):
    """gamma, beta of Table 4: two MLP-(N256) + ReLU, then one linear head each.
    Light: reads the global-average-pooled attention features; full: the whole flattened map."""

    def __init__(self, in_features: int, channels: int, light: bool, bias: bool, channels_last: bool = False):
        super().__init__()
        self.light, self.channels_last = light, channels_last
        self.fc = nn.Sequential(
            nn.Linear(in_features, channels, bias=bias), nn.ReLU(inplace=True),
            nn.Linear(channels, channels, bias=bias), nn.ReLU(inplace=True),
        )
        self.gamma = nn.Linear(channels, channels, bias=bias)
        self.beta = nn.Linear(channels, channels, bias=bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.light:
            summary = x.mean(dim=(2, 3))                                   # N x C
        else:                                                              # N x (C*h*w), or (h*w*C) as TF flattens NHWC
            summary = x.permute(0, 2, 3, 1).flatten(1) if self.channels_last else x.flatten(1)
        hidden = self.fc(summary)
        return self.gamma(hidden), self.beta(hidden)


# ----------------------------------------------------------------------------------------------
# Generator


class Generator(nn.Module):
    """G_{s->t} (Table 4): 2 down-sampling convs + n_res ResBlocks (IN), CAM, gamma/beta MLP,
    n_res decoder ResBlocks (AdaLIN), 2 up-sampling convs (LIN), 7x7 conv to RGB and tanh."""

    def __init__(self, width: int = 64, n_res: int = 4, image_size: int = 256, light: bool = False,
                 norm: str = "adalin", cam: bool = True, preset: Preset = PRESETS["paper"]):
        super().__init__()
        bias = preset.generator_bias
        channels = 4 * width                 # after two stride-2 convs: 256 for width 64
        self.image_size, self.light, self.norm, self.n_res = image_size, light, norm, n_res

        # Encoder E_s: CONV-(N64, K7, S1, P3), CONV-(N128, K3, S2, P1), CONV-(N256, K3, S2, P1), each IN + ReLU.
        # (TF preset: the stride-2 convs pad top and left only, as ops.conv does for kernel 3, stride 2.)
        affine = preset.encoder_norm_affine
        encoder: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(3, width, 7, 1, 0, bias=bias),
                                    nn.InstanceNorm2d(width, affine=affine), nn.ReLU(inplace=True)]
        for multiplier in (1, 2):
            encoder += [nn.ReflectionPad2d((1, 0, 1, 0) if preset.tf_padding else 1),
                        nn.Conv2d(width * multiplier, width * multiplier * 2, 3, 2, 0, bias=bias),
                        nn.InstanceNorm2d(width * multiplier * 2, affine=affine), nn.ReLU(inplace=True)]
        encoder += [ResidualBlock(channels, bias, affine) for _ in range(n_res)]
        self.encoder = nn.Sequential(*encoder)

        # Auxiliary classifier eta_s and attention feature map a_s(x) (Sec. 2.1.1); absent without G_CAM.
        self.attention = ChannelAttention(channels, spectral=False, weight_from_original=False, negative_slope=0.0,
                                          shared_head=preset.shared_cam_head) if cam else None

        # gamma, beta from the attention features (only the adaptive norms use them).
        feature_pixels = (image_size // 4) ** 2
        self.style = StyleMLP(channels if light else channels * feature_pixels, channels, light, bias,
                              preset.channels_last_flatten) if norm in ADAPTIVE_NORMS else None

        # Decoder G_t: n_res AdaLIN ResBlocks, then Up-CONV-(N128) and Up-CONV-(N64) with LIN + ReLU.
        self.decoder = nn.ModuleList(
            DecoderResidualBlock(channels, norm, preset.adalin_rho_init, preset.unbiased_variance, bias, preset.rho_smoothing)
            for _ in range(n_res)
        )
        upsample: list[nn.Module] = []
        for divisor in (1, 2):
            in_channels = channels // divisor
            upsample += [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1),
                         nn.Conv2d(in_channels, in_channels // 2, 3, 1, 0, bias=bias),
                         upsampling_norm(norm, in_channels // 2, preset.unbiased_variance), nn.ReLU(inplace=True)]
        upsample += [nn.ReflectionPad2d(3), nn.Conv2d(width, 3, 7, 1, 0, bias=bias), nn.Tanh()]
        self.upsample = nn.Sequential(*upsample)

        if preset.normal_init:
            initialise_normal(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        features = self.encoder(x)                                                   # E_s(x): N x 4w x H/4 x W/4
        cam_logit = heatmap = None
        if self.attention is not None:
            features, cam_logit, heatmap = self.attention(features)                  # a_s(x), eta_s logits
        gamma, beta = self.style(features) if self.style is not None else (None, None)
        for block in self.decoder:
            features = block(features, gamma, beta)
        return self.upsample(features), cam_logit, heatmap


# ----------------------------------------------------------------------------------------------
# Discriminators

PAPER_GLOBAL_DOWNSAMPLINGS = 5   # Table 6: five stride-2 convs, 286 x 286 receptive field
PAPER_LOCAL_DOWNSAMPLINGS = 3    # Table 5: three stride-2 convs, 70 x 70 receptive field


def _after_downsampling(size: int, count: int) -> int:
    for _ in range(count):
        size = (size + 2 - 4) // 2 + 1   # reflection pad 1, 4x4 conv, stride 2
    return size


def discriminator_downsamplings(image_size: int, paper_count: int) -> int:
    """The paper's number of stride-2 layers, or fewer when the image is too small for them.

    After the stride-2 layers come a stride-1 4x4 conv and the 4x4 classifier, each after a
    reflection pad of 1, which needs at least 2 pixels: so the map after down-sampling must be at
    least 3 pixels wide. At 256 and 128 px this keeps Tables 5 and 6 exactly; at 64 px the global
    discriminator has 4 stride-2 layers instead of 5.
    """
    for count in range(paper_count, 0, -1):
        if _after_downsampling(image_size, count) >= 3:
            return count
    raise ValueError(f"image size {image_size} is too small for a discriminator (needs at least 8 pixels)")


class Discriminator(nn.Module):
    """D_t: stride-2 4x4 convs (SN, LeakyReLU 0.2), a stride-1 4x4 conv, CAM, 4x4 classifier (SN)."""

    def __init__(self, width: int = 64, downsamplings: int = PAPER_LOCAL_DOWNSAMPLINGS, cam: bool = True,
                 preset: Preset = PRESETS["paper"]):
        super().__init__()
        self.downsamplings = downsamplings
        channels = width
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(3, width, 4, 2, 0, bias=True), nn.LeakyReLU(0.2, inplace=True)]
        for _ in range(downsamplings - 1):
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels * 2, 4, 2, 0, bias=True), nn.LeakyReLU(0.2, inplace=True)]
            channels *= 2
        # The stride-1 4x4 convs: reflection pad 1 (a map 1 px smaller), or 1 before and 2 after as the TF
        # code's ops.conv pads them (the same size: 8 x 8 and 32 x 32 logits at 256 px, not 6 and 30).
        stride1_pad = nn.ReflectionPad2d((1, 2, 1, 2)) if preset.tf_padding else nn.ReflectionPad2d(1)
        layers += [stride1_pad, nn.Conv2d(channels, channels * 2, 4, 1, 0, bias=True), nn.LeakyReLU(0.2, inplace=True)]
        channels *= 2
        self.encoder = nn.Sequential(*layers)
        self.attention = ChannelAttention(channels, spectral=True, weight_from_original=preset.cam_weight_from_original,
                                          negative_slope=0.2, shared_head=preset.shared_cam_head) if cam else None
        self.classifier = nn.Sequential(nn.ReflectionPad2d((1, 2, 1, 2)) if preset.tf_padding else nn.ReflectionPad2d(1),
                                        nn.Conv2d(channels, 1, 4, 1, 0, bias=preset.discriminator_logit_bias))

        if preset.normal_init:
            initialise_normal(self)
        # Spectral normalisation on every conv but the 1x1 CAM fusion, and on the CAM classifiers (Tables 5, 6).
        normalise = tf_spectral_norm if preset.tf_spectral_norm else spectral_norm
        for layer in list(self.encoder) + list(self.classifier):
            if isinstance(layer, nn.Conv2d):
                normalise(layer)
        if self.attention is not None:
            for head in self.attention.heads():
                normalise(head)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        # One spectral-norm computation (and, in training, one power iteration) per layer per forward,
        # as the official code's hooks do, even though the CAM weights are read twice.
        with parametrize.cached():
            features = self.encoder(x)
            cam_logit = heatmap = None
            if self.attention is not None:
                features, cam_logit, heatmap = self.attention(features)
            return self.classifier(features), cam_logit, heatmap
