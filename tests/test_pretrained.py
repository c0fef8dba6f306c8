"""The authors' released files: each layout built here from the facts of their architecture (not from
their code), loaded, and checked against an independent statement of their network at 256 px."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.cli.released import main as pretrained_main
from bench.core.released import ReleasedFileError, inspect_file, load_released
from safeio.files import UnreadableFileError


class AuthorsResnetBlock(nn.Module):
    """pytorch-CycleGAN-and-pix2pix's ResnetBlock without dropout: x + conv_block(x)."""

    def __init__(self, channels: int, running_statistics: bool):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels, track_running_stats=running_statistics),
            nn.ReLU(True), nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels, track_running_stats=running_statistics))

    def forward(self, x):
        return x + self.conv_block(x)


class AuthorsResnetGenerator(nn.Module):
    """The authors' resnet_Nblocks generator as the notes list it: `model` is one Sequential, so the
    keys are model.<index>.*; IN without affine, biased convs, transposed convs to upsample."""

    def __init__(self, width: int = 64, n_blocks: int = 9, running_statistics: bool = False):
        super().__init__()
        norm = lambda c: nn.InstanceNorm2d(c, track_running_stats=running_statistics)   # noqa: E731
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(3, width, 7), norm(width), nn.ReLU(True)]
        for k in (1, 2):
            layers += [nn.Conv2d(width * k, width * 2 * k, 3, stride=2, padding=1), norm(width * 2 * k), nn.ReLU(True)]
        layers += [AuthorsResnetBlock(width * 4, running_statistics) for _ in range(n_blocks)]
        for k in (4, 2):
            layers += [nn.ConvTranspose2d(width * k, width * k // 2, 3, stride=2, padding=1, output_padding=1),
                       norm(width * k // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, 3, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


def authors_generator(seed: int, running_statistics: bool = False, width: int = 64, n_blocks: int = 9) -> AuthorsResnetGenerator:
    torch.manual_seed(seed)
    generator = AuthorsResnetGenerator(width, n_blocks, running_statistics)
    with torch.no_grad():
        for parameter in generator.parameters():
            parameter.normal_(0, 0.02 if parameter.dim() > 1 else 0.1)
        if running_statistics:   # what a 2018 training leaves in the file
            for module in generator.modules():
                if isinstance(module, nn.InstanceNorm2d):
                    module.running_mean.normal_(0, 1)
                    module.running_var.uniform_(0.5, 2)
                    module.num_batches_tracked.fill_(1000)
    return generator.eval()


def per_image_reference(generator: AuthorsResnetGenerator) -> AuthorsResnetGenerator:
    """The same weights normalising each image by its own statistics (the authors' current code)."""
    reference = AuthorsResnetGenerator(generator.model[1].out_channels, sum(isinstance(m, AuthorsResnetBlock) for m in generator.model))
    reference.load_state_dict({k: v for k, v in generator.state_dict().items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))})
    return reference.eval()


@pytest.mark.parametrize("running_statistics", [False, True], ids=["current layout", "2018 layout with running statistics"])
def test_released_cyclegan_generators_translate_as_the_authors_network(tmp_path, running_statistics):
    g_a, g_b = authors_generator(0, running_statistics), authors_generator(1, running_statistics)
    torch.save(g_a.state_dict(), tmp_path / "latest_net_G_A.pth")
    torch.save(g_b.state_dict(), tmp_path / "latest_net_G_B.pth")
    if running_statistics:
        assert any(k.endswith("running_mean") for k in torch.load(tmp_path / "latest_net_G_A.pth", weights_only=True))
    method = load_released("cyclegan", a2b=tmp_path / "latest_net_G_A.pth", b2a=tmp_path / "latest_net_G_B.pth", device="cpu")
    images = torch.rand(2, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        for direction, generator in (("a2b", g_a), ("b2a", g_b)):
            expected = per_image_reference(generator)(images)
            assert (method.translate(images, direction) - expected).abs().max() <= 1e-5


def test_a_model_zoo_generator_translates_its_one_direction(tmp_path):
    generator = authors_generator(2, width=16, n_blocks=6)
    torch.save(generator.state_dict(), tmp_path / "latest_net_G.pth")
    method = load_released("cyclegan", b2a=tmp_path / "latest_net_G.pth")
    assert (method.options.width, method.options.n_blocks) == (16, 6)   # from the tensors
    images = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert (method.translate(images, "b2a") - generator(images)).abs().max() <= 1e-5
    with pytest.raises(ValueError, match="no generator was loaded for a2b"):
        method.translate(images, "a2b")


def test_released_ugatit_checkpoint_is_a_method_that_translates_as_the_official_networks(tmp_path):
    from test_ugatit_compat_translate import write_official_checkpoint

    official = write_official_checkpoint(tmp_path / "selfie2anime_params_latest.pt", 64, light=True)
    method = load_released("ugatit", checkpoint=tmp_path / "selfie2anime_params_latest.pt", image_size=64)
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert (method.translate(images, "a2b") - official["genA2B"](images)[0]).abs().max() <= 1e-5
        assert (method.translate(images, "b2a") - official["genB2A"](images)[0]).abs().max() <= 1e-5


class RunsCode:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_file_that_is_not_what_it_claims_is_refused(tmp_path, capsys):
    from test_ugatit_compat_translate import write_official_checkpoint

    write_official_checkpoint(tmp_path / "ugatit.pt", 32, light=False)
    with pytest.raises(ReleasedFileError, match=r"not a CycleGAN generator .*expected .*model.1.weight.*found keys disGA"):
        load_released("cyclegan", a2b=tmp_path / "ugatit.pt")
    torch.save(authors_generator(0, width=8, n_blocks=2).state_dict(), tmp_path / "G.pth")
    with pytest.raises(ReleasedFileError, match="not an official UGATIT-pytorch checkpoint"):
        load_released("ugatit", checkpoint=tmp_path / "G.pth")
    broken = authors_generator(0, width=8, n_blocks=2).state_dict()
    broken["model.26.weight"] = torch.zeros(3, 4, 7, 7)   # a layer of another width
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(ReleasedFileError, match="does not fit a CycleGAN generator of width 8 with 2 blocks"):
        load_released("cyclegan", a2b=tmp_path / "broken.pth")
    other = authors_generator(0, width=16, n_blocks=2).state_dict()
    torch.save(other, tmp_path / "other.pth")
    with pytest.raises(ReleasedFileError, match="differ in architecture"):
        load_released("cyclegan", a2b=tmp_path / "G.pth", b2a=tmp_path / "other.pth")
    torch.save({"model.1.weight": RunsCode()}, tmp_path / "evil.pth")   # would print when unpickled
    with pytest.raises(UnreadableFileError, match="evil.pth: refused"):
        load_released("cyclegan", a2b=tmp_path / "evil.pth")
    assert "this must never run" not in capsys.readouterr().out
    with pytest.raises(ReleasedFileError, match="cannot be loaded yet; supported: cyclegan, munit, ugatit, unit"):
        load_released("drit", gen=tmp_path / "G.pth")


def test_inspect_names_the_method_and_architecture(tmp_path, capsys):
    torch.save(authors_generator(0, running_statistics=True, width=8, n_blocks=3).state_dict(), tmp_path / "old.pth")
    assert pretrained_main(["inspect", str(tmp_path / "old.pth")]) == 0
    output = capsys.readouterr().out
    assert "method: cyclegan" in output and "width: 8" in output and "n_blocks: 3" in output and "running statistics" in output
    assert inspect_file(tmp_path / "old.pth")["running_statistics"] is True


def released_experiment(write_yaml, tmp_path, tiny_dataset, methods: str):
    """An experiment on the tiny dataset at 32 px, seeds 0 and 1, with these `methods:` entries."""
    return write_yaml("released.yaml", f"""\
        name: released
        output_dir: {tmp_path}/runs
        results_dir: {tmp_path}/results
        datasets: [{{name: tiny}}]
        methods:
{methods}
        data: {{root: {tiny_dataset.parent}}}
        train: {{image_size: 32, seeds: [0, 1], num_workers: 0}}
        eval: {{inception_weights: random}}
        tables: [table3]
        """)


def test_an_experiment_entry_scores_released_weights_without_training(tmp_path, write_yaml, tiny_dataset, capsys):
    import pandas as pd

    from bench.cli import main as bench_main

    generator_a, generator_b = authors_generator(3, width=8, n_blocks=2), authors_generator(4, width=8, n_blocks=2)
    torch.save(generator_a.state_dict(), tmp_path / "G_A.pth")
    torch.save(generator_b.state_dict(), tmp_path / "G_B.pth")
    experiment = released_experiment(write_yaml, tmp_path, tiny_dataset, f"""\
          - {{name: cyclegan, label: "CycleGAN (released)", pretrained: {{a2b: {tmp_path}/G_A.pth, b2a: {tmp_path}/G_B.pth}}}}
          - {{name: identity}}""")
    assert bench_main([str(experiment), "--no-progress"]) == 0
    [run] = list((tmp_path / "runs" / "tiny").glob("cyclegan-released-*"))      # one run: released weights have no seeds
    assert not (run / "checkpoints").exists() and not (run / "stats.jsonl").exists()
    from bench.data.pipeline import SortedImageFolder

    translated = SortedImageFolder(run / "translations" / "a2b", 32, "fail")[0][0]
    source = SortedImageFolder(tiny_dataset / "testA", 32, "fail")[0][0]
    with torch.no_grad():
        expected = generator_a(source.unsqueeze(0))[0]
    assert (translated - expected).abs().max() < 2 / 255 + 1e-6                   # the authors' network, through a PNG
    table = pd.read_csv(tmp_path / "results" / "released" / "table3.csv")
    row = table[table["model"] == "CycleGAN (released)"].iloc[0]
    assert "the authors' released weights, not trained here (a2b: G_A.pth" in row["notes"]
    capsys.readouterr()
    assert bench_main([str(experiment), "--status"]) == 0 and " scored " in capsys.readouterr().out
    # another file is another run; a missing one stops the command before anything runs
    torch.save(authors_generator(5, width=8, n_blocks=2).state_dict(), tmp_path / "G_A.pth")
    assert bench_main([str(experiment), "--dry-run"]) == 0 and "released" in capsys.readouterr().out
    (tmp_path / "G_B.pth").unlink()
    assert bench_main([str(experiment), "--no-progress"]) == 2
    assert "released weights of CycleGAN (released) (cyclegan), b2a:" in capsys.readouterr().err


def test_a_pretrained_entry_is_checked_when_the_experiment_loads(tmp_path, write_yaml):
    from bench.core.schema import ConfigError
    from bench.harness.experiment_file import load_experiment

    for entry, message in [("{name: aggan, pretrained: {gen: x.pt}}", "released files of 'aggan' cannot be loaded"),
                           ("{name: cyclegan, pretrained: {checkpoint: x.pt}}", "checkpoint not allowed for cyclegan; allowed: a2b, b2a"),
                           ("{name: ugatit, pretrained: [x.pt]}", "expected a mapping of checkpoint to file paths")]:
        path = write_yaml("p.yaml", f"name: p\ndatasets: [{{name: shapes}}]\nmethods: [{entry}]\n")
        with pytest.raises(ConfigError, match=message):
            load_experiment(path)


def test_the_translate_command_takes_a_released_file_reading_it_once(tmp_path, tiny_dataset, monkeypatch, capsys):
    import numpy as np
    from PIL import Image

    import baselines.cyclegan_released
    import bench.cli.translate
    from bench.cli.translate import main as translate_main
    from bench.data.reference_pipelines import cyclegan_test
    from safeio.images import load_rgb

    generator = authors_generator(3, width=8, n_blocks=2)
    torch.save(generator.state_dict(), tmp_path / "latest_net_G.pth")
    reads = []
    real_load = bench.cli.translate.load_torch_file
    for module in (bench.cli.translate, baselines.cyclegan_released):   # every reader of the file on this path
        monkeypatch.setattr(module, "load_torch_file", lambda path, what="": reads.append(path) or real_load(path, what))
    assert translate_main([str(tmp_path / "latest_net_G.pth"), str(tiny_dataset / "testB"), str(tmp_path / "out"),
                           "--direction", "b2a", "--no-progress"]) == 0
    assert len(reads) == 1   # one read of the file, whatever its format
    first = sorted((tiny_dataset / "testB").iterdir())[0]
    image = cyclegan_test(load_rgb(first), 256)   # the authors' generators run at 256 px, on their bicubic test resize
    with torch.no_grad():
        expected = ((generator(image[None]).clamp(-1, 1) + 1) * 127.5).round()[0].permute(1, 2, 0).numpy()
    written = np.asarray(Image.open(tmp_path / "out" / f"{first.stem}.png"), dtype=np.float32)
    assert np.abs(written - expected).max() <= 1   # the authors' network, rounded to 8 bits
    torch.save({"model.0.weight": torch.zeros(8, 3, 4, 4)}, tmp_path / "latest_net_D_A.pth")
    capsys.readouterr()
    assert translate_main([str(tmp_path / "latest_net_D_A.pth"), str(tiny_dataset / "testB"), str(tmp_path / "out2"),
                           "--no-progress"]) == 2
    assert "PatchGAN discriminator" in capsys.readouterr().err and not (tmp_path / "out2").exists()
