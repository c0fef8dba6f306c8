"""The experiment schema: frozen dataclasses, one per section of an experiment YAML.

Every key an experiment file may write has its type, default and a one-line comment here, in one
place; `__post_init__` refuses impossible values (FieldError, turned into a ConfigError naming the
file and key by the loader). Fields marked operational (`_operational`) change how a run executes,
not what it computes: they are left out of run identities (`identity_fields`) and of the results
folder name (`is_operational`).

Reading a file into these (includes, `--set`, `${VAR}`, each method's options) is
bench/harness/experiment_file.py; the typed conversion of a tree into any dataclass is
bench/core/schema.py.
"""

from __future__ import annotations

import dataclasses
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bench.core.schema import FieldError, strip_optional, to_plain, type_hints, type_origin

DATA_ROOT_ENV = "UGATIT_BENCH_DATA"                 # where datasets live, if the YAML leaves data.root unset

Direction = Literal["a2b", "b2a"]

# Sanity bounds: beyond these a setting is a typo, and would die later in a bare MemoryError.
MAX_IMAGE_SIZE = 4096
MAX_BATCH_SIZE = 1024
MAX_ITERATIONS = 100_000_000
MAX_SEEDS = 1000
MAX_EVAL_COUNT = 1_000_000


def is_plain_name(name: str) -> bool:
    """A name that is safe as one folder name: letters, digits, _ . - and not only dots (not . or ..)."""
    return bool(re.fullmatch(r"[A-Za-z0-9_.-]+", name)) and set(name) != {"."}


def _operational(default: Any, **kwargs: Any) -> Any:
    """A field that changes how a run is executed, not what it computes (not part of a run's identity)."""
    return field(default=default, metadata={"identity": False}, **kwargs)


# ----------------------------------------------------------------------------------------------
# The schema.


@dataclass(frozen=True)
class DatasetSpec:
    name: str                                       # folder under data.root, or a catalogue name (bench/data/datasets.py)
    directions: tuple[Direction, ...] = ("a2b", "b2a")  # which translation directions are evaluated

    def __post_init__(self):
        if not self.directions:
            raise FieldError("directions", "at least one direction is needed; allowed: a2b, b2a")
        if len(set(self.directions)) != len(self.directions):
            raise FieldError("directions", f"repeated direction in {list(self.directions)}")
        if not is_plain_name(self.name):
            raise FieldError("name", f"{self.name!r} is not a plain folder name (letters, digits, _ . -; not . or ..)")


# What a method entry's `train:` may change for that method alone (the image size and the seeds are
# the experiment's, so that its tables compare like with like).
METHOD_TRAIN_KEYS = ("iterations", "batch_size", "lr", "schedule", "decay_start")


@dataclass(frozen=True)
class MethodSpec:
    name: str                                       # a registered method (bench.core.methods.registered_methods())
    label: str | None = None                        # row name in tables, e.g. "U-GAT-IT w/ IN"; default: the method's own
    options: Any = None                             # mapping validated into the method's options dataclass
    train: Any = None                               # this method's own iterations, batch_size, lr, schedule, decay_start
    datasets: tuple[str, ...] | None = None         # run only on these of the experiment's datasets (default: all)
    directions: tuple[Direction, ...] | None = None  # evaluate only these directions (default: each dataset's)
    pretrained: Any = None                          # the authors' released files instead of training (bench/core/released.py):
                                                    #   cyclegan {a2b: FILE, b2a: FILE}; ugatit {checkpoint: FILE};
                                                    #   unit, munit {gen: FILE, pad_type: reflect | zero}

    def train_config(self, experiment_train: "TrainConfig") -> "TrainConfig":
        """The experiment's training settings with this method's own `train:` keys applied."""
        return self.train if self.train is not None else experiment_train

    def directions_on(self, dataset: "DatasetSpec") -> tuple[str, ...]:
        """The directions this entry evaluates on `dataset`: () when it does not run there."""
        if self.datasets is not None and dataset.name not in self.datasets:
            return ()
        return tuple(d for d in dataset.directions if self.directions is None or d in self.directions)


@dataclass(frozen=True)
class SubsetConfig:
    """`data.subset`: a seeded subset of each split (bench/data/subset.py), e.g. for a CI job on real data."""
    train: int | None = None                        # images kept of trainA and of trainB (null: all)
    test: int | None = None                         # images kept of testA and of testB (null: all)
    seed: int = 0                                   # which ones: a generator seeded with (seed, split)

    def __post_init__(self):
        for name in ("train", "test"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise FieldError(name, f"must be at least 1 (or null for every image), got {getattr(self, name)}")


@dataclass(frozen=True)
class DataConfig:
    root: str | None = _operational(None)           # datasets folder; None: ${UGATIT_BENCH_DATA} or ./data
    load_size: int | None = None                    # train-time resize before the random crop; None: image_size * 286/256 (paper)
    flip: bool = True                               # random horizontal flip, p = 0.5 (paper, Appendix B.2)
    pipeline: Literal["method", "paper"] = "method"   # method: each method's authors' augmentation and test resize
    #   (bench/data/reference_pipelines.py); paper: U-GAT-IT's for every method (load_size and flip apply to it only)
    subset: SubsetConfig | None = None              # e.g. {train: 200, test: 20, seed: 0}: a seeded subset of each split
    on_bad_image: Literal["fail", "skip"] = "fail"  # a corrupt or non-image file: stop with its path, or skip it and count

    def resolved_root(self) -> Path:
        return Path(self.root or os.environ.get(DATA_ROOT_ENV) or "data")


@dataclass(frozen=True)
class TrainConfig:
    iterations: int | None = None                   # updates; None: the method's reference length (U-GAT-IT 1M, CycleGAN 200 epochs)
    batch_size: int = 1                             # paper: 1
    image_size: int = 256                           # square crop fed to the networks (paper: 256)
    lr: float | None = None                         # None: the method's reference learning rate
    schedule: Literal["method", "constant", "linear_decay", "per_epoch"] = "method"  # "method": the method's reference schedule
    #   per_epoch: the reference's decay, set once per epoch of its training set (CycleGAN, AGGAN, DRIT, CartoonGAN)
    decay_start: float = 0.5                        # linear_decay: fraction of iterations after which lr decays to 0
    seeds: tuple[int, ...] = (0,)                   # one training run per seed
    checkpoint_every: int = _operational(10_000)    # iterations between checkpoints (and the last one always)
    log_every: int = _operational(100)              # iterations between lines in stats.jsonl
    sample_every: int = _operational(10_000)        # iterations between sample sheets
    device: Literal["auto", "cpu", "cuda"] = _operational("auto")  # auto: CUDA when present
    num_workers: int = _operational(2)              # data-loading worker processes

    def __post_init__(self):
        for name in ("iterations", "batch_size", "checkpoint_every", "log_every", "sample_every"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise FieldError(name, f"must be at least 1, got {getattr(self, name)}")
        if not 16 <= self.image_size <= MAX_IMAGE_SIZE:
            raise FieldError("image_size", f"must be between 16 and {MAX_IMAGE_SIZE} pixels, got {self.image_size}")
        if self.batch_size > MAX_BATCH_SIZE:
            raise FieldError("batch_size", f"must be at most {MAX_BATCH_SIZE} (the paper uses 1), got {self.batch_size}")
        if self.iterations is not None and self.iterations > MAX_ITERATIONS:
            raise FieldError("iterations", f"must be at most {MAX_ITERATIONS:,} (the paper trains 1,000,000), got {self.iterations:,}")
        if len(self.seeds) > MAX_SEEDS:
            raise FieldError("seeds", f"at most {MAX_SEEDS} seeds, got {len(self.seeds)}")
        if self.lr is not None and not self.lr > 0:
            raise FieldError("lr", f"must be positive (or null for the method's default), got {self.lr}")
        if not 0.0 <= self.decay_start <= 1.0:
            raise FieldError("decay_start", f"is a fraction of the iterations, in [0, 1]; got {self.decay_start}")
        if not self.seeds:
            raise FieldError("seeds", "at least one seed is needed, e.g. [0]")
        if len(set(self.seeds)) != len(self.seeds):
            raise FieldError("seeds", f"repeated seed in {list(self.seeds)}")
        if self.num_workers < 0:
            raise FieldError("num_workers", f"must be 0 or more, got {self.num_workers}")


@dataclass(frozen=True)
class EvalConfig:
    protocol: Literal["paper", "subsets", "mean"] = "paper"  # paper: TF-GAN blocks of 10; subsets: torch-fidelity; mean: paper vs target and source
    inception_weights: str | None = None            # local Inception-v3 weights; None: ${UGATIT_BENCH_INCEPTION}, else torch-fidelity's download
    batch_size: int = _operational(50)              # images per Inception forward pass
    max_block_size: int = 10                        # paper protocol: block size of the TF-GAN estimator
    subsets: int = 100                              # subsets protocol: number of subsets
    subset_size: int = 1000                         # subsets protocol: rows per subset
    seed: int = 2020                                # subsets protocol: torch-fidelity's default seed
    cache_dir: str | None = _operational(None)      # feature cache; None: ${UGATIT_BENCH_CACHE} or ~/.cache/ugatit-bench
    study: str | None = _operational(None)          # the user study's database for table2 (python -m eval study build)

    def __post_init__(self):
        for name in ("batch_size", "max_block_size", "subsets", "subset_size"):
            if not 1 <= getattr(self, name) <= MAX_EVAL_COUNT:
                raise FieldError(name, f"must be between 1 and {MAX_EVAL_COUNT:,}, got {getattr(self, name)}")


@dataclass(frozen=True)
class SlurmConfig:
    """`launcher.slurm`: the resources of each job (one job per training run, as one job array)."""
    partition: str | None = None                    # --partition; None: the cluster's default
    time_min: int = 4320                            # --time in minutes; a job at its limit requeues itself and resumes
    gpus_per_job: int = 1                           # --gpus-per-node (0: CPU only)
    cpus_per_job: int = 4                           # --cpus-per-task: the run's torch threads (launcher.threads)
                                                    #   and its data loaders (train.num_workers) run on them
    mem_gb: float | None = None                     # --mem; None: the cluster's default
    constraint: str | None = None                   # --constraint, e.g. "a100|h100"
    account: str | None = None                      # --account
    qos: str | None = None                          # --qos
    sbatch: tuple[str, ...] = ()                    # other sbatch options, e.g. ["--exclusive", "--mail-type=END"]
    array_parallelism: int = 256                    # jobs of the array that may run at once
    max_requeues: int = 10                          # time limits or preemptions a job may meet before it is left failed
    logs: str | None = None                         # job scripts and logs (submitit); None: <output_dir>/slurm/
    executor: Literal["slurm", "local"] = "slurm"   # local: submitit's LocalExecutor, the same job path without a cluster
    check_request: bool = True                      # compare each job's request with the partition's nodes (sinfo)
                                                    #   before submitting; false where sinfo does not show them

    def __post_init__(self):
        for name in ("time_min", "cpus_per_job", "array_parallelism"):
            if getattr(self, name) < 1:
                raise FieldError(name, f"must be at least 1, got {getattr(self, name)}")
        for name in ("gpus_per_job", "max_requeues"):
            if getattr(self, name) < 0:
                raise FieldError(name, f"must be 0 or more, got {getattr(self, name)}")
        if self.mem_gb is not None and not self.mem_gb > 0:
            raise FieldError("mem_gb", f"must be positive (or null for the cluster's default), got {self.mem_gb}")
        for option in self.sbatch:
            if not re.fullmatch(r"--[a-z][a-z0-9-]*(=.+)?", option):
                raise FieldError("sbatch", f"{option!r} is not a long sbatch option like '--exclusive' or '--mail-type=END'")


@dataclass(frozen=True)
class LauncherConfig:
    """How the training runs are executed; changes nothing they compute."""
    name: Literal["local", "slurm"] = "local"       # local: on this machine; slurm: one Slurm job per run (submitit)
    jobs: int | Literal["auto"] = 1                 # local worker processes; auto: one per GPU, else one per core
    # Torch threads of every run, whichever launcher runs it. On a CPU the count decides the order in which
    # convolutions sum, and a GAN amplifies those last digits: one count under every launcher gives one set of
    # numbers (README: Thread counts). The cores are used by running runs side by side (jobs: auto).
    threads: int = 1
    slurm: SlurmConfig = SlurmConfig()

    def __post_init__(self):
        if self.jobs != "auto" and self.jobs < 1:
            raise FieldError("jobs", f"must be at least 1 or 'auto', got {self.jobs}")
        if self.threads < 1:
            raise FieldError("threads", f"must be at least 1, got {self.threads}")
        if self.name == "slurm" and self.slurm.cpus_per_job < self.threads:
            raise FieldError("slurm", f"cpus_per_job={self.slurm.cpus_per_job} is less than launcher.threads="
                             f"{self.threads}: give each job at least as many CPUs as its torch threads")


@dataclass(frozen=True)
class ExternalResult:
    label: str                                      # row name in tables, e.g. "CycleGAN (authors' code)"
    dataset: str                                    # the dataset whose test images were translated
    direction: Direction                            # a2b or b2a
    folder: str                                     # the translated test images (one per test image)
    note: str = ""                                  # shown in the table's footnotes


@dataclass(frozen=True)
class Experiment:
    name: str = field(metadata={"identity": False})  # names the results folder: results/<name>/
    datasets: tuple[DatasetSpec, ...]               # what to train and evaluate on
    methods: tuple[MethodSpec, ...]                 # which methods (and variants) to train
    description: str = _operational("")
    imports: tuple[str, ...] = ()                   # modules or .py files (relative to this file) that register methods
    output_dir: str = _operational("runs")          # run folders go to <output_dir>/<dataset>/<method...>-s<seed>-<hash>/
    results_dir: str = _operational("results")      # tables go to <results_dir>/<name>/
    tables: tuple[Literal["table1", "table2", "table3"], ...] = ()  # which of the paper's tables to emit (table2: eval.study)
    external: tuple[ExternalResult, ...] = ()       # translations made elsewhere, scored and tabled with the runs
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    launcher: LauncherConfig = _operational(LauncherConfig())   # local workers or Slurm (README: Running on a cluster)
    source: str = field(default="", metadata={"yaml": False})  # the YAML file this came from (not a YAML key)

    def __post_init__(self):
        if not is_plain_name(self.name):
            raise FieldError("name", f"{self.name!r} must be a plain folder name (letters, digits, _ . -; not . or ..)")
        if not self.datasets:
            raise FieldError("datasets", "at least one dataset is needed")
        if not self.methods:
            raise FieldError("methods", "at least one method is needed")
        names = [d.name for d in self.datasets]
        if len(set(names)) != len(names):
            raise FieldError("datasets", f"a dataset is listed twice: {names}")
        if len(set(self.tables)) != len(self.tables):
            raise FieldError("tables", f"a table is listed twice: {list(self.tables)}")
        for item in self.external:
            if item.dataset not in names:
                raise FieldError("external", f"external result {item.label!r} is for dataset {item.dataset!r}, which is not "
                                             f"in datasets ({', '.join(names)}); its real test images come from there")


# ----------------------------------------------------------------------------------------------
# Back to plain data (for run folders and run identities): to_plain (bench/core/schema.py) and these.


def is_operational(key_path: str) -> bool:
    """Whether a dotted key (as --set writes it) names an operational field: one that changes how a run
    executes (logging, device, workers, cache, launcher), not what it computes or how it is scored: a
    key inside an operational section (launcher.jobs) is operational too."""
    tp: Any = Experiment
    field_found, inside_operational = None, False
    for part in key_path.strip().split("."):
        tp = strip_optional(tp)
        if dataclasses.is_dataclass(tp):
            fields_by_name = {f.name: f for f in dataclasses.fields(tp)}
            if part not in fields_by_name:
                return False
            field_found = fields_by_name[part]
            inside_operational = inside_operational or not field_found.metadata.get("identity", True)
            tp = type_hints(tp)[part]
        elif type_origin(tp) in (tuple, list) and part.isdigit():
            tp, field_found = typing.get_args(tp)[0], None
        else:
            return False
    return field_found is not None and inside_operational


def identity_fields(value: Any) -> Any:
    """Like `to_plain`, without the operational fields (logging intervals, device, workers)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: identity_fields(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.metadata.get("identity", True)
        }
    return to_plain(value)
