"""Planning an experiment: its training runs, their identities and folders, and what each evaluates.

A *training run* is one (method variant, dataset, seed): it trains both directions at once, as
every method here does. Its folder is `<output_dir>/<dataset>/<variant>-s<seed>-<id>/`, where `id`
hashes the run's resolved configuration (method options, dataset, seed, the training and data
settings that change results; not logging intervals or the device). A changed setting gives a new
folder, never a silent reuse; the same settings in another experiment reuse the same run.
An *evaluation* is one translation direction of a training run: a task such as anime2selfie.
Nothing here trains or scores (bench/harness/execute.py) or writes tables (bench/harness/report.py).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tabulate import tabulate

from bench.core import methods as method_registry
from bench.core.config import DatasetSpec, Experiment, MethodSpec, TrainConfig, identity_fields, is_operational
from bench.core.schema import ConfigError
from bench.data.datasets import CATALOGUE, dataset_info, how_to_get, missing_splits
from bench.data.fingerprint import dataset_fingerprint
from bench.data.pipeline import default_load_size, pipeline
from bench.data.subset import subset_dir
from bench.data.synthetic import SyntheticSpec, is_current, spec_fingerprint
from bench.harness.reuse import finished_run_elsewhere
from eval.inception import requested_weights
from safeio.images import DataError, count_images

log = logging.getLogger("bench")

RESULT_FILE = "result.json"          # a run's scores per evaluation (bench/harness/execute.py)


@dataclass(frozen=True)
class TrainingRun:
    method: MethodSpec
    dataset: DatasetSpec
    seed: int
    run_id: str                    # hash of `identity`
    run_dir: Path
    identity: dict[str, Any]       # the settings that define what this run computes
    train: TrainConfig | None = None   # the training settings, resolved (None while the dataset is missing)
    reuse_from: Path | None = None     # a finished run of this identity in another output folder: adopted, not trained

    @property
    def variant(self) -> str:
        return self.method.label or self.method.name

    def tasks(self) -> list[str]:
        info = dataset_info(self.dataset.name)
        return [info.task_name(direction) for direction in self.dataset.directions]


@dataclass(frozen=True)
class Evaluation:
    training: TrainingRun
    direction: str
    task: str                      # the paper's task name, e.g. anime2selfie


@dataclass(frozen=True)
class Plan:
    experiment: Experiment
    trainings: tuple[TrainingRun, ...]        # every training run of the experiment
    evaluations: tuple[Evaluation, ...]
    missing_methods: tuple[MethodSpec, ...]   # planned methods that are not implemented yet
    data_problems: tuple[str, ...]            # datasets that are not there, with how to get them
    selected: tuple[str, ...]                 # run ids that --only selects (all when no pattern)
    overrides: tuple[str, ...] = ()           # the --set overrides, for the regenerate command

    @property
    def selected_trainings(self) -> list[TrainingRun]:
        """The training runs --only selects, in plan order."""
        selected = set(self.selected)
        return [t for t in self.trainings if t.run_id in selected]

    @property
    def results_dir(self) -> Path:
        return Path(self.experiment.results_dir) / results_name(self.experiment.name, self.overrides)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "run"


def results_name(name: str, overrides: tuple[str, ...]) -> str:
    """The experiment's results folder name: its name, plus the --set overrides that change what is
    computed, so that a trial with overrides never replaces the tables of the experiment as written."""
    changing = [o for o in overrides if not is_operational(o.split("=", 1)[0])]
    if not changing:
        return name
    suffix = re.sub(r"[^A-Za-z0-9_.=-]+", "_", "+".join(changing))
    if len(suffix) > 60:
        suffix = suffix[:40] + "-" + hashlib.sha256(suffix.encode()).hexdigest()[:8]
    return f"{name}+{suffix}"


def planned_train_images(experiment: Experiment, dataset: DatasetSpec) -> tuple[int, int] | None:
    """Training images per domain, by file name (None while the dataset is missing), of its subset when
    data.subset keeps fewer."""
    info = CATALOGUE.get(dataset.name)
    if info is not None and info.synthetic:
        spec = SyntheticSpec()
        counts = (spec.train_per_domain, spec.train_per_domain)
    else:
        counts = training_images(experiment.data.resolved_root() / dataset.name)
    if not all(counts):
        return None
    kept = experiment.data.subset.train if experiment.data.subset is not None else None
    return tuple(min(count, kept) for count in counts) if kept else counts


def dataset_folder(experiment: Experiment, dataset_name: str) -> Path:
    """Where the runs read a dataset's images: its folder, or its subset's copy (made by prepare_dataset)."""
    directory = experiment.data.resolved_root() / dataset_name
    return subset_dir(directory, experiment.data.subset) if experiment.data.subset is not None else directory


def run_pipeline(experiment: Experiment, method: MethodSpec) -> str:
    """The data pipeline of a method's runs (bench/data/pipeline.py): its authors' (data.pipeline: method,
    the default), or the paper's for every method (data.pipeline: paper)."""
    if experiment.data.pipeline == "paper":
        return "paper"
    return method_registry.method_class(method.name).data_pipeline(method.options)


def data_fingerprint(experiment: Experiment, dataset: DatasetSpec) -> dict[str, str] | None:
    """What a run's identity records of its data (bench/data/fingerprint.py): a synthetic dataset by its
    generator's settings, any other by the contents of its four splits; None while it is missing."""
    info = CATALOGUE.get(dataset.name)
    if info is not None and info.synthetic:
        return {"synthetic": spec_fingerprint(SyntheticSpec())}
    directory = experiment.data.resolved_root() / dataset.name
    if missing_splits(directory):
        return None
    try:
        return dataset_fingerprint(directory)
    except DataError:   # unreadable: reported when the run reads it
        return None


def run_identity(experiment: Experiment, method: MethodSpec, dataset: DatasetSpec, seed: int,
                 train: TrainConfig | None = None, fingerprint: dict[str, str] | None = None) -> dict[str, Any]:
    """What a run computes, from resolved settings: two spellings of one computation (iterations null
    or the method's reference length, lr in options or in train, a label) give one identity. The
    data enter by their fingerprint, not their path: the same images anywhere are the same run, other
    images under the same name are another."""
    method_class = method_registry.method_class(method.name)
    train = train or method.train_config(experiment.train)
    train_fields = identity_fields(train)
    train_fields.pop("seeds")
    if train_fields["schedule"] != "linear_decay":
        train_fields.pop("decay_start")   # only the linear decay reads it
    data = identity_fields(experiment.data)   # without data.root: where the data lives changes nothing
    data["load_size"] = experiment.data.load_size or default_load_size(train.image_size)
    data["fingerprint"] = fingerprint
    if data["subset"] is None:   # absent: every image (every run before subsets came)
        data.pop("subset")
    data.pop("pipeline")
    pipeline_name = run_pipeline(experiment, method)
    if pipeline_name != "paper":   # absent: the paper's pipeline (every run before the authors' pipelines came)
        data["pipeline"] = pipeline_name
    if not pipeline(pipeline_name).uses_data_settings:
        data.pop("load_size"), data.pop("flip")
    return {"method": method.name, "options": method_class.identity_options(method.options, train),
            "dataset": dataset.name, "seed": seed, "train": train_fields, "data": data}


def released_identity(experiment: Experiment, method: MethodSpec, dataset: DatasetSpec,
                      fingerprint: dict[str, str] | None = None) -> dict[str, Any]:
    """A run of the authors' released files: what it computes is fixed by the files' contents (sha256)
    and the test images it translates (their fingerprint), not by training settings."""
    from bench.core.released import released_digest, released_files

    files = {key: released_digest(Path(path)) for key, path in sorted(released_files(method.name, method.pretrained).items())}
    settings = {key: value for key, value in sorted(method.pretrained.items()) if key not in files}
    data = identity_fields(experiment.data)
    test_data = {split: value for split, value in fingerprint.items() if not split.startswith("train")} if fingerprint else None
    # The test resize: the files' own (their format decides it), or the paper's (data.pipeline: paper).
    subset = experiment.data.subset
    return {"method": method.name, "released": files, **({"settings": settings} if settings else {}), "dataset": dataset.name,
            "image_size": experiment.train.image_size, "data": {"on_bad_image": data["on_bad_image"], "fingerprint": test_data,
                                                                "pipeline": experiment.data.pipeline,
                                                                **({"subset": {"test": subset.test, "seed": subset.seed}}
                                                                   if subset is not None and subset.test else {})}}


def identity_hash(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]


def run_folder_name(method: MethodSpec, identity: dict[str, Any], seed: int, run_id: str) -> str:
    """`<method>[-<options that differ from its defaults>]-s<seed>-<id>`: readable, and a function of the
    identity alone (a label names the row in tables, not the computation)."""
    method_class = method_registry.method_class(method.name)
    defaults = method_class.identity_options(method_class.Options(), TrainConfig())
    changed = [(key if value else f"no-{key}") if isinstance(value, bool) else f"{key}-{value}"
               for key, value in identity["options"].items() if defaults.get(key) != value]
    readable = slug("-".join([method.name, *changed]))[:60].rstrip("-")
    return f"{readable}-s{seed}-{run_id}"


def matches(pattern: str, training: TrainingRun) -> bool:
    """--only: a shell-style pattern (case-insensitive; plain words match as substrings) against the
    variant label, method name, dataset, task names and run folder name."""
    pattern = pattern.lower()
    if not any(ch in pattern for ch in "*?["):
        pattern = f"*{pattern}*"
    fields = [training.variant, training.method.name, training.dataset.name, training.run_dir.name, *training.tasks()]
    return any(fnmatch.fnmatchcase(field.lower(), pattern) for field in fields)


def plan_experiment(experiment: Experiment, only: str | None = None, overrides: tuple[str, ...] = (),
                    reuse: bool = True) -> Plan:
    """Every run of the experiment, its folder and identity. With `reuse`, a run whose folder does not
    exist yet and that another output folder on this machine has finished training is planned to be
    adopted from there (bench/harness/reuse.py) instead of trained again; its folder is still this experiment's."""
    trainings, evaluations, missing = [], [], []
    output_dir = Path(experiment.output_dir)
    fingerprints = {dataset.name: data_fingerprint(experiment, dataset) for dataset in experiment.datasets}
    for method in experiment.methods:
        if not method_registry.is_registered(method.name):
            missing.append(method)
            continue
        method_class = method_registry.method_class(method.name)
        for dataset in experiment.datasets:
            directions = method.directions_on(dataset)
            if not directions:
                continue   # the entry runs elsewhere (its `datasets:` / `directions:`)
            dataset = replace(dataset, directions=directions)
            info = dataset_info(dataset.name)
            if method.pretrained is not None:   # released weights: nothing to train, one run (no seeds)
                train = replace(method.train_config(experiment.train), iterations=1)
                seeds = experiment.train.seeds[:1]
            else:
                seeds = experiment.train.seeds
                try:
                    train = method_registry.resolve_training(method_class, method.options, method.train_config(experiment.train),
                                                               planned_train_images(experiment, dataset))
                except ConfigError:   # the reference length depends on the dataset, which is missing
                    train = None
            for seed in seeds:
                fingerprint = fingerprints[dataset.name]
                identity = (released_identity(experiment, method, dataset, fingerprint) if method.pretrained is not None
                            else run_identity(experiment, method, dataset, seed, train, fingerprint))
                run_id = identity_hash(identity)
                name = (f"{slug(method.name)}-released-{run_id}" if method.pretrained is not None
                        else run_folder_name(method, identity, seed, run_id))
                run_dir = output_dir / dataset.name / name
                reusable = reuse and method.pretrained is None and fingerprint is not None and not run_dir.exists()
                elsewhere = finished_run_elsewhere(run_id, identity, run_dir) if reusable else None
                training = TrainingRun(method, dataset, seed, run_id, run_dir, identity, train, reuse_from=elsewhere)
                trainings.append(training)
                for direction in dataset.directions:
                    evaluations.append(Evaluation(training, direction, info.task_name(direction)))
    selected = tuple(t.run_id for t in trainings if only is None or matches(only, t))
    return Plan(experiment, tuple(trainings), tuple(evaluations), tuple(missing), tuple(_data_problems(experiment)),
                selected, tuple(overrides))


def _data_problems(experiment: Experiment) -> list[str]:
    from bench.core.released import released_digest, released_files

    root = experiment.data.resolved_root()
    problems = []
    for dataset in experiment.datasets:
        info = CATALOGUE.get(dataset.name)
        if info is not None and info.synthetic:
            continue  # generated on demand
        absent = missing_splits(root / dataset.name)
        if absent:
            problems.append(f"dataset {dataset.name!r}: {root / dataset.name} lacks {', '.join(absent)}; "
                            f"{how_to_get(dataset.name, root)}")
    for method in experiment.methods:
        for key, path in released_files(method.name, method.pretrained or {}).items():
            if released_digest(Path(path)).startswith("missing:"):   # a file, or a TensorFlow checkpoint's prefix or folder
                problems.append(f"released weights of {method.label} ({method.name}), {key}: {path} not found")
    for item in experiment.external:
        if not Path(item.folder).is_dir():
            problems.append(f"external result {item.label!r}: folder {item.folder} not found")
    return problems


def _estimated_length(training: TrainingRun) -> str:
    """A data-dependent reference length while the dataset is missing: from the image counts the paper
    reports for it (whole domains for cat2dog and photo2portrait, so an upper bound there)."""
    info = CATALOGUE.get(training.dataset.name)
    cls = method_registry.method_class(training.method.name)
    estimate = cls.reference_iterations(training.method.options, info.train_counts) if info and info.train_counts else None
    return f"~{estimate:,} (dataset missing)" if estimate else "(dataset missing)"


def format_plan(plan: Plan) -> str:
    experiment = plan.experiment
    selected = set(plan.selected)
    rows = [
        [index, e.training.variant, e.training.method.name, e.training.dataset.name, e.task, e.training.seed,
         "released" if e.training.method.pretrained is not None else
         f"{e.training.train.iterations:,}" if e.training.train else _estimated_length(e.training),
         str(e.training.run_dir) + (f" (trained in {e.training.reuse_from}: reused)" if e.training.reuse_from else "")]
        for index, e in enumerate((e for e in plan.evaluations if e.training.run_id in selected), start=1)
    ]
    n_selected = sum(1 for t in plan.trainings if t.run_id in selected)
    iterations = experiment.train.iterations or "each method's reference number of"
    lines = [
        f"Experiment {experiment.name} ({experiment.source}): {n_selected} training run(s), {len(rows)} evaluation(s)"
        + (f" selected of {len(plan.trainings)}" if n_selected != len(plan.trainings) else "")
        + f"; {iterations} iterations at {experiment.train.image_size} px, batch {experiment.train.batch_size}",
        tabulate(rows, headers=["#", "variant", "method", "dataset", "task", "seed", "iterations", "run folder"]),
    ]
    for item in experiment.external:
        lines.append(f"External: {item.label} on {dataset_info(item.dataset).task_name(item.direction)} from {item.folder}")
    e = experiment.eval
    lines.append(f"KID: protocol {e.protocol}; Inception weights: {requested_weights(e.inception_weights) or 'torch-fidelity download'}; "
                 f"tables {', '.join(experiment.tables) or 'none'} -> {plan.results_dir}")
    root = experiment.data.resolved_root()
    lines.append(f"Data root: {root}")
    for dataset in experiment.datasets:
        info = CATALOGUE.get(dataset.name)
        if info is not None and info.synthetic:
            state = "present" if is_current(root / dataset.name, SyntheticSpec()) else "will be generated"
            lines.append(f"  {dataset.name}: synthetic, {state}")
        elif not missing_splits(root / dataset.name):
            lines.append(f"  {dataset.name}: present")
    for problem in plan.data_problems:
        lines.append(f"  MISSING {problem}")
    for method in plan.missing_methods:
        lines.append(f"Not run: {method.label} ({method.name}) is not implemented yet; "
                     f"registered methods: {', '.join(method_registry.registered_methods())}")
    return "\n".join(lines)


def training_images(dataset_dir: Path) -> tuple[int, int]:
    """Training images per domain: what reference training lengths (CycleGAN's epochs) depend on."""
    return count_images(dataset_dir / "trainA"), count_images(dataset_dir / "trainB")
