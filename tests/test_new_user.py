"""What a new user hit: runs trained twice, tables overwritten, weights hashed by their folder, files
only their owner could read, messages naming the wrong setting, footnotes missing."""

from __future__ import annotations

import csv
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.cli import main
from bench.harness.experiment_file import load_experiment
from bench.harness.plan import plan_experiment


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def experiment(write_yaml, tmp_path, name="exp.yaml", methods="[{name: dummy}, {name: identity}]", train="iterations: 4",
               output="runs", dataset="tiny", image_size=16) -> Path:
    return write_yaml(name, f"""
        name: user
        datasets: [{{name: {dataset}}}]
        methods: {methods}
        output_dir: {tmp_path / output}
        results_dir: {tmp_path / 'results'}
        data: {{root: {tmp_path / 'data'}}}
        train: {{{train}, image_size: {image_size}, checkpoint_every: 2, log_every: 2, num_workers: 0}}
        eval: {{inception_weights: random, max_block_size: 3, cache_dir: {tmp_path / 'cache'}}}
        tables: [table3]
        """)


# 1. The same computation trains once.


def test_equal_computations_share_one_run_whatever_the_yaml_spelled(tiny_dataset, write_yaml, tmp_path):
    spelled = {
        "reference": ("[{name: dummy}, {name: cyclegan, options: {width: 2, n_blocks: 1}}]", "iterations: null"),
        "explicit": ("[{name: dummy, label: My colour map, options: {lr: 0.01}},"
                     " {name: cyclegan, label: CG, options: {width: 2, n_blocks: 1, pool_size: 50}}]",
                     "iterations: null, lr: null, schedule: method"),
    }
    folders = {}
    for name, (methods, train) in spelled.items():
        plan = plan_experiment(load_experiment(experiment(write_yaml, tmp_path, f"{name}.yaml", methods, train, image_size=32)))
        folders[name] = [t.run_dir for t in plan.trainings]
    assert folders["reference"] == folders["explicit"]
    # The reference lengths resolve: CycleGAN's is 200 epochs of max(12, 12) training images.
    plan = plan_experiment(load_experiment(experiment(write_yaml, tmp_path, "x.yaml", spelled["reference"][0],
                                                      "iterations: 2400", image_size=32)))
    cyclegan_reference = plan_experiment(load_experiment(experiment(write_yaml, tmp_path, "y.yaml", spelled["reference"][0],
                                                                    "iterations: null", image_size=32))).trainings[1]
    assert cyclegan_reference.train.iterations == 2400 and plan.trainings[1].run_dir == cyclegan_reference.run_dir
    # What does change the computation gives another folder.
    other = plan_experiment(load_experiment(experiment(write_yaml, tmp_path, "z.yaml", "[{name: dummy, options: {lr: 0.02}}]",
                                                       "iterations: null", image_size=32)))
    assert other.trainings[0].run_dir != folders["reference"][0]


def test_a_run_finished_in_another_output_folder_is_reused(tiny_dataset, write_yaml, tmp_path, capsys):
    first = experiment(write_yaml, tmp_path, "first.yaml", output="runs-a")
    assert main([str(first), "--no-progress"]) == 0
    second = experiment(write_yaml, tmp_path, "second.yaml", output="runs-b")
    capsys.readouterr()
    assert main([str(second), "--dry-run"]) == 0
    assert f"(trained in {tmp_path / 'runs-a'}" in capsys.readouterr().out
    assert main([str(second), "--no-progress"]) == 0
    output = capsys.readouterr().out
    # Adopted into this experiment's own folder (bench/harness/reuse.py), translated and scored there.
    assert "train 0->" not in output and "reuse 4 steps" in output
    assert len(list((tmp_path / "runs-b").glob("tiny/*/translations/a2b/*.png"))) == 2 * 6
    assert main([str(second), "--no-progress", "--no-reuse", "--set", "output_dir=" + str(tmp_path / "runs-c")]) == 0
    assert "train 0->4" in capsys.readouterr().out and (tmp_path / "runs-c").is_dir()


# 2. Overrides and --only do not replace an experiment's tables.


def test_overrides_get_their_own_results_folder_and_only_keeps_scored_rows(tiny_dataset, write_yaml, tmp_path, capsys):
    path = experiment(write_yaml, tmp_path)
    assert main([str(path), "--no-progress"]) == 0
    table = tmp_path / "results" / "user" / "table3.csv"
    rows = read_csv(table)
    assert {r["model"] for r in rows} == {"dummy", "Identity (no translation)"}

    assert main([str(path), "--set", "train.iterations=6", "--only", "dummy", "--no-progress"]) == 0
    assert read_csv(table) == rows   # untouched
    trial = read_csv(tmp_path / "results" / "user+train.iterations=6" / "table3.csv")
    assert [r["model"] for r in trial] == ["dummy"] * 2

    # An operational override (workers, logging) is the same experiment: same folder, same tables.
    assert main([str(path), "--set", "train.log_every=1", "--only", "identity", "--no-progress"]) == 0
    assert read_csv(table) == rows
    assert not (tmp_path / "results" / "user+train.log_every=1").exists()


# 3. The random stand-in weights are one identity wherever they are cached.


def test_random_weights_hash_the_same_in_every_cache_folder(tmp_path, monkeypatch):
    from eval.inception import resolve_weights
    hashes = []
    for folder in ("one", "two"):
        monkeypatch.setenv("UGATIT_BENCH_CACHE", str(tmp_path / folder))
        hashes.append(resolve_weights("random").sha256)
    assert hashes[0] == hashes[1] and hashes[0].startswith("random-")


# 4. Files get the mode a normal write would give.


def test_written_files_are_readable_by_others_under_umask_022(tiny_dataset, write_yaml, tmp_path):
    old = os.umask(0o022)
    try:
        assert main([str(experiment(write_yaml, tmp_path)), "--no-progress"]) == 0
    finally:
        os.umask(old)
    run = next((tmp_path / "runs" / "tiny").glob("dummy-*"))
    files = [run / "config.json", run / "result.json", run / "checkpoints" / "latest.pt", run / "training.json",
             tmp_path / "results" / "user" / "table3.csv", tmp_path / "results" / "user" / "table3.md",
             next((run / "translations" / "a2b").glob("*.png"))]
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    for folder in (run / "translations" / "a2b", tmp_path / "data" / "tiny"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o755, folder


# 6. The result is the first thing a user sees.


def test_a_run_ends_with_the_tables_numbers(tiny_dataset, write_yaml, tmp_path, capsys):
    assert main([str(experiment(write_yaml, tmp_path)), "--no-progress"]) == 0
    tail = capsys.readouterr().out.split("wrote ")[-1]
    assert "Table 3, KID x100 ± std x100, lower is better" in tail
    table = read_csv(tmp_path / "results" / "user" / "table3.csv")
    for row in table:
        assert f"{float(row['kid']):.2f} ± {float(row['std']):.2f}" in tail


# 7. Messages name the flag, and fail early.


def test_eval_messages_name_flags_and_records_stay_out_of_datasets(tiny_dataset, tmp_path, monkeypatch, capsys):
    from eval.__main__ import main as eval_main
    fake = tmp_path / "fake"
    fake.mkdir()
    for source in sorted((tiny_dataset / "testB").iterdir()):
        (fake / source.name).write_bytes(source.read_bytes())
    (fake / "broken.png").write_bytes(b"not a png")
    base = ["score", "--real", str(tiny_dataset / "testB"), "--fake", str(fake), "--weights", "random", "--no-progress",
            "--max-block-size", "3", "--cache-dir", str(tmp_path / "cache")]
    assert eval_main(base) == 2
    error = capsys.readouterr().err
    assert "pass --skip-bad-images" in error and "data.on_bad_image" not in error

    assert eval_main(base[:5] + ["--weights", str(tmp_path / "nope.pth")] + base[7:]) == 2
    assert "with --weights" in capsys.readouterr().err

    (fake / "broken.png").unlink()
    fresh_cache = ["--cache-dir", str(tmp_path / "fresh-cache")]
    assert eval_main(base + fresh_cache + ["--protocol", "subsets"]) == 2   # 6 images, subsets of 1000: refused early
    assert "too few samples for the subsets protocol" in capsys.readouterr().err
    assert not (tmp_path / "fresh-cache").exists()   # no feature was extracted

    monkeypatch.chdir(tmp_path)
    assert eval_main(base) == 0
    assert [p.name.split("-")[-2:] for p in tmp_path.glob("score-*.json")] == [["fake", "kid_paper_block3.json"]]
    assert not list(fake.parent.glob("fake-*.json")) and not list(tiny_dataset.rglob("*.json"))[1:]


def test_ctrl_c_ends_in_one_line_saying_what_was_kept(tiny_dataset, write_yaml, tmp_path, monkeypatch, capsys):
    from bench.core.reference_methods import DummyColourMethod

    def interrupted(self, real_a, real_b):
        raise KeyboardInterrupt

    monkeypatch.setattr(DummyColourMethod, "train_step", interrupted)
    assert main([str(experiment(write_yaml, tmp_path)), "--no-progress"]) == 130
    error = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(error) == 1 and "interrupted" in error[0] and "run the same command again to resume" in error[0]


# 8. A failed download leaves nothing behind.


def test_a_failed_download_leaves_no_empty_downloads_folder(tmp_path):
    from bench.data.datasets import ArchiveSource, DatasetInfo
    from bench.data.download import DownloadError, install_dataset
    info = DatasetInfo(name="d", domain_a="a", domain_b="b", sources=(ArchiveSource("http://127.0.0.1:9/nothing.zip"),))
    with pytest.raises(DownloadError):
        install_dataset(info, tmp_path, progress=False, log=lambda _: None)
    assert list(tmp_path.iterdir()) == []


# 9. One translate command for every method's checkpoints.


def test_bench_translate_reads_the_method_from_the_checkpoint(tiny_dataset, write_yaml, tmp_path, capsys):
    from bench.cli.translate import main as translate_main
    path = experiment(write_yaml, tmp_path, methods="[{name: cyclegan, options: {width: 2, n_blocks: 1}}]",
                      train="iterations: 2", image_size=32)
    assert main([str(path), "--no-progress"]) == 0
    run = next((tmp_path / "runs" / "tiny").glob("cyclegan-*"))
    out = tmp_path / "out"
    assert translate_main([str(run / "checkpoints" / "latest.pt"), str(tiny_dataset / "testB"), str(out),
                           "--direction", "b2a", "--no-progress"]) == 0
    made = sorted(out.glob("*.png"))
    assert len(made) == 6
    for ours, theirs in zip(made, sorted((run / "translations" / "b2a").glob("*.png"))):
        assert Image.open(ours).tobytes() == Image.open(theirs).tobytes()
    assert json.loads((out / "translations.json").read_text())["method"] == "cyclegan"


# 10. Figures a person can read.


def test_figures_skip_methods_without_losses_and_sheets_have_titles(tiny_dataset, write_yaml, tmp_path):
    path = experiment(write_yaml, tmp_path, methods="[{name: identity}, {name: ugatit, options: {light: true, width: 2, n_res: 1}}]",
                      train="iterations: 2, sample_every: 2")
    path.write_text(path.read_text().replace("tables: [table3]", "tables: [table1, table3]"))
    assert main([str(path), "--no-progress"]) == 0
    curves = list((tmp_path / "results" / "user" / "figures" / "curves").glob("*.png"))
    assert [p.name.split("-")[1] for p in curves] == ["u"]   # U-GAT-IT only: the identity has no losses
    sheet = next((tmp_path / "runs" / "tiny").glob("ugatit-*")) / "samples" / "step_0000002.png"
    with Image.open(sheet) as image:
        pixels = np.asarray(image.convert("L"))
    # 16 px tiles (8 rows: 4 test images a domain) are enlarged 6x to 96 px, under a white title band.
    assert image.width == 6 * 18 * 6 + 2 * 6
    header = pixels[:image.height - (8 * 18 + 2) * 6]
    assert header.shape[0] >= 13 and (header < 100).sum() > 50 and (header == 255).mean() > 0.7


def test_rho_is_grouped_by_direction_and_layer_kind():
    from eval.figures import _rho_groups
    keys = [f"rho/{d}/decoder.{i}.norm{j}" for d in ("a2b", "b2a") for i in range(4) for j in (1, 2)]
    keys += [f"rho/{d}/upsample.{i}" for d in ("a2b", "b2a") for i in (3, 8)]
    groups = _rho_groups(keys)
    assert {name: len(members) for name, members in groups.items()} == {
        "a2b decoder AdaLIN": 8, "b2a decoder AdaLIN": 8, "a2b up-sampling LIN": 2, "b2a up-sampling LIN": 2}


# 13. A test split of another size is footnoted.


def test_a_paper_dataset_with_other_test_counts_is_footnoted(tiny_dataset, write_yaml, tmp_path):
    import shutil
    shutil.copytree(tiny_dataset, tmp_path / "data" / "horse2zebra")
    path = experiment(write_yaml, tmp_path, methods="[{name: identity}]", dataset="horse2zebra")
    assert main([str(path), "--no-progress"]) == 0
    notes = {r["task"]: r["notes"] for r in read_csv(tmp_path / "results" / "user" / "table3.csv")}
    assert "horse2zebra: 6 source and 6 target test images here, 120 and 140 in the paper" in notes["horse2zebra"]
    assert "zebra2horse: 6 source and 6 target test images here, 140 and 120 in the paper" in notes["zebra2horse"]
    markdown = (tmp_path / "results" / "user" / "table3.md").read_text()
    assert "120 and 140 in the paper; KID depends on the number of images: not comparable" in markdown


def test_license_and_citation_are_there():
    root = Path(__file__).resolve().parent.parent
    assert "MIT License" in (root / "LICENSE").read_text()
    import yaml
    citation = yaml.safe_load((root / "CITATION.cff").read_text())
    assert citation["preferred-citation"]["title"].startswith("U-GAT-IT") and citation["license"] == "MIT"
