"""Tables from score rows: seeds averaged with their spread, the paper's values beside ours, best in bold,
footnotes for what is not comparable, and the paper's layouts."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from eval.tables import markdown, paper_values, table_frame, write_tables


def row(model, task, kid, std=0.5, seed=0, table="table1", notes=(), official=True, iterations=1_000_000):
    return {"model": model, "task": task, "kid": kid, "std": std, "seed": seed, "table": table, "notes": list(notes),
            "metric": "kid_paper_block10", "protocol": "paper", "weights_official": official, "iterations": iterations,
            "image_size": 256, "n_fake": 100, "n_real": 100, "fid": 10.0}


def test_paper_values_cover_both_tables():
    table1 = paper_values("table1")
    assert len(table1) == 16
    assert table1.set_index(["model", "task"]).loc[("U-GAT-IT w/ LN", "anime2selfie"), "paper_kid"] == pytest.approx(13.17)
    table3 = paper_values("table3")
    assert table3.set_index(["model", "task"]).loc[("CycleGAN", "zebra2horse"), "paper_std"] == pytest.approx(0.66)
    assert len(table3) == 61


def test_seeds_are_averaged_and_their_spread_kept():
    rows = [row("U-GAT-IT", "selfie2anime", k, std=s, seed=i) for i, (k, s) in enumerate([(11.0, 0.5), (12.0, 0.7), (13.0, 0.6)])]
    frame = table_frame(rows, "table1")
    only = frame.iloc[0]
    assert only["kid"] == pytest.approx(12.0) and only["std"] == pytest.approx(0.6)
    assert only["seed_spread"] == pytest.approx(1.0) and only["seeds"] == 3
    assert only["paper_kid"] == pytest.approx(11.61) and only["paper_std"] == pytest.approx(0.57)
    assert bool(only["comparable"])
    single = table_frame([row("U-GAT-IT", "selfie2anime", 11.0)], "table1").iloc[0]
    assert math.isnan(single["seed_spread"])


def test_markdown_layout_bold_best_paper_values_and_footnotes():
    rows = [row("U-GAT-IT", "selfie2anime", 11.9), row("U-GAT-IT", "anime2selfie", 12.4),
            row("U-GAT-IT w/ IN", "selfie2anime", 13.0, notes=["trained 1,000 iterations (paper: 1,000,000)"]),
            row("U-GAT-IT w/ IN", "anime2selfie", 12.1, notes=["trained 1,000 iterations (paper: 1,000,000)"])]
    frame = table_frame(rows, "table1")
    text = markdown(frame, "table1", "ablation", [["selfie2anime", "anime2selfie"]], ["U-GAT-IT", "U-GAT-IT w/ IN"], "CMD")
    lines = text.splitlines()
    assert "| Model | selfie2anime | anime2selfie |" in lines
    assert "| U-GAT-IT | **11.90 ± 0.50** (paper 11.61 ± 0.57) | 12.40 ± 0.50 (paper 11.52 ± 0.57) |" in lines
    assert "| U-GAT-IT w/ IN ¹ | 13.00 ± 0.50 (paper 13.64 ± 0.76) | **12.10 ± 0.50** (paper 13.58 ± 0.80) |" in lines
    assert "¹ trained 1,000 iterations (paper: 1,000,000)" in lines
    assert "`CMD`" in text


def test_notes_every_row_shares_are_said_once_and_rows_carry_only_what_sets_them_apart():
    small, stand_in, short = "32 px images (paper: 256)", "random stand-in Inception", "trained 300 iterations"
    rows = [row("U-GAT-IT", "selfie2anime", 11.9, notes=[small, stand_in]),
            row("U-GAT-IT w/ IN", "selfie2anime", 13.0, notes=[small, stand_in, short]),
            row("U-GAT-IT w/ LN", "selfie2anime", 12.5, notes=[stand_in, small])]
    text = markdown(table_frame(rows, "table1"), "table1", "x", [["selfie2anime"]],
                    ["U-GAT-IT", "U-GAT-IT w/ IN", "U-GAT-IT w/ LN"], "CMD")
    lines = text.splitlines()
    assert f"Every row: {small}; {stand_in}." in lines
    assert lines.index(f"Every row: {small}; {stand_in}.") < lines.index("| Model | selfie2anime |")   # under the title
    assert any(line.startswith("| U-GAT-IT | ") for line in lines) and any(line.startswith("| U-GAT-IT w/ LN | ") for line in lines)
    assert any(line.startswith("| U-GAT-IT w/ IN ¹ | ") for line in lines) and f"¹ {short}" in lines
    assert not any(line.startswith(("² ", "³ ")) for line in lines)
    # One row alone: everything is common to every row.
    alone = markdown(table_frame(rows[1:2], "table1"), "table1", "x", [["selfie2anime"]], ["U-GAT-IT w/ IN"], "CMD")
    assert f"Every row: {small}; {stand_in}; {short}." in alone.splitlines() and "¹" not in alone


def test_models_not_significantly_worse_than_the_best_are_bold_too():
    rows = [row("U-GAT-IT", "selfie2anime", 11.9), row("U-GAT-IT w/ IN", "selfie2anime", 12.2),
            row("U-GAT-IT w/ LN", "selfie2anime", 14.0)]
    for r, tied, p in zip(rows, (True, True, False), (1.0, 0.4, 0.01)):
        r.update(same_as_best=tied, p_vs_best=p, diff_vs_best_low=0.0, diff_vs_best_high=0.0)
    text = markdown(table_frame(rows, "table1"), "table1", "x", [["selfie2anime"]],
                    ["U-GAT-IT", "U-GAT-IT w/ IN", "U-GAT-IT w/ LN"], "CMD", significance="TEST")
    assert "| U-GAT-IT | **11.90 ± 0.50** (paper 11.61 ± 0.57) |" in text
    assert "| U-GAT-IT w/ IN | **12.20 ± 0.50** (paper 13.64 ± 0.76) |" in text
    assert "| U-GAT-IT w/ LN | 14.00 ± 0.50 (paper 12.39 ± 0.61) |" in text
    assert "not significant at 5% (TEST)" in text


def test_table3_stacks_the_two_directions_like_the_paper(tmp_path):
    forward = ["selfie2anime", "horse2zebra", "cat2dog", "photo2portrait", "photo2vangogh"]
    backward = ["anime2selfie", "zebra2horse", "dog2cat", "portrait2photo", "vangogh2photo"]
    rows = [row("CycleGAN", task, 9.0, table="table3") for task in forward + backward]
    rows += [row("U-GAT-IT", task, 8.0, table="table3", official=False, notes=["non-official weights"]) for task in forward]
    written = write_tables(rows, ["table3"], tmp_path, "main", [forward, backward], ["U-GAT-IT", "CycleGAN"], "CMD")
    assert {p.name for p in written} == {"scores.csv", "table3.csv", "table3.md"}
    text = (tmp_path / "table3.md").read_text()
    assert text.index("| Model | selfie2anime |") < text.index("| Model | anime2selfie |")
    assert "| CycleGAN | 9.00 ± 0.50 (paper 13.08 ± 0.49) |" in text
    assert "| U-GAT-IT ¹ | **8.00 ± 0.50** (paper 11.61 ± 0.57) |" in text
    tidy = pd.read_csv(tmp_path / "table3.csv")
    assert list(tidy.columns[:5]) == ["model", "task", "kid", "std", "seed_spread"]
    assert {"paper_kid", "paper_std", "same_as_best", "p_vs_best", "diff_vs_best_low", "diff_vs_best_high"} <= set(tidy.columns)
    assert len(tidy) == 15 and set(tidy[tidy["model"] == "U-GAT-IT"]["weights"]) == {"non-official"}
    assert len(pd.read_csv(tmp_path / "scores.csv")) == 15


def test_an_empty_table_says_so(tmp_path):
    write_tables([], ["table1"], tmp_path, "e", [["x"]], [], "CMD")
    assert "No scored runs yet." in (tmp_path / "table1.md").read_text()
