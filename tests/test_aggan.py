"""AGGAN: parameter counts at the reference sizes, the switch from attention learning to frozen
attention and masked discriminator inputs, and attention pictures (training with every network moving,
and exact resumption across the switch: test_baselines.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from baselines.aggan import composite
from bench.core.config import TrainConfig
from bench.core.methods import create_method, method_class
from bench.core.translate import to_uint8_images, translate_with_method
from bench.core.visual import overlay
from bench.data.pipeline import SortedImageFolder

CPU = torch.device("cpu")
TINY = dict(width=4, n_blocks=1, dis_width=4, pool_size=2)


def count(*modules) -> int:
    return sum(p.numel() for module in modules for p in module.parameters())


def batch(seed: int, size: int = 32) -> torch.Tensor:
    return torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_parameter_counts_at_the_reference_sizes():
    method = create_method("aggan", train=TrainConfig(image_size=256, iterations=1))
    assert count(method.gen_a2b) == 2_855_811
    assert count(method.attention_a) == 104_001
    assert count(method.dis_a) == 2_766_657
    assert method.dis_a(torch.zeros(1, 3, 256, 256)).shape[-1] == 35   # the reference's 35 x 35 patch map


def test_after_the_switch_attention_is_frozen_and_discriminators_see_attended_pixels_without_norm():
    # 10 iterations of which the first 3 are the attention-learning phase (3 of 10 "epochs").
    torch.manual_seed(0)
    method = create_method("aggan", train=TrainConfig(image_size=32, iterations=10), epochs=10, switch_epoch=3,
                           threshold=0.5, **TINY)
    assert method.switch_step == 3
    for step in range(3):
        method.set_step(step)
        assert not method.attention_frozen and method.tau == 0.0 and method.dis_a.use_norm
        method.train_step(batch(step), batch(20 + step))
    seen: list[torch.Tensor] = []
    method.dis_b.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0].detach().clone()))
    attention = {k: v.clone() for k, v in method.networks.state_dict().items() if k.startswith("attention_")}
    generator = method.gen_a2b.state_dict()["0.weight"].clone()
    real_a, real_b = batch(3), batch(23)
    method.set_step(3)
    assert method.attention_frozen and method.tau == 0.5 and not method.dis_a.use_norm and not method.dis_b.use_norm
    with torch.no_grad():
        mask_b = (method.attention_b(real_b) >= 0.5).float()
    assert 0 < mask_b.mean() < 1                                              # the gate really removes pixels
    method.train_step(real_a, real_b)
    now = method.networks.state_dict()
    assert all(torch.equal(attention[k], now[k]) for k in attention)           # attention frozen
    assert not torch.equal(generator, now["gen_a2b.0.weight"])                # generators still learn
    discriminator_batch = next(x for x in seen if x.shape[0] == 2)             # [gated real, gated pooled fake]
    assert torch.equal(discriminator_batch[:1], real_b * mask_b)
    assert (discriminator_batch[1:] == 0).float().mean() > 0.05                # the fake is gated by its source's mask


def test_attention_pictures_are_absolute_and_translations_composite():
    torch.manual_seed(0)
    method = create_method("aggan", train=TrainConfig(image_size=32, iterations=10), **TINY)
    images = batch(5)
    translation, attention = method.translate_with_attention(images, "a2b")
    assert attention.shape == (1, 1, 32, 32) and 0 <= attention.min() and attention.max() <= 1
    with torch.no_grad():
        expected = composite(method.attention_a(images), method.gen_a2b(images), images)
    assert torch.allclose(translation, expected) and torch.equal(method.translate(images, "a2b"), translation)
    sheet = method.sample_sheet(images, batch(6))
    assert sheet.shape[0] == 3 and len(method.sample_columns) == 4


def test_translation_folders_hold_attention_overlays(tiny_dataset, tmp_path):
    torch.manual_seed(0)
    method = create_method("aggan", train=TrainConfig(image_size=32, iterations=10), **TINY)
    out = translate_with_method(method, "a2b", tiny_dataset / "testA", tmp_path / "a2b", 32, CPU, progress=False)
    assert len(list(out.glob("*.png"))) == 6 and len(list((out / "attention").glob("*.png"))) == 6
    # The mask is drawn on its own [0, 1] scale (U-GAT-IT's heatmaps are stretched per image instead).
    inputs = SortedImageFolder(tiny_dataset / "testA", 32)
    image = inputs[0][0].unsqueeze(0)
    expected = to_uint8_images(overlay(image, method.translate_with_attention(image, "a2b")[1], scale=False) * 2 - 1)[0]
    saved = np.array(Image.open(out / "attention" / (inputs.files[0].stem + ".png")))
    assert np.abs(saved.astype(int) - expected.astype(int)).max() <= 1
    assert json.loads((out / "translations.json").read_text())["count"] == 6


def test_reference_length_and_schedule():
    aggan = method_class("aggan")
    assert aggan.reference_iterations(aggan.Options(), (1067, 1334)) == 200 * 1334
    assert aggan.reference_iterations(aggan.Options(epochs=100), (1067, 1334)) == 100 * 1334   # its horse2zebra config
    method = create_method("aggan", train=TrainConfig(image_size=32, iterations=200_000))
    assert method.switch_step == 30_000                                        # epoch 30 of 200
    method.set_step(149_999)   # epoch 149 of 200 (of 1000 iterations): main.py's lr * (1 - (149 - 100) / 100)
    assert method.extra_stats()["lr"] == pytest.approx(2e-4 * 0.51)
