"""From an experiment to tables: plan, check, train, translate, score, tabulate, draw.

A *training run* is one (method variant, dataset, seed): it trains both directions at once, as
every method here does. Its folder is `<output_dir>/<dataset>/<variant>-s<seed>-<id>/`, where `id`
hashes the run's resolved configuration (method options, dataset, seed, the training and data
settings that change results; not logging intervals or the device). A changed setting gives a new
folder, never a silent reuse; the same settings in another experiment reuse the same run.
An *evaluation* is one translation direction of a training run: a task such as anime2selfie.

Each stage is skipped when its record says it is complete and valid, so running an experiment
again recomputes nothing, and a killed run loses at most the work since its last checkpoint:
  train      skipped when training.json records all iterations; else resumed from the checkpoint
  translate  skipped when translations/<direction>/translations.json records the trained step and
             one image per test image
  score      skipped when result.json holds a score for the same evaluation settings, Inception
             weights and folder contents (content keys of the real, fake and source folders)

Run folder:
    config.json                  resolved configuration, git revision, package versions (written first)
    log.txt                      what happened, with the traceback of a failure
    checkpoints/latest.pt        see bench.train
    stats.jsonl                  one line per logged iteration
    samples/step_<step>.png      sample sheets of fixed test images
    training.json                written when training has finished
    translations/<direction>/    one PNG per test image (bench.translate); attention/ for U-GAT-IT;
                                 <direction>-<test settings>/ for a multimodal method's other settings
    result.json                  per evaluation (direction [+ test settings]): task, translation folder,
                                 test settings, scores per evaluation setting

Experiment results, in `<results_dir>/<name>/`: scores.csv, the requested tables (eval/tables.py),
external/ (scores of translations made elsewhere) and figures/ (eval/figures.py).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import os
import re
import shlex
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from tabulate import tabulate

from bench import methods as method_registry
from bench.config import (ConfigError, DatasetSpec, Experiment, ExternalResult, MethodSpec, TrainConfig, identity_fields,
                          is_operational, to_plain)
from bench.data import (DataError, SortedImageFolder, StreamSettings, UnpairedTrainingSet, count_images,
                        default_load_size, list_images)
from bench.datasets import CATALOGUE, PAPER_DATASETS, dataset_info, how_to_get, missing_splits
from bench.environment import git_revision, package_versions, resolve_device
from bench.files import DiskFullError, UnreadableFileError, atomic_write_json, cache_root, is_disk_full
from bench.multimodal import evaluation_key
from bench.synthetic import SyntheticSpec, is_current, write_dataset
from bench.train import CheckpointError, checkpoint_path, load_checkpoint, train
from bench.translate import MANIFEST as TRANSLATION_MANIFEST, completeness_problem, read_manifest, translate_with_method

log = logging.getLogger("bench")

RESULT_FILE = "result.json"
TRAINED_MARKER = "training.json"
SAMPLE_IMAGES_PER_DOMAIN = 4
PAPER_IMAGE_SIZE = 256


@dataclass(frozen=True)
class TrainingRun:
    method: MethodSpec
    dataset: DatasetSpec
    seed: int
    run_id: str                    # hash of `identity`
    run_dir: Path
    identity: dict[str, Any]       # the settings that define what this run computes
    train: TrainConfig | None = None   # the training settings, resolved (None while the dataset is missing)
    reused_from_elsewhere: bool = False  # the run folder is a finished run of another output folder

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
    """Training images per domain, by file name (None while the dataset is missing)."""
    info = CATALOGUE.get(dataset.name)
    if info is not None and info.synthetic:
        spec = SyntheticSpec()
        return spec.train_per_domain, spec.train_per_domain
    counts = training_images(experiment.data.resolved_root() / dataset.name)
    return counts if all(counts) else None


def run_identity(experiment: Experiment, method: MethodSpec, dataset: DatasetSpec, seed: int,
                 train: TrainConfig | None = None) -> dict[str, Any]:
    """What a run computes, from resolved settings: two spellings of one computation (iterations null
    or the method's reference length, lr in options or in train, a label) give one identity."""
    method_class = method_registry.method_class(method.name)
    train = train or method.train_config(experiment.train)
    train_fields = identity_fields(train)
    train_fields.pop("seeds")
    if train_fields["schedule"] != "linear_decay":
        train_fields.pop("decay_start")   # only the linear decay reads it
    data = identity_fields(experiment.data)   # without data.root: where the data lives changes nothing
    data["load_size"] = experiment.data.load_size or default_load_size(train.image_size)
    return {"method": method.name, "options": method_class.identity_options(method.options, train),
            "dataset": dataset.name, "seed": seed, "train": train_fields, "data": data}


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


# ----------------------------------------------------------------------------------------------
# Finished runs of other output folders: found through an index in the cache folder, so that the same
# computation is never trained twice on one machine (`--no-reuse` to train it again anyway).

RUN_INDEX_ENV = "UGATIT_BENCH_RUN_INDEX"   # where the index is, if not runs-index.json in the cache folder


def run_index_path() -> Path:
    return Path(os.environ.get(RUN_INDEX_ENV) or cache_root() / "runs-index.json")


def _read_index() -> dict[str, list[str]]:
    index = _read_json(run_index_path())
    return index if isinstance(index, dict) else {}


def record_finished_run(training: TrainingRun) -> None:
    index = _read_index()
    paths = [p for p in index.get(training.run_id, []) if Path(p).is_dir()]
    here = str(training.run_dir.resolve())
    if here not in paths:
        index[training.run_id] = paths + [here]
        try:
            atomic_write_json(run_index_path(), index)
        except OSError as error:   # the index only saves work; never fail a run for it
            log.warning("could not update the run index %s: %s", run_index_path(), error)


def finished_run_elsewhere(run_id: str, identity: dict[str, Any]) -> Path | None:
    for path in _read_index().get(run_id, []):
        folder = Path(path)
        config = _read_json(folder / "config.json") or {}
        if (folder / TRAINED_MARKER).is_file() and config.get("identity") == identity:
            return folder
    return None


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
    """Every run of the experiment, its folder and identity. With `reuse`, a run that another output
    folder on this machine has finished training is planned in that folder instead of trained again."""
    trainings, evaluations, missing = [], [], []
    output_dir = Path(experiment.output_dir)
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
            try:
                train = method_registry.resolve_training(method_class, method.options, method.train_config(experiment.train),
                                                           planned_train_images(experiment, dataset))
            except ConfigError:   # the reference length depends on the dataset, which is missing
                train = None
            for seed in experiment.train.seeds:
                identity = run_identity(experiment, method, dataset, seed, train)
                run_id = identity_hash(identity)
                run_dir = output_dir / dataset.name / run_folder_name(method, identity, seed, run_id)
                elsewhere = finished_run_elsewhere(run_id, identity) if reuse and not run_dir.exists() else None
                training = TrainingRun(method, dataset, seed, run_id, elsewhere or run_dir, identity, train,
                                       reused_from_elsewhere=elsewhere is not None)
                trainings.append(training)
                for direction in dataset.directions:
                    evaluations.append(Evaluation(training, direction, info.task_name(direction)))
    selected = tuple(t.run_id for t in trainings if only is None or matches(only, t))
    return Plan(experiment, tuple(trainings), tuple(evaluations), tuple(missing), tuple(_data_problems(experiment)),
                selected, tuple(overrides))


def _data_problems(experiment: Experiment) -> list[str]:
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
         f"{e.training.train.iterations:,}" if e.training.train else _estimated_length(e.training),
         str(e.training.run_dir) + (" (finished elsewhere: reused)" if e.training.reused_from_elsewhere else "")]
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
    lines.append(f"KID: protocol {e.protocol}; Inception weights: {e.resolved_inception_weights() or 'torch-fidelity download'}; "
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


# ----------------------------------------------------------------------------------------------
# Scoring context: one Inception network and feature cache for the whole experiment.


class Scoring:
    """Score settings from the experiment, a lazily built scorer, and the keys that make a score valid."""

    def __init__(self, experiment: Experiment, progress: bool):
        from eval.score import ScoreSettings

        e = experiment.eval
        self.settings = ScoreSettings(e.protocol, e.max_block_size, e.subsets, e.subset_size, e.seed)
        self.settings_key = hashlib.sha256(json.dumps(asdict(self.settings), sort_keys=True).encode()).hexdigest()[:12]
        self.experiment, self.progress = experiment, progress
        self._scorer = None

    @property
    def scorer(self):
        if self._scorer is None:
            from eval.score import Scorer

            e = self.experiment.eval
            self._scorer = Scorer(e.resolved_inception_weights(), self.experiment.train.device,
                                  cache_dir=e.cache_dir or "default", batch_size=e.batch_size,
                                  on_bad_image=self.experiment.data.on_bad_image, progress=self.progress)
        return self._scorer

    def content_keys(self, real: Path, fake: Path, source: Path | None) -> dict[str, str | None]:
        from eval.features import content_key

        sha = self.scorer.weights.sha256
        policy = self.experiment.data.on_bad_image
        return {name: (content_key(list_images(folder), sha, policy) if folder is not None else None)
                for name, folder in (("real", real), ("fake", fake), ("source", source))}

    def score(self, previous: dict[str, Any] | None, real: Path, fake: Path, source: Path) -> tuple[dict[str, Any], bool]:
        """(score record, whether it was computed now); reuses `previous` when it is still valid."""
        source = source if self.settings.protocol == "mean" else None
        keys = self.content_keys(real, fake, source)
        if previous is not None and previous.get("content_keys") == keys and \
                previous.get("weights", {}).get("sha256") == self.scorer.weights.sha256:
            return previous, False
        record = self.scorer.score(real, fake, source, self.settings)
        record["content_keys"] = keys
        return record, True


# ----------------------------------------------------------------------------------------------
# Execution of one training run.


@dataclass
class RunReport:
    training: TrainingRun
    status: str                    # "done", "failed" or "not trained" (--eval-only without a checkpoint)
    seconds: float = 0.0
    error: str = ""
    log_path: Path | None = None
    work: list[str] = field(default_factory=list)   # what was computed: train, translate a2b, score b2a, ...


def prepare_dataset(dataset: DatasetSpec, data_root: Path) -> Path:
    """The dataset's folder, generating the synthetic one if needed."""
    directory = data_root / dataset.name
    info = CATALOGUE.get(dataset.name)
    if info is not None and info.synthetic:
        return write_dataset(directory, SyntheticSpec())
    absent = missing_splits(directory)
    if absent:
        raise DataError(f"{directory} lacks {', '.join(absent)}; {how_to_get(dataset.name, data_root)}")
    return directory


def _first_images(folder: Path, image_size: int, on_bad_image: str) -> torch.Tensor:
    """The first test images of a domain (sorted by name): the fixed inputs of sample sheets."""
    test_set = SortedImageFolder(folder, image_size, on_bad_image)
    return torch.stack([test_set[i][0] for i in range(min(SAMPLE_IMAGES_PER_DOMAIN, len(test_set)))])


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def training_images(dataset_dir: Path) -> tuple[int, int]:
    """Training images per domain: what reference training lengths (CycleGAN's epochs) depend on."""
    return count_images(dataset_dir / "trainA"), count_images(dataset_dir / "trainB")


def _splits(direction: str) -> tuple[str, str]:
    """(source split, target split) of a direction."""
    return ("testA", "testB") if direction == "a2b" else ("testB", "testA")


class RunNotTrained(RuntimeError):
    pass


def execute_training(plan: Plan, training: TrainingRun, scoring: Scoring, eval_only: bool = False,
                     progress: bool = True) -> list[str]:
    """Train (or resume), translate and score one run, skipping what is complete. Returns the work done."""
    experiment, run_dir = plan.experiment, training.run_dir
    device = resolve_device(experiment.train.device)
    work: list[str] = []
    atomic_write_json(run_dir / "config.json", {
        "run_id": training.run_id, "identity": training.identity, "variant": training.variant,
        "experiment": {"name": experiment.name, "source": experiment.source},
        "resolved": {"method": to_plain(training.method), "train": to_plain(training.train),
                     "data": to_plain(experiment.data), "dataset": to_plain(training.dataset)},
        "git": git_revision(), "versions": package_versions(), "device": str(device),
    })
    dataset_dir = prepare_dataset(training.dataset, experiment.data.resolved_root())
    train_config = training.train
    if train_config is None:
        raise DataError(f"{dataset_dir}: the dataset was missing when the experiment was planned; run it again")
    image_size, total = train_config.image_size, train_config.iterations

    # Train, unless finished (or --eval-only, which scores whatever checkpoint there is).
    method = None
    marker = _read_json(run_dir / TRAINED_MARKER)
    steps = marker["steps"] if marker else None
    if steps is None or steps < total:
        if eval_only:
            if not checkpoint_path(run_dir).exists():
                raise RunNotTrained(f"{run_dir}: no checkpoint to score; run without --eval-only to train it")
            method, steps = _method_from_checkpoint(training, train_config, device)
        else:
            settings = StreamSettings(image_size=image_size, load_size=experiment.data.load_size or default_load_size(image_size),
                                      flip=experiment.data.flip, seed=training.seed, on_bad_image=experiment.data.on_bad_image)
            training_set = UnpairedTrainingSet(dataset_dir, settings)
            samples = tuple(_first_images(dataset_dir / split, image_size, experiment.data.on_bad_image) for split in ("testA", "testB"))
            torch.manual_seed(training.seed)  # network initialisation
            method = method_registry.build_method(training.method, train_config, device)
            method.prepare_training(dataset_dir, settings)
            log.info("training %s on %s, seed %d, %d iterations, in %s", training.variant, training.dataset.name,
                     training.seed, total, run_dir)
            outcome = train(method, training_set, run_dir, train_config, training.identity, device,
                            progress=progress, sample_images=samples)
            steps = outcome.steps_total
            atomic_write_json(run_dir / TRAINED_MARKER, {"steps": steps, "resumed_from": outcome.resumed_from,
                                                         "seconds": outcome.seconds})
            record_finished_run(training)
            work.append(f"train {outcome.resumed_from or 0}->{steps}")

    # Translate and score each direction.
    record = _read_json(run_dir / RESULT_FILE) or {}
    directions = record.get("directions", {})
    info = dataset_info(training.dataset.name)
    test_settings = method_registry.method_class(training.method.name).test_settings(training.method.options)
    for direction in training.dataset.directions:
        source_split, target_split = _splits(direction)
        key = evaluation_key(direction, test_settings)
        output = run_dir / "translations" / key
        manifest = read_manifest(output)
        problem = completeness_problem(output, dataset_dir / source_split)   # by file names: nothing is decoded
        if problem is None and manifest.get("step") != steps:
            problem = f"made at step {manifest.get('step')}, the model is at step {steps}"
        if problem is None and manifest.get("test_settings", {}) != test_settings:
            problem = f"made with test settings {manifest.get('test_settings')}, now {test_settings}"
        if problem is not None:
            if problem != "no manifest":
                log.info("translating %s again: %s", output, problem)
            if method is None:
                method, _ = _method_from_checkpoint(training, train_config, device)
            translate_with_method(method, direction, dataset_dir / source_split, output, image_size, device,
                                  on_bad_image=experiment.data.on_bad_image, progress=progress,
                                  extra_manifest={"direction": direction, "step": steps},
                                  exemplar_dir=dataset_dir / target_split)
            work.append(f"translate {key}")
        entry = directions.get(key, {})
        scores = entry.get("scores", {})
        score, computed = scoring.score(scores.get(scoring.settings_key), dataset_dir / target_split, output,
                                        dataset_dir / source_split)
        if computed:
            work.append(f"score {key}")
        scores[scoring.settings_key] = score
        directions[key] = {"task": info.task_name(direction), "direction": direction, "translations": str(output),
                           "step": steps, "scores": scores, **({"test_settings": test_settings} if test_settings else {})}
    atomic_write_json(run_dir / RESULT_FILE, {"run_id": training.run_id, "variant": training.variant,
                                              "method": training.method.name, "dataset": training.dataset.name,
                                              "seed": training.seed, "steps": steps, "directions": directions})
    return work


def _method_from_checkpoint(training: TrainingRun, train_config, device: torch.device):
    """The run's method restored from its checkpoint, and the checkpoint's step (one read of the file)."""
    checkpoint = load_checkpoint(checkpoint_path(training.run_dir), expected_identity=training.identity)
    method = method_registry.build_method(training.method, train_config, device)
    method.load_state_dict(checkpoint["method_state"])
    return method, int(checkpoint["step"])


def _failure_text(error: Exception) -> str:
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":
        return (f"out of memory ({type(error).__name__}); lower train.batch_size, train.image_size or the "
                "method's width, or use a device with more memory")
    if isinstance(error, (CheckpointError, UnreadableFileError, DataError)):
        return str(error)
    return f"{type(error).__name__}: {error}"


def _run_logger(run_dir: Path) -> logging.Handler:
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(run_dir / "log.txt", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler


def run_plan(plan: Plan, progress: bool = True, eval_only: bool = False) -> list[RunReport]:
    """Execute the selected training runs; a failing run is reported and the others continue.
    Then score the external results and write the tables and figures."""
    if plan.data_problems:
        raise DataError("some inputs are missing; nothing was run:\n  " + "\n  ".join(plan.data_problems))
    scoring = Scoring(plan.experiment, progress)
    _ = scoring.scorer   # find the Inception weights before any training, so that a problem stops nothing midway
    reports = []
    selected = [t for t in plan.trainings if t.run_id in set(plan.selected)]
    for number, training in enumerate(selected, start=1):
        print(f"[{number}/{len(selected)}] {training.variant} on {training.dataset.name}, seed {training.seed}: {training.run_dir}", flush=True)
        handler = _run_logger(training.run_dir)
        started = time.perf_counter()
        try:
            work = execute_training(plan, training, scoring, eval_only=eval_only, progress=progress)
            reports.append(RunReport(training, "done", time.perf_counter() - started, log_path=training.run_dir / "log.txt", work=work))
        except RunNotTrained as error:
            reports.append(RunReport(training, "not trained", time.perf_counter() - started, error=str(error)))
        except Exception as error:  # one failing run must not stop the others
            if is_disk_full(error):   # ... but a full disk stops every run: nothing more can be written
                log.error("run stopped: %s", error)
                raise error if isinstance(error, DiskFullError) else DiskFullError(training.run_dir) from None
            log.error("run failed: %s\n%s", error, traceback.format_exc())
            reports.append(RunReport(training, "failed", time.perf_counter() - started,
                                     error=_failure_text(error), log_path=training.run_dir / "log.txt"))
        finally:
            logging.getLogger().removeHandler(handler)
            handler.close()
    write_results(plan, scoring, progress)
    return reports


# ----------------------------------------------------------------------------------------------
# Records -> rows -> tables and figures.


def score_external(plan: Plan, scoring: Scoring) -> list[tuple[ExternalResult, dict[str, Any]]]:
    experiment = plan.experiment
    scored = []
    for item in experiment.external:
        info = dataset_info(item.dataset)
        task = info.task_name(item.direction)
        dataset_dir = experiment.data.resolved_root() / item.dataset
        source_split, target_split = _splits(item.direction)
        record_path = plan.results_dir / "external" / f"{slug(item.label)}-{task}.json"
        previous = (_read_json(record_path) or {}).get("scores", {}).get(scoring.settings_key)
        score, computed = scoring.score(previous, dataset_dir / target_split, Path(item.folder), dataset_dir / source_split)
        if computed:
            atomic_write_json(record_path, {"label": item.label, "dataset": item.dataset, "direction": item.direction,
                                            "task": task, "folder": item.folder, "scores": {scoring.settings_key: score}})
        scored.append((item, score))
    return scored


def _common_notes(experiment: Experiment, dataset: str, direction: str, score: dict[str, Any]) -> list[str]:
    notes = []
    info = CATALOGUE.get(dataset)
    if info is not None and info.test_counts is not None:
        source, target = info.test_counts if direction == "a2b" else info.test_counts[::-1]
        found = (score["counts"]["fake"], score["counts"]["real"])
        if found != (source, target):
            notes.append(f"{info.task_name(direction)}: {found[0]} source and {found[1]} target test images here, "
                         f"{source} and {target} in the paper; KID depends on the number of images: not comparable")
    if not score["weights"]["official"]:
        sha = score["weights"]["sha256"]
        kind = "a random stand-in Inception" if sha.startswith("random-") else "non-official Inception weights"
        notes.append(f"KID from {kind} ({sha[:19] if sha.startswith('random-') else 'sha256 ' + sha[:12]}...): "
                     "not comparable with the paper")
    if dataset not in PAPER_DATASETS:
        notes.append("synthetic data (bench/synthetic.py), not a dataset of the paper" if CATALOGUE.get(dataset) and
                     CATALOGUE[dataset].synthetic else f"dataset {dataset!r} is not one of the paper's")
    if score["protocol"] == "subsets":
        notes.append("torch-fidelity's subset KID, not the paper's block estimator")
    return notes


def score_row(model: str, method: str, dataset: str, task: str, direction: str, seed: int | None, score: dict[str, Any],
              steps: int | None, image_size: int, tables: tuple[str, ...], notes: list[str]) -> dict[str, Any]:
    nan = float("nan")
    return {
        "model": model, "method": method, "dataset": dataset, "task": task, "direction": direction, "seed": seed,
        "kid": score["kid_x100"], "std": score["kid_std_x100"] if score["kid_std_x100"] is not None else nan,
        "fid": score.get("fid", nan), "metric": score["metric"], "protocol": score["protocol"],
        "weights_official": score["weights"]["official"], "weights_sha256": score["weights"]["sha256"],
        "iterations": steps if steps is not None else -1, "image_size": image_size,
        "n_real": score["counts"]["real"], "n_fake": score["counts"]["fake"], "tables": list(tables), "notes": notes,
        "folders": score["folders"],
    }


def collect_rows(plan: Plan, scoring: Scoring, external: list[tuple[ExternalResult, dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per scored (run, direction) of the whole experiment, and per external result."""
    experiment = plan.experiment
    rows = []
    for training in plan.trainings:
        record = _read_json(training.run_dir / RESULT_FILE)
        if not record:
            continue
        method_class = method_registry.method_class(training.method.name)
        run_notes = list(method_class.deviations(training.method.options, training.method.train_config(experiment.train)))
        reference = method_class.reference_iterations(
            training.method.options, training_images(experiment.data.resolved_root() / training.dataset.name))
        if reference and record["steps"] < reference:
            run_notes.append(f"trained {record['steps']:,} iterations (reference length: {reference:,})")
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
                                  run_notes + _common_notes(experiment, training.dataset.name, direction, score)))
    for item, score in external:
        notes = [f"{item.label}: translations made outside this harness" + (f" ({item.note})" if item.note else "")]
        rows.append(score_row(item.label, "external", item.dataset, dataset_info(item.dataset).task_name(item.direction),
                              item.direction, None, score, None, PAPER_IMAGE_SIZE, ("table3",),
                              notes + _common_notes(experiment, item.dataset, item.direction, score)))
    return rows


def regenerate_command(plan: Plan) -> str:
    parts = ["python", "run_bench.py", plan.experiment.source]
    for override in plan.overrides:
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
    mark_significance(table_rows, scoring, experiment.train.seeds[0])
    written = write_tables(table_rows, experiment.tables, plan.results_dir, experiment.name, task_groups, models,
                           regenerate_command(plan), SIGNIFICANCE + "; with several seeds, the first seed's translations")
    written += write_figures(plan, external, rows)
    for path in written:
        print(f"wrote {path}")
    return written


SIGNIFICANCE_RESAMPLES = 1000   # permutations (and bootstrap draws) per comparison with a column's best
SIGNIFICANCE = (f"paired permutation test over the test images ({SIGNIFICANCE_RESAMPLES} permutations, seed 0; "
                "eval/compare.py) of each model's translations against the best's, Holm's correction over the column")


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


def write_figures(plan: Plan, external: list[tuple[ExternalResult, dict[str, Any]]],
                  rows: list[dict[str, Any]] = ()) -> list[Path]:
    from eval.figures import comparison_sheet, training_curves

    experiment = plan.experiment
    first_seed = experiment.train.seeds[0]
    kid_text = {(row["model"], row["task"]): f"KID {row['kid']:.2f}" + (f" ± {row['std']:.2f}" if row["std"] == row["std"] else "")
                for row in rows if row["seed"] in (None, first_seed)}
    figures_dir = plan.results_dir / "figures"
    written = []
    for training in plan.trainings:
        title = f"{training.variant} on {training.dataset.name}, seed {training.seed}"
        path = training_curves(training.run_dir / "stats.jsonl", figures_dir / "curves" / f"{training.dataset.name}-{slug(training.variant)}-s{training.seed}.png", title)
        if path is not None:
            written.append(path)
    for dataset in experiment.datasets:
        info = dataset_info(dataset.name)
        dataset_dir = experiment.data.resolved_root() / dataset.name
        for direction in dataset.directions:
            task = info.task_name(direction)
            columns, attention, with_attention = [], [], set()   # one attention column per method: its first variant's
            for training in plan.trainings:
                folder = training.run_dir / "translations" / evaluation_key(
                    direction, method_registry.method_class(training.method.name).test_settings(training.method.options))
                if training.dataset.name != dataset.name or training.seed != first_seed or not (folder / TRANSLATION_MANIFEST).exists():
                    continue
                columns.append((training.variant, folder))
                if training.method.name not in with_attention and (folder / "attention").is_dir():
                    attention.append((training.variant, folder / "attention"))
                    with_attention.add(training.method.name)
            columns += [(item.label, Path(item.folder)) for item, _ in external if item.dataset == dataset.name and item.direction == direction]
            if columns and (dataset_dir / _splits(direction)[0]).is_dir():
                scores = {name: kid_text[(name, task)] for name, _ in columns if (name, task) in kid_text}
                written.append(comparison_sheet(task, dataset_dir / _splits(direction)[0], columns,
                                                figures_dir / f"compare_{task}.png", attention, scores=scores))
    return written


def format_reports(reports: list[RunReport], plan: Plan) -> str:
    rows = [[r.training.variant, r.training.dataset.name, r.training.seed, r.status, f"{r.seconds:.1f}",
             ", ".join(r.work) or ("nothing to do" if r.status == "done" else ""), r.error or str(r.training.run_dir)]
            for r in reports]
    lines = [tabulate(rows, headers=["variant", "dataset", "seed", "status", "seconds", "work", "folder / error"])]
    for report in reports:
        if report.status == "failed":
            lines.append(f"FAILED {report.training.variant} on {report.training.dataset.name}: see {report.log_path}")
    for method in plan.missing_methods:
        lines.append(f"Not run: {method.label} ({method.name}) is not implemented yet")
    return "\n".join(lines)
