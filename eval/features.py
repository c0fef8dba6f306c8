"""Inception features of an image folder, extracted once and cached by content.

The cache key hashes everything the features depend on: each file's name and bytes (in sorted
order), the extractor (torch-fidelity's Inception, pool_3, TF1 bilinear resize to 299) and the
weights' sha256. A changed, added or removed file gives a new key, so stale features are never
used. Entries are written atomically (temporary file + os.replace) and read with
`torch.load(weights_only=True)`.

Images are decoded (8-bit RGB, as torch-fidelity does) in a background thread while the network
runs, and each is fed at its stored size: the extractor resizes it to 299, as the paper's TF-GAN
pipeline did. Consecutive images of one size share a batch.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from eval.inception import EXTRACTOR_ID, InceptionFeatures
from safeio.files import atomic_torch_save
from safeio.images import check_images, list_images, load_rgb

CACHE_FORMAT = "ugatit-bench-features/2"


@dataclass(frozen=True)
class FeatureSet:
    features: torch.Tensor          # N x 2048 float32, in sorted file-name order
    names: tuple[str, ...]          # file names, same order
    skipped: tuple[str, ...]        # unreadable files left out (data.on_bad_image: skip)
    cache_hit: bool
    content_hash: str               # the cache key

    def __len__(self) -> int:
        return len(self.names)


def content_key(files: list[Path], weights_sha256: str, on_bad_image: str = "fail") -> str:
    digest = hashlib.sha256()
    digest.update(f"{CACHE_FORMAT}\n{EXTRACTOR_ID}\nweights={weights_sha256}\nbad={on_bad_image}\n".encode())
    for path in files:
        digest.update(os.fsencode(path.name) + b"\0")   # any name the file system allows, UTF-8 or not
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _uint8_image(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.array(load_rgb(path), dtype=np.uint8)).permute(2, 0, 1)   # 3 x H x W


def _batches(files: list[Path], batch_size: int) -> Iterator[torch.Tensor]:
    """uint8 batches of consecutive same-size images, decoded one batch ahead in a thread."""
    handoff: queue.Queue = queue.Queue(maxsize=2)

    def decode():
        try:
            batch: list[torch.Tensor] = []
            for path in files:
                image = _uint8_image(path)
                if batch and (image.shape != batch[0].shape or len(batch) == batch_size):
                    handoff.put(torch.stack(batch))
                    batch = []
                batch.append(image)
            if batch:
                handoff.put(torch.stack(batch))
            handoff.put(None)
        except BaseException as error:  # hand the error to the consumer
            handoff.put(error)

    threading.Thread(target=decode, daemon=True).start()
    while True:
        item = handoff.get()
        if item is None:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


def folder_features(folder: str | Path, extractor: InceptionFeatures, cache_dir: Path | None, batch_size: int = 50,
                    on_bad_image: str = "fail", progress: bool = True) -> FeatureSet:
    """Features of every image directly in `folder` (sorted by file name), from the cache when possible.

    The cache is looked up before any image is decoded (its key hashes the bytes of every listed
    file), so a hit costs one read of the files and no decoding; unreadable files are found, and
    failed on or skipped, only when features are computed, and a hit remembers which were skipped.
    """
    folder = Path(folder)
    listed = list_images(folder)
    key = content_key(listed, extractor.weights.sha256, on_bad_image)
    cache_file = Path(cache_dir) / "features" / key[:2] / f"{key}.pt" if cache_dir is not None else None

    if cache_file is not None and cache_file.is_file():
        try:
            entry = torch.load(cache_file, map_location="cpu", weights_only=True)
            if entry.get("format") == CACHE_FORMAT and len(entry["names"]) == entry["features"].shape[0]:
                return FeatureSet(entry["features"], tuple(entry["names"]), tuple(entry["skipped"]), True, key)
        except Exception:  # a damaged entry is recomputed and rewritten
            pass

    files, skipped = check_images(listed, on_bad_image, full_decode=True)
    names = tuple(p.name for p in files)
    skipped_names = tuple(p.name for p in skipped)
    features = []
    bar = tqdm(total=len(files), desc=f"features {folder.name}", unit="img", disable=not progress, leave=False)
    try:
        for batch in _batches(files, batch_size):
            features.append(extractor(batch).cpu())
            bar.update(len(batch))
    finally:
        bar.close()
    stacked = torch.cat(features)
    if cache_file is not None:
        atomic_torch_save(cache_file, {"format": CACHE_FORMAT, "features": stacked, "names": list(names),
                                       "skipped": list(skipped_names), "folder": str(folder),
                                       "weights_sha256": extractor.weights.sha256, "extractor": EXTRACTOR_ID})
    return FeatureSet(stacked, names, skipped_names, False, key)
