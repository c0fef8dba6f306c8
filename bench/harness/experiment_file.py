"""Experiment files: YAML -> the validated, frozen dataclasses of bench/core/config.py.

Loading does, in order:

1. `include:` (a path or a list of paths, relative to the including file) pulls in base files;
   the including file's keys win. Mappings merge key by key, lists are replaced whole, so an
   ablation variant is a few lines on top of a base.
2. `--set key.path=value` overrides from the command line (value parsed as YAML). The key path
   must already exist in the schema; list items are addressed by index (`methods.0.label=...`).
3. `${VAR}` and `${VAR:-default}` in string values are expanded from the environment.
4. The merged tree is converted field by field into the dataclasses. Unknown keys, wrong types and
   impossible values raise `ConfigError` naming the file that wrote the key, the key path, the
   problem and what is allowed; nothing has been trained or written at that point.
5. Each method's `options:` is validated against that method's own options dataclass (see
   bench/core/methods.py), and the method checks the training settings it needs (image size rules).

Where each step lives: reading files, includes and environment variables in yaml_files.py beside
this file; the conversion of a typed tree into dataclasses (any dataclass, also a method's options)
in bench/core/schema.py; the schema in bench/core/config.py; the overrides and the methods' checks here.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Sequence

from bench.core.config import METHOD_TRAIN_KEYS, Experiment, MethodSpec, TrainConfig
from bench.core.schema import (ConfigError, KeyPath, Origins, allowed_keys, build, error_at, format_key_path,
                               schema_child, to_plain, unknown_key_message, yaml_fields)
from bench.harness.yaml_files import expand_env, load_with_includes, parse_yaml


def apply_override(tree: dict, origins: Origins, assignment: str) -> None:
    """Apply one `key.path=value` to the raw tree, refusing key paths the schema does not have."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment}: expected KEY=VALUE, e.g. --set train.iterations=200")
    key_text, value_text = assignment.split("=", 1)
    parts: list[Any] = [int(p) if p.isdigit() else p for p in key_text.strip().split(".")]
    if not key_text.strip() or any(p == "" for p in parts):
        raise ConfigError(f"--set {assignment}: empty key path")
    if not value_text.strip():
        raise ConfigError(f"--set {assignment}: empty value; write {key_text.strip()}=null to mean null "
                          f"(e.g. --set train.iterations=null for each method's reference length)")
    value = parse_yaml(value_text, f"--set {assignment}: the value")

    node: Any = tree
    tp: Any = Experiment
    for depth, part in enumerate(parts):
        here = tuple(parts[:depth])
        is_last = depth == len(parts) - 1
        if tp is not Any:
            try:
                tp = schema_child(tp, part)
            except (KeyError, IndexError):
                raise ConfigError(unknown_key_message("--set", here, part, allowed_keys(tp))) from None
        if isinstance(part, int):
            if not isinstance(node, list) or not 0 <= part < len(node):
                size = len(node) if isinstance(node, list) else 0
                raise ConfigError(f"--set {assignment}: {format_key_path(here)} has {size} item(s); index {part} is out of range")
        elif not isinstance(node, dict):
            raise ConfigError(f"--set {assignment}: {format_key_path(here)} is not a mapping")
        if is_last:
            node[part] = value
            origins.record(value, "--set", tuple(parts))
        else:
            if isinstance(node, dict) and part not in node:
                node[part] = {}
            node = node[part]


def load_experiment(path: str | os.PathLike, overrides: Sequence[str] = ()) -> Experiment:
    """Read, merge, override, expand and validate an experiment file. Raises ConfigError."""
    origins = Origins()
    tree = load_with_includes(Path(path), origins)
    for assignment in overrides:
        apply_override(tree, origins, assignment)
    tree = expand_env(tree, origins)
    experiment = build(Experiment, tree, origins)
    experiment = dataclasses.replace(experiment, source=str(path), imports=_import_methods(experiment, origins))
    return _resolve_methods(experiment, tree, origins)


def _import_methods(experiment: Experiment, origins: Origins) -> tuple[str, ...]:
    """Import the experiment's `imports:` (its own methods), each .py file relative to the file that names it."""
    from bench.core import methods as method_registry  # (torch is imported once the YAML has been read and checked)

    resolved = []
    for index, entry in enumerate(experiment.imports):
        source = origins.source_of(("imports", index))
        base = Path(source).parent if Path(source).is_file() else Path.cwd()
        try:
            resolved += method_registry.import_user_methods([entry], base)
        except ValueError as error:
            raise ConfigError(f"{source}: {error}") from None
    return tuple(resolved)


def _resolve_methods(experiment: Experiment, tree: dict, origins: Origins) -> Experiment:
    """Validate each method's options with its own dataclass, and let it check the training settings."""
    from bench.core import methods as method_registry

    resolved = []
    labels: dict[str, list[tuple[int, set[str]]]] = {}
    for index, spec in enumerate(experiment.methods):
        path: KeyPath = ("methods", index)
        where = origins.source_of(path + ("name",))
        if not method_registry.is_known(spec.name):
            raise ConfigError(f"{where}: {format_key_path(path + ('name',))}: {method_registry.unknown_method_message(spec.name)}")
        raw_options = spec.options if spec.options is not None else {}
        if not isinstance(raw_options, dict):
            raise ConfigError(f"{where}: {format_key_path(path + ('options',))}: expected a mapping of option names to values")
        method_train = _method_train(spec.train, experiment.train, origins, path + ("train",))
        if method_registry.is_registered(spec.name):
            method_class = method_registry.method_class(spec.name)
            options = build(method_class.Options, raw_options, origins, path + ("options",))
            problems = method_class.check_settings(options, method_train or experiment.train)
            if problems:
                raise ConfigError(
                    f"{where}: {format_key_path(path)} ({spec.name}): " + "; ".join(problems)
                )
            label = spec.label or method_class.default_label(options)
        else:
            # Known to the benchmark but not implemented yet: planned, reported as missing, never dropped.
            options = dict(raw_options)
            label = spec.label or method_registry.planned_label(spec.name)
        _check_where_it_runs(experiment, spec, path, origins,
                             method_registry.method_class(spec.name).directions if method_registry.is_registered(spec.name)
                             else ("a2b", "b2a"))
        # A label names one row of the tables: two entries may share it only on different datasets
        # (e.g. one method with per-dataset reference settings).
        runs_on = {d.name for d in experiment.datasets if spec.directions_on(d)}
        clash = next((other for other, other_runs_on in labels.get(label, []) if other_runs_on & runs_on), None)
        if clash is not None:
            raise ConfigError(
                f"{where}: {format_key_path(path + ('label',))}: label {label!r} is already used by methods[{clash}] on "
                f"the same dataset(s); give each variant its own label"
            )
        labels.setdefault(label, []).append((index, runs_on))
        if spec.pretrained is not None:
            _check_pretrained(spec, path + ("pretrained",), origins)
        resolved.append(dataclasses.replace(spec, label=label, options=options, train=method_train))
    return dataclasses.replace(experiment, methods=tuple(resolved))


def _check_pretrained(spec: MethodSpec, path: KeyPath, origins: Origins) -> None:
    from bench.core import released
    from bench.core.multimodal import TEST_FIELDS

    loader = released.released_loader(spec.name)
    where = origins.source_of(path)
    if loader is None:
        raise ConfigError(f"{where}: {format_key_path(path)}: released files of {spec.name!r} cannot be loaded; "
                          f"methods with released files: {', '.join(released.released_methods())}")
    files, settings = loader.files, loader.settings
    allowed = files + tuple(settings)
    if not isinstance(spec.pretrained, dict) or not spec.pretrained or \
            not all(isinstance(k, str) and isinstance(v, str) for k, v in spec.pretrained.items()):
        raise ConfigError(f"{where}: {format_key_path(path)}: expected a mapping of {' / '.join(files)} to file paths")
    unknown = sorted(set(spec.pretrained) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}: {format_key_path(path)}: {', '.join(unknown)} not allowed for {spec.name}; "
                          f"allowed: {', '.join(allowed)}")
    if not set(spec.pretrained) & set(files):
        raise ConfigError(f"{where}: {format_key_path(path)}: no file given; give {' / '.join(files)}")
    for name, choices in settings.items():
        if name in spec.pretrained and spec.pretrained[name] not in choices:
            raise ConfigError(f"{origins.source_of(path + (name,))}: {format_key_path(path + (name,))}: "
                              f"{spec.pretrained[name]!r} is not one of {', '.join(choices)}")
    architecture = sorted(set(spec.options or {}) - set(TEST_FIELDS))
    if architecture:
        raise ConfigError(f"{origins.source_of(path[:-1] + ('options',))}: {format_key_path(path[:-1] + ('options',))}: "
                          f"{', '.join(architecture)}: a released model's networks come from its files; only the "
                          f"test-time options ({', '.join(TEST_FIELDS)}) of a multimodal method may be set")


def _check_where_it_runs(experiment: Experiment, spec: MethodSpec, path: KeyPath, origins: Origins,
                         supported: tuple[str, ...]) -> None:
    """An entry's `datasets:` must name datasets of the experiment, and the method must be able to
    translate every direction the entry would evaluate."""
    names = [d.name for d in experiment.datasets]
    for position, name in enumerate(spec.datasets or ()):
        if name not in names:
            raise error_at(origins, path + ("datasets", position),
                        f"{name!r} is not one of the experiment's datasets ({', '.join(names)}); add it under `datasets:` "
                        "or remove it here")
    wanted = sorted({d for dataset in experiment.datasets for d in spec.directions_on(dataset)})
    unsupported = [d for d in wanted if d not in supported]
    if unsupported:
        raise error_at(origins, path + ("name",),
                    f"method {spec.name!r} translates {' and '.join(supported)} only, but this entry would evaluate "
                    f"{', '.join(unsupported)}; add `directions: [{', '.join(supported)}]` to its entry")
    if not wanted:
        raise error_at(origins, path + ("datasets",), "this entry runs on none of the experiment's datasets and directions")


def _method_train(overrides: Any, train: TrainConfig, origins: Origins, path: KeyPath) -> TrainConfig | None:
    """A method entry's `train:` applied to the experiment's train settings (None when it has none)."""
    if overrides is None:
        return None
    if not isinstance(overrides, dict):
        raise error_at(origins, path, f"expected a mapping of {', '.join(METHOD_TRAIN_KEYS)}; got {overrides!r}")
    for key in overrides:
        if key not in METHOD_TRAIN_KEYS:
            raise ConfigError(unknown_key_message(origins.source_of(path + (key,)), path, key, METHOD_TRAIN_KEYS))
    merged = {f.name: to_plain(getattr(train, f.name)) for f in yaml_fields(TrainConfig)}
    merged.update(overrides)
    return build(TrainConfig, merged, origins, path)
