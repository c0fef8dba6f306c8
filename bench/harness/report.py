"""Reporting: run records -> score rows -> the tables and figures of an experiment.

Experiment results, in `<results_dir>/<name>/`: scores.csv, the requested tables (eval/tables.py,
with significance marks from eval/compare.py), external/ (scores of translations made elsewhere)
and figures/ (eval/figures.py). Everything is generated from the records on disk, so the tables can
be made again at any time (`--tables-only`).
"""

from __future__ import annotations

import logging
import shlex
from pathlib import Path
from typing import Any

from bench.core import methods as method_registry
from bench.core.config import Experiment, ExternalResult
from bench.core.multimodal import evaluation_key
from bench.core.train import cpu_threads_label
from bench.core.translate import MANIFEST as TRANSLATION_MANIFEST
from bench.data.datasets import CATALOGUE, PAPER_DATASETS, dataset_info
from bench.data.pipeline import pipeline
from bench.harness.execute import Scoring, splits
from bench.harness.page import write_page
from bench.harness.plan import RESULT_FILE, Plan, dataset_folder, planned_train_images, run_pipeline, slug
from safeio.files import atomic_write_json, read_json

log = logging.getLogger("bench")

PAPER_IMAGE_SIZE = 256


def score_external(plan: Plan, scoring: Scoring) -> list[tuple[ExternalResult, dict[str, Any]]]:
    experiment = plan.experiment
    scored = []
    for item in experiment.external:
        info = dataset_info(item.dataset)
        task = info.task_name(item.direction)
        dataset_dir = experiment.data.resolved_root() / item.dataset
        source_split, target_split = splits(item.direction)
        record_path = plan.results_dir / "external" / f"{slug(item.label)}-{task}.json"
        previous = (read_json(record_path) or {}).get("scores", {}).get(scoring.settings_key)
        score, computed = scoring.score(previous, dataset_dir / target_split, Path(item.folder), dataset_dir / source_split)
        if computed:
            atomic_write_json(record_path, {"label": item.label, "dataset": item.dataset, "direction": item.direction,
                                            "task": task, "folder": item.folder, "scores": {scoring.settings_key: score}})
        scored.append((item, score))
    return scored


def _common_notes(experiment: Experiment, dataset: str, direction: str, score: dict[str, Any]) -> list[str]:
    notes = []
    info = CATALOGUE.get(dataset)
    found = (score["counts"]["fake"], score["counts"]["real"])
    if experiment.data.subset is not None and experiment.data.subset.test:
        task = dataset_info(dataset).task_name(direction)
        if info is not None and info.test_counts is not None:
            source, target = info.test_counts if direction == "a2b" else info.test_counts[::-1]
            notes.append(f"{task}: scored on a seeded subset (data.subset): {found[0]} of the paper's {source} source and "
                         f"{found[1]} of its {target} target test images; KID depends on the number of images: not comparable")
        else:
            notes.append(f"{task}: scored on a seeded subset (data.subset): {found[0]} source and {found[1]} target test images")
    elif info is not None and info.test_counts is not None:
        source, target = info.test_counts if direction == "a2b" else info.test_counts[::-1]
        if found != (source, target):
            notes.append(f"{info.task_name(direction)}: {found[0]} source and {found[1]} target test images here, "
                         f"{source} and {target} in the paper; KID depends on the number of images: not comparable")
    if not score["weights"]["official"]:
        sha = score["weights"]["sha256"]
        kind = "a random stand-in Inception" if sha.startswith("random-") else "non-official Inception weights"
        notes.append(f"KID from {kind} ({sha[:19] if sha.startswith('random-') else 'sha256 ' + sha[:12]}...): "
                     "not comparable with the paper")
    if dataset not in PAPER_DATASETS:
        notes.append("synthetic data (bench/data/synthetic.py), not a dataset of the paper" if CATALOGUE.get(dataset) and
                     CATALOGUE[dataset].synthetic else f"dataset {dataset!r} is not one of the paper's")
    if score["protocol"] == "subsets":
        notes.append("torch-fidelity's subset KID, not the paper's block estimator")
    return notes


def score_row(model: str, method: str, dataset: str, task: str, direction: str, seed: int | None, score: dict[str, Any],
              steps: int | None, image_size: int, tables: tuple[str, ...], notes: list[str],
              trained_with: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    nan = float("nan")
    devices = sorted({str(part.get("device")) for part in trained_with or () if part.get("device")})
    return {
        "model": model, "method": method, "dataset": dataset, "task": task, "direction": direction, "seed": seed,
        "kid": score["kid_x100"], "std": score["kid_std_x100"] if score["kid_std_x100"] is not None else nan,
        "fid": score.get("fid", nan), "metric": score["metric"], "protocol": score["protocol"],
        "weights_official": score["weights"]["official"], "weights_sha256": score["weights"]["sha256"],
        "iterations": steps if steps is not None else -1, "image_size": image_size,
        "n_real": score["counts"]["real"], "n_fake": score["counts"]["fake"], "tables": list(tables), "notes": notes,
        "train_device": "+".join(devices), "train_threads": cpu_threads_label(trained_with),
        "folders": score["folders"],
    }


def thread_count_notes(table_rows: list[dict[str, Any]]) -> None:
    """Footnote, per table, the rows whose CPU training ran with other torch thread counts than their seeds' or
    than the other rows' (their comparison partners): on a CPU the count changes the numbers, so such rows
    differ by more than their methods. Tables whose CPU runs all used one count get no note."""
    for table in {row["table"] for row in table_rows}:
        rows = [row for row in table_rows if row["table"] == table and row["train_threads"]]
        counts = {row["train_threads"] for row in rows}
        if len(counts) < 2:
            continue
        by_model: dict[str, dict[tuple[str, int], str]] = {}   # model -> (dataset, seed) -> its run's counts
        for row in rows:
            by_model.setdefault(row["model"], {})[(row["dataset"], row["seed"])] = row["train_threads"]
        for model, runs in by_model.items():
            own = set(runs.values())
            if len(own) > 1:
                detail = "; ".join(f"{dataset} seed {seed}: {_threads_text(n)}" for (dataset, seed), n in sorted(runs.items()))
                note = f"{model}: its seeds trained on the CPU with different torch thread counts ({detail})"
            else:
                others = ", ".join(_threads_text(n) for n in sorted(counts - own))
                note = f"{model} trained on the CPU with {_threads_text(own.pop())}, other rows of this table with {others}"
            note += "; on a CPU the thread count changes the numbers (README: Thread counts)"
            for row in rows:
                if row["model"] == model:
                    row["notes"] = [*row["notes"], note]   # a new list: the rows of other tables share the old one


def _threads_text(counts: str) -> str:
    """'1' -> '1 thread'; '1+2' (a run resumed with another count) -> 'partly 1 and partly 2 threads'."""
    parts = counts.split("+")
    if len(parts) > 1:
        return "partly " + " and partly ".join(parts) + " threads"
    return f"{parts[0]} thread{'s' if parts[0] != '1' else ''}"


def collect_rows(plan: Plan, scoring: Scoring, external: list[tuple[ExternalResult, dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per scored (run, direction) of the whole experiment, and per external result."""
    experiment = plan.experiment
    rows = []
    for training in plan.trainings:
        record = read_json(training.run_dir / RESULT_FILE)
        if not record:
            continue
        method_class = method_registry.method_class(training.method.name)
        if training.method.pretrained is not None:
            released = training.identity["released"]
            files = ", ".join(f"{key}: {Path(path).name} (sha256 {released[key][:12]})" if key in released else f"{key}: {path}"
                              for key, path in sorted(training.method.pretrained.items()))
            run_notes = [f"{training.variant}: the authors' released weights, not trained here ({files})"]
            reference = None
        else:
            run_notes = list(method_class.deviations(training.method.options, training.method.train_config(experiment.train)))
            reference = method_class.reference_iterations(training.method.options,
                                                          planned_train_images(experiment, training.dataset))
        if reference and record["steps"] < reference:
            run_notes.append(f"trained {record['steps']:,} iterations (reference length: {reference:,})")
        own = method_class.data_pipeline(training.method.options)
        if run_pipeline(experiment, training.method) != own:
            run_notes.append(f"{training.variant} on the paper's U-GAT-IT data pipeline (data.pipeline: paper), not its "
                             f"authors' ({pipeline(own).description})")
        if experiment.train.image_size != PAPER_IMAGE_SIZE:
            run_notes.append(f"{experiment.train.image_size} px images (paper: {PAPER_IMAGE_SIZE})")
        test_settings = method_class.test_settings(training.method.options)
        for direction in training.dataset.directions:
            entry = record["directions"].get(evaluation_key(direction, test_settings))
            score = entry["scores"].get(scoring.settings_key) if entry else None
            if score is None:
                continue
            rows.append(score_row(training.variant, training.method.name, training.dataset.name, entry["task"], direction,
                                  training.seed, score, record["steps"], experiment.train.image_size,
                                  method_class.tables(training.method.options),
                                  run_notes + _common_notes(experiment, training.dataset.name, direction, score),
                                  record.get("trained_with")))
    for item, score in external:
        notes = [f"{item.label}: translations made outside this harness" + (f" ({item.note})" if item.note else "")]
        rows.append(score_row(item.label, "external", item.dataset, dataset_info(item.dataset).task_name(item.direction),
                              item.direction, None, score, None, PAPER_IMAGE_SIZE, ("table3",),
                              notes + _common_notes(experiment, item.dataset, item.direction, score)))
    return rows


def regenerate_command(plan: Plan) -> str:
    parts = ["python", "run_bench.py", plan.experiment.source]
    for override in plan.overrides:
        if not override.startswith("launcher."):   # how the runs were launched does not matter to the tables
            parts += ["--set", override]
    return shlex.join(parts + ["--tables-only"])


def write_results(plan: Plan, scoring: Scoring | None = None, progress: bool = True) -> list[Path]:
    """scores.csv, the experiment's tables and the figures, from the records on disk."""
    from eval.tables import write_tables

    experiment = plan.experiment
    scoring = scoring or Scoring(experiment, progress)
    external = score_external(plan, scoring)
    rows = collect_rows(plan, scoring, external)
    by_direction = {direction: [dataset_info(d.name).task_name(direction) for d in experiment.datasets if direction in d.directions]
                    for direction in ("a2b", "b2a")}
    all_tasks = [dataset_info(d.name).task_name(direction) for d in experiment.datasets for direction in d.directions]
    task_groups = [all_tasks] if len(all_tasks) <= 5 else [by_direction["a2b"], by_direction["b2a"]]
    models = [m.label for m in experiment.methods] + [item.label for item in experiment.external]
    table_rows = [dict(row, table=table) for row in rows for table in row["tables"]]
    thread_count_notes(table_rows)
    mark_significance(table_rows, scoring, experiment.train.seeds[0])
    kid_tables = [table for table in experiment.tables if table != "table2"]
    written = write_tables(table_rows, kid_tables, plan.results_dir, experiment.name, task_groups, models,
                           regenerate_command(plan), SIGNIFICANCE + "; with several seeds, the first seed's translations")
    tasks = report_tasks(plan, external)   # what the figures and the page show, per task
    kid_text = kid_labels(rows, experiment.train.seeds[0])
    written += write_figures(plan, tasks, kid_text)
    if "table2" in experiment.tables:
        written += write_study_table(plan)
    written.append(write_page(plan, [path for path in written if path.suffix == ".md"], tasks, kid_text,
                              regenerate_command(plan)))
    for path in written:
        print(f"wrote {path}")
    return written


def write_study_table(plan: Plan) -> list[Path]:
    """Table 2 from the user study's votes (eval/study/), when the experiment names its database."""
    study = plan.experiment.eval.study
    if not study or not Path(study).is_file():
        log.warning("table2: %s; build a study from this experiment's translations with python -m eval study build "
                    "--experiment %s --out STUDY.db, serve it, and set eval.study: STUDY.db",
                    f"no study database at {study}" if study else "eval.study names no study database", plan.experiment.source)
        return []
    from eval.study.aggregate import write_table2
    from eval.study.store import StudyStore

    return write_table2(StudyStore(study), plan.results_dir)


SIGNIFICANCE_RESAMPLES = 1000   # bootstrap draws per comparison with a column's best
SIGNIFICANCE = (f"paired bootstrap of the KID difference over the test images ({SIGNIFICANCE_RESAMPLES} draws, seed 0; "
                "eval/compare.py) of each model's translations against the best's, two-sided, Holm's correction "
                "over the column")


def mark_significance(table_rows: list[dict[str, Any]], scoring: Scoring, first_seed: int) -> None:
    """Per table and task: the best model (lowest mean KID over seeds) and, for each other model, whether its
    difference from the best is significant at 5%. Adds to every row `p_vs_best` (Holm-adjusted over the
    column), `diff_vs_best_low`/`_high` (95% paired bootstrap interval, x100) and `same_as_best`. Uses the
    first seed's translations and the cached features; models whose translations are not of the same
    source images as the best's are left unmarked (p NaN)."""
    from eval.compare import compare_pair, holm

    nan = float("nan")
    columns: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {}
    for row in table_rows:
        row.update(p_vs_best=nan, diff_vs_best_low=nan, diff_vs_best_high=nan, same_as_best=False)
        columns.setdefault((row["table"], row["task"]), {}).setdefault(row["model"], []).append(row)
    for models in columns.values():
        means = {model: sum(r["kid"] for r in rows) / len(rows) for model, rows in models.items()}
        best = min(means, key=means.get)
        for row in models[best]:
            row.update(p_vs_best=1.0, diff_vs_best_low=0.0, diff_vs_best_high=0.0, same_as_best=True)

        def first(rows: list[dict[str, Any]]) -> dict[str, Any]:
            return next((r for r in rows if r["seed"] in (None, first_seed)), rows[0])

        reference = first(models[best])
        best_features = scoring.scorer.features(reference["folders"]["fake"])
        real = scoring.scorer.features(reference["folders"]["real"]).features
        source = reference["folders"].get("source")
        source = scoring.scorer.features(source).features if source and reference["protocol"] == "mean" else None
        compared = []
        for model, rows in models.items():
            features = scoring.scorer.features(first(rows)["folders"]["fake"])
            if model == best or features.names != best_features.names:
                continue
            pair = compare_pair(real, features.features, best_features.features, source, reference["protocol"],
                                scoring.settings.max_block_size, SIGNIFICANCE_RESAMPLES, seed=0, device=scoring.scorer.device)
            compared.append((rows, pair))
        for (rows, pair), adjusted in zip(compared, holm([pair.p_value for _, pair in compared])):
            for row in rows:
                row.update(p_vs_best=adjusted, diff_vs_best_low=pair.ci_low_x100, diff_vs_best_high=pair.ci_high_x100,
                           same_as_best=adjusted >= 0.05)


def task_columns(plan: Plan, external: list[tuple[ExternalResult, dict[str, Any]]], dataset: str,
                 direction: str) -> tuple[list[tuple[str, Path]], list[tuple[str, Path]]]:
    """What a task's figures and report show: (model label, translations folder) of every run of the first
    seed with translations, then the external results; and (label, attention folder) of the first variant
    of each method that draws attention."""
    first_seed = plan.experiment.train.seeds[0]
    columns, attention, with_attention = [], [], set()
    for training in plan.trainings:
        folder = training.run_dir / "translations" / evaluation_key(
            direction, method_registry.method_class(training.method.name).test_settings(training.method.options))
        if training.dataset.name != dataset or training.seed != first_seed or not (folder / TRANSLATION_MANIFEST).exists():
            continue
        columns.append((training.variant, folder))
        if training.method.name not in with_attention and (folder / "attention").is_dir():
            attention.append((training.variant, folder / "attention"))
            with_attention.add(training.method.name)
    columns += [(item.label, Path(item.folder)) for item, _ in external if item.dataset == dataset and item.direction == direction]
    return columns, attention


def report_tasks(plan: Plan, external: list[tuple[ExternalResult, dict[str, Any]]]) -> list[tuple[str, Path, list, list]]:
    """Per task of the experiment: (task, its source test images, task_columns' translation and attention columns)."""
    tasks = []
    for dataset in plan.experiment.datasets:
        source_dir = dataset_folder(plan.experiment, dataset.name)
        for direction in dataset.directions:
            columns, attention = task_columns(plan, external, dataset.name, direction)
            tasks.append((dataset_info(dataset.name).task_name(direction), source_dir / splits(direction)[0], columns, attention))
    return tasks


def kid_labels(rows: list[dict[str, Any]], first_seed: int) -> dict[tuple[str, str], str]:
    """(model, task) -> "KID 1.23 ± 0.45" of the first seed, as the comparison sheets and the page caption them."""
    return {(row["model"], row["task"]): f"KID {row['kid']:.2f}" + (f" ± {row['std']:.2f}" if row["std"] == row["std"] else "")
            for row in rows if row["seed"] in (None, first_seed)}


def write_figures(plan: Plan, tasks: list[tuple[str, Path, list, list]], kid_text: dict[tuple[str, str], str]) -> list[Path]:
    from eval.figures import comparison_sheet, training_curves

    figures_dir = plan.results_dir / "figures"
    written = []
    for training in plan.trainings:
        title = f"{training.variant} on {training.dataset.name}, seed {training.seed}"
        path = training_curves(training.run_dir / "stats.jsonl", figures_dir / "curves" / f"{training.dataset.name}-{slug(training.variant)}-s{training.seed}.png", title)
        if path is not None:
            written.append(path)
    for task, source_dir, columns, attention in tasks:
        if columns and source_dir.is_dir():
            scores = {name: kid_text[(name, task)] for name, _ in columns if (name, task) in kid_text}
            written.append(comparison_sheet(task, source_dir, columns, figures_dir / f"compare_{task}.png", attention,
                                            scores=scores))
    return written
