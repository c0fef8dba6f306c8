"""From an experiment to runs: plan, check, train, translate, record.

A *training run* is one (method variant, dataset, seed): it trains both directions at once, as
every method here does. Its folder is `<output_dir>/<dataset>/<variant>-s<seed>-<id>/`, where `id`
hashes the run's resolved configuration (method options, dataset, seed, training and data
settings that change results; not logging intervals or the device). A changed setting gives a new
folder, never a silent reuse; the same settings in another experiment reuse the same run.

An *evaluation* is one translation direction of a training run: a task such as selfie2anime.

Run folder:
    config.json                  resolved configuration, git revision, package versions (written first)
    log.txt                      what happened, with the traceback of a failure
    checkpoints/latest.pt        see bench.train
    stats.jsonl                  one line per logged iteration
    samples/step_<step>.png      sample sheets of fixed test images
    translations/<direction>/    one PNG per test image (bench.translate)
    result.json                  per direction: task, translation folder, image count
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tabulate import tabulate

from bench import methods as method_registry
from bench.config import DatasetSpec, Experiment, MethodSpec, identity_fields, to_plain
from bench.data import DataError, SortedImageFolder, StreamSettings, UnpairedTrainingSet, default_load_size
from bench.datasets import CATALOGUE, dataset_info, how_to_get, missing_splits
from bench.environment import atomic_write_json, git_revision, package_versions, resolve_device
from bench.synthetic import is_current, write_dataset, SyntheticSpec
from bench.train import train
from bench.translate import translate_images

log = logging.getLogger("bench")


@dataclass(frozen=True)
class TrainingRun:
    method: MethodSpec
    dataset: DatasetSpec
    seed: int
    run_id: str                    # hash of `identity`
    run_dir: Path
    identity: dict[str, Any]       # the settings that define what this run computes

    @property
    def variant(self) -> str:
        return self.method.label or self.method.name


@dataclass(frozen=True)
class Evaluation:
    training: TrainingRun
    direction: str
    task: str                      # the paper's task name, e.g. anime2selfie


@dataclass(frozen=True)
class Plan:
    experiment: Experiment
    trainings: tuple[TrainingRun, ...]
    evaluations: tuple[Evaluation, ...]
    missing_methods: tuple[MethodSpec, ...]   # planned methods that are not implemented yet
    data_problems: tuple[str, ...]            # datasets that are not there, with how to get them


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "run"


def run_identity(experiment: Experiment, method: MethodSpec, dataset: DatasetSpec, seed: int) -> dict[str, Any]:
    train = identity_fields(experiment.train)
    train.pop("seeds")
    data = identity_fields(experiment.data)
    data.pop("root")  # where the data lives does not change what is computed
    return {
        "method": method.name,
        "options": to_plain(method.options),
        "dataset": dataset.name,
        "seed": seed,
        "train": train,
        "data": data,
    }


def identity_hash(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]


def plan_experiment(experiment: Experiment) -> Plan:
    trainings, evaluations, missing = [], [], []
    output_dir = Path(experiment.output_dir)
    for method in experiment.methods:
        if not method_registry.is_registered(method.name):
            missing.append(method)
            continue
        for dataset in experiment.datasets:
            info = dataset_info(dataset.name)
            for seed in experiment.train.seeds:
                identity = run_identity(experiment, method, dataset, seed)
                run_id = identity_hash(identity)
                run_dir = output_dir / dataset.name / f"{slug(method.label or method.name)}-s{seed}-{run_id}"
                training = TrainingRun(method, dataset, seed, run_id, run_dir, identity)
                trainings.append(training)
                for direction in dataset.directions:
                    evaluations.append(Evaluation(training, direction, info.task_name(direction)))
    return Plan(experiment, tuple(trainings), tuple(evaluations), tuple(missing), tuple(_data_problems(experiment)))


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
    return problems


def format_plan(plan: Plan) -> str:
    experiment = plan.experiment
    rows = [
        [index, evaluation.training.variant, evaluation.training.method.name, evaluation.training.dataset.name,
         evaluation.task, evaluation.training.seed, str(evaluation.training.run_dir)]
        for index, evaluation in enumerate(plan.evaluations, start=1)
    ]
    lines = [
        f"Experiment {experiment.name} ({experiment.source}): {len(plan.trainings)} training run(s), "
        f"{len(plan.evaluations)} evaluation(s); {experiment.train.iterations} iterations at "
        f"{experiment.train.image_size} px, batch {experiment.train.batch_size}",
        tabulate(rows, headers=["#", "variant", "method", "dataset", "task", "seed", "run folder"]),
    ]
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
# Execution.


@dataclass
class RunReport:
    training: TrainingRun
    status: str                    # "done" or "failed"
    seconds: float = 0.0
    error: str = ""
    log_path: Path | None = None


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


SAMPLE_IMAGES_PER_DOMAIN = 4


def _first_images(folder: Path, image_size: int, on_bad_image: str) -> torch.Tensor:
    """The first test images of a domain (sorted by name): the fixed inputs of sample sheets."""
    test_set = SortedImageFolder(folder, image_size, on_bad_image)
    return torch.stack([test_set[i][0] for i in range(min(SAMPLE_IMAGES_PER_DOMAIN, len(test_set)))])


def _run_logger(run_dir: Path) -> logging.Handler:
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(run_dir / "log.txt", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler


def execute_training(plan: Plan, training: TrainingRun, progress: bool = True) -> None:
    """Train (or resume) one run and translate its test sets."""
    experiment = plan.experiment
    run_dir = training.run_dir
    device = resolve_device(experiment.train.device)
    atomic_write_json(run_dir / "config.json", {
        "run_id": training.run_id,
        "identity": training.identity,
        "variant": training.variant,
        "experiment": {"name": experiment.name, "source": experiment.source},
        "resolved": {"method": to_plain(training.method), "train": to_plain(experiment.train),
                     "data": to_plain(experiment.data), "dataset": to_plain(training.dataset)},
        "git": git_revision(),
        "versions": package_versions(),
        "device": str(device),
    })
    data_root = experiment.data.resolved_root()
    dataset_dir = prepare_dataset(training.dataset, data_root)
    image_size = experiment.train.image_size
    settings = StreamSettings(
        image_size=image_size,
        load_size=experiment.data.load_size or default_load_size(image_size),
        flip=experiment.data.flip,
        seed=training.seed,
        on_bad_image=experiment.data.on_bad_image,
    )
    training_set = UnpairedTrainingSet(dataset_dir, settings)

    torch.manual_seed(training.seed)  # network initialisation
    method = method_registry.build_method(training.method, experiment.train, device)
    log.info("training %s on %s, seed %d, in %s", training.variant, training.dataset.name, training.seed, run_dir)
    samples = tuple(_first_images(dataset_dir / split, image_size, experiment.data.on_bad_image) for split in ("testA", "testB"))
    outcome = train(method, training_set, run_dir, experiment.train, training.identity, device, progress=progress,
                    sample_images=samples)
    log.info("training finished at step %d (resumed from %s) in %.1f s", outcome.steps_total, outcome.resumed_from, outcome.seconds)

    results = {}
    for direction in training.dataset.directions:
        source_split = "testA" if direction == "a2b" else "testB"
        output = translate_images(
            lambda images, direction=direction: method.translate(images, direction),
            dataset_dir / source_split, run_dir / "translations" / direction, image_size, device,
            on_bad_image=experiment.data.on_bad_image, progress=progress,
            extra_manifest={"direction": direction, "step": outcome.steps_total},
        )
        task = dataset_info(training.dataset.name).task_name(direction)
        results[direction] = {"task": task, "translations": str(output), "step": outcome.steps_total}
    atomic_write_json(run_dir / "result.json", {"run_id": training.run_id, "variant": training.variant,
                                                "dataset": training.dataset.name, "seed": training.seed,
                                                "directions": results})


def run_plan(plan: Plan, progress: bool = True) -> list[RunReport]:
    """Execute every training run of the plan; a failing run is reported and the others continue."""
    if plan.data_problems:
        raise DataError("some datasets are missing; nothing was run:\n  " + "\n  ".join(plan.data_problems))
    reports = []
    for number, training in enumerate(plan.trainings, start=1):
        print(f"[{number}/{len(plan.trainings)}] {training.variant} on {training.dataset.name}, seed {training.seed}: {training.run_dir}", flush=True)
        handler = _run_logger(training.run_dir)
        started = time.perf_counter()
        try:
            execute_training(plan, training, progress=progress)
            reports.append(RunReport(training, "done", time.perf_counter() - started, log_path=training.run_dir / "log.txt"))
        except Exception as error:  # one failing run must not stop the others
            log.error("run failed: %s\n%s", error, traceback.format_exc())
            reports.append(RunReport(training, "failed", time.perf_counter() - started,
                                     error=f"{type(error).__name__}: {error}", log_path=training.run_dir / "log.txt"))
        finally:
            logging.getLogger().removeHandler(handler)
            handler.close()
    return reports


def format_reports(reports: list[RunReport], plan: Plan) -> str:
    rows = [[r.training.variant, r.training.dataset.name, r.training.seed, r.status, f"{r.seconds:.1f}",
             r.error or str(r.training.run_dir)] for r in reports]
    lines = [tabulate(rows, headers=["variant", "dataset", "seed", "status", "seconds", "folder / error"])]
    failed = [r for r in reports if r.status != "done"]
    for report in failed:
        lines.append(f"FAILED {report.training.variant} on {report.training.dataset.name}: see {report.log_path}")
    for method in plan.missing_methods:
        lines.append(f"Not run: {method.label} ({method.name}) is not implemented yet")
    return "\n".join(lines)
