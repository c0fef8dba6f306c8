"""Shared test fixtures: tiny synthetic datasets and experiment files written to temporary folders."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

from bench.synthetic import SyntheticSpec, write_dataset

# Two threads match CI's 2 cores and keep small convolutions from oversubscribing the machine.
torch.set_num_threads(2)

TINY_SPEC = SyntheticSpec(image_size=32, train_per_domain=12, test_per_domain=6, seed=0)


@pytest.fixture(autouse=True)
def offline_and_isolated(tmp_path_factory, monkeypatch):
    """Tests never download (weights, datasets from the internet) and never write to ~/.cache."""
    import torch.hub

    def refuse(*args, **kwargs):
        raise RuntimeError("tests must not download anything")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setenv("UGATIT_BENCH_CACHE", str(tmp_path_factory.getbasetemp() / "ugatit-bench-cache"))
    monkeypatch.delenv("UGATIT_BENCH_INCEPTION", raising=False)
    monkeypatch.delenv("UGATIT_BENCH_DATA", raising=False)


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    """A 32 px synthetic dataset (12 train and 6 test images per domain) under tmp_path/data/tiny."""
    return write_dataset(tmp_path / "data" / "tiny", TINY_SPEC)


@pytest.fixture
def write_yaml(tmp_path: Path):
    """write_yaml("name.yaml", text) -> path of a dedented YAML file in tmp_path."""

    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    return write


def interrupt_at(method, call: int):
    """Make `method.train_step` raise KeyboardInterrupt (as a kill would) on its `call`-th call."""
    real_step, calls = method.train_step, {"n": 0}

    def step(real_a, real_b):
        calls["n"] += 1
        if calls["n"] == call:
            raise KeyboardInterrupt
        return real_step(real_a, real_b)

    method.train_step = step
    return method
