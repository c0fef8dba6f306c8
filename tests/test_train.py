"""The shared training loop: checkpoints, exact resumption after a crash, stats records, NaN stop."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import interrupt_at

from bench.core.config import TrainConfig
from bench.core.methods import create_method
from bench.core.train import (CHECKPOINT_FORMAT, TrainingDiverged, checkpoint_path, cpu_thread_counts, load_checkpoint,
                              save_checkpoint, train)
from bench.data.pipeline import StreamSettings, UnpairedTrainingSet

CPU = torch.device("cpu")
CONFIG = TrainConfig(iterations=20, checkpoint_every=5, log_every=1, image_size=16, num_workers=0)


@pytest.fixture
def dataset(tiny_dataset):
    return UnpairedTrainingSet(tiny_dataset, StreamSettings(image_size=16, load_size=18, seed=0))


def losses_by_step(run_dir) -> dict[int, dict[str, float]]:
    lines = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    steps = [line["step"] for line in lines]
    assert steps == sorted(set(steps)), "a step was logged twice"
    return {line["step"]: {k: v for k, v in line.items() if k != "seconds_per_iteration"} for line in lines}


def fresh_dummy(seed: int = 0):
    torch.manual_seed(seed)
    return create_method("dummy", train=CONFIG)


def test_interrupted_run_resumes_exactly(dataset, tmp_path):
    full_dir, cut_dir = tmp_path / "full", tmp_path / "cut"
    train(fresh_dummy(), dataset, full_dir, CONFIG, {"note": "full"}, CPU, progress=False)

    crashing = interrupt_at(fresh_dummy(), 13)
    with pytest.raises(KeyboardInterrupt):
        train(crashing, dataset, cut_dir, CONFIG, {}, CPU, progress=False)
    assert load_checkpoint(checkpoint_path(cut_dir))["step"] == 10

    torch.manual_seed(999)  # a different process state: the checkpoint must restore everything
    outcome = train(fresh_dummy(seed=5), dataset, cut_dir, CONFIG, {}, CPU, progress=False)
    assert outcome.resumed_from == 10 and outcome.steps_total == 20
    assert losses_by_step(cut_dir) == losses_by_step(full_dir)   # every step, bit for bit
    assert torch.equal(torch.get_rng_state(), load_checkpoint(checkpoint_path(full_dir))["rng"]["torch"])


def test_each_stretch_of_training_records_its_device_and_torch_threads(dataset, tmp_path):
    """A run stopped at its step-10 checkpoint and resumed with another thread count says so (on a CPU the count
    changes the numbers); a checkpoint from before the counts were recorded counts as one unknown stretch."""
    from bench.harness.jobs import torch_threads

    with torch_threads(1), pytest.raises(KeyboardInterrupt):
        train(interrupt_at(fresh_dummy(), 13), dataset, tmp_path / "run", CONFIG, {}, CPU, progress=False)
    with torch_threads(2):
        outcome = train(fresh_dummy(), dataset, tmp_path / "run", CONFIG, {}, CPU, progress=False)
    stretches = [{"from_step": 0, "to_step": 10, "device": "cpu", "threads": 1},
                 {"from_step": 10, "to_step": 20, "device": "cpu", "threads": 2}]
    assert outcome.trained_with == stretches == load_checkpoint(checkpoint_path(tmp_path / "run"))["trained_with"]
    assert cpu_thread_counts(stretches) == (1, 2)
    assert cpu_thread_counts([dict(stretches[0], device="cuda")]) == () and cpu_thread_counts(None) == ()

    old = fresh_dummy()
    save_checkpoint(checkpoint_path(tmp_path / "old"), old, 10, {})
    checkpoint = load_checkpoint(checkpoint_path(tmp_path / "old"))
    del checkpoint["trained_with"]
    torch.save(checkpoint, checkpoint_path(tmp_path / "old"))
    outcome = train(fresh_dummy(), dataset, tmp_path / "old", CONFIG, {}, CPU, progress=False)
    assert outcome.trained_with[0] == {"from_step": 0, "to_step": 10, "device": None, "threads": None}
    assert cpu_thread_counts(outcome.trained_with) == (torch.get_num_threads(),)


def test_status_names_the_threads_a_run_trained_with():
    """--status's threads column: the CPU counts ('1+2' after a resume with 2), 'gpu' only when every stretch ran
    on a GPU, nothing for a stretch of unknown device (a checkpoint from before the counts were recorded)."""
    from bench.harness.status import threads_text

    cpu = {"from_step": 0, "to_step": 10, "device": "cpu", "threads": 1}
    gpu = {"from_step": 0, "to_step": 10, "device": "cuda", "threads": 16}
    unknown = {"from_step": 0, "to_step": 10, "device": None, "threads": None}
    assert threads_text({"trained_with": [cpu, dict(cpu, from_step=10, to_step=20, threads=2)]}, None) == "1+2"
    assert threads_text({"trained_with": [gpu]}, None) == "gpu"
    assert threads_text({"trained_with": [unknown]}, None) == ""
    assert threads_text({"trained_with": [unknown, dict(gpu, from_step=10, to_step=20)]}, None) == ""
    assert threads_text(None, {"torch_threads": 1, "device": "cpu"}) == "1"
    assert threads_text(None, {"torch_threads": 8, "device": "cuda:0"}) == "gpu"


def test_checkpoint_is_a_plain_dict_loadable_with_weights_only(dataset, tmp_path):
    train(fresh_dummy(), dataset, tmp_path, CONFIG, {"method": "dummy", "seed": 0}, CPU, progress=False)
    checkpoint = torch.load(checkpoint_path(tmp_path), weights_only=True)
    assert checkpoint["format"] == CHECKPOINT_FORMAT and checkpoint["step"] == 20
    assert checkpoint["method"] == "dummy" and checkpoint["config"] == {"method": "dummy", "seed": 0}
    assert set(checkpoint["method_state"]) == {"scale", "shift", "optimizer"}
    assert "torch" in checkpoint["versions"]
    assert [p.name for p in checkpoint_path(tmp_path).parent.iterdir()] == ["latest.pt"]  # no temp files left
    # A finished run is not trained again.
    outcome = train(fresh_dummy(), dataset, tmp_path, CONFIG, {"method": "dummy", "seed": 0}, CPU, progress=False)
    assert outcome.resumed_from == 20 and outcome.steps_total == 20


def test_stats_record_losses_learning_rate_and_speed(dataset, tmp_path):
    config = TrainConfig(iterations=12, checkpoint_every=12, log_every=4, image_size=16, num_workers=0)
    train(create_method("dummy", train=config), dataset, tmp_path, config, {}, CPU, progress=False)
    lines = [json.loads(line) for line in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [4, 8, 12]
    assert {"moments_a2b", "moments_b2a", "lr", "seconds_per_iteration"} <= set(lines[0])


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(dataset, tmp_path):
    method = fresh_dummy()
    real_step, calls = method.train_step, {"n": 0}

    def goes_nan(real_a, real_b):
        calls["n"] += 1
        losses = real_step(real_a, real_b)
        return {**losses, "moments_a2b": torch.tensor(float("nan"))} if calls["n"] >= 7 else losses

    method.train_step = goes_nan
    config = TrainConfig(iterations=20, checkpoint_every=5, log_every=100, image_size=16, num_workers=0)
    with pytest.raises(TrainingDiverged) as caught:
        train(method, dataset, tmp_path, config, {}, CPU, progress=False)
    assert "moments_a2b is nan at step 10" in str(caught.value) and "last good checkpoint" in str(caught.value)
    assert load_checkpoint(checkpoint_path(tmp_path))["step"] == 5


def test_a_foreign_file_is_not_taken_for_a_checkpoint(tmp_path):
    path = tmp_path / "x.pt"
    torch.save({"genA2B": {}}, path)
    with pytest.raises(ValueError, match="not a checkpoint of this harness"):
        load_checkpoint(path)


def test_the_learning_rate_each_step_of_a_real_training_used(dataset, tmp_path):
    """The rate the optimiser held when each step ran: constant for the first half, then down by equal
    amounts to 0 at the last iteration (the paper's schedule), over a real train() call."""
    config = TrainConfig(iterations=10, schedule="linear_decay", checkpoint_every=10, log_every=10, image_size=16,
                         num_workers=0)
    method = create_method("dummy", train=config)
    used, real_step = [], method.train_step

    def recording(real_a, real_b):
        used.append(method.optimizer.param_groups[0]["lr"])
        return real_step(real_a, real_b)

    method.train_step = recording
    train(method, dataset, tmp_path, config, {}, CPU, progress=False)
    assert used == pytest.approx([0.01 * m for m in (1, 1, 1, 1, 1, 0.8, 0.6, 0.4, 0.2, 0.0)])
