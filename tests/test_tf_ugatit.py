"""The official TensorFlow U-GAT-IT: its checkpoints read without TensorFlow, the imported model against the
TF graph, damaged files refused, the TF code's data pipeline and schedule, and the official_tf preset training.

Checkpoints are made by TensorFlow's own saver from a TF statement of the official graph (tests/tf_ugatit_graph.py)
in a separate process: TensorFlow is the optional `tf-oracle` extra (`.ci/run` installs it); without it those
tests skip, saying so. The rest needs no TensorFlow.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import interrupt_at
from PIL import Image

from bench.core.config import TrainConfig
from bench.core.methods import create_method
from bench.core.released import load_released
from bench.core.schedule import epoch_linear_decay
from bench.core.train import train
from bench.data.pipeline import SortedImageFolder, StreamSettings, UnpairedTrainingSet
from bench.data.reference_pipelines import tf1_resize_bilinear, tf_ugatit_augment_size, tf_ugatit_augments
from safeio.tf_checkpoint import TFCheckpoint

HELPER = Path(__file__).parent / "tf_ugatit_graph.py"
needs_tf = pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None,
                              reason="TensorFlow is absent: pip install -e '.[tf-oracle]' (the tests' oracle only)")
SIZE, CH = 128, 4   # the TF code's n_dis 6 needs 128 px at least (its global discriminator's padding)


@pytest.fixture(scope="module")
def tf_models(tmp_path_factory):
    """{light: (prefix, TF outputs, inputs)} for a light and a full model saved by TensorFlow, and under "resize"
    (image, {size: TF1's bilinear resize}), all made by one TensorFlow process (tests/tf_ugatit_graph.py)."""
    root = tmp_path_factory.mktemp("tf")
    rng = np.random.default_rng(0)
    inputs = {domain: rng.uniform(-1, 1, (2, SIZE, SIZE, 3)).astype(np.float32) for domain in "AB"}
    image = rng.uniform(0, 255, (37, 53, 3)).astype(np.float32)
    np.savez(root / "inputs.npz", **inputs)
    np.savez(root / "image.npz", image=image)
    result = subprocess.run([sys.executable, str(HELPER), str(root), "--ch", str(CH), "--img-size", str(SIZE),
                             "--inputs", str(root / "inputs.npz"), "--resize", str(root / "image.npz"), "--sizes", "20", "286"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    light, full = result.stdout.strip().splitlines()[-2:]
    models = {True: (Path(light), dict(np.load(root / "light" / "outputs.npz")), inputs),
              False: (Path(full), dict(np.load(root / "full" / "outputs.npz")), inputs)}
    models["resize"] = (image, {size: np.load(root / "resized.npz")[f"s{size}"] for size in (20, 286)})
    return models


def nchw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array).permute(0, 3, 1, 2)


# ----------------------------------------------------------------------------------------------
# The reader


@needs_tf
@pytest.mark.parametrize("light", [True, False], ids=["light", "full"])
def test_reader_equals_tensorflow_bit_for_bit(tf_models, light):
    prefix = tf_models[light][0]
    theirs = np.load(prefix.parent.parent / "tensors.npz")   # TensorFlow's own reader, in the process that saved it
    ours = TFCheckpoint(prefix.parent)             # the folder: its `checkpoint` file names the prefix
    assert ours.prefix == prefix
    names = {name.replace("__SLASH__", "/") for name in theirs.files}
    assert set(ours.names()) == names and any(name.endswith("/Adam_1") for name in names)
    for key in theirs.files:
        mine = ours.read(key.replace("__SLASH__", "/"))
        assert mine.dtype == theirs[key].dtype and mine.shape == theirs[key].shape
        assert mine.tobytes() == theirs[key].tobytes(), key


@needs_tf
@pytest.mark.parametrize("light", [True, False], ids=["light", "full"])
def test_imported_model_reproduces_the_tf_graph(tf_models, light):
    prefix, outputs, inputs = tf_models[light]
    method = load_released("ugatit", checkpoint=str(prefix.parent), image_size=SIZE, discriminators=True)
    assert method.options.preset == "official_tf" and method.options.light is light and method.options.width == CH
    for direction, source, key in (("a2b", "A", "a2b"), ("b2a", "B", "b2a")):   # generator_B is A -> B
        translated = method.translate(nchw(inputs[source]), direction).permute(0, 2, 3, 1).numpy()
        assert np.abs(translated - outputs[key]).max() <= 1e-4, direction
        with method.evaluating():
            _, cam_logit, _ = method.generator(direction)(nchw(inputs[source]))
        assert np.abs(cam_logit.numpy() - outputs[f"cam_{key}"]).max() <= 1e-4
    with method.evaluating():
        for domain in "AB":
            for kind, name in (("global", f"disG{domain}"), ("local", f"disL{domain}")):
                logits, cam_logits, _ = method.networks[name](nchw(inputs[domain]))
                assert np.abs(logits.permute(0, 2, 3, 1).numpy() - outputs[f"{kind}_{domain}"]).max() <= 1e-4, name
                assert np.abs(cam_logits.numpy() - outputs[f"{kind}_cam_{domain}"]).max() <= 1e-4, name


@needs_tf
def test_only_the_generators_are_read_unless_asked(tf_models, monkeypatch):
    prefix = tf_models[False][0]
    read = []
    original = TFCheckpoint.read
    monkeypatch.setattr(TFCheckpoint, "read", lambda self, name: read.append(name) or original(self, name))
    method = load_released("ugatit", checkpoint=str(prefix))
    assert read and all(name.startswith("generator_") and "/Adam" not in name for name in read)
    assert method.translation_only == ["disGA", "disGB", "disLA", "disLB"]
    with pytest.raises(RuntimeError, match="cannot train .*discriminators=True"):
        method.train_step(torch.zeros(1, 3, SIZE, SIZE), torch.zeros(1, 3, SIZE, SIZE))


@needs_tf
def test_inspect_names_the_format_architecture_and_step(tf_models, capsys):
    from bench.cli.released import main

    assert main(["inspect", str(tf_models[False][0])]) == 0
    out = capsys.readouterr().out
    assert "format: TensorFlow U-GAT-IT checkpoint" in out and "step: 1000" in out and "width: 4" in out
    assert "light: False" in out and f"image_size: {SIZE}" in out and "Adam slots, never read" in out


@needs_tf
def test_translate_commands_take_a_tf_checkpoint(tf_models, tiny_dataset, tmp_path):
    from bench.cli.translate import main as bench_translate
    from ugatit.translate import main as ugatit_translate

    prefix = tf_models[True][0]
    assert bench_translate([str(prefix), str(tiny_dataset / "testA"), str(tmp_path / "a"), "--no-progress"]) == 0
    assert ugatit_translate([str(prefix.parent), str(tiny_dataset / "testB"), str(tmp_path / "b"), "--direction", "b2a",
                             "--no-progress"]) == 0
    for folder in ("a", "b"):
        pngs = sorted((tmp_path / folder).glob("*.png"))
        assert len(pngs) == 6 and Image.open(pngs[0]).size == (256, 256)   # a light model: 256 px assumed


def _damage(prefix: Path, case: str) -> str:
    """Damage a copy of a checkpoint in one way; returns what the one-line error must say."""
    data = Path(f"{prefix}.data-00000-of-00001")
    if case == "truncated":
        with open(data, "r+b") as file:
            file.truncate(data.stat().st_size - 100)
        return "truncated"
    if case == "missing shard":
        data.unlink()
        return "missing data shard 1 of 1"
    if case == "checksum":
        entry = TFCheckpoint(prefix).entries["generator_B/conv/conv2d/kernel"]
        with open(data, "r+b") as file:
            file.seek(entry.offset + 5)
            byte = file.read(1)
            file.seek(entry.offset + 5)
            file.write(bytes([byte[0] ^ 0x40]))
        return "fails its CRC-32C checksum"
    Path(f"{prefix}.index").write_bytes(b"not a table " * 10)
    return "not a TensorFlow checkpoint index"


@needs_tf
@pytest.mark.parametrize("case", ["truncated", "missing shard", "checksum", "not a bundle"])
def test_a_damaged_checkpoint_is_refused_in_one_line(tf_models, tiny_dataset, tmp_path, capsys, case):
    from bench.cli.translate import main

    source = tf_models[True][0]
    folder = tmp_path / source.parent.name
    shutil.copytree(source.parent, folder)
    prefix = folder / source.name
    expected = _damage(prefix, case)
    code = main([str(prefix), str(tiny_dataset / "testA"), str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert expected in err and prefix.name in err, err
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------------------
# The TF code's data pipeline and schedule


@needs_tf
def test_train_resize_is_tensorflow_1s_bilinear(tf_models):
    image, expected = tf_models["resize"]
    for size in (20, 286):   # down and up
        assert np.abs(tf1_resize_bilinear(image, size, size) - expected[size]).max() <= 1e-3


def test_tf_pipeline_test_images_are_opencv_resized(tiny_dataset):
    import cv2

    path = sorted((tiny_dataset / "testA").iterdir())[0]
    array = np.asarray(Image.open(path).convert("RGB"))
    expected = cv2.resize(array, (24, 24), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 127.5 - 1
    tf_image = SortedImageFolder(tiny_dataset / "testA", 24, pipeline_name="tf_ugatit")[0][0]
    paper_image = SortedImageFolder(tiny_dataset / "testA", 24)[0][0]
    assert torch.allclose(tf_image, torch.from_numpy(expected).permute(2, 0, 1), atol=1e-6)
    assert not torch.allclose(paper_image, tf_image, atol=1e-3)


def test_tf_pipeline_augments_every_image_of_a_run_or_none(tiny_dataset):
    """One coin per run (the TF code's `random.random()` runs once, when tf.data traces the map function)."""
    seeds = {tf_ugatit_augments(seed): seed for seed in range(20)}
    assert set(seeds) == {True, False}
    size = 24
    for augments, seed in seeds.items():
        stream = UnpairedTrainingSet(tiny_dataset, StreamSettings(size, 0, seed=seed, pipeline="tf_ugatit")).stream_a
        for sample in range(len(stream) * 2):
            image = np.asarray(Image.open(stream.file_at(sample)).convert("RGB"), dtype=np.float32)
            plain = tf1_resize_bilinear(image, size, size) / 127.5 - 1
            same = np.allclose(stream[sample].permute(1, 2, 0).numpy(), plain, atol=1e-6)
            assert same is not augments, (seed, sample)
    assert tf_ugatit_augment_size(256) == 286 and tf_ugatit_augment_size(128) == 143


def test_learning_rate_is_set_per_epoch_as_the_tf_code_does():
    """UGATIT.train: lr = init while epoch < decay_epoch, else init * (epochs - epoch) / (epochs - decay_epoch);
    100 epochs of 10,000 iterations, decay_epoch 50."""
    def lr(step):
        return epoch_linear_decay(step, 1_000_000, 10_000, 0.5)

    assert lr(0) == lr(499_999) == lr(500_000) == lr(509_999) == 1.0
    assert lr(510_000) == 49 / 50 and lr(750_000) == 25 / 50 and lr(999_999) == 1 / 50
    assert epoch_linear_decay(60, 60, 10_000) == 1.0   # a run shorter than one epoch keeps its rate


# ----------------------------------------------------------------------------------------------
# The official_tf preset trains


TF_TINY = dict(preset="official_tf", width=2, n_res=4, light=True, epoch_iterations=3)
CONFIG = TrainConfig(iterations=8, checkpoint_every=4, log_every=1, sample_every=100, image_size=16, num_workers=0)


def fresh(seed: int = 0):
    torch.manual_seed(seed)
    return create_method("ugatit", train=CONFIG, **TF_TINY)


def test_official_tf_trains_with_finite_losses_and_resumes_exactly(tiny_dataset, tmp_path):
    dataset = UnpairedTrainingSet(tiny_dataset, StreamSettings(16, 0, seed=1, pipeline="tf_ugatit"))
    train(fresh(), dataset, tmp_path / "full", CONFIG, {}, torch.device("cpu"), progress=False)
    crashing = interrupt_at(fresh(), 6)
    with pytest.raises(KeyboardInterrupt):
        train(crashing, dataset, tmp_path / "cut", CONFIG, {}, torch.device("cpu"), progress=False)
    train(fresh(seed=7), dataset, tmp_path / "cut", CONFIG, {}, torch.device("cpu"), progress=False)

    def records(run):
        return [{k: v for k, v in json.loads(line).items() if k != "seconds_per_iteration"}
                for line in (tmp_path / run / "stats.jsonl").read_text().splitlines()]

    full = records("full")
    assert len(full) == 8 and all(np.isfinite(r["loss_G"]) and np.isfinite(r["loss_D"]) for r in full)
    assert records("cut") == full
    # 8 iterations in epochs of 3: N = 3 epochs, decay from epoch 1: 1, then 2/2, then 1/2.
    assert [r["lr"] for r in full] == pytest.approx([1e-4] * 6 + [5e-5] * 2)


def test_official_tf_preset_requires_four_residual_blocks():
    from bench.core.schema import ConfigError

    with pytest.raises(ConfigError, match="n_res 4"):
        create_method("ugatit", train=TrainConfig(image_size=16), preset="official_tf", width=2, n_res=2, light=True)


@needs_tf
def test_an_experiment_scores_the_tf_checkpoint_from_an_environment_variable(tf_models, tmp_path, write_yaml, tiny_dataset,
                                                                              monkeypatch):
    """experiments/released.yaml's entry on the tiny data: nothing trained, test images resized as the TF code's
    test phase (OpenCV), Table 3's row beside the paper's U-GAT-IT value."""
    import pandas as pd

    from bench.cli import main as bench_main

    prefix = tf_models[True][0]
    monkeypatch.setenv("UGATIT_TF_CHECKPOINT", str(prefix.parent))
    released = (Path(__file__).parents[1] / "experiments" / "released.yaml").read_text()
    entry = released[released.index("  - {name: ugatit"):released.index("\ntrain:")]
    methods = "\n".join(" " * 10 + line for line in entry.rstrip().splitlines())
    experiment = write_yaml("released.yaml", f"""\
        name: released
        output_dir: {tmp_path}/runs
        results_dir: {tmp_path}/results
        datasets: [{{name: tiny}}]
        methods:
{methods}
        data: {{root: {tiny_dataset.parent}}}
        train: {{image_size: 32, num_workers: 0}}
        eval: {{inception_weights: random}}
        tables: [table3]
        """)
    # Test images of 45 px, so that the test resize matters: OpenCV's (the TF code's), not PIL's.
    from PIL import Image

    for path in (tiny_dataset / "testA").iterdir():   # the fixture's own copy, under tmp_path
        with Image.open(path) as image:
            image.convert("RGB").resize((45, 45), Image.Resampling.BICUBIC).save(path)
    assert bench_main([str(experiment), "--no-progress"]) == 0
    [run] = list((tmp_path / "runs" / "tiny").glob("ugatit-released-*"))
    assert not (run / "checkpoints").exists()
    method = load_released("ugatit", checkpoint=str(prefix), image_size=32)
    source = SortedImageFolder(tiny_dataset / "testA", 32, pipeline_name="tf_ugatit")[0][0]
    paper = SortedImageFolder(tiny_dataset / "testA", 32)[0][0]
    assert (source - paper).abs().max() > 4 / 255   # the two resizes differ on these images
    translated = SortedImageFolder(run / "translations" / "a2b", 32)[0][0]
    assert (translated - method.translate(source[None], "a2b")[0]).abs().max() < 2 / 255 + 1e-6
    table = pd.read_csv(tmp_path / "results" / "released" / "table3.csv")
    assert set(table["model"]) == {"U-GAT-IT (authors' released, 100 epochs)"}
    assert "the authors' released weights, not trained here (checkpoint: " in table["notes"].iloc[0]


def test_a_version_of_a_paper_model_is_tabled_beside_the_papers_value():
    import pandas as pd

    from eval.tables import paper_values, with_paper_values

    frame = pd.DataFrame({"model": ["U-GAT-IT (authors' released, 100 epochs)", "CycleGAN", "Mine (v2)"],
                          "task": ["anime2selfie", "selfie2anime", "selfie2anime"]})
    joined = with_paper_values(frame, paper_values("table3"))
    assert joined["paper_kid"].iloc[0] == 11.52 and joined["paper_std"].iloc[0] == 0.57   # the paper's U-GAT-IT row
    assert joined["paper_kid"].iloc[1] == 13.08 and pd.isna(joined["paper_kid"].iloc[2])
    assert list(joined["model"]) == list(frame["model"])


@needs_tf
def test_tensorboard_logging_does_not_load_tensorflow_into_the_training_process(tmp_path):
    """TensorBoard imports TensorFlow when it is installed; the harness makes it use its stub (bench/core/monitor.py)."""
    code = ("import sys; from bench.core.monitor import TensorBoardLog; log = TensorBoardLog(sys.argv[1], None); "
            "log.scalars(1, {'loss_G': 1.0}, {'loss_G'}); assert log.writer is not None; print('tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stderr[-2000:]
