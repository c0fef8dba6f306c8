"""CartoonGAN: parameter counts at the reference sizes, the content-only initialisation then adversarial
training, edge smoothing and its cache, the VGG19 weights and how they are labelled, one direction only
(exact resumption across the phase switch: test_baselines.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from baselines import edge_smoothing
from baselines.edge_smoothing import smooth_edges, smoothed_folder
from baselines.vgg import VGGWeights, VGGWeightsError, resolve_vgg_weights
from bench.core.config import TrainConfig
from bench.core.gan import lsgan
from bench.core.methods import create_method, method_class
from bench.data.pipeline import StreamSettings

TINY = dict(width=4, n_blocks=1, dis_width=4, pool_size=2, vgg_weights="random")


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def batch(seed: int, n: int = 2, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_parameter_counts_at_the_reference_sizes():
    method = create_method("cartoongan", train=TrainConfig(image_size=256, iterations=1), vgg_weights="random")
    assert count(method.generator) == 11_129_667 and count(method.discriminator) == 1_129_665


def test_content_only_initialisation_then_adversarial_training(tiny_dataset):
    torch.manual_seed(0)
    # 8 iterations, the initialisation 20 of 20 + 20 epochs: the first 4 iterations.
    method = create_method("cartoongan", train=TrainConfig(image_size=32, iterations=8, batch_size=2),
                           init_epochs=20, epochs=20, **TINY)
    method.prepare_training(tiny_dataset, StreamSettings(32, 36))
    assert method.init_steps == 4
    before = {k: v.clone() for k, v in method.networks.state_dict().items()}
    for step in range(4):
        method.set_step(step)
        assert method.initialising and method.g_optim.param_groups[0]["lr"] <= 2e-4
        losses = method.train_step(batch(step), batch(10 + step))
        assert set(losses) == {"loss_G", "G_content"}
    mid = {k: v.clone() for k, v in method.networks.state_dict().items()}
    assert all(torch.equal(before[k], mid[k]) for k in before if k.startswith("discriminator."))   # D untouched
    assert not torch.equal(before["generator.0.weight"], mid["generator.0.weight"])
    # The discriminator's update sees [cartoons, edge-smoothed cartoons of this step, pooled fakes] and
    # calls the last two fake.
    calls: list[tuple[torch.Tensor, torch.Tensor]] = []
    hook = method.discriminator.register_forward_hook(lambda m, inputs, output: calls.append((inputs[0].detach(), output.detach())))
    method.set_step(4)
    assert not method.initialising and method.g_optim.param_groups[0]["lr"] == pytest.approx(1e-5)
    losses = method.train_step(batch(4), batch(14))
    assert {"loss_D", "G_adversarial", "G_content"} <= set(losses)
    assert all(torch.isfinite(torch.as_tensor(v)) for v in losses.values())
    after = method.networks.state_dict()
    parameters = {k for k, _ in method.networks.named_parameters()}
    d_conv_biases = {f"discriminator.{name}.bias" for name, layer in method.discriminator.named_children()
                     if isinstance(layer, torch.nn.Conv2d)}
    # Every parameter moved, but the discriminator's conv biases: the generator's update zeroed them (util.BiasZero).
    assert {k for k in parameters if torch.equal(mid[k], after[k])} == d_conv_biases
    assert all(not after[k].any() for k in d_conv_biases)
    seen, logits = calls[0]
    assert seen.shape[0] == 6 and torch.equal(seen[:2], batch(14))
    assert torch.equal(seen[2:4], torch.stack([method.edge_smoothed[8 + i] for i in range(2)]))   # step 4, batch 2
    expected = lsgan(logits[:2], 1.0) + lsgan(logits[2:4], 0.0) + lsgan(logits[4:], 0.0)
    assert float(losses["loss_D"]) == pytest.approx(float(expected), rel=1e-6)
    calls.clear()
    method.set_step(5)
    method.train_step(batch(5), batch(15))
    assert torch.equal(calls[0][0][2:4], torch.stack([method.edge_smoothed[10 + i] for i in range(2)]))
    hook.remove()


def test_one_direction_only():
    assert method_class("cartoongan").directions == ("a2b",)
    method = create_method("cartoongan", train=TrainConfig(image_size=32, iterations=2), **TINY)
    assert method.translate(batch(1), "a2b").shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="a2b"):
        method.translate(batch(1), "b2a")
    with pytest.raises(RuntimeError, match="prepare_training"):
        method.set_step(1)
        method.train_step(batch(1), batch(2))


def square(size: int = 32) -> np.ndarray:
    """A bright square on a dark background with faint texture (too faint for Canny at 100/200)."""
    image = np.full((size, size, 3), 30, np.uint8) + np.random.default_rng(0).integers(0, 6, (size, size, 3), dtype=np.uint8)
    image[8:24, 8:24] = (220, 200, 40)
    return image


def test_edges_are_blurred_and_flat_regions_kept():
    image = square()
    smoothed = smooth_edges(image)
    changed = np.any(smoothed != image, axis=2)
    assert changed[8, 8:24].any() and changed[23, 8:24].any()        # along the square's border
    assert not changed[0:3].any() and not changed[14:18, 14:18].any()  # far from any edge


def test_smoothed_images_are_cached_by_content_and_written_atomically(tmp_path, monkeypatch):
    source = tmp_path / "data" / "trainB"
    source.mkdir(parents=True)
    for i in range(3):
        Image.fromarray(np.roll(square(), i, axis=1)).save(source / f"c{i}.png")
    first = smoothed_folder(source)
    assert sorted(p.name for p in first.glob("*.png")) == ["c0.png", "c1.png", "c2.png"]
    stamp = (first / "c0.png").stat().st_mtime_ns
    assert smoothed_folder(source) == first and (first / "c0.png").stat().st_mtime_ns == stamp   # a hit
    Image.fromarray(np.roll(square(), 5, axis=0)).save(source / "c1.png")
    second = smoothed_folder(source)
    assert second != first and second.is_dir()                                               # a miss
    # A failure half-way leaves no folder under the final name: the next call makes it whole.
    Image.fromarray(square()).save(source / "c3.png")
    calls = {"n": 0}
    real = edge_smoothing.smooth_edges

    def failing(rgb):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real(rgb)

    monkeypatch.setattr(edge_smoothing, "smooth_edges", failing)
    with pytest.raises(OSError):
        smoothed_folder(source)
    key_folder = source.parent / ".edge_smoothed" / f"trainB-{edge_smoothing.cache_key(sorted(source.glob('*.png')))}"
    assert not key_folder.exists()
    monkeypatch.setattr(edge_smoothing, "smooth_edges", real)
    assert smoothed_folder(source) == key_folder and len(list(key_folder.glob("*.png"))) == 4
    assert [p.name for p in (source.parent / ".edge_smoothed").iterdir() if "partial" in p.name] == []


def test_vgg_weights_are_identified_and_labelled(tmp_path, monkeypatch):
    from torchvision.models import vgg19

    cartoongan = method_class("cartoongan")
    options = cartoongan.Options(vgg_weights="random")
    assert cartoongan.identity_options(options, TrainConfig())["vgg_weights"] == "random-seed0"
    assert any("RANDOM stand-in VGG19" in note for note in cartoongan.deviations(options, TrainConfig()))
    monkeypatch.delenv("UGATIT_BENCH_VGG19", raising=False)
    assert cartoongan.identity_options(cartoongan.Options(), TrainConfig())["vgg_weights"] == "torchvision-imagenet"
    assert any("torchvision's ImageNet VGG19" in n for n in cartoongan.deviations(cartoongan.Options(), TrainConfig()))

    path = tmp_path / "my-vgg19.pth"
    torch.manual_seed(3)
    torch.save(vgg19().state_dict(), path)
    monkeypatch.setenv("UGATIT_BENCH_VGG19", str(path))
    weights = resolve_vgg_weights(None)
    assert weights.path == path and not weights.official and "NON-STANDARD" in weights.label
    identity = cartoongan.identity_options(cartoongan.Options(), TrainConfig())["vgg_weights"]
    assert identity == f"sha256:{weights.identity}"
    method = create_method("cartoongan", train=TrainConfig(image_size=32, iterations=2), width=4, n_blocks=1)
    assert torch.equal(method.vgg.features[0].weight, torch.load(path, weights_only=True)["features.0.weight"])
    assert VGGWeights(path, "dcbb9e9d" + "0" * 56).official

    torch.save({"not": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(VGGWeightsError, match="not a torchvision VGG19"):
        create_method("cartoongan", train=TrainConfig(image_size=32, iterations=2), vgg_weights=str(tmp_path / "other.pth"))
    with pytest.raises(VGGWeightsError, match="not found"):
        resolve_vgg_weights(str(tmp_path / "missing.pth"))


def test_runs_one_way_in_an_experiment(tiny_dataset, write_yaml, tmp_path):
    from bench.cli import main
    from bench.core.schema import ConfigError
    from bench.harness.experiment_file import load_experiment

    text = f"""
        name: cartoon
        datasets: [{{name: tiny}}]
        methods: [{{name: cartoongan, options: {{width: 4, n_blocks: 1, dis_width: 4, vgg_weights: random}}}}]
        output_dir: {tmp_path / 'runs'}
        results_dir: {tmp_path / 'results'}
        data: {{root: {tmp_path / 'data'}}}
        train: {{iterations: 6, image_size: 16, checkpoint_every: 3, log_every: 1, num_workers: 0}}
        eval: {{inception_weights: random, max_block_size: 3}}
        tables: [table3]
        """
    with pytest.raises(ConfigError, match=r"translates a2b only.*directions: \[a2b\]"):
        load_experiment(write_yaml("both.yaml", text))
    path = write_yaml("one.yaml", text.replace("{name: cartoongan,", "{name: cartoongan, directions: [a2b],"))
    assert main([str(path), "--no-progress"]) == 0
    assert len(list((tiny_dataset / ".edge_smoothed").glob("trainB-*/*.png"))) == 12     # made by the runner
    table = (tmp_path / "results" / "cartoon" / "table3.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| CartoonGAN"))
    assert "±" in row and "tiny_a2b" in table and "tiny_b2a" not in table                # b2a never evaluated
