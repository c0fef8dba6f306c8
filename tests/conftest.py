"""Shared test fixtures: tiny synthetic datasets and experiment files written to temporary folders."""

from __future__ import annotations

import errno
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
import torch

from bench.data.synthetic import SyntheticSpec, write_dataset

# Two threads match CI's 2 cores and keep small convolutions from oversubscribing the machine.
torch.set_num_threads(2)

TINY_SPEC = SyntheticSpec(image_size=32, train_per_domain=12, test_per_domain=6, seed=0)


REPO = Path(__file__).resolve().parent.parent
GENERATED_FOLDERS = ("results", "runs", "data", ".downloads")


def _generated_entries() -> set[str]:
    return {f"{folder}/{entry.name}" for folder in GENERATED_FOLDERS if (REPO / folder).is_dir()
            for entry in (REPO / folder).iterdir()} | {folder for folder in GENERATED_FOLDERS if (REPO / folder).exists()}


@pytest.fixture(scope="session", autouse=True)
def nothing_written_into_the_repository():
    """Tests write only to temporary folders: the repository's results/, runs/ and data/ stay as they were."""
    before = _generated_entries()
    yield
    added = sorted(_generated_entries() - before)
    assert not added, f"the tests wrote into the repository: {added}"


@pytest.fixture(autouse=True)
def offline_and_isolated(tmp_path_factory, monkeypatch):
    """Tests never download (weights, datasets from the internet) and never write to ~/.cache."""
    import torch.hub

    def refuse(*args, **kwargs):
        raise RuntimeError("tests must not download anything")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setenv("UGATIT_BENCH_CACHE", str(tmp_path_factory.getbasetemp() / "ugatit-bench-cache"))
    # The index of finished runs is per test: a run of one test is never reused by another.
    monkeypatch.setenv("UGATIT_BENCH_RUN_INDEX", str(tmp_path_factory.mktemp("run-index") / "runs-index.json"))
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


class _FillingFile:
    """A file handle whose writes fail with ENOSPC once `capacity` bytes have been written, as on a full disk."""

    def __init__(self, handle, capacity: int):
        self._handle, self._room = handle, capacity

    def write(self, data) -> int:
        data = bytes(data)
        if len(data) > self._room:
            self._handle.write(data[:self._room])
            self._room = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self._room -= len(data)
        return self._handle.write(data)

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.close()


@pytest.fixture
def fill_disk(monkeypatch):
    """fill_disk(capacity): from then on, every atomic write of safeio.files fails with ENOSPC after
    `capacity` bytes, as on a disk that fills up (fault injection at the file handle)."""
    import safeio.files

    real_open = safeio.files._open_temporary

    def activate(capacity: int = 0) -> None:
        def open_filling(path):
            temporary, handle = real_open(path)
            return temporary, _FillingFile(handle, capacity)

        monkeypatch.setattr(safeio.files, "_open_temporary", open_filling)

    return activate


@pytest.fixture
def small_tmpfs(tmp_path):
    """A real 2 MiB tmpfs (a disk that really fills); skipped where mounting is not permitted."""
    import subprocess

    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({(result.stderr or result.stdout).strip() or 'not permitted'})")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


@pytest.fixture
def planned_method(monkeypatch):
    """A method the benchmark knows of but does not implement (every method of the paper is implemented
    now): `futuregan`, labelled FutureGAN."""
    from bench.core import methods

    monkeypatch.setitem(methods.PLANNED_METHODS, "futuregan", "FutureGAN")
    return "futuregan"


@pytest.fixture(scope="session")
def slurm_cluster() -> str:
    """The partition of a real single-node Slurm on this machine (.ci/start-slurm starts it; .ci/run installs
    slurm-wlm and munge); the test skips, saying why, where it cannot start."""
    if shutil.which("sbatch") is None:
        pytest.skip("no Slurm here (sbatch not found; .ci/run installs slurm-wlm and munge)")
    started = subprocess.run([str(REPO / ".ci" / "start-slurm")], capture_output=True, text=True, timeout=120)
    if started.returncode != 0:
        pytest.skip(f"Slurm could not start here: {started.stderr.strip()[-300:]}")
    return "debug"
