"""ugatit-bench: the harness. What a user's code needs is importable from here, whatever moves inside:

    from bench import Method, MultimodalMethod, register_method, TrainConfig   # write a method (docs/your-method.md)
    from bench import create_method, load_released                             # build one, or the authors' files
    bench.run("experiments/smoke.yaml")                                         # an experiment, tables as DataFrames
    from bench.testing import check_method                                      # the conformance kit

Inside, by layer (each imports only from those below it; pyproject.toml's import contracts):
    cli/       the command lines (run_bench.py, python -m bench.cli.translate, ... released inspect)
    harness/   the experiment harness: experiment files, plan, runs, launchers, locks, reports, status
    core/      what methods build on: the method contract and registry, schema, training loop, translation
    data/      datasets, downloads, synthetic data, the training pipeline, fingerprints
and, below both bench and eval, safeio/ (files, images, environment, exit statuses).
"""

# Imported on first use (PEP 562): `import bench.harness.experiment_file` to read an experiment stays free of torch.
_PUBLIC = {
    "Method": "bench.core.methods", "register_method": "bench.core.methods", "registered_methods": "bench.core.methods",
    "create_method": "bench.core.methods", "MultimodalMethod": "bench.core.multimodal", "TrainConfig": "bench.core.config",
    "load_released": "bench.core.released", "run": "bench.harness.api",
}
__all__ = list(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
