"""Nothing crosses from one experiment's data or folders into another's, and every known failure is
one line: two checkouts sharing one cache, other images under a dataset's name, a torn stats line in
another run, known failures inside runs (exit 2, one line, no traceback, the other runs finish), the
study's out-of-turn votes and linked files, and the small messages (a FIFO, a full disk)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench.cli import main

REPO = Path(__file__).resolve().parent.parent

# Relative folders, as in a checkout: runs/, results/ and data/ beside the experiment file.
RELATIVE_EXPERIMENT = """
name: two
datasets: [{name: tiny}]
methods: [{name: dummy}, {name: identity}]
output_dir: runs
results_dir: results
data: {root: data}
train: {iterations: 4, image_size: 16, checkpoint_every: 2, log_every: 1, num_workers: 0}
eval: {inception_weights: random, max_block_size: 3}
tables: [table3]
"""


def file_hashes(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


# ----------------------------------------------------------------------------------------------
# 1. Two checkouts, one cache.


def test_two_checkouts_with_one_cache_both_succeed_and_never_touch_each_other(tiny_dataset, tmp_path, monkeypatch, capsys):
    clones = [tmp_path / "clone1", tmp_path / "clone2"]
    for clone in clones:
        shutil.copytree(tiny_dataset, clone / "data" / "tiny")
        (clone / "exp.yaml").write_text(RELATIVE_EXPERIMENT)
    monkeypatch.chdir(clones[0])
    assert main(["exp.yaml", "--no-progress"]) == 0
    first = file_hashes(clones[0])

    monkeypatch.chdir(clones[1])
    capsys.readouterr()
    assert main(["exp.yaml", "--dry-run"]) == 0
    assert f"(trained in {clones[0] / 'runs' / 'tiny'}" in capsys.readouterr().out
    assert main(["exp.yaml", "--no-progress"]) == 0
    output = capsys.readouterr().out
    assert "reuse 4 steps" in output and "train 0->" not in output

    assert file_hashes(clones[0]) == first   # the first checkout's files: byte-identical, none added
    for table in ("table3.csv", "table3.md"):
        assert (clones[1] / "results" / "two" / table).read_bytes() == (clones[0] / "results" / "two" / table).read_bytes()
    runs = sorted((clones[1] / "runs" / "tiny").iterdir())
    assert len(runs) == 2 and all(len(list((run / "translations" / "a2b").glob("*.png"))) == 6 for run in runs)
    assert main(["exp.yaml", "--status"]) == 0
    assert capsys.readouterr().out.count(f"reused the run trained in {clones[0] / 'runs' / 'tiny'}") == 2
    assert main(["exp.yaml", "--no-progress"]) == 0   # and again: nothing to do, here
    assert "nothing to do" in capsys.readouterr().out and file_hashes(clones[0]) == first


# ----------------------------------------------------------------------------------------------
# 2. Other images under the same dataset name.


def experiment_file(tmp_path: Path, name: str, data_root: Path, output: str, weights: str = "random", workers: int = 0,
                    methods: str = "[{name: dummy}, {name: identity}]", datasets: str = "[{name: tiny}]") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(f"""
        name: {path.stem}
        datasets: {datasets}
        methods: {methods}
        output_dir: {tmp_path / output}
        results_dir: {tmp_path / 'results'}
        data: {{root: {data_root}}}
        train: {{iterations: 4, image_size: 16, checkpoint_every: 2, log_every: 1, num_workers: {workers}}}
        eval: {{inception_weights: {weights}, max_block_size: 3}}
        tables: [table3]
        """))
    return path


def test_a_run_on_other_images_is_trained_not_reused_and_the_first_results_stay(tiny_dataset, tmp_path, capsys):
    assert main([str(experiment_file(tmp_path, "first.yaml", tiny_dataset.parent, "runs-a")), "--no-progress"]) == 0
    first = file_hashes(tmp_path / "runs-a")

    changed = tmp_path / "other-data"
    shutil.copytree(tiny_dataset, changed / "tiny")
    train_a = sorted((changed / "tiny" / "trainA").iterdir())
    shutil.copy(train_a[1], train_a[0])   # one training image changed
    capsys.readouterr()
    assert main([str(experiment_file(tmp_path, "second.yaml", changed, "runs-b")), "--no-progress"]) == 0
    output = capsys.readouterr().out
    assert output.count("train 0->4") == 2 and "reuse" not in output
    assert file_hashes(tmp_path / "runs-a") == first

    # The same copy with a link to a system file among the training images, under on_bad_image: fail.
    linked = tmp_path / "linked-data"
    shutil.copytree(tiny_dataset, linked / "tiny")
    (linked / "tiny" / "trainA" / "zz-link.png").symlink_to("/etc/passwd")
    assert main([str(experiment_file(tmp_path, "third.yaml", linked, "runs-c")), "--no-progress"]) == 2
    output = capsys.readouterr().out
    assert "reuse" not in output and output.count("zz-link.png: cannot be read as an image") == 2
    assert file_hashes(tmp_path / "runs-a") == first


def test_an_edited_synthetic_dataset_is_generated_again_so_its_settings_name_its_images(tmp_path):
    from conftest import TINY_SPEC

    from bench.data.synthetic import is_current, write_dataset

    folder = write_dataset(tmp_path / "shapes", TINY_SPEC)
    images = sorted((folder / "trainA").iterdir())
    original = images[0].read_bytes()
    shutil.copy(images[1], images[0])
    assert not is_current(folder, TINY_SPEC)
    write_dataset(folder, TINY_SPEC)
    assert images[0].read_bytes() == original and is_current(folder, TINY_SPEC)


def test_a_run_folder_written_before_another_experiment_reuses_it_is_unchanged_by_tables(tiny_dataset, tmp_path, capsys):
    """Scoring of the reusing experiment never rewrites the first experiment's result.json."""
    assert main([str(experiment_file(tmp_path, "first.yaml", tiny_dataset.parent, "runs-a")), "--no-progress"]) == 0
    result = sorted((tmp_path / "runs-a" / "tiny").glob("*/result.json"))
    before = [path.read_bytes() for path in result]
    assert main([str(experiment_file(tmp_path, "second.yaml", tiny_dataset.parent, "runs-b")), "--no-progress",
                 "--set", "eval.max_block_size=2"]) == 0
    assert [path.read_bytes() for path in result] == before
    assert len(list((tmp_path / "runs-b" / "tiny").glob("*/result.json"))) == 2


# ----------------------------------------------------------------------------------------------
# 3. A torn stats line in one run.


def test_a_torn_stats_line_in_one_run_stops_no_other_invocation(tiny_dataset, tmp_path, capsys, caplog):
    path = experiment_file(tmp_path, "torn.yaml", tiny_dataset.parent, "runs")
    assert main([str(path), "--no-progress"]) == 0
    [stats] = [p for p in (tmp_path / "runs" / "tiny").glob("dummy-*/stats.jsonl")]
    with open(stats, "a") as handle:
        handle.write('{"step": 5, "loss_g": 0.')   # killed mid-write
    for arguments in (["--tables-only"], ["--only", "identity"]):
        capsys.readouterr()
        caplog.clear()
        assert main([str(path), "--no-progress", *arguments]) == 0
        output = capsys.readouterr().out
        assert "table3.md" in output and "dummy" in output.split("table3.md")[-1]   # written, then summarised
        curves = list((tmp_path / "results" / "torn" / "figures" / "curves").glob("*.png"))
        assert len(curves) == 1 and "its last line torn or not a record" in caplog.text


# ----------------------------------------------------------------------------------------------
# 4. Known failures inside a run: one line, exit 2, the other runs finish.


def truncated(source: Path, target: Path, keep: float = 0.5) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * keep)])
    return target


@pytest.fixture(scope="module")
def ugatit_checkpoint(tmp_path_factory) -> Path:
    """A real checkpoint of a tiny U-GAT-IT run (for init_from), made once."""
    import torch

    from bench.core.config import TrainConfig
    from bench.core.methods import create_method
    from bench.core.train import CHECKPOINT_FORMAT

    folder = tmp_path_factory.mktemp("checkpoint")
    method = create_method("ugatit", train=TrainConfig(image_size=16, iterations=1), light=True, width=2, n_res=1)
    path = folder / "latest.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "method": "ugatit", "config": {}, "step": 1,
                "method_state": method.state_dict()}, path)
    return path


def run_bench(arguments: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """run_bench.py in a process of its own: the terminal is what a user sees (logging included)."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(REPO / "run_bench.py"), *arguments, "--no-progress", "--threads", "1"],
                          cwd=cwd, env=environment, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("case", ["inception weights", "init_from", "pretrained", "another run's checkpoint",
                                  "truncated JPEG"])
def test_a_known_failure_is_one_line_and_exit_2_and_the_other_runs_finish(case, tiny_dataset, tmp_path, ugatit_checkpoint):
    methods, weights, workers, datasets = "[{name: identity}, {name: dummy}]", "random", 0, "[{name: tiny, directions: [a2b]}]"
    before_any_run = case in ("inception weights", "init_from", "pretrained")
    if case == "inception weights":
        weights = truncated(ugatit_checkpoint, tmp_path / "inception.pth")
        expected = f"{weights}"
    elif case == "init_from":
        start = truncated(ugatit_checkpoint, tmp_path / "start.pt")
        methods = f"[{{name: identity}}, {{name: ugatit, options: {{light: true, width: 2, n_res: 1, init_from: {start}}}}}]"
        expected = f"{start}"
    elif case == "pretrained":
        released = truncated(ugatit_checkpoint, tmp_path / "selfie2anime_params_latest.pt")
        methods = f"[{{name: identity}}, {{name: ugatit, pretrained: {{checkpoint: {released}}}}}]"
        expected = f"{released}"
    elif case == "another run's checkpoint":
        expected = "belongs to another run"
    else:
        bad = tmp_path / "data" / "bad"
        shutil.copytree(tiny_dataset, bad)
        from PIL import Image

        for index, image in enumerate(sorted((bad / "trainA").iterdir())):   # every one truncated: the first batch meets one
            Image.open(image).convert("RGB").resize((64, 64)).save(bad / "trainA" / f"zz{index}.jpg", quality=95)
            truncated(bad / "trainA" / f"zz{index}.jpg", bad / "trainA" / f"zz{index}.jpg", keep=0.6)
            image.unlink()
        datasets = "[{name: tiny, directions: [a2b]}, {name: bad, directions: [a2b]}]"
        methods = "[{name: dummy}]"
        workers = 2   # the bad image is met in a data-loading worker process
        expected = ".jpg: cannot be read as an image"
    path = experiment_file(tmp_path, "known.yaml", tiny_dataset.parent, "runs", weights, workers, methods, datasets)
    if case == "another run's checkpoint":   # the dummy run's folder holds the identity run's checkpoint
        assert main([str(path), "--no-progress", "--only", "identity"]) == 0
        from bench.core.train import checkpoint_path
        from bench.harness.experiment_file import load_experiment
        from bench.harness.plan import plan_experiment

        identity_run, dummy_run = (t.run_dir for t in plan_experiment(load_experiment(path)).trainings)
        checkpoint_path(dummy_run).parent.mkdir(parents=True)
        shutil.copy(checkpoint_path(identity_run), checkpoint_path(dummy_run))
        shutil.rmtree(identity_run)

    result = run_bench([str(path)], cwd=tmp_path)
    terminal = result.stdout + result.stderr
    assert result.returncode == 2, terminal
    assert "Traceback" not in terminal
    failure_lines = [line for line in result.stderr.splitlines() if expected in line]
    assert len(failure_lines) == 1, result.stderr
    if before_any_run:   # refused before anything trained
        assert not list(tmp_path.glob("runs/*/*/checkpoints/latest.pt")), terminal
        assert failure_lines[0].startswith("error: ")
    else:   # the run failed with its one line and its log; the others finished
        assert "(log: " in failure_lines[0] and "FAILED" in result.stdout
        finished = [p for p in tmp_path.glob("runs/*/*/result.json")]
        assert len(finished) == 1, terminal
        [failed] = [run for run in tmp_path.glob("runs/*/*") if not (run / "result.json").exists()]
        assert expected in (failed / "log.txt").read_text()


# ----------------------------------------------------------------------------------------------
# 5 and 6. The study: only the trial shown is answered; only checked images are served.


def study_of(tiny_dataset: Path, tmp_path: Path, candidate: Path):
    from eval.study.build import TaskSource, build_study

    task = TaskSource("tiny_a2b", "polygons", tiny_dataset / "testA", tiny_dataset / "testB", tiny_dataset / "trainB",
                      {"One": candidate})
    return build_study([task], tmp_path / "study.db", per_task=3, seed=0, catch_per_task=1)


def copy_of(folder: Path, target: Path) -> Path:
    shutil.copytree(folder, target)
    return target


def test_a_vote_for_a_trial_other_than_the_one_shown_is_refused_without_a_write(tiny_dataset, tmp_path):
    pytest.importorskip("flask", reason='the study extra is not installed (pip install -e ".[study]")')
    import re

    from eval.study.app import COOKIE, create_app, participant_order

    store = study_of(tiny_dataset, tmp_path, copy_of(tiny_dataset / "testA", tmp_path / "one"))
    client = create_app(store, "secret").test_client()
    assert client.post("/start", data={"consent": "yes"}).status_code == 303
    token = client.get_cookie(COOKIE).value
    shown = re.search(r'data-trial="([^"]+)"', client.get("/trial").get_data(as_text=True)).group(1)
    order = participant_order(token, store.trials())
    assert order[0].id == shown
    later = order[2].id   # a real trial, answered out of turn
    response = client.post("/vote", data={"trial": later, "choice": "0"})
    assert response.status_code == 409 and store.votes() == []
    assert client.post("/vote", data={"trial": shown, "choice": "0"}).status_code == 303 and len(store.votes()) == 1
    assert client.post("/vote", data={"trial": shown, "choice": "1"}).status_code == 303 and len(store.votes()) == 1


def test_the_study_refuses_linked_files_at_build_and_serves_only_the_images_it_checked(tiny_dataset, tmp_path):
    pytest.importorskip("flask", reason='the study extra is not installed (pip install -e ".[study]")')
    from eval.study.app import create_app

    candidate = copy_of(tiny_dataset / "testA", tmp_path / "one")
    stems = sorted(path.name for path in candidate.iterdir())
    (candidate / stems[0]).unlink()
    (candidate / stems[0]).symlink_to("/etc/passwd")   # a translation that is a link to a system file
    store = study_of(tiny_dataset, tmp_path, candidate)
    problems = store.meta("problems")
    assert any(f"{candidate / stems[0]}: a symbolic link to /etc/passwd, outside its folder; left out" in p for p in problems)
    served = {row["path"] for row in store.query("SELECT path FROM images")}
    assert "/etc/passwd" not in served and str(candidate / stems[0]) not in served

    client = create_app(store, "secret").test_client()
    [(image_id, path)] = [(row["id"], Path(row["path"])) for row in store.query("SELECT id, path FROM images")
                          if Path(row["path"]).parent == candidate.resolve()][:1]
    assert client.get(f"/image/{image_id}").status_code == 200
    path.unlink()
    path.symlink_to("/etc/passwd")   # swapped after the build
    assert client.get(f"/image/{image_id}").status_code == 404
    path.unlink()
    shutil.copy(sorted((tiny_dataset / "testB").iterdir())[0], path)   # another image in its place
    assert client.get(f"/image/{image_id}").status_code == 404


# ----------------------------------------------------------------------------------------------
# 7. Small messages.


def test_an_include_that_is_a_fifo_is_named_as_one(write_yaml, tmp_path):
    from bench.core.schema import ConfigError
    from bench.harness.experiment_file import load_experiment

    fifo = tmp_path / "base.yaml"
    os.mkfifo(fifo)
    path = write_yaml("exp.yaml", "include: base.yaml\nname: x\n")
    with pytest.raises(ConfigError, match=f"{fifo}: is a FIFO \\(named pipe\\), not an experiment file \\(included from"):
        load_experiment(path)


def test_a_full_disk_names_the_file_whose_write_failed(tiny_dataset, tmp_path, monkeypatch, capsys):
    """A translation (PIL's own file write) meets a full disk: one line naming that file."""
    import errno

    from PIL import Image

    real_save = Image.Image.save

    def full_disk_save(self, fp, *args, **kwargs):
        if "translations" in str(fp):
            raise OSError(errno.ENOSPC, "No space left on device", str(fp))
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", full_disk_save)
    path = experiment_file(tmp_path, "full.yaml", tiny_dataset.parent, "runs", methods="[{name: identity}]")
    assert main([str(path), "--no-progress"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "no space left on device while writing" in error[0] and "translations" in error[0], error
