"""Experiment YAML -> frozen dataclasses: includes, overrides, environment variables, validation errors."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.core import methods as method_registry
from bench.core.config import Experiment
from bench.core.methods import Method
from bench.core.schema import ConfigError
from bench.harness.experiment_file import load_experiment

REPO = Path(__file__).resolve().parent.parent

MINIMAL = """
name: tiny
datasets: [{name: shapes}]
methods: [{name: dummy}]
"""


def test_minimal_experiment_gets_documented_defaults(write_yaml):
    experiment = load_experiment(write_yaml("e.yaml", MINIMAL))
    assert isinstance(experiment, Experiment)
    assert experiment.train.iterations is None and experiment.train.image_size == 256   # None: the method's reference
    assert experiment.datasets[0].directions == ("a2b", "b2a")
    assert experiment.eval.protocol == "paper" and experiment.eval.max_block_size == 10
    assert experiment.methods[0].options == method_registry.method_class("dummy").Options()
    assert experiment.methods[0].label == "dummy"
    with pytest.raises(dataclasses.FrozenInstanceError):
        experiment.train.iterations = 5  # type: ignore[misc]


def test_shipped_experiments_load():
    for path in sorted((REPO / "experiments").glob("*.yaml")):
        experiment = load_experiment(path)
        assert experiment.methods and experiment.datasets, path


def error_of(path, overrides=()) -> str:
    with pytest.raises(ConfigError) as caught:
        load_experiment(path, overrides)
    return str(caught.value)


def test_unknown_key_names_file_key_and_suggestion(write_yaml):
    path = write_yaml("e.yaml", MINIMAL + "train:\n  iteratons: 5\n")
    message = error_of(path)
    assert str(path) in message
    assert "train.iteratons" in message
    assert "did you mean 'iterations'" in message
    assert "batch_size" in message  # lists what is allowed


def test_unknown_top_level_key(write_yaml):
    message = error_of(write_yaml("e.yaml", MINIMAL + "trian: {}\n"))
    assert "trian: unknown key" in message and "did you mean 'train'" in message


@pytest.mark.parametrize("snippet, expected", [
    ("train:\n  iterations: many\n", "train.iterations: expected an integer"),
    ("train:\n  iterations: 2.5\n", "train.iterations: expected an integer"),
    ("train:\n  iterations: true\n", "train.iterations: expected an integer"),
    ("data:\n  flip: 1\n", "data.flip: expected true or false"),
    ("eval:\n  protocol: papr\n", "did you mean 'paper'"),
    ("train:\n  seeds: 3\n", "train.seeds: expected a list"),
    ("train:\n  seeds: [1, x]\n", "train.seeds[1]: expected an integer"),
    ("train:\n  lr: fast\n", "train.lr: expected a number"),
])
def test_wrong_types_are_refused(write_yaml, snippet, expected):
    assert expected in error_of(write_yaml("e.yaml", MINIMAL + snippet))


@pytest.mark.parametrize("snippet, expected", [
    ("train:\n  iterations: 0\n", "train.iterations: must be at least 1"),
    ("train:\n  decay_start: 1.5\n", "train.decay_start"),
    ("train:\n  image_size: 8\n", "train.image_size: must be between 16 and 4096"),
    ("train:\n  seeds: [1, 1]\n", "train.seeds: repeated seed"),
    ("train:\n  lr: -0.1\n", "train.lr: must be positive"),
    ("eval:\n  max_block_size: 0\n", "eval.max_block_size: must be between 1 and"),
    ("eval:\n  subsets: 0\n", "eval.subsets: must be between 1 and"),
    ("eval:\n  subset_size: 0\n", "eval.subset_size: must be between 1 and"),
    ("eval:\n  batch_size: 0\n", "eval.batch_size: must be between 1 and"),
])
def test_impossible_values_are_refused(write_yaml, snippet, expected):
    assert expected in error_of(write_yaml("e.yaml", MINIMAL + snippet))


@pytest.mark.parametrize("text, expected", [
    ("name: ..\ndatasets: [{name: shapes}]\nmethods: [{name: dummy}]\n", "name: '..' must be a plain folder name"),
    ("name: .\ndatasets: [{name: shapes}]\nmethods: [{name: dummy}]\n", "name: '.' must be a plain folder name"),
    ("name: a/b\ndatasets: [{name: shapes}]\nmethods: [{name: dummy}]\n", "name: 'a/b' must be a plain folder name"),
    ("name: x\ndatasets: [{name: ..}]\nmethods: [{name: dummy}]\n", "datasets[0].name: '..' is not a plain folder name"),
    ("name: x\ndatasets: [{name: 'data/x'}]\nmethods: [{name: dummy}]\n", "datasets[0].name: 'data/x' is not a plain folder name"),
    ("name: x\ndatasets: [{name: shapes, directions: [a2b, a2b]}]\nmethods: [{name: dummy}]\n",
     "datasets[0].directions: repeated direction"),
    ("name: x\ndatasets: [{name: shapes}]\nmethods: [{name: dummy}]\n"
     "external: [{label: y, dataset: horse2zebra, direction: a2b, folder: f}]\n", "which is not in datasets"),
])
def test_names_directions_and_external_datasets_are_checked(write_yaml, text, expected):
    assert expected in error_of(write_yaml("e.yaml", text))


def test_scientific_notation_without_dot_is_a_float(write_yaml):
    # YAML 1.1 reads 1e-4 as a string; a float field accepts it.
    experiment = load_experiment(write_yaml("e.yaml", MINIMAL + "train:\n  lr: 1e-4\n"))
    assert experiment.train.lr == pytest.approx(1e-4)


def test_missing_required_keys(write_yaml):
    message = error_of(write_yaml("e.yaml", "name: x\nmethods: [{name: dummy}]\n"))
    assert "missing required key 'datasets'" in message
    message = error_of(write_yaml("f.yaml", "name: x\ndatasets: [{name: shapes}]\nmethods: [{label: y}]\n"))
    assert "methods[0]: missing required key 'name'" in message


def test_not_yaml_and_not_a_mapping(write_yaml):
    assert "not valid YAML" in error_of(write_yaml("e.yaml", "name: [unclosed\n"))
    assert "top level must be a mapping" in error_of(write_yaml("f.yaml", "- a\n- b\n"))
    assert "experiment file not found" in error_of(Path("/nonexistent/e.yaml"))


# ------------------------------------------------------------------------------------------------
# include:


def test_include_inherits_and_overrides(write_yaml):
    write_yaml("base.yaml", MINIMAL + """
train:
  iterations: 100
  image_size: 64
  seeds: [0, 1]
""")
    variant = write_yaml("variant.yaml", """
include: base.yaml
name: variant
train:
  iterations: 10
  seeds: [7]
""")
    experiment = load_experiment(variant)
    assert experiment.name == "variant"
    assert experiment.train.iterations == 10        # the variant wins
    assert experiment.train.image_size == 64        # inherited key by key
    assert experiment.train.seeds == (7,)           # lists are replaced, not merged
    assert experiment.methods[0].name == "dummy"


def test_include_chain_and_list(write_yaml):
    write_yaml("a.yaml", MINIMAL)
    write_yaml("b.yaml", "train: {iterations: 3}\n")
    write_yaml("sub/c.yaml", "include: [../a.yaml, ../b.yaml]\nname: c\n")
    experiment = load_experiment(write_yaml("d.yaml", "include: sub/c.yaml\n"))
    assert experiment.name == "c" and experiment.train.iterations == 3


def test_error_in_included_file_names_that_file(write_yaml):
    base = write_yaml("base.yaml", MINIMAL + "train: {iterations: lots}\n")
    message = error_of(write_yaml("variant.yaml", "include: base.yaml\nname: v\n"))
    assert message.startswith(str(base)) and "train.iterations" in message


@pytest.mark.parametrize("include_text, expected", [
    ("include: missing.yaml\n", "missing.yaml: experiment file not found (included from"),
    ("include: 5\n", "include: expected a file path or a list of file paths"),
    ("include: self.yaml\n", "circular include"),
])
def test_bad_include(write_yaml, include_text, expected):
    path = write_yaml("self.yaml", include_text + MINIMAL)
    assert expected in error_of(path)


# ------------------------------------------------------------------------------------------------
# --set overrides and environment variables


def test_dotted_overrides(write_yaml):
    path = write_yaml("e.yaml", MINIMAL)
    experiment = load_experiment(path, ["train.iterations=200", "methods.0.label=Mine", "eval.protocol=mean",
                                        "train.seeds=[1, 2]", "methods.0.options.lr=0.5", "data.root=/x"])
    assert experiment.train.iterations == 200
    assert experiment.methods[0].label == "Mine"
    assert experiment.methods[0].options.lr == 0.5
    assert experiment.eval.protocol == "mean"
    assert experiment.train.seeds == (1, 2)
    assert experiment.data.root == "/x"


@pytest.mark.parametrize("override, expected", [
    ("train.iteratons=5", "--set: train.iteratons: unknown key; did you mean 'iterations'?"),
    ("train.iterations=abc", "--set: train.iterations: expected an integer"),
    ("methods.3.label=x", "index 3 is out of range"),
    ("noequals", "expected KEY=VALUE"),
    ("methods.0.options.speed=1", "methods[0].options.speed: unknown key"),
])
def test_bad_overrides(write_yaml, override, expected):
    assert expected in error_of(write_yaml("e.yaml", MINIMAL), [override])


def test_environment_variables(write_yaml, monkeypatch):
    path = write_yaml("e.yaml", MINIMAL + "data:\n  root: ${BENCH_TEST_ROOT:-fallback}/data\n")
    monkeypatch.delenv("BENCH_TEST_ROOT", raising=False)
    assert load_experiment(path).data.root == "fallback/data"
    monkeypatch.setenv("BENCH_TEST_ROOT", "/mnt")
    assert load_experiment(path).data.root == "/mnt/data"
    strict = write_yaml("f.yaml", MINIMAL + "data:\n  root: ${BENCH_TEST_UNSET_VAR}\n")
    monkeypatch.delenv("BENCH_TEST_UNSET_VAR", raising=False)
    assert "data.root: environment variable ${BENCH_TEST_UNSET_VAR} is not set" in error_of(strict)


def test_data_root_falls_back_to_environment(write_yaml, monkeypatch):
    monkeypatch.setenv("UGATIT_BENCH_DATA", "/datasets")
    assert str(load_experiment(write_yaml("e.yaml", MINIMAL)).data.resolved_root()) == "/datasets"


# ------------------------------------------------------------------------------------------------
# Methods: names, options, labels, settings


def test_unknown_method_lists_registered_ones(write_yaml):
    message = error_of(write_yaml("e.yaml", "name: x\ndatasets: [{name: shapes}]\nmethods: [{name: dumy}]\n"))
    assert "methods[0].name: unknown method 'dumy'" in message
    assert "Did you mean 'dummy'?" in message and "identity" in message


def test_planned_method_is_accepted_and_kept(write_yaml, planned_method):
    path = write_yaml("e.yaml", "name: x\ndatasets: [{name: shapes}]\nmethods: [{name: dummy}, {name: futuregan}]\n")
    experiment = load_experiment(path)
    assert [m.name for m in experiment.methods] == ["dummy", "futuregan"]
    assert experiment.methods[1].label == "FutureGAN"


def test_unknown_method_option(write_yaml):
    path = write_yaml("e.yaml", "name: x\ndatasets: [{name: shapes}]\nmethods: [{name: dummy, options: {lrr: 1}}]\n")
    message = error_of(path)
    assert "methods[0].options.lrr: unknown key; did you mean 'lr'?" in message


def test_duplicate_labels_are_refused(write_yaml):
    path = write_yaml("e.yaml", "name: x\ndatasets: [{name: shapes}]\nmethods: [{name: dummy}, {name: dummy}]\n")
    assert "label 'dummy' is already used by methods[0]" in error_of(path)


@pytest.fixture
def fussy_method():
    """A throw-away method that needs image sizes divisible by 4, like U-GAT-IT."""

    @dataclass(frozen=True)
    class Options:
        depth: int = 2

    class Fussy(Method):
        @classmethod
        def check_settings(cls, options, train):
            step = 2 ** options.depth
            return [] if train.image_size % step == 0 else [
                f"train.image_size {train.image_size} must be divisible by {step} (two stride-2 layers)"]

        train_step = translate = state_dict = load_state_dict = lambda *a, **k: None

    Fussy.Options = Options
    method_registry.register_method("fussy_test_method")(Fussy)
    yield Fussy
    del method_registry._REGISTRY["fussy_test_method"]


def test_method_refuses_impossible_image_size(write_yaml, fussy_method):
    path = write_yaml("e.yaml", "name: x\ndatasets: [{name: shapes}]\nmethods: [{name: fussy_test_method}]\n"
                                "train: {image_size: 30}\n")
    message = error_of(path)
    assert str(path) in message and "methods[0] (fussy_test_method)" in message
    assert "must be divisible by 4" in message
    assert load_experiment(path, ["train.image_size=32"]).train.image_size == 32
