"""CycleGAN and UNIT: parameter counts at the reference sizes, training, the image pool, determinism
at test time, state round trips; exact resumption of all four baselines (the rest of MUNIT's and
DRIT's tests: test_multimodal_baselines.py)."""

from __future__ import annotations

import io

import pytest
import torch
from conftest import interrupt_at

from baselines.cyclegan import ImagePool
from baselines.unit import discriminator_scales
from bench.core.config import TrainConfig
from bench.core.methods import create_method, method_class
from bench.core.schema import ConfigError
from bench.core.train import train
from bench.data.pipeline import StreamSettings, UnpairedTrainingSet

CPU = torch.device("cpu")
TINY = {"cyclegan": dict(width=4, n_blocks=2, pool_size=3), "unit": dict(width=4, n_res=1),
        "munit": dict(width=4, n_res=1, mlp_dim=8), "drit": dict(width=4, n_res=1),
        "aggan": dict(width=4, n_blocks=1, dis_width=4, pool_size=2, epochs=9, switch_epoch=4),   # switch at iteration 4
        "cartoongan": dict(width=4, n_blocks=1, dis_width=4, pool_size=2, vgg_weights="random", init_epochs=4,
                           epochs=5)}   # adversarial from iteration 4


def count(*modules) -> int:
    return sum(p.numel() for module in modules for p in module.parameters())


def test_parameter_counts_at_the_reference_sizes():
    cyclegan = create_method("cyclegan", train=TrainConfig(image_size=256, iterations=1))
    unit = create_method("unit", train=TrainConfig(image_size=256, iterations=1))
    assert count(cyclegan.gen_a2b) == 11_378_179 and count(cyclegan.dis_a) == 2_764_737
    assert count(unit.encoder_a, unit.decoder_a) == 11_140_483 and count(unit.dis_a) == 8_271_171


def batch(seed: int, size: int = 32, n: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("name", ["cyclegan", "unit", "munit", "drit", "aggan"])
def test_trains_with_finite_losses_and_moving_weights(name):
    # Three iterations: DRIT's third is its first full update; AGGAN's attention still learns (switch at 4).
    n = 2 if name == "drit" else 1
    torch.manual_seed(0)
    method = create_method(name, train=TrainConfig(image_size=32, iterations=10, batch_size=n), **TINY[name])
    before = {k: v.clone() for k, v in method.networks.state_dict().items()}
    for step in range(3):
        method.set_step(step)
        losses = method.train_step(batch(step, n=n), batch(10 + step, n=n))
    assert all(torch.isfinite(torch.as_tensor(v)) for v in losses.values()), losses
    after = method.networks.state_dict()
    moved = [k for k in before if before[k].is_floating_point() and not torch.equal(before[k], after[k])]
    parameters = {k for k, _ in method.networks.named_parameters()}
    assert parameters <= set(moved)


def test_image_pool_fills_then_swaps_about_half_the_time():
    torch.manual_seed(0)
    pool = ImagePool(3)
    first = [pool.query(torch.full((1, 1, 2, 2), float(i))) for i in range(3)]
    assert [float(x.flatten()[0]) for x in first] == [0.0, 1.0, 2.0] and pool.count == 3   # filling: returned as given
    returned_old = 0
    for i in range(3, 203):
        out = float(pool.query(torch.full((1, 1, 2, 2), float(i))).flatten()[0])
        returned_old += out != float(i)
        assert out <= i
    assert 70 < returned_old < 130                                           # p = 1/2 of an older image
    assert sorted(float(x.flatten()[0]) for x in pool.images) != [0.0, 1.0, 2.0]   # the new ones took their places
    assert torch.equal(ImagePool(0).query(torch.ones(2, 1, 2, 2)), torch.ones(2, 1, 2, 2))
    restored = ImagePool(3)
    restored.load_state_dict(pool.state_dict(), CPU)
    assert torch.equal(restored.images, pool.images) and restored.count == 3


def test_unit_translation_is_deterministic_and_cyclegan_too():
    for name in ("unit", "cyclegan"):
        method = create_method(name, train=TrainConfig(image_size=32, iterations=1), **TINY[name])
        images = batch(3)
        torch.manual_seed(1)
        first = method.translate(images, "a2b")
        torch.manual_seed(2)
        assert torch.equal(method.translate(images, "a2b"), first)   # no noise at test time
        assert first.shape == images.shape and first.abs().max() <= 1


@pytest.mark.parametrize("name", ["cyclegan", "unit"])
def test_state_round_trips_through_weights_only_load(name):
    torch.manual_seed(0)
    method = create_method(name, train=TrainConfig(image_size=32, iterations=10), **TINY[name])
    method.train_step(batch(1), batch(2))
    buffer = io.BytesIO()
    torch.save(method.state_dict(), buffer)
    buffer.seek(0)
    restored = create_method(name, train=TrainConfig(image_size=32, iterations=10), **TINY[name])
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(restored.translate(batch(3), "b2a"), method.translate(batch(3), "b2a"))
    torch.manual_seed(5)
    expected = method.train_step(batch(4), batch(5))
    torch.manual_seed(5)
    assert {k: float(v) for k, v in restored.train_step(batch(4), batch(5)).items()} == {k: float(v) for k, v in expected.items()}


@pytest.mark.parametrize("name", ["cyclegan", "unit", "munit", "drit", "aggan", "cartoongan"])
def test_interrupted_training_resumes_exactly(name, tiny_dataset, tmp_path):
    # DRIT (batch 2) makes full updates at iterations 3, 6 and 9, D^c-only ones between: the cut at 5
    # resumes from the checkpoint at 3, and iteration 9 shows whether the update at 6 was the same.
    # AGGAN and CartoonGAN switch phase at iteration 4: the resumed run crosses the switch.
    config = TrainConfig(iterations=9, checkpoint_every=3, log_every=1, image_size=32, num_workers=0,
                         batch_size=2 if name == "drit" else 1)
    settings = StreamSettings(32, 36)
    dataset = UnpairedTrainingSet(tiny_dataset, settings)

    def fresh():
        torch.manual_seed(0)
        method = create_method(name, train=config, **TINY[name])
        method.prepare_training(tiny_dataset, settings)   # CartoonGAN's edge-smoothed stream; nothing for the others
        return method

    train(fresh(), dataset, tmp_path / "full", config, {}, CPU, progress=False)
    crashing = interrupt_at(fresh(), 5)
    with pytest.raises(KeyboardInterrupt):
        train(crashing, dataset, tmp_path / "cut", config, {}, CPU, progress=False)
    torch.manual_seed(99)
    train(fresh(), dataset, tmp_path / "cut", config, {}, CPU, progress=False)

    def losses(run):
        import json
        return [{k: v for k, v in json.loads(line).items() if k != "seconds_per_iteration"}
                for line in (run / "stats.jsonl").read_text().splitlines()]

    assert losses(tmp_path / "cut") == losses(tmp_path / "full")


def test_reference_lengths_schedules_and_settings():
    cyclegan, unit = method_class("cyclegan"), method_class("unit")
    assert cyclegan.reference_iterations(cyclegan.Options(), (1067, 1334)) == 200 * 1334   # 200 epochs of max(|A|, |B|)
    assert unit.reference_iterations(unit.Options(), None) == 1_000_000
    method = create_method("unit", train=TrainConfig(image_size=32, iterations=300_000))
    method.set_step(199_999)
    assert method.extra_stats()["lr"] == pytest.approx(1e-4 * 0.25)                      # x0.5 every 100k iterations
    method = create_method("cyclegan", train=TrainConfig(image_size=32, iterations=100))
    method.train_images = (8, 10)    # epochs of 10: 10 epochs, constant to 5, then 1 - (k + 1 - 5) / 6 per epoch
    method.set_step(74)
    assert method.extra_stats()["lr"] == pytest.approx(2e-4 * 0.5)
    method.set_step(79)
    assert method.extra_stats()["lr"] == pytest.approx(2e-4 * 0.5)
    assert [discriminator_scales(s, 3) for s in (256, 64, 32, 16)] == [3, 3, 2, 1]
    with pytest.raises(ConfigError, match="at least 32"):
        create_method("cyclegan", train=TrainConfig(image_size=16, iterations=1))
    with pytest.raises(ConfigError, match="no reference training length without its dataset"):
        create_method("cyclegan")
