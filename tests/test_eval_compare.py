"""The paired comparison of two methods' KIDs: calibrated under the null, powerful under a shift,
exact on hand-checkable cases, deterministic under its seed; and its command line."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from eval.compare import compare_pair, holm
from eval.kid import kid_paper, kid_subsets

D = 16


def features(rng: np.random.Generator, n: int, shift: float = 0.0) -> torch.Tensor:
    return torch.from_numpy(rng.normal(shift, 1.0, size=(n, D)))


def test_the_observed_kids_are_the_protocols_own():
    rng = np.random.default_rng(0)
    real, first, second = features(rng, 40), features(rng, 30, 0.2), features(rng, 30, 0.4)
    pair = compare_pair(real, first, second, resamples=50, device=torch.device("cpu"))
    assert pair.kid_first_x100 == pytest.approx(kid_paper(real, first).mean * 100, rel=1e-9)
    assert pair.kid_second_x100 == pytest.approx(kid_paper(real, second).mean * 100, rel=1e-9)
    assert pair.difference_x100 == pytest.approx(pair.kid_first_x100 - pair.kid_second_x100)
    whole = compare_pair(real, first, second, protocol="subsets", resamples=50, device=torch.device("cpu"))
    # subsets: the unbiased MMD^2 of the whole sets, which one subset of everything gives.
    assert whole.kid_first_x100 == pytest.approx(kid_subsets(real[:30], first, 1, 30).mean * 100, rel=0.5)


def test_identical_translations_differ_by_nothing():
    rng = np.random.default_rng(1)
    real, fake = features(rng, 20), features(rng, 20, 0.5)
    pair = compare_pair(real, fake, fake.clone(), resamples=100, device=torch.device("cpu"))
    assert pair.difference_x100 == 0.0 and pair.p_value == 1.0
    assert pair.ci_low_x100 == 0.0 and pair.ci_high_x100 == 0.0


def test_under_the_null_p_is_uniform_and_the_interval_covers_zero():
    """Two methods whose translations come from one distribution: p-values spread over [0, 1] and the
    95% interval covers the true difference, 0, about 95% of the time."""
    p_values, covered = [], 0
    repeats = 60
    for repeat in range(repeats):
        rng = np.random.default_rng(100 + repeat)
        real, first, second = features(rng, 30), features(rng, 30, 0.3), features(rng, 30, 0.3)
        pair = compare_pair(real, first, second, resamples=199, seed=repeat, device=torch.device("cpu"))
        p_values.append(pair.p_value)
        covered += pair.ci_low_x100 <= 0.0 <= pair.ci_high_x100
    p_values = np.array(p_values)
    assert 0.35 < p_values.mean() < 0.65
    assert (p_values < 0.05).mean() <= 0.12
    assert np.histogram(p_values, bins=4, range=(0, 1))[0].min() >= 8   # no quarter of [0, 1] is empty
    assert covered / repeats >= 0.85


def test_equal_kids_of_different_translations_are_not_called_different():
    """Two methods that miss the real images by the same amount in different ways (a shift along one
    feature axis, or along another: the kernel is symmetric in the axes, so both KIDs are equal). The
    KIDs do not differ, so p must not be small more often than its level: a test of "the translations
    are exchangeable" (a permutation test) rejects here 18 times out of 30."""
    p_values, covered = [], 0
    repeats = 30
    for repeat in range(repeats):
        rng = np.random.default_rng(500 + repeat)
        real, source = features(rng, 40), rng.normal(size=(40, D))
        first, second = source.copy(), source.copy()    # translations of the same source images
        first[:, 0] += 1.0
        second[:, 1] += 1.0
        pair = compare_pair(real, torch.from_numpy(first), torch.from_numpy(second), resamples=199, seed=repeat,
                            device=torch.device("cpu"))
        p_values.append(pair.p_value)
        covered += pair.ci_low_x100 <= 0.0 <= pair.ci_high_x100
        # p < 0.05 when the 95% interval leaves 0 out (but for the +1 terms and the quantiles' interpolation,
        # a few resamples' worth at 199).
        assert (pair.p_value < 0.05) == (not pair.ci_low_x100 <= 0.0 <= pair.ci_high_x100) or 0.03 < pair.p_value < 0.08
    assert (np.array(p_values) < 0.05).mean() <= 0.15
    assert covered / repeats >= 0.85


def test_a_real_difference_is_found():
    rng = np.random.default_rng(7)
    real, good, bad = features(rng, 50), features(rng, 50, 0.05), features(rng, 50, 0.8)
    pair = compare_pair(real, bad, good, resamples=499, device=torch.device("cpu"))
    assert pair.difference_x100 > 0 and pair.p_value < 0.01 and pair.ci_low_x100 > 0


def test_the_seed_fixes_the_result():
    rng = np.random.default_rng(3)
    real, first, second = features(rng, 30), features(rng, 30, 0.2), features(rng, 30, 0.3)
    runs = [compare_pair(real, first, second, resamples=100, seed=seed, device=torch.device("cpu")) for seed in (5, 5, 6)]
    assert runs[0] == runs[1] and runs[0].ci_low_x100 != runs[2].ci_low_x100


def test_holm_by_hand():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5] and holm([0.4, 0.9]) == pytest.approx([0.8, 0.9])


def test_unpaired_sets_are_refused():
    rng = np.random.default_rng(4)
    with pytest.raises(ValueError, match="same source images"):
        compare_pair(features(rng, 20), features(rng, 20), features(rng, 19), device=torch.device("cpu"))


def test_command_line(tiny_dataset, tmp_path, monkeypatch, capsys):
    from eval.__main__ import main
    monkeypatch.chdir(tmp_path)
    untranslated = tmp_path / "untranslated"
    shutil.copytree(tiny_dataset / "testA", untranslated)
    target_like = tmp_path / "target-like"
    target_like.mkdir()
    for source, target in zip(sorted((tiny_dataset / "testA").iterdir()), sorted((tiny_dataset / "trainB").iterdir())):
        shutil.copy(target, target_like / source.name)   # named like the source images it "translates"
    args = ["compare", "--real", str(tiny_dataset / "testB"), "--fake", f"none={untranslated}", "--fake",
            f"good={target_like}", "--weights", "random", "--max-block-size", "3", "--resamples", "200",
            "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    assert main(args) == 0
    output = capsys.readouterr().out
    assert "none" in output and "good" in output and "200 resamples" in output and "Holm" in output
    record = json.loads(next(tmp_path.glob("compare-*.json")).read_text())
    (pair,) = record["pairs"]
    assert pair["first"] == "none" and pair["difference_x100"] > 0 and record["counts"]["fake"] == 6
    # The features came from the cache the first call filled: nothing is decoded again.
    assert main(args) == 0
    (extra := tmp_path / "extra").mkdir()
    shutil.copy(next((tiny_dataset / "testA").iterdir()), extra / "other.png")
    assert main(args[:3] + ["--fake", str(extra)] + args[5:]) == 2
    assert "not translations of the same source images" in capsys.readouterr().err


def test_tables_mark_the_best_and_the_models_not_significantly_worse(tmp_path):
    from types import SimpleNamespace

    from bench.data.synthetic import SyntheticSpec, write_dataset
    from bench.harness.report import mark_significance
    from eval.score import Scorer, ScoreSettings

    data = write_dataset(tmp_path / "data", SyntheticSpec(image_size=32, train_per_domain=1, test_per_domain=40))
    sources = sorted((data / "testA").iterdir())
    folders = {}
    for model, images in (("best", sorted((data / "testB").iterdir())), ("tied", sorted((data / "testB").iterdir())),
                          ("untranslated", sources)):
        folders[model] = tmp_path / model
        folders[model].mkdir()
        for source, image in zip(sources, images):   # one "translation" per source image, named after it
            shutil.copy(image, folders[model] / source.name)
    scorer = Scorer("random", "cpu", cache_dir=tmp_path / "cache", progress=False)
    settings = ScoreSettings(max_block_size=10, with_fid=False)
    rows = []
    for model, folder in folders.items():
        record = scorer.score(data / "testB", folder, settings=settings)
        rows.append({"table": "table3", "task": "a2b", "model": model, "seed": 0, "kid": record["kid_x100"],
                     "protocol": "paper", "folders": record["folders"]})
    mark_significance(rows, SimpleNamespace(scorer=scorer, settings=settings), first_seed=0)
    marks = {row["model"]: row for row in rows}
    best = min(marks, key=lambda m: marks[m]["kid"])
    assert best in ("best", "tied") and marks[best]["same_as_best"] and marks[best]["p_vs_best"] == 1.0
    assert marks["tied"]["same_as_best"] and marks["best"]["same_as_best"]          # identical translations: a tie
    assert not marks["untranslated"]["same_as_best"] and marks["untranslated"]["p_vs_best"] < 0.05
    assert marks["untranslated"]["diff_vs_best_low"] > 0


def test_inputs_are_named_by_their_run_folder_or_by_label(tmp_path):
    from eval.__main__ import _labelled

    runs = tmp_path / "runs" / "shapes"
    cyclegan, unit = runs / "cyclegan-s0-1a2b" / "translations" / "a2b", runs / "unit-s0-3c4d" / "translations" / "a2b"
    assert list(_labelled([str(cyclegan), str(unit)])) == ["cyclegan-s0-1a2b", "unit-s0-3c4d"]
    # Two evaluations of one run: its folder and the direction's.
    mean = runs / "cyclegan-s0-1a2b" / "translations" / "a2b-mean"
    assert list(_labelled([str(cyclegan), str(mean)])) == ["cyclegan-s0-1a2b/a2b", "cyclegan-s0-1a2b/a2b-mean"]
    # Folders outside runs: their names, with as many parents as it takes to tell them apart.
    assert list(_labelled([str(tmp_path / "a" / "out"), str(tmp_path / "b" / "out")])) == ["a/out", "b/out"]
    assert list(_labelled([str(cyclegan), str(unit)], ["CycleGAN", "UNIT"])) == ["CycleGAN", "UNIT"]
    assert list(_labelled([f"mine={cyclegan}", str(unit)])) == ["mine", "unit-s0-3c4d"]
    with pytest.raises(ValueError, match="give --label for each"):
        _labelled([str(cyclegan), str(unit)], ["same", "same"])
    with pytest.raises(ValueError, match="at most one label per folder"):
        _labelled([str(cyclegan)], ["one", "two"])
