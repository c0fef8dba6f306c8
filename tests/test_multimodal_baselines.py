"""MUNIT and DRIT: parameter counts at the reference sizes, DRIT's update pattern, state round trips,
AdaIN's parameter split, and reproducible multimodal translation at test time (seeded codes independent
of batch size, the prior mean, exemplars, K samples per image) through the runner. Training with
moving weights and exact resumption: test_baselines.py."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas
import pytest
import torch
from PIL import Image

from baselines.drit_networks import content_down_layers
from baselines.munit import AdaINDecoder, split_adain_parameters
from bench.cli import main
from bench.cli.translate import main as translate_main
from bench.core.config import TrainConfig
from bench.core.methods import create_method, method_class
from bench.core.multimodal import evaluation_key, exemplar_index, prior_code
from bench.core.schema import ConfigError
from bench.core.train import train
from bench.core.translate import to_uint8_images, translate_with_method
from bench.data.pipeline import SortedImageFolder, StreamSettings, UnpairedTrainingSet

CPU = torch.device("cpu")
TINY = {"munit": dict(width=4, n_res=1, mlp_dim=8), "drit": dict(width=4, n_res=1)}
BATCH = {"munit": 1, "drit": 2}


def count(*modules) -> int:
    return sum(p.numel() for module in modules for p in module.parameters())


def batch(seed: int, n: int = 1, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def tiny(name: str, iterations: int = 10, **options):
    return create_method(name, train=TrainConfig(image_size=32, iterations=iterations, batch_size=BATCH[name]),
                         **{**TINY[name], **options})


def test_parameter_counts_at_the_reference_sizes():
    munit = create_method("munit", train=TrainConfig(image_size=256, iterations=1))
    assert count(munit.content_a, munit.style_a, munit.mlp_a, munit.decoder_a) == 15_026_187
    assert count(munit.style_a) == 2_764_936 and count(munit.mlp_a) == 1_120_768 and count(munit.dis_a) == 8_271_171
    drit = create_method("drit", train=TrainConfig(image_size=256, iterations=1))
    generator_side = (drit.content_a, drit.content_b, drit.content_shared, drit.attribute_a, drit.attribute_b,
                      drit.generator_shared, drit.generator_a, drit.generator_b)
    assert count(*generator_side) == 21_270_982
    assert count(drit.content_a, drit.content_b, drit.content_shared) == 9_018_112
    assert count(drit.attribute_a, drit.attribute_b) == 2_688_160
    assert count(drit.dis_a) == 8_271_171 and count(drit.dis_content) == 10_683_649


def test_adain_parameters_are_split_per_layer_shift_then_scale():
    channels, layers = 3, 4
    flat = torch.arange(layers * 2 * channels, dtype=torch.float32).unsqueeze(0)
    split = split_adain_parameters(flat, layers, channels)
    assert [beta.tolist() for beta, _ in split] == [[[0, 1, 2]], [[6, 7, 8]], [[12, 13, 14]], [[18, 19, 20]]]
    assert [gamma.tolist() for _, gamma in split] == [[[3, 4, 5]], [[9, 10, 11]], [[15, 16, 17]], [[21, 22, 23]]]
    # In the decoder: with every scale 0, a block's output is x + the shift of its second AdaIN layer.
    decoder = AdaINDecoder(width=1, n_res=2)   # 4 channels, 4 AdaIN layers
    shifts = torch.tensor([[10.0, 11, 12, 13], [20, 21, 22, 23], [30, 31, 32, 33], [40, 41, 42, 43]])
    mlp_output = torch.cat([torch.cat([shift, torch.zeros(4)]) for shift in shifts]).unsqueeze(0)
    x = torch.randn(1, 4, 5, 5)
    params = split_adain_parameters(mlp_output, 4, 4)
    first = decoder.blocks[0](x, params[0:2])
    assert torch.allclose(first, x + shifts[1].view(1, 4, 1, 1))
    assert torch.allclose(decoder.blocks[1](first, params[2:4]), first + shifts[3].view(1, 4, 1, 1))


def test_drit_updates_only_the_content_discriminator_between_full_updates():
    torch.manual_seed(0)
    method = tiny("drit")
    before = {k: v.clone() for k, v in method.networks.state_dict().items()}
    for step in range(2):
        method.set_step(step)
        assert set(method.train_step(batch(step, 2), batch(5 + step, 2))) == {"loss_D_content"}
    moved = {k for k, v in method.networks.state_dict().items() if not torch.equal(before[k], v)}
    assert moved and all(k.startswith("dis_content.") for k in moved)


def test_drit_attribute_encoders_take_no_gradient_from_the_prior_attribute_terms():
    # Every term of the first update off and no weight decay: only latent regression (and the
    # prior-attribute adversarial terms) remain; they must move the content encoders and generators
    # but leave the attribute encoders exactly as they were.
    off = dict(adversarial_weight=0.0, content_adversarial_weight=0.0, cross_cycle_weight=0.0, self_recon_weight=0.0,
               kl_weight=0.0, content_l2_weight=0.0, weight_decay=0.0, d_iter=1)
    torch.manual_seed(0)
    method = tiny("drit", **off)
    before = {k: v.clone() for k, v in method.networks.state_dict().items()}
    method.set_step(0)
    losses = method.train_step(batch(1, 2), batch(2, 2))
    assert float(losses["G_latent"]) > 0
    after = method.networks.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in after if k.startswith("attribute_"))
    assert not torch.equal(before["generator_a.out.weight"], after["generator_a.out.weight"])


@pytest.mark.parametrize("name", ["munit", "drit"])
def test_state_round_trips_through_weights_only_load(name):
    torch.manual_seed(0)
    method = tiny(name)
    for step in range(3):
        method.set_step(step)
        method.train_step(batch(step, BATCH[name]), batch(7 + step, BATCH[name]))
    buffer = io.BytesIO()
    torch.save(method.state_dict(), buffer)
    buffer.seek(0)
    restored = tiny(name)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(restored.translate(batch(3), "b2a"), method.translate(batch(3), "b2a"))
    for model in (method, restored):
        model.set_step(5)
        torch.manual_seed(5)
        model.losses = {k: float(v) for k, v in model.train_step(batch(4, BATCH[name]), batch(5, BATCH[name])).items()}
    assert restored.losses == method.losses


def test_reference_lengths_schedules_and_settings():
    munit, drit = method_class("munit"), method_class("drit")
    assert munit.reference_iterations(munit.Options(), None) == 1_000_000
    assert drit.reference_iterations(drit.Options(), (1067, 1334)) == 1200 * 667            # 1200 epochs of batches of 2
    # selfie2anime: 1700 batches of 2, 568 full updates per epoch; the 500,000th comes in epoch 880 (0-based),
    # whose crash leaves the save after 880 epochs; with final_model "cap", the model at that update.
    assert drit.reference_iterations(drit.Options(), (3400, 3400)) == 880 * 1700
    assert drit.reference_iterations(drit.Options(final_model="cap"), (3400, 3400)) == 880 * 1700 + 480
    assert drit.reference_iterations(drit.Options(), None) is None
    method = create_method("munit", train=TrainConfig(image_size=32, iterations=300_000))
    method.set_step(199_999)
    assert method.extra_stats()["lr"] == pytest.approx(1e-4 * 0.25)
    method = create_method("drit", train=TrainConfig(image_size=32, iterations=100))
    method.train_images = (20, 12)   # epochs of 20 batches of 1: 5 epochs, constant to 2, then 1 - (k - 2) / 4
    method.set_step(74)
    assert method.g_optim.param_groups[0]["lr"] == pytest.approx(1e-4 * 0.75)
    assert method.content_d_optim.param_groups[0]["lr"] == pytest.approx(1e-4 / 2.5 * 0.75)
    assert [content_down_layers(s) for s in (256, 216, 128, 64, 32)] == [3, 3, 2, 1, 0]
    with pytest.raises(ConfigError, match="must be 1 or even"):
        create_method("drit", train=TrainConfig(image_size=32, iterations=1, batch_size=3))
    with pytest.raises(ConfigError, match="test_samples"):
        create_method("munit", train=TrainConfig(image_size=32, iterations=1), test_samples=0)


def test_test_settings_stay_out_of_the_run_identity_and_name_the_evaluation():
    munit = method_class("munit")
    plain = munit.identity_options(munit.Options(), TrainConfig())
    changed = munit.identity_options(munit.Options(test_style="mean", test_samples=3, test_seed=4), TrainConfig())
    assert plain == changed and not any(key.startswith("test_") for key in plain)
    assert evaluation_key("a2b", munit.test_settings(munit.Options())) == "a2b"
    assert evaluation_key("b2a", munit.test_settings(munit.Options(test_style="mean"))) == "b2a-mean"
    assert evaluation_key("a2b", munit.test_settings(munit.Options(test_samples=5, test_seed=3))) == "a2b-random-k5-seed3"
    assert evaluation_key("a2b", method_class("unit").test_settings(method_class("unit").Options())) == "a2b"


def read_folder(folder: Path) -> dict[str, torch.Tensor]:
    import numpy as np
    return {p.name: torch.from_numpy(np.array(Image.open(p))).int() for p in sorted(folder.glob("*.png"))}


def same(x: torch.Tensor, y: torch.Tensor) -> bool:
    """Equal up to one 8-bit level: a batch of another size may round a float differently."""
    return int((x - y).abs().max()) <= 1


@pytest.mark.parametrize("name", ["munit", "drit"])
def test_seeded_translations_are_reproducible_and_independent_of_batch_size(name, tiny_dataset, tmp_path):
    torch.manual_seed(0)
    method = tiny(name)
    method.set_step(2)
    method.train_step(batch(1, BATCH[name]), batch(2, BATCH[name]))   # a trained step (DRIT: full update)

    def translate(folder: str, batch_size: int, **settings) -> dict[str, torch.Tensor]:
        method.options = method.Options(**{**TINY[name], **settings})
        out = translate_with_method(method, "a2b", tiny_dataset / "testA", tmp_path / folder, 32, CPU, progress=False,
                                    batch_size=batch_size, exemplar_dir=tiny_dataset / "testB")
        manifest = json.loads((out / "translations.json").read_text())
        assert manifest["test_settings"] == method.test_settings(method.options)
        return read_folder(out)

    torch.manual_seed(1)
    one_by_one = translate("b1", 1)
    torch.manual_seed(2)
    all_at_once = translate("b6", 6)
    assert one_by_one.keys() == all_at_once.keys() and len(one_by_one) == 6
    assert all(same(one_by_one[k], all_at_once[k]) for k in one_by_one)
    other_seed = translate("seed1", 4, test_seed=1)
    assert sum(not same(one_by_one[k], other_seed[k]) for k in one_by_one) == 6
    # Codes differ between images: the same input gives another output under another image's code.
    assert not torch.equal(prior_code(0, 0, 0, 8), prior_code(0, 1, 0, 8))

    mean = translate("mean", 4, test_style="mean")
    inputs = SortedImageFolder(tiny_dataset / "testA", 32, pipeline_name=method.resolved_pipeline())
    plain = to_uint8_images(method.translate(torch.stack([inputs[i][0] for i in range(len(inputs))]), "a2b"))
    assert all(same(mean[name], torch.from_numpy(array).int()) for name, array in zip(sorted(mean), plain))   # z = 0
    assert all(same(mean[k], v) for k, v in translate("mean2", 1, test_style="mean", test_seed=7).items())

    exemplar = translate("exemplar", 4, test_style="exemplar")
    targets = SortedImageFolder(tiny_dataset / "testB", 32, pipeline_name=method.resolved_pipeline())
    chosen = [exemplar_index(0, i, 0, len(targets)) for i in range(len(inputs))]
    assert len(set(chosen)) > 1                                  # each image draws its own exemplar
    codes = method.encode_codes(torch.stack([targets[j][0] for j in chosen]), "b")
    by_hand = to_uint8_images(method.translate_with_codes(torch.stack([inputs[i][0] for i in range(len(inputs))]), "a2b", codes))
    assert all(same(exemplar[name], torch.from_numpy(array).int()) for name, array in zip(sorted(exemplar), by_hand))
    assert all(same(exemplar[k], v) for k, v in translate("exemplar2", 2, test_style="exemplar").items())
    assert sum(not same(exemplar[k], one_by_one[k]) for k in one_by_one) == 6

    several = translate("k3", 4, test_samples=3)
    assert len(several) == 18 and {k.rsplit("-k", 1)[0] + ".png" for k in several} == set(one_by_one)
    assert all(same(several[k.replace(".png", "-k0.png")], one_by_one[k]) for k in one_by_one)   # sample 0 is the K=1 code
    assert not same(several[next(iter(one_by_one)).replace(".png", "-k1.png")], one_by_one[next(iter(one_by_one))])


def test_translate_command_takes_test_settings_for_multimodal_methods_only(tiny_dataset, tmp_path, capsys):
    torch.manual_seed(0)
    config = TrainConfig(iterations=1, image_size=32, num_workers=0, checkpoint_every=1, log_every=1)
    for name in ("munit", "unit"):
        options = TINY.get(name, dict(width=4, n_res=1))
        train(create_method(name, train=config, **options), UnpairedTrainingSet(tiny_dataset, StreamSettings(32, 36)),
              tmp_path / name, config, {"method": name, "options": options, "train": {"iterations": 1, "image_size": 32}},
              CPU, progress=False)
    checkpoint = tmp_path / "munit" / "checkpoints" / "latest.pt"
    assert translate_main([str(checkpoint), str(tiny_dataset / "testA"), str(tmp_path / "out"), "--samples", "2",
                           "--style", "exemplar", "--exemplars", str(tiny_dataset / "testB"), "--no-progress"]) == 0
    assert len(list((tmp_path / "out").glob("*-k1.png"))) == 6
    assert translate_main([str(checkpoint), str(tiny_dataset / "testA"), str(tmp_path / "out2"), "--style", "exemplar",
                           "--no-progress"]) == 2
    assert "--exemplars" in capsys.readouterr().err
    unit = tmp_path / "unit" / "checkpoints" / "latest.pt"
    assert translate_main([str(unit), str(tiny_dataset / "testA"), str(tmp_path / "out3"), "--samples", "2", "--no-progress"]) == 2
    assert "multimodal methods" in capsys.readouterr().err


def test_one_training_scored_under_two_test_settings(tiny_dataset, write_yaml, tmp_path, capsys):
    runs, results = tmp_path / "runs", tmp_path / "results"
    path = write_yaml("multi.yaml", f"""
        name: multi
        datasets: [{{name: tiny}}]
        methods:
          - {{name: munit, options: {{width: 4, n_res: 1, mlp_dim: 8}}}}
          - {{name: munit, label: "MUNIT z=0 x2", options: {{width: 4, n_res: 1, mlp_dim: 8, test_style: mean, test_samples: 2}}}}
        output_dir: {runs}
        results_dir: {results}
        data: {{root: {tmp_path / 'data'}}}
        train: {{iterations: 2, image_size: 16, checkpoint_every: 2, log_every: 1, num_workers: 0}}
        eval: {{inception_weights: random, max_block_size: 6}}   # 12 fakes: 2 blocks, 3 real images each
        tables: [table3]
        """)
    assert main([str(path), "--no-progress"]) == 0
    folders = list((runs / "tiny").iterdir())
    assert len(folders) == 1                                          # one training for both entries
    run = folders[0]
    assert json.loads((run / "training.json").read_text())["steps"] == 2
    assert sorted(p.name for p in (run / "translations").iterdir()) == ["a2b", "a2b-mean-k2", "b2a", "b2a-mean-k2"]
    record = json.loads((run / "result.json").read_text())
    assert record["directions"]["a2b"]["test_settings"] == {"style": "random", "samples": 1, "seed": 0}
    assert record["directions"]["b2a-mean-k2"]["direction"] == "b2a"
    table = (results / "multi" / "table3.md").read_text()
    # The notes both rows share are said once, under the title; only the second row's own are marked.
    assert "| MUNIT |" in table and "| MUNIT z=0 x2 ¹" in table and "Every row: " in table
    assert "code = prior mean (z = 0)" in table and "2 translations per test image" in table
    scores = pandas.read_csv(results / "multi" / "scores.csv")
    assert sorted(scores.groupby("model")["n_fake"].max().items()) == [("MUNIT", 6), ("MUNIT z=0 x2", 12)]

    # Translations whose manifest records other test settings are made again; the rest is kept.
    manifest_path = run / "translations" / "a2b" / "translations.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "test_settings": {"style": "random", "samples": 1, "seed": 5}}))
    capsys.readouterr()
    assert main([str(path), "--no-progress"]) == 0
    output = capsys.readouterr().out
    assert "translate a2b" in output and "translate b2a" not in output
    assert json.loads(manifest_path.read_text())["test_settings"]["seed"] == 0
