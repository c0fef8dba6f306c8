"""UNIT's and MUNIT's gen_XXXXXXXX.pt files: the authors' key layout built here from the facts of their
networks (module names and order as their code lays them out, not their code), loaded through
bench.cli.released, and checked against this independent statement of their networks at 256 px."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.cli.released import main as pretrained_main
from bench.core.released import ReleasedFileError, inspect_file, load_released

EPS = 1e-5


class AuthorsLayerNorm(nn.Module):
    """Per image: (x - mean) / (unbiased std + eps) over (C, H, W), then per-channel gamma and beta."""

    def __init__(self, channels: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.rand(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        flat = x.reshape(x.shape[0], -1)
        mean, std = flat.mean(1), flat.std(1)
        return (x - mean[:, None, None, None]) / (std[:, None, None, None] + EPS) * self.gamma[:, None, None] + self.beta[:, None, None]


class AuthorsAdaIN(nn.Module):
    """Instance normalisation (biased variance) with a scale and shift written in before each decode;
    two buffers that are saved but never read."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.weight = self.bias = None
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x):
        mean = x.mean(dim=(2, 3), keepdim=True)
        var = ((x - mean) ** 2).mean(dim=(2, 3), keepdim=True)
        return (x - mean) / torch.sqrt(var + EPS) * self.weight[:, :, None, None] + self.bias[:, :, None, None]


class AuthorsBlock(nn.Module):
    """pad -> conv -> norm -> activation, with those attribute names (keys ...conv.weight, ...norm.gamma)."""

    def __init__(self, cin, cout, kernel, stride, padding, norm, activation, pad_type):
        super().__init__()
        self.pad = nn.ReflectionPad2d(padding) if pad_type == "reflect" else nn.ZeroPad2d(padding)
        self.conv = nn.Conv2d(cin, cout, kernel, stride)
        self.norm = {"in": lambda: nn.InstanceNorm2d(cout), "ln": lambda: AuthorsLayerNorm(cout),
                     "adain": lambda: AuthorsAdaIN(cout), "none": lambda: None}[norm]()
        self.activation = {"relu": nn.ReLU(), "tanh": nn.Tanh(), "none": None}[activation]

    def forward(self, x):
        x = self.conv(self.pad(x))
        x = self.norm(x) if self.norm is not None else x
        return self.activation(x) if self.activation is not None else x


class AuthorsResBlock(nn.Module):
    def __init__(self, channels, norm, pad_type):
        super().__init__()
        self.model = nn.Sequential(AuthorsBlock(channels, channels, 3, 1, 1, norm, "relu", pad_type),
                                   AuthorsBlock(channels, channels, 3, 1, 1, norm, "none", pad_type))

    def forward(self, x):
        return x + self.model(x)


class AuthorsModel(nn.Module):
    """Layers held in a `model` Sequential, as each of the authors' modules holds them."""

    def __init__(self, *layers: nn.Module):
        super().__init__()
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


def authors_residual_blocks(n, channels, norm, pad_type) -> AuthorsModel:
    return AuthorsModel(*[AuthorsResBlock(channels, norm, pad_type) for _ in range(n)])


def authors_content_encoder(width, n_res, pad_type) -> AuthorsModel:
    """7x7 conv, two 4x4 stride-2 convs (IN, ReLU), residual blocks: `model` 0, 1, 2, 3."""
    return AuthorsModel(AuthorsBlock(3, width, 7, 1, 3, "in", "relu", pad_type),
                        AuthorsBlock(width, 2 * width, 4, 2, 1, "in", "relu", pad_type),
                        AuthorsBlock(2 * width, 4 * width, 4, 2, 1, "in", "relu", pad_type),
                        authors_residual_blocks(n_res, 4 * width, "in", pad_type))


def authors_decoder(width, n_res, residual_norm, pad_type) -> AuthorsModel:
    """Residual blocks, then nearest x2 and 5x5 conv with LN (twice), then 7x7 conv and tanh: `model` 0..5."""
    return AuthorsModel(authors_residual_blocks(n_res, 4 * width, residual_norm, pad_type), nn.Upsample(scale_factor=2),
                        AuthorsBlock(4 * width, 2 * width, 5, 1, 2, "ln", "relu", pad_type), nn.Upsample(scale_factor=2),
                        AuthorsBlock(2 * width, width, 5, 1, 2, "ln", "relu", pad_type),
                        AuthorsBlock(width, 3, 7, 1, 3, "none", "tanh", pad_type))


class AuthorsVAEGen(nn.Module):
    """UNIT's generator: enc and dec; translation at test time decodes the mean code."""

    def __init__(self, width=64, n_res=4, pad_type="reflect"):
        super().__init__()
        self.enc = authors_content_encoder(width, n_res, pad_type)
        self.dec = authors_decoder(width, n_res, "in", pad_type)


class AuthorsLinearBlock(nn.Module):
    def __init__(self, cin, cout, relu):
        super().__init__()
        self.fc = nn.Linear(cin, cout)
        self.activation = nn.ReLU() if relu else None

    def forward(self, x):
        x = self.fc(x)
        return self.activation(x) if self.activation is not None else x


class AuthorsAdaINGen(nn.Module):
    """MUNIT's generator: enc_style, enc_content, dec (AdaIN residual blocks), mlp."""

    def __init__(self, width=64, n_res=4, style_dim=8, mlp_dim=256, pad_type="reflect"):
        super().__init__()
        self.enc_style = AuthorsModel(
            AuthorsBlock(3, width, 7, 1, 3, "none", "relu", pad_type), AuthorsBlock(width, 2 * width, 4, 2, 1, "none", "relu", pad_type),
            AuthorsBlock(2 * width, 4 * width, 4, 2, 1, "none", "relu", pad_type),
            AuthorsBlock(4 * width, 4 * width, 4, 2, 1, "none", "relu", pad_type),
            AuthorsBlock(4 * width, 4 * width, 4, 2, 1, "none", "relu", pad_type), nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(4 * width, style_dim, 1))
        self.enc_content = authors_content_encoder(width, n_res, pad_type)
        self.dec = authors_decoder(width, n_res, "adain", pad_type)
        adain_outputs = sum(2 * m.channels for m in self.dec.modules() if isinstance(m, AuthorsAdaIN))
        self.mlp = AuthorsModel(AuthorsLinearBlock(style_dim, mlp_dim, True), AuthorsLinearBlock(mlp_dim, mlp_dim, True),
                                AuthorsLinearBlock(mlp_dim, adain_outputs, False))

    def decode(self, content, style):
        """Walk the AdaIN layers in module order: the next C values are its shift, the following C its scale."""
        params = self.mlp(style.reshape(style.shape[0], -1))
        for layer in (m for m in self.dec.modules() if isinstance(m, AuthorsAdaIN)):
            layer.bias, layer.weight = params[:, :layer.channels], params[:, layer.channels:2 * layer.channels]
            params = params[:, 2 * layer.channels:]
        return self.dec(content)


def randomised(generator: nn.Module, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, parameter in generator.named_parameters():
            if name.endswith("gamma"):
                parameter.uniform_(0.5, 1.5)
            else:
                parameter.normal_(0, 0.05 if parameter.dim() > 1 else 0.1)
    return generator.eval()


def save_gen_file(path, gen_a: nn.Module, gen_b: nn.Module, running_statistics: bool = False) -> None:
    """{"a": ..., "b": ...} as the authors' trainers save it; with running statistics of every instance
    norm added, as versions that built them with track_running_stats=True left them."""
    states = {}
    for domain, generator in (("a", gen_a), ("b", gen_b)):
        state = dict(generator.state_dict())
        if running_statistics:
            for name, module in generator.named_modules():
                if isinstance(module, nn.InstanceNorm2d):
                    channels = module.num_features
                    state.update({f"{name}.running_mean": torch.randn(channels), f"{name}.running_var": torch.rand(channels) + 0.5,
                                  f"{name}.num_batches_tracked": torch.tensor(1000)})
        states[domain] = state
    torch.save(states, path)


def test_the_statement_of_the_authors_networks_has_their_parameter_counts():
    count = lambda module: sum(p.numel() for p in module.parameters())   # noqa: E731
    assert count(AuthorsVAEGen()) == 11_140_483
    assert count(AuthorsAdaINGen()) == 15_026_187
    assert count(AuthorsAdaINGen().enc_style) == 2_764_936 and count(AuthorsAdaINGen().mlp) == 1_120_768


def test_a_unit_gen_file_translates_as_the_authors_network_at_256_px(tmp_path):
    gen_a, gen_b = randomised(AuthorsVAEGen(), 0), randomised(AuthorsVAEGen(), 1)
    save_gen_file(tmp_path / "gen_01000000.pt", gen_a, gen_b)
    method = load_released("unit", gen=tmp_path / "gen_01000000.pt")
    assert (method.options.width, method.options.n_res) == (64, 4)
    images = torch.rand(1, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        assert (method.translate(images, "a2b") - gen_b.dec(gen_a.enc(images))).abs().max() <= 1e-5   # the mean code
        assert (method.translate(images, "b2a") - gen_a.dec(gen_b.enc(images))).abs().max() <= 1e-5


def test_a_munit_gen_file_translates_as_the_authors_network_at_256_px(tmp_path):
    gen_a, gen_b = randomised(AuthorsAdaINGen(), 2), randomised(AuthorsAdaINGen(), 3)
    save_gen_file(tmp_path / "gen_01000000.pt", gen_a, gen_b)
    assert any(k.endswith("norm.running_mean") for k in torch.load(tmp_path / "gen_01000000.pt", weights_only=True)["a"])
    method = load_released("munit", gen=tmp_path / "gen_01000000.pt")
    assert (method.options.style_dim, method.options.mlp_dim) == (8, 256)
    images, codes = torch.rand(1, 3, 256, 256) * 2 - 1, torch.randn(1, 8)
    with torch.no_grad():
        expected_ab = gen_b.decode(gen_a.enc_content(images), codes)
        assert (method.translate_with_codes(images, "a2b", codes) - expected_ab).abs().max() <= 1e-5
        expected_ba = gen_a.decode(gen_b.enc_content(images), codes)
        assert (method.translate_with_codes(images, "b2a", codes) - expected_ba).abs().max() <= 1e-5
        exemplar = torch.rand(1, 3, 256, 256) * 2 - 1          # example-guided: the style of a domain-B image
        assert (method.encode_codes(exemplar, "b") - gen_b.enc_style(exemplar).flatten(1)).abs().max() <= 1e-5


@pytest.mark.parametrize("method_name", ["unit", "munit"])
def test_zero_padding_and_old_running_statistics(tmp_path, method_name, caplog):
    build = (lambda: AuthorsVAEGen(8, 2, "zero")) if method_name == "unit" else (lambda: AuthorsAdaINGen(8, 2, 4, 16, "zero"))
    gen_a, gen_b = randomised(build(), 4), randomised(build(), 5)
    save_gen_file(tmp_path / "gen.pt", gen_a, gen_b, running_statistics=True)
    images, codes = torch.rand(2, 3, 64, 64) * 2 - 1, torch.randn(2, 4)
    with caplog.at_level("INFO", logger="bench"):
        method = load_released(method_name, gen=tmp_path / "gen.pt", pad_type="zero", image_size=64)
    assert "running statistics; they are dropped" in caplog.text
    reflected = load_released(method_name, gen=tmp_path / "gen.pt", image_size=64)
    with torch.no_grad():
        if method_name == "unit":
            expected = gen_b.dec(gen_a.enc(images))
            translate = lambda m: m.translate(images, "a2b")                     # noqa: E731
        else:
            expected = gen_b.decode(gen_a.enc_content(images), codes)
            translate = lambda m: m.translate_with_codes(images, "a2b", codes)   # noqa: E731
        assert (translate(method) - expected).abs().max() <= 1e-5
        assert (translate(reflected) - expected).abs().max() > 1e-3            # the padding is not in the tensors


def test_gen_files_that_are_not_what_they_claim_are_refused(tmp_path):
    unit = tmp_path / "unit.pt"
    save_gen_file(unit, randomised(AuthorsVAEGen(8, 2), 0), randomised(AuthorsVAEGen(8, 2), 1))
    with pytest.raises(ReleasedFileError, match=r"not a MUNIT generator file .*found a UNIT generator file"):
        load_released("munit", gen=unit)
    torch.save({"a": {"cnns.0.0.conv.weight": torch.zeros(8, 3, 4, 4)}, "b": {}}, tmp_path / "dis_01000000.pt")
    with pytest.raises(ReleasedFileError, match="a discriminator file .*give the gen_XXXXXXXX.pt"):
        load_released("unit", gen=tmp_path / "dis_01000000.pt")
    torch.save({"gen": {}, "dis": {}}, tmp_path / "optimizer.pt")
    with pytest.raises(ReleasedFileError, match="not a UNIT generator file .*found keys dis, gen"):
        load_released("unit", gen=tmp_path / "optimizer.pt")

    def variant(name, change):
        state = {d: dict(s) for d, s in torch.load(unit, weights_only=True).items()}
        change(state)
        torch.save(state, tmp_path / name)
        return tmp_path / name

    grey = variant("grey.pt", lambda s: s["a"].update({"enc.model.0.conv.weight": torch.zeros(8, 1, 7, 7)}))
    with pytest.raises(ReleasedFileError, match=r"\['a'\]: the generator takes 1-channel images"):
        load_released("unit", gen=grey)
    deeper = variant("deeper.pt", lambda s: [s[d].update({"enc.model.3.conv.weight": torch.zeros(64, 32, 4, 4)}) for d in "ab"])
    with pytest.raises(ReleasedFileError, match="3 down-sampling convolutions"):
        load_released("unit", gen=deeper)
    wider = variant("wider.pt", lambda s: s["b"].update({"enc.model.0.conv.weight": torch.zeros(16, 3, 7, 7)}))
    with pytest.raises(ReleasedFileError, match="the two generators differ: a has width 8, 2 residual blocks, b has width 16"):
        load_released("unit", gen=wider)
    torn = variant("torn.pt", lambda s: s["a"].update({"dec.model.5.conv.weight": torch.zeros(3, 4, 7, 7)}))
    with pytest.raises(ReleasedFileError, match="does not fit a UNIT generator of width 8, 2 residual blocks .*size mismatch"):
        load_released("unit", gen=torn)
    extra = variant("extra.pt", lambda s: s["a"].update({"dec.model.6.conv.weight": torch.zeros(3, 3, 1, 1)}))
    with pytest.raises(ReleasedFileError, match=r"keys of no layer: a: dec.model.6.conv.weight"):
        load_released("unit", gen=extra)
    short = variant("short.pt", lambda s: s["b"].pop("dec.model.2.norm.gamma"))
    with pytest.raises(ReleasedFileError, match=r"missing \['decoder_b.3.1.gamma'\]"):
        load_released("unit", gen=short)
    with pytest.raises(ReleasedFileError, match="pad_type 'same': expected one of reflect, zero"):
        load_released("unit", gen=unit, pad_type="same")


def test_inspect_names_unit_and_munit_architectures(tmp_path, capsys):
    save_gen_file(tmp_path / "gen_00100000.pt", randomised(AuthorsAdaINGen(8, 3, 5, 12), 0), randomised(AuthorsAdaINGen(8, 3, 5, 12), 1))
    assert pretrained_main(["inspect", str(tmp_path / "gen_00100000.pt")]) == 0
    output = capsys.readouterr().out
    for line in ("method: munit", "width: 8", "n_res: 3", "style_dim: 5", "mlp_dim: 12", "running_statistics: False"):
        assert line in output
    save_gen_file(tmp_path / "unit.pt", AuthorsVAEGen(4, 1), AuthorsVAEGen(4, 1), running_statistics=True)
    assert inspect_file(tmp_path / "unit.pt") == {"method": "unit", "format": "UNIT gen_XXXXXXXX.pt (mingyuliutw/UNIT master)",
                                                  "width": 4, "n_res": 1, "running_statistics": True}
    torch.save({"a": {"cnns.0.0.conv.weight": torch.zeros(1)}, "b": {}}, tmp_path / "dis.pt")
    assert "discriminators" in inspect_file(tmp_path / "dis.pt")["format"]


def test_an_experiment_entry_scores_a_released_munit_with_its_test_options(tmp_path, write_yaml, tiny_dataset):
    import json

    from test_pretrained import released_experiment

    from bench.cli import main as bench_main
    from bench.data.pipeline import SortedImageFolder

    gen_a, gen_b = randomised(AuthorsAdaINGen(8, 1, 4, 16), 6), randomised(AuthorsAdaINGen(8, 1, 4, 16), 7)
    save_gen_file(tmp_path / "gen_00200000.pt", gen_a, gen_b)
    experiment = released_experiment(write_yaml, tmp_path, tiny_dataset, f"""\
          - {{name: munit, label: "MUNIT (authors' code)", pretrained: {{gen: {tmp_path}/gen_00200000.pt}},
             options: {{test_style: mean}}}}""")
    assert bench_main([str(experiment), "--no-progress"]) == 0
    [run] = list((tmp_path / "runs" / "tiny").glob("munit-released-*"))
    result = json.loads((run / "result.json").read_text())
    assert result["directions"]["a2b-mean"]["test_settings"] == {"style": "mean", "samples": 1, "seed": 0}
    translated = SortedImageFolder(run / "translations" / "a2b-mean", 32, "fail")[0][0]
    source = SortedImageFolder(tiny_dataset / "testA", 32, "fail")[0][0].unsqueeze(0)
    with torch.no_grad():
        expected = gen_b.decode(gen_a.enc_content(source), torch.zeros(1, 4))[0]   # the prior mean
    assert (translated - expected).abs().max() < 2 / 255 + 1e-6


def test_a_released_unit_or_munit_entry_is_checked_when_the_experiment_loads(write_yaml):
    from bench.core.schema import ConfigError
    from bench.harness.experiment_file import load_experiment

    for entry, message in [("{name: munit, pretrained: {gen: x.pt}, options: {width: 32}}",
                            "width: a released model's networks come from its files"),
                           ("{name: unit, pretrained: {gen: x.pt, pad_type: same}}", "'same' is not one of reflect, zero"),
                           ("{name: unit, pretrained: {pad_type: zero}}", "no file given; give gen"),
                           ("{name: drit, pretrained: {gen: x.pt}}", "released files of 'drit' cannot be loaded")]:
        path = write_yaml("p.yaml", f"name: p\ndatasets: [{{name: shapes}}]\nmethods: [{entry}]\n")
        with pytest.raises(ConfigError, match=message):
            load_experiment(path)


def test_the_padding_of_a_released_model_is_part_of_its_run(tmp_path, write_yaml):
    from bench.harness.experiment_file import load_experiment
    from bench.harness.plan import plan_experiment

    save_gen_file(tmp_path / "gen.pt", AuthorsVAEGen(4, 1), AuthorsVAEGen(4, 1))
    folders = []
    for pad_type in ("reflect", "zero"):
        path = write_yaml(f"{pad_type}.yaml", f"""\
            name: p
            output_dir: {tmp_path}/runs
            datasets: [{{name: shapes}}]
            methods: [{{name: unit, pretrained: {{gen: {tmp_path}/gen.pt, pad_type: {pad_type}}}}}]
            """)
        [training] = plan_experiment(load_experiment(path)).trainings
        assert training.identity["settings"] == {"pad_type": pad_type} and set(training.identity["released"]) == {"gen"}
        folders.append(training.run_dir)
    assert folders[0] != folders[1]
