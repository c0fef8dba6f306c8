"""Evaluation: Inception features (torch-fidelity's TF-compatible Inception-v3), a content-keyed
feature cache, KID estimators (the paper's TF-GAN blocks, torch-fidelity's subsets, mean KID), FID,
significance between methods, tables, figures and the user study; the `python -m eval` command line,
and from Python `eval.calculate_kid(real=..., fake=...)` and `eval.calculate_kids(...)` (eval/api.py). It imports nothing
of the harness (bench), only safeio below both."""


def __getattr__(name: str):
    if name in ("calculate_kid", "calculate_kids"):   # imported on first use: `import eval.tables` stays light
        from eval import api

        return getattr(api, name)
    raise AttributeError(f"module 'eval' has no attribute {name!r}")
