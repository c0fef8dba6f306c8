"""Executing one training run: train (or resume), translate and score each of its evaluations.

Each stage is skipped when its record says it is complete and valid, so running an experiment
again recomputes nothing, and a killed run loses at most the work since its last checkpoint:
  train      skipped when training.json records all iterations; else resumed from the checkpoint
  translate  skipped when translations/<direction>/translations.json records the trained step and
             one image per test image (and, for a multimodal method, the same test settings)
  score      skipped when result.json holds a score for the same evaluation settings, Inception
             weights and folder contents (content keys of the real, fake and source folders)

Run folder:
    config.json                  resolved configuration, git revision, package versions (written first)
    log.txt                      what happened, with the traceback of a failure
    checkpoints/latest.pt        see bench.core.train
    stats.jsonl                  one line per logged iteration
    samples/step_<step>.png      sample sheets of fixed test images
    training.json                written when training has finished: steps, and the device and torch threads of
                                 each stretch of training (`trained_with`, also in result.json)
    translations/<direction>/    one PNG per test image (bench.cli.translate); attention/ for U-GAT-IT and AGGAN;
                                 <direction>-<test settings>/ for a multimodal method's other settings
    result.json                  per evaluation (direction [+ test settings]): task, translation folder,
                                 test settings, scores per evaluation setting
Everything is written inside the run folder. A run adopted from another output folder (bench/harness/reuse.py)
starts with that run's checkpoint, stats and training.json (with `reused_from`); the rest is made here.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from bench.core import methods as method_registry
from bench.core.config import DatasetSpec, Experiment, SubsetConfig
from bench.core.multimodal import evaluation_key
from bench.core.schema import to_plain
from bench.core.train import checkpoint_path, load_checkpoint, train
from bench.core.translate import completeness_problem, read_manifest, translate_with_method
from bench.data.datasets import CATALOGUE, dataset_info, how_to_get, missing_splits
from bench.data.pipeline import SortedImageFolder, StreamSettings, UnpairedTrainingSet, default_load_size
from bench.data.subset import prepare_subset
from bench.data.synthetic import SyntheticSpec, write_dataset
from bench.harness.plan import RESULT_FILE, TrainingRun, planned_train_images, run_pipeline
from bench.harness.reuse import TRAINED_MARKER, adopt_finished_run, record_finished_run
from safeio.environment import git_revision, package_versions, resolve_device
from safeio.files import InputError, atomic_write_json, read_json
from safeio.images import DataError, list_images

log = logging.getLogger("bench")

SAMPLE_IMAGES_PER_DOMAIN = 4


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
            self._scorer = Scorer(e.inception_weights, self.experiment.train.device,
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


def prepare_dataset(dataset: DatasetSpec, data_root: Path, subset: SubsetConfig | None = None) -> Path:
    """The folder runs read the dataset from: its own (the synthetic one generated if needed), or the
    copy of its seeded subset (data.subset, bench/data/subset.py)."""
    directory = data_root / dataset.name
    info = CATALOGUE.get(dataset.name)
    if info is not None and info.synthetic:
        directory = write_dataset(directory, SyntheticSpec())
    else:
        absent = missing_splits(directory)
        if absent:
            raise DataError(f"{directory} lacks {', '.join(absent)}; {how_to_get(dataset.name, data_root)}")
    return prepare_subset(directory, subset) if subset is not None else directory


def _first_images(folder: Path, image_size: int, on_bad_image: str, pipeline: str = "paper") -> torch.Tensor:
    """The first test images of a domain (sorted by name): the fixed inputs of sample sheets."""
    test_set = SortedImageFolder(folder, image_size, on_bad_image, pipeline)
    return torch.stack([test_set[i][0] for i in range(min(SAMPLE_IMAGES_PER_DOMAIN, len(test_set)))])


def splits(direction: str) -> tuple[str, str]:
    """(source split, target split) of a direction."""
    return ("testA", "testB") if direction == "a2b" else ("testB", "testA")


class RunNotTrained(RuntimeError):
    pass


def execute_training(experiment: Experiment, training: TrainingRun, scoring: Scoring, eval_only: bool = False,
                     progress: bool = True) -> list[str]:
    """Train (or resume), translate and score one run, skipping what is complete. Returns the work done.
    The caller holds the run folder's lock (bench/harness/jobs.py)."""
    run_dir = training.run_dir
    device = resolve_device(experiment.train.device)
    work: list[str] = []
    atomic_write_json(run_dir / "config.json", {
        "run_id": training.run_id, "identity": training.identity, "variant": training.variant,
        "experiment": {"name": experiment.name, "source": experiment.source},
        "resolved": {"method": to_plain(training.method), "train": to_plain(training.train),
                     "data": to_plain(experiment.data), "dataset": to_plain(training.dataset)},
        "git": git_revision(), "versions": package_versions(), "device": str(device),
        "torch_threads": torch.get_num_threads(),   # this start's (launcher.threads); training.json has every start's
    })
    dataset_dir = prepare_dataset(training.dataset, experiment.data.resolved_root(), experiment.data.subset)
    train_config = training.train
    if train_config is None:
        raise DataError(f"{dataset_dir}: the dataset was missing when the experiment was planned; run it again")
    image_size, total = train_config.image_size, train_config.iterations
    pipeline_name = run_pipeline(experiment, training.method)   # the authors' data pipeline, or the paper's

    # Train, unless finished (or --eval-only, which scores whatever checkpoint there is). The authors'
    # released weights (a `pretrained:` entry) are loaded instead: nothing is trained, step 0.
    method = None
    marker = read_json(run_dir / TRAINED_MARKER)
    if marker is None and training.reuse_from is not None and adopt_finished_run(training.reuse_from, run_dir, training.identity):
        marker = read_json(run_dir / TRAINED_MARKER)
        record_finished_run(training.run_id, run_dir)
        work.append(f"reuse {marker['steps']} steps")
    steps = marker["steps"] if marker else None
    if training.method.pretrained is not None:
        from bench.core.multimodal import TEST_FIELDS
        from bench.core.released import load_released

        test_options = {name: getattr(training.method.options, name) for name in TEST_FIELDS
                        if hasattr(training.method.options, name)}   # how a multimodal model draws its test codes
        method = load_released(training.method.name, device, image_size=image_size, train=train_config,
                               **training.method.pretrained, **test_options)
        # Its own test resize (the format of its files decides it: the TF code's for TensorFlow checkpoints),
        # unless data.pipeline: paper.
        method.pipeline = "paper" if experiment.data.pipeline == "paper" else None
        steps = 0
        if marker is None:
            atomic_write_json(run_dir / TRAINED_MARKER, {"steps": 0, "released": training.method.pretrained})
    elif steps is None or steps < total:
        if eval_only:
            if not checkpoint_path(run_dir).exists():
                raise RunNotTrained(f"{run_dir}: no checkpoint to score; run without --eval-only to train it")
            method, steps = _method_from_checkpoint(training, train_config, device, pipeline_name)
        else:
            settings = StreamSettings(image_size=image_size, load_size=experiment.data.load_size or default_load_size(image_size),
                                      flip=experiment.data.flip, seed=training.seed, on_bad_image=experiment.data.on_bad_image,
                                      pipeline=pipeline_name)
            training_set = UnpairedTrainingSet(dataset_dir, settings)
            samples = tuple(_first_images(dataset_dir / split, image_size, experiment.data.on_bad_image, pipeline_name)
                            for split in ("testA", "testB"))
            torch.manual_seed(training.seed)  # network initialisation
            method = method_registry.build_method(training.method, train_config, device,
                                                  planned_train_images(experiment, training.dataset), pipeline_name)
            method.prepare_training(dataset_dir, settings)
            log.info("training %s on %s, seed %d, %d iterations, in %s", training.variant, training.dataset.name,
                     training.seed, total, run_dir)
            outcome = train(method, training_set, run_dir, train_config, training.identity, device,
                            progress=progress, sample_images=samples)
            steps = outcome.steps_total
            atomic_write_json(run_dir / TRAINED_MARKER, {"steps": steps, "resumed_from": outcome.resumed_from,
                                                         "seconds": outcome.seconds, "trained_with": outcome.trained_with})
            record_finished_run(training.run_id, run_dir)
            work.append(f"train {outcome.resumed_from or 0}->{steps}")

    # Translate and score each direction.
    record = read_json(run_dir / RESULT_FILE) or {}
    directions = record.get("directions", {})
    info = dataset_info(training.dataset.name)
    test_settings = method_registry.method_class(training.method.name).test_settings(training.method.options)
    for direction in training.dataset.directions:
        source_split, target_split = splits(direction)
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
                method, _ = _method_from_checkpoint(training, train_config, device, pipeline_name)
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
    trained_with = (read_json(run_dir / TRAINED_MARKER) or {}).get("trained_with")   # device and threads per stretch
    atomic_write_json(run_dir / RESULT_FILE, {"run_id": training.run_id, "variant": training.variant,
                                              "method": training.method.name, "dataset": training.dataset.name,
                                              "seed": training.seed, "steps": steps, "directions": directions,
                                              **({"trained_with": trained_with} if trained_with is not None else {})})
    return work


def _method_from_checkpoint(training: TrainingRun, train_config, device: torch.device, pipeline_name: str):
    """The run's method restored from its checkpoint, and the checkpoint's step (one read of the file)."""
    checkpoint = load_checkpoint(checkpoint_path(training.run_dir), expected_identity=training.identity)
    method = method_registry.build_method(training.method, train_config, device, pipeline=pipeline_name)
    method.load_state_dict(checkpoint["method_state"])
    return method, int(checkpoint["step"])


def failure_text(error: Exception) -> str:
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":
        return (f"out of memory ({type(error).__name__}); lower train.batch_size, train.image_size or the "
                "method's width, or use a device with more memory")
    if isinstance(error, InputError):   # says what and how to fix it
        return " ".join(str(error).split("\n"))
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def run_logger(run_dir: Path) -> logging.Handler:
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(run_dir / "log.txt", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler
