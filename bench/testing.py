"""The conformance kit: what every method must do to be scored by this harness, checked in seconds on the CPU.

    from bench.testing import check_method
    check_method("cyclegan", image_size=32, width=4, n_blocks=1)      # a registered name, and tiny options
    check_method(MyMethod, width=8)                                     # or the class itself (registered or not)

Each property below is checked on tiny images; a failure raises AssertionError naming the property,
what was found and how to fix it:

  builds            the method builds from its Options and a TrainConfig on the CPU
  trains            a few steps through the harness's training loop give finite losses and move its weights
  checkpoint        its state round-trips through torch.save / torch.load(weights_only=True): plain tensors
                    and Python values only, as the harness's checkpoints require
  resume exact      k steps, a checkpoint, a fresh process's worth of state (other initial weights), and k more
                    steps end bitwise where 2k uninterrupted steps end (same losses, same weights): state_dict()
                    holds everything training needs (optimizers, schedules, pools, counters)
  translate         keeps the batch's shape, stays in [-1, 1] on the method's device, and leaves every network
                    in the training mode it was in
  reproducible      the same seed builds the same model: equal translations
  multimodal codes  (MultimodalMethod) seeded test codes give the same translations whatever the batch size
  table metadata    default_label, reference_iterations, deviations, tables, identity_options and test_settings
                    return what the tables and run identities need (strings, a positive length or None,
                    JSON-serialisable settings)

In a method's own test suite this is one line: `def test_conforms(): check_method(MyMethod, width=4)`.
"""

from __future__ import annotations

import io
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import torch

from bench.core.config import TrainConfig
from bench.core.methods import Method, construct_method, method_class, registered_methods
from bench.core.multimodal import MultimodalMethod, evaluation_translator
from bench.core.schema import build
from bench.core.train import checkpoint_path, load_checkpoint, train
from bench.data.pipeline import StreamSettings, UnpairedTrainingSet
from bench.data.synthetic import SyntheticSpec, write_dataset

CPU = torch.device("cpu")
TABLES = ("table1", "table3")


class _Interrupted(Exception):
    """Stands for a kill between two checkpoints."""


def _fail(name: str, prop: str, found: str, fix: str) -> None:
    raise AssertionError(f"check_method({name}): {prop} failed: {found}. {fix}")


def check_method(method: str | type[Method], *, image_size: int = 32, steps: int = 2, **options: Any) -> None:
    """Check every property of the module docstring for `method` (a registered name or a Method subclass)
    built with `options` (its Options fields, e.g. width=4) at `image_size` px. Raises AssertionError."""
    cls = method_class(method) if isinstance(method, str) else method
    registered = getattr(cls, "name", "") in registered_methods() and method_class(cls.name) is cls
    name = cls.name if registered else cls.__name__   # a subclass inherits its parent's registered name
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise TypeError(f"check_method: {method!r} is not a Method subclass or a registered method name")
    options_value = build(cls.Options, options, path=("options",))
    config = TrainConfig(image_size=image_size, iterations=2 * steps, checkpoint_every=steps, log_every=1,
                         sample_every=10**6, num_workers=0, batch_size=1)
    with tempfile.TemporaryDirectory(prefix="check-method-") as scratch:
        scratch = Path(scratch)
        dataset_dir = write_dataset(scratch / "data", SyntheticSpec(image_size=max(image_size, 32), train_per_domain=4,
                                                                   test_per_domain=2, seed=0))
        settings = StreamSettings(image_size=image_size, load_size=image_size + image_size // 8, seed=0)
        dataset = UnpairedTrainingSet(dataset_dir, settings)

        def build_method(seed: int = 0) -> Method:
            torch.manual_seed(seed)
            try:
                built = construct_method(cls, options_value, config, CPU)
            except Exception as error:
                _fail(name, "builds", f"{type(error).__name__}: {error}",
                      "The method must build from its Options and a TrainConfig on the CPU")
            built.prepare_training(dataset_dir, settings)
            return built

        _check_metadata(name, cls, options_value, config)
        method = build_method()
        before = _parameters(method)
        _check_checkpoint(name, method)

        # trains, and resume exact: 2k steps in one go, against k steps, a kill, and k more from the checkpoint
        whole = scratch / "whole"
        train(method, dataset, whole, config, {"check": name}, CPU, progress=False)
        records = [json.loads(line) for line in (whole / "stats.jsonl").read_text().splitlines()]
        losses = {key: value for record in records for key, value in record.items()
                  if key not in ("step", "seconds_per_iteration")}
        bad = {key: value for key, value in losses.items() if not math.isfinite(value)}
        if not records or bad:
            _fail(name, "trains", f"losses {bad or 'none logged'}", "train_step must return finite losses")
        after = _parameters(method)
        if before and all(torch.equal(before[key], after[key]) for key in before):   # (a method without weights: nothing to move)
            _fail(name, "trains", f"no weight changed in {2 * steps} steps", "train_step must update the networks")

        cut = scratch / "cut"
        interrupted = _interrupt_after(build_method(), steps)
        try:
            train(interrupted, dataset, cut, config, {"check": name}, CPU, progress=False)
        except _Interrupted:
            pass
        train(build_method(seed=12345), dataset, cut, config, {"check": name}, CPU, progress=False)
        _check_resume(name, load_checkpoint(checkpoint_path(whole)), load_checkpoint(checkpoint_path(cut)))

        _check_translate(name, method, image_size)
        _check_reproducible(name, build_method, image_size)
        if isinstance(method, MultimodalMethod):
            _check_codes(name, method, image_size)


def _parameters(method: Method) -> dict[str, torch.Tensor]:
    state = method.state_dict()
    return {key: value.detach().clone() for key, value in _flatten(state).items() if value.is_floating_point()}


def _flatten(value: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    if torch.is_tensor(value):
        return {prefix: value}
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flatten(item, f"{prefix}.{key}" if prefix else str(key)).items()}
    if isinstance(value, (list, tuple)):
        return {k: v for index, item in enumerate(value) for k, v in _flatten(item, f"{prefix}[{index}]").items()}
    return {}


def _interrupt_after(method: Method, steps: int) -> Method:
    real_step, calls = method.train_step, {"n": 0}

    def step(real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] > steps:
            raise _Interrupted
        return real_step(real_a, real_b)

    method.train_step = step
    return method


def _check_checkpoint(name: str, method: Method) -> None:
    buffer = io.BytesIO()
    torch.save(method.state_dict(), buffer)
    buffer.seek(0)
    try:
        torch.load(buffer, weights_only=True)
    except Exception as error:
        _fail(name, "checkpoint", f"torch.load(weights_only=True) refuses its state_dict() ({str(error).splitlines()[0]})",
              "state_dict() must hold tensors and plain Python values (dict, list, int, float, str, None) only")


def _check_resume(name: str, whole: dict[str, Any], resumed: dict[str, Any]) -> None:
    expected, found = _flatten(whole["method_state"]), _flatten(resumed["method_state"])
    differing = sorted(key for key in expected if key not in found or not torch.equal(expected[key], found[key]))
    if differing:
        worst = max((float((expected[k].float() - found[k].float()).abs().max()) for k in differing
                     if k in found and expected[k].shape == found[k].shape), default=float("nan"))
        _fail(name, "resume exact", f"after k + k steps (a checkpoint between) {len(differing)} state tensor(s) differ from "
                                    f"2k uninterrupted steps, e.g. {', '.join(differing[:3])} (max |difference| {worst:.3g})",
              "state_dict() / load_state_dict() must save and restore everything training depends on: every network, "
              "every optimizer's state, schedules, image pools and step counters")


def _training_modes(method: Method) -> dict[str, bool]:
    return {f"{attribute}.{name}" if name else attribute: module.training for attribute, value in vars(method).items()
            if isinstance(value, torch.nn.Module) for name, module in value.named_modules()}


def _images(image_size: int, count: int = 2, seed: int = 7) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(count, 3, image_size, image_size, generator=generator) * 2 - 1


def _check_translate(name: str, method: Method, image_size: int) -> None:
    images = _images(image_size)
    for direction in method.directions:
        modes = _training_modes(method)
        output = method.translate(images, direction)
        if tuple(output.shape) != tuple(images.shape):
            _fail(name, "translate", f"{direction}: a batch of shape {tuple(images.shape)} gave {tuple(output.shape)}",
                  "translate must return one image of the input's size per input image")
        if output.device != method.device:
            _fail(name, "translate", f"{direction}: output on {output.device}, the method is on {method.device}",
                  "translate must return tensors on the method's device")
        if not torch.isfinite(output).all() or output.min() < -1 - 1e-6 or output.max() > 1 + 1e-6:
            _fail(name, "translate", f"{direction}: values in [{float(output.min()):.3g}, {float(output.max()):.3g}]",
                  "translate must return images in [-1, 1] (tanh output)")
        changed = sorted(key for key, mode in _training_modes(method).items() if modes.get(key) != mode)
        if changed:
            _fail(name, "translate", f"{direction}: left {', '.join(changed[:3])} in another training mode",
                  "translate must put every network back in the mode it found it in (train() after eval())")


def _check_reproducible(name: str, build_method, image_size: int) -> None:
    images = _images(image_size)
    first, second = build_method(seed=3), build_method(seed=3)
    direction = first.directions[0]
    if not torch.equal(first.translate(images, direction), second.translate(images, direction)):
        _fail(name, "reproducible", "two methods built with the same seed translate the same images differently",
              "networks must be initialised from torch's global generator only (seeded by the harness)")


def _check_codes(name: str, method: MultimodalMethod, image_size: int) -> None:
    images = _images(image_size, count=4)
    settings = {"style": "random", "samples": 2, "seed": 0}
    direction = method.directions[0]
    with torch.no_grad():
        whole = evaluation_translator(method, direction, settings)(images)
        one_by_one = evaluation_translator(method, direction, settings)
        split = torch.cat([one_by_one(images[i:i + 1]) for i in range(images.shape[0])])
    if not torch.allclose(whole, split, atol=1e-5):
        _fail(name, "multimodal codes", "seeded test codes give other translations in batches of 1 than of 4",
              "translate_with_codes must apply code i to image i alone (no batch statistics at test time)")


def _check_metadata(name: str, cls: type[Method], options: Any, config: TrainConfig) -> None:
    label = cls.default_label(options)
    if not isinstance(label, str) or not label:
        _fail(name, "table metadata", f"default_label gave {label!r}", "default_label must return the row name, a string")
    length = cls.reference_iterations(options, (12, 12))
    if length is not None and (not isinstance(length, int) or length < 1):
        _fail(name, "table metadata", f"reference_iterations gave {length!r}",
              "reference_iterations must return the reference training length (a positive int) or None")
    deviations = cls.deviations(options, config)
    if not isinstance(deviations, list) or not all(isinstance(note, str) for note in deviations):
        _fail(name, "table metadata", f"deviations gave {deviations!r}", "deviations must return a list of footnote strings")
    tables = cls.tables(options)
    if not tables or not set(tables) <= set(TABLES):
        _fail(name, "table metadata", f"tables gave {tables!r}", f"tables must name some of {', '.join(TABLES)}")
    for what, value in (("identity_options", cls.identity_options(options, config)), ("test_settings", cls.test_settings(options))):
        try:
            json.dumps(value, sort_keys=True)
        except TypeError as error:
            _fail(name, "table metadata", f"{what} is not JSON-serialisable ({error})",
                  f"{what} must return plain values: it names the run's folder and records")
