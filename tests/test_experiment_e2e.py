"""A reduced smoke experiment end to end through run_bench.py: train, translate, score with the real KID
code path (a random Inception), tables and figures; a second invocation recomputes nothing; a run
killed mid-training resumes where it stopped; --only, --eval-only, --tables-only, external results."""

from __future__ import annotations

import csv
import json
import re
import shutil

import pytest

from bench.cli import main

TINY_UGATIT = "{light: true, width: 2, n_res: 1}"


@pytest.fixture
def experiment(tiny_dataset, write_yaml, tmp_path, monkeypatch):
    """Two Table 1 variants and the identity reference on a 32 px dataset with 6 test images per domain."""
    monkeypatch.setenv("UGATIT_BENCH_CACHE", str(tmp_path / "cache"))
    return write_yaml("e2e.yaml", f"""
name: e2e
datasets: [{{name: tiny}}]
methods:
  - {{name: ugatit, options: {TINY_UGATIT}}}
  - {{name: ugatit, options: {{light: true, width: 2, n_res: 1, norm: ln}}}}
  - {{name: identity}}
output_dir: {tmp_path / 'runs'}
results_dir: {tmp_path / 'results'}
data: {{root: {tmp_path / 'data'}}}
train: {{iterations: 6, image_size: 16, checkpoint_every: 3, log_every: 2, sample_every: 3, num_workers: 0}}
eval: {{protocol: paper, max_block_size: 3, inception_weights: random}}
tables: [table1, table3]
""")


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def work_column(output: str) -> dict[str, str]:
    rows = {}
    for line in output.splitlines():
        match = re.match(r"^(U-GAT-IT(?: w/ LN)?|Identity \(no translation\))\s+tiny\s+0\s+(\S+(?: \S+)?)\s+[\d.]+\s+(.*?)\s{2,}", line)
        if match:
            rows[match.group(1)] = match.group(3)
    return rows


def test_reduced_smoke_experiment_end_to_end(experiment, tmp_path, capsys):
    assert main([str(experiment), "--no-progress"]) == 0
    first = capsys.readouterr().out
    work = work_column(first)
    assert set(work) == {"U-GAT-IT", "U-GAT-IT w/ LN", "Identity (no translation)"}
    assert all(w.startswith("train 0->6") and "score b2a" in w for w in work.values())

    results = tmp_path / "results" / "e2e"
    table1 = read_csv(results / "table1.csv")
    assert {(r["model"], r["task"]) for r in table1} == {(m, t) for m in ("U-GAT-IT", "U-GAT-IT w/ LN") for t in ("tiny_a2b", "tiny_b2a")}
    table3 = read_csv(results / "table3.csv")
    assert {r["model"] for r in table3} == {"U-GAT-IT", "Identity (no translation)"}   # ablations only in Table 1
    for row in table1 + table3:
        assert float(row["kid"]) == pytest.approx(float(row["kid"]))   # a number
        assert row["weights"] == "non-official" and row["comparable"] == "False" and row["iterations"] == "6"
        assert row["n_fake"] == "6" and row["metric"] == "kid_paper_block3"
    markdown = (results / "table1.md").read_text()
    assert "| Model | tiny_a2b | tiny_b2a |" in markdown and "not comparable with the paper" in markdown
    assert "trained 6 iterations (reference length: 1,000,000)" in markdown and markdown.count("**") >= 4
    assert "--tables-only" in markdown
    assert "Bold: the best KID of each column, and every model whose difference from it is not significant" in markdown
    for row in table1:
        assert row["same_as_best"] in ("True", "False") and 0.0 <= float(row["p_vs_best"]) <= 1.0
    figures = results / "figures"
    assert (figures / "compare_tiny_a2b.png").exists() and (figures / "compare_tiny_b2a.png").exists()
    assert len(list((figures / "curves").glob("*.png"))) == 2   # the identity has no losses to draw
    run = next((tmp_path / "runs" / "tiny").glob("ugatit-*-light-s0-*"))
    assert len(list((run / "translations" / "a2b" / "attention").glob("*.png"))) == 6

    # A second invocation recomputes nothing.
    assert main([str(experiment), "--no-progress"]) == 0
    assert set(work_column(capsys.readouterr().out).values()) == {"nothing to do"}
    assert read_csv(results / "table1.csv") == table1

    # Regenerating the tables alone is a command too.
    (results / "table3.md").unlink()
    assert main([str(experiment), "--tables-only"]) == 0
    assert (results / "table3.md").exists()


class Interrupt(BaseException):
    """Stands for a kill: not an Exception, so the runner does not catch it as a failed run."""


@pytest.fixture
def killed_ugatit_run(experiment, monkeypatch, capsys):
    """Runs the U-GAT-IT variant of `experiment` and kills it at its 5th iteration (after the checkpoint at 3)."""
    from ugatit.method import UGATITMethod

    real_step = UGATITMethod.train_step
    calls = {"n": 0}

    def killed_at_step_5(self, real_a, real_b):
        calls["n"] += 1
        if calls["n"] == 5:
            raise Interrupt
        return real_step(self, real_a, real_b)

    monkeypatch.setattr(UGATITMethod, "train_step", killed_at_step_5)
    with pytest.raises(Interrupt):
        main([str(experiment), "--only", "*light-s0-*", "--no-progress"])
    monkeypatch.setattr(UGATITMethod, "train_step", real_step)
    capsys.readouterr()


def test_a_run_killed_mid_training_resumes_where_it_stopped(experiment, killed_ugatit_run, capsys):
    assert main([str(experiment), "--only", "*light-s0-*", "--no-progress"]) == 0
    assert work_column(capsys.readouterr().out)["U-GAT-IT"].startswith("train 3->6")


def test_only_eval_only_and_a_changed_setting(experiment, tmp_path, capsys):
    assert main([str(experiment), "--only", "identity", "--no-progress"]) == 0
    assert set(work_column(capsys.readouterr().out)) == {"Identity (no translation)"}
    # --eval-only trains nothing; runs without a checkpoint are reported as not trained.
    assert main([str(experiment), "--eval-only", "--no-progress"]) == 1
    output = capsys.readouterr().out
    assert "not trained" in output and "run without --eval-only" in output
    # A changed setting is a different run, never a silent reuse.
    assert main([str(experiment), "--only", "identity", "--set", "train.iterations=7", "--no-progress"]) == 0
    assert work_column(capsys.readouterr().out)["Identity (no translation)"].startswith("train 0->7")
    assert main([str(experiment), "--only", "no-such-run"]) == 2


def test_eval_only_scores_a_partly_trained_checkpoint(experiment, killed_ugatit_run, tmp_path, capsys):
    assert main([str(experiment), "--only", "*light-s0-*", "--eval-only", "--no-progress"]) == 0
    assert "translate a2b, score a2b" in work_column(capsys.readouterr().out)["U-GAT-IT"]
    table1 = read_csv(tmp_path / "results" / "e2e" / "table1.csv")
    assert [r["iterations"] for r in table1 if r["model"] == "U-GAT-IT"] == ["3", "3"]


def test_external_results_are_scored_and_tabled(tiny_dataset, write_yaml, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("UGATIT_BENCH_CACHE", str(tmp_path / "cache"))
    outputs = tmp_path / "authors_outputs"
    shutil.copytree(tiny_dataset / "testB", outputs)   # stands for an author's translations of testA
    path = write_yaml("ext.yaml", f"""
name: ext
datasets: [{{name: tiny, directions: [a2b]}}]
methods: [{{name: identity}}]
external: [{{label: "Real B (authors' code)", dataset: tiny, direction: a2b, folder: {outputs}, note: "copied test images"}}]
output_dir: {tmp_path / 'runs'}
results_dir: {tmp_path / 'results'}
data: {{root: {tmp_path / 'data'}}}
train: {{iterations: 1, image_size: 16, num_workers: 0}}
eval: {{protocol: paper, max_block_size: 3, inception_weights: random}}
tables: [table3]
""")
    assert main([str(path), "--no-progress"]) == 0
    rows = {r["model"]: r for r in read_csv(tmp_path / "results" / "ext" / "table3.csv")}
    assert set(rows) == {"Identity (no translation)", "Real B (authors' code)"}
    # Real target images score far better than untranslated source images.
    assert float(rows["Real B (authors' code)"]["kid"]) < float(rows["Identity (no translation)"]["kid"])
    assert "copied test images" in rows["Real B (authors' code)"]["notes"]
    assert json.loads(next((tmp_path / "results" / "ext" / "external").glob("*.json")).read_text())["task"] == "tiny_a2b"


def test_changed_translations_are_scored_again(experiment, tmp_path, capsys):
    assert main([str(experiment), "--only", "identity", "--no-progress"]) == 0
    run = next((tmp_path / "runs" / "tiny").glob("identity-*"))
    before = json.loads((run / "result.json").read_text())["directions"]["a2b"]["scores"]
    first, second = sorted((run / "translations" / "a2b").glob("*.png"))[:2]
    first.write_bytes(second.read_bytes())   # one translation replaced by another image, same name
    capsys.readouterr()
    assert main([str(experiment), "--only", "identity", "--no-progress"]) == 0
    assert "score a2b" in work_column(capsys.readouterr().out)["Identity (no translation)"]
    after = json.loads((run / "result.json").read_text())["directions"]["a2b"]["scores"]
    assert [s["kid_x100"] for s in after.values()] != [s["kid_x100"] for s in before.values()]


def test_translations_of_a_partly_trained_model_are_replaced_after_more_training(experiment, killed_ugatit_run,
                                                                                   tmp_path, capsys):
    """--eval-only at step 3, then the full run to step 6: translated and scored again, and the table shows step 6."""
    assert main([str(experiment), "--only", "*light-s0-*", "--eval-only", "--no-progress"]) == 0
    table = lambda: {r["task"]: r for r in read_csv(tmp_path / "results" / "e2e" / "table1.csv") if r["model"] == "U-GAT-IT"}
    at_step_3 = table()
    assert {r["iterations"] for r in at_step_3.values()} == {"3"}
    capsys.readouterr()
    assert main([str(experiment), "--only", "*light-s0-*", "--no-progress"]) == 0
    work = work_column(capsys.readouterr().out)["U-GAT-IT"]
    assert work.startswith("train 3->6") and "translate a2b" in work and "score a2b" in work
    at_step_6 = table()
    assert {r["iterations"] for r in at_step_6.values()} == {"6"}
    assert at_step_6["tiny_a2b"]["kid"] != at_step_3["tiny_a2b"]["kid"]
    run = next((tmp_path / "runs" / "tiny").glob("ugatit-*-light-s0-*"))
    assert json.loads((run / "translations" / "a2b" / "translations.json").read_text())["step"] == 6
