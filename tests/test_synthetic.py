"""The embedded synthetic domains: deterministic, regenerated only when stale, crash-safe, distinct."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.data import synthetic
from bench.data.synthetic import SyntheticSpec, generate_image, is_current, write_dataset

SPEC = SyntheticSpec(image_size=32, train_per_domain=6, test_per_domain=3, seed=0)


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_generation_is_deterministic_byte_for_byte(tmp_path):
    first = write_dataset(tmp_path / "one" / "shapes", SPEC)
    second = write_dataset(tmp_path / "two" / "shapes", SPEC)
    assert tree_digest(first) == tree_digest(second)
    assert sorted(p.name for p in first.iterdir()) == ["dataset.json", "testA", "testB", "trainA", "trainB"]
    assert len(list((first / "trainA").glob("*.png"))) == 6 and len(list((first / "testB").glob("*.png"))) == 3
    other_seed = write_dataset(tmp_path / "three" / "shapes", SyntheticSpec(32, 6, 3, seed=1))
    assert tree_digest(other_seed) != tree_digest(first)


def test_current_copy_is_kept_and_stale_copy_regenerated(tmp_path):
    target = write_dataset(tmp_path / "shapes", SPEC)
    stamp = (target / "trainA" / "00000.png").stat().st_mtime_ns
    write_dataset(target, SPEC)
    assert (target / "trainA" / "00000.png").stat().st_mtime_ns == stamp
    bigger = SyntheticSpec(32, 7, 3, seed=0)
    assert not is_current(target, bigger)
    write_dataset(target, bigger)
    assert is_current(target, bigger) and len(list((target / "trainA").glob("*.png"))) == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == [".shapes.lock", "shapes"]  # no staging or old copies left behind


def test_parallel_workers_generate_the_dataset_once(tmp_path, monkeypatch):
    """Workers starting together: one generates, the others wait for it and use its copy."""
    import threading

    calls = []
    real_generate = synthetic._generate
    monkeypatch.setattr(synthetic, "_generate", lambda *args: (calls.append(1), real_generate(*args)))
    results = []
    threads = [threading.Thread(target=lambda: results.append(write_dataset(tmp_path / "shapes", SPEC))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and len(results) == 4 and is_current(tmp_path / "shapes", SPEC)


def test_a_crash_during_generation_leaves_nothing(tmp_path, monkeypatch):
    calls = {"n": 0}
    real_save = Image.Image.save

    def failing_save(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError("disk full")
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        write_dataset(tmp_path / "shapes", SPEC)
    assert [p.name for p in tmp_path.iterdir()] == [".shapes.lock"]   # the lock only: no half-written copy


def test_the_two_domains_differ_in_palette_and_texture():
    spec = SyntheticSpec(image_size=64)
    discs = np.stack([generate_image(spec, "A", "train", i) for i in range(40)]).astype(np.float64)
    polygons = np.stack([generate_image(spec, "B", "train", i) for i in range(40)]).astype(np.float64)
    # Palette: discs sit on dark backgrounds, polygons on light ones.
    assert discs.mean() + 50 < polygons.mean()
    # Texture: stripes give many strong edges (jumps of over 30 levels), smooth shading few.
    def strong_edges(images):
        return (np.abs(np.diff(images, axis=2)) > 30).mean()
    assert strong_edges(polygons) > 1.5 * strong_edges(discs)
    # Images vary within a domain.
    assert discs.reshape(40, -1).std(axis=0).mean() > 20


def test_generator_version_is_in_the_manifest(tmp_path):
    target = write_dataset(tmp_path / "shapes", SPEC)
    assert f'"version": {synthetic.GENERATOR_VERSION}' in (target / "dataset.json").read_text()
