"""Each difference between the `paper` and `official_pytorch` presets, pinned by a test of its own,
each checked against a formula written here rather than against the code it guards."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ugatit.networks import PRESETS, Discriminator, Generator

PAPER, OFFICIAL = PRESETS["paper"], PRESETS["official_pytorch"]


def generator(preset, seed=0):
    torch.manual_seed(seed)
    return Generator(width=2, n_res=1, image_size=16, light=True, preset=preset)


def adalin_by_hand(x, rho, gamma, beta, correction, eps=1e-5):
    """Eq. 1 with the given variance correction (0: biased, 1: unbiased), in float64."""
    x = x.double()
    mean_i, var_i = x.mean((2, 3), keepdim=True), x.var((2, 3), keepdim=True, correction=correction)
    mean_l, var_l = x.mean((1, 2, 3), keepdim=True), x.var((1, 2, 3), keepdim=True, correction=correction)
    x_hat = rho.double() * (x - mean_i) / torch.sqrt(var_i + eps) + (1 - rho.double()) * (x - mean_l) / torch.sqrt(var_l + eps)
    return x_hat * gamma.double()[:, :, None, None] + beta.double()[:, :, None, None]


@pytest.mark.parametrize("preset, correction", [(PAPER, 0), (OFFICIAL, 1)], ids=["paper-biased", "official-unbiased"])
def test_adalin_variance(preset, correction):
    norm = generator(preset).decoder[0].norm1
    torch.manual_seed(1)
    x, gamma, beta = torch.randn(2, 8, 3, 3), torch.randn(2, 8), torch.randn(2, 8)
    with torch.no_grad():
        norm.rho.uniform_()
    expected = adalin_by_hand(x, norm.rho, gamma, beta, correction)
    other = adalin_by_hand(x, norm.rho, gamma, beta, 1 - correction)
    actual = norm(x, gamma, beta).double()
    assert torch.allclose(actual, expected, atol=1e-5) and not torch.allclose(actual, other, atol=1e-3)


@pytest.mark.parametrize("preset, correction", [(PAPER, 0), (OFFICIAL, 1)], ids=["paper-biased", "official-unbiased"])
def test_lin_variance(preset, correction):
    norm = generator(preset).upsample[3]
    torch.manual_seed(2)
    x = torch.randn(2, 4, 3, 3)
    with torch.no_grad():
        norm.rho.uniform_()
        norm.gamma.uniform_(0.5, 1.5)
        norm.beta.uniform_(-1, 1)
    expected = adalin_by_hand(x, norm.rho, norm.gamma.view(1, -1).expand(2, -1), norm.beta.view(1, -1).expand(2, -1), correction)
    assert torch.allclose(norm(x).double(), expected, atol=1e-5)


def discriminator_attention_by_hand(discriminator, x, weight_of):
    features = discriminator.encoder(x)
    attention = discriminator.attention
    w_gap, w_gmp = weight_of(attention.gap_fc), weight_of(attention.gmp_fc)                     # 1 x C each
    stacked = torch.cat([features * w_gap.view(1, -1, 1, 1), features * w_gmp.view(1, -1, 1, 1)], dim=1)
    return F.leaky_relu(attention.conv1x1(stacked), 0.2).sum(dim=1, keepdim=True)            # the heatmap


@pytest.mark.parametrize("preset, weight", [(PAPER, "normalised"), (OFFICIAL, "raw")])
def test_discriminator_attention_weight(preset, weight):
    """paper: a_D(x) = w_D * E_D(x) with the (spectrally normalised) weight eta_D applies (Sec. 2.1.2);
    official: the raw `weight_orig`."""
    torch.manual_seed(3)
    discriminator = Discriminator(width=2, downsamplings=1, preset=preset).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        _, _, heatmap = discriminator(x)
        normalised = discriminator_attention_by_hand(discriminator, x, lambda fc: fc.weight)
        raw = discriminator_attention_by_hand(discriminator, x, lambda fc: fc.parametrizations.weight.original)
    assert not torch.allclose(normalised, raw, atol=1e-4)   # the test can tell the two apart
    expected, other = (normalised, raw) if weight == "normalised" else (raw, normalised)
    assert torch.allclose(heatmap, expected, atol=1e-5) and not torch.allclose(heatmap, other, atol=1e-4)


def test_initialisation():
    """paper: N(0, 0.02) weights and zero biases (Appendix B.2); official: PyTorch's default init."""
    paper_conv, official_conv = generator(PAPER).encoder[1], generator(OFFICIAL).encoder[1]
    assert paper_conv.weight.std().item() == pytest.approx(0.02, rel=0.25) and torch.all(paper_conv.bias == 0)
    bound = 1 / (3 * 7 * 7) ** 0.5          # PyTorch's default: kaiming_uniform(a=sqrt(5)), U(-bound, bound)
    assert official_conv.weight.abs().max().item() <= bound
    assert official_conv.weight.std().item() == pytest.approx(bound / 3 ** 0.5, rel=0.25)


def test_generator_biases():
    def layers(network):   # convolutions and linear layers, but the CAM classifier's heads (bias-free in both)
        heads = {id(network.attention.gap_fc), id(network.attention.gmp_fc)}
        return [m for m in network.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and id(m) not in heads]

    paper_convs, official_convs = layers(generator(PAPER)), layers(generator(OFFICIAL))
    assert all(m.bias is not None for m in paper_convs)
    # The official generator has none, except the 1x1 fusion conv of the CAM block.
    assert [m.bias is not None for m in official_convs].count(True) == 1


def test_adalin_rho_at_the_start():
    assert torch.all(generator(PAPER).decoder[0].norm1.rho == 1.0)     # Sec. 2.1.1
    assert torch.allclose(generator(OFFICIAL).decoder[0].norm1.rho, torch.tensor(0.9))
    assert torch.all(generator(PAPER).upsample[3].rho == 0.0) and torch.all(generator(OFFICIAL).upsample[3].rho == 0.0)
