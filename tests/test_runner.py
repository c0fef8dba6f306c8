"""run_bench.py end to end with the dummy methods: plan, dry run, data checks, runs, failures."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import textwrap
from pathlib import Path

import pytest
import torch
from PIL import Image

from bench.cli import main
from bench.core import methods as method_registry
from bench.core.methods import Method
from bench.harness.experiment_file import load_experiment
from bench.harness.plan import plan_experiment

REPO = Path(__file__).resolve().parent.parent


def experiment_yaml(write_yaml, tmp_path, methods="[{name: dummy}, {name: identity}]", extra=""):
    """A small experiment; top-level keys in `extra` replace the base file's."""
    base = f"""
name: e2e
datasets: [{{name: tiny}}]
methods: {methods}
output_dir: {tmp_path / 'runs'}
results_dir: {tmp_path / 'results'}
data: {{root: {tmp_path / 'data'}}}
train: {{iterations: 6, image_size: 16, checkpoint_every: 3, log_every: 2, num_workers: 0}}
eval: {{inception_weights: random, max_block_size: 3}}
"""
    extra = textwrap.dedent(extra)
    replaced = {line.split(":")[0] for line in extra.splitlines() if line and not line[0].isspace()}
    kept = [line for line in base.splitlines() if line.split(":")[0] not in replaced]
    return write_yaml("exp.yaml", "\n".join(kept) + "\n" + extra)


def test_dry_run_prints_every_run_and_touches_nothing(tiny_dataset, write_yaml, tmp_path, capsys):
    path = experiment_yaml(write_yaml, tmp_path, extra="train: {iterations: 6, image_size: 16, seeds: [0, 1]}\n")
    assert main([str(path), "--dry-run"]) == 0
    output = capsys.readouterr().out
    assert "2 training run(s)" not in output and "4 training run(s), 8 evaluation(s)" in output
    for text in ("dummy", "Identity (no translation)", "tiny_a2b", "tiny_b2a", "tiny: present"):
        assert text in output
    assert re.search(r"runs/tiny/dummy-s1-[0-9a-f]{10}", output)
    assert not (tmp_path / "runs").exists()


def test_run_identity_changes_with_settings_but_not_with_logging(tiny_dataset, write_yaml, tmp_path):
    path = experiment_yaml(write_yaml, tmp_path)
    base = plan_experiment(load_experiment(path)).trainings[0].run_dir
    assert plan_experiment(load_experiment(path, ["train.log_every=1", "train.device=cpu"])).trainings[0].run_dir == base
    assert plan_experiment(load_experiment(path, ["train.iterations=7"])).trainings[0].run_dir != base
    assert plan_experiment(load_experiment(path, ["methods.0.options.lr=0.5"])).trainings[0].run_dir != base


def test_missing_dataset_is_refused_before_any_work(write_yaml, tmp_path, capsys):
    path = write_yaml("exp.yaml", f"""
name: missing
datasets: [{{name: horse2zebra}}]
methods: [{{name: dummy}}]
output_dir: {tmp_path / 'runs'}
data: {{root: {tmp_path / 'data'}}}
""")
    assert main([str(path), "--dry-run"]) == 2
    assert f"python run_bench.py --download horse2zebra --data-root {tmp_path / 'data'}" in capsys.readouterr().out
    assert main([str(path)]) == 2
    assert "nothing was run" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_end_to_end_training_translation_and_records(tiny_dataset, write_yaml, tmp_path, capsys):
    path = experiment_yaml(write_yaml, tmp_path)
    assert main([str(path), "--no-progress"]) == 0
    run_dirs = sorted((tmp_path / "runs" / "tiny").iterdir())
    assert len(run_dirs) == 2
    dummy_dir = next(d for d in run_dirs if d.name.startswith("dummy"))
    config = json.loads((dummy_dir / "config.json").read_text())
    assert config["identity"]["method"] == "dummy" and config["git"] and config["versions"]["torch"]
    assert torch.load(dummy_dir / "checkpoints" / "latest.pt", weights_only=True)["step"] == 6
    assert len((dummy_dir / "stats.jsonl").read_text().splitlines()) == 3
    for direction, split in (("a2b", "testA"), ("b2a", "testB")):
        outputs = sorted(p.name for p in (dummy_dir / "translations" / direction).glob("*.png"))
        assert outputs == sorted(p.stem + ".png" for p in (tiny_dataset / split).glob("*.png"))
        with Image.open(dummy_dir / "translations" / direction / outputs[0]) as image:
            assert image.size == (16, 16) and image.mode == "RGB"
    result = json.loads((dummy_dir / "result.json").read_text())
    assert result["directions"]["a2b"]["task"] == "tiny_a2b" and result["directions"]["b2a"]["step"] == 6


def test_rows_trained_with_other_thread_counts_than_their_seeds_or_partners_are_footnoted(tiny_dataset, write_yaml,
                                                                                        tmp_path, capsys):
    """One thread for every run under every launcher by default; a run trained with another count (--threads)
    is footnoted in the tables, with its seeds and its partners; this process keeps its own thread count."""
    import pandas as pd

    path = experiment_yaml(write_yaml, tmp_path, extra="train: {iterations: 6, image_size: 16, seeds: [0, 1], log_every: 2, num_workers: 0}\n"
                                                             "tables: [table3]")
    threads = torch.get_num_threads()
    assert main([str(path), "--no-progress"]) == 0
    assert torch.get_num_threads() == threads
    table = (tmp_path / "results" / "e2e" / "table3.md").read_text()
    assert "thread" not in table   # one count everywhere: nothing to say
    scores = pd.read_csv(tmp_path / "results" / "e2e" / "scores.csv")
    assert set(scores["train_threads"]) == {1} and set(scores["train_device"]) == {"cpu"}

    [dummy_s1] = (tmp_path / "runs" / "tiny").glob("dummy-s1-*")
    shutil.rmtree(dummy_s1)
    assert main([str(path), "--no-progress", "--threads", "2"]) == 0
    assert json.loads((dummy_s1 / "config.json").read_text())["torch_threads"] == 2
    assert json.loads((dummy_s1 / "result.json").read_text())["trained_with"] == [
        {"from_step": 0, "to_step": 6, "device": "cpu", "threads": 2}]
    table = (tmp_path / "results" / "e2e" / "table3.md").read_text()
    dummy_note = ("dummy: its seeds trained on the CPU with different torch thread counts (tiny seed 0: 1 thread; tiny seed "
                  "1: 2 threads); on a CPU the thread count changes the numbers (README: Thread counts)")
    identity_note = ("Identity (no translation) trained on the CPU with 1 thread, other rows of this table with 2 threads; on a CPU the "
                     "thread count changes the numbers (README: Thread counts)")
    assert dummy_note in table and identity_note in table
    assert "Every row:" in table and dummy_note not in table.split("Every row:")[1].split("\n")[0]


@pytest.fixture
def broken_method():
    class Broken(Method):
        def train_step(self, real_a, real_b):
            raise RuntimeError("this method always fails")

        translate = state_dict = load_state_dict = lambda *a, **k: {}

    method_registry.register_method("broken_test_method")(Broken)
    yield
    del method_registry._REGISTRY["broken_test_method"]


def test_a_failing_run_is_reported_and_the_others_continue(tiny_dataset, write_yaml, tmp_path, capsys, broken_method,
                                                           planned_method):
    path = experiment_yaml(write_yaml, tmp_path, methods="[{name: broken_test_method}, {name: dummy}, {name: futuregan}]")
    assert main([str(path), "--no-progress"]) == 1
    output = capsys.readouterr().out
    assert "RuntimeError: this method always fails" in output
    log_line = next(line for line in output.splitlines() if line.startswith("FAILED"))
    log_path = Path(log_line.split("see ")[1])
    assert "this method always fails" in log_path.read_text() and "Traceback" in log_path.read_text()
    assert re.search(r"dummy\s+tiny\s+0\s+done", output)
    assert "Not run: FutureGAN (futuregan) is not implemented yet" in output


def test_readme_commands_and_ci_agree():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", readme, flags=re.S)
    setup = [line.strip() for block in blocks for line in block.splitlines() if line.strip().startswith("pip install -e")]
    assert 'pip install -e ".[dev]" && python run_bench.py experiments/smoke.yaml' in setup
    test_command = next(line for line in setup if "pytest" in line)
    assert test_command in ci, "the CI script must run the README's test command"
    assert shlex.split(test_command)[-1] != "||"


@pytest.fixture
def one_way_method():
    """The dummy method, registered again as one that translates a2b only (as CartoonGAN does)."""
    one_way = type("OneWay", (method_registry.method_class("dummy"),), {"directions": ("a2b",)})
    method_registry.register_method("one_way_test_method")(one_way)
    yield
    del method_registry._REGISTRY["one_way_test_method"]


def test_an_entry_runs_only_on_its_datasets_and_directions(tiny_dataset, write_yaml, tmp_path, capsys, one_way_method):
    from bench.core.schema import ConfigError

    # A one-way method on a dataset evaluated both ways is refused at load time, with the fix.
    path = experiment_yaml(write_yaml, tmp_path, methods="[{name: dummy}, {name: one_way_test_method}]")
    with pytest.raises(ConfigError, match=r"methods\[1\].*translates a2b only.*directions: \[a2b\]"):
        load_experiment(path)
    path = experiment_yaml(write_yaml, tmp_path, methods="[{name: dummy}, {name: one_way_test_method, datasets: [nope]}]")
    with pytest.raises(ConfigError, match=r"methods\[1\]\.datasets\[0\].*'nope' is not one of the experiment's datasets"):
        load_experiment(path)
    # One label may serve two entries on different datasets, not on the same one.
    path = experiment_yaml(write_yaml, tmp_path, methods="[{name: dummy, label: D}, {name: identity, label: D}]")
    with pytest.raises(ConfigError, match="already used by methods\\[0\\] on the same dataset"):
        load_experiment(path)

    path = experiment_yaml(write_yaml, tmp_path, methods="[{name: dummy}, {name: one_way_test_method, directions: [a2b], "
                                                          "datasets: [tiny], label: One way}]",
                           extra="tables: [table3]\n")
    plan = plan_experiment(load_experiment(path))
    assert [(e.training.variant, e.task) for e in plan.evaluations] == [
        ("dummy", "tiny_a2b"), ("dummy", "tiny_b2a"), ("One way", "tiny_a2b")]
    assert main([str(path), "--no-progress"]) == 0
    table = (tmp_path / "results" / "e2e" / "table3.md").read_text()
    one_way_row = next(line for line in table.splitlines() if line.startswith("| One way"))
    assert one_way_row.rstrip().endswith("| – |")                   # not run on tiny_b2a: a dash
    run = next((tmp_path / "runs" / "tiny").glob("one-way-test-method-*"))
    assert sorted(p.name for p in (run / "translations").iterdir()) == ["a2b"]


def test_main_experiment_dry_run_prints_the_whole_grid_with_reference_lengths(tmp_path, capsys):
    # No dataset present (exit status 2 says so): lengths that depend on the data are estimated from the
    # paper's image counts.
    assert main([str(REPO / "experiments" / "main.yaml"), "--dry-run", "--set", f"data.root={tmp_path}"]) == 2
    output = capsys.readouterr().out
    assert "31 training run(s), 61 evaluation(s)" in output
    assert re.search(r"DRIT\s+drit\s+horse2zebra\s+horse2zebra\s+0\s+~800,400 \(dataset missing\)", output)
    assert re.search(r"CartoonGAN\s+cartoongan\s+selfie2anime\s+selfie2anime\s+0\s+~93,500", output)
    assert "anime2selfie" not in "".join(line for line in output.splitlines() if "cartoongan" in line)
