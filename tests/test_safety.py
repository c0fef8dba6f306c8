"""Faults and attacks on runs and files: planted pickles, torn logs, full disks, copied checkpoints,
removed translations, concurrent writers and the leftovers of killed processes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from conftest import interrupt_at

from bench.cli import main
from bench.core.config import TrainConfig
from bench.core.methods import create_method
from bench.core.train import checkpoint_path, load_checkpoint, train
from bench.core.translate import translate_images
from bench.data.pipeline import StreamSettings, UnpairedTrainingSet
from safeio.files import DiskFullError, UnreadableFileError, load_torch_file, owned_temporary_name

CPU = torch.device("cpu")
CONFIG = TrainConfig(iterations=20, checkpoint_every=5, log_every=1, image_size=16, num_workers=0)


class CreatesAFile:
    """Unpickling this calls open(marker, "w"): the file appears if, and only if, the pickle ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def planted_pickle(tmp_path):
    """(path of a crafted .pth whose unpickling creates a file, the file it would create)."""
    marker = tmp_path / "the-pickle-ran"
    path = tmp_path / "crafted.pth"
    torch.save({"weights": CreatesAFile(marker)}, path)
    return path, marker


@pytest.fixture
def dataset(tiny_dataset):
    return UnpairedTrainingSet(tiny_dataset, StreamSettings(image_size=16, load_size=18, seed=0))


def dummy(seed: int = 0):
    torch.manual_seed(seed)
    return create_method("dummy", train=CONFIG)


def steps_logged(run_dir: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / "stats.jsonl").read_text().splitlines()]


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# ----------------------------------------------------------------------------------------------
# 1. No code from a weights file.


def test_load_torch_file_refuses_a_planted_pickle_and_names_it(planted_pickle):
    path, marker = planted_pickle
    with pytest.raises(UnreadableFileError, match=f"{path}: refused.*io.open.*nothing in it was run"):
        load_torch_file(path, "checkpoint")
    assert not marker.exists()


@pytest.mark.parametrize("entry", ["eval --weights", "eval.inception_weights", "random stand-in cache", "run checkpoint",
                                   "ugatit.translate", "ugatit.compat inspect", "init_from"])
def test_no_entry_point_runs_a_planted_pickle(entry, planted_pickle, tiny_dataset, write_yaml, tmp_path, monkeypatch, capsys):
    path, marker = planted_pickle
    experiment = lambda weights="random", options="{light: true, width: 2, n_res: 1}": write_yaml("exp.yaml", f"""
        name: planted
        datasets: [{{name: tiny, directions: [a2b]}}]
        methods: [{{name: ugatit, options: {options}}}]
        output_dir: {tmp_path / 'runs'}
        results_dir: {tmp_path / 'results'}
        data: {{root: {tmp_path / 'data'}}}
        train: {{iterations: 2, image_size: 16, num_workers: 0}}
        eval: {{inception_weights: {weights}, max_block_size: 3}}
        """)
    if entry == "eval --weights":
        from eval.__main__ import main as eval_main
        code = eval_main(["score", "--real", str(tiny_dataset / "testB"), "--fake", str(tiny_dataset / "testA"),
                          "--weights", str(path), "--no-progress"])
    elif entry == "eval.inception_weights":
        code = main([str(experiment(weights=path)), "--no-progress"])
    elif entry == "random stand-in cache":
        from safeio.files import cache_root
        monkeypatch.setenv("UGATIT_BENCH_CACHE", str(tmp_path / "planted-cache"))   # not the session's cache
        planted = cache_root() / "weights" / "inception-random-seed0.pth"
        planted.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, planted)
        code = main([str(experiment()), "--no-progress"])
    elif entry == "run checkpoint":
        from bench.harness.experiment_file import load_experiment
        from bench.harness.plan import plan_experiment
        run_dir = plan_experiment(load_experiment(experiment())).trainings[0].run_dir
        checkpoint_path(run_dir).parent.mkdir(parents=True)
        shutil.copy(path, checkpoint_path(run_dir))
        code = main([str(experiment()), "--no-progress"])
    elif entry == "ugatit.translate":
        from ugatit.translate import main as translate_main
        code = translate_main([str(path), str(tiny_dataset / "testA"), str(tmp_path / "out"), "--no-progress"])
    elif entry == "ugatit.compat inspect":
        from ugatit.compat import main as compat_main
        code = compat_main(["inspect", str(path)])
    else:
        code = main([str(experiment(options=f"{{light: true, width: 2, n_res: 1, init_from: {path}}}")), "--no-progress"])
    output = capsys.readouterr()
    assert not marker.exists(), "the planted pickle ran"
    assert code != 0
    assert "refused" in output.out + output.err and "Traceback" not in output.err


# ----------------------------------------------------------------------------------------------
# 2. A run that can always resume.


def test_resume_drops_a_torn_last_log_line(dataset, tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    train(dummy(), dataset, full, CONFIG, {}, CPU, progress=False)
    with pytest.raises(KeyboardInterrupt):
        train(interrupt_at(dummy(), 13), dataset, cut, CONFIG, {}, CPU, progress=False)
    with open(cut / "stats.jsonl", "a") as stats:   # the disk filled while this line was written
        stats.write('{"step": 13, "moments_a2b": 0.0')
    outcome = train(dummy(), dataset, cut, CONFIG, {}, CPU, progress=False)
    assert outcome.resumed_from == 10 and steps_logged(cut) == steps_logged(full) == list(range(1, 21))


def test_a_start_without_checkpoint_begins_a_fresh_log(dataset, tmp_path):
    with pytest.raises(KeyboardInterrupt):   # killed before the first checkpoint (at 5)
        train(interrupt_at(dummy(), 4), dataset, tmp_path, CONFIG, {}, CPU, progress=False)
    assert steps_logged(tmp_path) == [1, 2, 3]
    train(dummy(), dataset, tmp_path, CONFIG, {}, CPU, progress=False)
    assert steps_logged(tmp_path) == list(range(1, 21))


def test_a_really_full_disk_stops_training_cleanly_and_the_run_resumes_after(dataset, small_tmpfs):
    run_dir = small_tmpfs / "run"
    filler = small_tmpfs / "filler"
    train(dummy(), dataset, run_dir, TrainConfig(**{**CONFIG.__dict__, "iterations": 5}), {}, CPU, progress=False)
    good = checkpoint_path(run_dir).read_bytes()
    free = shutil.disk_usage(small_tmpfs).free
    filler.write_bytes(b"\0" * (free - 4096))   # leaves less room than a checkpoint needs
    with pytest.raises(DiskFullError, match=f"no space left on device while writing {run_dir}"):
        train(dummy(), dataset, run_dir, CONFIG, {}, CPU, progress=False)
    assert checkpoint_path(run_dir).read_bytes() == good
    assert [p.name for p in checkpoint_path(run_dir).parent.iterdir()] == ["latest.pt"]
    filler.unlink()
    outcome = train(dummy(), dataset, run_dir, CONFIG, {}, CPU, progress=False)
    assert outcome.resumed_from == 5 and steps_logged(run_dir) == list(range(1, 21))


def test_run_bench_reports_a_full_disk_in_one_line(tiny_dataset, write_yaml, tmp_path, fill_disk, capsys):
    path = write_yaml("exp.yaml", f"""
        name: full
        datasets: [{{name: tiny}}]
        methods: [{{name: dummy}}, {{name: identity}}]
        output_dir: {tmp_path / 'runs'}
        results_dir: {tmp_path / 'results'}
        data: {{root: {tmp_path / 'data'}}}
        train: {{iterations: 4, image_size: 16, num_workers: 0}}
        eval: {{inception_weights: random, max_block_size: 3}}
        """)
    from eval.inception import resolve_weights
    resolve_weights("random")   # the stand-in weights are written before the disk fills
    fill_disk(capacity=100)
    assert main([str(path), "--no-progress"]) == 2
    captured = capsys.readouterr()
    error = captured.err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: no space left on device while writing")
    assert "[2/2]" not in captured.out   # a full disk stops the experiment: the next run is not started


# ----------------------------------------------------------------------------------------------
# 3. Results that cannot mix up.


@pytest.fixture
def two_seeds(tiny_dataset, write_yaml, tmp_path, monkeypatch):
    monkeypatch.setenv("UGATIT_BENCH_CACHE", str(tmp_path / "cache"))
    return write_yaml("seeds.yaml", f"""
        name: seeds
        datasets: [{{name: tiny, directions: [a2b]}}]
        methods: [{{name: dummy}}]
        output_dir: {tmp_path / 'runs'}
        results_dir: {tmp_path / 'results'}
        data: {{root: {tmp_path / 'data'}}}
        train: {{iterations: 4, image_size: 16, seeds: [0, 1], checkpoint_every: 2, num_workers: 0}}
        eval: {{inception_weights: random, max_block_size: 3}}
        tables: [table3]
        """)


def run_folders(tmp_path) -> dict[int, Path]:
    return {int(p.name.split("-s")[1].split("-")[0]): p for p in (tmp_path / "runs" / "tiny").iterdir()}


def test_removed_translations_are_made_again_not_scored_short(two_seeds, tmp_path, capsys):
    assert main([str(two_seeds), "--only", "s0", "--no-progress"]) == 0
    folder = run_folders(tmp_path)[0] / "translations" / "a2b"
    for path in sorted(folder.glob("*.png"))[:2]:
        path.unlink()
    capsys.readouterr()
    assert main([str(two_seeds), "--only", "s0", "--no-progress"]) == 0
    assert "translate a2b" in capsys.readouterr().out   # the same translations again: the score still holds
    assert len(list(folder.glob("*.png"))) == 6
    record = json.loads((run_folders(tmp_path)[0] / "result.json").read_text())
    assert [s["counts"]["fake"] for s in record["directions"]["a2b"]["scores"].values()] == [6]


def test_a_checkpoint_copied_into_another_runs_folder_is_refused(two_seeds, tmp_path, capsys):
    assert main([str(two_seeds), "--only", "s0", "--no-progress"]) == 0
    from bench.harness.experiment_file import load_experiment
    from bench.harness.plan import plan_experiment
    seed1 = plan_experiment(load_experiment(two_seeds)).trainings[1].run_dir
    checkpoint_path(seed1).parent.mkdir(parents=True)
    shutil.copy(checkpoint_path(run_folders(tmp_path)[0]), checkpoint_path(seed1))
    capsys.readouterr()
    assert main([str(two_seeds), "--only", "s1", "--no-progress"]) == 2   # a known failure: exit 2
    output = capsys.readouterr().out
    assert "belongs to another run" in output and "seed: 0 in the checkpoint, 1 in this run" in output
    assert not (seed1 / "result.json").exists()


def test_two_translations_into_one_folder_at_once(tiny_dataset, tmp_path):
    output = tmp_path / "out" / "a2b"
    errors = []

    def slow_identity(images):
        time.sleep(0.05)
        return images

    def translate():
        try:
            translate_images(slow_identity, tiny_dataset / "testA", output, 16, CPU, batch_size=2, progress=False)
        except Exception as error:  # noqa: BLE001 - the test reports any failure
            errors.append(error)

    threads = [threading.Thread(target=translate) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(list(output.glob("*.png"))) == 6 and (output / "translations.json").is_file()
    assert [p.name for p in output.parent.iterdir()] == ["a2b"]   # no temporary folder left


# ----------------------------------------------------------------------------------------------
# 4. Leftovers of killed processes.


def test_a_new_start_removes_temporary_files_of_dead_processes_only(dataset, tmp_path):
    folder = checkpoint_path(tmp_path).parent
    folder.mkdir(parents=True)
    host = socket.gethostname()
    stale = folder / f".latest.pt.{dead_pid()}@{host}.0badc0de.tmp"
    alive = folder / f".latest.pt.{os.getppid()}@{host}.0000cafe.tmp"
    other_host = folder / f".latest.pt.{dead_pid()}@not-{host}.00c0ffee.tmp"
    for path in (stale, alive, other_host):
        path.write_bytes(b"a killed checkpoint write")
    train(dummy(), dataset, tmp_path, CONFIG, {}, CPU, progress=False)
    assert sorted(p.name for p in folder.iterdir()) == sorted(["latest.pt", alive.name, other_host.name])


def test_owned_temporary_names_are_unique_and_say_whose_they_are():
    names = {owned_temporary_name(".latest.pt", ".tmp") for _ in range(100)}
    assert len(names) == 100
    assert all(f".{os.getpid()}@{socket.gethostname()}." in name for name in names)


def test_checkpoint_load_errors_name_the_file(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(UnreadableFileError, match=f"{junk}: not a readable checkpoint"):
        load_checkpoint(junk)
