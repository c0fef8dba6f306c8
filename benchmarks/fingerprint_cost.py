"""What a run's data fingerprint (bench/data/fingerprint.py) costs: the first hash of a dataset's bytes, and
every later planning (`--dry-run`, `--status`, each start), which only lists and stats the files.

    python benchmarks/fingerprint_cost.py                       # a generated dataset the size of selfie2anime
    python benchmarks/fingerprint_cost.py --images 3400 --size 256
    python benchmarks/fingerprint_cost.py --dataset data/horse2zebra   # a real one (its cache entry is temporary)

Prints the seconds of the first (cold) and of a cached (warm) fingerprint, the dataset's size and the
ratio; measured in one run, on this machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.data.datasets import SPLITS  # noqa: E402


def make_dataset(folder: Path, images: int, size: int) -> Path:
    """`images` noisy PNGs per training split and a tenth of that per test split (PNG noise does not
    compress: about the bytes of the paper's JPEGs at 256 px, or more)."""
    rng = np.random.default_rng(0)
    for split in SPLITS:
        count = images if split.startswith("train") else max(1, images // 10)
        (folder / split).mkdir(parents=True)
        for index in range(count):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / split / f"{index:05d}.png", compress_level=1)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, help="a dataset folder (trainA, trainB, testA, testB) to fingerprint")
    parser.add_argument("--images", type=int, default=3400, help="generated: training images per domain (selfie2anime: 3400)")
    parser.add_argument("--size", type=int, default=256, help="generated: image size in pixels")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["UGATIT_BENCH_CACHE"] = str(Path(scratch) / "cache")   # a cold cache, removed afterwards
        from bench.data.fingerprint import dataset_fingerprint

        dataset = args.dataset or make_dataset(Path(scratch) / "data", args.images, args.size)
        files = [path for split in SPLITS for path in (dataset / split).iterdir()]
        total = sum(path.stat().st_size for path in files)
        started = time.perf_counter()
        cold = dataset_fingerprint(dataset)
        cold_seconds = time.perf_counter() - started
        started = time.perf_counter()
        warm = dataset_fingerprint(dataset)
        warm_seconds = time.perf_counter() - started
        assert cold == warm
        print(f"dataset: {dataset} ({len(files)} files, {total / 2**20:.0f} MiB)")
        print(f"first fingerprint (hashes every byte): {cold_seconds:.2f} s ({total / 2**20 / cold_seconds:.0f} MiB/s)")
        print(f"cached fingerprint (lists and stats):  {warm_seconds * 1000:.1f} ms")
        print(f"ratio cold / warm: {cold_seconds / warm_seconds:.0f}x")


if __name__ == "__main__":
    main()
