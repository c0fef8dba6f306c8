"""The baselines train as their authors' code does: each behaviour pinned against a statement of the
reference written here from its code's facts (docs/baselines.md), never against the harness's own
formulas: CartoonGAN's bias zeroing and batch pool, DRIT's epochs, full updates, learning rate and end of
run on the paper's five datasets, the per-epoch rates of CycleGAN, AGGAN and CartoonGAN, each method's
training and test images, AGGAN's TensorFlow "SAME" sampling grid, and data.pipeline in runs and tables."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torchvision.transforms as T
from PIL import Image

from baselines.aggan import attention_network, generator
from baselines.blocks import TFSameConv2d, TFSameConvTranspose2d
from baselines.cyclegan import ImagePool
from bench.core.config import TrainConfig
from bench.core.methods import construct_method, create_method, method_class
from bench.data.datasets import CATALOGUE
from bench.data.pipeline import DomainStream, SortedImageFolder, StreamSettings, UnpairedTrainingSet, pipeline

PAPER_DATASETS = ("selfie2anime", "horse2zebra", "cat2dog", "photo2portrait", "photo2vangogh")


# -- CartoonGAN ------------------------------------------------------------------------------------

def batch(seed: int, n: int = 2, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_cartoongan_conv_biases_are_zero_at_the_start_of_every_update_in_both_phases(tiny_dataset):
    torch.manual_seed(0)
    method = create_method("cartoongan", train=TrainConfig(image_size=32, iterations=8, batch_size=2), init_epochs=20,
                           epochs=20, width=8, n_blocks=1, dis_width=8, vgg_weights="random")
    method.prepare_training(tiny_dataset, StreamSettings(32, 36, pipeline="cartoongan"))
    convs = [m for net in (method.generator, method.discriminator) for m in net.modules()
             if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    seen: list[float] = []   # the largest |bias| of a G or D conv each time one runs inside an update
    hooks = [conv.register_forward_pre_hook(lambda m, inputs: seen.append(float(m.bias.detach().abs().max()))) for conv in convs]
    for step in range(8):   # steps 0-3: content-only initialisation; 4-7: adversarial
        method.set_step(step)
        method.train_step(batch(step), batch(10 + step))
        # After each update the biases have taken one Adam step: the next update must start from zero again.
        assert any(float(conv.bias.detach().abs().max()) > 0 for conv in convs), "the biases still train (one step each update)"
    assert method.init_steps == 4 and seen and max(seen) == 0.0
    for hook in hooks:
        hook.remove()


def reference_pool_query(pool: dict, batch_: torch.Tensor, size: int) -> torch.Tensor:
    """CartoonGAN's util/image_pool.lua ImagePool:Query, with torch's generator for math.random (same order:
    p, then the index): a batch is the unit stored, returned and swapped."""
    if pool["count"] < size:
        pool["images"].append(batch_.clone())
        pool["count"] += 1
        return batch_
    if torch.rand(()).item() > 0.5:
        index = int(torch.randint(size, ()).item())
        old = pool["images"][index]
        pool["images"][index] = batch_.clone()
        return old
    return batch_


def test_cartoongan_pool_stores_and_returns_whole_batches_as_the_reference():
    size, harness, reference = 3, ImagePool(3, whole_batches=True), {"count": 0, "images": []}
    batches = [torch.full((4, 3, 2, 2), float(i)) for i in range(40)]
    torch.manual_seed(5)
    ours = [harness.query(b) for b in batches]
    torch.manual_seed(5)
    theirs = [reference_pool_query(reference, b, size) for b in batches]
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))
    assert any(not torch.equal(a, b) for a, b in zip(ours, batches))          # some stored batches came back
    assert all(len(set(out.flatten().tolist())) == 1 for out in ours)         # never a mix of two batches
    assert method_class("cartoongan")(method_class("cartoongan").Options(vgg_weights="random", width=8, n_blocks=1),
                                      TrainConfig(image_size=32, iterations=2), torch.device("cpu")).pool.whole_batches


def reference_cartoongan_rates(epochs_init: int = 10, decay_init: int = 10, epochs: int = 100, decay: int = 100,
                               init_lr: float = 2e-4, lr: float = 1e-5) -> tuple[list[float], list[float], list[float]]:
    """train.lua: G's rate in each init epoch, then G's and D's in each main epoch, by its own decrements
    (UpdateLearningRate after every epoch past niter; G set to opt.lr between the phases)."""
    g, init_rates = init_lr, []
    for epoch in range(1, epochs_init + decay_init + 1):
        init_rates.append(g)
        if epoch > epochs_init:
            g -= init_lr / decay_init
    g = d = lr
    g_rates, d_rates = [], []
    for epoch in range(1, epochs + decay + 1):
        g_rates.append(g), d_rates.append(d)
        if epoch > epochs:
            d -= lr / decay
            g = d
    return init_rates, g_rates, d_rates


def test_cartoongan_rates_per_epoch_equal_train_lua():
    photos = 3400   # selfie2anime: ceil(3400 / 8) = 425 iterations per epoch, 220 epochs
    cls = method_class("cartoongan")
    options = cls.Options(vgg_weights="random", width=8, n_blocks=1, dis_width=8)
    method = construct_method(cls, options, TrainConfig(image_size=32, batch_size=8), "cpu", train_images=(photos, 3400))
    assert method.train_config.iterations == 220 * 425
    init_rates, g_rates, d_rates = reference_cartoongan_rates()
    # A run of two epochs still starts with one epoch of initialisation (20/220 of two rounds to none).
    short = construct_method(cls, options, TrainConfig(image_size=32, batch_size=8, iterations=4), "cpu", train_images=(16, 16))
    short.set_step(0)
    assert short.init_steps == 2
    for epoch in (0, 9, 10, 11, 15, 19):
        method.set_step(epoch * 425 + 17)
        assert method.initialising and method.g_optim.param_groups[0]["lr"] == pytest.approx(init_rates[epoch], rel=1e-9)
    for epoch in (0, 99, 100, 101, 150, 199):
        method.set_step((20 + epoch) * 425 + 424)
        assert not method.initialising
        assert method.g_optim.param_groups[0]["lr"] == pytest.approx(g_rates[epoch], rel=1e-9, abs=1e-15)
        assert method.d_optim.param_groups[0]["lr"] == pytest.approx(d_rates[epoch], rel=1e-9, abs=1e-15)


# -- CycleGAN and AGGAN: the rate per epoch --------------------------------------------------------

def test_cyclegan_rate_per_epoch_equals_its_lambda_rule():
    a, b = CATALOGUE["horse2zebra"].train_counts
    cls = method_class("cyclegan")
    method = construct_method(cls, cls.Options(width=8, n_blocks=1), TrainConfig(image_size=32), "cpu", train_images=(a, b))
    assert method.train_config.iterations == 200 * b

    def lambda_rule(epoch: int) -> float:   # networks.get_scheduler, epoch_count 1, n_epochs 100, n_epochs_decay 100
        return 1.0 - max(0, epoch + 1 - 100) / float(100 + 1)

    for epoch in (0, 98, 99, 100, 150, 199):   # LambdaLR is stepped after each epoch: epoch k trains at lambda_rule(k)
        for step in (epoch * b, epoch * b + b - 1):
            method.set_step(step)
            assert method.g_optim.param_groups[0]["lr"] == pytest.approx(2e-4 * lambda_rule(epoch), rel=1e-12)


def test_aggan_rate_per_epoch_and_switch_equal_main_py():
    rows = max(CATALOGUE["horse2zebra"].train_counts)   # DATASET_TO_SIZES: max(|A|, |B|) rows
    cls = method_class("aggan")
    options = cls.Options(width=8, n_blocks=1, dis_width=8, lr=1e-4, epochs=100)   # configs/exp_01.json
    method = construct_method(cls, options, TrainConfig(image_size=32), "cpu", train_images=(1067, 1334))
    half = int(100 / 2)
    for epoch in (0, 29, 30, 49, 50, 51, 99):
        expected = 1e-4 if epoch < half else 1e-4 - 1e-4 * (epoch - half) / half
        method.set_step(epoch * rows + 5)
        assert method.extra_stats()["lr"] == pytest.approx(expected, rel=1e-12)
        assert method.attention_frozen == (epoch >= 30)   # if epoch < self._switch: attention trains


# -- DRIT ------------------------------------------------------------------------------------------

def reference_drit_run(images: int, batch_size: int = 2, n_ep: int = 1200, n_ep_decay: int = 600, d_iter: int = 3,
                       max_it: int = 500_000, save_freq: int = 10) -> dict:
    """src/train.py's loop over a DataLoader of ceil(images / batch) batches (the short last one skipped),
    counting full updates until max_it, where write_model(-1, model) raises (a missing argument): the
    final model is then the last save of `(ep + 1) % save_freq == 0`."""
    loader = -(-images // batch_size)
    complete = images // batch_size
    pattern = [it for it in range(loader) if it < complete and not ((it + 1) % d_iter != 0 and it < loader - 2)]
    total, last_save = 0, None
    for ep in range(n_ep):
        if total + len(pattern) >= max_it:
            it = pattern[max_it - total - 1]
            return {"crashed": True, "cap_epoch": ep, "cap_it": it, "last_save": last_save, "pattern": pattern}
        total += len(pattern)
        if (ep + 1) % save_freq == 0:
            last_save = ep
    return {"crashed": False, "total": total, "pattern": pattern}


def drit_lambda(ep: int, n_ep: int = 1200, n_ep_decay: int = 600) -> float:
    return 1.0 - max(0, ep - n_ep_decay) / float(n_ep - n_ep_decay + 1)


@pytest.mark.parametrize("dataset", PAPER_DATASETS)
@pytest.mark.parametrize("final_model", ["last_save", "cap"])
def test_drit_epochs_rate_and_end_of_run_equal_train_py(dataset, final_model):
    counts = CATALOGUE[dataset].train_counts
    images = max(counts)
    reference = reference_drit_run(images)
    cls = method_class("drit")
    method = construct_method(cls, cls.Options(width=8, n_res=1, attribute_dim=2, final_model=final_model),
                              TrainConfig(image_size=32, batch_size=2), "cpu", train_images=counts)
    epoch = images // 2
    total = method.train_config.iterations
    epochs = method.epochs()
    assert epochs.length == epoch
    # Which batches of an epoch are full updates.
    assert [it for it in range(epoch) if epochs.is_full_update(it)] == reference["pattern"]
    # Where the run ends, and its last full update.
    if not reference["crashed"]:
        assert total == 1200 * epoch
    elif final_model == "cap":
        assert total == reference["cap_epoch"] * epoch + reference["cap_it"] + 1
        assert sum(epochs.is_full_update(step) for step in range(total)) == 500_000
    else:
        assert total == (reference["last_save"] + 1) * epoch
    assert epochs.is_full_update(total - 1) or final_model == "last_save"
    # The rate at chosen epochs (the cap never shortens the 1200-epoch schedule).
    for ep in (0, 599, 600, 601, 800, 1199):
        if ep * epoch >= total:
            continue
        method.set_step(ep * epoch + epoch - 1)
        assert method.g_optim.param_groups[0]["lr"] == pytest.approx(1e-4 * drit_lambda(ep), rel=1e-12)
        assert method.content_d_optim.param_groups[0]["lr"] == pytest.approx(1e-4 / 2.5 * drit_lambda(ep), rel=1e-12)


def test_drit_cap_binds_where_the_paper_datasets_are_large():
    crashed = {name: reference_drit_run(max(CATALOGUE[name].train_counts))["crashed"] for name in PAPER_DATASETS}
    assert crashed == {"selfie2anime": True, "horse2zebra": False, "cat2dog": False, "photo2portrait": True,
                       "photo2vangogh": True}


# -- the images each method trains and tests on ------------------------------------------------------

@pytest.fixture
def photo(tmp_path):
    """A 300 x 240 photograph-like image in its own folder (non-square, to tell resizes apart)."""
    rng = np.random.default_rng(3)
    array = (rng.random((240, 300, 3)) * 255).astype(np.uint8)
    array[60:180, 90:210] = (250, 120, 30)
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(array).save(folder / "photo.png")
    return folder


def to_harness(tensor: torch.Tensor) -> torch.Tensor:
    return tensor * 2 - 1


def test_test_images_are_the_references_resize_and_crop(photo):
    image = Image.open(photo / "photo.png").convert("RGB")
    # The reference loaders, stated with torchvision's transforms as their code composes them.
    references = {
        "cyclegan": T.Compose([T.Resize([256, 256], T.InterpolationMode.BICUBIC), T.ToTensor()]),
        "drit": T.Compose([T.Resize((256, 256), T.InterpolationMode.BICUBIC), T.CenterCrop(216), T.ToTensor()]),
        "munit": T.Compose([T.Resize(256), T.CenterCrop(256), T.ToTensor()]),   # UNIT/MUNIT: shorter side 256
        "cartoongan": T.Compose([T.Resize((256, 256)), T.ToTensor()]),
        "ugatit": T.Compose([T.Resize((256, 256)), T.ToTensor()]),
    }
    for method, reference in references.items():
        name = method_class(method).data_pipeline(method_class(method).Options())
        ours = SortedImageFolder(photo, 256, pipeline_name=name)[0][0]
        assert ours.shape == reference(image).shape and torch.allclose(ours, to_harness(reference(image)), atol=1e-6), method
    assert SortedImageFolder(photo, 256, pipeline_name="aggan")[0][0].shape == (3, 256, 256)


def train_images(folder, name: str, samples: int = 6, size: int = 256) -> list[torch.Tensor]:
    stream = DomainStream(folder, "A", StreamSettings(size, 286, pipeline=name, seed=1))
    return [stream[i] for i in range(samples)]


def test_training_images_have_the_references_sizes_crops_and_flips(photo):
    image = Image.open(photo / "photo.png").convert("RGB")
    flips = lambda t: (t, torch.flip(t, dims=[-1]))   # noqa: E731
    # CartoonGAN: resize to 256 x 256 and flip, no crop (loadSize = fineSize).
    resized = to_harness(T.ToTensor()(image.resize((256, 256), Image.Resampling.BILINEAR)))
    for sample in train_images(photo, "cartoongan"):
        assert any(torch.equal(sample, option) for option in flips(resized))
    # UNIT / MUNIT: flip, shorter side to 256 (aspect kept: 320 x 256), a random 256 crop: only along the width.
    wide = image.resize((320, 256), Image.Resampling.BILINEAR)
    crops = [to_harness(T.ToTensor()(im.crop((x, 0, x + 256, 256)))) for im in (wide, wide.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
             for x in range(65)]
    for sample in train_images(photo, "unit"):
        assert any(torch.equal(sample, crop) for crop in crops)
    # DRIT: 216 crops of the 256 bicubic resize (flip applied after the crop).
    big = image.resize((256, 256), Image.Resampling.BICUBIC)
    for sample in train_images(photo, "drit", samples=3):
        assert sample.shape == (3, 216, 216)
        candidates = [to_harness(T.ToTensor()(big.crop((x, y, x + 216, y + 216)))) for y in range(41) for x in range(41)]
        assert any(torch.equal(sample, option) for c in candidates for option in flips(c))
    # CycleGAN: 256 crops of the 286 bicubic resize, then the flip.
    load = image.resize((286, 286), Image.Resampling.BICUBIC)
    candidates = [to_harness(T.ToTensor()(load.crop((x, y, x + 256, y + 256)))) for y in range(31) for x in range(31)]
    for sample in train_images(photo, "cyclegan", samples=2):
        assert any(torch.equal(sample, option) for c in candidates for option in flips(c))


def test_aggan_rows_are_fixed_pairs_with_one_flip_and_crop(tmp_path):
    rng = np.random.default_rng(0)
    picture = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    for domain, count in (("trainA", 3), ("trainB", 5)):
        (tmp_path / domain).mkdir()
        for i in range(count):   # file i of each domain is the same picture rolled by i: rows are recognisable
            Image.fromarray(np.roll(picture, 7 * i, axis=1)).save(tmp_path / domain / f"{i}.png")
    data = UnpairedTrainingSet(tmp_path, StreamSettings(32, 36, pipeline="aggan", seed=4))
    assert data.stream_a.rows == data.stream_b.rows == 5
    flipped_rows = 0
    for sample in range(12):
        row = sample % 5
        assert data.stream_a.file_at(sample).name == f"{row % 3}.png"    # create_cyclegan_dataset: A[i mod |A|]
        assert data.stream_b.file_at(sample).name == f"{row % 5}.png"    # B[i mod |B|], never shuffled
        a, b = data[sample]
        if row % 3 == row % 5:   # the same picture on both sides: the same flip and crop give equal tensors
            assert torch.equal(a, b)
            flipped_rows += 1
    assert flipped_rows >= 6
    unpaired = UnpairedTrainingSet(tmp_path, StreamSettings(32, 36, pipeline="paper", seed=4))
    assert unpaired.stream_a.rows is None and not pipeline("paper").paired_rows


# -- AGGAN's TensorFlow "SAME" grid ------------------------------------------------------------------

def centre_delta(conv: nn.Module) -> nn.Module:
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 1, 1] = 1.0
        conv.bias.zero_()
    return conv


def test_aggan_stride_two_layers_sample_the_grid_as_tensorflow_same():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    # tf.nn.conv2d(x, k, strides=2, padding="SAME") with a 3x3 kernel whose centre is 1, by hand: total padding
    # (2 - 1) * 2 + 3 - 4 = 1, all of it after (bottom/right), so output (i, j) reads x[2i + 1, 2j + 1].
    assert centre_delta(TFSameConv2d(1, 1, 3, 2))(x).flatten().tolist() == [5.0, 7.0, 13.0, 15.0]
    assert centre_delta(nn.Conv2d(1, 1, 3, 2, 1))(x).flatten().tolist() == [0.0, 2.0, 8.0, 10.0]   # torch's grid
    # tf.nn.conv2d_transpose(y, k, output 4x4, strides=2, padding="SAME"): input (i, j) lands at (2i + 1, 2j + 1).
    y = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    expected = torch.zeros(4, 4)
    expected[1, 1], expected[1, 3], expected[3, 1], expected[3, 3] = 1.0, 2.0, 3.0, 4.0
    assert torch.equal(centre_delta(TFSameConvTranspose2d(1, 1, 3, 2))(y)[0, 0], expected)
    torch_grid = centre_delta(nn.ConvTranspose2d(1, 1, 3, 2, 1, output_padding=1))(y)[0, 0]
    assert torch_grid[0, 0] == 1.0 and not torch.equal(torch_grid, expected)
    # The generator and the attention nets use them at every stride-2 layer (tf_padding, the default).
    layers = [*generator(8, 1).modules(), *attention_network().modules()]
    assert sum(isinstance(m, TFSameConv2d) for m in layers) == 3 and sum(isinstance(m, TFSameConvTranspose2d) for m in layers) == 2
    assert not any(isinstance(m, (TFSameConv2d, TFSameConvTranspose2d)) for m in generator(8, 1, tf_padding=False).modules())
    assert generator(8, 1)(torch.rand(1, 3, 32, 32)).shape == (1, 3, 32, 32)


# -- data.pipeline: in each run's identity, its images and the tables' footnotes -----------------------

def test_data_pipeline_paper_is_a_recorded_choice_footnoted_in_the_tables(tiny_dataset, write_yaml, tmp_path, capsys):
    import json

    from bench.cli import main
    from bench.harness.experiment_file import load_experiment
    from bench.harness.plan import plan_experiment

    path = write_yaml("exp.yaml", f"""
        name: pipelines
        datasets: [{{name: tiny}}]
        methods:
          - {{name: drit, options: {{width: 4, n_res: 0, attribute_dim: 2, n_scales: 1}}, train: {{batch_size: 2}}}}
          - {{name: dummy}}
        output_dir: {tmp_path / 'runs'}
        results_dir: {tmp_path / 'results'}
        data: {{root: {tmp_path / 'data'}}}
        train: {{iterations: 3, image_size: 32, checkpoint_every: 3, log_every: 1, num_workers: 0}}
        eval: {{inception_weights: random, max_block_size: 3}}
        tables: [table3]
        """)
    own = {t.method.name: t for t in plan_experiment(load_experiment(path)).trainings}
    paper = {t.method.name: t for t in plan_experiment(load_experiment(path, ["data.pipeline=paper"])).trainings}
    assert own["drit"].identity["data"]["pipeline"] == "drit" and "load_size" not in own["drit"].identity["data"]
    assert "pipeline" not in paper["drit"].identity["data"] and paper["drit"].run_id != own["drit"].run_id
    # A method on the paper's pipeline either way keeps the identity it had before pipelines were chosen.
    assert own["dummy"].identity == paper["dummy"].identity and "pipeline" not in own["dummy"].identity["data"]

    for overrides in ([], ["--set", "data.pipeline=paper"]):
        assert main([str(path), "--no-progress", "--only", "drit", *overrides]) == 0
    drit_own, drit_paper = own["drit"].run_dir, paper["drit"].run_dir
    with Image.open(next((drit_own / "translations" / "a2b").glob("*.png"))) as image:
        assert image.size == (24, 24)    # DRIT's centre crop, 216/256 of 32 px down to a multiple of 4
    with Image.open(next((drit_paper / "translations" / "a2b").glob("*.png"))) as image:
        assert image.size == (32, 32)
    assert json.loads((drit_own / "config.json").read_text())["identity"]["data"]["pipeline"] == "drit"
    capsys.readouterr()
    table_own = (tmp_path / "results" / "pipelines" / "table3.md").read_text()
    main([str(path), "--tables-only", "--set", "data.pipeline=paper"])
    table_paper = (tmp_path / "results" / "pipelines+data.pipeline=paper" / "table3.md").read_text()
    assert "data.pipeline: paper" in table_paper and "data.pipeline: paper" not in table_own


def test_every_baseline_footnotes_its_remaining_departures():
    for name in ("cyclegan", "unit", "munit", "drit", "aggan", "cartoongan"):
        cls = method_class(name)
        options = cls.Options(vgg_weights="random") if name == "cartoongan" else cls.Options()
        first = cls.deviations(options, TrainConfig(image_size=256, batch_size=2))[0]
        assert "reimplemented in this harness" in first and "departs from that code (docs/baselines.md): " in first, name
    aggan, drit = method_class("aggan"), method_class("drit")
    assert any("tf_padding: false" in note for note in aggan.deviations(aggan.Options(tf_padding=False), TrainConfig()))
    assert any("final_model: cap" in note for note in drit.deviations(drit.Options(final_model="cap"), TrainConfig(batch_size=2)))
    assert not any("final_model" in note for note in drit.deviations(drit.Options(), TrainConfig(batch_size=2)))
