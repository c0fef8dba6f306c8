"""The paper's Tables 1 and 3, regenerated from score records, beside the paper's own numbers.

Input: one *score row* per (model, task, seed) (see `score_row` in bench/harness/report.py): KID x100 and
its std x100, the protocol, the weights, the iterations and the image size it was trained at, and
notes on how the run departs from the paper. Output, in results/<experiment>/:

  scores.csv             every score row (one per seed)
  table1.csv, table3.csv tidy: one row per (model, task): kid and std (x100; mean over seeds), the
                         spread over seeds, the paper's kid and std, protocol, weights, iterations,
                         seeds, image counts, comparable (true only when nothing departs from the paper)
  table1.md, table3.md   laid out like the paper: models as rows, tasks as columns, "kid ± std" with
                         the best of each column in bold, the paper's value beside ours, and a
                         footnote for everything not comparable. Generated; never edited by hand.

Table 1 holds U-GAT-IT and its ablations; Table 3 holds every other row (U-GAT-IT itself, the
baselines, external results).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from safeio.files import atomic_write_bytes

PAPER_DIR = Path(__file__).resolve().parent.parent / "results" / "paper"
TABLE_TITLES = {
    "table1": "Table 1: Kernel Inception Distance x100 ± std x100 for the ablation of U-GAT-IT (lower is better)",
    "table3": "Table 3: Kernel Inception Distance x100 ± std x100 per image translation task (lower is better)",
}
COLUMNS = ["model", "task", "kid", "std", "seed_spread", "same_as_best", "p_vs_best", "diff_vs_best_low",
           "diff_vs_best_high", "paper_kid", "paper_std", "protocol", "metric", "weights", "comparable", "iterations",
           "image_size", "seeds", "n_fake", "n_real", "fid", "notes"]
SIGNIFICANCE_FIELDS = ("same_as_best", "p_vs_best", "diff_vs_best_low", "diff_vs_best_high")


def paper_values(table: str) -> pd.DataFrame:
    """The paper's numbers as (model, task, paper_kid, paper_std), from results/paper/."""
    if table == "table1":
        wide = pd.read_csv(PAPER_DIR / "table1_ablation_kid.csv")
        parts = []
        for task in ("selfie2anime", "anime2selfie"):
            part = wide[["model", f"{task}_kid", f"{task}_std"]].copy()
            part.columns = ["model", "paper_kid", "paper_std"]
            part["task"] = task
            parts.append(part)
        return pd.concat(parts, ignore_index=True)[["model", "task", "paper_kid", "paper_std"]]
    tidy = pd.read_csv(PAPER_DIR / "table3_kid.csv")
    return tidy.rename(columns={"kid": "paper_kid", "std": "paper_std"})


def paper_row_name(model: str) -> str:
    """The paper's row a model is compared with: its own name, or the name before a trailing parenthesis
    ("U-GAT-IT (authors' released, 100 epochs)" -> "U-GAT-IT", "CycleGAN (released)" -> "CycleGAN")."""
    return re.sub(r"\s*\([^()]*\)$", "", model)


def with_paper_values(frame: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """`frame` with paper_kid and paper_std joined by (model, task); a model the paper does not name takes
    the values of the row it is a version of (paper_row_name)."""
    frame = frame.assign(paper_model=[model if (paper["model"] == model).any() else paper_row_name(model)
                                      for model in frame["model"]])
    paper = paper.rename(columns={"model": "paper_model"})
    return frame.merge(paper, on=["paper_model", "task"], how="left").drop(columns="paper_model")


def aggregate(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per (model, task): mean KID over seeds, mean estimator std, and the spread over seeds."""
    frame = pd.DataFrame(list(rows))
    if frame.empty:
        return pd.DataFrame(columns=COLUMNS)
    grouped = []
    for (model, task), group in frame.groupby(["model", "task"], sort=False):
        first = group.iloc[0]
        kids = group["kid"].astype(float)
        notes = sorted({note for row_notes in group["notes"] for note in row_notes})
        grouped.append({
            "model": model, "task": task,
            "kid": kids.mean(),
            "std": group["std"].astype(float).mean(),
            "seed_spread": kids.std(ddof=1) if len(group) > 1 else math.nan,
            "protocol": first["protocol"], "metric": first["metric"],
            "weights": "official" if bool(group["weights_official"].all()) else "non-official",
            "iterations": int(group["iterations"].min()), "image_size": int(first["image_size"]),
            "seeds": len(group), "n_fake": int(group["n_fake"].min()), "n_real": int(first["n_real"]),
            "fid": group["fid"].astype(float).mean(), "notes": notes, "table": first["table"],
            **{name: (first[name] if name in group else (False if name == "same_as_best" else math.nan))
               for name in SIGNIFICANCE_FIELDS},
        })
    return pd.DataFrame(grouped)


def table_frame(rows: list[dict[str, Any]], table: str) -> pd.DataFrame:
    """The tidy table: aggregated rows of this table with the paper's values joined by (model, task)."""
    frame = aggregate(row for row in rows if row["table"] == table)
    if frame.empty:
        return pd.DataFrame(columns=COLUMNS)
    frame = with_paper_values(frame, paper_values(table))
    frame["comparable"] = frame["notes"].map(len) == 0
    return frame[COLUMNS]


def _number(value: float) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"


def _cell(row: pd.Series, best: bool) -> str:
    ours = f"{_number(row['kid'])} ± {_number(row['std'])}"
    if best:
        ours = f"**{ours}**"
    if row["seeds"] > 1 and not math.isnan(row["seed_spread"]):
        ours += f" (±{row['seed_spread']:.2f} over {row['seeds']} seeds)"
    if not math.isnan(row["paper_kid"]):
        ours += f" (paper {row['paper_kid']:.2f} ± {row['paper_std']:.2f})"
    return ours


def markdown(frame: pd.DataFrame, table: str, experiment: str, task_groups: list[list[str]], models: list[str],
             regenerate_command: str, significance: str = "paired bootstrap of the KID difference, Holm over the column") -> str:
    """The paper's layout: one row per model, one column per task; each group of tasks is one table
    (Table 3 stacks the A -> B tasks over the B -> A ones)."""
    lines = [f"# {TABLE_TITLES[table]}", "",
             f"Experiment `{experiment}`. Generated from the run records by `{regenerate_command}`; do not edit.", ""]
    if frame.empty:
        return "\n".join(lines + ["No scored runs yet.", ""])
    protocols = ", ".join(sorted(set(frame["metric"])))
    lines += [f"KID protocol: {protocols} (kid_paper_*: TF-GAN's estimator in blocks of 10 against the target domain's "
              "test images, ± the standard error; kid_mean_*: the average against target and source; "
              "kid_subsets_*: torch-fidelity's subsets, ± the std over subsets).", ""]

    # A note that holds for every model of the table is said once, under the title; a row carries marks
    # only for the notes that set it apart from other rows.
    shown = [model for model in models if model in set(frame["model"])]
    per_model = {model: {note for notes in frame[frame["model"] == model]["notes"] for note in notes} for model in shown}
    common = set.intersection(*per_model.values()) if per_model else set()
    in_order = list(dict.fromkeys(note for notes in frame["notes"] for note in notes))
    if common:
        lines += ["Every row: " + "; ".join(note for note in in_order if note in common) + ".", ""]
    footnotes: dict[str, int] = {}
    for note in in_order:
        if note not in common:
            footnotes.setdefault(note, len(footnotes) + 1)
    superscripts = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")

    for columns in task_groups:
        present = [task for task in columns if task in set(frame["task"])]
        if not present:
            continue
        best = {task: frame[frame["task"] == task]["kid"].min() for task in present}

        def bold(row: pd.Series, task: str) -> bool:   # the best, and what is not significantly worse
            tied = row.get("same_as_best", False)
            return bool(row["kid"] == best[task] or (pd.notna(tied) and bool(tied)))
        lines.append("| Model | " + " | ".join(present) + " |")
        lines.append("|---|" + "---|" * len(present))
        for model in models:
            rows = frame[frame["model"] == model]
            if rows.empty:
                continue
            marks = sorted({footnotes[note] for notes in rows["notes"] for note in notes if note in footnotes})
            name = model + (" " + ",".join(str(m) for m in marks).translate(superscripts) if marks else "")
            cells = []
            for task in present:
                match = rows[rows["task"] == task]
                cells.append(_cell(match.iloc[0], bold(match.iloc[0], task)) if not match.empty else "–")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    if footnotes:
        lines += [f"{str(number).translate(superscripts)} {note}" for note, number in footnotes.items()]
        lines.append("")
    if "p_vs_best" in frame and frame["p_vs_best"].notna().any():
        lines.append(f"Bold: the best KID of each column, and every model whose difference from it is not significant at "
                     f"5% ({significance}). Paper values: results/paper/.")
    else:
        lines.append("Best of each column (this harness's runs) in bold. Paper values: results/paper/.")
    return "\n".join(lines) + "\n"


def write_tables(rows: list[dict[str, Any]], tables: Iterable[str], out_dir: Path, experiment: str,
                 task_groups: list[list[str]], models: list[str], regenerate_command: str,
                 significance: str = "paired bootstrap of the KID difference, Holm over the column") -> list[Path]:
    """scores.csv and each requested table as CSV and markdown; returns the written paths."""
    out_dir = Path(out_dir)
    written = []
    scores = pd.DataFrame(rows)
    if not scores.empty:
        scores = scores.assign(notes=scores["notes"].map("; ".join)).drop(columns=["folders"], errors="ignore")
    atomic_write_bytes(out_dir / "scores.csv", scores.to_csv(index=False).encode())
    written.append(out_dir / "scores.csv")
    for table in tables:
        frame = table_frame(rows, table)
        csv_frame = frame.assign(notes=frame["notes"].map("; ".join)) if not frame.empty else frame
        atomic_write_bytes(out_dir / f"{table}.csv", csv_frame.to_csv(index=False, float_format="%.4f").encode())
        atomic_write_bytes(out_dir / f"{table}.md", markdown(frame, table, experiment, task_groups, models, regenerate_command,
                                                             significance).encode())
        written += [out_dir / f"{table}.csv", out_dir / f"{table}.md"]
    return written


def summary(out_dir: Path, tables: Iterable[str]) -> str:
    """The numbers of the written tables, as a person reads them at the end of a run: one grid per
    table, models as rows, tasks as columns, "kid ± std" (KID x100)."""
    from tabulate import tabulate

    parts = []
    for table in tables:
        if table == "table2":   # the user study's preference scores: its markdown as written (eval/study/aggregate.py)
            path = Path(out_dir) / "table2.md"
            parts.append(path.read_text().strip() if path.is_file() else "table2: no study database (eval.study)")
            continue
        path = Path(out_dir) / f"{table}.csv"
        frame = pd.read_csv(path) if path.is_file() else pd.DataFrame()
        if frame.empty:
            parts.append(f"{table}: no scored runs yet")
            continue
        tasks = list(dict.fromkeys(frame["task"]))
        rows = []
        for model, group in frame.groupby("model", sort=False):
            by_task = {row.task: f"{_number(row.kid)} ± {_number(row.std)}" for row in group.itertuples()}
            rows.append([model] + [by_task.get(task, "–") for task in tasks])
        comparable = "" if frame["comparable"].astype(bool).all() else " (not comparable with the paper: see the footnotes)"
        parts.append(f"{TABLE_TITLES[table].split(':')[0]}, KID x100 ± std x100, lower is better{comparable}: "
                     f"{Path(out_dir) / (table + '.md')}\n" + tabulate(rows, headers=["model", *tasks]))
    return "\n\n".join(parts)
