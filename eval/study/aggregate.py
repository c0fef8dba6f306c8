"""Table 2 from a study's votes: the preference score of each method per task, as the paper reports it.

- Participants who chose anything but the real target image in a catch trial more than
  `max_catch_failures` times are excluded (counted in the table), with all their votes.
- Preference score (%): the share of a task's votes (regular trials, included participants) that
  chose the method; the shares of a task sum to 100, as in the paper's Table 2.
- 95% interval: percentile bootstrap over participants (a participant's votes stay together, since
  one person's choices are not independent), seeded.
- "All methods equally preferred": Pearson's chi-square of the vote counts against equal shares, per
  task. It treats votes as independent, which they are not quite (one person votes several times):
  read it together with the bootstrap intervals.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from tabulate import tabulate

from eval.study.store import CATCH_TARGET, StudyStore
from safeio.environment import PROJECT_ROOT
from safeio.files import atomic_write_bytes

PAPER_TABLE2 = PROJECT_ROOT / "results" / "paper" / "table2_user_study.csv"
BOOTSTRAP_RESAMPLES = 2000
CAPTION = "Table 2: Preference score (%) on translated images by user study"


def excluded_participants(votes: pd.DataFrame, max_catch_failures: int) -> set[str]:
    catch = votes[votes["kind"] == "catch"]
    failures = (catch["chosen"] != CATCH_TARGET).groupby(catch["participant"]).sum()
    return set(failures[failures > max_catch_failures].index)


def preference_table(votes: pd.DataFrame, methods: list[str], max_catch_failures: int = 0,
                     resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """One row per (task, method): preference %, its 95% interval, votes, participants, exclusions, p."""
    excluded = excluded_participants(votes, max_catch_failures)
    regular = votes[(votes["kind"] == "regular") & ~votes["participant"].isin(excluded)]
    rows = []
    rng = np.random.default_rng(seed)
    for task in sorted(votes.loc[votes["kind"] == "regular", "task"].unique()):
        in_task = regular[regular["task"] == task]
        people = sorted(in_task["participant"].unique())
        # counts[i, m]: votes of participant i for method m
        counts = np.zeros((len(people), len(methods)))
        index = {p: i for i, p in enumerate(people)}
        for participant, chosen in zip(in_task["participant"], in_task["chosen"]):
            if chosen in methods:
                counts[index[participant], methods.index(chosen)] += 1
        totals = counts.sum(axis=0)
        share = 100 * totals / max(totals.sum(), 1)
        if len(people):
            draws = rng.integers(0, len(people), size=(resamples, len(people)))
            sampled = counts[draws].sum(axis=1)                      # resamples x methods
            shares = 100 * sampled / np.maximum(sampled.sum(axis=1, keepdims=True), 1)
            low, high = np.percentile(shares, [2.5, 97.5], axis=0)
        else:
            low = high = np.full(len(methods), np.nan)
        p_uniform = float(stats.chisquare(totals).pvalue) if totals.sum() > 0 else float("nan")
        excluded_here = votes[(votes["task"] == task) & votes["participant"].isin(excluded)]["participant"].nunique()
        for m, method in enumerate(methods):
            rows.append({"task": task, "model": method, "preference": share[m], "ci_low": low[m], "ci_high": high[m],
                         "votes_for": int(totals[m]), "votes": int(totals.sum()), "participants": len(people),
                         "excluded_participants": excluded_here, "p_equal_preference": p_uniform})
    return pd.DataFrame(rows)


def paper_values() -> pd.DataFrame:
    wide = pd.read_csv(PAPER_TABLE2)
    return wide.melt(id_vars="model", var_name="task", value_name="paper_preference")


def write_table2(store: StudyStore, out_dir: Path, max_catch_failures: int = 0, seed: int = 0) -> list[Path]:
    """table2.csv (tidy, one row per task and method) and table2.md (the paper's layout, its values beside)."""
    votes = pd.DataFrame(store.votes(), columns=["participant", "trial", "task", "kind", "shown", "choice", "chosen",
                                                 "response_ms", "created"])
    methods = list(store.meta("methods") or [])
    table = preference_table(votes, methods, max_catch_failures, seed=seed)
    if table.empty:
        table = pd.DataFrame(columns=["task", "model", "preference", "ci_low", "ci_high", "votes_for", "votes",
                                      "participants", "excluded_participants", "p_equal_preference"])
    table = table.merge(paper_values(), on=["task", "model"], how="left")
    out_dir = Path(out_dir)
    csv_path, md_path = out_dir / "table2.csv", out_dir / "table2.md"
    atomic_write_bytes(csv_path, table.to_csv(index=False).encode())
    atomic_write_bytes(md_path, markdown(table, methods, store, max_catch_failures).encode())
    return [csv_path, md_path]


def markdown(table: pd.DataFrame, methods: list[str], store: StudyStore, max_catch_failures: int) -> str:
    tasks = list(dict.fromkeys(table["task"]))
    lines = [f"# {CAPTION}", ""]
    if not tasks:
        return "\n".join(lines + ["No votes yet."]) + "\n"
    rows = []
    for method in methods:
        row = [method]
        for task in tasks:
            r = table[(table["task"] == task) & (table["model"] == method)].iloc[0]
            paper = f" ({r['paper_preference']:.2f})" if pd.notna(r["paper_preference"]) else ""
            row.append(f"{r['preference']:.2f} [{r['ci_low']:.1f}, {r['ci_high']:.1f}]{paper}")
        rows.append(row)
    first = table.drop_duplicates("task").set_index("task")
    rows.append(["participants (excluded)"] + [f"{int(first.loc[t, 'participants'])} ({int(first.loc[t, 'excluded_participants'])})"
                                               for t in tasks])
    rows.append(["votes"] + [str(int(first.loc[t, "votes"])) for t in tasks])
    rows.append(["p, equal preference"] + [f"{first.loc[t, 'p_equal_preference']:.3g}" for t in tasks])
    lines.append(tabulate(rows, headers=["model", *tasks], tablefmt="github"))
    lines += ["", "Each cell: our preference score in % (share of the task's votes) [95% bootstrap interval over "
              f"participants, {BOOTSTRAP_RESAMPLES} resamples] (the paper's value). Participants who failed more than "
              f"{max_catch_failures} catch trial(s) (chose anything but the real target image) are excluded with all their "
              "votes. p: chi-square test of equal shares per task (votes treated as independent). The paper asked 135 "
              f"participants. Study: {store.path} (seed {store.meta('seed')}, {store.meta('per_task')} images per task)."]
    return "\n".join(lines) + "\n"
