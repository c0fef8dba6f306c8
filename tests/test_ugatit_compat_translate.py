"""Official-checkpoint import, continuing from it, and translate_folder on odd inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from bench.core.config import TrainConfig
from bench.core.methods import create_method
from bench.core.train import checkpoint_path, train
from bench.data.pipeline import StreamSettings, UnpairedTrainingSet
from ugatit.compat import infer_architecture, load_official
from ugatit.compat import main as compat_main
from ugatit.networks import discriminator_downsamplings
from ugatit.official_reference import official_networks
from ugatit.translate import main as translate_main
from ugatit.translate import translate_folder


def write_official_checkpoint(path, size: int, light: bool, width: int = 4, n_res: int = 2, seed: int = 0):
    """Random official-layout networks, with perturbed rho/gamma/beta and run-in spectral-norm vectors, saved
    as the official code saves them. Returns the networks (eval mode) for reference outputs."""
    torch.manual_seed(seed)
    nets = official_networks(ngf=width, n_blocks=n_res, img_size=size, light=light,
                             global_layers=discriminator_downsamplings(size, 5) + 2,
                             local_layers=discriminator_downsamplings(size, 3) + 2)
    with torch.no_grad():
        for network in nets.values():
            for name, parameter in network.named_parameters():
                if name.endswith("rho"):
                    parameter.uniform_()
                elif name.endswith(("gamma", "beta")) and parameter.dim() == 4:
                    parameter.normal_(1.0 if name.endswith("gamma") else 0.0, 0.3)
            network.train()
            network(torch.rand(2, 3, size, size) * 2 - 1)   # moves the spectral-norm u, v away from their start
            network.eval()
    torch.save({name: network.state_dict() for name, network in nets.items()}, path)
    return nets


@pytest.mark.parametrize("size, light", [(64, True), (32, False), (128, True)])
def test_official_checkpoint_gives_the_official_outputs(tmp_path, size, light):
    path = tmp_path / "selfie2anime_params_0001000.pt"
    official = write_official_checkpoint(path, size, light)
    ours = load_official(path, image_size=size)
    assert (ours.architecture.width, ours.architecture.n_res, ours.architecture.light) == (4, 2, light)
    assert ours.architecture.image_size == size and ours.architecture.image_size_from_tensors == (not light)
    images = torch.rand(3, 3, size, size) * 2 - 1
    with torch.no_grad():
        for name in ("genA2B", "genB2A", "disGA", "disGB", "disLA", "disLB"):
            expected = official[name](images)
            actual = getattr(ours, name)(images)
            for a, e in zip(actual, expected):
                assert a.shape == e.shape
                assert (a - e).abs().max() <= 1e-5, name


def test_full_model_image_size_comes_from_the_tensors(tmp_path):
    path = tmp_path / "x_params_latest.pt"
    write_official_checkpoint(path, 32, light=False)
    checkpoint = torch.load(path, weights_only=True)
    assert infer_architecture(checkpoint).image_size == 32
    with pytest.raises(ValueError, match="fixes the image size at 32"):
        infer_architecture(checkpoint, image_size=64)


def test_not_an_official_checkpoint(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"model": {}}, path)
    with pytest.raises(ValueError, match="not an official UGATIT-pytorch checkpoint"):
        load_official(path)


def test_inspect_prints_the_options_to_continue_training(tmp_path, capsys):
    path = tmp_path / "h2z_params_latest.pt"
    write_official_checkpoint(path, 64, light=True)
    assert compat_main(["inspect", str(path), "--image-size", "64"]) == 0
    output = capsys.readouterr().out
    assert "light: True" in output and "width: 4" in output and "preset: official_pytorch" in output
    assert "init_from:" in output


def test_training_continues_from_an_official_checkpoint(tmp_path, tiny_dataset):
    path = tmp_path / "x_params_latest.pt"
    official = write_official_checkpoint(path, 16, light=True, width=2, n_res=1)
    config = TrainConfig(image_size=16, iterations=2, checkpoint_every=2, num_workers=0)
    method = create_method("ugatit", train=config, width=2, n_res=1, light=True, preset="official_pytorch", init_from=str(path))
    images = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(method.translate(images, "a2b"), official["genA2B"](images)[0], atol=1e-5)
    dataset = UnpairedTrainingSet(tiny_dataset, StreamSettings(16, 18))
    train(method, dataset, tmp_path / "run", config, {}, torch.device("cpu"), progress=False)
    assert checkpoint_path(tmp_path / "run").exists()
    with pytest.raises(ValueError, match="do not fit these options"):
        create_method("ugatit", train=config, width=4, n_res=1, light=True, preset="official_pytorch", init_from=str(path))


def odd_inputs(folder):
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 30), dtype=np.uint8), "L").save(folder / "gray.png")
    Image.fromarray(rng.integers(0, 255, (20, 20, 4), dtype=np.uint8), "RGBA").save(folder / "alpha.png")
    Image.fromarray(rng.integers(0, 255, (100, 70, 3), dtype=np.uint8)).save(folder / "large.jpg")
    Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).convert("P").save(folder / "tiny_palette.gif")


def harness_checkpoint(tmp_path, tiny_dataset):
    config = TrainConfig(image_size=16, iterations=2, checkpoint_every=2, num_workers=0)
    torch.manual_seed(0)
    method = create_method("ugatit", train=config, width=2, n_res=1, light=True)
    identity = {"options": {"width": 2, "n_res": 1, "light": True}, "train": {"image_size": 16}}
    train(method, UnpairedTrainingSet(tiny_dataset, StreamSettings(16, 18)), tmp_path / "run", config, identity,
          torch.device("cpu"), progress=False)
    return checkpoint_path(tmp_path / "run"), method


@pytest.mark.parametrize("direction", ["a2b", "b2a"])
def test_translate_folder_on_odd_inputs_with_heatmaps(tmp_path, tiny_dataset, direction):
    checkpoint, method = harness_checkpoint(tmp_path, tiny_dataset)
    odd_inputs(tmp_path / "in")
    output = translate_folder(checkpoint, tmp_path / "in", tmp_path / "out", direction, heatmaps=True, batch_size=3,
                              device="cpu", progress=False)
    names = sorted(p.name for p in output.glob("*.png"))
    assert names == ["alpha.png", "gray.png", "large.png", "tiny_palette.png"]
    assert sorted(p.name for p in (output / "attention").glob("*.png")) == names
    for name in names:
        with Image.open(output / name) as image:
            assert image.size == (16, 16) and image.mode == "RGB"
    # The file equals what the method itself gives for that input.
    from bench.data.pipeline import resize_for_test
    from safeio.images import load_rgb
    expected = method.translate(resize_for_test(load_rgb(tmp_path / "in" / "large.jpg"), 16)[None], direction)
    written = torch.from_numpy(np.array(Image.open(output / "large.png"))).permute(2, 0, 1).float() / 127.5 - 1
    assert (written - expected[0]).abs().max() <= 1 / 127.5 + 1e-6


def test_translate_command_line_with_an_official_checkpoint(tmp_path, capsys):
    path = tmp_path / "x_params_latest.pt"
    write_official_checkpoint(path, 32, light=False, width=2, n_res=1)
    odd_inputs(tmp_path / "in")
    assert translate_main([str(path), str(tmp_path / "in"), str(tmp_path / "out"), "--direction", "b2a", "--no-progress"]) == 0
    assert len(list((tmp_path / "out").glob("*.png"))) == 4
    assert translate_main([str(path), str(tmp_path / "missing"), str(tmp_path / "out2")]) == 2
    assert "image folder not found" in capsys.readouterr().err


@pytest.mark.slow
def test_official_checkpoint_at_full_scale(tmp_path):
    """Width 64, 4 + 4 residual blocks, 256 px, light: the official outputs within 1e-5 (about 10 s)."""
    path = tmp_path / "full_scale_params_latest.pt"
    official = write_official_checkpoint(path, 256, light=True, width=64, n_res=4)
    ours = load_official(path)
    images = torch.rand(2, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        for name in ("genA2B", "disGA", "disLA"):
            for actual, expected in zip(getattr(ours, name)(images), official[name](images)):
                assert (actual - expected).abs().max() <= 1e-5, name
