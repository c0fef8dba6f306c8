"""U-GAT-IT networks: shapes, discriminator depths, normalisations, variants, parameter counts."""

from __future__ import annotations

import typing

import pytest
import torch

from bench.core.config import TrainConfig
from bench.core.methods import create_method
from bench.core.schema import ConfigError
from ugatit.networks import PRESETS, Discriminator, Generator, discriminator_downsamplings
from ugatit.normalization import LIN, NORMS, AdaLIN, group_count, layer_instance_coefficients
from ugatit.official_reference import OfficialAdaLIN, official_networks
from ugatit.options import TABLE1_NAMES, UGATITOptions, table1_label


@pytest.mark.parametrize("size", [64, 128, 256])
@pytest.mark.parametrize("light", [True, False])
def test_generator_shapes(size, light):
    generator = Generator(width=2, n_res=2, image_size=size, light=light)
    output, cam_logit, heatmap = generator(torch.rand(2, 3, size, size) * 2 - 1)
    assert output.shape == (2, 3, size, size) and output.abs().max() <= 1
    assert cam_logit.shape == (2, 2)
    assert heatmap.shape == (2, 1, size // 4, size // 4)


@pytest.mark.parametrize("size, global_map, local_map", [(256, 6, 30), (128, 2, 14), (64, 2, 6)])
def test_discriminator_shapes_and_depths(size, global_map, local_map):
    """At 256 px the patch maps are 6x6 (global) and 30x30 (local), as the official code's."""
    images = torch.rand(1, 3, size, size)
    for paper_depth, expected in ((5, global_map), (3, local_map)):
        discriminator = Discriminator(width=2, downsamplings=discriminator_downsamplings(size, paper_depth))
        logits, cam_logit, heatmap = discriminator(images)
        assert logits.shape == (1, 1, expected, expected) and cam_logit.shape == (1, 2)
        assert heatmap.shape[1] == 1


def test_discriminator_depth_adapts_only_below_128_px():
    assert [discriminator_downsamplings(s, 5) for s in (256, 128, 64, 32, 16)] == [5, 5, 4, 3, 2]
    assert [discriminator_downsamplings(s, 3) for s in (256, 128, 64, 32, 16)] == [3, 3, 3, 3, 2]
    with pytest.raises(ValueError, match="too small"):
        discriminator_downsamplings(4, 3)


def test_image_size_must_be_a_multiple_of_four():
    with pytest.raises(ConfigError, match="must be a multiple of 4"):
        create_method("ugatit", train=TrainConfig(image_size=30), width=2)
    with pytest.raises(ConfigError, match="differs from train.image_size"):
        create_method("ugatit", train=TrainConfig(image_size=32), image_size=64, width=2)
    with pytest.raises(ConfigError, match="init_from: checkpoint file"):
        create_method("ugatit", train=TrainConfig(image_size=32), width=2, init_from="/nonexistent.pt")


@pytest.mark.parametrize("unbiased", [False, True])
def test_one_pass_statistics_equal_the_direct_formula(unbiased):
    torch.manual_seed(0)
    x = torch.randn(3, 5, 7, 6) * 3 + 2
    rho = torch.rand(1, 5, 1, 1)
    mean_i, scale, offset = layer_instance_coefficients(x, rho, 1e-5, unbiased)
    direct_i = (x - x.mean((2, 3), keepdim=True)) / torch.sqrt(x.var((2, 3), keepdim=True, unbiased=unbiased) + 1e-5)
    direct_l = (x - x.mean((1, 2, 3), keepdim=True)) / torch.sqrt(x.var((1, 2, 3), keepdim=True, unbiased=unbiased) + 1e-5)
    expected = rho * direct_i + (1 - rho) * direct_l
    assert torch.allclose((x - mean_i) * scale + offset, expected, atol=1e-5)


def test_adalin_and_lin_match_the_official_formulas():
    torch.manual_seed(1)
    x = torch.randn(2, 6, 5, 5)
    gamma, beta = torch.randn(2, 6), torch.randn(2, 6)
    ours, official = AdaLIN(6, 0.9, unbiased=True), OfficialAdaLIN(6)
    with torch.no_grad():
        ours.rho.uniform_()
        official.rho.copy_(ours.rho)
    assert torch.allclose(ours(x, gamma, beta), official(x, gamma, beta), atol=1e-5)
    ours_lin, official_lin = LIN(6, 0.0, unbiased=True), OfficialAdaLIN(6, rho=0.0, learned_affine=True)
    with torch.no_grad():
        for name in ("rho", "gamma", "beta"):
            getattr(ours_lin, name).uniform_()
            getattr(official_lin, name).copy_(getattr(ours_lin, name))
    assert torch.allclose(ours_lin(x), official_lin(x), atol=1e-5)


def test_norm_variants_are_what_the_docstring_says():
    paper = PRESETS["paper"]
    adalin = Generator(width=2, n_res=1, image_size=16, light=True, norm="adalin", preset=paper)
    assert adalin.decoder[0].norm1.rho.flatten()[0] == 1.0        # paper: rho starts at 1 in the residual blocks
    assert adalin.upsample[3].rho.flatten()[0] == 0.0             # ... and at 0 in the up-sampling blocks
    assert Generator(width=2, n_res=1, image_size=16, light=True, preset=PRESETS["official_pytorch"]).decoder[0].norm1.rho.flatten()[0].item() == pytest.approx(0.9)
    for norm in ("in", "ln", "gn"):
        plain = Generator(width=2, n_res=1, image_size=16, light=True, norm=norm)
        assert plain.style is None                                # no gamma/beta MLP
        assert not any(hasattr(m, "rho") for m in plain.modules())
    adain = Generator(width=2, n_res=1, image_size=16, light=True, norm="adain")
    assert adain.style is not None and not any(hasattr(m, "rho") for m in adain.modules())
    assert [group_count(c) for c in (256, 128, 64, 48, 8)] == [32, 32, 32, 24, 8]
    # The YAML's allowed values and the implemented norms are the same list.
    assert set(typing.get_args(typing.get_type_hints(UGATITOptions)["norm"])) == set(NORMS)


def test_variants_without_cam_have_no_attention():
    assert Generator(width=2, n_res=1, image_size=16, light=True, cam=False)(torch.rand(1, 3, 16, 16))[1:] == (None, None)
    assert Discriminator(width=2, downsamplings=2, cam=False)(torch.rand(1, 3, 16, 16))[1:] == (None, None)


def test_table1_labels():
    assert table1_label(UGATITOptions()) == "U-GAT-IT"
    assert [table1_label(UGATITOptions(norm=n)) for n in TABLE1_NAMES] == [
        "U-GAT-IT w/ IN", "U-GAT-IT w/ LN", "U-GAT-IT w/ AdaIN", "U-GAT-IT w/ GN"]
    assert table1_label(UGATITOptions(g_cam=False, d_cam=False)) == "U-GAT-IT w/o CAM"
    assert table1_label(UGATITOptions(g_cam=False)) == "U-GAT-IT w/o G_CAM"
    assert table1_label(UGATITOptions(d_cam=False)) == "U-GAT-IT w/o D_CAM"


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("light", [True, False])
def test_parameter_counts_equal_the_official_code_at_256_px(light):
    """The official_pytorch preset has exactly the official networks' parameters (built on the meta device)."""
    with torch.device("meta"):
        official = official_networks(ngf=64, n_blocks=4, img_size=256, light=light)
        generator = Generator(64, 4, 256, light, preset=PRESETS["official_pytorch"])
        global_d = Discriminator(64, discriminator_downsamplings(256, 5), preset=PRESETS["official_pytorch"])
        local_d = Discriminator(64, discriminator_downsamplings(256, 3), preset=PRESETS["official_pytorch"])
        paper_generator = Generator(64, 4, 256, light, preset=PRESETS["paper"])
    assert parameter_count(generator) == parameter_count(official["genA2B"])
    assert parameter_count(global_d) == parameter_count(official["disGA"])
    assert parameter_count(local_d) == parameter_count(official["disLA"])
    # The paper preset adds the biases the official PyTorch code leaves out.
    assert parameter_count(paper_generator) > parameter_count(generator)
    if not light:   # full mode: the MLP's first layer reads 64 x 64 x 256 features
        assert generator.style.fc[0].weight.shape == (256, 64 * 64 * 256)
