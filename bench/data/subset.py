"""A seeded, recorded subset of a dataset (`data.subset`): a real dataset at small scale, for a CI job.

`data.subset: {train: 200, test: 20, seed: 0}` keeps `train` images of trainA and of trainB and `test`
of testA and of testB (all of a split that has fewer), chosen from the split's sorted file names by a
generator seeded with (seed, split): the same names every time, on every machine. Runs then read a
copy of the chosen files, `<data root>/.subsets/<dataset>/<train>-<test>-<seed>/`, made once
(atomically) with `subset.json` listing what was chosen and from how many; a copy whose list no longer
matches the dataset (an image added or renamed) is made again. The subset is part of every run's
identity, and the tables footnote how many of the paper's test images were scored.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from safeio.images import list_images

SPLITS = ("trainA", "trainB", "testA", "testB")
MANIFEST = "subset.json"


def chosen(files: list[Path], count: int | None, seed: int, split: str) -> list[Path]:
    """`count` of the split's sorted files, by a generator seeded with (seed, split); all when count is None."""
    files = sorted(files, key=lambda path: path.name)
    if count is None or count >= len(files):
        return files
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    return [files[i] for i in sorted(rng.choice(len(files), size=count, replace=False))]


def subset_counts(subset, split: str) -> int | None:
    return subset.train if split.startswith("train") else subset.test


def subset_plan(dataset_dir: Path, subset) -> dict[str, list[str]]:
    """The file names the subset keeps, per split."""
    return {split: [path.name for path in chosen(list_images(dataset_dir / split), subset_counts(subset, split), subset.seed, split)]
            for split in SPLITS}


def subset_dir(dataset_dir: Path, subset) -> Path:
    return dataset_dir.parent / ".subsets" / dataset_dir.name / f"{subset.train}-{subset.test}-{subset.seed}"


def prepare_subset(dataset_dir: Path, subset) -> Path:
    """The folder holding the subset's copies (made now if missing or stale); its layout is a dataset's."""
    dataset_dir = Path(dataset_dir)
    target = subset_dir(dataset_dir, subset)
    plan = {"source": str(dataset_dir), "subset": {"train": subset.train, "test": subset.test, "seed": subset.seed},
            "of": {split: len(list_images(dataset_dir / split)) for split in SPLITS}, "files": subset_plan(dataset_dir, subset)}
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)   # one maker at a time; the others then find it made
        if _manifest(target) == plan:
            return target
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        for split, names in plan["files"].items():
            (staging / split).mkdir()
            for name in names:
                shutil.copyfile(dataset_dir / split / name, staging / split / name)   # a copy: never a link to follow
        (staging / MANIFEST).write_text(json.dumps(plan, indent=1))
        if target.exists():   # made from other images: replaced
            stale = target.with_name(f".{target.name}-stale-{os.getpid()}")
            target.rename(stale)
            shutil.rmtree(stale, ignore_errors=True)
        staging.rename(target)
    return target


def _manifest(target: Path) -> dict | None:
    try:
        return json.loads((target / MANIFEST).read_text())
    except (OSError, ValueError):   # missing, torn or unreadable: made again
        return None
