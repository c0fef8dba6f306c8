"""The method contract and the method registry.

A *method* is one unpaired translation model (U-GAT-IT, CycleGAN, ...). What a new method
implements, and nothing more:

    @register_method("mymethod")
    class MyMethod(Method):
        @dataclass(frozen=True)
        class Options:                       # the YAML's `options:` for this method, with defaults
            width: int = 64

        def __init__(self, options, train, device): ...   # build networks and optimizers
        def train_step(self, real_a, real_b) -> dict: ... # one update of every network; returns losses
        def translate(self, images, direction): ...       # a batch in [-1, 1] -> translated batch in [-1, 1]
        def state_dict(self) -> dict: ...                  # everything needed to resume training exactly
        def load_state_dict(self, state): ...

Optional: `check_settings` (refuse settings the networks cannot take), `default_label`, `set_step`
(learning-rate schedules), `extra_stats` (values logged beside the losses), `sample_sheet` (a
picture of the model for fixed test images; the default shows input, translation, cycle) with
`sample_columns` (its column titles), `reference_schedule` (the schedule when the experiment leaves
it to the method), `identity_options` (the options that define a run),
`translate_with_attention` (translations and attention heatmaps, drawn beside the translations),
`test_settings` (how test translations are drawn; multimodal methods derive from
bench.core.multimodal.MultimodalMethod), `directions` (the directions it can translate),
`prepare_training` (data of its own beside the two training streams),
and `reference_iterations` (the reference training length, used when train.iterations is null
and by the tables), `deviations` and `tables` (for the tables' rows and footnotes).

Tensors are N x 3 x H x W in [-1, 1] on the method's device. `direction` is "a2b" or "b2a".
`train_step` returns a mapping of loss names to values; a value may be a 0-dim tensor, which the
trainer turns into a float only when it logs (so a method need not synchronise the device each
step). `state_dict()` holds plain tensors and Python values only, so that a checkpoint loads with
`torch.load(..., weights_only=True)`.

Methods register themselves where they are defined, with `@register_method`. Where they come from:
the project's packages (`METHOD_PACKAGES`) and installed packages that declare an entry point in the
group `ugatit_bench.methods` are imported on first use; an experiment's `imports:` (module names, or
`.py` files relative to the experiment file) when it is loaded. `registered_methods(with_origins=True)`
says where each came from; two methods under one name are refused, naming both.
"""

from __future__ import annotations

import abc
import dataclasses
import difflib
import hashlib
import importlib
import importlib.metadata
import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

import torch

from bench.core.config import MethodSpec, TrainConfig

# Packages whose import registers methods: the project's own. Others come as entry points or `imports:`.
METHOD_PACKAGES = ("bench.core.reference_methods", "ugatit", "baselines")
ENTRY_POINT_GROUP = "ugatit_bench.methods"   # [project.entry-points."ugatit_bench.methods"] of an installed package

# Methods of the paper's Table 3 that this benchmark knows of but does not implement yet: an
# experiment may list them; they are reported as missing, never silently dropped.
PLANNED_METHODS: dict[str, str] = {}   # name -> label; every method of Table 3 is implemented now


class Method(abc.ABC):
    """One translation model: its networks, optimizers and training step. See the module docstring."""

    name: ClassVar[str] = ""                         # set by @register_method
    reference_schedule: ClassVar[str] = "constant"  # learning-rate schedule when train.schedule is "method"
    sample_columns: ClassVar[tuple[str, ...]] = ("input", "translation", "cycle")   # titles of sample_sheet's columns
    directions: ClassVar[tuple[str, ...]] = ("a2b", "b2a")   # the directions it can translate (CartoonGAN: a2b)

    # Set by the harness once the method is built (construct_method), read by `set_step` and at test time:
    train_images: tuple[int, int] | None = None   # training images per domain, for schedules set per epoch; None: unknown
    pipeline: str | None = None                   # the run's data pipeline (bench/data/pipeline.py); None: data_pipeline(options)

    @dataclass(frozen=True)
    class Options:
        """The method's own YAML options (none by default)."""

    def __init__(self, options: Any, train: TrainConfig, device: torch.device):
        self.options = options
        self.train_config = train
        self.device = torch.device(device)

    @classmethod
    def check_settings(cls, options: Any, train: TrainConfig) -> list[str]:
        """Problems with these settings (e.g. an image size the networks cannot take); [] if none."""
        return []

    @classmethod
    def default_label(cls, options: Any) -> str:
        """The row name in tables when the experiment gives no `label`."""
        return cls.name

    @classmethod
    def reference_iterations(cls, options: Any, train_images: tuple[int, int] | None) -> int | None:
        """The reference training length, given the training images per domain (None when unknown).
        Used when train.iterations is null, and by the tables to note shorter runs."""
        return None

    @classmethod
    def identity_options(cls, options: Any, train: TrainConfig) -> dict[str, Any]:
        """The options as they enter a run's identity: what changes the computation, one spelling per
        computation. The learning rate is left out (it enters resolved, as train.lr)."""
        from bench.core.schema import to_plain

        plain = to_plain(options) if options is not None else {}
        plain = dict(plain) if isinstance(plain, dict) else {}
        plain.pop("lr", None)
        return plain

    @classmethod
    def test_settings(cls, options: Any) -> dict[str, Any]:
        """How its test translations are drawn, recorded with each evaluation: {} for a method with one
        deterministic output per image; style, samples and seed for a multimodal one (bench.core.multimodal)."""
        return {}

    @classmethod
    def data_pipeline(cls, options: Any) -> str:
        """How its training images are augmented and its test images resized (bench/data/pipeline.py,
        PIPELINES): "paper" (the paper's recipe, the default) or the name of its authors' own pipeline."""
        return "paper"

    @classmethod
    def check_files(cls, options: Any) -> None:
        """Read the files its options name (weights to start from, say) and raise an error naming the file
        (safeio.files.InputError) when one cannot be used. Called once before any run of an experiment
        starts, so that a bad file stops the experiment at once rather than after hours of other runs."""

    @classmethod
    def deviations(cls, options: Any, train: TrainConfig) -> list[str]:
        """How these settings depart from the paper's model, for the tables' footnotes; [] if they do not."""
        return []

    @classmethod
    def tables(cls, options: Any) -> tuple[str, ...]:
        """Which of the paper's tables this variant belongs in (Table 1 holds U-GAT-IT's ablations)."""
        return ("table3",)

    @abc.abstractmethod
    def train_step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, Any]:
        """One training iteration on a batch from each domain; returns loss name -> value."""

    @abc.abstractmethod
    def translate(self, images: torch.Tensor, direction: str) -> torch.Tensor:
        """Translate a batch (N x 3 x H x W, [-1, 1]) in `direction` ("a2b" or "b2a")."""

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Networks, optimizers and anything else needed to continue training exactly."""

    @abc.abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""

    def set_step(self, step: int) -> None:
        """Called before each `train_step` with the 0-based iteration, for learning-rate schedules."""

    def resolved_pipeline(self) -> str:
        """The data pipeline this model's images go through: the run's, else the method's own."""
        return self.pipeline or self.data_pipeline(self.options)

    def prepare_training(self, dataset_dir, settings) -> None:
        """Called before training with the dataset folder and its bench.data.StreamSettings, for a method
        that reads more than the two training streams (CartoonGAN's edge-smoothed cartoons)."""

    def extra_stats(self) -> dict[str, float]:
        """Optional values logged beside the losses (learning rate, rho, ...); read only when logging."""
        return {}

    def sample_sheet(self, real_a: torch.Tensor, real_b: torch.Tensor) -> torch.Tensor:
        """A picture of the model now, for fixed test images: 3 x H x W in [0, 1].

        Default: one row per image and direction: input | translation | cycle reconstruction.
        """
        from torchvision.utils import make_grid

        rows = []
        with torch.no_grad():
            for real, forward, backward in ((real_a, "a2b", "b2a"), (real_b, "b2a", "a2b")):
                fake = self.translate(real, forward)
                rows.append(torch.stack([real, fake, self.translate(fake, backward)], dim=1).flatten(0, 1))
        return make_grid((torch.cat(rows).float().cpu() + 1) / 2, nrow=3, padding=2, pad_value=1.0).clamp(0, 1)


def check_direction(direction: str) -> None:
    if direction not in ("a2b", "b2a"):
        raise ValueError(f"direction must be 'a2b' or 'b2a', got {direction!r}")


_REGISTRY: dict[str, type[Method]] = {}
_packages_imported = False


_ORIGINS: dict[str, str] = {}   # method name -> where it came from
_importing: list[str] = []      # the origin being imported now (a package, an entry point, an imports: entry)


def register_method(name: str) -> Callable[[type[Method]], type[Method]]:
    """Class decorator: make a Method available to experiments under `name`."""

    def decorate(cls: type[Method]) -> type[Method]:
        if not (isinstance(cls, type) and issubclass(cls, Method)):
            raise TypeError(f"@register_method({name!r}) must decorate a subclass of bench.Method")
        origin = _importing[-1] if _importing else f"module {cls.__module__}"
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"method name {name!r} is already registered: {_REGISTRY[name].__qualname__} from "
                             f"{_ORIGINS[name]}; {cls.__qualname__} from {origin} is refused; give one of them another name")
        cls.name = name
        _REGISTRY[name] = cls
        _ORIGINS.setdefault(name, origin)
        return cls

    return decorate


def _import_as(origin: str, load: Callable[[], Any]) -> Any:
    _importing.append(origin)
    try:
        return load()
    finally:
        _importing.pop()


def import_method_packages() -> None:
    """Import the packages that register methods (and their released-file loaders), once: the project's own,
    then the entry points of installed packages in the group `ugatit_bench.methods`."""
    global _packages_imported
    if _packages_imported:
        return
    _packages_imported = True
    for package in METHOD_PACKAGES:
        try:
            _import_as(f"built in ({package})", lambda: importlib.import_module(package))
        except ModuleNotFoundError as error:
            if error.name != package:  # the package exists but something it imports is missing
                raise
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        origin = f"entry point {entry.name} = {entry.value} ({entry.dist.name if entry.dist else 'installed package'})"
        loaded = _import_as(origin, entry.load)
        if isinstance(loaded, type) and issubclass(loaded, Method) and loaded not in _REGISTRY.values():
            _import_as(origin, lambda: register_method(entry.name)(loaded))   # a class the entry point names


def import_user_methods(imports: Sequence[str], base: Path | None = None) -> tuple[str, ...]:
    """An experiment's `imports:`: module names (importable from here) or `.py` files (relative to `base`,
    the experiment file's folder), imported once each so that the methods they define register. Returns
    the entries with files made absolute, which worker processes import the same way. Raises ValueError
    naming an entry that cannot be imported."""
    import_method_packages()
    resolved = []
    for entry in imports:
        if entry.endswith(".py"):
            path = Path(entry).expanduser()
            path = (Path(base) / path if base is not None and not path.is_absolute() else path).resolve()
            if not path.is_file():
                raise ValueError(f"imports: {entry}: no such file ({path})")
            _import_as(f"imports: {path}", lambda: _import_file(path))
            resolved.append(str(path))
        else:
            if not re.fullmatch(r"[A-Za-z_][\w.]*", entry):
                raise ValueError(f"imports: {entry!r} is neither a module name (my_package.methods) nor a .py file")
            try:
                _import_as(f"imports: {entry}", lambda: importlib.import_module(entry))
            except ModuleNotFoundError as error:
                raise ValueError(f"imports: {entry}: module not found ({error}); install it, or give the .py file") from None
            resolved.append(entry)
    return tuple(resolved)


def _import_file(path: Path) -> Any:
    """A .py file as a module of its own, under a name made from its path (the same in every process, so
    that its classes pickle to worker processes by reference)."""
    stem = re.sub(r"\W", "_", path.stem)
    name = f"_ugatit_bench_imports_{stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
    if name in sys.modules:
        return sys.modules[name]
    for module in list(sys.modules.values()):   # already imported as a package's module (its entry point): that one
        file = getattr(module, "__file__", None)
        if file and Path(file).resolve() == path:
            return module
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module   # before running it: dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def registered_methods(with_origins: bool = False) -> list[str] | dict[str, str]:
    """The registered method names (sorted); with_origins: name -> where each came from."""
    import_method_packages()
    return {name: _ORIGINS[name] for name in sorted(_REGISTRY)} if with_origins else sorted(_REGISTRY)


def is_registered(name: str) -> bool:
    return name in registered_methods()


def is_known(name: str) -> bool:
    return is_registered(name) or name in PLANNED_METHODS


def planned_label(name: str) -> str:
    return PLANNED_METHODS[name]


def unknown_method_message(name: str) -> str:
    known = registered_methods()
    close = difflib.get_close_matches(name, known + list(PLANNED_METHODS), n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"unknown method {name!r}.{hint} Registered methods: {', '.join(known)}"


def method_class(name: str) -> type[Method]:
    if not is_registered(name):
        if name in PLANNED_METHODS:
            raise KeyError(f"method {name!r} ({PLANNED_METHODS[name]}) is planned but not implemented yet. "
                           f"Registered methods: {', '.join(registered_methods())}")
        raise KeyError(unknown_method_message(name))
    return _REGISTRY[name]


def create_method(name: str, train: TrainConfig | None = None, device: str | torch.device = "cpu",
                  **options: Any) -> Method:
    """Build a registered method from keyword options, validated like the YAML's `options:`."""
    from bench.core.schema import build

    cls = method_class(name)
    return construct_method(cls, build(cls.Options, options, path=("options",)), train or TrainConfig(), device)


def build_method(spec: MethodSpec, train: TrainConfig, device: str | torch.device,
                 train_images: tuple[int, int] | None = None, pipeline: str | None = None) -> Method:
    """Build the method of an experiment entry whose options `load_experiment` already validated."""
    return construct_method(method_class(spec.name), spec.options, train, device, train_images, pipeline)


def resolve_training(cls: type[Method], options: Any, train: TrainConfig,
                       train_images: tuple[int, int] | None) -> TrainConfig:
    """`train` with what the experiment left to the method filled in: the iterations (the method's
    reference length), the learning rate (the method's `options.lr`) and the schedule (the method's
    reference schedule). Two spellings of one computation resolve to the same settings."""
    from bench.core.schema import ConfigError

    iterations = train.iterations
    if iterations is None:
        iterations = cls.reference_iterations(options, train_images)
        if iterations is None:
            raise ConfigError(f"method {cls.name!r} has no reference training length"
                              f"{' without its dataset' if train_images is None else ''}; set train.iterations")
    lr = train.lr if train.lr is not None else getattr(options, "lr", None)
    schedule = cls.reference_schedule if train.schedule == "method" else train.schedule
    if schedule == "per_epoch" and cls.reference_schedule != "per_epoch":
        raise ConfigError(f"train.schedule per_epoch: method {cls.name!r} has no per-epoch reference schedule "
                          "(cyclegan, aggan, drit and cartoongan have); use method, constant or linear_decay")
    return dataclasses.replace(train, iterations=iterations, lr=lr, schedule=schedule)


def construct_method(cls: type[Method], options: Any, train: TrainConfig, device: str | torch.device,
                     train_images: tuple[int, int] | None = None, pipeline: str | None = None, **built: Any) -> Method:
    """Build `cls` from validated options: its training settings resolved and checked by the method.
    `train_images` (images per domain) and `pipeline` (the run's data pipeline) are given to the built
    method. `built`: keyword arguments of the method's own constructor (a released-weights loader passes
    networks it has already filled)."""
    from bench.core.schema import ConfigError

    train = resolve_training(cls, options, train, train_images)
    problems = cls.check_settings(options, train)
    if problems:
        raise ConfigError(f"method {cls.name!r}: " + "; ".join(problems))
    method = cls(options, train, torch.device(device), **built)
    method.train_images, method.pipeline = train_images, pipeline
    return method
