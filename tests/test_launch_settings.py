"""The launcher section, the cost estimate of --dry-run, and TensorBoard event files."""

from __future__ import annotations

import pytest

from bench.core.schema import ConfigError
from bench.harness.estimate import format_estimate, load_speed_table, options_key, record_measurements
from bench.harness.experiment_file import load_experiment
from bench.harness.plan import plan_experiment

EXPERIMENT = """\
name: costs
datasets: [{name: shapes}]
methods:
  - {name: cyclegan, options: {width: 16}}
  - {name: unit, train: {iterations: 50}}
  - name: identity
train: {iterations: 100, image_size: 32, seeds: [0, 1]}
"""


@pytest.fixture
def experiment_file(tmp_path):
    path = tmp_path / "costs.yaml"
    path.write_text(EXPERIMENT)
    return path


def test_launcher_keys_are_validated_and_change_no_run(experiment_file):
    plain = load_experiment(experiment_file)
    launched = load_experiment(experiment_file, ["launcher.name=slurm", "launcher.jobs=auto", "launcher.slurm.mem_gb=8",
                                                 "launcher.slurm.sbatch=['--exclusive']"])
    assert launched.launcher.jobs == "auto" and launched.launcher.slurm.sbatch == ("--exclusive",)
    assert [t.run_dir for t in plan_experiment(plain).trainings] == [t.run_dir for t in plan_experiment(launched).trainings]
    assert plan_experiment(launched, overrides=("launcher.jobs=auto",)).results_dir == plan_experiment(plain).results_dir
    for override, message in [("launcher.jobs=0", "at least 1 or 'auto'"), ("launcher.jobs=many", "an integer or one of 'auto'"),
                              ("launcher.name=slurmm", "did you mean 'slurm'"), ("launcher.slurm.sbatch=['-x']", "long sbatch option"),
                              ("launcher.slurm.time_min=0", "at least 1"), ("launcher.threads=null", "launcher.threads: a value is required: an integer")]:
        with pytest.raises(ConfigError, match=message):
            load_experiment(experiment_file, [override])
    with pytest.raises(ConfigError, match="cpus_per_job=1 is less than launcher.threads=2: give each job at least as many"):
        load_experiment(experiment_file, ["launcher.name=slurm", "launcher.threads=2", "launcher.slurm.cpus_per_job=1"])


def _row(method, seconds, device="cpu", options="x", batch=1, size=32):
    return {"method": method, "image_size": size, "batch_size": batch, "options_key": options, "options": "{}",
            "device": device, "device_name": "Test GPU" if device == "cuda" else "Test CPU", "threads": 2,
            "seconds_per_iteration": seconds, "measured": "2026-12-02"}


def test_the_estimate_prices_each_run_from_the_measured_table(experiment_file):
    experiment = load_experiment(experiment_file)
    plan = plan_experiment(experiment)
    cyclegan = next(t for t in plan.trainings if t.method.name == "cyclegan")
    exact = options_key(cyclegan.identity["options"])
    table = [_row("cyclegan", 36.0, options=exact), _row("unit", 72.0, options="other"), _row("cyclegan", 3.6, "cuda", exact)]
    text = format_estimate(plan, table)
    # GPU rows win where there are some: 2 seeds x 100 iterations x 3.6 s = 0.2 GPU-hours
    assert "0.2 GPU-hours" in text and "Test GPU" in text
    assert "2.0 CPU-hours" in text          # unit: 2 seeds x 50 iterations x 72 s, measured only on the CPU
    assert "other options than this experiment's" in text and "unit" in text.split("other options")[1]
    assert "2 run(s) without a measurement: 2 x identity (32 px, batch 1)" in text
    assert "holds no measurement" in format_estimate(plan, [])


def test_measurements_are_recorded_and_replaced(tmp_path):
    path = tmp_path / "speed.csv"
    result = {"method": "cyclegan", "image_size": 128, "batch_size": 1, "options_key": "abc", "options": {"width": 8},
              "device": "cuda:0", "device_name": "GPU, with a comma", "threads": 8, "seconds_per_iteration": 0.25}
    record_measurements([result], path)
    record_measurements([{**result, "seconds_per_iteration": 0.125}, {**result, "image_size": 256}], path)
    rows = load_speed_table(path)
    assert sorted((r["image_size"], r["seconds_per_iteration"]) for r in rows) == [(128, 0.125), (256, 0.25)]
    assert rows[0]["device"] == "cuda" and rows[0]["device_name"] == "GPU, with a comma"


def test_dry_run_prints_the_launcher_and_the_cost(experiment_file, capsys):
    from bench.cli import main

    assert main([str(experiment_file), "--dry-run", "--launcher", "slurm", "--set", "launcher.slurm.partition=gpu",
                 "--set", "launcher.slurm.gpus_per_job=2", "--set", "launcher.slurm.check_request=false"]) == 0
    output = capsys.readouterr().out
    assert "6 job(s) as one array" in output and "partition=gpu" in output and "gpus_per_node=2" in output
    assert "Cost estimate" in output and "not compared with the cluster's nodes (launcher.slurm.check_request: false)" in output
    assert main([str(experiment_file), "--dry-run", "--jobs", "2"]) == 0
    assert "local, 2 worker process(es), 1 torch thread(s) each" in capsys.readouterr().out


def test_tensorboard_event_files_hold_losses_learning_rate_and_samples(tmp_path, write_yaml, tiny_dataset):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from bench.cli import main

    path = write_yaml("tb.yaml", f"""\
        name: tb
        output_dir: {tmp_path}/runs
        results_dir: {tmp_path}/results
        datasets: [{{name: tiny}}]
        methods: [{{name: ugatit, options: {{light: true, width: 8}}}}]
        data: {{root: {tiny_dataset.parent}}}
        train: {{iterations: 4, image_size: 32, log_every: 2, sample_every: 4, checkpoint_every: 4, num_workers: 0}}
        eval: {{inception_weights: random}}
        """)
    assert main([str(path), "--no-progress"]) == 0
    [events] = list(tmp_path.glob("runs/tiny/*/tensorboard"))
    board = EventAccumulator(str(events))
    board.Reload()
    tags = board.Tags()
    assert {"lr", "speed/seconds_per_iteration"} <= set(tags["scalars"])
    assert any(tag.startswith("loss/") for tag in tags["scalars"]) and any(tag.startswith("rho/") for tag in tags["scalars"])
    assert [event.step for event in board.Scalars("lr")] == [2, 4]
    assert tags["images"] == ["samples"]


def test_slurm_without_a_cluster_says_what_to_do_instead(experiment_file, monkeypatch, capsys, tmp_path):
    from bench.cli import main

    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.chdir(tmp_path)
    assert main([str(experiment_file), "--launcher", "slurm", "--no-progress", "--set", "train.iterations=1",
                 "--set", "eval.inception_weights=random", "--set", f"data.root={tmp_path / 'data'}"]) == 2
    error = capsys.readouterr().err
    assert "there is no Slurm here (sbatch is not on PATH)" in error and "--launcher local --jobs N" in error
