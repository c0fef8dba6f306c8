"""A harness others build on: a method the project has never seen, brought in by an experiment's `imports:`
or an entry point, checked by the conformance kit, trained, scored and tabled; the kit on every built-in
method; the Python API; and the import contracts (lint-imports)."""

from __future__ import annotations

import csv
import importlib.metadata
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from bench.cli import main
from bench.core import methods as registry
from bench.testing import check_method

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "my_method"
EXAMPLE_FILE = EXAMPLE / "my_translation_method" / "method.py"

TINY = {"identity": {}, "dummy": {}, "ugatit": dict(light=True, width=2, n_res=1),
        "cyclegan": dict(width=4, n_blocks=1, pool_size=3), "unit": dict(width=4, n_res=1),
        "munit": dict(width=4, n_res=1, mlp_dim=8), "drit": dict(width=4, n_res=1),
        "aggan": dict(width=4, n_blocks=1, dis_width=4, pool_size=2, epochs=9, switch_epoch=4),
        "cartoongan": dict(width=4, n_blocks=1, dis_width=4, pool_size=2, vgg_weights="random", init_epochs=4, epochs=5)}


@pytest.fixture(autouse=True)
def registry_restored():
    """Methods a test registers (tinycycle, twins) leave the registry with the test."""
    registry.import_method_packages()
    saved, modules = (dict(registry._REGISTRY), dict(registry._ORIGINS)), set(sys.modules)
    yield
    registry._REGISTRY.clear(), registry._REGISTRY.update(saved[0])
    registry._ORIGINS.clear(), registry._ORIGINS.update(saved[1])
    for name in set(sys.modules) - modules:   # imported method files: imported afresh by the next test
        if name.startswith("_ugatit_bench_imports_"):
            del sys.modules[name]


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# ----------------------------------------------------------------------------------------------
# The conformance kit.


@pytest.mark.parametrize("name", sorted(TINY))
def test_every_built_in_method_passes_the_conformance_kit(name):
    check_method(name, image_size=32, **TINY[name])


def test_the_kit_passes_the_example_and_rejects_a_twin_that_forgets_its_optimizers():
    registry.import_user_methods([str(EXAMPLE_FILE)])
    check_method("tinycycle", image_size=32, width=4)
    tinycycle = registry.method_class("tinycycle")

    class ForgetfulTwin(tinycycle):   # saves the networks, not Adam's moments: a resumed run is another run
        def state_dict(self):
            return {"networks": self.networks.state_dict()}

        def load_state_dict(self, state):
            self.networks.load_state_dict(state["networks"])

    with pytest.raises(AssertionError, match=r"resume exact failed: after k \+ k steps .* optimizer's state"):
        check_method(ForgetfulTwin, image_size=32, width=4)

    class EvalModeTwin(tinycycle):   # translates in eval mode and stays there: training would go on without it
        def translate(self, images, direction):
            self.networks.eval()
            with torch.no_grad():
                return self._translate(images, direction)

    with pytest.raises(AssertionError, match=r"check_method\(EvalModeTwin\): translate failed: a2b: left networks, networks\.dis_a, .* in another "
                                               r"training mode"):
        check_method(EvalModeTwin, image_size=32, width=4)


# ----------------------------------------------------------------------------------------------
# Your own method, from outside the project.


def test_an_experiment_trains_scores_and_tables_a_method_it_imports(tiny_dataset, tmp_path, capsys):
    overrides = ["--set", f"data.root={tiny_dataset.parent}", "--set", "datasets=[{name: tiny}]",
                 "--set", f"output_dir={tmp_path / 'runs'}", "--set", f"results_dir={tmp_path / 'results'}",
                 "--set", "train.iterations=4", "--set", "eval.max_block_size=3", "--set", "methods.2.options.n_blocks=1"]
    assert main([str(EXAMPLE / "experiment.yaml"), "--list", "methods", *overrides]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("tinycycle")]
    assert len(listed) == 1 and f"imports: {EXAMPLE_FILE}" in listed[0]
    # Two local workers: spawned processes that must import the file before their jobs are unpickled.
    assert main([str(EXAMPLE / "experiment.yaml"), "--no-progress", "--jobs", "2", *overrides]) == 0
    [results] = [folder for folder in (tmp_path / "results").iterdir() if folder.is_dir()]
    rows = read_csv(results / "table3.csv")
    assert {row["model"] for row in rows} == {"TinyCycle", "U-GAT-IT", "CycleGAN", "Identity (no translation)"}
    assert all(float(row["kid"]) == float(row["kid"]) for row in rows)
    assert "an example method of docs/your-method.md" in (results / "table3.md").read_text()


def test_two_methods_under_one_name_are_refused_naming_both(tmp_path, write_yaml, tiny_dataset):
    from bench.core.schema import ConfigError
    from bench.harness.experiment_file import load_experiment

    twin = tmp_path / "twin.py"
    twin.write_text(textwrap.dedent("""
        from bench import register_method
        from bench.core.reference_methods import IdentityMethod

        @register_method("tinycycle")
        class AnotherTinyCycle(IdentityMethod):
            pass
        """))
    path = write_yaml("twins.yaml", f"""
        name: twins
        imports: [{EXAMPLE_FILE}, twin.py]
        datasets: [{{name: tiny}}]
        methods: [{{name: tinycycle}}]
        data: {{root: {tiny_dataset.parent}}}
        """)
    with pytest.raises(ConfigError, match=rf"{path}: method name 'tinycycle' is already registered: TinyCycle from imports: "
                                          rf"{EXAMPLE_FILE}; AnotherTinyCycle from imports: {twin} is refused"):
        load_experiment(path)
    with pytest.raises(ConfigError, match="imports: nowhere.py: no such file"):
        load_experiment(write_yaml("missing.yaml", "name: m\nimports: [nowhere.py]\ndatasets: [{name: tiny}]\n"
                                                   "methods: [{name: identity}]\n"))


def test_an_installed_packages_entry_point_brings_its_method(monkeypatch, tmp_path):
    package = tmp_path / "site" / "my_translation_method"
    shutil.copytree(EXAMPLE / "my_translation_method", package)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    entry = importlib.metadata.EntryPoint("tinycycle", "my_translation_method.method", registry.ENTRY_POINT_GROUP)
    real = importlib.metadata.entry_points
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda **kw: [entry] if kw.get("group") == registry.ENTRY_POINT_GROUP else real(**kw))
    monkeypatch.setattr(registry, "_packages_imported", False)
    try:
        origins = registry.registered_methods(with_origins=True)
        assert origins["tinycycle"] == "entry point tinycycle = my_translation_method.method (installed package)"
        assert registry.method_class("tinycycle").__module__ == "my_translation_method.method"
    finally:
        for name in [m for m in sys.modules if m.startswith("my_translation_method")]:
            del sys.modules[name]


# ----------------------------------------------------------------------------------------------
# The Python API.


def test_python_api_scores_two_folders_and_runs_an_experiment(tiny_dataset, write_yaml, tmp_path):
    import bench
    import eval as scorer

    record = scorer.calculate_kid(real=tiny_dataset / "testB", fake=tiny_dataset / "testA", weights="random",
                                  max_block_size=3)
    assert record["metric"] == "kid_paper_block3" and record["counts"] == {"real": 6, "fake": 6, "source": None}
    assert (record["folders"]["real"], record["folders"]["fake"]) == (str(tiny_dataset / "testB"), str(tiny_dataset / "testA"))
    assert record["kid_x100"] > 0 and not record["weights"]["official"]
    many = scorer.calculate_kids(real=tiny_dataset / "testB", fake={"same": tiny_dataset / "testB", "other": tiny_dataset / "testA"},
                                 weights="random", max_block_size=3)
    assert many["other"]["kid_x100"] == pytest.approx(record["kid_x100"]) and many["same"]["kid_x100"] < record["kid_x100"]

    path = write_yaml("api.yaml", f"""
        name: api
        datasets: [{{name: tiny}}]
        methods: [{{name: dummy}}, {{name: identity}}]
        output_dir: {tmp_path / 'runs'}
        results_dir: {tmp_path / 'results'}
        data: {{root: {tiny_dataset.parent}}}
        train: {{iterations: 4, image_size: 16, num_workers: 0}}
        eval: {{inception_weights: random, max_block_size: 3}}
        tables: [table3]
        """)
    results = bench.run(path)
    assert not results.failed and set(results.tables["table3"]["model"]) == {"dummy", "Identity (no translation)"}
    assert len(results.scores) == 4 and results.results_dir == tmp_path / "results" / "api"
    again = bench.run(path, only="dummy", tables_only=True)
    assert again.reports == [] and again.tables["table3"].equals(results.tables["table3"])


# ----------------------------------------------------------------------------------------------
# Imports that run one way.


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([shutil.which("lint-imports") or "lint-imports", "--no-cache"], cwd=root, env=environment,
                          capture_output=True, text=True, timeout=300)


def test_the_import_contracts_hold_and_an_upward_import_breaks_them(tmp_path):
    if shutil.which("lint-imports") is None:
        pytest.skip('import-linter is not installed (pip install -e ".[dev]")')
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken." in result.stdout

    copy = tmp_path / "copy"
    for name in ("safeio", "bench", "eval", "ugatit", "baselines"):
        shutil.copytree(REPO / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", copy / "pyproject.toml")
    with open(copy / "bench" / "core" / "train.py", "a") as handle:   # the training loop reaching up to the harness
        handle.write("\n\ndef _upward():\n    from bench.harness.plan import plan_experiment  # noqa: F401\n")
    with open(copy / "eval" / "kid.py", "a") as handle:                # the scorer reaching into the harness
        handle.write("\n\ndef _into_the_harness():\n    import bench.core.config  # noqa: F401\n")
    broken = lint_imports(copy)
    assert broken.returncode != 0 and "Contracts: 0 kept, 3 broken." in broken.stdout, broken.stdout
    assert "bench.core is not allowed to import bench.harness:" in broken.stdout and "bench.core.train -> bench.harness.plan" in broken.stdout
    assert "eval.kid is not allowed to import bench:" in broken.stdout   # the layers, the scorer and the cycle contract
